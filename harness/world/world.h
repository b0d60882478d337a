/*
 * world.h - the world: an HTTP server on 127.0.0.1 that plays an
 * OpenAI-compatible LLM (/v1/chat/completions, /v1/models) and a set of tools
 * (/tools/<name>), answering as a pure function of (seed, request), journaling
 * every request, counting side effects, and injecting HTTP-level faults on
 * demand. This is the harness's interface to it; docs/world.md describes the
 * wire protocol, the token rule and the control endpoints (/_world/...).
 *
 * Conventions as in rebound.h: enum rb_err returns, optional struct rb_error,
 * out-parameters written only on success, nothing printed. A world's
 * functions may be called from any thread.
 */
#ifndef REBOUND_HARNESS_WORLD_H
#define REBOUND_HARNESS_WORLD_H

#include <rebound/rebound.h>

#include <stddef.h>
#include <stdint.h>

#define RB_WORLD_ROUTE_MAX 96 /* bytes of a route kept in the journal and faults */
#define RB_WORLD_TOOL_MAX 48  /* bytes of a tool name kept in the journal */

/* ------------------------------------------------------------------------
 * Configuration
 */

struct rb_world_entry;

/*
 * Called for each journal entry twice: when the request has been read
 * (end_ns is 0) and when the exchange has ended. `e` is a copy, borrowed for
 * the call. It runs on the connection's thread, concurrently with other
 * calls, without the world's lock: it may add or heal faults (to fire one
 * after the K-th LLM call, say), and must not stop the world.
 */
typedef void (*rb_world_entry_fn)(void *arg, const struct rb_world_entry *e);

struct rb_world_config {
    uint16_t port;      /* 0: pick a free port (see rb_world_port()) */
    char host[48];      /* numeric IPv4 address to listen on; "": 127.0.0.1. It
                           need not exist yet (IP_FREEBIND): the host end of an
                           agent's network namespace is made per attempt */
    uint64_t seed;      /* answers are a function of (seed, request) */
    int turns;          /* tool-call turns before the final answer (default 2) */
    int latency_ms;     /* fixed delay before each LLM answer (default 0) */
    int jitter_ms;      /* plus 0..jitter_ms, drawn from (seed, request) */
    char *model;        /* owned; model listed by /v1/models; NULL: "rebound-world" */
    char *journal_path; /* owned; journal written here as JSON lines, or NULL */
    int journal_bodies; /* 1: the file's lines also hold the request and the
                           answer's body (request_body, response_body) */
    char *faults;       /* owned; JSON array of faults active from the start, or NULL */
    rb_world_entry_fn on_entry; /* may be NULL */
    void *on_entry_arg;         /* passed to on_entry */
};

/* Sets the defaults. Allocates nothing. */
void rb_world_config_init(struct rb_world_config *cfg);

/* Frees the strings of `cfg` and sets the defaults again. */
void rb_world_config_release(struct rb_world_config *cfg);

/*
 * Reads a JSON config file and lays its keys over `cfg`: port, seed, turns,
 * latency_ms, jitter_ms, model, journal, journal_bodies (a boolean), faults
 * (an array, as for
 * rb_world_faults_add_json()). Returns RB_EINVAL with the file, line and
 * reason in err for a bad file or value (unknown keys are errors), RB_ENOENT
 * or RB_EACCES when it cannot be read. On error `cfg` is unaltered.
 */
enum rb_err rb_world_config_load(const char *path, struct rb_world_config *cfg,
                                 struct rb_error *err);

/* ------------------------------------------------------------------------
 * Lifecycle
 */

struct rb_world;

/*
 * Starts a world on 127.0.0.1:cfg->port (a free port when 0; cfg->host in
 * place of 127.0.0.1 when set), with its own
 * threads (one per connection, HTTP/1.1 keep-alive). `cfg` is copied. Opens
 * (truncating) the journal file when cfg->journal_path is set, and adds the
 * faults of cfg->faults.
 * Returns RB_OK and a new world in *out, to be stopped with rb_world_stop().
 * Errors: RB_EINVAL (bad config or faults), RB_EIO (cannot listen, e.g. port
 * in use; or cannot open the journal), RB_ENOMEM.
 */
enum rb_err rb_world_start(const struct rb_world_config *cfg, struct rb_world **out,
                           struct rb_error *err);

/* Stops listening, drops open connections (stalled and slowed answers end at
 * once), flushes and closes the journal file, and frees the world. NULL is
 * fine. */
void rb_world_stop(struct rb_world *w);

/* The root URL, "http://127.0.0.1:PORT" (or the host it listens on; no final
 * slash); an OpenAI client's
 * base URL is this plus "/v1". Borrowed, valid until rb_world_stop(). */
const char *rb_world_url(const struct rb_world *w);

/* The port the world listens on. */
uint16_t rb_world_port(const struct rb_world *w);

/* ------------------------------------------------------------------------
 * Faults
 */

enum rb_world_fault_kind {
    RB_WORLD_FAULT_RESET = 1,    /* read the request, then close with a TCP reset */
    RB_WORLD_FAULT_REFUSED,      /* stop listening: connections refused, requests on
                                    open connections reset; listens again after */
    RB_WORLD_FAULT_STALL,        /* read the request and never answer (until healed,
                                    expired or delay_ms), then close */
    RB_WORLD_FAULT_SERVER_ERROR, /* answer `status` (5xx) with an error body */
    RB_WORLD_FAULT_RATE_LIMIT,   /* answer 429 with Retry-After */
    RB_WORLD_FAULT_TRUNCATE,     /* send the headers and part of the body, then close */
    RB_WORLD_FAULT_SLOW,         /* send the body in small pieces with pauses */
};

/* The kind's name as used in JSON ("reset", "server_error", ...), or NULL. */
const char *rb_world_fault_kind_name(enum rb_world_fault_kind kind);

/*
 * A fault: what happens to matching calls, and for how long. A call matches
 * when its path starts with `route`. The fault ends when duration_ms has
 * passed since it was added, when it has hit `count` calls, or when healed,
 * whichever is first. With share < 1, each matching call is hit with that
 * probability, drawn from (seed, fault id, call number): the same seed and the
 * same calls give the same hits. Calls to /_world/ are never faulted.
 */
struct rb_world_fault {
    enum rb_world_fault_kind kind;
    char route[RB_WORLD_ROUTE_MAX]; /* path prefix; "" = every route */
    int64_t duration_ms;            /* 0: no time limit */
    int64_t count;                  /* calls to hit; 0: no limit */
    double share;                   /* (0, 1]: share of matching calls hit */
    int status;                     /* server_error: 500..599 (default 503) */
    int retry_after_s;              /* rate_limit: Retry-After in seconds (1) */
    int delay_ms;                   /* stall: close after this long (0: never);
                                       slow: pause between pieces (100) */
    int chunk_bytes;                /* slow: bytes per piece (16; an SSE answer goes
                                       an event at a time); truncate: bytes of the
                                       body sent (0: half) */
};

/* Sets `f` to a fault of `kind` with the defaults above. */
void rb_world_fault_init(struct rb_world_fault *f, enum rb_world_fault_kind kind);

/*
 * Adds a fault, active at once. Returns RB_OK and its id (1, 2, ...) in *id
 * (may be NULL), or RB_EINVAL with the reason (refused takes no route, count
 * or share; share must be in (0, 1]; ...).
 */
enum rb_err rb_world_fault_add(struct rb_world *w, const struct rb_world_fault *f,
                               int *id, struct rb_error *err);

/*
 * Adds faults from JSON text: one object or an array of them, with the keys
 * kind, route, duration_ms, count, share, status, retry_after_s, delay_ms,
 * chunk_bytes. All or nothing: on error none is added. `ids` (may be NULL)
 * receives up to `max_ids` ids; *n_ids (may be NULL) the number added.
 */
enum rb_err rb_world_faults_add_json(struct rb_world *w, const char *json, int *ids,
                                     size_t max_ids, size_t *n_ids, struct rb_error *err);

/* Heals fault `id`, or every fault when id is 0: stalled calls are closed,
 * slowed ones finish at full speed, a refused listener listens again.
 * Returns RB_ENOENT when there is no such fault, or it was healed already. */
enum rb_err rb_world_fault_heal(struct rb_world *w, int id);

/* Number of calls fault `id` has hit so far (kept after it is healed), or -1
 * when there never was such a fault. */
int64_t rb_world_fault_hits(struct rb_world *w, int id);

/* ------------------------------------------------------------------------
 * Journal
 */

/* One request and its response. */
struct rb_world_entry {
    uint64_t seq;                   /* 1, 2, ... in order of arrival */
    int64_t start_ns;               /* CLOCK_MONOTONIC when the request was read */
    int64_t end_ns;                 /* when the exchange ended; 0 while in flight */
    char method[8];                 /* "POST", "GET", ... */
    char route[RB_WORLD_ROUTE_MAX]; /* the path, without query */
    int status;                     /* HTTP status sent; 0 when none was */
    int completed;                  /* 1 when the whole response was sent */
    char fault[16];                 /* the fault's kind name when one hit, else "" */
    int fault_id;                   /* the fault's id, or 0 */
    char hash[RB_HASH_HEX_LEN + 1]; /* SHA-256 of the message history (chat: the
                                       messages array) or of the arguments (tools),
                                       as canonical JSON; "" for other routes or
                                       unparsable bodies */
    uint64_t repeat_of;             /* seq of the first request with the same route
                                       and hash, or 0: this one is not a repeat */
    int turn;                       /* chat: assistant turns in the history */
    int prompt_tokens;              /* chat: by the rule in docs/world.md */
    int completion_tokens;          /* chat */
    char tool[RB_WORLD_TOOL_MAX];   /* tools: the tool's name, else "" */
    int effect;                     /* tools: 1 when this call took effect */
    int replayed;                   /* tools: 1 when answered from an earlier call
                                       with the same Idempotency-Key */
    char response_hash[RB_HASH_HEX_LEN + 1]; /* SHA-256 of the full answer body
                                                the world meant to send, or "" */
};

/* Number of entries so far. */
size_t rb_world_journal_count(struct rb_world *w);

/* Copies up to `max` entries, starting at index `from` (0-based, in order of
 * arrival), into `out`; returns the number copied. */
size_t rb_world_journal_read(struct rb_world *w, size_t from, struct rb_world_entry *out,
                             size_t max);

/* Appends `e` to `out` as one JSON object and a newline (the journal file's
 * line format). On RB_ENOMEM `out` is unaltered. */
enum rb_err rb_world_entry_json(const struct rb_world_entry *e, struct rb_buf *out);

/* ------------------------------------------------------------------------
 * Side effects
 */

struct rb_world_effects {
    int64_t applied;    /* calls that took effect */
    int64_t replayed;   /* calls answered from an earlier Idempotency-Key */
    int64_t duplicated; /* effects with the same tool and arguments as an
                           earlier applied one: what happened twice */
};

/* Counts the effects of tool `tool`, or of every side-effecting tool when
 * NULL, into *out. */
void rb_world_effects(struct rb_world *w, const char *tool, struct rb_world_effects *out);

#endif
