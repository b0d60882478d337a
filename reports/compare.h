/*
 * compare.h - the comparison of two result sets (`rebound compare`): the
 * faulted trials of a base and a new results.json, matched by scenario and
 * seed, reduced per scenario to recovery p50/p95, steps redone and outcome
 * counts, and judged against regression thresholds and the spread of the
 * trials. docs/compare.md states every rule; this header is its reference.
 *
 * Conventions as in rebound.h: enum rb_err returns, `err` may be NULL,
 * out-parameters written only on success, nothing printed.
 */
#ifndef REBOUND_REPORTS_COMPARE_H
#define REBOUND_REPORTS_COMPARE_H

#include <rebound/rebound.h>

#include <jansson.h>
#include <stddef.h>

/* The thresholds of a regression. */
struct rb_compare_opts {
    double max_regression_pct; /* a rise of more than this percent (default 10) */
    double min_change_ms;      /* and of more than this many ms (default 50) */
};

/* Sets the defaults: 10 percent, 50 ms. */
void rb_compare_opts_init(struct rb_compare_opts *opts);

/* How one metric moved, judged by the rules in docs/compare.md. */
enum rb_compare_change {
    RB_COMPARE_UNKNOWN = 0, /* a side has no value: nothing to judge */
    RB_COMPARE_SAME,        /* equal */
    RB_COMPARE_SMALL,       /* changed by no more than a threshold */
    RB_COMPARE_NOISE,       /* beyond the thresholds, within the base's spread */
    RB_COMPARE_BETTER,      /* an improvement beyond thresholds and spread */
    RB_COMPARE_WORSE        /* a regression */
};

/* The outcomes of a trial, best first; RB_OUTCOME_UNKNOWN when absent. */
enum rb_compare_outcome {
    RB_OUTCOME_RECOVERED = 0,
    RB_OUTCOME_DEGRADED,
    RB_OUTCOME_ESCALATED,
    RB_OUTCOME_FAILED,
    RB_OUTCOME_HUNG,
    RB_OUTCOME_UNKNOWN,
    RB_OUTCOME_COUNT_
};

/* Returns the name of an outcome ("recovered", ..., "unknown"). */
const char *rb_compare_outcome_name(enum rb_compare_outcome o);

/* One side (base or new) of a scenario: its compared trials pooled. */
struct rb_compare_side {
    size_t trials;      /* faulted trials compared */
    size_t judged;      /* of them, with a verdict ("pass", "fail" or "error") */
    size_t passed;      /* of them, verdict "pass" */
    size_t rec_n;       /* recovery samples (one per fault that recovered), see wire */
    double rec_p50;     /* nearest rank; valid when rec_n > 0 */
    double rec_p95;     /* nearest rank; valid when rec_n > 0 */
    double rec_min;     /* fastest sample; valid when rec_n > 0 */
    double rec_max;     /* slowest sample; valid when rec_n > 0 */
    size_t steps_n;     /* trials with a steps_redone */
    double steps_total; /* steps redone, summed over those trials */
    double steps_mean;  /* per trial; valid when steps_n > 0 */
    double steps_min;   /* fewest in one trial; valid when steps_n > 0 */
    double steps_max;   /* most in one trial; valid when steps_n > 0 */
    size_t outcomes[RB_OUTCOME_COUNT_]; /* trials by outcome */
};

/* A metric before and after, and the judgement. */
struct rb_compare_metric {
    enum rb_compare_change change;
    double before; /* valid unless change is RB_COMPARE_UNKNOWN */
    double after;  /* valid unless change is RB_COMPARE_UNKNOWN */
};

/* Where a scenario was found. */
enum rb_compare_presence {
    RB_COMPARE_BOTH = 0, /* in both files: compared */
    RB_COMPARE_ADDED,    /* only in the new file */
    RB_COMPARE_REMOVED   /* only in the base file */
};

/* The verdict on one scenario. */
enum rb_compare_verdict {
    RB_VERDICT_SAME = 0,   /* nothing moved beyond the thresholds */
    RB_VERDICT_NOISE,      /* something moved, within the spread of the trials */
    RB_VERDICT_IMPROVED,   /* better, and nothing worse */
    RB_VERDICT_REGRESSION, /* a metric or an outcome got worse */
    RB_VERDICT_ADDED,      /* only in the new file (not a regression) */
    RB_VERDICT_REMOVED     /* only in the base file (not a regression) */
};

struct rb_compare_scenario {
    char *name;                        /* owned: the scenario's name */
    enum rb_compare_presence presence; /* both, added or removed */
    int all_seeds;                     /* 1: no seed in common, every trial was pooled */
    int wire;    /* 1: recovery from the wire (recovery_first_request_ms), as a side
                    has no step-based recovery_ms */
    char *seeds; /* owned: the seeds compared, "1 2 3" */
    char *seeds_only_base; /* owned: seeds only in the base file, or "" */
    char *seeds_only_new;  /* owned: seeds only in the new file, or "" */
    struct rb_compare_side base;
    struct rb_compare_side after;   /* the new file's side */
    struct rb_compare_metric p50;   /* recovery p50, ms */
    struct rb_compare_metric p95;   /* recovery p95, ms */
    struct rb_compare_metric steps; /* steps redone per trial (mean) */
    int outcome_worse;              /* fewer passes, or a worse mix of outcomes */
    int outcome_better;             /* more passes, or a better mix, and nothing worse */
    enum rb_compare_verdict verdict;
    char *why; /* owned: what regressed ("recovery p50, outcomes"), or "" */
};

/* The comparison of two result sets. */
struct rb_compare {
    char *base_name;                       /* owned: as given, e.g. the path */
    char *new_name;                        /* owned */
    int base_incomplete;                   /* the base run was interrupted */
    int new_incomplete;                    /* the new run was interrupted */
    size_t base_trials;                    /* faulted trials in the base file */
    size_t new_trials;                     /* faulted trials in the new file */
    struct rb_compare_opts opts;           /* the thresholds used */
    struct rb_compare_scenario *scenarios; /* owned: regressions first, then in
                                              the base file's order, then added */
    size_t n_scenarios;
    size_t regressions; /* scenarios with verdict RB_VERDICT_REGRESSION */
};

/*
 * Compares two parsed results.json documents (borrowed). `base_name` and
 * `new_name` name them in messages and output. `opts` may be NULL for the
 * defaults. On success *out is a new comparison (rb_compare_free()).
 * Errors: RB_EINVAL when a document is not a results file (not an object, no
 * "schema", no "trials" array, a trial without "scenario"), RB_ESCHEMA when
 * its schema is newer than 1, each with the reason naming the file;
 * RB_ENOMEM.
 */
enum rb_err rb_compare_json(const json_t *base, const char *base_name,
                            const json_t *newer, const char *new_name,
                            const struct rb_compare_opts *opts, struct rb_compare **out,
                            struct rb_error *err);

/*
 * As rb_compare_json(), reading both files. Errors as above, and RB_ENOENT
 * (a file is missing), RB_EACCES, RB_EIO (cannot be read), RB_EINVAL (a
 * folder, or not JSON: then err has the file, line and column).
 */
enum rb_err rb_compare_files(const char *base_path, const char *new_path,
                             const struct rb_compare_opts *opts, struct rb_compare **out,
                             struct rb_error *err);

/* Frees a comparison. Does nothing on NULL. */
void rb_compare_free(struct rb_compare *cmp);

/* Output formats. */
enum rb_compare_format {
    RB_COMPARE_TEXT = 0, /* a block per scenario, for a terminal or a CI log */
    RB_COMPARE_MD        /* a Markdown table, for a pull-request comment */
};

/*
 * Appends the comparison to `out` in `format`, ending with the verdict line.
 * Names are made safe for the format (control characters replaced; Markdown
 * escaped). On error (RB_ENOMEM) `out` is unaltered.
 */
enum rb_err rb_compare_render(const struct rb_compare *cmp, enum rb_compare_format format,
                              struct rb_buf *out, struct rb_error *err);

#endif
