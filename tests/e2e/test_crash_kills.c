/*
 * test_crash_kills.c - crash safety of the replay log under SIGKILL at random
 * moments. A writer process (crash_writer.c) records steps with librebound
 * and reports each commit after rb_step() returns; this test kills it with
 * SIGKILL at a seeded random moment, starts it again on the same run, and does
 * so at least 200 times: some kills land while the store opens, most while
 * steps are recorded, and at least 20 between a blob-sized output being made
 * and its commit being reported (the blob write path). Then one clean run
 * replays the whole log and goes on, and the test checks, through the library
 * and through the CLI, that every step reported committed is in the log with
 * its exact output and seq, that no key or seq appears twice, that the log
 * has no gaps, and that `rebound check` finds the store sound. Every fourth
 * step goes through the global cache, so kills leave cache claims pending
 * that the next process must take over (a wait for a dead owner fails the
 * writer after 10 s).
 *
 * REBOUND_SEED=N repeats the schedule of kill delays. The store is left in place on
 * failure.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "crash_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CRASH_WRITER_PATH
#error "CRASH_WRITER_PATH must name the crash_writer program"
#endif

#define RUN_ID "crash run"
#define MIN_KILLS 200
#define MIN_BLOB_KILLS 20
#define MAX_ROUNDS 1500
#define TIME_BUDGET_NS (45LL * 1000000000LL) /* for the kill rounds */
#define HANG_GUARD_NS (20LL * 1000000000LL)  /* any single wait */

extern char **environ;

static uint64_t seed;
static char tmpdir[4096];
static pid_t writer_pid; /* the writer running now, killed by fail() */

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t n)
{
    rng_state = crash_mix(rng_state);
    return n ? rng_state % n : 0;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;

    if (writer_pid > 0)
        kill(writer_pid, SIGKILL);
    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(seed %llu: REBOUND_SEED=%llu repeats it; store left in %s)\n",
            (unsigned long long)seed, (unsigned long long)seed, tmpdir);
    exit(1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- what the test knows from the reports ---------------------------------- */

struct known {
    long long *seq;    /* seq reported for index i, 0 if never reported */
    long cap;          /* entries in seq */
    long max_reported; /* highest index reported, -1 if none */
    long kills;        /* rounds ended by our SIGKILL */
    long blob_kills;   /* kills between a blob-sized output and its commit */
    long ready_rounds; /* rounds whose writer opened the run */
    long replays;      /* commits reported with source "log" */
    long early_kills;  /* kills before the run was open */
    long reports;      /* commit reports in all */
};

static void known_set(struct known *k, long i, long long seq)
{
    if (i >= k->cap) {
        long cap = k->cap ? k->cap : 4096;
        long long *p;

        while (cap <= i)
            cap *= 2;
        p = realloc(k->seq, (size_t)cap * sizeof(*p));
        if (!p)
            fail("out of memory");
        memset(p + k->cap, 0, (size_t)(cap - k->cap) * sizeof(*p));
        k->seq = p;
        k->cap = cap;
    }
    if (k->seq[i] && k->seq[i] != seq)
        fail("step %ld was reported committed with seq %lld, and later with seq %lld", i,
             k->seq[i], seq);
    k->seq[i] = seq;
    if (i > k->max_reported)
        k->max_reported = i;
}

/* ---- one writer process ------------------------------------------------------ */

struct kid {
    pid_t pid;
    int fd;            /* read end of the report pipe, -1 at EOF */
    char buf[8192];    /* partial line */
    size_t len;        /* bytes in buf */
    int ready;         /* "R" seen */
    int blob_seen;     /* a "B" seen this round */
    long blob_pending; /* index of a "B" not yet followed by its "C", or -1 */
    long next;         /* index the next "C" must have */
};

static void start_writer(struct kid *w, const char *store, long first, long last,
                         long known)
{
    char a_first[32], a_last[32], a_known[32];
    char *argv[] = {CRASH_WRITER_PATH, (char *)store, RUN_ID, a_first, a_last,
                    a_known,           NULL};
    int p[2];

    snprintf(a_first, sizeof(a_first), "%ld", first);
    snprintf(a_last, sizeof(a_last), "%ld", last);
    snprintf(a_known, sizeof(a_known), "%ld", known);
    if (pipe2(p, O_CLOEXEC) != 0)
        fail("cannot create a pipe: %s", strerror(errno));
    memset(w, 0, sizeof(*w));
    w->blob_pending = -1;
    w->next = first;
    w->pid = fork();
    if (w->pid < 0)
        fail("cannot fork: %s", strerror(errno));
    if (w->pid == 0) {
        /* dup2 clears FD_CLOEXEC on the copy, so fd 3 survives exec. */
        if (dup2(p[1], CRASH_REPORT_FD) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    w->fd = p[0];
    writer_pid = w->pid;
}

static void handle_line(struct kid *w, struct known *k, const char *line)
{
    long i;
    long long seq;
    char src[16];
    int attempt;

    if (sscanf(line, "R %d", &attempt) == 1) {
        w->ready = 1;
    } else if (sscanf(line, "B %ld", &i) == 1) {
        w->blob_seen = 1;
        w->blob_pending = i;
    } else if (sscanf(line, "C %ld %lld %15s", &i, &seq, src) == 3) {
        if (i != w->next)
            fail("the writer reported step %ld committed where step %ld was next", i,
                 w->next);
        if (seq != i + 1)
            fail("step %ld was committed with seq %lld; steps are recorded in order, "
                 "so its seq must be %ld",
                 i, seq, i + 1);
        known_set(k, i, seq);
        w->next++;
        k->reports++;
        if (strcmp(src, "log") == 0)
            k->replays++;
        if (w->blob_pending == i)
            w->blob_pending = -1;
    } else {
        fail("unexpected report line from the writer: '%s'", line);
    }
}

/* Reads reports until `deadline` (monotonic ns), EOF, or `*flag` is set (flag
 * may be NULL). Returns 1 if *flag got set. */
static int pump(struct kid *w, struct known *k, int64_t deadline, const int *flag)
{
    for (;;) {
        struct pollfd pfd = {w->fd, POLLIN, 0};
        int64_t left = deadline - now_ns();
        ssize_t n;
        char *nl;
        int pr;

        if (flag && *flag)
            return 1;
        if (w->fd < 0 || left <= 0)
            return 0;
        pr = poll(&pfd, 1, (int)(left / 1000000 + 1 > 1000 ? 1000 : left / 1000000 + 1));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            fail("poll: %s", strerror(errno));
        if (pr == 0)
            continue;
        n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("reading the writer's reports: %s", strerror(errno));
        if (n == 0) {
            close(w->fd);
            w->fd = -1;
            continue;
        }
        w->len += (size_t)n;
        w->buf[w->len] = '\0';
        while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
            size_t used = (size_t)(nl - w->buf) + 1;

            *nl = '\0';
            handle_line(w, k, w->buf);
            memmove(w->buf, w->buf + used, w->len - used);
            w->len -= used;
        }
        if (w->len == sizeof(w->buf) - 1)
            fail("a report line from the writer is too long");
    }
}

/* Waits for the writer to end (all reports read); returns its wait status. */
static int reap(struct kid *w, struct known *k)
{
    int64_t deadline = now_ns() + HANG_GUARD_NS;
    int status = 0;
    pid_t r;

    pump(w, k, deadline, NULL);
    if (w->fd >= 0)
        fail("the writer's report pipe stayed open %lld s after its end",
             HANG_GUARD_NS / 1000000000LL);
    if (w->len)
        fail("the writer left half a report line: '%.*s' (a report must be one write)",
             (int)w->len, w->buf);
    do {
        r = waitpid(w->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r != w->pid)
        fail("waitpid: %s", strerror(errno));
    writer_pid = 0;
    return status;
}

static void sleep_until(struct kid *w, struct known *k, int64_t deadline)
{
    pump(w, k, deadline, NULL);
    while (now_ns() < deadline) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

/* Reads reports until `*flag` is set; fails if the writer ends first or the
 * hang guard passes. */
static void wait_for(struct kid *w, struct known *k, const int *flag, const char *what)
{
    int status;

    if (pump(w, k, now_ns() + HANG_GUARD_NS, flag))
        return;
    if (w->fd >= 0) {
        kill(w->pid, SIGKILL);
        reap(w, k);
        fail("the writer did not %s within %lld s", what, HANG_GUARD_NS / 1000000000LL);
    }
    status = reap(w, k);
    fail("the writer ended by itself (status 0x%x) before it could %s; see its message "
         "above",
         status, what);
}

/* One round: start the writer, kill it at a random moment, collect. */
static void kill_round(const char *store, struct known *k, int round, int want_blob)
{
    struct kid w;
    long first = k->max_reported >= 2 ? k->max_reported - 2 : 0;
    int mode, status;
    int64_t t0;

    /* A: from the start (the store and run opening); B: while steps are
     * recorded; C: right after a blob-sized output was made. */
    mode = (int)rnd(100);
    if (round == 0)
        mode = 0;
    else if (want_blob)
        mode = 99;
    t0 = now_ns();
    start_writer(&w, store, first, CRASH_MAX_STEPS, k->max_reported);
    if (mode < 15) {
        sleep_until(&w, k, t0 + (int64_t)rnd(8000) * 1000);
    } else {
        wait_for(&w, k, &w.ready, "open the run");
        if (mode >= 55)
            wait_for(&w, k, &w.blob_seen, "make a blob-sized output");
        sleep_until(&w, k, now_ns() + (int64_t)rnd(mode >= 55 ? 1500 : 6000) * 1000);
    }
    if (kill(w.pid, SIGKILL) != 0)
        fail("kill: %s", strerror(errno));
    status = reap(&w, k);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail("round %d: the writer ended by itself (status 0x%x) before it was killed; "
             "see its message above",
             round, status);
    k->kills++;
    if (!w.ready)
        k->early_kills++;
    else
        k->ready_rounds++;
    if (w.blob_pending >= 0)
        k->blob_kills++;
}

/* ---- checks at the end ------------------------------------------------------- */

struct log_check {
    struct rb_store *store;
    struct known *k;
    unsigned char *seen; /* per index */
    long n;              /* records */
    long max_index;
    long blobs; /* outputs held in the blob store */
    long bad;
};

static int check_record(void *arg, const struct rb_step_record *r)
{
    struct log_check *c = arg;
    struct rb_buf got, want;
    struct rb_error err;
    long i;
    char key[32], *end = NULL;

    if (r->key[0] != 'k')
        fail("unexpected step key '%s' in the log", r->key);
    i = strtol(r->key + 1, &end, 10);
    snprintf(key, sizeof(key), CRASH_KEY_FMT, i);
    if (!end || *end || i < 0 || i >= CRASH_MAX_STEPS || strcmp(key, r->key) != 0)
        fail("unexpected step key '%s' in the log", r->key);
    if (strcmp(r->status, "committed") != 0)
        fail("step '%s' is in the log as '%s'; the writer never fails a step", r->key,
             r->status);
    if (c->seen[i])
        fail("step '%s' appears twice in the log", r->key);
    c->seen[i] = 1;
    if (r->seq != i + 1)
        fail("step '%s' has seq %lld in the log; it must be %ld", r->key,
             (long long)r->seq, i + 1);
    if (i < c->k->cap && c->k->seq[i] && c->k->seq[i] != r->seq)
        fail("step '%s' was reported with seq %lld, the log has %lld", r->key,
             c->k->seq[i], (long long)r->seq);
    rb_buf_init(&got);
    rb_buf_init(&want);
    rb_error_init(&err);
    if (rb_store_read_output(c->store, r, &got, &err) != RB_OK)
        fail("cannot read the output of step '%s': %s", r->key, err.message);
    if (crash_output(i, &want) != RB_OK)
        fail("out of memory");
    if (got.len != want.len || memcmp(got.data, want.data, want.len) != 0)
        fail("step '%s' has %zu bytes of output in the log; the exact %zu bytes it "
             "produced were expected",
             r->key, got.len, want.len);
    if (!r->output)
        c->blobs++;
    rb_buf_release(&got);
    rb_buf_release(&want);
    if (i > c->max_index)
        c->max_index = i;
    c->n++;
    return 0;
}

struct attempt_check {
    int n;
    int open_or_ok_before_last; /* attempts before the last that look clean */
    int last_end;
};

static int check_attempt(void *arg, const struct rb_attempt *a)
{
    struct attempt_check *c = arg;

    if (c->n && (c->last_end == RB_END_NONE || c->last_end == RB_END_OK))
        c->open_or_ok_before_last++;
    c->n++;
    c->last_end = a->end;
    return 0;
}

/* Runs `rebound ARGS...` with stdout into `out_path` (or /dev/null); returns its
 * exit status, or -1 if it did not exit normally. */
static int run_cli(const char *out_path, char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status = 0, rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO,
                                     out_path ? out_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail("cannot run '%s': %s", argv[0], strerror(rc));
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_store(const char *store, struct known *k, long last)
{
    struct rb_store *st = NULL;
    struct rb_error err;
    struct log_check c;
    struct attempt_check a = {0, 0, 0};
    long i;

    rb_error_init(&err);
    if (rb_store_open(store, NULL, &st, &err) != RB_OK)
        fail("the store does not open after the kills: %s", err.message);
    memset(&c, 0, sizeof(c));
    c.store = st;
    c.k = k;
    c.max_index = -1;
    c.seen = calloc((size_t)last + 1, 1);
    if (!c.seen)
        fail("out of memory");
    if (rb_store_check(st, &err) != RB_OK)
        fail("rb_store_check: %s", err.message);
    if (rb_store_read_log(st, RUN_ID, check_record, &c, &err) != RB_OK)
        fail("cannot read the log: %s", err.message);
    for (i = 0; i <= k->max_reported; i++)
        if (!c.seen[i])
            fail("step %ld was reported committed but is not in the log", i);
    if (c.n != c.max_index + 1 || c.max_index != last - 1)
        fail("the log holds %ld steps, highest index %ld; steps 0 to %ld, each once, "
             "were expected",
             c.n, c.max_index, last - 1);
    if (rb_store_read_attempts(st, RUN_ID, check_attempt, &a, &err) != RB_OK)
        fail("cannot read the attempts: %s", err.message);
    if (a.n < k->ready_rounds + 1 || a.n > k->kills + 1)
        fail("the run has %d attempts; between %ld (rounds that opened the run, plus "
             "the clean one) and %ld were expected",
             a.n, k->ready_rounds + 1, k->kills + 1);
    if (a.open_or_ok_before_last)
        fail("%d killed attempts are recorded as open or ended ok; a later attempt "
             "must record them as ended unknown",
             a.open_or_ok_before_last);
    if (a.last_end != RB_END_OK)
        fail("the last, clean attempt is recorded as '%s', not 'ok'",
             rb_end_kind_name((enum rb_end_kind)a.last_end));
    printf("log: %ld steps, %ld of them in blobs; %d attempts\n", c.n, c.blobs, a.n);
    free(c.seen);
    rb_store_close(st);
}

/* The same checks through the CLI: `rebound check` and `rebound log --json`. */
static void check_cli(const char *rebound, const char *store, long last)
{
    char out_path[4200];
    char *check_argv[] = {(char *)rebound, "check", "--store", (char *)store, NULL};
    char *log_argv[] = {(char *)rebound, "log",  "--json", "--store",
                        (char *)store,   RUN_ID, NULL};
    json_error_t jerr;
    json_t *doc, *steps, *s;
    unsigned char *seqs;
    struct rb_buf want;
    size_t idx;
    int code;

    code = run_cli(NULL, check_argv);
    if (code != 0)
        fail("'rebound check' exited %d after the kills; 0 (sound) was expected", code);
    snprintf(out_path, sizeof(out_path), "%s/log.json", tmpdir);
    code = run_cli(out_path, log_argv);
    if (code != 0)
        fail("'rebound log --json' exited %d", code);
    doc = json_load_file(out_path, 0, &jerr);
    if (!doc)
        fail("'rebound log --json' printed invalid JSON: %s (line %d)", jerr.text,
             jerr.line);
    steps = json_object_get(doc, "steps");
    if (!json_is_array(steps) || json_array_size(steps) != (size_t)last)
        fail("'rebound log --json' lists %zu steps; %ld were expected",
             json_is_array(steps) ? json_array_size(steps) : 0, last);
    seqs = calloc((size_t)last + 2, 1);
    if (!seqs)
        fail("out of memory");
    json_array_foreach(steps, idx, s)
    {
        json_int_t seq = json_integer_value(json_object_get(s, "seq"));
        const char *key = json_string_value(json_object_get(s, "step"));
        const char *status = json_string_value(json_object_get(s, "status"));
        json_t *output = json_object_get(s, "output");
        long i;

        if (seq < 1 || seq > last || seqs[seq])
            fail("'rebound log --json': seq %lld is out of range or appears twice",
                 (long long)seq);
        seqs[seq] = 1;
        i = (long)seq - 1;
        rb_buf_init(&want);
        if (crash_output(i, &want) != RB_OK)
            fail("out of memory");
        if (!key || !status || strcmp(status, "committed") != 0 ||
            !json_is_string(output) || json_string_length(output) != want.len ||
            memcmp(json_string_value(output), want.data, want.len) != 0)
            fail("'rebound log --json': the entry with seq %lld (step '%s', status "
                 "'%s') does not hold step %ld's exact output",
                 (long long)seq, key ? key : "?", status ? status : "?", i);
        rb_buf_release(&want);
    }
    free(seqs);
    json_decref(doc);
}

/* Entries in a folder besides . and .., or 0 if it cannot be read. */
static long count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    long n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

int main(void)
{
    const char *env_seed = getenv("REBOUND_SEED");
    const char *rebound = getenv("REBOUND");
    const char *base = getenv("TMPDIR");
    char store[4200];
    struct known k;
    struct kid w;
    int64_t t0 = now_ns(), t_rounds;
    int round, status;
    long last;

    if (!rebound || !*rebound)
        fail("REBOUND (the path of the rebound CLI) is not set; run through ctest");
    seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 10)
                                 : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    rng_state = seed;
    snprintf(tmpdir, sizeof(tmpdir), "%s/rebound-crash-XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        fail("cannot create a temp folder: %s", strerror(errno));
    snprintf(store, sizeof(store), "%s/store", tmpdir);
    printf("seed %llu (REBOUND_SEED=%llu repeats it); store %s\n",
           (unsigned long long)seed, (unsigned long long)seed, store);
    fflush(stdout);

    memset(&k, 0, sizeof(k));
    k.max_reported = -1;
    for (round = 0; k.kills < MIN_KILLS || k.blob_kills < MIN_BLOB_KILLS; round++) {
        if (round >= MAX_ROUNDS || now_ns() - t0 > TIME_BUDGET_NS)
            fail("after %d rounds and %.1f s: %ld kills, %ld of them in the blob write "
                 "path; %d and %d were wanted",
                 round, (double)(now_ns() - t0) / 1e9, k.kills, k.blob_kills, MIN_KILLS,
                 MIN_BLOB_KILLS);
        kill_round(store, &k, round, k.kills >= MIN_KILLS);
    }
    t_rounds = now_ns() - t0;
    printf("%ld kills in %.1f s: %ld before the run was open, %ld in the blob write "
           "path; %ld commits reported (%ld replayed from the log), highest step %ld\n",
           k.kills, (double)t_rounds / 1e9, k.early_kills, k.blob_kills, k.reports,
           k.replays, k.max_reported);

    /* A clean run: replays everything reported, then records 20 new steps. */
    last = k.max_reported + 21;
    start_writer(&w, store, 0, last, k.max_reported);
    status = reap(&w, &k);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the clean run after the kills failed (status 0x%x); see its message above",
             status);
    if (w.next != last)
        fail("the clean run reported steps up to %ld; up to %ld were expected",
             w.next - 1, last - 1);

    check_store(store, &k, last);
    check_cli(rebound, store, last);
    snprintf(store, sizeof(store), "%s/store/blobs/tmp", tmpdir);
    printf("blob temp files left by kills: %ld (harmless: never referenced)\n",
           count_dir(store));
    printf("ok: every reported step is in the log once, with its exact output; "
           "store sound (%.1f s)\n",
           (double)(now_ns() - t0) / 1e9);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(k.seq);
    return 0;
}
