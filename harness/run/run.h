/*
 * run.h - what `rebound run` is made of: one trial of a scenario (an agent
 * command run against its own world and store, under the supervisor, with or
 * without the scenario's faults), its events on rebound's monotonic clock,
 * and the score of a faulted trial against the golden one (docs/results.md
 * names every field). trial.c runs trials; score.c scores and checks them.
 *
 * Conventions as in rebound.h: enum rb_err returns, `err` may be NULL,
 * out-parameters written only on success, nothing printed.
 */
#ifndef REBOUND_HARNESS_RUN_H
#define REBOUND_HARNESS_RUN_H

#include <rebound/rebound.h>

#include "scenario.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * The wire: what the agent asked the world (wire.c)
 */

/* One message of a chat request, as the world's journal digests it. */
struct rb_wire_msg {
    char role[16];   /* "system", "user", "assistant", "tool", ... */
    char digest[17]; /* first 16 hex digits of the SHA-256 of its canonical JSON */
};

/* One LLM or tool request, from a line of the world's journal (world.jsonl). */
struct rb_wire_req {
    uint64_t seq;             /* the journal's number, 1, 2, ... in order of arrival */
    int64_t t_ns;             /* when the world read it: rebound's CLOCK_MONOTONIC (the
                                 world runs in rebound's process) */
    int llm;                  /* 1: /v1/chat/completions; 0: a tool (/tools/NAME) */
    char route[96];           /* the path */
    char hash[65];            /* SHA-256 of the messages (chat) or arguments (tools);
                                 "" when the body could not be read */
    char model[64];           /* chat: the model asked, or "" */
    int status;               /* HTTP status sent, 0 when none was */
    int answered;             /* 1: status 200 and the whole answer sent */
    int prompt_tokens;        /* chat: as the world counted them */
    int completion_tokens;    /* chat: of the answer */
    struct rb_wire_msg *msgs; /* owned: chat messages in order; NULL when the
                                 journal has no digests (older worlds) */
    size_t n_msgs;
};

/* A trial's requests at the world, in order of arrival (seq). */
struct rb_wire {
    struct rb_wire_req *reqs; /* owned */
    size_t n;                 /* requests */
    size_t cap;               /* room in reqs */
};

/* Sets an empty wire; allocates nothing. */
void rb_wire_init(struct rb_wire *w);

/* Frees what the wire owns and leaves it empty. */
void rb_wire_release(struct rb_wire *w);

/*
 * Reads the world's journal file `path` (JSON lines, docs/world.md) into *out
 * (initialised by the caller): its LLM and tool requests; other routes and
 * unreadable lines are skipped. RB_EIO when the file cannot be read, RB_ENOMEM;
 * on error *out is unaltered.
 */
enum rb_err rb_wire_read(const char *path, struct rb_wire *out, struct rb_error *err);

struct rb_trial;

/*
 * Fills the wire-side fields of trial `t` after it ran in t->dir: its
 * requests from the world's journal (world.jsonl), the scenario's prices per
 * 1k tokens, and the open escalation of its run in its store (store/), if
 * any (a black box without a rebound store has none). rb_trial_run() calls
 * it. RB_EIO or RB_ENOMEM when the journal cannot be read.
 */
enum rb_err rb_trial_read_wire(const struct rb_scenario *s, struct rb_trial *t,
                               struct rb_error *err);

/* Adds one journal line's request to *w (for tests and readers of other
 * journals). RB_EINVAL when the line is not a journal entry of an LLM or tool
 * request (nothing added), RB_ENOMEM. */
enum rb_err rb_wire_add_line(struct rb_wire *w, const char *line);

/* ------------------------------------------------------------------------
 * Trials
 */

#define RB_SCORE_MAX_FAULTS 16 /* faults in one scenario, at most */

/* One event of a trial: the supervisor's and the agent's, in arrival order. */
struct rb_trial_event {
    int64_t t_ns; /* rebound's CLOCK_MONOTONIC when the supervisor saw it */
    char *kind;   /* owned: "proc.start", "step.commit", "fault.inject", ... */
    char *step;   /* owned step key, or NULL */
    json_t *json; /* owned: the whole event as written */
};

struct rb_trial {
    int faulted;                   /* 1: faults armed; 0: the golden trial */
    uint64_t seed;                 /* the trial's seed */
    char dir[4096];                /* its folder: store/, stdout, stderr, world.jsonl */
    char run_id[256];              /* REBOUND_RUN given to the agent */
    int64_t start_ns;              /* before the first attempt */
    int64_t end_ns;                /* after the last attempt was reaped */
    struct rb_trial_event *events; /* owned */
    size_t n_events;
    size_t cap_events;
    int attempts;          /* attempts started */
    int completed;         /* last attempt exited 0 with no fault on it */
    int exit_code;         /* last attempt's exit code, -1 when signalled */
    int signal;            /* last attempt's signal, or 0 */
    int timed_out;         /* the deadline ran out */
    int interrupted;       /* a signal stopped rebound meanwhile */
    int injected;          /* faults injected */
    size_t n_armed;        /* faults armed */
    int64_t fault_time_ms; /* time spent inside faults with a duration */
    char trigger_desc[RB_SCORE_MAX_FAULTS][64]; /* by the supervisor's fault index: the
                                  scenario's trigger ("llm call 5") */
    json_t *effects; /* owned: side effects at the world, "ROUTE HASH" -> times */
    json_t *drawn;   /* owned: the faults drawn from the scenario's random
                        schedules for this trial, as scenario JSON (each with
                        "random": the schedule's index), or NULL */
    char stdout_hash[RB_HASH_HEX_LEN + 1]; /* SHA-256 of the last attempt's stdout */
    int64_t stdout_bytes;                  /* its size */
    /* scoring from the wire (H4) */
    struct rb_wire wire;         /* owned: the requests in the world's journal */
    double price_prompt;         /* the scenario's world.price_prompt, per 1k tokens */
    double price_completion;     /* world.price_completion, per 1k tokens */
    int escalated;               /* 1: the trial's store holds an open escalation of
                                    the run (parked for a human); 0 none found */
    int escalation_context;      /* 1: that escalation kept a context (JSON) */
    char escalation_reason[256]; /* its reason, or "" */
};

/* Sets an empty trial; allocates nothing. */
void rb_trial_init(struct rb_trial *t);

/* Frees what the trial owns and leaves it empty. */
void rb_trial_release(struct rb_trial *t);

/*
 * Checks that this harness can run scenario `s`: an agent command that
 * exists (or the built-in agent, run as `rebound agent --scenario FILE`),
 * fault forms and triggers it maps onto the supervisor or the world. RB_EINVAL
 * with the reason, naming the fault's line, when not; RB_EACCES or RB_ENOENT
 * when the scenario is fine but this machine or user cannot run it (a
 * partition's network namespace needs root and the `ip` program).
 */
enum rb_err rb_trial_supported(const struct rb_scenario *s, struct rb_error *err);

/*
 * Runs one trial of `s` for `seed` in folder `dir` (made; must not hold a
 * store already): a world on 127.0.0.1 (free port), a fresh store and run id,
 * the agent under the supervisor with the scenario's restart policy and
 * deadline, faults armed when `faulted`. `rebound_exe` is given to the agent
 * as REBOUND. Fills *out (initialised by the caller) with the events and the
 * ending. Returns RB_OK whenever the agent ran (its failures are outcomes),
 * RB_ECHILD when it cannot be started, RB_EIO when the world or the folder
 * cannot be made.
 */
enum rb_err rb_trial_run(const struct rb_scenario *s, uint64_t seed, int faulted,
                         const char *dir, const char *rebound_exe, struct rb_trial *out,
                         struct rb_error *err);

/* ------------------------------------------------------------------------
 * Random fault schedules (schedule.c)
 */

/* Faults the scenario's random schedules draw, in all (the sum of counts). */
size_t rb_schedule_count(const struct rb_scenario *s);

/*
 * Expands the random schedules of `s` for a trial of `seed` (a schedule's
 * own seed wins): *faults is a new array (free()) of the scenario's faults
 * followed by the drawn ones, *n_faults their number, and *drawn a new JSON
 * array of the drawn faults in the scenario format. The same seed always
 * gives the same faults. RB_ENOMEM, or RB_EINVAL for a schedule that
 * validation should have refused; outputs written only on success.
 */
enum rb_err rb_schedule_expand(const struct rb_scenario *s, uint64_t seed,
                               struct rb_scenario_fault **faults, size_t *n_faults,
                               json_t **drawn, struct rb_error *err);

/* A fault as scenario JSON ({"kind", "form", "at", parameters}); new
 * reference, NULL when out of memory. */
json_t *rb_schedule_fault_json(const struct rb_scenario_fault *f);

/* ------------------------------------------------------------------------
 * Scores
 */

/* One injected fault, its recovery split in parts (ms; -1 when not seen). */
struct rb_fault_score {
    char form[32];      /* "sigkill", "notice", ... */
    char trigger[64];   /* "step 20 start+5ms", "time 300ms" */
    char mechanism[32]; /* OOM: "watchdog", "cgroup2", "rlimit_as", "peak",
                           "trigger"; "" for other faults */
    int64_t inject_ns;  /* injection, on the trial's clock */
    int inflight;       /* steps started and not committed then */
    int inflight_lost;  /* of them, those whose work was lost: all when the
                           fault killed the attempt, else those executed again
                           after it (a task OOM retried); a step that went on
                           through a freeze is not */
    char inflight_step[128];
    int64_t recovery_ms; /* injection -> first commit of a step not committed
                            before it */
    int64_t detect_ms;   /* injection -> the attempt's death */
    int64_t restart_ms;  /* death -> the next attempt started */
    int64_t replay_ms;   /* start -> first step executed past the frontier */
    int64_t redo_ms;     /* that -> its commit */
    int64_t recovery_first_request_ms; /* black-box recovery: injection (a fault
                            with a duration: its end) -> the first LLM or tool
                            request, of a later attempt when the fault ended
                            one, not made before the fault; -1 when none came */
};

enum rb_outcome {
    RB_OUTCOME_RECOVERED = 1, /* done, context preserved */
    RB_OUTCOME_DEGRADED,      /* done, context lost */
    RB_OUTCOME_FAILED,        /* not done: attempts exhausted, or it could not run */
    RB_OUTCOME_HUNG,          /* the deadline ran out */
    RB_OUTCOME_ESCALATED,     /* not done: parked for a human, its context kept */
};

const char *rb_outcome_name(enum rb_outcome o);

struct rb_score {
    enum rb_outcome outcome;
    struct rb_fault_score faults[RB_SCORE_MAX_FAULTS];
    size_t n_faults;         /* faults injected (scored) */
    int golden_steps;        /* step executions of the golden trial */
    int steps_executed;      /* of this trial */
    int steps_redone;        /* executions beyond golden, in-flight ones apart */
    int inflight_lost;       /* steps in flight at a fault */
    int context_preserved;   /* final stdout hash equals golden's and no LLM
                                request diverged from golden's */
    int64_t recovery_max_ms; /* largest recovery_ms, -1 when none */
    int64_t wall_ms;         /* this trial's wall time */
    int64_t golden_wall_ms;
    int64_t time_lost_ms;          /* wall - golden wall - time inside faults with a
                                      duration */
    int side_effects;              /* tool calls that took effect at the world */
    int effects_doubled;           /* effects beyond the first of the same call */
    int effects_missing;           /* golden's effects that never took effect here */
    int failure_context_delivered; /* every restart had REBOUND_LAST_FAILURE and
                                      every in-process retry was handed its
                                      failure (docs/results.md); -1 when nothing
                                      restarted nor was retried */
    int faults_fired;              /* faults injected */
    int faults_armed;              /* faults armed */
    int golden_known;              /* 1: scored against a golden trial that ran;
                                      0 (audit --no-golden): what needs one is
                                      unknown, and rb_score_check() says so */

    /* From the wire and the step events (H4). Step metrics (golden_steps,
     * steps_executed, steps_redone, inflight_lost, each fault's inflight) are
     * -1, unknown, when the agent wrote no step event at all (a black box). */
    int steps_known;           /* 1: the faulted trial wrote step events */
    int llm_calls;             /* LLM requests of this trial at the world */
    int llm_golden_calls;      /* of the golden trial */
    int llm_answered;          /* of them, answered (status 200, whole answer) */
    int llm_golden_answered;   /* the golden trial's */
    int llm_duplicated;        /* repeats of a request an earlier attempt made and
                                  got an answer for (same model and messages),
                                  beyond golden's own repeats; then, up to the
                                  answered calls beyond golden's count, the
                                  earliest answered calls matching no golden one */
    int64_t prompt_tokens;     /* of this trial's answered LLM calls */
    int64_t completion_tokens; /* of them */
    int64_t tokens_wasted;     /* prompt + completion tokens of the duplicated */
    int64_t prompt_wasted;     /* of which prompt tokens */
    int64_t completion_wasted; /* and completion tokens */
    double cost_wasted;        /* at the trial's price per 1k tokens */
    int tool_calls;            /* tool requests of this trial at the world */
    int tool_golden_calls;     /* of the golden trial */
    int tool_duplicated;       /* tool requests repeating one an earlier attempt
                                  made and got an answer for */
    int diverged;              /* 1: an LLM request matches no golden request */
    int div_request;           /* its index among this trial's LLM requests */
    int div_attempt;           /* the attempt that sent it */
    int div_golden_request;    /* index of the closest golden request, or -1 */
    int div_message;           /* index of the first message that differs */
    char div_what[160];        /* "message 3 (role tool) differs" */
    int retries_judged;        /* in-process retries judged for failure context */
    int retries_blind;         /* of them, retries the failure did not reach */
    char blind_what[160];      /* the first such: "task-006 retried with the same
                                  memory (64 MiB) after an OOM" */
    int restarts_blind;        /* restarts the failure did not reach */
};

/* Scores faulted trial `t` against `golden`. */
void rb_score_trial(const struct rb_trial *golden, const struct rb_trial *t,
                    struct rb_score *out);

/*
 * Checks the scenario's expectations against one trial's score, and that
 * every armed fault fired. Appends each broken expectation ("steps_redone 19
 * > max_steps_redone 0") to `why`, separated by "; "
 * (NUL-terminated, truncated to `size`). Returns 1 when all hold.
 * `p50_ms`/`p95_ms` are the scenario's recovery percentiles over all its
 * trials (-1: none).
 */
int rb_score_check(const struct rb_scenario *s, const struct rb_score *sc, int64_t p50_ms,
                   int64_t p95_ms, char *why, size_t size);

/* The trial and its score as a results.json record (new reference). */
json_t *rb_score_json(const struct rb_scenario *s, const struct rb_trial *golden,
                      const struct rb_trial *t, const struct rb_score *sc);

/* The q-th percentile (0..100, nearest rank) of n values; -1 when n is 0.
 * Sorts `v`. */
int64_t rb_score_percentile(int64_t *v, size_t n, int q);

#endif
