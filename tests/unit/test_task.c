/*
 * test_task.c - unit tests of rb_task_step(), the durable step whose function
 * runs in a child process with limits, through the public API only: real
 * child processes that really allocate, spin, crash and exit; the recorded
 * failure context and what the next try sees; the OOM retry policy and its
 * cap; output carried back exactly; replay without a fork; no child left
 * behind. Every test works on a real SQLite store in its own temp folder.
 *
 * Under AddressSanitizer the library does not set RLIMIT_AS (it conflicts
 * with ASan's shadow memory); the case that needs it is skipped then.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE

#include <rebound/rebound.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MIB ((size_t)1024 * 1024)

/* snprintf for paths: a path that does not fit fails the test. */
static void pathf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "path too long: %s\n", out);
        abort();
    }
}

/* ---- fixture: a temp folder with a store and a run ----------------------- */

struct fix {
    char root[PATH_MAX]; /* the temp folder, removed after the test */
    char store_dir[PATH_MAX];
    char count[PATH_MAX]; /* root/count: a line per task child that ran */
    struct rb_store *store;
    struct rb_run *run;
    int events[2]; /* pipe: the run's events are written to events[1] */
};

static int fix_setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    struct rb_run_opts ro = {0};
    struct rb_error err;

    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "%s/rb_task_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    pathf(f->store_dir, sizeof(f->store_dir), "%s/store", f->root);
    pathf(f->count, sizeof(f->count), "%s/count", f->root);
    if (pipe2(f->events, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    ro.event_fd = f->events[1];
    if (rb_store_open(f->store_dir, NULL, &f->store, &err) != RB_OK ||
        rb_run_open(f->store, "run-1", &ro, &f->run, &err) != RB_OK) {
        fprintf(stderr, "fixture: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static int fix_teardown(void **state)
{
    struct fix *f = *state;

    rb_run_close(f->run);
    rb_store_close(f->store);
    close(f->events[0]);
    close(f->events[1]);
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads a whole file into buf (appended); 0 on success. */
static int slurp(const char *path, struct rb_buf *buf)
{
    unsigned char chunk[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        rb_buf_append(buf, chunk, (size_t)n);
    close(fd);
    return n < 0 ? -1 : 0;
}

static int count_lines(const char *path)
{
    struct rb_buf b;
    int lines = 0;
    size_t i;

    rb_buf_init(&b);
    if (slurp(path, &b) == 0)
        for (i = 0; i < b.len; i++)
            lines += b.data[i] == '\n';
    rb_buf_release(&b);
    return lines;
}

/* Appends "pid\n" to path, as a task child does to be counted. */
static void count_me(const char *path)
{
    char line[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            _exit(99);
        close(fd);
    }
}

/* The log record of one step, copied out. */
struct rec {
    int found;
    char status[16];
    int tries;
    char *error; /* JSON, or NULL */
};

struct rec_find {
    const char *key;
    struct rec *rec;
};

static int on_rec(void *arg, const struct rb_step_record *r)
{
    struct rec_find *q = arg;

    if (strcmp(r->key, q->key) != 0)
        return 0;
    q->rec->found = 1;
    snprintf(q->rec->status, sizeof(q->rec->status), "%s", r->status);
    q->rec->tries = r->tries;
    q->rec->error = r->error ? strdup(r->error) : NULL;
    return 1;
}

static void read_rec(struct fix *f, const char *key, struct rec *out)
{
    struct rec_find q = {key, out};
    struct rb_error err;

    memset(out, 0, sizeof(*out));
    assert_int_equal(rb_store_read_log(f->store, "run-1", on_rec, &q, &err), RB_OK);
}

/* Parses the recorded failure context of step `key`; fails the test when
 * there is none. The caller json_decref()s it. */
static json_t *failure_of(struct fix *f, const char *key, struct rec *r)
{
    json_error_t je;
    json_t *j;

    read_rec(f, key, r);
    assert_true(r->found);
    if (!r->error)
        fail_msg("step '%s' has no recorded failure", key);
    j = json_loads(r->error, 0, &je);
    if (!j)
        fail_msg("failure context of '%s' is not JSON: %s", key, r->error);
    return j;
}

static const char *jstr(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));

    if (!s)
        fail_msg("no string '%s' in %s", name, json_dumps(o, JSON_COMPACT));
    return s;
}

static json_int_t jint(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);

    if (!json_is_integer(v))
        fail_msg("no integer '%s' in %s", name, json_dumps(o, JSON_COMPACT));
    return json_integer_value(v);
}

/* The task process `pid` is gone and reaped: nothing of ours is left. */
static void assert_no_child(pid_t pid)
{
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Everything written to the run's events so far. */
static void read_events(struct fix *f, struct rb_buf *out)
{
    unsigned char chunk[4096];
    ssize_t n;

    while ((n = read(f->events[0], chunk, sizeof(chunk))) > 0)
        rb_buf_append(out, chunk, (size_t)n);
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;

    while (p && (p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

/* ---- task functions (they run in the child) -------------------------------- */

/* Allocates and touches `bytes`, holds them up to hold_ms, then answers what
 * it saw of the previous try. */
struct alloc_task {
    size_t bytes;
    int hold_ms;
    const char *count; /* file to count runs in, or NULL */
};

static enum rb_err task_alloc(void *arg, const struct rb_step_ctx *ctx,
                              struct rb_buf *out, struct rb_error *err)
{
    const struct alloc_task *a = arg;
    int64_t until = mono_ms() + a->hold_ms;
    unsigned char *p;
    size_t i;
    char text[128];
    int n;

    if (a->count)
        count_me(a->count);
    p = malloc(a->bytes);
    if (!p) {
        snprintf(err->message, sizeof(err->message), "cannot allocate %zu bytes",
                 a->bytes);
        return RB_ENOMEM;
    }
    for (i = 0; i < a->bytes; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    while (a->hold_ms && mono_ms() < until)
        sleep_ms(10);
    n = snprintf(
        text, sizeof(text), "{\"tries\":%d,\"saw_oom\":%d,\"sum\":%d}", ctx->tries,
        ctx->last_error && strstr(ctx->last_error, "\"kind\":\"oom\"") != NULL, p[4096]);
    free(p);
    return rb_buf_append(out, text, (size_t)n);
}

/* Spins (sleeping, or burning CPU) for up to 20 s, then answers: a limit that
 * works never lets it answer. */
static enum rb_err task_spin(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                             struct rb_error *err)
{
    int64_t until = mono_ms() + 20000;
    volatile unsigned long x = 0;

    (void)ctx;
    (void)err;
    if (arg)
        while (mono_ms() < until)
            x++;
    else
        while (mono_ms() < until)
            sleep_ms(10);
    return rb_buf_append(out, "finished", 8);
}

static enum rb_err task_segv(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                             struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)err;
    raise(SIGSEGV);
    return rb_buf_append(out, "survived", 8);
}

static enum rb_err task_exit3(void *arg, const struct rb_step_ctx *ctx,
                              struct rb_buf *out, struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)out;
    (void)err;
    _exit(3);
}

static enum rb_err task_fail(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                             struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)out;
    snprintf(err->message, sizeof(err->message), "cannot reach 'db.example': no luck");
    err->cause = EIO;
    err->cause_kind = "errno";
    return RB_ESTEP;
}

/* Emits `len` bytes of a fixed pseudo-random pattern (with NULs). */
struct bytes_task {
    size_t len;
    const char *count;
};

static void pattern(unsigned char *p, size_t len)
{
    uint32_t x = 2463534242u;
    size_t i;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(i % 97 == 0 ? 0 : x);
    }
}

static enum rb_err task_bytes(void *arg, const struct rb_step_ctx *ctx,
                              struct rb_buf *out, struct rb_error *err)
{
    const struct bytes_task *b = arg;
    unsigned char *p = malloc(b->len ? b->len : 1);
    enum rb_err rc;

    (void)ctx;
    (void)err;
    if (b->count)
        count_me(b->count);
    if (!p)
        return RB_ENOMEM;
    pattern(p, b->len);
    rc = rb_buf_append(out, p, b->len);
    free(p);
    return rc;
}

static enum rb_err task_print(void *arg, const struct rb_step_ctx *ctx,
                              struct rb_buf *out, struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)err;
    printf("child-line\n");
    return rb_buf_append(out, "printed", 7);
}

/* ---- tests ------------------------------------------------------------------ */

/* 64 MiB under a 32 MiB limit fails with RB_EOOM, recorded as an OOM with
 * the limit; with RLIMIT_AS the allocation itself is refused. */
static void test_oom_fails(void **state)
{
    struct fix *f = *state;
    struct alloc_task a = {64 * MIB, 0, NULL};
    struct rb_task_opts o = {.mem_limit = 32 * MIB, .timeout_ms = 60000};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "big", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EOOM);
    assert_int_equal(err.code, RB_EOOM);
    assert_non_null(strstr(err.message, "task step 'big'"));
    assert_non_null(strstr(err.message, "memory limit of 32.0 MiB"));
    assert_null(out.data); /* unaltered */

    j = failure_of(f, "big", &r);
    assert_string_equal(r.status, "failed");
    assert_int_equal(r.tries, 1);
    assert_string_equal(jstr(j, "code"), "RB_EOOM");
    assert_string_equal(jstr(j, "kind"), "oom");
    assert_int_equal(jint(j, "limit"), (json_int_t)(32 * MIB));
    assert_int_equal(jint(j, "try"), 1);
    assert_int_equal(jint(j, "attempt"), 1);
    if (!UNDER_ASAN) {
        assert_string_equal(jstr(j, "mechanism"), "rlimit_as");
        assert_non_null(strstr(err.message, "allocation refused: cannot allocate"));
    } else {
        /* The watchdog or the peak at exit; either went past the limit. */
        assert_true(jint(j, "rss_peak") > (json_int_t)(32 * MIB));
    }
    assert_no_child((pid_t)jint(j, "task_pid"));
    json_decref(j);
    free(r.error);
}

/* The watchdog kills a task holding more than its limit, as an orchestrator
 * would (SIGKILL), without RLIMIT_AS. */
static void test_oom_watchdog_kills(void **state)
{
    struct fix *f = *state;
    struct alloc_task a = {64 * MIB, 20000, NULL};
    struct rb_task_opts o = {
        .mem_limit = 32 * MIB, .timeout_ms = 60000, .flags = RB_TASK_NO_RLIMIT_AS};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "hog", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EOOM);
    assert_non_null(strstr(err.message, "and was killed"));
    j = failure_of(f, "hog", &r);
    assert_string_equal(jstr(j, "kind"), "oom");
    assert_string_equal(jstr(j, "mechanism"), "watchdog");
    assert_int_equal(jint(j, "signal"), SIGKILL);
    assert_int_equal(jint(j, "limit"), (json_int_t)(32 * MIB));
    assert_true(jint(j, "rss_peak") > (json_int_t)(32 * MIB));
    assert_no_child((pid_t)jint(j, "task_pid"));
    json_decref(j);
    free(r.error);
}

/* With factor 2 and a 128 MiB cap, the task that failed at 48 MiB succeeds
 * on the second try at 96 MiB, within the same call; the second try saw the
 * first one's failure; the log shows both. */
static void test_oom_retry_succeeds(void **state)
{
    struct fix *f = *state;
    struct alloc_task a = {64 * MIB, 0, f->count};
    struct rb_task_opts o = {.mem_limit = 48 * MIB,
                             .timeout_ms = 60000,
                             .retry_oom_factor = 2.0,
                             .mem_cap = 128 * MIB};
    struct rb_buf out, ev;
    struct rb_step_info info;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    rb_buf_init(&ev);
    assert_int_equal(rb_task_step(f->run, "grow", &o, task_alloc, &a, &out, &info, &err),
                     RB_OK);
    assert_string_equal((const char *)out.data, "{\"tries\":1,\"saw_oom\":1,\"sum\":1}");
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(count_lines(f->count), 2);

    j = failure_of(f, "grow", &r);
    assert_string_equal(r.status, "committed");
    assert_int_equal(r.tries, 2);
    assert_string_equal(jstr(j, "kind"), "oom");
    assert_int_equal(jint(j, "limit"), (json_int_t)(48 * MIB));
    assert_int_equal(jint(j, "try"), 1);

    /* Events: two children, one OOM then one success. */
    read_events(f, &ev);
    assert_int_equal(count_str((const char *)ev.data, "\"kind\":\"task.start\""), 2);
    assert_int_equal(count_str((const char *)ev.data, "\"limit\":100663296"), 2);
    assert_int_equal(count_str((const char *)ev.data, "\"kind\":\"step.fail\""), 1);
    assert_int_equal(count_str((const char *)ev.data, "\"kind\":\"step.commit\""), 1);
    assert_int_equal(count_str((const char *)ev.data, "\"kind\":\"task.end\""), 2);
    assert_int_equal(count_str((const char *)ev.data, "\"outcome\":\"oom\""), 1);
    assert_int_equal(count_str((const char *)ev.data, "\"outcome\":\"ok\""), 1);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    json_decref(j);
    free(r.error);
    rb_buf_release(&ev);
    rb_buf_release(&out);
}

/* When the cap is reached, the call gives up with RB_EOOM: tries at 32 MiB,
 * then 48 MiB (the cap, not 64), both recorded. */
static void test_oom_retry_stops_at_cap(void **state)
{
    struct fix *f = *state;
    struct alloc_task a = {64 * MIB, 0, f->count};
    struct rb_task_opts o = {.mem_limit = 32 * MIB,
                             .timeout_ms = 60000,
                             .retry_oom_factor = 2.0,
                             .mem_cap = 48 * MIB};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "capped", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EOOM);
    assert_non_null(strstr(err.message, "48.0 MiB"));
    assert_int_equal(count_lines(f->count), 2);
    j = failure_of(f, "capped", &r);
    assert_string_equal(r.status, "failed");
    assert_int_equal(r.tries, 2);
    assert_int_equal(jint(j, "limit"), (json_int_t)(48 * MIB));
    assert_int_equal(jint(j, "try"), 2);
    json_decref(j);
    free(r.error);
}

/* A task that never ends is killed at its timeout. */
static void test_timeout(void **state)
{
    struct fix *f = *state;
    struct rb_task_opts o = {.timeout_ms = 300};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(
        rb_task_step(f->run, "sleepy", &o, task_spin, NULL, &out, NULL, &err),
        RB_ETIMEOUT);
    assert_string_equal(
        err.message, "task step 'sleepy' ran longer than its timeout of 300 ms and was "
                     "killed");
    j = failure_of(f, "sleepy", &r);
    assert_string_equal(jstr(j, "code"), "RB_ETIMEOUT");
    assert_string_equal(jstr(j, "kind"), "timeout");
    assert_int_equal(jint(j, "timeout_ms"), 300);
    assert_int_equal(jint(j, "signal"), SIGKILL);
    assert_no_child((pid_t)jint(j, "task_pid"));
    json_decref(j);
    free(r.error);
}

/* A task that burns CPU past its CPU limit gets SIGXCPU. */
static void test_cpu_limit(void **state)
{
    struct fix *f = *state;
    struct rb_task_opts o = {.cpu_limit_s = 1, .timeout_ms = 60000};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;
    int burn = 1;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "burn", &o, task_spin, &burn, &out, NULL, &err),
                     RB_ETIMEOUT);
    assert_non_null(strstr(err.message, "CPU limit of 1 s"));
    j = failure_of(f, "burn", &r);
    assert_string_equal(jstr(j, "kind"), "cpu");
    assert_int_equal(jint(j, "signal"), SIGXCPU);
    /* rusage samples CPU time more coarsely than the limit is enforced: a
     * loaded machine can report less than the full second. */
    assert_true(jint(j, "cpu_ms") >= 500);
    assert_no_child((pid_t)jint(j, "task_pid"));
    json_decref(j);
    free(r.error);
}

/* A task that crashes fails with RB_ECRASH; nothing is committed, and the
 * next call runs it again. */
static void test_crash(void **state)
{
    struct fix *f = *state;
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(
        rb_task_step(f->run, "segv", NULL, task_segv, NULL, &out, NULL, &err), RB_ECRASH);
    j = failure_of(f, "segv", &r);
    assert_string_equal(jstr(j, "code"), "RB_ECRASH");
    /* Killed by the signal: the handler cmocka (as any caller) installed for
     * SIGSEGV does not run in the task process. */
    assert_string_equal(err.message, "task step 'segv' crashed: killed by SIGSEGV");
    assert_string_equal(jstr(j, "kind"), "signal");
    assert_int_equal(jint(j, "signal"), SIGSEGV);
    assert_no_child((pid_t)jint(j, "task_pid"));
    json_decref(j);
    free(r.error);

    assert_int_equal(
        rb_task_step(f->run, "segv", NULL, task_segv, NULL, &out, NULL, &err), RB_ECRASH);
    read_rec(f, "segv", &r);
    assert_int_equal(r.tries, 2);
    free(r.error);
}

/* A task process that exits without answering. */
static void test_exit_without_answer(void **state)
{
    struct fix *f = *state;
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(
        rb_task_step(f->run, "quit", NULL, task_exit3, NULL, &out, NULL, &err),
        RB_ECRASH);
    assert_string_equal(err.message, "task step 'quit' crashed: its process exited with "
                                     "code 3 before answering");
    j = failure_of(f, "quit", &r);
    assert_string_equal(jstr(j, "kind"), "exit");
    assert_int_equal(jint(j, "exit_code"), 3);
    assert_int_equal(jint(j, "signal"), 0);
    json_decref(j);
    free(r.error);
}

/* The task's own error comes back as it gave it, code, message and cause. */
static void test_task_error_carried(void **state)
{
    struct fix *f = *state;
    struct rb_buf out;
    struct rb_error err;
    struct rec r;
    json_t *j;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "ask", NULL, task_fail, NULL, &out, NULL, &err),
                     RB_ESTEP);
    assert_string_equal(err.message, "cannot reach 'db.example': no luck");
    assert_int_equal(err.cause, EIO);
    assert_string_equal(err.cause_kind, "errno");
    j = failure_of(f, "ask", &r);
    assert_string_equal(jstr(j, "code"), "RB_ESTEP");
    assert_string_equal(jstr(j, "kind"), "error");
    assert_string_equal(jstr(j, "message"), "cannot reach 'db.example': no luck");
    assert_int_equal(jint(j, "cause"), EIO);
    json_decref(j);
    free(r.error);
}

/* Output comes back byte for byte, far beyond a pipe's buffer, and under a
 * memory limit the caller's own memory does not count against; a committed
 * task step replays from the log without a fork, also in a new attempt. */
static void test_output_and_replay(void **state)
{
    struct fix *f = *state;
    struct bytes_task b = {MIB + 7, f->count};
    struct rb_task_opts o = {.mem_limit = 32 * MIB, .timeout_ms = 60000};
    struct rb_buf out, want;
    struct rb_step_info info;
    struct rb_error err;
    struct rb_run *again = NULL;
    char *ballast;
    pid_t child;

    /* 48 MiB of the caller's own, touched: the child inherits it. */
    ballast = malloc(48 * MIB);
    assert_non_null(ballast);
    memset(ballast, 1, 48 * MIB);
    rb_buf_init(&out);
    rb_buf_init(&want);
    assert_non_null(want.data = malloc(b.len + 1));
    want.len = b.len;
    pattern(want.data, want.len);

    assert_int_equal(rb_task_step(f->run, "bytes", &o, task_bytes, &b, &out, &info, &err),
                     RB_OK);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(count_lines(f->count), 1);
    {
        struct rb_buf c;

        rb_buf_init(&c);
        assert_int_equal(slurp(f->count, &c), 0);
        child = (pid_t)atol((const char *)c.data);
        rb_buf_release(&c);
    }
    assert_no_child(child);

    /* Replay: same run, then a new attempt of it. */
    rb_buf_release(&out);
    assert_int_equal(rb_task_step(f->run, "bytes", &o, task_bytes, &b, &out, &info, &err),
                     RB_OK);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_memory_equal(out.data, want.data, want.len);
    rb_run_abandon(f->run);
    f->run = NULL;
    assert_int_equal(rb_run_open(f->store, "run-1", NULL, &again, &err), RB_OK);
    f->run = again;
    rb_buf_release(&out);
    assert_int_equal(rb_task_step(f->run, "bytes", &o, task_bytes, &b, &out, &info, &err),
                     RB_OK);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(info.attempt, 1);
    assert_memory_equal(out.data, want.data, want.len);
    assert_int_equal(count_lines(f->count), 1);

    /* An empty output is an empty string. */
    b.len = 0;
    rb_buf_release(&out);
    assert_int_equal(rb_task_step(f->run, "empty", &o, task_bytes, &b, &out, &info, &err),
                     RB_OK);
    assert_int_equal(out.len, 0);
    assert_non_null(out.data);
    assert_int_equal(out.data[0], '\0');
    assert_int_equal(count_lines(f->count), 2);

    free(ballast);
    rb_buf_release(&out);
    rb_buf_release(&want);
}

/* The caller's unflushed stdout is written once, by the caller; the task's
 * own printf() output is not lost. */
static void test_stdout_once(void **state)
{
    struct fix *f = *state;
    char path[PATH_MAX];
    struct rb_buf out, text;
    struct rb_error err;
    int saved, fd;
    static char buf[BUFSIZ]; /* stdout keeps it after the test */

    pathf(path, sizeof(path), "%s/stdout", f->root);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    setvbuf(stdout, buf, _IOFBF, sizeof(buf));
    printf("parent-line\n"); /* still in the buffer at the fork */

    rb_buf_init(&out);
    rb_buf_init(&text);
    assert_int_equal(
        rb_task_step(f->run, "print", NULL, task_print, NULL, &out, NULL, &err), RB_OK);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    setvbuf(stdout, NULL, _IOLBF, 0);

    assert_int_equal(slurp(path, &text), 0);
    assert_int_equal(count_str((const char *)text.data, "parent-line"), 1);
    assert_int_equal(count_str((const char *)text.data, "child-line"), 1);
    rb_buf_release(&out);
    rb_buf_release(&text);
}

/* Bad options are refused before anything runs or is recorded. */
static void test_bad_options(void **state)
{
    struct fix *f = *state;
    struct alloc_task a = {MIB, 0, f->count};
    struct rb_task_opts o = {.mem_limit = 32 * MIB, .retry_oom_factor = -1};
    struct rb_buf out;
    struct rb_error err;
    struct rec r;

    rb_buf_init(&out);
    assert_int_equal(rb_task_step(f->run, "bad", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EINVAL);
    assert_string_equal(err.message, "task step 'bad': retry_oom_factor -1 is not >= 0");
    o.retry_oom_factor = 2;
    assert_int_equal(rb_task_step(f->run, "bad", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EINVAL);
    assert_string_equal(err.message,
                        "task step 'bad': mem_cap 0 is below mem_limit 33554432");
    o.mem_limit = 0;
    assert_int_equal(rb_task_step(f->run, "bad", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EINVAL);
    assert_string_equal(err.message,
                        "task step 'bad': retry_oom_factor needs a mem_limit");
    o.retry_oom_factor = 0;
    o.timeout_ms = -5;
    assert_int_equal(rb_task_step(f->run, "bad", &o, task_alloc, &a, &out, NULL, &err),
                     RB_EINVAL);
    assert_int_equal(rb_task_step(f->run, "", NULL, task_alloc, &a, &out, NULL, &err),
                     RB_ENAME);
    read_rec(f, "bad", &r);
    assert_false(r.found);
    assert_int_equal(count_lines(f->count), 0);
    assert_null(out.data);
}

/* A cacheable task step computed by one run is served to another from the
 * global cache, without a fork. */
static void test_cached_task(void **state)
{
    struct fix *f = *state;
    struct bytes_task b = {5000, f->count};
    struct rb_task_opts o = {.step = {.kind = "render",
                                      .input = "page 1",
                                      .input_len = 6,
                                      .cache = RB_CACHE_ON},
                             .mem_limit = 32 * MIB};
    struct rb_buf out, again;
    struct rb_step_info info;
    struct rb_error err;
    struct rb_run *other = NULL;

    rb_buf_init(&out);
    rb_buf_init(&again);
    assert_int_equal(
        rb_task_step(f->run, "render", &o, task_bytes, &b, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(rb_run_open(f->store, "run-2", NULL, &other, &err), RB_OK);
    assert_int_equal(
        rb_task_step(other, "render", &o, task_bytes, &b, &again, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_int_equal(again.len, out.len);
    assert_memory_equal(again.data, out.data, out.len);
    assert_int_equal(count_lines(f->count), 1);
    rb_run_close(other);
    rb_buf_release(&out);
    rb_buf_release(&again);
}

/* Counts itself, then sleeps up to 20 s. */
static enum rb_err task_linger(void *arg, const struct rb_step_ctx *ctx,
                               struct rb_buf *out, struct rb_error *err)
{
    (void)ctx;
    (void)err;
    count_me(arg);
    sleep_ms(20000);
    return rb_buf_append(out, "late", 4);
}

/* An agent killed with SIGKILL in the middle of a task step takes its task
 * process with it: nothing keeps running for a caller that is gone. (The test
 * makes itself the subreaper, so the orphaned task comes to it.) */
static void test_task_dies_with_caller(void **state)
{
    struct fix *f = *state;
    pid_t agent, task = 0, r = 0;
    int status = 0, i;

    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    agent = fork();
    assert_true(agent >= 0);
    if (agent == 0) {
        struct rb_store *s = NULL;
        struct rb_run *run = NULL;
        struct rb_task_opts o = {.timeout_ms = 60000};
        struct rb_buf out;
        struct rb_error err;

        /* Its own handles: a forked process must not use its parent's. */
        rb_buf_init(&out);
        if (rb_store_open(f->store_dir, NULL, &s, &err) != RB_OK ||
            rb_run_open(s, "agent", NULL, &run, &err) != RB_OK)
            _exit(2);
        rb_task_step(run, "linger", &o, task_linger, f->count, &out, NULL, &err);
        _exit(3);
    }
    for (i = 0; i < 1000 && count_lines(f->count) < 1; i++)
        sleep_ms(10);
    {
        struct rb_buf c;

        rb_buf_init(&c);
        assert_int_equal(slurp(f->count, &c), 0);
        task = (pid_t)atol((const char *)c.data);
        rb_buf_release(&c);
    }
    assert_true(task > 0 && task != agent);
    assert_int_equal(kill(agent, SIGKILL), 0);
    assert_int_equal(waitpid(agent, &status, 0), agent);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The task follows within moments, well before its 20 s are up. */
    for (i = 0; i < 1000; i++) {
        r = waitpid(task, &status, WNOHANG);
        if (r == task)
            break;
        sleep_ms(10);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    assert_int_equal(r, task);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_no_child(task);
}

/* With SIGCHLD ignored the kernel reaps the child itself: the call says so
 * instead of guessing how the task ended. */
static void test_sigchld_ignored(void **state)
{
    struct fix *f = *state;
    struct bytes_task b = {10, NULL};
    struct sigaction ign, old;
    struct rb_buf out;
    struct rb_error err;
    enum rb_err rc;

    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
    rb_buf_init(&out);
    rc = rb_task_step(f->run, "orphan", NULL, task_bytes, &b, &out, NULL, &err);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(rc, RB_ECHILD);
    assert_string_equal(err.message, "cannot wait for the process of task step 'orphan' "
                                     "(is SIGCHLD ignored?): no child processes");
    assert_null(out.data);
}

static void test_error_codes(void **state)
{
    (void)state;
    assert_string_equal(rb_err_name(RB_EOOM), "RB_EOOM");
    assert_string_equal(rb_strerror(RB_EOOM), "out of memory limit");
    assert_string_equal(rb_strerror(RB_ETIMEOUT), "step timed out");
    assert_string_equal(rb_strerror(RB_ECRASH), "step process crashed");
    /* Appended: the codes before them keep their numbers. */
    assert_int_equal(RB_EOOM, RB_EEXIST + 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_oom_fails),
        T(test_oom_watchdog_kills),
        T(test_oom_retry_succeeds),
        T(test_oom_retry_stops_at_cap),
        T(test_timeout),
        T(test_cpu_limit),
        T(test_crash),
        T(test_exit_without_answer),
        T(test_task_error_carried),
        T(test_output_and_replay),
        T(test_stdout_once),
        T(test_bad_options),
        T(test_sigchld_ignored),
        T(test_cached_task),
        T(test_task_dies_with_caller),
        cmocka_unit_test(test_error_codes),
    };

    if (UNDER_ASAN)
        fprintf(stderr, "test_task: built with ASan: RLIMIT_AS is not set, the "
                        "rlimit_as assertions are skipped\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
