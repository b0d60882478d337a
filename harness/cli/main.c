/*
 * main.c - the `rebound` program: global options, dispatch to a command,
 * and the exit codes every command shares.
 */
#include "cli.h"

#include <unistd.h>

#include <sys/stat.h>

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: rebound <command> [options]\n"
    "\n"
    "rebound is a fault-injection harness for durable agent workflows. Its\n"
    "durable runner keeps a replay log, a global cache and a blob store in a\n"
    "store folder (SQLite + files; nothing to start).\n"
    "\n"
    "commands:\n"
    "  step         run a command at most once per (run, name): a durable shell step\n"
    "  runs         list the runs in a store\n"
    "  log          show a run's replay log (text or --json)\n"
    "  lineage      show which step produced which blob from which inputs (text or "
    "--dot)\n"
    "  escalations  list runs parked for a human; 'escalations resolve RUN' resumes one\n"
    "  park         park a run for a human, with a reason and context\n"
    "  check        check a store's integrity\n"
    "  world        run the world: a simulated LLM and tools on 127.0.0.1, with faults\n"
    "  lint         validate scenario files: every problem as FILE:LINE:COL: message\n"
    "  agent        run the built-in agent on a scenario's workflow as a durable run\n"
    "  run          run scenarios: golden and faulted trials, scored, results.json\n"
    "  report       write JUnit, Markdown or HTML from a results.json\n"
    "  compare      compare two results.json: recovery before and after, regressions\n"
    "  audit        run any agent command as a black box under faults, and score it\n"
    "\n"
    "Run 'rebound <command> --help' for a command's options.\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n"
    "\n"
    "environment:\n"
    "  REBOUND_STORE  store folder when --store is not given\n"
    "  REBOUND_RUN    run id when --run is not given\n"
    "\n"
    "exit codes:\n"
    "  0    success\n"
    "  1    a check failed\n"
    "  2    bad usage or bad input (unknown option, bad name, empty command)\n"
    "  3    internal error\n"
    "  4    the store cannot be opened or created (permissions, not a folder)\n"
    "  5    the store was written by a newer rebound (it is left untouched)\n"
    "  6    the store is corrupt\n"
    "  7    disk full (nothing was committed by this call)\n"
    "  8    the run is parked for a human\n"
    "  9    the store stayed locked by another process\n"
    "  10   input/output error\n"
    "  126  (step) the command could not be executed\n"
    "  127  (step) the command was not found\n"
    "  other (step) the command's own exit status, or 128+N if killed by signal N\n";

int cli_exit_for(enum rb_err code)
{
    switch (code) {
    case RB_OK:
        return EXIT_OK;
    case RB_EINVAL:
    case RB_ENAME:
    case RB_ENOENT:
        return EXIT_USAGE;
    case RB_EACCES:
        return EXIT_STORE;
    case RB_ESCHEMA:
        return EXIT_SCHEMA;
    case RB_ECORRUPT:
        return EXIT_CORRUPT;
    case RB_ENOSPC:
        return EXIT_NOSPACE;
    case RB_EPARKED:
        return EXIT_PARKED;
    case RB_EBUSY:
        return EXIT_BUSY;
    case RB_EIO:
        return EXIT_IO;
    default:
        return EXIT_INTERNAL;
    }
}

void cli_errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "rebound: %s%s", cmd ? cmd : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, const struct rb_error *err)
{
    cli_errorf(cmd, "%s", err->message[0] ? err->message : rb_strerror(err->code));
    return cli_exit_for(err->code);
}

int cli_mkdir_parents(const char *path)
{
    char buf[4096];
    char *p;

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int cli_write_results(const char *cmd, const char *dir, json_t *root)
{
    char path[4200], tmp[4300], text[128];

    snprintf(path, sizeof(path), "%s/results.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0 ||
        rename(tmp, path) != 0) {
        snprintf(text, sizeof(text), "%s", strerror(errno));
        if (text[0] >= 'A' && text[0] <= 'Z')
            text[0] = (char)(text[0] - 'A' + 'a');
        cli_errorf(cmd, "cannot write '%s': %s", path, text);
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cli_self_path(const char *cmd, char *out, size_t size)
{
    ssize_t len = readlink("/proc/self/exe", out, size - 1);

    if (len <= 0) {
        cli_errorf(cmd, "cannot find this program's path: %s", strerror(errno));
        return -1;
    }
    out[len] = '\0';
    return 0;
}

int cli_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = *p < 0x80         ? 0
                : (*p >> 5) == 6  ? 1
                : (*p >> 4) == 14 ? 2
                : (*p >> 3) == 30 ? 3
                                  : -1;

        if (n < 0 || (n == 1 && *p < 0xc2) || (n == 3 && *p > 0xf4))
            return 0;
        for (p++; n > 0; n--, p++)
            if ((*p & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

const char *cli_store_dir(const char *opt)
{
    const char *env = getenv("REBOUND_STORE");

    if (opt && *opt)
        return opt;
    return env && *env ? env : NULL;
}

static int open_store(const char *cmd, const char *dir, int full, unsigned flags,
                      struct rb_store **out)
{
    struct rb_store_opts opts = {0};
    struct rb_error err;

    if (!dir) {
        cli_errorf(cmd, "no store: give --store DIR or set REBOUND_STORE");
        return EXIT_USAGE;
    }
    opts.durability = full ? RB_DURABLE_FULL : RB_DURABLE_NORMAL;
    opts.flags = flags;
    rb_error_init(&err);
    if (rb_store_open(dir, &opts, out, &err) != RB_OK) {
        if (err.code == RB_ENOENT && (flags & RB_STORE_MUST_EXIST)) {
            cli_errorf(cmd, "%s; check --store or REBOUND_STORE", err.message);
            return EXIT_USAGE;
        }
        return cli_fail(cmd, &err);
    }
    return EXIT_OK;
}

int cli_open_store(const char *cmd, const char *dir, int full, struct rb_store **out)
{
    return open_store(cmd, dir, full, 0, out);
}

int cli_open_existing_store(const char *cmd, const char *dir, struct rb_store **out)
{
    return open_store(cmd, dir, 0, RB_STORE_MUST_EXIST, out);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"step", cmd_step},
    {"runs", cmd_runs},
    {"log", cmd_log},
    {"lineage", cmd_lineage},
    {"escalations", cmd_escalations},
    {"park", cmd_park},
    {"check", cmd_check},
    {"world", cmd_world},
    {"lint", cmd_lint},
    {"agent", cmd_agent},
    {"run", cmd_run},
    {"report", cmd_report},
    {"compare", cmd_compare},
    {"audit", cmd_audit},
};

int main(int argc, char **argv)
{
    size_t i;

    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("rebound %s (store schema %d)\n", RB_VERSION_STRING,
               rb_store_schema_version());
        return EXIT_OK;
    }
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    cli_errorf(NULL, "unknown command '%s'; run 'rebound --help' for the list", argv[1]);
    return EXIT_USAGE;
}
