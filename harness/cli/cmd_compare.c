/*
 * cmd_compare.c - `rebound compare BASE.json NEW.json`: compares two result
 * sets of `rebound run` per scenario (reports/compare.h does the work) and
 * prints the comparison as text or Markdown. Exit 1 on a regression, 0
 * otherwise, 2 on bad usage or a file that is not a results file.
 */
#include "cli.h"

#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rebound compare BASE.json NEW.json [--max-regression PCT]\n"
    "                       [--min-change-ms MS] [--format text|md]\n"
    "\n"
    "Compares two results.json files of 'rebound run' (docs/compare.md). Faulted\n"
    "trials are matched by scenario and seed; the trials of the seeds found in\n"
    "both files are pooled per scenario (when no seed is in common, every trial\n"
    "of each side). Per scenario it prints the recovery p50 and p95 (nearest\n"
    "rank over every fault's recovery_ms; recovery_first_request_ms when a\n"
    "side has no step events) before and after, the change in percent and\n"
    "ms, steps redone before and after, the outcomes and passes, and a\n"
    "verdict; a scenario found in one file only is listed as added or\n"
    "removed, not a regression. A final line gives the verdict.\n"
    "\n"
    "A scenario regresses when:\n"
    "  - its recovery p50 or p95 went up by more than PCT percent AND by more\n"
    "    than MS ms, AND the new value is above the slowest recovery of the\n"
    "    base trials;\n"
    "  - its steps redone per trial went up above the most any base trial\n"
    "    redid (any rise counts, no thresholds);\n"
    "  - or its outcomes got worse: a smaller share of trials passed, or a\n"
    "    smaller share reached recovered (or recovered-or-degraded, and so on\n"
    "    down the order recovered, degraded, escalated, failed, hung).\n"
    "Statistical honesty: a rise beyond the thresholds whose new value is\n"
    "still within the spread [min, max] of the base trials' samples is shown\n"
    "as 'within noise (spread ...)' and does not fail. With one base sample\n"
    "there is no spread, and the thresholds alone decide.\n"
    "\n"
    "options:\n"
    "  --max-regression PCT  percent a recovery percentile may rise (default 10)\n"
    "  --min-change-ms MS    smallest rise in ms that counts (default 50)\n"
    "  --format text|md      plain text (default) or a Markdown table\n"
    "  -h, --help            show this help\n"
    "\n"
    "exit codes: 0 no regression; 1 a regression (named on the verdict line);\n"
    "2 bad usage, or a file missing, unreadable, not JSON or not a results\n"
    "file; 3 internal error.\n";

/* Parses a number of 0 or more into *out; 0 on success. */
static int parse_amount(const char *opt, const char *s, const char *what, double *out)
{
    char *end = NULL;
    double v;

    if (!s || !*s) {
        cli_errorf("compare", "%s needs a value (%s)", opt, what);
        return -1;
    }
    v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v) || v < 0) {
        cli_errorf("compare", "bad %s '%s': expected %s", opt, s, what);
        return -1;
    }
    *out = v;
    return 0;
}

/* Takes the value of option `name` from "--name=V" or the next argument. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);

    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    (*i)++;
    return argv[*i];
}

static int is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);

    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int cmd_compare(int argc, char **argv)
{
    struct rb_compare_opts opts;
    enum rb_compare_format format = RB_COMPARE_TEXT;
    const char *files[2] = {NULL, NULL};
    struct rb_compare *cmp = NULL;
    struct rb_error err;
    struct rb_buf out;
    int nfiles = 0, rc = EXIT_USAGE, i, only_files = 0;

    rb_compare_opts_init(&opts);
    rb_buf_init(&out);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!only_files && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(help, stdout);
            rc = EXIT_OK;
            goto out;
        } else if (!only_files && strcmp(a, "--") == 0) {
            only_files = 1;
        } else if (!only_files && is_opt(a, "--max-regression")) {
            if (parse_amount("--max-regression",
                             opt_value(argc, argv, &i, "--max-regression"),
                             "a percentage, 0 or more", &opts.max_regression_pct))
                goto out;
        } else if (!only_files && is_opt(a, "--min-change-ms")) {
            if (parse_amount("--min-change-ms",
                             opt_value(argc, argv, &i, "--min-change-ms"),
                             "a number of ms, 0 or more", &opts.min_change_ms))
                goto out;
        } else if (!only_files && is_opt(a, "--format")) {
            const char *v = opt_value(argc, argv, &i, "--format");

            if (v && strcmp(v, "text") == 0) {
                format = RB_COMPARE_TEXT;
            } else if (v && (strcmp(v, "md") == 0 || strcmp(v, "markdown") == 0)) {
                format = RB_COMPARE_MD;
            } else {
                cli_errorf("compare", "bad --format '%s': expected text or md",
                           v ? v : "");
                goto out;
            }
        } else if (!only_files && a[0] == '-' && a[1] != '\0') {
            cli_errorf("compare", "unknown option '%s'; see 'rebound compare --help'", a);
            goto out;
        } else if (nfiles < 2) {
            files[nfiles++] = a;
        } else {
            cli_errorf("compare", "too many files: '%s'; give BASE.json and NEW.json", a);
            goto out;
        }
    }
    if (nfiles < 2) {
        cli_errorf("compare",
                   "give two results files: rebound compare BASE.json NEW.json");
        goto out;
    }
    rb_error_init(&err);
    if (rb_compare_files(files[0], files[1], &opts, &cmp, &err) != RB_OK) {
        cli_errorf("compare", "%s", err.message[0] ? err.message : rb_strerror(err.code));
        rc = err.code == RB_ENOMEM ? EXIT_INTERNAL : EXIT_USAGE;
        goto out;
    }
    if (rb_compare_render(cmp, format, &out, &err) != RB_OK) {
        cli_errorf("compare", "%s", err.message);
        rc = EXIT_INTERNAL;
        goto out_cmp;
    }
    if ((out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len) ||
        fflush(stdout) != 0) {
        cli_errorf("compare", "cannot write the comparison");
        rc = EXIT_IO;
        goto out_cmp;
    }
    rc = cmp->regressions > 0 ? EXIT_CHECK : EXIT_OK;
out_cmp:
    rb_compare_free(cmp);
out:
    rb_buf_release(&out);
    return rc;
}
