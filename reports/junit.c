/*
 * junit.c - the JUnit XML report, the format CI systems render: a
 * <testsuites> root with totals, one <testsuite> per scenario, one <testcase>
 * per faulted trial ("SCENARIO seed N [trial K]", classname the scenario).
 * Broken expectations become one <failure> whose message names each metric,
 * value and limit; a trial that could not run is an <error>. A scenario
 * `rebound run` skipped (suite.skipped) is a <testsuite> of one <skipped>
 * case, and an interrupted suite (suite.complete false) adds an <error> case
 * "suite interrupted". Times are in seconds. The structure follows the common Jenkins/Ant
 * JUnit schema (tests/fixtures/junit.xsd checks it).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* Joins broken expectations with "; " into a buffer. */
struct joined {
    char buf[2048];
    size_t len;
};

static void join_one(const char *text, void *arg)
{
    struct joined *j = arg;
    int n;

    if (j->len >= sizeof(j->buf) - 1)
        return;
    n = snprintf(j->buf + j->len, sizeof(j->buf) - j->len, "%s%s", j->len ? "; " : "",
                 text);
    if (n > 0)
        j->len += (size_t)n;
    if (j->len >= sizeof(j->buf) - 1) {
        /* cut: back to a whole UTF-8 character, and nothing more joins */
        rb__utf8_trim(j->buf);
        j->len = sizeof(j->buf) - 1;
    }
}

static void body_line(const char *text, void *arg)
{
    FILE *out = arg;
    char words[600];

    fputs("broken: ", out);
    rb__put_xml(out, text);
    rb__broken_words(text, words, sizeof(words));
    if (words[0]) {
        fputs(" (", out);
        rb__put_xml(out, words);
        fputc(')', out);
    }
    fputs("&#10;", out);
}

static double trial_seconds(json_t *rec)
{
    double ms;

    if (rb__jnum(rec, "wall_ms", &ms) && ms > 0)
        return ms / 1000.0;
    if (rb__jnum(json_object_get(rec, "faulted"), "wall_ms", &ms) && ms > 0)
        return ms / 1000.0;
    return 0;
}

/* A short account of the trial for <system-out>. */
static void trial_summary(FILE *out, const struct rb__trial *t)
{
    json_t *rec = t->rec;
    json_t *ctx = json_object_get(json_object_get(rec, "context"), "preserved");
    char a[48];
    double v;

    fputs("outcome ", out);
    rb__put_xml(out, t->outcome_text);
    if (rb__jnum(rec, "recovery_ms", &v))
        fprintf(out, ", recovery %s ms", rb__fmt_num(a, v, 1));
    else
        fputs(", recovery unknown", out);
    if (rb__jnum(rec, "steps_redone", &v))
        fprintf(out, ", redone %s", rb__fmt_num(a, v, 0));
    if (rb__jnum(rec, "inflight_lost", &v))
        fprintf(out, " (+%s in flight)", rb__fmt_num(a, v, 0));
    if (json_is_boolean(ctx))
        fprintf(out, ", context %s", json_is_true(ctx) ? "preserved" : "lost");
    if (rb__jnum(rec, "time_lost_ms", &v))
        fprintf(out, ", time lost %s ms", rb__fmt_num(a, v, 1));
    fputs("&#10;", out);
}

static void write_case(FILE *out, const struct rb__trial *t)
{
    struct joined j;
    char secs[48];

    fputs("    <testcase name=\"", out);
    rb__put_xml(out, t->scenario);
    if (t->seed >= 0)
        fprintf(out, " seed %lld", t->seed);
    fprintf(out, " [trial %d]\" classname=\"", t->k);
    rb__put_xml(out, t->scenario);
    fprintf(out, "\" time=\"%s\">\n", rb__fmt_num(secs, trial_seconds(t->rec), 3));
    memset(&j, 0, sizeof(j));
    rb__broken_each(t->rec, join_one, &j);
    if (t->verdict == RB__ERROR) {
        fputs("      <error message=\"", out);
        rb__put_xml(out, j.len ? j.buf : "the trial could not run");
        fputs("\" type=\"error\">", out);
        fputs("the trial could not run: ", out);
        rb__put_xml(out, j.len ? j.buf : "no reason recorded");
        fputs("</error>\n", out);
    } else if (t->verdict == RB__FAIL) {
        fputs("      <failure message=\"", out);
        rb__put_xml(out, j.len ? j.buf : "the trial failed (no reason recorded)");
        fputs("\" type=\"expectation\">", out);
        rb__broken_each(t->rec, body_line, out);
        trial_summary(out, t);
        fputs("</failure>\n", out);
    }
    fputs("      <system-out>", out);
    trial_summary(out, t);
    fputs("</system-out>\n", out);
    fputs("    </testcase>\n", out);
}

struct skip_ctx {
    FILE *out;
    size_t id; /* the next testsuite id */
};

/* A scenario this machine could not run: a testsuite of one skipped case. */
static void skipped_suite(const char *scenario, const char *why, void *arg)
{
    struct skip_ctx *c = arg;

    fputs("  <testsuite name=\"", c->out);
    rb__put_xml(c->out, scenario);
    fprintf(c->out,
            "\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"1\" time=\"0\" "
            "id=\"%zu\">\n    <testcase name=\"",
            c->id++);
    rb__put_xml(c->out, scenario);
    fputs(" (skipped)\" classname=\"", c->out);
    rb__put_xml(c->out, scenario);
    fputs("\" time=\"0\">\n      <skipped message=\"", c->out);
    rb__put_xml(c->out, why ? why : "this machine cannot run it");
    fputs("\"/>\n    </testcase>\n  </testsuite>\n", c->out);
}

enum rb_err rb__write_junit(const struct rb__suite *s, FILE *out, struct rb_error *err)
{
    struct skip_ctx sk;
    size_t n_skipped = rb__skipped_each(s, NULL, NULL);
    int interrupted = s->complete == 0;
    double total = 0;
    char secs[48];
    size_t i, j;

    (void)err;
    for (i = 0; i < s->n_t; i++)
        total += trial_seconds(s->t[i].rec);
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    fprintf(out,
            "<testsuites name=\"rebound\" tests=\"%zu\" failures=\"%d\" errors=\"%d\" "
            "time=\"%s\">\n",
            s->n_t + n_skipped + (size_t)interrupted, s->failed, s->errors + interrupted,
            rb__fmt_num(secs, total, 3));
    for (i = 0; i < s->n_s; i++) {
        const struct rb__scen *sc = &s->s[i];
        double st = 0;

        for (j = 0; j < sc->n; j++)
            st += trial_seconds(s->t[sc->trials[j]].rec);
        fprintf(out, "  <testsuite name=\"");
        rb__put_xml(out, sc->name);
        fprintf(out,
                "\" tests=\"%zu\" failures=\"%d\" errors=\"%d\" skipped=\"0\" "
                "time=\"%s\" id=\"%zu\"",
                sc->n, sc->failed, sc->errors, rb__fmt_num(secs, st, 3), i);
        if (sc->file) {
            fputs(" file=\"", out);
            rb__put_xml(out, sc->file);
            fputc('"', out);
        }
        fputs(">\n", out);
        if (sc->description) {
            fputs("    <properties>\n      <property name=\"description\" value=\"", out);
            rb__put_xml(out, sc->description);
            fputs("\"/>\n    </properties>\n", out);
        }
        for (j = 0; j < sc->n; j++)
            write_case(out, &s->t[sc->trials[j]]);
        fputs("  </testsuite>\n", out);
    }
    sk.out = out;
    sk.id = s->n_s;
    rb__skipped_each(s, skipped_suite, &sk);
    if (interrupted)
        fprintf(
            out,
            "  <testsuite name=\"rebound suite\" tests=\"1\" failures=\"0\" "
            "errors=\"1\" skipped=\"0\" time=\"0\" id=\"%zu\">\n"
            "    <testcase name=\"suite interrupted\" classname=\"rebound\" "
            "time=\"0\">\n"
            "      <error message=\"suite interrupted: results are partial\" "
            "type=\"interrupted\">the suite was interrupted (suite.complete is false): "
            "these are the results of the trials that finished, and the rest never "
            "ran</error>\n    </testcase>\n  </testsuite>\n",
            sk.id);
    fputs("</testsuites>\n", out);
    return RB_OK;
}
