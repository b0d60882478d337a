/*
 * test_compare.c - the comparison of two result sets (reports/compare.h) on
 * the crafted pairs in tests/fixtures/compare/: a regression, an
 * improvement, a change within the spread of the trials (noise), a change
 * too small in ms to count, scenarios in one file only, worse outcomes,
 * more steps redone, an older file without the optional fields, seeds in
 * one file only, several faults per trial, and names that must be escaped;
 * then nearest-rank percentiles and thresholds on documents built here, and
 * the errors for files that are not results files. The CLI's exit codes
 * and messages are tested by tests/e2e/test_compare_cli.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "compare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *source_dir(void)
{
    const char *d = getenv("REBOUND_SOURCE_DIR");

    return d && *d ? d : ".";
}

/* Compares the pair of fixture case `name`; fails the test on error. */
static struct rb_compare *pair(const char *name, const struct rb_compare_opts *opts)
{
    char a[1024], b[1024];
    struct rb_compare *cmp = NULL;
    struct rb_error err;
    enum rb_err rc;

    snprintf(a, sizeof(a), "%s/tests/fixtures/compare/%s/base.json", source_dir(), name);
    snprintf(b, sizeof(b), "%s/tests/fixtures/compare/%s/new.json", source_dir(), name);
    rb_error_init(&err);
    rc = rb_compare_files(a, b, opts, &cmp, &err);
    if (rc != RB_OK)
        fail_msg("case '%s': %s", name, err.message);
    assert_non_null(cmp);
    return cmp;
}

/* The comparison rendered in `format`: a new string. */
static char *render(const struct rb_compare *cmp, enum rb_compare_format format)
{
    struct rb_buf out;
    struct rb_error err;

    rb_buf_init(&out);
    rb_error_init(&err);
    assert_int_equal(rb_compare_render(cmp, format, &out, &err), RB_OK);
    assert_non_null(out.data);
    return (char *)out.data;
}

static const struct rb_compare_scenario *find(const struct rb_compare *cmp,
                                              const char *name)
{
    size_t i;

    for (i = 0; i < cmp->n_scenarios; i++)
        if (strcmp(cmp->scenarios[i].name, name) == 0)
            return &cmp->scenarios[i];
    fail_msg("scenario '%s' not in the comparison", name);
    return NULL;
}

#define K "kill-at-step-147"

static void test_regression(void **state)
{
    struct rb_compare *cmp = pair("regression", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text;

    (void)state;
    assert_int_equal(cmp->regressions, 1);
    assert_int_equal(sc->verdict, RB_VERDICT_REGRESSION);
    assert_int_equal(sc->p50.change, RB_COMPARE_WORSE);
    assert_int_equal(sc->p95.change, RB_COMPARE_WORSE);
    assert_true(sc->p50.before == 1050 && sc->p50.after == 1550);
    assert_true(sc->p95.before == 1100 && sc->p95.after == 1600);
    assert_int_equal(sc->steps.change, RB_COMPARE_SAME);
    assert_false(sc->outcome_worse);
    assert_string_equal(sc->why, "recovery p50, recovery p95");
    assert_string_equal(sc->seeds, "1 2 3");
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text, "recovery p50  1050 ms -> 1550 ms, +47.6% (+500 ms), "
                                 "regression"));
    assert_non_null(strstr(
        text, "verdict: REGRESSION in kill-at-step-147 (recovery p50, recovery p95)\n"));
    free(text);

    /* The same pair with a looser threshold is no regression. */
    {
        struct rb_compare_opts o;
        struct rb_compare *loose;

        rb_compare_opts_init(&o);
        o.max_regression_pct = 50;
        loose = pair("regression", &o);
        assert_int_equal(loose->regressions, 0);
        assert_int_equal(find(loose, K)->p50.change, RB_COMPARE_SMALL);
        rb_compare_free(loose);
    }
    rb_compare_free(cmp);
}

static void test_improvement(void **state)
{
    struct rb_compare *cmp = pair("improvement", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text;

    (void)state;
    assert_int_equal(cmp->regressions, 0);
    assert_int_equal(sc->verdict, RB_VERDICT_IMPROVED);
    assert_int_equal(sc->p50.change, RB_COMPARE_BETTER);
    assert_int_equal(sc->p95.change, RB_COMPARE_BETTER);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text, "1050 ms -> 520 ms, -50.5% (-530 ms), improvement"));
    assert_non_null(strstr(text, "verdict: no regression (1 improved)\n"));
    free(text);
    rb_compare_free(cmp);
}

static void test_noise(void **state)
{
    struct rb_compare *cmp = pair("noise", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text;

    (void)state;
    /* p50 1000 -> 1200: +20% and +200 ms, beyond both thresholds, but the
     * base trials already took 900 to 1400 ms. */
    assert_int_equal(sc->base.trials, 3);
    assert_int_equal(sc->p50.change, RB_COMPARE_NOISE);
    assert_int_equal(sc->p95.change, RB_COMPARE_SMALL);
    assert_int_equal(sc->verdict, RB_VERDICT_NOISE);
    assert_int_equal(cmp->regressions, 0);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text,
                           "1000 ms -> 1200 ms, +20.0% (+200 ms), within noise (spread "
                           "900-1400 ms over 3 base samples)"));
    assert_non_null(strstr(text, "verdict: no regression (1 within noise)"));
    free(text);
    text = render(cmp, RB_COMPARE_MD);
    assert_non_null(strstr(text, "within noise (spread 900–1400 ms"));
    free(text);
    rb_compare_free(cmp);
}

static void test_tiny(void **state)
{
    struct rb_compare_opts o;
    struct rb_compare *cmp = pair("tiny", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);

    (void)state;
    /* 31 -> 45 ms is +45%, but only 14 ms: under the default 50 ms. */
    assert_int_equal(sc->p50.change, RB_COMPARE_SMALL);
    assert_int_equal(sc->p95.change, RB_COMPARE_SMALL);
    assert_int_equal(sc->verdict, RB_VERDICT_SAME);
    assert_int_equal(cmp->regressions, 0);
    rb_compare_free(cmp);

    rb_compare_opts_init(&o);
    o.min_change_ms = 5;
    cmp = pair("tiny", &o);
    sc = find(cmp, K);
    assert_int_equal(sc->p50.change, RB_COMPARE_WORSE);
    assert_int_equal(cmp->regressions, 1);
    rb_compare_free(cmp);
}

static void test_added_removed(void **state)
{
    struct rb_compare *cmp = pair("added-removed", NULL);
    const struct rb_compare_scenario *removed = find(cmp, "network-reset");
    const struct rb_compare_scenario *added = find(cmp, "oom-kill");
    char *text;

    (void)state;
    assert_int_equal(cmp->n_scenarios, 3);
    assert_int_equal(cmp->regressions, 0);
    assert_int_equal(find(cmp, K)->verdict, RB_VERDICT_SAME);
    assert_int_equal(removed->presence, RB_COMPARE_REMOVED);
    assert_int_equal(removed->verdict, RB_VERDICT_REMOVED);
    assert_int_equal(removed->base.trials, 1);
    assert_int_equal(added->presence, RB_COMPARE_ADDED);
    assert_int_equal(added->verdict, RB_VERDICT_ADDED);
    assert_int_equal(added->after.trials, 1);
    /* In the base file's order, then the added one. */
    assert_string_equal(cmp->scenarios[0].name, K);
    assert_string_equal(cmp->scenarios[1].name, "network-reset");
    assert_string_equal(cmp->scenarios[2].name, "oom-kill");
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(
        strstr(text, "oom-kill  added\n  only in the new file (not compared)"));
    assert_non_null(strstr(text, "network-reset  removed\n  only in the base file"));
    assert_non_null(
        strstr(text, "verdict: no regression (1 unchanged, 1 added, 1 removed)"));
    free(text);
    rb_compare_free(cmp);
}

static void test_outcome_worse(void **state)
{
    struct rb_compare *cmp = pair("outcome-worse", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text;

    (void)state;
    /* The recoveries that happened are as fast; one trial did not recover. */
    assert_int_equal(sc->p50.change, RB_COMPARE_SAME);
    assert_true(sc->outcome_worse);
    assert_int_equal(sc->after.outcomes[RB_OUTCOME_FAILED], 1);
    assert_int_equal(sc->after.passed, 2);
    assert_int_equal(sc->verdict, RB_VERDICT_REGRESSION);
    assert_string_equal(sc->why, "outcomes");
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(
        strstr(text, "3 recovered -> 2 recovered, 1 failed; passed 3/3 -> 2/3, worse"));
    free(text);
    rb_compare_free(cmp);
}

static void test_steps_up(void **state)
{
    struct rb_compare *cmp = pair("steps-up", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);

    (void)state;
    assert_int_equal(sc->steps.change, RB_COMPARE_WORSE);
    assert_int_equal(sc->verdict, RB_VERDICT_REGRESSION);
    assert_string_equal(sc->why, "steps redone");
    rb_compare_free(cmp);
}

static void test_old_format(void **state)
{
    struct rb_compare *cmp = pair("old-format", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);

    (void)state;
    /* No faults[], outcome, verdict nor steps_redone in the base: the trial's
     * recovery_ms is used, the rest is unknown and judged on neither side. */
    assert_int_equal(sc->base.rec_n, 2);
    assert_int_equal(sc->p95.change, RB_COMPARE_SAME);
    assert_int_equal(sc->steps.change, RB_COMPARE_UNKNOWN);
    assert_int_equal(sc->base.judged, 0);
    assert_int_equal(sc->base.outcomes[RB_OUTCOME_UNKNOWN], 2);
    assert_false(sc->outcome_worse);
    assert_false(sc->outcome_better);
    assert_int_equal(sc->verdict, RB_VERDICT_SAME);
    rb_compare_free(cmp);
}

static void test_seeds(void **state)
{
    struct rb_compare *cmp = pair("seeds", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text;

    (void)state;
    /* Golden records are not trials to compare; seeds 1 and 4 are in one
     * file only and left out (seed 4 is very slow: it would regress). */
    assert_int_equal(cmp->base_trials, 3);
    assert_int_equal(cmp->new_trials, 3);
    assert_string_equal(sc->seeds, "2 3");
    assert_string_equal(sc->seeds_only_base, "1");
    assert_string_equal(sc->seeds_only_new, "4");
    assert_int_equal(sc->base.trials, 2);
    assert_int_equal(sc->after.trials, 2);
    assert_int_equal(sc->verdict, RB_VERDICT_SAME);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text,
                           "seeds         2 3; only in the base: 1; only in the new: "
                           "4 (not compared)"));
    free(text);
    rb_compare_free(cmp);
}

static void test_multi_fault(void **state)
{
    struct rb_compare *cmp = pair("multi-fault", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);

    (void)state;
    /* Every fault's recovery is a sample: 100, 100, 1000, 1000 before. */
    assert_int_equal(sc->base.rec_n, 4);
    assert_true(sc->p50.before == 100 && sc->p50.after == 100);
    assert_true(sc->p95.before == 1000 && sc->p95.after == 2000);
    assert_int_equal(sc->p95.change, RB_COMPARE_WORSE);
    assert_string_equal(sc->why, "recovery p95");
    rb_compare_free(cmp);
}

/* Counts the '|' of a line that are not escaped with a backslash. */
static int bare_pipes(const char *line, size_t len)
{
    int n = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        if (line[i] == '\\') {
            i++;
            continue;
        }
        if (line[i] == '|')
            n++;
    }
    return n;
}

static void test_odd_names(void **state)
{
    struct rb_compare *cmp = pair("odd-names", NULL);
    char *md, *text, *row, *end;

    (void)state;
    assert_int_equal(cmp->regressions, 1);
    md = render(cmp, RB_COMPARE_MD);
    row = strstr(md, "| odd\\|name \\*bold\\* \\_u\\_ \\`code\\` \\[l\\](x) "
                     "&lt;b&gt;&amp;amp;?\\[31m |");
    assert_non_null(row);
    end = strchr(row, '\n');
    assert_non_null(end);
    /* Six columns: seven bare pipes, the name's own escaped. */
    assert_int_equal(bare_pipes(row, (size_t)(end - row)), 7);
    assert_null(strchr(md, '\x1b'));
    free(md);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_null(strchr(text, '\x1b'));
    assert_non_null(strstr(text, "odd|name *bold*"));
    free(text);
    rb_compare_free(cmp);
}

static void test_markdown_table(void **state)
{
    struct rb_compare *cmp = pair("regression", NULL);
    char *md;

    (void)state;
    md = render(cmp, RB_COMPARE_MD);
    assert_non_null(strstr(md,
                           "| scenario | recovery p50 | recovery p95 | steps redone | "
                           "outcomes | verdict |\n|---|---|---|---|---|---|\n"));
    assert_non_null(strstr(md,
                           "| kill-at-step-147 | 1050 ms → 1550 ms, +47.6% (+500 ms), "
                           "**regression** |"));
    assert_non_null(strstr(md, "| **regression**: recovery p50, recovery p95 |\n"));
    assert_non_null(strstr(md, "**Verdict: regression** in kill-at-step-147"));
    free(md);
    rb_compare_free(cmp);
}

/* A results document with one trial per value of `rec` for `name`. */
static json_t *doc_of(const char *name, const double *rec, size_t n, int seed0)
{
    json_t *trials = json_array();
    size_t i;

    for (i = 0; i < n; i++)
        json_array_append_new(
            trials, json_pack("{s:s, s:i, s:s, s:s, s:[{s:f}], s:i, s:s}", "scenario",
                              name, "seed", seed0 + (int)i, "trial", "faulted", "outcome",
                              "recovered", "faults", "recovery_ms", rec[i],
                              "steps_redone", 0, "verdict", "pass"));
    return json_pack("{s:i, s:o}", "schema", 1, "trials", trials);
}

static void test_nearest_rank(void **state)
{
    double a[20], b[20];
    json_t *da, *db;
    struct rb_compare *cmp = NULL;
    size_t i;

    (void)state;
    /* 1..20 in a shuffled order: nearest rank p50 is the 10th, p95 the
     * 19th. */
    for (i = 0; i < 20; i++) {
        a[i] = (double)((i * 7) % 20 + 1);
        b[i] = a[i] + 1000;
    }
    da = doc_of("s", a, 20, 1);
    db = doc_of("s", b, 20, 1);
    assert_int_equal(rb_compare_json(da, "a", db, "b", NULL, &cmp, NULL), RB_OK);
    assert_true(cmp->scenarios[0].base.rec_p50 == 10);
    assert_true(cmp->scenarios[0].base.rec_p95 == 19);
    assert_true(cmp->scenarios[0].base.rec_min == 1);
    assert_true(cmp->scenarios[0].base.rec_max == 20);
    assert_true(cmp->scenarios[0].after.rec_p50 == 1010);
    rb_compare_free(cmp);
    json_decref(da);
    json_decref(db);
}

static void test_from_zero_and_order(void **state)
{
    const double zero = 0, hundred = 100, same = 500;
    json_t *da = doc_of("a-same", &same, 1, 1), *db = doc_of("a-same", &same, 1, 1);
    json_t *za = doc_of("b-slower", &zero, 1, 1),
           *zb = doc_of("b-slower", &hundred, 1, 1);
    struct rb_compare *cmp = NULL;
    char *text;

    (void)state;
    /* Two scenarios per file; the regressed one is listed first. */
    json_array_extend(json_object_get(da, "trials"), json_object_get(za, "trials"));
    json_array_extend(json_object_get(db, "trials"), json_object_get(zb, "trials"));
    /* The base run was interrupted: the header says so. */
    json_object_set_new(da, "suite", json_pack("{s:b}", "complete", 0));
    assert_int_equal(rb_compare_json(da, "a", db, "b", NULL, &cmp, NULL), RB_OK);
    assert_true(cmp->base_incomplete);
    assert_false(cmp->new_incomplete);
    assert_int_equal(cmp->n_scenarios, 2);
    assert_string_equal(cmp->scenarios[0].name, "b-slower");
    assert_string_equal(cmp->scenarios[1].name, "a-same");
    /* From 0 ms no percentage exists; 100 ms is beyond the 50 ms minimum. */
    assert_int_equal(cmp->scenarios[0].p50.change, RB_COMPARE_WORSE);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text, "0 ms -> 100 ms, +100 ms from 0, regression"));
    assert_non_null(strstr(text, "base a (2 faulted trials, incomplete run) -> new b (2 "
                                 "faulted trials)\n"));
    free(text);
    rb_compare_free(cmp);
    json_decref(da);
    json_decref(db);
    json_decref(za);
    json_decref(zb);
}

static void test_no_common_seed(void **state)
{
    const double a[] = {1000, 1100}, b[] = {1000, 1100};
    json_t *da = doc_of("s", a, 2, 1), *db = doc_of("s", b, 2, 10);
    struct rb_compare *cmp = NULL;

    (void)state;
    assert_int_equal(rb_compare_json(da, "a", db, "b", NULL, &cmp, NULL), RB_OK);
    assert_int_equal(cmp->scenarios[0].presence, RB_COMPARE_BOTH);
    assert_true(cmp->scenarios[0].all_seeds);
    assert_int_equal(cmp->scenarios[0].base.trials, 2);
    assert_int_equal(cmp->scenarios[0].verdict, RB_VERDICT_SAME);
    rb_compare_free(cmp);
    json_decref(da);
    json_decref(db);
}

static void test_wire_recovery(void **state)
{
    json_t *da, *db;
    struct rb_compare *cmp = NULL;
    const struct rb_compare_scenario *sc;
    char *text;

    (void)state;
    /* Black-box agents (rebound audit): no step events, recovery_ms null,
     * recovery from the wire. The base is a run with steps, whose faults
     * carry both: the wire measure is compared on both sides. */
    da = json_pack("{s:i, s:[{s:s, s:i, s:s, s:[{s:i, s:i}], s:i, s:s}]}", "schema", 1,
                   "trials", "scenario", "s", "seed", 1, "outcome", "recovered", "faults",
                   "recovery_ms", 900, "recovery_first_request_ms", 800, "steps_redone",
                   3, "verdict", "pass");
    db =
        json_pack("{s:i, s:[{s:s, s:i, s:s, s:[{s:n, s:i}], s:n, s:n, s:b, s:s}]}",
                  "schema", 1, "trials", "scenario", "s", "seed", 1, "outcome",
                  "recovered", "faults", "recovery_ms", "recovery_first_request_ms", 2000,
                  "recovery_ms", "steps_redone", "steps_known", 0, "verdict", "pass");
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(rb_compare_json(da, "a", db, "b", NULL, &cmp, NULL), RB_OK);
    sc = find(cmp, "s");
    assert_true(sc->wire);
    assert_true(sc->p50.before == 800 && sc->p50.after == 2000);
    assert_int_equal(sc->p50.change, RB_COMPARE_WORSE);
    /* Steps unknown on the black-box side: not judged. */
    assert_int_equal(sc->steps.change, RB_COMPARE_UNKNOWN);
    text = render(cmp, RB_COMPARE_TEXT);
    assert_non_null(strstr(text,
                           "  recovery      from the wire: injection to the first new "
                           "LLM or tool request"));
    free(text);
    rb_compare_free(cmp);

    /* Both sides with step recovery: the steps' measure is used. */
    assert_int_equal(rb_compare_json(da, "a", da, "b", NULL, &cmp, NULL), RB_OK);
    sc = find(cmp, "s");
    assert_false(sc->wire);
    assert_true(sc->p50.before == 900);
    rb_compare_free(cmp);
    json_decref(da);
    json_decref(db);
}

/* rb_compare_files on `rel` (under the fixtures) against a good file. */
static enum rb_err bad_file(const char *rel, struct rb_error *err)
{
    char a[1024], b[1024];
    struct rb_compare *cmp = (struct rb_compare *)&cmp; /* must stay untouched */
    enum rb_err rc;

    snprintf(a, sizeof(a), "%s/tests/fixtures/compare/%s", source_dir(), rel);
    snprintf(b, sizeof(b), "%s/tests/fixtures/compare/regression/new.json", source_dir());
    rb_error_init(err);
    rc = rb_compare_files(a, b, NULL, &cmp, err);
    assert_ptr_equal(cmp, (struct rb_compare *)&cmp);
    return rc;
}

static void test_bad_files(void **state)
{
    struct rb_error err;

    (void)state;
    assert_int_equal(bad_file("missing.json", &err), RB_ENOENT);
    assert_non_null(strstr(err.message, "cannot read results '"));
    assert_non_null(strstr(err.message, "missing.json': no such file or directory"));

    assert_int_equal(bad_file("bad/malformed.json", &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "malformed.json' is not valid JSON: line "));
    assert_true(err.line > 0);

    assert_int_equal(bad_file("bad/not-results.json", &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "not-results.json' is not a results file: no "
                                        "'schema'"));

    assert_int_equal(bad_file("bad/newer-schema.json", &err), RB_ESCHEMA);
    assert_non_null(
        strstr(err.message, "was written by a newer rebound (results schema 2"));

    assert_int_equal(bad_file("bad/no-scenario.json", &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "no-scenario.json': trial 1 has no 'scenario'"));

    assert_int_equal(bad_file("bad", &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "bad': it is a folder"));
}

/* The first byte of `s` a terminal would act on (C0 but newline, DEL, C1
 * as UTF-8), or NULL. */
static const char *control_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p; p++)
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f ||
            (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return (const char *)p;
    return NULL;
}

/* Seeds are strings an agent's scenario may set: kept whole (two long
 * seeds that differ only at the end are two seeds, not one), and printed
 * as safely as names: no escape sequence reaches the terminal, no Markdown
 * heading or table row is injected, nobody is pinged, nothing links. */
static void test_hostile_seeds(void **state)
{
    struct rb_compare *cmp = pair("hostile-seeds", NULL);
    const struct rb_compare_scenario *sc = find(cmp, K);
    char *text, *md;
    const char *bad;

    (void)state;
    assert_non_null(
        strstr(sc->seeds_only_base, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1"));
    assert_non_null(
        strstr(sc->seeds_only_new, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2"));
    assert_null(strstr(sc->seeds, "AAAA"));
    text = render(cmp, RB_COMPARE_TEXT);
    bad = control_at(text);
    if (bad)
        fail_msg("a control character in the text output: ...%.30s",
                 bad > text + 10 ? bad - 10 : text);
    assert_non_null(strstr(text, "seeds         | x |?## Verdict: no regression"));
    assert_non_null(strstr(text, "only in the base: ?]0;pwned??[2J "));
    md = render(cmp, RB_COMPARE_MD);
    assert_null(control_at(md));
    assert_null(strstr(md, "\n## Verdict"));
    assert_null(strstr(md, "\n| x |"));
    assert_non_null(strstr(md, "seeds: \\| x \\|?\\#\\# Verdict: no regression"));
    assert_null(strstr(md, "@octocat"));
    assert_null(strstr(md, "://"));
    assert_null(strstr(md, "www.evil"));
    assert_null(strstr(md, "\xe2\x80\xae"));
    assert_non_null(strstr(md, "@\xe2\x80\x8boctocat https:\xe2\x80\x8b//evil.example"));
    /* a scenario name too */
    assert_null(strstr(md, "@team"));
    assert_non_null(
        strstr(md, "| ping @\xe2\x80\x8bteam see w\xe2\x80\x8bww.team.example evil |"));
    free(text);
    free(md);
    rb_compare_free(cmp);
}

/* A results document of n trials of two scenarios, seeds "seed-off+i"
 * (string seeds whose first 31 bytes are all alike), interleaved. */
static json_t *big_doc(size_t n, size_t off)
{
    json_t *trials = json_array();
    char seed[64];
    size_t i;

    for (i = 0; i < n; i++) {
        snprintf(seed, sizeof(seed), "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-%zu",
                 off + i / 2);
        json_array_append_new(trials,
                              json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:s}", "scenario",
                                        i % 2 ? "odd" : "even", "seed", seed, "trial",
                                        "faulted", "outcome", "recovered", "recovery_ms",
                                        100.0 + (double)(i % 7), "steps_redone", 0,
                                        "verdict", "pass"));
    }
    return json_pack("{s:i, s:{s:b}, s:o}", "schema", 1, "suite", "complete", 1, "trials",
                     trials);
}

/* Many trials (matched by seed through sorted lists, not a scan per
 * trial): the seeds in common and those in one file only come out as in
 * a small file, in file order. */
static void test_many_trials(void **state)
{
    json_t *a = big_doc(20000, 0), *b = big_doc(20000, 3);
    struct rb_compare *cmp = NULL;
    struct rb_error err;
    const struct rb_compare_scenario *sc;

    (void)state;
    rb_error_init(&err);
    assert_int_equal(rb_compare_json(a, "a.json", b, "b.json", NULL, &cmp, &err), RB_OK);
    assert_int_equal(cmp->n_scenarios, 2);
    assert_string_equal(cmp->scenarios[0].name, "even");
    sc = find(cmp, "odd");
    assert_int_equal(sc->verdict, RB_VERDICT_SAME);
    assert_string_equal(sc->seeds_only_base, "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-0 "
                                             "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1 "
                                             "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-2");
    assert_string_equal(sc->seeds_only_new, "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-10000 "
                                            "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-10001 "
                                            "seed-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-10002");
    assert_int_equal(sc->base.trials, 9997);
    assert_int_equal(sc->after.trials, 9997);
    rb_compare_free(cmp);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression),     cmocka_unit_test(test_improvement),
        cmocka_unit_test(test_noise),          cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_added_removed),  cmocka_unit_test(test_outcome_worse),
        cmocka_unit_test(test_steps_up),       cmocka_unit_test(test_old_format),
        cmocka_unit_test(test_seeds),          cmocka_unit_test(test_multi_fault),
        cmocka_unit_test(test_odd_names),      cmocka_unit_test(test_markdown_table),
        cmocka_unit_test(test_nearest_rank),   cmocka_unit_test(test_from_zero_and_order),
        cmocka_unit_test(test_no_common_seed), cmocka_unit_test(test_wire_recovery),
        cmocka_unit_test(test_bad_files),      cmocka_unit_test(test_hostile_seeds),
        cmocka_unit_test(test_many_trials),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
