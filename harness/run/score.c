/*
 * score.c - scoring of `rebound run`: a faulted trial against the golden one
 * of the same scenario and seed, from their event streams (the supervisor's
 * proc.* and fault.* events, the agent's step.* and task.* events, all on
 * rebound's monotonic clock) and from the wire (the requests in the world's
 * journal: LLM calls duplicated, tokens and cost wasted, the first point
 * where the conversation diverged from golden's, black-box recovery to the
 * first new request), as ../shared/DESIGN.md defines the metrics; the check
 * of a scenario's `expect` block; and the results.json record.
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
    case RB_OUTCOME_ESCALATED:
        return "escalated";
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

/* 1 when a proc.exit says the attempt ended by itself with status 0: the
 * end of the work, not a death. */
static int clean_exit(const struct rb_trial_event *e)
{
    return json_int(e->json, "exit_code", -1) == 0 && json_int(e->json, "signal", 0) == 0;
}

/* ---- the wire ------------------------------------------------------------------ */

/* When each attempt started: the trial's proc.start events, in order. */
struct starts {
    int64_t *t_ns; /* owned; NULL when none or out of memory */
    size_t n;
};

static void starts_init(const struct rb_trial *t, struct starts *s)
{
    size_t i;

    s->n = 0;
    s->t_ns = t->n_events ? malloc(t->n_events * sizeof(*s->t_ns)) : NULL;
    for (i = 0; s->t_ns && i < t->n_events; i++)
        if (is(&t->events[i], "proc.start"))
            s->t_ns[s->n++] = t->events[i].t_ns;
}

/* The attempt that was running at t_ns: attempts started up to then, at
 * least 1. */
static int attempt_at(const struct starts *s, int64_t t_ns)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) { /* the first start after t_ns */
        size_t mid = lo + (hi - lo) / 2;

        if (s->t_ns[mid] <= t_ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? (int)lo : 1;
}

/* 1 when a and b are the same request: same route and body hash, and for
 * the LLM the same model. Requests whose body could not be read match
 * nothing. */
static int same_req(const struct rb_wire_req *a, const struct rb_wire_req *b)
{
    return a->hash[0] && a->llm == b->llm && !strcmp(a->hash, b->hash) &&
           !strcmp(a->route, b->route) && !strcmp(a->model, b->model);
}

static int cmp_req(const struct rb_wire_req *a, const struct rb_wire_req *b)
{
    int c = strcmp(a->hash, b->hash);

    if (!c)
        c = strcmp(a->route, b->route);
    if (!c)
        c = strcmp(a->model, b->model);
    return c;
}

/* For qsort of request pointers: by request, then in journal order. */
static int cmp_req_ptr(const void *x, const void *y)
{
    const struct rb_wire_req *a = *(const struct rb_wire_req *const *)x;
    const struct rb_wire_req *b = *(const struct rb_wire_req *const *)y;
    int c = cmp_req(a, b);

    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

/* Pointers to the requests of `w` that are LLM requests (llm 1) or tool
 * calls (llm 0), with a readable body, sorted by request; NULL when out of
 * memory or none (*n 0). */
static const struct rb_wire_req **sorted_reqs(const struct rb_wire *w, int llm, size_t *n)
{
    const struct rb_wire_req **v = w->n ? malloc(w->n * sizeof(*v)) : NULL;
    size_t i;

    *n = 0;
    for (i = 0; v && i < w->n; i++)
        if (w->reqs[i].llm == llm && w->reqs[i].hash[0])
            v[(*n)++] = &w->reqs[i];
    if (v)
        qsort(v, *n, sizeof(*v), cmp_req_ptr);
    return v;
}

/* 1 when request r is among the sorted requests v[0..n). */
static int in_sorted(const struct rb_wire_req **v, size_t n, const struct rb_wire_req *r)
{
    size_t lo = 0, hi = n;

    if (!r->hash[0])
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_req(v[mid], r);

        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* How many times the sorted requests v[0..n) hold request r. */
static int count_sorted(const struct rb_wire_req **v, size_t n,
                        const struct rb_wire_req *r)
{
    size_t lo = 0, hi = n;
    int c = 0;

    while (lo < hi) { /* the first not below r */
        size_t mid = lo + (hi - lo) / 2;

        if (cmp_req(v[mid], r) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && cmp_req(v[lo], r) == 0; lo++)
        c++;
    return c;
}

/*
 * Marks dup[i] for each request of `t` (LLM or tool, by `llm`) that repeats
 * one an earlier attempt made and got an answer for, as far as `t` made it
 * more often than `golden` did (a golden trial may ask the same twice).
 * Returns how many, or -1 when out of memory.
 */
static int mark_repeats(const struct rb_trial *golden, const struct rb_trial *t,
                        const struct starts *st, int llm, char *dup)
{
    const struct rb_wire_req **v, **gv;
    size_t n, gn, i, start;
    int count = 0;

    v = sorted_reqs(&t->wire, llm, &n);
    gv = sorted_reqs(&golden->wire, llm, &gn);
    if ((!v && t->wire.n) || (!gv && golden->wire.n)) {
        free(v);
        free(gv);
        return -1;
    }
    for (start = 0; start < n;) {
        int first_answered = 0; /* earliest attempt that got this answered */
        int beyond;             /* times made beyond golden's */
        size_t end = start;

        while (end < n && same_req(v[start], v[end]))
            end++;
        beyond = (int)(end - start) - count_sorted(gv, gn, v[start]);
        for (i = start; i < end && beyond > 0; i++) {
            int a = attempt_at(st, v[i]->t_ns);

            if (first_answered && a > first_answered) {
                dup[v[i] - t->wire.reqs] = 1;
                count++;
                beyond--;
            }
            if (v[i]->answered && (!first_answered || a < first_answered))
                first_answered = a;
        }
        start = end;
    }
    free(v);
    free(gv);
    return count;
}

/* LLM calls, their tokens, and the ones duplicated: repeats of answered
 * requests of an earlier attempt (beyond golden's own repeats), then, when the trial got
 * more answers than golden did, its earliest answered calls that match no golden request,
 * up to that surplus (an agent whose requests never repeat exactly). Tool calls by the
 * first rule alone. */
static void score_calls(const struct rb_trial *golden, const struct rb_trial *t,
                        const struct starts *st, struct rb_score *out)
{
    const struct rb_wire_req **gv = NULL;
    char *dup = t->wire.n ? calloc(t->wire.n, 1) : NULL;
    size_t i, gn = 0;
    int surplus, extra = 0, exact;

    for (i = 0; i < golden->wire.n; i++) {
        const struct rb_wire_req *r = &golden->wire.reqs[i];

        if (r->llm) {
            out->llm_golden_calls++;
            out->llm_golden_answered += r->answered;
        } else {
            out->tool_golden_calls++;
        }
    }
    for (i = 0; i < t->wire.n; i++) {
        const struct rb_wire_req *r = &t->wire.reqs[i];

        if (!r->llm) {
            out->tool_calls++;
            continue;
        }
        out->llm_calls++;
        if (r->answered) {
            out->llm_answered++;
            out->prompt_tokens += r->prompt_tokens;
            out->completion_tokens += r->completion_tokens;
        }
    }
    if (!dup)
        return; /* no requests, or out of memory: nothing found duplicated */
    out->tool_duplicated = mark_repeats(golden, t, st, 0, dup);
    if (out->tool_duplicated < 0)
        out->tool_duplicated = 0;
    memset(dup, 0, t->wire.n);
    exact = mark_repeats(golden, t, st, 1, dup);
    if (exact < 0)
        exact = 0;
    surplus = out->llm_answered - out->llm_golden_answered;
    if (surplus > exact)
        gv = sorted_reqs(&golden->wire, 1, &gn);
    for (i = 0; i < t->wire.n && surplus > exact + extra && (gv || gn == 0); i++) {
        const struct rb_wire_req *r = &t->wire.reqs[i];

        if (r->llm && r->answered && !dup[i] && !in_sorted(gv, gn, r)) {
            dup[i] = 1;
            extra++;
        }
    }
    out->llm_duplicated = exact + extra;
    for (i = 0; i < t->wire.n; i++) {
        if (!dup[i] || !t->wire.reqs[i].llm)
            continue;
        out->prompt_wasted += t->wire.reqs[i].prompt_tokens;
        out->completion_wasted += t->wire.reqs[i].completion_tokens;
    }
    out->tokens_wasted = out->prompt_wasted + out->completion_wasted;
    out->cost_wasted = (double)out->prompt_wasted / 1000.0 * t->price_prompt +
                       (double)out->completion_wasted / 1000.0 * t->price_completion;
    free(gv);
    free(dup);
}

/* Messages a and b have in common from the start. */
static size_t common_prefix(const struct rb_wire_req *a, const struct rb_wire_req *b)
{
    size_t i;

    for (i = 0; i < a->n_msgs && i < b->n_msgs; i++)
        if (strcmp(a->msgs[i].role, b->msgs[i].role) ||
            strcmp(a->msgs[i].digest, b->msgs[i].digest))
            break;
    return i;
}

/* Says how faulted request r differs from golden request g (its closest). */
static void describe_divergence(const struct rb_wire_req *r, const struct rb_wire_req *g,
                                struct rb_score *out)
{
    size_t k;

    if (!g) {
        out->div_message = -1;
        snprintf(out->div_what, sizeof(out->div_what),
                 "the golden trial sent no LLM request");
        return;
    }
    if (!r->msgs || !g->msgs) {
        out->div_message = -1;
        snprintf(out->div_what, sizeof(out->div_what),
                 "its messages match no golden request (the journal has no message "
                 "digests to say which differs)");
        return;
    }
    k = common_prefix(r, g);
    out->div_message = (int)k;
    if (k < r->n_msgs)
        snprintf(out->div_what, sizeof(out->div_what), "message %zu (role %s) differs", k,
                 r->msgs[k].role);
    else if (k < g->n_msgs)
        snprintf(out->div_what, sizeof(out->div_what),
                 "message %zu (role %s) missing: %zu messages, golden's had %zu", k,
                 g->msgs[k].role, r->n_msgs, g->n_msgs);
    else if (strcmp(r->model, g->model)) {
        char a[60], b[60];

        snprintf(a, sizeof(a), "%.59s", r->model);
        snprintf(b, sizeof(b), "%.59s", g->model);
        rb_utf8_trim(a);
        rb_utf8_trim(b);
        snprintf(out->div_what, sizeof(out->div_what),
                 "the model differs: '%s', golden's '%s'", a, b);
    } else /* the digests are a prefix of the hash: one collided */
        snprintf(out->div_what, sizeof(out->div_what),
                 "its messages differ from the closest golden request's by their "
                 "hash alone");
    rb_utf8_trim(out->div_what); /* a role or model cut short stays valid text */
}

/*
 * The first point of divergence: the first LLM request of `t` (journal
 * order) that matches no golden request exactly (same model and messages).
 * Matched as a multiset without regard to order: parallel threads interleave
 * differently in every trial, and a request repeated after a restart is a
 * duplicated call, not a lost context.
 */
static void score_divergence(const struct rb_trial *golden, const struct rb_trial *t,
                             const struct starts *st, struct rb_score *out)
{
    const struct rb_wire_req **gv;
    size_t gn, i, j;
    int k = 0;

    out->div_request = out->div_attempt = out->div_golden_request = out->div_message = -1;
    gv = sorted_reqs(&golden->wire, 1, &gn);
    if (!gv && golden->wire.n)
        return;
    for (i = 0; i < t->wire.n; i++) {
        const struct rb_wire_req *r = &t->wire.reqs[i], *best = NULL;
        size_t best_len = 0, best_gap = (size_t)-1;
        int gk = 0, best_k = -1;

        if (!r->llm)
            continue;
        if (!r->hash[0] || in_sorted(gv, gn, r)) {
            k++;
            continue;
        }
        /* the closest golden request: the longest common prefix of messages,
         * then the nearest in length, then the earliest */
        for (j = 0; j < golden->wire.n; j++) {
            const struct rb_wire_req *g = &golden->wire.reqs[j];
            size_t len, gap;

            if (!g->llm)
                continue;
            len = common_prefix(r, g);
            gap = g->n_msgs > r->n_msgs ? g->n_msgs - r->n_msgs : r->n_msgs - g->n_msgs;
            if (!best || len > best_len || (len == best_len && gap < best_gap)) {
                best = g;
                best_len = len;
                best_gap = gap;
                best_k = gk;
            }
            gk++;
        }
        out->diverged = 1;
        out->div_request = k;
        out->div_attempt = attempt_at(st, r->t_ns);
        out->div_golden_request = best_k;
        describe_divergence(r, best, out);
        break;
    }
    free(gv);
}

/* Black-box recovery of the fault injected at event index k, whose clock
 * starts at base_ns: the first request not made before the injection, in a
 * later attempt when the fault ended its attempt (`died`). */
static int64_t first_new_request(const struct rb_trial *t, const struct starts *st,
                                 size_t k, int64_t base_ns, int died)
{
    int64_t inj = t->events[k].t_ns, found = -1;
    int fault_attempt = attempt_at(st, inj);
    const struct rb_wire_req **before =
        t->wire.n ? malloc(t->wire.n * sizeof(*before)) : NULL;
    size_t i, n = 0;

    if (!before)
        return -1; /* no requests, or out of memory: none seen */
    for (i = 0; i < t->wire.n; i++)
        if (t->wire.reqs[i].t_ns < inj && t->wire.reqs[i].hash[0])
            before[n++] = &t->wire.reqs[i];
    qsort(before, n, sizeof(*before), cmp_req_ptr);
    for (i = 0; i < t->wire.n && found < 0; i++) {
        const struct rb_wire_req *r = &t->wire.reqs[i];

        if (r->t_ns < base_ns || r->t_ns < inj)
            continue;
        if (died && attempt_at(st, r->t_ns) <= fault_attempt)
            continue;
        if (!in_sorted(before, n, r))
            found = ms(r->t_ns - base_ns);
    }
    free(before);
    return found;
}

#define MAX_OPEN 256 /* steps in flight at once that are told apart */

/* When the fault injected at event k ended: its fault.heal (a fault with a
 * duration), else the injection. */
static int64_t heal_of(const struct rb_trial *t, size_t k, int64_t fault_index)
{
    size_t i;

    for (i = k + 1; i < t->n_events; i++)
        if (is(&t->events[i], "fault.heal") &&
            json_int(t->events[i].json, "fault", -2) == fault_index)
            return t->events[i].t_ns;
    return t->events[k].t_ns;
}

/* Which fault an event is about: the supervisor's index ("fault"), a world
 * fault's (offset, "world_fault"), or -1. */
static int64_t fault_id(const struct rb_trial_event *e)
{
    int64_t w;

    if (json_object_get(e->json, "fault"))
        return json_int(e->json, "fault", -1);
    w = json_int(e->json, "world_fault", -1);
    return w >= 0 ? 1000000 + w : -1;
}

/* 1 when the fault injected by event e ends the attempt by itself: the
 * supervisor's kills (sigkill, a notice's SIGTERM then SIGKILL, an OOM kill,
 * a memory limit's kill). Its death is the attempt's next failed exit, what
 * else happens meanwhile (a world fault hitting a request) notwithstanding. */
static int kills(const struct rb_trial_event *e)
{
    const char *form = json_string_value(json_object_get(e->json, "form"));

    if (!json_object_get(e->json, "fault"))
        return 0; /* the world's: it fails requests, the agent decides */
    if (json_object_get(e->json, "limit"))
        return 1;
    return form && (!strcmp(form, "sigkill") || !strcmp(form, "notice") ||
                    !strcmp(form, "oom-kill"));
}

/* 1 when event e is the injection of another fault than `id`. */
static int other_fault(const struct rb_trial_event *e, int64_t id)
{
    return is(e, "fault.inject") && fault_id(e) != id;
}

/* Scores the fault injected at event index k. */
static void score_fault(const struct rb_trial *t, const struct starts *st, size_t k,
                        struct rb_fault_score *f)
{
    const struct rb_trial_event *inj = &t->events[k];
    const char *open[MAX_OPEN], *s;
    size_t n_open = 0, frontier, j;
    int64_t base = inj->t_ns, death = -1, start = -1, first_new = -1;
    int64_t fault_index = json_int(inj->json, "fault", -1);
    int64_t id = fault_id(inj);
    int others = 0, killer = kills(inj);
    size_t i;

    memset(f, 0, sizeof(*f));
    f->recovery_ms = f->detect_ms = f->restart_ms = f->replay_ms = f->redo_ms = -1;
    f->recovery_first_request_ms = -1;
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
        if (!killer && other_fault(&t->events[i], id))
            break; /* another fault came first: the death, if any, is its */
        if (is(&t->events[i], "proc.exit")) {
            /* a fault claimed this death: it is this fault's when it kills */
            if (killer && json_object_get(t->events[i].json, "failure"))
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
    for (j = 0; j < n_open; j++)
        for (i = frontier + 1; i < t->n_events; i++)
            if (is(&t->events[i], "step.start") && t->events[i].step &&
                !strcmp(t->events[i].step, open[j])) {
                f->inflight_lost++;
                break;
            }

    for (i = k + 1; i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (death < 0 && !killer && other_fault(e, id))
            others = 1; /* a death from here on is another fault's */
        if (is(e, "fault.heal") && json_int(e->json, "fault", -2) == fault_index &&
            death < 0) {
            base = e->t_ns; /* a fault with a duration: from its end */
        } else if (is(e, "proc.exit") && death < 0 && !others && !clean_exit(e) &&
                   (killer || !json_object_get(e->json, "failure"))) {
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
    if (death >= 0)
        f->inflight_lost = f->inflight; /* the attempt died: all its work in flight */
    f->recovery_first_request_ms =
        first_new_request(t, st, k, heal_of(t, k, fault_index), death >= 0);
}

/* ---- failure context ----------------------------------------------------------- */

#define MAX_PENDING 64 /* failed steps awaiting their retry that are told apart */

/* A step that failed and has not been tried again yet. */
struct pending {
    const char *step; /* borrowed from the event */
    int oom;          /* its task ended OOM-killed */
    int64_t limit;    /* the task's memory limit then, bytes */
};

static struct pending *find_pending(struct pending *p, size_t n, const char *step)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!strcmp(p[i].step, step))
            return &p[i];
    return NULL;
}

static void blind(struct rb_score *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Counts a retry the failure did not reach, and says what the first was. */
static void blind(struct rb_score *out, const char *fmt, ...)
{
    va_list ap;

    if (out->retries_blind++ == 0) {
        va_start(ap, fmt);
        vsnprintf(out->blind_what, sizeof(out->blind_what), fmt, ap);
        va_end(ap);
    }
}

/*
 * Judges whether each in-process retry was handed the failure before it:
 * - a task step whose task ended OOM-killed, tried again (in the same attempt
 *   or a later one): reached when the retry's task.start asks for a larger
 *   memory limit than the one that was killed;
 * - any other step that failed (step.fail) and started again: reached when
 *   the step.start carries the recorded failure (`last_error`, as librebound
 *   writes it on a retry); not judged when it carries no `tries` (a writer
 *   that does not say);
 * - an LLM or tool call retried inside its step (step.retry): reached when
 *   the event carries the failure's `reason`.
 */
static void judge_retries(const struct rb_trial *t, struct rb_score *out)
{
    struct pending p[MAX_PENDING], *q;
    size_t n = 0, i;

    for (i = 0; i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (!e->step)
            continue;
        q = find_pending(p, n, e->step);
        if (is(e, "task.end") || is(e, "step.fail")) {
            const char *outcome = json_string_value(json_object_get(e->json, "outcome"));

            if (!q && n < MAX_PENDING) {
                q = &p[n++];
                memset(q, 0, sizeof(*q));
                q->step = e->step;
            }
            if (q && is(e, "task.end") && outcome && !strcmp(outcome, "oom")) {
                q->oom = 1;
                q->limit = json_int(e->json, "limit", 0);
            }
            if (q && is(e, "task.end") && outcome && !strcmp(outcome, "ok"))
                *q = p[--n]; /* it passed: nothing to retry */
        } else if (is(e, "task.start") && q && q->oom) {
            int64_t limit = json_int(e->json, "limit", 0);

            out->retries_judged++;
            if (limit <= q->limit)
                blind(out,
                      "%s retried with %lld MiB after an OOM at %lld MiB (the failure "
                      "did not reach the retry)",
                      e->step, (long long)(limit >> 20), (long long)(q->limit >> 20));
            *q = p[--n];
        } else if (is(e, "step.start") && q && !q->oom) {
            json_t *tries = json_object_get(e->json, "tries");

            if (json_is_integer(tries) && json_integer_value(tries) > 0) {
                out->retries_judged++;
                if (!json_is_object(json_object_get(e->json, "last_error")))
                    blind(out, "%s retried without its last failure", e->step);
            }
            *q = p[--n];
        } else if (is(e, "step.retry")) {
            out->retries_judged++;
            if (!json_is_string(json_object_get(e->json, "reason")))
                blind(out, "%s: a call retried without the failure's reason", e->step);
        } else if (is(e, "step.commit") || is(e, "step.replay") || is(e, "step.cached")) {
            if (q)
                *q = p[--n];
        }
    }
}

/* 1 when the trial wrote any step event (the agent is not a black box). */
static int has_steps(const struct rb_trial *t)
{
    size_t i;

    for (i = 0; i < t->n_events; i++)
        if (!strncmp(t->events[i].kind, "step.", 5))
            return 1;
    return 0;
}

void rb_score_trial(const struct rb_trial *golden, const struct rb_trial *t,
                    struct rb_score *out)
{
    struct starts st;
    size_t i;
    int restarts = 0, delivered = 0;

    memset(out, 0, sizeof(*out));
    out->golden_known = golden->attempts > 0;
    starts_init(t, &st);
    out->recovery_max_ms = -1;
    out->faults_fired = t->injected;
    out->faults_armed = (int)t->n_armed;
    for (i = 0; i < t->n_events && out->n_faults < RB_SCORE_MAX_FAULTS; i++) {
        const struct rb_trial_event *e = &t->events[i];
        struct rb_fault_score *f;

        if (!is(e, "fault.inject") || json_object_get(e->json, "phase"))
            continue; /* the SIGKILL ending a notice is the same fault */
        f = &out->faults[out->n_faults++];
        score_fault(t, &st, i, f);
        out->inflight_lost += f->inflight_lost;
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
        if (lf && !json_is_null(lf) &&
            !(json_is_string(lf) && json_string_length(lf) == 0))
            delivered++;
        else if (!out->blind_what[0])
            snprintf(out->blind_what, sizeof(out->blind_what),
                     "attempt %lld started without REBOUND_LAST_FAILURE",
                     (long long)json_int(e->json, "attempt", 0));
    }
    out->restarts_blind = restarts - delivered;
    judge_retries(t, out);
    out->failure_context_delivered =
        restarts || out->retries_judged
            ? out->restarts_blind == 0 && out->retries_blind == 0
            : -1;
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
    out->steps_known = has_steps(t);
    if (out->steps_known) {
        out->golden_steps = count_kind(golden, "step.start");
        out->steps_executed = count_kind(t, "step.start");
        out->steps_redone = out->steps_executed - out->golden_steps - out->inflight_lost;
        if (out->steps_redone < 0)
            out->steps_redone = 0;
    } else {
        /* a black box: what it redid cannot be told from steps it never named */
        out->golden_steps = out->steps_executed = out->steps_redone = -1;
        out->inflight_lost = -1;
        for (i = 0; i < out->n_faults; i++) {
            out->faults[i].inflight = -1;
            out->faults[i].inflight_lost = -1;
            out->faults[i].inflight_step[0] = '\0';
        }
    }
    score_calls(golden, t, &st, out);
    score_divergence(golden, t, &st, out);
    free(st.t_ns);
    out->context_preserved = golden->completed && t->completed &&
                             strcmp(golden->stdout_hash, t->stdout_hash) == 0 &&
                             !out->diverged;
    out->wall_ms = ms(t->end_ns - t->start_ns);
    out->golden_wall_ms = ms(golden->end_ns - golden->start_ns);
    out->time_lost_ms = out->wall_ms - out->golden_wall_ms - t->fault_time_ms;
    if (t->timed_out)
        out->outcome = RB_OUTCOME_HUNG;
    else if (t->completed)
        out->outcome =
            out->context_preserved ? RB_OUTCOME_RECOVERED : RB_OUTCOME_DEGRADED;
    else if (t->escalated == 1 && t->escalation_context)
        out->outcome = RB_OUTCOME_ESCALATED;
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
    rb_utf8_trim(why); /* results.json takes it as a JSON string */
}

static const char *yes_no(int v)
{
    return v ? "true" : "false";
}

/* The checks of a trial scored with no golden trial: what needs one is
 * unknown (said so when expected), the rest as usual. */
static void unknown_checks(const struct rb_scenario_expect *x, const struct rb_score *sc,
                           char *why, size_t size)
{
    static const char no_golden[] = "unknown (no golden trial)";
    int done = sc->outcome == RB_OUTCOME_RECOVERED || sc->outcome == RB_OUTCOME_DEGRADED;

    if (x->outcome != RB_SCENARIO_OUTCOME_ANY && done)
        add_why(why, size, "outcome %s to tell recovered from degraded, expected %s",
                no_golden, rb_scenario_outcome_name(x->outcome));
    else if (x->outcome != RB_SCENARIO_OUTCOME_ANY &&
             strcmp(rb_scenario_outcome_name(x->outcome), rb_outcome_name(sc->outcome)))
        add_why(why, size, "outcome: %s, expected %s", rb_outcome_name(sc->outcome),
                rb_scenario_outcome_name(x->outcome));
    if (x->max_steps_redone >= 0)
        add_why(why, size, "steps_redone %s, expected at most %lld", no_golden,
                (long long)x->max_steps_redone);
    if (x->max_llm_calls_duplicated >= 0)
        add_why(why, size, "llm_calls_duplicated %s, expected at most %lld", no_golden,
                (long long)x->max_llm_calls_duplicated);
    if (x->context_preserved >= 0)
        add_why(why, size, "context_preserved %s, expected %s", no_golden,
                yes_no(x->context_preserved));
    if (x->failure_context_delivered >= 0 && sc->failure_context_delivered >= 0 &&
        sc->failure_context_delivered != x->failure_context_delivered)
        add_why(why, size, "failure_context_delivered %s, expected %s%s%s",
                yes_no(sc->failure_context_delivered),
                yes_no(x->failure_context_delivered), sc->blind_what[0] ? ": " : "",
                sc->blind_what);
    if (x->side_effects_exactly_once == 1 && sc->effects_doubled)
        add_why(why, size,
                "side effects not exactly once: %d doubled (missing ones %s), expected "
                "exactly once",
                sc->effects_doubled, no_golden);
    if (x->max_time_lost_ms >= 0)
        add_why(why, size, "time_lost_ms %s, expected at most %lld", no_golden,
                (long long)x->max_time_lost_ms);
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
    if (!sc->golden_known) {
        /* audit --no-golden: what is measured against a golden trial is
         * unknown, and an expectation on it cannot be met by a guess */
        unknown_checks(x, sc, why, size);
        return size == 0 || why[0] == '\0';
    }
    if (x->outcome != RB_SCENARIO_OUTCOME_ANY &&
        strcmp(rb_scenario_outcome_name(x->outcome), rb_outcome_name(sc->outcome)))
        add_why(why, size, "outcome: %s, expected %s", rb_outcome_name(sc->outcome),
                rb_scenario_outcome_name(x->outcome));
    if (x->max_steps_redone >= 0 && sc->steps_redone < 0)
        add_why(why, size,
                "steps_redone unknown (the agent wrote no step events), expected at most "
                "%lld",
                (long long)x->max_steps_redone);
    if (x->max_steps_redone >= 0 && sc->steps_redone > x->max_steps_redone)
        add_why(why, size, "steps_redone %d > max_steps_redone %lld", sc->steps_redone,
                (long long)x->max_steps_redone);
    if (x->max_llm_calls_duplicated >= 0 &&
        sc->llm_duplicated > x->max_llm_calls_duplicated)
        add_why(why, size, "llm_calls_duplicated %d > max_llm_calls_duplicated %lld",
                sc->llm_duplicated, (long long)x->max_llm_calls_duplicated);
    if (x->context_preserved >= 0 && sc->context_preserved != x->context_preserved &&
        sc->diverged)
        add_why(why, size,
                "context_preserved %s, expected %s: request %d (attempt %d): %s",
                yes_no(sc->context_preserved), yes_no(x->context_preserved),
                sc->div_request, sc->div_attempt, sc->div_what);
    else if (x->context_preserved >= 0 && sc->context_preserved != x->context_preserved)
        add_why(why, size, "context_preserved %s, expected %s",
                yes_no(sc->context_preserved), yes_no(x->context_preserved));
    if (x->failure_context_delivered >= 0 && sc->failure_context_delivered >= 0 &&
        sc->failure_context_delivered != x->failure_context_delivered)
        add_why(why, size, "failure_context_delivered %s, expected %s%s%s",
                yes_no(sc->failure_context_delivered),
                yes_no(x->failure_context_delivered), sc->blind_what[0] ? ": " : "",
                sc->blind_what);
    if (x->side_effects_exactly_once == 1 && (sc->effects_doubled || sc->effects_missing))
        add_why(why, size,
                "side effects not exactly once: %d doubled, %d missing, expected "
                "exactly once",
                sc->effects_doubled, sc->effects_missing);
    if (x->max_time_lost_ms >= 0 && sc->time_lost_ms > x->max_time_lost_ms)
        add_why(why, size, "time_lost_ms %lld > max_time_lost_ms %lld",
                (long long)sc->time_lost_ms, (long long)x->max_time_lost_ms);
    if ((x->recovery_p50_ms >= 0 || x->recovery_p95_ms >= 0) && p50_ms < 0)
        add_why(why, size,
                "recovery unknown (no fault of the scenario's trials was followed by "
                "new progress), expected %s at most %lld ms",
                x->recovery_p50_ms >= 0 ? "p50" : "p95",
                (long long)(x->recovery_p50_ms >= 0 ? x->recovery_p50_ms
                                                    : x->recovery_p95_ms));
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

static json_t *int_or_null(int v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* The LLM calls of the trial: "llm" in the record. */
static json_t *llm_json(const struct rb_score *sc)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:f, s:I, s:I}", "calls",
                     sc->llm_calls, "golden_calls", sc->llm_golden_calls, "answered",
                     sc->llm_answered, "golden_answered", sc->llm_golden_answered,
                     "duplicated", sc->llm_duplicated, "tokens_wasted",
                     (json_int_t)sc->tokens_wasted, "prompt_tokens_wasted",
                     (json_int_t)sc->prompt_wasted, "completion_tokens_wasted",
                     (json_int_t)sc->completion_wasted, "cost_wasted", sc->cost_wasted,
                     "prompt_tokens", (json_int_t)sc->prompt_tokens, "completion_tokens",
                     (json_int_t)sc->completion_tokens);
}

static json_t *divergence_json(const struct rb_score *sc)
{
    if (!sc->diverged)
        return json_null();
    return json_pack("{s:i, s:i, s:o, s:o, s:s}", "request", sc->div_request, "attempt",
                     sc->div_attempt, "golden_request",
                     int_or_null(sc->div_golden_request), "message",
                     int_or_null(sc->div_message), "what", sc->div_what);
}

static json_t *escalation_json(const struct rb_trial *t)
{
    if (t->escalated != 1)
        return json_null();
    return json_pack("{s:s, s:b}", "reason", t->escalation_reason, "context_kept",
                     t->escalation_context);
}

/* How the failure-context verdict was reached. */
static json_t *failure_json(const struct rb_score *sc, const struct rb_trial *t)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:o}", "restarts",
                     t->attempts > 0 ? t->attempts - 1 : 0, "restarts_blind",
                     sc->restarts_blind, "retries", sc->retries_judged, "retries_blind",
                     sc->retries_blind, "first_blind",
                     sc->blind_what[0] ? json_string(sc->blind_what) : json_null());
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
            json_pack("{s:s, s:s, s:o, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                      "form", f->form, "trigger", f->trigger, "mechanism",
                      f->mechanism[0] ? json_string(f->mechanism) : json_null(),
                      "inject_ms", (double)(f->inject_ns - t->start_ns) / 1e6, "inflight",
                      int_or_null(f->inflight), "inflight_lost",
                      int_or_null(f->inflight_lost), "inflight_step",
                      f->inflight > 0 ? json_string(f->inflight_step) : json_null(),
                      "recovery_ms", ms_or_null(f->recovery_ms), "detect_ms",
                      ms_or_null(f->detect_ms), "restart_ms", ms_or_null(f->restart_ms),
                      "replay_ms", ms_or_null(f->replay_ms), "redo_ms",
                      ms_or_null(f->redo_ms), "recovery_first_request_ms",
                      ms_or_null(f->recovery_first_request_ms)));
    }
    rec = json_pack(
        "{s:s, s:o, s:I, s:s, s:s, s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o,"
        " s:{s:b, s:s, s:s, s:s, s:o}, s:{s:i, s:i, s:i, s:b}, s:o, s:I, s:I, s:I, s:o, "
        "s:o}",
        "scenario", s->name, "file", s->path ? json_string(s->path) : json_null(), "seed",
        (json_int_t)t->seed, "trial", "faulted", "outcome", rb_outcome_name(sc->outcome),
        "faults_fired", t->injected, "faults_armed", (json_int_t)t->n_armed, "faults",
        faults, "recovery_ms", ms_or_null(sc->recovery_max_ms), "steps_redone",
        int_or_null(sc->steps_redone), "inflight_lost", int_or_null(sc->inflight_lost),
        "steps_executed", int_or_null(sc->steps_executed), "golden_steps",
        int_or_null(sc->golden_steps), "context", "preserved", sc->context_preserved,
        "compared",
        "sha256 of the agent's stdout in its last attempt, against the golden trial's; "
        "and every LLM request's model and messages, against the golden trial's",
        "sha256", t->stdout_hash, "golden_sha256", golden->stdout_hash, "divergence",
        divergence_json(sc), "side_effects", "total", sc->side_effects, "doubled",
        sc->effects_doubled, "missing", sc->effects_missing, "exactly_once",
        !sc->effects_doubled && !sc->effects_missing, "failure_context_delivered",
        sc->failure_context_delivered < 0 ? json_null()
                                          : json_boolean(sc->failure_context_delivered),
        "wall_ms", (json_int_t)sc->wall_ms, "golden_wall_ms",
        (json_int_t)sc->golden_wall_ms, "time_lost_ms", (json_int_t)sc->time_lost_ms,
        "faulted", trial_json(t), "golden", trial_json(golden));
    if (!rec)
        return NULL;
    json_object_set_new(rec, "llm", llm_json(sc));
    json_object_set_new(rec, "tools",
                        json_pack("{s:i, s:i, s:i}", "calls", sc->tool_calls,
                                  "golden_calls", sc->tool_golden_calls, "duplicated",
                                  sc->tool_duplicated));
    json_object_set_new(rec, "failure_context", failure_json(sc, t));
    json_object_set_new(rec, "escalation", escalation_json(t));
    json_object_set_new(rec, "steps_known", json_boolean(sc->steps_known));
    if (t->drawn) /* what random schedules drew: paste into `faults` to rerun */
        json_object_set(rec, "faults_drawn", t->drawn);
    return rec;
}
