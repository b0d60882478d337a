/*
 * test_reports.c - the report writers (rb_reports) against the fixed
 * results files in tests/fixtures/results/: what a reader of each report
 * sees (the failure message naming metric, value and limit; failing
 * scenarios first; names with < & " | ` and newlines escaped in XML, HTML
 * and Markdown; one timeline per trial with redone steps, faults, restarts
 * and the recovery marked; nothing fetched by the HTML page), big trials
 * aggregated, the "scenarios" block read when present, and the contract of
 * loading and writing (clear errors, files written whole, nothing left
 * behind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "reports.h"
#include "svg.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *source_dir(void)
{
    const char *d = getenv("REBOUND_SOURCE_DIR");

    return d && *d ? d : ".";
}

static json_t *fixture(const char *name)
{
    char path[1024];
    struct rb_error err;
    json_t *j = NULL;

    snprintf(path, sizeof(path), "%s/tests/fixtures/results/%s", source_dir(), name);
    rb_error_init(&err);
    if (rb_report_load(path, &j, &err) != RB_OK)
        fail_msg("cannot load fixture %s: %s", path, err.message);
    return j;
}

/* The report of `results` in format f, as a new string. */
static char *render(json_t *results, enum rb_report_format f)
{
    struct rb_error err;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    assert_non_null(out);
    rb_error_init(&err);
    if (rb_report_write(results, f, out, &err) != RB_OK)
        fail_msg("report failed: %s", err.message);
    fclose(out);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    const char *p = hay;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += len;
    }
    return n;
}

/* The text between the first `from` and the next `to` after it. */
static char *between(const char *hay, const char *from, const char *to)
{
    const char *a = strstr(hay, from), *b;
    char *out;

    if (!a)
        fail_msg("'%s' not found", from);
    b = strstr(a + strlen(from), to);
    if (!b)
        fail_msg("'%s' not found after '%s'", to, from);
    out = strndup(a, (size_t)(b - a));
    assert_non_null(out);
    return out;
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected to find: %s", needle);
}

static void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("expected not to find: %s", needle);
}

/* ---- loading ----------------------------------------------------------- */

static void load_errors(void **state)
{
    char path[1024];
    struct rb_error err;
    json_t *j = (json_t *)0x1;

    (void)state;
    snprintf(path, sizeof(path), "%s/tests/fixtures/results/not-results.json",
             source_dir());
    assert_int_equal(rb_report_load(path, &j, &err), RB_EINVAL);
    assert_ptr_equal(j, (json_t *)0x1); /* untouched on error */
    assert_has(err.message, "not a results document");
    assert_has(err.message, "not-results.json");

    snprintf(path, sizeof(path), "%s/tests/fixtures/results/malformed.json",
             source_dir());
    assert_int_equal(rb_report_load(path, &j, &err), RB_EINVAL);
    assert_has(err.message, "malformed.json:");
    assert_has(err.message, "not valid JSON");
    assert_true(err.line > 0);

    snprintf(path, sizeof(path), "%s/tests/fixtures/results/newer-schema.json",
             source_dir());
    assert_int_equal(rb_report_load(path, &j, &err), RB_ESCHEMA);
    assert_has(err.message, "schema 2");

    assert_int_equal(rb_report_load("/nonexistent/results.json", &j, &err), RB_ENOENT);
    assert_has(err.message, "'/nonexistent/results.json'");
    assert_ptr_equal(j, (json_t *)0x1);
}

static void formats(void **state)
{
    enum rb_report_format f = RB_REPORT_HTML;
    struct rb_error err;

    (void)state;
    assert_int_equal(rb_report_format_parse("junit", &f, NULL), RB_OK);
    assert_int_equal(f, RB_REPORT_JUNIT);
    assert_int_equal(rb_report_format_parse("markdown", &f, NULL), RB_OK);
    assert_int_equal(f, RB_REPORT_MD);
    assert_int_equal(rb_report_format_parse("pdf", &f, &err), RB_EINVAL);
    assert_int_equal(f, RB_REPORT_MD);
    assert_string_equal(err.message, "unknown report format 'pdf' (junit, md or html)");
    assert_string_equal(rb_report_file_name(RB_REPORT_HTML), "report.html");
}

/* ---- JUnit ------------------------------------------------------------- */

static void junit_mixed(void **state)
{
    json_t *r = fixture("mixed.json");
    char *x = render(r, RB_REPORT_JUNIT);
    char *naive, *esc, *err;

    (void)state;
    assert_has(x, "<testsuites name=\"rebound\" tests=\"5\" failures=\"2\" errors=\"1\"");
    assert_int_equal(count(x, "<testsuite "), 5);
    assert_int_equal(count(x, "<testcase "), 5);

    /* A broken expectation names metric, value and limit. */
    naive = between(x, "<testcase name=\"naive seed 7 [trial 1]\"", "</testcase>");
    assert_has(naive, "classname=\"naive\"");
    assert_has(naive, "<failure message=\"steps_redone 3 &gt; max_steps_redone 0\"");
    assert_lacks(naive, "<error");
    free(naive);

    /* A hung trial fails with both reasons in its message. */
    assert_has(x, "<failure message=\"outcome: hung, expected recovered; "
                  "context_preserved false, expected true\"");

    /* A trial that could not run is an error, not a failure. */
    err = between(x, "<testcase name=\"cannot-start seed 3 [trial 1]\"", "</testcase>");
    assert_has(err, "<error message=\"agent command &#39;./missing-agent&#39; cannot "
                    "start: no such file\"");
    assert_lacks(err, "<failure");
    free(err);

    /* An escalated trial that met its expectations passes. */
    esc = between(x, "<testcase name=\"parks-for-a-human seed 2 [trial 1]\"",
                  "</testcase>");
    assert_lacks(esc, "<failure");
    assert_lacks(esc, "<error");
    assert_has(esc, "outcome escalated");
    assert_has(esc, "time=\"0.012\"");
    free(esc);

    /* Odd characters are escaped, never raw. */
    assert_has(x, "name=\"odd &lt;name&gt; &amp; &quot;quoted&quot; | pipe `tick` "
                  "*star*&#10;newline seed 1 [trial 1]\"");
    assert_lacks(x, "<name>");
    assert_lacks(x, "\"quoted\"");
    free(x);
    json_decref(r);
}

/* ---- Markdown ---------------------------------------------------------- */

static void md_mixed(void **state)
{
    json_t *r = fixture("mixed.json");
    char *m = render(r, RB_REPORT_MD);
    const char *rows[] = {"| cannot-start |", "| naive |", "| hangs-forever |", "| odd ",
                          "| parks-for-a-human |"};
    const char *line;
    size_t i, table_rows = 0;

    (void)state;
    assert_true(strncmp(m, "## rebound resilience suite: FAIL\n", 34) == 0);
    assert_has(m, "**resilience score 40**");
    assert_has(m, "5 trials: 2 passed, 2 failed, 1 could not run");

    /* Failures first: the error, then the two failures, then the passes. */
    for (i = 1; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *a = strstr(m, rows[i - 1]), *b = strstr(m, rows[i]);

        if (!a || !b || a > b)
            fail_msg("row '%s' should come before '%s'", rows[i - 1], rows[i]);
    }
    assert_has(m, "| naive | 1 recovered | ");
    assert_has(m, "| 3 | preserved | **FAIL** |");
    assert_has(m, "| hangs-forever | 1 hung | unknown | 0 | lost in 1 of 1 | **FAIL** |");
    assert_has(m,
               "| cannot-start | 1 failed | unknown | unknown | unknown | **ERROR** |");

    /* One line per row: the odd name's newline and pipe cannot split it. */
    for (line = m; line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, "| ", 2) == 0)
            table_rows++;
    }
    assert_int_equal(table_rows, 1 + 5);
    assert_has(
        m, "| odd \\<name\\> \\& \"quoted\" \\| pipe \\`tick\\` \\*star\\* newline |");

    /* Broken expectations below, escaped. */
    assert_has(m, "- **naive** seed 7 \\[trial 1\\]: steps\\_redone 3 \\> "
                  "max\\_steps\\_redone 0\n");
    assert_has(m,
               "- **cannot-start** seed 3 \\[trial 1\\]: could not run: agent command");
    free(m);
    json_decref(r);
}

/* A suite of n trials, every one failing, of one scenario with `steps`
 * sequential steps each (no fault). */
static json_t *synthetic(int n, int steps, const char *verdict)
{
    json_t *trials = json_array();
    int i, k;

    for (i = 0; i < n; i++) {
        json_t *events = json_array();

        for (k = 0; k < steps; k++) {
            char step[32];

            snprintf(step, sizeof(step), "step-%04d", k);
            json_array_append_new(events,
                                  json_pack("{s:s, s:s, s:i, s:f}", "kind", "step.start",
                                            "step", step, "attempt", 1, "t_ms", k * 1.0));
            json_array_append_new(events, json_pack("{s:s, s:s, s:i, s:f}", "kind",
                                                    "step.commit", "step", step,
                                                    "attempt", 1, "t_ms", k * 1.0 + 0.8));
        }
        json_array_append_new(
            trials,
            json_pack("{s:s, s:i, s:s, s:s, s:s, s:[s], s:i, s:{s:o, s:i}}", "scenario",
                      i % 2 ? "beta" : "alpha", "seed", i, "outcome", "recovered",
                      "verdict", verdict, "trial", "faulted", "broken",
                      "steps_redone 1 > max_steps_redone 0", "wall_ms", steps + 1,
                      "faulted", "events", events, "wall_ms", steps + 1));
    }
    return json_pack("{s:i, s:o}", "schema", 1, "trials", trials);
}

static void md_capped(void **state)
{
    json_t *r = synthetic(30, 0, "fail");
    char *m = render(r, RB_REPORT_MD);

    (void)state;
    assert_int_equal(count(m, "\n- **"), 20);
    assert_has(m, "- … and 10 more (see report.html)\n");
    free(m);
    json_decref(r);
}

/* ---- HTML -------------------------------------------------------------- */

static void html_mixed(void **state)
{
    json_t *r = fixture("mixed.json");
    char *h = render(r, RB_REPORT_HTML);
    char *naive, *odd, *hung, *err;

    (void)state;
    assert_true(strncmp(h, "<!DOCTYPE html>", 15) == 0);
    assert_has(h, "<p id=\"suite-verdict\" class=\"verdict fail\">FAIL</p>");
    assert_has(h, "<p id=\"resilience-score\">resilience score <b>40</b>");

    /* One recovery chart per scenario, one timeline per trial (an svg for
     * each trial that has events: all but the one that could not run). */
    assert_int_equal(count(h, "<section class=\"scenario "), 5);
    assert_int_equal(count(h, "<figure class=\"recovery-chart\">"), 5);
    assert_int_equal(count(h, "<figure class=\"timeline\">"), 5);
    assert_int_equal(count(h, "class=\"timeline-svg\""), 4);
    assert_int_equal(count(h, "<table class=\"metrics scenario-metrics\">"), 5);

    /* Self-contained: nothing to fetch, no script, and a policy saying so. */
    assert_lacks(h, "http://");
    assert_lacks(h, "https://");
    assert_lacks(h, "<script");
    assert_lacks(h, " src=");
    assert_lacks(h, "url(");
    assert_lacks(h, "@import");
    assert_has(h, "content=\"default-src 'none'; style-src 'unsafe-inline'\"");

    /* The naive trial redid three committed steps after its kill; the step
     * in flight at the kill is shown lost, not redone. */
    naive = between(h, "aria-label=\"timeline of naive seed 7 trial 1\"", "</svg>");
    assert_int_equal(count(naive, "class=\"bar redone\""), 3);
    assert_has(naive, "step-a (attempt 2)");
    assert_has(naive, "redone after a fault");
    assert_int_equal(count(naive, "class=\"bar lost\""), 1);
    assert_int_equal(count(naive, "class=\"fault\""), 1);
    assert_int_equal(count(naive, "class=\"restart\""), 1);
    assert_has(naive, "restart: attempt 2 started");
    assert_has(naive, "class=\"recovery\"");
    free(naive);
    /* Failed expectations in words. */
    assert_has(h, "<code>steps_redone 3 &gt; max_steps_redone 0</code>: steps redone was "
                  "3, above the limit of 0 (max_steps_redone)");
    assert_has(h, "the trial ended hung; the scenario expects recovered");

    /* A freeze is shaded until it was healed; names are escaped. */
    odd = between(h, "aria-label=\"timeline of odd &lt;name&gt;", "</svg>");
    assert_has(odd, "fault freeze at ");
    assert_has(odd, "until 26 ms"); /* the heal, not the recovery (29 ms) */
    assert_has(odd, "s&lt;1&gt; (attempt 1)");
    assert_has(odd, "s&amp;2 (attempt 1)");
    assert_has(odd, "s&quot;3&quot; (attempt 1)");
    assert_int_equal(count(odd, "class=\"restart\""), 0);
    free(odd);
    assert_lacks(h, "<name>");
    assert_lacks(h, "s<1>");

    /* A hung trial never recovered, and its chart says so. */
    hung = between(h, "aria-label=\"timeline of hangs-forever", "</svg>");
    assert_has(hung, "no recovery");
    assert_int_equal(count(hung, "class=\"replay\""), 1); /* two replays, one bin */
    free(hung);

    err = between(h, "<h2>cannot-start", "</section>");
    assert_has(err, "the trial could not run");
    assert_has(err, "no events recorded for this trial");
    assert_has(err, "no recovery time measured");
    free(err);
    free(h);
    json_decref(r);
}

static void html_big_trial(void **state)
{
    json_t *small = synthetic(1, 300, "pass");
    json_t *big = synthetic(1, 5000, "pass");
    char *hs = render(small, RB_REPORT_HTML);
    char *hb = render(big, RB_REPORT_HTML);

    (void)state;
    /* 300 steps: each drawn, and sequential steps share one lane. */
    assert_int_equal(count(hs, "<rect") - count(hs, "class=\"fault\""), 300);
    assert_lacks(hs, "density strip");
    /* 5000 steps: aggregated, said on the page, and the file stays small. */
    assert_has(hb, "More than 600 step executions: drawn as a density strip");
    assert_true(count(hb, "<rect") < 700);
    assert_true(strlen(hb) < 300 * 1024);
    assert_has(hb, "5000 step executions");
    free(hs);
    free(hb);
    json_decref(small);
    json_decref(big);
}

static void html_many_trials_capped(void **state)
{
    json_t *r = synthetic(120, 3, "pass");
    char *h = render(r, RB_REPORT_HTML);

    (void)state;
    assert_int_equal(count(h, "<article class=\"trial "), 120);
    assert_int_equal(count(h, "class=\"timeline-svg\""), 100); /* 50 per scenario */
    assert_int_equal(count(h, "Timelines are drawn for the first 50 trials"), 2);
    free(h);
    json_decref(r);
}

/* The per-scenario block of newer files is used, and the fields added this
 * session are shown; an older reader's fallback is the trial records. */
static void scenarios_block(void **state)
{
    json_t *r = fixture("with-scenarios.json");
    char *m = render(r, RB_REPORT_MD);
    char *h = render(r, RB_REPORT_HTML);

    (void)state;
    assert_has(m, "| fanout-kill | 1 recovered, 1 degraded | 120 / 480 ms | 0 (max 2) | "
                  "lost in 1 of 2 | **FAIL** |");
    assert_has(m, "| escalate-after-retries | 1 escalated | unknown |");
    assert_has(m, "The suite was interrupted");
    assert_has(m, "· 4.3 s");
    assert_has(h, "request 3, attempt 2: message 3 (role tool) differs");
    assert_has(h, "<tr><th>recovery_ms</th><td class=\"num\">2400</td>"
                  "<td class=\"num\">120</td><td class=\"num reduction\">95 %</td></tr>");
    assert_has(m, "- **fanout-kill**: recovery 95 %, steps redone 100 %\n");
    assert_has(h, "llm tokens_wasted");
    /* A field newer than this reader is shown, not hidden; null is "none". */
    assert_has(h, "<th>tools golden_calls</th><td class=\"num\">26</td>");
    assert_has(h, "<th>recovery_ms</th><td class=\"muted\">none</td>");
    assert_has(
        h,
        "<tr><th>cost_wasted</th><td class=\"num\">0</td><td class=\"num\">0.0163</td>");
    assert_has(h, "without replay: recovery_ms");
    assert_has(h, "Kill the coordinator while &lt;8&gt; research threads run");
    assert_has(h, "-j 2");
    assert_has(h, "hollow dots: the same trials without the replay log");
    free(m);
    free(h);
    json_decref(r);
}

/* Numbers far outside what rebound writes (huge, negative, reals where
 * integers belong) still give every report, with nothing drawn off-scale
 * turning into garbage. Run under UBSan in CI: no out-of-range cast. */
static void hostile_numbers(void **state)
{
    static const char doc[] =
        "{\"schema\": 1, \"suite\": {\"resilience_score\": 1e300},"
        " \"scenarios\": [{\"name\": \"h\", \"metrics\": {\"recovery_ms\":"
        "   {\"p50\": -1e300, \"p95\": 1e300, \"max\": 1e300, \"n\": 1e300}}}],"
        " \"trials\": [{\"scenario\": \"h\", \"seed\": 1.5e300, \"wall_ms\": -5,"
        "   \"faults\": [{\"inject_ms\": 1e308, \"recovery_ms\": 1e308}],"
        "   \"faulted\": {\"wall_ms\": 1e308, \"events\": ["
        "     {\"kind\": \"proc.start\", \"t_ms\": -1e308, \"attempt\": -1e300},"
        "     {\"kind\": \"step.start\", \"step\": \"a\", \"t_ms\": 1e308,"
        "      \"attempt\": 1e300},"
        "     {\"kind\": \"step.replay\", \"step\": \"a\", \"t_ms\": 1e308},"
        "     {\"kind\": \"fault.inject\", \"t_ms\": 1e308, \"fault\": 1e30},"
        "     {\"kind\": \"fault.heal\", \"t_ms\": 1e308, \"fault\": -1e30},"
        "     {\"kind\": \"proc.start\", \"t_ms\": 1e308, \"attempt\": 2},"
        "     {\"kind\": \"step.commit\", \"t_ms\": \"x\"}, 7, null]}}]}";
    json_t *r = json_loads(doc, 0, NULL);
    char *x, *m, *h;

    (void)state;
    assert_non_null(r);
    x = render(r, RB_REPORT_JUNIT);
    m = render(r, RB_REPORT_MD);
    h = render(r, RB_REPORT_HTML);
    assert_has(x, "<testcase name=\"h seed 1000000000000000 [trial 1]\"");
    assert_has(m, "| h |");
    assert_int_equal(count(h, "class=\"timeline-svg\""), 1);
    assert_lacks(h, "nan");
    free(x);
    free(m);
    free(h);
    json_decref(r);
}

/* Without a "scenarios" block, the reduction against the no-replay baseline
 * is computed from the trials' baseline records. */
static void baseline_from_trials(void **state)
{
    json_t *r = json_pack(
        "{s:i, s:[{s:s, s:i, s:s, s:[{s:i}], s:i, s:{s:s, s:i, s:i}},"
        "        {s:s, s:i, s:s, s:[{s:i}], s:i, s:{s:s, s:i, s:i}}]}",
        "schema", 1, "trials", "scenario", "k", "seed", 1, "verdict", "pass", "faults",
        "recovery_ms", 40, "steps_redone", 0, "baseline", "mode", "no-replay",
        "recovery_ms", 400, "steps_redone", 20, "scenario", "k", "seed", 2, "verdict",
        "pass", "faults", "recovery_ms", 60, "steps_redone", 0, "baseline", "mode",
        "no-replay", "recovery_ms", 600, "steps_redone", 30);
    char *m, *h;

    (void)state;
    assert_non_null(r);
    m = render(r, RB_REPORT_MD);
    h = render(r, RB_REPORT_HTML);
    /* p50s (nearest rank): replay 40, baseline 400 and 20. */
    assert_has(m, "- **k**: recovery 90 %, steps redone 100 %\n");
    assert_has(h, "<td class=\"num reduction\">90 %</td>");
    assert_int_equal(count(h, "class=\"dot baseline\""), 2);
    free(m);
    free(h);
    json_decref(r);
}

/* A black box (no step events): no recovery_ms, but the wire's recovery
 * to the first new request is what the summary shows, said as such. */
static void black_box_recovery(void **state)
{
    json_t *r = json_pack("{s:i, s:[{s:s, s:i, s:s, s:s, s:[{s:n, s:i}], s:n}]}",
                          "schema", 1, "trials", "scenario", "bb", "seed", 1, "trial",
                          "faulted", "verdict", "pass", "faults", "recovery_ms",
                          "recovery_first_request_ms", 235, "steps_redone");
    char *m, *h;

    (void)state;
    assert_non_null(r);
    m = render(r, RB_REPORT_MD);
    h = render(r, RB_REPORT_HTML);
    assert_has(m, "| 235 / 235 ms to the first new request |");
    assert_has(h, "<td class=\"num\">235 / 235 ms</td>");
    free(m);
    free(h);
    json_decref(r);
}

/* ---- SVG writer -------------------------------------------------------- */

static void svg_escapes(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    (void)state;
    rb_svg_begin(out, 100, 50.5, "c\"x", "a <label>");
    rb_svg_rect(out, 1.234, 2, -5, 3, "bar", "t & <b>");
    rb_svg_text(out, 0, 0, "middle", NULL, "x<y & \"z\"");
    rb_svg_path(out, "M0 0 L1 1", "p", NULL);
    rb_svg_end(out);
    fclose(out);
    assert_has(buf, "<svg viewBox=\"0 0 100 50.5\" width=\"100\" height=\"50.5\" "
                    "class=\"c&quot;x\" role=\"img\" aria-label=\"a &lt;label&gt;\">");
    assert_has(buf, "<rect x=\"1.23\" y=\"2\" width=\"0\" height=\"3\" class=\"bar\">"
                    "<title>t &amp; &lt;b&gt;</title></rect>");
    assert_has(buf, ">x&lt;y &amp; &quot;z&quot;</text>");
    assert_has(buf, "<path d=\"M0 0 L1 1\" class=\"p\"/>");
    free(buf);
}

/* ---- text from agents ------------------------------------------------ */

/* 1 when `s` is valid UTF-8 with no U+FFFE or U+FFFF (what XML 1.0 and a
 * browser read without a replacement character), else 0 with *at set. */
static int clean_utf8(const char *s, size_t *at)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, i;

    while (*p) {
        n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
        if (*p >= 0x80 && (*p < 0xc2 || *p > 0xf4))
            goto bad;
        for (i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                goto bad;
        if (n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe)
            goto bad;
        p += n;
    }
    return 1;
bad:
    *at = (size_t)((const char *)p - s);
    return 0;
}

/* Every report of a fixture with U+FFFE/U+FFFF in names and broken texts,
 * and broken texts of multi-byte characters long enough to be cut (the
 * joined failure message, the "in words" text, the %95s tokens), is clean
 * UTF-8: junit.xml parses, the page shows no replacement marks mid-word. */
static void utf8_cuts(void **state)
{
    static const enum rb_report_format all[] = {RB_REPORT_JUNIT, RB_REPORT_MD,
                                                RB_REPORT_HTML};
    json_t *r = fixture("unicode.json");
    size_t i, at = 0;

    (void)state;
    for (i = 0; i < 3; i++) {
        char *out = render(r, all[i]);

        if (!clean_utf8(out, &at))
            fail_msg("%s: not clean UTF-8 at byte %zu: ...%.40s",
                     rb_report_file_name(all[i]), at, out + (at > 20 ? at - 20 : 0));
        if (all[i] != RB_REPORT_MD)
            assert_has(out, "uni\xef\xbf\xbd\xef\xbf\xbdname");
        free(out);
    }
    json_decref(r);
}

/* Agent-controlled text in the Markdown summary pings nobody, links
 * nowhere and cannot reverse the text around it. */
static void md_defused(void **state)
{
    json_t *r = fixture("unicode.json");
    char *md = render(r, RB_REPORT_MD);

    (void)state;
    assert_has(md, "ping @\xe2\x80\x8boctocat and @\xe2\x80\x8bgithub/security");
    assert_null(strstr(md, "@octocat"));
    assert_null(strstr(md, "@github"));
    assert_null(strstr(md, "://"));
    assert_has(md, "https:\xe2\x80\x8b//evil.example/x");
    assert_null(strstr(md, "www.evil"));
    assert_null(strstr(md, "WWW.Evil"));
    assert_has(md, "w\xe2\x80\x8bww.evil.example");
    assert_null(strstr(md, "\xe2\x80\xae")); /* U+202E */
    assert_null(strstr(md, "\xe2\x80\xac")); /* U+202C */
    assert_null(strstr(md, "\xe2\x81\xa6")); /* U+2066 */
    assert_null(strstr(md, "\xe2\x81\xa9")); /* U+2069 */
    assert_has(md, "flip reversed and isolated");
    free(md);
    json_decref(r);
}

/* A suite cut short (suite.complete false) with scenarios this machine
 * could not run (suite.skipped): every report says both. */
static void skipped_and_interrupted(void **state)
{
    json_t *r = fixture("interrupted.json");
    char *x = render(r, RB_REPORT_JUNIT), *md = render(r, RB_REPORT_MD),
         *html = render(r, RB_REPORT_HTML);

    (void)state;
    assert_has(x, "<testsuites name=\"rebound\" tests=\"4\" failures=\"0\" errors=\"1\"");
    assert_has(x,
               "<testsuite name=\"partition-db\" tests=\"1\" failures=\"0\" errors=\"0\" "
               "skipped=\"1\"");
    assert_has(x, "<skipped message=\"cannot make a network namespace: operation not "
                  "permitted\"/>");
    assert_has(x, "<skipped message=\"needs root\"/>");
    assert_has(x, "<error message=\"suite interrupted: results are partial\"");
    assert_int_equal(count(x, "<testcase "), 4);
    assert_has(md, "The suite was interrupted");
    /* nothing failed so far, but an interrupted suite did not pass */
    assert_has(md, "## rebound resilience suite: ERROR\n");
    assert_lacks(md, "suite: PASS");
    assert_has(md, "- **partition-db**: cannot make a network namespace");
    assert_has(md, "- **odd \\<skip\\> \\& \"q\" \\| x**: needs root");
    assert_has(html, "The suite was interrupted");
    assert_has(html,
               "<li><b>odd &lt;skip&gt; &amp; &quot;q&quot; | x</b>: needs root</li>");
    free(x);
    free(md);
    free(html);
    json_decref(r);
}

/* ---- writing all ------------------------------------------------------- */

static void write_all(void **state)
{
    char dir[] = "/tmp/rb-reports-XXXXXX", path[1200];
    json_t *r = fixture("mixed.json");
    json_t *bad = json_pack("{s:i}", "schema", 1);
    const char *names[] = {"junit.xml", "summary.md", "report.html"};
    struct rb_error err;
    struct dirent *d;
    struct stat st;
    DIR *dh;
    size_t i, n = 0;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(rb_reports_write_all(dir, bad, &err), RB_EINVAL);
    assert_has(err.message, "no 'trials' array");
    assert_int_equal(rb_reports_write_all(dir, r, &err), RB_OK);
    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 100);
    }
    dh = opendir(dir);
    assert_non_null(dh);
    while ((d = readdir(dh)) != NULL)
        if (d->d_name[0] != '.' || strstr(d->d_name, "tmp"))
            n++;
    closedir(dh);
    assert_int_equal(n, 3); /* no temporary file left */
    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(rb_reports_write_all(path, r, &err), RB_ENOENT);
    assert_has(err.message, "cannot write report '");
    assert_has(err.message, "/missing/junit.xml'");
    json_decref(bad);
    json_decref(r);
}

/* A folder for `rebound run --out` where summary.md is a character device
 * (1,3 like /dev/null, made here, never the real one) and a link to a
 * precious file sits at the temporary name an older rebound used for
 * junit.xml (.junit.xml.tmp-PID): the device stays a device, the link is
 * not followed, and junit.xml is a regular file of its own. */
static void write_all_odd_targets(void **state)
{
    char dir[] = "/tmp/rb-reports-XXXXXX", path[1200], victim[1200], buf[64];
    json_t *r = fixture("mixed.json");
    struct rb_error err;
    struct stat st;
    FILE *f;
    int dev;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    f = fopen(victim, "w");
    assert_non_null(f);
    fputs("precious\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/.junit.xml.tmp-%ld", dir, (long)getpid());
    assert_int_equal(symlink(victim, path), 0);
    snprintf(path, sizeof(path), "%s/summary.md", dir);
    dev = mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0;
    if (!dev)
        print_message("mknod not permitted: the device case is not run\n");

    rb_error_init(&err);
    if (rb_reports_write_all(dir, r, &err) != RB_OK)
        fail_msg("write_all: %s", err.message);
    f = fopen(victim, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "precious\n");
    snprintf(path, sizeof(path), "%s/junit.xml", dir);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_true(st.st_size > 100);
    snprintf(path, sizeof(path), "%s/summary.md", dir);
    assert_int_equal(lstat(path, &st), 0);
    if (dev)
        assert_true(S_ISCHR(st.st_mode));

    unlink(path);
    snprintf(path, sizeof(path), "%s/junit.xml", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/report.html", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/.junit.xml.tmp-%ld", dir, (long)getpid());
    unlink(path);
    unlink(victim);
    assert_int_equal(rmdir(dir), 0); /* nothing else left */
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_errors),
        cmocka_unit_test(formats),
        cmocka_unit_test(junit_mixed),
        cmocka_unit_test(md_mixed),
        cmocka_unit_test(md_capped),
        cmocka_unit_test(html_mixed),
        cmocka_unit_test(html_big_trial),
        cmocka_unit_test(html_many_trials_capped),
        cmocka_unit_test(scenarios_block),
        cmocka_unit_test(hostile_numbers),
        cmocka_unit_test(baseline_from_trials),
        cmocka_unit_test(black_box_recovery),
        cmocka_unit_test(svg_escapes),
        cmocka_unit_test(utf8_cuts),
        cmocka_unit_test(skipped_and_interrupted),
        cmocka_unit_test(md_defused),
        cmocka_unit_test(write_all),
        cmocka_unit_test(write_all_odd_targets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
