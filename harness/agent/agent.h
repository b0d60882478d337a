/*
 * agent.h - rebound's built-in agent: executes the workflow of a scenario
 * (struct rb_scenario_workflow) as durable steps of one run, against the world
 * or any OpenAI-compatible LLM and tools. A tool-using loop of LLM and tool
 * steps, heavy task steps in child processes with memory limits, and a fan-out
 * into research threads that share the global cache. It is the agent the
 * scenario library runs, correct or deliberately flawed (the scenario's mode).
 * docs/agent.md says which workflow step becomes which step key.
 *
 * Conventions as in rebound.h: enum rb_err returns, optional struct rb_error,
 * out-parameters written only on success, nothing printed.
 */
#ifndef REBOUND_HARNESS_AGENT_H
#define REBOUND_HARNESS_AGENT_H

#include <rebound/rebound.h>

#include "scenario.h"

#include <signal.h>
#include <stddef.h>

/* What the agent runs and how; strings are borrowed for the call. */
struct rb_agent_opts {
    const char *store_dir;                 /* store folder */
    const char *run_id;                    /* the run */
    const char *name;                      /* scenario name, used in prompts */
    const struct rb_scenario_workflow *wf; /* what to do */
    enum rb_scenario_mode mode;            /* correct or a flawed mode */
    struct rb_run_opts run_opts;           /* from rb_run_opts_from_env() */
    const char *model;                     /* NULL: "rebound-world" */
    const char *const *tools;              /* tools offered to the LLM (NULL-
                                              terminated: search, fetch, send_email,
                                              write_record); NULL: none declared */
    const char *base_url;                  /* NULL: $OPENAI_BASE_URL */
    const char *tools_url;                 /* NULL: $REBOUND_TOOLS_URL */
    int concurrency;                       /* research threads at once; 0: the
                                              fan-out's `concurrency`, else 4 */
    size_t task_mem;                       /* task memory limit, bytes; 0: none */
    size_t task_mem_cap;                   /* largest limit a retry uses; 0: 8x */
    int llm_tries;                         /* tries per LLM or tool call; 0: 5 */
    int backoff_ms;                        /* first backoff ceiling; 0: 500 */
    int lease_ms;                          /* the agent's lease on the run, renewed
                                              at every step; 0: 60000 */
    const volatile sig_atomic_t *stop;     /* or NULL; once non-zero (a preemption
                                              notice's SIGTERM, say), the agent stops
                                              before the next main-line step: what
                                              it committed is kept */
};

/* What a finished run produced. */
struct rb_agent_result {
    char *answer;  /* owned; the final answer */
    int attempt;   /* the attempt that finished */
    int steps;     /* durable steps passed through (sub-steps included) */
    int executed;  /* of which ran now */
    int replayed;  /* of which came from the replay log */
    int cached;    /* of which came from the global cache */
    int llm_calls; /* LLM steps executed now (requests sent) */
    int stopped;   /* 0: finished; N: stopped by opts->stop before workflow step
                      N, answer NULL */
};

/* Sets an empty result. */
void rb_agent_result_init(struct rb_agent_result *r);

/* Frees the answer and empties the result. */
void rb_agent_result_release(struct rb_agent_result *r);

/*
 * Opens the store and the run (a new attempt, or the one opts->run_opts
 * joins) and executes the workflow. Steps committed in an earlier attempt are
 * replayed from the log, so a rerun after a crash resumes where it stopped.
 *
 * Returns RB_OK and fills *out. Errors: RB_EINVAL (bad options, no LLM URL,
 * an answer that is not an OpenAI answer), RB_EPARKED (an LLM, tool or task
 * step failed for good: the run is now parked for a human with the failure
 * as context; or it was parked already; the run is left as a crash leaves
 * it, for the next attempt), the store's errors as rb_store_open() and
 * rb_step(), RB_EBUSY when the agent's lease on the run expired between two
 * steps (it stops: another worker may own the run now).
 *
 * When opts->stop is set while it runs, the step in flight is finished and
 * committed, the run is left for the next attempt (as a crash leaves it), and
 * RB_OK is returned with out->stopped saying where it stopped: a preempted
 * agent that checkpointed and exited within its grace. A task step whose child
 * the same signal killed is not parked then: it runs again next attempt.
 */
enum rb_err rb_agent_run(const struct rb_agent_opts *opts, struct rb_agent_result *out,
                         struct rb_error *err);

#endif /* REBOUND_HARNESS_AGENT_H */
