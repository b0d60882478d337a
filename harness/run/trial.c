/*
 * trial.c - one trial of `rebound run`: a scenario's command agent run
 * against its own world (in process, a free port on 127.0.0.1) and its own
 * store, under the supervisor (faults/faults.h) with the scenario's restart
 * policy and deadline, and, for a faulted trial, its faults armed. Every
 * event (the supervisor's proc.* and fault.*, the agent's step.* from
 * REBOUND_EVENT_FD) is kept with the supervisor's monotonic time for the
 * scorer (score.c). The agent's stdout and stderr go to files in the trial's
 * folder; the last attempt's stdout is hashed to compare contexts.
 */
#include "run.h"

#include "faults.h"
#include "world/world.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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

static void set_err(struct rb_error *err, enum rb_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(struct rb_error *err, enum rb_err code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    rb_error_init(err);
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
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
    default:
        return 0;
    }
}

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
    default:
        return 0;
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
    struct rb_trigger trig;
    size_t i;

    if (s->agent.kind != RB_SCENARIO_AGENT_COMMAND) {
        set_err(err, RB_EINVAL,
                "%s: the built-in agent is not supported by 'rebound run' yet; "
                "give the agent as a 'command'",
                file);
        return RB_EINVAL;
    }
    if (!program_found(s)) {
        set_err(err, RB_EINVAL, "%s: cannot start agent '%s': %s", file, s->agent.argv[0],
                strchr(s->agent.argv[0], '/') ? "no such executable file"
                                              : "not found on PATH");
        return RB_EINVAL;
    }
    if (s->n_randoms > 0) {
        set_err(err, RB_EINVAL, "%s:%d: random fault schedules are not supported yet",
                file, s->randoms[0].line);
        return RB_EINVAL;
    }
    if (s->n_faults > RB_SCORE_MAX_FAULTS) {
        set_err(err, RB_EINVAL, "%s: more than %d faults are not supported", file,
                RB_SCORE_MAX_FAULTS);
        return RB_EINVAL;
    }
    for (i = 0; i < s->n_faults; i++) {
        const struct rb_scenario_fault *f = &s->faults[i];

        if (!map_form(f, &form)) {
            set_err(err, RB_EINVAL, "%s:%d: fault form '%s' (%s) is not supported yet",
                    file, f->line, rb_scenario_form_name(f->form),
                    rb_scenario_kind_name(f->kind));
            return RB_EINVAL;
        }
        if (!map_trigger(&f->at, &trig)) {
            set_err(err, RB_EINVAL,
                    "%s:%d: this trigger is not supported yet; use a step or "
                    "'time_ms'",
                    file, f->line);
            return RB_EINVAL;
        }
    }
    if (s->expect.side_effects_exactly_once >= 0) {
        set_err(err, RB_EINVAL,
                "%s: expect 'side_effects_exactly_once' is not supported yet", file);
        return RB_EINVAL;
    }
    return RB_OK;
}

/* ---- events ---------------------------------------------------------------- */

struct collect {
    struct rb_trial *t;
    int64_t attempt_offset; /* stdout offset where the latest attempt began */
    int oom;                /* ran out of memory keeping an event */
};

static void on_event(void *arg, const struct rb_fault_event *ev)
{
    struct collect *c = arg;
    struct rb_trial *t = c->t;
    struct rb_trial_event *e;
    json_t *root;
    const char *step;

    if (strcmp(ev->kind, "proc.start") == 0) {
        off_t off = lseek(STDOUT_FILENO, 0, SEEK_CUR);
        c->attempt_offset = off < 0 ? 0 : (int64_t)off;
    }
    if (t->n_events == t->cap_events) {
        size_t cap = t->cap_events ? t->cap_events * 2 : 256;
        struct rb_trial_event *p = realloc(t->events, cap * sizeof(*p));

        if (!p) {
            c->oom = 1;
            return;
        }
        t->events = p;
        t->cap_events = cap;
    }
    root = json_loads(ev->json, 0, NULL);
    if (!root) {
        c->oom = 1;
        return;
    }
    e = &t->events[t->n_events];
    e->t_ns = ev->t_ns;
    e->kind = strdup(ev->kind);
    step = json_string_value(json_object_get(root, "step"));
    e->step = step ? strdup(step) : NULL;
    e->json = root;
    if (!e->kind || (step && !e->step)) {
        free(e->kind);
        free(e->step);
        json_decref(root);
        c->oom = 1;
        return;
    }
    t->n_events++;
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
}

/* Hashes bytes [from, end) of the file at path. */
static int hash_tail(const char *path, int64_t from, char hex[RB_HASH_HEX_LEN + 1],
                     int64_t *len)
{
    struct rb_buf b;
    char chunk[65536];
    FILE *f = fopen(path, "rbe");
    size_t n;
    int rc = -1;

    rb_buf_init(&b);
    if (!f)
        return -1;
    if (fseeko(f, (off_t)from, SEEK_SET) != 0)
        goto out;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (rb_buf_append(&b, chunk, n) != RB_OK)
            goto out;
    rb_hash_hex(b.data ? (const void *)b.data : "", b.len, hex);
    *len = (int64_t)b.len;
    rc = 0;
out:
    fclose(f);
    rb_buf_release(&b);
    return rc;
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
    struct collect c = {out, 0, 0};
    char path[4400], cwd[PATH_MAX], prog[PATH_MAX * 2], **env = NULL;
    const char **argv = NULL;
    int saved_out = -1, saved_err = -1;
    size_t i, argc = 0;
    enum rb_err rc = RB_OK;

    rb_world_config_init(&cfg);
    out->faulted = faulted;
    out->seed = seed;
    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    snprintf(out->run_id, sizeof(out->run_id), "%s-s%llu-%s", s->name,
             (unsigned long long)seed, faulted ? "faulted" : "golden");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        set_err(err, RB_EIO, "cannot make folder '%s': %s", dir, strerror(errno));
        rc = RB_EIO;
        goto out;
    }

    cfg.seed = s->world.has_seed ? s->world.seed : seed;
    cfg.turns = s->world.turns;
    cfg.latency_ms = s->world.latency_ms;
    cfg.jitter_ms = s->world.jitter_ms;
    snprintf(path, sizeof(path), "%s/world.jsonl", dir);
    cfg.journal_path = strdup(path);
    if (!cfg.journal_path) {
        rc = RB_ENOMEM;
        set_err(err, rc, "out of memory");
        goto out;
    }
    rc = rb_world_start(&cfg, &world, err);
    if (rc != RB_OK)
        goto out;

    env = agent_env(s, out, rb_world_url(world), rebound_exe);
    while (s->agent.argv[argc])
        argc++;
    argv = calloc(argc + 1, sizeof(*argv));
    if (!env || !argv) {
        rc = RB_ENOMEM;
        set_err(err, rc, "out of memory");
        goto out;
    }
    agent_cwd(s, cwd, sizeof(cwd));
    for (i = 0; i < argc; i++)
        argv[i] = s->agent.argv[i];
    /* The supervisor looks a program with a slash up from its own folder; a
     * relative one is meant from the agent's. */
    if (strchr(argv[0], '/') && argv[0][0] != '/') {
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
    o.catch_signals = 1;
    o.timeout_ms = s->deadline_ms;
    o.on_event = on_event;
    o.event_arg = &c;
    rc = rb_sup_new(&o, &sup, err);
    if (rc != RB_OK)
        goto out;
    for (i = 0; faulted && i < s->n_faults; i++) {
        const struct rb_scenario_fault *f = &s->faults[i];
        struct rb_fault_spec spec;

        memset(&spec, 0, sizeof(spec));
        if (!map_form(f, &spec.form) || !map_trigger(&f->at, &spec.trigger)) {
            rc = RB_EINVAL;
            set_err(err, rc, "fault at line %d is not supported yet", f->line);
            goto out;
        }
        spec.grace_ms = f->grace_ms;
        spec.duration_ms = f->duration_ms;
        rc = rb_sup_add_fault(sup, &spec, err);
        if (rc != RB_OK)
            goto out;
        out->n_armed++;
        if (f->form == RB_SCENARIO_FREEZE)
            out->fault_time_ms += f->duration_ms > 0 ? f->duration_ms : 1000;
    }

    fflush(stdout);
    fflush(stderr);
    snprintf(path, sizeof(path), "%s/stdout", dir);
    if (redirect(STDOUT_FILENO, path, &saved_out) != 0) {
        rc = RB_EIO;
        set_err(err, rc, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/stderr", dir);
    if (redirect(STDERR_FILENO, path, &saved_err) != 0) {
        rc = RB_EIO;
        restore(STDOUT_FILENO, saved_out);
        saved_out = -1;
        set_err(err, rc, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    out->start_ns = now_ns();
    rc = rb_sup_run(sup, &res, err);
    out->end_ns = now_ns();
    restore(STDERR_FILENO, saved_err);
    restore(STDOUT_FILENO, saved_out);
    saved_out = saved_err = -1;
    if (rc != RB_OK)
        goto out;
    if (c.oom) {
        rc = RB_ENOMEM;
        set_err(err, rc, "out of memory keeping the trial's events");
        goto out;
    }
    out->attempts = res.attempts;
    out->completed = res.completed;
    out->exit_code = res.exit_code;
    out->signal = res.signal;
    out->timed_out = res.timed_out;
    out->interrupted = res.interrupted;
    out->injected = res.injected;
    snprintf(path, sizeof(path), "%s/stdout", dir);
    if (hash_tail(path, c.attempt_offset, out->stdout_hash, &out->stdout_bytes) != 0) {
        rc = RB_EIO;
        set_err(err, rc, "cannot read '%s': %s", path, strerror(errno));
    }
out:
    rb_sup_free(sup);
    rb_world_stop(world);
    rb_world_config_release(&cfg);
    free(argv);
    free_strv(env);
    return rc;
}
