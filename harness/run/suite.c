/*
 * suite.c - the run engine (suite.h). Every trial runs in a worker process
 * forked for it (a trial redirects fds 1 and 2 and its supervisor reads the
 * stop signals process-wide, so trials cannot share a process): the worker
 * runs rb_trial_run() in the trial's folder, saves the trial to trial.json
 * (or the reason it could not run to error.json) and exits; the engine reaps
 * it and, once every trial of a scenario is in, scores the faulted trials
 * against their seed's golden one, checks the scenario's `expect`, prints
 * their lines and adds their records, in scenario and seed order whatever
 * the order the workers finished in. Stop signals are forwarded to the
 * workers, whose supervisors kill their agents.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "suite.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKER_SAVED 0   /* trial.json written */
#define WORKER_ERROR 1   /* error.json written: the trial could not run */
#define WORKER_STOPPED 3 /* a stop signal came before the trial began */

#define STOP_GRACE_MS 30000 /* after a stop, workers get this long, then SIGKILL */
#define WORKER_GRACE_S 60   /* a worker past its trial's deadline + this is killed */

enum job_kind { JOB_GOLDEN, JOB_FAULTED, JOB_BASELINE };

enum job_state {
    JOB_WAITING = 0, /* not started */
    JOB_RUNNING,     /* its worker runs */
    JOB_SAVED,       /* trial.json is there */
    JOB_FAILED,      /* it could not run: `error` says why */
    JOB_SKIPPED,     /* never ran (the suite stopped first) */
};

struct job {
    size_t scen;   /* index in opts->scenarios */
    size_t seed_i; /* index in its seeds */
    enum job_kind kind;
    int k; /* faulted or baseline trial number, 1.. */
    char dir[PATH_MAX];
    enum job_state state;
    pid_t pid;
    int64_t start_ns, end_ns; /* its worker forked, reaped (engine's clock) */
    int overdue;              /* 1: killed, still running long past its deadline */
    char error[1024];         /* JOB_FAILED: the reason */
    enum rb_err err_code;     /* JOB_FAILED: the code */
};

/* The engine's state for one rb_suite_run(). */
struct suite {
    const struct rb_suite_opts *o;
    struct job *jobs;
    size_t n_jobs;
    size_t *first_job; /* per scenario: its first job; [n] = n_jobs */
    size_t next;       /* next job to start */
    int jobs_max;
    int running;
    int done; /* jobs finished (any state but waiting/running) */
    size_t scen_done;
    int failures; /* faulted trials failed so far */
    int passed;
    int stop;  /* stop signal received, or 0 */
    int error; /* a trial could not run: start nothing more */
    struct rb_error first_err;
    int64_t start_ns;
    int64_t stop_ns; /* when the stop came */
    json_t *trials;  /* records, in order */
    json_t *scenarios;
    json_t *pool;      /* all faulted records, for the suite's baseline */
    json_t *pool_base; /* all baseline records */
    int progress_shown;
    char progress_line[200]; /* as last drawn */
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rb_suite_opts_init(struct rb_suite_opts *o)
{
    memset(o, 0, sizeof(*o));
}

/* ---- the workers ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 ? 0 : -1;
    return unlink(path) == 0 ? 0 : -1;
}

/* Makes a fresh, empty folder at path (an old trial's is removed). */
static int fresh_dir(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return mkdir(path, 0755);
}

/* The fixed port of a scenario's world, or 0 (a free one per trial). */
static int fixed_port(const struct rb_scenario *s)
{
    return s->world.port;
}

static const char *kind_name(enum job_kind k)
{
    return k == JOB_GOLDEN ? "golden" : k == JOB_FAULTED ? "faulted" : "baseline";
}

static void job_dir(const struct rb_suite_opts *o, struct job *j)
{
    const struct rb_scenario *s = o->scenarios[j->scen];
    unsigned long long seed = (unsigned long long)s->seeds[j->seed_i];

    if (j->kind != JOB_GOLDEN && s->trials > 1)
        snprintf(j->dir, sizeof(j->dir), "%s/trials/%s-s%llu-%s-%d", o->out_dir, s->name,
                 seed, kind_name(j->kind), j->k);
    else
        snprintf(j->dir, sizeof(j->dir), "%s/trials/%s-s%llu-%s", o->out_dir, s->name,
                 seed, kind_name(j->kind));
}

/* In the worker: says why the trial could not run, in DIR/error.json. */
static void worker_error(const char *dir, const struct rb_error *err)
{
    char path[PATH_MAX + 16];
    json_t *o = json_pack("{s:i, s:s}", "code", (int)err->code, "message",
                          err->message[0] ? err->message : rb_strerror(err->code));

    snprintf(path, sizeof(path), "%s/error.json", dir);
    if (o)
        json_dump_file(o, path, JSON_COMPACT);
    json_decref(o);
}

/* The stop signal pending in this process, or 0. */
static int stop_pending(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigpending(&set);
    if (sigismember(&set, SIGINT) == 1)
        return SIGINT;
    if (sigismember(&set, SIGTERM) == 1)
        return SIGTERM;
    return sigismember(&set, SIGHUP) == 1 ? SIGHUP : 0;
}

/* The worker: runs one trial and exits. The stop signals stay blocked (the
 * trial's supervisor reads them); SIGCHLD is let through again. */
static void worker(const struct rb_suite_opts *o, const struct job *j,
                   const sigset_t *worker_mask, pid_t engine)
{
    const struct rb_scenario *s = o->scenarios[j->scen];
    struct rb_trial t;
    struct rb_error err;
    char path[PATH_MAX + 16];
    int fd;

    sigprocmask(SIG_SETMASK, worker_mask, NULL);
    /* Should the engine die, the trial is stopped as by Ctrl-C (SIGTERM,
     * blocked here, is read by the trial's supervisor). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (stop_pending() || getppid() != engine)
        _exit(WORKER_STOPPED);
    /* Nothing of the trial reads the terminal; parallel agents must not. */
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    rb_error_init(&err);
    if (fresh_dir(j->dir) != 0) {
        rb_error_set(&err, RB_EIO, "cannot make folder '%s': %s", j->dir,
                     strerror(errno));
        /* No folder for error.json: the engine says it from the exit code. */
        _exit(WORKER_ERROR + 1);
    }
    if (j->kind == JOB_BASELINE)
        setenv("REBOUND_NO_REPLAY", "1", 1); /* librebound: no replay log */
    rb_trial_init(&t);
    if (rb_trial_run(s, s->seeds[j->seed_i], j->kind != JOB_GOLDEN, j->dir,
                     o->rebound_exe, &t, &err) != RB_OK) {
        worker_error(j->dir, &err);
        _exit(WORKER_ERROR);
    }
    snprintf(path, sizeof(path), "%s/trial.json", j->dir);
    if (rb_trial_save(&t, path, &err) != RB_OK) {
        worker_error(j->dir, &err);
        _exit(WORKER_ERROR);
    }
    _exit(WORKER_SAVED);
}

/* ---- the engine: starting and reaping -------------------------------------- */

/* 1 when job j may start now: a fixed world port is not in use by another. */
static int can_start(const struct suite *su, const struct job *j)
{
    int port = fixed_port(su->o->scenarios[j->scen]);
    size_t i;

    if (!port)
        return 1;
    for (i = 0; i < su->n_jobs; i++)
        if (su->jobs[i].state == JOB_RUNNING &&
            fixed_port(su->o->scenarios[su->jobs[i].scen]) == port)
            return 0;
    return 1;
}

static void job_failed(struct suite *su, struct job *j, enum rb_err code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void job_failed(struct suite *su, struct job *j, enum rb_err code, const char *fmt,
                       ...)
{
    const struct rb_scenario *s = su->o->scenarios[j->scen];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->error, sizeof(j->error), fmt, ap);
    va_end(ap);
    j->state = JOB_FAILED;
    j->err_code = code;
    if (!su->error && !su->stop) {
        su->error = 1;
        rb_error_set(&su->first_err, code, "%s: %s", s->path ? s->path : s->name,
                     j->error);
    }
}

static int start_job(struct suite *su, struct job *j, const sigset_t *worker_mask)
{
    pid_t pid, engine = getpid();

    fflush(NULL); /* nothing buffered is written twice */
    pid = fork();
    if (pid < 0) {
        job_failed(su, j, RB_EIO, "cannot start a worker: %s", strerror(errno));
        su->done++;
        return -1;
    }
    if (pid == 0)
        worker(su->o, j, worker_mask, engine);
    j->pid = pid;
    j->start_ns = now_ns();
    j->state = JOB_RUNNING;
    su->running++;
    return 0;
}

/* Reads back what the worker of j left, after it exited with `status`. */
static void collect(struct suite *su, struct job *j, int status)
{
    char path[PATH_MAX + 16];
    json_t *e;

    su->running--;
    su->done++;
    j->pid = 0;
    j->end_ns = now_ns();
    if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_SAVED) {
        j->state = JOB_SAVED;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_STOPPED) {
        j->state = JOB_SKIPPED;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_ERROR) {
        snprintf(path, sizeof(path), "%s/error.json", j->dir);
        e = json_load_file(path, 0, NULL);
        if (e) {
            job_failed(su, j, (enum rb_err)json_integer_value(json_object_get(e, "code")),
                       "%s", json_string_value(json_object_get(e, "message")));
            json_decref(e);
            return;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_ERROR + 1)
        job_failed(su, j, RB_EIO, "cannot make folder '%s'", j->dir);
    else if (WIFSIGNALED(status) && j->overdue)
        job_failed(su, j, RB_EIO,
                   "trial '%s' was still running %d s after its deadline: its worker "
                   "was killed",
                   j->dir, WORKER_GRACE_S);
    else if (WIFSIGNALED(status))
        job_failed(su, j, RB_EIO,
                   "the worker of trial '%s' died of signal %d before saving the trial "
                   "(see its stderr there; out of memory, or a bug in rebound to report)",
                   j->dir, WTERMSIG(status));
    else
        job_failed(su, j, RB_EIO,
                   "the worker of trial '%s' exited %d before saving the trial (see its "
                   "stderr there)",
                   j->dir, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void reap(struct suite *su)
{
    int64_t deadline;
    size_t i;
    int status;

    for (i = 0; i < su->n_jobs; i++) {
        struct job *j = &su->jobs[i];

        if (j->state != JOB_RUNNING)
            continue;
        if (waitpid(j->pid, &status, WNOHANG) == j->pid) {
            collect(su, j, status);
            continue;
        }
        /* A hang guard on the worker itself: its trial's deadline (the
         * supervisor stops the agent then), and a grace for the rest. */
        deadline = su->o->scenarios[j->scen]->deadline_ms;
        if (!j->overdue && deadline > 0 &&
            now_ns() - j->start_ns > (deadline + WORKER_GRACE_S * 1000) * 1000000) {
            j->overdue = 1;
            kill(j->pid, SIGKILL);
        }
    }
}

static void signal_workers(struct suite *su, int sig)
{
    size_t i;

    for (i = 0; i < su->n_jobs; i++)
        if (su->jobs[i].state == JOB_RUNNING && su->jobs[i].pid > 0)
            kill(su->jobs[i].pid, sig);
}

/* ---- progress ------------------------------------------------------------------ */

static void progress_clear(struct suite *su)
{
    if (su->o->progress && su->progress_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        su->progress_shown = 0;
    }
}

static void progress_show(struct suite *su)
{
    const char *what = "";
    char line[sizeof(su->progress_line)];
    size_t i;

    if (!su->o->progress)
        return;
    for (i = 0; i < su->n_jobs; i++)
        if (su->jobs[i].state == JOB_RUNNING) {
            what = su->o->scenarios[su->jobs[i].scen]->name;
            break;
        }
    snprintf(line, sizeof(line),
             "[%zu/%zu scenarios, %d/%zu trials, %d failed, %llds] %s%s", su->scen_done,
             su->o->n, su->done, su->n_jobs, su->failures,
             (long long)((now_ns() - su->start_ns) / 1000000000),
             su->stop ? "stopping " : "", what);
    if (su->progress_shown && !strcmp(line, su->progress_line))
        return; /* unchanged */
    snprintf(su->progress_line, sizeof(su->progress_line), "%s", line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    su->progress_shown = 1;
}

/* ---- scoring a finished scenario ------------------------------------------------ */

/* The golden trial for job j's seed: its own, one recorded earlier, or an
 * empty one. 0 when there is one to score against; -1 with `why` set. */
static int load_golden(struct suite *su, size_t scen, size_t seed_i, struct rb_trial *g,
                       char *why, size_t size)
{
    const struct rb_suite_opts *o = su->o;
    const struct rb_scenario *s = o->scenarios[scen];
    char path[PATH_MAX * 2];
    struct rb_error err;
    size_t i;

    if (o->no_golden)
        return 0;
    if (o->golden_dir) {
        snprintf(path, sizeof(path), "%s/trial.json", o->golden_dir);
        if (access(path, F_OK) != 0)
            snprintf(path, sizeof(path), "%s/trials/%s-s%llu-golden/trial.json",
                     o->golden_dir, s->name, (unsigned long long)s->seeds[seed_i]);
    } else {
        for (i = su->first_job[scen]; i < su->first_job[scen + 1]; i++) {
            const struct job *j = &su->jobs[i];

            if (j->seed_i == seed_i && j->kind == JOB_GOLDEN)
                break;
        }
        if (i == su->first_job[scen + 1] || su->jobs[i].state != JOB_SAVED) {
            snprintf(why, size, "golden trial did not run");
            return -1;
        }
        snprintf(path, sizeof(path), "%s/trial.json", su->jobs[i].dir);
    }
    rb_error_init(&err);
    if (rb_trial_load(path, g, &err) != RB_OK) {
        snprintf(why, size, "golden trial unreadable: %s", err.message);
        return -1;
    }
    return 0;
}

/* The golden job of scenario si's seed seed_i, or NULL (none ran here). */
static const struct job *golden_job(const struct suite *su, size_t si, size_t seed_i)
{
    size_t i;

    for (i = su->first_job[si]; i < su->first_job[si + 1]; i++)
        if (su->jobs[i].seed_i == seed_i && su->jobs[i].kind == JOB_GOLDEN)
            return &su->jobs[i];
    return NULL;
}

/* Adds "worker_ms" (the trial's worker process, fork to reap) to o. */
static void set_worker_ms(json_t *o, const struct job *j)
{
    if (json_is_object(o) && j && j->end_ns > j->start_ns)
        json_object_set_new(o, "worker_ms",
                            json_real((double)((j->end_ns - j->start_ns) / 1000) / 1e3));
}

/* Splits "a; b; c" into an array of strings. */
static json_t *broken_list(const char *why)
{
    json_t *a = json_array();
    const char *p = why;

    while (a && *p) {
        size_t n = strcspn(p, ";");

        json_array_append_new(a, json_stringn(p, n));
        p += n;
        while (*p == ';' || *p == ' ')
            p++;
    }
    return a;
}

/* One faulted trial's result while its scenario is scored. */
struct scored {
    struct job *job;
    uint64_t seed;
    struct rb_score score;
    json_t *record; /* owned */
    json_t *base;   /* owned: the baseline's record, or NULL */
    char why[1024]; /* reasons found before the expectations */
    int error;      /* the trial could not run */
    int pass;
};

/* Adds "; what" (or "what") to why. */
static void add_why(char *why, size_t size, const char *what)
{
    size_t l = strlen(why), n = strlen(what);

    if (n == 0 || l + 3 >= size)
        return;
    if (l) {
        memcpy(why + l, "; ", 2);
        l += 2;
    }
    if (n > size - l - 1)
        n = size - l - 1; /* truncated */
    memcpy(why + l, what, n);
    why[l + n] = '\0';
}

/* "123 ms", or "-" when unknown (null). */
static void ms_text(const json_t *v, char *buf, size_t size)
{
    if (json_is_integer(v))
        snprintf(buf, size, "%lld ms", (long long)json_integer_value(v));
    else
        snprintf(buf, size, "-");
}

/* A black box's recovery, seen on the wire: "240 ms to the first new
 * request" (the largest over its faults), or "-". */
static void wire_recovery_text(const json_t *rec, char *buf, size_t size)
{
    json_t *f;
    json_int_t best = -1;
    size_t i;

    json_array_foreach(json_object_get(rec, "faults"), i, f)
    {
        json_t *v = json_object_get(f, "recovery_first_request_ms");

        if (json_is_integer(v) && json_integer_value(v) > best)
            best = json_integer_value(v);
    }
    if (best >= 0)
        snprintf(buf, size, "%lld ms to the first new request", (long long)best);
    else
        snprintf(buf, size, "-");
}

/* "3 (+1 in flight)", or "unknown" for an agent that wrote no step events. */
static void redone_text(const json_t *rec, char *buf, size_t size)
{
    json_t *redone = json_object_get(rec, "steps_redone");
    json_t *inflight = json_object_get(rec, "inflight_lost");

    if (json_is_integer(redone) && json_is_integer(inflight))
        snprintf(buf, size, "%lld (+%lld in flight)",
                 (long long)json_integer_value(redone),
                 (long long)json_integer_value(inflight));
    else
        snprintf(buf, size, "unknown");
}

static void print_line(struct suite *su, const struct scored *r)
{
    const struct rb_scenario *s = su->o->scenarios[r->job->scen];
    FILE *f = su->o->lines;
    const char *col = su->o->color ? (r->pass ? "\033[32m" : "\033[31m") : "";
    const char *off = su->o->color ? "\033[0m" : "";
    char rec[64], rec2[32], red[64], base[160] = "", nth[32] = "";
    json_t *v;

    if (!f)
        return;
    progress_clear(su);
    if (r->error) {
        fprintf(f, "%s  seed %llu  %s  %sERROR%s\n  error: %s\n", s->name,
                (unsigned long long)r->seed, kind_name(r->job->kind), col, off, r->why);
        fflush(f);
        return;
    }
    ms_text(json_object_get(r->record, "recovery_ms"), rec, sizeof(rec));
    if (json_is_false(json_object_get(r->record, "steps_known")))
        wire_recovery_text(r->record, rec, sizeof(rec));
    redone_text(r->record, red, sizeof(red));
    if (r->base) {
        ms_text(json_object_get(r->base, "recovery_ms"), rec2, sizeof(rec2));
        v = json_object_get(r->base, "steps_redone");
        snprintf(base, sizeof(base), "  [no-replay: recovery %s, redone %s]", rec2,
                 json_is_integer(v) ? "" : "unknown");
        if (json_is_integer(v))
            snprintf(base, sizeof(base), "  [no-replay: recovery %s, redone %lld]", rec2,
                     (long long)json_integer_value(v));
    }
    if (s->trials > 1)
        snprintf(nth, sizeof(nth), " trial %d", r->job->k);
    v = json_object_get(json_object_get(r->record, "context"), "preserved");
    /* A run parked for a human is not done: what counts is the context it
     * left for them. */
    if (r->score.outcome == RB_OUTCOME_ESCALATED)
        v = json_object_get(json_object_get(r->record, "escalation"), "context_kept");
    fprintf(f, "%s  seed %llu%s  %s  recovery %s  redone %s  context %s%s  %s%s%s\n",
            s->name, (unsigned long long)r->seed, nth, rb_outcome_name(r->score.outcome),
            rec, red,
            r->score.outcome == RB_OUTCOME_ESCALATED
                ? (json_is_true(v) ? "kept for a human" : "not kept for a human")
            : json_is_true(v)  ? "preserved"
            : json_is_false(v) ? "lost"
                               : "unknown",
            base, col, r->pass ? "PASS" : "FAIL", off);
    if (!r->pass)
        fprintf(f, "  broken: %s\n", r->why);
    fflush(f);
}

/* ---- aggregates -------------------------------------------------------------------- */

static const char *const metric_names[] = {
    "recovery_ms",
    "steps_redone",
    "inflight_lost",
    "time_lost_ms",
    "wall_ms",
    "llm_calls_duplicated",
    "tokens_wasted",
    "cost_wasted",
    "recovery_first_request_ms", /* from the wire: what a black box shows */
};
#define N_METRICS (sizeof(metric_names) / sizeof(metric_names[0]))

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Appends metric m of one record to v (values are numbers; null and absent
 * are unknown and left out). */
static size_t metric_values(const json_t *rec, size_t m, double *v, size_t at, size_t cap)
{
    const char *name = metric_names[m];
    json_t *x = NULL, *f;
    size_t i;

    if (!strcmp(name, "recovery_ms") || !strcmp(name, "recovery_first_request_ms")) {
        json_array_foreach(json_object_get(rec, "faults"), i, f)
        {
            x = json_object_get(f, name);
            if (json_is_number(x) && at < cap)
                v[at++] = json_number_value(x);
        }
        return at;
    }
    if (!strcmp(name, "llm_calls_duplicated"))
        x = json_object_get(json_object_get(rec, "llm"), "duplicated");
    else if (!strcmp(name, "tokens_wasted") || !strcmp(name, "cost_wasted"))
        x = json_object_get(json_object_get(rec, "llm"), name);
    else
        x = json_object_get(rec, name);
    if (json_is_number(x) && at < cap)
        v[at++] = json_number_value(x);
    return at;
}

static json_t *num(double v, int real)
{
    return real ? json_real(v) : json_integer((json_int_t)llround(v));
}

/* {"p50", "p95", "max", "n"} of metric m over the records (nearest rank). */
static json_t *metric_stats(const json_t *recs, size_t m, double *p50_out)
{
    size_t cap = 64, n = 0, i;
    double *v = NULL, p50 = 0, p95 = 0;
    int real = !strcmp(metric_names[m], "cost_wasted");
    json_t *r, *o;

    json_array_foreach(recs, i, r) cap += json_array_size(json_object_get(r, "faults"));
    cap += json_array_size(recs);
    v = calloc(cap, sizeof(*v));
    if (!v)
        return NULL;
    json_array_foreach(recs, i, r) n = metric_values(r, m, v, n, cap);
    if (n == 0) {
        free(v);
        if (p50_out)
            *p50_out = NAN;
        return json_pack("{s:n, s:n, s:n, s:i}", "p50", "p95", "max", "n", 0);
    }
    qsort(v, n, sizeof(*v), cmp_double);
    p50 = v[(size_t)ceil(0.50 * (double)n) - 1];
    p95 = v[(size_t)ceil(0.95 * (double)n) - 1];
    o = json_pack("{s:o, s:o, s:o, s:I}", "p50", num(p50, real), "p95", num(p95, real),
                  "max", num(v[n - 1], real), "n", (json_int_t)n);
    if (p50_out)
        *p50_out = p50;
    free(v);
    return o;
}

/* {"recovery_ms": x, ...} percentiles of every metric; p50s of recovery and
 * steps redone in p50[0], p50[1]. */
static json_t *metrics_json(const json_t *recs, double p50[2])
{
    json_t *o = json_object();
    size_t m;

    for (m = 0; o && m < N_METRICS; m++) {
        double p = NAN;

        json_object_set_new(o, metric_names[m], metric_stats(recs, m, &p));
        if (m < 2)
            p50[m] = p;
    }
    return o;
}

/* (baseline - replay) / baseline * 100; null when unknown or baseline 0. */
static json_t *reduction(double replay, double base)
{
    if (isnan(replay) || isnan(base) || base == 0)
        return json_null();
    return json_real(round((base - replay) / base * 1000.0) / 10.0);
}

/* The "baseline" block for faulted records `recs` and baseline records `base`
 * (null when there are none). */
static json_t *baseline_json(const json_t *recs, const json_t *base)
{
    double p[2], pb[2];
    json_t *m, *mb;

    if (json_array_size(base) == 0)
        return json_null();
    m = metrics_json(recs, p);
    mb = metrics_json(base, pb);
    json_decref(m);
    return json_pack("{s:s, s:o, s:{s:o, s:o}}", "mode", "no-replay", "metrics", mb,
                     "reduction_pct", "recovery_ms", reduction(p[0], pb[0]),
                     "steps_redone", reduction(p[1], pb[1]));
}

/* The per-trial "baseline" field, from the baseline trial's record. */
static json_t *trial_baseline(const json_t *b)
{
    const char *dir =
        json_string_value(json_object_get(json_object_get(b, "faulted"), "dir"));

    return json_pack(
        "{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:s}", "mode", "no-replay", "outcome",
        json_object_get(b, "outcome"), "recovery_ms", json_object_get(b, "recovery_ms"),
        "steps_redone", json_object_get(b, "steps_redone"), "inflight_lost",
        json_object_get(b, "inflight_lost"), "wall_ms", json_object_get(b, "wall_ms"),
        "time_lost_ms", json_object_get(b, "time_lost_ms"), "dir", dir);
}

/* The record of a trial that could not run. */
static json_t *error_record(const struct rb_scenario *s, const struct scored *r)
{
    return json_pack("{s:s, s:o, s:I, s:s, s:s, s:[s], s:s}", "scenario", s->name, "file",
                     s->path ? json_string(s->path) : json_null(), "seed",
                     (json_int_t)r->seed, "trial", kind_name(r->job->kind), "verdict",
                     "error", "broken", r->why, "dir", r->job->dir);
}

/* Scores, checks, prints and records scenario `si`, whose jobs are all done. */
/* Sets those of `n` keys that object `o` has (o may be NULL) to null. */
static void null_keys(json_t *o, const char *const *keys, size_t n)
{
    size_t i;

    for (i = 0; o && i < n; i++)
        if (json_object_get(o, keys[i]))
            json_object_set_new(o, keys[i], json_null());
}

/* With no golden trial, what is measured against one is unknown, not the
 * guess an empty golden trial gives: those fields become null, and an outcome
 * that turns on the context (recovered or degraded) "unknown". */
static void blank_golden(json_t *rec)
{
    static const char *const top[] = {"golden_steps", "steps_redone", "time_lost_ms",
                                      "golden_wall_ms", "golden"};
    static const char *const llm[] = {
        "golden_calls",         "golden_answered",          "duplicated", "tokens_wasted",
        "prompt_tokens_wasted", "completion_tokens_wasted", "cost_wasted"};
    static const char *const tools[] = {"golden_calls", "duplicated"};
    static const char *const ctx[] = {"preserved", "golden_sha256", "divergence"};
    static const char *const fx[] = {"missing", "exactly_once"};
    const char *oc = json_string_value(json_object_get(rec, "outcome"));

    if (!rec)
        return;
    null_keys(rec, top, sizeof(top) / sizeof(top[0]));
    null_keys(json_object_get(rec, "llm"), llm, sizeof(llm) / sizeof(llm[0]));
    null_keys(json_object_get(rec, "tools"), tools, sizeof(tools) / sizeof(tools[0]));
    null_keys(json_object_get(rec, "context"), ctx, sizeof(ctx) / sizeof(ctx[0]));
    null_keys(json_object_get(rec, "side_effects"), fx, sizeof(fx) / sizeof(fx[0]));
    if (oc && (!strcmp(oc, "recovered") || !strcmp(oc, "degraded")))
        json_object_set_new(rec, "outcome", json_string("unknown"));
}

static void finish_scenario(struct suite *su, size_t si)
{
    const struct rb_scenario *s = su->o->scenarios[si];
    struct scored *res = NULL;
    size_t n_res = 0, i, j, first = su->first_job[si], end = su->first_job[si + 1];
    json_t *recs = json_array(), *bases = json_array(), *outcomes, *sj;
    int64_t *rv = NULL, p50, p95;
    size_t n_rv = 0;
    int passed = 0, failed = 0;
    double p[2];

    res = calloc(end - first + 1, sizeof(*res));
    if (!res || !recs || !bases)
        goto out;
    for (i = 0; i < s->n_seeds; i++) {
        struct rb_trial golden;
        char gwhy[600] = "";
        int have_golden;

        rb_trial_init(&golden);
        have_golden = load_golden(su, si, i, &golden, gwhy, sizeof(gwhy)) == 0;
        if (have_golden && !su->o->no_golden && !golden.completed)
            snprintf(gwhy, sizeof(gwhy),
                     "golden trial did not complete (exit %d, signal %d%s), "
                     "see '%.400s/stderr'",
                     golden.exit_code, golden.signal,
                     golden.timed_out ? ", deadline" : "", golden.dir);
        for (j = first; j < end; j++) {
            struct job *jb = &su->jobs[j];
            struct scored *r;
            struct rb_trial t;
            struct rb_error err;
            char path[PATH_MAX + 16];

            if (jb->seed_i != i)
                continue;
            if (jb->kind == JOB_GOLDEN) {
                if (jb->state == JOB_FAILED) {
                    r = &res[n_res++];
                    r->job = jb;
                    r->seed = s->seeds[i];
                    r->error = 1;
                    snprintf(r->why, sizeof(r->why), "%s", jb->error);
                }
                continue;
            }
            if (jb->state == JOB_FAILED && jb->kind == JOB_FAULTED) {
                r = &res[n_res++];
                r->job = jb;
                r->seed = s->seeds[i];
                r->error = 1;
                snprintf(r->why, sizeof(r->why), "%s", jb->error);
                continue;
            }
            if (jb->state != JOB_SAVED)
                continue;
            snprintf(path, sizeof(path), "%s/trial.json", jb->dir);
            rb_trial_init(&t);
            rb_error_init(&err);
            if (rb_trial_load(path, &t, &err) != RB_OK) {
                if (jb->kind == JOB_FAULTED) {
                    r = &res[n_res++];
                    r->job = jb;
                    r->seed = s->seeds[i];
                    r->error = 1;
                    snprintf(r->why, sizeof(r->why), "%s", err.message);
                }
                continue;
            }
            if (jb->kind == JOB_BASELINE) {
                struct rb_score sc;
                size_t q;
                json_t *b;

                /* Its faulted trial is the one of the same seed and number. */
                for (r = NULL, q = 0; q < n_res; q++)
                    if (res[q].job->seed_i == i && res[q].job->k == jb->k &&
                        res[q].job->kind == JOB_FAULTED && !res[q].error)
                        r = &res[q];
                rb_score_trial(&golden, &t, &sc);
                b = rb_score_json(s, &golden, &t, &sc);
                if (b) {
                    json_object_set_new(b, "trial", json_string("baseline"));
                    json_array_append(bases, b);
                    json_array_append_new(su->pool_base, json_incref(b));
                    if (r)
                        r->base = b;
                    else
                        json_decref(b);
                }
                rb_trial_release(&t);
                continue;
            }
            r = &res[n_res++];
            r->job = jb;
            r->seed = s->seeds[i];
            rb_score_trial(&golden, &t, &r->score);
            r->record = rb_score_json(s, &golden, &t, &r->score);
            if (su->o->no_golden)
                blank_golden(r->record);
            set_worker_ms(json_object_get(r->record, "faulted"), jb);
            set_worker_ms(json_object_get(r->record, "golden"), golden_job(su, si, i));
            if (!have_golden || (!su->o->no_golden && !golden.completed))
                snprintf(r->why, sizeof(r->why), "%s", gwhy);
            if (t.interrupted)
                add_why(r->why, sizeof(r->why), "interrupted by a stop signal");
            rb_trial_release(&t);
        }
        rb_trial_release(&golden);
    }

    /* The scenario's recovery percentiles, over all its trials' faults. */
    for (i = 0; i < n_res; i++)
        n_rv += res[i].score.n_faults;
    rv = calloc(n_rv + 1, sizeof(*rv));
    n_rv = 0;
    for (i = 0; rv && i < n_res; i++)
        for (j = 0; !res[i].error && j < res[i].score.n_faults; j++)
            if (res[i].score.faults[j].recovery_ms >= 0)
                rv[n_rv++] = res[i].score.faults[j].recovery_ms;
    /* An agent that names no steps (a black box) recovers on the wire: its
     * expectations on recovery are judged on the first new request. */
    for (i = 0; rv && n_rv == 0 && i < n_res; i++)
        for (j = 0; !res[i].error && res[i].score.steps_executed < 0 &&
                    j < res[i].score.n_faults;
             j++)
            if (res[i].score.faults[j].recovery_first_request_ms >= 0)
                rv[n_rv++] = res[i].score.faults[j].recovery_first_request_ms;
    p50 = rb_score_percentile(rv, n_rv, 50);
    p95 = rb_score_percentile(rv, n_rv, 95);
    free(rv);

    outcomes = json_pack("{s:i, s:i, s:i, s:i, s:i}", "recovered", 0, "degraded", 0,
                         "escalated", 0, "failed", 0, "hung", 0);
    for (i = 0; i < n_res; i++) {
        struct scored *r = &res[i];
        char why[1024];

        if (r->error) {
            r->record = error_record(s, r);
        } else {
            const char *oc = json_string_value(json_object_get(r->record, "outcome"));

            if (!oc)
                oc = rb_outcome_name(r->score.outcome);

            r->pass = rb_score_check(s, &r->score, p50, p95, why, sizeof(why));
            if (r->why[0])
                r->pass = 0;
            add_why(r->why, sizeof(r->why), why);
            json_object_set_new(
                outcomes, oc,
                json_integer(json_integer_value(json_object_get(outcomes, oc)) + 1));
            if (r->record) {
                json_object_set_new(r->record, "verdict",
                                    json_string(r->pass ? "pass" : "fail"));
                json_object_set_new(r->record, "broken",
                                    r->pass ? json_array() : broken_list(r->why));
                json_object_set_new(r->record, "baseline",
                                    r->base ? trial_baseline(r->base) : json_null());
            }
        }
        passed += r->pass;
        failed += !r->pass;
        su->passed += r->pass;
        su->failures += !r->pass;
        print_line(su, r);
        if (r->record) {
            json_array_append(su->trials, r->record);
            if (!r->error) {
                json_array_append(recs, r->record);
                json_array_append(su->pool, r->record);
            }
        }
    }
    sj = json_pack("{s:s, s:o, s:s, s:i, s:i, s:i, s:s, s:o, s:o, s:o}", "name", s->name,
                   "file", s->path ? json_string(s->path) : json_null(), "description",
                   s->description ? s->description : "", "trials", (int)n_res, "passed",
                   passed, "failed", failed, "verdict",
                   failed == 0 && n_res > 0 ? "pass" : "fail", "outcomes", outcomes,
                   "metrics", metrics_json(recs, p), "baseline",
                   baseline_json(recs, bases));
    if (sj && n_res > 0) /* not one that a stop kept from running */
        json_array_append_new(su->scenarios, sj);
    else
        json_decref(sj);
out:
    for (i = 0; res && i < n_res; i++) {
        json_decref(res[i].record);
        json_decref(res[i].base);
    }
    free(res);
    json_decref(recs);
    json_decref(bases);
    su->scen_done++;
}

/* Finishes, in order, the scenarios whose jobs are all done. */
static void finish_ready(struct suite *su)
{
    size_t j;

    while (su->scen_done < su->o->n) {
        size_t si = su->scen_done;

        for (j = su->first_job[si]; j < su->first_job[si + 1]; j++)
            if (su->jobs[j].state == JOB_WAITING || su->jobs[j].state == JOB_RUNNING)
                return;
        finish_scenario(su, si);
    }
}

/* ---- the suite ------------------------------------------------------------------ */

static enum rb_err plan(struct suite *su, struct rb_error *err)
{
    const struct rb_suite_opts *o = su->o;
    size_t n = 0, i, k, si;
    int t;

    for (si = 0; si < o->n; si++) {
        const struct rb_scenario *s = o->scenarios[si];

        n += s->n_seeds * (1 + (size_t)s->trials * (o->baseline_no_replay ? 2 : 1));
    }
    su->jobs = calloc(n + 1, sizeof(*su->jobs));
    su->first_job = calloc(o->n + 1, sizeof(*su->first_job));
    if (!su->jobs || !su->first_job)
        return rb_error_set(err, RB_ENOMEM, "out of memory");
    for (si = 0; si < o->n; si++) {
        const struct rb_scenario *s = o->scenarios[si];

        su->first_job[si] = su->n_jobs;
        for (i = 0; i < s->n_seeds; i++) {
            for (k = 0; k < 3; k++) {
                enum job_kind kind = (enum job_kind)k;
                int count = kind == JOB_GOLDEN ? 1 : s->trials;

                if (kind == JOB_GOLDEN && (o->golden_dir || o->no_golden))
                    continue;
                if (kind == JOB_BASELINE && !o->baseline_no_replay)
                    continue;
                for (t = 1; t <= count; t++) {
                    struct job *j = &su->jobs[su->n_jobs++];

                    j->scen = si;
                    j->seed_i = i;
                    j->kind = kind;
                    j->k = t;
                    job_dir(o, j);
                }
            }
        }
    }
    su->first_job[o->n] = su->n_jobs;
    return RB_OK;
}

/* Two scenarios of one name would share their trials' folders. */
static enum rb_err check_names(const struct rb_suite_opts *o, struct rb_error *err)
{
    size_t i, k;

    for (i = 0; i < o->n; i++)
        for (k = 0; k < i; k++)
            if (!strcmp(o->scenarios[i]->name, o->scenarios[k]->name))
                return rb_error_set(
                    err, RB_EINVAL,
                    "two scenarios are named '%s' ('%s' and '%s'): their trials "
                    "would share folders; give one a \"name\"",
                    o->scenarios[i]->name,
                    o->scenarios[k]->path ? o->scenarios[k]->path : "?",
                    o->scenarios[i]->path ? o->scenarios[i]->path : "?");
    return RB_OK;
}

/* Checks the golden trials to reuse are there, before anything runs. */
static enum rb_err check_goldens(const struct rb_suite_opts *o, struct rb_error *err)
{
    char path[PATH_MAX * 2];
    size_t si, i;

    if (!o->golden_dir)
        return RB_OK;
    snprintf(path, sizeof(path), "%s/trial.json", o->golden_dir);
    if (access(path, R_OK) == 0)
        return RB_OK;
    for (si = 0; si < o->n; si++)
        for (i = 0; i < o->scenarios[si]->n_seeds; i++) {
            snprintf(path, sizeof(path), "%s/trials/%s-s%llu-golden/trial.json",
                     o->golden_dir, o->scenarios[si]->name,
                     (unsigned long long)o->scenarios[si]->seeds[i]);
            if (access(path, R_OK) != 0)
                return rb_error_set(
                    err, RB_ENOENT,
                    "no golden trial to reuse in '%s': neither '%s/trial.json' "
                    "nor '%s'",
                    o->golden_dir, o->golden_dir, path);
        }
    return RB_OK;
}

static json_t *results_root(struct suite *su, int complete)
{
    size_t n = json_array_size(su->trials);
    int score = n ? (int)((su->passed * 100 + (int)n / 2) / (int)n) : 0;
    double p[2], pb[2];
    json_t *suite, *root, *m, *mb;

    suite = json_pack(
        "{s:I, s:i, s:I, s:i, s:b, s:I, s:i}", "trials", (json_int_t)n, "passed",
        su->passed, "failed", (json_int_t)(n - (size_t)su->passed), "resilience_score",
        score, "complete", complete, "wall_ms",
        (json_int_t)((now_ns() - su->start_ns) / 1000000), "jobs", su->jobs_max);
    if (suite && json_array_size(su->pool_base) > 0) {
        m = metrics_json(su->pool, p);
        mb = metrics_json(su->pool_base, pb);
        json_decref(m);
        json_decref(mb);
        json_object_set_new(suite, "baseline",
                            json_pack("{s:s, s:{s:o, s:o}}", "mode", "no-replay",
                                      "reduction_pct", "recovery_ms",
                                      reduction(p[0], pb[0]), "steps_redone",
                                      reduction(p[1], pb[1])));
    }
    root =
        json_pack("{s:i, s:s, s:o, s:O, s:O}", "schema", 1, "rebound", RB_VERSION_STRING,
                  "suite", suite, "scenarios", su->scenarios, "trials", su->trials);
    return root;
}

enum rb_err rb_suite_run(const struct rb_suite_opts *o, json_t **results,
                         int *stop_signal, struct rb_error *err)
{
    struct suite su;
    sigset_t block, waitset, old_mask, worker_mask;
    static const struct timespec zero = {0, 0};
    enum rb_err rc = RB_OK;
    long cpus;
    size_t i;
    int sig;

    memset(&su, 0, sizeof(su));
    su.o = o;
    rb_error_init(&su.first_err);
    if (!o || !o->scenarios || o->n == 0 || !o->out_dir || o->out_dir[0] != '/' ||
        !o->rebound_exe || !results || !stop_signal)
        return rb_error_set(err, RB_EINVAL,
                            "bad suite options: scenarios, an absolute output "
                            "folder and rebound's path are needed");
    rc = check_names(o, err);
    if (rc == RB_OK)
        rc = check_goldens(o, err);
    if (rc != RB_OK)
        return rc;
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    su.jobs_max = o->jobs > 0 ? o->jobs : cpus > 0 ? (int)cpus : 1;
    su.trials = json_array();
    su.scenarios = json_array();
    su.pool = json_array();
    su.pool_base = json_array();
    if (!su.trials || !su.scenarios || !su.pool || !su.pool_base) {
        rc = rb_error_set(err, RB_ENOMEM, "out of memory");
        goto out;
    }
    rc = plan(&su, err);
    if (rc != RB_OK)
        goto out;

    /* Stop signals and SIGCHLD are taken with sigtimedwait(); a worker keeps
     * the stop signals blocked for its supervisor. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    worker_mask = old_mask;
    sigaddset(&worker_mask, SIGINT);
    sigaddset(&worker_mask, SIGTERM);
    sigaddset(&worker_mask, SIGHUP);
    sigdelset(&worker_mask, SIGCHLD);
    /* A stop signal ignored when we started (a background job of a script
     * ignores SIGINT) stays ignored. */
    waitset = block;
    for (i = 0; i < 3; i++) {
        static const int stops[3] = {SIGINT, SIGTERM, SIGHUP};
        struct sigaction sa;

        if (sigaction(stops[i], NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
            sa.sa_handler == SIG_IGN)
            sigdelset(&waitset, stops[i]);
    }

    su.start_ns = now_ns();
    for (;;) {
        struct timespec tick = {0, 250000000};

        while (!su.stop && !su.error && su.running < su.jobs_max && su.next < su.n_jobs &&
               can_start(&su, &su.jobs[su.next]))
            start_job(&su, &su.jobs[su.next++], &worker_mask);
        if (su.running == 0) {
            /* What never started is skipped (a stop, or an error). */
            for (i = su.next; i < su.n_jobs; i++)
                if (su.jobs[i].state == JOB_WAITING) {
                    su.jobs[i].state = JOB_SKIPPED;
                    su.done++;
                }
            finish_ready(&su);
            if (su.next >= su.n_jobs || su.stop || su.error)
                break;
        }
        progress_show(&su);
        sig = sigtimedwait(&waitset, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            if (!su.stop) {
                su.stop = sig;
                su.stop_ns = now_ns();
                signal_workers(&su, sig);
            } else {
                signal_workers(&su, SIGKILL); /* a second stop: no more waiting */
            }
        }
        if (su.stop && now_ns() - su.stop_ns > (int64_t)STOP_GRACE_MS * 1000000)
            signal_workers(&su, SIGKILL);
        reap(&su);
        finish_ready(&su);
    }
    progress_clear(&su);
    /* SIGCHLDs of reaped workers (and a stop answered already) go. */
    while (sigtimedwait(&block, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    *results = results_root(&su, !su.stop && !su.error);
    *stop_signal = su.stop;
    if (!*results) {
        rc = rb_error_set(err, RB_ENOMEM, "out of memory");
    } else if (su.error) {
        rc = su.first_err.code ? su.first_err.code : RB_EIO;
        if (err)
            *err = su.first_err;
    }
out:
    json_decref(su.trials);
    json_decref(su.scenarios);
    json_decref(su.pool);
    json_decref(su.pool_base);
    free(su.jobs);
    free(su.first_job);
    return rc;
}

void rb_suite_summary(const json_t *results, char *buf, size_t size)
{
    json_t *s = json_object_get(results, "suite");
    json_t *red = json_object_get(json_object_get(s, "baseline"), "reduction_pct");
    json_int_t n = json_integer_value(json_object_get(s, "trials"));
    int len;

    len = snprintf(buf, size,
                   "%lld trial%s, %lld passed, %lld failed; resilience score %lld",
                   (long long)n, n == 1 ? "" : "s",
                   (long long)json_integer_value(json_object_get(s, "passed")),
                   (long long)json_integer_value(json_object_get(s, "failed")),
                   (long long)json_integer_value(json_object_get(s, "resilience_score")));
    if (red && len > 0 && (size_t)len < size) {
        json_t *r = json_object_get(red, "recovery_ms");
        json_t *d = json_object_get(red, "steps_redone");
        char a[32] = "unknown", b[32] = "unknown";

        if (json_is_number(r))
            snprintf(a, sizeof(a), "%.0f%% less", json_number_value(r));
        if (json_is_number(d))
            snprintf(b, sizeof(b), "%.0f%% less", json_number_value(d));
        snprintf(buf + len, size - (size_t)len,
                 "; against no-replay: recovery p50 %s, steps redone p50 %s", a, b);
    }
}
