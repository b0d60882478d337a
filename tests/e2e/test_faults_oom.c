/*
 * test_faults_oom.c - OOM faults against real child processes: the memory
 * limit enforced by the mechanism this machine offers (the RSS watchdog
 * where cgroup v2 is not delegated) on an agent that allocates and touches
 * memory past it, RLIMIT_AS making the agent's own allocations fail, and an
 * OOM kill delivered at a step trigger to a durable agent. Each case checks
 * what the agent saw (how far it got, the failure it was handed on restart)
 * and what the supervisor reported, mechanism included.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <signal.h>

#define MB (1024LL * 1024)

static void watchdog_case(void)
{
    struct fc_case c = {
        .run = "watchdog", .mode = "alloc", .arg = "2048", .max_attempts = 2};
    json_t *mech, *inj, *exit1, *lf;
    long last = 0;
    const char *p;

    c.mem.max_bytes = 64 * MB;
    c.mem.mechanism = RB_MEM_WATCHDOG;
    c.env[0] = "CHUNK_MB=4";
    fc_run(&c);

    mech = fc_event(&c.ev, "oom.mechanism", 0);
    CHECK(mech && strcmp(fc_jstr(mech, "mechanism"), "watchdog") == 0,
          "watchdog: mechanism not reported");
    CHECK(c.res.completed && c.res.attempts == 2, "watchdog: completed %d, %d attempts",
          c.res.completed, c.res.attempts);
    /* The agent got past the limit but never near its 2 GB goal. */
    for (p = c.text; (p = strstr(p, "allocated ")) != NULL; p++)
        last = strtol(p + 10, NULL, 10);
    CHECK(last > 0 && last < 2048, "watchdog: agent allocated %ld MB", last);
    CHECK(!strstr(c.text, "reached"), "watchdog: the agent reached its goal");
    inj = fc_event(&c.ev, "fault.inject", 0);
    CHECK(inj && strcmp(fc_jstr(inj, "mechanism"), "watchdog") == 0 &&
              fc_jint(inj, "rss") > 64 * MB && fc_jint(inj, "limit") == 64 * MB,
          "watchdog: bad fault.inject event");
    exit1 = fc_event(&c.ev, "proc.exit", 0);
    CHECK(exit1 && fc_jint(exit1, "signal") == SIGKILL &&
              strcmp(fc_jstr(exit1, "failure"), "oom") == 0,
          "watchdog: attempt 1 not reported OOM-killed");
    lf = fc_last_failure(c.text, 2);
    CHECK(lf != NULL, "watchdog: attempt 2 got no failure:\n%s", c.text);
    if (lf) {
        CHECK(strcmp(fc_jstr(lf, "kind"), "oom") == 0, "kind %s", fc_jstr(lf, "kind"));
        CHECK(strcmp(fc_jstr(lf, "form"), "watchdog") == 0, "form %s",
              fc_jstr(lf, "form"));
        CHECK(fc_jint(lf, "exit_code") == 137, "exit %lld", fc_jint(lf, "exit_code"));
        CHECK(fc_jint(lf, "signal") == SIGKILL, "signal %lld", fc_jint(lf, "signal"));
        CHECK(fc_jint(lf, "limit") == 64 * MB, "limit %lld", fc_jint(lf, "limit"));
        json_decref(lf);
    }
    CHECK(strstr(c.text, "retry after oom") != NULL, "watchdog: attempt 2 did not retry");
    fc_case_release(&c);
}

static __attribute__((unused)) void rlimit_case(void)
{
    struct fc_case c = {
        .run = "rlimit", .mode = "alloc", .arg = "1024", .max_attempts = 1};
    const char *p;
    long at = -1;

    c.mem.rlimit_as_bytes = 256 * MB;
    c.env[0] = "CHUNK_MB=8";
    fc_run(&c);

    p = strstr(c.text, "alloc failed at ");
    if (p)
        at = strtol(p + 16, NULL, 10);
    CHECK(at >= 0 && at < 256, "rlimit: allocations did not fail under 256 MB (%ld):\n%s",
          at, c.text);
    CHECK(c.res.exit_code == 3 && c.res.signal == 0, "rlimit: exit %d signal %d",
          c.res.exit_code, c.res.signal);
    CHECK(fc_event_count(&c.ev, "fault.inject") == 0, "rlimit: something was killed");
    CHECK(strstr(c.res.last_failure, "\"rlimit_as\":268435456") != NULL,
          "rlimit: failure does not name the limit: %s", c.res.last_failure);
    fc_case_release(&c);
}

static void trigger_case(void)
{
    struct fc_case c = {
        .run = "oom-at-step", .mode = "steps", .arg = "4", .max_attempts = 2};
    struct rb_fault_spec f = {.form = RB_FAULT_OOM_KILL};
    struct fc_log log;
    struct fc_attempts att;
    json_t *lf;

    c.env[0] = "SLOW_STEP=3";
    c.env[1] = "SLOW_MS=20000";
    f.trigger.when = RB_TRIGGER_STEP_COMMIT;
    f.trigger.step = 2;
    c.faults[c.n_faults++] = f;
    fc_run(&c);

    CHECK(c.res.completed && c.res.attempts == 2,
          "oom-at-step: completed %d, %d attempts", c.res.completed, c.res.attempts);
    lf = fc_last_failure(c.text, 2);
    CHECK(lf && strcmp(fc_jstr(lf, "kind"), "oom") == 0 &&
              strcmp(fc_jstr(lf, "form"), "oom-kill") == 0 &&
              fc_jint(lf, "exit_code") == 137 &&
              strcmp(fc_jstr(lf, "trigger"), "step 2 commit") == 0,
          "oom-at-step: attempt 2 was not told of the OOM kill:\n%s", c.text);
    json_decref(lf);
    fc_read_store(c.store, "oom-at-step", &log, &att);
    CHECK(fc_committed_by(&log, "s002") == 1 && fc_committed_by(&log, "s003") == 2,
          "oom-at-step: s002 by %d, s003 by %d", fc_committed_by(&log, "s002"),
          fc_committed_by(&log, "s003"));
    CHECK(att.n == 2 && att.a[0].end == RB_END_OOM, "oom-at-step: attempt 1 end %d",
          att.n ? (int)att.a[0].end : -1);
    fc_case_release(&c);
}

int main(void)
{
    char dir[512];
    struct rb_error err;

    fc_init("test_faults_oom");
    if (rb_oom_cgroup2_detect(dir, sizeof(dir), &err) == RB_OK)
        printf("note: cgroup v2 is delegated at '%s'; the watchdog is tested anyway\n",
               dir);
    else
        printf("note: %s; OOM limits use the watchdog here\n", err.message);
    watchdog_case();
#ifdef __SANITIZE_ADDRESS__
    printf("note: RLIMIT_AS is not tested under AddressSanitizer (its shadow memory "
           "needs the address space)\n");
#else
    rlimit_case();
#endif
    trigger_case();
    return fc_finish("oom (watchdog, RLIMIT_AS, kill at a step)");
}
