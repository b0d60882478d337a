/*
 * bench_faults.c - benchmarks of the fault injectors' supervision (issue 4):
 * how fast a SIGKILL follows the step commit that triggers it, and how fast
 * the killed agent runs again. Each trial is one supervision through the
 * public API (rb_sup_new, one RB_FAULT_SIGKILL fault at the commit of step
 * 1, a restart policy of two attempts without delay, rb_sup_run). The main
 * table supervises bench/agent_steps, a minimal agent that writes the
 * runner's step events itself, next to floors (the same agent started alone
 * with posix_spawn, and with fork and execve); a second table, with --work,
 * supervises bench/agent_runner, built on librebound. Times come from the
 * supervisor's events, all on its CLOCK_MONOTONIC (the agents stamp their
 * lines with the same clock); p50 and p99 over the trials of a repeat,
 * medians over repeats. bench/run.sh is the driver.
 */
#include "faults/faults.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPEATS 32
#define MAX_TRIALS 100000

extern char **environ;

/* The agent started alone, without a supervisor: a floor for the restart. */
struct floor_times {
    int64_t start;     /* before posix_spawn() or fork() */
    int64_t exec_seen; /* its exec succeeded: posix_spawn() returned, or the
                          close-on-exec pipe reached end of file */
    int64_t first;     /* its first line read */
};

/* What one trial saw, in ns of the supervisor's CLOCK_MONOTONIC; 0 = not seen. */
struct trial {
    int64_t commit_written;      /* the agent stamped its step.commit line */
    int64_t commit_seen;         /* the supervisor read it: the trigger */
    int64_t kill_returned;       /* fault.inject: kill(-pgid, SIGKILL) returned */
    int64_t latency_ns;          /* fault.inject's own latency_ns */
    int64_t exit_seen;           /* proc.exit's exit_t: waitid() returned the death */
    int64_t exit_reported;       /* proc.exit emitted: the group reaped, pipes closed */
    int64_t restart_exec;        /* proc.start of attempt 2: its exec succeeded */
    int64_t first_written;       /* attempt 2 stamped its first line (run.open) */
    int64_t first_seen;          /* the supervisor read that line */
    int64_t exit_signal;         /* attempt 1's terminating signal */
    struct floor_times floor[2]; /* the agent started alone: posix_spawn, fork */
    int starts;                  /* proc.start events */
    int exits;                   /* proc.exit events */
};

/* The measures, as differences of the trial's times. */
enum measure {
    M_TRIGGER_KILL, /* commit seen -> kill returned */
    M_WRITTEN_KILL, /* commit written -> kill returned */
    M_KILL_DEATH,   /* kill returned -> death seen */
    M_DEATH_EXEC,   /* death seen -> new attempt exec'd */
    M_DEATH_FIRST,  /* death seen -> new attempt's first event read */
    M_KILL_FIRST,   /* kill returned -> new attempt's first event read */
    M_DEATH_REPORT, /* death seen -> proc.exit emitted */
    M_SPAWN_EXEC,   /* floor: posix_spawn() called -> returned */
    M_SPAWN_FIRST,  /* floor: posix_spawn() called -> first line read */
    M_FORK_EXEC,    /* floor: fork() called -> exec seen */
    M_FORK_FIRST,   /* floor: fork() called -> first line read */
    M_COUNT,
};

static const char *const measure_names[M_COUNT] = {
    "trigger -> kill: step.commit read -> kill() returned",
    "  step.commit written by the agent -> kill() returned",
    "  kill() returned -> death seen (waitid)",
    "restart: death seen -> new attempt exec'd (proc.start)",
    "  death seen -> new attempt's first event read",
    "  kill() returned -> new attempt's first event read",
    "  death seen -> proc.exit (group reaped, pipes closed)",
    "floor: posix_spawn() of the agent alone -> it returned",
    "  posix_spawn() of the agent alone -> its first line read",
    "  fork()+execve() of the agent alone -> exec seen",
    "  fork()+execve() of the agent alone -> first line read",
};

/* Targets (ns) for the p99 of the two headline measures; 0 = none. */
static const int64_t measure_targets[M_COUNT] = {1000000, 0, 0, 5000000, 5000000, 0,
                                                 0,       0, 0, 0,       0};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench_faults: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The load averages from /proc/loadavg (what uptime prints), or "?". */
static void load_avg(char *buf, size_t size)
{
    FILE *f = fopen("/proc/loadavg", "re");
    double a = 0, b = 0, c = 0;

    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
    else
        snprintf(buf, size, "?");
    if (f)
        fclose(f);
}

/* The integer value of "field": in a one-line JSON object, or 0. Cheap: it
 * runs in the event callback, on the supervisor's path. */
static int64_t json_int(const char *json, const char *field)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", field);
    p = strstr(json, pat);
    if (!p)
        return 0;
    return strtoll(p + strlen(pat), NULL, 10);
}

static void on_event(void *arg, const struct rb_fault_event *ev)
{
    struct trial *t = arg;
    const char *k = ev->kind;

    if (strcmp(k, "step.commit") == 0 && !t->commit_seen) {
        t->commit_seen = ev->t_ns;
        t->commit_written = json_int(ev->json, "t");
    } else if (strcmp(k, "fault.inject") == 0 && !t->kill_returned) {
        t->kill_returned = ev->t_ns;
        t->latency_ns = json_int(ev->json, "latency_ns");
    } else if (strcmp(k, "proc.exit") == 0) {
        if (t->exits++ == 0) {
            t->exit_reported = ev->t_ns;
            t->exit_seen = json_int(ev->json, "exit_t");
            t->exit_signal = json_int(ev->json, "signal");
        }
    } else if (strcmp(k, "proc.start") == 0) {
        if (++t->starts == 2)
            t->restart_exec = ev->t_ns;
    } else if (strcmp(k, "run.open") == 0 && t->starts == 2 && !t->first_seen) {
        t->first_seen = ev->t_ns;
        t->first_written = json_int(ev->json, "t");
    }
}

/* One supervision: attempt 1 killed at the commit of step 1, attempt 2
 * runs to exit 0. Dies on anything else. */
static void run_trial(const char *const *argv, struct trial *t)
{
    struct rb_sup_opts opts;
    struct rb_fault_spec spec;
    struct rb_sup_result res;
    struct rb_sup *sup = NULL;
    struct rb_error err;

    memset(t, 0, sizeof(*t));
    memset(&opts, 0, sizeof(opts));
    memset(&spec, 0, sizeof(spec));
    rb_error_init(&err);
    opts.argv = argv;
    opts.restart.max_attempts = 2;
    opts.timeout_ms = 10000; /* hang guard */
    opts.on_event = on_event;
    opts.event_arg = t;
    spec.form = RB_FAULT_SIGKILL;
    spec.trigger.when = RB_TRIGGER_STEP_COMMIT;
    spec.trigger.step = 1;
    if (rb_sup_new(&opts, &sup, &err) != RB_OK ||
        rb_sup_add_fault(sup, &spec, &err) != RB_OK ||
        rb_sup_run(sup, &res, &err) != RB_OK)
        die("supervision failed: %s", err.message);
    rb_sup_free(sup);
    if (res.attempts != 2 || !res.completed || res.injected != 1 || t->exit_signal != 9)
        die("a trial ended unexpectedly: attempts %d, completed %d, injected %d, "
            "first attempt's signal %lld",
            res.attempts, res.completed, res.injected, (long long)t->exit_signal);
    if (!t->commit_seen || !t->kill_returned || !t->exit_seen || !t->restart_exec ||
        !t->first_seen || !t->commit_written || !t->first_written)
        die("a trial missed an event (is faults/ older than proc.exit's exit_t?)");
}

static void cloexec_pipe(int fds[2])
{
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0)
        die("cannot make a pipe: %s", strerror(errno));
}

static int64_t read_first_line(int fd, const char *agent)
{
    char line[512];
    ssize_t n;

    do
        n = read(fd, line, sizeof(line));
    while (n < 0 && errno == EINTR);
    if (n <= 0 || line[0] != '{')
        die("agent '%s' started alone wrote no event", agent);
    return mono_ns();
}

/* The floor of a restart: the agent started alone, as attempt 2 of a trial,
 * timed to its exec and its first line; with posix_spawn() (glibc: a
 * CLONE_VFORK child sharing our memory) or, as the supervisor does, fork()
 * and execve() with a close-on-exec pipe telling the exec. envp holds
 * REBOUND_ATTEMPT=2 and REBOUND_EVENT_FD=100. */
static void run_floor(const char *agent, char *const *envp, int use_fork,
                      struct floor_times *t)
{
    char *const argv[] = {(char *)agent, NULL};
    posix_spawn_file_actions_t fa;
    int fds[2], ep[2], status;
    char c;
    pid_t pid;

    cloexec_pipe(fds);
    if (use_fork) {
        cloexec_pipe(ep);
        t->start = mono_ns();
        pid = fork();
        if (pid < 0)
            die("cannot fork: %s", strerror(errno));
        if (pid == 0) {
            if (dup2(fds[1], 100) == 100)
                execve(agent, argv, envp);
            _exit(127);
        }
        close(ep[1]);
        while (read(ep[0], &c, 1) < 0 && errno == EINTR)
            ;
        t->exec_seen = mono_ns();
        close(ep[0]);
    } else {
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 100);
        t->start = mono_ns();
        errno = posix_spawn(&pid, agent, &fa, NULL, argv, envp);
        if (errno)
            die("cannot start agent '%s': %s", agent, strerror(errno));
        t->exec_seen = mono_ns();
        posix_spawn_file_actions_destroy(&fa);
    }
    close(fds[1]);
    t->first = read_first_line(fds[0], agent);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

static int64_t measure(const struct trial *t, enum measure m)
{
    switch (m) {
    case M_TRIGGER_KILL:
        return t->kill_returned - t->commit_seen;
    case M_WRITTEN_KILL:
        return t->kill_returned - t->commit_written;
    case M_KILL_DEATH:
        return t->exit_seen - t->kill_returned;
    case M_DEATH_EXEC:
        return t->restart_exec - t->exit_seen;
    case M_DEATH_FIRST:
        return t->first_seen - t->exit_seen;
    case M_KILL_FIRST:
        return t->first_seen - t->kill_returned;
    case M_DEATH_REPORT:
        return t->exit_reported - t->exit_seen;
    case M_SPAWN_EXEC:
        return t->floor[0].exec_seen - t->floor[0].start;
    case M_SPAWN_FIRST:
        return t->floor[0].first - t->floor[0].start;
    case M_FORK_EXEC:
        return t->floor[1].exec_seen - t->floor[1].start;
    case M_FORK_FIRST:
        return t->floor[1].first - t->floor[1].start;
    default:
        return 0;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static int64_t percentile(const int64_t *v, size_t n, double pct)
{
    size_t rank = (size_t)((pct / 100.0) * (double)n + 0.999999);

    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double min_of(const double *v, int n)
{
    double m = v[0];
    int i;

    for (i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

static double max_of(const double *v, int n)
{
    double m = v[0];
    int i;

    for (i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

/* Our environment plus what the floor's agent needs (the entries are
 * borrowed from environ; REBOUND_* are unset by then). */
static char **floor_environ(void)
{
    static char attempt[] = "REBOUND_ATTEMPT=2", fd[] = "REBOUND_EVENT_FD=100";
    size_t n = 0, i;
    char **envp;

    while (environ[n])
        n++;
    envp = calloc(n + 3, sizeof(*envp));
    if (!envp)
        die("out of memory");
    for (i = 0; i < n; i++)
        envp[i] = environ[i];
    envp[n] = attempt;
    envp[n + 1] = fd;
    return envp;
}

/* The folder of this program, where the agents are built. */
static void self_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    char *slash;

    if (n <= 0)
        die("cannot find this program's path: %s", strerror(errno));
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
}

static void usage(void)
{
    fputs("usage: bench_faults all [--trials N] [--repeats N] [--quick]\n"
          "                        [--runner-trials N] [--runner-repeats N]\n"
          "                        [--work DIR (for the librebound agent's store)]\n"
          "                        [--rebound PATH (unused)]\n",
          stderr);
    exit(2);
}

static long parse_count(const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        die("count '%s' is not a number from 1 to %ld", s, max);
    return v;
}

/* Removes folder `path` and what is in it (a store: files and folders of
 * files), best effort. */
static void rm_tree(const char *path)
{
    char sub[PATH_MAX];
    struct dirent *d;
    DIR *dir = opendir(path);

    while (dir && (d = readdir(dir)) != NULL) {
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name) >= sizeof(sub))
            continue;
        if (unlink(sub) != 0 && (errno == EISDIR || errno == EPERM))
            rm_tree(sub);
    }
    if (dir)
        closedir(dir);
    rmdir(path);
}

/* One table: `trials` supervisions per repeat of the agent `agent` (with the
 * store and a fresh run id per trial when `store` is set), and with the
 * floors of a restart when `floor_env` is set. */
struct section {
    const char *title;
    const char *agent;
    const char *store; /* agent_runner's store, or NULL for agent_steps */
    long trials, repeats, warmup;
    char **floor_env; /* or NULL: no floors */
    int targets;      /* 1: check the targets (they are the supervisor's) */
};

static void run_section(const struct section *sec)
{
    static double p50[M_COUNT][MAX_REPEATS], p99[M_COUNT][MAX_REPEATS];
    static double maxv[M_COUNT][MAX_REPEATS];
    const char *argv[4] = {sec->agent, NULL, NULL, NULL};
    long trials = sec->trials, repeats = sec->repeats, i;
    int n_measures = sec->floor_env ? M_COUNT : M_SPAWN_EXEC, r, m;
    int64_t *vals[M_COUNT];
    struct trial *runs;
    char load[64], run_id[64];
    double t_rep;

    runs = calloc((size_t)trials, sizeof(*runs));
    if (!runs)
        die("out of memory");
    for (m = 0; m < M_COUNT; m++) {
        vals[m] = calloc((size_t)trials, sizeof(**vals));
        if (!vals[m])
            die("out of memory");
    }
    if (sec->store) {
        argv[1] = sec->store;
        argv[2] = run_id;
    }
    printf("\n%s\n  agent %s%s%s; %ld trials x %ld repeats (+%ld warm-up)\n", sec->title,
           sec->agent, sec->store ? ", store " : "", sec->store ? sec->store : "", trials,
           repeats, sec->warmup);
    fflush(stdout);
    for (r = -1; r < repeats; r++) {
        long n = r < 0 ? sec->warmup : trials;

        load_avg(load, sizeof(load));
        t_rep = now_s();
        for (i = 0; i < n; i++) {
            struct trial *t = &runs[r < 0 ? 0 : i];

            snprintf(run_id, sizeof(run_id), "p%ld-r%d-t%ld", (long)getpid(), r, i);
            run_trial(argv, t);
            if (sec->floor_env) {
                run_floor(sec->agent, sec->floor_env, 0, &t->floor[0]);
                run_floor(sec->agent, sec->floor_env, 1, &t->floor[1]);
            }
        }
        if (r < 0)
            continue;
        printf("  repeat %d: %ld trials in %.1f s, load avg %s before\n", r + 1, trials,
               now_s() - t_rep, load);
        fflush(stdout);
        for (m = 0; m < n_measures; m++) {
            for (i = 0; i < trials; i++)
                vals[m][i] = measure(&runs[i], (enum measure)m);
            qsort(vals[m], (size_t)trials, sizeof(**vals), cmp_i64);
            p50[m][r] = (double)percentile(vals[m], (size_t)trials, 50) / 1000.0;
            p99[m][r] = (double)percentile(vals[m], (size_t)trials, 99) / 1000.0;
            maxv[m][r] = (double)vals[m][trials - 1] / 1000.0;
        }
        for (i = 0; i < trials; i++)
            if (runs[i].latency_ns != runs[i].kill_returned - runs[i].commit_seen)
                die("fault.inject's latency_ns disagrees with its times");
    }

    load_avg(load, sizeof(load));
    printf("  times in us; per repeat p50 and p99 over %ld trials; columns: median "
           "over %ld repeats [min, max]\n",
           trials, repeats);
    printf("  %-56s %20s %24s %9s\n", "measure", "p50", "p99", "max");
    for (m = 0; m < n_measures; m++) {
        double a_min = min_of(p50[m], (int)repeats), a_max = max_of(p50[m], (int)repeats);
        double b_min = min_of(p99[m], (int)repeats), b_max = max_of(p99[m], (int)repeats);
        double top = max_of(maxv[m], (int)repeats);
        double a = median(p50[m], (int)repeats), b = median(p99[m], (int)repeats);

        printf("  %-56s %7.1f [%5.1f,%5.1f] %8.1f [%6.1f,%7.1f] %9.1f\n",
               measure_names[m], a, a_min, a_max, b, b_min, b_max, top);
        if (sec->targets && measure_targets[m] > 0) {
            int ok = b * 1000.0 < (double)measure_targets[m];
            /* A missed target is a number to report, not a failed run. */
            printf("  %-56s p99 %.1f us, target < %.0f us: %s\n", "", b,
                   (double)measure_targets[m] / 1000.0, ok ? "met" : "MISSED");
        }
    }
    printf("  load avg %s after\n", load);
    for (m = 0; m < M_COUNT; m++)
        free(vals[m]);
    free(runs);
}

int main(int argc, char **argv)
{
    char dir[PATH_MAX], agent[PATH_MAX], runner[PATH_MAX], store[PATH_MAX];
    long trials = 1000, repeats = 5, runner_trials = 200, runner_repeats = 3;
    const char *work = NULL;
    struct section sec;
    double t0 = now_s();
    int i;

    if (argc < 2 || strcmp(argv[1], "all") != 0)
        usage();
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--quick") == 0) {
            trials = 200;
            repeats = 2;
            runner_trials = 20;
            runner_repeats = 1;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--trials") == 0)
            trials = parse_count(v, MAX_TRIALS);
        else if (strcmp(a, "--repeats") == 0)
            repeats = parse_count(v, MAX_REPEATS);
        else if (strcmp(a, "--runner-trials") == 0)
            runner_trials = parse_count(v, MAX_TRIALS);
        else if (strcmp(a, "--runner-repeats") == 0)
            runner_repeats = parse_count(v, MAX_REPEATS);
        else if (strcmp(a, "--work") == 0)
            work = v;
        else if (strcmp(a, "--rebound") != 0)
            fprintf(stderr, "bench_faults: ignoring option '%s' (for another bench)\n",
                    a);
        i++;
    }
    self_dir(dir, sizeof(dir));
    if ((size_t)snprintf(agent, sizeof(agent), "%s/agent_steps", dir) >= sizeof(agent) ||
        (size_t)snprintf(runner, sizeof(runner), "%s/agent_runner", dir) >=
            sizeof(runner))
        die("path of the agents is too long");
    if (access(agent, X_OK) != 0 || access(runner, X_OK) != 0)
        die("cannot run the agents in '%s': %s", dir, strerror(errno));
    /* What a supervisor above us set is not for our agents. */
    unsetenv("REBOUND_EVENT_FD");
    unsetenv("REBOUND_ATTEMPT");
    unsetenv("REBOUND_LAST_FAILURE");

    printf("rebound %s; each trial: rb_sup_run() of an agent, an RB_FAULT_SIGKILL at\n"
           "the commit of step 1, a restart without delay, attempt 2 exits 0\n",
           RB_VERSION_STRING);
    memset(&sec, 0, sizeof(sec));
    sec.title = "supervised SIGKILL at a step commit and restart, minimal agent";
    sec.agent = agent;
    sec.trials = trials;
    sec.repeats = repeats;
    sec.warmup = 20;
    sec.floor_env = floor_environ();
    sec.targets = 1;
    run_section(&sec);
    free(sec.floor_env);

    if (work) {
        if ((size_t)snprintf(store, sizeof(store), "%s/faults-store-%ld", work,
                             (long)getpid()) >= sizeof(store))
            die("path of the store is too long");
        memset(&sec, 0, sizeof(sec));
        sec.title = "the same with a librebound agent (store open, run open, rb_step)";
        sec.agent = runner;
        sec.store = store;
        sec.trials = runner_trials;
        sec.repeats = runner_repeats;
        sec.warmup = 5;
        run_section(&sec);
        rm_tree(store);
    }
    printf("\nbench_faults finished in %.0f s\n", now_s() - t0);
    return 0;
}
