/*
 * agent_steps.c - the agent bench_faults supervises: a minimal child that
 * writes the runner's JSON-line step events itself to REBOUND_EVENT_FD, in
 * the format of runner/events.c ("t" is its CLOCK_MONOTONIC in ns, the same
 * clock as the supervisor's), without a store. Attempt 1 writes step.start
 * and step.commit of step "s1" and then waits to be killed (at most 10 s,
 * then exits 3); a later attempt writes run.open as its first act and exits
 * 0. Being this small (libc only, no SQLite to open) it keeps the agent's
 * own start-up out of what the bench measures: the supervisor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One write per event, as the runner does, so a line arrives whole. */
static int event(int fd, const char *kind, const char *step, int attempt)
{
    char line[256];
    int n;

    if (step)
        n = snprintf(line, sizeof(line),
                     "{\"t\":%lld,\"kind\":\"%s\",\"run\":\"bench\",\"step\":\"%s\","
                     "\"attempt\":%d,\"pid\":%ld}\n",
                     mono_ns(), kind, step, attempt, (long)getpid());
    else
        n = snprintf(line, sizeof(line),
                     "{\"t\":%lld,\"kind\":\"%s\",\"run\":\"bench\",\"attempt\":%d,"
                     "\"pid\":%ld}\n",
                     mono_ns(), kind, attempt, (long)getpid());
    if (n <= 0 || (size_t)n >= sizeof(line))
        return -1;
    while (write(fd, line, (size_t)n) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

int main(void)
{
    const char *fd_text = getenv("REBOUND_EVENT_FD");
    const char *attempt_text = getenv("REBOUND_ATTEMPT");
    int fd = fd_text ? atoi(fd_text) : -1;
    int attempt = attempt_text ? atoi(attempt_text) : 1;
    int i;

    if (fd <= 0) {
        fputs("agent_steps: REBOUND_EVENT_FD is not set\n", stderr);
        return 2;
    }
    if (attempt > 1)
        return event(fd, "run.open", NULL, attempt) == 0 ? 0 : 1;
    if (event(fd, "step.start", "s1", attempt) != 0 ||
        event(fd, "step.commit", "s1", attempt) != 0)
        return 1;
    /* The fault kills us here; bounded should it never come. */
    for (i = 0; i < 1000; i++)
        usleep(10000);
    return 3;
}
