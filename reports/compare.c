/*
 * compare.c - `rebound compare` without the printing: reads two results.json
 * files, matches their faulted trials by scenario and seed, pools each side
 * per scenario (recovery samples from every fault, steps redone per trial,
 * outcomes and passes), judges each metric against the thresholds and the
 * spread of the base trials, and renders the result as text or Markdown.
 * The rules are in docs/compare.md; a missing optional field is unknown.
 */
#include "compare.h"
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const outcome_names[RB_OUTCOME_COUNT_] = {
    "recovered", "degraded", "escalated", "failed", "hung", "unknown"};

const char *rb_compare_outcome_name(enum rb_compare_outcome o)
{
    if ((int)o < 0 || o >= RB_OUTCOME_COUNT_)
        return "unknown";
    return outcome_names[o];
}

void rb_compare_opts_init(struct rb_compare_opts *opts)
{
    opts->max_regression_pct = 10.0;
    opts->min_change_ms = 50.0;
}

/* ------------------------------------------------------------------------
 * Text building
 */

/* Appends formatted text; RB_ENOMEM leaves `b` as it was. */
static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

/* Takes the buffer's text as a new string ("" when empty). */
static char *buf_take(struct rb_buf *b)
{
    char *s;

    if (!b->data)
        return dup_str("");
    s = (char *)b->data;
    rb_buf_init(b);
    return s;
}

/* ------------------------------------------------------------------------
 * Reading results files
 */

/* One faulted trial: borrowed from its document. */
struct trial_ref {
    const json_t *json; /* the trial record */
    const char *name;   /* its scenario */
    const char *seed;   /* its seed as text, whole: borrowed, or num */
    char num[32];       /* a number seed as text, "?" when absent */
};

struct side_doc {
    struct trial_ref *trials; /* owned array */
    size_t n;
    /* owned: the trials by scenario, in file order within one, so that a
     * scenario's trials are found by binary search, not a scan */
    const struct trial_ref **by_name;
    int incomplete; /* suite.complete is false */
};

static void side_doc_release(struct side_doc *d)
{
    free(d->trials);
    free(d->by_name);
    d->by_name = NULL;
    d->trials = NULL;
    d->n = 0;
}

/* Sets ref->seed: a string seed as it is (never cut, so two seeds that
 * differ late stay two), a number as text in ref->num. */
static void seed_text(const json_t *v, struct trial_ref *ref)
{
    ref->seed = ref->num;
    if (json_is_string(v))
        ref->seed = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(ref->num, sizeof(ref->num), "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(ref->num, sizeof(ref->num), "%.17g", json_real_value(v));
    else
        snprintf(ref->num, sizeof(ref->num), "?");
}

/* Orders trial refs by scenario, then by place in the file. */
static int by_name_cmp(const void *x, const void *y)
{
    const struct trial_ref *a = *(const struct trial_ref *const *)x;
    const struct trial_ref *b = *(const struct trial_ref *const *)y;
    int c = strcmp(a->name, b->name);

    if (c)
        return c;
    return a < b ? -1 : a > b;
}

/* The trials of scenario `name` in `d`: by_name[*lo .. *lo + count), in
 * file order. Returns the count. */
static size_t scenario_range(const struct side_doc *d, const char *name, size_t *lo)
{
    size_t l = 0, h = d->n, start;

    while (l < h) {
        size_t m = l + (h - l) / 2;

        if (strcmp(d->by_name[m]->name, name) < 0)
            l = m + 1;
        else
            h = m;
    }
    start = l;
    h = d->n;
    while (l < h) {
        size_t m = l + (h - l) / 2;

        if (strcmp(d->by_name[m]->name, name) <= 0)
            l = m + 1;
        else
            h = m;
    }
    *lo = start;
    return l - start;
}

/* Checks that `doc` is a results file and lists its faulted trials. */
static enum rb_err read_doc(const json_t *doc, const char *name, struct side_doc *out,
                            struct rb_error *err)
{
    const json_t *schema, *trials, *suite, *t;
    struct trial_ref *refs = NULL;
    size_t i, n = 0;

    if (!json_is_object(doc))
        return rb_error_set(err, RB_EINVAL,
                            "'%s' is not a results file: not a JSON object", name);
    schema = json_object_get(doc, "schema");
    if (!schema)
        return rb_error_set(err, RB_EINVAL, "'%s' is not a results file: no 'schema'",
                            name);
    if (!json_is_integer(schema) || json_integer_value(schema) < 1)
        return rb_error_set(err, RB_EINVAL, "'%s' is not a results file: bad 'schema'",
                            name);
    if (json_integer_value(schema) > 1)
        return rb_error_set(
            err, RB_ESCHEMA,
            "'%s' was written by a newer rebound (results schema %lld, this one "
            "reads 1)",
            name, (long long)json_integer_value(schema));
    trials = json_object_get(doc, "trials");
    if (!json_is_array(trials))
        return rb_error_set(err, RB_EINVAL,
                            "'%s' is not a results file: no 'trials' array", name);
    if (json_array_size(trials) > 0) {
        refs = calloc(json_array_size(trials), sizeof(*refs));
        if (!refs)
            return rb_error_set(err, RB_ENOMEM, "out of memory reading '%s'", name);
    }
    json_array_foreach(trials, i, t)
    {
        const json_t *sc = json_object_get(t, "scenario");
        const json_t *kind = json_object_get(t, "trial");

        if (!json_is_object(t) || !json_is_string(sc)) {
            free(refs);
            return rb_error_set(err, RB_EINVAL, "'%s': trial %zu has no 'scenario'", name,
                                i + 1);
        }
        if (json_is_string(kind) && strcmp(json_string_value(kind), "golden") == 0)
            continue;
        refs[n].json = t;
        refs[n].name = json_string_value(sc);
        seed_text(json_object_get(t, "seed"), &refs[n]);
        n++;
    }
    out->by_name = calloc(n + 1, sizeof(*out->by_name));
    if (!out->by_name) {
        free(refs);
        return rb_error_set(err, RB_ENOMEM, "out of memory reading '%s'", name);
    }
    for (i = 0; i < n; i++)
        out->by_name[i] = &refs[i];
    if (n > 1)
        qsort(out->by_name, n, sizeof(*out->by_name), by_name_cmp);
    suite = json_object_get(doc, "suite");
    out->incomplete = json_is_false(json_object_get(suite, "complete"));
    out->trials = refs;
    out->n = n;
    return RB_OK;
}

/* Loads a JSON file with a clear reason when it cannot. New reference. */
static enum rb_err load_file(const char *path, json_t **out, struct rb_error *err)
{
    struct stat st;
    json_error_t jerr;
    json_t *doc;
    FILE *fp;

    fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        enum rb_err code = e == ENOENT ? RB_ENOENT : e == EACCES ? RB_EACCES : RB_EIO;
        char why[128];

        snprintf(why, sizeof(why), "%s", strerror(e));
        why[0] = (char)tolower((unsigned char)why[0]);
        rb_error_set(err, code, "cannot read results '%s': %s", path, why);
        if (err) {
            err->cause = e;
            err->cause_kind = "errno";
        }
        return code;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return rb_error_set(err, RB_EINVAL, "cannot read results '%s': it is a folder",
                            path);
    }
    doc = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (!doc) {
        rb_error_set(err, RB_EINVAL, "'%s' is not valid JSON: line %d column %d: %s",
                     path, jerr.line, jerr.column, jerr.text);
        if (err) {
            snprintf(err->file, sizeof(err->file), "%s", path);
            err->line = jerr.line > 0 ? jerr.line : 0;
            err->column = jerr.column > 0 ? jerr.column : 0;
        }
        return RB_EINVAL;
    }
    *out = doc;
    return RB_OK;
}

/* ------------------------------------------------------------------------
 * Pooling one side of a scenario
 */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest rank percentile of sorted v[0..n), n > 0. */
static double nearest_rank(const double *v, size_t n, double pct)
{
    size_t rank = (size_t)ceil(pct / 100.0 * (double)n);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static enum rb_compare_outcome outcome_of(const json_t *t)
{
    const char *s = json_string_value(json_object_get(t, "outcome"));
    int i;

    if (!s)
        return RB_OUTCOME_UNKNOWN;
    for (i = 0; i < RB_OUTCOME_UNKNOWN; i++)
        if (strcmp(s, outcome_names[i]) == 0)
            return (enum rb_compare_outcome)i;
    return RB_OUTCOME_UNKNOWN;
}

static int is_number(const json_t *v)
{
    return json_is_number(v) && isfinite(json_number_value(v));
}

/* Does `seed` appear in the sorted list of seeds `seeds` (n of them)? */
static int has_seed(const char **seeds, size_t n, const char *seed)
{
    size_t l = 0, h = n;

    while (l < h) {
        size_t m = l + (h - l) / 2;
        int c = strcmp(seeds[m], seed);

        if (c == 0)
            return 1;
        if (c < 0)
            l = m + 1;
        else
            h = m;
    }
    return 0;
}

/* Appends v to (*arr)[*n], growing it; RB_ENOMEM leaves it as it was. */
static enum rb_err push(double **arr, size_t *n, size_t *cap, double v)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        double *p = realloc(*arr, ncap * sizeof(*p));

        if (!p)
            return RB_ENOMEM;
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*n)++] = v;
    return RB_OK;
}

/*
 * Pools the trials of scenario `name` in `d` whose seed is in both sorted
 * lists sa[0..na) and sb[0..nb) (every trial of it when `all`) into `s`. The recovery
 * samples are every fault's `recovery_ms` (a trial without `faults`: its own
 * `recovery_ms`), or with `wire` every fault's `recovery_first_request_ms`.
 */
static enum rb_err pool_side(const struct side_doc *d, const char *name, const char **sa,
                             size_t na, const char **sb, size_t nb, int all, int wire,
                             struct rb_compare_side *s)
{
    const char *field = wire ? "recovery_first_request_ms" : "recovery_ms";
    double *rec = NULL;
    size_t cap = 0, i, j, lo, count;
    int first_steps = 1;
    enum rb_err rc = RB_OK;

    memset(s, 0, sizeof(*s));
    count = scenario_range(d, name, &lo);
    for (i = lo; i < lo + count && rc == RB_OK; i++) {
        const json_t *t = d->by_name[i]->json, *faults, *f, *v;
        const char *verdict, *seed = d->by_name[i]->seed;

        if (!all && !(has_seed(sa, na, seed) && has_seed(sb, nb, seed)))
            continue;
        s->trials++;
        verdict = json_string_value(json_object_get(t, "verdict"));
        if (verdict)
            s->judged++;
        if (verdict && strcmp(verdict, "pass") == 0)
            s->passed++;
        s->outcomes[outcome_of(t)]++;

        v = json_object_get(t, "steps_redone");
        if (is_number(v) && !json_is_false(json_object_get(t, "steps_known"))) {
            double x = json_number_value(v);

            s->steps_total += x;
            if (first_steps || x < s->steps_min)
                s->steps_min = x;
            if (first_steps || x > s->steps_max)
                s->steps_max = x;
            first_steps = 0;
            s->steps_n++;
        }

        faults = json_object_get(t, "faults");
        if (json_is_array(faults)) {
            json_array_foreach(faults, j, f)
            {
                v = json_object_get(f, field);
                if (is_number(v))
                    rc = push(&rec, &s->rec_n, &cap, json_number_value(v));
                if (rc != RB_OK)
                    break;
            }
        } else if (!wire && is_number(v = json_object_get(t, "recovery_ms"))) {
            rc = push(&rec, &s->rec_n, &cap, json_number_value(v));
        }
    }
    if (rc != RB_OK)
        goto out;
    if (s->steps_n > 0)
        s->steps_mean = s->steps_total / (double)s->steps_n;
    if (s->rec_n > 0) {
        qsort(rec, s->rec_n, sizeof(*rec), cmp_double);
        s->rec_p50 = nearest_rank(rec, s->rec_n, 50);
        s->rec_p95 = nearest_rank(rec, s->rec_n, 95);
        s->rec_min = rec[0];
        s->rec_max = rec[s->rec_n - 1];
    }
out:
    free(rec);
    return rc;
}

/*
 * Pools both sides of a scenario: recovery from the steps (`recovery_ms`)
 * when both sides have it, else from the wire (`recovery_first_request_ms`,
 * as for black-box agents) when both sides have that.
 */
static enum rb_err pool_both(const struct side_doc *a, const struct side_doc *b,
                             const char *name, const char **sa, size_t na,
                             const char **sb, size_t nb, int all,
                             struct rb_compare_scenario *sc)
{
    struct rb_compare_side wa, wb;

    if (pool_side(a, name, sa, na, sb, nb, all, 0, &sc->base) != RB_OK ||
        pool_side(b, name, sa, na, sb, nb, all, 0, &sc->after) != RB_OK)
        return RB_ENOMEM;
    sc->wire = 0;
    if (sc->presence != RB_COMPARE_BOTH || (sc->base.rec_n > 0 && sc->after.rec_n > 0))
        return RB_OK;
    if (pool_side(a, name, sa, na, sb, nb, all, 1, &wa) != RB_OK ||
        pool_side(b, name, sa, na, sb, nb, all, 1, &wb) != RB_OK)
        return RB_ENOMEM;
    if (wa.rec_n > 0 && wb.rec_n > 0) {
        sc->base = wa;
        sc->after = wb;
        sc->wire = 1;
    }
    return RB_OK;
}

/* ------------------------------------------------------------------------
 * Judging
 */

/*
 * A metric where higher is worse. `min_abs` is the smallest absolute change
 * that counts (0: any), `pct` the smallest relative one (< 0: not applied).
 * The spread [lo, hi] is the base trials'.
 */
static struct rb_compare_metric judge(int known, double before, double after, double lo,
                                      double hi, double pct, double min_abs)
{
    struct rb_compare_metric m;
    double diff = after - before;
    int beyond;

    memset(&m, 0, sizeof(m));
    m.change = RB_COMPARE_UNKNOWN;
    if (!known)
        return m;
    m.before = before;
    m.after = after;
    if (diff == 0) {
        m.change = RB_COMPARE_SAME;
        return m;
    }
    beyond = fabs(diff) > min_abs;
    if (beyond && pct >= 0 && before != 0)
        beyond = fabs(diff) / fabs(before) * 100.0 > pct;
    if (!beyond)
        m.change = RB_COMPARE_SMALL;
    else if (diff > 0)
        m.change = after <= hi ? RB_COMPARE_NOISE : RB_COMPARE_WORSE;
    else
        m.change = after >= lo ? RB_COMPARE_NOISE : RB_COMPARE_BETTER;
    return m;
}

/*
 * Outcomes: fewer passes (as a share of the trials) is worse; so is a mix of
 * outcomes where a smaller share of trials reached some level (recovered;
 * recovered or degraded; ...), over the trials whose outcome is known.
 */
static void judge_outcomes(struct rb_compare_scenario *sc)
{
    const struct rb_compare_side *a = &sc->base, *b = &sc->after;
    size_t ka = a->trials - a->outcomes[RB_OUTCOME_UNKNOWN];
    size_t kb = b->trials - b->outcomes[RB_OUTCOME_UNKNOWN];
    int worse = 0, better = 0, k;

    if (a->judged > 0 && b->judged > 0) {
        /* passed_b / judged_b versus passed_a / judged_a */
        unsigned long long lhs = (unsigned long long)b->passed * a->judged;
        unsigned long long rhs = (unsigned long long)a->passed * b->judged;

        worse |= lhs < rhs;
        better |= lhs > rhs;
    }
    if (ka > 0 && kb > 0) {
        size_t ca = 0, cb = 0;

        for (k = 0; k < RB_OUTCOME_HUNG; k++) {
            unsigned long long lhs, rhs;

            ca += a->outcomes[k];
            cb += b->outcomes[k];
            lhs = (unsigned long long)cb * ka;
            rhs = (unsigned long long)ca * kb;
            worse |= lhs < rhs;
            better |= lhs > rhs;
        }
    }
    sc->outcome_worse = worse;
    sc->outcome_better = better && !worse;
}

static void judge_scenario(struct rb_compare_scenario *sc,
                           const struct rb_compare_opts *o)
{
    const struct rb_compare_side *a = &sc->base, *b = &sc->after;
    int known_rec = a->rec_n > 0 && b->rec_n > 0;

    sc->p50 = judge(known_rec, a->rec_p50, b->rec_p50, a->rec_min, a->rec_max,
                    o->max_regression_pct, o->min_change_ms);
    sc->p95 = judge(known_rec, a->rec_p95, b->rec_p95, a->rec_min, a->rec_max,
                    o->max_regression_pct, o->min_change_ms);
    /* Steps redone: any rise counts, no thresholds. */
    sc->steps = judge(a->steps_n > 0 && b->steps_n > 0, a->steps_mean, b->steps_mean,
                      a->steps_min, a->steps_max, -1, 0);
    judge_outcomes(sc);
    if (sc->p50.change == RB_COMPARE_WORSE || sc->p95.change == RB_COMPARE_WORSE ||
        sc->steps.change == RB_COMPARE_WORSE || sc->outcome_worse)
        sc->verdict = RB_VERDICT_REGRESSION;
    else if (sc->p50.change == RB_COMPARE_BETTER || sc->p95.change == RB_COMPARE_BETTER ||
             sc->steps.change == RB_COMPARE_BETTER || sc->outcome_better)
        sc->verdict = RB_VERDICT_IMPROVED;
    else if (sc->p50.change == RB_COMPARE_NOISE || sc->p95.change == RB_COMPARE_NOISE ||
             sc->steps.change == RB_COMPARE_NOISE)
        sc->verdict = RB_VERDICT_NOISE;
    else
        sc->verdict = RB_VERDICT_SAME;
}

/* What regressed, as "recovery p50, steps redone, outcomes". New string, or
 * NULL when out of memory. */
static char *why_of(const struct rb_compare_scenario *sc)
{
    struct rb_buf b;
    const char *sep = "";
    enum rb_err rc = RB_OK;
    char *s = NULL;

    rb_buf_init(&b);
    if (sc->p50.change == RB_COMPARE_WORSE) {
        rc = rb_buf_printf(&b, "%srecovery p50", sep);
        sep = ", ";
    }
    if (rc == RB_OK && sc->p95.change == RB_COMPARE_WORSE) {
        rc = rb_buf_printf(&b, "%srecovery p95", sep);
        sep = ", ";
    }
    if (rc == RB_OK && sc->steps.change == RB_COMPARE_WORSE) {
        rc = rb_buf_printf(&b, "%ssteps redone", sep);
        sep = ", ";
    }
    if (rc == RB_OK && sc->outcome_worse)
        rc = rb_buf_printf(&b, "%soutcomes", sep);
    if (rc == RB_OK)
        s = buf_take(&b);
    rb_buf_release(&b);
    return s;
}

/* ------------------------------------------------------------------------
 * Comparing
 */

struct seed_pos {
    const char *seed;
    size_t pos; /* among the scenario's trials, in file order */
};

static int seed_pos_cmp(const void *x, const void *y)
{
    const struct seed_pos *a = x, *b = y;
    int c = strcmp(a->seed, b->seed);

    if (c)
        return c;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* The distinct seeds of scenario `name` in `d`: in file order into
 * seeds[0..*n) and sorted into sorted[0..*n) (both with room for every
 * trial of the scenario). RB_ENOMEM leaves *n 0. */
static enum rb_err seeds_of(const struct side_doc *d, const char *name,
                            const char **seeds, const char **sorted, size_t *n)
{
    size_t lo, count = scenario_range(d, name, &lo), i, k = 0;
    struct seed_pos *sp;
    unsigned char *first;

    *n = 0;
    if (count == 0)
        return RB_OK;
    sp = calloc(count, sizeof(*sp));
    first = calloc(count, 1);
    if (!sp || !first) {
        free(sp);
        free(first);
        return RB_ENOMEM;
    }
    for (i = 0; i < count; i++) {
        sp[i].seed = d->by_name[lo + i]->seed;
        sp[i].pos = i;
    }
    qsort(sp, count, sizeof(*sp), seed_pos_cmp);
    for (i = 0; i < count; i++)
        if (i == 0 || strcmp(sp[i].seed, sp[i - 1].seed) != 0) {
            first[sp[i].pos] = 1; /* its first trial */
            sorted[k++] = sp[i].seed;
        }
    for (i = 0, k = 0; i < count; i++)
        if (first[i])
            seeds[k++] = d->by_name[lo + i]->seed;
    *n = k;
    free(sp);
    free(first);
    return RB_OK;
}

/* The seeds as "1 2 3": a new string, or NULL when out of memory. */
static char *join_seeds(const char **seeds, size_t n)
{
    struct rb_buf b;
    enum rb_err rc = RB_OK;
    size_t i;
    char *s = NULL;

    rb_buf_init(&b);
    for (i = 0; i < n && rc == RB_OK; i++)
        rc = rb_buf_printf(&b, "%s%s", i ? " " : "", seeds[i]);
    if (rc == RB_OK)
        s = buf_take(&b);
    rb_buf_release(&b);
    return s;
}

static void scenario_release(struct rb_compare_scenario *sc)
{
    free(sc->name);
    free(sc->seeds);
    free(sc->seeds_only_base);
    free(sc->seeds_only_new);
    free(sc->why);
}

/* Fills `sc` for scenario `name`. */
static enum rb_err compare_scenario(const struct side_doc *a, const struct side_doc *b,
                                    const char *name, const struct rb_compare_opts *o,
                                    struct rb_compare_scenario *sc)
{
    const char **sa = NULL, **sb = NULL, **common = NULL, **oa = NULL, **ob = NULL,
               **sa_sorted = NULL, **sb_sorted = NULL;
    size_t na = 0, nb = 0, nc = 0, noa = 0, nob = 0, i, lo, ca, cb;
    enum rb_err rc = RB_ENOMEM;

    memset(sc, 0, sizeof(*sc));
    /* room for the scenario's trials, not the file's */
    ca = scenario_range(a, name, &lo) + 1;
    cb = scenario_range(b, name, &lo) + 1;
    sa = calloc(ca, sizeof(*sa));
    sb = calloc(cb, sizeof(*sb));
    common = calloc(ca, sizeof(*common));
    oa = calloc(ca, sizeof(*oa));
    ob = calloc(cb, sizeof(*ob));
    sa_sorted = calloc(ca, sizeof(*sa_sorted));
    sb_sorted = calloc(cb, sizeof(*sb_sorted));
    if (!sa || !sb || !common || !oa || !ob || !sa_sorted || !sb_sorted)
        goto out_free;
    if (seeds_of(a, name, sa, sa_sorted, &na) != RB_OK ||
        seeds_of(b, name, sb, sb_sorted, &nb) != RB_OK)
        goto out_free;
    for (i = 0; i < na; i++) {
        if (has_seed(sb_sorted, nb, sa[i]))
            common[nc++] = sa[i];
        else
            oa[noa++] = sa[i];
    }
    for (i = 0; i < nb; i++)
        if (!has_seed(sa_sorted, na, sb[i]))
            ob[nob++] = sb[i];

    sc->name = dup_str(name);
    if (!sc->name)
        goto out_free;
    if (na == 0 || nb == 0) {
        sc->presence = na == 0 ? RB_COMPARE_ADDED : RB_COMPARE_REMOVED;
        sc->verdict = na == 0 ? RB_VERDICT_ADDED : RB_VERDICT_REMOVED;
        sc->all_seeds = 1;
        sc->seeds = na == 0 ? join_seeds(sb, nb) : join_seeds(sa, na);
        sc->seeds_only_base = dup_str("");
        sc->seeds_only_new = dup_str("");
        sc->why = dup_str("");
        if (!sc->seeds || !sc->seeds_only_base || !sc->seeds_only_new || !sc->why)
            goto out_free;
        if (pool_both(a, b, name, sa_sorted, na, sb_sorted, nb, 1, sc) != RB_OK)
            goto out_free;
        rc = RB_OK;
        goto out_free;
    }
    sc->presence = RB_COMPARE_BOTH;
    sc->all_seeds = nc == 0;
    sc->seeds = nc == 0 ? dup_str("") : join_seeds(common, nc);
    sc->seeds_only_base = join_seeds(oa, noa);
    sc->seeds_only_new = join_seeds(ob, nob);
    if (!sc->seeds || !sc->seeds_only_base || !sc->seeds_only_new)
        goto out_free;
    if (pool_both(a, b, name, sa_sorted, na, sb_sorted, nb, sc->all_seeds, sc) != RB_OK)
        goto out_free;
    judge_scenario(sc, o);
    sc->why = why_of(sc);
    if (!sc->why)
        goto out_free;
    rc = RB_OK;
out_free:
    if (rc != RB_OK) {
        scenario_release(sc);
        memset(sc, 0, sizeof(*sc));
    }
    free(sb_sorted);
    free(sa_sorted);
    free(ob);
    free(oa);
    free(common);
    free(sb);
    free(sa);
    return rc;
}

void rb_compare_free(struct rb_compare *cmp)
{
    size_t i;

    if (!cmp)
        return;
    for (i = 0; i < cmp->n_scenarios; i++)
        scenario_release(&cmp->scenarios[i]);
    free(cmp->scenarios);
    free(cmp->base_name);
    free(cmp->new_name);
    free(cmp);
}

/* Is `name` among the first `n` trials' scenarios of `d`? */
static int seen_before(const struct side_doc *d, size_t n, const char *name)
{
    size_t lo;

    /* the range's first trial is the scenario's first in the file */
    return scenario_range(d, name, &lo) > 0 && (size_t)(d->by_name[lo] - d->trials) < n;
}

enum rb_err rb_compare_json(const json_t *base, const char *base_name,
                            const json_t *newer, const char *new_name,
                            const struct rb_compare_opts *opts, struct rb_compare **out,
                            struct rb_error *err)
{
    struct side_doc a = {0}, b = {0};
    struct rb_compare *cmp = NULL;
    struct rb_compare_scenario *sorted = NULL;
    size_t i, k;
    enum rb_err rc;

    rc = read_doc(base, base_name, &a, err);
    if (rc != RB_OK)
        goto out;
    rc = read_doc(newer, new_name, &b, err);
    if (rc != RB_OK)
        goto out_a;
    rc = RB_ENOMEM;
    cmp = calloc(1, sizeof(*cmp));
    if (!cmp)
        goto out_b;
    cmp->base_name = dup_str(base_name);
    cmp->new_name = dup_str(new_name);
    cmp->scenarios = calloc(a.n + b.n + 1, sizeof(*cmp->scenarios));
    if (!cmp->base_name || !cmp->new_name || !cmp->scenarios)
        goto out_cmp;
    if (opts)
        cmp->opts = *opts;
    else
        rb_compare_opts_init(&cmp->opts);
    cmp->base_incomplete = a.incomplete;
    cmp->new_incomplete = b.incomplete;
    cmp->base_trials = a.n;
    cmp->new_trials = b.n;

    /* Scenarios in the base file's order, then those only in the new one. */
    for (i = 0; i < a.n; i++) {
        if (seen_before(&a, i, a.trials[i].name))
            continue;
        if (compare_scenario(&a, &b, a.trials[i].name, &cmp->opts,
                             &cmp->scenarios[cmp->n_scenarios]) != RB_OK)
            goto out_cmp;
        cmp->n_scenarios++;
    }
    for (i = 0; i < b.n; i++) {
        if (seen_before(&b, i, b.trials[i].name) ||
            seen_before(&a, a.n, b.trials[i].name))
            continue;
        if (compare_scenario(&a, &b, b.trials[i].name, &cmp->opts,
                             &cmp->scenarios[cmp->n_scenarios]) != RB_OK)
            goto out_cmp;
        cmp->n_scenarios++;
    }

    /* Regressions first, the rest in order. */
    sorted = calloc(cmp->n_scenarios + 1, sizeof(*sorted));
    if (!sorted)
        goto out_cmp;
    k = 0;
    for (i = 0; i < cmp->n_scenarios; i++)
        if (cmp->scenarios[i].verdict == RB_VERDICT_REGRESSION)
            sorted[k++] = cmp->scenarios[i];
    cmp->regressions = k;
    for (i = 0; i < cmp->n_scenarios; i++)
        if (cmp->scenarios[i].verdict != RB_VERDICT_REGRESSION)
            sorted[k++] = cmp->scenarios[i];
    free(cmp->scenarios);
    cmp->scenarios = sorted;
    *out = cmp;
    cmp = NULL;
    rc = RB_OK;
out_cmp:
    if (rc == RB_ENOMEM)
        rb_error_set(err, rc, "out of memory comparing '%s' with '%s'", base_name,
                     new_name);
    rb_compare_free(cmp);
out_b:
    side_doc_release(&b);
out_a:
    side_doc_release(&a);
out:
    return rc;
}

enum rb_err rb_compare_files(const char *base_path, const char *new_path,
                             const struct rb_compare_opts *opts, struct rb_compare **out,
                             struct rb_error *err)
{
    json_t *a = NULL, *b = NULL;
    enum rb_err rc;

    rc = load_file(base_path, &a, err);
    if (rc != RB_OK)
        goto out;
    rc = load_file(new_path, &b, err);
    if (rc != RB_OK)
        goto out_a;
    rc = rb_compare_json(a, base_path, b, new_path, opts, out, err);
    json_decref(b);
out_a:
    json_decref(a);
out:
    return rc;
}

/* ------------------------------------------------------------------------
 * Rendering
 */

/* The text being written; the first error sticks and later writes are
 * skipped. */
struct out {
    struct rb_buf buf;
    enum rb_err rc;
    enum rb_compare_format format;
    const char *arrow; /* "->" or "→" */
};

static __attribute__((format(printf, 2, 3))) void put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->rc != RB_OK)
        return;
    va_start(ap, fmt);
    o->rc = rb_buf_vprintf(&o->buf, fmt, ap);
    va_end(ap);
}

/* A name or seed made safe: control characters (C0, DEL and C1, which a
 * terminal would act on) become '?', bidirectional controls are dropped; in
 * Markdown, characters with a meaning are escaped and @mentions and links
 * defused (rb__md_defuse). */
static void put_name(struct out *o, const char *s)
{
    const char *rep;
    size_t skip;

    while (*s) {
        unsigned char c = (unsigned char)*s;

        if (o->format == RB_COMPARE_MD && (rep = rb__md_defuse(s, &skip)) != NULL) {
            put(o, "%s", rep);
            s += skip;
            continue;
        }
        if (rb__bidi_len(s)) {
            s += rb__bidi_len(s);
            continue;
        }
        if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f) {
            put(o, "?"); /* U+0080-009F */
            s += 2;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            put(o, "?");
        } else if (o->format == RB_COMPARE_MD && c == '<') {
            put(o, "&lt;");
        } else if (o->format == RB_COMPARE_MD && c == '>') {
            put(o, "&gt;");
        } else if (o->format == RB_COMPARE_MD && c == '&') {
            put(o, "&amp;");
        } else if (o->format == RB_COMPARE_MD && strchr("\\`*_[]|~#!$", c)) {
            put(o, "\\%c", c);
        } else {
            put(o, "%c", c);
        }
        s++;
    }
}

/* A number of ms or steps: whole when whole, else one decimal. */
static const char *num(double v, char buf[48])
{
    if (fabs(v - rint(v)) < 0.05)
        snprintf(buf, 48, "%.0f", v);
    else
        snprintf(buf, 48, "%.1f", v);
    return buf;
}

/* "+14.0% (+223 ms)" for a change of a metric. */
static void put_delta(struct out *o, const struct rb_compare_metric *m, const char *unit)
{
    char n1[48];
    double diff = m->after - m->before;

    if (m->before != 0)
        put(o, "%+.1f%% (%s%s%s)", diff / fabs(m->before) * 100.0, diff > 0 ? "+" : "",
            num(diff, n1), unit);
    else
        put(o, "%s%s%s from 0", diff > 0 ? "+" : "", num(diff, n1), unit);
}

static const char *change_word(enum rb_compare_change c)
{
    switch (c) {
    case RB_COMPARE_SAME:
        return "unchanged";
    case RB_COMPARE_SMALL:
        return "under the thresholds";
    case RB_COMPARE_NOISE:
        return "within noise";
    case RB_COMPARE_BETTER:
        return "improvement";
    case RB_COMPARE_WORSE:
        return "regression";
    case RB_COMPARE_UNKNOWN:
        break;
    }
    return "not known";
}

/* One recovery percentile: "31 ms -> 120 ms, +287.1% (+89 ms), regression". */
static void put_recovery(struct out *o, const struct rb_compare_scenario *sc,
                         const struct rb_compare_metric *m, int p95)
{
    char n1[48], n2[48];
    const struct rb_compare_side *a = &sc->base, *c = &sc->after;
    int md = o->format == RB_COMPARE_MD;

    if (m->change == RB_COMPARE_UNKNOWN) {
        put(o, "%s ms %s %s ms", a->rec_n ? num(p95 ? a->rec_p95 : a->rec_p50, n1) : "?",
            o->arrow, c->rec_n ? num(p95 ? c->rec_p95 : c->rec_p50, n2) : "?");
        put(o, ", not known (%s)",
            a->rec_n == 0 && c->rec_n == 0 ? "no recovery on either side"
            : a->rec_n == 0                ? "no recovery in the base"
                                           : "no recovery in the new");
        return;
    }
    put(o, "%s ms %s %s ms", num(m->before, n1), o->arrow, num(m->after, n2));
    if (m->change == RB_COMPARE_SAME) {
        put(o, ", unchanged");
        return;
    }
    put(o, ", ");
    put_delta(o, m, " ms");
    if (m->change == RB_COMPARE_NOISE)
        put(o, ", within noise (spread %s%s%s ms over %zu base sample%s)",
            num(a->rec_min, n1), md ? "–" : "-", num(a->rec_max, n2), a->rec_n,
            a->rec_n == 1 ? "" : "s");
    else if (m->change == RB_COMPARE_WORSE && md)
        put(o, ", **regression**");
    else
        put(o, ", %s", change_word(m->change));
}

static void put_steps(struct out *o, const struct rb_compare_scenario *sc)
{
    char n1[48], n2[48];
    const struct rb_compare_side *a = &sc->base, *c = &sc->after;
    const struct rb_compare_metric *m = &sc->steps;
    int md = o->format == RB_COMPARE_MD;

    if (m->change == RB_COMPARE_UNKNOWN) {
        put(o, "not known");
        return;
    }
    put(o, "%s %s %s", num(a->steps_total, n1), o->arrow, num(c->steps_total, n2));
    if (a->steps_n != c->steps_n)
        put(o, " (per trial %s %s %s)", num(a->steps_mean, n1), o->arrow,
            num(c->steps_mean, n2));
    if (m->change == RB_COMPARE_SAME)
        return;
    if (m->change == RB_COMPARE_NOISE)
        put(o, ", within noise (spread %s%s%s per trial)", num(a->steps_min, n1),
            md ? "–" : "-", num(a->steps_max, n2));
    else if (m->change == RB_COMPARE_WORSE && md)
        put(o, ", **regression**");
    else
        put(o, ", %s", change_word(m->change));
}

/* "2 recovered, 1 failed" */
static void put_mix(struct out *o, const struct rb_compare_side *s)
{
    const char *sep = "";
    int k;

    if (s->trials == 0) {
        put(o, "no trials");
        return;
    }
    for (k = 0; k < RB_OUTCOME_COUNT_; k++) {
        if (!s->outcomes[k])
            continue;
        put(o, "%s%zu %s", sep, s->outcomes[k], outcome_names[k]);
        sep = ", ";
    }
}

/* "2/3" passed of the trials with a verdict, "?" when none has one. */
static void put_passed(struct out *o, const struct rb_compare_side *s)
{
    if (s->judged == 0)
        put(o, "?");
    else
        put(o, "%zu/%zu", s->passed, s->judged);
}

static void put_outcomes(struct out *o, const struct rb_compare_scenario *sc)
{
    put_mix(o, &sc->base);
    put(o, " %s ", o->arrow);
    put_mix(o, &sc->after);
    put(o, "; passed ");
    put_passed(o, &sc->base);
    put(o, " %s ", o->arrow);
    put_passed(o, &sc->after);
    if (sc->outcome_worse)
        put(o, o->format == RB_COMPARE_MD ? ", **worse**" : ", worse");
    else if (sc->outcome_better)
        put(o, ", better");
}

static const char *verdict_word(enum rb_compare_verdict v)
{
    switch (v) {
    case RB_VERDICT_SAME:
        return "unchanged";
    case RB_VERDICT_NOISE:
        return "within noise";
    case RB_VERDICT_IMPROVED:
        return "improved";
    case RB_VERDICT_REGRESSION:
        return "REGRESSION";
    case RB_VERDICT_ADDED:
        return "added";
    case RB_VERDICT_REMOVED:
        return "removed";
    }
    return "?";
}

/* "added: only in the new file, 3 trials, recovery p50 31 ms" */
static void put_one_side(struct out *o, const struct rb_compare_scenario *sc)
{
    const struct rb_compare_side *s =
        sc->presence == RB_COMPARE_ADDED ? &sc->after : &sc->base;
    char n1[48];

    put(o, "only in the %s file (not compared): %zu trial%s, ",
        sc->presence == RB_COMPARE_ADDED ? "new" : "base", s->trials,
        s->trials == 1 ? "" : "s");
    if (s->rec_n)
        put(o, "recovery p50 %s ms, ", num(s->rec_p50, n1));
    put(o, "passed ");
    put_passed(o, s);
}

static void put_seeds_note(struct out *o, const struct rb_compare_scenario *sc)
{
    if (sc->all_seeds) {
        put(o, "no seed in common: every trial of each side pooled");
        return;
    }
    put_name(o, sc->seeds);
    if (sc->seeds_only_base[0]) {
        put(o, "; only in the base: ");
        put_name(o, sc->seeds_only_base);
    }
    if (sc->seeds_only_new[0]) {
        put(o, "; only in the new: ");
        put_name(o, sc->seeds_only_new);
    }
    if (sc->seeds_only_base[0] || sc->seeds_only_new[0])
        put(o, " (not compared)");
}

static void put_header(struct out *o, const struct rb_compare *c)
{
    char n1[48], n2[48];
    int md = o->format == RB_COMPARE_MD;

    if (md)
        put(o, "### rebound compare\n\nBase ");
    else
        put(o, "base ");
    put_name(o, c->base_name);
    put(o, " (%zu faulted trial%s%s) %s new ", c->base_trials,
        c->base_trials == 1 ? "" : "s", c->base_incomplete ? ", incomplete run" : "",
        o->arrow);
    put_name(o, c->new_name);
    put(o, " (%zu faulted trial%s%s)%s\n", c->new_trials, c->new_trials == 1 ? "" : "s",
        c->new_incomplete ? ", incomplete run" : "", md ? "." : "");
    if (md)
        put(o, "\n");
    put(o,
        "%s regression: recovery p50 or p95 up by more than %s%% and %s ms and above "
        "the slowest base sample; steps redone per trial above the base's most; or "
        "fewer passes or worse outcomes%s\n\n",
        md ? "A" : "a", num(c->opts.max_regression_pct, n1),
        num(c->opts.min_change_ms, n2), md ? "." : "");
}

static void put_verdict(struct out *o, const struct rb_compare *c)
{
    size_t i, counts[RB_VERDICT_REMOVED + 1] = {0};
    const char *sep = "";
    int md = o->format == RB_COMPARE_MD;
    static const char *const names[] = {"unchanged", "within noise", "improved",
                                        "regressed", "added",        "removed"};

    for (i = 0; i < c->n_scenarios; i++)
        counts[c->scenarios[i].verdict]++;
    if (c->regressions > 0) {
        put(o, md ? "**Verdict: regression** in " : "verdict: REGRESSION in ");
        for (i = 0; i < c->regressions; i++) {
            put(o, "%s", i ? "; " : "");
            put_name(o, c->scenarios[i].name);
            put(o, " (%s)", c->scenarios[i].why);
        }
        put(o, "%s\n", md ? "." : "");
        return;
    }
    put(o, md ? "**Verdict: no regression** (" : "verdict: no regression (");
    if (c->n_scenarios == 0)
        put(o, "no scenarios");
    for (i = 0; i <= RB_VERDICT_REMOVED; i++) {
        if (!counts[i])
            continue;
        put(o, "%s%zu %s", sep, counts[i], names[i]);
        sep = ", ";
    }
    put(o, ")%s\n", md ? "." : "");
}

static const char wire_note[] = "from the wire: injection to the first new LLM or tool "
                                "request (a side has no step-based recovery)";

static void render_text(struct out *o, const struct rb_compare *c)
{
    size_t i;

    put_header(o, c);
    for (i = 0; i < c->n_scenarios; i++) {
        const struct rb_compare_scenario *sc = &c->scenarios[i];

        put_name(o, sc->name);
        put(o, "  %s", verdict_word(sc->verdict));
        if (sc->why[0])
            put(o, " (%s)", sc->why);
        put(o, "\n");
        if (sc->presence != RB_COMPARE_BOTH) {
            put(o, "  ");
            put_one_side(o, sc);
            put(o, "\n\n");
            continue;
        }
        put(o, "  seeds         ");
        put_seeds_note(o, sc);
        if (sc->wire)
            put(o, "\n  recovery      %s", wire_note);
        put(o, "\n  recovery p50  ");
        put_recovery(o, sc, &sc->p50, 0);
        put(o, "\n  recovery p95  ");
        put_recovery(o, sc, &sc->p95, 1);
        put(o, "\n  steps redone  ");
        put_steps(o, sc);
        put(o, "\n  outcomes      ");
        put_outcomes(o, sc);
        put(o, "\n\n");
    }
    put_verdict(o, c);
}

static void render_md(struct out *o, const struct rb_compare *c)
{
    size_t i;
    int notes = 0;

    put_header(o, c);
    put(o, "| scenario | recovery p50 | recovery p95 | steps redone | outcomes | "
           "verdict |\n|---|---|---|---|---|---|\n");
    for (i = 0; i < c->n_scenarios; i++) {
        const struct rb_compare_scenario *sc = &c->scenarios[i];

        put(o, "| ");
        put_name(o, sc->name);
        if (sc->presence != RB_COMPARE_BOTH) {
            put(o, " | ");
            put_one_side(o, sc);
            put(o, " | | | | %s |\n", verdict_word(sc->verdict));
            continue;
        }
        put(o, " | ");
        put_recovery(o, sc, &sc->p50, 0);
        put(o, " | ");
        put_recovery(o, sc, &sc->p95, 1);
        put(o, " | ");
        put_steps(o, sc);
        put(o, " | ");
        put_outcomes(o, sc);
        if (sc->verdict == RB_VERDICT_REGRESSION)
            put(o, " | **regression**: %s |\n", sc->why);
        else
            put(o, " | %s |\n", verdict_word(sc->verdict));
    }
    put(o, "\n");
    for (i = 0; i < c->n_scenarios; i++) {
        const struct rb_compare_scenario *sc = &c->scenarios[i];

        if (sc->presence != RB_COMPARE_BOTH)
            continue;
        if (sc->all_seeds || sc->seeds_only_base[0] || sc->seeds_only_new[0]) {
            put(o, "- ");
            put_name(o, sc->name);
            put(o, ", seeds: ");
            put_seeds_note(o, sc);
            put(o, "\n");
            notes = 1;
        }
        if (sc->wire) {
            put(o, "- ");
            put_name(o, sc->name);
            put(o, ", recovery %s\n", wire_note);
            notes = 1;
        }
    }
    if (notes)
        put(o, "\n");
    put_verdict(o, c);
}

enum rb_err rb_compare_render(const struct rb_compare *cmp, enum rb_compare_format format,
                              struct rb_buf *out, struct rb_error *err)
{
    struct out o;
    enum rb_err rc;

    rb_buf_init(&o.buf);
    o.rc = RB_OK;
    o.format = format;
    o.arrow = format == RB_COMPARE_MD ? "→" : "->";
    if (format == RB_COMPARE_MD)
        render_md(&o, cmp);
    else
        render_text(&o, cmp);
    rc = o.rc;
    if (rc == RB_OK && o.buf.len > 0)
        rc = rb_buf_append(out, o.buf.data, o.buf.len);
    rb_buf_release(&o.buf);
    if (rc != RB_OK)
        return rb_error_set(err, rc, "cannot write the comparison: %s", rb_strerror(rc));
    return RB_OK;
}
