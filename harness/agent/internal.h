/*
 * internal.h - what the built-in agent's files (agent.c, fanout.c) share:
 * the agent's state during one run and a few helpers.
 */
#ifndef REBOUND_HARNESS_AGENT_INTERNAL_H
#define REBOUND_HARNESS_AGENT_INTERNAL_H

#include "agent/agent.h"

#include <jansson.h>

/* Steps passed through, by where their output came from. */
struct rb__agent_counts {
    int steps;     /* all */
    int executed;  /* ran now */
    int replayed;  /* from the replay log */
    int cached;    /* from the global cache */
    int llm_calls; /* LLM steps that ran now */
};

struct rb__agent {
    const struct rb_agent_opts *o; /* borrowed */
    const char *model;             /* the model named in requests */
    struct rb_store *store;        /* the main thread's store handle */
    struct rb_run *run;            /* the main thread's run handle */
    unsigned run_flags;            /* flags the run was opened with */
    int event_fd;                  /* events, passed on to research threads */
    int attempt;                   /* this attempt */
    int concurrency;               /* research threads at once */
    size_t mem_cap;                /* the largest task memory limit */
    size_t oom_limit;              /* the attempt before died of an OOM at this
                                      limit (bytes): the next task gets more */
    size_t whole_limit;            /* the attempt before was OOM-killed as a whole
                                      under this limit (bytes) with no task limit
                                      of its own: tasks now run under half of it */
    json_t *tools;                 /* the tools declared in requests, or NULL */
    json_t *messages;              /* the conversation, or NULL between two */
    json_t *from_log;              /* per message: true when from a replayed step */
    json_t *pending;               /* the tool call awaiting its tool step */
    int conv;                      /* conversations started */
    char *findings;                /* last final answer and research, or NULL */
    int findings_from_log;         /* findings came from replayed steps */
    char *answer;                  /* the last final answer, or NULL */
    int research_llm;              /* research threads make an LLM call */
    int parked;                    /* the run was parked */
    int stopped_at;                /* stopped (opts->stop) before this workflow
                                      step; 0: not stopped */
    int64_t renewed_ms;            /* when the lease was last renewed */
    struct rb__agent_counts counts;
};

/* Fills err (may be NULL) with code and message; returns code. */
#define rb__agent_fail rb_error_set /* librebound's, by this module's name */

/* Counts a step by the source in info. */
void rb__agent_count(struct rb__agent_counts *c, const struct rb_step_info *info);

/* The LLM and tool options of the agent's calls (cache left at 0). */
void rb__agent_llm_opts(const struct rb__agent *a, struct rb_llm_opts *lo);

/* Reads an OpenAI answer: returns its content (new string; "" for a tool
 * call) and its first tool call (new reference) in *call, or NULL when the
 * body is not an answer. */
char *rb__agent_answer_content(const char *body, size_t len, json_t **call);

/* Replaces the findings the next conversation starts from. */
enum rb_err rb__agent_set_findings(struct rb__agent *a, const char *text, int from_log);

/* Parks the run after step `key` (a `what`: "llm", "tool" or "task") failed for
 * good, with err's failure as context; returns RB_EPARKED with err saying
 * so, or the store's error. */
enum rb_err rb__agent_park(struct rb__agent *a, const char *key, const char *what,
                           struct rb_error *err);

/* Runs the research threads of the fan-out and adds their summaries to the
 * findings. */
enum rb_err rb__agent_fanout(struct rb__agent *a, struct rb_error *err);

#endif
