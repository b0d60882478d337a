/*
 * trigger.c - when faults fire: matching the agent's step events (step N
 * before it starts, a delay into it, after it commits) and timers against
 * the armed faults, and drawing a trigger from a seed so that the same seed
 * always gives the same schedule.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: a small, well-mixed generator; the schedule depends only on
 * the seed, never on the platform's rand(). */
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

enum rb_err rb_trigger_from_seed(uint64_t seed, const struct rb_trigger_range *range,
                                 struct rb_trigger *out, struct rb_error *err)
{
    struct rb_trigger t = {0};
    uint64_t state = seed;

    if (!range || !out)
        return rb__fx_fail(err, RB_EINVAL, "trigger range is missing");
    if (range->step_max > 0) {
        if (range->step_min < 1 || range->step_min > range->step_max)
            return rb__fx_fail(err, RB_EINVAL,
                               "step range '%d..%d' is empty; steps count from 1",
                               range->step_min, range->step_max);
        if (range->during_max_ms < 0)
            return rb__fx_fail(err, RB_EINVAL, "during delay '%lld' is negative",
                               (long long)range->during_max_ms);
        t.step = (int)draw(&state, range->step_min, range->step_max);
        t.when = (enum rb_trigger_when)draw(&state, RB_TRIGGER_STEP_START,
                                            RB_TRIGGER_STEP_COMMIT);
        if (t.when == RB_TRIGGER_STEP_DURING)
            t.delay_ms = draw(&state, 0, range->during_max_ms);
    } else {
        if (range->time_min_ms < 0 || range->time_min_ms > range->time_max_ms)
            return rb__fx_fail(err, RB_EINVAL, "time range '%lld..%lld' ms is empty",
                               (long long)range->time_min_ms,
                               (long long)range->time_max_ms);
        t.when = RB_TRIGGER_TIME;
        t.delay_ms = draw(&state, range->time_min_ms, range->time_max_ms);
    }
    *out = t;
    return RB_OK;
}

void rb_trigger_describe(const struct rb_trigger *t, char *buf, size_t size)
{
    char step[96];

    if (t->step_key)
        snprintf(step, sizeof(step), "step '%s'", t->step_key);
    else
        snprintf(step, sizeof(step), "step %d", t->step);
    switch (t->when) {
    case RB_TRIGGER_STEP_START:
        snprintf(buf, size, "%s start", step);
        break;
    case RB_TRIGGER_STEP_DURING:
        snprintf(buf, size, "%s start+%lldms", step, (long long)t->delay_ms);
        break;
    case RB_TRIGGER_STEP_COMMIT:
        snprintf(buf, size, "%s commit", step);
        break;
    case RB_TRIGGER_TIME:
        snprintf(buf, size, "time %lldms", (long long)t->delay_ms);
        break;
    case RB_TRIGGER_EXTERNAL:
        snprintf(buf, size, "external");
        break;
    default:
        snprintf(buf, size, "never");
        break;
    }
}

/* The ordinal (from 1) of `key` among the steps this attempt entered,
 * adding it when new; 0 when out of memory. */
static int step_ordinal(struct rb_sup *sup, const char *key)
{
    size_t i;
    char *copy;

    for (i = 0; i < sup->n_keys; i++)
        if (strcmp(sup->keys[i], key) == 0)
            return (int)i + 1;
    if (sup->n_keys == sup->cap_keys) {
        size_t cap = sup->cap_keys ? sup->cap_keys * 2 : 64;
        char **keys = realloc(sup->keys, cap * sizeof(*keys));
        if (!keys)
            return 0;
        sup->keys = keys;
        sup->cap_keys = cap;
    }
    copy = strdup(key);
    if (!copy)
        return 0;
    sup->keys[sup->n_keys++] = copy;
    return (int)sup->n_keys;
}

static int step_matches(const struct rb_trigger *t, const char *key, int ordinal)
{
    if (t->step_key)
        return strcmp(t->step_key, key) == 0;
    return t->step == ordinal;
}

void rb__trigger_on_event(struct rb_sup *sup, const char *kind, const char *key,
                          int64_t now, int fire)
{
    int ordinal, is_start, is_commit, is_replay;
    size_t i;

    if (!key)
        return;
    is_start = strcmp(kind, "step.start") == 0;
    is_commit = strcmp(kind, "step.commit") == 0;
    is_replay = strcmp(kind, "step.replay") == 0 || strcmp(kind, "step.cached") == 0;
    if (!is_start && !is_commit && !is_replay)
        return;
    ordinal = step_ordinal(sup, key);
    for (i = 0; i < sup->n_faults; i++) {
        struct rb__fault *f = &sup->faults[i];
        const struct rb_trigger *t = &f->spec.trigger;

        /* An attempt already dying fires nothing more: its step will be
         * replayed by the next one, which fires the trigger there. */
        if (!fire || f->state != RB__ARMED || !step_matches(t, key, ordinal))
            continue;
        if (is_replay) {
            /* Step N was done in an attempt that could not fire this (it was
             * dying, or died before its commit was read): the run passes
             * the same point now. */
            rb__fault_fire(sup, f, now);
        } else if (t->when == RB_TRIGGER_STEP_START && is_start) {
            rb__fault_fire(sup, f, now);
        } else if (t->when == RB_TRIGGER_STEP_COMMIT && is_commit) {
            rb__fault_fire(sup, f, now);
        } else if (t->when == RB_TRIGGER_STEP_DURING && is_start) {
            f->state = RB__PENDING;
            f->due_ns = now + t->delay_ms * 1000000;
        }
    }
}

void rb__trigger_attempt_start(struct rb_sup *sup)
{
    size_t i;

    for (i = 0; i < sup->n_keys; i++)
        free(sup->keys[i]);
    sup->n_keys = 0;
    for (i = 0; i < sup->n_faults; i++) {
        struct rb__fault *f = &sup->faults[i];

        if (f->state == RB__ARMED && f->spec.trigger.when == RB_TRIGGER_TIME) {
            f->state = RB__PENDING;
            f->due_ns = sup->first_start_ns + f->spec.trigger.delay_ms * 1000000;
        }
    }
}
