/*
 * trial.c - one trial of `rebound run`: a scenario's agent (its command, or
 * the built-in agent as `rebound agent`) run against its own world (in
 * process, on 127.0.0.1 at a free port or the scenario's; for a partition, on
 * the host end of the agent's own network namespace) and its own store, under
 * the supervisor (faults/faults.h) with the scenario's restart policy and
 * deadline, and, for a faulted trial, its faults (random schedules drawn for
 * its seed) armed at the supervisor or the world, world faults at a time by a
 * timer thread of the trial. Every
 * event (the supervisor's proc.* and fault.*, the agent's step.* from
 * REBOUND_EVENT_FD, the world's fault hits) is kept with rebound's monotonic
 * time for the scorer (score.c). The agent's stdout and stderr go to files
 * in the trial's folder; the last attempt's stdout is hashed to compare
 * contexts.
 */
#include "run.h"

#include "faults.h"
#include "world/world.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rb_trial_init(struct rb_trial *t)
{
    memset(t, 0, sizeof(*t));
    t->exit_code = -1;
}

void rb_trial_release(struct rb_trial *t)
{
    size_t i;

    for (i = 0; i < t->n_events; i++) {
        free(t->events[i].kind);
        free(t->events[i].step);
        json_decref(t->events[i].json);
    }
    free(t->events);
    json_decref(t->effects);
    json_decref(t->drawn);
    rb_wire_release(&t->wire);
    rb_trial_init(t);
}

/* ---- what the harness can run ------------------------------------------- */

/* Maps a scenario fault onto a supervisor fault; 0 when it has no such form
 * here (yet). */
static int map_form(const struct rb_scenario_fault *f, enum rb_fault_form *out)
{
    switch (f->form) {
    case RB_SCENARIO_NOTICE:
        *out = RB_FAULT_NOTICE;
        return 1;
    case RB_SCENARIO_SIGKILL:
        *out = RB_FAULT_SIGKILL;
        return 1;
    case RB_SCENARIO_FREEZE:
        *out = RB_FAULT_FREEZE;
        return 1;
    case RB_SCENARIO_OOM_KILL:
        *out = RB_FAULT_OOM_KILL;
        return 1;
    case RB_SCENARIO_CLOCK_JUMP:
        *out = RB_FAULT_CLOCK_JUMP;
        return 1;
    case RB_SCENARIO_NET_PARTITION:
        *out = RB_FAULT_PARTITION; /* the agent's own namespace (trial's netns) */
        return 1;
    default:
        return 0;
    }
}

/* Maps a scenario fault onto an HTTP fault of the world; 0 when it is not
 * one. */
static int map_world(const struct rb_scenario_fault *f, struct rb_world_fault *out)
{
    enum rb_world_fault_kind kind;

    switch (f->form) {
    case RB_SCENARIO_NET_RESET:
        kind = RB_WORLD_FAULT_RESET;
        break;
    case RB_SCENARIO_NET_REFUSED:
        kind = RB_WORLD_FAULT_REFUSED;
        break;
    case RB_SCENARIO_NET_STALL:
        kind = RB_WORLD_FAULT_STALL;
        break;
    case RB_SCENARIO_NET_SERVER_ERROR:
        kind = RB_WORLD_FAULT_SERVER_ERROR;
        break;
    case RB_SCENARIO_NET_RATE_LIMIT:
        kind = RB_WORLD_FAULT_RATE_LIMIT;
        break;
    case RB_SCENARIO_NET_TRUNCATE:
        kind = RB_WORLD_FAULT_TRUNCATE;
        break;
    case RB_SCENARIO_NET_SLOW:
        kind = RB_WORLD_FAULT_SLOW;
        break;
    default:
        return 0;
    }
    rb_world_fault_init(out, kind);
    snprintf(out->route, sizeof(out->route), "%s", f->route);
    out->duration_ms = f->duration_ms;
    out->count = f->count;
    if (f->share > 0)
        out->share = f->share;
    if (f->status > 0)
        out->status = f->status;
    if (f->retry_after_s > 0)
        out->retry_after_s = f->retry_after_s;
    if (f->delay_ms > 0 || kind == RB_WORLD_FAULT_STALL)
        out->delay_ms = f->delay_ms;
    if (f->chunk_bytes > 0)
        out->chunk_bytes = f->chunk_bytes;
    return 1;
}

/* The supervisor's trigger for a scenario trigger: steps and times it sees
 * itself; the K-th LLM or tool call is seen at the world, which fires it
 * (RB_TRIGGER_EXTERNAL). 0 when there is none. */
static int map_trigger(const struct rb_scenario_trigger *a, struct rb_trigger *out)
{
    memset(out, 0, sizeof(*out));
    switch (a->kind) {
    case RB_SCENARIO_AT_STEP:
        out->step = (int)a->n;
        out->when = a->when == RB_SCENARIO_BEFORE   ? RB_TRIGGER_STEP_START
                    : a->when == RB_SCENARIO_DURING ? RB_TRIGGER_STEP_DURING
                                                    : RB_TRIGGER_STEP_COMMIT;
        out->delay_ms = a->when == RB_SCENARIO_DURING ? a->delay_ms : 0;
        return 1;
    case RB_SCENARIO_AT_TIME:
        out->when = RB_TRIGGER_TIME;
        out->delay_ms = a->n;
        return 1;
    case RB_SCENARIO_AT_LLM_CALL:
    case RB_SCENARIO_AT_TOOL_CALL:
        out->when = RB_TRIGGER_EXTERNAL;
        return 1;
    default:
        return 0;
    }
}

/* Whether the harness can fire a world fault at this trigger: from the start,
 * at the K-th LLM or tool call, at a step's start or commit (step events), or
 * at a time or a delay into a step (the trial's timer thread). */
static int world_trigger_ok(const struct rb_scenario_trigger *a)
{
    return a->kind == RB_SCENARIO_AT_START || a->kind == RB_SCENARIO_AT_LLM_CALL ||
           a->kind == RB_SCENARIO_AT_TOOL_CALL || a->kind == RB_SCENARIO_AT_STEP ||
           a->kind == RB_SCENARIO_AT_TIME;
}

/* A world fault the timer thread fires: at a time, or a delay into a step. */
static int world_timed(const struct rb_scenario_trigger *a)
{
    return a->kind == RB_SCENARIO_AT_TIME ||
           (a->kind == RB_SCENARIO_AT_STEP && a->when == RB_SCENARIO_DURING);
}

static void describe_trigger(const struct rb_scenario_trigger *a, char *buf, size_t size)
{
    switch (a->kind) {
    case RB_SCENARIO_AT_STEP:
        if (a->when == RB_SCENARIO_DURING)
            snprintf(buf, size, "step %lld start+%lldms", (long long)a->n,
                     (long long)a->delay_ms);
        else
            snprintf(buf, size, "step %lld %s", (long long)a->n,
                     a->when == RB_SCENARIO_BEFORE ? "start" : "commit");
        break;
    case RB_SCENARIO_AT_LLM_CALL:
        snprintf(buf, size, "llm call %lld", (long long)a->n);
        break;
    case RB_SCENARIO_AT_TOOL_CALL:
        snprintf(buf, size, "tool call %lld", (long long)a->n);
        break;
    case RB_SCENARIO_AT_TIME:
        snprintf(buf, size, "time %lldms", (long long)a->n);
        break;
    default:
        snprintf(buf, size, "start");
        break;
    }
}

static void agent_cwd(const struct rb_scenario *s, char *out, size_t size);

/* 1 when the agent's program can be run: a path (from the agent's folder) to
 * an executable file, or a name found on PATH. */
static int program_found(const struct rb_scenario *s)
{
    const char *name = s->agent.argv[0], *p = getenv("PATH");
    char cwd[PATH_MAX], full[PATH_MAX * 2];

    if (name[0] == '/')
        return access(name, X_OK) == 0;
    if (strchr(name, '/')) {
        agent_cwd(s, cwd, sizeof(cwd));
        snprintf(full, sizeof(full), "%s/%s", cwd, name);
        return access(full, X_OK) == 0;
    }
    for (p = p ? p : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");

        snprintf(full, sizeof(full), "%.*s/%s", (int)len, len ? p : ".", name);
        if (access(full, X_OK) == 0)
            return 1;
        p += len + (p[len] == ':');
    }
    return 0;
}

enum rb_err rb_trial_supported(const struct rb_scenario *s, struct rb_error *err)
{
    const char *file = s->path ? s->path : "<input>";
    enum rb_fault_form form;
    struct rb_world_fault wf;
    struct rb_trigger trig;
    size_t i;

    if (s->agent.kind == RB_SCENARIO_AGENT_BUILTIN && !s->path) {
        rb_error_set(err, RB_EINVAL, "the built-in agent needs its scenario as a file");
        return RB_EINVAL;
    }
    if (s->agent.kind == RB_SCENARIO_AGENT_COMMAND && !program_found(s)) {
        rb_error_set(err, RB_EINVAL, "%s: cannot start agent '%s': %s", file,
                     s->agent.argv[0],
                     strchr(s->agent.argv[0], '/') ? "no such executable file"
                                                   : "not found on PATH");
        return RB_EINVAL;
    }
    if (s->n_faults + rb_schedule_count(s) > RB_SCORE_MAX_FAULTS) {
        rb_error_set(
            err, RB_EINVAL,
            "%s: %zu faults (random schedules' counts included) are more than the "
            "%d a trial holds",
            file, s->n_faults + rb_schedule_count(s), RB_SCORE_MAX_FAULTS);
        return RB_EINVAL;
    }
    for (i = 0; i < s->n_faults; i++) {
        const struct rb_scenario_fault *f = &s->faults[i];

        if (map_world(f, &wf)) {
            if (!world_trigger_ok(&f->at)) {
                rb_error_set(err, RB_EINVAL,
                             "%s:%d: a network fault at this trigger is not "
                             "supported",
                             file, f->line);
                return RB_EINVAL;
            }
            continue;
        }
        if (f->form == RB_SCENARIO_NET_PARTITION) {
            struct rb_error ne;

            rb_error_init(&ne);
            if (rb_netns_check(&ne) != RB_OK) {
                /* Not the scenario's fault: this machine (or user) cannot. */
                rb_error_set(err, ne.code,
                             "%s:%d: a network partition runs the agent in a network "
                             "namespace of its own, which cannot be made here: %s",
                             file, f->line, ne.message);
                return ne.code;
            }
        }
        if (f->form == RB_SCENARIO_OOM_TASK &&
            s->agent.kind != RB_SCENARIO_AGENT_BUILTIN) {
            rb_error_set(err, RB_EINVAL,
                         "%s:%d: an oom 'task' fault needs the built-in agent (its task "
                         "steps)",
                         file, f->line);
            return RB_EINVAL;
        }
        if (f->form == RB_SCENARIO_OOM_TASK)
            continue; /* the agent's task memory limit */
        if (f->form == RB_SCENARIO_OOM_LIMIT || f->form == RB_SCENARIO_OOM_RLIMIT ||
            f->form == RB_SCENARIO_CLOCK_OFFSET || f->form == RB_SCENARIO_CLOCK_DRIFT)
            continue; /* on the supervisor's options, from the start */
        if (!map_form(f, &form)) {
            rb_error_set(
                err, RB_EINVAL, "%s:%d: fault form '%s' (%s) is not supported yet", file,
                f->line, rb_scenario_form_name(f->form), rb_scenario_kind_name(f->kind));
            return RB_EINVAL;
        }
        if (!map_trigger(&f->at, &trig)) {
            rb_error_set(err, RB_EINVAL, "%s:%d: this trigger is not supported yet", file,
                         f->line);
            return RB_EINVAL;
        }
    }
    return RB_OK;
}

/* ---- events ---------------------------------------------------------------- */

/* What a trial's callbacks share: the supervisor's (its own thread) and the
 * world's (its connection threads). */
struct trial_ctx {
    struct rb_trial *t;
    const struct rb_scenario *s;
    pthread_mutex_t lock;   /* t's events */
    int64_t attempt_offset; /* stdout offset where the latest attempt began */
    int64_t next_offset;    /* stdout offset when the latest attempt exited */
    int oom;                /* ran out of memory keeping an event */
    int faulted;
    struct rb_world *world;
    struct rb_sup *_Atomic sup;
    atomic_int llm_calls, tool_calls;      /* seen at the world */
    atomic_int fired[RB_SCORE_MAX_FAULTS]; /* world faults and external triggers */
    int sup_index[RB_SCORE_MAX_FAULTS];    /* the fault's index in the supervisor,
                                              or -1: a world fault */
    atomic_int world_fired; /* world faults that hit a call, task faults that hit */
    atomic_int world_id[RB_SCORE_MAX_FAULTS]; /* the world's id of fault i, or 0 */
    atomic_int hit[RB_SCORE_MAX_FAULTS];      /* world fault i hit a call */
    char **keys; /* distinct steps the attempt entered, for world faults */
    size_t n_keys, cap_keys;
    /* the timer thread: world faults at a time or a delay into a step */
    pthread_mutex_t tlock;
    pthread_cond_t tcond;                /* on CLOCK_MONOTONIC */
    int64_t due_ns[RB_SCORE_MAX_FAULTS]; /* when fault i fires, or 0 */
    int tstop;                           /* the trial is over */
    int first_start;                     /* the first attempt has started */
};

/* Keeps one event (root is stolen). */
static void add_event(struct trial_ctx *c, int64_t t_ns, const char *kind, json_t *root)
{
    struct rb_trial *t = c->t;
    struct rb_trial_event *e;
    const char *step;

    pthread_mutex_lock(&c->lock);
    if (t->n_events == t->cap_events) {
        size_t cap = t->cap_events ? t->cap_events * 2 : 256;
        struct rb_trial_event *p = realloc(t->events, cap * sizeof(*p));

        if (!p)
            goto fail;
        t->events = p;
        t->cap_events = cap;
    }
    e = &t->events[t->n_events];
    e->t_ns = t_ns;
    e->kind = strdup(kind);
    step = json_string_value(json_object_get(root, "step"));
    e->step = step ? strdup(step) : NULL;
    e->json = root;
    if (!e->kind || (step && !e->step)) {
        free(e->kind);
        free(e->step);
        goto fail;
    }
    t->n_events++;
    pthread_mutex_unlock(&c->lock);
    return;
fail:
    json_decref(root);
    c->oom = 1;
    pthread_mutex_unlock(&c->lock);
}

/* Fires scenario fault i (once): through the supervisor, or at the world. */
static void fire(struct trial_ctx *c, size_t i)
{
    const struct rb_scenario_fault *f = &c->s->faults[i];
    struct rb_world_fault wf;
    struct rb_sup *sup;
    char desc[64];
    int id = 0;
    json_t *o;

    if (atomic_exchange(&c->fired[i], 1))
        return;
    if (c->sup_index[i] >= 0) {
        sup = atomic_load(&c->sup);
        if (sup)
            rb_sup_fire(sup, (size_t)c->sup_index[i]);
        return;
    }
    if (!map_world(f, &wf) || rb_world_fault_add(c->world, &wf, &id, NULL) != RB_OK)
        return;
    atomic_store(&c->world_id[i], id);
    describe_trigger(&f->at, desc, sizeof(desc));
    /* Armed at the world; injected when it first hits a call (on_entry). */
    o = json_pack("{s:s, s:s, s:i, s:s, s:i}", "kind", "fault.arm", "form",
                  rb_scenario_form_name(f->form), "scenario_fault", (int)i, "trigger",
                  desc, "world_fault", id);
    if (o)
        add_event(c, now_ns(), "fault.arm", o);
    else
        c->oom = 1;
    /* A world that stops listening is hit by no call: stopping is the
     * injection. */
    if (wf.kind != RB_WORLD_FAULT_REFUSED || atomic_exchange(&c->hit[i], 1))
        return;
    atomic_fetch_add(&c->world_fired, 1);
    o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i}", "kind", "fault.inject", "form",
                  rb_scenario_form_name(f->form), "scenario_fault", (int)i, "trigger",
                  desc, "where", "world", "world_fault", id);
    if (o)
        add_event(c, now_ns(), "fault.inject", o);
    else
        c->oom = 1;
}

/* A world fault's first hit is its injection. */
static void world_hit(struct trial_ctx *c, const struct rb_world_entry *e)
{
    const struct rb_scenario_fault *f;
    char desc[64];
    size_t i;
    json_t *o;

    for (i = 0; i < c->s->n_faults; i++)
        if (atomic_load(&c->world_id[i]) == e->fault_id)
            break;
    if (i == c->s->n_faults || atomic_exchange(&c->hit[i], 1))
        return;
    f = &c->s->faults[i];
    atomic_fetch_add(&c->world_fired, 1);
    describe_trigger(&f->at, desc, sizeof(desc));
    o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:I}", "kind", "fault.inject",
                  "form", rb_scenario_form_name(f->form), "scenario_fault", (int)i,
                  "trigger", desc, "where", "world", "world_fault", e->fault_id, "route",
                  e->route, "request", (json_int_t)e->seq);
    if (o)
        add_event(c, now_ns(), "fault.inject", o);
    else
        c->oom = 1;
}

/* ---- world faults at a time ------------------------------------------------- */

/* Sets world fault i to fire at due (once; a fault already due keeps its
 * time). */
static void timer_set(struct trial_ctx *c, size_t i, int64_t due)
{
    pthread_mutex_lock(&c->tlock);
    if (!atomic_load(&c->fired[i]) && !c->due_ns[i]) {
        c->due_ns[i] = due;
        pthread_cond_signal(&c->tcond);
    }
    pthread_mutex_unlock(&c->tlock);
}

/* The attempt is gone: a delay into one of its steps will not come (the
 * fault stays armed for the step in the next attempt, as the supervisor's
 * do). */
static void timer_attempt_end(struct trial_ctx *c)
{
    size_t i;

    pthread_mutex_lock(&c->tlock);
    for (i = 0; i < c->s->n_faults; i++)
        if (c->s->faults[i].at.kind == RB_SCENARIO_AT_STEP)
            c->due_ns[i] = 0;
    pthread_mutex_unlock(&c->tlock);
}

static void *timer_main(void *arg)
{
    struct trial_ctx *c = arg;
    size_t i;

    pthread_mutex_lock(&c->tlock);
    while (!c->tstop) {
        int64_t now = now_ns(), next = INT64_MAX;
        int fired = 0;

        for (i = 0; i < c->s->n_faults && !fired; i++) {
            if (!c->due_ns[i])
                continue;
            if (c->due_ns[i] <= now) {
                c->due_ns[i] = 0;
                pthread_mutex_unlock(&c->tlock);
                fire(c, i);
                pthread_mutex_lock(&c->tlock);
                fired = 1;
            } else if (c->due_ns[i] < next) {
                next = c->due_ns[i];
            }
        }
        if (fired)
            continue;
        if (next == INT64_MAX) {
            pthread_cond_wait(&c->tcond, &c->tlock);
        } else {
            struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};

            pthread_cond_timedwait(&c->tcond, &c->tlock, &ts);
        }
    }
    pthread_mutex_unlock(&c->tlock);
    return NULL;
}

/* World faults at a step: the N-th distinct step this attempt enters. */
static void step_event(struct trial_ctx *c, const char *kind, const char *key)
{
    size_t i, ord = 0;
    int is_start = !strcmp(kind, "step.start"), is_commit = !strcmp(kind, "step.commit");

    if (!key || (!is_start && !is_commit && strcmp(kind, "step.replay") &&
                 strcmp(kind, "step.cached")))
        return;
    for (i = 0; i < c->n_keys && !ord; i++)
        if (!strcmp(c->keys[i], key))
            ord = i + 1;
    if (!ord) {
        if (c->n_keys == c->cap_keys) {
            size_t cap = c->cap_keys ? c->cap_keys * 2 : 64;
            char **p = realloc(c->keys, cap * sizeof(*p));

            if (!p)
                return;
            c->keys = p;
            c->cap_keys = cap;
        }
        c->keys[c->n_keys] = strdup(key);
        if (!c->keys[c->n_keys])
            return;
        ord = ++c->n_keys;
    }
    for (i = 0; i < c->s->n_faults; i++) {
        const struct rb_scenario_trigger *a = &c->s->faults[i].at;

        if (c->sup_index[i] >= 0 || a->kind != RB_SCENARIO_AT_STEP ||
            a->n != (int64_t)ord)
            continue;
        if ((a->when == RB_SCENARIO_BEFORE && is_start) ||
            (a->when == RB_SCENARIO_AFTER && is_commit))
            fire(c, i);
        else if (a->when == RB_SCENARIO_DURING && is_start)
            timer_set(c, i, now_ns() + a->delay_ms * 1000000);
    }
}

/* An oom 'task' fault fires when a task step of the agent is OOM-killed
 * under the limit it set (task.end, outcome oom). */
static void task_oom(struct trial_ctx *c, int64_t t_ns, json_t *end)
{
    const char *outcome = json_string_value(json_object_get(end, "outcome"));
    const char *step = json_string_value(json_object_get(end, "step"));
    size_t i;
    json_t *o;

    if (!outcome || strcmp(outcome, "oom"))
        return;
    for (i = 0; i < c->s->n_faults; i++) {
        if (c->s->faults[i].form != RB_SCENARIO_OOM_TASK ||
            atomic_exchange(&c->hit[i], 1))
            continue;
        atomic_fetch_add(&c->world_fired, 1);
        o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s?, s:O?, s:O?}", "kind",
                      "fault.inject", "form", "task", "scenario_fault", (int)i, "trigger",
                      "task memory limit", "where", "task", "task_step", step, "limit",
                      json_object_get(end, "limit"), "mechanism",
                      json_object_get(end, "mechanism"));
        if (o)
            add_event(c, t_ns, "fault.inject", o);
        return;
    }
}

static void on_event(void *arg, const struct rb_fault_event *ev)
{
    struct trial_ctx *c = arg;
    json_t *root;
    size_t i;

    if (strcmp(ev->kind, "proc.start") == 0) {
        /* Where the previous attempt's output ended: read at its exit, as a
         * fast attempt may write before its proc.start is read here. */
        c->attempt_offset = c->next_offset;
        for (i = 0; i < c->n_keys; i++)
            free(c->keys[i]);
        c->n_keys = 0;
        /* world faults at a time count from the first start, as the
         * supervisor's do */
        for (i = 0; c->faulted && !c->first_start && i < c->s->n_faults; i++)
            if (c->sup_index[i] < 0 && c->s->faults[i].at.kind == RB_SCENARIO_AT_TIME)
                timer_set(c, i, ev->t_ns + c->s->faults[i].at.n * 1000000);
        c->first_start = 1;
    } else if (strcmp(ev->kind, "proc.exit") == 0) {
        off_t off = lseek(STDOUT_FILENO, 0, SEEK_CUR);

        c->next_offset = off < 0 ? 0 : (int64_t)off;
        if (c->faulted)
            timer_attempt_end(c);
    }
    root = json_loads(ev->json, 0, NULL);
    if (!root) {
        c->oom = 1;
        return;
    }
    if (c->faulted)
        step_event(c, ev->kind, json_string_value(json_object_get(root, "step")));
    if (c->faulted && !strcmp(ev->kind, "task.end"))
        task_oom(c, ev->t_ns, root);
    add_event(c, ev->t_ns, ev->kind, root);
}

/* The world's requests: faults at the K-th LLM or tool call. */
static void on_entry(void *arg, const struct rb_world_entry *e)
{
    struct trial_ctx *c = arg;
    enum rb_scenario_trigger_kind kind;
    int n;
    size_t i;

    if (!c->faulted)
        return;
    if (e->fault_id > 0)
        world_hit(c, e);
    if (e->end_ns != 0)
        return;
    if (strncmp(e->route, "/v1/chat/completions", 20) == 0) {
        kind = RB_SCENARIO_AT_LLM_CALL;
        n = atomic_fetch_add(&c->llm_calls, 1) + 1;
    } else if (strncmp(e->route, "/tools/", 7) == 0) {
        kind = RB_SCENARIO_AT_TOOL_CALL;
        n = atomic_fetch_add(&c->tool_calls, 1) + 1;
    } else {
        return;
    }
    for (i = 0; i < c->s->n_faults; i++)
        if (c->s->faults[i].at.kind == kind && c->s->faults[i].at.n == n)
            fire(c, i);
}

/* ---- the agent's environment and files ---------------------------------- */

static char *entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *e = malloc(n);

    if (e)
        snprintf(e, n, "%s=%s", name, value);
    return e;
}

static int has_name(char **v, size_t n, const char *e)
{
    size_t len = strcspn(e, "="), i;

    for (i = 0; i < n; i++)
        if (strncmp(v[i], e, len) == 0 && v[i][len] == '=')
            return 1;
    return 0;
}

static void free_strv(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The harness's variables, then the scenario's that do not clash with them. */
static char **agent_env(const struct rb_scenario *s, const struct rb_trial *t,
                        const char *url, const char *exe)
{
    char buf[4300], **v;
    size_t n = 0, i, extra = 0;

    while (s->agent.env && s->agent.env[extra])
        extra++;
    v = calloc(extra + 16, sizeof(*v));
    if (!v)
        return NULL;
    snprintf(buf, sizeof(buf), "%s/store", t->dir);
    v[n++] = entry("REBOUND_STORE", buf);
    v[n++] = entry("REBOUND_RUN", t->run_id);
    v[n++] = entry("REBOUND_RUN_ID", t->run_id); /* the same: the workflow id an
                                                    external stack resumes by */
    v[n++] = entry("REBOUND", exe);
    snprintf(buf, sizeof(buf), "%s/v1", url);
    v[n++] = entry("OPENAI_BASE_URL", buf);
    v[n++] = entry("OPENAI_API_KEY", "rebound-world");
    snprintf(buf, sizeof(buf), "%s/tools", url);
    v[n++] = entry("REBOUND_TOOLS_URL", buf);
    v[n++] = entry("REBOUND_WORLD_URL", url);
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)t->seed);
    v[n++] = entry("REBOUND_SEED", buf);
    v[n++] = entry("REBOUND_TRIAL", t->faulted ? "faulted" : "golden");
    for (i = 0; t->faulted && i < s->n_faults; i++) {
        if (s->faults[i].form != RB_SCENARIO_OOM_TASK)
            continue;
        snprintf(buf, sizeof(buf), "%lld", (long long)s->faults[i].limit_mb);
        v[n++] = entry("REBOUND_TASK_MEM_MB", buf); /* `rebound agent` reads it */
        break;
    }
    for (i = 0; i < n; i++)
        if (!v[i])
            goto fail;
    for (i = 0; i < extra; i++) {
        if (has_name(v, n, s->agent.env[i]))
            continue;
        v[n] = strdup(s->agent.env[i]);
        if (!v[n++])
            goto fail;
    }
    return v;
fail:
    free_strv(v);
    return NULL;
}

/* The agent's working folder: its cwd, relative to the scenario's folder, or
 * the scenario's folder when none is given. */
static void agent_cwd(const struct rb_scenario *s, char *out, size_t size)
{
    char base[PATH_MAX] = ".";
    const char *slash = s->path ? strrchr(s->path, '/') : NULL;

    if (slash)
        snprintf(base, sizeof(base), "%.*s", (int)(slash - s->path), s->path);
    if (s->agent.cwd && s->agent.cwd[0] == '/')
        snprintf(out, size, "%s", s->agent.cwd);
    else if (s->agent.cwd)
        snprintf(out, size, "%s/%s", base, s->agent.cwd);
    else
        snprintf(out, size, "%s", base);
    if (realpath(out, base))
        snprintf(out, size, "%s", base);
}

/* Hashes bytes [from, end) of the file at path. */
/* Hashes bytes [from, end) of the file at path, leaving out the lines that
 * start with `skip` (when not NULL). */
static int hash_tail(const char *path, int64_t from, const char *skip,
                     char hex[RB_HASH_HEX_LEN + 1], int64_t *len)
{
    struct rb_buf b;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *f = fopen(path, "rbe");
    int rc = -1;

    rb_buf_init(&b);
    if (!f)
        return -1;
    if (fseeko(f, (off_t)from, SEEK_SET) != 0)
        goto out;
    for (;;) {
        n = getline(&line, &cap, f);
        if (n <= 0)
            break;
        if (skip && strncmp(line, skip, strlen(skip)) == 0)
            continue;
        if (rb_buf_append(&b, line, (size_t)n) != RB_OK)
            goto out;
    }
    if (ferror(f))
        goto out;
    rb_hash_hex(b.data ? (const void *)b.data : "", b.len, hex);
    *len = (int64_t)b.len;
    rc = 0;
out:
    fclose(f);
    free(line);
    rb_buf_release(&b);
    return rc;
}

/* Counts the side effects in the world's journal: each tool call that took
 * effect, by route and arguments' hash. */
static json_t *read_effects(const char *path)
{
    json_t *counts = json_object();
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "re");

    if (!f || !counts) {
        json_decref(counts);
        if (f)
            fclose(f);
        return NULL;
    }
    while (getline(&line, &cap, f) > 0) {
        json_t *e = json_loads(line, 0, NULL);
        const char *route = json_string_value(json_object_get(e, "route"));
        const char *hash = json_string_value(json_object_get(e, "hash"));
        char key[RB_WORLD_ROUTE_MAX + RB_HASH_HEX_LEN + 2];

        if (route && hash && json_is_true(json_object_get(e, "effect"))) {
            snprintf(key, sizeof(key), "%s %s", route, hash);
            json_object_set_new(
                counts, key,
                json_integer(json_integer_value(json_object_get(counts, key)) + 1));
        }
        json_decref(e);
    }
    free(line);
    fclose(f);
    return counts;
}

/* Points fd `target` at a new file in the trial folder; the old one is kept
 * in *saved. */
static int redirect(int target, const char *path, int *saved)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        return -1;
    *saved = fcntl(target, F_DUPFD_CLOEXEC, 3);
    if (*saved < 0 || dup2(fd, target) < 0) {
        if (*saved >= 0)
            close(*saved);
        *saved = -1;
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static void restore(int target, int saved)
{
    if (saved < 0)
        return;
    dup2(saved, target);
    close(saved);
}

/* ---- one trial --------------------------------------------------------------- */

enum rb_err rb_trial_run(const struct rb_scenario *s, uint64_t seed, int faulted,
                         const char *dir, const char *rebound_exe, struct rb_trial *out,
                         struct rb_error *err)
{
    struct rb_world_config cfg;
    struct rb_world *world = NULL;
    struct rb_sup *sup = NULL;
    struct rb_sup_opts o;
    struct rb_sup_result res;
    struct trial_ctx c;
    char path[4400], cwd[PATH_MAX], prog[PATH_MAX * 2], **env = NULL;
    char scenario_abs[PATH_MAX];
    struct rb_world_fault wf0;
    const char **argv = NULL;
    int saved_out = -1, saved_err = -1;
    size_t i, argc = 0, sup_faults = 0;
    struct rb_clock_opts clock_opts = {0};
    struct rb_clock *clock = NULL;
    int want_clock = 0, want_timer = 0, timer_started = 0;
    struct rb_scenario drawn_s;           /* s with its random schedules drawn */
    struct rb_scenario_fault *all = NULL; /* its faults */
    struct rb_netns *netns = NULL;
    pthread_condattr_t ca;
    pthread_t timer;
    enum rb_err rc = RB_OK;

    memset(&c, 0, sizeof(c));
    c.t = out;
    c.faulted = faulted;
    if (faulted && s->n_randoms > 0) {
        /* The faulted trial runs the schedules' faults as if written out. */
        json_t *drawn = NULL;
        size_t n = 0;

        rc = rb_schedule_expand(s, seed, &all, &n, &drawn, err);
        if (rc != RB_OK)
            return rc;
        drawn_s = *s;
        drawn_s.faults = all;
        drawn_s.n_faults = n;
        drawn_s.randoms = NULL;
        drawn_s.n_randoms = 0;
        json_decref(out->drawn);
        out->drawn = drawn;
        s = &drawn_s;
    }
    if (s->n_faults > RB_SCORE_MAX_FAULTS) {
        free(all);
        rb_error_set(err, RB_EINVAL, "more than %d faults in one trial",
                     RB_SCORE_MAX_FAULTS);
        return RB_EINVAL;
    }
    c.s = s;
    pthread_mutex_init(&c.lock, NULL);
    pthread_mutex_init(&c.tlock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c.tcond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c.sup, NULL);
    for (i = 0; i < RB_SCORE_MAX_FAULTS; i++)
        c.sup_index[i] = -1;
    rb_world_config_init(&cfg);
    out->faulted = faulted;
    out->seed = seed;
    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    snprintf(out->run_id, sizeof(out->run_id), "%s-s%llu-%s", s->name,
             (unsigned long long)seed, faulted ? "faulted" : "golden");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rb_error_set(err, RB_EIO, "cannot make folder '%s': %s", dir, strerror(errno));
        rc = RB_EIO;
        goto out;
    }

    for (i = 0; faulted && i < s->n_faults; i++) {
        if (s->faults[i].form != RB_SCENARIO_NET_PARTITION)
            continue;
        /* The agent in a network namespace of its own: the world listens on
         * the host end of its link, the one address it can reach. */
        rc = rb_netns_new(&netns, err);
        if (rc != RB_OK) {
            rc = RB_EINVAL; /* not root, or no `ip`: the scenario cannot run here */
            goto out;
        }
        snprintf(cfg.host, sizeof(cfg.host), "%s", rb_netns_host_addr(netns));
        break;
    }
    cfg.port = (uint16_t)s->world.port;
    cfg.seed = s->world.has_seed ? s->world.seed : seed;
    cfg.turns = s->world.turns;
    cfg.latency_ms = s->world.latency_ms;
    cfg.jitter_ms = s->world.jitter_ms;
    cfg.on_entry = on_entry;
    cfg.on_entry_arg = &c;
    snprintf(path, sizeof(path), "%s/world.jsonl", dir);
    cfg.journal_path = strdup(path);
    if (!cfg.journal_path) {
        rc = RB_ENOMEM;
        rb_error_set(err, rc, "out of memory");
        goto out;
    }
    if (err)
        rb_error_init(err); /* the world sets `cause` only when it cannot listen */
    rc = rb_world_start(&cfg, &world, err);
    if (rc != RB_OK) {
        int e = err ? err->cause : 0;

        if (e) {
            /* a port taken (world.port) or not ours to take: the scenario's */
            char msg[128];

            snprintf(msg, sizeof(msg), "%s", strerror(e));
            msg[0] = (char)(msg[0] >= 'A' && msg[0] <= 'Z' ? msg[0] - 'A' + 'a' : msg[0]);
            rc = RB_EINVAL;
            rb_error_set(err, rc, "cannot start the world on %s:%d: %s",
                         cfg.host[0] ? cfg.host : "127.0.0.1", s->world.port, msg);
        }
        goto out;
    }
    c.world = world;

    env = agent_env(s, out, rb_world_url(world), rebound_exe);
    while (s->agent.argv && s->agent.argv[argc])
        argc++;
    argv = calloc(argc + 5, sizeof(*argv));
    if (!env || !argv) {
        rc = RB_ENOMEM;
        rb_error_set(err, rc, "out of memory");
        goto out;
    }
    agent_cwd(s, cwd, sizeof(cwd));
    for (i = 0; i < argc; i++)
        argv[i] = s->agent.argv[i];
    if (s->agent.kind == RB_SCENARIO_AGENT_BUILTIN) {
        /* The built-in agent is one more command: `rebound agent`. */
        if (!realpath(s->path, scenario_abs)) {
            rc = RB_EIO;
            rb_error_set(err, rc, "cannot resolve '%s': %s", s->path, strerror(errno));
            goto out;
        }
        argv[0] = rebound_exe;
        argv[1] = "agent";
        argv[2] = "--scenario";
        argv[3] = scenario_abs;
        argv[4] = NULL;
    } else if (strchr(argv[0], '/') && argv[0][0] != '/') {
        /* The supervisor looks a program with a slash up from its own folder;
         * a relative one is meant from the agent's. */
        snprintf(prog, sizeof(prog), "%s/%s", cwd, argv[0]);
        argv[0] = prog;
    }

    memset(&o, 0, sizeof(o));
    o.argv = argv;
    o.env = (const char *const *)env;
    o.cwd = cwd;
    o.restart.max_attempts = faulted ? s->restart.max_attempts : 1;
    o.restart.delay_ms = s->restart.delay_ms;
    o.restart.backoff = s->restart.backoff;
    o.restart.max_delay_ms = s->restart.max_delay_ms;
    /* A run parked for a human (rebound's exit 8) waits for one: restarting
     * it would only fail again with "parked". */
    o.restart.final_exit = 8;
    o.catch_signals = 1;
    o.timeout_ms = s->deadline_ms;
    o.on_event = on_event;
    o.event_arg = &c;
    o.netns = netns;
    for (i = 0; faulted && i < s->n_faults; i++) {
        const struct rb_scenario_fault *f = &s->faults[i];

        if (f->form == RB_SCENARIO_OOM_LIMIT) {
            o.mem.max_bytes = f->limit_mb << 20;
            o.mem.mechanism = f->mechanism == RB_SCENARIO_MEM_CGROUP2    ? RB_MEM_CGROUP2
                              : f->mechanism == RB_SCENARIO_MEM_WATCHDOG ? RB_MEM_WATCHDOG
                                                                         : RB_MEM_AUTO;
            o.mem.sample_ms = f->sample_ms;
        } else if (f->form == RB_SCENARIO_OOM_RLIMIT) {
            o.mem.rlimit_as_bytes = f->limit_mb << 20;
        }
        if (f->kind == RB_SCENARIO_CLOCK) {
            if (f->form == RB_SCENARIO_CLOCK_OFFSET)
                clock_opts.offset_s += f->offset_s;
            if (f->form == RB_SCENARIO_CLOCK_DRIFT)
                clock_opts.rate = f->rate;
            clock_opts.fake_monotonic |= f->fake_monotonic;
            want_clock = 1;
        }
    }
    if (want_clock) {
        rc = rb_clock_new(&clock_opts, &clock, err);
        if (rc != RB_OK)
            goto out;
        o.clock = clock;
    }
    rc = rb_sup_new(&o, &sup, err);
    if (rc != RB_OK)
        goto out;
    for (i = 0; faulted && i < s->n_faults; i++) {
        const struct rb_scenario_fault *f = &s->faults[i];
        struct rb_fault_spec spec;
        struct rb_world_fault wf;

        if (f->form == RB_SCENARIO_OOM_RLIMIT || f->form == RB_SCENARIO_CLOCK_OFFSET ||
            f->form == RB_SCENARIO_CLOCK_DRIFT)
            continue; /* standing: no event says they fired */
        out->n_armed++;
        if (map_world(f, &wf))
            continue; /* fired by the callbacks, or below */
        if (f->form == RB_SCENARIO_OOM_LIMIT || f->form == RB_SCENARIO_OOM_TASK)
            continue; /* fires when the agent (or its task) outgrows it */
        memset(&spec, 0, sizeof(spec));
        if (!map_form(f, &spec.form) || !map_trigger(&f->at, &spec.trigger)) {
            rc = RB_EINVAL;
            rb_error_set(err, rc, "fault at line %d is not supported yet", f->line);
            goto out;
        }
        spec.grace_ms = f->grace_ms;
        spec.duration_ms = f->duration_ms;
        spec.jump_s = f->jump_s;
        rc = rb_sup_add_fault(sup, &spec, err);
        if (rc != RB_OK)
            goto out;
        describe_trigger(&f->at, out->trigger_desc[sup_faults],
                         sizeof(out->trigger_desc[sup_faults]));
        c.sup_index[i] = (int)sup_faults++;
        if (f->form == RB_SCENARIO_FREEZE || f->form == RB_SCENARIO_NET_PARTITION)
            out->fault_time_ms += f->duration_ms > 0 ? f->duration_ms : 1000;
    }

    atomic_store(&c.sup, sup);
    for (i = 0; faulted && i < s->n_faults; i++) {
        if (c.sup_index[i] < 0 && s->faults[i].at.kind == RB_SCENARIO_AT_START)
            fire(&c, i);
        if (c.sup_index[i] < 0 && map_world(&s->faults[i], &wf0) &&
            world_timed(&s->faults[i].at))
            want_timer = 1;
    }
    if (want_timer) {
        if (pthread_create(&timer, NULL, timer_main, &c) != 0) {
            rc = RB_EIO;
            rb_error_set(err, rc, "cannot start the trial's timer thread");
            goto out;
        }
        timer_started = 1;
    }

    fflush(stdout);
    fflush(stderr);
    snprintf(path, sizeof(path), "%s/stdout", dir);
    if (redirect(STDOUT_FILENO, path, &saved_out) != 0) {
        rc = RB_EIO;
        rb_error_set(err, rc, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/stderr", dir);
    if (redirect(STDERR_FILENO, path, &saved_err) != 0) {
        rc = RB_EIO;
        restore(STDOUT_FILENO, saved_out);
        saved_out = -1;
        rb_error_set(err, rc, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    out->start_ns = now_ns();
    if (out->drawn) {
        /* what the random schedules drew, in the timeline too */
        json_t *ev = json_pack("{s:s, s:I, s:O}", "kind", "fault.schedule", "seed",
                               (json_int_t)seed, "faults", out->drawn);

        if (ev)
            add_event(&c, out->start_ns, "fault.schedule", ev);
    }
    rc = rb_sup_run(sup, &res, err);
    out->end_ns = now_ns();
    restore(STDERR_FILENO, saved_err);
    restore(STDOUT_FILENO, saved_out);
    saved_out = saved_err = -1;
    if (rc != RB_OK)
        goto out;
    if (c.oom) {
        rc = RB_ENOMEM;
        rb_error_set(err, rc, "out of memory keeping the trial's events");
        goto out;
    }
    out->attempts = res.attempts;
    out->completed = res.completed;
    out->exit_code = res.exit_code;
    out->signal = res.signal;
    out->timed_out = res.timed_out;
    out->interrupted = res.interrupted;
    out->injected = res.injected + atomic_load(&c.world_fired);
    snprintf(path, sizeof(path), "%s/stdout", dir);
    /* The built-in agent ends with a line of its own counts ("agent: run
     * ...: 45 executed, 155 replayed"), which differ by design: its answer is
     * what is compared. */
    if (hash_tail(path, c.attempt_offset,
                  s->agent.kind == RB_SCENARIO_AGENT_BUILTIN ? "agent: run '" : NULL,
                  out->stdout_hash, &out->stdout_bytes) != 0) {
        rc = RB_EIO;
        rb_error_set(err, rc, "cannot read '%s': %s", path, strerror(errno));
    }
out:
    if (timer_started) {
        pthread_mutex_lock(&c.tlock);
        c.tstop = 1;
        pthread_cond_signal(&c.tcond);
        pthread_mutex_unlock(&c.tlock);
        pthread_join(timer, NULL);
    }
    rb_world_stop(world); /* first: its threads may fire the supervisor's faults */
    if (world && rc == RB_OK) {
        snprintf(path, sizeof(path), "%s/world.jsonl", dir);
        out->effects = read_effects(path); /* the journal is whole now */
        rc = rb_trial_read_wire(s, out, err);
    }
    rb_sup_free(sup);
    rb_netns_free(netns); /* after the supervisor: it wired the link per attempt */
    rb_clock_free(clock);
    for (i = 0; i < c.n_keys; i++)
        free(c.keys[i]);
    free(c.keys);
    pthread_mutex_destroy(&c.lock);
    pthread_mutex_destroy(&c.tlock);
    pthread_cond_destroy(&c.tcond);
    free(all);
    rb_world_config_release(&cfg);
    free(argv);
    free_strv(env);
    return rc;
}
