/*
 * score.c - scoring of `rebound run`: a faulted trial against the golden one
 * of the same scenario and seed, from their event streams alone (the
 * supervisor's proc.* and fault.* events, the agent's step.* events, all on
 * rebound's monotonic clock), as ../shared/DESIGN.md defines the metrics;
 * the check of a scenario's `expect` block; and the results.json record.
 */
#include "run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rb_outcome_name(enum rb_outcome o)
{
    switch (o) {
    case RB_OUTCOME_RECOVERED:
        return "recovered";
    case RB_OUTCOME_DEGRADED:
        return "degraded";
    case RB_OUTCOME_FAILED:
        return "failed";
    case RB_OUTCOME_HUNG:
        return "hung";
    }
    return "unknown";
}

static int is(const struct rb_trial_event *e, const char *kind)
{
    return strcmp(e->kind, kind) == 0;
}

static int count_kind(const struct rb_trial *t, const char *kind)
{
    size_t i;
    int n = 0;

    for (i = 0; i < t->n_events; i++)
        n += is(&t->events[i], kind);
    return n;
}

/* 1 when step `key` was committed (or replayed, or served from the cache)
 * by an event before index `end`. */
static int committed_before(const struct rb_trial *t, size_t end, const char *key)
{
    size_t i;

    for (i = 0; i < end; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (e->step && strcmp(e->step, key) == 0 &&
            (is(e, "step.commit") || is(e, "step.replay") || is(e, "step.cached")))
            return 1;
    }
    return 0;
}

static int64_t ms(int64_t ns)
{
    return ns / 1000000;
}

static int64_t json_int(const json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

#define MAX_OPEN 256 /* steps in flight at once that are told apart */

/* Scores the fault injected at event index k. */
static void score_fault(const struct rb_trial *t, size_t k, struct rb_fault_score *f)
{
    const struct rb_trial_event *inj = &t->events[k];
    const char *open[MAX_OPEN], *s;
    size_t n_open = 0, frontier, j;
    int64_t base = inj->t_ns, death = -1, start = -1, first_new = -1;
    int64_t fault_index = json_int(inj->json, "fault", -1);
    size_t i;

    memset(f, 0, sizeof(*f));
    f->recovery_ms = f->detect_ms = f->restart_ms = f->replay_ms = f->redo_ms = -1;
    s = json_string_value(json_object_get(inj->json, "form"));
    snprintf(f->form, sizeof(f->form), "%s", s ? s : "?");
    s = json_string_value(json_object_get(inj->json, "trigger"));
    if (s && !strcmp(s, "external") && fault_index >= 0 &&
        fault_index < RB_SCORE_MAX_FAULTS && t->trigger_desc[fault_index][0])
        s = t->trigger_desc[fault_index]; /* fired from the world: say what */
    if (!s && json_object_get(inj->json, "limit"))
        s = "memory limit"; /* the agent outgrew it */
    snprintf(f->trigger, sizeof(f->trigger), "%s", s ? s : "?");
    s = json_string_value(json_object_get(inj->json, "mechanism"));
    snprintf(f->mechanism, sizeof(f->mechanism), "%s", s ? s : "");
    f->inject_ns = inj->t_ns;

    /* The frontier: what the agent had done when the fault hit. For a fault
     * that killed the attempt, that is all it wrote before it died (lines
     * still in the pipe at the kill are read after the injection). */
    frontier = k;
    for (i = k + 1; i < t->n_events && !is(&t->events[i], "proc.start"); i++) {
        if (is(&t->events[i], "proc.exit")) {
            if (json_object_get(t->events[i].json, "failure"))
                frontier = i;
            break;
        }
    }

    /* The steps in flight: started in this attempt and not committed (more
     * than one when the agent runs steps in parallel). */
    for (i = 0; i < frontier; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (is(e, "proc.start")) {
            n_open = 0;
        } else if (is(e, "step.start") && e->step && n_open < MAX_OPEN) {
            open[n_open++] = e->step;
        } else if (is(e, "step.commit") && e->step) {
            for (j = 0; j < n_open && strcmp(open[j], e->step); j++)
                ;
            if (j < n_open)
                open[j] = open[--n_open];
        }
    }
    f->inflight = (int)n_open;
    if (n_open)
        snprintf(f->inflight_step, sizeof(f->inflight_step), "%s", open[0]);

    for (i = k + 1; i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (is(e, "fault.heal") && json_int(e->json, "fault", -2) == fault_index &&
            death < 0) {
            base = e->t_ns; /* a fault with a duration: from its end */
        } else if (is(e, "proc.exit") && death < 0) {
            death = json_int(e->json, "exit_t", e->t_ns);
            f->detect_ms = ms(death - inj->t_ns);
        } else if (is(e, "proc.start") && death >= 0 && start < 0) {
            start = e->t_ns;
            f->restart_ms = ms(start - death);
        } else if (i <= frontier) {
            continue; /* written before the death */
        } else if (is(e, "step.start") && e->step && first_new < 0 &&
                   (death < 0 || start >= 0) && !committed_before(t, frontier, e->step)) {
            first_new = e->t_ns;
            if (start >= 0)
                f->replay_ms = ms(first_new - start);
        } else if (is(e, "step.commit") && e->step &&
                   !committed_before(t, frontier, e->step)) {
            f->recovery_ms = ms(e->t_ns - base);
            if (first_new >= 0 && start >= 0)
                f->redo_ms = ms(e->t_ns - first_new);
            break;
        }
    }
}

void rb_score_trial(const struct rb_trial *golden, const struct rb_trial *t,
                    struct rb_score *out)
{
    size_t i;
    int restarts = 0, delivered = 0;

    memset(out, 0, sizeof(*out));
    out->recovery_max_ms = -1;
    out->faults_fired = t->injected;
    out->faults_armed = (int)t->n_armed;
    for (i = 0; i < t->n_events && out->n_faults < RB_SCORE_MAX_FAULTS; i++) {
        const struct rb_trial_event *e = &t->events[i];
        struct rb_fault_score *f;

        if (!is(e, "fault.inject") || json_object_get(e->json, "phase"))
            continue; /* the SIGKILL ending a notice is the same fault */
        f = &out->faults[out->n_faults++];
        score_fault(t, i, f);
        out->inflight_lost += f->inflight;
        if (f->recovery_ms > out->recovery_max_ms)
            out->recovery_max_ms = f->recovery_ms;
    }
    for (i = 0; i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];
        json_t *lf;

        if (!is(e, "proc.start") || json_int(e->json, "attempt", 1) < 2)
            continue;
        restarts++;
        lf = json_object_get(e->json, "last_failure");
        delivered += lf && !json_is_null(lf) &&
                     !(json_is_string(lf) && json_string_length(lf) == 0);
    }
    out->failure_context_delivered = restarts ? delivered == restarts : -1;
    if (t->effects) {
        const char *key;
        json_t *v;

        json_object_foreach(t->effects, key, v)
        {
            out->side_effects += (int)json_integer_value(v);
            if (json_integer_value(v) > 1)
                out->effects_doubled += (int)json_integer_value(v) - 1;
        }
    }
    if (golden->effects) {
        const char *key;
        json_t *v;

        json_object_foreach(golden->effects, key, v)
        {
            if (!t->effects || !json_object_get(t->effects, key))
                out->effects_missing++;
        }
    }
    out->golden_steps = count_kind(golden, "step.start");
    out->steps_executed = count_kind(t, "step.start");
    out->steps_redone = out->steps_executed - out->golden_steps - out->inflight_lost;
    if (out->steps_redone < 0)
        out->steps_redone = 0;
    out->context_preserved = golden->completed && t->completed &&
                             strcmp(golden->stdout_hash, t->stdout_hash) == 0;
    out->wall_ms = ms(t->end_ns - t->start_ns);
    out->golden_wall_ms = ms(golden->end_ns - golden->start_ns);
    out->time_lost_ms = out->wall_ms - out->golden_wall_ms - t->fault_time_ms;
    if (t->timed_out)
        out->outcome = RB_OUTCOME_HUNG;
    else if (t->completed)
        out->outcome =
            out->context_preserved ? RB_OUTCOME_RECOVERED : RB_OUTCOME_DEGRADED;
    else
        out->outcome = RB_OUTCOME_FAILED;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

int64_t rb_score_percentile(int64_t *v, size_t n, int q)
{
    size_t rank;

    if (n == 0)
        return -1;
    qsort(v, n, sizeof(*v), cmp_i64);
    rank = ((size_t)q * n + 99) / 100; /* nearest rank, 1-based */
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

static void add_why(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_why(char *why, size_t size, const char *fmt, ...)
{
    size_t len = strlen(why);
    va_list ap;

    if (len + 3 >= size)
        return;
    if (len) {
        why[len++] = ';';
        why[len++] = ' ';
        why[len] = '\0';
    }
    va_start(ap, fmt);
    vsnprintf(why + len, size - len, fmt, ap);
    va_end(ap);
}

static const char *yes_no(int v)
{
    return v ? "true" : "false";
}

int rb_score_check(const struct rb_scenario *s, const struct rb_score *sc, int64_t p50_ms,
                   int64_t p95_ms, char *why, size_t size)
{
    const struct rb_scenario_expect *x = &s->expect;

    if (size)
        why[0] = '\0';
    if (sc->faults_fired < sc->faults_armed)
        add_why(why, size, "faults fired: %d of %d armed (a trigger never came)",
                sc->faults_fired, sc->faults_armed);
    if (x->outcome != RB_SCENARIO_OUTCOME_ANY &&
        strcmp(rb_scenario_outcome_name(x->outcome), rb_outcome_name(sc->outcome)))
        add_why(why, size, "outcome: %s, expected %s", rb_outcome_name(sc->outcome),
                rb_scenario_outcome_name(x->outcome));
    if (x->max_steps_redone >= 0 && sc->steps_redone > x->max_steps_redone)
        add_why(why, size, "steps_redone %d > max_steps_redone %lld", sc->steps_redone,
                (long long)x->max_steps_redone);
    if (x->context_preserved >= 0 && sc->context_preserved != x->context_preserved)
        add_why(why, size, "context_preserved %s, expected %s",
                yes_no(sc->context_preserved), yes_no(x->context_preserved));
    if (x->failure_context_delivered >= 0 && sc->failure_context_delivered >= 0 &&
        sc->failure_context_delivered != x->failure_context_delivered)
        add_why(why, size, "failure_context_delivered %s, expected %s",
                yes_no(sc->failure_context_delivered),
                yes_no(x->failure_context_delivered));
    if (x->side_effects_exactly_once == 1 && (sc->effects_doubled || sc->effects_missing))
        add_why(why, size,
                "side effects not exactly once: %d doubled, %d missing, expected "
                "exactly once",
                sc->effects_doubled, sc->effects_missing);
    if (x->max_time_lost_ms >= 0 && sc->time_lost_ms > x->max_time_lost_ms)
        add_why(why, size, "time_lost_ms %lld > max_time_lost_ms %lld",
                (long long)sc->time_lost_ms, (long long)x->max_time_lost_ms);
    if (x->recovery_p50_ms >= 0 && p50_ms > x->recovery_p50_ms)
        add_why(why, size, "recovery p50 %lld ms > recovery_p50_ms %lld",
                (long long)p50_ms, (long long)x->recovery_p50_ms);
    if (x->recovery_p95_ms >= 0 && p95_ms > x->recovery_p95_ms)
        add_why(why, size, "recovery p95 %lld ms > recovery_p95_ms %lld",
                (long long)p95_ms, (long long)x->recovery_p95_ms);
    return size == 0 || why[0] == '\0';
}

/* ---- results.json ------------------------------------------------------------ */

static json_t *ms_or_null(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* The events as a timeline: each event as written, with `t_ms` (ms since the
 * trial began, on rebound's clock) in place of the writer's own `t`. */
static json_t *timeline(const struct rb_trial *t)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a && i < t->n_events; i++) {
        json_t *o = json_deep_copy(t->events[i].json);

        if (!o)
            continue;
        json_object_del(o, "t");
        json_object_set_new(o, "t_ms",
                            json_real((double)(t->events[i].t_ns - t->start_ns) / 1e6));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *trial_json(const struct rb_trial *t)
{
    return json_pack(
        "{s:s, s:s, s:i, s:b, s:o, s:i, s:b, s:b, s:I, s:s, s:I, s:o}", "run", t->run_id,
        "dir", t->dir, "attempts", t->attempts, "completed", t->completed, "exit_code",
        t->exit_code < 0 ? json_null() : json_integer(t->exit_code), "signal", t->signal,
        "timed_out", t->timed_out, "interrupted", t->interrupted != 0, "wall_ms",
        (json_int_t)ms(t->end_ns - t->start_ns), "stdout_sha256", t->stdout_hash,
        "stdout_bytes", (json_int_t)t->stdout_bytes, "events", timeline(t));
}

json_t *rb_score_json(const struct rb_scenario *s, const struct rb_trial *golden,
                      const struct rb_trial *t, const struct rb_score *sc)
{
    json_t *rec, *faults = json_array();
    size_t i;

    for (i = 0; faults && i < sc->n_faults; i++) {
        const struct rb_fault_score *f = &sc->faults[i];

        json_array_append_new(
            faults,
            json_pack("{s:s, s:s, s:o, s:f, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "form",
                      f->form, "trigger", f->trigger, "mechanism",
                      f->mechanism[0] ? json_string(f->mechanism) : json_null(),
                      "inject_ms", (double)(f->inject_ns - t->start_ns) / 1e6, "inflight",
                      f->inflight, "inflight_step",
                      f->inflight ? json_string(f->inflight_step) : json_null(),
                      "recovery_ms", ms_or_null(f->recovery_ms), "detect_ms",
                      ms_or_null(f->detect_ms), "restart_ms", ms_or_null(f->restart_ms),
                      "replay_ms", ms_or_null(f->replay_ms), "redo_ms",
                      ms_or_null(f->redo_ms)));
    }
    rec = json_pack(
        "{s:s, s:o, s:I, s:s, s:s, s:i, s:I, s:o, s:o, s:i, s:i, s:i, s:i,"
        " s:{s:b, s:s, s:s, s:s}, s:{s:i, s:i, s:i, s:b}, s:o, s:I, s:I, s:I, s:o, s:o}",
        "scenario", s->name, "file", s->path ? json_string(s->path) : json_null(), "seed",
        (json_int_t)t->seed, "trial", "faulted", "outcome", rb_outcome_name(sc->outcome),
        "faults_fired", t->injected, "faults_armed", (json_int_t)t->n_armed, "faults",
        faults, "recovery_ms", ms_or_null(sc->recovery_max_ms), "steps_redone",
        sc->steps_redone, "inflight_lost", sc->inflight_lost, "steps_executed",
        sc->steps_executed, "golden_steps", sc->golden_steps, "context", "preserved",
        sc->context_preserved, "compared",
        "sha256 of the agent's stdout in its last attempt, against the golden trial's",
        "sha256", t->stdout_hash, "golden_sha256", golden->stdout_hash, "side_effects",
        "total", sc->side_effects, "doubled", sc->effects_doubled, "missing",
        sc->effects_missing, "exactly_once", !sc->effects_doubled && !sc->effects_missing,
        "failure_context_delivered",
        sc->failure_context_delivered < 0 ? json_null()
                                          : json_boolean(sc->failure_context_delivered),
        "wall_ms", (json_int_t)sc->wall_ms, "golden_wall_ms",
        (json_int_t)sc->golden_wall_ms, "time_lost_ms", (json_int_t)sc->time_lost_ms,
        "faulted", trial_json(t), "golden", trial_json(golden));
    return rec;
}
