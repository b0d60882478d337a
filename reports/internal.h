/*
 * internal.h - what the writers of rb_reports share and nothing outside may
 * use: errors, escaping for XML/HTML and Markdown, number formatting, and the
 * suite model (trials grouped by scenario, with their metrics as
 * percentiles) that every writer reads instead of walking results.json.
 */
#ifndef REBOUND_REPORTS_INTERNAL_H
#define REBOUND_REPORTS_INTERNAL_H

#include "reports.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* ---- errors (report.c) ------------------------------------------------- */

#define rb__rp_fail rb_error_set /* librebound's, by this module's names */
#define rb__rp_fail_errno rb_error_set_errno
enum rb_err rb__rp_errno_code(int e);

/* ---- text (report.c) --------------------------------------------------- */

/* Writes `s` escaped for XML and HTML text and attribute values: & < > " '
 * as entities, newline and tab as character references; other control
 * characters, U+FFFE, U+FFFF and bytes that are not UTF-8 (none of them
 * allowed in XML 1.0) as U+FFFD. NULL writes nothing. */
void rb__put_xml(FILE *out, const char *s);

/* Writes `s` escaped for a Markdown table cell or list item: ASCII
 * punctuation that Markdown or HTML would read (| ` * _ [ ] < > & \ ...) is
 * backslash-escaped, newlines and tabs become spaces, other control
 * characters are dropped, and what rb__md_defuse() names is defused. NULL
 * writes nothing. */
void rb__put_md(FILE *out, const char *s);

/* What agent-controlled text must not do in Markdown that GitHub renders:
 * at `s`, an '@' (a mention), "://" or "www." (a live link) or a
 * bidirectional control character (U+202A-202E, U+2066-2069), or U+FFFE or
 * U+FFFF (not characters). Returns what to write instead (the same with
 * U+200B inserted, "" to drop it, U+FFFD for a non-character) and
 * sets *len to the bytes it replaces; NULL when `s` starts none of them. */
const char *rb__md_defuse(const char *s, size_t *len);

/* 3 when `s` starts with a bidirectional control character (U+202A-202E,
 * U+2066-2069), else 0. */
int rb__bidi_len(const char *s);

/* Cuts `s` back to the end of its last whole UTF-8 character, for a string
 * cut at a byte count (snprintf into a fixed buffer, "%95s"): librebound's. */
#define rb__utf8_trim rb_utf8_trim

/* Formats v with up to `dec` decimals, trailing zeros dropped ("39",
 * "1.5"). Returns buf. */
const char *rb__fmt_num(char buf[48], double v, int dec);

/* The string at obj[key], or NULL when absent or not a string. */
const char *rb__jstr(json_t *obj, const char *key);

/* 1 and *v when obj[key] is a number; 0 otherwise (absent, null, other). */
int rb__jnum(json_t *obj, const char *key, double *v);

/* 1 and *v when obj[key] is a number: an integer as it is, a real rounded
 * toward zero and clamped to +-1e15 (NaN never comes from JSON); 0 otherwise. */
int rb__jint(json_t *obj, const char *key, long long *v);

/* A double as an int bin index in [0, n], or -1 when it falls outside
 * (or is not finite): a safe cast for drawing. */
int rb__bin(double x, int n);

/* ---- the suite model (model.c) ----------------------------------------- */

/* The per-scenario metrics, in the order of results-additions.md. */
enum rb__metric {
    RB__M_RECOVERY = 0,  /* recovery_ms, over every fault */
    RB__M_REDONE,        /* steps_redone */
    RB__M_INFLIGHT,      /* inflight_lost */
    RB__M_TIME_LOST,     /* time_lost_ms */
    RB__M_WALL,          /* wall_ms */
    RB__M_LLM_DUP,       /* llm_calls_duplicated */
    RB__M_TOKENS,        /* tokens_wasted */
    RB__M_COST,          /* cost_wasted */
    RB__M_RECOVERY_WIRE, /* recovery_first_request_ms, over every fault: the
                            recovery a black box shows (no step events) */
    RB__M_COUNT
};

/* The metric's name in results.json ("recovery_ms"). */
const char *rb__metric_name(enum rb__metric m);

/* Nearest-rank percentiles of a metric's values; n == 0 means unknown. */
struct rb__stats {
    size_t n;   /* values */
    double p50; /* nearest rank */
    double p95;
    double max;
};

enum rb__verdict {
    RB__PASS = 0,
    RB__FAIL,
    RB__ERROR, /* the trial could not run */
};

enum rb__outcome {
    RB__O_RECOVERED = 0,
    RB__O_DEGRADED,
    RB__O_ESCALATED,
    RB__O_FAILED,
    RB__O_HUNG,
    RB__O_OTHER, /* missing or unknown to this reader */
    RB__O_COUNT
};

const char *rb__outcome_name(enum rb__outcome o);

struct rb__trial {
    json_t *rec;          /* borrowed: the trial's record */
    const char *scenario; /* borrowed; "(unnamed)" when missing */
    long long seed;       /* -1 when missing */
    int k;                /* 1-based, among trials of the same scenario and seed */
    enum rb__outcome outcome;
    const char *outcome_text; /* as written, or "unknown" */
    enum rb__verdict verdict;
};

struct rb__scen {
    const char *name;        /* borrowed */
    const char *file;        /* borrowed, or NULL */
    const char *description; /* borrowed, or NULL */
    json_t *block;           /* borrowed "scenarios" entry, or NULL */
    size_t *trials;          /* owned: indices into rb__suite.t, in file order */
    size_t n;
    int passed, failed, errors;
    int outcomes[RB__O_COUNT];
    struct rb__stats m[RB__M_COUNT];
    int ctx_known; /* trials whose context was compared */
    int ctx_lost;  /* of them, lost */
    enum rb__verdict verdict;
    /* Against a baseline without the replay log (--baseline no-replay), for
     * recovery_ms [0] and steps_redone [1]: from the block, else from the
     * trials' "baseline" records. */
    struct rb__stats base[2]; /* the baseline's values; n == 0: none */
    double reduction[2];      /* (baseline p50 - p50) / baseline p50 * 100 */
    int has_reduction[2];     /* 0 when unknown or the baseline p50 is 0 */
};

struct rb__suite {
    json_t *root;        /* borrowed */
    struct rb__trial *t; /* owned, in file order */
    size_t n_t;
    struct rb__scen *s; /* owned, in run order */
    size_t n_s;
    size_t *order; /* owned: indices into s, failing scenarios first */
    int passed, failed, errors;
    double score;  /* 0-100 */
    int has_score; /* 0 when there is no trial */
    int complete;  /* suite.complete: 1, 0, or -1 unknown */
    enum rb__verdict verdict;
};

/* Builds the model of `root` (checked with rb_report_check()). */
enum rb_err rb__suite_build(json_t *root, struct rb__suite *out, struct rb_error *err);
void rb__suite_release(struct rb__suite *s);

/* The trial's broken expectations as strings: its "broken" array (strings
 * kept; objects shown by their "message" or compact JSON), or a string
 * "broken". Returns the count; calls fn for each. */
size_t rb__broken_each(json_t *rec, void (*fn)(const char *text, void *arg), void *arg);

/* The scenarios `rebound run` skipped because this machine cannot run them
 * (suite.skipped: [{"scenario", "why"}]): calls fn for each with its name
 * ("(unnamed)" when missing) and why (NULL when missing); returns the count. */
size_t rb__skipped_each(const struct rb__suite *s,
                        void (*fn)(const char *scenario, const char *why, void *arg),
                        void *arg);

/* A broken expectation in words ("steps redone was 19; the limit is at most
 * 0"), or "" when it has no known shape. */
void rb__broken_words(const char *text, char *buf, size_t size);

/* Nearest-rank percentile p (0-100) of sorted values v[0..n), n > 0. */
double rb__percentile(const double *v, size_t n, double p);

/* ---- the writers ------------------------------------------------------- */

enum rb_err rb__write_junit(const struct rb__suite *s, FILE *out, struct rb_error *err);
enum rb_err rb__write_md(const struct rb__suite *s, FILE *out, struct rb_error *err);
enum rb_err rb__write_html(const struct rb__suite *s, FILE *out, struct rb_error *err);

#endif
