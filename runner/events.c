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
#include <time.h>
#include <unistd.h>

/* Writes all of p to fd, giving up on the first error. A reader that went
 * away gives EPIPE, not the SIGPIPE that would kill the agent: the signal
 * is blocked for this thread meanwhile and the one the write raised is
 * consumed (unless one was pending already, which is the caller's). */
static void write_nosigpipe(int fd, const unsigned char *p, size_t left)
{
    static const struct timespec zero = {0, 0};
    sigset_t pipe_set, old, pending;
    int was_pending, broken = 0;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            broken = n < 0 && errno == EPIPE;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (broken && !was_pending)
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void rb__event(struct rb_run *run, const char *kind, const char *step, const char *extra)
{
    struct rb_buf b;

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
    write_nosigpipe(run->event_fd, b.data, b.len);
    rb_buf_release(&b);
}

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when unknown. Tells a live process from a new one
 * that reused its pid. Its state letter (field 3) goes to *state if not NULL. */
static unsigned long long proc_start(long pid, char *state)
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
    if (state && p[1] == ' ')
        *state = p[2];
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
    snprintf(buf, size, "%ld:%llu:%lu@%s", pid, proc_start(pid, NULL), ++handles, host);
}

int rb__owner_dead(const char *owner)
{
    char host[64] = "", state = 0;
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
    /* A zombie (killed, not reaped yet) will never finish either. */
    return proc_start(pid, &state) != start || state == 'Z' || state == 'X';
}
