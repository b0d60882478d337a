/*
 * reports.h - the report writers of rb_reports: JUnit XML for CI, a short
 * Markdown summary for a pull request, and one self-contained HTML page
 * (inline CSS and SVG charts) for the person debugging a failure. Each is
 * fed from a parsed results.json alone (docs/results.md), so any of them can
 * be regenerated later with `rebound report`.
 *
 * Conventions as in rebound.h: enum rb_err returns, `err` may be NULL,
 * out-parameters written only on success, nothing printed.
 */
#ifndef REBOUND_REPORTS_H
#define REBOUND_REPORTS_H

#include <rebound/rebound.h>

#include <jansson.h>
#include <stdio.h>

/* The results schema these writers read; a newer one is refused. */
#define RB_REPORT_SCHEMA 1

enum rb_report_format {
    RB_REPORT_JUNIT = 1, /* JUnit XML: a testsuite per scenario, a testcase per trial */
    RB_REPORT_MD,        /* Markdown summary table, failures first */
    RB_REPORT_HTML,      /* one self-contained HTML page with SVG charts */
};

/*
 * Sets *out to the format named `name` ("junit", "md" or "markdown",
 * "html"). RB_EINVAL with `unknown report format 'x'` otherwise.
 */
enum rb_err rb_report_format_parse(const char *name, enum rb_report_format *out,
                                   struct rb_error *err);

/* The usual file name of a format: "junit.xml", "summary.md", "report.html". */
const char *rb_report_file_name(enum rb_report_format f);

/*
 * Checks that `results` is a results document these writers can read: an
 * object with "schema" 1 (a larger one is RB_ESCHEMA) and a "trials" array.
 * RB_EINVAL with the reason otherwise ("no 'trials' array").
 */
enum rb_err rb_report_check(json_t *results, struct rb_error *err);

/*
 * Reads and checks results.json at `path`. On success *out is a new
 * reference. RB_ENOENT / RB_EACCES / RB_EIO when the file cannot be read,
 * RB_EINVAL when it is not JSON (with line and column) or not a results
 * document, RB_ESCHEMA when it was written with a newer schema; each
 * message names the file.
 */
enum rb_err rb_report_load(const char *path, json_t **out, struct rb_error *err);

/*
 * Writes the report of `results` (borrowed; not modified) in format `f` to
 * `out`. Missing optional fields (older files) are shown as unknown. RB_EINVAL
 * when `results` fails rb_report_check(), RB_EIO when writing fails, RB_ENOMEM.
 * On error part of the report may have been written to `out`.
 */
enum rb_err rb_report_write(json_t *results, enum rb_report_format f, FILE *out,
                            struct rb_error *err);

/*
 * Writes the report of `results` in format `f` to the file `path`. When
 * `path` is missing or a regular file, through a new temporary file in the
 * same folder (created exclusively, never following a link) and a rename,
 * so a reader sees the old file or the whole new one; when it is anything
 * else (a device such as /dev/null, a FIFO, a symbolic link), straight into
 * it, so it stays what it is. Errors name `path` (RB_EIO, RB_EACCES,
 * RB_ENOENT, RB_ENOSPC, RB_EINVAL, RB_ENOMEM); the temporary file is removed.
 */
enum rb_err rb_report_write_path(json_t *results, enum rb_report_format f,
                                 const char *path, struct rb_error *err);

/*
 * Writes dir/junit.xml, dir/summary.md and dir/report.html for `results`
 * (borrowed), each with rb_report_write_path(), so a reader sees the old
 * file or the whole new one. `dir` must exist. Stops at
 * the first error (RB_EIO, RB_EACCES, RB_ENOSPC with the file named; RB_EINVAL
 * when `results` is not a results document) and removes its temporary file;
 * reports already renamed stay.
 */
enum rb_err rb_reports_write_all(const char *dir, json_t *results, struct rb_error *err);

#endif
