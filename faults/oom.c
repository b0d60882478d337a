/*
 * oom.c - memory limits on the agent and OOM kills. Where a writable,
 * delegated cgroup v2 with the memory controller exists, the kernel enforces
 * memory.max on a cgroup made for each attempt and its oom_kill count says
 * whether it acted; otherwise a watchdog samples the resident memory of the
 * agent's process group and SIGKILLs the group past the limit, reported as
 * an orchestrator reports an OOM kill (exit 137). RLIMIT_AS in the agent makes
 * its allocations fail instead. Every report names the mechanism used.
 */
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const mech_names[] = {"auto", "cgroup2", "watchdog"};

const char *rb_mem_mechanism_name(enum rb_mem_mechanism m)
{
    if ((int)m < 0 || (size_t)m >= sizeof(mech_names) / sizeof(mech_names[0]))
        return "unknown";
    return mech_names[m];
}

/* Reads a small file whole into buf (NUL-terminated); -1 on error. */
static int read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t got = 0;

    if (fd < 0)
        return -1;
    while (got + 1 < size) {
        n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return 0;
}

static int write_small(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* 1 when the space-separated list holds word. */
static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    const char *p = list;

    while ((p = strstr(p, word)) != NULL) {
        if ((p == list || isspace((unsigned char)p[-1])) &&
            (p[n] == '\0' || isspace((unsigned char)p[n])))
            return 1;
        p += n;
    }
    return 0;
}

/* The mount point of cgroup v2, from /proc/self/mountinfo. */
static int cgroup2_mount(char *out, size_t size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int found = 0;

    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        char mnt[2048];
        const char *sep = strstr(line, " - ");

        if (!sep || strncmp(sep, " - cgroup2 ", 11) != 0)
            continue;
        /* fields: id parent major:minor root mount-point ... */
        if (sscanf(line, "%*s %*s %*s %*s %2047s", mnt) == 1) {
            snprintf(out, size, "%s", mnt);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/*
 * Where the agent's cgroup goes. A cgroup other than the root may not hold
 * processes and enable controllers for children at once, so for a
 * supervisor in cgroup S the agent's cgroup is a sibling, made in S's parent
 * P: it gets the memory controller when S has it (P delegates it). In the
 * root cgroup, the root itself must enable it in cgroup.subtree_control.
 */
enum rb_err rb_oom_cgroup2_detect(char *dir, size_t size, struct rb_error *err)
{
    char mnt[2048], self[2048] = "", path[4200], parent[4200], buf[4096], line[2048];
    int v1_memory = 0, root;
    FILE *f;

    if (!cgroup2_mount(mnt, sizeof(mnt)))
        return rb__fx_fail(err, RB_ENOENT, "no cgroup v2 hierarchy is mounted");
    f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return rb__fx_fail_errno(err, RB_EIO, errno, "cannot read '/proc/self/cgroup'");
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "0::", 3) == 0)
            snprintf(self, sizeof(self), "%s", line + 3);
        else if (strstr(line, ":memory:"))
            v1_memory = 1;
    }
    fclose(f);
    root = self[0] == '\0' || strcmp(self, "/") == 0;
    snprintf(path, sizeof(path), "%s%s/cgroup.controllers", mnt, root ? "" : self);
    if (read_small(path, buf, sizeof(buf)) != 0)
        return rb__fx_fail_errno(err, RB_ENOENT, errno, "cannot read '%s'", path);
    if (!has_word(buf, "memory"))
        return rb__fx_fail(err, RB_ENOENT, "cgroup v2 at '%s' has no memory controller%s",
                           mnt,
                           v1_memory ? " (memory is managed by cgroup v1 here)" : "");
    if (root) {
        snprintf(parent, sizeof(parent), "%s", mnt);
        snprintf(path, sizeof(path), "%s/cgroup.subtree_control", mnt);
        if (read_small(path, buf, sizeof(buf)) != 0 || !has_word(buf, "memory"))
            return rb__fx_fail(
                err, RB_EACCES,
                "cgroup v2 root '%s' does not enable the memory controller "
                "for its children ('memory' is not in "
                "cgroup.subtree_control)",
                mnt);
    } else {
        /* S has memory: its parent delegates it to its children. */
        snprintf(parent, sizeof(parent), "%s%s", mnt, self);
        *strrchr(parent, '/') = '\0';
    }
    if (access(parent, W_OK) != 0)
        return rb__fx_fail_errno(err, RB_EACCES, errno,
                                 "cannot make cgroups in '%s' (not delegated to us)",
                                 parent);
    if (strlen(parent) >= size)
        return rb__fx_fail(err, RB_EINVAL, "cgroup path '%s' is too long", parent);
    snprintf(dir, size, "%s", parent);
    return RB_OK;
}

enum rb_err rb_oom_group_rss(pid_t pgid, int64_t *bytes, int *nprocs,
                             struct rb_error *err)
{
    long page = sysconf(_SC_PAGESIZE);
    int64_t total = 0;
    int n = 0;
    struct dirent *de;
    DIR *d = opendir("/proc");

    if (!d)
        return rb__fx_fail_errno(err, RB_EIO, errno, "cannot read '/proc'");
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[1024], *p;
        long pgrp = 0, size = 0, resident = 0;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (read_small(path, buf, sizeof(buf)) != 0)
            continue;          /* gone meanwhile */
        p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
        if (!p || sscanf(p + 1, " %*c %*d %ld", &pgrp) != 1 || pgrp != (long)pgid)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/statm", de->d_name);
        if (read_small(path, buf, sizeof(buf)) != 0 ||
            sscanf(buf, "%ld %ld", &size, &resident) != 2)
            continue;
        total += (int64_t)resident * page;
        n++;
    }
    closedir(d);
    *bytes = total;
    if (nprocs)
        *nprocs = n;
    return RB_OK;
}

/* Removes the cgroups a crashed supervisor left in `parent`: rebound-PID-N
 * whose PID is gone. rmdir fails harmlessly on one that still holds
 * processes. */
static void remove_stale_cgroups(const char *parent)
{
    DIR *d = opendir(parent);
    struct dirent *de;
    char path[4600];
    long pid;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (sscanf(de->d_name, "rebound-%ld-", &pid) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof(path), "%s/%s", parent, de->d_name);
        rmdir(path);
    }
    closedir(d);
}

enum rb_err rb__oom_setup(struct rb_sup *sup, struct rb_error *err)
{
    struct rb_error why;
    enum rb_err rc;
    json_t *o;

    rb_error_init(&why);
    sup->mech = RB_MEM_AUTO;
    if (sup->mem.max_bytes <= 0 && sup->mem.rlimit_as_bytes <= 0)
        return RB_OK;
    if (sup->mem.max_bytes > 0) {
        sup->mech = sup->mem.mechanism;
        if (sup->mech != RB_MEM_WATCHDOG) {
            rc = rb_oom_cgroup2_detect(sup->cg_parent, sizeof(sup->cg_parent), &why);
            if (rc == RB_OK) {
                sup->mech = RB_MEM_CGROUP2;
                remove_stale_cgroups(sup->cg_parent);
            } else if (sup->mech == RB_MEM_CGROUP2)
                return rb__fx_fail(err, rc, "cannot limit memory with cgroup v2: %s",
                                   why.message);
            else
                sup->mech = RB_MEM_WATCHDOG;
        }
    }
    o = json_object();
    if (o) {
        json_object_set_new(o, "mechanism",
                            json_string(sup->mem.max_bytes > 0
                                            ? rb_mem_mechanism_name(sup->mech)
                                            : "none"));
        json_object_set_new(o, "limit", json_integer(sup->mem.max_bytes));
        if (sup->mem.rlimit_as_bytes > 0)
            json_object_set_new(o, "rlimit_as", json_integer(sup->mem.rlimit_as_bytes));
        if (sup->mech == RB_MEM_WATCHDOG) {
            json_object_set_new(o, "sample_ms", json_integer(sup->mem.sample_ms));
            if (why.message[0])
                json_object_set_new(o, "cgroup2", json_string(why.message));
        }
        if (sup->mech == RB_MEM_CGROUP2)
            json_object_set_new(o, "cgroup", json_string(sup->cg_parent));
    }
    rb__fx_emit(sup, "oom.mechanism", rb__fx_now_ns(), o);
    return RB_OK;
}

enum rb_err rb__oom_attempt_begin(struct rb_sup *sup, struct rb_error *err)
{
    char path[700], value[32];

    sup->peak_rss = 0;
    sup->next_sample_ns = rb__fx_now_ns();
    sup->cg_dir[0] = '\0';
    if (sup->mech != RB_MEM_CGROUP2)
        return RB_OK;
    snprintf(sup->cg_dir, sizeof(sup->cg_dir), "%s/rebound-%ld-%d", sup->cg_parent,
             (long)getpid(), sup->attempt);
    if (mkdir(sup->cg_dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        sup->cg_dir[0] = '\0';
        return rb__fx_fail_errno(err, RB_EIO, e, "cannot make cgroup in '%s'",
                                 sup->cg_parent);
    }
    snprintf(value, sizeof(value), "%lld", (long long)sup->mem.max_bytes);
    snprintf(path, sizeof(path), "%s/memory.max", sup->cg_dir);
    if (write_small(path, value) != 0) {
        int e = errno;
        rmdir(sup->cg_dir);
        sup->cg_dir[0] = '\0';
        return rb__fx_fail_errno(err, RB_EIO, e, "cannot write '%s'", path);
    }
    snprintf(path, sizeof(path), "%s/memory.swap.max", sup->cg_dir);
    write_small(path, "0"); /* absent without swap accounting: fine */
    return RB_OK;
}

int rb__oom_child(const struct rb_sup *sup, pid_t self)
{
    char path[700], digits[24];
    size_t n = sizeof(digits) - 1;
    unsigned long v = (unsigned long)self;
    int fd;

    if (sup->mem.rlimit_as_bytes > 0) {
        struct rlimit rl = {(rlim_t)sup->mem.rlimit_as_bytes,
                            (rlim_t)sup->mem.rlimit_as_bytes};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            return errno;
    }
    if (!sup->cg_dir[0])
        return 0;
    /* No stdio after fork: build the path and the pid by hand. */
    if (strlen(sup->cg_dir) + sizeof("/cgroup.procs") > sizeof(path))
        return ENAMETOOLONG;
    memcpy(path, sup->cg_dir, strlen(sup->cg_dir));
    memcpy(path + strlen(sup->cg_dir), "/cgroup.procs", sizeof("/cgroup.procs"));
    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n > 0);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (write(fd, digits + n, strlen(digits + n)) < 0) {
        int e = errno;
        close(fd);
        return e;
    }
    close(fd);
    return 0;
}

int64_t rb__oom_next(const struct rb_sup *sup)
{
    if (sup->mech != RB_MEM_WATCHDOG || sup->mem.max_bytes <= 0 || sup->pid <= 0 ||
        sup->blame.set)
        return INT64_MAX;
    return sup->next_sample_ns;
}

void rb__oom_tick(struct rb_sup *sup, int64_t now)
{
    int64_t rss = 0;
    int nprocs = 0;
    json_t *o;

    if (now < rb__oom_next(sup))
        return;
    sup->next_sample_ns = now + (int64_t)sup->mem.sample_ms * 1000000;
    if (rb_oom_group_rss(sup->pgid, &rss, &nprocs, NULL) != RB_OK)
        return;
    if (rss > sup->peak_rss)
        sup->peak_rss = rss;
    if (rss <= sup->mem.max_bytes)
        return;
    sup->blame.set = 1;
    sup->blame.kind = "oom";
    sup->blame.form = "watchdog";
    sup->blame.trigger[0] = '\0';
    sup->blame.limit = sup->mem.max_bytes;
    sup->blame.by_kill = 1;
    kill(-sup->pgid, SIGKILL);
    sup->injected++;
    o = json_object();
    if (o) {
        json_object_set_new(o, "form", json_string("oom-kill"));
        json_object_set_new(o, "mechanism", json_string("watchdog"));
        json_object_set_new(o, "attempt", json_integer(sup->attempt));
        json_object_set_new(o, "pgid", json_integer(sup->pgid));
        json_object_set_new(o, "rss", json_integer(rss));
        json_object_set_new(o, "procs", json_integer(nprocs));
        json_object_set_new(o, "limit", json_integer(sup->mem.max_bytes));
        json_object_set_new(o, "signal", json_integer(SIGKILL));
        json_object_set_new(o, "exit_code", json_integer(137));
        json_object_set_new(o, "trigger_t", json_integer(now));
        json_object_set_new(o, "latency_ns", json_integer(rb__fx_now_ns() - now));
    }
    rb__fx_emit(sup, "fault.inject", rb__fx_now_ns(), o);
}

void rb__oom_attempt_end(struct rb_sup *sup, int signal)
{
    char path[700], buf[1024], *p;
    long kills = 0;
    json_t *o;

    if (!sup->cg_dir[0])
        return;
    snprintf(path, sizeof(path), "%s/memory.events", sup->cg_dir);
    if (read_small(path, buf, sizeof(buf)) == 0) {
        p = strstr(buf, "oom_kill ");
        if (p)
            kills = strtol(p + 9, NULL, 10);
    }
    if (kills > 0 && signal == SIGKILL && !sup->blame.set) {
        sup->blame.set = 1;
        sup->blame.kind = "oom";
        sup->blame.form = "cgroup2";
        sup->blame.trigger[0] = '\0';
        sup->blame.limit = sup->mem.max_bytes;
    }
    o = json_object();
    if (o) {
        json_object_set_new(o, "mechanism", json_string("cgroup2"));
        json_object_set_new(o, "attempt", json_integer(sup->attempt));
        json_object_set_new(o, "oom_kill", json_integer(kills));
        json_object_set_new(o, "limit", json_integer(sup->mem.max_bytes));
    }
    rb__fx_emit(sup, "oom.report", rb__fx_now_ns(), o);
    rmdir(sup->cg_dir);
    sup->cg_dir[0] = '\0';
}
