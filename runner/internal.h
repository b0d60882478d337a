/*
 * internal.h - what the runner's files share and nothing outside the runner
 * may use: the store backend interface (so another backend can be added
 * without touching rb_step() or the CLI), the blob store, error helpers,
 * clocks and events.
 */
#ifndef REBOUND_RUNNER_INTERNAL_H
#define REBOUND_RUNNER_INTERNAL_H

#include <rebound/rebound.h>

#include <stdarg.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------- */

/* The public rb_error_set() and rb_error_set_errno(), by their old names. */
#define rb__fail rb_error_set
#define rb__fail_errno rb_error_set_errno

/* Maps an errno to the closest code (ENOSPC, EACCES, ENOENT, else EIO). */
enum rb_err rb__err_from_errno(int e);

/* ---- clocks and small helpers ------------------------------------------ */

int64_t rb__mono_ns(void);
int64_t rb__wall_ms(void);

/* Appends `s` to buf as a JSON string literal, quotes included. */
enum rb_err rb__json_str(struct rb_buf *buf, const char *s);

/* printf into buf (appended): the public rb_buf_printf(). */
#define rb__buf_printf rb_buf_printf

/* strdup that tolerates NULL (returns NULL). */
char *rb__strdup(const char *s);

/* ---- blob store (content-addressed files under <store>/blobs) ---------- */

struct rb_blobs {
    char *dir;    /* <store>/blobs */
    int sync_dir; /* fsync the folder after rename (FULL durability) */
};

enum rb_err rb__blobs_init(struct rb_blobs *b, const char *store_dir, int sync_dir,
                           struct rb_error *err);
void rb__blobs_release(struct rb_blobs *b);

/* Writes data as blob named by its hash (hex, given) if not present yet:
 * temp file, fsync, rename. */
enum rb_err rb__blob_put(struct rb_blobs *b, const char *hash, const void *data,
                         size_t len, struct rb_error *err);

/* Reads blob `hash` (appended to out), verifying its content. */
enum rb_err rb__blob_get(struct rb_blobs *b, const char *hash, struct rb_buf *out,
                         struct rb_error *err);

/* 1 when blob `hash` exists. */
int rb__blob_exists(struct rb_blobs *b, const char *hash);

/* ---- store backend interface ------------------------------------------- */

/* Result of a cache claim. */
enum rb__claim {
    RB__CLAIM_DONE = 0, /* value present: hash and size filled */
    RB__CLAIM_MINE = 1, /* this owner now computes it */
    RB__CLAIM_BUSY = 2, /* another owner computes it: owner filled */
};

struct rb__claim_result {
    enum rb__claim state;
    char hash[RB_HASH_HEX_LEN + 1]; /* DONE: the value's blob */
    int64_t size;                   /* DONE: its size */
    char owner[128];                /* BUSY: who computes it */
    int64_t claimed_wall_ms;        /* BUSY: since when */
};

/* What a backend implements. `be` is the backend's own state. Every call is
 * atomic: it commits whole or changes nothing. */
struct rb_store_ops {
    const char *name;
    void (*close)(void *be);
    enum rb_err (*check)(void *be, struct rb_error *err);

    /* Creates the run if new, refuses a parked run unless RB_RUN_FORCE, and
     * starts or joins an attempt (see rb_run_open()); writes it to *attempt.
     * An earlier attempt left open is closed as prev_end says (end, exit_code,
     * signal, detail). */
    enum rb_err (*run_begin)(void *be, const char *run_id, unsigned flags,
                             int join_attempt, int pid, const struct rb_attempt *prev_end,
                             int *attempt, struct rb_error *err);
    enum rb_err (*attempt_end)(void *be, const char *run_id, int attempt,
                               enum rb_end_kind end, int exit_code, int signal,
                               const char *detail, int only_if_open,
                               struct rb_error *err);
    /* The latest attempt before `attempt`; RB_ENOENT when none. */
    enum rb_err (*attempt_prev)(void *be, const char *run_id, int attempt,
                                struct rb_attempt *out, struct rb_error *err);

    /* Calls cb with the record of step key (committed or failed) if any;
     * *found says whether there was one. */
    enum rb_err (*step_get)(void *be, const char *run_id, const char *key, rb_step_cb cb,
                            void *arg, int *found, struct rb_error *err);
    /* Commits rec (status "committed"), its lineage inputs and, when
     * cache_key is not NULL, the cache entry, in one transaction. Assigns and
     * returns the seq. RB_EEXIST when the key was committed meanwhile (and
     * overwrite is 0): nothing is written. */
    enum rb_err (*step_commit)(void *be, const struct rb_step_record *rec,
                               const char *const *inputs, size_t n_inputs,
                               const char *cache_key, int overwrite, int64_t *seq,
                               struct rb_error *err);
    /* Records a failed try of rec->key with rec->error as context. */
    enum rb_err (*step_fail)(void *be, const struct rb_step_record *rec,
                             struct rb_error *err);

    enum rb_err (*cache_claim)(void *be, const char *cache_key, const char *kind,
                               const char *owner, const char *steal_from,
                               struct rb__claim_result *out, struct rb_error *err);
    enum rb_err (*cache_release)(void *be, const char *cache_key, const char *owner,
                                 struct rb_error *err);
    /* Forgets a cache entry whose blob is gone. */
    enum rb_err (*cache_drop)(void *be, const char *cache_key, struct rb_error *err);

    enum rb_err (*park)(void *be, const char *run_id, const char *reason,
                        const char *context, struct rb_error *err);
    enum rb_err (*resolve)(void *be, const char *run_id, const char *note,
                           struct rb_error *err);

    enum rb_err (*list_runs)(void *be, rb_run_cb cb, void *arg, struct rb_error *err);
    enum rb_err (*read_log)(void *be, const char *run_id, rb_step_cb cb, void *arg,
                            struct rb_error *err);
    enum rb_err (*read_attempts)(void *be, const char *run_id, rb_attempt_cb cb,
                                 void *arg, struct rb_error *err);
    enum rb_err (*read_lineage)(void *be, const char *run_id, rb_lineage_cb cb, void *arg,
                                struct rb_error *err);
    enum rb_err (*list_escalations)(void *be, int only_open, rb_escalation_cb cb,
                                    void *arg, struct rb_error *err);
};

struct rb_store {
    const struct rb_store_ops *ops; /* the backend */
    void *be;                       /* the backend's state */
    char *dir;                      /* store folder */
    struct rb_blobs blobs;          /* blob store */
    struct rb_store_opts opts;      /* options, defaults filled in */
};

struct rb_run {
    struct rb_store *store; /* borrowed */
    char *run_id;           /* owned */
    int attempt;            /* current attempt */
    unsigned flags;         /* RB_RUN_* given at open */
    int event_fd;           /* 0 when events are off */
    char owner[128];        /* cache owner id: pid:start@host */
    char *fail_extra;       /* set by a step function of the runner itself
                               (task.c) before it fails: JSON members that
                               rb_step() adds to the failure context it
                               records; rb_step() takes and frees it */
};

/* The SQLite backend: opens <dir>/rebound.db. */
enum rb_err rb__sqlite_open(const char *dir, const struct rb_store_opts *opts,
                            const struct rb_store_ops **ops, void **be,
                            struct rb_error *err);

/* ---- events ------------------------------------------------------------- */

/* Writes one JSON-line event to the run's event fd, if any:
 * {"t":ns,"kind":kind,"run":..,"step":..,"attempt":..[,extra]}. `extra` is a
 * preformatted JSON fragment ("\"seq\":3") or NULL. Errors are ignored: an
 * observer going away must not stop the agent. */
void rb__event(struct rb_run *run, const char *kind, const char *step, const char *extra);

/* 1 when the process named by a cache owner id is known to be gone. */
int rb__owner_dead(const char *owner);

/* Builds this process's owner id into buf. */
void rb__owner_self(char *buf, size_t size);

#endif /* REBOUND_RUNNER_INTERNAL_H */
