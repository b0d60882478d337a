/*
 * events.c - the JSON-line events the runner writes to REBOUND_EVENT_FD
 * (step.start, step.commit, ...) for the harness's triggers and scorer, and
 * the owner ids that tell the global cache which process computes an entry.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rb__event(struct rb_run *run, const char *kind, const char *step, const char *extra)
{
    struct rb_buf b;
    const unsigned char *p;
    size_t left;

    if (!run || run->event_fd <= 0)
        return;
    rb_buf_init(&b);
    rb__buf_printf(&b, "{\"t\":%lld,\"kind\":\"%s\",\"run\":", (long long)rb__mono_ns(),
                   kind);
    rb__json_str(&b, run->run_id);
    if (step) {
        rb_buf_append(&b, ",\"step\":", 8);
        rb__json_str(&b, step);
    }
    rb__buf_printf(&b, ",\"attempt\":%d,\"pid\":%ld", run->attempt, (long)getpid());
    if (extra) {
        rb_buf_append(&b, ",", 1);
        rb_buf_append(&b, extra, strlen(extra));
    }
    if (rb_buf_append(&b, "}\n", 2) != RB_OK) {
        rb_buf_release(&b);
        return;
    }
    /* One write per event, so lines from several writers stay whole (pipes
     * guarantee it up to PIPE_BUF). */
    for (p = b.data, left = b.len; left;) {
        ssize_t n = write(run->event_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    rb_buf_release(&b);
}

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when unknown. Tells a live process from a new one
 * that reused its pid. */
static unsigned long long proc_start(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    FILE *f;
    size_t n;
    int field;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return 0;
    for (field = 2; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (field == 22)
        start = strtoull(p, NULL, 10);
    return start;
}

void rb__owner_self(char *buf, size_t size)
{
    static _Atomic unsigned long handles;
    char host[64] = "";
    long pid = (long)getpid();

    /* The handle number keeps two runs of one process (threads) apart. */
    gethostname(host, sizeof(host) - 1);
    snprintf(buf, size, "%ld:%llu:%lu@%s", pid, proc_start(pid), ++handles, host);
}

int rb__owner_dead(const char *owner)
{
    char host[64] = "";
    unsigned long long start = 0;
    long pid = 0;
    const char *at = strchr(owner, '@');

    if (!at || sscanf(owner, "%ld:%llu", &pid, &start) != 2 || pid <= 0)
        return 0;
    gethostname(host, sizeof(host) - 1);
    if (strcmp(at + 1, host) != 0)
        return 0; /* another machine: only its lease can tell */
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 1;
    return proc_start(pid) != start;
}
