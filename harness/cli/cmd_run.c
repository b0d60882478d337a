/*
 * cmd_run.c - `rebound run SCENARIO... --out DIR`: the command line of the
 * run engine (harness/run/suite.c, which runs, scores and checks the
 * trials): options, loading the scenarios, the output folder, printing the
 * summary and writing DIR/results.json (docs/results.md). Exit 0 when every
 * expectation holds, 1 when one is broken, 2 on usage or scenario errors.
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include "cli.h"

#include "reports.h"
#include "run/run.h"
#include "run/suite.h"
#include "scenario.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: rebound run [SCENARIO...] --out DIR [-j N] [--baseline no-replay]\n"
    "\n"
    "Runs each scenario (see docs/scenarios.md): for each seed, a golden trial\n"
    "with no faults and the scenario's faulted trials, each with its own world\n"
    "(127.0.0.1, a free port), store, run id, folder and worker process, the\n"
    "faulted ones under the supervisor with the faults armed and the scenario's\n"
    "restart policy; a trial past deadline_ms is stopped (outcome 'hung'). Each\n"
    "faulted trial is scored against the golden one (recovery, steps redone,\n"
    "context, time lost) and checked against the scenario's 'expect'.\n"
    "\n"
    "A SCENARIO that is a folder stands for the *.json files in it, in name\n"
    "order. With no SCENARIO, runs the shipped library: $REBOUND_LIBRARY, else\n"
    "scenarios/library here, in the source tree of this program, or in\n"
    "/usr/share/rebound.\n"
    "\n"
    "Writes DIR/results.json (docs/results.md: every trial, and per scenario\n"
    "p50/p95/max of each metric), the reports junit.xml, summary.md and\n"
    "report.html beside it (docs/reports.md), and keeps each trial's folder in\n"
    "DIR/trials/ (the agent's stdout and stderr, the world's journal, the\n"
    "store). Prints one line per faulted trial, in scenario and seed order\n"
    "whatever order they finish in, and a suite line with the resilience score\n"
    "(the share of trials passing, 0-100). On a terminal, a progress line on\n"
    "stderr (scenarios and trials done, failures so far, elapsed) and PASS/FAIL\n"
    "in colour unless NO_COLOR is set; otherwise plain lines only.\n"
    "\n"
    "The agent is the scenario's command, or the built-in agent run as\n"
    "'rebound agent --scenario FILE'. Faults: preemption and oom-kill (at a\n"
    "step, a time, or the K-th LLM or tool call), memory limits, clock skew,\n"
    "task memory limits of the built-in agent, the world's network faults,\n"
    "network partitions, and random schedules of these (docs/scenarios.md).\n"
    "\n"
    "options:\n"
    "  --out DIR               where results go (made if missing)\n"
    "  -j N, --jobs=N          trials at once, each in its own worker process\n"
    "                          (default: the number of CPUs); a scenario whose\n"
    "                          world has a fixed port runs its trials one at a\n"
    "                          time\n"
    "  --baseline no-replay    also run every faulted trial again with the replay\n"
    "                          log disabled (REBOUND_NO_REPLAY=1, which librebound,\n"
    "                          'rebound step' and the built-in agent honour), and\n"
    "                          report how much recovery time and redone work the\n"
    "                          replay log saves\n"
    "  -h, --help              show this help\n"
    "\n"
    "The agent gets REBOUND_STORE, REBOUND_RUN and REBOUND_RUN_ID (its run id),\n"
    "REBOUND (this program), OPENAI_BASE_URL, OPENAI_API_KEY, REBOUND_TOOLS_URL,\n"
    "REBOUND_WORLD_URL, REBOUND_SEED, REBOUND_TRIAL (golden or faulted), and from\n"
    "the supervisor REBOUND_ATTEMPT, REBOUND_EVENT_FD, REBOUND_LAST_FAILURE.\n"
    "\n"
    "Ctrl-C (SIGINT), SIGTERM or SIGHUP stops every running trial (their agents\n"
    "are killed), writes the results so far (suite.complete false) and exits\n"
    "128+N; a second one stops without waiting for the trials to wind down.\n"
    "\n"
    "exit codes: 0 every expectation holds; 1 one is broken; 2 bad usage, a bad\n"
    "scenario (printed as FILE:LINE:COL: message), an output folder that cannot\n"
    "be written, or a trial that cannot run (an agent that cannot start, a port\n"
    "taken: nothing new starts, the results so far are written); 3 internal\n"
    "error; 10 the results cannot be written; 128+N stopped by signal N.\n";

/* strerror(e) with a lowercase first letter, as messages go. */
static const char *errno_text(int e, char *buf, size_t size)
{
    snprintf(buf, size, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* Loads and checks every scenario. Running the shipped library
 * (`library`), a scenario this machine cannot run (RB_EACCES, RB_ENOENT from
 * rb_trial_supported: a partition without root) is skipped, said on
 * stderr, added to `skipped` ({"scenario", "why"}) and left NULL in `out`;
 * named on the command line, it is an error. Returns 1 when a scenario is
 * bad. */
static int load_all(char **paths, int n, struct rb_scenario **out, int library,
                    json_t *skipped)
{
    int i, bad = 0;
    size_t k;

    for (i = 0; i < n; i++) {
        struct rb_scenario_diags diags;
        struct rb_error err;
        enum rb_err rc;

        rb_scenario_diags_init(&diags);
        rb_error_init(&err);
        rc = rb_scenario_load(paths[i], &out[i], &diags, &err);
        if (rc == RB_EINVAL && diags.count > 0) {
            for (k = 0; k < diags.count; k++) {
                const struct rb_error *d = &diags.items[k];

                if (d->line > 0)
                    fprintf(stderr, "%s:%d:%d: %s\n", d->file, d->line, d->column,
                            d->message);
                else
                    fprintf(stderr, "%s: %s\n", d->file, d->message);
            }
        } else if (rc != RB_OK) {
            cli_fail("run", &err);
        }
        if (rc == RB_OK) {
            rb_error_init(&err);
            rc = rb_trial_supported(out[i], &err);
            if (library && (rc == RB_EACCES || rc == RB_ENOENT)) {
                cli_errorf("run", "skipping '%s': %s", out[i]->name, err.message);
                json_array_append_new(skipped,
                                      json_pack("{s:s, s:s}", "scenario", out[i]->name,
                                                "why", err.message));
                rb_scenario_free(out[i]);
                out[i] = NULL;
                rc = RB_OK;
            } else if (rc != RB_OK) {
                cli_errorf("run", "%s", err.message);
            }
        }
        rb_scenario_diags_release(&diags);
        bad |= rc != RB_OK;
    }
    return bad;
}

/* The shipped scenario library: $REBOUND_LIBRARY, else scenarios/library
 * in the current folder, in the source tree of this program's build folder
 * (BUILD/harness/rebound), or where the package installs it. `out` holds
 * PATH_MAX bytes. 0 when found. */
static int find_library(char *out)
{
    const char *env = getenv("REBOUND_LIBRARY");
    char exe[PATH_MAX], cand[PATH_MAX + 64], *slash;
    ssize_t len;
    struct stat st;
    int i;

    if (env && *env) {
        snprintf(out, PATH_MAX, "%s", env);
        return stat(out, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
    }
    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = '\0';
    for (i = 0; i < 2; i++) { /* BUILD/harness/rebound -> BUILD */
        slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
    }
    for (i = 0; i < 3; i++) {
        if (i == 0)
            snprintf(cand, sizeof(cand), "scenarios/library");
        else if (i == 1)
            snprintf(cand, sizeof(cand), "%s/../scenarios/library", exe);
        else
            snprintf(cand, sizeof(cand), "/usr/share/rebound/scenarios/library");
        if (stat(cand, &st) == 0 && S_ISDIR(st.st_mode) && realpath(cand, out))
            return 0;
    }
    return -1;
}

/* Whether to use colour on the summary lines: a terminal, and
 * no NO_COLOR (https://no-color.org: set and not empty). */
static int want_color(void)
{
    const char *nc = getenv("NO_COLOR");

    return isatty(STDOUT_FILENO) && !(nc && *nc);
}

/* Replaces each folder among the `*n` paths by the scenario files in it
 * (FOLDER/\*.json, sorted), held in `lib`. 0, or -1 when a folder has none
 * (said). */
static int expand_folders(char ***paths, int *n, glob_t *lib, int *have_glob)
{
    size_t *first = calloc((size_t)*n + 1, sizeof(*first)), k = 0;
    char **out = NULL, pattern[PATH_MAX + 16];
    int i, m = 0, rc = -1;
    struct stat st;

    if (!first)
        return -1;
    for (i = 0; i < *n; i++) {
        size_t before = *have_glob ? lib->gl_pathc : 0;
        int g;

        first[i] = before;
        if (stat((*paths)[i], &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(pattern, sizeof(pattern), "%s/*.json", (*paths)[i]);
        g = glob(pattern, *have_glob ? GLOB_APPEND : 0, NULL, lib);
        if (g == 0 || g == GLOB_NOMATCH)
            *have_glob = 1;
        if (g != 0 || lib->gl_pathc == before) {
            cli_errorf("run", "no scenario files (*.json) in folder '%s'", (*paths)[i]);
            goto out;
        }
    }
    out = calloc((*have_glob ? lib->gl_pathc : 0) + (size_t)*n + 1, sizeof(*out));
    if (!out)
        goto out;
    for (i = 0; i < *n; i++) {
        size_t end = i + 1 < *n ? first[i + 1] : (*have_glob ? lib->gl_pathc : 0);

        if (stat((*paths)[i], &st) == 0 && S_ISDIR(st.st_mode))
            for (k = first[i]; k < end; k++)
                out[m++] = lib->gl_pathv[k];
        else
            out[m++] = (*paths)[i];
    }
    free(*paths);
    *paths = out;
    *n = m;
    rc = 0;
out:
    free(first);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    struct rb_scenario **scen = NULL;
    struct rb_suite_opts so;
    struct rb_error err;
    char **paths = NULL, exe[PATH_MAX], dir[PATH_MAX], abs_out[PATH_MAX];
    char lib_dir[PATH_MAX], pattern[PATH_MAX + 16], line[512], ebuf[128];
    const char *out_dir = NULL;
    int n_paths = 0, a, rc = EXIT_OK, have_glob = 0, jobs = 0, baseline = 0, sig = 0;
    json_t *root = NULL, *skipped = NULL;
    int n_scen = 0, from_library = 0;
    enum rb_err src;
    glob_t lib;
    size_t i;

    paths = calloc((size_t)argc, sizeof(*paths));
    if (!paths)
        return EXIT_INTERNAL;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            fputs(help, stdout);
            goto out;
        } else if (!strcmp(argv[a], "--out") && a + 1 < argc) {
            out_dir = argv[++a];
        } else if (!strncmp(argv[a], "--out=", 6)) {
            out_dir = argv[a] + 6;
        } else if ((!strcmp(argv[a], "--baseline") && a + 1 < argc) ||
                   !strncmp(argv[a], "--baseline=", 11)) {
            const char *mode = argv[a][10] == '=' ? argv[a] + 11 : argv[++a];

            if (strcmp(mode, "no-replay")) {
                cli_errorf("run", "unknown baseline '%s' (there is 'no-replay')", mode);
                rc = EXIT_USAGE;
                goto out;
            }
            baseline = 1;
        } else if ((!strcmp(argv[a], "-j") && a + 1 < argc) ||
                   (!strncmp(argv[a], "-j", 2) && argv[a][2]) ||
                   (!strncmp(argv[a], "--jobs=", 7))) {
            const char *num = !strncmp(argv[a], "--jobs=", 7) ? argv[a] + 7
                              : argv[a][2]                    ? argv[a] + 2
                                                              : argv[++a];
            char *end;
            long n = strtol(num, &end, 10);

            if (*end || !*num || n < 1 || n > 1024) {
                cli_errorf("run", "bad -j '%s': give a number of trials from 1 to 1024",
                           num);
                rc = EXIT_USAGE;
                goto out;
            }
            jobs = (int)n;
        } else if (argv[a][0] == '-' && argv[a][1]) {
            cli_errorf("run", "unknown option '%s'; run 'rebound run --help'", argv[a]);
            rc = EXIT_USAGE;
            goto out;
        } else {
            paths[n_paths++] = argv[a];
        }
    }
    if (n_paths > 0 && expand_folders(&paths, &n_paths, &lib, &have_glob) != 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (n_paths == 0) {
        if (find_library(lib_dir) != 0) {
            cli_errorf("run", "no scenarios given, and no scenario library found "
                              "(set REBOUND_LIBRARY or give files)");
            rc = EXIT_USAGE;
            goto out;
        }
        snprintf(pattern, sizeof(pattern), "%s/*.json", lib_dir);
        if (glob(pattern, 0, NULL, &lib) != 0 || lib.gl_pathc == 0) {
            cli_errorf("run", "no scenarios in the library '%s'", lib_dir);
            rc = EXIT_USAGE;
            goto out;
        }
        have_glob = 1;
        from_library = 1;
        free(paths);
        paths = calloc(lib.gl_pathc, sizeof(*paths));
        if (!paths) {
            rc = EXIT_INTERNAL;
            goto out;
        }
        for (i = 0; i < lib.gl_pathc; i++)
            paths[n_paths++] = lib.gl_pathv[i];
    }
    if (!out_dir || !*out_dir) {
        cli_errorf("run", "no output folder: give --out DIR");
        rc = EXIT_USAGE;
        goto out;
    }
    scen = calloc((size_t)n_paths, sizeof(*scen));
    if (!scen) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    skipped = json_array();
    if (!skipped || load_all(paths, n_paths, scen, from_library, skipped)) {
        rc = skipped ? EXIT_USAGE : EXIT_INTERNAL;
        goto out;
    }
    for (a = 0, n_scen = 0; a < n_paths; a++)
        if (scen[a])
            scen[n_scen++] = scen[a];
    for (a = n_scen; a < n_paths; a++)
        scen[a] = NULL;
    if (n_scen == 0) {
        cli_errorf("run", "no scenario in the library can run here (see above)");
        rc = EXIT_USAGE;
        goto out;
    }
    if (!cli_utf8_ok(out_dir) || !getcwd(abs_out, sizeof(abs_out)) ||
        !cli_utf8_ok(abs_out)) {
        cli_errorf("run", "the output folder's path is not UTF-8 (results.json holds it "
                          "as text): give --out a path in UTF-8");
        rc = EXIT_USAGE;
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s/trials", out_dir);
    if (cli_mkdir_parents(dir) != 0 || access(dir, W_OK) != 0) {
        cli_errorf("run", "cannot write to output folder '%s': %s", out_dir,
                   errno_text(errno, ebuf, sizeof(ebuf)));
        rc = EXIT_USAGE;
        goto out;
    }
    /* The agent runs elsewhere: its store's path must not be relative. */
    if (!realpath(out_dir, abs_out)) {
        cli_errorf("run", "cannot resolve output folder '%s': %s", out_dir,
                   errno_text(errno, ebuf, sizeof(ebuf)));
        rc = EXIT_USAGE;
        goto out;
    }
    if (cli_self_path("run", exe, sizeof(exe)) != 0) {
        rc = EXIT_INTERNAL;
        goto out;
    }

    rb_suite_opts_init(&so);
    so.scenarios = scen;
    so.n = (size_t)n_scen;
    so.out_dir = abs_out;
    so.rebound_exe = exe;
    so.jobs = jobs;
    so.baseline_no_replay = baseline;
    so.lines = stdout;
    so.color = want_color();
    so.progress = isatty(STDERR_FILENO);
    rb_error_init(&err);
    src = rb_suite_run(&so, &root, &sig, &err);
    if (src != RB_OK) {
        cli_errorf("run", "%s", err.message[0] ? err.message : rb_strerror(src));
        rc = src == RB_ENOMEM ? EXIT_INTERNAL : EXIT_USAGE;
    }
    if (!root)
        goto out;
    rb_suite_summary(root, line, sizeof(line));
    printf("suite: %s\n", line);
    if (json_array_size(skipped) > 0) {
        /* said on stderr as they were skipped; kept with the results */
        json_object_set(json_object_get(root, "suite"), "skipped", skipped);
        printf("skipped: %zu scenario%s this machine cannot run (see results.json "
               "suite.skipped)\n",
               json_array_size(skipped), json_array_size(skipped) == 1 ? "" : "s");
    }
    fflush(stdout);
    if (cli_write_results("run", abs_out, root) != 0) {
        if (rc == EXIT_OK)
            rc = EXIT_IO;
        goto out;
    }
    /* junit.xml, summary.md and report.html beside it */
    rb_error_init(&err);
    if (rb_reports_write_all(abs_out, root, &err) != RB_OK) {
        cli_errorf("run", "%s", err.message[0] ? err.message : rb_strerror(err.code));
        if (rc == EXIT_OK || rc == EXIT_CHECK)
            rc = EXIT_IO;
    }
    if (sig) {
        cli_errorf("run", "interrupted; results so far are in '%s/results.json'",
                   out_dir);
        rc = 128 + sig;
    } else if (rc == EXIT_OK && json_integer_value(json_object_get(
                                    json_object_get(root, "suite"), "failed")) > 0) {
        rc = EXIT_CHECK;
    }
out:
    json_decref(root);
    json_decref(skipped);
    for (a = 0; scen && a < n_paths; a++)
        rb_scenario_free(scen[a]);
    free(scen);
    free(paths);
    if (have_glob)
        globfree(&lib);
    return rc;
}
