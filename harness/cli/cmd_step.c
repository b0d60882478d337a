/*
 * cmd_step.c - `rebound step`: run a command at most once per (run, name),
 * recording its stdout in the replay log, so that any shell script made of
 * such steps resumes where it died.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char help[] =
    "usage: rebound step [options] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD at most once per (run, name). The first time CMD exits 0, its\n"
    "stdout is committed to the run's replay log; every later call for the same\n"
    "(run, name) prints the recorded stdout and exits 0 without running CMD.\n"
    "If CMD fails (non-zero exit or a signal), the try is recorded with its\n"
    "error context, rebound exits with CMD's status (128+N for signal N), and\n"
    "CMD runs again on the next call. stderr passes straight through.\n"
    "\n"
    "CMD sees REBOUND_STEP (the name), REBOUND_STEP_TRIES (earlier tries) and,\n"
    "after a failed try, REBOUND_STEP_LAST_ERROR (JSON).\n"
    "\n"
    "options:\n"
    "  --store DIR          store folder (default: $REBOUND_STORE); created if missing\n"
    "  --run ID             run id (default: $REBOUND_RUN)\n"
    "  --name NAME          step name, unique in the run\n"
    "  --cache              share the result with other runs through the global\n"
    "                       cache, keyed by the command line, stdin and\n"
    "                       --cache-version; stdin is read to its end first\n"
    "                       (use < /dev/null when there is none). Only for\n"
    "                       commands without side effects.\n"
    "  --cache-version V    part of the cache key: change it to invalidate\n"
    "  --full               flush to disk at commit (survives power loss; slower)\n"
    "  -h, --help           show this help\n"
    "\n"
    "environment: REBOUND_STORE, REBOUND_RUN; REBOUND_ATTEMPT (the attempt this\n"
    "process belongs to, set by a supervisor), REBOUND_LAST_FAILURE,\n"
    "REBOUND_EVENT_FD (JSON-line step events).\n"
    "\n"
    "exit codes: 0 committed (now or earlier); CMD's own status when it failed;\n"
    "126/127 CMD could not be executed / was not found; 2 bad usage or name;\n"
    "4-10 store problems (see 'rebound --help').\n";

struct shell {
    char **argv;     /* the command */
    int stdin_fd;    /* -1: inherit */
    int status;      /* exit status to report when the command failed */
    int spawn_error; /* errno from posix_spawnp, or 0 */
};

static enum rb_err read_all(int fd, struct rb_buf *out)
{
    unsigned char chunk[65536];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RB_EIO;
        if (n == 0)
            return RB_OK;
        if (rb_buf_append(out, chunk, (size_t)n) != RB_OK)
            return RB_ENOMEM;
    }
}

static enum rb_err run_cmd(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    struct shell *sh = arg;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int pfd[2], rc, wstatus = 0;
    char tries[32];
    enum rb_err rd;

    snprintf(tries, sizeof(tries), "%d", ctx->tries);
    setenv("REBOUND_STEP", ctx->key, 1);
    setenv("REBOUND_STEP_TRIES", tries, 1);
    if (ctx->last_error)
        setenv("REBOUND_STEP_LAST_ERROR", ctx->last_error, 1);
    else
        unsetenv("REBOUND_STEP_LAST_ERROR");

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(err->message, sizeof(err->message), "cannot create a pipe: %s",
                 strerror(errno));
        sh->status = EXIT_INTERNAL;
        return RB_ECHILD;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    if (sh->stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, sh->stdin_fd, STDIN_FILENO);
    rc = posix_spawnp(&pid, sh->argv[0], &fa, NULL, sh->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        sh->spawn_error = rc;
        sh->status = rc == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
        snprintf(err->message, sizeof(err->message), "cannot run '%s': %s", sh->argv[0],
                 rc == ENOENT ? "command not found" : strerror(rc));
        err->cause = rc;
        err->cause_kind = "errno";
        return RB_ECHILD;
    }
    rd = read_all(pfd[0], out);
    close(pfd[0]);
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) {
            sh->status = EXIT_INTERNAL;
            snprintf(err->message, sizeof(err->message), "cannot wait for '%s': %s",
                     sh->argv[0], strerror(errno));
            return RB_ECHILD;
        }
    }
    if (rd != RB_OK) {
        sh->status = EXIT_INTERNAL;
        snprintf(err->message, sizeof(err->message), "cannot read the output of '%s'",
                 sh->argv[0]);
        return rd;
    }
    if (WIFSIGNALED(wstatus)) {
        sh->status = 128 + WTERMSIG(wstatus);
        snprintf(err->message, sizeof(err->message), "'%s' was killed by signal %d (%s)",
                 sh->argv[0], WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
        err->cause = WTERMSIG(wstatus);
        err->cause_kind = "signal";
        return RB_ESTEP;
    }
    if (WEXITSTATUS(wstatus) != 0) {
        sh->status = WEXITSTATUS(wstatus);
        snprintf(err->message, sizeof(err->message), "'%s' exited with status %d",
                 sh->argv[0], WEXITSTATUS(wstatus));
        err->cause = WEXITSTATUS(wstatus);
        err->cause_kind = "exit";
        return RB_ESTEP;
    }
    return RB_OK;
}

/* Command line and stdin as the step's canonical input: each argument and
 * then stdin, NUL-separated. With stdin, it is also kept in a memfd for CMD. */
static int build_input(char **argv, int with_stdin, struct rb_buf *input, int *stdin_fd)
{
    struct rb_buf in;
    int i, fd;

    for (i = 0; argv[i]; i++)
        if (rb_buf_append(input, argv[i], strlen(argv[i]) + 1) != RB_OK)
            return -1;
    if (!with_stdin)
        return 0;
    rb_buf_init(&in);
    if (read_all(STDIN_FILENO, &in) != RB_OK) {
        rb_buf_release(&in);
        return -1;
    }
    fd = memfd_create("rebound-stdin", MFD_CLOEXEC);
    if (fd < 0 || rb_buf_append(input, in.data ? in.data : (unsigned char *)"", in.len) ||
        (in.len && write(fd, in.data, in.len) != (ssize_t)in.len) ||
        lseek(fd, 0, SEEK_SET) != 0) {
        if (fd >= 0)
            close(fd);
        rb_buf_release(&in);
        return -1;
    }
    rb_buf_release(&in);
    *stdin_fd = fd;
    return 0;
}

static char *argv_json(char **argv)
{
    json_t *a = json_array(), *o = json_object();
    char *s;
    int i;

    for (i = 0; argv[i]; i++)
        json_array_append_new(a, json_string(argv[i]));
    json_object_set_new(o, "argv", a);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int write_out(const struct rb_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
        return -1;
    return fflush(stdout);
}

int cmd_step(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"store", required_argument, NULL, 's'},
        {"run", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"cache", no_argument, NULL, 'c'},
        {"cache-version", required_argument, NULL, 'v'},
        {"full", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *store_opt = NULL, *run_id = getenv("REBOUND_RUN"), *name = NULL;
    const char *version = "";
    int cache = 0, full = 0, c, code;
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_run_opts ropts = {0};
    struct rb_step_opts sopts = {0};
    struct rb_step_info info;
    struct rb_buf input, out;
    struct rb_error err;
    struct shell sh = {NULL, -1, 0, 0};
    char *meta = NULL;
    enum rb_err rc;

    rb_buf_init(&input);
    rb_buf_init(&out);
    rb_error_init(&err);
    optind = 1;
    opterr = 0; /* we say what is wrong, in one line */
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            store_opt = optarg;
            break;
        case 'r':
            run_id = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'c':
            cache = 1;
            break;
        case 'v':
            version = optarg;
            break;
        case 'f':
            full = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return EXIT_OK;
        case ':':
            cli_errorf("step", "option '%s' needs a value; run 'rebound step --help'",
                       argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (optopt)
                cli_errorf("step", "unknown option '-%c'; run 'rebound step --help'",
                           optopt);
            else
                cli_errorf("step", "unknown option '%s'; run 'rebound step --help'",
                           argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc || !argv[optind][0]) {
        cli_errorf("step",
                   "no command given: 'rebound step --name NAME -- CMD [ARGS...]'");
        return EXIT_USAGE;
    }
    if (!run_id || !*run_id) {
        cli_errorf("step", "no run id: give --run ID or set REBOUND_RUN");
        return EXIT_USAGE;
    }
    if (!name) {
        cli_errorf("step", "no step name: give --name NAME");
        return EXIT_USAGE;
    }
    if (rb_name_check("run id", run_id, &err) != RB_OK ||
        rb_name_check("step name", name, &err) != RB_OK)
        return cli_fail("step", &err);
    if (rb_run_opts_from_env(&ropts, &err) != RB_OK)
        return cli_fail("step", &err);
    ropts.flags |= RB_RUN_JOIN;

    sh.argv = argv + optind;
    code = cli_open_store("step", cli_store_dir(store_opt), full, &store);
    if (code != EXIT_OK)
        return code;
    rc = rb_run_open(store, run_id, &ropts, &run, &err);
    if (rc != RB_OK) {
        code = cli_fail("step", &err);
        goto out;
    }
    if (build_input(sh.argv, cache, &input, &sh.stdin_fd) != 0) {
        cli_errorf("step", "cannot read the command's stdin: %s", strerror(errno));
        code = EXIT_IO;
        goto out;
    }
    meta = argv_json(sh.argv);
    sopts.kind = "shell";
    sopts.input = input.data;
    sopts.input_len = input.len;
    sopts.cache = cache ? RB_CACHE_ON : RB_CACHE_OFF;
    sopts.version = version;
    sopts.meta = meta;
    rc = rb_step(run, name, &sopts, run_cmd, &sh, &out, &info, &err);
    if (rc == RB_ESTEP || rc == RB_ECHILD) {
        if (sh.spawn_error)
            cli_errorf("step", "%s", err.message);
        else
            cli_errorf("step",
                       "step '%s' failed: %s; recorded as a failed try, it runs "
                       "again on the next call",
                       name, err.message);
        code = sh.status ? sh.status : EXIT_INTERNAL;
        goto out;
    }
    if (rc != RB_OK) {
        code = cli_fail("step", &err);
        goto out;
    }
    code = write_out(&out) == 0 ? EXIT_OK : EXIT_IO;
out:
    if (sh.stdin_fd >= 0)
        close(sh.stdin_fd);
    free(meta);
    rb_buf_release(&input);
    rb_buf_release(&out);
    rb_run_close(run);
    rb_store_close(store);
    return code;
}
