/*
 * scenario.h - the interface of rb_scenarios: the scenario format (JSON,
 * `"rebound": 1`) loaded into C structs and validated, every problem reported
 * as file, line, column and message. docs/scenarios.md is the field-by-field
 * reference; scenarios/schema/scenario.schema.json is the same for editors.
 *
 * The structs name what the fault injectors (faults/faults.h) and the world
 * (harness/world/world.h) can do, in this module's own enums: this module
 * includes neither, the harness maps one onto the other.
 *
 * Conventions as in rebound.h: enum rb_err returns, `err` may be NULL,
 * out-parameters written only on success, nothing printed.
 */
#ifndef REBOUND_SCENARIO_H
#define REBOUND_SCENARIO_H

#include <rebound/rebound.h>

#include <stddef.h>
#include <stdint.h>

#define RB_SCENARIO_VERSION 1 /* the "rebound" value this module reads */

/* ------------------------------------------------------------------------
 * The agent
 */

enum rb_scenario_agent_kind {
    RB_SCENARIO_AGENT_BUILTIN = 1, /* rebound's built-in agent and a workflow */
    RB_SCENARIO_AGENT_COMMAND,     /* any program (argv, cwd, env) */
};

/* The built-in agent's behaviour: correct, or deliberately flawed. */
enum rb_scenario_mode {
    RB_SCENARIO_MODE_CORRECT = 0,            /* "correct" */
    RB_SCENARIO_MODE_NO_REPLAY,              /* "no-replay": restarts from scratch */
    RB_SCENARIO_MODE_DROP_HISTORY,           /* "drop-history": history lost on restart */
    RB_SCENARIO_MODE_IGNORE_FAILURE_CONTEXT, /* "ignore-failure-context" */
    RB_SCENARIO_MODE_NO_IDEMPOTENCY,         /* "no-idempotency": effects without keys */
    RB_SCENARIO_MODE_WALL_CLOCK_LEASE,       /* "wall-clock-lease" */
};

/* A task step: run in a child process that allocates alloc_mb. */
struct rb_scenario_task {
    int step;         /* the workflow step (1..steps) */
    int64_t alloc_mb; /* memory the task allocates, MiB */
};

/* One level of a nested fan-out: each thread of the level above (or the
 * workflow, for the top level) runs `threads` threads of this one. */
struct rb_scenario_fanout_level {
    int threads;    /* threads per parent thread (1..10000) */
    int duplicates; /* of them, the last ones repeat an earlier sibling's work */
};

#define RB_SCENARIO_FANOUT_MAX_DEPTH 4 /* levels of a nested fan-out */

/* What the built-in agent does, step by step. */
struct rb_scenario_workflow {
    int steps;                      /* all steps, fan-out threads included */
    int llm_turns;                  /* LLM calls the workflow makes in all */
    struct rb_scenario_task *tasks; /* owned; task steps, in file order */
    size_t n_tasks;
    int fanout_at_step;    /* first step of the research threads; 0: none */
    int fanout_threads;    /* leaf threads, one step each: at_step..at_step+threads-1
                              (the product of the levels' threads) */
    int fanout_duplicates; /* top level: threads that repeat another's query */
    char *file;            /* owned; the workflow_file it came from, or NULL */
    /* the nested shape, top level first (drivers, coordinators, researchers);
     * NULL and 0 for a workflow set up by hand with the three fields above,
     * which then read as one level */
    struct rb_scenario_fanout_level *fanout_levels; /* owned */
    size_t fanout_depth;                            /* levels (1..4), or 0 */
    int fanout_concurrency; /* leaf threads at once across the tree; 0: the agent's */
};

struct rb_scenario_agent {
    enum rb_scenario_agent_kind kind;
    /* builtin */
    enum rb_scenario_mode mode;
    struct rb_scenario_workflow workflow;
    /* command */
    char **argv; /* owned, NULL-terminated */
    char *cwd;   /* owned, or NULL */
    char **env;  /* owned "NAME=value" entries, NULL-terminated, or NULL */
};

/* ------------------------------------------------------------------------
 * The world
 */

struct rb_scenario_world {
    int has_seed;            /* 0: each trial's seed (from `seeds`) is used */
    uint64_t seed;           /* fixed world seed when has_seed */
    int turns;               /* tool-call turns before the final answer (2) */
    char **tools;            /* owned, NULL-terminated; the tools offered */
    size_t n_tools;          /* (default: search, fetch, send_email, write_record) */
    int latency_ms;          /* fixed delay before each LLM answer */
    int jitter_ms;           /* plus 0..jitter_ms */
    double price_prompt;     /* cost per 1k prompt tokens */
    double price_completion; /* cost per 1k completion tokens */
    int port;                /* fixed port for the world (1..65535); 0: a free one */
};

/* ------------------------------------------------------------------------
 * Faults
 */

enum rb_scenario_fault_kind {
    RB_SCENARIO_PREEMPTION = 1, /* "preemption" */
    RB_SCENARIO_OOM,            /* "oom" */
    RB_SCENARIO_NETWORK,        /* "network" */
    RB_SCENARIO_CLOCK,          /* "clock" */
};

enum rb_scenario_form {
    /* preemption (faults: RB_FAULT_NOTICE, _SIGKILL, _FREEZE) */
    RB_SCENARIO_NOTICE = 1, /* "notice": SIGTERM, SIGKILL after grace_ms */
    RB_SCENARIO_SIGKILL,    /* "sigkill" */
    RB_SCENARIO_FREEZE,     /* "freeze": SIGSTOP for duration_ms */
    /* oom */
    RB_SCENARIO_OOM_KILL,   /* "oom-kill": SIGKILL reported as OOM, at a trigger */
    RB_SCENARIO_OOM_LIMIT,  /* "limit": memory limit on the agent (limit_mb) */
    RB_SCENARIO_OOM_RLIMIT, /* "rlimit": RLIMIT_AS (limit_mb): allocations fail */
    RB_SCENARIO_OOM_TASK,   /* "task": a task step's child gets limit_mb */
    /* network: the world's HTTP faults, and the agent's namespace */
    RB_SCENARIO_NET_RESET,        /* "reset" */
    RB_SCENARIO_NET_REFUSED,      /* "refused" */
    RB_SCENARIO_NET_STALL,        /* "stall" */
    RB_SCENARIO_NET_SERVER_ERROR, /* "server_error" */
    RB_SCENARIO_NET_RATE_LIMIT,   /* "rate_limit" */
    RB_SCENARIO_NET_TRUNCATE,     /* "truncate" */
    RB_SCENARIO_NET_SLOW,         /* "slow" */
    RB_SCENARIO_NET_PARTITION,    /* "partition": link down for duration_ms */
    /* clock */
    RB_SCENARIO_CLOCK_JUMP,   /* "jump": jump_s at the trigger */
    RB_SCENARIO_CLOCK_OFFSET, /* "offset": offset_s from the start */
    RB_SCENARIO_CLOCK_DRIFT,  /* "drift": the clock runs `rate` times as fast */
};

enum rb_scenario_trigger_kind {
    RB_SCENARIO_AT_START = 0, /* no trigger: from the start (standing faults) */
    RB_SCENARIO_AT_STEP,      /* {"step": N, "when": ...} */
    RB_SCENARIO_AT_LLM_CALL,  /* {"llm_call": K}: the K-th LLM request */
    RB_SCENARIO_AT_TOOL_CALL, /* {"tool_call": K}: the K-th tool request */
    RB_SCENARIO_AT_TIME,      /* {"time_ms": T} after the agent's first start */
};

enum rb_scenario_when {
    RB_SCENARIO_BEFORE = 0, /* "before": on step.start (RB_TRIGGER_STEP_START) */
    RB_SCENARIO_DURING,     /* "during": delay_ms after step.start */
    RB_SCENARIO_AFTER,      /* "after": on step.commit */
};

struct rb_scenario_trigger {
    enum rb_scenario_trigger_kind kind;
    int64_t n;                  /* step N, call K, or T ms */
    enum rb_scenario_when when; /* for a step */
    int64_t delay_ms;           /* "during": after step.start (default 100) */
};

enum rb_scenario_mem {
    RB_SCENARIO_MEM_AUTO = 0, /* "auto" */
    RB_SCENARIO_MEM_CGROUP2,  /* "cgroup2" */
    RB_SCENARIO_MEM_WATCHDOG, /* "watchdog" */
};

/* One fault. Fields a form does not take are 0 (route ""). */
struct rb_scenario_fault {
    enum rb_scenario_fault_kind kind;
    enum rb_scenario_form form;
    struct rb_scenario_trigger at;
    int64_t duration_ms;            /* freeze, partition (default 1000); HTTP
                                       faults: span (0: until count or the end) */
    int64_t grace_ms;               /* notice (default 2000) */
    int64_t limit_mb;               /* limit, rlimit, task */
    enum rb_scenario_mem mechanism; /* limit */
    int sample_ms;                  /* limit, watchdog period (0: its default) */
    char route[96];                 /* HTTP faults: path prefix ("": all) */
    int64_t count;                  /* HTTP faults: calls hit (0: no limit) */
    double share;                   /* HTTP faults: share of calls hit (1) */
    int status;                     /* server_error (503) */
    int retry_after_s;              /* rate_limit (1) */
    int delay_ms;                   /* stall: close after (0: never); slow (100) */
    int chunk_bytes;                /* slow (16), truncate (0: half) */
    double jump_s;                  /* jump */
    double offset_s;                /* offset */
    double rate;                    /* drift */
    int fake_monotonic;             /* clock: CLOCK_MONOTONIC skewed too */
    int line;                       /* where it is in the file, for reports */
};

/* A seeded random schedule of faults. */
struct rb_scenario_random {
    unsigned kinds; /* bit (1 << kind) for each kind drawn from */
    int count;      /* faults to draw */
    int window_min; /* step triggers drawn in [window_min, window_max] */
    int window_max;
    int window_time;       /* 1: "window_ms" instead: time triggers drawn in */
    int64_t window_ms_min; /* [window_ms_min, window_ms_max] ms after the */
    int64_t window_ms_max; /* agent's first start */
    int has_seed;          /* 0: the trial's seed */
    uint64_t seed;
    int line;
};

/* ------------------------------------------------------------------------
 * Restart policy and expectations
 */

struct rb_scenario_restart {
    int64_t delay_ms;     /* before the first restart (0) */
    int max_attempts;     /* attempts in all, the first included (3) */
    double backoff;       /* factor on the delay per restart (1) */
    int64_t max_delay_ms; /* cap on the delay (0: none) */
};

enum rb_scenario_outcome {
    RB_SCENARIO_OUTCOME_ANY = 0, /* not set */
    RB_SCENARIO_RECOVERED,       /* "recovered" */
    RB_SCENARIO_DEGRADED,        /* "degraded" */
    RB_SCENARIO_ESCALATED,       /* "escalated" */
    RB_SCENARIO_FAILED,          /* "failed" */
    RB_SCENARIO_HUNG,            /* "hung" */
};

/* Each field is optional: -1 means not set. Booleans are 0 or 1 when set. */
struct rb_scenario_expect {
    enum rb_scenario_outcome outcome;
    int64_t recovery_p50_ms;
    int64_t recovery_p95_ms;
    int64_t max_steps_redone;
    int64_t max_llm_calls_duplicated; /* LLM calls asked again after a restart */
    int context_preserved;
    int failure_context_delivered;
    int side_effects_exactly_once;
    int64_t max_time_lost_ms;
};

/* ------------------------------------------------------------------------
 * The scenario
 */

struct rb_scenario {
    char *path;        /* owned; the file it was loaded from, or NULL */
    char *name;        /* owned; "name", or the file's name without .json */
    char *description; /* owned */
    struct rb_scenario_agent agent;
    struct rb_scenario_world world;
    struct rb_scenario_fault *faults; /* owned, in file order */
    size_t n_faults;
    struct rb_scenario_random *randoms; /* owned, random schedules */
    size_t n_randoms;
    struct rb_scenario_restart restart;
    struct rb_scenario_expect expect;
    int trials;      /* trials per seed (1) */
    uint64_t *seeds; /* owned ([0]) */
    size_t n_seeds;
    int64_t deadline_ms; /* a trial running longer is `hung` (60000) */
};

/*
 * Every problem found in one file, each with file, line, column (1-based;
 * 0 when the problem is about the file as a whole) and message. Holds
 * struct rb_error so a caller prints them as it prints any other.
 */
struct rb_scenario_diags {
    struct rb_error *items; /* owned */
    size_t count;
    size_t cap;
};

/* Sets an empty list; allocates nothing. */
void rb_scenario_diags_init(struct rb_scenario_diags *d);

/* Frees the list and leaves it empty. */
void rb_scenario_diags_release(struct rb_scenario_diags *d);

/*
 * Reads and validates the scenario file at `path`. Returns RB_OK and a new
 * scenario in *out (free with rb_scenario_free()). Otherwise:
 * RB_EINVAL when the file is not a valid scenario (malformed JSON, unknown
 * keys, wrong types, missing fields, impossible combinations): every problem
 * is appended to `diags` (may be NULL) in file order and the first is in
 * `err`; RB_ENOENT, RB_EACCES or RB_EIO when the file cannot be read;
 * RB_ENOMEM. A workflow_file is read relative to the scenario's folder.
 */
enum rb_err rb_scenario_load(const char *path, struct rb_scenario **out,
                             struct rb_scenario_diags *diags, struct rb_error *err);

/*
 * As rb_scenario_load(), from `len` bytes of `text`. `path` names the input in
 * messages and gives the default name and the folder for a workflow_file;
 * it may be NULL ("<input>", workflow_file relative to the current folder).
 */
enum rb_err rb_scenario_parse(const char *text, size_t len, const char *path,
                              struct rb_scenario **out, struct rb_scenario_diags *diags,
                              struct rb_error *err);

/* Frees a scenario and all it owns. NULL is fine. */
void rb_scenario_free(struct rb_scenario *s);

/* Names as written in the format ("preemption", "sigkill", "correct",
 * "recovered", ...), or "unknown". */
const char *rb_scenario_kind_name(enum rb_scenario_fault_kind kind);
const char *rb_scenario_form_name(enum rb_scenario_form form);
const char *rb_scenario_mode_name(enum rb_scenario_mode mode);
const char *rb_scenario_outcome_name(enum rb_scenario_outcome outcome);

#endif /* REBOUND_SCENARIO_H */
