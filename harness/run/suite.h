/*
 * suite.h - the run engine behind `rebound run` and `rebound audit`: every
 * scenario's trials (for each seed a golden trial, `trials` faulted ones and,
 * when asked, the same faulted trials with the replay log disabled), run in
 * parallel in forked worker processes, scored against their golden trial,
 * checked against the scenario's `expect`, and gathered into the root of
 * results.json (docs/results.md). Also the (de)serializer of one trial, which
 * the workers use to hand a trial back to the engine.
 *
 * How a caller uses it (cmd_run.c is the model):
 *   1. load the scenarios and check each with rb_trial_supported();
 *   2. make the output folder (absolute path, writable);
 *   3. rb_suite_opts_init(&o); fill o; rb_suite_run(&o, &results, &sig, &err);
 *   4. write `results` (the caller writes results.json and the reports),
 *      print its own suite line (rb_suite_summary() gives the words), pick
 *      the exit code: 128 + sig when sig != 0, else 2 when rb_suite_run()
 *      returned an error, else 1 when suite.failed > 0, else 0.
 *
 * Signals: while rb_suite_run() works it blocks SIGINT, SIGTERM, SIGHUP and
 * SIGCHLD in the calling thread and restores the mask before returning. Call
 * it from a process with no other threads running (it forks workers). A stop
 * signal tells the workers to stop (their supervisors kill their agents),
 * waits for them, and returns the partial results with suite.complete false.
 *
 * Conventions as in rebound.h: enum rb_err returns, `err` may be NULL,
 * nothing printed except on the FILEs the caller hands over.
 */
#ifndef REBOUND_HARNESS_SUITE_H
#define REBOUND_HARNESS_SUITE_H

#include "run.h"

#include <jansson.h>
#include <stdio.h>

struct rb_suite_opts {
    struct rb_scenario *const *scenarios; /* borrowed; loaded, and each accepted
                                             by rb_trial_supported() */
    size_t n;                             /* scenarios */
    const char *out_dir;     /* absolute path of an existing, writable folder;
                                each trial gets out_dir/trials/<scenario>-s<seed>-
                                golden|faulted[-K]|baseline[-K]/ */
    const char *rebound_exe; /* absolute path of `rebound` (REBOUND for the agent,
                                and the built-in agent's program) */
    int jobs;                /* trials at once; <= 0: the number of online CPUs.
                                A scenario with a fixed world port runs its trials
                                one at a time whatever this says */
    int baseline_no_replay;  /* 1: each faulted trial is run a second time with
                                REBOUND_NO_REPLAY=1 (the "baseline" record and the
                                scenario's "baseline" block) */
    FILE *lines;             /* one summary line per faulted trial (and a "broken:"
                                line under a failure), in scenario and seed order,
                                or NULL for none */
    int color;               /* 1: PASS/FAIL in colour on `lines` (the caller decides:
                                a terminal and no NO_COLOR) */
    int progress;            /* 1: a progress line on stderr, redrawn in place (the
                                caller decides: stderr is a terminal) */
    const char *golden_dir;  /* NULL: run golden trials. Else reuse golden trials
                                recorded earlier, nothing golden is run: either one
                                trial folder holding trial.json (used for every
                                scenario and seed), or an earlier output folder
                                (its trials/<scenario>-s<seed>-golden/trial.json) */
    int no_golden;           /* 1: no golden trial at all: faulted trials are scored
                                against an empty one (what needs golden is unknown)
                                and a golden that "did not complete" breaks nothing */
};

/* Defaults: everything 0/NULL (jobs 0: the number of CPUs). */
void rb_suite_opts_init(struct rb_suite_opts *o);

/*
 * Runs the suite. *results gets a new reference to the results.json root
 * {"schema", "rebound", "suite", "scenarios", "trials"} whenever the suite
 * started (also when a trial could not run or a signal stopped it early:
 * the records so far, suite.complete false); NULL otherwise. *stop_signal
 * gets the signal that stopped the suite, or 0.
 *
 * Returns RB_OK when every trial ran (expectations broken are results, not
 * errors). When a trial cannot run (its agent cannot start, its folder or its
 * world cannot be made, a fixed port is taken) no new trial is started, the
 * running ones finish, the trial is recorded with verdict "error" and the
 * reason in "broken", and the error is returned (RB_ECHILD, RB_EINVAL, RB_EIO,
 * ... with the message in err, naming the scenario's file). RB_EINVAL for bad
 * options, RB_ENOMEM, RB_EIO when a worker cannot be forked.
 */
enum rb_err rb_suite_run(const struct rb_suite_opts *o, json_t **results,
                         int *stop_signal, struct rb_error *err);

/*
 * The suite line's words for `results` (a root from rb_suite_run(), or an
 * older results.json), NUL-terminated in buf: "12 trials, 11 passed, 1
 * failed; resilience score 92" and, with a baseline, "; vs no-replay:
 * recovery -63%, steps redone -100%" (p50 reductions over all scenarios).
 */
void rb_suite_summary(const json_t *results, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * One trial as a file: what a worker writes and the engine reads back
 */

/*
 * Writes trial `t` whole (every field, every event with its time and JSON,
 * the side effects) to `path` as JSON (through a temporary file and a
 * rename). RB_EIO when it cannot be written, RB_ENOMEM.
 */
enum rb_err rb_trial_save(const struct rb_trial *t, const char *path,
                          struct rb_error *err);

/*
 * Reads a trial written by rb_trial_save() into *out (initialised by the
 * caller with rb_trial_init(); filled only on success). RB_ENOENT when the
 * file is missing, RB_EINVAL when it is not such a trial.
 */
enum rb_err rb_trial_load(const char *path, struct rb_trial *out, struct rb_error *err);

#endif
