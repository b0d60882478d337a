/*
 * test_runner.c - unit tests of librebound, the durable runner, through its
 * public API only: rb_step() replay and persistence, failed tries and their
 * context, the global cache (with single flight across real child processes
 * and owners killed with SIGKILL), attempts, parking, names, store errors
 * (foreign, damaged, newer and full stores) and the reading calls. Every test
 * works on a real SQLite store in its own temp folder.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE /* unshare() for the private tmpfs of the disk-full test */

#include <rebound/rebound.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

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

/* ---- fixture: a temp folder per test ------------------------------------ */

struct fix {
    char root[PATH_MAX];  /* the temp folder, removed after the test */
    char store[PATH_MAX]; /* root/store: the store folder (created by rebound) */
};

static int fix_setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");

    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "%s/rb_runner_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    pathf(f->store, sizeof(f->store), "%s/store", f->root);
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

    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- small helpers -------------------------------------------------------- */

static void path_join(char *out, size_t size, const char *a, const char *b)
{
    pathf(out, size, "%s/%s", a, b);
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

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
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

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void blob_file(const char *store, const char *hash, char *out, size_t size)
{
    pathf(out, size, "%s/blobs/%.2s/%s", store, hash, hash + 2);
}

static struct rb_store *open_store(const char *dir, const struct rb_store_opts *opts)
{
    struct rb_store *s = NULL;
    struct rb_error err;
    enum rb_err rc = rb_store_open(dir, opts, &s, &err);

    if (rc != RB_OK)
        fail_msg("rb_store_open('%s'): %s: %s", dir, rb_err_name(rc), err.message);
    return s;
}

static struct rb_run *open_run(struct rb_store *s, const char *id, unsigned flags)
{
    struct rb_run_opts o = {0};
    struct rb_run *r = NULL;
    struct rb_error err;
    enum rb_err rc;

    o.flags = flags;
    rc = rb_run_open(s, id, &o, &r, &err);
    if (rc != RB_OK)
        fail_msg("rb_run_open('%s'): %s: %s", id, rb_err_name(rc), err.message);
    return r;
}

/* ---- step functions --------------------------------------------------------- */

/* Emits fixed bytes and counts its calls. */
struct emit {
    const void *data; /* output bytes */
    size_t len;       /* their count */
    int calls;        /* times the function ran */
    int last_attempt; /* ctx->attempt of the last call */
};

static enum rb_err fn_emit(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    struct emit *e = arg;

    (void)err;
    e->calls++;
    e->last_attempt = ctx->attempt;
    return rb_buf_append(out, e->data, e->len);
}

/* Fails `fail_times` times with a message, then emits "recovered". Keeps
 * what the context said on each call. */
struct flaky {
    int fail_times;       /* failures before success */
    int calls;            /* times run */
    int seen_tries[8];    /* ctx->tries per call */
    int seen_attempt[8];  /* ctx->attempt per call */
    char *seen_error[8];  /* ctx->last_error per call (copied), or NULL */
    const char *message;  /* failure message */
    int write_before_err; /* write junk into out before failing */
};

static enum rb_err fn_flaky(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                            struct rb_error *err)
{
    struct flaky *f = arg;
    int i = f->calls++;

    if (i < 8) {
        f->seen_tries[i] = ctx->tries;
        f->seen_attempt[i] = ctx->attempt;
        f->seen_error[i] = ctx->last_error ? strdup(ctx->last_error) : NULL;
    }
    if (i < f->fail_times) {
        if (f->write_before_err)
            rb_buf_append(out, "partial", 7);
        err->code = RB_ESTEP;
        snprintf(err->message, sizeof(err->message), "%s", f->message);
        return RB_ESTEP;
    }
    return rb_buf_append(out, "recovered", 9);
}

static void flaky_release(struct flaky *f)
{
    int i;

    for (i = 0; i < 8; i++)
        free(f->seen_error[i]);
}

/* Never to be called. */
static enum rb_err fn_never(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                            struct rb_error *err)
{
    int *called = arg;

    (void)ctx;
    (void)out;
    (void)err;
    (*called)++;
    return rb_buf_append(out, "should not run", 14);
}

/* ---- collecting what the reading calls give ------------------------------ */

#define MAX_RECS 16

struct rec_copy {
    char key[RB_NAME_MAX + 1];
    int64_t seq;
    char kind[32];
    char status[16];
    int attempt;
    int tries;
    char input_hash[RB_HASH_HEX_LEN + 1];
    char output_hash[RB_HASH_HEX_LEN + 1]; /* "" when NULL */
    int inline_output;                     /* output was not NULL */
    struct rb_buf output;                  /* via rb_store_read_output */
    size_t output_len;
    int cached;
    int64_t start_mono, end_mono, start_wall, end_wall;
    char *error; /* copy, or NULL */
    char *meta;  /* copy, or NULL */
    enum rb_err read_rc;
};

struct recs {
    struct rb_store *store;
    int n;
    struct rec_copy r[MAX_RECS];
};

static int collect_step(void *arg, const struct rb_step_record *rec)
{
    struct recs *l = arg;
    struct rec_copy *c;

    if (l->n == MAX_RECS)
        return 1;
    c = &l->r[l->n++];
    snprintf(c->key, sizeof(c->key), "%s", rec->key);
    c->seq = rec->seq;
    snprintf(c->kind, sizeof(c->kind), "%s", rec->kind);
    snprintf(c->status, sizeof(c->status), "%s", rec->status);
    c->attempt = rec->attempt;
    c->tries = rec->tries;
    snprintf(c->input_hash, sizeof(c->input_hash), "%s", rec->input_hash);
    snprintf(c->output_hash, sizeof(c->output_hash), "%s",
             rec->output_hash ? rec->output_hash : "");
    c->inline_output = rec->output != NULL;
    c->output_len = rec->output_len;
    c->cached = rec->cached;
    c->start_mono = rec->start_mono_ns;
    c->end_mono = rec->end_mono_ns;
    c->start_wall = rec->start_wall_ms;
    c->end_wall = rec->end_wall_ms;
    c->error = rec->error ? strdup(rec->error) : NULL;
    c->meta = rec->meta ? strdup(rec->meta) : NULL;
    rb_buf_init(&c->output);
    c->read_rc = RB_OK;
    if (rec->output_hash)
        c->read_rc = rb_store_read_output(l->store, rec, &c->output, NULL);
    return 0;
}

static void recs_release(struct recs *l)
{
    int i;

    for (i = 0; i < l->n; i++) {
        rb_buf_release(&l->r[i].output);
        free(l->r[i].error);
        free(l->r[i].meta);
    }
    l->n = 0;
}

static void read_log(struct rb_store *s, const char *run_id, struct recs *l)
{
    struct rb_error err;
    enum rb_err rc;

    memset(l, 0, sizeof(*l));
    l->store = s;
    rc = rb_store_read_log(s, run_id, collect_step, l, &err);
    if (rc != RB_OK)
        fail_msg("rb_store_read_log('%s'): %s", run_id, err.message);
}

#define MAX_ATT 8

struct atts {
    int n;
    struct rb_attempt a[MAX_ATT]; /* detail copied */
};

static int collect_attempt(void *arg, const struct rb_attempt *a)
{
    struct atts *l = arg;

    if (l->n == MAX_ATT)
        return 1;
    l->a[l->n] = *a;
    l->a[l->n].detail = a->detail ? strdup(a->detail) : NULL;
    l->n++;
    return 0;
}

static void atts_release(struct atts *l)
{
    int i;

    for (i = 0; i < l->n; i++)
        rb_attempt_release(&l->a[i]);
    l->n = 0;
}

#define MAX_RUNS 8

struct runs {
    int n;
    char id[MAX_RUNS][64];
    char status[MAX_RUNS][16];
    int64_t steps[MAX_RUNS], failed[MAX_RUNS];
    int attempts[MAX_RUNS];
};

static int collect_run(void *arg, const struct rb_run_summary *r)
{
    struct runs *l = arg;

    if (l->n == MAX_RUNS)
        return 1;
    snprintf(l->id[l->n], sizeof(l->id[0]), "%s", r->run_id);
    snprintf(l->status[l->n], sizeof(l->status[0]), "%s", r->status);
    l->steps[l->n] = r->steps;
    l->failed[l->n] = r->failed;
    l->attempts[l->n] = r->attempts;
    l->n++;
    return 0;
}

static int find_run(const struct runs *l, const char *id)
{
    int i;

    for (i = 0; i < l->n; i++)
        if (strcmp(l->id[i], id) == 0)
            return i;
    return -1;
}

/* ---- rb_step: execute, commit, replay --------------------------------------- */

static void test_step_exec_then_replay(void **state)
{
    struct fix *fx = *state;
    static const unsigned char alpha[] = {'a', 'l', 0, 'p', 'h', 0, 'a'};
    struct emit ea = {alpha, sizeof(alpha), 0, 0};
    struct emit eb = {"", 0, 0, 0};
    struct emit ec = {"{\"c\":3}", 7, 0, 0};
    struct emit ed = {"d", 1, 0, 0};
    char want[RB_HASH_HEX_LEN + 1];
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "run one", 0);

    rb_buf_init(&out);
    rb_buf_append(&out, "previous contents", 17);
    assert_int_equal(rb_run_attempt(r), 1);
    assert_string_equal(rb_run_id(r), "run one");

    /* First call: executes and commits. */
    assert_int_equal(rb_step(r, "a", NULL, fn_emit, &ea, &out, &info, &err), RB_OK);
    assert_int_equal(ea.calls, 1);
    assert_int_equal(ea.last_attempt, 1);
    assert_int_equal(out.len, sizeof(alpha));
    assert_memory_equal(out.data, alpha, sizeof(alpha));
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 1);
    assert_int_equal(info.attempt, 1);
    rb_hash_hex(alpha, sizeof(alpha), want);
    assert_string_equal(info.output_hash, want);

    /* Second call: replayed, not run. */
    rb_buf_release(&out);
    memset(&info, 0, sizeof(info));
    assert_int_equal(rb_step(r, "a", NULL, fn_emit, &ea, &out, &info, &err), RB_OK);
    assert_int_equal(ea.calls, 1);
    assert_int_equal(out.len, sizeof(alpha));
    assert_memory_equal(out.data, alpha, sizeof(alpha));
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(info.seq, 1);
    assert_string_equal(info.output_hash, want);

    /* An empty output is an output, still NUL-terminated. */
    assert_int_equal(rb_step(r, "b", NULL, fn_emit, &eb, &out, &info, &err), RB_OK);
    assert_int_equal(out.len, 0);
    assert_non_null(out.data);
    assert_int_equal(out.data[0], 0);
    assert_int_equal(info.seq, 2);
    rb_hash_hex("", 0, want);
    assert_string_equal(info.output_hash, want);

    assert_int_equal(rb_step(r, "c", NULL, fn_emit, &ec, &out, &info, &err), RB_OK);
    assert_int_equal(info.seq, 3);
    assert_string_equal((char *)out.data, "{\"c\":3}");

    /* A new process: close everything, reopen, a new attempt. */
    rb_run_close(r);
    rb_store_close(s);
    s = open_store(fx->store, NULL);
    r = open_run(s, "run one", 0);
    assert_int_equal(rb_run_attempt(r), 2);

    assert_int_equal(rb_step(r, "a", NULL, fn_emit, &ea, &out, &info, &err), RB_OK);
    assert_int_equal(ea.calls, 1);
    assert_int_equal(out.len, sizeof(alpha));
    assert_memory_equal(out.data, alpha, sizeof(alpha));
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(info.seq, 1);
    assert_int_equal(info.attempt, 1);

    rb_buf_append(&out, "junk", 4);
    assert_int_equal(rb_step(r, "b", NULL, fn_emit, &eb, &out, &info, &err), RB_OK);
    assert_int_equal(eb.calls, 1);
    assert_int_equal(out.len, 0);
    assert_non_null(out.data);
    assert_int_equal(out.data[0], 0);
    assert_int_equal(info.source, RB_FROM_LOG);

    assert_int_equal(rb_step(r, "c", NULL, fn_emit, &ec, &out, &info, &err), RB_OK);
    assert_int_equal(ec.calls, 1);
    assert_int_equal(info.seq, 3);

    assert_int_equal(rb_step(r, "d", NULL, fn_emit, &ed, &out, &info, &err), RB_OK);
    assert_int_equal(ed.calls, 1);
    assert_int_equal(ed.last_attempt, 2);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 4);
    assert_int_equal(info.attempt, 2);
    assert_string_equal((char *)out.data, "d");

    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

static void test_step_info_and_opts_optional(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"x", 1, 0, 0};
    struct rb_buf out;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_string_equal((char *)out.data, "x");
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* Outputs above inline_max go to the blob store and come back exact. */
static void test_step_large_output_blob(void **state)
{
    struct fix *fx = *state;
    size_t big_len = 100000, i;
    unsigned char *big = malloc(big_len);
    unsigned char edge[4096];
    struct emit eb, ee, es;
    struct rb_step_info info, info_edge;
    struct rb_error err;
    struct rb_buf out, disk;
    struct recs log;
    char path[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "big", 0);

    assert_non_null(big);
    for (i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 7 % 251); /* holds NULs */
    memset(edge, 'e', sizeof(edge));
    eb = (struct emit){big, big_len, 0, 0};
    ee = (struct emit){edge, sizeof(edge), 0, 0};
    es = (struct emit){big, 4097, 0, 0};
    rb_buf_init(&out);
    rb_buf_init(&disk);

    assert_int_equal(rb_step(r, "big", NULL, fn_emit, &eb, &out, &info, &err), RB_OK);
    assert_int_equal(out.len, big_len);
    assert_memory_equal(out.data, big, big_len);
    /* The blob file is there, named by the hash, holding the bytes. */
    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_int_equal(slurp(path, &disk), 0);
    assert_int_equal(disk.len, big_len);
    assert_memory_equal(disk.data, big, big_len);

    /* Exactly the default inline_max (4096) stays inline; one byte more does not. */
    assert_int_equal(rb_step(r, "edge", NULL, fn_emit, &ee, &out, &info_edge, &err),
                     RB_OK);
    assert_int_equal(rb_step(r, "edge+1", NULL, fn_emit, &es, &out, NULL, &err), RB_OK);

    rb_run_close(r);
    rb_store_close(s);

    s = open_store(fx->store, NULL);
    r = open_run(s, "big", 0);
    rb_buf_release(&out);
    assert_int_equal(rb_step(r, "big", NULL, fn_emit, &eb, &out, &info, &err), RB_OK);
    assert_int_equal(eb.calls, 1);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(out.len, big_len);
    assert_memory_equal(out.data, big, big_len);

    read_log(s, "big", &log);
    assert_int_equal(log.n, 3);
    assert_string_equal(log.r[0].key, "big");
    assert_false(log.r[0].inline_output);
    assert_int_equal(log.r[0].output_len, big_len);
    assert_int_equal(log.r[0].read_rc, RB_OK);
    assert_int_equal(log.r[0].output.len, big_len);
    assert_memory_equal(log.r[0].output.data, big, big_len);
    assert_string_equal(log.r[1].key, "edge");
    assert_true(log.r[1].inline_output);
    assert_int_equal(log.r[1].output_len, 4096);
    assert_memory_equal(log.r[1].output.data, edge, 4096);
    assert_string_equal(log.r[2].key, "edge+1");
    assert_false(log.r[2].inline_output);
    assert_int_equal(log.r[2].output.len, 4097);
    assert_memory_equal(log.r[2].output.data, big, 4097);
    recs_release(&log);

    /* rb_store_read_blob gives the same bytes. */
    rb_buf_release(&disk);
    assert_int_equal(rb_store_read_blob(s, info.output_hash, &disk, &err), RB_OK);
    assert_int_equal(disk.len, big_len);
    assert_memory_equal(disk.data, big, big_len);

    rb_buf_release(&disk);
    rb_buf_release(&out);
    free(big);
    rb_run_close(r);
    rb_store_close(s);
}

/* A smaller inline_max given at open moves smaller outputs to blobs. */
static void test_step_inline_max_option(void **state)
{
    struct fix *fx = *state;
    struct rb_store_opts so = {0};
    struct emit e = {"0123456789abcdef0123", 20, 0, 0};
    struct rb_step_info info;
    struct rb_buf out;
    struct recs log;
    char path[PATH_MAX];
    struct rb_store *s;
    struct rb_run *r;

    so.inline_max = 16;
    s = open_store(fx->store, &so);
    r = open_run(s, "r", 0);
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, &info, NULL), RB_OK);
    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_int_equal(access(path, F_OK), 0);
    read_log(s, "r", &log);
    assert_int_equal(log.n, 1);
    assert_false(log.r[0].inline_output);
    assert_int_equal(log.r[0].output.len, 20);
    assert_memory_equal(log.r[0].output.data, e.data, 20);
    recs_release(&log);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* A step function may run steps itself: the inner one commits first. */
struct nested {
    struct emit inner; /* the inner step's function */
    int calls;         /* outer calls */
};

static enum rb_err fn_outer(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                            struct rb_error *err)
{
    struct nested *n = arg;
    struct rb_buf in;
    enum rb_err rc;

    n->calls++;
    rb_buf_init(&in);
    rc = rb_step(ctx->run, "inner", NULL, fn_emit, &n->inner, &in, NULL, err);
    if (rc == RB_OK)
        rc = rb_buf_append(out, in.data, in.len);
    if (rc == RB_OK)
        rc = rb_buf_append(out, "!", 1);
    rb_buf_release(&in);
    return rc;
}

static void test_step_nested(void **state)
{
    struct fix *fx = *state;
    struct nested n = {{"inner", 5, 0, 0}, 0};
    struct rb_step_info info;
    struct rb_buf out;
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "nested", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "outer", NULL, fn_outer, &n, &out, &info, NULL), RB_OK);
    assert_string_equal((char *)out.data, "inner!");
    assert_int_equal(info.seq, 2);
    rb_run_close(r);
    r = open_run(s, "nested", 0);
    assert_int_equal(rb_step(r, "outer", NULL, fn_outer, &n, &out, &info, NULL), RB_OK);
    assert_int_equal(n.calls, 1);
    assert_int_equal(n.inner.calls, 1);
    read_log(s, "nested", &log);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.r[0].key, "inner");
    assert_string_equal(log.r[1].key, "outer");
    recs_release(&log);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* ---- failed steps ------------------------------------------------------------- */

static void test_step_failure_then_retry(void **state)
{
    struct fix *fx = *state;
    struct flaky fl = {0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    struct recs log;
    struct runs runs = {0};
    json_t *j;
    json_error_t jerr;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "flaky", 0);

    fl.fail_times = 2;
    fl.message = "upstream said \"503\" twice";
    fl.write_before_err = 1;
    rb_buf_init(&out);
    rb_buf_append(&out, "keep me", 7);
    info.seq = -77;

    assert_int_equal(rb_step(r, "call", NULL, fn_flaky, &fl, &out, &info, &err),
                     RB_ESTEP);
    assert_int_equal(err.code, RB_ESTEP);
    assert_non_null(strstr(err.message, "upstream said"));
    /* out and info are unaltered. */
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "keep me", 7);
    assert_int_equal(info.seq, -77);
    assert_int_equal(fl.seen_tries[0], 0);
    assert_null(fl.seen_error[0]);

    /* Nothing committed, the failure recorded. */
    read_log(s, "flaky", &log);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.r[0].status, "failed");
    assert_int_equal(log.r[0].seq, 0);
    assert_int_equal(log.r[0].tries, 1);
    assert_string_equal(log.r[0].output_hash, "");
    assert_non_null(log.r[0].error);
    assert_non_null(strstr(log.r[0].error, "upstream said"));
    recs_release(&log);
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.n, 1);
    assert_int_equal(runs.steps[0], 0);
    assert_int_equal(runs.failed[0], 1);

    /* The second try sees one try before and the error as JSON. */
    assert_int_equal(rb_step(r, "call", NULL, fn_flaky, &fl, &out, &info, &err),
                     RB_ESTEP);
    assert_int_equal(fl.seen_tries[1], 1);
    assert_non_null(fl.seen_error[1]);
    j = json_loads(fl.seen_error[1], 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "upstream said \"503\" twice");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "RB_ESTEP");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "try")), 1);
    json_decref(j);
    assert_memory_equal(out.data, "keep me", 7);

    /* A new attempt: the failure count and context survive. */
    rb_run_abandon(r);
    rb_store_close(s);
    s = open_store(fx->store, NULL);
    r = open_run(s, "flaky", 0);
    assert_int_equal(rb_step(r, "call", NULL, fn_flaky, &fl, &out, &info, &err), RB_OK);
    assert_int_equal(fl.calls, 3);
    assert_int_equal(fl.seen_tries[2], 2);
    assert_int_equal(fl.seen_attempt[2], 2);
    assert_non_null(fl.seen_error[2]);
    j = json_loads(fl.seen_error[2], 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "try")), 2);
    json_decref(j);
    assert_string_equal((char *)out.data, "recovered");
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 1);
    assert_int_equal(info.attempt, 2);

    /* Committed now: replayed. */
    assert_int_equal(rb_step(r, "call", NULL, fn_flaky, &fl, &out, &info, &err), RB_OK);
    assert_int_equal(fl.calls, 3);
    assert_int_equal(info.source, RB_FROM_LOG);

    read_log(s, "flaky", &log);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.r[0].status, "committed");
    assert_int_equal(log.r[0].tries, 3);
    assert_int_equal(log.r[0].attempt, 2);
    assert_string_equal((char *)log.r[0].output.data, "recovered");
    recs_release(&log);
    runs.n = 0;
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.steps[0], 1);
    assert_int_equal(runs.failed[0], 0);

    flaky_release(&fl);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* A step failing without a message still gets a clear one. */
static enum rb_err fn_fail_silent(void *arg, const struct rb_step_ctx *ctx,
                                  struct rb_buf *out, struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)out;
    (void)err;
    return RB_ESTEP;
}

static void test_step_failure_without_message(void **state)
{
    struct fix *fx = *state;
    struct rb_error err;
    struct rb_buf out;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    rb_buf_init(&out);
    assert_int_equal(
        rb_step(r, "quiet step", NULL, fn_fail_silent, NULL, &out, NULL, &err), RB_ESTEP);
    assert_int_equal(err.code, RB_ESTEP);
    assert_non_null(strstr(err.message, "'quiet step'"));
    assert_null(out.data);
    rb_run_close(r);
    rb_store_close(s);
}

/* ---- global cache --------------------------------------------------------------- */

static struct rb_step_opts cached(const char *kind, const char *input,
                                  const char *version)
{
    struct rb_step_opts o = {0};

    o.kind = kind;
    o.input = input;
    o.input_len = input ? strlen(input) : 0;
    o.version = version;
    o.cache = RB_CACHE_ON;
    return o;
}

static void test_cache_across_runs(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"the answer is 42", 16, 0, 0};
    struct rb_step_opts o = cached("llm", "what is the answer?", "model-1");
    struct rb_step_info info, first;
    struct rb_error err;
    struct rb_buf out;
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *a = open_run(s, "run a", 0);
    struct rb_run *b = open_run(s, "run b", 0);
    struct rb_run *c = open_run(s, "run c", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(a, "ask", &o, fn_emit, &e, &out, &first, &err), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(first.source, RB_FROM_EXEC);

    /* Another run, another key, same call: served from the cache. */
    rb_buf_release(&out);
    assert_int_equal(rb_step(b, "question", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_int_equal(info.seq, 1);
    assert_string_equal(info.output_hash, first.output_hash);
    assert_string_equal((char *)out.data, "the answer is 42");

    /* And now it is in b's log: replayed from there. */
    assert_int_equal(rb_step(b, "question", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_LOG);
    read_log(s, "run b", &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.r[0].cached, 1);
    assert_string_equal((char *)log.r[0].output.data, "the answer is 42");
    recs_release(&log);
    read_log(s, "run a", &log);
    assert_int_equal(log.r[0].cached, 0);
    recs_release(&log);

    /* Another version, kind or input: executes. */
    o = cached("llm", "what is the answer?", "model-2");
    assert_int_equal(rb_step(c, "v2", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(info.source, RB_FROM_EXEC);
    o = cached("tool", "what is the answer?", "model-1");
    assert_int_equal(rb_step(c, "tool", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 3);
    o = cached("llm", "what is the answer??", "model-1");
    assert_int_equal(rb_step(c, "input", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 4);
    /* The default version is "" and the default kind "task": a separate entry. */
    o = cached(NULL, "what is the answer?", NULL);
    assert_int_equal(rb_step(c, "defaults", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 5);

    /* RB_CACHE_OFF never uses it, even for an identical call. */
    o = cached("llm", "what is the answer?", "model-1");
    o.cache = RB_CACHE_OFF;
    assert_int_equal(rb_step(c, "off", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 6);
    assert_int_equal(info.source, RB_FROM_EXEC);

    /* Back on: served. */
    o.cache = RB_CACHE_ON;
    assert_int_equal(rb_step(c, "on", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 6);
    assert_int_equal(info.source, RB_FROM_CACHE);

    rb_buf_release(&out);
    rb_run_close(a);
    rb_run_close(b);
    rb_run_close(c);
    rb_store_close(s);
}

/* The cache also serves large (blob) outputs and survives reopening. */
static void test_cache_large_output(void **state)
{
    struct fix *fx = *state;
    size_t n = 50000, i;
    unsigned char *big = malloc(n);
    struct emit e;
    struct rb_step_opts o = cached("llm", "long answer please", "v");
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_store *s;
    struct rb_run *r;

    assert_non_null(big);
    for (i = 0; i < n; i++)
        big[i] = (unsigned char)(i % 256);
    e = (struct emit){big, n, 0, 0};
    rb_buf_init(&out);
    s = open_store(fx->store, NULL);
    r = open_run(s, "one", 0);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, NULL, NULL), RB_OK);
    rb_run_close(r);
    rb_store_close(s);

    s = open_store(fx->store, NULL);
    r = open_run(s, "two", 0);
    rb_buf_release(&out);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, big, n);
    assert_int_equal(rb_store_check(s, NULL), RB_OK);
    rb_buf_release(&out);
    free(big);
    rb_run_close(r);
    rb_store_close(s);
}

/* A failed cached step releases its claim: the next caller executes. */
static void test_cache_failure_releases_claim(void **state)
{
    struct fix *fx = *state;
    struct flaky fl = {0};
    struct emit e = {"fine", 4, 0, 0};
    struct rb_step_opts o = cached("tool", "flaky input", "1");
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *a = open_run(s, "a", 0);
    struct rb_run *b = open_run(s, "b", 0);

    fl.fail_times = 1;
    fl.message = "tool broke";
    rb_buf_init(&out);
    o.cache_wait_ms = 2000;
    assert_int_equal(rb_step(a, "k", &o, fn_flaky, &fl, &out, NULL, &err), RB_ESTEP);
    assert_int_equal(rb_step(b, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_EXEC);
    /* a's retry is served from the value b computed. */
    assert_int_equal(rb_step(a, "k", &o, fn_flaky, &fl, &out, &info, &err), RB_OK);
    assert_int_equal(fl.calls, 1);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_string_equal((char *)out.data, "fine");
    flaky_release(&fl);
    rb_buf_release(&out);
    rb_run_close(a);
    rb_run_close(b);
    rb_store_close(s);
}

/* A cache entry whose blob is gone is recomputed, not an error. */
static void test_cache_blob_missing(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"cached value", 12, 0, 0};
    struct rb_step_opts o = cached("llm", "prompt", "v1");
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    char path[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *a = open_run(s, "a", 0);
    struct rb_run *b = open_run(s, "b", 0);
    struct rb_run *c = open_run(s, "c", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(a, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_int_equal(unlink(path), 0);

    rb_buf_release(&out);
    assert_int_equal(rb_step(b, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_string_equal((char *)out.data, "cached value");
    assert_int_equal(access(path, F_OK), 0);

    /* Repaired: the next run is served again. */
    assert_int_equal(rb_step(c, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(info.source, RB_FROM_CACHE);

    /* A damaged blob (wrong content) is treated the same way. */
    write_file(path, "tampered", 8);
    assert_int_equal(rb_step(c, "k2", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 3);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_string_equal((char *)out.data, "cached value");

    rb_buf_release(&out);
    rb_run_close(a);
    rb_run_close(b);
    rb_run_close(c);
    rb_store_close(s);
}

/* ---- child processes ------------------------------------------------------------- */

/* In a forked child: report a failed check on stderr and exit 1. The child
 * must never return into cmocka. */
static void child_check(int ok, const char *what, int line)
{
    if (ok)
        return;
    fprintf(stderr, "child %ld: check failed at line %d: %s\n", (long)getpid(), line,
            what);
    _exit(1);
}

#define CHILD_CHECK(c) child_check((c) != 0, #c, __LINE__)

/* Ends a child that passed its checks: exit(), not _exit(), so that under
 * the sanitizers the leak check runs in the child as well. */
static void child_done(int code)
{
    exit(code);
}

/* fork(), with stdio flushed first so the child does not repeat the
 * parent's buffered output. */
static pid_t fork_child(void)
{
    fflush(NULL);
    return fork();
}

/* Waits for pid up to timeout_ms; kills it if still running. Returns the wait
 * status, or -1 when it had to be killed. */
static int reap(pid_t pid, int timeout_ms)
{
    int status = 0, waited;

    for (waited = 0; waited < timeout_ms; waited += 10) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        if (w < 0 && errno != EINTR)
            return -1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* Reaps all n children (each within timeout_ms) into status[], before the
 * caller asserts anything: a failed test must not leave children running in
 * a folder its teardown removes. */
static void reap_all(const pid_t *pids, int n, int *status, int timeout_ms)
{
    int i;

    for (i = 0; i < n; i++)
        status[i] = reap(pids[i], timeout_ms);
}

static void assert_exit0(int status)
{
    assert_true(status != -1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child ended with status 0x%x", status);
}

/* A step that takes ~200 ms, appending a line per execution to a file. */
struct slow {
    const char *lines; /* the file of executions */
    int notify_fd;     /* if > 0: write one byte here when started */
    int hang;          /* do not return (until killed, at most 30 s) */
};

static enum rb_err fn_slow(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    struct slow *sl = arg;
    char line[64];
    int fd, n, i;

    (void)ctx;
    (void)err;
    fd = open(sl->lines, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
        if (write(fd, line, (size_t)n) != n)
            n = -1;
        close(fd);
    }
    if (sl->notify_fd > 0 && write(sl->notify_fd, "s", 1) != 1)
        return RB_EIO;
    for (i = 0; sl->hang && i < 3000; i++)
        sleep_ms(10);
    sleep_ms(200);
    return rb_buf_append(out, "single flight result", 20);
}

/* Child body: opens its own store and run, waits for the barrier, calls the
 * shared cached step and writes its output to out_path. Exits 10 + source. */
static void child_cached_step(const char *store_dir, const char *run_id, int barrier,
                              const char *lines, const char *out_path)
{
    struct rb_step_opts o = cached("llm", "shared prompt", "v1");
    struct slow sl = {lines, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    char c;
    int fd;

    alarm(60);
    CHILD_CHECK(rb_store_open(store_dir, NULL, &s, &err) == RB_OK);
    CHILD_CHECK(rb_run_open(s, run_id, NULL, &r, &err) == RB_OK);
    while (read(barrier, &c, 1) < 0 && errno == EINTR)
        ;
    rb_buf_init(&out);
    o.cache_wait_ms = 30000;
    if (rb_step(r, "shared", &o, fn_slow, &sl, &out, &info, &err) != RB_OK) {
        fprintf(stderr, "child: rb_step: %s\n", err.message);
        _exit(1);
    }
    fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHILD_CHECK(fd >= 0);
    CHILD_CHECK(write(fd, out.data, out.len) == (ssize_t)out.len);
    close(fd);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(10 + (int)info.source);
}

#define N_FLIGHT 4

static void test_cache_single_flight_processes(void **state)
{
    struct fix *fx = *state;
    char lines[PATH_MAX], outp[N_FLIGHT][PATH_MAX], run_id[32];
    pid_t pids[N_FLIGHT];
    int barrier[2], i, status[N_FLIGHT], execs = 0, served = 0;
    struct rb_buf got;
    struct rb_store *s = open_store(fx->store, NULL);

    rb_store_close(s); /* created; the children open their own handles */
    path_join(lines, sizeof(lines), fx->root, "executions");
    assert_int_equal(pipe(barrier), 0);
    for (i = 0; i < N_FLIGHT; i++) {
        pathf(outp[i], sizeof(outp[i]), "%s/out.%d", fx->root, i);
        snprintf(run_id, sizeof(run_id), "worker %d", i);
        pids[i] = fork_child();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(barrier[1]);
            child_cached_step(fx->store, run_id, barrier[0], lines, outp[i]);
        }
    }
    close(barrier[0]);
    sleep_ms(100); /* let them reach the barrier; correctness does not depend on it */
    close(barrier[1]);
    reap_all(pids, N_FLIGHT, status, 60000);
    for (i = 0; i < N_FLIGHT; i++) {
        assert_true(status[i] != -1);
        assert_true(WIFEXITED(status[i]));
        if (WEXITSTATUS(status[i]) == 10 + RB_FROM_EXEC)
            execs++;
        else if (WEXITSTATUS(status[i]) == 10 + RB_FROM_CACHE)
            served++;
        else
            fail_msg("worker %d exited %d", i, WEXITSTATUS(status[i]));
    }
    assert_int_equal(count_lines(lines), 1);
    assert_int_equal(execs, 1);
    assert_int_equal(served, N_FLIGHT - 1);
    for (i = 0; i < N_FLIGHT; i++) {
        rb_buf_init(&got);
        assert_int_equal(slurp(outp[i], &got), 0);
        assert_int_equal(got.len, 20);
        assert_memory_equal(got.data, "single flight result", 20);
        rb_buf_release(&got);
    }
}

/* The same, with all processes in the same run and the same step (joined
 * attempt, as `rebound step` does): one execution, one log row. */
static void child_joined_step(const char *store_dir, int barrier, const char *lines)
{
    struct rb_run_opts ro = {0};
    struct rb_step_opts o = cached("llm", "joined prompt", "v1");
    struct slow sl = {lines, 0, 0};
    struct rb_error err;
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    char c;

    alarm(60);
    ro.flags = RB_RUN_JOIN;
    CHILD_CHECK(rb_store_open(store_dir, NULL, &s, &err) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "joined", &ro, &r, &err) == RB_OK);
    while (read(barrier, &c, 1) < 0 && errno == EINTR)
        ;
    rb_buf_init(&out);
    o.cache_wait_ms = 30000;
    CHILD_CHECK(rb_step(r, "same step", &o, fn_slow, &sl, &out, NULL, &err) == RB_OK);
    CHILD_CHECK(out.len == 20 && memcmp(out.data, "single flight result", 20) == 0);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(0);
}

static void test_cache_single_flight_same_run(void **state)
{
    struct fix *fx = *state;
    char lines[PATH_MAX];
    pid_t pids[N_FLIGHT];
    int barrier[2], i, status[N_FLIGHT];
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);

    rb_store_close(s);
    path_join(lines, sizeof(lines), fx->root, "executions");
    assert_int_equal(pipe(barrier), 0);
    for (i = 0; i < N_FLIGHT; i++) {
        pids[i] = fork_child();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(barrier[1]);
            child_joined_step(fx->store, barrier[0], lines);
        }
    }
    close(barrier[0]);
    sleep_ms(100);
    close(barrier[1]);
    reap_all(pids, N_FLIGHT, status, 60000);
    for (i = 0; i < N_FLIGHT; i++)
        assert_exit0(status[i]);
    assert_int_equal(count_lines(lines), 1);
    s = open_store(fx->store, NULL);
    read_log(s, "joined", &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.r[0].seq, 1);
    assert_int_equal(log.r[0].tries, 1);
    recs_release(&log);
    rb_store_close(s);
}

/* A step whose output differs per process: its pid. */
static enum rb_err fn_pid(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                          struct rb_error *err)
{
    struct slow *sl = arg;
    char line[64];
    int fd, n;

    (void)ctx;
    (void)err;
    n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    fd = open(sl->lines, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, line, (size_t)n) != n)
        return RB_EIO;
    close(fd);
    sleep_ms(100);
    return rb_buf_append(out, line, (size_t)n);
}

/* Child body: the uncached step "race" of run "raced", joined; writes its
 * output to out_path and exits 10 + source. */
static void child_raced_step(const char *store_dir, int barrier, const char *lines,
                             const char *out_path)
{
    struct rb_run_opts ro = {0};
    struct slow sl = {lines, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    char c;
    int fd;

    alarm(60);
    ro.flags = RB_RUN_JOIN;
    CHILD_CHECK(rb_store_open(store_dir, NULL, &s, &err) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "raced", &ro, &r, &err) == RB_OK);
    while (read(barrier, &c, 1) < 0 && errno == EINTR)
        ;
    rb_buf_init(&out);
    if (rb_step(r, "race", NULL, fn_pid, &sl, &out, &info, &err) != RB_OK) {
        fprintf(stderr, "child: rb_step: %s\n", err.message);
        _exit(1);
    }
    fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHILD_CHECK(fd >= 0);
    CHILD_CHECK(write(fd, out.data, out.len) == (ssize_t)out.len);
    close(fd);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(10 + (int)info.source);
}

/* Without the cache, processes racing on the same step of the same run may
 * all execute it, but one commit wins and every one of them returns the
 * winner's output: the log never holds two answers. */
static void test_step_race_same_run(void **state)
{
    struct fix *fx = *state;
    char lines[PATH_MAX], outp[N_FLIGHT][PATH_MAX];
    pid_t pids[N_FLIGHT];
    int barrier[2], i, status[N_FLIGHT], execs = 0;
    struct rb_buf got[N_FLIGHT];
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);

    rb_store_close(s);
    path_join(lines, sizeof(lines), fx->root, "executions");
    assert_int_equal(pipe(barrier), 0);
    for (i = 0; i < N_FLIGHT; i++) {
        pathf(outp[i], sizeof(outp[i]), "%s/out.%d", fx->root, i);
        pids[i] = fork_child();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(barrier[1]);
            child_raced_step(fx->store, barrier[0], lines, outp[i]);
        }
    }
    close(barrier[0]);
    sleep_ms(100);
    close(barrier[1]);
    reap_all(pids, N_FLIGHT, status, 60000);
    for (i = 0; i < N_FLIGHT; i++) {
        assert_true(status[i] != -1 && WIFEXITED(status[i]));
        if (WEXITSTATUS(status[i]) == 10 + RB_FROM_EXEC)
            execs++;
        else if (WEXITSTATUS(status[i]) != 10 + RB_FROM_LOG)
            fail_msg("child %d exited %d", i, WEXITSTATUS(status[i]));
    }
    assert_int_equal(execs, 1);
    assert_true(count_lines(lines) >= 1);

    s = open_store(fx->store, NULL);
    read_log(s, "raced", &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.r[0].seq, 1);
    for (i = 0; i < N_FLIGHT; i++) {
        rb_buf_init(&got[i]);
        assert_int_equal(slurp(outp[i], &got[i]), 0);
        assert_int_equal(got[i].len, log.r[0].output.len);
        assert_memory_equal(got[i].data, log.r[0].output.data, got[i].len);
        rb_buf_release(&got[i]);
    }
    recs_release(&log);
    rb_store_close(s);
}

/* Child body: claims the cached call, tells the parent, and hangs in the
 * step function until killed. */
static void child_claim_and_hang(const char *store_dir, const char *lines, int notify)
{
    struct rb_step_opts o = cached("llm", "owner dies", "v1");
    struct slow sl = {lines, notify, 1};
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;

    alarm(60);
    CHILD_CHECK(rb_store_open(store_dir, NULL, &s, NULL) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "victim", NULL, &r, NULL) == RB_OK);
    rb_buf_init(&out);
    rb_step(r, "k", &o, fn_slow, &sl, &out, NULL, NULL);
    _exit(3); /* not reached before the kill */
}

static pid_t start_owner(struct fix *fx, const char *lines)
{
    int p[2];
    pid_t pid;
    struct pollfd pfd;
    char c;

    assert_int_equal(pipe(p), 0);
    pid = fork_child();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_claim_and_hang(fx->store, lines, p[1]);
    }
    close(p[1]);
    pfd.fd = p[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 30000) != 1 || read(p[0], &c, 1) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the owner child did not start its step");
    }
    close(p[0]);
    return pid;
}

/* A live owner makes others wait, up to cache_wait_ms; a dead one (SIGKILL
 * mid-function) is taken over by the next caller. */
static void test_cache_owner_killed(void **state)
{
    struct fix *fx = *state;
    struct rb_step_opts o = cached("llm", "owner dies", "v1");
    struct emit e = {"taken over", 10, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    char lines[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "taker", 0);
    struct rb_run *r2 = open_run(s, "late", 0);
    pid_t pid;
    int status;

    path_join(lines, sizeof(lines), fx->root, "executions");
    pid = start_owner(fx, lines);

    /* The owner is alive and busy: a short wait gives up with RB_EBUSY. */
    rb_buf_init(&out);
    rb_buf_append(&out, "before", 6);
    o.cache_wait_ms = 200;
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, &err), RB_EBUSY);
    assert_int_equal(e.calls, 0);
    assert_int_equal(out.len, 6);
    assert_non_null(strstr(err.message, "200 ms"));

    kill(pid, SIGKILL);
    status = reap(pid, 10000);
    assert_true(status != -1 && WIFSIGNALED(status));

    o.cache_wait_ms = 20000;
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_string_equal((char *)out.data, "taken over");
    assert_int_equal(count_lines(lines), 1);

    assert_int_equal(rb_step(r2, "k", &o, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_CACHE);

    rb_buf_release(&out);
    rb_run_close(r);
    rb_run_close(r2);
    rb_store_close(s);
}

/* 1 when process pid is a zombie (dead, not reaped yet). */
static int is_zombie(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

/* An owner killed but not reaped yet (a zombie, as when the caller is its
 * parent) is dead too: it can never finish. */
static void test_cache_owner_zombie(void **state)
{
    struct fix *fx = *state;
    struct rb_step_opts o = cached("llm", "owner dies", "v1");
    struct emit e = {"taken over", 10, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    char lines[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "taker", 0);
    pid_t pid;
    int i, status;
    enum rb_err rc;

    path_join(lines, sizeof(lines), fx->root, "executions");
    pid = start_owner(fx, lines);
    kill(pid, SIGKILL);
    for (i = 0; i < 1000 && !is_zombie(pid); i++)
        sleep_ms(10);
    assert_true(is_zombie(pid));

    rb_buf_init(&out);
    o.cache_wait_ms = 3000;
    rc = rb_step(r, "k", &o, fn_emit, &e, &out, &info, &err);
    status = reap(pid, 10000);
    assert_true(status != -1 && WIFSIGNALED(status));
    if (rc != RB_OK)
        fail_msg("rb_step with a zombie owner: %s: %s", rb_err_name(rc), err.message);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_EXEC);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* Several processes opening a brand-new store at once all succeed. */
static void child_first_open(const char *store_dir, int barrier, int i)
{
    char run_id[32];
    struct emit e = {"x", 1, 0, 0};
    struct rb_error err;
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    char c;

    alarm(60);
    snprintf(run_id, sizeof(run_id), "first %d", i);
    while (read(barrier, &c, 1) < 0 && errno == EINTR)
        ;
    if (rb_store_open(store_dir, NULL, &s, &err) != RB_OK) {
        fprintf(stderr, "child %d: %s (cause %d)\n", i, err.message, err.cause);
        _exit(1);
    }
    CHILD_CHECK(rb_run_open(s, run_id, NULL, &r, &err) == RB_OK);
    rb_buf_init(&out);
    CHILD_CHECK(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, &err) == RB_OK);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(0);
}

/* The race is short: a few rounds, each on a new store folder. */
#define FIRST_OPEN_ROUNDS 5

static void test_store_concurrent_first_open(void **state)
{
    struct fix *fx = *state;
    char dir[PATH_MAX];
    pid_t pids[N_FLIGHT];
    int barrier[2], i, round, status[N_FLIGHT];
    struct runs runs;
    struct rb_store *s;

    for (round = 0; round < FIRST_OPEN_ROUNDS; round++) {
        pathf(dir, sizeof(dir), "%s/store%d", fx->root, round);
        assert_int_equal(pipe(barrier), 0);
        for (i = 0; i < N_FLIGHT; i++) {
            pids[i] = fork_child();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                close(barrier[1]);
                child_first_open(dir, barrier[0], i);
            }
        }
        close(barrier[0]);
        sleep_ms(20);
        close(barrier[1]);
        reap_all(pids, N_FLIGHT, status, 60000);
        for (i = 0; i < N_FLIGHT; i++)
            assert_exit0(status[i]);
        s = open_store(dir, NULL);
        memset(&runs, 0, sizeof(runs));
        assert_int_equal(rb_store_list_runs(s, collect_run, &runs, NULL), RB_OK);
        assert_int_equal(runs.n, N_FLIGHT);
        for (i = 0; i < runs.n; i++)
            assert_int_equal(runs.steps[i], 1);
        assert_int_equal(rb_store_check(s, NULL), RB_OK);
        rb_store_close(s);
    }
}

/* Threads of one process, each with its own store handle (as the header
 * says), writing the same large outputs at the same time. */
#define N_THREADS 4
#define THREAD_STEPS 25
#define THREAD_OUT 65536

struct thread_arg {
    const char *store; /* store folder */
    int id;            /* thread number */
    int failures;      /* rb_step errors and wrong outputs */
    char first_error[512];
};

/* Output THREAD_OUT bytes depending only on *arg (the step number). */
static enum rb_err fn_numbered(void *arg, const struct rb_step_ctx *ctx,
                               struct rb_buf *out, struct rb_error *err)
{
    unsigned char *b = malloc(THREAD_OUT);
    enum rb_err rc;

    (void)ctx;
    (void)err;
    if (!b)
        return RB_ENOMEM;
    memset(b, 'a' + *(int *)arg % 26, THREAD_OUT);
    memcpy(b, arg, sizeof(int));
    rc = rb_buf_append(out, b, THREAD_OUT);
    free(b);
    return rc;
}

static void *thread_steps(void *p)
{
    struct thread_arg *a = p;
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_error err;
    struct rb_buf out;
    char id[32], key[32];
    int i;

    snprintf(id, sizeof(id), "thread %d", a->id);
    if (rb_store_open(a->store, NULL, &s, &err) != RB_OK ||
        rb_run_open(s, id, NULL, &r, &err) != RB_OK) {
        a->failures++;
        snprintf(a->first_error, sizeof(a->first_error), "%s", err.message);
        rb_store_close(s);
        return NULL;
    }
    rb_buf_init(&out);
    for (i = 0; i < THREAD_STEPS; i++) {
        snprintf(key, sizeof(key), "step %d", i);
        if (rb_step(r, key, NULL, fn_numbered, &i, &out, NULL, &err) != RB_OK) {
            if (!a->failures++)
                snprintf(a->first_error, sizeof(a->first_error), "%s", err.message);
        } else if (out.len != THREAD_OUT || memcmp(out.data, &i, sizeof(i)) != 0) {
            if (!a->failures++)
                snprintf(a->first_error, sizeof(a->first_error), "wrong output");
        }
    }
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    return NULL;
}

static void test_threads_same_blobs(void **state)
{
    struct fix *fx = *state;
    struct thread_arg args[N_THREADS];
    pthread_t t[N_THREADS];
    struct rb_store *s = open_store(fx->store, NULL);
    int i;

    rb_store_close(s);
    memset(args, 0, sizeof(args));
    for (i = 0; i < N_THREADS; i++) {
        args[i].store = fx->store;
        args[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, thread_steps, &args[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (i = 0; i < N_THREADS; i++)
        if (args[i].failures)
            fail_msg("thread %d: %d failed steps, first: %s", i, args[i].failures,
                     args[i].first_error);
    s = open_store(fx->store, NULL);
    assert_int_equal(rb_store_check(s, NULL), RB_OK);
    rb_store_close(s);
}

/* ---- attempts ------------------------------------------------------------------- */

static void read_attempts(struct rb_store *s, const char *id, struct atts *l)
{
    struct rb_error err;

    memset(l, 0, sizeof(*l));
    if (rb_store_read_attempts(s, id, collect_attempt, l, &err) != RB_OK)
        fail_msg("rb_store_read_attempts: %s", err.message);
}

static void test_attempts(void **state)
{
    struct fix *fx = *state;
    struct rb_run_opts ro = {0};
    struct rb_attempt prev;
    struct rb_error err;
    struct atts l;
    struct runs runs = {0};
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "att", 0);

    /* First attempt: no previous failure. */
    assert_int_equal(rb_run_attempt(r), 1);
    prev.attempt = -5;
    assert_int_equal(rb_run_last_failure(r, &prev, &err), RB_ENOENT);
    assert_int_equal(prev.attempt, -5);
    rb_run_abandon(r); /* as a crash */

    /* The abandoned one is recorded as unknown when the next opens. */
    r = open_run(s, "att", 0);
    assert_int_equal(rb_run_attempt(r), 2);
    memset(&prev, 0, sizeof(prev));
    assert_int_equal(rb_run_last_failure(r, &prev, &err), RB_OK);
    assert_int_equal(prev.attempt, 1);
    assert_int_equal(prev.end, RB_END_UNKNOWN);
    assert_int_equal(prev.pid, (int)getpid());
    assert_true(prev.ended_wall_ms > 0);
    rb_attempt_release(&prev);
    rb_run_close(r); /* clean: RB_END_OK */

    r = open_run(s, "att", 0);
    assert_int_equal(rb_run_attempt(r), 3);
    assert_int_equal(rb_run_last_failure(r, &prev, &err), RB_OK);
    assert_int_equal(prev.attempt, 2);
    assert_int_equal(prev.end, RB_END_OK);
    rb_attempt_release(&prev);
    rb_run_abandon(r);

    /* A supervisor's word on how attempt 3 ended. */
    ro.last_failure = "{\"kind\":\"oom\",\"signal\":9,\"limit_mb\":256}";
    assert_int_equal(rb_run_open(s, "att", &ro, &r, &err), RB_OK);
    assert_int_equal(rb_run_attempt(r), 4);
    assert_int_equal(rb_run_last_failure(r, &prev, &err), RB_OK);
    assert_int_equal(prev.attempt, 3);
    assert_int_equal(prev.end, RB_END_OOM);
    assert_int_equal(prev.signal, 9);
    assert_non_null(prev.detail);
    assert_non_null(strstr(prev.detail, "\"limit_mb\":256"));
    assert_string_equal(rb_end_kind_name(prev.end), "oom");
    rb_attempt_release(&prev);
    assert_null(prev.detail);

    /* Joining: the same attempt, and closing a joined handle ends nothing. */
    {
        struct rb_run *j = NULL;
        struct rb_run_opts jo = {0};

        jo.flags = RB_RUN_JOIN;
        assert_int_equal(rb_run_open(s, "att", &jo, &j, &err), RB_OK);
        assert_int_equal(rb_run_attempt(j), 4);
        rb_run_close(j);
    }
    read_attempts(s, "att", &l);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.a[0].attempt, 1);
    assert_int_equal(l.a[0].end, RB_END_UNKNOWN);
    assert_int_equal(l.a[1].end, RB_END_OK);
    assert_true(l.a[1].ended_wall_ms >= l.a[1].started_wall_ms);
    assert_int_equal(l.a[2].end, RB_END_OOM);
    assert_int_equal(l.a[3].attempt, 4);
    assert_int_equal(l.a[3].end, RB_END_NONE);
    assert_int_equal(l.a[3].ended_wall_ms, 0);
    atts_release(&l);

    /* A supervisor records an exit code. */
    assert_int_equal(rb_store_attempt_end(s, "att", 4, RB_END_EXIT, 3, 0,
                                          "{\"stderr\":\"boom\"}", &err),
                     RB_OK);
    read_attempts(s, "att", &l);
    assert_int_equal(l.a[3].end, RB_END_EXIT);
    assert_int_equal(l.a[3].exit_code, 3);
    assert_non_null(l.a[3].detail);
    assert_non_null(strstr(l.a[3].detail, "boom"));
    assert_true(l.a[3].ended_wall_ms > 0);
    atts_release(&l);
    assert_int_equal(rb_store_attempt_end(s, "att", 99, RB_END_EXIT, 1, 0, NULL, &err),
                     RB_ENOENT);
    assert_int_equal(rb_store_attempt_end(s, "", 1, RB_END_EXIT, 1, 0, NULL, &err),
                     RB_ENAME);

    /* The run's close after the supervisor's record does not overwrite it. */
    rb_run_close(r);
    read_attempts(s, "att", &l);
    assert_int_equal(l.a[3].end, RB_END_EXIT);
    atts_release(&l);

    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.n, 1);
    assert_int_equal(runs.attempts[0], 4);
    assert_int_equal(rb_store_read_attempts(s, "nope", collect_attempt, &l, &err),
                     RB_ENOENT);
    rb_store_close(s);
}

/* The other failure kinds a supervisor reports. */
static void test_attempts_failure_kinds(void **state)
{
    struct fix *fx = *state;
    static const struct {
        const char *json;
        enum rb_end_kind end;
        int exit_code, sig;
    } cases[] = {
        {"{\"kind\":\"preempted\",\"signal\":15}", RB_END_PREEMPTED, -1, 15},
        {"{\"kind\":\"signal\",\"signal\":11}", RB_END_SIGNAL, -1, 11},
        {"{\"kind\":\"exit\",\"exit_code\":2}", RB_END_EXIT, 2, 0},
        {"not json at all", RB_END_UNKNOWN, -1, 0},
    };
    struct rb_run_opts ro = {0};
    struct rb_attempt prev;
    struct rb_error err;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "kinds", 0);
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rb_run_abandon(r);
        ro.last_failure = cases[i].json;
        assert_int_equal(rb_run_open(s, "kinds", &ro, &r, &err), RB_OK);
        assert_int_equal(rb_run_last_failure(r, &prev, &err), RB_OK);
        assert_int_equal(prev.end, cases[i].end);
        assert_int_equal(prev.exit_code, cases[i].exit_code);
        assert_int_equal(prev.signal, cases[i].sig);
        assert_string_equal(prev.detail, cases[i].json);
        rb_attempt_release(&prev);
    }
    rb_run_close(r);
    rb_store_close(s);
}

/* RB_RUN_JOIN with an explicit attempt creates it when missing. */
static void test_attempts_join_explicit(void **state)
{
    struct fix *fx = *state;
    struct rb_run_opts ro = {0};
    struct rb_error err;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = NULL;
    struct atts l;

    ro.flags = RB_RUN_JOIN;
    assert_int_equal(rb_run_open(s, "joined", &ro, &r, &err), RB_OK);
    assert_int_equal(rb_run_attempt(r), 1);
    rb_run_close(r);
    ro.attempt = 3;
    assert_int_equal(rb_run_open(s, "joined", &ro, &r, &err), RB_OK);
    assert_int_equal(rb_run_attempt(r), 3);
    rb_run_close(r);
    read_attempts(s, "joined", &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.a[0].attempt, 1);
    assert_int_equal(l.a[0].end, RB_END_UNKNOWN); /* left open, then superseded */
    assert_int_equal(l.a[1].attempt, 3);
    atts_release(&l);
    /* A default open after that starts attempt 4. */
    r = open_run(s, "joined", 0);
    assert_int_equal(rb_run_attempt(r), 4);
    rb_run_close(r);
    rb_store_close(s);
}

static void test_run_opts_from_env(void **state)
{
    struct rb_run_opts o = {0};
    struct rb_error err;

    (void)state;
    setenv("REBOUND_EVENT_FD", "7", 1);
    setenv("REBOUND_ATTEMPT", "3", 1);
    setenv("REBOUND_LAST_FAILURE", "{\"kind\":\"oom\"}", 1);
    assert_int_equal(rb_run_opts_from_env(&o, &err), RB_OK);
    assert_int_equal(o.event_fd, 7);
    assert_int_equal(o.attempt, 3);
    assert_true(o.flags & RB_RUN_JOIN);
    assert_string_equal(o.last_failure, "{\"kind\":\"oom\"}");
    setenv("REBOUND_ATTEMPT", "three", 1);
    assert_int_equal(rb_run_opts_from_env(&o, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "REBOUND_ATTEMPT"));
    assert_non_null(strstr(err.message, "'three'"));
    unsetenv("REBOUND_EVENT_FD");
    unsetenv("REBOUND_ATTEMPT");
    unsetenv("REBOUND_LAST_FAILURE");
}

/* ---- park and resolve ---------------------------------------------------------------
 */

#define MAX_ESC 4

struct escs {
    int n;
    int64_t id[MAX_ESC];
    char run[MAX_ESC][64], status[MAX_ESC][16], reason[MAX_ESC][64];
    char context[MAX_ESC][128], note[MAX_ESC][64];
    int64_t created[MAX_ESC], resolved[MAX_ESC];
};

static int collect_esc(void *arg, const struct rb_escalation *e)
{
    struct escs *l = arg;
    int i = l->n;

    if (i == MAX_ESC)
        return 1;
    l->id[i] = e->id;
    snprintf(l->run[i], sizeof(l->run[i]), "%s", e->run_id);
    snprintf(l->status[i], sizeof(l->status[i]), "%s", e->status);
    snprintf(l->reason[i], sizeof(l->reason[i]), "%s", e->reason);
    snprintf(l->context[i], sizeof(l->context[i]), "%s", e->context ? e->context : "");
    snprintf(l->note[i], sizeof(l->note[i]), "%s", e->note ? e->note : "");
    l->created[i] = e->created_wall_ms;
    l->resolved[i] = e->resolved_wall_ms;
    l->n++;
    return 0;
}

static void test_park_resolve(void **state)
{
    struct fix *fx = *state;
    static const char ctx[] = "{\"step\":\"pay\",\"amount\":12,\"tries\":3}";
    struct rb_run_opts ro = {0};
    struct rb_error err;
    struct escs esc;
    struct runs runs = {0};
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "needs human", 0);
    struct rb_run *other = open_run(s, "carries on", 0);
    struct rb_run *r2 = NULL;

    assert_int_equal(rb_run_park(r, "", NULL, &err), RB_EINVAL);
    assert_int_equal(rb_run_park(r, "payment needs approval", ctx, &err), RB_OK);
    rb_run_close(r);

    r = NULL;
    assert_int_equal(rb_run_open(s, "needs human", NULL, &r, &err), RB_EPARKED);
    assert_null(r);
    assert_int_equal(err.code, RB_EPARKED);
    assert_non_null(strstr(err.message, "payment needs approval"));
    assert_non_null(strstr(err.message, "'needs human'"));
    /* Joining is refused as well. */
    ro.flags = RB_RUN_JOIN;
    assert_int_equal(rb_run_open(s, "needs human", &ro, &r, &err), RB_EPARKED);

    memset(&esc, 0, sizeof(esc));
    assert_int_equal(rb_store_list_escalations(s, 1, collect_esc, &esc, &err), RB_OK);
    assert_int_equal(esc.n, 1);
    assert_string_equal(esc.run[0], "needs human");
    assert_string_equal(esc.status[0], "open");
    assert_string_equal(esc.reason[0], "payment needs approval");
    assert_string_equal(esc.context[0], ctx);
    assert_true(esc.created[0] > 0);
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_string_equal(runs.status[find_run(&runs, "needs human")], "parked");
    assert_string_equal(runs.status[find_run(&runs, "carries on")], "active");

    /* Forced open for inspection. */
    ro.flags = RB_RUN_FORCE;
    assert_int_equal(rb_run_open(s, "needs human", &ro, &r2, &err), RB_OK);
    rb_run_close(r2);

    /* A human resolves it: it opens again. */
    assert_int_equal(rb_store_resolve(s, "needs human", "approved by ana", &err), RB_OK);
    r = open_run(s, "needs human", 0);
    memset(&esc, 0, sizeof(esc));
    assert_int_equal(rb_store_list_escalations(s, 0, collect_esc, &esc, &err), RB_OK);
    assert_int_equal(esc.n, 1);
    assert_string_equal(esc.status[0], "resolved");
    assert_string_equal(esc.note[0], "approved by ana");
    assert_string_equal(esc.context[0], ctx);
    assert_true(esc.resolved[0] >= esc.created[0]);
    memset(&esc, 0, sizeof(esc));
    assert_int_equal(rb_store_list_escalations(s, 1, collect_esc, &esc, &err), RB_OK);
    assert_int_equal(esc.n, 0);

    /* Nothing open any more. */
    assert_int_equal(rb_store_resolve(s, "needs human", NULL, &err), RB_ENOENT);
    assert_non_null(strstr(err.message, "'needs human'"));
    assert_int_equal(rb_store_resolve(s, "carries on", NULL, &err), RB_ENOENT);
    assert_int_equal(rb_store_resolve(s, "no such run", NULL, &err), RB_ENOENT);

    /* Parked twice: open ones listed first, newest first. */
    assert_int_equal(rb_run_park(r, "second problem", NULL, &err), RB_OK);
    memset(&esc, 0, sizeof(esc));
    assert_int_equal(rb_store_list_escalations(s, 0, collect_esc, &esc, &err), RB_OK);
    assert_int_equal(esc.n, 2);
    assert_string_equal(esc.status[0], "open");
    assert_string_equal(esc.reason[0], "second problem");
    assert_string_equal(esc.context[0], "");
    assert_string_equal(esc.status[1], "resolved");
    assert_int_equal(rb_run_open(s, "needs human", NULL, &r2, &err), RB_EPARKED);
    assert_non_null(strstr(err.message, "second problem"));

    rb_run_close(r);
    rb_run_close(other);
    rb_store_close(s);
}

/* ---- names ------------------------------------------------------------------------- */

static void test_names(void **state)
{
    static const char *const good[] = {
        "a",
        "with spaces in it",
        "quotes \" and ' too",
        "slashes/and\\backslashes",
        "unicode: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80",
        "../../etc/passwd",
        "semi;colon $(dollar) `tick`",
        "nbsp\xc2\xa0"
        "and \xc2\xbf",
    };
    static const struct {
        const char *name;
        const char *says;
    } bad[] = {
        {"", "empty"},
        {"tab\there", "control character"},
        {"new\nline", "control character"},
        {"del\x7f", "control character"},
        {"esc\x1b[0m", "control character"},
        {"c1 csi \xc2\x9b"
         "31m",
         "control character"},
        {"next line \xc2\x85", "control character"},
        {"bad \xff byte", "UTF-8"},
        {"truncated \xe6\x97", "UTF-8"},
        {"overlong \xc0\xaf", "UTF-8"},
        {"surrogate \xed\xa0\x80", "UTF-8"},
        {"too big \xf4\x90\x80\x80", "UTF-8"},
        {"lone continuation \x80", "UTF-8"},
    };
    char longest[RB_NAME_MAX + 2];
    struct rb_error err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (rb_name_check("step name", good[i], &err) != RB_OK)
            fail_msg("refused '%s': %s", good[i], err.message);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rb_error_init(&err);
        assert_int_equal(rb_name_check("run id", bad[i].name, &err), RB_ENAME);
        assert_int_equal(err.code, RB_ENAME);
        if (!strstr(err.message, bad[i].says) || !strstr(err.message, "run id"))
            fail_msg("bad name %zu: message '%s' does not say '%s'", i, err.message,
                     bad[i].says);
    }
    assert_int_equal(rb_name_check("run id", NULL, &err), RB_ENAME);

    memset(longest, 'x', RB_NAME_MAX);
    longest[RB_NAME_MAX] = '\0';
    assert_int_equal(rb_name_check("run id", longest, &err), RB_OK);
    longest[RB_NAME_MAX] = 'x';
    longest[RB_NAME_MAX + 1] = '\0';
    assert_int_equal(rb_name_check("run id", longest, &err), RB_ENAME);
    assert_non_null(strstr(err.message, "257"));
    assert_non_null(strstr(err.message, "256"));
    assert_non_null(strstr(err.message, "run id"));
}

/* Odd but valid names round-trip through the store; bad ones are refused
 * before anything runs or is written. */
static void test_names_in_store(void **state)
{
    struct fix *fx = *state;
    static const char run_id[] = "r\xc3\xa9sum\xc3\xa9 \"quoted\" / 'x'";
    static const char key[] = "step/\xe6\x97\xa5\xe6\x9c\xac; DROP TABLE steps; --";
    struct emit e = {"ok", 2, 0, 0};
    struct rb_error err;
    struct rb_buf out;
    struct recs log;
    struct runs runs = {0};
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, run_id, 0);
    struct rb_run *bad = NULL;
    int called = 0;

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, key, NULL, fn_emit, &e, &out, NULL, &err), RB_OK);
    read_log(s, run_id, &log);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.r[0].key, key);
    recs_release(&log);

    assert_int_equal(rb_step(r, "bad\nkey", NULL, fn_never, &called, &out, NULL, &err),
                     RB_ENAME);
    assert_int_equal(called, 0);
    assert_non_null(strstr(err.message, "step name"));
    assert_int_equal(rb_step(r, "", NULL, fn_never, &called, &out, NULL, &err), RB_ENAME);
    assert_int_equal(called, 0);
    assert_int_equal(rb_run_open(s, "bad\xff", NULL, &bad, &err), RB_ENAME);
    assert_null(bad);
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.n, 1);
    assert_string_equal(runs.id[0], run_id);
    assert_string_equal((char *)out.data, "ok");

    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* ---- store errors --------------------------------------------------------------------
 */

static void test_store_folder_is_file(void **state)
{
    struct fix *fx = *state;
    struct rb_store *s = NULL;
    struct rb_error err;
    struct rb_buf b;

    write_file(fx->store, "just a file", 11);
    assert_int_equal(rb_store_open(fx->store, NULL, &s, &err), RB_EACCES);
    assert_null(s);
    assert_int_equal(err.code, RB_EACCES);
    assert_non_null(strstr(err.message, fx->store));
    assert_non_null(strstr(err.message, "not a folder"));
    rb_buf_init(&b);
    assert_int_equal(slurp(fx->store, &b), 0);
    assert_int_equal(b.len, 11);
    rb_buf_release(&b);

    assert_int_equal(rb_store_open("", NULL, &s, &err), RB_EINVAL);
    assert_null(s);
}

/* Opens `dir` expecting `code`, and checks dir/rebound.db is unchanged and no
 * journal was left behind. */
static void expect_refused(const char *dir, enum rb_err code, const char *says)
{
    char db[PATH_MAX], side[PATH_MAX];
    struct rb_buf before, after;
    struct rb_store *s = NULL;
    struct rb_error err;
    enum rb_err rc;
    int had_blobs;

    path_join(db, sizeof(db), dir, "rebound.db");
    pathf(side, sizeof(side), "%s/blobs", dir);
    had_blobs = access(side, F_OK) == 0; /* nothing is created either */
    rb_buf_init(&before);
    rb_buf_init(&after);
    assert_int_equal(slurp(db, &before), 0);
    rc = rb_store_open(dir, NULL, &s, &err);
    if (rc != code)
        fail_msg("opening '%s' gave %s (%s), not %s", dir, rb_err_name(rc),
                 rc ? err.message : "", rb_err_name(code));
    assert_null(s);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, says))
        fail_msg("message '%s' does not say '%s'", err.message, says);
    assert_non_null(strstr(err.message, dir));
    assert_int_equal(slurp(db, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    pathf(side, sizeof(side), "%s-wal", db);
    assert_int_equal(access(side, F_OK), -1);
    pathf(side, sizeof(side), "%s-journal", db);
    assert_int_equal(access(side, F_OK), -1);
    pathf(side, sizeof(side), "%s-shm", db);
    assert_int_equal(access(side, F_OK), -1);
    pathf(side, sizeof(side), "%s/blobs", dir);
    assert_int_equal(access(side, F_OK) == 0, had_blobs);
    rb_buf_release(&before);
    rb_buf_release(&after);
}

static void sql_file(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql '%s': %s", sql, msg ? msg : "?");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_store_foreign_sqlite(void **state)
{
    struct fix *fx = *state;
    char db[PATH_MAX];

    assert_int_equal(mkdir(fx->store, 0700), 0);
    path_join(db, sizeof(db), fx->store, "rebound.db");
    sql_file(db, "CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES('mine');");
    expect_refused(fx->store, RB_ECORRUPT, "not a rebound store");
}

/* The same, for another program's database that uses WAL itself. */
static void test_store_foreign_sqlite_wal(void **state)
{
    struct fix *fx = *state;
    char db[PATH_MAX];

    assert_int_equal(mkdir(fx->store, 0700), 0);
    path_join(db, sizeof(db), fx->store, "rebound.db");
    sql_file(db, "PRAGMA journal_mode = WAL; CREATE TABLE notes(body TEXT);"
                 " INSERT INTO notes VALUES('mine');");
    expect_refused(fx->store, RB_ECORRUPT, "not a rebound store");
}

static void test_store_garbage(void **state)
{
    struct fix *fx = *state;
    unsigned char junk[8192];
    char db[PATH_MAX];
    size_t i;

    assert_int_equal(mkdir(fx->store, 0700), 0);
    path_join(db, sizeof(db), fx->store, "rebound.db");
    for (i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 131 + 17);
    write_file(db, junk, sizeof(junk));
    expect_refused(fx->store, RB_ECORRUPT, "corrupt");
    /* Short text is no database either. */
    write_file(db, "hello, this is not a database\n", 30);
    expect_refused(fx->store, RB_ECORRUPT, "corrupt");
}

/* A store from a newer rebound is refused and left byte for byte. */
static void test_store_newer_schema(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"kept", 4, 0, 0};
    char db[PATH_MAX], sql[128], num[16];
    struct rb_buf out;
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);

    path_join(db, sizeof(db), fx->store, "rebound.db");
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", rb_store_schema_version() + 1);
    sql_file(db, sql);
    snprintf(num, sizeof(num), "%d", rb_store_schema_version() + 1);
    expect_refused(fx->store, RB_ESCHEMA, num);

    /* Put back: the data is all there. */
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", rb_store_schema_version());
    sql_file(db, sql);
    s = open_store(fx->store, NULL);
    read_log(s, "r", &log);
    assert_int_equal(log.n, 1);
    assert_string_equal((char *)log.r[0].output.data, "kept");
    recs_release(&log);
    rb_store_close(s);
}

/* A newer store that does not use WAL (a later rebound may choose so) is
 * refused untouched too: not converted to WAL on the way. */
static void test_store_newer_schema_rollback_journal(void **state)
{
    struct fix *fx = *state;
    char db[PATH_MAX], sql[160];

    assert_int_equal(mkdir(fx->store, 0700), 0);
    path_join(db, sizeof(db), fx->store, "rebound.db");
    snprintf(sql, sizeof(sql),
             "PRAGMA application_id = %d; PRAGMA user_version = %d;"
             " CREATE TABLE future(x);",
             0x52424e44, rb_store_schema_version() + 5);
    sql_file(db, sql);
    expect_refused(fx->store, RB_ESCHEMA, "schema version");
}

/* ---- disk full
 * ------------------------------------------------------------------------- */

/* Fills the file system holding `dir` with a file, until ENOSPC. */
static void fill_disk(const char *dir)
{
    static unsigned char chunk[65536];
    char path[PATH_MAX];
    size_t size = sizeof(chunk);
    int fd, i;

    pathf(path, sizeof(path), "%s/filler", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHILD_CHECK(fd >= 0);
    for (i = 0; i < 100000 && size > 0; i++) {
        ssize_t n = write(fd, chunk, size);
        if (n < 0 && errno == ENOSPC)
            size /= 2;
        else
            CHILD_CHECK(n > 0);
    }
    close(fd);
}

/* Checks the log of run "full" holds the steps committed before the disk
 * filled up, with their outputs. */
static void child_check_log(struct rb_store *s, const unsigned char *blob,
                            size_t blob_len)
{
    struct recs log;

    memset(&log, 0, sizeof(log));
    log.store = s;
    CHILD_CHECK(rb_store_read_log(s, "full", collect_step, &log, NULL) == RB_OK);
    CHILD_CHECK(log.n == 4);
    CHILD_CHECK(strcmp(log.r[0].key, "a") == 0 && log.r[0].seq == 1);
    CHILD_CHECK(strcmp((char *)log.r[0].output.data, "output a") == 0);
    CHILD_CHECK(strcmp(log.r[1].key, "b") == 0 && log.r[1].seq == 2);
    CHILD_CHECK(strcmp(log.r[2].key, "c") == 0 && log.r[2].seq == 3);
    CHILD_CHECK(strcmp(log.r[3].key, "blob") == 0 && log.r[3].seq == 4);
    CHILD_CHECK(log.r[3].read_rc == RB_OK && log.r[3].output.len == blob_len);
    CHILD_CHECK(memcmp(log.r[3].output.data, blob, blob_len) == 0);
    recs_release(&log);
}

/*
 * The disk-full scenario, run in a child. `mnt` is a small tmpfs (mode 0) or
 * NULL, when RLIMIT_FSIZE stands in for the full disk (mode 1). Exits 0 when
 * all checks pass.
 */
static void child_disk_full(const char *dir, int use_fsize)
{
    static unsigned char blob[6000], huge[600000];
    char store[PATH_MAX], filler[PATH_MAX];
    struct rb_store_opts so = {0};
    struct emit ea = {"output a", 8, 0, 0}, eb = {"output b", 8, 0, 0};
    struct emit ec = {"output c", 8, 0, 0}, eblob, ehuge, ewal;
    struct rb_step_info info;
    struct rb_error err;
    struct rb_store *s = NULL, *s2 = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    struct rlimit rl;
    enum rb_err rc;
    size_t i;

    alarm(60);
    for (i = 0; i < sizeof(blob); i++)
        blob[i] = (unsigned char)(i % 253);
    for (i = 0; i < sizeof(huge); i++)
        huge[i] = (unsigned char)(i % 241);
    eblob = (struct emit){blob, sizeof(blob), 0, 0};
    ehuge = (struct emit){huge, sizeof(huge), 0, 0};
    ewal = (struct emit){huge, use_fsize ? sizeof(huge) : 3000, 0, 0};
    pathf(store, sizeof(store), "%s/store", dir);
    pathf(filler, sizeof(filler), "%s/filler", dir);
    rb_buf_init(&out);

    CHILD_CHECK(rb_store_open(store, NULL, &s, &err) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "full", NULL, &r, &err) == RB_OK);
    CHILD_CHECK(rb_step(r, "a", NULL, fn_emit, &ea, &out, NULL, &err) == RB_OK);
    CHILD_CHECK(rb_step(r, "b", NULL, fn_emit, &eb, &out, NULL, &err) == RB_OK);
    CHILD_CHECK(rb_step(r, "c", NULL, fn_emit, &ec, &out, NULL, &err) == RB_OK);
    CHILD_CHECK(rb_step(r, "blob", NULL, fn_emit, &eblob, &out, NULL, &err) == RB_OK);

    if (use_fsize) {
        signal(SIGXFSZ, SIG_IGN);
        CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
        rl.rlim_cur = 256 * 1024; /* the hard limit stays, to raise it again */
        CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    } else {
        fill_disk(dir);
    }

    /* A blob that does not fit. */
    rb_buf_release(&out);
    rb_buf_append(&out, "untouched", 9);
    info.seq = -1;
    rc = rb_step(r, "huge", NULL, fn_emit, &ehuge, &out, &info, &err);
    if (rc != RB_ENOSPC)
        fprintf(stderr, "blob step: %s: %s\n", rb_err_name(rc), err.message);
    CHILD_CHECK(rc == RB_ENOSPC);
    CHILD_CHECK(err.code == RB_ENOSPC && strstr(err.message, "disk full") != NULL);
    CHILD_CHECK(ehuge.calls == 1);
    CHILD_CHECK(out.len == 9 && memcmp(out.data, "untouched", 9) == 0);
    CHILD_CHECK(info.seq == -1);

    /* A log row that does not fit (inline output: SQLite's write fails). */
    if (use_fsize) {
        so.inline_max = sizeof(huge);
        CHILD_CHECK(rb_store_open(store, &so, &s2, &err) == RB_OK);
        rb_run_close(r);
        CHILD_CHECK(rb_run_open(s2, "full", NULL, &r, &err) == RB_OK);
    }
    rc = rb_step(r, "wal", NULL, fn_emit, &ewal, &out, &info, &err);
    if (rc != RB_ENOSPC)
        fprintf(stderr, "inline step: %s: %s\n", rb_err_name(rc), err.message);
    CHILD_CHECK(rc == RB_ENOSPC);
    CHILD_CHECK(strstr(err.message, "disk full") != NULL);
    CHILD_CHECK(out.len == 9 && memcmp(out.data, "untouched", 9) == 0);

    /* Everything committed before is still there, on the same handles. */
    child_check_log(s, blob, sizeof(blob));
    CHILD_CHECK(rb_step(r, "a", NULL, fn_emit, &ea, &out, &info, &err) == RB_OK);
    CHILD_CHECK(ea.calls == 1 && info.source == RB_FROM_LOG);

    /* And after reopening, once space is back. */
    rb_run_abandon(r);
    rb_store_close(s2);
    rb_store_close(s);
    if (use_fsize) {
        rl.rlim_cur = rl.rlim_max;
        CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    } else {
        CHILD_CHECK(unlink(filler) == 0);
    }
    s = NULL;
    CHILD_CHECK(rb_store_open(store, NULL, &s, &err) == RB_OK);
    child_check_log(s, blob, sizeof(blob));
    CHILD_CHECK(rb_store_check(s, &err) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "full", NULL, &r, &err) == RB_OK);
    CHILD_CHECK(rb_step(r, "huge", NULL, fn_emit, &ehuge, &out, &info, &err) == RB_OK);
    CHILD_CHECK(out.len == sizeof(huge) && info.seq == 5);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(0);
}

/* Child: a private mount namespace with a 1 MiB tmpfs. Exits 77 when that is
 * not possible here. */
static void child_tmpfs(const char *mnt)
{
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") != 0)
        _exit(77);
    child_disk_full(mnt, 0);
}

static void test_disk_full(void **state)
{
    struct fix *fx = *state;
    char mnt[PATH_MAX];
    pid_t pid;
    int status;

    path_join(mnt, sizeof(mnt), fx->root, "small");
    assert_int_equal(mkdir(mnt, 0700), 0);
    pid = fork_child();
    assert_true(pid >= 0);
    if (pid == 0)
        child_tmpfs(mnt);
    status = reap(pid, 60000);
    assert_true(status != -1);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        print_message("no tmpfs here (needs root); RLIMIT_FSIZE only\n");
    else
        assert_exit0(status);

    /* RLIMIT_FSIZE: a per-file limit, the other way a write fails for size. */
    pid = fork_child();
    assert_true(pid >= 0);
    if (pid == 0)
        child_disk_full(fx->root, 1);
    assert_exit0(reap(pid, 60000));
}

/* ---- reading
 * ----------------------------------------------------------------------------- */

struct edges {
    int n;
    char key[8][32], role[8][8], hash[8][RB_HASH_HEX_LEN + 1], producer[8][32];
};

static int collect_edge(void *arg, const struct rb_lineage_edge *e)
{
    struct edges *l = arg;
    int i = l->n;

    if (i == 8)
        return 1;
    snprintf(l->key[i], sizeof(l->key[i]), "%s", e->key);
    snprintf(l->role[i], sizeof(l->role[i]), "%s", e->role);
    snprintf(l->hash[i], sizeof(l->hash[i]), "%s", e->hash);
    snprintf(l->producer[i], sizeof(l->producer[i]), "%s",
             e->producer ? e->producer : "-");
    l->n++;
    return 0;
}

static void test_read_log_and_lineage(void **state)
{
    struct fix *fx = *state;
    struct emit ea = {"raw data", 8, 0, 0};
    struct emit eb = {"summary", 7, 0, 0};
    struct emit ec = {"final", 5, 0, 0};
    char ha[RB_HASH_HEX_LEN + 1], hb[RB_HASH_HEX_LEN + 1], hx[RB_HASH_HEX_LEN + 1];
    char hin[RB_HASH_HEX_LEN + 1], hempty[RB_HASH_HEX_LEN + 1];
    const char *b_inputs[1], *c_inputs[2];
    struct rb_step_opts ob = {0}, oc = {0};
    struct rb_error err;
    struct rb_buf out;
    struct recs log;
    struct edges ed = {0};
    struct runs runs = {0};
    int64_t before = 0;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "lineage", 0);
    struct rb_run *o;
    int i;

    rb_hash_hex("raw data", 8, ha);
    rb_hash_hex("summary", 7, hb);
    rb_hash_hex("from elsewhere", 14, hx);
    rb_hash_hex("{\"q\":1}", 7, hin);
    rb_hash_hex("", 0, hempty);
    b_inputs[0] = ha;
    c_inputs[0] = hb;
    c_inputs[1] = hx;
    ob.kind = "llm";
    ob.input = "{\"q\":1}";
    ob.input_len = 7;
    ob.inputs = b_inputs;
    ob.n_inputs = 1;
    ob.meta = "{\"model\":\"m1\"}";
    oc.inputs = c_inputs;
    oc.n_inputs = 2;
    rb_buf_init(&out);

    assert_int_equal(rb_step(r, "fetch", NULL, fn_emit, &ea, &out, NULL, &err), RB_OK);
    assert_int_equal(rb_step(r, "summarise", &ob, fn_emit, &eb, &out, NULL, &err), RB_OK);
    assert_int_equal(rb_step(r, "answer", &oc, fn_emit, &ec, &out, NULL, &err), RB_OK);

    read_log(s, "lineage", &log);
    assert_int_equal(log.n, 3);
    assert_string_equal(log.r[0].key, "fetch");
    assert_string_equal(log.r[1].key, "summarise");
    assert_string_equal(log.r[2].key, "answer");
    for (i = 0; i < 3; i++) {
        assert_int_equal(log.r[i].seq, i + 1);
        assert_string_equal(log.r[i].status, "committed");
        assert_int_equal(log.r[i].attempt, 1);
        assert_int_equal(log.r[i].tries, 1);
        assert_int_equal(log.r[i].cached, 0);
        assert_true(log.r[i].inline_output);
        assert_true(log.r[i].end_mono >= log.r[i].start_mono && log.r[i].start_mono > 0);
        assert_true(log.r[i].end_wall >= log.r[i].start_wall && log.r[i].start_wall > 0);
        assert_true(log.r[i].start_mono >= before);
        before = log.r[i].start_mono;
        assert_null(log.r[i].error);
    }
    assert_string_equal(log.r[0].kind, "task");
    assert_string_equal(log.r[0].input_hash, hempty);
    assert_string_equal(log.r[0].output_hash, ha);
    assert_int_equal(log.r[0].output_len, 8);
    assert_memory_equal(log.r[0].output.data, "raw data", 8);
    assert_null(log.r[0].meta);
    assert_string_equal(log.r[1].kind, "llm");
    assert_string_equal(log.r[1].input_hash, hin);
    assert_string_equal(log.r[1].output_hash, hb);
    assert_string_equal(log.r[1].meta, "{\"model\":\"m1\"}");
    recs_release(&log);

    assert_int_equal(rb_store_read_lineage(s, "lineage", collect_edge, &ed, &err), RB_OK);
    /* fetch: output; summarise: input (from fetch), output; answer: two
     * inputs (one from summarise, one unknown), output. */
    assert_int_equal(ed.n, 6);
    assert_string_equal(ed.key[0], "fetch");
    assert_string_equal(ed.role[0], "output");
    assert_string_equal(ed.hash[0], ha);
    assert_string_equal(ed.key[1], "summarise");
    assert_string_equal(ed.role[1], "input");
    assert_string_equal(ed.hash[1], ha);
    assert_string_equal(ed.producer[1], "fetch");
    assert_string_equal(ed.key[2], "summarise");
    assert_string_equal(ed.role[2], "output");
    for (i = 3; i < 5; i++) {
        assert_string_equal(ed.key[i], "answer");
        assert_string_equal(ed.role[i], "input");
        if (strcmp(ed.hash[i], hb) == 0)
            assert_string_equal(ed.producer[i], "summarise");
        else if (strcmp(ed.hash[i], hx) == 0)
            assert_string_equal(ed.producer[i], "-");
        else
            fail_msg("unexpected input edge %s", ed.hash[i]);
    }
    assert_string_equal(ed.key[5], "answer");
    assert_string_equal(ed.role[5], "output");

    /* Runs listed newest first with their counts. */
    sleep_ms(20);
    o = open_run(s, "newer", 0);
    assert_int_equal(rb_step(o, "only", NULL, fn_emit, &ea, &out, NULL, &err), RB_OK);
    rb_run_close(o);
    o = open_run(s, "newer", 0);
    rb_run_close(o);
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.n, 2);
    assert_string_equal(runs.id[0], "newer");
    assert_int_equal(runs.steps[0], 1);
    assert_int_equal(runs.attempts[0], 2);
    assert_string_equal(runs.id[1], "lineage");
    assert_int_equal(runs.steps[1], 3);
    assert_int_equal(runs.attempts[1], 1);
    assert_int_equal(runs.failed[1], 0);

    /* Unknown runs are named as such. */
    assert_int_equal(rb_store_read_log(s, "ghost", collect_step, &log, &err), RB_ENOENT);
    assert_non_null(strstr(err.message, "'ghost'"));
    assert_int_equal(rb_store_read_lineage(s, "ghost", collect_edge, &ed, &err),
                     RB_ENOENT);

    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* Callbacks can stop a listing early. */
static int stop_after_one(void *arg, const struct rb_step_record *rec)
{
    int *n = arg;

    (void)rec;
    (*n)++;
    return 1;
}

static void test_read_log_stop_early(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"v", 1, 0, 0};
    struct rb_buf out;
    int n = 0;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "1", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "2", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_store_read_log(s, "r", stop_after_one, &n, NULL), RB_OK);
    assert_int_equal(n, 1);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* Failed steps are listed after the committed ones. */
static void test_read_log_failed_last(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"v", 1, 0, 0};
    struct flaky fl = {0};
    struct rb_buf out;
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    fl.fail_times = 5;
    fl.message = "nope";
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "a", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "x", NULL, fn_flaky, &fl, &out, NULL, NULL), RB_ESTEP);
    assert_int_equal(rb_step(r, "b", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    read_log(s, "r", &log);
    assert_int_equal(log.n, 3);
    assert_string_equal(log.r[0].key, "a");
    assert_int_equal(log.r[0].seq, 1);
    assert_string_equal(log.r[1].key, "b");
    assert_int_equal(log.r[1].seq, 2);
    assert_string_equal(log.r[2].key, "x");
    assert_string_equal(log.r[2].status, "failed");
    assert_int_equal(log.r[2].seq, 0);
    recs_release(&log);
    flaky_release(&fl);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* A NULL input is no input, whatever input_len says. */
static void test_step_null_input(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"v", 1, 0, 0};
    struct rb_step_opts o = cached("llm", NULL, "v");
    struct rb_step_info info;
    struct rb_buf out;
    struct recs log;
    char hempty[RB_HASH_HEX_LEN + 1];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "r", 0);

    rb_hash_hex("", 0, hempty);
    rb_buf_init(&out);
    o.input_len = 4096;
    assert_int_equal(rb_step(r, "a", &o, fn_emit, &e, &out, NULL, NULL), RB_OK);
    o.input = "";
    o.input_len = 0;
    assert_int_equal(rb_step(r, "b", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_CACHE);
    read_log(s, "r", &log);
    assert_string_equal(log.r[0].input_hash, hempty);
    recs_release(&log);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* RB_DURABLE_FULL stores work the same way. */
static void test_durable_full(void **state)
{
    struct fix *fx = *state;
    static unsigned char big[9000];
    struct emit e = {big, sizeof(big), 0, 0};
    struct rb_store_opts so = {0};
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_store *s;
    struct rb_run *r;

    memset(big, 'f', sizeof(big));
    so.durability = RB_DURABLE_FULL;
    s = open_store(fx->store, &so);
    r = open_run(s, "full", 0);
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    rb_run_close(r);
    rb_store_close(s);
    s = open_store(fx->store, &so);
    r = open_run(s, "full", 0);
    assert_int_equal(rb_step(r, "k", NULL, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(out.len, sizeof(big));
    assert_memory_equal(out.data, big, sizeof(big));
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

static void test_store_check(void **state)
{
    struct fix *fx = *state;
    static unsigned char big[10000];
    struct emit e = {big, sizeof(big), 0, 0};
    struct emit small = {"small", 5, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    char path[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "checked run", 0);

    memset(big, 'b', sizeof(big));
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "small", NULL, fn_emit, &small, &out, NULL, &err), RB_OK);
    assert_int_equal(rb_step(r, "big one", NULL, fn_emit, &e, &out, &info, &err), RB_OK);
    assert_int_equal(rb_store_check(s, &err), RB_OK);

    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rb_store_check(s, &err), RB_ECORRUPT);
    assert_int_equal(err.code, RB_ECORRUPT);
    assert_non_null(strstr(err.message, "'big one'"));
    assert_non_null(strstr(err.message, "'checked run'"));
    assert_non_null(strstr(err.message, info.output_hash));

    /* A damaged blob is damage too. */
    write_file(path, "not the content", 15);
    assert_int_equal(rb_store_read_blob(s, info.output_hash, &out, &err), RB_ECORRUPT);

    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* A damaged database page is found by rb_store_check(). */
static void test_store_check_damaged_db(void **state)
{
    struct fix *fx = *state;
    static unsigned char row[1000], junk[4096];
    struct emit e = {row, sizeof(row), 0, 0};
    struct rb_error err;
    struct rb_buf out;
    char db[PATH_MAX], key[32];
    struct stat sb;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "damaged", 0);
    enum rb_err rc;
    int fd, i;

    rb_buf_init(&out);
    for (i = 0; i < 60; i++) {
        memset(row, 'a' + i % 26, sizeof(row));
        snprintf(key, sizeof(key), "step %d", i);
        assert_int_equal(rb_step(r, key, NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    }
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s); /* checkpoints the WAL into rebound.db */

    path_join(db, sizeof(db), fx->store, "rebound.db");
    assert_int_equal(stat(db, &sb), 0);
    assert_true(sb.st_size > 8 * 4096);
    memset(junk, 0xa5, sizeof(junk));
    fd = open(db, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (i = 3; i < 7; i++) /* pages 4 to 7: table and index pages */
        assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)i * 4096), 4096);
    close(fd);

    s = open_store(fx->store, NULL);
    rc = rb_store_check(s, &err);
    assert_int_equal(rc, RB_ECORRUPT);
    assert_int_equal(err.code, RB_ECORRUPT);
    assert_non_null(strstr(err.message, "corrupt"));
    rb_store_close(s);
}

/* ---- no replay
 * ------------------------------------------------------------------------------ */

static void test_no_replay(void **state)
{
    struct fix *fx = *state;
    struct emit e = {"again", 5, 0, 0};
    struct rb_step_opts o = cached("llm", "same", "v");
    struct rb_step_info info;
    struct rb_buf out;
    struct recs log;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "baseline", RB_RUN_NO_REPLAY);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 1);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 1);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 2);
    rb_run_close(r);

    r = open_run(s, "baseline", RB_RUN_NO_REPLAY);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 3);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.attempt, 2);
    rb_run_close(r);

    /* Commits were recorded: a durable open replays the latest. */
    r = open_run(s, "baseline", 0);
    assert_int_equal(rb_step(r, "k", &o, fn_emit, &e, &out, &info, NULL), RB_OK);
    assert_int_equal(e.calls, 3);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(info.attempt, 2);
    assert_string_equal((char *)out.data, "again");
    read_log(s, "baseline", &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.r[0].tries, 3);
    recs_release(&log);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* ---- file modes
 * ----------------------------------------------------------------------------- */

static void assert_mode(const char *path, mode_t want)
{
    struct stat sb;

    if (stat(path, &sb) != 0)
        fail_msg("stat '%s': %s", path, strerror(errno));
    if ((sb.st_mode & 07777) != want)
        fail_msg("'%s' has mode %04o, not %04o", path, (unsigned)(sb.st_mode & 07777),
                 (unsigned)want);
}

static void test_file_modes(void **state)
{
    struct fix *fx = *state;
    static unsigned char big[8000];
    struct emit e = {big, sizeof(big), 0, 0};
    struct rb_step_info info;
    struct rb_buf out;
    char path[PATH_MAX];
    mode_t old = umask(0); /* the modes must not depend on the umask */
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = open_run(s, "modes", 0);

    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "big", NULL, fn_emit, &e, &out, &info, NULL), RB_OK);
    umask(old);
    assert_mode(fx->store, 0700);
    path_join(path, sizeof(path), fx->store, "rebound.db");
    assert_mode(path, 0600);
    path_join(path, sizeof(path), fx->store, "rebound.db-wal");
    assert_mode(path, 0600);
    path_join(path, sizeof(path), fx->store, "blobs");
    assert_mode(path, 0700);
    path_join(path, sizeof(path), fx->store, "blobs/tmp");
    assert_mode(path, 0700);
    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_mode(path, 0600);
    *strrchr(path, '/') = '\0';
    assert_mode(path, 0700);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* ---- events
 * ------------------------------------------------------------------------------------ */

static void test_events(void **state)
{
    struct fix *fx = *state;
    static const struct {
        const char *kind, *step, *source; /* NULL: absent */
        int seq;                          /* 0: absent */
    } want[] = {
        {"run.open", NULL, NULL, 0},      {"step.start", "s1", NULL, 0},
        {"step.commit", "s1", "exec", 1}, {"step.replay", "s1", "log", 1},
        {"step.start", "bad", NULL, 0},   {"step.fail", "bad", NULL, 0},
        {"step.start", "c1", NULL, 0},    {"step.commit", "c1", "exec", 2},
        {"step.cached", "c2", NULL, 0},   {"step.commit", "c2", "cache", 3},
        {"run.park", NULL, NULL, 0},      {"run.close", NULL, NULL, 0},
    };
    enum { N_WANT = sizeof(want) / sizeof(want[0]) };
    struct emit e = {"v", 1, 0, 0};
    struct flaky fl = {0};
    struct rb_step_opts o = cached("llm", "same", "v");
    struct rb_run_opts ro = {0};
    struct rb_buf out, ev;
    char buf[4096];
    int p[2], lines = 0;
    ssize_t n;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r = NULL;
    json_t *j;
    json_error_t jerr;
    char *line, *save = NULL;

    fl.fail_times = 1;
    fl.message = "no";
    assert_int_equal(pipe(p), 0);
    ro.event_fd = p[1];
    assert_int_equal(rb_run_open(s, "ev \"run\"", &ro, &r, NULL), RB_OK);
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "s\n1", NULL, fn_emit, &e, &out, NULL, NULL), RB_ENAME);
    assert_int_equal(rb_step(r, "s1", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "s1", NULL, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "bad", NULL, fn_flaky, &fl, &out, NULL, NULL), RB_ESTEP);
    assert_int_equal(rb_step(r, "c1", &o, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_step(r, "c2", &o, fn_emit, &e, &out, NULL, NULL), RB_OK);
    assert_int_equal(rb_run_park(r, "why", NULL, NULL), RB_OK);
    rb_run_close(r);
    close(p[1]);
    rb_buf_init(&ev);
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        rb_buf_append(&ev, buf, (size_t)n);
    close(p[0]);
    assert_non_null(ev.data);
    for (line = strtok_r((char *)ev.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), lines++) {
        json_t *step, *source, *seq;

        j = json_loads(line, 0, &jerr);
        if (!j)
            fail_msg("event is not JSON: %s", line);
        if (lines >= N_WANT)
            fail_msg("unexpected event %s", line);
        assert_string_equal(json_string_value(json_object_get(j, "kind")),
                            want[lines].kind);
        assert_string_equal(json_string_value(json_object_get(j, "run")), "ev \"run\"");
        assert_true(json_integer_value(json_object_get(j, "t")) > 0);
        assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 1);
        assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
        step = json_object_get(j, "step");
        source = json_object_get(j, "source");
        seq = json_object_get(j, "seq");
        if (want[lines].step)
            assert_string_equal(json_string_value(step), want[lines].step);
        else
            assert_null(step);
        if (want[lines].source)
            assert_string_equal(json_string_value(source), want[lines].source);
        else
            assert_null(source);
        if (want[lines].seq)
            assert_int_equal(json_integer_value(seq), want[lines].seq);
        else
            assert_null(seq);
        json_decref(j);
    }
    assert_int_equal(lines, N_WANT);
    flaky_release(&fl);
    rb_buf_release(&ev);
    rb_buf_release(&out);
    rb_store_close(s);
}

/* An observer going away must not stop the agent: events to a pipe nobody
 * reads any more are dropped, without SIGPIPE killing the process. */
static void child_events_to_closed_pipe(const char *store_dir)
{
    struct emit e = {"v", 1, 0, 0};
    struct rb_run_opts ro = {0};
    struct rb_store *s = NULL;
    struct rb_run *r = NULL;
    struct rb_buf out;
    int p[2];

    alarm(60);
    signal(SIGPIPE, SIG_DFL);
    CHILD_CHECK(pipe(p) == 0);
    close(p[0]);
    ro.event_fd = p[1];
    CHILD_CHECK(rb_store_open(store_dir, NULL, &s, NULL) == RB_OK);
    CHILD_CHECK(rb_run_open(s, "observed", &ro, &r, NULL) == RB_OK);
    rb_buf_init(&out);
    CHILD_CHECK(rb_step(r, "k", NULL, fn_emit, &e, &out, NULL, NULL) == RB_OK);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
    child_done(0);
}

static void test_events_observer_gone(void **state)
{
    struct fix *fx = *state;
    struct recs log;
    struct rb_store *s;
    pid_t pid = fork_child();
    int status;

    assert_true(pid >= 0);
    if (pid == 0)
        child_events_to_closed_pipe(fx->store);
    status = reap(pid, 60000);
    assert_true(status != -1);
    if (WIFSIGNALED(status))
        fail_msg("the agent was killed by signal %d", WTERMSIG(status));
    assert_exit0(status);
    s = open_store(fx->store, NULL);
    read_log(s, "observed", &log);
    assert_int_equal(log.n, 1);
    recs_release(&log);
    rb_store_close(s);
}

/* ---- error names
 * ----------------------------------------------------------------------------- */

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(rb_err_name(RB_ENOSPC), "RB_ENOSPC");
    assert_string_equal(rb_strerror(RB_OK), "success");
    assert_string_equal(rb_strerror((enum rb_err)999), "unknown error");
    assert_string_equal(rb_source_name(RB_FROM_CACHE), "cache");
    assert_string_equal(rb_end_kind_name(RB_END_PREEMPTED), "preempted");
}

/* ---- schema migration 1 -> 2 ------------------------------------------------- */

/* The schema of version 1, frozen as rebound 1 wrote it (migrations[0] in
 * runner/store_sqlite.c): a fixture, not to be kept in step with the code. */
static const char v1_schema[] =
    "CREATE TABLE runs("
    "  run_id TEXT PRIMARY KEY,"
    "  status TEXT NOT NULL DEFAULT 'active',"
    "  created_wall INTEGER NOT NULL,"
    "  updated_wall INTEGER NOT NULL,"
    "  next_seq INTEGER NOT NULL DEFAULT 1,"
    "  attempts INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE attempts("
    "  run_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  started_wall INTEGER NOT NULL,"
    "  ended_wall INTEGER NOT NULL DEFAULT 0,"
    "  end_kind INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER NOT NULL DEFAULT -1,"
    "  signal INTEGER NOT NULL DEFAULT 0,"
    "  detail TEXT,"
    "  PRIMARY KEY(run_id, attempt)"
    ") WITHOUT ROWID;"
    "CREATE TABLE steps("
    "  run_id TEXT NOT NULL,"
    "  step_key TEXT NOT NULL,"
    "  seq INTEGER NOT NULL DEFAULT 0,"
    "  kind TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  tries INTEGER NOT NULL DEFAULT 1,"
    "  input_hash TEXT NOT NULL,"
    "  output_hash TEXT,"
    "  output BLOB,"
    "  output_size INTEGER NOT NULL DEFAULT 0,"
    "  cached INTEGER NOT NULL DEFAULT 0,"
    "  start_mono INTEGER NOT NULL DEFAULT 0,"
    "  end_mono INTEGER NOT NULL DEFAULT 0,"
    "  start_wall INTEGER NOT NULL DEFAULT 0,"
    "  end_wall INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  meta TEXT,"
    "  PRIMARY KEY(run_id, step_key)"
    ");"
    "CREATE TABLE lineage("
    "  run_id TEXT NOT NULL,"
    "  step_key TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  PRIMARY KEY(run_id, step_key, role, hash)"
    ") WITHOUT ROWID;"
    "CREATE TABLE cache("
    "  key TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  kind TEXT,"
    "  owner TEXT,"
    "  claimed_wall INTEGER NOT NULL DEFAULT 0,"
    "  output_hash TEXT,"
    "  output_size INTEGER NOT NULL DEFAULT 0,"
    "  created_wall INTEGER NOT NULL DEFAULT 0,"
    "  hits INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE escalations("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  context TEXT,"
    "  note TEXT,"
    "  created_wall INTEGER NOT NULL,"
    "  resolved_wall INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX escalations_run ON escalations(run_id, status);";

/* A step row of a version-1 store. */
struct v1_step {
    const char *run, *key;
    int seq;            /* 0 for a failed step */
    const char *status; /* "committed" or "failed" */
    int attempt, tries;
    const char *input;  /* hashed into input_hash */
    const void *output; /* inline output, or NULL */
    size_t output_len;  /* its bytes, or the blob's */
    const char *blob;   /* output in a blob file instead, or NULL */
    const char *error;  /* for failed steps */
    int64_t wall;       /* start_wall; end_wall is wall + 5 */
};

static void v1_insert_step(sqlite3 *db, const char *store, const struct v1_step *v)
{
    char in_hash[RB_HASH_HEX_LEN + 1], out_hash[RB_HASH_HEX_LEN + 1];
    char path[PATH_MAX], sub[PATH_MAX];
    sqlite3_stmt *st = NULL;
    int committed = strcmp(v->status, "committed") == 0;

    assert_int_equal(
        sqlite3_prepare_v2(
            db,
            "INSERT INTO steps(run_id, step_key, seq, kind, status, attempt,"
            " tries, input_hash, output_hash, output, output_size, start_mono,"
            " end_mono, start_wall, end_wall, error, meta)"
            " VALUES(?1, ?2, ?3, 'task', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
            " ?12, ?13, ?14, ?15, ?16)",
            -1, &st, NULL),
        SQLITE_OK);
    rb_hash_hex(v->input, strlen(v->input), in_hash);
    sqlite3_bind_text(st, 1, v->run, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, v->seq);
    sqlite3_bind_text(st, 4, v->status, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, v->attempt);
    sqlite3_bind_int(st, 6, v->tries);
    sqlite3_bind_text(st, 7, in_hash, -1, SQLITE_TRANSIENT);
    if (committed) {
        const void *data = v->blob ? (const void *)v->blob : v->output;

        rb_hash_hex(data, v->output_len, out_hash);
        sqlite3_bind_text(st, 8, out_hash, -1, SQLITE_TRANSIENT);
        if (v->blob) {
            pathf(sub, sizeof(sub), "%s/blobs", store);
            mkdir(sub, 0700);
            pathf(sub, sizeof(sub), "%s/blobs/%.2s", store, out_hash);
            mkdir(sub, 0700);
            blob_file(store, out_hash, path, sizeof(path));
            write_file(path, v->blob, v->output_len);
        } else {
            sqlite3_bind_blob(st, 9, v->output, (int)v->output_len, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 10, (int64_t)v->output_len);
    } else {
        sqlite3_bind_int64(st, 10, 0);
        sqlite3_bind_text(st, 15, v->error, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 11, v->wall * 1000000);
    sqlite3_bind_int64(st, 12, (v->wall + 5) * 1000000);
    sqlite3_bind_int64(st, 13, v->wall);
    sqlite3_bind_int64(st, 14, v->wall + 5);
    sqlite3_bind_text(st, 16, "{\"v\":1}", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* Checks the log of `run` against the v1 rows of it, in log order (committed
 * by seq, then failed). */
static void v1_expect_log(struct rb_store *s, const char *run, const struct v1_step *rows,
                          const int *order, int n)
{
    char in_hash[RB_HASH_HEX_LEN + 1];
    struct recs log;
    int i;

    read_log(s, run, &log);
    assert_int_equal(log.n, n);
    for (i = 0; i < n; i++) {
        const struct v1_step *v = &rows[order[i]];
        const struct rec_copy *c = &log.r[i];

        assert_string_equal(c->key, v->key);
        assert_int_equal(c->seq, v->seq);
        assert_string_equal(c->status, v->status);
        assert_string_equal(c->kind, "task");
        assert_int_equal(c->attempt, v->attempt);
        assert_int_equal(c->tries, v->tries);
        rb_hash_hex(v->input, strlen(v->input), in_hash);
        assert_string_equal(c->input_hash, in_hash);
        assert_int_equal(c->start_wall, v->wall);
        assert_int_equal(c->end_wall, v->wall + 5);
        assert_int_equal(c->end_mono, (v->wall + 5) * 1000000);
        assert_non_null(c->meta);
        assert_string_equal(c->meta, "{\"v\":1}");
        if (strcmp(v->status, "committed") == 0) {
            const void *data = v->blob ? (const void *)v->blob : v->output;

            assert_int_equal(c->read_rc, RB_OK);
            assert_int_equal(c->inline_output, v->blob == NULL);
            assert_int_equal(c->output.len, v->output_len);
            if (v->output_len)
                assert_memory_equal(c->output.data, data, v->output_len);
            assert_null(c->error);
        } else {
            assert_string_equal(c->output_hash, "");
            assert_non_null(c->error);
            assert_string_equal(c->error, v->error);
        }
    }
    recs_release(&log);
}

static int sqlite_int(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v;

    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
}

/* A store written by rebound 1 (schema version 1) opens, is migrated in
 * place, and keeps every step with its seq, output and failure; new steps
 * continue each run's numbering. */
static void test_store_migrate_v1(void **state)
{
    struct fix *fx = *state;
    static char big[6000];
    static const unsigned char bin[] = {'b', 0, 'i', 0xff, 'n'};
    /* Rows in the order rebound 1 wrote them: the runs interleaved, failed
     * tries in between, so that row order is neither seq nor run order. */
    const struct v1_step rows[] = {
        {"beta", "b-one", 1, "committed", 1, 1, "in b1", "b one", 5, NULL, NULL, 1100},
        {"alpha run", "a-one", 1, "committed", 1, 1, "in a1", "one", 3, NULL, NULL, 2100},
        {"alpha run", "a-bad", 0, "failed", 1, 3, "in ax", NULL, 0, NULL, "boom: 503",
         2150},
        {"beta", "b-bad", 0, "failed", 2, 1, "in bx", NULL, 0, NULL, "timed out", 1150},
        {"alpha run", "a-big", 2, "committed", 1, 1, "in a2", NULL, sizeof(big), big,
         NULL, 2200},
        {"beta", "b-two", 2, "committed", 2, 2, "in b2", bin, sizeof(bin), NULL, NULL,
         1200},
        {"alpha run", "a-empty", 3, "committed", 1, 1, "in a3", "", 0, NULL, NULL, 2300},
    };
    static const int alpha_order[] = {1, 4, 6, 2}, beta_order[] = {0, 5, 3};
    struct emit e4 = {"four", 4, 0, 0}, e5 = {"fixed", 5, 0, 0}, e3 = {"b3", 2, 0, 0};
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    struct recs log;
    struct runs runs = {0};
    char db_path[PATH_MAX];
    sqlite3 *db = NULL;
    struct rb_store *s;
    struct rb_run *r;
    int called = 0, a, b;
    size_t i;

    for (i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    assert_true(rb_store_schema_version() >= 2);

    /* The version-1 store, as rebound 1 left it. */
    assert_int_equal(mkdir(fx->store, 0700), 0);
    path_join(db_path, sizeof(db_path), fx->store, "rebound.db");
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "PRAGMA user_version = 1;"
                     " PRAGMA application_id = 1380077124;" /* 0x52424e44 */
                     " INSERT INTO runs VALUES"
                     "  ('alpha run', 'active', 2000, 2300, 4, 1),"
                     "  ('beta', 'active', 1000, 1200, 3, 2);"
                     " INSERT INTO attempts(run_id, attempt, pid, started_wall,"
                     "  ended_wall, end_kind, exit_code) VALUES"
                     "  ('alpha run', 1, 4242, 2000, 2400, 1, 0),"
                     "  ('beta', 1, 4243, 1000, 1160, 3, 1),"
                     "  ('beta', 2, 4244, 1170, 1250, 1, 0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        v1_insert_step(db, fx->store, &rows[i]);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(sqlite_int(db_path, "PRAGMA user_version"), 1);

    /* Opened by this rebound: the same logs. */
    s = open_store(fx->store, NULL);
    assert_int_equal(sqlite_int(db_path, "PRAGMA user_version"),
                     rb_store_schema_version());
    assert_int_equal(sqlite_int(db_path, "PRAGMA application_id"), 0x52424e44);
    v1_expect_log(s, "alpha run", rows, alpha_order, 4);
    v1_expect_log(s, "beta", rows, beta_order, 3);
    assert_int_equal(rb_store_check(s, &err), RB_OK);

    /* Committed steps replay; new ones continue at N + 1; a failed step
     * committed now takes the next seq. */
    rb_buf_init(&out);
    r = open_run(s, "alpha run", 0);
    assert_int_equal(rb_step(r, "a-one", NULL, fn_never, &called, &out, &info, &err),
                     RB_OK);
    assert_int_equal(called, 0);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(info.seq, 1);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "one", 3);
    assert_int_equal(rb_step(r, "a-big", NULL, fn_never, &called, &out, &info, &err),
                     RB_OK);
    assert_int_equal(called, 0);
    assert_int_equal(info.seq, 2);
    assert_int_equal(out.len, sizeof(big));
    assert_memory_equal(out.data, big, sizeof(big));
    assert_int_equal(rb_step(r, "a-four", NULL, fn_emit, &e4, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 4);
    assert_int_equal(info.attempt, 2);
    assert_int_equal(rb_step(r, "a-bad", NULL, fn_emit, &e5, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(info.seq, 5);
    rb_run_close(r);

    r = open_run(s, "beta", 0);
    assert_int_equal(rb_step(r, "b-two", NULL, fn_never, &called, &out, &info, &err),
                     RB_OK);
    assert_int_equal(called, 0);
    assert_int_equal(info.seq, 2);
    assert_int_equal(out.len, sizeof(bin));
    assert_memory_equal(out.data, bin, sizeof(bin));
    assert_int_equal(rb_step(r, "b-three", NULL, fn_emit, &e3, &out, &info, &err), RB_OK);
    assert_int_equal(info.seq, 3);
    assert_int_equal(info.attempt, 3);
    rb_run_close(r);
    /* A run begun after the migration numbers its steps from 1. */
    r = open_run(s, "gamma", 0);
    assert_int_equal(rb_step(r, "g-one", NULL, fn_emit, &e3, &out, &info, &err), RB_OK);
    assert_int_equal(info.seq, 1);
    rb_run_close(r);
    rb_buf_release(&out);
    rb_store_close(s);

    /* All of it is there after reopening, and the store is sound. */
    s = open_store(fx->store, NULL);
    assert_int_equal(rb_store_check(s, &err), RB_OK);
    read_log(s, "alpha run", &log);
    assert_int_equal(log.n, 5);
    assert_string_equal(log.r[3].key, "a-four");
    assert_int_equal(log.r[3].seq, 4);
    assert_string_equal(log.r[4].key, "a-bad");
    assert_int_equal(log.r[4].seq, 5);
    assert_string_equal(log.r[4].status, "committed");
    assert_int_equal(log.r[4].tries, 4);
    assert_memory_equal(log.r[4].output.data, "fixed", 5);
    recs_release(&log);
    read_log(s, "beta", &log);
    assert_int_equal(log.n, 4);
    assert_string_equal(log.r[2].key, "b-three");
    assert_int_equal(log.r[2].seq, 3);
    assert_string_equal(log.r[3].key, "b-bad");
    assert_string_equal(log.r[3].status, "failed");
    assert_int_equal(log.r[3].seq, 0);
    recs_release(&log);
    assert_int_equal(rb_store_list_runs(s, collect_run, &runs, &err), RB_OK);
    assert_int_equal(runs.n, 3);
    a = find_run(&runs, "alpha run");
    b = find_run(&runs, "beta");
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(runs.steps[a], 5);
    assert_int_equal(runs.failed[a], 0);
    assert_int_equal(runs.attempts[a], 2);
    assert_int_equal(runs.steps[b], 3);
    assert_int_equal(runs.failed[b], 1);
    assert_int_equal(runs.attempts[b], 3);
    rb_store_close(s);
}

/* ---- temp blob files left by killed writers ------------------------------------ */

static void make_tmp_file(const char *path, time_t age_s)
{
    struct timespec ts[2];

    write_file(path, "half a blob", 11);
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts[0]), 0);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Opening a store removes temp blob files older than an hour, which no live
 * writer can own, and leaves younger ones to their writers. */
static void test_store_sweeps_old_blob_temps(void **state)
{
    struct fix *fx = *state;
    static char big[9000];
    struct emit e = {big, sizeof(big), 0, 0};
    char old[PATH_MAX], fresh[PATH_MAX], recent[PATH_MAX], subdir[PATH_MAX];
    char path[PATH_MAX];
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_store *s = open_store(fx->store, NULL);
    struct rb_run *r;

    rb_store_close(s);
    pathf(old, sizeof(old), "%s/blobs/tmp/%064d.a1b2c3", fx->store, 0);
    pathf(fresh, sizeof(fresh), "%s/blobs/tmp/%064d.d4e5f6", fx->store, 1);
    pathf(recent, sizeof(recent), "%s/blobs/tmp/%064d.g7h8i9", fx->store, 2);
    pathf(subdir, sizeof(subdir), "%s/blobs/tmp/not-a-temp-file", fx->store);
    make_tmp_file(old, 2 * 3600);
    make_tmp_file(fresh, 0);
    make_tmp_file(recent, 50 * 60);
    assert_int_equal(mkdir(subdir, 0700), 0);

    memset(big, 'q', sizeof(big));
    s = open_store(fx->store, NULL);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(fresh, F_OK), 0);
    assert_int_equal(access(recent, F_OK), 0);
    assert_int_equal(access(subdir, F_OK), 0);

    /* Blobs are written as before. */
    r = open_run(s, "r", 0);
    rb_buf_init(&out);
    assert_int_equal(rb_step(r, "big", NULL, fn_emit, &e, &out, &info, NULL), RB_OK);
    blob_file(fx->store, info.output_hash, path, sizeof(path));
    assert_int_equal(access(path, F_OK), 0);
    rb_buf_release(&out);
    rb_run_close(r);
    rb_store_close(s);
}

/* A temp file whose writer (named in it) is alive stays whatever its age, so
 * a wall clock that jumped cannot delete a live writer's file; one whose
 * writer is gone is removed however fresh. */
static void test_store_sweep_follows_writer_pid(void **state)
{
    struct fix *fx = *state;
    char live[PATH_MAX], dead[PATH_MAX];
    struct rb_store *s = open_store(fx->store, NULL);
    pid_t gone = fork();

    assert_true(gone >= 0);
    if (gone == 0)
        _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    rb_store_close(s);
    pathf(live, sizeof(live), "%s/blobs/tmp/%064d.%ld.a1b2c3", fx->store, 3,
          (long)getpid());
    pathf(dead, sizeof(dead), "%s/blobs/tmp/%064d.%ld.d4e5f6", fx->store, 4, (long)gone);
    make_tmp_file(live, 48 * 3600);
    make_tmp_file(dead, 0);
    s = open_store(fx->store, NULL);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    rb_store_close(s);
}

/* ---- wording of store errors ----------------------------------------------------- */

/* Store errors name the store once, with what failed first: "cannot open
 * store 'x': ...", "cannot open run in store 'x': ...", "store 'x' is
 * corrupt: ...". */
static void test_store_error_wording(void **state)
{
    struct fix *fx = *state;
    struct rb_store_opts so = {0};
    struct rb_run_opts ro = {0};
    char db_path[PATH_MAX], want[PATH_MAX + 128];
    struct rb_store *s, *s2 = NULL;
    struct rb_run *r = NULL;
    struct rb_error err;
    sqlite3 *db = NULL;
    const char *p;

    so.busy_timeout_ms = 50;
    s = open_store(fx->store, &so);
    path_join(db_path, sizeof(db_path), fx->store, "rebound.db");

    /* Another process holds the write lock. */
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(rb_store_open(fx->store, &so, &s2, &err), RB_EBUSY);
    assert_null(s2);
    pathf(want, sizeof(want), "cannot open store '%s': locked by another process (",
          db_path);
    if (strncmp(err.message, want, strlen(want)) != 0)
        fail_msg("message '%s' does not start with '%s'", err.message, want);
    assert_int_equal(rb_run_open(s, "r", &ro, &r, &err), RB_EBUSY);
    assert_null(r);
    pathf(want, sizeof(want),
          "cannot open run in store '%s': locked by another process (", db_path);
    if (strncmp(err.message, want, strlen(want)) != 0)
        fail_msg("message '%s' does not start with '%s'", err.message, want);
    p = strstr(err.message, "store '");
    assert_non_null(p);
    assert_null(strstr(p + 1, "store '")); /* the store is named once */
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    rb_store_close(s);

    /* Not a database at all. */
    write_file(db_path, "hello, this is not a database\n", 30);
    assert_int_equal(rb_store_open(fx->store, NULL, &s2, &err), RB_ECORRUPT);
    assert_null(s2);
    pathf(want, sizeof(want), "store '%s' is corrupt: file is not a database", db_path);
    assert_string_equal(err.message, want);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fix_setup, fix_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_step_exec_then_replay),
        T(test_step_info_and_opts_optional),
        T(test_step_large_output_blob),
        T(test_step_inline_max_option),
        T(test_step_nested),
        T(test_step_failure_then_retry),
        T(test_step_failure_without_message),
        T(test_cache_across_runs),
        T(test_cache_large_output),
        T(test_cache_failure_releases_claim),
        T(test_cache_blob_missing),
        T(test_cache_single_flight_processes),
        T(test_cache_single_flight_same_run),
        T(test_step_race_same_run),
        T(test_cache_owner_killed),
        T(test_cache_owner_zombie),
        T(test_store_concurrent_first_open),
        T(test_threads_same_blobs),
        T(test_attempts),
        T(test_attempts_failure_kinds),
        T(test_attempts_join_explicit),
        cmocka_unit_test(test_run_opts_from_env),
        T(test_park_resolve),
        cmocka_unit_test(test_names),
        T(test_names_in_store),
        T(test_store_folder_is_file),
        T(test_store_foreign_sqlite),
        T(test_store_foreign_sqlite_wal),
        T(test_store_garbage),
        T(test_store_newer_schema),
        T(test_store_newer_schema_rollback_journal),
        T(test_disk_full),
        T(test_read_log_and_lineage),
        T(test_read_log_stop_early),
        T(test_read_log_failed_last),
        T(test_step_null_input),
        T(test_durable_full),
        T(test_store_check),
        T(test_store_check_damaged_db),
        T(test_no_replay),
        T(test_file_modes),
        T(test_events),
        T(test_events_observer_gone),
        cmocka_unit_test(test_error_names),
        T(test_store_migrate_v1),
        T(test_store_sweeps_old_blob_temps),
        T(test_store_sweep_follows_writer_pid),
        T(test_store_error_wording),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
