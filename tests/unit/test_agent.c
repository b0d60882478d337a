/*
 * test_agent.c - unit tests of the built-in agent (harness/agent) against the
 * real world server on loopback, started in process, and a real store in a
 * scratch folder: a workflow runs to the world's final answer and a rerun
 * replays it without a request; duplicate research threads are served from
 * the global cache; after a run parked by a dead LLM is resumed, the correct
 * agent re-sends the same history while "drop-history" sends another; an OOM
 * of the attempt before is answered with more memory, unless the agent
 * ignores its failure context; "no-replay" asks the world everything again;
 * an answer lost after its effect doubles the effect only in
 * "no-idempotency" mode; a lease that runs out stops the agent; a nested
 * fan-out (drivers -> coordinators -> researchers) runs each leaf under its
 * path's keys, collapses duplicates of every level into one call, and keeps
 * its concurrency limit across the whole tree.
 *
 * ctest-timeout: 90
 */
#define _GNU_SOURCE
#include "harness/agent/agent.h"
#include "harness/world/world.h"

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

struct fx {
    struct rb_world *w;
    char dir[64];    /* scratch folder, the store */
    char base[128];  /* OpenAI base URL of the world */
    char tools[128]; /* tools URL of the world */
    int arm_after;   /* add a 503 fault on /v1/ after this many LLM answers */
    int answered;    /* LLM answers so far (counted when armed) */
    struct rb_scenario_workflow wf;
    struct rb_scenario_task task;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* After arm_after finished LLM exchanges, every LLM call answers 503. */
static void on_entry(void *arg, const struct rb_world_entry *e)
{
    struct fx *f = arg;
    struct rb_world_fault fault;
    int arm = __atomic_load_n(&f->arm_after, __ATOMIC_SEQ_CST);

    if (!arm || e->end_ns == 0 || strcmp(e->route, "/v1/chat/completions") != 0)
        return;
    if (__atomic_add_fetch(&f->answered, 1, __ATOMIC_SEQ_CST) == arm) {
        rb_world_fault_init(&fault, RB_WORLD_FAULT_SERVER_ERROR);
        snprintf(fault.route, sizeof(fault.route), "/v1/");
        /* no cmocka assert off the main thread: the test sees no fault */
        (void)rb_world_fault_add(f->w, &fault, NULL, NULL);
    }
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rb_world_config cfg;
    struct rb_error err;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rb-agent-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    rb_world_config_init(&cfg);
    cfg.seed = 5;
    cfg.on_entry = on_entry;
    cfg.on_entry_arg = f;
    assert_int_equal(rb_world_start(&cfg, &f->w, &err), RB_OK);
    rb_world_config_release(&cfg);
    snprintf(f->base, sizeof(f->base), "%s/v1", rb_world_url(f->w));
    snprintf(f->tools, sizeof(f->tools), "%s/tools", rb_world_url(f->w));
    /* 12 steps: a tool loop of 3 LLM turns, a task at step 4, and research
     * threads at steps 7..9, the third asking the first one's question */
    f->wf.steps = 12;
    f->wf.llm_turns = 6;
    f->task.step = 4;
    f->task.alloc_mb = 2;
    f->wf.tasks = &f->task;
    f->wf.n_tasks = 1;
    f->wf.fanout_at_step = 7;
    f->wf.fanout_threads = 3;
    f->wf.fanout_duplicates = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    rb_world_stop(f->w);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void opts_for(struct fx *f, struct rb_agent_opts *o, const char *run,
                     enum rb_scenario_mode mode)
{
    memset(o, 0, sizeof(*o));
    o->store_dir = f->dir;
    o->run_id = run;
    o->name = "unit";
    o->wf = &f->wf;
    o->mode = mode;
    o->base_url = f->base;
    o->tools_url = f->tools;
    o->llm_tries = 1;
    o->backoff_ms = 1;
}

static size_t chat_requests(struct fx *f)
{
    struct rb_world_entry e[256];
    size_t n = rb_world_journal_read(f->w, 0, e, 256), i, k = 0;

    for (i = 0; i < n; i++)
        k += strcmp(e[i].route, "/v1/chat/completions") == 0;
    return k;
}

static void test_runs_then_replays(void **state)
{
    struct fx *f = *state;
    struct rb_agent_opts o;
    struct rb_agent_result r1, r2;
    struct rb_error err;
    size_t before;

    opts_for(f, &o, "r", RB_SCENARIO_MODE_CORRECT);
    rb_agent_result_init(&r1);
    rb_agent_result_init(&r2);
    assert_int_equal(rb_agent_run(&o, &r1, &err), RB_OK);
    assert_non_null(strstr(r1.answer, "tool calls: "));
    assert_int_equal(r1.attempt, 1);
    assert_int_equal(r1.replayed, 0);
    /* the duplicate thread's search and summary come from the cache */
    assert_int_equal(r1.cached, 2);
    assert_int_equal(r1.executed + r1.cached, r1.steps);
    /* 3 turns of the loop and 2 distinct summaries reached the world */
    assert_int_equal(r1.llm_calls, 5);
    before = rb_world_journal_count(f->w);
    assert_int_equal(chat_requests(f), 5);

    assert_int_equal(rb_agent_run(&o, &r2, &err), RB_OK);
    assert_string_equal(r2.answer, r1.answer);
    assert_int_equal(r2.attempt, 2);
    assert_int_equal(r2.executed, 0);
    assert_int_equal(r2.replayed, r1.steps);
    assert_int_equal(rb_world_journal_count(f->w), before);
    rb_agent_result_release(&r1);
    rb_agent_result_release(&r2);
}

static void test_no_replay_asks_again(void **state)
{
    struct fx *f = *state;
    struct rb_agent_opts o;
    struct rb_agent_result r1, r2;
    struct rb_error err;

    f->wf.fanout_at_step = 0; /* no cache in the way */
    f->wf.fanout_threads = 0;
    f->wf.fanout_duplicates = 0;
    opts_for(f, &o, "nr", RB_SCENARIO_MODE_NO_REPLAY);
    rb_agent_result_init(&r1);
    rb_agent_result_init(&r2);
    assert_int_equal(rb_agent_run(&o, &r1, &err), RB_OK);
    assert_int_equal(rb_agent_run(&o, &r2, &err), RB_OK);
    assert_string_equal(r2.answer, r1.answer);
    assert_int_equal(r2.replayed, 0);
    assert_int_equal(r2.executed, r1.steps);
    assert_int_equal(chat_requests(f), 2 * (size_t)r1.llm_calls);
    rb_agent_result_release(&r1);
    rb_agent_result_release(&r2);
}

/* Runs into a dead LLM after its first answer (parked at the second call), heals and
 * resolves, resumes; returns 1 when the first request after the resume repeats the one
 * that failed (the same history). */
static int resume_repeats_history(struct fx *f, enum rb_scenario_mode mode)
{
    struct rb_agent_opts o;
    struct rb_agent_result r;
    struct rb_world_entry e[256];
    struct rb_store *st = NULL;
    struct rb_error err;
    size_t n, i, failed = 0, next = 0, faulted = 0;

    /* No research threads: the 503 is armed from the world's callback after
     * an answer has gone out, so on a loaded machine the agent may already
     * have sent its next call; sequential calls then still park at exactly
     * one failed try, parallel threads could fail several at once. */
    f->wf.fanout_at_step = 0;
    f->wf.fanout_threads = 0;
    f->wf.fanout_duplicates = 0;
    __atomic_store_n(&f->arm_after, 1, __ATOMIC_SEQ_CST);
    opts_for(f, &o, "dh", RB_SCENARIO_MODE_CORRECT);
    rb_agent_result_init(&r);
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_EPARKED);
    assert_non_null(strstr(err.message, "parked for a human"));
    __atomic_store_n(&f->arm_after, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(rb_world_fault_heal(f->w, 0), RB_OK);
    assert_int_equal(rb_store_open(f->dir, NULL, &st, &err), RB_OK);
    assert_int_equal(rb_store_resolve(st, "dh", "healed", &err), RB_OK);
    rb_store_close(st);
    o.mode = mode;
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_OK);
    assert_int_equal(r.attempt, 2);
    assert_true(r.replayed > 0);
    rb_agent_result_release(&r);

    n = rb_world_journal_read(f->w, 0, e, 256);
    for (i = 0; i < n; i++)
        if (strcmp(e[i].route, "/v1/chat/completions") == 0) {
            if (e[i].fault[0]) {
                failed = i + 1;
                faulted++;
            } else if (failed && !next)
                next = i + 1;
        }
    assert_int_equal(faulted, 1); /* one try, then parked */
    assert_true(next > failed);
    return strcmp(e[failed - 1].hash, e[next - 1].hash) == 0;
}

static void test_resume_keeps_history(void **state)
{
    assert_true(resume_repeats_history(*state, RB_SCENARIO_MODE_CORRECT));
}

static void test_drop_history_loses_it(void **state)
{
    assert_false(resume_repeats_history(*state, RB_SCENARIO_MODE_DROP_HISTORY));
}

/* The attempt before died of an OOM at 8 MiB; the task needs 12. */
static enum rb_err run_after_oom(struct fx *f, const char *run,
                                 enum rb_scenario_mode mode)
{
    struct rb_agent_opts o;
    struct rb_agent_result r;
    struct rb_store *st = NULL;
    struct rb_run *run1 = NULL;
    struct rb_error err;
    enum rb_err rc;

    f->wf.steps = 3;
    f->wf.llm_turns = 0;
    f->wf.fanout_at_step = 0;
    f->wf.fanout_threads = 0;
    f->wf.fanout_duplicates = 0;
    f->task.step = 2;
    f->task.alloc_mb = 12;
    opts_for(f, &o, run, mode);
    o.task_mem = 8u << 20;
    o.task_mem_cap = 64u << 20;
    /* attempt 1 died (as a supervisor saw it, of an OOM) */
    assert_int_equal(rb_store_open(f->dir, NULL, &st, &err), RB_OK);
    assert_int_equal(rb_run_open(st, run, NULL, &run1, &err), RB_OK);
    rb_run_abandon(run1);
    rb_store_close(st);
    o.run_opts.last_failure = "{\"kind\":\"oom\",\"limit_mb\":8}";
    rb_agent_result_init(&r);
    rc = rb_agent_run(&o, &r, &err);
    rb_agent_result_release(&r);
    return rc;
}

static int count_task_tries(void *arg, const struct rb_step_record *rec)
{
    int *tries = arg;

    if (strcmp(rec->key, "task-002") == 0)
        *tries = rec->tries;
    return 0;
}

static int task_tries(struct fx *f, const char *run)
{
    struct rb_store *st = NULL;
    struct rb_error err;
    int tries = 0;

    assert_int_equal(rb_store_open(f->dir, NULL, &st, &err), RB_OK);
    assert_int_equal(rb_store_read_log(st, run, count_task_tries, &tries, &err), RB_OK);
    rb_store_close(st);
    return tries;
}

static void test_oom_answered_with_more_memory(void **state)
{
    struct fx *f = *state;
    /* told of the OOM, the agent starts the task with 16 MiB: one try */
    assert_int_equal(run_after_oom(f, "oom1", RB_SCENARIO_MODE_CORRECT), RB_OK);
    assert_int_equal(task_tries(f, "oom1"), 1);
    /* deaf to it, the agent tries 8 MiB three times and parks the run */
    assert_int_equal(run_after_oom(f, "oom2", RB_SCENARIO_MODE_IGNORE_FAILURE_CONTEXT),
                     RB_EPARKED);
    assert_int_equal(task_tries(f, "oom2"), 3);
}

/* The first answer of each side-effecting tool is cut short after the effect
 * took place, and the runner tries again: returns the effects doubled. */
static int64_t doubled_effects(struct fx *f, enum rb_scenario_mode mode)
{
    static const char *const routes[] = {"/tools/send_email", "/tools/write_record"};
    struct rb_world_fault fault;
    struct rb_world_effects fx;
    struct rb_agent_opts o;
    struct rb_agent_result r;
    struct rb_error err;
    size_t i;

    for (i = 0; i < 2; i++) {
        rb_world_fault_init(&fault, RB_WORLD_FAULT_TRUNCATE);
        snprintf(fault.route, sizeof(fault.route), "%s", routes[i]);
        fault.count = 1;
        assert_int_equal(rb_world_fault_add(f->w, &fault, NULL, &err), RB_OK);
    }
    opts_for(f, &o, "fx", mode);
    o.llm_tries = 3;
    rb_agent_result_init(&r);
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_OK);
    rb_agent_result_release(&r);
    rb_world_effects(f->w, NULL, &fx);
    assert_true(fx.applied > 0); /* the workflow has effects at all */
    return fx.duplicated;
}

static void test_effects_once_with_idempotency_keys(void **state)
{
    assert_int_equal(doubled_effects(*state, RB_SCENARIO_MODE_CORRECT), 0);
}

static void test_no_idempotency_doubles_effects(void **state)
{
    assert_true(doubled_effects(*state, RB_SCENARIO_MODE_NO_IDEMPOTENCY) > 0);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    struct rb_agent_opts o;
    struct rb_agent_result r;
    struct rb_error err;

    rb_agent_result_init(&r);
    opts_for(f, &o, "bad", RB_SCENARIO_MODE_CORRECT);
    o.wf = NULL;
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_EINVAL);
    opts_for(f, &o, "bad", RB_SCENARIO_MODE_CORRECT);
    o.base_url = "http://127.0.0.1:1/v1"; /* nothing listens: parked after 1 try */
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_EPARKED);
    assert_null(r.answer);
}

/* A lease shorter than a task step (fork, 16 MiB touched, commit) runs out:
 * the agent stops before the next step, and a rerun with a fair lease
 * finishes the run. */
static void test_lease_runs_out(void **state)
{
    struct fx *f = *state;
    struct rb_agent_opts o;
    struct rb_agent_result r;
    struct rb_error err;

    f->task.alloc_mb = 16;
    opts_for(f, &o, "lease", RB_SCENARIO_MODE_CORRECT);
    o.lease_ms = 1;
    rb_agent_result_init(&r);
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_EBUSY);
    assert_non_null(strstr(err.message, "lease on run 'lease' expired"));
    o.lease_ms = 0;
    assert_int_equal(rb_agent_run(&o, &r, &err), RB_OK);
    assert_true(r.replayed > 0);
    rb_agent_result_release(&r);
}

/* What the log of the tiered run holds. */
struct tier_log {
    int leaves;          /* committed leaf steps ("dD/cC/rR/...") */
    int cached;          /* of which served from the global cache */
    int ran[2][2][2][2]; /* executed, per query class (driver, coordinator and
                            researcher after folding) and kind (0 tool, 1 llm) */
    int bad;             /* leaf keys that do not parse or fold out of range */
};

static int tier_step(void *arg, const struct rb_step_record *rec)
{
    struct tier_log *t = arg;
    char kind[8];
    int d, c, r, step;

    if (!strchr(rec->key, '/'))
        return 0;
    if (sscanf(rec->key, "d%d/c%d/r%d/%7[a-z]-%d", &d, &c, &r, kind, &step) != 5 ||
        d < 1 || d > 2 || c < 1 || c > 3 || r < 1 || r > 3 ||
        step != 5 + ((d - 1) * 3 + (c - 1)) * 3 + (r - 1)) {
        t->bad++;
        return 0;
    }
    t->leaves++;
    t->cached += rec->cached;
    /* coordinator 3 repeats coordinator 1, researcher 3 researcher 1 */
    if (!rec->cached)
        t->ran[d - 1][(c - 1) % 2][(r - 1) % 2][strcmp(kind, "llm") == 0]++;
    return 0;
}

/* The tiered shape: 2 drivers x 3 coordinators (the third a duplicate) x 2
 * researchers (the third a duplicate) = 18 leaves at steps 5..22, of which
 * 8 ask distinct questions. */
static void test_tiered_fanout(void **state)
{
    struct fx *f = *state;
    struct rb_scenario_fanout_level levels[3] = {{2, 0}, {3, 1}, {3, 1}};
    struct rb_world_config cfg;
    struct rb_world *slow;
    struct rb_world_entry *e;
    struct rb_agent_opts o;
    struct rb_agent_result r1, r2;
    struct rb_store *st;
    struct tier_log t;
    struct rb_error err;
    char base[128], tools[128];
    size_t n, i, j, chat = 0, before;
    int most = 0, d, c, k, q;

    /* a world that answers after 10 ms, so calls of the fan-out overlap */
    rb_world_config_init(&cfg);
    cfg.seed = 5;
    cfg.latency_ms = 10;
    assert_int_equal(rb_world_start(&cfg, &slow, &err), RB_OK);
    rb_world_config_release(&cfg);
    snprintf(base, sizeof(base), "%s/v1", rb_world_url(slow));
    snprintf(tools, sizeof(tools), "%s/tools", rb_world_url(slow));
    f->wf.steps = 40;
    f->wf.llm_turns = 24;
    f->wf.n_tasks = 0;
    f->wf.fanout_at_step = 5;
    f->wf.fanout_threads = 18;
    f->wf.fanout_duplicates = 0;
    f->wf.fanout_levels = levels;
    f->wf.fanout_depth = 3;
    f->wf.fanout_concurrency = 3;
    opts_for(f, &o, "tiers", RB_SCENARIO_MODE_CORRECT);
    o.base_url = base;
    o.tools_url = tools;
    rb_agent_result_init(&r1);
    rb_agent_result_init(&r2);
    assert_int_equal(rb_agent_run(&o, &r1, &err), RB_OK);
    assert_int_equal(strncmp(r1.answer, "After ", 6), 0); /* the world's final answer */
    /* 10 duplicate leaves: their search and summary come from the cache */
    assert_int_equal(r1.cached, 20);
    assert_int_equal(r1.executed + r1.cached, r1.steps);
    /* the main line's 24 - 18 LLM calls and 8 distinct summaries */
    assert_int_equal(r1.llm_calls, 14);

    e = calloc(256, sizeof(*e));
    assert_non_null(e);
    n = rb_world_journal_read(slow, 0, e, 256);
    for (i = 0; i < n; i++) {
        int now = 0;

        chat += strcmp(e[i].route, "/v1/chat/completions") == 0;
        /* requests in flight when request i arrived, itself included */
        for (j = 0; j < n; j++)
            now += e[j].start_ns <= e[i].start_ns &&
                   (e[j].end_ns == 0 || e[j].end_ns > e[i].start_ns);
        if (now > most)
            most = now;
    }
    assert_int_equal(chat, 14);
    /* the limit holds across the whole tree, not per coordinator */
    assert_true(most <= 3);

    memset(&t, 0, sizeof(t));
    assert_int_equal(rb_store_open(f->dir, NULL, &st, &err), RB_OK);
    assert_int_equal(rb_store_read_log(st, "tiers", tier_step, &t, &err), RB_OK);
    rb_store_close(st);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.leaves, 36);
    assert_int_equal(t.cached, 20);
    for (d = 0; d < 2; d++)
        for (c = 0; c < 2; c++)
            for (k = 0; k < 2; k++)
                for (q = 0; q < 2; q++)
                    assert_int_equal(t.ran[d][c][k][q], 1);

    /* a rerun replays all and asks nothing */
    before = rb_world_journal_count(slow);
    assert_int_equal(rb_agent_run(&o, &r2, &err), RB_OK);
    assert_string_equal(r2.answer, r1.answer);
    assert_int_equal(r2.executed, 0);
    assert_int_equal(r2.replayed, r1.steps);
    assert_int_equal(rb_world_journal_count(slow), before);
    rb_agent_result_release(&r1);
    rb_agent_result_release(&r2);
    free(e);
    f->wf.fanout_levels = NULL;
    f->wf.fanout_depth = 0;
    rb_world_stop(slow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_then_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_replay_asks_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_keeps_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_history_loses_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom_answered_with_more_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_effects_once_with_idempotency_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_idempotency_doubles_effects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_runs_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiered_fanout, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
