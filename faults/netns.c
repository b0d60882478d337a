/*
 * netns.c - the agent in its own network namespace, joined to the host by a
 * veth pair, so its network can be cut (partition) or degraded (tc netem
 * delay and loss) without touching anyone else's. The namespace is made by
 * the agent's own process (unshare before exec) and named and wired by the
 * supervisor with `ip`; everything is removed at the end of each attempt,
 * and what a crashed supervisor left is removed on the next start.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct rb_netns {
    char ip[64];         /* the ip program */
    char tc[64];         /* the tc program, or "" */
    char host_addr[32];  /* host end of the /30 */
    char agent_addr[32]; /* agent end */
    char name[64];       /* current namespace name, or "" */
    char host_if[32];    /* host end of the veth pair */
    char agent_if[32];   /* agent end */
    int seq;             /* attempts wired so far */
};

static const char *find_tool(const char *name, char *out, size_t size)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    size_t i;

    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(out, size, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return out;
    }
    out[0] = '\0';
    return NULL;
}

/* Runs argv (a program path and arguments); RB_OK when it exited 0, else the
 * error with the program's own message (its stderr) in err. */
static enum rb_err run(char *const argv[], struct rb_error *err)
{
    posix_spawn_file_actions_t fa;
    char msg[400] = "";
    int pipefd[2], status = 0, rc;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return rb__fx_fail_errno(err, RB_EIO, errno, "cannot run '%s'", argv[0]);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return rb__fx_fail_errno(err, RB_EIO, rc, "cannot run '%s'", argv[0]);
    }
    while (got + 1 < sizeof(msg) &&
           (n = read(pipefd[0], msg + got, sizeof(msg) - 1 - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += (size_t)n;
    }
    msg[got] = '\0';
    msg[strcspn(msg, "\n")] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return RB_OK;
    return rb__fx_fail(err, RB_EIO, "'%s %s %s' failed: %s", argv[0], argv[1],
                       argv[2] ? argv[2] : "", msg[0] ? msg : "no message");
}

#define RUN(err, ...) run((char *const[]){__VA_ARGS__, NULL}, err)

enum rb_err rb_netns_check(struct rb_error *err)
{
    char ip[64];

    if (geteuid() != 0)
        return rb__fx_fail(err, RB_EACCES,
                           "network namespaces need root (CAP_SYS_ADMIN and "
                           "CAP_NET_ADMIN); running as uid %ld",
                           (long)geteuid());
    if (!find_tool("ip", ip, sizeof(ip)))
        return rb__fx_fail(err, RB_ENOENT,
                           "network namespaces need the 'ip' program (package "
                           "iproute2)");
    return RB_OK;
}

/* Removes namespaces and links named for supervisors that are gone. */
static void remove_stale(struct rb_netns *ns)
{
    struct dirent *de;
    DIR *d;
    long pid;

    d = opendir("/run/netns");
    while (d && (de = readdir(d)) != NULL) {
        if (sscanf(de->d_name, "rebound-%ld-", &pid) == 1 && pid > 0 &&
            kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            RUN(NULL, ns->ip, "netns", "del", de->d_name);
    }
    if (d)
        closedir(d);
    d = opendir("/sys/class/net");
    while (d && (de = readdir(d)) != NULL) {
        if (sscanf(de->d_name, "rbh%ldx", &pid) == 1 && pid > 0 &&
            kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            RUN(NULL, ns->ip, "link", "del", de->d_name);
    }
    if (d)
        closedir(d);
}

/* 1 when an interface of this namespace has an address in /30 number i of
 * 10.200.0.0/14. */
static int subnet_in_use(unsigned i)
{
    uint32_t base = (10u << 24) | ((200u + (i >> 14)) << 16) | (((i >> 6) & 255u) << 8) |
                    ((i & 63u) * 4u);
    struct ifaddrs *list = NULL, *a;
    int used = 0;

    if (getifaddrs(&list) != 0)
        return 0;
    for (a = list; a && !used; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET)
            continue;
        used = (ntohl(((const struct sockaddr_in *)(const void *)a->ifa_addr)
                          ->sin_addr.s_addr) &
                ~3u) == base;
    }
    freeifaddrs(list);
    return used;
}

enum rb_err rb_netns_new(struct rb_netns **out, struct rb_error *err)
{
    static int counter;
    struct rb_netns *ns;
    unsigned i, tries;
    enum rb_err rc;

    rc = rb_netns_check(err);
    if (rc != RB_OK)
        return rc;
    ns = calloc(1, sizeof(*ns));
    if (!ns)
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    find_tool("ip", ns->ip, sizeof(ns->ip));
    find_tool("tc", ns->tc, sizeof(ns->tc));
    /* A /30 in 10.200.0.0/14, from the pid and a counter; pids 4096 apart
     * start at the same one, so skip the /30s an interface already has (a
     * supervisor in another process whose agent is attached). */
    i = ((unsigned)getpid() * 16u + (unsigned)counter++) & 0xffffu;
    for (tries = 0; tries < 64 && subnet_in_use(i); tries++)
        i = (i + 1) & 0xffffu;
    snprintf(ns->host_addr, sizeof(ns->host_addr), "10.%u.%u.%u", 200 + (i >> 14),
             (i >> 6) & 255, (i & 63) * 4 + 1);
    snprintf(ns->agent_addr, sizeof(ns->agent_addr), "10.%u.%u.%u", 200 + (i >> 14),
             (i >> 6) & 255, (i & 63) * 4 + 2);
    remove_stale(ns);
    *out = ns;
    return RB_OK;
}

const char *rb_netns_host_addr(const struct rb_netns *ns)
{
    return ns->host_addr;
}

const char *rb_netns_agent_addr(const struct rb_netns *ns)
{
    return ns->agent_addr;
}

int rb__netns_child(void)
{
    return unshare(CLONE_NEWNET) == 0 ? 0 : errno;
}

enum rb_err rb__netns_attach(struct rb_netns *ns, pid_t pid, struct rb_error *err)
{
    char pidstr[40], host[40], agent[40];
    struct stat agent_ns, self_ns;
    enum rb_err rc;

    /* Never wire the supervisor's own network: the agent must already be in
     * a namespace of its own. */
    snprintf(pidstr, sizeof(pidstr), "/proc/%ld/ns/net", (long)pid);
    if (stat(pidstr, &agent_ns) != 0 || stat("/proc/self/ns/net", &self_ns) != 0 ||
        (agent_ns.st_dev == self_ns.st_dev && agent_ns.st_ino == self_ns.st_ino))
        return rb__fx_fail(err, RB_ECHILD,
                           "agent %ld is not in a network namespace of its own; "
                           "nothing was changed",
                           (long)pid);
    ns->seq++;
    /* Interface names hold 15 bytes: "rbh" + pid (7 digits) + "x" + 2 digits. */
    snprintf(ns->name, sizeof(ns->name), "rebound-%ld-%d", (long)getpid(), ns->seq);
    snprintf(ns->host_if, sizeof(ns->host_if), "rbh%ldx%d", (long)getpid() % 10000000,
             ns->seq % 100);
    snprintf(ns->agent_if, sizeof(ns->agent_if), "rba%ldx%d", (long)getpid() % 10000000,
             ns->seq % 100);
    snprintf(pidstr, sizeof(pidstr), "%ld", (long)pid);
    snprintf(host, sizeof(host), "%s/30", ns->host_addr);
    snprintf(agent, sizeof(agent), "%s/30", ns->agent_addr);
    rc = RUN(err, ns->ip, "netns", "attach", ns->name, pidstr);
    if (rc != RB_OK) {
        ns->name[0] = '\0';
        return rc;
    }
    rc = RUN(err, ns->ip, "link", "add", ns->host_if, "type", "veth", "peer", "name",
             ns->agent_if, "netns", ns->name);
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "addr", "add", host, "dev", ns->host_if);
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "link", "set", ns->host_if, "up");
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "-n", ns->name, "link", "set", "lo", "up");
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "-n", ns->name, "addr", "add", agent, "dev", ns->agent_if);
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "-n", ns->name, "link", "set", ns->agent_if, "up");
    if (rc == RB_OK)
        rc = RUN(err, ns->ip, "-n", ns->name, "route", "add", "default", "via",
                 ns->host_addr);
    if (rc != RB_OK)
        rb__netns_detach(ns);
    return rc;
}

void rb__netns_detach(struct rb_netns *ns)
{
    if (ns->host_if[0] && access("/sys/class/net", F_OK) == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/sys/class/net/%s", ns->host_if);
        if (access(path, F_OK) == 0)
            RUN(NULL, ns->ip, "link", "del", ns->host_if); /* takes its peer along */
    }
    if (ns->name[0])
        RUN(NULL, ns->ip, "netns", "del", ns->name);
    ns->name[0] = '\0';
    ns->host_if[0] = '\0';
}

enum rb_err rb_netns_partition(struct rb_netns *ns, int on, struct rb_error *err)
{
    if (!ns->host_if[0])
        return rb__fx_fail(err, RB_EINVAL, "no agent is in the network namespace");
    return RUN(err, ns->ip, "link", "set", ns->host_if, on ? "down" : "up");
}

enum rb_err rb_netns_netem(struct rb_netns *ns, int delay_ms, double loss_pct,
                           struct rb_error *err)
{
    char delay[32], loss[32];
    enum rb_err rc;

    if (!ns->host_if[0])
        return rb__fx_fail(err, RB_EINVAL, "no agent is in the network namespace");
    if (!ns->tc[0])
        return rb__fx_fail(err, RB_ENOENT,
                           "tc netem needs the 'tc' program (package "
                           "iproute2)");
    if (delay_ms <= 0 && loss_pct <= 0) {
        RUN(NULL, ns->tc, "qdisc", "del", "dev", ns->host_if, "root");
        RUN(NULL, ns->tc, "-n", ns->name, "qdisc", "del", "dev", ns->agent_if, "root");
        return RB_OK;
    }
    snprintf(delay, sizeof(delay), "%dms", delay_ms > 0 ? delay_ms : 0);
    snprintf(loss, sizeof(loss), "%.3f%%", loss_pct > 0 ? loss_pct : 0.0);
    rc = RUN(err, ns->tc, "qdisc", "replace", "dev", ns->host_if, "root", "netem",
             "delay", delay, "loss", loss);
    if (rc == RB_OK)
        rc = RUN(err, ns->tc, "-n", ns->name, "qdisc", "replace", "dev", ns->agent_if,
                 "root", "netem", "delay", delay, "loss", loss);
    if (rc != RB_OK && err && strstr(err->message, "qdisc kind is unknown"))
        return rb__fx_fail(err, RB_ENOENT,
                           "tc netem is not available: this kernel has no netem qdisc "
                           "(sch_netem)");
    return rc;
}

void rb_netns_free(struct rb_netns *ns)
{
    if (!ns)
        return;
    rb__netns_detach(ns);
    free(ns);
}
