/*
 * cmd_compare.c - `rebound compare`: placeholder while it is being written (issue
 * 6); says so and exits 3.
 */
#include "cli.h"

int cmd_compare(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_errorf("compare", "not built yet");
    return EXIT_INTERNAL;
}
