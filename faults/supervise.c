/*
 * supervise.c - supervision of the agent: starting it in its own process
 * group with its environment (attempt number, event pipe, the previous
 * failure), watching its exit through a pidfd and its step events through a
 * pipe in one poll loop that also runs the faults' timers, restarting it per
 * the policy, and killing and reaping the whole group at the end of every
 * attempt, whatever happened.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- options ------------------------------------------------------------ */

static char **copy_strv(const char *const *v)
{
    size_t n = 0, i;
    char **out;

    while (v && v[n])
        n++;
    out = calloc(n + 1, sizeof(*out));
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        out[i] = strdup(v[i]);
        if (!out[i]) {
            while (i-- > 0)
                free(out[i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_strv(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

enum rb_err rb_sup_new(const struct rb_sup_opts *opts, struct rb_sup **out,
                       struct rb_error *err)
{
    struct rb_sup *sup;
    int fire[2];
    size_t i;

    if (!opts || !opts->argv || !opts->argv[0] || !opts->argv[0][0])
        return rb__fx_fail(err, RB_EINVAL, "supervisor needs a program to run");
    if (opts->restart.max_attempts < 0 || opts->restart.delay_ms < 0 ||
        opts->restart.backoff < 0 || opts->restart.max_delay_ms < 0)
        return rb__fx_fail(err, RB_EINVAL, "restart policy has a negative value");
    if (opts->mem.max_bytes < 0 || opts->mem.rlimit_as_bytes < 0 ||
        opts->mem.sample_ms < 0)
        return rb__fx_fail(err, RB_EINVAL, "memory limit has a negative value");
    for (i = 0; opts->env && opts->env[i]; i++)
        if (!strchr(opts->env[i], '=') || opts->env[i][0] == '=')
            return rb__fx_fail(err, RB_EINVAL, "environment entry '%s' is not NAME=value",
                               opts->env[i]);
    sup = calloc(1, sizeof(*sup));
    if (!sup)
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    sup->pidfd = sup->evfd = sup->keeper_fd = sup->sigfd = -1;
    sup->fire_rd = sup->fire_wr = -1;
    sup->argv = copy_strv(opts->argv);
    sup->env = copy_strv(opts->env);
    sup->cwd = opts->cwd ? strdup(opts->cwd) : NULL;
    if (!sup->argv || !sup->env || (opts->cwd && !sup->cwd)) {
        rb_sup_free(sup);
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    }
    if (pipe2(fire, O_CLOEXEC | O_NONBLOCK) != 0) {
        int e = errno;
        rb_sup_free(sup);
        return rb__fx_fail_errno(err, RB_EIO, e, "cannot make the supervisor's pipe");
    }
    sup->fire_rd = fire[0];
    sup->fire_wr = fire[1];
    sup->restart = opts->restart;
    if (sup->restart.max_attempts == 0)
        sup->restart.max_attempts = 1;
    if (sup->restart.backoff == 0)
        sup->restart.backoff = 1;
    sup->mem = opts->mem;
    if (sup->mem.sample_ms == 0)
        sup->mem.sample_ms = 10;
    sup->clock = opts->clock;
    sup->netns = opts->netns;
    sup->catch_signals = opts->catch_signals;
    sup->timeout_ms = opts->timeout_ms;
    sup->on_event = opts->on_event;
    sup->event_arg = opts->event_arg;
    *out = sup;
    return RB_OK;
}

enum rb_err rb_sup_add_fault(struct rb_sup *sup, const struct rb_fault_spec *spec,
                             struct rb_error *err)
{
    const struct rb_trigger *t = &spec->trigger;
    struct rb__fault *faults, *f;

    if (spec->form < RB_FAULT_NOTICE || spec->form > RB_FAULT_PARTITION)
        return rb__fx_fail(err, RB_EINVAL, "fault form '%d' is unknown", (int)spec->form);
    if (spec->form == RB_FAULT_CLOCK_JUMP && !sup->clock)
        return rb__fx_fail(err, RB_EINVAL, "fault 'clock-jump' needs a skewed clock");
    if (spec->form == RB_FAULT_PARTITION && !sup->netns)
        return rb__fx_fail(err, RB_EINVAL, "fault 'partition' needs a network namespace");
    if ((int)t->when < RB_TRIGGER_NONE || t->when > RB_TRIGGER_EXTERNAL)
        return rb__fx_fail(err, RB_EINVAL, "trigger '%d' is unknown", (int)t->when);
    if (t->when >= RB_TRIGGER_STEP_START && t->when <= RB_TRIGGER_STEP_COMMIT &&
        !t->step_key && t->step < 1)
        return rb__fx_fail(err, RB_EINVAL,
                           "trigger step '%d' is out of range; steps "
                           "count from 1",
                           t->step);
    if (t->delay_ms < 0 || spec->grace_ms < 0 || spec->duration_ms < 0)
        return rb__fx_fail(err, RB_EINVAL, "fault '%s' has a negative time",
                           rb_fault_form_name(spec->form));
    faults = realloc(sup->faults, (sup->n_faults + 1) * sizeof(*faults));
    if (!faults)
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    sup->faults = faults;
    f = &faults[sup->n_faults];
    memset(f, 0, sizeof(*f));
    f->spec = *spec;
    if (t->step_key) {
        f->step_key = strdup(t->step_key);
        if (!f->step_key)
            return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    }
    f->spec.trigger.step_key = f->step_key;
    if (f->spec.grace_ms == 0)
        f->spec.grace_ms = 2000;
    if (f->spec.duration_ms == 0)
        f->spec.duration_ms = 1000;
    rb_trigger_describe(&f->spec.trigger, f->desc, sizeof(f->desc));
    f->state = t->when == RB_TRIGGER_NONE ? RB__DONE : RB__ARMED;
    sup->n_faults++;
    return RB_OK;
}

/* A request from rb_sup_fire(): one write, so it arrives whole. */
struct fire_msg {
    uint64_t index; /* the fault */
    int64_t t_ns;   /* when asked: the trigger time */
};

enum rb_err rb_sup_fire(struct rb_sup *sup, size_t index)
{
    struct fire_msg m;
    ssize_t n;

    if (index >= sup->n_faults)
        return RB_EINVAL;
    m.index = index;
    m.t_ns = rb__fx_now_ns();
    do
        n = write(sup->fire_wr, &m, sizeof(m));
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(m) ? RB_OK : RB_EIO;
}

/* Fires what rb_sup_fire() asked for. */
static void read_fire_requests(struct rb_sup *sup)
{
    struct fire_msg m;

    while (read(sup->fire_rd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
        struct rb__fault *f;

        if (m.index >= sup->n_faults)
            continue;
        f = &sup->faults[m.index];
        if (f->state == RB__ARMED || f->state == RB__PENDING)
            rb__fault_fire(sup, f, m.t_ns);
    }
}

pid_t rb_sup_pgid(const struct rb_sup *sup)
{
    return sup->pgid;
}

const char *rb_sup_mem_mechanism(const struct rb_sup *sup)
{
    if (sup->mem.max_bytes <= 0)
        return "none";
    return rb_mem_mechanism_name(sup->mech);
}

/* ---- environment and start ---------------------------------------------- */

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');

    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static int same_name(const char *a, const char *b)
{
    size_t n = name_len(a);

    return n == name_len(b) && strncmp(a, b, n) == 0;
}

static int strv_push(char ***v, size_t *n, char *s)
{
    char **nv;

    if (!s)
        return -1;
    nv = realloc(*v, (*n + 2) * sizeof(**v));
    if (!nv) {
        free(s);
        return -1;
    }
    *v = nv;
    nv[(*n)++] = s;
    nv[*n] = NULL;
    return 0;
}

static char *entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s=%s", name, value);
    return s;
}

/* The agent's environment: ours, minus what we set, plus the options' env,
 * the clock's, and the REBOUND_* variables. LD_PRELOAD entries are joined,
 * not replaced. NULL when out of memory. */
static char **build_env(struct rb_sup *sup, int evfd)
{
    char **adds = NULL, **out = NULL, num[32];
    size_t n_adds = 0, n_out = 0, i, j;
    const char *inherited_preload = NULL;
    const char *const *clock_env = sup->clock ? rb_clock_env(sup->clock) : NULL;

    for (i = 0; sup->env[i]; i++)
        if (strv_push(&adds, &n_adds, strdup(sup->env[i])) != 0)
            goto fail;
    for (i = 0; clock_env && clock_env[i]; i++)
        if (strv_push(&adds, &n_adds, strdup(clock_env[i])) != 0)
            goto fail;
    snprintf(num, sizeof(num), "%d", sup->attempt);
    if (strv_push(&adds, &n_adds, entry("REBOUND_ATTEMPT", num)) != 0)
        goto fail;
    snprintf(num, sizeof(num), "%d", evfd);
    if (strv_push(&adds, &n_adds, entry("REBOUND_EVENT_FD", num)) != 0)
        goto fail;
    if (sup->attempt > 1 && sup->last_failure[0] &&
        strv_push(&adds, &n_adds, entry("REBOUND_LAST_FAILURE", sup->last_failure)) != 0)
        goto fail;

    for (i = 0; environ && environ[i]; i++) {
        int skip = same_name(environ[i], "REBOUND_LAST_FAILURE");

        for (j = 0; !skip && j < n_adds; j++)
            skip = same_name(environ[i], adds[j]);
        if (skip && same_name(environ[i], "LD_PRELOAD"))
            inherited_preload = environ[i] + strlen("LD_PRELOAD=");
        if (!skip && strv_push(&out, &n_out, strdup(environ[i])) != 0)
            goto fail;
    }
    for (j = 0; j < n_adds; j++) {
        char *e = adds[j];

        if (inherited_preload && *inherited_preload && same_name(e, "LD_PRELOAD")) {
            size_t len = strlen(e) + strlen(inherited_preload) + 2;
            char *joined = malloc(len);
            if (!joined)
                goto fail;
            snprintf(joined, len, "%s:%s", e, inherited_preload);
            free(e);
            e = joined;
        }
        adds[j] = NULL;
        if (strv_push(&out, &n_out, e) != 0)
            goto fail;
    }
    free_strv(adds);
    return out;
fail:
    free_strv(adds);
    free_strv(out);
    return NULL;
}

/* The program's path: argv[0] itself when it holds a slash, else the first
 * executable match on PATH. NULL when not found. */
static char *find_program(const char *name)
{
    const char *path = getenv("PATH"), *p;
    char *full;

    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    if (!path)
        path = "/usr/bin:/bin";
    for (p = path; *p;) {
        size_t len = strcspn(p, ":"), n = len + strlen(name) + 2;

        full = malloc(n);
        if (!full)
            return NULL;
        snprintf(full, n, "%.*s/%s", (int)len, len ? p : ".", name);
        if (access(full, X_OK) == 0)
            return full;
        free(full);
        p += len;
        if (*p == ':')
            p++;
    }
    return NULL;
}

/* Builds "/dev/shm/<prefix><pid>" without stdio (we are a fresh fork). */
static void child_unlink_shm(const char *prefix, pid_t pid)
{
    char path[96], digits[24];
    size_t n = sizeof(digits) - 1, plen = strlen(prefix);
    unsigned long v = (unsigned long)pid;

    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n > 0);
    if (plen + strlen(digits + n) + 1 > sizeof(path))
        return;
    memcpy(path, prefix, plen);
    memcpy(path + plen, digits + n, strlen(digits + n) + 1);
    unlink(path);
}

static void child_fail(int fd, int e)
{
    ssize_t n;

    do
        n = write(fd, &e, sizeof(e));
    while (n < 0 && errno == EINTR);
    _exit(127);
}

/* In the child: own group, death with the parent, clean signal state,
 * limits, then exec. Reports an errno through errfd on failure. */
static void child_main(struct rb_sup *sup, const char *path, char **envp, int evw,
                       int errfd, int gofd, int readyfd, pid_t parent)
{
    sigset_t none;
    char go;
    int e;

    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        child_fail(errfd, errno);
    if (getppid() != parent)
        _exit(127); /* the supervisor died before we could tie our fate to it */
    if (sup->netns) {
        /* Our own network, wired by the supervisor while we wait. It may
         * attach to our namespace only once we are in it: tell it so. */
        e = rb__netns_child();
        if (e)
            child_fail(errfd, e);
        while (write(readyfd, "r", 1) < 0 && errno == EINTR)
            ;
        while ((e = (int)read(gofd, &go, 1)) < 0 && errno == EINTR)
            ;
        if (e != 1)
            _exit(127); /* the supervisor could not wire it */
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    if (sup->clock) {
        /* A libfaketime file left by a dead process with our pid would make
         * the library fail in us. */
        child_unlink_shm("/dev/shm/faketime_shm_", getpid());
        child_unlink_shm("/dev/shm/sem.faketime_sem_", getpid());
    }
    e = rb__oom_child(sup, getpid());
    if (e)
        child_fail(errfd, e);
    if (sup->cwd && chdir(sup->cwd) != 0)
        child_fail(errfd, errno);
    if (fcntl(evw, F_SETFD, 0) != 0)
        child_fail(errfd, errno);
    execve(path, sup->argv, envp);
    child_fail(errfd, errno);
}

static enum rb_err spawn(struct rb_sup *sup, struct rb_error *err)
{
    int ev[2] = {-1, -1}, ep[2] = {-1, -1}, gp[2] = {-1, -1}, rp[2] = {-1, -1}, e = 0;
    char **envp = NULL, *path = NULL;
    enum rb_err rc = RB_OK;
    pid_t pid, parent = getpid();
    ssize_t n;

    path = find_program(sup->argv[0]);
    if (!path) {
        rc = rb__fx_fail(err, RB_ECHILD, "cannot start agent '%s': not found%s",
                         sup->argv[0], strchr(sup->argv[0], '/') ? "" : " on PATH");
        goto out;
    }
    if (pipe2(ev, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0 ||
        pipe2(gp, O_CLOEXEC) != 0 || pipe2(rp, O_CLOEXEC) != 0) {
        rc = rb__fx_fail_errno(err, RB_EIO, errno, "cannot make the agent's pipes");
        goto out;
    }
    envp = build_env(sup, ev[1]);
    if (!envp) {
        rc = rb__fx_fail(err, RB_ENOMEM, "out of memory");
        goto out;
    }
    rc = rb__oom_attempt_begin(sup, err);
    if (rc != RB_OK)
        goto out;
    pid = fork();
    if (pid < 0) {
        rc = rb__fx_fail_errno(err, RB_ECHILD, errno, "cannot start agent '%s'",
                               sup->argv[0]);
        goto out;
    }
    if (pid == 0) {
        close(ev[0]);
        close(ep[0]);
        close(gp[1]);
        close(rp[0]);
        child_main(sup, path, envp, ev[1], ep[1], gp[0], rp[1], parent);
    }
    close(rp[1]);
    rp[1] = -1;
    close(ep[1]);
    ep[1] = -1;
    close(ev[1]);
    ev[1] = -1;
    close(gp[0]);
    gp[0] = -1;
    if (sup->netns) {
        char ready;

        /* Wait until the child is in its own namespace: attaching earlier
         * would name (and wire) the supervisor's own network. */
        do
            n = read(rp[0], &ready, 1);
        while (n < 0 && errno == EINTR);
        rc = n == 1 ? rb__netns_attach(sup->netns, pid, err)
                    : rb__fx_fail(err, RB_ECHILD,
                                  "cannot start agent '%s': it died before entering "
                                  "its network namespace",
                                  sup->argv[0]);
        if (rc == RB_OK && write(gp[1], "g", 1) != 1)
            rc = rb__fx_fail_errno(err, RB_EIO, errno, "cannot start agent '%s'",
                                   sup->argv[0]);
        if (rc != RB_OK) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            goto out;
        }
    }
    /* Blocks until exec succeeded (the pipe closes) or failed (an errno). */
    do
        n = read(ep[0], &e, sizeof(e));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(e)) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        rc =
            rb__fx_fail_errno(err, RB_ECHILD, e, "cannot start agent '%s'", sup->argv[0]);
        goto out;
    }
    sup->pid = sup->pgid = pid;
    sup->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    sup->evfd = ev[0];
    ev[0] = -1;
    fcntl(sup->evfd, F_SETFL, O_NONBLOCK);
    sup->evline_len = 0;
    rb__keeper_watch(sup, pid);
out:
    if (ev[0] >= 0)
        close(ev[0]);
    if (ev[1] >= 0)
        close(ev[1]);
    if (ep[0] >= 0)
        close(ep[0]);
    if (ep[1] >= 0)
        close(ep[1]);
    if (gp[0] >= 0)
        close(gp[0]);
    if (gp[1] >= 0)
        close(gp[1]);
    if (rp[0] >= 0)
        close(rp[0]);
    if (rp[1] >= 0)
        close(rp[1]);
    free_strv(envp);
    free(path);
    return rc;
}

/* ---- events from the agent ---------------------------------------------- */

static void agent_line(struct rb_sup *sup, const char *line, int fire)
{
    struct rb_fault_event ev;
    json_error_t jerr;
    json_t *root = json_loads(line, 0, &jerr);
    const char *kind, *key;
    int64_t now = rb__fx_now_ns();

    if (!json_is_object(root)) {
        json_decref(root);
        return; /* not an event: an observer must not stop the agent */
    }
    kind = json_string_value(json_object_get(root, "kind"));
    key = json_string_value(json_object_get(root, "step"));
    if (kind) {
        if (sup->on_event) {
            ev.t_ns = now;
            ev.kind = kind;
            ev.json = line;
            sup->on_event(sup->event_arg, &ev);
        }
        /* Once a fault has claimed this attempt's death (a kill or notice
         * sent), what it still writes cannot trigger another fault in it. */
        rb__trigger_on_event(sup, kind, key, now, fire && !sup->blame.set);
    }
    json_decref(root);
}

/* Reads what the agent wrote; returns 0 at end of file (or error). */
static int read_events(struct rb_sup *sup, int fire)
{
    char chunk[4096];
    ssize_t n;
    size_t i, start;

    for (;;) {
        n = read(sup->evfd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 1 : 0;
        if (n == 0)
            return 0;
        if (sup->evline_len + (size_t)n + 1 > sup->evline_cap) {
            size_t cap = (sup->evline_len + (size_t)n + 1) * 2;
            char *p = realloc(sup->evline, cap);
            if (!p)
                return 1; /* drop this chunk; try again later */
            sup->evline = p;
            sup->evline_cap = cap;
        }
        memcpy(sup->evline + sup->evline_len, chunk, (size_t)n);
        sup->evline_len += (size_t)n;
        for (i = 0, start = 0; i < sup->evline_len; i++) {
            if (sup->evline[i] != '\n')
                continue;
            sup->evline[i] = '\0';
            agent_line(sup, sup->evline + start, fire);
            start = i + 1;
        }
        memmove(sup->evline, sup->evline + start, sup->evline_len - start);
        sup->evline_len -= start;
    }
}

/* ---- ending an attempt ---------------------------------------------------- */

/* Kills what is left of the group and reaps it: our children directly, the
 * rest as their subreaper. Bounded: a process that will not die is left. */
static void kill_group(struct rb_sup *sup)
{
    int i;

    if (sup->pgid <= 0)
        return;
    kill(-sup->pgid, SIGKILL);
    kill(-sup->pgid, SIGCONT);
    for (i = 0; i < 2000; i++) {
        pid_t r = waitpid(-sup->pgid, NULL, WNOHANG);

        if (r > 0)
            continue;
        if (kill(-sup->pgid, 0) != 0 && errno == ESRCH)
            break;
        rb__fx_sleep_ms(1);
    }
}

static void failure_json(struct rb_sup *sup, int exit_code, int sig)
{
    json_t *o = json_object();
    char *text;

    sup->last_failure[0] = '\0';
    if (!o)
        return;
    if (sup->blame.set) {
        json_object_set_new(o, "kind", json_string(sup->blame.kind));
        json_object_set_new(o, "form", json_string(sup->blame.form));
    } else {
        json_object_set_new(o, "kind", json_string(sig ? "signal" : "exit"));
        json_object_set_new(o, "form", json_string(sig ? "signal" : "exit"));
    }
    json_object_set_new(o, "signal", json_integer(sig));
    json_object_set_new(o, "exit_code", json_integer(sig ? 128 + sig : exit_code));
    if (sup->blame.set && sup->blame.limit > 0)
        json_object_set_new(o, "limit", json_integer(sup->blame.limit));
    else if (sup->mem.max_bytes > 0)
        json_object_set_new(o, "limit", json_integer(sup->mem.max_bytes));
    else
        json_object_set_new(o, "limit", json_null());
    if (sup->mem.rlimit_as_bytes > 0)
        json_object_set_new(o, "rlimit_as", json_integer(sup->mem.rlimit_as_bytes));
    if (sup->blame.set && sup->blame.trigger[0])
        json_object_set_new(o, "trigger", json_string(sup->blame.trigger));
    else
        json_object_set_new(o, "trigger", json_null());
    json_object_set_new(o, "attempt", json_integer(sup->attempt));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text && strlen(text) < sizeof(sup->last_failure))
        memcpy(sup->last_failure, text, strlen(text) + 1);
    free(text);
    json_decref(o);
}

static void end_attempt(struct rb_sup *sup, int exit_code, int sig)
{
    json_t *o;

    kill_group(sup);
    if (sup->evfd >= 0) {
        read_events(sup, 0); /* what it wrote before dying; no more faults */
        close(sup->evfd);
        sup->evfd = -1;
    }
    if (sup->pidfd >= 0) {
        close(sup->pidfd);
        sup->pidfd = -1;
    }
    rb__oom_attempt_end(sup, sig);
    if (sup->netns)
        rb__netns_detach(sup->netns);
    if (sup->clock)
        rb_clock_cleanup_pid(sup->pid);
    rb__faults_attempt_end(sup);
    rb__keeper_watch(sup, 0);
    if (sup->blame.set || sig || exit_code != 0)
        failure_json(sup, exit_code, sig);
    o = json_object();
    if (o) {
        json_object_set_new(o, "attempt", json_integer(sup->attempt));
        json_object_set_new(o, "pid", json_integer(sup->pid));
        json_object_set_new(o, "pgid", json_integer(sup->pgid));
        json_object_set_new(o, "exit_code", sig ? json_null() : json_integer(exit_code));
        json_object_set_new(o, "signal", json_integer(sig));
        json_object_set_new(o, "exit_t", json_integer(sup->exit_ns));
        if (sup->blame.set) {
            json_object_set_new(o, "failure", json_string(sup->blame.kind));
            json_object_set_new(o, "form", json_string(sup->blame.form));
        }
        if (sup->mech == RB_MEM_WATCHDOG && sup->mem.max_bytes > 0)
            json_object_set_new(o, "peak_rss", json_integer(sup->peak_rss));
    }
    rb__fx_emit(sup, "proc.exit", rb__fx_now_ns(), o);
    sup->pid = 0;
}

/* ---- the loop ------------------------------------------------------------- */

static int64_t next_due(struct rb_sup *sup, int64_t deadline)
{
    int64_t next = rb__oom_next(sup);
    size_t i;

    if (deadline < next)
        next = deadline;
    for (i = 0; i < sup->n_faults; i++) {
        const struct rb__fault *f = &sup->faults[i];
        if ((f->state == RB__PENDING || f->state == RB__ACTIVE) && f->due_ns < next)
            next = f->due_ns;
    }
    return next;
}

static int read_signal(int sigfd)
{
    struct signalfd_siginfo si;

    if (sigfd < 0 || read(sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return 0;
    return (int)si.ssi_signo;
}

/* Runs one attempt until its agent exits. */
static void watch_attempt(struct rb_sup *sup, struct rb_sup_result *res, int64_t deadline)
{
    siginfo_t si;
    int exit_code = 0, sig = 0, killed = 0;

    for (;;) {
        struct pollfd p[4];
        int64_t now = rb__fx_now_ns(), next;
        int timeout, np = 0, i, r;
        size_t k;

        for (k = 0; k < sup->n_faults; k++)
            rb__fault_tick(sup, &sup->faults[k], now);
        rb__oom_tick(sup, now);
        if (!killed && now >= deadline) {
            res->timed_out = 1;
            killed = 1;
            kill(-sup->pgid, SIGKILL);
        }
        next = next_due(sup, killed ? INT64_MAX : deadline);
        timeout = next == INT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
        if (timeout > 1000000)
            timeout = 1000000;
        p[np].fd = sup->pidfd;
        p[np++].events = POLLIN;
        if (sup->evfd >= 0) {
            p[np].fd = sup->evfd;
            p[np++].events = POLLIN;
        }
        if (sup->sigfd >= 0) {
            p[np].fd = sup->sigfd;
            p[np++].events = POLLIN;
        }
        if (!killed) {
            p[np].fd = sup->fire_rd;
            p[np++].events = POLLIN;
        }
        if (sup->pidfd < 0)
            timeout = timeout < 0 || timeout > 10 ? 10 : timeout; /* no pidfd: poll */
        if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR)
            rb__fx_sleep_ms(1);
        for (i = 0; i < np; i++) {
            if (!p[i].revents)
                continue;
            if (p[i].fd == sup->sigfd) {
                int s = read_signal(sup->sigfd);
                if (s && !res->interrupted) {
                    res->interrupted = s;
                    killed = 1;
                    kill(-sup->pgid, SIGKILL);
                }
            } else if (p[i].fd == sup->fire_rd) {
                read_fire_requests(sup);
            } else if (p[i].fd == sup->evfd) {
                if (!read_events(sup, !killed && !res->interrupted)) {
                    close(sup->evfd);
                    sup->evfd = -1;
                }
            }
        }
        memset(&si, 0, sizeof(si));
        r = waitid(P_PID, (id_t)sup->pid, &si, WEXITED | WNOHANG);
        sup->exit_ns = rb__fx_now_ns(); /* the call that sees the exit sets it last */
        if (r == 0 && si.si_pid) {
            if (si.si_code == CLD_EXITED)
                exit_code = si.si_status;
            else
                sig = si.si_status;
            break;
        }
        if (r < 0 && errno == ECHILD) {
            exit_code = -1; /* reaped elsewhere (SIGCHLD ignored?) */
            break;
        }
    }
    if (sup->blame.set && sup->blame.by_kill && !sig) {
        /* The agent exited on its own before the SIGKILL landed: the fault
         * was injected (and reported) but did not end this attempt. */
        memset(&sup->blame, 0, sizeof(sup->blame));
    }
    res->exit_code = sig ? -1 : exit_code;
    res->signal = sig;
    end_attempt(sup, exit_code, sig);
}

/* Waits before a restart; returns 1 when a signal cut the wait short. */
static int restart_wait(struct rb_sup *sup, struct rb_sup_result *res, int restarts)
{
    double d = (double)sup->restart.delay_ms * pow(sup->restart.backoff, restarts - 1);
    int64_t until;

    if (sup->restart.max_delay_ms > 0 && d > (double)sup->restart.max_delay_ms)
        d = (double)sup->restart.max_delay_ms;
    until = rb__fx_now_ns() + (int64_t)d * 1000000;
    for (;;) {
        struct pollfd p = {sup->sigfd, POLLIN, 0};
        int64_t left = until - rb__fx_now_ns();

        if (left <= 0)
            return 0;
        if (poll(&p, sup->sigfd >= 0 ? 1 : 0, (int)((left + 999999) / 1000000)) > 0) {
            res->interrupted = read_signal(sup->sigfd);
            if (res->interrupted)
                return 1;
        }
    }
}

static void signals_begin(struct rb_sup *sup)
{
    sigset_t set;

    if (!sup->catch_signals)
        return;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &sup->oldmask);
    sup->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void signals_end(struct rb_sup *sup)
{
    if (!sup->catch_signals)
        return;
    if (sup->sigfd >= 0)
        close(sup->sigfd);
    sup->sigfd = -1;
    sigprocmask(SIG_SETMASK, &sup->oldmask, NULL);
}

enum rb_err rb_sup_run(struct rb_sup *sup, struct rb_sup_result *out,
                       struct rb_error *err)
{
    struct rb_sup_result res;
    int64_t deadline = INT64_MAX;
    int was_reaper = 0;
    enum rb_err rc;
    json_t *o;

    memset(&res, 0, sizeof(res));
    res.exit_code = -1;
    rc = rb__oom_setup(sup, err);
    if (rc != RB_OK)
        return rc;
    prctl(PR_GET_CHILD_SUBREAPER, &was_reaper);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    rc = rb__keeper_start(sup, err);
    if (rc != RB_OK)
        goto out;
    signals_begin(sup);
    sup->first_start_ns = rb__fx_now_ns();
    if (sup->timeout_ms > 0)
        deadline = sup->first_start_ns + sup->timeout_ms * 1000000;
    for (sup->attempt = 1;; sup->attempt++) {
        memset(&sup->blame, 0, sizeof(sup->blame));
        rc = spawn(sup, err);
        if (rc != RB_OK)
            break;
        res.attempts = sup->attempt;
        o = json_object();
        if (o) {
            json_object_set_new(o, "attempt", json_integer(sup->attempt));
            json_object_set_new(o, "pid", json_integer(sup->pid));
            json_object_set_new(o, "pgid", json_integer(sup->pgid));
            json_object_set_new(o, "program", json_string(sup->argv[0]));
            if (sup->attempt > 1)
                json_object_set_new(o, "last_failure", json_string(sup->last_failure));
        }
        rb__fx_emit(sup, "proc.start", rb__fx_now_ns(), o);
        rb__trigger_attempt_start(sup);
        watch_attempt(sup, &res, deadline);
        if (!sup->blame.set && res.signal == 0 && res.exit_code == 0) {
            res.completed = 1;
            sup->last_failure[0] = '\0';
            break;
        }
        if (res.interrupted || res.timed_out || sup->attempt >= sup->restart.max_attempts)
            break;
        if (sup->restart.final_exit && !sup->blame.set && res.signal == 0 &&
            res.exit_code == sup->restart.final_exit)
            break; /* it asked for a human: another attempt would only fail so */
        if (restart_wait(sup, &res, sup->attempt))
            break;
        if (rb__fx_now_ns() >= deadline) {
            res.timed_out = 1; /* no time left for another attempt */
            break;
        }
    }
    res.injected = sup->injected;
    snprintf(res.last_failure, sizeof(res.last_failure), "%s", sup->last_failure);
    signals_end(sup);
    rb__keeper_stop(sup);
out:
    if (!was_reaper)
        prctl(PR_SET_CHILD_SUBREAPER, 0);
    if (rc == RB_OK)
        *out = res;
    return rc;
}

void rb_sup_free(struct rb_sup *sup)
{
    size_t i;

    if (!sup)
        return;
    if (sup->pid > 0)
        kill_group(sup);
    if (sup->pidfd >= 0)
        close(sup->pidfd);
    if (sup->evfd >= 0)
        close(sup->evfd);
    if (sup->fire_rd >= 0)
        close(sup->fire_rd);
    if (sup->fire_wr >= 0)
        close(sup->fire_wr);
    rb__keeper_stop(sup);
    for (i = 0; i < sup->n_faults; i++)
        free(sup->faults[i].step_key);
    free(sup->faults);
    for (i = 0; i < sup->n_keys; i++)
        free(sup->keys[i]);
    free(sup->keys);
    free(sup->evline);
    free_strv(sup->argv);
    free_strv(sup->env);
    free(sup->cwd);
    free(sup);
}
