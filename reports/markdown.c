/*
 * markdown.c - the Markdown summary, short enough for a pull-request comment
 * or a CI step summary: the suite verdict and resilience score on top, one
 * table row per scenario (failures first; capped), then a capped list of the
 * broken expectations of failing trials. An interrupted suite says so, and
 * the scenarios `rebound run` skipped (suite.skipped) are listed with why. Everything
 * taken from results.json is escaped, so a name cannot break the table or inject markup.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define MD_MAX_ROWS 40   /* scenarios in the table */
#define MD_MAX_BROKEN 20 /* lines in the broken list */

static const char *verdict_word(enum rb__verdict v)
{
    return v == RB__PASS ? "PASS" : v == RB__FAIL ? "FAIL" : "ERROR";
}

static void put_outcomes(FILE *out, const struct rb__scen *sc)
{
    int o, first = 1;

    for (o = 0; o < RB__O_COUNT; o++) {
        if (!sc->outcomes[o])
            continue;
        fprintf(out, "%s%d %s", first ? "" : ", ", sc->outcomes[o],
                rb__outcome_name((enum rb__outcome)o));
        first = 0;
    }
    if (first)
        fputs("no trials", out);
}

static void put_stat(FILE *out, const struct rb__stats *st, int pct, const char *unit)
{
    char a[48], b[48];

    if (st->n == 0)
        fputs("unknown", out);
    else if (pct)
        fprintf(out, "%s / %s%s", rb__fmt_num(a, st->p50, 0), rb__fmt_num(b, st->p95, 0),
                unit);
    else if (st->n == 1 || st->p50 == st->max)
        fprintf(out, "%s%s", rb__fmt_num(a, st->max, 0), unit);
    else
        fprintf(out, "%s (max %s)%s", rb__fmt_num(a, st->p50, 0),
                rb__fmt_num(b, st->max, 0), unit);
}

static void put_context(FILE *out, const struct rb__scen *sc)
{
    if (sc->ctx_known == 0)
        fputs("unknown", out);
    else if (sc->ctx_lost == 0)
        fputs("preserved", out);
    else
        fprintf(out, "lost in %d of %d", sc->ctx_lost, sc->ctx_known);
}

struct broken_list {
    FILE *out;
    const struct rb__trial *t;
    int shown; /* lines written */
    int more;  /* lines left out */
};

static void broken_line(const char *text, void *arg)
{
    struct broken_list *b = arg;

    if (b->shown >= MD_MAX_BROKEN) {
        b->more++;
        return;
    }
    fputs("- **", b->out);
    rb__put_md(b->out, b->t->scenario);
    fputs("**", b->out);
    if (b->t->seed >= 0)
        fprintf(b->out, " seed %lld", b->t->seed);
    fprintf(b->out, " \\[trial %d\\]: ", b->t->k);
    if (b->t->verdict == RB__ERROR)
        fputs("could not run: ", b->out);
    rb__put_md(b->out, text);
    fputc('\n', b->out);
    b->shown++;
}

/* The reduction against a run without the replay log, one line per scenario
 * that has one (capped with the table). */
static void put_baselines(FILE *out, const struct rb__suite *s)
{
    char a[48];
    size_t i, shown = 0;

    for (i = 0; i < s->n_s && shown < MD_MAX_ROWS; i++) {
        const struct rb__scen *sc = &s->s[s->order[i]];

        if (!sc->has_reduction[0] && !sc->has_reduction[1])
            continue;
        if (shown++ == 0)
            fputs("\n**Against a run without the replay log** (reduction of the p50)\n\n",
                  out);
        fputs("- **", out);
        rb__put_md(out, sc->name);
        fputs("**: recovery ", out);
        if (sc->has_reduction[0])
            fprintf(out, "%s %%", rb__fmt_num(a, sc->reduction[0], 1));
        else
            fputs("unknown", out);
        fputs(", steps redone ", out);
        if (sc->has_reduction[1])
            fprintf(out, "%s %%\n", rb__fmt_num(a, sc->reduction[1], 1));
        else
            fputs("unknown\n", out);
    }
}

struct skip_list {
    FILE *out;
    int shown, more;
};

static void skipped_line(const char *scenario, const char *why, void *arg)
{
    struct skip_list *k = arg;

    if (k->shown >= MD_MAX_BROKEN) {
        k->more++;
        return;
    }
    if (k->shown++ == 0)
        fputs("\n**Skipped: this machine cannot run them**\n\n", k->out);
    fputs("- **", k->out);
    rb__put_md(k->out, scenario);
    fputs("**", k->out);
    if (why) {
        fputs(": ", k->out);
        rb__put_md(k->out, why);
    }
    fputc('\n', k->out);
}

enum rb_err rb__write_md(const struct rb__suite *s, FILE *out, struct rb_error *err)
{
    struct skip_list k;
    struct broken_list b;
    char a[48];
    size_t i, j, rows = 0;
    double v;

    (void)err;
    fprintf(out, "## rebound resilience suite: %s\n\n", verdict_word(s->verdict));
    if (s->has_score)
        fprintf(out, "**resilience score %s**", rb__fmt_num(a, s->score, 0));
    else
        fputs("**resilience score unknown**", out);
    fprintf(out, " · %zu trial%s: %d passed, %d failed", s->n_t, s->n_t == 1 ? "" : "s",
            s->passed, s->failed);
    if (s->errors)
        fprintf(out, ", %d could not run", s->errors);
    fprintf(out, " · %zu scenario%s", s->n_s, s->n_s == 1 ? "" : "s");
    if (rb__jnum(json_object_get(s->root, "suite"), "wall_ms", &v))
        fprintf(out, " · %s s", rb__fmt_num(a, v / 1000.0, 1));
    fputc('\n', out);
    if (s->complete == 0)
        fputs("\n**The suite was interrupted: these are the results so far.**\n", out);
    memset(&k, 0, sizeof(k));
    k.out = out;
    rb__skipped_each(s, skipped_line, &k);
    if (k.more)
        fprintf(out, "- … and %d more\n", k.more);
    fputs(
        "\n| scenario | outcome | recovery p50 / p95 | steps redone | context | verdict "
        "|\n|---|---|---|---|---|---|\n",
        out);
    for (i = 0; i < s->n_s && rows < MD_MAX_ROWS; i++, rows++) {
        const struct rb__scen *sc = &s->s[s->order[i]];

        fputs("| ", out);
        rb__put_md(out, sc->name);
        fputs(" | ", out);
        put_outcomes(out, sc);
        fputs(" | ", out);
        if (sc->m[RB__M_RECOVERY].n == 0 && sc->m[RB__M_RECOVERY_WIRE].n > 0)
            put_stat(out, &sc->m[RB__M_RECOVERY_WIRE], 1, " ms to the first new request");
        else
            put_stat(out, &sc->m[RB__M_RECOVERY], 1, " ms");
        fputs(" | ", out);
        put_stat(out, &sc->m[RB__M_REDONE], 0, "");
        fputs(" | ", out);
        put_context(out, sc);
        fprintf(out, " | %s%s%s |\n", sc->verdict == RB__PASS ? "" : "**",
                verdict_word(sc->verdict), sc->verdict == RB__PASS ? "" : "**");
    }
    if (s->n_s > rows)
        fprintf(out, "\n%zu more scenarios not shown (see report.html).\n",
                s->n_s - rows);

    put_baselines(out, s);
    memset(&b, 0, sizeof(b));
    b.out = out;
    if (s->failed || s->errors) {
        fputs("\n**Broken expectations**\n\n", out);
        for (i = 0; i < s->n_s; i++) {
            const struct rb__scen *sc = &s->s[s->order[i]];

            for (j = 0; j < sc->n; j++) {
                const struct rb__trial *t = &s->t[sc->trials[j]];

                if (t->verdict == RB__PASS)
                    continue;
                b.t = t;
                if (rb__broken_each(t->rec, broken_line, &b) == 0)
                    broken_line(t->verdict == RB__ERROR ? "no reason recorded"
                                                        : "failed (no reason recorded)",
                                &b);
            }
        }
        if (b.more)
            fprintf(out, "- … and %d more (see report.html)\n", b.more);
    }
    return RB_OK;
}
