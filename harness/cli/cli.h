/*
 * cli.h - what the `rebound` commands share: exit codes, error printing,
 * and store opening from --store / REBOUND_STORE.
 */
#ifndef REBOUND_CLI_H
#define REBOUND_CLI_H

#include <rebound/rebound.h>

#include <jansson.h>

/* Exit codes of rebound's own outcomes (documented in `rebound --help` and
 * the README). `rebound step` also passes on its command's own status. */
enum cli_exit {
    EXIT_OK = 0,       /* success */
    EXIT_CHECK = 1,    /* a check failed */
    EXIT_USAGE = 2,    /* bad usage or bad input */
    EXIT_INTERNAL = 3, /* internal error (out of memory, unexpected store error) */
    EXIT_STORE =
        4, /* the store cannot be opened or created (permissions, not a folder) */
    EXIT_SCHEMA = 5,    /* the store was written by a newer rebound */
    EXIT_CORRUPT = 6,   /* the store is corrupt */
    EXIT_NOSPACE = 7,   /* disk full: nothing was committed by this call */
    EXIT_PARKED = 8,    /* the run is parked for a human */
    EXIT_BUSY = 9,      /* the store stayed locked by another process */
    EXIT_IO = 10,       /* an input/output error */
    EXIT_NOEXEC = 126,  /* the command could not be executed */
    EXIT_NOTFOUND = 127 /* the command was not found */
};

/* The exit code for a library error. */
int cli_exit_for(enum rb_err code);

/* Prints "rebound: <cmd>: <message>" (or rb_strerror) and returns the exit
 * code for err->code. */
int cli_fail(const char *cmd, const struct rb_error *err);

/* Prints "rebound: <cmd>: <formatted message>" to stderr. */
void cli_errorf(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mkdir -p: creates `path` and the folders above it that are missing; 0, or
 * -1 with errno. */
int cli_mkdir_parents(const char *path);

/* Writes DIR/results.json whole (a temporary file, then a rename); 0, or -1
 * after saying why as command `cmd`. */
int cli_write_results(const char *cmd, const char *dir, json_t *root);

/* This program's absolute path (for the agent's REBOUND and `rebound
 * agent`) into out (PATH_MAX bytes); 0, or -1 after saying why as `cmd`. */
int cli_self_path(const char *cmd, char *out, size_t size);

/* 1 when `s` is valid UTF-8 (results.json holds paths as JSON strings). */
int cli_utf8_ok(const char *s);

/* The store folder: `opt` if given, else REBOUND_STORE, else NULL. */
const char *cli_store_dir(const char *opt);

/* Opens the store or prints why not; returns an exit code (0 on success). */
int cli_open_store(const char *cmd, const char *dir, int full, struct rb_store **out);

/* As cli_open_store(), but a missing store is an error (exit 2), not created:
 * for the commands that only read. */
int cli_open_existing_store(const char *cmd, const char *dir, struct rb_store **out);

/* The commands. Each gets argv with argv[0] the command name. */
int cmd_step(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_lineage(int argc, char **argv);
int cmd_escalations(int argc, char **argv);
int cmd_park(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_world(int argc, char **argv);
int cmd_lint(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_audit(int argc, char **argv);

#endif
