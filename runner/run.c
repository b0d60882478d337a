/*
 * run.c - runs and attempts: opening or resuming a run, recording how the
 * previous incarnation ended, handing that failure context to the next one,
 * and parking a run for a human.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const end_names[] = {"none", "ok",        "exit",   "signal",
                                        "oom",  "preempted", "unknown"};

const char *rb_end_kind_name(enum rb_end_kind kind)
{
    if ((int)kind < 0 || (size_t)kind >= sizeof(end_names) / sizeof(end_names[0]))
        return "unknown";
    return end_names[kind];
}

void rb_attempt_release(struct rb_attempt *a)
{
    if (!a)
        return;
    free(a->detail);
    a->detail = NULL;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

enum rb_err rb_run_opts_from_env(struct rb_run_opts *opts, struct rb_error *err)
{
    const char *fd = getenv("REBOUND_EVENT_FD");
    const char *attempt = getenv("REBOUND_ATTEMPT");
    const char *last = getenv("REBOUND_LAST_FAILURE");
    const char *no_replay = getenv("REBOUND_NO_REPLAY");
    int v;

    if (fd && *fd) {
        if (parse_int(fd, 1, 1 << 20, &v) != 0)
            return rb__fail(
                err, RB_EINVAL,
                "REBOUND_EVENT_FD is '%s'; it must be a file descriptor number", fd);
        opts->event_fd = v;
    }
    if (attempt && *attempt) {
        if (parse_int(attempt, 1, 1 << 30, &v) != 0)
            return rb__fail(err, RB_EINVAL,
                            "REBOUND_ATTEMPT is '%s'; it must be a number from 1",
                            attempt);
        opts->flags |= RB_RUN_JOIN;
        opts->attempt = v;
    }
    if (last && *last)
        opts->last_failure = last;
    if (no_replay && *no_replay && strcmp(no_replay, "0") != 0)
        opts->flags |= RB_RUN_NO_REPLAY; /* `rebound run --baseline no-replay` */
    return RB_OK;
}

/* Reads a supervisor's REBOUND_LAST_FAILURE JSON into an attempt end. The
 * JSON is kept whole as the detail; unparsable text is kept as a string. */
static void parse_last_failure(const char *json, struct rb_attempt *a)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    const char *kind = NULL;
    json_t *v;

    a->end = RB_END_UNKNOWN;
    a->exit_code = -1;
    a->signal = 0;
    a->detail = (char *)json;
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    v = json_object_get(root, "signal");
    if (json_is_integer(v))
        a->signal = (int)json_integer_value(v);
    v = json_object_get(root, "exit_code");
    if (json_is_integer(v))
        a->exit_code = (int)json_integer_value(v);
    v = json_object_get(root, "kind");
    if (json_is_string(v))
        kind = json_string_value(v);
    if (kind && strcmp(kind, "oom") == 0)
        a->end = RB_END_OOM;
    else if (kind && (strcmp(kind, "preemption") == 0 || strcmp(kind, "preempted") == 0))
        a->end = RB_END_PREEMPTED;
    else if (a->signal > 0)
        a->end = RB_END_SIGNAL;
    else if (a->exit_code > 0)
        a->end = RB_END_EXIT;
    json_decref(root);
}

enum rb_err rb_run_open(struct rb_store *store, const char *run_id,
                        const struct rb_run_opts *opts, struct rb_run **out,
                        struct rb_error *err)
{
    struct rb_run_opts o = {0};
    struct rb_attempt prev_end = {0};
    struct rb_run *run;
    enum rb_err rc;

    if (opts)
        o = *opts;
    rc = rb_name_check("run id", run_id, err);
    if (rc != RB_OK)
        return rc;
    run = calloc(1, sizeof(*run));
    if (!run)
        return rb__fail(err, RB_ENOMEM, "out of memory");
    run->run_id = strdup(run_id);
    if (!run->run_id) {
        free(run);
        return rb__fail(err, RB_ENOMEM, "out of memory");
    }
    run->store = store;
    run->flags = o.flags;
    run->event_fd = o.event_fd;
    rb__owner_self(run->owner, sizeof(run->owner));
    if (o.last_failure)
        parse_last_failure(o.last_failure, &prev_end);
    rc = store->ops->run_begin(store->be, run_id, o.flags, o.attempt, (int)getpid(),
                               o.last_failure ? &prev_end : NULL, &run->attempt, err);
    if (rc != RB_OK) {
        free(run->run_id);
        free(run);
        return rc;
    }
    rb__event(run, "run.open", NULL, NULL);
    *out = run;
    return RB_OK;
}

void rb_run_close(struct rb_run *run)
{
    if (!run)
        return;
    if (!(run->flags & RB_RUN_JOIN))
        run->store->ops->attempt_end(run->store->be, run->run_id, run->attempt, RB_END_OK,
                                     0, 0, NULL, 1, NULL);
    rb__event(run, "run.close", NULL, NULL);
    rb_run_abandon(run);
}

void rb_run_abandon(struct rb_run *run)
{
    if (!run)
        return;
    free(run->run_id);
    free(run);
}

const char *rb_run_id(const struct rb_run *run)
{
    return run->run_id;
}

int rb_run_attempt(const struct rb_run *run)
{
    return run->attempt;
}

enum rb_err rb_run_last_failure(struct rb_run *run, struct rb_attempt *out,
                                struct rb_error *err)
{
    return run->store->ops->attempt_prev(run->store->be, run->run_id, run->attempt, out,
                                         err);
}

enum rb_err rb_run_park(struct rb_run *run, const char *reason, const char *context,
                        struct rb_error *err)
{
    enum rb_err rc;

    if (!reason || !*reason)
        return rb__fail(err, RB_EINVAL, "parking run '%s' needs a reason", run->run_id);
    rc = run->store->ops->park(run->store->be, run->run_id, reason, context, err);
    if (rc == RB_OK)
        rb__event(run, "run.park", NULL, NULL);
    return rc;
}
