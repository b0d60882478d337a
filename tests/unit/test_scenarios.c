/*
 * test_scenarios.c - the scenario loader (rb_scenarios): what a valid file
 * turns into (every field of the full case, the defaults of the minimal one,
 * the shipped library), where problems are reported (keys that need escaping
 * in the position index, UTF-8 columns, a workflow_file's own errors), and
 * the contract of the API (out-parameter untouched on error, every problem
 * collected, unreadable files). The exact messages are checked by the
 * data-driven cases in tests/cases/, run by tests/e2e/test_lint_cases.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "run/run.h"
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *source_dir(void)
{
    const char *d = getenv("REBOUND_SOURCE_DIR");

    return d && *d ? d : ".";
}

static struct rb_scenario *load_ok(const char *rel)
{
    char path[1024];
    struct rb_scenario *s = NULL;
    struct rb_error err;
    enum rb_err rc;

    snprintf(path, sizeof(path), "%s/%s", source_dir(), rel);
    rb_error_init(&err);
    rc = rb_scenario_load(path, &s, NULL, &err);
    if (rc != RB_OK)
        fprintf(stderr, "%s:%d:%d: %s\n", err.file, err.line, err.column, err.message);
    assert_int_equal(rc, RB_OK);
    assert_non_null(s);
    return s;
}

/* Parses `text`; expects it invalid with exactly `n` problems, the first at
 * line:col with `msg`. */
static void expect_bad(const char *text, size_t n, int line, int col, const char *msg)
{
    struct rb_scenario *s = (struct rb_scenario *)&s; /* must stay untouched */
    struct rb_scenario *const sentinel = s;
    struct rb_scenario_diags d;
    struct rb_error err;
    enum rb_err rc;

    rb_scenario_diags_init(&d);
    rb_error_init(&err);
    rc = rb_scenario_parse(text, strlen(text), "t.json", &s, &d, &err);
    if (d.count != n || (n && (d.items[0].line != line || d.items[0].column != col ||
                               strcmp(d.items[0].message, msg) != 0))) {
        size_t i;

        for (i = 0; i < d.count; i++)
            fprintf(stderr, "got %s:%d:%d: %s\n", d.items[i].file, d.items[i].line,
                    d.items[i].column, d.items[i].message);
    }
    assert_int_equal(rc, RB_EINVAL);
    assert_ptr_equal(s, sentinel);
    assert_int_equal(d.count, n);
    assert_string_equal(d.items[0].file, "t.json");
    assert_int_equal(d.items[0].line, line);
    assert_int_equal(d.items[0].column, col);
    assert_string_equal(d.items[0].message, msg);
    /* err holds the first problem */
    assert_int_equal(err.code, RB_EINVAL);
    assert_int_equal(err.line, line);
    assert_string_equal(err.message, msg);
    rb_scenario_diags_release(&d);
}

static void test_full(void **state)
{
    struct rb_scenario *s = load_ok("tests/cases/valid-full/scenario.json");
    const struct rb_scenario_fault *f;

    (void)state;
    assert_string_equal(s->name, "full");
    assert_int_equal(s->agent.kind, RB_SCENARIO_AGENT_BUILTIN);
    assert_int_equal(s->agent.mode, RB_SCENARIO_MODE_NO_IDEMPOTENCY);
    assert_int_equal(s->agent.workflow.steps, 50);
    assert_int_equal(s->agent.workflow.llm_turns, 10);
    assert_int_equal(s->agent.workflow.n_tasks, 2);
    assert_int_equal(s->agent.workflow.tasks[1].step, 9);
    assert_int_equal(s->agent.workflow.tasks[0].alloc_mb, 32);
    assert_int_equal(s->agent.workflow.fanout_at_step, 20);
    assert_int_equal(s->agent.workflow.fanout_threads, 4);
    assert_int_equal(s->agent.workflow.fanout_duplicates, 2);
    /* a flat fanout is a nest of one level */
    assert_int_equal(s->agent.workflow.fanout_depth, 1);
    assert_int_equal(s->agent.workflow.fanout_levels[0].threads, 4);
    assert_int_equal(s->agent.workflow.fanout_levels[0].duplicates, 2);
    assert_int_equal(s->agent.workflow.fanout_concurrency, 0);
    assert_true(s->world.has_seed);
    assert_int_equal(s->world.seed, 9);
    assert_int_equal(s->world.turns, 3);
    assert_int_equal(s->world.n_tools, 3);
    assert_string_equal(s->world.tools[1], "send_email");
    assert_null(s->world.tools[3]);
    assert_int_equal(s->world.latency_ms, 2);
    assert_int_equal(s->world.jitter_ms, 3);
    assert_true(s->world.price_completion > 0.59 && s->world.price_completion < 0.61);
    assert_int_equal(s->world.port, 8765);

    assert_int_equal(s->n_faults, 11);
    f = &s->faults[0];
    assert_int_equal(f->kind, RB_SCENARIO_PREEMPTION);
    assert_int_equal(f->form, RB_SCENARIO_NOTICE);
    assert_int_equal(f->at.kind, RB_SCENARIO_AT_STEP);
    assert_int_equal(f->at.n, 10);
    assert_int_equal(f->at.when, RB_SCENARIO_AFTER);
    assert_int_equal(f->grace_ms, 500);
    assert_int_equal(f->line, 24);
    f = &s->faults[1];
    assert_int_equal(f->form, RB_SCENARIO_FREEZE);
    assert_int_equal(f->at.kind, RB_SCENARIO_AT_TIME);
    assert_int_equal(f->at.n, 200);
    assert_int_equal(f->duration_ms, 300);
    f = &s->faults[2];
    assert_int_equal(f->form, RB_SCENARIO_OOM_KILL);
    assert_int_equal(f->at.when, RB_SCENARIO_DURING);
    assert_int_equal(f->at.delay_ms, 5);
    assert_int_equal(s->faults[3].form, RB_SCENARIO_OOM_TASK);
    assert_int_equal(s->faults[3].limit_mb, 16);
    f = &s->faults[4];
    assert_int_equal(f->form, RB_SCENARIO_OOM_LIMIT);
    assert_int_equal(f->at.kind, RB_SCENARIO_AT_START);
    assert_int_equal(f->mechanism, RB_SCENARIO_MEM_WATCHDOG);
    assert_int_equal(f->sample_ms, 5);
    f = &s->faults[5];
    assert_int_equal(f->form, RB_SCENARIO_NET_SERVER_ERROR);
    assert_int_equal(f->at.kind, RB_SCENARIO_AT_LLM_CALL);
    assert_int_equal(f->at.n, 2);
    assert_string_equal(f->route, "/v1/");
    assert_int_equal(f->count, 2);
    assert_int_equal(f->status, 502);
    f = &s->faults[6];
    assert_int_equal(f->at.kind, RB_SCENARIO_AT_TOOL_CALL);
    assert_true(f->share > 0.49 && f->share < 0.51);
    assert_int_equal(f->delay_ms, 20);
    assert_int_equal(f->chunk_bytes, 8);
    assert_string_equal(f->route, "");
    assert_int_equal(s->faults[8].form, RB_SCENARIO_NET_PARTITION);
    assert_int_equal(s->faults[8].duration_ms, 600);
    assert_true(s->faults[9].jump_s < -3599 && s->faults[9].jump_s > -3601);
    assert_true(s->faults[10].rate > 2.49 && s->faults[10].rate < 2.51);

    assert_int_equal(s->n_randoms, 1);
    assert_int_equal(s->randoms[0].kinds,
                     (1u << RB_SCENARIO_PREEMPTION) | (1u << RB_SCENARIO_OOM));
    assert_int_equal(s->randoms[0].count, 2);
    assert_int_equal(s->randoms[0].window_min, 1);
    assert_int_equal(s->randoms[0].window_max, 50);
    assert_true(s->randoms[0].has_seed);
    assert_int_equal(s->randoms[0].seed, 77);

    assert_int_equal(s->restart.delay_ms, 50);
    assert_int_equal(s->restart.max_attempts, 5);
    assert_int_equal(s->restart.max_delay_ms, 1000);
    assert_int_equal(s->expect.outcome, RB_SCENARIO_DEGRADED);
    assert_int_equal(s->expect.recovery_p50_ms, 100);
    assert_int_equal(s->expect.recovery_p95_ms, 900);
    assert_int_equal(s->expect.max_steps_redone, 3);
    assert_int_equal(s->expect.context_preserved, 1);
    assert_int_equal(s->expect.side_effects_exactly_once, 0);
    assert_int_equal(s->expect.max_time_lost_ms, 5000);
    assert_int_equal(s->trials, 3);
    assert_int_equal(s->n_seeds, 3);
    assert_int_equal(s->seeds[2], 3);
    assert_int_equal(s->deadline_ms, 30000);
    assert_string_equal(rb_scenario_form_name(s->faults[3].form), "task");
    assert_string_equal(rb_scenario_kind_name(s->faults[5].kind), "network");
    assert_string_equal(rb_scenario_mode_name(s->agent.mode), "no-idempotency");
    assert_string_equal(rb_scenario_outcome_name(s->expect.outcome), "degraded");
    rb_scenario_free(s);
}

static void test_minimal_defaults(void **state)
{
    struct rb_scenario *s = load_ok("tests/cases/valid-minimal/scenario.json");

    (void)state;
    assert_string_equal(s->name, "scenario"); /* the file's name */
    assert_non_null(strstr(s->path, "valid-minimal/scenario.json"));
    assert_int_equal(s->agent.mode, RB_SCENARIO_MODE_CORRECT);
    assert_int_equal(s->agent.workflow.steps, 1);
    assert_null(s->agent.workflow.file);
    assert_false(s->world.has_seed);
    assert_int_equal(s->world.turns, 2);
    assert_int_equal(s->world.n_tools, 4);
    assert_int_equal(s->world.port, 0); /* a free port */
    assert_int_equal(s->n_faults, 0);
    assert_int_equal(s->n_randoms, 0);
    assert_int_equal(s->restart.max_attempts, 3);
    assert_int_equal(s->expect.outcome, RB_SCENARIO_OUTCOME_ANY);
    assert_int_equal(s->expect.recovery_p95_ms, -1);
    assert_int_equal(s->expect.context_preserved, -1);
    assert_int_equal(s->trials, 1);
    assert_int_equal(s->n_seeds, 1);
    assert_int_equal(s->seeds[0], 0);
    assert_int_equal(s->deadline_ms, 60000);
    rb_scenario_free(s);
    rb_scenario_free(NULL);
}

static void test_command_agent(void **state)
{
    struct rb_scenario *s = load_ok("tests/cases/external-command/scenario.json");

    (void)state;
    assert_int_equal(s->agent.kind, RB_SCENARIO_AGENT_COMMAND);
    assert_string_equal(s->agent.argv[0], "python3");
    assert_string_equal(s->agent.argv[2], "--fast");
    assert_null(s->agent.argv[3]);
    assert_string_equal(s->agent.cwd, "examples/python");
    assert_string_equal(s->agent.env[0], "OPENAI_MODEL=rebound-world");
    assert_null(s->agent.env[1]);
    /* no step count to check a trigger against */
    assert_int_equal(s->faults[0].at.n, 999);
    rb_scenario_free(s);
}

static void test_library(void **state)
{
    static const char *const files[] = {"kill-at-step-147", "oom-in-task-step",
                                        "rate-limit-storm"};
    char rel[256];
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        struct rb_scenario *s;

        snprintf(rel, sizeof(rel), "scenarios/library/%s.json", files[i]);
        s = load_ok(rel);
        assert_string_equal(s->name, files[i]);
        assert_true(strlen(s->description) > 40);
        assert_true(s->n_faults >= 1);
        rb_scenario_free(s);
    }
    {
        struct rb_scenario *s = load_ok("scenarios/library/kill-at-step-147.json");

        assert_int_equal(s->agent.workflow.steps, 200);
        assert_int_equal(s->faults[0].form, RB_SCENARIO_SIGKILL);
        assert_int_equal(s->faults[0].at.n, 147);
        assert_int_equal(s->faults[0].at.when, RB_SCENARIO_DURING);
        rb_scenario_free(s);
    }
}

/* The nested fan-out: levels top first, leaf threads counted as steps, and
 * what cannot run rejected where it is written. */
static void test_tiered(void **state)
{
    static const char head[] = "{\"rebound\": 1, \"description\": \"d\", \"agent\": "
                               "{\"builtin\": {\"workflow\": {\"steps\": 50,\n";
    struct rb_scenario *s = load_ok("scenarios/library/tiered-research.json");
    const struct rb_scenario_workflow *wf = &s->agent.workflow;
    char text[1024];

    (void)state;
    assert_int_equal(wf->steps, 200);
    assert_int_equal(wf->llm_turns, 100);
    assert_int_equal(wf->fanout_depth, 3);
    assert_int_equal(wf->fanout_levels[0].threads, 2);
    assert_int_equal(wf->fanout_levels[0].duplicates, 0);
    assert_int_equal(wf->fanout_levels[1].threads, 3);
    assert_int_equal(wf->fanout_levels[1].duplicates, 1);
    assert_int_equal(wf->fanout_levels[2].threads, 5);
    assert_int_equal(wf->fanout_levels[2].duplicates, 1);
    assert_int_equal(wf->fanout_at_step, 60);
    assert_int_equal(wf->fanout_threads, 30); /* 2 x 3 x 5 leaves */
    assert_int_equal(wf->fanout_concurrency, 4);
    rb_scenario_free(s);

    /* the leaves take one step each: 4 x 5 x 2 from step 20 end past 50 */
    snprintf(text, sizeof(text),
             "%s\"fanout\": {\"at_step\": 20, \"threads\": 4, \"each\": {\"threads\": "
             "5, \"each\": {\"threads\": 2}}}}}}}",
             head);
    expect_bad(text, 1, 2, 38,
               "the fanout's 40 leaf threads take steps 20..59, beyond the workflow's "
               "50 steps");
    snprintf(text, sizeof(text),
             "%s\"fanout\": {\"at_step\": 1, \"threads\": 1000, \"each\": {\"threads\": "
             "1000}}}}}}",
             head);
    expect_bad(text, 1, 2, 37,
               "the fanout's levels make 1000000 leaf threads, more than "
               "10000");
    snprintf(text, sizeof(text),
             "%s\"fanout\": {\"at_step\": 1, \"threads\": 2, \"each\": [2]}}}}}", head);
    expect_bad(text, 1, 2, 48, "'each' must be an object, not an array");
    snprintf(text, sizeof(text),
             "%s\"fanout\": {\"at_step\": 1, \"threads\": 2, \"each\": {\"threads\": 2, "
             "\"concurrency\": 2}}}}}}",
             head);
    expect_bad(text, 1, 2, 63,
               "'concurrency' belongs to the top fanout level, not to an 'each'");
    snprintf(text, sizeof(text),
             "%s\"fanout\": {\"at_step\": 1, \"threads\": 2, \"concurrency\": 0}}}}}",
             head);
    expect_bad(text, 1, 2, 55, "'concurrency' must be between 1 and 1024, not 0");
}

static void test_positions(void **state)
{
    (void)state;
    /* keys holding '/', '~' and escapes are found in the index */
    expect_bad("{\"rebound\": 1, \"description\": \"d\", \"agent\": {\"builtin\": "
               "{\"workflow\": {\"steps\": 2}}},\n \"a/b~c\": 1}",
               1, 2, 2, "unknown key 'a/b~c' in scenario");
    expect_bad("{\"rebound\": 1, \"description\": \"d\",\n\"agent\": {\"builtin\": "
               "{\"workflow\": {\"steps\": 2}}}, \"tr\\u00efals\": 1}",
               1, 2, 51,
               "unknown key 'tr\xc3\xaf"
               "als' in scenario; did you mean 'trials'?");
    /* columns count characters, not bytes */
    expect_bad("{\"description\": \"\xc3\xa9\xc3\xa9\xc3\xa9\", \"rebound\": 1, "
               "\"agent\": {\"builtin\": {\"workflow\": {\"steps\": 2}}}, \"trials\": 0}",
               1, 1, 98, "'trials' must be between 1 and 10000, not 0");
    /* a syntax error: jansson's own position and text */
    expect_bad("{\"rebound\": 1,\n  \"description\": \"d\" \"agent\": 3}", 1, 2, 28,
               "'}' expected near '\"agent\"'");
    expect_bad("[1, 2]", 1, 1, 1, "a scenario must be a JSON object, not an array");
    /* every problem is collected, in file order */
    expect_bad("{\"trials\": true, \"seeds\": [-1], \"agent\": {}}", 5, 1, 1,
               "missing required key 'rebound' (the format version, 1)");
}

/* jansson drops a NUL byte after a token; the position index must not spin
 * on it (found by fuzz_scenario) */
static void test_nul_after_token(void **state)
{
    static const char text[] = "{\"rebound\": 1\0, \"description\": \"d\", \"agent\": "
                               "{\"builtin\": {\"workflow\": {\"steps\": 2}}}, "
                               "\"trials\": 0}";
    struct rb_scenario *s = NULL;
    struct rb_scenario_diags d;

    (void)state;
    rb_scenario_diags_init(&d);
    assert_int_equal(rb_scenario_parse(text, sizeof(text) - 1, NULL, &s, &d, NULL),
                     RB_EINVAL);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].file, "<input>");
    assert_string_equal(d.items[0].message,
                        "'trials' must be between 1 and 10000, not 0");
    assert_null(s);
    rb_scenario_diags_release(&d);
}

static void test_workflow_file(void **state)
{
    char dir[] = "/tmp/rb-scen-XXXXXX";
    char path[256], wf[256];
    FILE *fp;
    struct rb_scenario *s = NULL;
    struct rb_scenario_diags d;
    struct rb_error err;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s.json", dir);
    snprintf(wf, sizeof(wf), "%s/wf.json", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(
        "{\"rebound\": 1, \"description\": \"d\", \"agent\": {\"builtin\": "
        "{\"workflow_file\": \"wf.json\"}},\n \"faults\": [{\"kind\": \"oom\", \"form\": "
        "\"task\", \"at\": {\"step\": 4}, \"limit_mb\": 8}]}",
        fp);
    fclose(fp);

    /* missing: reported at the workflow_file value */
    rb_scenario_diags_init(&d);
    assert_int_equal(rb_scenario_load(path, &s, &d, &err), RB_EINVAL);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.items[0].column, 75);
    assert_non_null(strstr(d.items[0].message, "cannot open '"));
    assert_non_null(strstr(d.items[0].message, "wf.json': no such file or directory"));
    rb_scenario_diags_release(&d);

    /* present, and the task step it names is there */
    fp = fopen(wf, "w");
    assert_non_null(fp);
    fputs("{\"steps\": 6, \"tasks\": [{\"step\": 4, \"alloc_mb\": 64}]}", fp);
    fclose(fp);
    assert_int_equal(rb_scenario_load(path, &s, NULL, &err), RB_OK);
    assert_int_equal(s->agent.workflow.steps, 6);
    assert_string_equal(s->agent.workflow.file, wf);
    rb_scenario_free(s);
    s = NULL;

    /* the task step is gone: the fault is now impossible */
    fp = fopen(wf, "w");
    assert_non_null(fp);
    fputs("{\"steps\": 6}", fp);
    fclose(fp);
    rb_scenario_diags_init(&d);
    assert_int_equal(rb_scenario_load(path, &s, &d, &err), RB_EINVAL);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].message, "step 4 is not a task step of the workflow");
    assert_int_equal(d.items[0].line, 2);
    rb_scenario_diags_release(&d);
    assert_null(s);

    unlink(wf);
    unlink(path);
    rmdir(dir);
}

/* The faults a random schedule draws for a seed, as a scenario's "faults"
 * text. */
static char *drawn_text(const struct rb_scenario *s, uint64_t seed)
{
    struct rb_scenario_fault *faults = NULL;
    size_t n = 0, i;
    json_t *drawn = NULL, *f;
    char *text;

    assert_int_equal(rb_schedule_expand(s, seed, &faults, &n, &drawn, NULL), RB_OK);
    assert_int_equal(n, s->n_faults + rb_schedule_count(s));
    assert_int_equal(json_array_size(drawn), rb_schedule_count(s));
    for (i = s->n_faults; i < n; i++) {
        /* network faults at an LLM call that calls follow; the rest at a
         * step of the window, never "during" */
        if (faults[i].at.kind == RB_SCENARIO_AT_LLM_CALL) {
            assert_int_equal(faults[i].kind, RB_SCENARIO_NETWORK);
            assert_in_range(faults[i].at.n, 1, s->agent.workflow.llm_turns - 1);
        } else {
            assert_int_equal(faults[i].at.kind, RB_SCENARIO_AT_STEP);
            assert_in_range(faults[i].at.n, 10, 30);
            assert_int_not_equal(faults[i].at.when, RB_SCENARIO_DURING);
        }
    }
    json_array_foreach(drawn, i, f) json_object_del(f, "random");
    text = json_dumps(drawn, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    json_decref(drawn);
    free(faults);
    return text;
}

/* Random schedules: the same seed draws the same faults, other seeds others,
 * and what is drawn is itself a valid scenario's faults (so a user can paste
 * a trial's schedule back in). */
static void test_random_schedule(void **state)
{
    static const char head[] =
        "{\"rebound\": 1, \"description\": \"d\", \"agent\": {\"builtin\": "
        "{\"workflow\": {\"steps\": 40, \"llm_turns\": 12}}}, \"faults\": ";
    const char *text = "{\"rebound\": 1, \"description\": \"d\", \"agent\": "
                       "{\"builtin\": {\"workflow\": {\"steps\": 40, \"llm_turns\": "
                       "12}}}, \"faults\": [{\"kind\": \"oom\", \"form\": "
                       "\"oom-kill\", \"at\": {\"step\": 3}}, {\"random\": {\"kinds\": "
                       "[\"preemption\", \"oom\", \"network\", \"clock\"], \"count\": "
                       "6, \"window_steps\": [10, 30]}}]}";
    struct rb_scenario *s = NULL, *again = NULL;
    char *a, *b, *c, buf[8192];
    int differ = 0;
    uint64_t seed;

    (void)state;
    assert_int_equal(rb_scenario_parse(text, strlen(text), "r.json", &s, NULL, NULL),
                     RB_OK);
    assert_int_equal(rb_schedule_count(s), 6);
    a = drawn_text(s, 1);
    b = drawn_text(s, 1);
    assert_string_equal(a, b);
    for (seed = 2; seed < 12 && !differ; seed++) {
        c = drawn_text(s, seed);
        differ = strcmp(a, c) != 0;
        free(c);
    }
    assert_true(differ);
    snprintf(buf, sizeof(buf), "%s%s}", head, a);
    assert_int_equal(
        rb_scenario_parse(buf, strlen(buf), "drawn.json", &again, NULL, NULL), RB_OK);
    assert_int_equal(again->n_faults, 6);
    rb_scenario_free(again);
    free(a);
    free(b);
    rb_scenario_free(s);

    /* the schedule's own seed wins over the trial's */
    text = "{\"rebound\": 1, \"description\": \"d\", \"agent\": {\"builtin\": "
           "{\"workflow\": {\"steps\": 40, \"llm_turns\": 12}}}, \"faults\": "
           "[{\"random\": {\"kinds\": [\"preemption\", \"network\"], \"count\": 4, "
           "\"window_steps\": [10, 30], \"seed\": 5}}]}";
    assert_int_equal(rb_scenario_parse(text, strlen(text), "r.json", &s, NULL, NULL),
                     RB_OK);
    a = drawn_text(s, 1);
    b = drawn_text(s, 99);
    assert_string_equal(a, b);
    free(a);
    free(b);
    rb_scenario_free(s);
}

/* A time window (for agents without step events): time triggers in it. */
static void test_random_time_window(void **state)
{
    const char *text = "{\"rebound\": 1, \"description\": \"d\", \"agent\": "
                       "{\"command\": {\"argv\": [\"./a.sh\"]}}, \"faults\": "
                       "[{\"random\": {\"kinds\": [\"preemption\", \"network\"], "
                       "\"count\": 8, \"window_ms\": [100, 900]}}]}";
    struct rb_scenario *s = NULL;
    struct rb_scenario_fault *faults = NULL;
    json_t *drawn = NULL;
    size_t n = 0, i;

    (void)state;
    assert_int_equal(rb_scenario_parse(text, strlen(text), "r.json", &s, NULL, NULL),
                     RB_OK);
    assert_true(s->randoms[0].window_time);
    assert_int_equal(s->randoms[0].window_ms_min, 100);
    assert_int_equal(s->randoms[0].window_ms_max, 900);
    assert_int_equal(rb_schedule_expand(s, 7, &faults, &n, &drawn, NULL), RB_OK);
    assert_int_equal(n, 8);
    for (i = 0; i < n; i++) {
        assert_int_equal(faults[i].at.kind, RB_SCENARIO_AT_TIME);
        assert_in_range(faults[i].at.n, 100, 900);
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(json_array_get(drawn, i), "at"), "time_ms")),
                         faults[i].at.n);
    }
    json_decref(drawn);
    free(faults);
    rb_scenario_free(s);
}

static void test_unreadable(void **state)
{
    struct rb_scenario *s = NULL;
    struct rb_error err;

    (void)state;
    assert_int_equal(rb_scenario_load("/nonexistent/x.json", &s, NULL, &err), RB_ENOENT);
    assert_string_equal(err.message,
                        "cannot open '/nonexistent/x.json': no such file or directory");
    assert_null(s);
    assert_int_equal(rb_scenario_load("/tmp", &s, NULL, &err), RB_EIO);
    assert_string_equal(err.message, "cannot read '/tmp': is a directory");
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_command_agent),
        cmocka_unit_test(test_library),
        cmocka_unit_test(test_tiered),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_workflow_file),
        cmocka_unit_test(test_nul_after_token),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_random_schedule),
        cmocka_unit_test(test_random_time_window),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
