/*
 * cmd_audit.c - `rebound audit [options] -- CMD [ARGS...]`: runs any agent
 * command as a black box under faults and scores it as `rebound run` scores a
 * scenario. The scenario is built in memory from the options, or read from
 * --scenario FILE with its agent replaced by CMD; the suite engine
 * (harness/run/suite.h) runs its golden and faulted trials, scored from the
 * world's journal and the process lifecycle. With no fault given, the golden
 * trial runs first and a SIGKILL is placed in its middle (its middle LLM
 * call, else its middle step, else half its wall time). Writes results.json
 * and the reports as `rebound run` does, and prints per trial what an auditor
 * reads, with "unknown" for what a black box does not show (docs/audit.md).
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "cli.h"

#include "run/run.h"
#include "run/suite.h"
#include "scenario.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports.h"

static const char help[] =
    "usage: rebound audit [options] -- CMD [ARGS...]\n"
    "       rebound audit --scenario FILE [options] [-- CMD [ARGS...]]\n"
    "\n"
    "Runs CMD as the agent, a black box: rebound points its LLM and tool traffic\n"
    "at a simulated world, runs a golden trial with no faults and a faulted\n"
    "trial, restarts the agent as an orchestrator would, and scores it from the\n"
    "wire and the process lifecycle: LLM calls duplicated, tokens wasted,\n"
    "whether the history sent after a restart matches the golden one (and\n"
    "where it diverged), side effects doubled or missing, recovery to the first\n"
    "new request, outcome. What a black box does not show (steps, when it\n"
    "writes no step events) is reported as unknown, never guessed.\n"
    "\n"
    "The agent gets OPENAI_BASE_URL and OPENAI_API_KEY (the world), and\n"
    "REBOUND_TOOLS_URL, REBOUND_RUN_ID (the same in every restart of a trial:\n"
    "use it as the thread or workflow id), REBOUND_ATTEMPT (1, 2, ...) and\n"
    "REBOUND_LAST_FAILURE (JSON: how the previous attempt ended), besides what\n"
    "'rebound run --help' lists.\n"
    "\n"
    "options:\n"
    "  --faults SPEC...  faults of the faulted trial (several, or comma-separated):\n"
    "                    FORM@TRIGGER[:N]\n"
    "                    FORM: kill (SIGKILL), notice (SIGTERM, SIGKILL after N ms\n"
    "                      of grace, 2000), freeze (SIGSTOP for N ms, 1000),\n"
    "                      oom-kill (SIGKILL reported as an OOM kill), partition\n"
    "                      (network cut for N ms, 1000; needs root), clock-jump\n"
    "                      (N seconds), and the world's HTTP faults reset, stall,\n"
    "                      server_error, rate_limit, truncate, slow (N calls hit,\n"
    "                      1) and refused (for N ms, 1000)\n"
    "                    TRIGGER: llm_call=K, tool_call=K (K >= 1), time_ms=T, step=N,\n"
    "                      step=N+D (D ms into step N), start (HTTP faults)\n"
    "                    e.g. kill@llm_call=3  oom-kill@time_ms=800\n"
    "                    Default: kill in the middle of the golden trial (its\n"
    "                    middle LLM call, else its middle step, else half its time)\n"
    "  --scenario FILE   take world, restart policy, expectations, seeds and\n"
    "                    faults from FILE (docs/scenarios.md); CMD, when given,\n"
    "                    replaces its agent; --faults replaces its faults\n"
    "  --out DIR         where results go (default: rebound-audit)\n"
    "  --golden PATH     reuse a golden trial recorded earlier instead of running\n"
    "                    one: an earlier output folder (its results.json or the\n"
    "                    folder), or one trial folder (holding trial.json)\n"
    "  --no-golden       run no golden trial; with --golden, the same as --golden\n"
    "                    alone; without, what needs a golden trial is unknown\n"
    "  --name NAME       the scenario's name in results (default: audit, or the\n"
    "                    scenario file's)\n"
    "  --seed N          the world's seed (default 1, or the scenario's seeds)\n"
    "  --turns N         tool-call turns before the LLM's final answer (2)\n"
    "  --latency MS      delay before each LLM answer (0)\n"
    "  --restarts N      restarts after a failure (2)\n"
    "  --deadline MS     a trial running longer is stopped: 'hung' (60000)\n"
    "  -j N              trials in parallel (default: the CPUs)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Without --scenario the expectations are a durable agent's: outcome\n"
    "recovered (finished with the golden answer and an unchanged history) and\n"
    "side effects exactly once (with --no-golden alone, side effects only:\n"
    "recovered and degraded cannot be told apart without a golden trial).\n"
    "\n"
    "Writes DIR/results.json (docs/results.md), DIR/junit.xml, DIR/summary.md,\n"
    "DIR/report.html, and each trial's folder in DIR/trials/.\n"
    "\n"
    "exit codes: 0 every expectation holds; 1 one is broken; 2 bad usage, a bad\n"
    "scenario or fault, or an agent that cannot start; 3 internal error; 10 the\n"
    "results cannot be written; 128+N stopped by signal N.\n";

/* What the command line asked for. */
struct audit_opts {
    const char *scenario; /* --scenario FILE, or NULL */
    const char *out;      /* --out DIR */
    const char *golden;   /* --golden PATH, or NULL */
    int no_golden;        /* --no-golden */
    const char *name;     /* --name, or NULL */
    long long seed;       /* --seed, or -1 */
    long long turns;      /* --turns, or -1 */
    long long latency;    /* --latency, or -1 */
    long long restarts;   /* --restarts, or -1 */
    long long deadline;   /* --deadline, or -1 */
    int jobs;             /* -j, or 0 */
    json_t *faults;       /* owned: faults from --faults (scenario JSON), or NULL */
    char **cmd;           /* borrowed: CMD and its arguments, NULL-terminated */
};

/* ---- --faults ---------------------------------------------------------------- */

/* One fault form of the short syntax: its scenario kind and form, and what
 * its optional number N means. */
static const struct {
    const char *name; /* in the short syntax */
    const char *kind; /* scenario "kind" */
    const char *form; /* scenario "form" */
    const char *n;    /* the key N sets, or NULL when it takes none */
    int http;         /* a world fault: may fire from the start */
} forms[] = {
    {"kill", "preemption", "sigkill", NULL, 0},
    {"notice", "preemption", "notice", "grace_ms", 0},
    {"freeze", "preemption", "freeze", "duration_ms", 0},
    {"oom-kill", "oom", "oom-kill", NULL, 0},
    {"partition", "network", "partition", "duration_ms", 0},
    {"clock-jump", "clock", "jump", "jump_s", 0},
    {"reset", "network", "reset", "count", 1},
    {"stall", "network", "stall", "count", 1},
    {"server_error", "network", "server_error", "count", 1},
    {"rate_limit", "network", "rate_limit", "count", 1},
    {"truncate", "network", "truncate", "count", 1},
    {"slow", "network", "slow", "count", 1},
    {"refused", "network", "refused", "duration_ms", 1},
};

/* A whole decimal number >= min; 0 when `s` is one. */
static int parse_num(const char *s, long long min, long long *out)
{
    char *end;
    long long v;

    if (!*s || (*s == '-' && min >= 0))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

/* The trigger of the short syntax as a scenario "at" (new reference), or
 * NULL for "start"; *bad set when it is not one. */
static json_t *parse_trigger(const char *t, int *bad)
{
    static const char *const keys[] = {"llm_call", "tool_call", "time_ms"};
    long long n, d;
    size_t i, len;
    char num[32];
    const char *plus;

    *bad = 0;
    if (!strcmp(t, "start"))
        return NULL;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        len = strlen(keys[i]);
        if (!strncmp(t, keys[i], len) && t[len] == '=') {
            if (parse_num(t + len + 1, i < 2 ? 1 : 0, &n) != 0)
                break;
            return json_pack("{s:I}", keys[i], (json_int_t)n);
        }
    }
    if (i == sizeof(keys) / sizeof(keys[0]) && !strncmp(t, "step=", 5)) {
        plus = strchr(t + 5, '+');
        len = plus ? (size_t)(plus - (t + 5)) : strlen(t + 5);
        if (len < sizeof(num)) {
            memcpy(num, t + 5, len);
            num[len] = '\0';
            if (parse_num(num, 1, &n) == 0 && !plus)
                return json_pack("{s:I, s:s}", "step", (json_int_t)n, "when", "before");
            if (parse_num(num, 1, &n) == 0 && plus && parse_num(plus + 1, 0, &d) == 0)
                return json_pack("{s:I, s:s, s:I}", "step", (json_int_t)n, "when",
                                 "during", "delay_ms", (json_int_t)d);
        }
    }
    *bad = 1;
    return NULL;
}

/* Parses one FORM@TRIGGER[:N] into a scenario fault (new reference); NULL with
 * the reason in `why`. */
/* Writes a message into `why`, truncated to `size`. */
static void say(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

static json_t *parse_fault(const char *spec, char *why, size_t size)
{
    char buf[256], *at, *colon;
    size_t i;
    json_t *f = NULL, *trig;
    long long n;
    int bad;

    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
        say(why, size, "bad fault '%.60s...': too long", spec);
        return NULL;
    }
    at = strchr(buf, '@');
    if (!at) {
        say(why, size, "bad fault '%s': write FORM@TRIGGER, e.g. kill@llm_call=3", spec);
        return NULL;
    }
    *at++ = '\0';
    colon = strchr(at, ':');
    if (colon)
        *colon++ = '\0';
    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (!strcmp(buf, forms[i].name))
            break;
    if (i == sizeof(forms) / sizeof(forms[0])) {
        say(why, size,
            "bad fault '%s': unknown form '%s' (kill, notice, freeze, oom-kill, "
            "partition, clock-jump, reset, stall, server_error, rate_limit, "
            "truncate, slow, refused)",
            spec, buf);
        return NULL;
    }
    trig = parse_trigger(at, &bad);
    if (bad) {
        say(why, size,
            "bad fault '%s': bad trigger '%s' (llm_call=K, tool_call=K, "
            "time_ms=T, step=N, step=N+D, start)",
            spec, at);
        return NULL;
    }
    if (!trig && !forms[i].http) {
        say(why, size, "bad fault '%s': form '%s' needs a trigger, not 'start'", spec,
            buf);
        return NULL;
    }
    f = json_pack("{s:s, s:s}", "kind", forms[i].kind, "form", forms[i].form);
    if (!f) {
        json_decref(trig);
        say(why, size, "out of memory");
        return NULL;
    }
    if (trig)
        json_object_set_new(f, "at", trig);
    if (colon) {
        if (!forms[i].n) {
            say(why, size, "bad fault '%s': form '%s' takes no ':N'", spec, buf);
            goto bad;
        }
        if (parse_num(colon, !strcmp(forms[i].n, "jump_s") ? LLONG_MIN : 1, &n) != 0) {
            say(why, size, "bad fault '%s': ':%s' is not a %s number", spec, colon,
                !strcmp(forms[i].n, "jump_s") ? "whole" : "positive whole");
            goto bad;
        }
        json_object_set_new(f, forms[i].n, json_integer((json_int_t)n));
    } else if (forms[i].http && !strcmp(forms[i].n, "count")) {
        json_object_set_new(f, "count", json_integer(1));
    } else if (!strcmp(forms[i].form, "refused") || !strcmp(forms[i].form, "partition")) {
        json_object_set_new(f, "duration_ms", json_integer(1000)); /* scenarios need it */
    } else if (!strcmp(forms[i].form, "jump")) {
        say(why, size, "bad fault '%s': give the jump in seconds, e.g. %s:3600", spec,
            spec);
        goto bad;
    }
    return f;
bad:
    json_decref(f);
    return NULL;
}

/* Appends the faults of one --faults argument (comma-separated) to o->faults.
 * 0, or -1 after printing why. */
static int add_faults(struct audit_opts *o, const char *arg)
{
    char why[512], one[256];
    const char *p = arg;
    json_t *f;
    size_t len;

    if (!o->faults)
        o->faults = json_array();
    if (!o->faults)
        return -1;
    while (*p) {
        len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(one)) {
            cli_errorf("audit", "bad --faults '%s': an empty or overlong fault", arg);
            return -1;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        f = parse_fault(one, why, sizeof(why));
        if (!f) {
            cli_errorf("audit", "%s", why);
            return -1;
        }
        json_array_append_new(o->faults, f);
        p += len + (p[len] == ',');
    }
    return 0;
}

/* ---- the scenario ---------------------------------------------------------------- */

/* The scenario as JSON (new reference): --scenario FILE (checked first, its
 * problems printed as FILE:LINE:COL) or a new one, with the options applied.
 * NULL after printing why; *code is the exit code then. */
static json_t *scenario_json(const struct audit_opts *o, int *code)
{
    struct rb_scenario_diags diags;
    struct rb_scenario *s = NULL;
    struct rb_error err;
    char cwd[PATH_MAX], desc[512];
    json_t *root = NULL, *agent = NULL, *argv = NULL, *world, *lat, *restart;
    json_error_t jerr;
    size_t i, k, used = 0;

    *code = EXIT_USAGE;
    if (!getcwd(cwd, sizeof(cwd))) {
        cli_errorf("audit", "cannot find the current folder: %s", strerror(errno));
        return NULL;
    }
    if (o->scenario) {
        rb_scenario_diags_init(&diags);
        rb_error_init(&err);
        if (rb_scenario_load(o->scenario, &s, &diags, &err) != RB_OK) {
            for (k = 0; k < diags.count; k++) {
                const struct rb_error *d = &diags.items[k];

                if (d->line > 0)
                    fprintf(stderr, "%s:%d:%d: %s\n", d->file, d->line, d->column,
                            d->message);
                else
                    fprintf(stderr, "%s: %s\n", d->file, d->message);
            }
            if (diags.count == 0)
                *code = cli_fail("audit", &err);
            rb_scenario_diags_release(&diags);
            return NULL;
        }
        rb_scenario_diags_release(&diags);
        rb_scenario_free(s);
        root = json_load_file(o->scenario, 0, &jerr);
        if (!root) {
            cli_errorf("audit", "cannot read '%s': %s", o->scenario, jerr.text);
            return NULL;
        }
    } else {
        desc[0] = '\0';
        for (i = 0; o->cmd[i] && used + 1 < sizeof(desc); i++)
            used += (size_t)snprintf(desc + used, sizeof(desc) - used, "%s%s",
                                     i ? " " : "", o->cmd[i]);
        root =
            json_pack("{s:s, s:s, s:i, s:{s:i, s:i}, s:{s:s, s:b}, s:[i], s:i}", "name",
                      "audit", "description", desc, "rebound", 1, "restart", "delay_ms",
                      10, "max_attempts", 3, "expect", "outcome", "recovered",
                      "side_effects_exactly_once", 1, "seeds", 1, "deadline_ms", 60000);
        if (!root)
            goto oom;
        /* With no golden trial, recovered and degraded cannot be told apart. */
        if (o->no_golden && !o->golden)
            json_object_del(json_object_get(root, "expect"), "outcome");
    }
    if (o->cmd && o->cmd[0]) {
        argv = json_array();
        for (i = 0; argv && o->cmd[i]; i++)
            if (json_array_append_new(argv, json_string(o->cmd[i])) != 0)
                goto oom;
        agent = json_pack("{s:{s:o, s:s}}", "command", "argv", argv, "cwd", cwd);
        argv = NULL;
        if (!agent || json_object_set_new(root, "agent", agent) != 0)
            goto oom;
    }
    if (o->name)
        json_object_set_new(root, "name", json_string(o->name));
    if (o->seed >= 0)
        json_object_set_new(root, "seeds", json_pack("[I]", (json_int_t)o->seed));
    if (o->restarts >= 0) {
        restart = json_object_get(root, "restart");
        if (!json_is_object(restart)) {
            restart = json_pack("{s:i}", "delay_ms", 10);
            if (!restart || json_object_set_new(root, "restart", restart) != 0)
                goto oom;
        }
        json_object_set_new(restart, "max_attempts",
                            json_integer((json_int_t)(o->restarts + 1)));
    }
    if (o->deadline > 0)
        json_object_set_new(root, "deadline_ms", json_integer((json_int_t)o->deadline));
    if (o->turns >= 0 || o->latency >= 0) {
        world = json_object_get(root, "world");
        if (!world) {
            world = json_object();
            json_object_set_new(root, "world", world);
        }
        if (o->turns >= 0)
            json_object_set_new(world, "turns", json_integer((json_int_t)o->turns));
        if (o->latency >= 0) {
            lat = json_object_get(world, "latency");
            if (!lat) {
                lat = json_object();
                json_object_set_new(world, "latency", lat);
            }
            json_object_set_new(lat, "fixed_ms", json_integer((json_int_t)o->latency));
        }
    }
    if (o->faults)
        json_object_set(root, "faults", o->faults);
    return root;
oom:
    json_decref(argv);
    json_decref(root);
    *code = EXIT_INTERNAL;
    cli_errorf("audit", "out of memory");
    return NULL;
}

/* Validates the scenario JSON and loads it; NULL after printing why. */
static struct rb_scenario *scenario_load(const struct audit_opts *o, json_t *root)
{
    struct rb_scenario_diags diags;
    struct rb_scenario *s = NULL;
    struct rb_error err;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    size_t k;

    if (!text) {
        cli_errorf("audit", "out of memory");
        return NULL;
    }
    rb_scenario_diags_init(&diags);
    rb_error_init(&err);
    if (rb_scenario_parse(text, strlen(text), o->scenario, &s, &diags, &err) != RB_OK) {
        /* The file was valid: what is wrong came from the options. */
        for (k = 0; k < diags.count; k++)
            cli_errorf("audit", "%s", diags.items[k].message);
        if (diags.count == 0)
            cli_fail("audit", &err);
        s = NULL;
    } else {
        rb_error_init(&err);
        if (rb_trial_supported(s, &err) != RB_OK) {
            /* A scenario built from the options has no file to name. */
            cli_errorf("audit", "%s",
                       strncmp(err.message, "<input>: ", 9) ? err.message
                                                            : err.message + 9);
            rb_scenario_free(s);
            s = NULL;
        }
    }
    rb_scenario_diags_release(&diags);
    free(text);
    return s;
}

/* ---- the default fault: a kill in the middle of the golden trial ------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Empties and makes the folder `path`. */
static int fresh_dir(const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return mkdir(path, 0755);
}

/* LLM requests in a trial folder's world journal; -1 when it has none. */
static int count_llm_calls(const char *dir)
{
    char path[PATH_MAX + 16], *line = NULL;
    size_t cap = 0;
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/world.jsonl", dir);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, "\"route\":\"/v1/chat/completions"))
            n++;
    free(line);
    fclose(f);
    return n;
}

/* Distinct steps the trial entered (from its step events). */
static int count_steps(const struct rb_trial *t)
{
    size_t i, j;
    int n = 0;

    for (i = 0; i < t->n_events; i++) {
        const struct rb_trial_event *e = &t->events[i];

        if (!e->step || strncmp(e->kind, "step.", 5) != 0)
            continue;
        for (j = 0; j < i; j++)
            if (t->events[j].step && !strcmp(t->events[j].step, e->step))
                break;
        n += j == i;
    }
    return n;
}

/* The kill in the middle of golden trial `t` (its folder `dir`), as a --faults
 * argument, and why there. -1 when the trial gives no middle. */
static int middle_fault(const struct rb_trial *t, const char *dir, char *spec,
                        size_t spec_size, char *why, size_t why_size)
{
    int calls = count_llm_calls(dir), steps = count_steps(t);
    int64_t wall_ms = (t->end_ns - t->start_ns) / 1000000;

    if (calls > 0) {
        snprintf(spec, spec_size, "kill@llm_call=%d", (calls + 1) / 2);
        snprintf(why, why_size, "the middle of the golden trial's %d LLM call%s", calls,
                 calls == 1 ? "" : "s");
    } else if (steps > 0) {
        snprintf(spec, spec_size, "kill@step=%d", (steps + 1) / 2);
        snprintf(why, why_size, "the middle of the golden trial's %d steps", steps);
    } else if (wall_ms >= 2) {
        snprintf(spec, spec_size, "kill@time_ms=%lld", (long long)(wall_ms / 2));
        snprintf(why, why_size, "half the golden trial's %lld ms", (long long)wall_ms);
    } else {
        return -1;
    }
    return 0;
}

/* The golden trial folder of `seed` in what --golden names: a trial folder
 * (trial.json in it), an output folder (trials/NAME-sSEED-golden), or a
 * results.json or trial.json file in one of them. Fills `dir` (the trial's
 * folder) and `suite_dir` (what the suite engine takes). -1 when none. */
static int golden_dirs(const char *path, const char *name, unsigned long long seed,
                       char *dir, char *suite_dir, size_t size)
{
    char base[PATH_MAX], probe[PATH_MAX * 2];
    const char *slash;
    struct stat st;

    snprintf(base, sizeof(base), "%s", path);
    if (stat(base, &st) == 0 && S_ISREG(st.st_mode)) {
        slash = strrchr(base, '/');
        if (slash)
            base[slash - base] = '\0';
        else
            snprintf(base, sizeof(base), ".");
    }
    snprintf(probe, sizeof(probe), "%s/trial.json", base);
    if (access(probe, R_OK) == 0) {
        if (snprintf(dir, size, "%s", base) >= (int)size ||
            snprintf(suite_dir, size, "%s", base) >= (int)size)
            return -1;
        return 0;
    }
    snprintf(probe, sizeof(probe), "%s/trials/%s-s%llu-golden/trial.json", base, name,
             seed);
    if (access(probe, R_OK) == 0) {
        if (snprintf(dir, size, "%s/trials/%s-s%llu-golden", base, name, seed) >=
                (int)size ||
            snprintf(suite_dir, size, "%s", base) >= (int)size)
            return -1;
        return 0;
    }
    return -1;
}

/* Runs the golden trial of `s` for its seed i in OUT/trials (where the suite
 * engine finds it), saves it, and sets *t. An exit code. */
static int run_golden(const struct rb_scenario *s, size_t i, const char *out,
                      const char *exe, struct rb_trial *t, char *dir, size_t size)
{
    char path[PATH_MAX + 16];
    struct rb_error err;
    sigset_t stops, old;
    int rc = EXIT_OK;

    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGHUP);
    if (snprintf(dir, size, "%s/trials/%s-s%llu-golden", out, s->name,
                 (unsigned long long)s->seeds[i]) >= (int)size) {
        cli_errorf("audit", "output folder '%s': path too long", out);
        return EXIT_USAGE;
    }
    if (fresh_dir(dir) != 0) {
        cli_errorf("audit", "cannot make folder '%s': %s", dir, strerror(errno));
        return EXIT_IO;
    }
    /* The world's threads must not take the stop signals: the supervisor
     * reads them. */
    pthread_sigmask(SIG_BLOCK, &stops, &old);
    rb_error_init(&err);
    if (rb_trial_run(s, s->seeds[i], 0, dir, exe, t, &err) != RB_OK) {
        cli_errorf("audit", "%s", err.message);
        rc = err.code == RB_ECHILD || err.code == RB_EINVAL ? EXIT_USAGE
                                                            : cli_exit_for(err.code);
        goto out;
    }
    if (t->interrupted) {
        rc = 128 + t->interrupted;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/trial.json", dir);
    rb_error_init(&err);
    if (rb_trial_save(t, path, &err) != RB_OK) {
        cli_errorf("audit", "%s", err.message);
        rc = EXIT_IO;
    }
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- what an auditor reads ----------------------------------------------------- */

/* Writes an integer field, or "unknown" when it is null or missing. */
static void put_int(FILE *f, const json_t *v, const char *unit)
{
    if (json_is_integer(v))
        fprintf(f, "%lld%s", (long long)json_integer_value(v), unit);
    else if (json_is_real(v))
        fprintf(f, "%.0f%s", json_real_value(v), unit);
    else
        fputs("unknown", f);
}

/* A string field, or `dflt` when it is not a string. */
static const char *str(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : dflt;
}

/* The lines of one trial record (docs/audit.md, "Reading the report"). */
static void print_trial(FILE *f, const json_t *r, int no_golden)
{
    const json_t *faults = json_object_get(r, "faults"), *fl, *llm, *ctx, *div, *fx;
    const json_t *fcd = json_object_get(r, "failure_context_delivered"), *broken, *b;
    const char *verdict = json_string_value(json_object_get(r, "verdict")), *outcome;
    size_t i;

    outcome = str(r, "outcome", "unknown");
    /* Without a golden trial, recovered and degraded cannot be told apart:
     * results.json says "unknown" for a run that finished. */
    if (no_golden && !strcmp(outcome, "unknown") &&
        json_is_true(json_object_get(json_object_get(r, "faulted"), "completed")))
        outcome = "done (context unknown)";
    fprintf(f, "%s  seed %lld  %s  %s\n", str(r, "scenario", "?"),
            (long long)json_integer_value(json_object_get(r, "seed")), outcome,
            verdict && !strcmp(verdict, "pass")    ? "PASS"
            : verdict && !strcmp(verdict, "error") ? "ERROR"
                                                   : "FAIL");
    broken = json_object_get(r, "broken");
    if (verdict && !strcmp(verdict, "error")) {
        /* The trial could not run: nothing was measured. */
        json_array_foreach(broken, i, b)
        {
            fprintf(f, "  error: %s\n", json_is_string(b) ? json_string_value(b) : "?");
        }
        return;
    }
    json_array_foreach(faults, i, fl)
    {
        fprintf(f, "  fault: %s at %s; recovery: first new request ",
                str(fl, "form", "?"), str(fl, "trigger", "?"));
        put_int(f, json_object_get(fl, "recovery_first_request_ms"), " ms after");
        fputs(", first new step ", f);
        put_int(f, json_object_get(fl, "recovery_ms"), " ms after");
        fputc('\n', f);
    }
    if (json_array_size(faults) == 0)
        fprintf(f, "  fault: none fired\n");
    llm = json_object_get(r, "llm");
    fputs("  llm calls: ", f);
    if (!json_is_object(llm)) {
        fputs("unknown\n", f);
    } else if (no_golden) {
        put_int(f, json_object_get(llm, "calls"), "");
        fputs(" (golden unknown), duplicated unknown, tokens wasted unknown\n", f);
    } else {
        put_int(f, json_object_get(llm, "calls"), "");
        fputs(" (golden ", f);
        put_int(f, json_object_get(llm, "golden_calls"), "");
        fputs("), duplicated ", f);
        put_int(f, json_object_get(llm, "duplicated"), "");
        fputs(", tokens wasted ", f);
        put_int(f, json_object_get(llm, "tokens_wasted"), "");
        fputc('\n', f);
    }
    ctx = json_object_get(r, "context");
    div = json_object_get(ctx, "divergence");
    if (no_golden)
        fputs("  context: unknown (no golden trial to compare with)\n", f);
    else if (json_is_true(json_object_get(ctx, "preserved")))
        fputs("  context: preserved\n", f);
    else if (!json_is_false(json_object_get(ctx, "preserved")))
        fputs("  context: unknown\n", f);
    else if (json_is_object(div)) {
        fputs("  context: lost at LLM request ", f);
        put_int(f, json_object_get(div, "request"), "");
        fputs(" (attempt ", f);
        put_int(f, json_object_get(div, "attempt"), "");
        fprintf(f, "): %s\n", str(div, "what", "differs"));
    } else
        fputs("  context: lost (the final output differs from golden's)\n", f);
    fx = json_object_get(r, "side_effects");
    fputs("  side effects: ", f);
    if (!json_is_object(fx)) {
        fputs("unknown\n", f);
    } else {
        put_int(f, json_object_get(fx, "total"), " took effect, ");
        put_int(f, json_object_get(fx, "doubled"), " doubled, ");
        if (no_golden)
            fputs("missing unknown\n", f);
        else
            put_int(f, json_object_get(fx, "missing"), " missing\n");
    }
    fputs("  steps redone: ", f);
    if (json_is_integer(json_object_get(r, "steps_redone"))) {
        put_int(f, json_object_get(r, "steps_redone"), " (+");
        put_int(f, json_object_get(r, "inflight_lost"), " in flight)\n");
    } else {
        fputs(json_is_false(json_object_get(r, "steps_known"))
                  ? "unknown (the agent wrote no step events)\n"
                  : "unknown (no golden trial to count against)\n",
              f);
    }
    fprintf(f, "  failure context: %s\n",
            json_is_true(fcd)    ? "delivered"
            : json_is_false(fcd) ? "not delivered"
                                 : "unknown (nothing restarted)");
    if (json_array_size(broken) > 0) {
        fputs("  broken: ", f);
        json_array_foreach(broken, i, b)
        {
            fprintf(f, "%s%s", i ? "; " : "",
                    json_is_string(b) ? json_string_value(b) : "?");
        }
        fputc('\n', f);
    }
}

/* results.json, then junit.xml, summary.md and report.html beside it. */
static int write_results(const char *dir, json_t *root)
{
    struct rb_error err;

    if (cli_write_results("audit", dir, root) != 0)
        return -1;
    rb_error_init(&err);
    if (rb_reports_write_all(dir, root, &err) != RB_OK) {
        cli_errorf("audit", "%s", err.message);
        return -1;
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------ */

/* Reads a whole number option's value; -1 after printing why. */
static int num_opt(const char *opt, const char *val, long long min, long long *out)
{
    if (parse_num(val, min, out) != 0) {
        cli_errorf("audit", "bad %s '%s': give a whole number >= %lld", opt, val, min);
        return -1;
    }
    return 0;
}

/* Options that take a value. */
static const char *const valued[] = {"--scenario", "--out",      "--golden",
                                     "--name",     "--seed",     "--turns",
                                     "--latency",  "--restarts", "--deadline"};

/* Parses the command line into *o; an exit code, or -1 to go on. */
static int parse_args(int argc, char **argv, struct audit_opts *o)
{
    int a;
    size_t k;
    long long v;

    for (a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = NULL;

        for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
            if (!strcmp(arg, valued[k]))
                break;
        if (k < sizeof(valued) / sizeof(valued[0])) {
            if (a + 1 >= argc) {
                cli_errorf("audit", "%s needs a value; run 'rebound audit --help'", arg);
                return EXIT_USAGE;
            }
            val = argv[++a];
        }
        if (!strcmp(arg, "--")) {
            o->cmd = argv + a + 1;
            break;
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(help, stdout);
            return EXIT_OK;
        } else if (!strcmp(arg, "--no-golden")) {
            o->no_golden = 1;
        } else if (!strcmp(arg, "--faults")) {
            if (a + 1 >= argc || argv[a + 1][0] == '-') {
                cli_errorf("audit", "--faults needs a fault, e.g. kill@llm_call=3");
                return EXIT_USAGE;
            }
            /* One or more arguments, up to the next option. */
            while (a + 1 < argc && argv[a + 1][0] != '-')
                if (add_faults(o, argv[++a]) != 0)
                    return EXIT_USAGE;
        } else if (!strcmp(arg, "--scenario")) {
            o->scenario = val;
        } else if (!strcmp(arg, "--out")) {
            o->out = val;
        } else if (!strcmp(arg, "--golden")) {
            o->golden = val;
        } else if (!strcmp(arg, "--name")) {
            o->name = val;
        } else if (!strcmp(arg, "--seed")) {
            if (num_opt(arg, val, 0, &o->seed) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(arg, "--turns")) {
            if (num_opt(arg, val, 0, &o->turns) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(arg, "--latency")) {
            if (num_opt(arg, val, 0, &o->latency) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(arg, "--restarts")) {
            if (num_opt(arg, val, 0, &o->restarts) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(arg, "--deadline")) {
            if (num_opt(arg, val, 1, &o->deadline) != 0)
                return EXIT_USAGE;
        } else if (!strncmp(arg, "-j", 2)) {
            const char *num = arg[2] ? arg + 2 : a + 1 < argc ? argv[++a] : "";

            if (num_opt("-j", num, 1, &v) != 0)
                return EXIT_USAGE;
            o->jobs = (int)(v > 1024 ? 1024 : v);
        } else {
            cli_errorf("audit",
                       arg[0] == '-' ? "unknown option '%s'; run 'rebound audit --help'"
                                     : "unexpected '%s': put the agent's command after "
                                       "'--'",
                       arg);
            return EXIT_USAGE;
        }
    }
    if ((!o->cmd || !o->cmd[0]) && !o->scenario) {
        cli_errorf("audit", "no agent command: give it after '--', e.g. 'rebound audit "
                            "-- python3 agent.py'");
        return EXIT_USAGE;
    }
    return -1;
}

int cmd_audit(int argc, char **argv)
{
    struct audit_opts o;
    struct rb_scenario *s = NULL;
    struct rb_suite_opts so;
    struct rb_trial golden, other;
    struct rb_error err;
    json_t *root = NULL, *results = NULL, *r;
    char exe[PATH_MAX], out[PATH_MAX], gdir[PATH_MAX], suite_gdir[PATH_MAX];
    char spec[64], why[160], line[512];
    const char *label;
    size_t i;
    int rc, sig = 0, have_golden = 0;
    enum rb_err src;

    memset(&o, 0, sizeof(o));
    o.out = "rebound-audit";
    o.seed = o.turns = o.latency = o.restarts = o.deadline = -1;
    rb_trial_init(&golden);
    rb_trial_init(&other);
    rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        goto out;
    rc = EXIT_OK;
    root = scenario_json(&o, &rc);
    if (!root)
        goto out;
    rc = EXIT_OK;
    s = scenario_load(&o, root);
    if (!s) {
        rc = EXIT_USAGE;
        goto out;
    }
    /* The name makes the trials' folder names: the scenario parser refuses
     * one that is not a plain file name. */
    if (!cli_utf8_ok(o.out) || !getcwd(out, sizeof(out)) || !cli_utf8_ok(out)) {
        cli_errorf("audit", "the output folder's path is not UTF-8 (results.json holds "
                            "it as text): give --out a path in UTF-8");
        rc = EXIT_USAGE;
        goto out;
    }
    if (!o.out[0] || cli_mkdir_parents(o.out) != 0 || !realpath(o.out, out) ||
        access(out, W_OK) != 0) {
        cli_errorf("audit", "cannot write to output folder '%s': %s", o.out,
                   strerror(errno));
        rc = EXIT_USAGE;
        goto out;
    }
    if (snprintf(gdir, sizeof(gdir), "%s/trials", out) >= (int)sizeof(gdir) ||
        cli_mkdir_parents(gdir) != 0) {
        cli_errorf("audit", "cannot make folder '%s': %s", gdir, strerror(errno));
        rc = EXIT_IO;
        goto out;
    }
    if (cli_self_path("audit", exe, sizeof(exe)) != 0) {
        rc = EXIT_INTERNAL;
        goto out;
    }

    /* The golden trial: reused, none, or (when it places the default fault)
     * run here first. */
    if (o.golden) {
        if (golden_dirs(o.golden, s->name, (unsigned long long)s->seeds[0], gdir,
                        suite_gdir, sizeof(gdir)) != 0) {
            cli_errorf("audit",
                       "no golden trial in '%s': give an earlier output folder (with "
                       "trials/%s-s%llu-golden/trial.json), its results.json, or a "
                       "trial folder holding trial.json",
                       o.golden, s->name, (unsigned long long)s->seeds[0]);
            rc = EXIT_USAGE;
            goto out;
        }
        if (s->n_faults == 0) {
            char path[PATH_MAX + 16];

            snprintf(path, sizeof(path), "%s/trial.json", gdir);
            rb_error_init(&err);
            if (rb_trial_load(path, &golden, &err) != RB_OK) {
                cli_errorf("audit", "%s", err.message);
                rc = EXIT_USAGE;
                goto out;
            }
            have_golden = 1;
        }
    } else if (s->n_faults == 0 && s->n_randoms == 0) {
        if (o.no_golden) {
            cli_errorf("audit", "no faults given and no golden trial to place the "
                                "default kill in: give --faults, or drop --no-golden");
            rc = EXIT_USAGE;
            goto out;
        }
        /* Every seed's golden trial; the first one places the kill. */
        for (i = s->n_seeds; i-- > 0;) {
            struct rb_trial *t = i == 0 ? &golden : &other;

            rc = run_golden(s, i, out, exe, t, gdir, sizeof(gdir));
            if (rc == EXIT_OK && !t->completed)
                printf("golden trial did not complete (exit %d, signal %d); see "
                       "'%s/stderr'\n",
                       t->exit_code, t->signal, gdir);
            rb_trial_release(&other);
            if (rc != EXIT_OK)
                goto out;
        }
        snprintf(suite_gdir, sizeof(suite_gdir), "%s", out);
        have_golden = 1;
    }
    if (have_golden) {
        if (middle_fault(&golden, gdir, spec, sizeof(spec), why, sizeof(why)) != 0) {
            cli_errorf("audit", "the golden trial made no LLM call, wrote no step event "
                                "and ended at once: no middle to kill it in; give "
                                "--faults");
            rc = EXIT_USAGE;
            goto out;
        }
        printf("faults: %s (%s)\n", spec, why);
        fflush(stdout);
        if (add_faults(&o, spec) != 0) {
            rc = EXIT_INTERNAL;
            goto out;
        }
        json_object_set(root, "faults", o.faults);
        rb_scenario_free(s);
        s = scenario_load(&o, root);
        if (!s) {
            rc = EXIT_USAGE;
            goto out;
        }
    }

    rb_suite_opts_init(&so);
    so.scenarios = &s;
    so.n = 1;
    so.out_dir = out;
    so.rebound_exe = exe;
    so.jobs = o.jobs;
    so.progress = isatty(STDERR_FILENO);
    so.golden_dir = o.golden || have_golden ? suite_gdir : NULL;
    so.no_golden = o.no_golden && !o.golden;
    rb_error_init(&err);
    src = rb_suite_run(&so, &results, &sig, &err);
    if (results) {
        json_array_foreach(json_object_get(results, "trials"), i, r)
        {
            print_trial(stdout, r, o.no_golden && !o.golden);
        }
        rb_suite_summary(results, line, sizeof(line));
        printf("suite: %s\n", line);
        label = o.no_golden && !o.golden ? " (no golden trial: what needs one is unknown)"
                                         : "";
        printf("results: %s/results.json%s\n", out, label);
        fflush(stdout);
        if (write_results(out, results) != 0)
            rc = EXIT_IO;
    }
    if (sig) {
        cli_errorf("audit", "interrupted; results so far are in '%s/results.json'", out);
        rc = 128 + sig;
    } else if (src != RB_OK) {
        cli_errorf("audit", "%s", err.message);
        rc = EXIT_USAGE;
    } else if (rc == EXIT_OK && json_integer_value(json_object_get(
                                    json_object_get(results, "suite"), "failed")) > 0) {
        rc = EXIT_CHECK;
    }
out:
    rb_trial_release(&golden);
    json_decref(results);
    json_decref(root);
    json_decref(o.faults);
    rb_scenario_free(s);
    return rc;
}
