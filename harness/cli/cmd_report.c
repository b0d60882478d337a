/*
 * cmd_report.c - `rebound report`: placeholder while it is being written (issue
 * 6); says so and exits 3.
 */
#include "cli.h"

int cmd_report(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_errorf("report", "not built yet");
    return EXIT_INTERNAL;
}
