/*
 * test_faults_shell.c - the supervisor around a shell agent made durable
 * with `rebound step` (examples/shell-durable/agent.sh): each step is a
 * short `rebound step` process that joins the attempt the supervisor names
 * and reports its events on REBOUND_EVENT_FD. The agent is SIGKILLed after
 * step 4 commits; the restarted attempt resumes at step 5 and ends with the
 * same final output as an uninterrupted run of the same agent.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <signal.h>

/* Runs the agent (10 steps) on run `run`; returns its final line (caller frees). */
static char *run_agent(const char *run, const struct rb_fault_spec *fault,
                       struct rb_sup_result *res, struct fc_events *ev)
{
    char agent[1024], out[700], store_env[800], run_env[300], *text, *line;
    const char *argv[] = {"sh", "-c", "exec \"$0\" 10 > \"$1\"", agent, out, NULL};
    const char *env[] = {store_env, run_env, "STEP_SLEEP=0.05", NULL};
    struct rb_sup_opts o = {.argv = argv, .env = env, .timeout_ms = 60000};
    struct rb_sup *sup = NULL;
    struct rb_error err;
    pid_t pgid = 0;

    snprintf(agent, sizeof(agent), "%s/examples/shell-durable/agent.sh",
             getenv("REBOUND_SOURCE_DIR") ? getenv("REBOUND_SOURCE_DIR") : ".");
    snprintf(out, sizeof(out), "%s/%s.out", fc_tmp, run);
    snprintf(store_env, sizeof(store_env), "REBOUND_STORE=%s/store", fc_tmp);
    snprintf(run_env, sizeof(run_env), "REBOUND_RUN=%s", run);
    o.restart.max_attempts = 3;
    o.on_event = fc_on_event;
    o.event_arg = ev;
    if (rb_sup_new(&o, &sup, &err) != RB_OK ||
        (fault && rb_sup_add_fault(sup, fault, &err) != RB_OK) ||
        rb_sup_run(sup, res, &err) != RB_OK) {
        CHECK(0, "%s: %s", run, err.message);
        rb_sup_free(sup);
        return strdup("");
    }
    pgid = rb_sup_pgid(sup);
    rb_sup_free(sup);
    CHECK(kill(-pgid, 0) != 0 && errno == ESRCH, "%s: group left behind", run);
    text = fc_slurp(out);
    line = strstr(text, "final: ");
    line = strdup(line ? line : "");
    free(text);
    return line;
}

int main(void)
{
    struct rb_fault_spec f = {.form = RB_FAULT_SIGKILL};
    struct rb_sup_result golden_res, res;
    struct fc_events golden_ev = {0}, ev = {0};
    struct fc_log log;
    struct fc_attempts att;
    char store[700], *golden, *faulted;
    json_t *inj;

    fc_init("test_faults_shell");
    if (!getenv("REBOUND") || access(getenv("REBOUND"), X_OK) != 0) {
        fprintf(stderr, "REBOUND must name the rebound CLI\n");
        return 1;
    }
    golden = run_agent("golden", NULL, &golden_res, &golden_ev);
    CHECK(golden_res.completed && golden_res.attempts == 1 && strlen(golden) > 10,
          "golden run failed: '%s'", golden);
    CHECK(fc_event_count(&golden_ev, "step.commit") == 10, "golden: %d commits seen",
          fc_event_count(&golden_ev, "step.commit"));

    f.trigger.when = RB_TRIGGER_STEP_COMMIT;
    f.trigger.step = 4;
    faulted = run_agent("faulted", &f, &res, &ev);
    CHECK(res.completed && res.attempts == 2, "faulted: completed %d, %d attempts",
          res.completed, res.attempts);
    CHECK(strcmp(golden, faulted) == 0, "faulted: final '%s', golden '%s'", faulted,
          golden);
    inj = fc_event(&ev, "fault.inject", 0);
    CHECK(inj && strcmp(fc_jstr(inj, "trigger"), "step 4 commit") == 0,
          "faulted: no injection at step 4 commit");
    CHECK(fc_event_count(&ev, "step.replay") >= 4, "faulted: %d steps replayed",
          fc_event_count(&ev, "step.replay"));

    snprintf(store, sizeof(store), "%s/store", fc_tmp);
    fc_read_store(store, "faulted", &log, &att);
    CHECK(log.n == 10, "faulted: %d steps committed", log.n);
    CHECK(fc_committed_by(&log, "step-004") == 1 &&
              fc_committed_by(&log, "step-010") == 2,
          "faulted: step-004 by %d, step-010 by %d", fc_committed_by(&log, "step-004"),
          fc_committed_by(&log, "step-010"));
    CHECK(att.n == 2 && att.a[0].end == RB_END_PREEMPTED && att.a[0].signal == SIGKILL,
          "faulted: attempt 1 recorded as end %d", att.n ? (int)att.a[0].end : -1);
    free(golden);
    free(faulted);
    fc_events_release(&golden_ev);
    fc_events_release(&ev);
    return fc_finish("shell agent with rebound step, killed after step 4, same output");
}
