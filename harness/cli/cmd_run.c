/*
 * cmd_run.c - `rebound run SCENARIO... --out DIR`: for each scenario and
 * seed, a golden trial and faulted trials (harness/run/trial.c), scored
 * against each other (harness/run/score.c) and checked against the
 * scenario's `expect`; writes DIR/results.json (docs/results.md) and a
 * plain-text summary. Exit 0 when every expectation holds, 1 when one is
 * broken, 2 on usage or scenario errors.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "cli.h"

#include "run/run.h"
#include "scenario.h"

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: rebound run [SCENARIO...] --out DIR [-j N]\n"
    "\n"
    "Runs each scenario (see docs/scenarios.md): for each seed, a golden trial\n"
    "with no faults and the scenario's faulted trials, each with its own world\n"
    "(127.0.0.1, a free port), store and run id, the faulted ones under the\n"
    "supervisor with the faults armed and the scenario's restart policy; a trial\n"
    "past deadline_ms is stopped (outcome 'hung'). Each faulted trial is scored\n"
    "against the golden one (recovery, steps redone, context, time lost) and\n"
    "checked against the scenario's 'expect'.\n"
    "\n"
    "With no SCENARIO, runs the shipped library: $REBOUND_LIBRARY, else\n"
    "scenarios/library here, in the source tree of this program, or in\n"
    "/usr/share/rebound.\n"
    "\n"
    "Writes DIR/results.json (docs/results.md) and keeps each trial's folder in\n"
    "DIR/trials/ (the agent's stdout and stderr, the world's journal, the store).\n"
    "Prints one line per trial and a suite line with the resilience score (the\n"
    "share of trials passing, 0-100); on a terminal, a progress line on stderr.\n"
    "\n"
    "The agent is the scenario's command, or the built-in agent run as\n"
    "'rebound agent --scenario FILE'. Faults: preemption and oom-kill (at a\n"
    "step, a time, or the K-th LLM or tool call), memory limits, clock skew,\n"
    "task memory limits of the built-in agent, and the world's network faults.\n"
    "Random schedules and partitions are refused as not supported yet (exit 2).\n"
    "\n"
    "options:\n"
    "  --out DIR   where results go (made if missing)\n"
    "  -j N        trials in parallel; accepted, but trials run one at a time for\n"
    "              now\n"
    "  -h, --help  show this help\n"
    "\n"
    "The agent gets REBOUND_STORE, REBOUND_RUN, REBOUND (this program),\n"
    "OPENAI_BASE_URL, OPENAI_API_KEY, REBOUND_TOOLS_URL, REBOUND_WORLD_URL,\n"
    "REBOUND_SEED, REBOUND_TRIAL (golden or faulted), and from the supervisor\n"
    "REBOUND_ATTEMPT, REBOUND_EVENT_FD, REBOUND_LAST_FAILURE.\n"
    "\n"
    "exit codes: 0 every expectation holds; 1 one is broken; 2 bad usage, a bad\n"
    "scenario (printed as FILE:LINE:COL: message), or an agent that cannot\n"
    "start; 3 internal error; 10 the results cannot be written; 128+N stopped\n"
    "by signal N: SIGINT, SIGTERM or SIGHUP (results so far are written).\n";

/* One scored faulted trial. */
struct result {
    const struct rb_scenario *s;
    uint64_t seed;
    struct rb_score score;
    json_t *record; /* owned */
    int pass;
    char why[1024];
};

static int load_all(char **paths, int n, struct rb_scenario **out)
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
            if (rc != RB_OK)
                cli_errorf("run", "%s", err.message);
        }
        rb_scenario_diags_release(&diags);
        bad |= rc != RB_OK;
    }
    return bad;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 ? 0 : -1;
    return unlink(path) == 0 ? 0 : -1;
}

/* Makes a fresh, empty folder at path (an old trial's is removed). */
static int fresh_dir(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return mkdir(path, 0755);
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

static int write_results(const char *dir, json_t *root)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 24];

    snprintf(path, sizeof(path), "%s/results.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0 ||
        rename(tmp, path) != 0) {
        cli_errorf("run", "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The progress line on a terminal (stderr): trials done of all, failures so
 * far, elapsed time, and the trial running. Plain output otherwise. */
static struct {
    int on;       /* stderr is a terminal */
    int done;     /* trials finished */
    int total;    /* trials in all */
    int failures; /* faulted trials that failed so far */
    time_t start;
} progress;

static void progress_show(const struct rb_scenario *s, uint64_t seed, int faulted)
{
    if (!progress.on)
        return;
    fprintf(stderr, "\r\033[K[%d/%d trials, %d failed, %lds] %s seed %llu %s",
            progress.done, progress.total, progress.failures,
            (long)(time(NULL) - progress.start), s->name, (unsigned long long)seed,
            faulted ? "faulted" : "golden");
    fflush(stderr);
}

static void progress_clear(void)
{
    if (progress.on) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void print_line(const struct result *r)
{
    progress_clear();
    char rec[32];

    if (r->score.recovery_max_ms >= 0)
        snprintf(rec, sizeof(rec), "%lld ms", (long long)r->score.recovery_max_ms);
    else
        snprintf(rec, sizeof(rec), "-");
    printf("%s  seed %llu  %s  recovery %s  redone %d (+%d in flight)  context %s  %s\n",
           r->s->name, (unsigned long long)r->seed, rb_outcome_name(r->score.outcome),
           rec, r->score.steps_redone, r->score.inflight_lost,
           r->score.context_preserved ? "preserved" : "lost", r->pass ? "PASS" : "FAIL");
    if (!r->pass)
        printf("  broken: %s\n", r->why);
    fflush(stdout);
}

/* The signals that stop a run. They stay blocked while `rebound run` works,
 * so the world's threads never take them: the supervisor reads them during
 * a trial, and between trials they wait here. */
static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

/* The stop signal waiting, or 0. */
static int stop_pending(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigpending(&set);
    if (sigismember(&set, SIGINT) == 1)
        return SIGINT;
    if (sigismember(&set, SIGTERM) == 1)
        return SIGTERM;
    return sigismember(&set, SIGHUP) == 1 ? SIGHUP : 0;
}

/* An exit code that says a signal stopped the run (128 + N). */
static int is_stop(int rc)
{
    return rc > 128;
}

/* Runs one trial in DIR/trials/NAME; 0, or an exit code. */
static int one_trial(const struct rb_scenario *s, uint64_t seed, int faulted, int k,
                     const char *out_dir, const char *exe, struct rb_trial *t)
{
    char dir[PATH_MAX];
    struct rb_error err;

    if (stop_pending())
        return 128 + stop_pending();
    progress_show(s, seed, faulted);
    if (faulted && s->trials > 1)
        snprintf(dir, sizeof(dir), "%s/trials/%s-s%llu-faulted-%d", out_dir, s->name,
                 (unsigned long long)seed, k);
    else
        snprintf(dir, sizeof(dir), "%s/trials/%s-s%llu-%s", out_dir, s->name,
                 (unsigned long long)seed, faulted ? "faulted" : "golden");
    if (fresh_dir(dir) != 0) {
        cli_errorf("run", "cannot make folder '%s': %s", dir, strerror(errno));
        return EXIT_IO;
    }
    rb_error_init(&err);
    if (rb_trial_run(s, seed, faulted, dir, exe, t, &err) != RB_OK) {
        progress_clear();
        cli_errorf("run", "%s: %s", s->path ? s->path : s->name, err.message);
        return err.code == RB_ECHILD || err.code == RB_EINVAL ? EXIT_USAGE
                                                              : cli_exit_for(err.code);
    }
    progress.done++;
    if (t->interrupted)
        return 128 + t->interrupted;
    return 0;
}

/* mkdir -p: creates `path` and the folders above it that are missing. */
static int mkdir_parents(const char *path)
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

int cmd_run(int argc, char **argv)
{
    struct rb_scenario **scen = NULL;
    struct result *res = NULL;
    char **paths = NULL, exe[PATH_MAX], dir[PATH_MAX], abs_out[PATH_MAX];
    const char *out_dir = NULL;
    size_t n_res = 0, cap_res = 0, i, j, first_of_scen;
    int n_paths = 0, a, rc = EXIT_OK, passed = 0, stop = 0, k;
    ssize_t len;
    json_t *root = NULL, *trials = NULL;
    sigset_t stops, old_mask;
    int blocked = 0, have_glob = 0;
    char lib_dir[PATH_MAX], pattern[PATH_MAX + 16];
    glob_t lib;

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
        } else if ((!strcmp(argv[a], "-j") && a + 1 < argc) ||
                   (!strncmp(argv[a], "-j", 2) && argv[a][2])) {
            const char *num = argv[a][2] ? argv[a] + 2 : argv[++a];
            char *end;
            long jobs = strtol(num, &end, 10);

            if (*end || jobs < 1) {
                cli_errorf("run", "bad -j '%s': give a number of trials >= 1", num);
                rc = EXIT_USAGE;
                goto out;
            }
        } else if (argv[a][0] == '-' && argv[a][1]) {
            cli_errorf("run", "unknown option '%s'; run 'rebound run --help'", argv[a]);
            rc = EXIT_USAGE;
            goto out;
        } else {
            paths[n_paths++] = argv[a];
        }
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
    if (load_all(paths, n_paths, scen)) {
        rc = EXIT_USAGE;
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s/trials", out_dir);
    if (mkdir_parents(dir) != 0 || access(dir, W_OK) != 0) {
        cli_errorf("run", "cannot write to output folder '%s': %s", out_dir,
                   strerror(errno));
        rc = EXIT_USAGE;
        goto out;
    }
    /* The agent runs elsewhere: its store's path must not be relative. */
    if (!realpath(out_dir, abs_out)) {
        cli_errorf("run", "cannot resolve output folder '%s': %s", out_dir,
                   strerror(errno));
        rc = EXIT_USAGE;
        goto out;
    }
    out_dir = abs_out;
    stop_signals(&stops);
    pthread_sigmask(SIG_BLOCK, &stops, &old_mask);
    blocked = 1;
    len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) {
        cli_errorf("run", "cannot find this program's path: %s", strerror(errno));
        rc = EXIT_INTERNAL;
        goto out;
    }
    exe[len] = '\0';

    progress.on = isatty(STDERR_FILENO);
    progress.start = time(NULL);
    for (a = 0; a < n_paths; a++)
        progress.total += (int)scen[a]->n_seeds * (1 + scen[a]->trials);
    for (a = 0; a < n_paths && !stop; a++) {
        const struct rb_scenario *s = scen[a];
        int64_t *recs = NULL, p50, p95;
        size_t n_recs = 0;

        first_of_scen = n_res;
        for (i = 0; i < s->n_seeds && !stop; i++) {
            struct rb_trial golden;

            rb_trial_init(&golden);
            rc = one_trial(s, s->seeds[i], 0, 0, out_dir, exe, &golden);
            for (k = 1; rc == 0 && k <= s->trials; k++) {
                struct rb_trial t;
                struct result *r;

                rb_trial_init(&t);
                rc = one_trial(s, s->seeds[i], 1, k, out_dir, exe, &t);
                if (rc != 0 && !is_stop(rc)) {
                    rb_trial_release(&t);
                    break;
                }
                if (n_res == cap_res) {
                    size_t cap = cap_res ? cap_res * 2 : 16;
                    struct result *p = realloc(res, cap * sizeof(*p));

                    if (!p) {
                        rb_trial_release(&t);
                        rc = EXIT_INTERNAL;
                        break;
                    }
                    res = p;
                    cap_res = cap;
                }
                r = &res[n_res++];
                memset(r, 0, sizeof(*r));
                r->s = s;
                r->seed = s->seeds[i];
                rb_score_trial(&golden, &t, &r->score);
                r->record = rb_score_json(s, &golden, &t, &r->score);
                if (!golden.completed)
                    snprintf(r->why, sizeof(r->why),
                             "golden trial did not complete (exit %d, signal %d%s), "
                             "see '%.400s/stderr'",
                             golden.exit_code, golden.signal,
                             golden.timed_out ? ", deadline" : "", golden.dir);
                rb_trial_release(&t);
                if (is_stop(rc))
                    break;
            }
            rb_trial_release(&golden);
            if (rc != 0)
                stop = 1;
        }
        /* The scenario's recovery percentiles, over all its trials' faults. */
        for (j = first_of_scen; j < n_res; j++)
            n_recs += res[j].score.n_faults;
        recs = calloc(n_recs + 1, sizeof(*recs));
        n_recs = 0;
        for (j = first_of_scen; recs && j < n_res; j++)
            for (i = 0; i < res[j].score.n_faults; i++)
                if (res[j].score.faults[i].recovery_ms >= 0)
                    recs[n_recs++] = res[j].score.faults[i].recovery_ms;
        p50 = rb_score_percentile(recs, n_recs, 50);
        p95 = rb_score_percentile(recs, n_recs, 95);
        free(recs);
        for (j = first_of_scen; j < n_res; j++) {
            struct result *r = &res[j];
            char why[1024];

            r->pass = rb_score_check(s, &r->score, p50, p95, why, sizeof(why));
            if (r->why[0]) {
                r->pass = 0;
                if (why[0]) {
                    size_t l = strlen(r->why);
                    snprintf(r->why + l, sizeof(r->why) - l, "; %s", why);
                }
            } else {
                snprintf(r->why, sizeof(r->why), "%s", why);
            }
            passed += r->pass;
            progress.failures += !r->pass;
            print_line(r);
        }
    }

    progress_clear();
    if (stop && !is_stop(rc))
        goto out; /* an error, said already */
    root = json_object();
    trials = json_array();
    if (!root || !trials) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    for (j = 0; j < n_res; j++) {
        json_t *broken = json_array();
        const char *p;

        if (res[j].record) {
            json_object_set_new(res[j].record, "verdict",
                                json_string(res[j].pass ? "pass" : "fail"));
            /* One entry per broken expectation. */
            for (p = res[j].why; !res[j].pass && *p;) {
                size_t n = strcspn(p, ";");

                json_array_append_new(broken, json_stringn(p, n));
                p += n;
                while (*p == ';' || *p == ' ')
                    p++;
            }
            json_object_set_new(res[j].record, "broken", broken);
            json_array_append(trials, res[j].record);
        } else {
            json_decref(broken);
        }
    }
    json_object_set_new(root, "schema", json_integer(1));
    json_object_set_new(root, "rebound", json_string(RB_VERSION_STRING));
    json_object_set_new(
        root, "suite",
        json_pack("{s:I, s:i, s:I, s:I, s:b}", "trials", (json_int_t)n_res, "passed",
                  passed, "failed", (json_int_t)(n_res - (size_t)passed),
                  "resilience_score",
                  (json_int_t)(n_res ? (passed * 100 + (int)n_res / 2) / (int)n_res : 0),
                  "complete", !stop));
    json_object_set(root, "trials", trials);
    printf("suite: %zu trial%s, %d passed, %zu failed; resilience score %lld\n", n_res,
           n_res == 1 ? "" : "s", passed, n_res - (size_t)passed,
           (long long)(n_res ? (passed * 100 + (int)n_res / 2) / (int)n_res : 0));
    if (write_results(out_dir, root) != 0) {
        if (rc == EXIT_OK)
            rc = EXIT_IO;
        goto out;
    }
    if (is_stop(rc))
        cli_errorf("run", "interrupted; results so far are in '%s/results.json'",
                   out_dir);
    if (rc == EXIT_OK && (size_t)passed < n_res)
        rc = EXIT_CHECK;
out:
    if (blocked) {
        static const struct timespec zero = {0, 0};

        /* A stop that came between trials was answered with 128 + N. */
        while (stop_pending() && sigtimedwait(&stops, NULL, &zero) > 0)
            ;
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    for (j = 0; j < n_res; j++)
        json_decref(res[j].record);
    free(res);
    json_decref(trials);
    json_decref(root);
    for (a = 0; scen && a < n_paths; a++)
        rb_scenario_free(scen[a]);
    free(scen);
    free(paths);
    if (have_glob)
        globfree(&lib);
    return rc;
}
