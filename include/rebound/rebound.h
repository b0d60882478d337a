/*
 * rebound.h - the public interface of librebound, the durable runner.
 *
 * This header is the library's reference manual. A program opens a store (an
 * SQLite file plus a content-addressed blob folder), opens or resumes a run by
 * id, and wraps each unit of work in rb_step(): a step whose key is already
 * committed in the run returns its recorded output without running again, a
 * cacheable step may be served from the global cache shared by all runs, and
 * anything else runs, is persisted, and returns.
 *
 * Conventions, for every function below:
 * - Functions return enum rb_err; RB_OK is 0. rb_strerror() names a code.
 * - `struct rb_error *err` may be NULL. When it is not and the call fails, it
 *   holds the code, a message, and the cause underneath (errno, SQLite code).
 * - Out-parameters are written only on success; a failed call leaves them,
 *   and the store, as they were.
 * - The library never prints and never exits. Diagnostics go through the log
 *   callback given in struct rb_store_opts.
 * - One handle (store or run) is used by one thread at a time. Open another
 *   store handle per thread; handles in several threads or processes may
 *   share the same store folder.
 */
#ifndef REBOUND_REBOUND_H
#define REBOUND_REBOUND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------
 * Errors
 */

/*
 * The error codes, as one list: X(name, description). New codes are added at
 * the end and none is ever removed, so numeric values are stable.
 */
#define RB_ERR_MAP(X)                                                                    \
    X(OK, "success")                                                                     \
    X(EINVAL, "invalid argument")                                                        \
    X(ENOMEM, "out of memory")                                                           \
    X(EIO, "input/output error")                                                         \
    X(ENOSPC, "no space left on device")                                                 \
    X(ENOENT, "not found")                                                               \
    X(EACCES, "permission denied")                                                       \
    X(ECORRUPT, "store is corrupt")                                                      \
    X(ESCHEMA, "store was written by a newer rebound")                                   \
    X(EBUSY, "store is busy")                                                            \
    X(ESTORE, "store error")                                                             \
    X(ENAME, "invalid name")                                                             \
    X(ESTEP, "step failed")                                                              \
    X(EPARKED, "run is parked for a human")                                              \
    X(ECHILD, "child process error")                                                     \
    X(EEXIST, "already exists")                                                          \
    X(EOOM, "out of memory limit")                                                       \
    X(ETIMEOUT, "step timed out")                                                        \
    X(ECRASH, "step process crashed")                                                    \
    X(EHTTP, "http request failed")

enum rb_err {
#define RB__ERR_ENUM(name, text) RB_##name,
    RB_ERR_MAP(RB__ERR_ENUM)
#undef RB__ERR_ENUM
        RB_ERR_COUNT_
};

/* Returns a static, lowercase description of `code` ("unknown error" if none). */
const char *rb_strerror(enum rb_err code);

/* Returns the static name of `code`, e.g. "RB_ENOSPC". */
const char *rb_err_name(enum rb_err code);

/*
 * A rich error. `cause` is the errno or backend code underneath (0 if none),
 * `cause_kind` says which ("errno", "sqlite", or "" when there is none).
 * `file`, `line` and `column` are set when the error is about a position in an
 * input file (line and column start at 1; 0 means unknown).
 */
struct rb_error {
    enum rb_err code;       /* the library's code */
    int cause;              /* errno or backend code, 0 if none */
    const char *cause_kind; /* "errno", "sqlite" or "" (static string) */
    int line;               /* 1-based line in `file`, or 0 */
    int column;             /* 1-based column in `file`, or 0 */
    char file[256];         /* input file the error is about, or "" */
    char message[512];      /* lowercase, no final period */
};

/* Clears `err` to RB_OK with an empty message. Does nothing on NULL. */
void rb_error_init(struct rb_error *err);

/* Sets `err` (when not NULL) to `code` and a printf-formatted message, and
 * returns `code`: how librebound reports its errors, for code built on it
 * (the fault injectors, the harness, the reports) to do the same. */
enum rb_err rb_error_set(struct rb_error *err, enum rb_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As rb_error_set(), also recording errno `e` as the cause and appending its
 * text, lowercase (": no such file or directory"; for RB_ENOSPC, ": disk
 * full (...)"). */
enum rb_err rb_error_set_errno(struct rb_error *err, enum rb_err code, int e,
                               const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------------
 * Buffers
 */

/* A byte buffer owned by whoever holds it; release with rb_buf_release(). */
struct rb_buf {
    unsigned char *data; /* NUL-terminated for convenience; may hold NULs */
    size_t len;          /* bytes in data, not counting the terminator */
    size_t cap;          /* allocated bytes */
};

/* Sets an empty buffer; allocates nothing. */
void rb_buf_init(struct rb_buf *buf);

/* Frees the contents and leaves an empty buffer. Safe on an empty buffer. */
void rb_buf_release(struct rb_buf *buf);

/* Appends `len` bytes. On RB_ENOMEM the buffer is unaltered. */
enum rb_err rb_buf_append(struct rb_buf *buf, const void *data, size_t len);

/* Appends printf-formatted text (the terminating NUL kept after it). On
 * RB_ENOMEM the buffer is unaltered. */
enum rb_err rb_buf_printf(struct rb_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Cuts the UTF-8 character that a bounded copy split at the end of the
 * NUL-terminated `s`, if any, so that the text stays valid UTF-8 (a JSON
 * string). */
void rb_utf8_trim(char *s);

/* As rb_buf_printf(), with a va_list. */
enum rb_err rb_buf_vprintf(struct rb_buf *buf, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* ------------------------------------------------------------------------
 * Hashes
 */

#define RB_HASH_HEX_LEN 64 /* SHA-256 in lowercase hex, without terminator */

/* Writes the SHA-256 of data[0..len) as 64 hex digits and a NUL into `hex`. */
void rb_hash_hex(const void *data, size_t len, char hex[RB_HASH_HEX_LEN + 1]);

/* ------------------------------------------------------------------------
 * Stores
 */

/*
 * Durability of a committed step.
 * RB_DURABLE_NORMAL (default): SQLite WAL with synchronous=NORMAL. A step
 *   whose rb_step() returned survives a crash or kill of the process; a power
 *   loss or kernel crash may lose the last steps committed before it, but
 *   never leaves the store inconsistent.
 * RB_DURABLE_FULL: synchronous=FULL; the log is flushed to disk at every
 *   commit, so a committed step also survives a power loss. Slower.
 */
enum rb_durability {
    RB_DURABLE_NORMAL = 0,
    RB_DURABLE_FULL = 1,
};

/* Severity of a log message given to the log callback. */
enum rb_log_level {
    RB_LOG_DEBUG = 0,
    RB_LOG_INFO = 1,
    RB_LOG_WARN = 2,
};

/* Log callback: `msg` is borrowed for the duration of the call. */
typedef void (*rb_log_fn)(void *arg, enum rb_log_level level, const char *msg);

/* Options for rb_store_open(); zero-initialised means the defaults. */
struct rb_store_opts {
    enum rb_durability durability; /* default RB_DURABLE_NORMAL */
    size_t inline_max;             /* outputs up to this size stay in the log;
                                      larger ones go to the blob store; 0 means
                                      the default, 4096 */
    int busy_timeout_ms;           /* wait for other writers; 0 means 10000 */
    rb_log_fn log;                 /* may be NULL */
    void *log_arg;                 /* passed to log */
    unsigned flags;                /* RB_STORE_* below */
};

/* Refuse (RB_ENOENT) instead of creating a store folder that does not exist:
 * for tools that only read. */
#define RB_STORE_MUST_EXIST 1u

struct rb_store;

/*
 * Opens the store in folder `dir`, creating the folder (0700), the database
 * `dir/rebound.db` and the blob folder `dir/blobs` (files 0600) when missing,
 * and migrating an older schema. `opts` may be NULL.
 *
 * Returns RB_OK and a new handle in *out, to be closed with rb_store_close().
 * Errors: RB_EACCES (cannot read or create, or the parent folder is missing),
 * RB_ENOENT (missing, with RB_STORE_MUST_EXIST), RB_ESCHEMA (written by a
 * newer rebound; nothing is changed), RB_ECORRUPT (not a rebound store, or
 * damaged), RB_ENOSPC, RB_EIO, RB_EBUSY.
 */
enum rb_err rb_store_open(const char *dir, const struct rb_store_opts *opts,
                          struct rb_store **out, struct rb_error *err);

/* Closes the store. Runs still open on it must be closed first. NULL is fine. */
void rb_store_close(struct rb_store *store);

/* The schema version this library writes. */
int rb_store_schema_version(void);

/* Checks the store's integrity: SQLite's integrity_check, and every blob the
 * log refers to is present with the content its name says. Returns RB_OK, or
 * RB_ECORRUPT with the first problem in err. */
enum rb_err rb_store_check(struct rb_store *store, struct rb_error *err);

/* ------------------------------------------------------------------------
 * Names
 */

#define RB_NAME_MAX 256 /* bytes, for run ids and step keys */

/*
 * Checks a run id or step key: 1 to RB_NAME_MAX bytes of valid UTF-8 with no
 * control characters. Spaces, quotes, slashes and non-ASCII letters are fine.
 * Returns RB_OK or RB_ENAME with the reason in err.
 */
enum rb_err rb_name_check(const char *what, const char *name, struct rb_error *err);

/* ------------------------------------------------------------------------
 * Runs and attempts
 */

/* How an attempt (one process incarnation of a run) ended, as far as known. */
enum rb_end_kind {
    RB_END_NONE = 0,      /* still running, or never recorded */
    RB_END_OK = 1,        /* closed the run cleanly */
    RB_END_EXIT = 2,      /* exited with a non-zero code */
    RB_END_SIGNAL = 3,    /* killed by a signal */
    RB_END_OOM = 4,       /* killed for memory */
    RB_END_PREEMPTED = 5, /* stopped by a preemption notice */
    RB_END_UNKNOWN = 6,   /* vanished without closing: crash or kill */
};

/* Returns the lowercase name of an end kind, e.g. "oom". */
const char *rb_end_kind_name(enum rb_end_kind kind);

/* One attempt record. Strings are owned by the record's owner. */
struct rb_attempt {
    int attempt;             /* 1, 2, ... within the run */
    int64_t started_wall_ms; /* wall clock, Unix ms */
    int64_t ended_wall_ms;   /* 0 while running or unknown */
    int pid;                 /* process that opened the attempt */
    enum rb_end_kind end;    /* how it ended */
    int exit_code;           /* when end is RB_END_EXIT, else -1 */
    int signal;              /* when killed by a signal, else 0 */
    char *detail;            /* JSON object with more (limits, trigger, ...), or NULL */
};

/* Frees the strings of `a`. */
void rb_attempt_release(struct rb_attempt *a);

/* Options for rb_run_open(); zero-initialised means the defaults. */
struct rb_run_opts {
    unsigned flags;           /* RB_RUN_* below */
    int attempt;              /* with RB_RUN_JOIN: the attempt to join (0: latest) */
    int event_fd;             /* 0: no events; else a fd for JSON-line events */
    const char *last_failure; /* JSON from a supervisor about how the previous
                                 attempt ended (REBOUND_LAST_FAILURE), or NULL */
};

/* Start a new attempt on open (default: each open is a new incarnation). */
#define RB_RUN_NEW_ATTEMPT 0u
/* Join an existing attempt instead (several short processes, one incarnation,
 * as `rebound step` does). Creates attempt 1, or opts.attempt, when missing. */
#define RB_RUN_JOIN 1u
/* Open a parked run anyway (for inspection or a human's resume). */
#define RB_RUN_FORCE 2u
/* Do not use the replay log: every step executes again (a deliberately
 * non-durable baseline, for comparisons). Commits are still recorded. */
#define RB_RUN_NO_REPLAY 4u

/*
 * Fills `opts` from the environment: REBOUND_EVENT_FD, REBOUND_ATTEMPT (joins
 * that attempt), REBOUND_LAST_FAILURE, and REBOUND_NO_REPLAY (set, not empty
 * and not "0": adds RB_RUN_NO_REPLAY; `rebound run --baseline no-replay` sets
 * it). Unset variables leave the fields as they were. Returns RB_EINVAL if a
 * variable is malformed.
 */
enum rb_err rb_run_opts_from_env(struct rb_run_opts *opts, struct rb_error *err);

struct rb_run;

/*
 * Opens run `run_id` in `store`, creating it when new. By default this starts
 * a new attempt; the attempt before it, if it never closed, is recorded as
 * ended RB_END_UNKNOWN, or as opts->last_failure says.
 *
 * Returns RB_OK and a new handle in *out (close with rb_run_close()).
 * Errors: RB_ENAME (bad id), RB_EPARKED (parked for a human and not resolved;
 * use RB_RUN_FORCE to open it anyway), store errors as rb_store_open().
 */
enum rb_err rb_run_open(struct rb_store *store, const char *run_id,
                        const struct rb_run_opts *opts, struct rb_run **out,
                        struct rb_error *err);

/* Marks the attempt as ended cleanly (RB_END_OK) and frees the handle. */
void rb_run_close(struct rb_run *run);

/* Frees the handle without marking the attempt ended, as a crash would leave
 * it. For tests and for processes handing the attempt on. NULL is fine. */
void rb_run_abandon(struct rb_run *run);

/* The run id (borrowed) and current attempt number. */
const char *rb_run_id(const struct rb_run *run);
int rb_run_attempt(const struct rb_run *run);

/*
 * Reads how the previous attempt ended: the failure context a new attempt
 * acts on (e.g. retry with more memory). Returns RB_OK and fills *out (release
 * with rb_attempt_release()), or RB_ENOENT when this is the first attempt.
 */
enum rb_err rb_run_last_failure(struct rb_run *run, struct rb_attempt *out,
                                struct rb_error *err);

/*
 * Records how attempt `attempt` of run `run_id` ended, as a supervisor saw it
 * (exit code, signal, OOM, preemption). `detail` is a JSON object or NULL.
 */
enum rb_err rb_store_attempt_end(struct rb_store *store, const char *run_id, int attempt,
                                 enum rb_end_kind end, int exit_code, int signal,
                                 const char *detail, struct rb_error *err);

/* ------------------------------------------------------------------------
 * Steps
 */

/* Where a step's output came from. */
enum rb_source {
    RB_FROM_EXEC = 0,  /* the function ran now */
    RB_FROM_LOG = 1,   /* replayed from this run's log */
    RB_FROM_CACHE = 2, /* served from the global cache */
};

/* Returns "exec", "log" or "cache". */
const char *rb_source_name(enum rb_source src);

/* What the step function is told. */
struct rb_step_ctx {
    struct rb_run *run;     /* the run */
    const char *key;        /* the step key */
    int attempt;            /* the run's attempt number */
    int tries;              /* executions of this step before this one */
    const char *last_error; /* JSON error context of the last failed try, or NULL */
};

/*
 * A step function. It writes its output into `out` (bytes; JSON by
 * convention) and returns RB_OK, or returns an error (typically RB_ESTEP)
 * with the reason in `err`; a failure is recorded with its context and the
 * step runs again on the next call.
 */
typedef enum rb_err (*rb_step_fn)(void *arg, const struct rb_step_ctx *ctx,
                                  struct rb_buf *out, struct rb_error *err);

/* Cache policy of a step. */
enum rb_cache_mode {
    RB_CACHE_OFF = 0, /* never use the global cache (side effects, randomness) */
    RB_CACHE_ON = 1,  /* serve identical calls from the cache, single flight */
};

/* Options for rb_step(); zero-initialised means the defaults. */
struct rb_step_opts {
    const char *kind;          /* "task" by default; part of the cache key */
    const void *input;         /* canonical input bytes, or NULL */
    size_t input_len;          /* bytes in input */
    enum rb_cache_mode cache;  /* default RB_CACHE_OFF */
    const char *version;       /* cache version string; "" by default */
    const char *const *inputs; /* lineage: hashes (hex) of blobs this step used */
    size_t n_inputs;           /* entries in inputs */
    const char *meta;          /* small JSON kept with the record, or NULL */
    int cache_wait_ms;         /* how long to wait for another process computing
                                  the same cached call; 0 means 600000 */
};

/* What happened in a step. */
struct rb_step_info {
    enum rb_source source;                 /* exec, log or cache */
    int64_t seq;                           /* the step's sequence number in the run */
    int attempt;                           /* attempt that committed it */
    char output_hash[RB_HASH_HEX_LEN + 1]; /* SHA-256 of the output */
};

/*
 * Runs a durable step `key` of `run`.
 *
 * If `key` is committed in this run, its recorded output is copied into `out`
 * and `fn` is not called. Otherwise, if opts->cache is RB_CACHE_ON and the
 * global cache holds the same (kind, input, version), the cached output is
 * used; if another process is computing it right now, this call waits for it
 * (single flight). Otherwise `fn` runs; its output is persisted (inline, or in
 * the blob store when large), recorded with lineage, stored in the cache when
 * allowed, and committed. Only then does rb_step() return RB_OK.
 *
 * `out` must be an initialised buffer; on success it holds the output (its
 * previous contents are replaced). `info` may be NULL. `opts` may be NULL.
 *
 * Errors: whatever `fn` returned (the failure is recorded, with err's message
 * as context, and nothing is committed), RB_ENAME, RB_ENOSPC, RB_EIO,
 * RB_EBUSY, RB_ECORRUPT (the committed output's blob is missing or damaged).
 * On error `out` is unaltered.
 */
enum rb_err rb_step(struct rb_run *run, const char *key, const struct rb_step_opts *opts,
                    rb_step_fn fn, void *arg, struct rb_buf *out,
                    struct rb_step_info *info, struct rb_error *err);

/* ------------------------------------------------------------------------
 * Escalations: a run parked for a human
 */

/*
 * Parks `run` for a human: records the reason and `context` (JSON, or NULL)
 * and marks the run parked, so that rb_run_open() refuses it (RB_EPARKED)
 * until rb_store_resolve() is called.
 */
enum rb_err rb_run_park(struct rb_run *run, const char *reason, const char *context,
                        struct rb_error *err);

/* Resolves the open escalation of `run_id` with a human's `note` (may be
 * NULL), so the run can be opened again. RB_ENOENT when none is open. */
enum rb_err rb_store_resolve(struct rb_store *store, const char *run_id, const char *note,
                             struct rb_error *err);

/* ------------------------------------------------------------------------
 * Reading the store (for tools and reports)
 */

/* A run, as listed by rb_store_list_runs(). Borrowed for the callback. */
struct rb_run_summary {
    const char *run_id;
    const char *status; /* "active", "parked" */
    int64_t created_wall_ms;
    int64_t updated_wall_ms;
    int64_t steps;  /* committed steps */
    int64_t failed; /* steps whose last try failed */
    int attempts;
};

/* A step record, as read from the replay log. Borrowed for the callback. */
struct rb_step_record {
    const char *run_id;
    const char *key;
    int64_t seq; /* 0 while not committed */
    const char *kind;
    const char *status; /* "committed" or "failed" */
    int attempt;
    int tries;                   /* executions so far */
    const char *input_hash;      /* hex */
    const char *output_hash;     /* hex, or NULL when not committed */
    const unsigned char *output; /* inline output, or NULL when in a blob */
    size_t output_len;           /* size of the output */
    int cached;                  /* 1 when served from the global cache */
    int64_t start_mono_ns, end_mono_ns;
    int64_t start_wall_ms, end_wall_ms;
    const char *error; /* JSON error context of the last failure, or NULL */
    const char *meta;  /* caller's JSON, or NULL */
};

/* A lineage edge: step `key` of the run read blob `hash` (role "input") or
 * produced it (role "output"). */
struct rb_lineage_edge {
    const char *key;
    const char *role;
    const char *hash;
    const char *producer; /* for inputs: the step of the same run that produced
                             the hash, or NULL */
};

/* An escalation. */
struct rb_escalation {
    int64_t id;
    const char *run_id;
    const char *status; /* "open" or "resolved" */
    const char *reason;
    const char *context; /* JSON, or NULL */
    const char *note;    /* the human's note, or NULL */
    int64_t created_wall_ms;
    int64_t resolved_wall_ms;
};

/* Callbacks return 0 to go on, non-zero to stop early (the call returns RB_OK). */
typedef int (*rb_run_cb)(void *arg, const struct rb_run_summary *run);
typedef int (*rb_step_cb)(void *arg, const struct rb_step_record *rec);
typedef int (*rb_attempt_cb)(void *arg, const struct rb_attempt *a);
typedef int (*rb_lineage_cb)(void *arg, const struct rb_lineage_edge *edge);
typedef int (*rb_escalation_cb)(void *arg, const struct rb_escalation *esc);

/* Lists runs, newest first. */
enum rb_err rb_store_list_runs(struct rb_store *store, rb_run_cb cb, void *arg,
                               struct rb_error *err);

/* Lists the steps of `run_id`: committed ones in seq order, then failed ones.
 * RB_ENOENT when the run does not exist. */
enum rb_err rb_store_read_log(struct rb_store *store, const char *run_id, rb_step_cb cb,
                              void *arg, struct rb_error *err);

/* Lists the attempts of `run_id` in order. */
enum rb_err rb_store_read_attempts(struct rb_store *store, const char *run_id,
                                   rb_attempt_cb cb, void *arg, struct rb_error *err);

/* Lists the lineage edges of `run_id` in step order. */
enum rb_err rb_store_read_lineage(struct rb_store *store, const char *run_id,
                                  rb_lineage_cb cb, void *arg, struct rb_error *err);

/* Lists escalations, open ones first. `only_open` skips resolved ones. */
enum rb_err rb_store_list_escalations(struct rb_store *store, int only_open,
                                      rb_escalation_cb cb, void *arg,
                                      struct rb_error *err);

/* Reads blob `hash` (hex) into `out` (appended). RB_ENOENT if absent,
 * RB_ECORRUPT if its content does not match its name. */
enum rb_err rb_store_read_blob(struct rb_store *store, const char *hash,
                               struct rb_buf *out, struct rb_error *err);

/* Reads the output of a step record (inline or from its blob) into `out`.
 * RB_ECORRUPT when its blob is missing or damaged. */
enum rb_err rb_store_read_output(struct rb_store *store, const struct rb_step_record *rec,
                                 struct rb_buf *out, struct rb_error *err);

/* ------------------------------------------------------------------------
 * Task steps: a step run in a child process with resource limits
 */

/* Options for rb_task_step(); zero-initialised means no limits, no retry. */
struct rb_task_opts {
    struct rb_step_opts step; /* as for rb_step(): kind, input, cache, ... */
    size_t mem_limit;         /* bytes of memory the task may add to what it
                                 starts with (see below); 0: no limit */
    int timeout_ms;           /* wall-clock limit; 0: none */
    int cpu_limit_s;          /* CPU-time limit in seconds (RLIMIT_CPU); 0: none */
    double retry_oom_factor;  /* > 1: after an OOM, try again within the call
                                 with the limit times this, up to mem_cap;
                                 0 or 1: no retry */
    size_t mem_cap;           /* the largest limit a retry may use */
    unsigned flags;           /* RB_TASK_* below */
};

/* Enforce mem_limit by the watchdog alone, without RLIMIT_AS: for tasks in
 * runtimes that reserve much more address space than they use. */
#define RB_TASK_NO_RLIMIT_AS 1u

/*
 * Runs a durable step `key` of `run`, as rb_step() does (replay, global
 * cache, failure recording, events are the same), except that `fn` runs in a
 * child process forked for the purpose, under limits:
 *
 * - memory: the task may add opts->mem_limit bytes of resident memory to
 *   what the child holds when `fn` starts (the caller's memory it inherits
 *   is not counted). The parent samples the child's resident memory every
 *   few milliseconds and kills it (SIGKILL) past the limit; the child's
 *   address space is also capped (RLIMIT_AS) at its size at start plus the
 *   limit, so that allocations beyond it fail — `fn` returning RB_ENOMEM
 *   under that cap counts as an OOM; and a try whose peak resident memory
 *   (as the kernel reports it at exit) went past the limit is an OOM even if
 *   the sampling missed it. A library built with AddressSanitizer, or
 *   RB_TASK_NO_RLIMIT_AS, leaves RLIMIT_AS alone.
 * - CPU time: RLIMIT_CPU; the child gets SIGXCPU at the limit.
 * - wall clock: the parent kills the child (SIGKILL) at opts->timeout_ms.
 *
 * The child writes `fn`'s output (or its error) back through a pipe; the
 * output is persisted and committed in the parent, as for rb_step(). `fn`
 * runs in a copy of the calling process: it must not use the parent's store
 * or run handles (ctx->run is for reading its fields only), its changes to
 * memory are not seen by the caller, and only the calling thread exists in
 * the child (do not rely on locks other threads may hold). Buffered stdout
 * and stderr of the child are flushed when `fn` returns; the caller's
 * unflushed output is not written twice. The child dies with its parent
 * (PR_SET_PDEATHSIG). Processes `fn` starts itself are not watched nor
 * killed. rb_task_step() waits for its child by pid: SIGCHLD must not be
 * ignored, and no other code may reap it.
 *
 * A try that fails is recorded with a JSON failure context that the next try
 * sees as ctx->last_error: rb_step()'s fields (code, message, attempt, try)
 * and "kind" ("oom", "timeout", "cpu", "signal", "exit", or "error" when
 * `fn` itself returned an error), "mechanism" for an OOM ("watchdog",
 * "rlimit_as" or "peak"), "signal" (0 if none), "exit_code" (-1 if none),
 * "limit" (the memory limit of that try, bytes), "rss_peak" (the most
 * resident memory the task added, bytes), "timeout_ms", "cpu_limit_s",
 * "cpu_ms" and "task_pid". Events "task.start" (with task_pid and the
 * limits) and "task.end" (with the same fields as above) are written around
 * each child.
 *
 * With opts->retry_oom_factor > 1, a try that fails with RB_EOOM is tried
 * again within this call with the limit multiplied by the factor, capped at
 * opts->mem_cap, until a try succeeds, fails otherwise, or a try at the cap
 * failed; every failed try is recorded. `opts` may be NULL (no limits).
 *
 * Returns RB_OK as rb_step() does. Errors: RB_EOOM (the last try exceeded
 * its memory limit), RB_ETIMEOUT (wall-clock or CPU limit), RB_ECRASH (the
 * child was killed by a signal, or exited without answering), whatever `fn`
 * returned (its error and message, carried from the child), RB_ECHILD (no
 * child could be started or waited for), RB_EINVAL (bad options: a factor
 * that is negative or not a number, a factor > 1 without a mem_limit, or a
 * mem_cap below mem_limit), and rb_step()'s own errors. err->message says
 * what happened, e.g. "task step 'build' exceeded its memory limit of 32.0
 * MiB (peak 64.2 MiB) and was killed". On error `out` is unaltered.
 */
enum rb_err rb_task_step(struct rb_run *run, const char *key,
                         const struct rb_task_opts *opts, rb_step_fn fn, void *arg,
                         struct rb_buf *out, struct rb_step_info *info,
                         struct rb_error *err);

/* ------------------------------------------------------------------------
 * LLM and tool steps: an HTTP call as a durable step
 */

/*
 * Options for rb_llm_step() and rb_tool_step(); zero-initialised means the
 * defaults. Strings are borrowed for the call.
 */
struct rb_llm_opts {
    const char *base_url;   /* LLM: OpenAI base URL ("http://host:port/v1");
                               NULL: $OPENAI_BASE_URL */
    const char *tools_url;  /* tools: URL the tool's name is appended to
                               ("http://host:port/tools"); NULL: $REBOUND_TOOLS_URL */
    const char *api_key;    /* sent as "Authorization: Bearer KEY" and nowhere
                               else; NULL: $OPENAI_API_KEY (LLM) or
                               $REBOUND_TOOLS_API_KEY (tools); "" or unset: none */
    int cache;              /* 1: use the global cache; -1: never; 0: LLM calls
                               with "temperature": 0 are cached, tools are not */
    int side_effect;        /* tools: 1 when the tool changes the world: never
                               cached, and sent with an Idempotency-Key */
    const char *version;    /* cache version string (as rb_step_opts.version) */
    int connect_timeout_ms; /* per try; 0: 10000 */
    int timeout_ms;         /* per try, the whole exchange; 0: 120000 */
    int max_attempts;       /* tries in all; 0: 5 */
    int backoff_base_ms;    /* first backoff ceiling, doubled each try; 0: 500 */
    int backoff_max_ms;     /* largest backoff ceiling; 0: 30000 */
    int retry_after_max_ms; /* cap on a wait a Retry-After asks for; 0: 60000 */
    uint64_t jitter_seed;   /* 0: seeded from the clock; else the waits are a
                               function of (seed, run, key): for tests */
};

/*
 * Calls an OpenAI-compatible LLM as durable step `key` of `run`: POSTs
 * `request_json` (the caller's OpenAI chat request, a JSON object) to
 * {base_url}/chat/completions and returns the answer's body in `out`.
 *
 * The step is an rb_step() of kind "llm" whose input is the request as
 * canonical JSON (keys sorted, compact) and the URL (without any user:password
 * part), so a step committed in this run is replayed from the log without a
 * request, and a cached call (see opts->cache) is served from the global
 * cache to any run that makes the same request to the same URL.
 *
 * A try that cannot connect, is reset, times out, is cut short, answers with
 * a body that is not JSON, or answers 408, 429 or 5xx is tried again, up to
 * opts->max_attempts tries, after a wait drawn uniformly from
 * [0, min(backoff_max_ms, backoff_base_ms * 2^(tries-1))] (full jitter) or the
 * answer's Retry-After (capped by retry_after_max_ms), whichever is longer.
 * Each wait writes a "step.retry" event (try, reason, http_status, curl_code,
 * wait_ms). Other statuses (400, 401, 404, ...) fail at once.
 *
 * Returns RB_OK with the body in `out` (its contents replaced) and `info` (may
 * be NULL) filled as rb_step() does. Errors: RB_EINVAL (request_json is not a
 * JSON object, or no base URL), RB_EHTTP when the call failed: err's message
 * says how (`llm call 'ask' to 'http://...' failed after 5 tries: http status
 * 503: ...`), err->cause is the last HTTP status (cause_kind "http") or
 * libcurl code (cause_kind "curl"), and the failure recorded in the log holds
 * "http": {"kind", "http_status", "curl_code", "attempts", "retry_after_ms",
 * "url"}, kind being "http", "timeout", "connect", "reset", "truncated",
 * "body" or "request". Store errors as rb_step(). On error `out` is unaltered.
 *
 * The API key never reaches the log, the cache key, events or error messages.
 */
enum rb_err rb_llm_step(struct rb_run *run, const char *key,
                        const struct rb_llm_opts *opts, const char *request_json,
                        struct rb_buf *out, struct rb_step_info *info,
                        struct rb_error *err);

/*
 * Calls tool `tool` (letters, digits, '_', '-', '.') as durable step `key` of
 * `run`: POSTs `args_json` (a JSON object) to {tools_url}/{tool} and returns
 * the answer's body in `out`. As rb_llm_step() in all else, with kind "tool".
 *
 * With opts->side_effect the call is never cached and carries the header
 * `Idempotency-Key: rb-<hex>`, derived from the run id and the step key only:
 * every try of this step, in this attempt or after a restart, sends the same
 * key, so a server that honours it applies the effect once.
 */
enum rb_err rb_tool_step(struct rb_run *run, const char *key,
                         const struct rb_llm_opts *opts, const char *tool,
                         const char *args_json, struct rb_buf *out,
                         struct rb_step_info *info, struct rb_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REBOUND_REBOUND_H */
