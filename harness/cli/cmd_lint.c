/*
 * cmd_lint.c - `rebound lint FILE...`: validates scenario files and prints
 * every problem as `file:line:col: message` on stderr, then a one-line
 * summary on stdout. Exit 0 when every file is a valid scenario, 2 otherwise.
 */
#include "cli.h"

#include "scenario.h"

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: rebound lint FILE...\n"
    "\n"
    "Validates scenario files (see docs/scenarios.md): JSON syntax, unknown\n"
    "keys, wrong types, missing fields and impossible combinations, such as a\n"
    "trigger at step 300 of a 200-step workflow. Every problem is printed on\n"
    "stderr as\n"
    "  FILE:LINE:COLUMN: message\n"
    "and a summary on stdout: 'N files, M with errors'.\n"
    "\n"
    "options:\n"
    "  -h, --help  show this help\n"
    "\n"
    "exit codes: 0 every file is valid; 2 a file has errors, cannot be read,\n"
    "or bad usage; 3 internal error.\n";

/* Lints one file; returns 0 when valid, else the exit code it calls for. */
static int lint_one(const char *path)
{
    struct rb_scenario_diags diags;
    struct rb_scenario *s = NULL;
    struct rb_error err;
    enum rb_err rc;
    size_t i;

    rb_scenario_diags_init(&diags);
    rb_error_init(&err);
    rc = rb_scenario_load(path, &s, &diags, &err);
    if (rc == RB_EINVAL && diags.count > 0) {
        for (i = 0; i < diags.count; i++) {
            const struct rb_error *d = &diags.items[i];

            if (d->line > 0)
                fprintf(stderr, "%s:%d:%d: %s\n", d->file, d->line, d->column,
                        d->message);
            else
                fprintf(stderr, "%s: %s\n", d->file, d->message);
        }
    } else if (rc != RB_OK) {
        cli_fail("lint", &err);
    }
    rb_scenario_diags_release(&diags);
    rb_scenario_free(s);
    if (rc == RB_OK)
        return EXIT_OK;
    return rc == RB_ENOMEM ? EXIT_INTERNAL : EXIT_USAGE;
}

int cmd_lint(int argc, char **argv)
{
    int i, first = 1, bad = 0, files = 0, worst = EXIT_OK;

    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(help, stdout);
        return EXIT_OK;
    }
    if (argc >= 2 && !strcmp(argv[1], "--"))
        first = 2;
    for (i = first; i < argc; i++) {
        if (first == 1 && argv[i][0] == '-' && argv[i][1]) {
            cli_errorf("lint", "unknown option '%s'; run 'rebound lint --help'", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (first >= argc) {
        cli_errorf("lint", "no files to lint; run 'rebound lint --help'");
        return EXIT_USAGE;
    }
    for (i = first; i < argc; i++) {
        int rc = lint_one(argv[i]);

        files++;
        if (rc != EXIT_OK) {
            bad++;
            if (rc > worst)
                worst = rc;
        }
    }
    printf("%d file%s, %d with errors\n", files, files == 1 ? "" : "s", bad);
    return worst;
}
