/*
 * cmd_report.c - `rebound report RESULTS.json --format junit|md|html [--out
 * FILE]`: regenerates one report from a results.json written by `rebound
 * run` (reports/reports.h), to stdout or to FILE (through a temporary file
 * and a rename; straight into FILE when it is a device, FIFO or link). Exit
 * 0 written, 2 bad usage or bad input, 10 the output cannot be written, 3
 * internal error.
 */
#include "cli.h"

#include "reports.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "usage: rebound report RESULTS.json --format junit|md|html [--out FILE]\n"
    "\n"
    "Writes a report of a results.json written by 'rebound run' (which also\n"
    "writes all three into its --out folder as junit.xml, summary.md and\n"
    "report.html). Each report is made from results.json alone, so it can be\n"
    "regenerated at any time (docs/reports.md):\n"
    "\n"
    "  junit  JUnit XML for CI: a testsuite per scenario, a testcase per faulted\n"
    "         trial ('SCENARIO seed N [trial K]'); a broken expectation is a\n"
    "         failure naming the metric, its value and the limit; a trial that\n"
    "         could not run is an error; times in seconds\n"
    "  md     a Markdown summary for a pull request or a CI step summary: the\n"
    "         suite verdict and resilience score, one row per scenario\n"
    "         (outcome, recovery p50/p95, steps redone, context, verdict),\n"
    "         failures first, then the broken expectations (capped)\n"
    "  html   one self-contained page (no script, nothing fetched): suite\n"
    "         verdict and score, a recovery-time chart per scenario, a timeline\n"
    "         per trial (steps, faults, restarts, recovery, redone steps), every\n"
    "         metric, and failed expectations in words\n"
    "\n"
    "options:\n"
    "  -f, --format FORMAT  junit, md (or markdown), or html (required)\n"
    "  -o, --out FILE       write to FILE instead of stdout (replaced whole; a\n"
    "                       device, FIFO or link is written into as it is)\n"
    "  -h, --help           show this help\n"
    "\n"
    "exit codes: 0 written; 2 bad usage, a missing or unreadable file, malformed\n"
    "JSON, not a results file, or an unknown format; 3 internal error; 10 the\n"
    "output cannot be written.\n";

/* Writes the report to `path` (rb_report_write_path: through a temporary
 * file and a rename, or straight into a device, FIFO or link). */
static int write_file(json_t *results, enum rb_report_format f, const char *path)
{
    struct rb_error err;
    enum rb_err rc;

    rb_error_init(&err);
    rc = rb_report_write_path(results, f, path, &err);
    if (rc != RB_OK) {
        cli_errorf("report", "%s", err.message[0] ? err.message : rb_strerror(rc));
        return rc == RB_ENOMEM ? EXIT_INTERNAL : EXIT_IO;
    }
    return EXIT_OK;
}

int cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = NULL, *outpath = NULL;
    enum rb_report_format f;
    struct rb_error err;
    json_t *results = NULL;
    enum rb_err rc;
    int c, code;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(help, stdout);
            return EXIT_OK;
        case 'f':
            format = optarg;
            break;
        case 'o':
            outpath = optarg;
            break;
        case ':':
            cli_errorf("report", "option '%s' needs a value; run 'rebound report --help'",
                       argv[optind - 1]);
            return EXIT_USAGE;
        default:
            cli_errorf("report", "unknown option '%s'; run 'rebound report --help'",
                       argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_errorf("report", "no results file given; run 'rebound report --help'");
        return EXIT_USAGE;
    }
    if (argc - optind > 1) {
        cli_errorf("report", "one results file at a time, not '%s' as well",
                   argv[optind + 1]);
        return EXIT_USAGE;
    }
    if (!format) {
        cli_errorf("report", "no --format given (junit, md or html)");
        return EXIT_USAGE;
    }
    rb_error_init(&err);
    if (rb_report_format_parse(format, &f, &err) != RB_OK) {
        cli_errorf("report", "%s", err.message);
        return EXIT_USAGE;
    }
    rc = rb_report_load(argv[optind], &results, &err);
    if (rc != RB_OK) {
        cli_errorf("report", "%s", err.message);
        return rc == RB_ENOMEM ? EXIT_INTERNAL : EXIT_USAGE;
    }
    if (outpath) {
        code = write_file(results, f, outpath);
    } else {
        rc = rb_report_write(results, f, stdout, &err);
        code = EXIT_OK;
        if (rc != RB_OK) {
            cli_errorf("report", "cannot write the report: %s", err.message);
            code = rc == RB_ENOMEM ? EXIT_INTERNAL : EXIT_IO;
        }
    }
    json_decref(results);
    return code;
}
