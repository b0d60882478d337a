/*
 * trial_io.c - one trial (struct rb_trial, run.h) as a JSON file and back:
 * the run engine's workers (suite.c) run a trial in their own process and
 * hand it back to the engine through DIR/trial.json; `--golden` reuses one
 * recorded earlier. Every field of struct rb_trial is written here by name:
 * a field added to the struct must be added to both functions below, or it
 * is lost on the way back from a worker (tests/unit/test_suite.c round-trips
 * every field). The exception is the wire (the world's requests): it is read
 * again from the journal in the trial's folder.
 */
#include "suite.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRIAL_IO_VERSION 1 /* the "trial_io" value written and read */

static json_t *events_json(const struct rb_trial *t)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a && i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (json_array_append_new(a, json_pack("[I, s, s?, O]", (json_int_t)e->t_ns,
                                               e->kind, e->step, e->json)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

enum rb_err rb_trial_save(const struct rb_trial *t, const char *path,
                          struct rb_error *err)
{
    json_t *root = NULL, *triggers = NULL, *events = NULL;
    char tmp[4200];
    enum rb_err rc = RB_OK;
    size_t i;

    triggers = json_array();
    for (i = 0; triggers && i < RB_SCORE_MAX_FAULTS; i++)
        if (json_array_append_new(triggers, json_string(t->trigger_desc[i])) != 0)
            goto nomem;
    events = events_json(t);
    if (!triggers || !events)
        goto nomem;
    root = json_pack(
        "{s:i, s:i, s:I, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i,"
        " s:i, s:I, s:I, s:O?, s:O?, s:O, s:s, s:I, s:O}",
        "trial_io", TRIAL_IO_VERSION, "faulted", t->faulted, "seed", (json_int_t)t->seed,
        "dir", t->dir, "run_id", t->run_id, "start_ns", (json_int_t)t->start_ns, "end_ns",
        (json_int_t)t->end_ns, "attempts", t->attempts, "completed", t->completed,
        "exit_code", t->exit_code, "signal", t->signal, "timed_out", t->timed_out,
        "interrupted", t->interrupted, "injected", t->injected, "n_armed",
        (json_int_t)t->n_armed, "fault_time_ms", (json_int_t)t->fault_time_ms, "effects",
        t->effects, "drawn", t->drawn, "trigger_desc", triggers, "stdout_hash",
        t->stdout_hash, "stdout_bytes", (json_int_t)t->stdout_bytes, "events", events);
    if (!root)
        goto nomem;
    /* the wire's side (H4): its requests are re-read from the world's
     * journal in the trial's folder on load */
    if (json_object_update_new(
            root, json_pack("{s:f, s:f, s:i, s:i, s:s}", "price_prompt", t->price_prompt,
                            "price_completion", t->price_completion, "escalated",
                            t->escalated, "escalation_context", t->escalation_context,
                            "escalation_reason", t->escalation_reason)) != 0)
        goto nomem;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        rc = rb_error_set(err, RB_EINVAL, "path too long: '%s'", path);
        goto out;
    }
    if (json_dump_file(root, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0) {
        rc = rb_error_set(err, RB_EIO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
    }
    goto out;
nomem:
    rc = rb_error_set(err, RB_ENOMEM, "out of memory saving the trial '%s'", path);
out:
    json_decref(root);
    json_decref(triggers);
    json_decref(events);
    return rc;
}

/* Copies string member `key` of o into buf (size bytes); -1 when absent. */
static int get_str(json_t *o, const char *key, char *buf, size_t size)
{
    const char *s = json_string_value(json_object_get(o, key));

    if (!s)
        return -1;
    snprintf(buf, size, "%s", s);
    return 0;
}

static int64_t get_int(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* Fills t's events from the array; -1 when one is malformed or memory runs
 * out (what was added stays in t for the caller to release). */
static int load_events(json_t *a, struct rb_trial *t)
{
    size_t i, n = json_array_size(a);

    if (n == 0)
        return 0;
    t->events = calloc(n, sizeof(*t->events));
    if (!t->events)
        return -1;
    t->cap_events = n;
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        json_t *time = json_array_get(e, 0), *kind = json_array_get(e, 1);
        json_t *step = json_array_get(e, 2), *body = json_array_get(e, 3);
        struct rb_trial_event *ev = &t->events[t->n_events];

        if (!json_is_integer(time) || !json_is_string(kind) ||
            !(json_is_string(step) || json_is_null(step)) || !body)
            return -1;
        ev->t_ns = (int64_t)json_integer_value(time);
        ev->kind = strdup(json_string_value(kind));
        ev->step = json_is_string(step) ? strdup(json_string_value(step)) : NULL;
        ev->json = json_incref(body);
        t->n_events++;
        if (!ev->kind || (json_is_string(step) && !ev->step))
            return -1;
    }
    return 0;
}

/* The folder holding file `path` ("." for a bare name), in out. */
static void folder_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

enum rb_err rb_trial_load(const char *path, struct rb_trial *out, struct rb_error *err)
{
    struct rb_trial t;
    json_error_t jerr;
    json_t *root, *triggers, *effects;
    char journal[4200];
    enum rb_err rc = RB_OK;
    size_t i;

    if (access(path, F_OK) != 0)
        return rb_error_set(err, RB_ENOENT, "cannot read trial '%s': %s", path,
                            strerror(errno));
    root = json_load_file(path, 0, &jerr);
    if (!root)
        return rb_error_set(err, RB_EINVAL, "cannot read trial '%s': %s (line %d)", path,
                            jerr.text, jerr.line);
    rb_trial_init(&t);
    if (get_int(root, "trial_io") != TRIAL_IO_VERSION ||
        get_str(root, "dir", t.dir, sizeof(t.dir)) != 0 ||
        get_str(root, "run_id", t.run_id, sizeof(t.run_id)) != 0 ||
        get_str(root, "stdout_hash", t.stdout_hash, sizeof(t.stdout_hash)) != 0 ||
        !json_is_array(json_object_get(root, "events"))) {
        rc = rb_error_set(err, RB_EINVAL, "'%s' is not a trial saved by this rebound",
                          path);
        goto out;
    }
    t.faulted = (int)get_int(root, "faulted");
    t.seed = (uint64_t)get_int(root, "seed");
    t.start_ns = get_int(root, "start_ns");
    t.end_ns = get_int(root, "end_ns");
    t.attempts = (int)get_int(root, "attempts");
    t.completed = (int)get_int(root, "completed");
    t.exit_code = (int)get_int(root, "exit_code");
    t.signal = (int)get_int(root, "signal");
    t.timed_out = (int)get_int(root, "timed_out");
    t.interrupted = (int)get_int(root, "interrupted");
    t.injected = (int)get_int(root, "injected");
    t.n_armed = (size_t)get_int(root, "n_armed");
    t.fault_time_ms = get_int(root, "fault_time_ms");
    t.stdout_bytes = get_int(root, "stdout_bytes");
    triggers = json_object_get(root, "trigger_desc");
    for (i = 0; i < RB_SCORE_MAX_FAULTS && i < json_array_size(triggers); i++)
        snprintf(t.trigger_desc[i], sizeof(t.trigger_desc[i]), "%s",
                 json_string_value(json_array_get(triggers, i))
                     ? json_string_value(json_array_get(triggers, i))
                     : "");
    effects = json_object_get(root, "effects");
    if (json_is_object(effects))
        t.effects = json_incref(effects);
    if (json_is_array(json_object_get(root, "drawn")))
        t.drawn = json_incref(json_object_get(root, "drawn"));
    if (load_events(json_object_get(root, "events"), &t) != 0) {
        rc = rb_error_set(err, RB_EINVAL,
                          "'%s': an event is malformed (or out of memory)", path);
        goto out;
    }
    t.price_prompt = json_number_value(json_object_get(root, "price_prompt"));
    t.price_completion = json_number_value(json_object_get(root, "price_completion"));
    t.escalated = (int)get_int(root, "escalated");
    t.escalation_context = (int)get_int(root, "escalation_context");
    get_str(root, "escalation_reason", t.escalation_reason, sizeof(t.escalation_reason));
    /* The trial's folder is where trial.json is now (a golden trial reused
     * from an earlier run may have been moved or copied since): its journal
     * is read from there, and a missing one is said, not skipped. */
    folder_of(path, t.dir, sizeof(t.dir));
    snprintf(journal, sizeof(journal), "%s/world.jsonl", t.dir);
    if (access(journal, F_OK) != 0) {
        rc = rb_error_set(err, RB_ENOENT,
                          "trial '%s' has no world.jsonl beside it: its LLM and tool "
                          "requests cannot be compared; copy the whole trial folder",
                          path);
        goto out;
    }
    rc = rb_wire_read(journal, &t.wire, err);
    if (rc != RB_OK)
        goto out;
    *out = t;
    rb_trial_init(&t);
out:
    rb_trial_release(&t);
    json_decref(root);
    return rc;
}
