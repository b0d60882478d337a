/*
 * model.c - the suite model every writer reads: the trials of results.json
 * grouped by scenario (in run order), their verdicts and outcomes counted,
 * and each scenario's metrics as nearest-rank percentiles, taken from the
 * "scenarios" block when the file has one, else computed from the trial
 * records. Missing fields (older files) stay unknown.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[RB__M_COUNT] = {
    "recovery_ms",   "steps_redone", "inflight_lost",
    "time_lost_ms",  "wall_ms",      "llm_calls_duplicated",
    "tokens_wasted", "cost_wasted",  "recovery_first_request_ms",
};

static const char *const outcome_names[RB__O_COUNT] = {
    "recovered", "degraded", "escalated", "failed", "hung", "unknown",
};

const char *rb__metric_name(enum rb__metric m)
{
    return m < RB__M_COUNT ? metric_names[m] : "?";
}

const char *rb__outcome_name(enum rb__outcome o)
{
    return o < RB__O_COUNT ? outcome_names[o] : "unknown";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double rb__percentile(const double *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

/* A growing list of doubles. */
struct vals {
    double *v;
    size_t n, cap;
};

static int vals_add(struct vals *a, double x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        double *v = realloc(a->v, cap * sizeof(*v));

        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static void vals_stats(struct vals *a, struct rb__stats *st)
{
    memset(st, 0, sizeof(*st));
    if (a->n == 0)
        return;
    qsort(a->v, a->n, sizeof(double), cmp_double);
    st->n = a->n;
    st->p50 = rb__percentile(a->v, a->n, 50);
    st->p95 = rb__percentile(a->v, a->n, 95);
    st->max = a->v[a->n - 1];
}

static enum rb__outcome outcome_of(const char *s)
{
    int i;

    for (i = 0; s && i < RB__O_OTHER; i++)
        if (strcmp(s, outcome_names[i]) == 0)
            return (enum rb__outcome)i;
    return RB__O_OTHER;
}

static enum rb__verdict verdict_of(json_t *rec)
{
    const char *v = rb__jstr(rec, "verdict");
    json_t *broken = json_object_get(rec, "broken");

    if (v && strcmp(v, "error") == 0)
        return RB__ERROR;
    if (v && strcmp(v, "fail") == 0)
        return RB__FAIL;
    if (v && strcmp(v, "pass") == 0)
        return RB__PASS;
    /* Older or odd records: a broken expectation fails the trial. */
    if ((json_is_array(broken) && json_array_size(broken) > 0) || json_is_string(broken))
        return RB__FAIL;
    return RB__PASS;
}

/* The value of metric m in a trial record, or 0 when unknown. */
static int trial_metric(json_t *rec, enum rb__metric m, double *v)
{
    json_t *llm = json_object_get(rec, "llm");

    switch (m) {
    case RB__M_LLM_DUP:
        return rb__jnum(llm, "duplicated", v);
    case RB__M_TOKENS:
        return rb__jnum(llm, "tokens_wasted", v);
    case RB__M_COST:
        return rb__jnum(llm, "cost_wasted", v);
    default:
        return rb__jnum(rec, metric_names[m], v);
    }
}

/* Adds the trial's values of metric m to a. */
static int collect(json_t *rec, enum rb__metric m, struct vals *a)
{
    double v;

    if (m == RB__M_RECOVERY || m == RB__M_RECOVERY_WIRE) {
        json_t *faults = json_object_get(rec, "faults");
        size_t i;

        if (json_is_array(faults) && json_array_size(faults) > 0) {
            for (i = 0; i < json_array_size(faults); i++)
                if (rb__jnum(json_array_get(faults, i), metric_names[m], &v) &&
                    vals_add(a, v) != 0)
                    return -1;
            return 0;
        }
    }
    if (trial_metric(rec, m, &v) && vals_add(a, v) != 0)
        return -1;
    return 0;
}

/* Takes metric m from a "scenarios" entry (or its "baseline") when it is
 * there and well formed. */
static int block_metric(json_t *block, enum rb__metric m, struct rb__stats *st)
{
    json_t *o = json_object_get(json_object_get(block, "metrics"), metric_names[m]);
    long long n;

    if (!json_is_object(o) || !rb__jint(o, "n", &n) || n < 0)
        return 0;
    memset(st, 0, sizeof(*st));
    if (n == 0)
        return 1;
    if (!rb__jnum(o, "p50", &st->p50) || !rb__jnum(o, "p95", &st->p95) ||
        !rb__jnum(o, "max", &st->max))
        return 0;
    st->n = (size_t)n;
    return 1;
}

static struct rb__scen *find_scen(struct rb__suite *s, const char *name)
{
    size_t i;

    for (i = 0; i < s->n_s; i++)
        if (strcmp(s->s[i].name, name) == 0)
            return &s->s[i];
    return NULL;
}

static struct rb__scen *add_scen(struct rb__suite *s, const char *name, size_t cap)
{
    struct rb__scen *sc;

    if (s->n_s >= cap)
        return NULL;
    sc = &s->s[s->n_s++];
    memset(sc, 0, sizeof(*sc));
    sc->name = name;
    sc->trials = calloc(s->n_t ? s->n_t : 1, sizeof(size_t));
    if (!sc->trials) {
        s->n_s--;
        return NULL;
    }
    return sc;
}

/* The scenario's baseline numbers: from its block's "baseline", else from
 * the trials' "baseline" records. `a` is scratch space. */
static int scen_baseline(struct rb__suite *s, struct rb__scen *sc, struct vals *a)
{
    static const enum rb__metric which[2] = {RB__M_RECOVERY, RB__M_REDONE};
    json_t *b = json_object_get(sc->block, "baseline");
    size_t i;
    int k;

    for (k = 0; k < 2; k++) {
        const char *name = metric_names[which[k]];
        double v;

        if (json_is_object(b)) {
            if (!block_metric(b, which[k], &sc->base[k]))
                memset(&sc->base[k], 0, sizeof(sc->base[k]));
            if (rb__jnum(json_object_get(b, "reduction_pct"), name, &v)) {
                sc->reduction[k] = v;
                sc->has_reduction[k] = 1;
            }
            continue;
        }
        a->n = 0;
        for (i = 0; i < sc->n; i++)
            if (rb__jnum(json_object_get(s->t[sc->trials[i]].rec, "baseline"), name,
                         &v) &&
                vals_add(a, v) != 0)
                return -1;
        vals_stats(a, &sc->base[k]);
        if (sc->base[k].n && sc->m[which[k]].n && sc->base[k].p50 != 0) {
            sc->reduction[k] =
                (sc->base[k].p50 - sc->m[which[k]].p50) / sc->base[k].p50 * 100.0;
            sc->has_reduction[k] = 1;
        }
    }
    return 0;
}

/* Fills the scenario's counts and metrics from its trials. */
static int scen_finish(struct rb__suite *s, struct rb__scen *sc)
{
    struct vals a = {0};
    int m, rc = 0;
    size_t i;

    for (i = 0; i < sc->n; i++) {
        struct rb__trial *t = &s->t[sc->trials[i]];
        json_t *ctx = json_object_get(t->rec, "context");
        json_t *pres = json_object_get(ctx, "preserved");

        if (!sc->file)
            sc->file = rb__jstr(t->rec, "file");
        sc->outcomes[t->outcome]++;
        if (t->verdict == RB__PASS)
            sc->passed++;
        else if (t->verdict == RB__FAIL)
            sc->failed++;
        else
            sc->errors++;
        if (json_is_boolean(pres)) {
            sc->ctx_known++;
            if (!json_is_true(pres))
                sc->ctx_lost++;
        }
    }
    for (m = 0; m < RB__M_COUNT; m++) {
        if (sc->block && block_metric(sc->block, (enum rb__metric)m, &sc->m[m]))
            continue;
        a.n = 0;
        for (i = 0; i < sc->n && rc == 0; i++)
            rc = collect(s->t[sc->trials[i]].rec, (enum rb__metric)m, &a);
        vals_stats(&a, &sc->m[m]);
    }
    rc = rc ? rc : scen_baseline(s, sc, &a);
    free(a.v);
    if (sc->errors)
        sc->verdict = RB__ERROR;
    else if (sc->failed)
        sc->verdict = RB__FAIL;
    else
        sc->verdict = RB__PASS;
    {
        const char *v = rb__jstr(sc->block, "verdict");

        if (v && strcmp(v, "fail") == 0 && sc->verdict == RB__PASS)
            sc->verdict = RB__FAIL;
    }
    return rc;
}

enum rb_err rb__suite_build(json_t *root, struct rb__suite *out, struct rb_error *err)
{
    json_t *trials = json_object_get(root, "trials");
    json_t *blocks = json_object_get(root, "scenarios");
    json_t *suite = json_object_get(root, "suite");
    struct rb__suite s;
    size_t i, j, cap, k = 0;
    double v;

    memset(&s, 0, sizeof(s));
    s.root = root;
    s.n_t = json_array_size(trials);
    cap = s.n_t + json_array_size(blocks) + 1;
    s.t = calloc(s.n_t ? s.n_t : 1, sizeof(*s.t));
    s.s = calloc(cap, sizeof(*s.s));
    s.order = calloc(cap, sizeof(*s.order));
    if (!s.t || !s.s || !s.order)
        goto nomem;

    /* Scenarios named by the "scenarios" block come first, in its order. */
    for (i = 0; i < json_array_size(blocks); i++) {
        json_t *b = json_array_get(blocks, i);
        const char *name = rb__jstr(b, "name");
        struct rb__scen *sc;

        if (!name || find_scen(&s, name))
            continue;
        sc = add_scen(&s, name, cap);
        if (!sc)
            goto nomem;
        sc->block = b;
        sc->file = rb__jstr(b, "file");
        sc->description = rb__jstr(b, "description");
    }
    for (i = 0; i < s.n_t; i++) {
        struct rb__trial *t = &s.t[i];
        json_t *rec = json_array_get(trials, i);
        struct rb__scen *sc;

        t->rec = rec;
        t->scenario = rb__jstr(rec, "scenario");
        if (!t->scenario)
            t->scenario = "(unnamed)";
        if (!rb__jint(rec, "seed", &t->seed))
            t->seed = -1;
        t->outcome_text = rb__jstr(rec, "outcome");
        t->outcome = outcome_of(t->outcome_text);
        if (!t->outcome_text)
            t->outcome_text = "unknown";
        t->verdict = verdict_of(rec);
        t->k = 1;
        for (j = 0; j < i; j++)
            if (s.t[j].seed == t->seed && strcmp(s.t[j].scenario, t->scenario) == 0)
                t->k++;
        sc = find_scen(&s, t->scenario);
        if (!sc) {
            sc = add_scen(&s, t->scenario, cap);
            if (!sc)
                goto nomem;
        }
        sc->trials[sc->n++] = i;
        if (t->verdict == RB__PASS)
            s.passed++;
        else if (t->verdict == RB__FAIL)
            s.failed++;
        else
            s.errors++;
    }
    for (i = 0; i < s.n_s; i++)
        if (scen_finish(&s, &s.s[i]) != 0)
            goto nomem;

    /* Failing scenarios first (errors, then failures), run order otherwise. */
    for (i = 0; i < s.n_s; i++)
        if (s.s[i].verdict == RB__ERROR)
            s.order[k++] = i;
    for (i = 0; i < s.n_s; i++)
        if (s.s[i].verdict == RB__FAIL)
            s.order[k++] = i;
    for (i = 0; i < s.n_s; i++)
        if (s.s[i].verdict == RB__PASS)
            s.order[k++] = i;

    if (rb__jnum(suite, "resilience_score", &v)) {
        s.score = v;
        s.has_score = 1;
    } else if (s.n_t > 0) {
        s.score = floor(100.0 * s.passed / (double)s.n_t + 0.5);
        s.has_score = 1;
    }
    {
        json_t *c = json_object_get(suite, "complete");

        s.complete = json_is_boolean(c) ? json_is_true(c) : -1;
    }
    /* The suite fails when any trial failed or could not run; an
     * interrupted one that failed nothing so far did not pass either: its
     * verdict is ERROR, as junit.xml says with its error test case. */
    if (s.errors || s.failed || (rb__jnum(suite, "failed", &v) && v > 0))
        s.verdict = RB__FAIL;
    else if (s.complete == 0)
        s.verdict = RB__ERROR;
    else
        s.verdict = RB__PASS;
    *out = s;
    return RB_OK;
nomem:
    rb__suite_release(&s);
    return rb__rp_fail(err, RB_ENOMEM, "out of memory building the report");
}

void rb__suite_release(struct rb__suite *s)
{
    size_t i;

    if (!s)
        return;
    for (i = 0; s->s && i < s->n_s; i++)
        free(s->s[i].trials);
    free(s->s);
    free(s->t);
    free(s->order);
    memset(s, 0, sizeof(*s));
}

size_t rb__broken_each(json_t *rec, void (*fn)(const char *text, void *arg), void *arg)
{
    json_t *broken = json_object_get(rec, "broken");
    size_t i, n = 0;

    if (json_is_string(broken)) {
        fn(json_string_value(broken), arg);
        return 1;
    }
    for (i = 0; i < json_array_size(broken); i++) {
        json_t *b = json_array_get(broken, i);
        const char *msg =
            json_is_string(b) ? json_string_value(b) : rb__jstr(b, "message");
        char *dump = NULL;

        if (!msg) {
            dump = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
            msg = dump ? dump : "?";
        }
        fn(msg, arg);
        free(dump);
        n++;
    }
    return n;
}

size_t rb__skipped_each(const struct rb__suite *s,
                        void (*fn)(const char *scenario, const char *why, void *arg),
                        void *arg)
{
    json_t *list = json_object_get(json_object_get(s->root, "suite"), "skipped");
    size_t i;

    for (i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        const char *name =
            json_is_string(e) ? json_string_value(e) : rb__jstr(e, "scenario");

        if (fn)
            fn(name ? name : "(unnamed)", rb__jstr(e, "why"), arg);
    }
    return json_array_size(list);
}

/* Replaces '_' with ' ' in a metric name. */
static void spaced(const char *in, size_t len, char *out, size_t size)
{
    size_t i;

    if (len >= size)
        len = size - 1;
    for (i = 0; i < len; i++)
        out[i] = in[i] == '_' ? ' ' : in[i];
    out[len] = '\0';
    rb__utf8_trim(out);
}

/* Cuts each of the four "%95s" tokens back to a whole UTF-8 character. */
static void trim4(char *a, char *b, char *c, char *d)
{
    rb__utf8_trim(a);
    rb__utf8_trim(b);
    rb__utf8_trim(c);
    rb__utf8_trim(d);
}

static void broken_words(const char *text, char *buf, size_t size);

void rb__broken_words(const char *text, char *buf, size_t size)
{
    broken_words(text, buf, size);
    rb__utf8_trim(buf); /* the snprintf may have cut a character */
}

static void broken_words(const char *text, char *buf, size_t size)
{
    char metric[96], value[96], limit_name[96], limit[96];
    const char *p;

    buf[0] = '\0';
    if (strncmp(text, "side effects not exactly once: ", 31) == 0) {
        p = strstr(text, ", expected");
        snprintf(buf, size,
                 "a side-effecting tool call took effect more than once, or one of the "
                 "golden trial's effects never took effect (%.*s)",
                 p ? (int)(p - text - 31) : (int)strlen(text + 31), text + 31);
        return;
    }
    /* "recovery p50 700 ms > recovery_p50_ms 500" */
    if (sscanf(text, "recovery %95s %95s ms > %95s %95s", metric, value, limit_name,
               limit) == 4) {
        trim4(metric, value, limit_name, limit);
        snprintf(buf, size,
                 "the %s recovery time over the scenario's faults was %s ms, above the "
                 "limit of %s ms (%s)",
                 metric, value, limit, limit_name);
        return;
    }
    if (strncmp(text, "faults fired: ", 14) == 0) {
        snprintf(buf, size, "a fault's trigger never came, so nothing was tested (%s)",
                 text + 14);
        return;
    }
    if (strncmp(text, "golden trial did not complete", 29) == 0) {
        snprintf(buf, size,
                 "the golden trial (no faults) did not complete, so there "
                 "was nothing to compare against");
        return;
    }
    /* "steps_redone 19 > max_steps_redone 0" */
    if (sscanf(text, "%95s %95s > %95s %95s", metric, value, limit_name, limit) == 4) {
        char m[96];

        trim4(metric, value, limit_name, limit);
        spaced(metric, strlen(metric), m, sizeof(m));
        snprintf(buf, size, "%s was %s, above the limit of %s (%s)", m, value, limit,
                 limit_name);
        return;
    }
    /* "outcome: failed, expected recovered" */
    p = strstr(text, ", expected ");
    if (strncmp(text, "outcome: ", 9) == 0 && p) {
        snprintf(buf, size, "the trial ended %.*s; the scenario expects %s",
                 (int)(p - text - 9), text + 9, p + 11);
        return;
    }
    /* "context_preserved false, expected true" */
    if (p && strchr(text, ' ') < p) {
        const char *sp = strchr(text, ' ');
        char m[96];

        spaced(text, (size_t)(sp - text), m, sizeof(m));
        snprintf(buf, size, "%s was %.*s; the scenario expects %s", m, (int)(p - sp - 1),
                 sp + 1, p + 11);
        return;
    }
}
