/*
 * test_faults_preempt.c - preemption of a real durable agent
 * (faults/testing/rb_fault_child, built on librebound) under supervision:
 * SIGKILL before step 3 starts, while it runs and after it commits; a spot
 * notice (SIGTERM, SIGKILL after the grace period) to an agent that ignores
 * it and to one that exits; a freeze that the agent survives. Each case
 * checks what the agent saw (which steps it executed in which attempt, the
 * failure it was handed), what the store recorded, the events, and that no
 * process of the group is left.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <signal.h>

static struct rb_fault_spec kill_at(enum rb_trigger_when when, int step, int64_t delay)
{
    struct rb_fault_spec f = {.form = RB_FAULT_SIGKILL};

    f.trigger.when = when;
    f.trigger.step = step;
    f.trigger.delay_ms = delay;
    return f;
}

/* The agent runs 6 steps; attempt 1 is slow in `slow` so the kill lands in it. */
static void sigkill_case(const char *run, enum rb_trigger_when when, int64_t delay,
                         const char *slow, int s3_attempt)
{
    struct fc_case c = {.run = run, .mode = "steps", .arg = "6", .max_attempts = 3};
    char slow_env[32], exec1[64];
    struct fc_log log;
    struct fc_attempts att;
    json_t *lf, *inj;

    snprintf(slow_env, sizeof(slow_env), "SLOW_STEP=%s", slow);
    c.env[0] = slow_env;
    c.env[1] = "SLOW_MS=20000";
    c.faults[c.n_faults++] = kill_at(when, 3, delay);
    fc_run(&c);

    CHECK(c.res.completed && c.res.attempts == 2, "%s: completed %d after %d attempts",
          run, c.res.completed, c.res.attempts);
    CHECK(c.res.injected == 1, "%s: %d faults injected", run, c.res.injected);
    /* What the agent was told in attempt 2. */
    lf = fc_last_failure(c.text, 2);
    CHECK(lf != NULL, "%s: attempt 2 got no REBOUND_LAST_FAILURE:\n%s", run, c.text);
    if (lf) {
        CHECK(strcmp(fc_jstr(lf, "kind"), "preemption") == 0, "%s: kind %s", run,
              fc_jstr(lf, "kind"));
        CHECK(strcmp(fc_jstr(lf, "form"), "sigkill") == 0, "form %s",
              fc_jstr(lf, "form"));
        CHECK(fc_jint(lf, "signal") == SIGKILL, "signal %lld", fc_jint(lf, "signal"));
        CHECK(fc_jint(lf, "exit_code") == 137, "exit %lld", fc_jint(lf, "exit_code"));
        CHECK(fc_jint(lf, "attempt") == 1, "attempt %lld", fc_jint(lf, "attempt"));
        CHECK(strncmp(fc_jstr(lf, "trigger"), "step 3 ", 7) == 0, "trigger %s",
              fc_jstr(lf, "trigger"));
        json_decref(lf);
    }
    /* The store: steps 1-2 in attempt 1, step 3 where the kill put it. */
    fc_read_store(c.store, run, &log, &att);
    CHECK(log.n == 6, "%s: %d steps committed", run, log.n);
    CHECK(fc_committed_by(&log, "s001") == 1 && fc_committed_by(&log, "s002") == 1,
          "%s: steps 1-2 not committed by attempt 1", run);
    CHECK(fc_committed_by(&log, "s003") == s3_attempt, "%s: s003 committed by %d", run,
          fc_committed_by(&log, "s003"));
    CHECK(fc_committed_by(&log, "s004") == 2 && fc_committed_by(&log, "s006") == 2,
          "%s: steps 4-6 not committed by attempt 2", run);
    CHECK(att.n == 2 && att.a[0].end == RB_END_PREEMPTED && att.a[0].signal == SIGKILL,
          "%s: attempt 1 recorded as end %d signal %d", run,
          att.n ? (int)att.a[0].end : -1, att.n ? att.a[0].signal : -1);
    /* What the agent executed: nothing committed was executed again. */
    CHECK(fc_count_lines(c.text, "exec s001") == 1, "%s: s001 executed twice", run);
    /* Killed while step 3 ran (200 ms into a 20 s step): it had begun. */
    snprintf(exec1, sizeof(exec1), "exec s00%s attempt=1", slow);
    CHECK(when != RB_TRIGGER_STEP_DURING || strstr(c.text, exec1), "%s: no '%s'", run,
          exec1);
    /* Killed after step 3 committed: it never ran again. */
    CHECK(when != RB_TRIGGER_STEP_COMMIT || (strstr(c.text, "exec s003 attempt=1") &&
                                             !strstr(c.text, "exec s003 attempt=2")),
          "%s: s003 executed again after its commit", run);
    /* The injection event, with its latency on the supervisor's clock. */
    inj = fc_event(&c.ev, "fault.inject", 0);
    CHECK(inj && strcmp(fc_jstr(inj, "form"), "sigkill") == 0 &&
              json_is_integer(json_object_get(inj, "latency_ns")) &&
              fc_jint(inj, "latency_ns") >= 0 && fc_jint(inj, "signal") == SIGKILL,
          "%s: bad fault.inject event", run);
    fc_case_release(&c);
}

static void notice_case(const char *run, const char *on_term)
{
    struct fc_case c = {.run = run, .mode = "steps", .arg = "4", .max_attempts = 2};
    struct rb_fault_spec f = {.form = RB_FAULT_NOTICE, .grace_ms = 300};
    int exits_itself = strcmp(on_term, "ON_TERM=exit") == 0;
    json_t *lf, *exit1;

    c.env[0] = "SLOW_STEP=3";
    c.env[1] = "SLOW_MS=20000";
    c.env[2] = on_term;
    f.trigger.when = RB_TRIGGER_STEP_COMMIT;
    f.trigger.step = 2;
    c.faults[c.n_faults++] = f;
    fc_run(&c);

    CHECK(c.res.completed && c.res.attempts == 2, "%s: completed %d, %d attempts", run,
          c.res.completed, c.res.attempts);
    CHECK(fc_count_lines(c.text, "sigterm") == 1, "%s: the agent saw no SIGTERM:\n%s",
          run, c.text);
    exit1 = fc_event(&c.ev, "proc.exit", 0);
    if (exits_itself)
        CHECK(exit1 && fc_jint(exit1, "exit_code") == 143 &&
                  fc_jint(exit1, "signal") == 0,
              "%s: attempt 1 should exit 143 itself", run);
    else
        CHECK(exit1 && fc_jint(exit1, "signal") == SIGKILL,
              "%s: attempt 1 should die by SIGKILL after the grace", run);
    /* The grace-over SIGKILL happens only when the agent outlived the grace. */
    CHECK(fc_event_count(&c.ev, "fault.inject") == (exits_itself ? 1 : 2),
          "%s: %d fault.inject events", run, fc_event_count(&c.ev, "fault.inject"));
    lf = fc_last_failure(c.text, 2);
    CHECK(lf && strcmp(fc_jstr(lf, "kind"), "preemption") == 0 &&
              strcmp(fc_jstr(lf, "form"), "notice") == 0,
          "%s: attempt 2 was not told of the notice:\n%s", run, c.text);
    json_decref(lf);
    fc_case_release(&c);
}

/* Checked from the event callback, right after the SIGSTOP: is the agent
 * stopped (state T in /proc)? */
static int freeze_seen_stopped = -1;

static void freeze_hook(struct fc_events *ev, const char *kind, json_t *j)
{
    char path[64], buf[512], *p;
    FILE *f;
    int i;

    (void)ev;
    if (strcmp(kind, "fault.inject") != 0 || strcmp(fc_jstr(j, "form"), "freeze") != 0)
        return;
    freeze_seen_stopped = 0;
    snprintf(path, sizeof(path), "/proc/%lld/stat", fc_jint(j, "pgid"));
    for (i = 0; i < 200 && !freeze_seen_stopped; i++) {
        f = fopen(path, "r");
        if (!f)
            break;
        buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
        fclose(f);
        p = strrchr(buf, ')');
        if (p && (p[2] == 'T' || p[2] == 't'))
            freeze_seen_stopped = 1;
        else
            fc_sleep_ms(5);
    }
}

static void freeze_case(void)
{
    struct fc_case c = {.run = "freeze", .mode = "steps", .arg = "4", .max_attempts = 1};
    struct rb_fault_spec f = {.form = RB_FAULT_FREEZE, .duration_ms = 300};
    struct fc_log log;
    struct fc_attempts att;
    json_t *heal;

    c.env[0] = "STEP_MS=100";
    f.trigger.when = RB_TRIGGER_STEP_START;
    f.trigger.step = 2;
    c.faults[c.n_faults++] = f;
    c.ev.hook = freeze_hook;
    fc_run(&c);

    CHECK(c.res.completed && c.res.attempts == 1, "freeze: completed %d, %d attempts",
          c.res.completed, c.res.attempts);
    CHECK(freeze_seen_stopped == 1, "freeze: the agent was not seen stopped (%d)",
          freeze_seen_stopped);
    heal = fc_event(&c.ev, "fault.heal", 0);
    CHECK(heal && fc_jint(heal, "signal") == SIGCONT, "freeze: no SIGCONT heal event");
    fc_read_store(c.store, "freeze", &log, &att);
    CHECK(log.n == 4 && att.n == 1, "freeze: %d steps, %d attempts", log.n, att.n);
    fc_case_release(&c);
}

int main(void)
{
    fc_init("test_faults_preempt");
    sigkill_case("kill-before-3", RB_TRIGGER_STEP_START, 0, "3", 2);
    sigkill_case("kill-during-3", RB_TRIGGER_STEP_DURING, 200, "3", 2);
    sigkill_case("kill-after-3", RB_TRIGGER_STEP_COMMIT, 0, "4", 1);
    notice_case("notice-ignored", "ON_TERM=record");
    notice_case("notice-obeyed", "ON_TERM=exit");
    freeze_case();
    return fc_finish("preemption (sigkill before/during/after step 3, notice, freeze)");
}
