/*
 * test_suite.c - unit tests of the run engine's pieces that need no agent
 * (harness/run/suite.h): a trial saved by a worker and read back by the
 * engine keeps every field and every event; a missing or foreign file is
 * refused with a clear error; the suite line's words, with and without a
 * baseline; bad options.
 *
 * ctest-timeout: 30
 */
#define _GNU_SOURCE
#include "harness/run/suite.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

static char dir[] = "/tmp/rebound-test-suite.XXXXXX";

static void add(struct rb_trial *t, int64_t t_ns, const char *kind, const char *step)
{
    struct rb_trial_event *e;

    if (t->n_events == t->cap_events) {
        t->cap_events = t->cap_events ? t->cap_events * 2 : 4;
        t->events = realloc(t->events, t->cap_events * sizeof(*t->events));
        assert_non_null(t->events);
    }
    e = &t->events[t->n_events++];
    e->t_ns = t_ns;
    e->kind = strdup(kind);
    e->step = step ? strdup(step) : NULL;
    e->json = json_pack("{s:s, s:s?, s:i}", "kind", kind, "step", step, "n", 7);
}

static void fill(struct rb_trial *t)
{
    rb_trial_init(t);
    t->faulted = 1;
    t->seed = 42;
    snprintf(t->dir, sizeof(t->dir), "/out/trials/x-s42-faulted");
    snprintf(t->run_id, sizeof(t->run_id), "x-s42-faulted");
    t->start_ns = 1000000000123;
    t->end_ns = 1000500000456;
    add(t, 1000000000200, "proc.start", NULL);
    add(t, 1000000000300, "step.start", "step-001");
    add(t, 1000000000400, "step.commit", "step-001");
    add(t, 1000000000500, "fault.inject", NULL);
    t->attempts = 2;
    t->completed = 1;
    t->exit_code = 0;
    t->signal = 9;
    t->timed_out = 1;
    t->interrupted = 15;
    t->injected = 1;
    t->n_armed = 2;
    t->fault_time_ms = 1500;
    snprintf(t->trigger_desc[0], sizeof(t->trigger_desc[0]), "step 1 start");
    snprintf(t->trigger_desc[3], sizeof(t->trigger_desc[3]), "llm call 5");
    t->effects = json_pack("{s:i}", "/tools/send_email abc", 2);
    t->drawn = json_pack("[{s:s, s:i}]", "kind", "preemption", "random", 0);
    t->price_prompt = 0.5;
    t->price_completion = 1.5;
    t->escalated = 1;
    t->escalation_context = 1;
    snprintf(t->escalation_reason, sizeof(t->escalation_reason), "retries exhausted");
    snprintf(t->stdout_hash, sizeof(t->stdout_hash), "%064d", 7);
    t->stdout_bytes = 24;
}

static void round_trip_keeps_every_field(void **state)
{
    struct rb_trial a, b;
    struct rb_error err;
    char path[256];
    size_t i;

    (void)state;
    fill(&a);
    snprintf(path, sizeof(path), "%s/trial.json", dir);
    assert_int_equal(rb_trial_save(&a, path, &err), RB_OK);
    rb_trial_init(&b);
    assert_int_equal(rb_trial_load(path, &b, &err), RB_OK);
    assert_int_equal(b.faulted, 1);
    assert_true(b.seed == 42);
    assert_string_equal(b.dir, dir); /* the folder it is in now, not where it ran */
    assert_string_equal(b.run_id, a.run_id);
    assert_true(b.start_ns == a.start_ns && b.end_ns == a.end_ns);
    assert_int_equal(b.n_events, 4);
    for (i = 0; i < 4; i++) {
        assert_true(b.events[i].t_ns == a.events[i].t_ns);
        assert_string_equal(b.events[i].kind, a.events[i].kind);
        if (a.events[i].step)
            assert_string_equal(b.events[i].step, a.events[i].step);
        else
            assert_null(b.events[i].step);
        assert_true(json_equal(b.events[i].json, a.events[i].json));
    }
    assert_int_equal(b.attempts, 2);
    assert_int_equal(b.completed, 1);
    assert_int_equal(b.exit_code, 0);
    assert_int_equal(b.signal, 9);
    assert_int_equal(b.timed_out, 1);
    assert_int_equal(b.interrupted, 15);
    assert_int_equal(b.injected, 1);
    assert_int_equal(b.n_armed, 2);
    assert_true(b.fault_time_ms == 1500);
    assert_string_equal(b.trigger_desc[0], "step 1 start");
    assert_string_equal(b.trigger_desc[1], "");
    assert_string_equal(b.trigger_desc[3], "llm call 5");
    assert_true(json_equal(b.effects, a.effects));
    assert_true(json_equal(b.drawn, a.drawn));
    assert_true(b.price_prompt == 0.5 && b.price_completion == 1.5);
    assert_int_equal(b.escalated, 1);
    assert_int_equal(b.escalation_context, 1);
    assert_string_equal(b.escalation_reason, "retries exhausted");
    assert_string_equal(b.stdout_hash, a.stdout_hash);
    assert_true(b.stdout_bytes == 24);
    rb_trial_release(&a);
    rb_trial_release(&b);
}

/* A trial.json without its world's journal beside it (a golden trial
 * copied without its folder) is refused, saying what to copy, rather than
 * read as a trial that made no request. */
static void load_needs_the_journal(void **state)
{
    struct rb_trial a, b;
    struct rb_error err;
    char path[300];

    (void)state;
    rb_trial_init(&a);
    snprintf(path, sizeof(path), "%s/bare", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/bare/trial.json", dir);
    assert_int_equal(rb_trial_save(&a, path, NULL), RB_OK);
    rb_trial_init(&b);
    assert_int_equal(rb_trial_load(path, &b, &err), RB_ENOENT);
    assert_non_null(strstr(err.message, "has no world.jsonl beside it"));
    assert_non_null(strstr(err.message, "copy the whole trial folder"));
    rb_trial_release(&a);
    rb_trial_release(&b);
}

/* An empty trial (a golden one that never ran) survives too: no events, no
 * effects, exit code -1. */
static void empty_trial_round_trips(void **state)
{
    struct rb_trial a, b;
    char path[256];

    (void)state;
    rb_trial_init(&a);
    snprintf(path, sizeof(path), "%s/empty.json", dir);
    assert_int_equal(rb_trial_save(&a, path, NULL), RB_OK);
    rb_trial_init(&b);
    assert_int_equal(rb_trial_load(path, &b, NULL), RB_OK);
    assert_int_equal(b.n_events, 0);
    assert_null(b.effects);
    assert_null(b.drawn);
    assert_int_equal(b.exit_code, -1);
    rb_trial_release(&b);
}

static void bad_files_are_refused(void **state)
{
    struct rb_trial t;
    struct rb_error err;
    char path[256];
    FILE *f;

    (void)state;
    rb_trial_init(&t);
    snprintf(path, sizeof(path), "%s/none.json", dir);
    assert_int_equal(rb_trial_load(path, &t, &err), RB_ENOENT);
    assert_non_null(strstr(err.message, "none.json"));

    snprintf(path, sizeof(path), "%s/results.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"schema\": 1, \"trials\": []}\n", f);
    fclose(f);
    assert_int_equal(rb_trial_load(path, &t, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "is not a trial saved by this rebound"));

    snprintf(path, sizeof(path), "%s/cut.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"trial_io\": 1, \"dir\": ", f);
    fclose(f);
    assert_int_equal(rb_trial_load(path, &t, &err), RB_EINVAL);
    assert_int_equal(t.n_events, 0); /* untouched */

    /* An event that is not [t, kind, step, json]. */
    snprintf(path, sizeof(path), "%s/event.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"trial_io\": 1, \"dir\": \"d\", \"run_id\": \"r\", \"stdout_hash\": \"\","
          " \"events\": [[1, \"proc.start\", null, {}], [\"x\"]]}",
          f);
    fclose(f);
    assert_int_equal(rb_trial_load(path, &t, &err), RB_EINVAL);
    assert_int_equal(t.n_events, 0);
}

static void summary_words(void **state)
{
    char buf[256];
    json_t *r;

    (void)state;
    r = json_pack("{s:{s:i, s:i, s:i, s:i}}", "suite", "trials", 12, "passed", 11,
                  "failed", 1, "resilience_score", 92);
    rb_suite_summary(r, buf, sizeof(buf));
    assert_string_equal(buf, "12 trials, 11 passed, 1 failed; resilience score 92");
    json_object_set_new(json_object_get(r, "suite"), "baseline",
                        json_pack("{s:s, s:{s:f, s:n}}", "mode", "no-replay",
                                  "reduction_pct", "recovery_ms", 63.4, "steps_redone"));
    rb_suite_summary(r, buf, sizeof(buf));
    assert_string_equal(buf, "12 trials, 11 passed, 1 failed; resilience score 92; "
                             "against no-replay: recovery p50 63% less, steps redone "
                             "p50 unknown");
    json_decref(r);
    /* An older file with one trial. */
    r = json_pack("{s:{s:i, s:i, s:i, s:i}}", "suite", "trials", 1, "passed", 1, "failed",
                  0, "resilience_score", 100);
    rb_suite_summary(r, buf, sizeof(buf));
    assert_string_equal(buf, "1 trial, 1 passed, 0 failed; resilience score 100");
    json_decref(r);
}

static void bad_options(void **state)
{
    struct rb_suite_opts o;
    struct rb_error err;
    json_t *res = NULL;
    int sig = -1;

    (void)state;
    rb_suite_opts_init(&o);
    assert_int_equal(rb_suite_run(&o, &res, &sig, &err), RB_EINVAL);
    assert_null(res);
    assert_int_equal(sig, -1); /* untouched */
    assert_non_null(strstr(err.message, "bad suite options"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_every_field),
        cmocka_unit_test(empty_trial_round_trips),
        cmocka_unit_test(load_needs_the_journal),
        cmocka_unit_test(bad_files_are_refused),
        cmocka_unit_test(summary_words),
        cmocka_unit_test(bad_options),
    };
    static const char *const files[] = {"trial.json",     "empty.json", "results.json",
                                        "cut.json",       "event.json", "world.jsonl",
                                        "bare/trial.json"};
    char path[256];
    size_t i;
    int rc;

    FILE *journal;

    if (!mkdtemp(dir))
        return 1;
    /* a trial's folder holds its world's journal beside trial.json */
    snprintf(path, sizeof(path), "%s/world.jsonl", dir);
    journal = fopen(path, "w");
    if (!journal)
        return 1;
    fclose(journal);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/bare", dir);
    rmdir(path);
    rmdir(dir);
    return rc;
}
