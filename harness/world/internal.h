/*
 * internal.h - what the world's files share and nothing outside harness/world
 * may use: the world's state behind one lock, the answer a route handler
 * builds, and the helpers for hashing, canonical JSON, seeded draws and a
 * small string map.
 */
#ifndef REBOUND_WORLD_INTERNAL_H
#define REBOUND_WORLD_INTERNAL_H

#include "world.h"

#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>

struct MHD_Daemon;

/* ---- small helpers (det.c) ---------------------------------------------- */

/* Sets err (may be NULL) and returns code; the message is printf-formatted. */
#define rb__world_fail rb_error_set /* librebound's, by this module's name */

int64_t rb__world_now_ns(void); /* CLOCK_MONOTONIC */

/* printf appended to buf. */
#define rb__world_printf rb_buf_printf

/* Appends the string s (without its terminator). */
enum rb_err rb__world_lit(struct rb_buf *buf, const char *s);

/* Copies src into dst[size], truncated and always terminated. */
void rb__world_copy(char *dst, size_t size, const char *src);

/* Appends s[0..len) as a JSON string literal, quotes included, escaped as
 * jansson does (UTF-8 passes through). */
enum rb_err rb__world_json_str(struct rb_buf *buf, const char *s, size_t len);

/* Appends bytes as a JSON string literal, quotes included; bytes that are not
 * UTF-8 become U+FFFD, so the result is always valid JSON. */
enum rb_err rb__world_json_text(struct rb_buf *buf, const void *data, size_t len);

/* `j` as canonical JSON (compact, keys sorted): a new malloc'd string, or
 * NULL when out of memory. */
char *rb__world_canonical(const json_t *j);

/* SHA-256 hex of the canonical JSON of `j` into hex; RB_ENOMEM on failure. */
enum rb_err rb__world_hash_json(const json_t *j, char hex[RB_HASH_HEX_LEN + 1]);

/* A seeded generator (splitmix64). */
struct rb__world_rng {
    uint64_t state;
};

/* Seeds from a hex digest (its first 16 digits) mixed with `salt`. */
void rb__world_rng_seed(struct rb__world_rng *r, const char *hex, uint64_t salt);
uint64_t rb__world_rng_next(struct rb__world_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rb__world_rng_below(struct rb__world_rng *r, uint64_t n);
/* Appends `n` words drawn from r, separated by spaces. */
enum rb_err rb__world_words(struct rb__world_rng *r, int n, struct rb_buf *out);

/* A string -> size_t map (open addressing; keys copied). */
struct rb__world_map {
    char **keys;
    size_t *vals;
    size_t cap; /* slots, a power of two, or 0 */
    size_t len; /* keys held */
};

void rb__world_map_init(struct rb__world_map *m);
void rb__world_map_release(struct rb__world_map *m);
/* 1 and *val when key is present, else 0. */
int rb__world_map_get(const struct rb__world_map *m, const char *key, size_t *val);
/* Adds or replaces. RB_ENOMEM leaves the map unaltered. */
enum rb_err rb__world_map_put(struct rb__world_map *m, const char *key, size_t val);

/* ---- the answer a route builds ------------------------------------------- */

struct rb__world_reply {
    int status;                     /* HTTP status */
    struct rb_buf body;             /* the body */
    const char *content_type;       /* static */
    int sse;                        /* body is server-sent events ("...\n\n" each) */
    int retry_after_s;              /* >= 0: send Retry-After */
    int replayed;                   /* tools: answered from an Idempotency-Key */
    int effect;                     /* tools: this call took effect */
    int64_t latency_ms;             /* pause before answering */
    char hash[RB_HASH_HEX_LEN + 1]; /* history or arguments hash for the journal */
    int turn, prompt_tokens, completion_tokens;
    char tool[RB_WORLD_TOOL_MAX];
};

void rb__world_reply_init(struct rb__world_reply *rep);
void rb__world_reply_release(struct rb__world_reply *rep);

/* Sets rep to `status` with the OpenAI error body
 * {"error":{"message","type","param","code"}} (param and code may be NULL:
 * null); RB_ENOMEM on failure. */
enum rb_err rb__world_reply_error(struct rb__world_reply *rep, int status,
                                  const char *message, const char *type,
                                  const char *param, const char *code);

/* Sets rep to 200 with the JSON of `j` (compact, in insertion order). */
enum rb_err rb__world_reply_json(struct rb__world_reply *rep, int status,
                                 const json_t *j);

/* ---- faults (faults.c) --------------------------------------------------- */

struct rb__world_fault_slot {
    int id;
    struct rb_world_fault f;
    int64_t added_ns; /* monotonic time it was added */
    int64_t seen;     /* matching calls so far (for the seeded share) */
    int64_t hits;     /* calls hit so far */
    int healed;       /* 1 once healed; kept for rb_world_fault_hits() */
};

struct rb__world_faults {
    struct rb__world_fault_slot *slots;
    size_t len, cap;
    int next_id;
};

/* A fault that hit a call: a copy of the fault and its id; kind 0 = none. */
struct rb__world_hit {
    int id;
    struct rb_world_fault f;
};

void rb__world_faults_release(struct rb__world_faults *t);

/* Picks the fault that hits a call to `route`, counting it (lock held). */
void rb__world_faults_pick(struct rb_world *w, const char *route,
                           struct rb__world_hit *hit);

/* 1 when a refused fault is active now (lock held); *until_ns its end, or 0
 * when it has none. */
int rb__world_faults_refused(struct rb_world *w, int64_t now, int64_t *until_ns);

/* 1 while fault `id` is active by time and not healed (lock held). */
int rb__world_fault_alive(struct rb_world *w, int id, int64_t now);

/* Parses one fault object or an array of them into a new array (*out, *n). */
enum rb_err rb__world_faults_parse(const json_t *j, struct rb_world_fault **out,
                                   size_t *n, struct rb_error *err);

/* rb_world_faults_add_json(); with `remote` (the control endpoint), a
 * refused fault must have a span. */
enum rb_err rb__world_faults_add_json(struct rb_world *w, const char *json, int remote,
                                      int *ids, size_t max_ids, size_t *n_ids,
                                      struct rb_error *err);

/* The faults as a new JSON array (lock held). */
json_t *rb__world_faults_json(struct rb_world *w);

/* ---- journal (journal.c) ------------------------------------------------- */

struct rb__world_journal {
    struct rb_world_entry *entries;
    size_t len, cap;
    struct rb__world_map seen; /* "route hash" -> seq of the first */
    FILE *file;                /* JSON lines, or NULL */
    char *path;                /* for error messages */
    int file_error;            /* errno of the first failed write, or 0 */
};

enum rb_err rb__world_journal_open(struct rb__world_journal *j, const char *path,
                                   struct rb_error *err);
void rb__world_journal_close(struct rb__world_journal *j);

/* Starts an entry (lock held); returns its index or SIZE_MAX when out of
 * memory. */
size_t rb__world_journal_begin(struct rb_world *w, const char *method, const char *route,
                               int64_t start_ns);

/* Records what the route handler found (lock held). */
void rb__world_journal_describe(struct rb_world *w, size_t idx,
                                const struct rb__world_reply *rep,
                                const struct rb__world_hit *hit);

/* Ends an entry and writes its line to the file (lock held); with
 * journal_bodies, the line also holds the two bodies (may be NULL). */
void rb__world_journal_end(struct rb_world *w, size_t idx, int status, int completed,
                           const struct rb_buf *request, const struct rb_buf *response);

/* ---- effects (tools.c) --------------------------------------------------- */

struct rb__world_effect {
    char tool[RB_WORLD_TOOL_MAX];
    char args_hash[RB_HASH_HEX_LEN + 1];
    char *idem_key; /* owned, or NULL */
    uint64_t seq;   /* journal seq of the call */
    int64_t t_ns;   /* when it took effect */
    size_t first;   /* index of the first effect with the same tool and
                       arguments (itself when it is the first) */
};

/* An answer kept for an Idempotency-Key. */
struct rb__world_kept {
    char tool[RB_WORLD_TOOL_MAX];
    int status;
    struct rb_buf body;
    int64_t replays; /* calls answered from it */
};

struct rb__world_effects_log {
    struct rb__world_effect *list;
    size_t len, cap;
    struct rb__world_map by_args; /* "tool args_hash" -> first index */
    struct rb__world_map idem;    /* "tool\nkey" -> index into replies */
    struct rb__world_kept *kept;  /* answers kept for Idempotency-Key */
    size_t n_kept, cap_kept;
    struct rb__world_map records; /* write_record: key -> version */
};

void rb__world_effects_release(struct rb__world_effects_log *e);

/* Effects as JSON (lock held). */
json_t *rb__world_effects_json(struct rb_world *w);

/* ---- the world ----------------------------------------------------------- */

struct rb_world {
    struct rb_world_config cfg; /* copy; strings owned */
    uint16_t port;
    struct in_addr addr; /* listened on */
    char url[80];
    struct MHD_Daemon *daemon;
    int listen_fd; /* -1 while refused */
    int wake[2];   /* pipe: wakes the acceptor */
    pthread_t acceptor;
    int acceptor_started;
    json_t *own_tools; /* read-only after start: shared by all threads */

    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;  /* broadcast on heal, fault change and stop */
    int stopping;
    uint64_t changes; /* fault changes so far */
    uint64_t applied; /* changes the acceptor has applied to the listener */
    struct rb__world_journal journal;
    struct rb__world_faults faults;
    struct rb__world_effects_log effects;
};

/* Wakes waiters and the acceptor after a change of faults or a stop (lock
 * held). */
void rb__world_changed(struct rb_world *w);

/* Waits (lock held) until the acceptor has opened or closed the listener as
 * the faults now say, so that a refused fault refuses, and a healed one
 * accepts, as soon as the call that made the change returns. */
void rb__world_sync_listener(struct rb_world *w);

/* Waits (lock held) until `deadline_ns` (0: none), a stop, or, when
 * fault_id > 0, until that fault ends. Returns 0 at the deadline, 1 on stop,
 * 2 when the fault ended. */
int rb__world_wait(struct rb_world *w, int64_t deadline_ns, int fault_id);

/* ---- routes ---------------------------------------------------------------- */

/* POST /v1/chat/completions. With `dry`, only reads the request for the
 * journal (hash, turn) and builds no answer. */
enum rb_err rb__world_llm(struct rb_world *w, const struct rb_buf *body, int dry,
                          struct rb__world_reply *rep);

/* The world's own tools, offered when a request declares none: a new
 * reference, or NULL when out of memory. */
json_t *rb__world_own_tools(void);

/* GET /v1/models and /v1/models/<id>. */
enum rb_err rb__world_models(struct rb_world *w, const char *route,
                             struct rb__world_reply *rep);

/* POST /tools/<name>. With `dry`, applies nothing. `seq` is the journal seq
 * of the call. Takes the lock itself for effects. */
enum rb_err rb__world_tool(struct rb_world *w, const char *name,
                           const struct rb_buf *body, const char *idem_key, int dry,
                           uint64_t seq, struct rb__world_reply *rep);

/* /_world/... control endpoints. */
enum rb_err rb__world_control(struct rb_world *w, const char *route, const char *method,
                              const char *query_from, const struct rb_buf *body,
                              struct rb__world_reply *rep);

#endif
