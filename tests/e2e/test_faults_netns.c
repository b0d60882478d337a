/*
 * test_faults_netns.c - the agent in its own network namespace (root only;
 * skipped with the reason otherwise). A child connects over and over to a
 * listener of this test through the veth pair; a partition fired at 400 ms
 * for 600 ms cuts it off and the link comes back: the child sees ok, then
 * failures, then ok. It sees only its own interfaces. tc netem is applied
 * when the kernel has it, and refused plainly when it does not. Afterwards no
 * namespace or link of this run is left.
 *
 * ctest-timeout: 60
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

static int lfd;
static struct rb_netns *ns;
static int netem_rc = -1;
static char netem_msg[512];

static void *acceptor(void *arg)
{
    int fd;

    (void)arg;
    while ((fd = accept(lfd, NULL, NULL)) >= 0)
        close(fd);
    return NULL;
}

/* At the agent's start, with its link up: try netem (and take it off). */
static void netem_hook(struct fc_events *ev, const char *kind, json_t *j)
{
    struct rb_error err;

    (void)ev;
    (void)j;
    if (strcmp(kind, "proc.start") != 0 || netem_rc != -1)
        return;
    rb_error_init(&err);
    netem_rc = (int)rb_netns_netem(ns, 20, 0, &err);
    snprintf(netem_msg, sizeof(netem_msg), "%s", err.message);
    if (netem_rc == RB_OK)
        rb_netns_netem(ns, 0, 0, NULL);
}

/* 1 when something named for this process is left in `dir`. */
static int left_in(const char *dir, const char *prefix)
{
    char want[64];
    struct dirent *de;
    DIR *d = opendir(dir);
    int found = 0;

    snprintf(want, sizeof(want), "%s%ld", prefix, (long)getpid());
    while (d && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, want, strlen(want)) == 0)
            found = 1;
    if (d)
        closedir(d);
    return found;
}

int main(void)
{
    struct fc_case c = {.run = "netns", .mode = "net", .arg = "200", .max_attempts = 1};
    struct rb_fault_spec f = {.form = RB_FAULT_PARTITION, .duration_ms = 600};
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    char addr_env[64], port_env[32];
    struct rb_error err;
    pthread_t t;
    const char *fail, *ok2;

    fc_init("test_faults_netns");
    if (rb_netns_check(&err) != RB_OK) {
        printf("skip: %s\n", err.message);
        fc_finish("netns (skipped)");
        return 77; /* ctest: skipped */
    }
    if (rb_netns_new(&ns, &err) != RB_OK) {
        fprintf(stderr, "rb_netns_new: %s\n", err.message);
        return 1;
    }
    /* Listen on every address: the host end of the link exists only once
     * the agent is started. Only the namespace reaches it. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) ||
        getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
        perror("listen");
        return 1;
    }
    pthread_create(&t, NULL, acceptor, NULL);
    snprintf(addr_env, sizeof(addr_env), "NET_ADDR=%s", rb_netns_host_addr(ns));
    snprintf(port_env, sizeof(port_env), "NET_PORT=%d", ntohs(a.sin_port));
    c.env[0] = addr_env;
    c.env[1] = port_env;
    c.env[2] = "GAP_MS=50";
    f.trigger.when = RB_TRIGGER_TIME;
    f.trigger.delay_ms = 400;
    c.faults[c.n_faults++] = f;
    c.netns = ns;
    c.ev.hook = netem_hook;
    fc_run(&c);

    CHECK(c.res.completed, "netns: the agent did not see ok, fail, ok:\n%s", c.text);
    fail = strstr(c.text, "net fail");
    ok2 = fail ? strstr(fail, "net ok") : NULL;
    CHECK(fail && strstr(c.text, "net ok") < fail && ok2,
          "netns: no ok/fail/ok sequence");
    CHECK(strstr(c.text, "ifaces=") && strstr(c.text, "rba") && strstr(c.text, "lo,") &&
              !strstr(c.text, "eth0"),
          "netns: the agent sees other interfaces: %.200s", c.text);
    CHECK(fc_event_count(&c.ev, "fault.heal") == 1, "netns: no heal event");
    if (netem_rc == RB_OK)
        printf("note: tc netem applied and removed\n");
    else
        CHECK(netem_rc == RB_ENOENT && strstr(netem_msg, "netem"),
              "netns: netem failed unclearly (%d): %s", netem_rc, netem_msg);
    if (netem_rc == RB_ENOENT)
        printf("note: %s\n", netem_msg);
    rb_netns_free(ns);
    CHECK(!left_in("/run/netns", "rebound-"), "netns: a namespace is left in /run/netns");
    CHECK(!left_in("/sys/class/net", "rbh"), "netns: a veth link is left");
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(t, NULL);
    fc_case_release(&c);
    return fc_finish(
        "netns (own namespace, partition and heal, netem or a clear refusal, "
        "cleanup)");
}
