/*
 * schedule.c - random fault schedules: a scenario's `random` entries
 * ({kinds, count, window_steps or window_ms, seed}) expanded, for one trial's seed, into
 * concrete faults of the scenario format, each with a form of its kind, the
 * parameters that form needs and a trigger inside the window. The draw
 * depends only on the seed (the schedule's own, or the trial's), the
 * schedule's place in the file and the workflow: the same seed gives the
 * same faults on every machine. The drawn faults are also written back as
 * scenario JSON so a user can paste them into `faults` and replay the trial.
 */
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64, as the fault injectors use for triggers. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi]. */
static int64_t draw(uint64_t *state, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;

    return lo + (int64_t)(next_u64(state) % span);
}

static void set_err(struct rb_error *err, enum rb_err code, const char *msg)
{
    if (!err)
        return;
    rb_error_init(err);
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

size_t rb_schedule_count(const struct rb_scenario *s)
{
    size_t i, n = 0;

    for (i = 0; i < s->n_randoms; i++)
        n += (size_t)s->randoms[i].count;
    return n;
}

/* The range of LLM calls (1-based) that fall in steps [first, last] of the
 * built-in agent's workflow, whose LLM calls are spread evenly over its
 * steps, leaving out the last call (nothing may follow it for a world fault
 * to hit). 0 when there is none. */
static int llm_range(const struct rb_scenario *s, int first, int last, int *lo, int *hi)
{
    const struct rb_scenario_workflow *wf = &s->agent.workflow;
    int64_t a, b;

    if (s->agent.kind != RB_SCENARIO_AGENT_BUILTIN || wf->steps < 1 || wf->llm_turns < 2)
        return 0;
    a = ((int64_t)(first - 1) * wf->llm_turns) / wf->steps + 1;
    b = ((int64_t)last * wf->llm_turns) / wf->steps;
    if (b > wf->llm_turns - 1)
        b = wf->llm_turns - 1;
    if (a < 1)
        a = 1;
    if (a > b)
        return 0;
    *lo = (int)a;
    *hi = (int)b;
    return 1;
}

/* Draws fault number `i` of schedule `r`. */
static enum rb_err draw_fault(const struct rb_scenario *s,
                              const struct rb_scenario_random *r, uint64_t *state,
                              struct rb_scenario_fault *f, struct rb_error *err)
{
    enum rb_scenario_fault_kind kinds[8];
    int n_kinds = 0, k, lo, hi;
    int64_t pick;

    for (k = RB_SCENARIO_PREEMPTION; k <= RB_SCENARIO_CLOCK; k++)
        if (r->kinds & (1u << k))
            kinds[n_kinds++] = (enum rb_scenario_fault_kind)k;
    if (n_kinds == 0) {
        set_err(err, RB_EINVAL, "random schedule names no fault kind");
        return RB_EINVAL;
    }
    memset(f, 0, sizeof(*f));
    f->line = r->line;
    f->kind = kinds[draw(state, 0, n_kinds - 1)];

    /* A step of the window, as it starts (the fault lands while its work
     * runs) or once it has committed. Not "during": a delay into a step
     * that a later fault of the schedule kills first would never come, as
     * the step is replayed, not started, after the restart. */
    if (r->window_time) {
        /* A time window: for agents that write no step events too. */
        if (r->window_ms_min < 0 || r->window_ms_max < r->window_ms_min) {
            set_err(err, RB_EINVAL, "random schedule has an empty window");
            return RB_EINVAL;
        }
        f->at.kind = RB_SCENARIO_AT_TIME;
        f->at.n = draw(state, r->window_ms_min, r->window_ms_max);
    } else {
        if (r->window_min < 1 || r->window_max < r->window_min) {
            set_err(err, RB_EINVAL, "random schedule has an empty window");
            return RB_EINVAL;
        }
        f->at.kind = RB_SCENARIO_AT_STEP;
        f->at.n = draw(state, r->window_min, r->window_max);
        f->at.when = draw(state, 0, 1) ? RB_SCENARIO_AFTER : RB_SCENARIO_BEFORE;
    }

    pick = draw(state, 0, 99);
    switch (f->kind) {
    case RB_SCENARIO_PREEMPTION:
        if (pick < 50) {
            f->form = RB_SCENARIO_SIGKILL;
        } else if (pick < 80) {
            f->form = RB_SCENARIO_NOTICE;
            f->grace_ms = draw(state, 1, 10) * 50; /* 50..500 ms */
        } else {
            f->form = RB_SCENARIO_FREEZE;
            f->duration_ms = draw(state, 1, 10) * 100; /* 100..1000 ms */
        }
        break;
    case RB_SCENARIO_OOM:
        f->form = RB_SCENARIO_OOM_KILL;
        break;
    case RB_SCENARIO_NETWORK:
        /* One to three calls fail at the world; the agent's client retries. */
        f->form = pick < 40   ? RB_SCENARIO_NET_SERVER_ERROR
                  : pick < 70 ? RB_SCENARIO_NET_RESET
                              : RB_SCENARIO_NET_RATE_LIMIT;
        f->count = draw(state, 1, 3);
        f->share = 1.0;
        if (f->form == RB_SCENARIO_NET_SERVER_ERROR)
            f->status = 503;
        if (f->form == RB_SCENARIO_NET_RATE_LIMIT)
            f->retry_after_s = 1;
        /* Armed at an LLM call in the window, so that calls follow it. */
        if (!r->window_time && llm_range(s, r->window_min, r->window_max, &lo, &hi)) {
            f->at.kind = RB_SCENARIO_AT_LLM_CALL;
            f->at.n = draw(state, lo, hi);
            f->at.when = RB_SCENARIO_BEFORE;
            f->at.delay_ms = 0;
        }
        break;
    case RB_SCENARIO_CLOCK:
        f->form = RB_SCENARIO_CLOCK_JUMP;
        f->jump_s = (double)(draw(state, 0, 1) ? 1 : -1) * (double)draw(state, 1, 3600);
        break;
    }
    return RB_OK;
}

enum rb_err rb_schedule_expand(const struct rb_scenario *s, uint64_t seed,
                               struct rb_scenario_fault **faults, size_t *n_faults,
                               json_t **drawn, struct rb_error *err)
{
    struct rb_scenario_fault *all = NULL;
    json_t *list = NULL;
    size_t n = s->n_faults, total = s->n_faults + rb_schedule_count(s), i;
    int k;
    enum rb_err rc = RB_OK;

    all = calloc(total ? total : 1, sizeof(*all));
    list = json_array();
    if (!all || !list) {
        rc = RB_ENOMEM;
        set_err(err, rc, "out of memory");
        goto fail;
    }
    if (s->n_faults)
        memcpy(all, s->faults, s->n_faults * sizeof(*all));
    for (i = 0; i < s->n_randoms; i++) {
        const struct rb_scenario_random *r = &s->randoms[i];
        /* the schedule's place in the file keeps two schedules apart */
        uint64_t state = (r->has_seed ? r->seed : seed) ^ (0x5eedull * (i + 1));

        for (k = 0; k < r->count; k++) {
            json_t *o;

            rc = draw_fault(s, r, &state, &all[n], err);
            if (rc != RB_OK)
                goto fail;
            o = rb_schedule_fault_json(&all[n]);
            if (o && json_object_set_new(o, "random", json_integer((json_int_t)i))) {
                json_decref(o);
                o = NULL;
            }
            if (!o || json_array_append_new(list, o)) { /* steals o */
                rc = RB_ENOMEM;
                set_err(err, rc, "out of memory");
                goto fail;
            }
            n++;
        }
    }
    *faults = all;
    *n_faults = n;
    *drawn = list;
    return RB_OK;
fail:
    free(all);
    json_decref(list);
    return rc;
}

json_t *rb_schedule_fault_json(const struct rb_scenario_fault *f)
{
    json_t *o = json_object(), *at = NULL;

    if (!o)
        return NULL;
    json_object_set_new(o, "kind", json_string(rb_scenario_kind_name(f->kind)));
    json_object_set_new(o, "form", json_string(rb_scenario_form_name(f->form)));
    switch (f->at.kind) {
    case RB_SCENARIO_AT_STEP:
        at = json_pack("{s:I, s:s}", "step", (json_int_t)f->at.n, "when",
                       f->at.when == RB_SCENARIO_BEFORE   ? "before"
                       : f->at.when == RB_SCENARIO_DURING ? "during"
                                                          : "after");
        if (at && f->at.when == RB_SCENARIO_DURING)
            json_object_set_new(at, "delay_ms", json_integer(f->at.delay_ms));
        break;
    case RB_SCENARIO_AT_LLM_CALL:
        at = json_pack("{s:I}", "llm_call", (json_int_t)f->at.n);
        break;
    case RB_SCENARIO_AT_TOOL_CALL:
        at = json_pack("{s:I}", "tool_call", (json_int_t)f->at.n);
        break;
    case RB_SCENARIO_AT_TIME:
        at = json_pack("{s:I}", "time_ms", (json_int_t)f->at.n);
        break;
    default:
        break;
    }
    if (at)
        json_object_set_new(o, "at", at);
    if (f->form == RB_SCENARIO_NOTICE)
        json_object_set_new(o, "grace_ms", json_integer(f->grace_ms));
    if (f->form == RB_SCENARIO_FREEZE || f->form == RB_SCENARIO_NET_PARTITION ||
        (f->kind == RB_SCENARIO_NETWORK && f->duration_ms > 0))
        json_object_set_new(o, "duration_ms", json_integer(f->duration_ms));
    if (f->kind == RB_SCENARIO_NETWORK && f->count > 0)
        json_object_set_new(o, "count", json_integer(f->count));
    if (f->form == RB_SCENARIO_NET_SERVER_ERROR)
        json_object_set_new(o, "status", json_integer(f->status));
    if (f->form == RB_SCENARIO_NET_RATE_LIMIT)
        json_object_set_new(o, "retry_after_s", json_integer(f->retry_after_s));
    if (f->form == RB_SCENARIO_CLOCK_JUMP)
        json_object_set_new(o, "jump_s", json_real(f->jump_s));
    return o;
}
