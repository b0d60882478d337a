/*
 * html.c - the HTML report: one self-contained page (inline CSS, inline SVG
 * from svg.c, no script, a Content-Security-Policy that forbids any fetch)
 * for the person debugging a failure. It shows the suite verdict and
 * resilience score, a summary table (failures first), and per scenario a
 * recovery-time chart over its trials, a table of every metric, and per
 * trial the broken expectations in words, a timeline drawn from its events
 * and a table of its own metrics and faults. Big trials are aggregated and
 * long scenarios capped; the page says so where it happens.
 */
#include "internal.h"
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTML_MAX_TIMELINES 50 /* timelines per scenario (failing trials first) */
#define TL_MAX_BARS 600     /* step bars before the timeline turns into a density strip */
#define TL_MAX_LANES 16     /* rows of step bars */
#define CHART_MAX_DOTS 2000 /* dots in a recovery chart */

#define TL_W 940.0    /* timeline width */
#define TL_LEFT 80.0  /* room for row labels */
#define TL_RIGHT 16.0 /* room on the right */
#define LANE_H 10.0
#define LANE_GAP 2.0

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "color:#1d2433;background:#f6f7f9}"
    "main{max-width:1000px;margin:0 auto;padding:16px 24px 48px}"
    "h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:0 0 6px}"
    "h3{font-size:15px;margin:0 0 6px}"
    ".suite{padding:16px 20px;border-radius:8px;color:#fff;margin:16px 0}"
    ".suite.pass{background:#1f7a4d}.suite.fail,.suite.error{background:#b3261e}"
    ".suite .verdict{font-size:28px;font-weight:700;margin:0}"
    ".suite p{margin:4px 0}"
    "section.scenario{background:#fff;border:1px solid #d9dde3;border-radius:8px;"
    "padding:14px 18px;margin:18px 0}"
    "section.scenario.fail,section.scenario.error{border-left:6px solid #b3261e}"
    "section.scenario.pass{border-left:6px solid #1f7a4d}"
    "article.trial{border-top:1px solid #e4e7eb;padding:12px 0 4px;margin-top:12px}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "th,td{border:1px solid #d9dde3;padding:3px 8px;text-align:left;"
    "vertical-align:top}"
    "th{background:#eef0f3;font-weight:600}"
    ".scroll{overflow-x:auto}table.faults{font-size:12px}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".tag{display:inline-block;padding:0 6px;border-radius:4px;font-weight:600;"
    "font-size:12px}"
    ".tag.pass{background:#d6f0e0;color:#14532d}"
    ".tag.fail,.tag.error{background:#fbd9d6;color:#7f1d1d}"
    "ul.broken{margin:6px 0;padding-left:20px;color:#7f1d1d}"
    "ul.broken code{background:#fbeceb;padding:0 4px;border-radius:3px}"
    ".muted,figcaption{color:#5b6472;font-size:12px}"
    "figure{margin:8px 0}"
    "svg{display:block;max-width:100%;height:auto;background:#fff}"
    "svg text{font:10px system-ui,sans-serif;fill:#1d2433}"
    "svg .axis line,svg .grid{stroke:#c4c9d1;stroke-width:1}"
    "svg .bar{fill:#4a78c2}svg .bar.redone{fill:#e8870e}"
    "svg .bar.failed{fill:#b3261e}svg .bar.lost{fill:#9aa3b0}"
    "svg .bar.open{fill:#c3cede}"
    "svg .replay{fill:#8fbf9f}svg .cached{fill:#b59ad6}"
    "svg .fault{fill:#d9363e;fill-opacity:.18;stroke:#d9363e;stroke-opacity:.6}"
    "svg .restart{stroke:#1d2433;stroke-width:1.5;stroke-dasharray:4 3}"
    "svg .recovery{stroke:#7a3fb0;stroke-width:2}"
    "svg .recovery.none{stroke-dasharray:3 3}"
    "svg .dot{fill:#4a78c2;fill-opacity:.75}svg .dot.fail{fill:#b3261e}"
    "svg .dot.baseline{fill:none;stroke:#5b6472}"
    "svg .p50{stroke:#1f7a4d;stroke-width:2}svg .p95{stroke:#b3261e;stroke-width:2;"
    "stroke-dasharray:5 3}"
    ".legend span{display:inline-block;margin-right:12px}"
    ".legend i{display:inline-block;width:12px;height:10px;margin-right:4px;"
    "vertical-align:middle}";

static const char *verdict_class(enum rb__verdict v)
{
    return v == RB__PASS ? "pass" : v == RB__FAIL ? "fail" : "error";
}

static const char *verdict_word(enum rb__verdict v)
{
    return v == RB__PASS ? "PASS" : v == RB__FAIL ? "FAIL" : "ERROR";
}

/* "12.3 ms" or "1.52 s" for an axis or a label. */
static const char *fmt_ms(char buf[48], double ms)
{
    char n[48];

    if (fabs(ms) >= 10000)
        snprintf(buf, 48, "%s s", rb__fmt_num(n, ms / 1000.0, 1));
    else if (fabs(ms) >= 1000)
        snprintf(buf, 48, "%s s", rb__fmt_num(n, ms / 1000.0, 2));
    else
        snprintf(buf, 48, "%s ms", rb__fmt_num(n, ms, ms < 10 ? 2 : 1));
    return buf;
}

static void put_trial_name(FILE *out, const struct rb__trial *t)
{
    if (t->seed >= 0)
        fprintf(out, "seed %lld ", t->seed);
    fprintf(out, "[trial %d]", t->k);
}

/* ---- axis -------------------------------------------------------------- */

static double nice_step(double span)
{
    double raw = span / 6.0, mag, f;

    if (raw <= 0)
        return 1;
    mag = pow(10, floor(log10(raw)));
    f = raw / mag;
    if (f <= 1)
        return mag;
    if (f <= 2)
        return 2 * mag;
    if (f <= 5)
        return 5 * mag;
    return 10 * mag;
}

/* An axis from 0 to `span` ms along [x0, x1] at height y, with grid lines
 * up to `top`. */
static void axis(FILE *out, double x0, double x1, double y, double top, double span)
{
    double step = nice_step(span), t;
    char b[48];
    int i;

    rb_svg_group(out, "axis");
    rb_svg_line(out, x0, y, x1, y, NULL, NULL);
    for (i = 0, t = 0; t <= span * 1.0001 && i < 64; i++, t = step * i) {
        double x = x0 + (x1 - x0) * t / span;

        rb_svg_line(out, x, top, x, y + 4, "grid", NULL);
        rb_svg_text(out, x, y + 15, "middle", NULL, fmt_ms(b, t));
    }
    rb_svg_group_end(out);
}

/* ---- timelines --------------------------------------------------------- */

enum bar_state { BAR_COMMITTED = 0, BAR_FAILED, BAR_LOST, BAR_OPEN };

struct bar {
    const char *step; /* borrowed */
    long attempt;
    double t0, t1;
    enum bar_state state;
    int redone; /* executed again after a fault, committed before it */
    int lane;
};

struct commit {
    const char *step;
    double t;
};

struct tl_fault {
    double t0, t1;    /* shaded span */
    const char *form; /* borrowed, may be NULL */
    const char *trig; /* borrowed, may be NULL */
    long index;       /* the event's "fault" (supervisor) index, or -1 */
};

struct timeline {
    struct bar *bars;
    size_t n_bars, cap_bars;
    struct commit *commits; /* first commit of each step, sorted by step */
    size_t n_commits;
    double *replays; /* step.replay times */
    size_t n_replays;
    double *cached; /* step.cached times */
    size_t n_cached;
    struct tl_fault *faults;
    size_t n_faults;
    double *restarts; /* proc.start after the first */
    long *restart_attempt;
    size_t n_restarts;
    double end; /* the last event's time */
    int lanes;
    size_t overlapped; /* bars drawn over another for want of lanes */
};

static void timeline_release(struct timeline *tl)
{
    free(tl->bars);
    free(tl->commits);
    free(tl->replays);
    free(tl->cached);
    free(tl->faults);
    free(tl->restarts);
    free(tl->restart_attempt);
    memset(tl, 0, sizeof(*tl));
}

static long ev_attempt(json_t *e)
{
    long long v;

    return rb__jint(e, "attempt", &v) ? (long)v : 0;
}

static int cmp_commit(const void *a, const void *b)
{
    const struct commit *x = a, *y = b;
    int c = strcmp(x->step, y->step);

    if (c)
        return c;
    return (x->t > y->t) - (x->t < y->t);
}

static const struct commit *find_commit(const struct timeline *tl, const char *step)
{
    struct commit key = {step, -1e300};
    size_t lo = 0, hi = tl->n_commits;

    /* The first entry not below (step, -inf): the step's earliest commit. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (cmp_commit(&tl->commits[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tl->n_commits && strcmp(tl->commits[lo].step, step) == 0)
        return &tl->commits[lo];
    return NULL;
}

/* Closes the latest open bar of (step, attempt); returns 1 when one was. */
static int close_bar(struct timeline *tl, const char *step, long attempt, double t,
                     enum bar_state st)
{
    size_t i = tl->n_bars;

    while (i-- > 0) {
        struct bar *b = &tl->bars[i];

        if (b->state == BAR_OPEN && b->attempt == attempt && strcmp(b->step, step) == 0) {
            b->t1 = t;
            b->state = st;
            return 1;
        }
    }
    return 0;
}

/* Builds the timeline from a trial's events. Returns -1 when out of memory. */
static int timeline_build(struct timeline *tl, json_t *events, json_t *faults)
{
    size_t n = json_array_size(events), i, j, starts = 0;
    double t;

    memset(tl, 0, sizeof(*tl));
    tl->bars = calloc(n + 1, sizeof(*tl->bars));
    tl->commits = calloc(n + 1, sizeof(*tl->commits));
    tl->replays = calloc(n + 1, sizeof(double));
    tl->cached = calloc(n + 1, sizeof(double));
    tl->faults = calloc(n + json_array_size(faults) + 1, sizeof(*tl->faults));
    tl->restarts = calloc(n + 1, sizeof(double));
    tl->restart_attempt = calloc(n + 1, sizeof(long));
    if (!tl->bars || !tl->commits || !tl->replays || !tl->cached || !tl->faults ||
        !tl->restarts || !tl->restart_attempt)
        return -1;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(events, i);
        const char *kind = rb__jstr(e, "kind");
        const char *step = rb__jstr(e, "step");

        if (!kind || !rb__jnum(e, "t_ms", &t))
            continue;
        if (t > tl->end)
            tl->end = t;
        if (strcmp(kind, "step.start") == 0 && step) {
            struct bar *b = &tl->bars[tl->n_bars++];

            b->step = step;
            b->attempt = ev_attempt(e);
            b->t0 = b->t1 = t;
            b->state = BAR_OPEN;
        } else if (strcmp(kind, "step.commit") == 0 && step) {
            close_bar(tl, step, ev_attempt(e), t, BAR_COMMITTED);
            tl->commits[tl->n_commits].step = step;
            tl->commits[tl->n_commits++].t = t;
        } else if (strcmp(kind, "step.fail") == 0 && step) {
            close_bar(tl, step, ev_attempt(e), t, BAR_FAILED);
        } else if (strcmp(kind, "step.replay") == 0) {
            tl->replays[tl->n_replays++] = t;
        } else if (strcmp(kind, "step.cached") == 0) {
            tl->cached[tl->n_cached++] = t;
        } else if (strcmp(kind, "proc.start") == 0) {
            if (starts++ > 0) {
                tl->restarts[tl->n_restarts] = t;
                tl->restart_attempt[tl->n_restarts++] = ev_attempt(e);
            }
        } else if (strcmp(kind, "proc.exit") == 0) {
            long a = ev_attempt(e);

            for (j = 0; j < tl->n_bars; j++)
                if (tl->bars[j].state == BAR_OPEN && tl->bars[j].attempt == a) {
                    tl->bars[j].t1 = t;
                    tl->bars[j].state = BAR_LOST;
                }
        } else if (strcmp(kind, "fault.inject") == 0) {
            struct tl_fault *f = &tl->faults[tl->n_faults++];
            long long idx;

            f->t0 = f->t1 = t;
            f->form = rb__jstr(e, "form");
            f->trig = rb__jstr(e, "trigger");
            f->index = rb__jint(e, "fault", &idx) ? (long)idx : -1;
        } else if (strcmp(kind, "fault.heal") == 0) {
            long long idx;
            long fi = rb__jint(e, "fault", &idx) ? (long)idx : -1;

            for (j = tl->n_faults; j-- > 0;)
                if (tl->faults[j].index == fi && tl->faults[j].t1 == tl->faults[j].t0) {
                    tl->faults[j].t1 = t;
                    break;
                }
        }
    }
    for (j = 0; j < tl->n_bars; j++)
        if (tl->bars[j].state == BAR_OPEN)
            tl->bars[j].t1 = tl->end;
    /* Faults with no event (older files): from the record's inject_ms. */
    if (tl->n_faults == 0) {
        for (j = 0; j < json_array_size(faults); j++) {
            json_t *f = json_array_get(faults, j);

            if (!rb__jnum(f, "inject_ms", &t))
                continue;
            tl->faults[tl->n_faults].t0 = tl->faults[tl->n_faults].t1 = t;
            tl->faults[tl->n_faults].form = rb__jstr(f, "form");
            tl->faults[tl->n_faults].trig = rb__jstr(f, "trigger");
            tl->faults[tl->n_faults++].index = -1;
            if (t > tl->end)
                tl->end = t;
        }
    }
    /* A fault not healed is shaded until its recovery, else the next start. */
    for (j = 0; j < tl->n_faults; j++) {
        struct tl_fault *f = &tl->faults[j];
        double rec;

        if (f->t1 > f->t0)
            continue;
        if (rb__jnum(json_array_get(faults, j), "recovery_ms", &rec)) {
            f->t1 = f->t0 + rec;
            continue;
        }
        for (i = 0; i < tl->n_restarts; i++)
            if (tl->restarts[i] > f->t0) {
                f->t1 = tl->restarts[i];
                break;
            }
    }
    /* Redone: started after a fault, the step committed before that fault. */
    qsort(tl->commits, tl->n_commits, sizeof(*tl->commits), cmp_commit);
    for (i = 0; i < tl->n_bars; i++) {
        struct bar *b = &tl->bars[i];
        const struct commit *c = find_commit(tl, b->step);

        if (!c || c->t >= b->t0)
            continue;
        for (j = 0; j < tl->n_faults; j++)
            if (tl->faults[j].t0 >= c->t && tl->faults[j].t0 <= b->t0) {
                b->redone = 1;
                break;
            }
    }
    return 0;
}

static double tl_x(double t, double end)
{
    return TL_LEFT + (TL_W - TL_LEFT - TL_RIGHT) * (end > 0 ? t / end : 0);
}

/* Packs the bars into lanes by pixel position. */
static void pack_lanes(struct timeline *tl)
{
    double lane_end[TL_MAX_LANES];
    size_t i;
    int l;

    tl->lanes = 0;
    for (i = 0; i < tl->n_bars; i++) {
        struct bar *b = &tl->bars[i];
        double x0 = tl_x(b->t0, tl->end), x1 = tl_x(b->t1, tl->end);
        int best = 0;

        /* Bars touching end to start share a lane (the drawn 1 px minimum
         * may overlap by less than a pixel). */
        for (l = 0; l < tl->lanes; l++)
            if (lane_end[l] <= x0 + 0.5)
                break;
        if (l == tl->lanes && tl->lanes < TL_MAX_LANES)
            tl->lanes++;
        else if (l == tl->lanes) {
            for (l = 1; l < tl->lanes; l++)
                if (lane_end[l] < lane_end[best])
                    best = l;
            l = best;
            tl->overlapped++;
        }
        lane_end[l] = x1;
        b->lane = l;
    }
    if (tl->lanes == 0)
        tl->lanes = 1;
}

/* Marks on one row: one rect per 2-pixel bin holding any of the times. */
static void tick_row(FILE *out, const double *ts, size_t n, double end, double y,
                     const char *cls, const char *what)
{
    int bins = (int)((TL_W - TL_LEFT - TL_RIGHT) / 2) + 1, b;
    int *count = calloc((size_t)bins + 1, sizeof(int));
    char title[128];
    size_t i;

    if (!count)
        return;
    for (i = 0; i < n; i++) {
        b = rb__bin((tl_x(ts[i], end) - TL_LEFT) / 2, bins);
        if (b >= 0)
            count[b]++;
    }
    for (b = 0; b <= bins; b++) {
        if (!count[b])
            continue;
        snprintf(title, sizeof(title), "%d %s", count[b], what);
        rb_svg_rect(out, TL_LEFT + b * 2, y, 2, LANE_H, cls, title);
    }
    free(count);
}

static const char *state_class(const struct bar *b)
{
    if (b->redone)
        return b->state == BAR_FAILED ? "bar failed redone" : "bar redone";
    switch (b->state) {
    case BAR_FAILED:
        return "bar failed";
    case BAR_LOST:
        return "bar lost";
    case BAR_OPEN:
        return "bar open";
    default:
        return "bar";
    }
}

static const char *state_word(const struct bar *b)
{
    switch (b->state) {
    case BAR_FAILED:
        return "failed";
    case BAR_LOST:
        return "lost in flight";
    case BAR_OPEN:
        return "never ended";
    default:
        return "committed";
    }
}

/* Draws the step executions as a density strip: per 3-pixel bin, the count
 * of executions started there (redone ones stacked on top). */
static void density(FILE *out, const struct timeline *tl, double y, double h)
{
    int bins = (int)((TL_W - TL_LEFT - TL_RIGHT) / 3) + 1, b, max = 1;
    int *all = calloc((size_t)bins + 1, sizeof(int));
    int *red = calloc((size_t)bins + 1, sizeof(int));
    char title[128];
    size_t i;

    if (!all || !red)
        goto free_bins;
    for (i = 0; i < tl->n_bars; i++) {
        b = rb__bin((tl_x(tl->bars[i].t0, tl->end) - TL_LEFT) / 3, bins);
        if (b < 0)
            continue;
        all[b]++;
        red[b] += tl->bars[i].redone;
    }
    for (b = 0; b <= bins; b++)
        if (all[b] > max)
            max = all[b];
    for (b = 0; b <= bins; b++) {
        double ha, hr;

        if (!all[b])
            continue;
        ha = h * all[b] / max;
        hr = h * red[b] / max;
        snprintf(title, sizeof(title), "%d step executions started here, %d redone",
                 all[b], red[b]);
        rb_svg_rect(out, TL_LEFT + b * 3, y + h - ha, 3, ha - hr, "bar", title);
        if (red[b])
            rb_svg_rect(out, TL_LEFT + b * 3, y + h - hr, 3, hr, "bar redone", NULL);
    }
free_bins:
    free(all);
    free(red);
}

static void write_timeline(FILE *out, const struct rb__trial *t)
{
    json_t *faulted = json_object_get(t->rec, "faulted");
    json_t *events = json_object_get(faulted, "events");
    json_t *faults = json_object_get(t->rec, "faults");
    struct timeline tl;
    double lanes_h, y_rep, y_rec, y_axis, height, wall;
    int aggregate;
    size_t i, redone = 0;
    char title[512], a[48], b[48];

    fputs("<figure class=\"timeline\">\n", out);
    if (timeline_build(&tl, events, faults) != 0) {
        fputs("<p class=\"muted\">timeline left out: out of memory</p></figure>\n", out);
        timeline_release(&tl);
        return;
    }
    if (rb__jnum(faulted, "wall_ms", &wall) && wall > tl.end)
        tl.end = wall;
    if (json_array_size(events) == 0 || tl.end <= 0) {
        fputs("<p class=\"muted\">no events recorded for this trial: no timeline</p>"
              "</figure>\n",
              out);
        timeline_release(&tl);
        return;
    }
    aggregate = tl.n_bars > TL_MAX_BARS;
    if (!aggregate)
        pack_lanes(&tl);
    else
        tl.lanes = 4;
    for (i = 0; i < tl.n_bars; i++)
        redone += (size_t)tl.bars[i].redone;
    lanes_h = tl.lanes * (LANE_H + LANE_GAP);
    y_rep = 18 + lanes_h + 6;
    y_rec = y_rep + LANE_H + 12;
    y_axis = y_rec + 14;
    height = y_axis + 22;

    snprintf(title, sizeof(title), "timeline of %s seed %lld trial %d", t->scenario,
             t->seed, t->k);
    rb_svg_begin(out, TL_W, height, "timeline-svg", title);
    axis(out, TL_LEFT, TL_W - TL_RIGHT, y_axis, 14, tl.end);
    rb_svg_text(out, 4, 18 + LANE_H, NULL, "label", "steps");
    rb_svg_text(out, 4, y_rep + LANE_H - 1, NULL, "label", "replayed");
    rb_svg_text(out, 4, y_rec + 4, NULL, "label", "recovery");

    /* Faults behind everything. */
    rb_svg_group(out, "faults");
    for (i = 0; i < tl.n_faults; i++) {
        const struct tl_fault *f = &tl.faults[i];
        double x0 = tl_x(f->t0, tl.end), x1 = tl_x(f->t1, tl.end);

        snprintf(title, sizeof(title), "fault %s at %s%s%s, until %s",
                 f->form ? f->form : "?", fmt_ms(a, f->t0), f->trig ? " — trigger " : "",
                 f->trig ? f->trig : "", fmt_ms(b, f->t1));
        rb_svg_rect(out, x0, 12, x1 - x0 < 2 ? 2 : x1 - x0, y_rec - 12, "fault", title);
        rb_svg_text(out, x0 + 2, 10, NULL, "fault-label", f->form ? f->form : "fault");
    }
    rb_svg_group_end(out);

    rb_svg_group(out, "steps");
    if (aggregate) {
        density(out, &tl, 18, lanes_h - LANE_GAP);
    } else {
        for (i = 0; i < tl.n_bars; i++) {
            const struct bar *br = &tl.bars[i];
            double x0 = tl_x(br->t0, tl.end), x1 = tl_x(br->t1, tl.end);

            snprintf(title, sizeof(title), "%s (attempt %ld): %s → %s, %s%s", br->step,
                     br->attempt, fmt_ms(a, br->t0), fmt_ms(b, br->t1), state_word(br),
                     br->redone ? ", redone after a fault" : "");
            rb_svg_rect(out, x0, 18 + br->lane * (LANE_H + LANE_GAP),
                        x1 - x0 < 1 ? 1 : x1 - x0, LANE_H, state_class(br), title);
        }
    }
    rb_svg_group_end(out);

    rb_svg_group(out, "replays");
    tick_row(out, tl.replays, tl.n_replays, tl.end, y_rep, "replay", "steps replayed");
    tick_row(out, tl.cached, tl.n_cached, tl.end, y_rep, "cached",
             "steps served from the cache");
    rb_svg_group_end(out);

    rb_svg_group(out, "restarts");
    for (i = 0; i < tl.n_restarts; i++) {
        double x = tl_x(tl.restarts[i], tl.end);

        snprintf(title, sizeof(title), "restart: attempt %ld started at %s",
                 tl.restart_attempt[i], fmt_ms(a, tl.restarts[i]));
        rb_svg_line(out, x, 12, x, y_rec + 6, "restart", title);
    }
    rb_svg_group_end(out);

    rb_svg_group(out, "recoveries");
    for (i = 0; i < json_array_size(faults); i++) {
        json_t *f = json_array_get(faults, i);
        double inj, rec, x0, x1;

        if (!rb__jnum(f, "inject_ms", &inj))
            continue;
        x0 = tl_x(inj, tl.end);
        if (rb__jnum(f, "recovery_ms", &rec)) {
            x1 = tl_x(inj + rec, tl.end);
            snprintf(title, sizeof(title), "recovery %s (fault at %s)", fmt_ms(a, rec),
                     fmt_ms(b, inj));
            rb_svg_line(out, x0, y_rec, x1 < x0 + 1 ? x0 + 1 : x1, y_rec, "recovery",
                        title);
            rb_svg_line(out, x0, y_rec - 4, x0, y_rec + 4, "recovery", NULL);
            rb_svg_line(out, x1, y_rec - 4, x1, y_rec + 4, "recovery", NULL);
            rb_svg_text(out, x1 + 3 > TL_W - 190 ? x0 - 3 : x1 + 3, y_rec + 4,
                        x1 + 3 > TL_W - 190 ? "end" : NULL, "recovery-label", title);
        } else {
            x1 = tl_x(tl.end, tl.end);
            rb_svg_line(out, x0, y_rec, x1, y_rec, "recovery none",
                        "no new progress after this fault");
            rb_svg_text(out, x0 + 3, y_rec + 4, NULL, "recovery-label", "no recovery");
        }
    }
    rb_svg_group_end(out);
    rb_svg_end(out);

    fputs(
        "<figcaption class=\"legend\">"
        "<span><i style=\"background:#4a78c2\"></i>step (start → commit)</span>"
        "<span><i style=\"background:#e8870e\"></i>redone</span>"
        "<span><i style=\"background:#9aa3b0\"></i>lost in flight</span>"
        "<span><i style=\"background:#b3261e\"></i>failed</span>"
        "<span><i style=\"background:#8fbf9f\"></i>replayed</span>"
        "<span><i style=\"background:#f4c7c9\"></i>fault</span>"
        "<span>┆ restart</span><span><i style=\"background:#7a3fb0\"></i>recovery</span>",
        out);
    fprintf(out, " %zu step executions, %zu redone, %zu replayed, %zu restart%s.",
            tl.n_bars, redone, tl.n_replays, tl.n_restarts,
            tl.n_restarts == 1 ? "" : "s");
    if (aggregate)
        fprintf(out,
                " <b class=\"aggregated\">More than %d step executions: drawn as a "
                "density strip (executions started per 3 px; redone on top).</b>",
                TL_MAX_BARS);
    else if (tl.overlapped)
        fprintf(out,
                " <b class=\"aggregated\">%zu steps ran beside more than %d others and "
                "are drawn over them.</b>",
                tl.overlapped, TL_MAX_LANES);
    fputs("</figcaption>\n</figure>\n", out);
    timeline_release(&tl);
}

/* ---- recovery charts --------------------------------------------------- */

static void write_chart(FILE *out, const struct rb__suite *s, const struct rb__scen *sc)
{
    const struct rb__stats *st = &sc->m[RB__M_RECOVERY];
    double maxv = 0, v, x0 = 70, x1 = TL_W - 20, height, y_base = 40;
    size_t i, j, dots = 0, none = 0, base_n = 0;
    char title[512], a[48];

    for (i = 0; i < sc->n; i++) {
        json_t *rec = s->t[sc->trials[i]].rec;
        json_t *faults = json_object_get(rec, "faults");

        for (j = 0; j < json_array_size(faults); j++) {
            if (rb__jnum(json_array_get(faults, j), "recovery_ms", &v)) {
                if (v > maxv)
                    maxv = v;
            } else {
                none++;
            }
        }
        if (rb__jnum(json_object_get(rec, "baseline"), "recovery_ms", &v)) {
            base_n++;
            if (v > maxv)
                maxv = v;
        }
    }
    if (st->n > 0 && st->max > maxv)
        maxv = st->max;
    fputs("<figure class=\"recovery-chart\">\n", out);
    if (maxv <= 0 && st->n == 0) {
        fputs("<p class=\"muted\">no recovery time measured in this scenario</p>", out);
        if (none)
            fprintf(out, "<p class=\"muted\">%zu fault%s never recovered</p>", none,
                    none == 1 ? "" : "s");
        fputs("</figure>\n", out);
        return;
    }
    if (maxv <= 0)
        maxv = 1;
    maxv *= 1.05;
    height = base_n ? 110 : 86;
    snprintf(title, sizeof(title), "recovery times of %s", sc->name);
    rb_svg_begin(out, TL_W, height, "chart-svg", title);
    axis(out, x0, x1, height - 22, 8, maxv);
    rb_svg_text(out, 4, y_base + 4, NULL, "label", "rebound");
    if (base_n)
        rb_svg_text(out, 4, y_base + 28, NULL, "label", "no replay");
    rb_svg_group(out, "dots");
    for (i = 0; i < sc->n && dots < CHART_MAX_DOTS; i++) {
        const struct rb__trial *t = &s->t[sc->trials[i]];
        json_t *faults = json_object_get(t->rec, "faults");

        for (j = 0; j < json_array_size(faults) && dots < CHART_MAX_DOTS; j++) {
            double jitter = (double)((dots * 7) % 5) * 4 - 8;

            if (!rb__jnum(json_array_get(faults, j), "recovery_ms", &v))
                continue;
            snprintf(title, sizeof(title), "%s seed %lld [trial %d] fault %zu: %s",
                     t->scenario, t->seed, t->k, j + 1, fmt_ms(a, v));
            rb_svg_circle(out, x0 + (x1 - x0) * v / maxv, y_base + jitter, 4,
                          t->verdict == RB__PASS ? "dot" : "dot fail", title);
            dots++;
        }
        if (rb__jnum(json_object_get(t->rec, "baseline"), "recovery_ms", &v)) {
            snprintf(title, sizeof(title), "without replay: seed %lld [trial %d]: %s",
                     t->seed, t->k, fmt_ms(a, v));
            rb_svg_circle(out, x0 + (x1 - x0) * v / maxv, y_base + 24, 4, "dot baseline",
                          title);
        }
    }
    rb_svg_group_end(out);
    if (st->n > 0) {
        double xp50 = x0 + (x1 - x0) * st->p50 / maxv;
        double xp95 = x0 + (x1 - x0) * st->p95 / maxv;
        char lab[96], b[48];
        int near = xp95 - xp50<90, right = xp95> x1 - 90;

        snprintf(lab, sizeof(lab), "p50 %s", fmt_ms(a, st->p50));
        rb_svg_line(out, xp50, 14, xp50, y_base + 14, "p50", lab);
        if (!near)
            rb_svg_text(out, xp50, 12, "middle", "p50-label", lab);
        snprintf(lab, sizeof(lab), "p95 %s", fmt_ms(a, st->p95));
        rb_svg_line(out, xp95, 14, xp95, y_base + 14, "p95", lab);
        if (near)
            snprintf(lab, sizeof(lab), "p50 %s · p95 %s", fmt_ms(a, st->p50),
                     fmt_ms(b, st->p95));
        rb_svg_text(out, xp95, 12,
                    right  ? "end"
                    : near ? "start"
                           : "middle",
                    "p95-label", lab);
    }
    rb_svg_end(out);
    fprintf(out,
            "<figcaption>Recovery time of every fault over the scenario's %zu trial%s",
            sc->n, sc->n == 1 ? "" : "s");
    if (st->n)
        fprintf(out, " (%zu value%s; p50 green, p95 dashed red, nearest rank)", st->n,
                st->n == 1 ? "" : "s");
    if (base_n)
        fputs("; hollow dots: the same trials without the replay log", out);
    if (none)
        fprintf(out, "; %zu fault%s never recovered (not drawn)", none,
                none == 1 ? "" : "s");
    if (dots >= CHART_MAX_DOTS)
        fprintf(out, "; only the first %d drawn", CHART_MAX_DOTS);
    fputs(".</figcaption>\n</figure>\n", out);
}

/* ---- tables ------------------------------------------------------------ */

static void put_cell_num(FILE *out, json_t *v, int dec)
{
    char a[48];

    if (json_is_number(v))
        fprintf(out, "<td class=\"num\">%s</td>",
                rb__fmt_num(a, json_number_value(v), dec));
    else if (json_is_boolean(v))
        fprintf(out, "<td>%s</td>", json_is_true(v) ? "yes" : "no");
    else if (json_is_string(v)) {
        fputs("<td>", out);
        rb__put_xml(out, json_string_value(v));
        fputs("</td>", out);
    } else if (!v)
        fputs("<td class=\"muted\">unknown</td>", out);
    else if (json_is_null(v))
        fputs("<td class=\"muted\">none</td>", out);
    else {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

        fputs("<td><code>", out);
        rb__put_xml(out, d ? d : "?");
        fputs("</code></td>", out);
        free(d);
    }
}

/* A table of name/value pairs, KV_COLS pairs to a row. */
#define KV_COLS 3

struct kv {
    FILE *out;
    int col; /* pairs written in the open row */
};

static void row(struct kv *kv, const char *name, json_t *v, int dec)
{
    if (kv->col == 0)
        fputs("<tr>", kv->out);
    fputs("<th>", kv->out);
    rb__put_xml(kv->out, name);
    fputs("</th>", kv->out);
    put_cell_num(kv->out, v, dec);
    if (++kv->col == KV_COLS) {
        fputs("</tr>\n", kv->out);
        kv->col = 0;
    }
}

static void row_text(struct kv *kv, const char *name, const char *text)
{
    json_t *v = json_string(text ? text : "");

    row(kv, name, v, 0);
    json_decref(v);
}

static void kv_end(struct kv *kv)
{
    if (kv->col == 0)
        return;
    for (; kv->col < KV_COLS; kv->col++)
        fputs("<th></th><td></td>", kv->out);
    fputs("</tr>\n", kv->out);
    kv->col = 0;
}

static void stats_row(FILE *out, const char *name, const struct rb__stats *st, int dec)
{
    char a[48], b[48], c[48];

    fputs("<tr><th>", out);
    rb__put_xml(out, name);
    if (st->n == 0)
        fputs("</th><td class=\"muted\" colspan=\"4\">unknown (no values)</td></tr>\n",
              out);
    else
        fprintf(out,
                "</th><td class=\"num\">%s</td><td class=\"num\">%s</td>"
                "<td class=\"num\">%s</td><td class=\"num\">%zu</td></tr>\n",
                rb__fmt_num(a, st->p50, dec), rb__fmt_num(b, st->p95, dec),
                rb__fmt_num(c, st->max, dec), st->n);
}

static void scenario_metrics(FILE *out, const struct rb__scen *sc)
{
    int m, o;

    fputs("<table class=\"metrics scenario-metrics\"><tr><th>metric</th><th>p50</th>"
          "<th>p95</th><th>max</th><th>n</th></tr>\n",
          out);
    for (m = 0; m < RB__M_COUNT; m++)
        stats_row(out, rb__metric_name((enum rb__metric)m), &sc->m[m],
                  m == RB__M_COST ? 4 : 2); /* cost is in small units */
    fputs("</table>\n<p>outcomes: ", out);
    for (o = 0; o < RB__O_COUNT; o++)
        if (sc->outcomes[o])
            fprintf(out, "<span class=\"outcome\">%d %s</span> ", sc->outcomes[o],
                    rb__outcome_name((enum rb__outcome)o));
    fprintf(out, "· %d passed, %d failed", sc->passed, sc->failed);
    if (sc->errors)
        fprintf(out, ", %d could not run", sc->errors);
    fputs("</p>\n", out);
    if (sc->base[0].n || sc->base[1].n || sc->has_reduction[0] || sc->has_reduction[1]) {
        static const enum rb__metric which[2] = {RB__M_RECOVERY, RB__M_REDONE};
        char x[48];
        int k;

        fputs("<table class=\"metrics baseline\"><tr><th>against a run without the "
              "replay log</th><th>without replay, p50</th><th>with replay, p50</th>"
              "<th>reduction</th></tr>\n",
              out);
        for (k = 0; k < 2; k++) {
            const struct rb__stats *st = &sc->m[which[k]];

            fprintf(out, "<tr><th>%s</th>", rb__metric_name(which[k]));
            if (sc->base[k].n)
                fprintf(out, "<td class=\"num\">%s</td>",
                        rb__fmt_num(x, sc->base[k].p50, 2));
            else
                fputs("<td class=\"muted\">unknown</td>", out);
            if (st->n)
                fprintf(out, "<td class=\"num\">%s</td>", rb__fmt_num(x, st->p50, 2));
            else
                fputs("<td class=\"muted\">unknown</td>", out);
            if (sc->has_reduction[k])
                fprintf(out, "<td class=\"num reduction\">%s %%</td></tr>\n",
                        rb__fmt_num(x, sc->reduction[k], 1));
            else
                fputs("<td class=\"muted\">unknown</td></tr>\n", out);
        }
        fputs("</table>\n", out);
    }
}

/* Rows for every field of a trial record that is a number, a string or a
 * boolean, the known ones first. */
static void trial_metrics(FILE *out, json_t *rec)
{
    static const char *const known[] = {
        "outcome",
        "verdict",
        "recovery_ms",
        "steps_redone",
        "inflight_lost",
        "steps_executed",
        "golden_steps",
        "wall_ms",
        "golden_wall_ms",
        "time_lost_ms",
        "faults_fired",
        "faults_armed",
        "failure_context_delivered",
        "recovery_first_request_ms",
    };
    static const char *const skip[] = {"scenario", "file",         "seed",   "trial",
                                       "faults",   "faulted",      "golden", "broken",
                                       "context",  "side_effects", "llm",    "baseline"};
    json_t *ctx = json_object_get(rec, "context");
    json_t *se = json_object_get(rec, "side_effects");
    json_t *llm = json_object_get(rec, "llm");
    json_t *base = json_object_get(rec, "baseline");
    json_t *fd = json_object_get(rec, "faulted");
    const char *k;
    json_t *v;
    size_t i;

    struct kv kv = {out, 0};

    fputs("<table class=\"metrics trial-metrics\">\n", out);
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (json_object_get(rec, known[i]))
            row(&kv, known[i], json_object_get(rec, known[i]), 2);
    if (json_is_object(fd))
        row(&kv, "attempts", json_object_get(fd, "attempts"), 0);
    if (json_is_object(ctx)) {
        json_t *div = json_object_get(ctx, "divergence");

        row(&kv, "context preserved", json_object_get(ctx, "preserved"), 0);
        if (json_is_object(div)) {
            char what[512];

            snprintf(what, sizeof(what), "request %lld, attempt %lld: %s",
                     (long long)json_integer_value(json_object_get(div, "request")),
                     (long long)json_integer_value(json_object_get(div, "attempt")),
                     rb__jstr(div, "what") ? rb__jstr(div, "what") : "?");
            row_text(&kv, "context divergence", what);
        }
    }
    if (json_is_object(se)) {
        json_object_foreach(se, k, v)
        {
            char name[96];

            snprintf(name, sizeof(name), "side effects %s", k);
            row(&kv, name, v, 0);
        }
    }
    if (json_is_object(llm)) {
        json_object_foreach(llm, k, v)
        {
            char name[96];

            snprintf(name, sizeof(name), "llm %s", k);
            row(&kv, name, v, 4);
        }
    }
    if (json_is_object(base)) {
        json_object_foreach(base, k, v)
        {
            char name[96];

            if (strcmp(k, "dir") == 0)
                continue;
            snprintf(name, sizeof(name), "without replay: %s", k);
            row(&kv, name, v, 2);
        }
    }
    /* Fields this reader does not know yet, so nothing is hidden. */
    json_object_foreach(rec, k, v)
    {
        int shown = 0;

        for (i = 0; i < sizeof(known) / sizeof(known[0]) && !shown; i++)
            shown = strcmp(k, known[i]) == 0;
        for (i = 0; i < sizeof(skip) / sizeof(skip[0]) && !shown; i++)
            shown = strcmp(k, skip[i]) == 0;
        if (shown || json_is_null(v))
            continue;
        if (json_is_object(v)) {
            const char *k2;
            json_t *v2;

            json_object_foreach(v, k2, v2)
            {
                char name[160];

                snprintf(name, sizeof(name), "%s %s", k, k2);
                row(&kv, name, v2, 2);
            }
        } else {
            row(&kv, k, v, 2);
        }
    }
    kv_end(&kv);
    fputs("</table>\n", out);
}

static void faults_table(FILE *out, json_t *faults)
{
    static const char *const cols[] = {
        "form",        "trigger",   "mechanism",     "inject_ms",
        "recovery_ms", "detect_ms", "restart_ms",    "replay_ms",
        "redo_ms",     "inflight",  "inflight_step", "recovery_first_request_ms"};
    size_t i, c;

    if (json_array_size(faults) == 0)
        return;
    fputs("<div class=\"scroll\"><table class=\"metrics faults\"><tr>", out);
    for (c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
        fprintf(out, "<th>%s</th>", cols[c]);
    fputs("</tr>\n", out);
    for (i = 0; i < json_array_size(faults); i++) {
        json_t *f = json_array_get(faults, i);

        fputs("<tr>", out);
        for (c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
            put_cell_num(out, json_object_get(f, cols[c]), 2);
        fputs("</tr>\n", out);
    }
    fputs("</table></div>\n", out);
}

static void broken_item(const char *text, void *arg)
{
    FILE *out = arg;
    char words[600];

    rb__broken_words(text, words, sizeof(words));
    fputs("<li><code>", out);
    rb__put_xml(out, text);
    fputs("</code>", out);
    if (words[0]) {
        fputs(": ", out);
        rb__put_xml(out, words);
    }
    fputs("</li>\n", out);
}

static void skipped_item(const char *scenario, const char *why, void *arg)
{
    FILE *out = arg;

    fputs("<li><b>", out);
    rb__put_xml(out, scenario);
    fputs("</b>", out);
    if (why) {
        fputs(": ", out);
        rb__put_xml(out, why);
    }
    fputs("</li>\n", out);
}

static void write_trial(FILE *out, const struct rb__suite *s, const struct rb__trial *t,
                        int timeline)
{
    fprintf(out, "<article class=\"trial %s\" id=\"trial-%zu\">\n<h3>",
            verdict_class(t->verdict), (size_t)(t - s->t));
    put_trial_name(out, t);
    fputs(" · <span class=\"outcome\">", out);
    rb__put_xml(out, t->outcome_text);
    fprintf(out, "</span> <span class=\"tag %s\">%s</span></h3>\n",
            verdict_class(t->verdict), verdict_word(t->verdict));
    if (t->verdict != RB__PASS) {
        fputs("<ul class=\"broken\">\n", out);
        if (t->verdict == RB__ERROR)
            fputs("<li>the trial could not run</li>\n", out);
        if (rb__broken_each(t->rec, broken_item, out) == 0)
            fputs("<li>no reason recorded</li>\n", out);
        fputs("</ul>\n", out);
    }
    if (timeline)
        write_timeline(out, t);
    trial_metrics(out, t->rec);
    faults_table(out, json_object_get(t->rec, "faults"));
    fputs("</article>\n", out);
}

static void put_stat_cell(FILE *out, const struct rb__stats *st, int pct)
{
    char a[48], b[48];

    if (st->n == 0)
        fputs("<td class=\"muted\">unknown</td>", out);
    else if (pct)
        fprintf(out, "<td class=\"num\">%s / %s ms</td>", rb__fmt_num(a, st->p50, 0),
                rb__fmt_num(b, st->p95, 0));
    else if (st->n == 1 || st->p50 == st->max)
        fprintf(out, "<td class=\"num\">%s</td>", rb__fmt_num(a, st->max, 0));
    else
        fprintf(out, "<td class=\"num\">%s (max %s)</td>", rb__fmt_num(a, st->p50, 0),
                rb__fmt_num(b, st->max, 0));
}

static void summary_table(FILE *out, const struct rb__suite *s)
{
    size_t i;
    int o;

    fputs("<table id=\"summary\" class=\"summary\"><tr><th>scenario</th><th>outcome</th>"
          "<th>recovery p50 / p95</th><th>steps redone</th><th>context</th>"
          "<th>verdict</th></tr>\n",
          out);
    for (i = 0; i < s->n_s; i++) {
        const struct rb__scen *sc = &s->s[s->order[i]];
        int first = 1;

        fprintf(out, "<tr class=\"%s\"><td><a href=\"#scenario-%zu\">",
                verdict_class(sc->verdict), s->order[i]);
        rb__put_xml(out, sc->name);
        fputs("</a></td><td>", out);
        for (o = 0; o < RB__O_COUNT; o++)
            if (sc->outcomes[o]) {
                fprintf(out, "%s%d %s", first ? "" : ", ", sc->outcomes[o],
                        rb__outcome_name((enum rb__outcome)o));
                first = 0;
            }
        fputs("</td>", out);
        /* A black box writes no steps: its recovery is to the first new
         * request on the wire (the metrics table says which is which). */
        put_stat_cell(
            out,
            &sc->m[sc->m[RB__M_RECOVERY].n == 0 && sc->m[RB__M_RECOVERY_WIRE].n > 0
                       ? RB__M_RECOVERY_WIRE
                       : RB__M_RECOVERY],
            1);
        put_stat_cell(out, &sc->m[RB__M_REDONE], 0);
        if (sc->ctx_known == 0)
            fputs("<td class=\"muted\">unknown</td>", out);
        else if (sc->ctx_lost == 0)
            fputs("<td>preserved</td>", out);
        else
            fprintf(out, "<td>lost in %d of %d</td>", sc->ctx_lost, sc->ctx_known);
        fprintf(out, "<td><span class=\"tag %s\">%s</span></td></tr>\n",
                verdict_class(sc->verdict), verdict_word(sc->verdict));
    }
    fputs("</table>\n", out);
}

enum rb_err rb__write_html(const struct rb__suite *s, FILE *out, struct rb_error *err)
{
    const char *version = rb__jstr(s->root, "rebound");
    json_t *suite = json_object_get(s->root, "suite");
    char a[48];
    double v;
    size_t i, j;

    (void)err;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
          out);
    fprintf(out,
            "<title>rebound report: %s</title>\n<style>%s</style>\n</head>\n<body>\n"
            "<main>\n",
            verdict_word(s->verdict), css);
    fprintf(
        out,
        "<header id=\"suite\" class=\"suite %s\">\n<h1>rebound resilience report</h1>\n",
        verdict_class(s->verdict));
    fprintf(out, "<p id=\"suite-verdict\" class=\"verdict %s\">%s</p>\n",
            verdict_class(s->verdict), verdict_word(s->verdict));
    if (s->has_score)
        fprintf(out, "<p id=\"resilience-score\">resilience score <b>%s</b> / 100</p>\n",
                rb__fmt_num(a, s->score, 0));
    else
        fputs("<p id=\"resilience-score\">resilience score unknown (no trials)</p>\n",
              out);
    fprintf(out, "<p>%zu trial%s: %d passed, %d failed", s->n_t, s->n_t == 1 ? "" : "s",
            s->passed, s->failed);
    if (s->errors)
        fprintf(out, ", %d could not run", s->errors);
    fprintf(out, " · %zu scenario%s", s->n_s, s->n_s == 1 ? "" : "s");
    if (rb__jnum(suite, "wall_ms", &v))
        fprintf(out, " · %s", fmt_ms(a, v));
    if (rb__jnum(suite, "jobs", &v))
        fprintf(out, " · -j %s", rb__fmt_num(a, v, 0));
    if (version) {
        fputs(" · rebound ", out);
        rb__put_xml(out, version);
    }
    fputs("</p>\n", out);
    if (s->complete == 0)
        fputs("<p><b>The suite was interrupted: these are the results so far.</b></p>\n",
              out);
    if (rb__skipped_each(s, NULL, NULL) > 0) {
        fputs("<div id=\"skipped\"><p><b>Skipped: this machine cannot run "
              "them</b></p>\n<ul>\n",
              out);
        rb__skipped_each(s, skipped_item, out);
        fputs("</ul></div>\n", out);
    }
    fputs("</header>\n<section id=\"scenarios\">\n<h2>Scenarios (failures first)</h2>\n",
          out);
    summary_table(out, s);
    fputs("</section>\n", out);

    for (i = 0; i < s->n_s; i++) {
        const struct rb__scen *sc = &s->s[s->order[i]];
        size_t drawn = 0, k;
        int pass;

        fprintf(out, "<section class=\"scenario %s\" id=\"scenario-%zu\">\n<h2>",
                verdict_class(sc->verdict), s->order[i]);
        rb__put_xml(out, sc->name);
        fprintf(out, " <span class=\"tag %s\">%s</span></h2>\n",
                verdict_class(sc->verdict), verdict_word(sc->verdict));
        if (sc->description) {
            fputs("<p class=\"description\">", out);
            rb__put_xml(out, sc->description);
            fputs("</p>\n", out);
        }
        if (sc->file) {
            fputs("<p class=\"muted\">", out);
            rb__put_xml(out, sc->file);
            fputs("</p>\n", out);
        }
        write_chart(out, s, sc);
        scenario_metrics(out, sc);
        /* Failing trials first, so a cap never hides one. */
        for (pass = 0; pass < 2; pass++) {
            for (j = 0; j < sc->n; j++) {
                const struct rb__trial *t = &s->t[sc->trials[j]];

                if ((t->verdict == RB__PASS) != (pass == 1))
                    continue;
                write_trial(out, s, t, drawn < HTML_MAX_TIMELINES);
                drawn++;
            }
        }
        k = sc->n > HTML_MAX_TIMELINES ? sc->n - HTML_MAX_TIMELINES : 0;
        if (k)
            fprintf(out,
                    "<p class=\"muted aggregated\">Timelines are drawn for the first %d "
                    "trials (failing ones first); %zu more are listed without one.</p>\n",
                    HTML_MAX_TIMELINES, k);
        fputs("</section>\n", out);
    }
    fputs("<p class=\"muted\">Written by rebound report from results.json alone "
          "(docs/reports.md). Times are on rebound's monotonic clock, from the start "
          "of each trial.</p>\n</main>\n</body>\n</html>\n",
          out);
    return RB_OK;
}
