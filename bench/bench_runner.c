/*
 * bench_runner.c - benchmarks of the durable runner: the per-step cost of
 * rb_step() for a no-op step against the floor of bare SQLite inserts of the
 * same records (same table, same pragmas, one transaction each), the time to
 * resume a long run in a fresh process, peak RSS against run length, and the
 * cost of one `rebound step` call (new and replayed). `bench_runner all`
 * runs everything and prints a table of medians; each measurement runs in a
 * fresh child process (this program again, started with posix_spawn), so
 * nothing is cached in memory across measurements but the OS page cache.
 * bench/run.sh is the driver.
 */
#include <rebound/rebound.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RUN_ID "bench"
#define MAX_REPEATS 64
#define HIST_BUCKETS 1200 /* log buckets of 1% from 1 us: up to ~150 ms */

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* User plus system CPU time of this process so far, in seconds. */
static double cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static long maxrss_kb(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench_runner: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static enum rb_durability parse_durability(const char *s)
{
    if (strcmp(s, "normal") == 0)
        return RB_DURABLE_NORMAL;
    if (strcmp(s, "full") == 0)
        return RB_DURABLE_FULL;
    die("durability is '%s'; use normal or full", s);
    return RB_DURABLE_NORMAL;
}

static long parse_count(const char *s)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1)
        die("'%s' is not a positive count", s);
    return v;
}

static void step_key(char *buf, size_t size, long i)
{
    snprintf(buf, size, "step-%07ld", i);
}

/* A latency histogram of fixed size, so that memory does not grow with the
 * number of steps (peak RSS is one of the measurements). */
struct hist {
    unsigned long n[HIST_BUCKETS];
    unsigned long count;
};

static void hist_add(struct hist *h, double us)
{
    int b = us <= 1.0 ? 0 : (int)(log(us) / log(1.01));

    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    h->n[b]++;
    h->count++;
}

static double hist_pct(const struct hist *h, double pct)
{
    unsigned long want = (unsigned long)((double)h->count * pct / 100.0), seen = 0;
    int b;

    for (b = 0; b < HIST_BUCKETS; b++) {
        seen += h->n[b];
        if (seen > want)
            return pow(1.01, b + 0.5);
    }
    return pow(1.01, HIST_BUCKETS);
}

/* ---- child: rb_step no-op steps ------------------------------------------- */

static enum rb_err noop(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                        struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)out;
    (void)err;
    return RB_OK;
}

static void fail_rb(const char *what, const struct rb_error *err)
{
    die("%s: %s", what, err->message[0] ? err->message : rb_strerror(err->code));
}

/* `steps DIR N DUR [FIRST]`: N no-op steps (keys FIRST..FIRST+N-1) in run
 * "bench" of store DIR. Prints: seconds, mean us, p50 us, p99 us, maxrss
 * KiB, CPU (user + system) us per step. */
static int child_steps(int argc, char **argv)
{
    struct rb_store_opts sopts = {0};
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_error err;
    struct rb_buf out;
    struct hist *h = calloc(1, sizeof(*h));
    long n, first = 0, i;
    double t0, t1, prev, c0;
    char key[32];

    if (argc < 5 || !h)
        die("usage: steps DIR N normal|full [FIRST]");
    n = parse_count(argv[3]);
    sopts.durability = parse_durability(argv[4]);
    if (argc > 5)
        first = parse_count(argv[5]);
    rb_error_init(&err);
    rb_buf_init(&out);
    if (rb_store_open(argv[2], &sopts, &store, &err) != RB_OK)
        fail_rb("cannot open store", &err);
    if (rb_run_open(store, RUN_ID, NULL, &run, &err) != RB_OK)
        fail_rb("cannot open run", &err);
    c0 = cpu_s();
    t0 = now_s();
    prev = t0;
    for (i = 0; i < n; i++) {
        double t;

        step_key(key, sizeof(key), first + i);
        if (rb_step(run, key, NULL, noop, NULL, &out, NULL, &err) != RB_OK)
            fail_rb("step failed", &err);
        t = now_s();
        hist_add(h, (t - prev) * 1e6);
        prev = t;
    }
    t1 = now_s();
    printf("%.6f %.3f %.3f %.3f %ld %.3f\n", t1 - t0, (t1 - t0) * 1e6 / (double)n,
           hist_pct(h, 50), hist_pct(h, 99), maxrss_kb(),
           (cpu_s() - c0) * 1e6 / (double)n);
    rb_buf_release(&out);
    rb_run_close(run);
    rb_store_close(store);
    free(h);
    return 0;
}

/* ---- child: the floor, bare SQLite inserts ---------------------------------- */

static void sq_check(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        die("%s: %s", what, sqlite3_errmsg(db));
}

/* `bare DIR N DUR`: the same records as N no-op steps, written with bare
 * SQLite: the store is created by rb_store_open() (so the table is the very
 * same), then each row is one autocommit INSERT of a prepared statement, in
 * WAL mode with the same synchronous setting. Prints as `steps` does. */
static int child_bare(int argc, char **argv)
{
    static const char insert_sql[] =
        "INSERT INTO steps(run_id, step_key, kind, status, attempt, tries, input_hash,"
        " output_hash, output, output_size, cached, start_mono, end_mono, start_wall,"
        " end_wall, meta)"
        " VALUES(?1, ?2, 'task', 'committed', 1, 1, ?3, ?4, ?5, 0, 0, ?6, ?7, ?8, ?9,"
        " NULL)";
    struct rb_store_opts sopts = {0};
    struct rb_store *store = NULL;
    struct rb_error err;
    struct hist *h = calloc(1, sizeof(*h));
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char hash[RB_HASH_HEX_LEN + 1], key[32], path[4096], sql[64];
    long n, i;
    double t0, t1, prev, c0;

    if (argc < 5 || !h)
        die("usage: bare DIR N normal|full");
    n = parse_count(argv[3]);
    sopts.durability = parse_durability(argv[4]);
    rb_error_init(&err);
    if (rb_store_open(argv[2], &sopts, &store, &err) != RB_OK)
        fail_rb("cannot create store", &err);
    rb_store_close(store);

    snprintf(path, sizeof(path), "%s/rebound.db", argv[2]);
    sq_check(
        db, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL),
        "cannot open");
    sqlite3_busy_timeout(db, 10000);
    sq_check(db, sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL),
             "journal_mode");
    snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
             sopts.durability == RB_DURABLE_FULL ? "FULL" : "NORMAL");
    sq_check(db, sqlite3_exec(db, sql, NULL, NULL, NULL), "synchronous");
    sq_check(db,
             sqlite3_prepare_v3(db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL),
             "prepare");
    rb_hash_hex("", 0, hash); /* input and output of a no-op step are empty */

    c0 = cpu_s();
    t0 = now_s();
    prev = t0;
    for (i = 0; i < n; i++) {
        int64_t mono = (int64_t)(now_s() * 1e9), wall = wall_ms();
        double t;

        step_key(key, sizeof(key), i);
        sqlite3_bind_text(st, 1, RUN_ID, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, "", 0, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, mono);
        sqlite3_bind_int64(st, 7, mono);
        sqlite3_bind_int64(st, 8, wall);
        sqlite3_bind_int64(st, 9, wall);
        sq_check(db, sqlite3_step(st), "insert");
        sqlite3_reset(st);
        t = now_s();
        hist_add(h, (t - prev) * 1e6);
        prev = t;
    }
    t1 = now_s();
    printf("%.6f %.3f %.3f %.3f %ld %.3f\n", t1 - t0, (t1 - t0) * 1e6 / (double)n,
           hist_pct(h, 50), hist_pct(h, 99), maxrss_kb(),
           (cpu_s() - c0) * 1e6 / (double)n);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(h);
    return 0;
}

/* ---- child: resume -------------------------------------------------------------- */

/* `resume DIR KEY`: opens store DIR and run "bench" (a new attempt) and runs
 * one new no-op step KEY. Prints: total us, open store us, open run us, step
 * us, maxrss KiB. */
static int child_resume(int argc, char **argv)
{
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_step_info info;
    struct rb_error err;
    struct rb_buf out;
    double t0, t1, t2, t3;

    if (argc < 4)
        die("usage: resume DIR KEY");
    rb_error_init(&err);
    rb_buf_init(&out);
    t0 = now_s();
    if (rb_store_open(argv[2], NULL, &store, &err) != RB_OK)
        fail_rb("cannot open store", &err);
    t1 = now_s();
    if (rb_run_open(store, RUN_ID, NULL, &run, &err) != RB_OK)
        fail_rb("cannot open run", &err);
    t2 = now_s();
    if (rb_step(run, argv[3], NULL, noop, NULL, &out, &info, &err) != RB_OK)
        fail_rb("step failed", &err);
    t3 = now_s();
    if (info.source != RB_FROM_EXEC)
        die("step '%s' was not new", argv[3]);
    printf("%.3f %.3f %.3f %.3f %ld\n", (t3 - t0) * 1e6, (t1 - t0) * 1e6, (t2 - t1) * 1e6,
           (t3 - t2) * 1e6, maxrss_kb());
    rb_buf_release(&out);
    rb_run_close(run);
    rb_store_close(store);
    return 0;
}

/* ---- parent: spawning ------------------------------------------------------------- */

/* Spawns argv with stdout into a pipe (or /dev/null when vals is NULL) and
 * stdin from /dev/null; waits. Parses nvals numbers from its output into
 * vals. Returns the wall seconds from spawn to exit. Dies if the child
 * fails. */
static double spawn_wait(char *const argv[], double *vals, int nvals)
{
    posix_spawn_file_actions_t fa;
    char buf[512];
    size_t len = 0;
    int pfd[2] = {-1, -1}, status = 0, rc, i;
    pid_t pid;
    double t0, t1;
    char *p;

    if (vals && pipe(pfd) != 0)
        die("cannot create a pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (vals) {
        posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
    } else {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    t0 = now_s();
    rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        die("cannot run '%s': %s", argv[0], strerror(rc));
    if (vals) {
        close(pfd[1]);
        for (;;) {
            ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            len += (size_t)n;
        }
        close(pfd[0]);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("cannot wait for '%s': %s", argv[0], strerror(errno));
    t1 = now_s();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("'%s %s' failed", argv[0], argv[1] ? argv[1] : "");
    if (vals) {
        buf[len] = '\0';
        p = buf;
        for (i = 0; i < nvals; i++) {
            char *end = NULL;
            vals[i] = strtod(p, &end);
            if (end == p)
                die("cannot parse the output of '%s': %s", argv[1], buf);
            p = end;
        }
    }
    return t1 - t0;
}

/* Removes a scratch store folder, if there is one. */
static void rm_store(const char *dir)
{
    char *const argv[] = {"/bin/rm", "-rf", "--", (char *)dir, NULL};

    if (access(dir, F_OK) == 0)
        spawn_wait(argv, NULL, 0);
}

/* ---- parent: statistics and printing -------------------------------------------- */

struct series {
    double v[MAX_REPEATS];
    int n;
};

static void add(struct series *s, double v)
{
    if (s->n < MAX_REPEATS)
        s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(const struct series *s)
{
    double v[MAX_REPEATS];

    if (!s->n)
        return NAN;
    memcpy(v, s->v, sizeof(double) * (size_t)s->n);
    qsort(v, (size_t)s->n, sizeof(double), cmp_double);
    return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

static double minimum(const struct series *s)
{
    double m = INFINITY;
    int i;

    for (i = 0; i < s->n; i++)
        m = s->v[i] < m ? s->v[i] : m;
    return m;
}

static double maximum(const struct series *s)
{
    double m = -INFINITY;
    int i;

    for (i = 0; i < s->n; i++)
        m = s->v[i] > m ? s->v[i] : m;
    return m;
}

static void row(const char *what, const struct series *s, const char *unit)
{
    if (strcmp(unit, "x") == 0) /* ratios get two decimals */
        printf("  %-52s %10.2f %10.2f %10.2f  %-3s %3d\n", what, median(s), minimum(s),
               maximum(s), unit, s->n);
    else
        printf("  %-52s %10.1f %10.1f %10.1f  %-3s %3d\n", what, median(s), minimum(s),
               maximum(s), unit, s->n);
    fflush(stdout);
}

static void header(const char *title)
{
    printf("\n%s\n  %-52s %10s %10s %10s  %-3s %3s\n", title, "measure", "median", "min",
           "max", "", "n");
}

/* ---- parent: the benchmarks ------------------------------------------------------ */

struct config {
    const char *self;    /* this program */
    const char *rebound; /* the CLI, or NULL to skip its bench */
    const char *work;    /* scratch folder (on the disk to measure) */
    long steps;          /* steps per step-bench run */
    long big;            /* committed steps of the long run to resume */
    long small;          /* committed steps of the short run to resume */
    long cli;            /* `rebound step` calls */
    int repeats;         /* repeats at NORMAL, of resumes */
    int full_repeats;    /* repeats at FULL */
    const char *only;    /* comma-separated sections to run, or NULL for all */
};

/* 1 when section `name` is to run. */
static int want(const struct config *c, const char *name)
{
    size_t n = strlen(name);
    const char *p;

    if (!c->only)
        return 1;
    for (p = c->only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == c->only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static void store_path(const struct config *c, char *buf, size_t size, const char *name,
                       int i)
{
    snprintf(buf, size, "%s/%s-%d", c->work, name, i);
}

/* What one `steps` or `bare` child measured. */
struct step_result {
    double mean, p50, p99; /* wall us per step */
    double rss;            /* peak RSS, KiB */
    double cpu;            /* user + system CPU us per step */
};

/* Runs the `steps` or `bare` child with n steps on a fresh store. */
static struct step_result step_run(const struct config *c, const char *mode,
                                   const char *dur, long n, int i)
{
    struct step_result r;
    char dir[4096], count[32], name[64];
    double v[6];

    snprintf(name, sizeof(name), "%s-%s", mode, dur);
    store_path(c, dir, sizeof(dir), name, i);
    snprintf(count, sizeof(count), "%ld", n);
    rm_store(dir);
    {
        char *const argv[] = {(char *)c->self, (char *)mode, dir,
                              count,           (char *)dur,  NULL};
        spawn_wait(argv, v, 6);
    }
    rm_store(dir);
    r.mean = v[1];
    r.p50 = v[2];
    r.p99 = v[3];
    r.rss = v[4];
    r.cpu = v[5];
    return r;
}

static void bench_steps(const struct config *c, const char *dur, int repeats,
                        struct series *rss_out)
{
    struct series rb = {0}, bare = {0}, rb50 = {0}, rb99 = {0}, bare50 = {0},
                  bare99 = {0}, ratio = {0}, rss = {0}, rbcpu = {0}, barecpu = {0},
                  cpuratio = {0};
    char title[128], what[128];
    int i;

    /* Alternate the two so that load from elsewhere hits both alike. */
    for (i = 0; i < repeats; i++) {
        struct step_result r = step_run(c, "steps", dur, c->steps, i);
        struct step_result b = step_run(c, "bare", dur, c->steps, i);

        add(&rb, r.mean);
        add(&rb50, r.p50);
        add(&rb99, r.p99);
        add(&rbcpu, r.cpu);
        add(&rss, r.rss);
        add(&bare, b.mean);
        add(&bare50, b.p50);
        add(&bare99, b.p99);
        add(&barecpu, b.cpu);
        add(&ratio, r.mean / b.mean);
        add(&cpuratio, r.cpu / b.cpu);
    }
    snprintf(title, sizeof(title), "per-step cost, %s durability, %ld-step run (us)", dur,
             c->steps);
    header(title);
    row("rb_step, no-op step: mean", &rb, "us");
    row("  p50", &rb50, "us");
    row("  p99", &rb99, "us");
    row("  CPU time (user + system)", &rbcpu, "us");
    row("bare SQLite INSERT, same row, own transaction: mean", &bare, "us");
    row("  p50", &bare50, "us");
    row("  p99", &bare99, "us");
    row("  CPU time (user + system)", &barecpu, "us");
    row("ratio rb_step / bare, mean (per repeat)", &ratio, "x");
    row("ratio rb_step / bare, CPU time (per repeat)", &cpuratio, "x");
    snprintf(what, sizeof(what), "RATIO of medians (target <= 1.30): %.2fx",
             median(&rb) / median(&bare));
    printf("  %s\n", what);
    if (rss_out)
        *rss_out = rss;
}

/* Fills the store of a long run, then resumes it `repeats` times. Leaves
 * the store in place when `keep`. */
static void bench_resume(const struct config *c, long n, const char *name, int keep,
                         struct series *rss_fill)
{
    struct series total = {0}, open_store = {0}, open_run = {0}, step = {0}, proc = {0},
                  rss = {0}, fill = {0}, p50 = {0}, p99 = {0};
    char dir[4096], count[32], key[32], title[128];
    double v[6];
    int i;

    store_path(c, dir, sizeof(dir), name, 0);
    snprintf(count, sizeof(count), "%ld", n);
    rm_store(dir);
    {
        char *const argv[] = {(char *)c->self, "steps", dir, count, "normal", NULL};
        spawn_wait(argv, v, 6);
        add(&fill, v[1]);
        add(&p50, v[2]);
        add(&p99, v[3]);
        add(rss_fill, v[4]);
    }
    for (i = 0; i < c->repeats; i++) {
        step_key(key, sizeof(key), 9000000 + i);
        {
            char *const argv[] = {(char *)c->self, "resume", dir, key, NULL};
            add(&proc, spawn_wait(argv, v, 5) * 1e3);
        }
        add(&total, v[0] / 1e3);
        add(&open_store, v[1] / 1e3);
        add(&open_run, v[2] / 1e3);
        add(&step, v[3] / 1e3);
        add(&rss, v[4]);
    }
    snprintf(title, sizeof(title), "resume a run of %ld committed steps (ms)", n);
    header(title);
    row("open store + open run + first new step", &total, "ms");
    row("  rb_store_open", &open_store, "ms");
    row("  rb_run_open (new attempt)", &open_run, "ms");
    row("  first new rb_step", &step, "ms");
    row("whole process: spawn, resume, close, exit", &proc, "ms");
    row("peak RSS of the resuming process", &rss, "KiB");
    if (n >= 20000) {
        printf("  (filling it: %.1f us per step, p50 %.1f, p99 %.1f, one run)\n",
               median(&fill), median(&p50), median(&p99));
    }
    if (!keep)
        rm_store(dir);
}

static void bench_rss(const struct config *c, const struct series *rss_small,
                      const struct series *rss_steps, const struct series *rss_big)
{
    struct series rss2k = {0};
    char what[128];
    int i;

    for (i = 0; i < 3; i++)
        add(&rss2k, step_run(c, "steps", "normal", 2000, 100 + i).rss);
    header("peak RSS (getrusage ru_maxrss) of a process running N no-op steps (KiB)");
    snprintf(what, sizeof(what), "N = %ld", c->small);
    row(what, rss_small, "KiB");
    row("N = 2000", &rss2k, "KiB");
    if (rss_steps->n) { /* from the NORMAL step bench, when it ran */
        snprintf(what, sizeof(what), "N = %ld", c->steps);
        row(what, rss_steps, "KiB");
    }
    snprintf(what, sizeof(what), "N = %ld", c->big);
    row(what, rss_big, "KiB");
}

/* One `rebound step` call for step `i` in store `dir`; returns its ms. */
static double cli_call(const struct config *c, const char *dir, long i)
{
    char name[32];

    step_key(name, sizeof(name), i);
    {
        char *const argv[] = {
            (char *)c->rebound, "step", "--store", (char *)dir, "--run", RUN_ID,
            "--name",           name,   "--",      "true",      NULL};
        return spawn_wait(argv, NULL, 0) * 1e3;
    }
}

/* Calls `rebound step` for n new steps (from key `first`), each followed by
 * the same call again (a replay), in store `dir`. With more calls than
 * MAX_REPEATS, the series hold means of equal groups of calls. */
static void cli_series(const struct config *c, const char *dir, long first, long n,
                       struct series *fresh, struct series *replay)
{
    long chunk = (n + MAX_REPEATS - 1) / MAX_REPEATS, k = 0, i;
    double sum_new = 0, sum_replay = 0;

    for (i = 0; i < n; i++) {
        sum_new += cli_call(c, dir, first + i);
        sum_replay += cli_call(c, dir, first + i);
        if (++k == chunk || i == n - 1) {
            add(fresh, sum_new / (double)k);
            add(replay, sum_replay / (double)k);
            sum_new = sum_replay = 0;
            k = 0;
        }
    }
}

static void bench_cli(const struct config *c, const char *big_dir)
{
    struct series fresh = {0}, replay = {0}, bare = {0}, big_fresh = {0},
                  big_replay = {0};
    char dir[4096], what[128];
    long i, n_big = c->cli / 10 > 0 ? c->cli / 10 : 1;

    store_path(c, dir, sizeof(dir), "cli", 0);
    rm_store(dir);
    for (i = 0; i < c->cli && i < MAX_REPEATS; i++) {
        char *const argv[] = {"/bin/true", NULL};
        add(&bare, spawn_wait(argv, NULL, 0) * 1e3);
    }
    cli_series(c, dir, 0, c->cli, &fresh, &replay);
    rm_store(dir);
    if (big_dir)
        cli_series(c, big_dir, 8000000, n_big, &big_fresh, &big_replay);
    header("`rebound step` CLI, one process per call (ms per call)");
    row("new step: rebound step ... -- true", &fresh, "ms");
    row("replay of a committed step (true does not run)", &replay, "ms");
    if (big_dir) {
        snprintf(what, sizeof(what), "new step, in the run of %ld steps", c->big);
        row(what, &big_fresh, "ms");
        snprintf(what, sizeof(what), "replay, in the run of %ld steps", c->big);
        row(what, &big_replay, "ms");
    }
    row("floor: spawn /bin/true alone", &bare, "ms");
    printf("  (%ld + %ld calls each, new and replay; median over groups of calls)\n",
           c->cli, big_dir ? n_big : 0);
}

static void usage(void)
{
    fputs("usage: bench_runner all --work DIR [--rebound PATH] [--steps N] "
          "[--big N] [--cli N]\n"
          "                        [--repeats N] [--full-repeats N] [--quick]\n"
          "                        [--only normal,full,resume,cli]\n"
          "       bench_runner steps DIR N normal|full [FIRST]\n"
          "       bench_runner bare DIR N normal|full\n"
          "       bench_runner resume DIR KEY\n",
          stderr);
    exit(2);
}

static int parent(int argc, char **argv)
{
    struct config c = {0};
    struct series rss_small = {0}, rss_steps = {0}, rss_big = {0};
    char big_dir[4096];
    double t0 = now_s();
    int i;

    c.self = "/proc/self/exe";
    c.steps = 20000;
    c.big = 100000;
    c.small = 200;
    c.cli = 200;
    c.repeats = 9;
    c.full_repeats = 3;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--quick") == 0) {
            c.steps = 2000;
            c.big = 10000;
            c.cli = 20;
            c.repeats = 3;
            c.full_repeats = 1;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--work") == 0)
            c.work = v;
        else if (strcmp(a, "--rebound") == 0)
            c.rebound = v;
        else if (strcmp(a, "--steps") == 0)
            c.steps = parse_count(v);
        else if (strcmp(a, "--big") == 0)
            c.big = parse_count(v);
        else if (strcmp(a, "--cli") == 0)
            c.cli = parse_count(v);
        else if (strcmp(a, "--repeats") == 0)
            c.repeats = (int)parse_count(v);
        else if (strcmp(a, "--only") == 0)
            c.only = v;
        else if (strcmp(a, "--full-repeats") == 0)
            c.full_repeats = (int)parse_count(v);
        else
            usage();
        i++;
    }
    if (!c.work)
        usage();
    if (c.repeats > MAX_REPEATS)
        c.repeats = MAX_REPEATS;
    if (c.full_repeats > MAX_REPEATS)
        c.full_repeats = MAX_REPEATS;
    if (mkdir(c.work, 0700) != 0 && errno != EEXIST)
        die("cannot create '%s': %s", c.work, strerror(errno));
    /* The runner reads these; the benchmark wants none of them. */
    unsetenv("REBOUND_EVENT_FD");
    unsetenv("REBOUND_ATTEMPT");
    unsetenv("REBOUND_LAST_FAILURE");

    printf("rebound %s, SQLite %s; %d repeats at NORMAL, %d at FULL; medians\n",
           RB_VERSION_STRING, sqlite3_libversion(), c.repeats, c.full_repeats);
    fflush(stdout);
    if (want(&c, "normal"))
        bench_steps(&c, "normal", c.repeats, &rss_steps);
    if (want(&c, "full"))
        bench_steps(&c, "full", c.full_repeats, NULL);
    store_path(&c, big_dir, sizeof(big_dir), "resume-big", 0);
    if (want(&c, "resume")) {
        bench_resume(&c, c.small, "resume-small", 0, &rss_small);
        bench_resume(&c, c.big, "resume-big", 1, &rss_big);
        bench_rss(&c, &rss_small, &rss_steps, &rss_big);
    }
    if (c.rebound && want(&c, "cli"))
        bench_cli(&c, want(&c, "resume") ? big_dir : NULL);
    rm_store(big_dir);
    printf("\nbench_runner finished in %.0f s\n", now_s() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "steps") == 0)
        return child_steps(argc, argv);
    if (strcmp(argv[1], "bare") == 0)
        return child_bare(argc, argv);
    if (strcmp(argv[1], "resume") == 0)
        return child_resume(argc, argv);
    if (strcmp(argv[1], "all") == 0)
        return parent(argc, argv);
    usage();
    return 2;
}
