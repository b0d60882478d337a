/*
 * faults_common.h - what the fault end-to-end tests share: a scratch folder,
 * the path of the child agent (faults/testing/rb_fault_child), reading the
 * lines it wrote, reading the store it recorded into, and collecting the
 * supervisor's events. Header-only: each test is one program.
 */
#ifndef REBOUND_TESTS_FAULTS_COMMON_H
#define REBOUND_TESTS_FAULTS_COMMON_H

#include "faults/faults.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fc_failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fc_failures++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static char fc_tmp[512];
static char fc_child[1024];

static inline void fc_init(const char *name)
{
    const char *base = getenv("TMPDIR"), *build = getenv("REBOUND_BUILD_DIR");

    snprintf(fc_tmp, sizeof(fc_tmp), "%s/%s-XXXXXX", base && *base ? base : "/tmp", name);
    if (!mkdtemp(fc_tmp)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(fc_child, sizeof(fc_child), "%s/faults/testing/rb_fault_child",
             build && *build ? build : ".");
    if (access(fc_child, X_OK) != 0) {
        fprintf(stderr, "child program '%s' is missing (set REBOUND_BUILD_DIR)\n",
                fc_child);
        exit(2);
    }
}

static inline int64_t fc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void fc_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A file's text (caller frees), or an empty string. */
static inline char *fc_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);
    size_t n = 0;

    if (f) {
        n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* Counts lines of `text` that start with `prefix`. */
static inline int fc_count_lines(const char *text, const char *prefix)
{
    const char *p = text;
    int n = 0;

    while (p && *p) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* The JSON after "last_failure=" on the start line of `attempt`, parsed (or NULL). */
static inline json_t *fc_last_failure(const char *text, int attempt)
{
    char prefix[64];
    const char *p;
    char line[4096];

    snprintf(prefix, sizeof(prefix), "start attempt=%d ", attempt);
    p = strstr(text, prefix);
    if (!p)
        return NULL;
    p = strstr(p, "last_failure=");
    if (!p)
        return NULL;
    p += strlen("last_failure=");
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
    return json_loads(line, 0, NULL);
}

static inline const char *fc_jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

static inline long long fc_jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* ---- events ---------------------------------------------------------------- */

#define FC_MAX_EVENTS 4096

struct fc_events {
    int n;
    char *kind[FC_MAX_EVENTS];
    json_t *json[FC_MAX_EVENTS];
    void (*hook)(struct fc_events *ev, const char *kind, json_t *j); /* or NULL */
    void *arg;
};

static inline void fc_on_event(void *arg, const struct rb_fault_event *ev)
{
    struct fc_events *e = arg;
    json_t *j = json_loads(ev->json, 0, NULL);

    if (e->hook)
        e->hook(e, ev->kind, j);
    if (e->n < FC_MAX_EVENTS) {
        e->kind[e->n] = strdup(ev->kind);
        e->json[e->n++] = j;
    } else {
        json_decref(j);
    }
}

/* The i-th event (from 0) of `kind`, or NULL. */
static inline json_t *fc_event(struct fc_events *e, const char *kind, int i)
{
    int k;

    for (k = 0; k < e->n; k++)
        if (strcmp(e->kind[k], kind) == 0 && i-- == 0)
            return e->json[k];
    return NULL;
}

static inline int fc_event_count(struct fc_events *e, const char *kind)
{
    int k, n = 0;

    for (k = 0; k < e->n; k++)
        n += strcmp(e->kind[k], kind) == 0;
    return n;
}

static inline void fc_events_release(struct fc_events *e)
{
    int k;

    for (k = 0; k < e->n; k++) {
        free(e->kind[k]);
        json_decref(e->json[k]);
    }
    e->n = 0;
}

/* ---- the store ----------------------------------------------------------------- */

struct fc_log {
    char key[64][16];
    int attempt[64];
    int n;
};

static inline int fc_log_cb(void *arg, const struct rb_step_record *rec)
{
    struct fc_log *log = arg;

    if (log->n < 64 && strcmp(rec->status, "committed") == 0) {
        snprintf(log->key[log->n], sizeof(log->key[0]), "%s", rec->key);
        log->attempt[log->n++] = rec->attempt;
    }
    return 0;
}

/* The attempt that committed `key` (0 when not committed). */
static inline int fc_committed_by(const struct fc_log *log, const char *key)
{
    int i;

    for (i = 0; i < log->n; i++)
        if (strcmp(log->key[i], key) == 0)
            return log->attempt[i];
    return 0;
}

struct fc_attempts {
    struct rb_attempt a[16];
    int n;
};

static inline int fc_attempt_cb(void *arg, const struct rb_attempt *a)
{
    struct fc_attempts *list = arg;

    if (list->n < 16) {
        list->a[list->n] = *a;
        list->a[list->n++].detail = NULL;
    }
    return 0;
}

/* Reads the log and attempts of `run` in store `dir`. */
static inline void fc_read_store(const char *dir, const char *run, struct fc_log *log,
                                 struct fc_attempts *attempts)
{
    struct rb_store *store = NULL;
    struct rb_error err;

    memset(log, 0, sizeof(*log));
    memset(attempts, 0, sizeof(*attempts));
    if (rb_store_open(dir, NULL, &store, &err) != RB_OK) {
        CHECK(0, "cannot open store '%s': %s", dir, err.message);
        return;
    }
    CHECK(rb_store_read_log(store, run, fc_log_cb, log, &err) == RB_OK, "%s",
          err.message);
    CHECK(rb_store_read_attempts(store, run, fc_attempt_cb, attempts, &err) == RB_OK,
          "%s", err.message);
    rb_store_close(store);
}

/* 1 when process group pgid is gone (bounded wait while reaping orphans). */
static inline int fc_group_gone(pid_t pgid)
{
    int i;

    for (i = 0; i < 500; i++) {
        if (kill(-pgid, 0) != 0 && errno == ESRCH)
            return 1;
        fc_sleep_ms(10);
    }
    return 0;
}

/* ---- one supervised run of the child ------------------------------------------ */

struct fc_case {
    const char *run;                /* run id, also names the output file */
    const char *mode;               /* child mode: steps, alloc, time, spawn */
    const char *arg;                /* its N */
    const char *env[8];             /* extra NAME=value for the child */
    struct rb_fault_spec faults[4]; /* faults to arm */
    int n_faults;
    struct rb_mem_limit mem;
    struct rb_clock *clock;
    struct rb_netns *netns;
    int max_attempts;
    /* results */
    struct rb_sup_result res;
    struct fc_events ev;
    char out[700];   /* the child's observation file */
    char store[700]; /* the store folder */
    char *text;      /* the observation file's text */
    pid_t pgid;      /* the last attempt's group */
};

static inline void fc_run(struct fc_case *c)
{
    const char *argv[] = {fc_child, c->mode, c->arg, c->out, NULL};
    const char *env[12];
    char store_env[800], run_env[300];
    struct rb_sup_opts o = {0};
    struct rb_sup *sup = NULL;
    struct rb_error err;
    int i, n = 0;

    snprintf(c->out, sizeof(c->out), "%s/%s.out", fc_tmp, c->run);
    snprintf(c->store, sizeof(c->store), "%s/store", fc_tmp);
    snprintf(store_env, sizeof(store_env), "REBOUND_STORE=%s", c->store);
    snprintf(run_env, sizeof(run_env), "REBOUND_RUN=%s", c->run);
    env[n++] = store_env;
    env[n++] = run_env;
    for (i = 0; i < 8 && c->env[i]; i++)
        env[n++] = c->env[i];
#ifdef __SANITIZE_ADDRESS__
    /* libfaketime comes first in the sanitized child's library list. */
    if (c->clock)
        env[n++] = "ASAN_OPTIONS=verify_asan_link_order=0";
#endif
    env[n] = NULL;
    o.argv = argv;
    o.env = env;
    o.restart.max_attempts = c->max_attempts;
    o.mem = c->mem;
    o.clock = c->clock;
    o.netns = c->netns;
    o.timeout_ms = 60000; /* hang guard */
    o.on_event = fc_on_event;
    o.event_arg = &c->ev;
    if (rb_sup_new(&o, &sup, &err) != RB_OK) {
        CHECK(0, "rb_sup_new: %s", err.message);
        return;
    }
    for (i = 0; i < c->n_faults; i++)
        if (rb_sup_add_fault(sup, &c->faults[i], &err) != RB_OK)
            CHECK(0, "rb_sup_add_fault: %s", err.message);
    if (rb_sup_run(sup, &c->res, &err) != RB_OK)
        CHECK(0, "rb_sup_run: %s", err.message);
    c->pgid = rb_sup_pgid(sup);
    rb_sup_free(sup);
    c->text = fc_slurp(c->out);
    CHECK(!c->res.timed_out, "%s: the hang guard ran out", c->run);
    CHECK(c->pgid > 0 && kill(-c->pgid, 0) != 0 && errno == ESRCH,
          "%s: group %ld is still alive after the run", c->run, (long)c->pgid);
}

static inline void fc_case_release(struct fc_case *c)
{
    fc_events_release(&c->ev);
    free(c->text);
    c->text = NULL;
}

static inline int fc_rm_cb(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Ends the test: removes the scratch folder when all checks passed, else
 * keeps it and says where. Returns the exit status. */
static inline int fc_finish(const char *what)
{
    if (fc_failures) {
        fprintf(stderr, "%d checks failed; files in %s\n", fc_failures, fc_tmp);
        return 1;
    }
    nftw(fc_tmp, fc_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    printf("ok: %s\n", what);
    return 0;
}

#endif /* REBOUND_TESTS_FAULTS_COMMON_H */
