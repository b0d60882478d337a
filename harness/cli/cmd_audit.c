/*
 * cmd_audit.c - `rebound audit`: placeholder while it is being written (issue
 * 7); says so and exits 3.
 */
#include "cli.h"

int cmd_audit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_errorf("audit", "not built yet");
    return EXIT_INTERNAL;
}
