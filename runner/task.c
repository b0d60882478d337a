/*
 * task.c - rb_task_step(): a durable step whose function runs in a forked
 * child process under limits (memory, CPU time, wall clock). The parent
 * watches the child's resident memory, collects its answer through a pipe,
 * and turns an OOM kill, a timeout or a crash into a structured failure that
 * rb_step() records and the next try sees; on request it tries again with
 * more memory, up to a cap.
 */
#define _GNU_SOURCE /* sigabbrev_np() */

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* RLIMIT_AS and AddressSanitizer's shadow memory do not mix: a library built
 * with ASan enforces memory limits by the watchdog alone. */
#if defined(__SANITIZE_ADDRESS__)
#define TASK_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TASK_UNDER_ASAN 1
#endif
#endif
#ifndef TASK_UNDER_ASAN
#define TASK_UNDER_ASAN 0
#endif

#define TASK_MAGIC 0x7262746bu  /* "rbtk": frames from our own child */
#define TASK_SAMPLE_MS 5        /* how often the parent samples the child */
#define TASK_EXIT_NO_ANSWER 125 /* the child could not write its answer */

/* The first frame the child writes, before `fn` runs. */
struct hello {
    uint32_t magic;
    uint32_t rlimit_as; /* 1 when RLIMIT_AS was set */
    int64_t rss_base;   /* resident bytes before fn ran */
};

/* The second frame, after `fn` returned; `len` output bytes follow. */
struct answer {
    uint32_t magic;
    int32_t rc;         /* what fn returned */
    int32_t cause;      /* fn's err->cause */
    int32_t cause_kind; /* 0 "", 1 "errno", 2 "sqlite" */
    int32_t line;       /* fn's err->line */
    int32_t column;     /* fn's err->column */
    uint64_t len;       /* output bytes that follow (0 on error) */
    char file[256];     /* fn's err->file */
    char message[512];  /* fn's err->message */
};

/* One try, as rb_step() hands it to task_exec(). */
struct task_try {
    const struct rb_task_opts *opts; /* the caller's options */
    size_t mem_limit;                /* this try's memory limit, 0: none */
    rb_step_fn fn;                   /* the caller's function */
    void *arg;                       /* its argument */
};

/* How a try ended, as the parent saw it. */
enum outcome {
    OUT_OK = 0,
    OUT_OOM,     /* memory limit */
    OUT_TIMEOUT, /* wall clock */
    OUT_CPU,     /* RLIMIT_CPU */
    OUT_SIGNAL,  /* killed by a signal we did not send */
    OUT_EXIT,    /* exited without a whole answer */
    OUT_ERROR,   /* fn returned an error */
};

static const char *const outcome_names[] = {
    [OUT_OK] = "ok",       [OUT_OOM] = "oom",       [OUT_TIMEOUT] = "timeout",
    [OUT_CPU] = "cpu",     [OUT_SIGNAL] = "signal", [OUT_EXIT] = "exit",
    [OUT_ERROR] = "error",
};

/* What the parent learned about the child. */
struct watch {
    pid_t pid;
    int64_t rss_base;      /* from the hello frame, -1 until it came */
    int64_t rss_peak;      /* most resident bytes seen (absolute) */
    int rlimit_as;         /* the child set RLIMIT_AS */
    int killed_for;        /* OUT_OOM or OUT_TIMEOUT when we killed it, else 0 */
    int status;            /* from wait4() */
    struct rusage ru;      /* from wait4() */
    struct rb_buf in;      /* bytes read from the pipe */
    enum outcome outcome;  /* the verdict */
    const char *mechanism; /* for OUT_OOM */
    int signal;            /* signal that ended the child, or 0 */
    int exit_code;         /* its exit code, or -1 */
    int64_t cpu_ms;        /* CPU time it used */
};

/* ---- the child --------------------------------------------------------- */

/* Reads resident and total (virtual) bytes from a statm file; -1 on error. */
static int read_statm(int fd, int64_t *rss, int64_t *vsz)
{
    char text[256];
    long long size = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

    if (n <= 0)
        return -1;
    text[n] = '\0';
    if (sscanf(text, "%lld %lld", &size, &resident) != 2)
        return -1;
    if (rss)
        *rss = (int64_t)resident * page;
    if (vsz)
        *vsz = (int64_t)size * page;
    return 0;
}

/* Writes all of p to fd; -1 on error. */
static int write_all(int fd, const void *p, size_t len)
{
    const unsigned char *c = p;

    while (len) {
        ssize_t n = write(fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sets the soft limit `res` to `want` and the hard one to `hard_want`, never
 * above the hard limit there was. Returns 0 when it took. */
static int set_limit(int res, rlim_t want, rlim_t hard_want)
{
    struct rlimit rl;

    if (getrlimit(res, &rl) != 0)
        return -1;
    if (rl.rlim_max != RLIM_INFINITY && hard_want > rl.rlim_max)
        hard_want = rl.rlim_max;
    if (want > hard_want)
        want = hard_want;
    rl.rlim_cur = want;
    rl.rlim_max = hard_want;
    return setrlimit(res, &rl);
}

/* Sets every caught signal back to its default action, as an exec would: a
 * handler of the caller's (a crash reporter, a test framework that longjmps
 * back into its own loop, a graceful shutdown) would otherwise run the
 * caller's code in the task process. Ignored signals stay ignored. */
static void default_signals(void)
{
    struct sigaction sa, old;
    int sig;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, NULL, &old) != 0)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
            continue;
        sigaction(sig, &sa, NULL);
    }
}

/* The child: sets its limits, runs fn, writes the answer, exits. Never
 * returns. */
static void child_main(int wfd, pid_t parent, const struct task_try *t,
                       const struct rb_step_ctx *ctx)
{
    struct hello h;
    struct answer a;
    struct rb_buf out;
    struct rb_error ferr;
    sigset_t none;
    int64_t rss = 0, vsz = 0;
    int fd;

    /* Die with the parent; it may be gone already. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(TASK_EXIT_NO_ANSWER);
    /* The caller's unflushed output stays the caller's to write. */
    __fpurge(stdout);
    __fpurge(stderr);
    default_signals();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    memset(&h, 0, sizeof(h));
    h.magic = TASK_MAGIC;
    h.rss_base = -1;
    fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read_statm(fd, &rss, &vsz) == 0)
        h.rss_base = rss;
    if (fd >= 0)
        close(fd);
    if (t->mem_limit && !TASK_UNDER_ASAN && !(t->opts->flags & RB_TASK_NO_RLIMIT_AS) &&
        h.rss_base >= 0)
        h.rlimit_as =
            set_limit(RLIMIT_AS, (rlim_t)vsz + t->mem_limit, RLIM_INFINITY) == 0;
    if (t->opts->cpu_limit_s > 0)
        set_limit(RLIMIT_CPU, (rlim_t)t->opts->cpu_limit_s,
                  (rlim_t)t->opts->cpu_limit_s + 1);
    if (write_all(wfd, &h, sizeof(h)) != 0)
        _exit(TASK_EXIT_NO_ANSWER);

    rb_buf_init(&out);
    rb_error_init(&ferr);
    memset(&a, 0, sizeof(a));
    a.magic = TASK_MAGIC;
    a.rc = (int32_t)t->fn(t->arg, ctx, &out, &ferr);
    if (a.rc == RB_OK) {
        a.len = out.len;
    } else {
        a.cause = ferr.cause;
        a.cause_kind = ferr.cause_kind && strcmp(ferr.cause_kind, "errno") == 0    ? 1
                       : ferr.cause_kind && strcmp(ferr.cause_kind, "sqlite") == 0 ? 2
                                                                                   : 0;
        a.line = ferr.line;
        a.column = ferr.column;
        memcpy(a.file, ferr.file, sizeof(a.file));
        memcpy(a.message, ferr.message, sizeof(a.message));
        a.file[sizeof(a.file) - 1] = '\0';
        a.message[sizeof(a.message) - 1] = '\0';
    }
    fflush(stdout);
    fflush(stderr);
    if (write_all(wfd, &a, sizeof(a)) != 0 ||
        (a.len && write_all(wfd, out.data, out.len) != 0))
        _exit(TASK_EXIT_NO_ANSWER);
    _exit(0);
}

/* ---- the parent -------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Reads what the pipe holds now. Returns 1 on EOF, 0 when it would block,
 * -1 (errno set) on error. */
static int drain(int fd, struct rb_buf *in)
{
    unsigned char chunk[16384];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            if (rb_buf_append(in, chunk, (size_t)n) != RB_OK) {
                errno = ENOMEM;
                return -1;
            }
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
}

/* Memory the task added on top of what it started with, bytes. */
static int64_t task_rss(const struct watch *w)
{
    int64_t base = w->rss_base > 0 ? w->rss_base : 0;

    return w->rss_peak > base ? w->rss_peak - base : 0;
}

/* Kills the child with SIGKILL for `why`, once. Only called while the child
 * is not reaped, so the pid cannot belong to another process. */
static void kill_for(struct watch *w, int why)
{
    if (w->killed_for)
        return;
    w->killed_for = why;
    kill(w->pid, SIGKILL);
}

/*
 * Watches the child until it is reaped: reads the pipe, samples the child's
 * memory, enforces the memory limit and the deadline. On an error of our own
 * (reading, memory) the child is killed and reaped before returning it; when
 * it cannot be waited for (SIGCHLD ignored), RB_ECHILD.
 */
static enum rb_err watch_child(struct watch *w, int rfd, const struct task_try *t,
                               const char *key, struct rb_error *err)
{
    int64_t deadline = 0, rss;
    int statm = -1, reaped = 0, fail_errno = 0, r;
    char path[64];
    enum rb_err rc = RB_OK;

    if (t->opts->timeout_ms > 0)
        deadline = rb__mono_ns() + (int64_t)t->opts->timeout_ms * 1000000;
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)w->pid);
    statm = open(path, O_RDONLY | O_CLOEXEC);
    while (!reaped) {
        int wait_ms = TASK_SAMPLE_MS;

        if (deadline) {
            int64_t left = (deadline - rb__mono_ns()) / 1000000;
            if (left < wait_ms)
                wait_ms = left < 0 ? 0 : (int)left + 1;
        }
        if (rfd >= 0) {
            struct pollfd p = {.fd = rfd, .events = POLLIN};

            if (poll(&p, 1, wait_ms) > 0) {
                r = drain(rfd, &w->in);
                if (r < 0 && !fail_errno) {
                    fail_errno = errno;
                    kill_for(w, OUT_EXIT);
                }
                if (r != 0) {
                    close(rfd);
                    rfd = -1;
                }
            }
        } else {
            sleep_ms(wait_ms > 1 ? 1 : wait_ms);
        }
        if (w->rss_base < 0 && w->in.len >= sizeof(struct hello)) {
            struct hello h;

            memcpy(&h, w->in.data, sizeof(h));
            if (h.magic == TASK_MAGIC) {
                w->rss_base = h.rss_base > 0 ? h.rss_base : 0;
                w->rlimit_as = (int)h.rlimit_as;
            }
        }

        r = (int)wait4(w->pid, &w->status, WNOHANG, &w->ru);
        if (r == w->pid) {
            reaped = 1;
            break;
        }
        if (r < 0 && errno != EINTR) {
            /* SIGCHLD ignored, or someone else reaped it: no status. */
            rc = rb__fail_errno(err, RB_ECHILD, errno,
                                "cannot wait for the process of task step '%s' (is "
                                "SIGCHLD ignored?)",
                                key);
            goto out;
        }
        if (statm >= 0 && read_statm(statm, &rss, NULL) == 0 && rss > w->rss_peak)
            w->rss_peak = rss;
        if (t->mem_limit && w->rss_base >= 0 && task_rss(w) > (int64_t)t->mem_limit)
            kill_for(w, OUT_OOM);
        if (deadline && rb__mono_ns() >= deadline)
            kill_for(w, OUT_TIMEOUT);
    }
    /* Whatever it wrote before exiting is in the pipe now. */
    if (rfd >= 0 && drain(rfd, &w->in) < 0 && !fail_errno)
        fail_errno = errno;
    if (fail_errno)
        rc = rb__fail_errno(err, fail_errno == ENOMEM ? RB_ENOMEM : RB_ECHILD, fail_errno,
                            "cannot read the answer of task step '%s'", key);
out:
    if (rfd >= 0)
        close(rfd);
    if (statm >= 0)
        close(statm);
    return rc;
}

/* Formats a byte count for messages: "32.0 MiB". */
static void fmt_bytes(char *buf, size_t size, int64_t n)
{
    if (n >= 1024 * 1024)
        snprintf(buf, size, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else if (n >= 1024)
        snprintf(buf, size, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(buf, size, "%lld bytes", (long long)n);
}

/* "SIGSEGV" for 11, or "signal 11" when unknown. */
static void fmt_signal(char *buf, size_t size, int sig)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev)
        snprintf(buf, size, "SIG%s", abbrev);
    else
        snprintf(buf, size, "signal %d", sig);
}

/* Decides how the try ended, from what watch_child() saw. */
static void judge(struct watch *w, const struct task_try *t)
{
    const struct answer *a = NULL;
    int64_t maxrss;
    size_t need = sizeof(struct hello) + sizeof(struct answer);

    w->cpu_ms = (int64_t)(w->ru.ru_utime.tv_sec + w->ru.ru_stime.tv_sec) * 1000 +
                (w->ru.ru_utime.tv_usec + w->ru.ru_stime.tv_usec) / 1000;
    /* The kernel's high-water mark catches a peak the sampling missed. */
    maxrss = (int64_t)w->ru.ru_maxrss * 1024;
    if (maxrss > w->rss_peak)
        w->rss_peak = maxrss;
    w->signal = WIFSIGNALED(w->status) ? WTERMSIG(w->status) : 0;
    w->exit_code = WIFEXITED(w->status) ? WEXITSTATUS(w->status) : -1;
    if (w->in.len >= need) {
        a = (const struct answer *)(w->in.data + sizeof(struct hello));
        if (a->magic != TASK_MAGIC || w->in.len - need < a->len)
            a = NULL;
    }

    if (w->killed_for == OUT_TIMEOUT) {
        w->outcome = OUT_TIMEOUT;
    } else if (w->killed_for == OUT_OOM) {
        w->outcome = OUT_OOM;
        w->mechanism = "watchdog";
    } else if (t->mem_limit && w->rss_base >= 0 && task_rss(w) > (int64_t)t->mem_limit) {
        /* Over the limit at some point: a real limit would have killed it,
         * whatever it did next. */
        w->outcome = OUT_OOM;
        w->mechanism = "peak";
    } else if (w->signal == SIGXCPU ||
               (w->signal == SIGKILL && t->opts->cpu_limit_s > 0 &&
                w->cpu_ms >= (int64_t)t->opts->cpu_limit_s * 1000)) {
        w->outcome = OUT_CPU;
    } else if (w->signal) {
        w->outcome = OUT_SIGNAL;
    } else if (!a || w->exit_code != 0) {
        w->outcome = OUT_EXIT;
    } else if (a->rc == RB_ENOMEM && w->rlimit_as) {
        w->outcome = OUT_OOM;
        w->mechanism = "rlimit_as";
    } else if (a->rc != RB_OK) {
        w->outcome = OUT_ERROR;
    } else {
        w->outcome = OUT_OK;
    }
}

/* The JSON members describing a try, for the failure context and events.
 * `name` names the outcome's member: "kind" in the failure context, but
 * "outcome" in the event, whose "kind" is the event's. */
static enum rb_err outcome_json(struct rb_buf *b, const char *name, const struct watch *w,
                                const struct task_try *t)
{
    enum rb_err rc;

    rc = rb__buf_printf(b, "\"%s\":\"%s\"", name, outcome_names[w->outcome]);
    if (rc == RB_OK && w->mechanism)
        rc = rb__buf_printf(b, ",\"mechanism\":\"%s\"", w->mechanism);
    if (rc == RB_OK)
        rc = rb__buf_printf(b,
                            ",\"signal\":%d,\"exit_code\":%d,\"limit\":%llu"
                            ",\"rss_peak\":%lld,\"timeout_ms\":%d,\"cpu_limit_s\":%d"
                            ",\"cpu_ms\":%lld,\"task_pid\":%ld",
                            w->signal, w->exit_code, (unsigned long long)t->mem_limit,
                            (long long)task_rss(w), t->opts->timeout_ms,
                            t->opts->cpu_limit_s, (long long)w->cpu_ms, (long)w->pid);
    return rc;
}

/* Fills err for a failed try and returns its code. */
static enum rb_err fail_try(const struct watch *w, const struct task_try *t,
                            const char *key, struct rb_error *err)
{
    char lim[32], peak[32], sig[32];
    const struct answer *a;

    fmt_bytes(lim, sizeof(lim), (int64_t)t->mem_limit);
    fmt_bytes(peak, sizeof(peak), task_rss(w));
    fmt_signal(sig, sizeof(sig), w->signal);
    switch (w->outcome) {
    case OUT_OOM:
        if (strcmp(w->mechanism, "watchdog") == 0)
            return rb__fail(err, RB_EOOM,
                            "task step '%s' exceeded its memory limit of %s (peak %s) "
                            "and was killed",
                            key, lim, peak);
        if (strcmp(w->mechanism, "rlimit_as") == 0) {
            a = (const struct answer *)(w->in.data + sizeof(struct hello));
            return rb__fail(err, RB_EOOM,
                            "task step '%s' ran out of its memory limit of %s "
                            "(allocation refused%s%s)",
                            key, lim, a->message[0] ? ": " : "", a->message);
        }
        return rb__fail(err, RB_EOOM,
                        "task step '%s' exceeded its memory limit of %s (peak %s)", key,
                        lim, peak);
    case OUT_TIMEOUT:
        return rb__fail(err, RB_ETIMEOUT,
                        "task step '%s' ran longer than its timeout of %d ms and was "
                        "killed",
                        key, t->opts->timeout_ms);
    case OUT_CPU:
        return rb__fail(err, RB_ETIMEOUT,
                        "task step '%s' used more than its CPU limit of %d s and was "
                        "killed by %s",
                        key, t->opts->cpu_limit_s, sig);
    case OUT_SIGNAL:
        return rb__fail(err, RB_ECRASH, "task step '%s' crashed: killed by %s", key, sig);
    case OUT_EXIT:
        return rb__fail(err, RB_ECRASH,
                        "task step '%s' crashed: its process exited with code %d "
                        "before answering",
                        key, w->exit_code);
    default:
        /* fn's own error, as it gave it. */
        a = (const struct answer *)(w->in.data + sizeof(struct hello));
        rb__fail(err, (enum rb_err)a->rc, "%s", a->message);
        if (err) {
            err->cause = a->cause;
            err->cause_kind = a->cause_kind == 1   ? "errno"
                              : a->cause_kind == 2 ? "sqlite"
                                                   : "";
            err->line = a->line;
            err->column = a->column;
            snprintf(err->file, sizeof(err->file), "%s", a->file);
        }
        return (enum rb_err)a->rc;
    }
}

/* Moves the output of a successful try from the pipe's bytes into out (which
 * rb_step() hands over empty), without copying it. */
static void take_output(struct watch *w, struct rb_buf *out)
{
    size_t off = sizeof(struct hello) + sizeof(struct answer);
    const struct answer *a = (const struct answer *)(w->in.data + sizeof(struct hello));
    size_t len = (size_t)a->len;

    memmove(w->in.data, w->in.data + off, len);
    w->in.len = len;
    w->in.data[len] = '\0';
    rb_buf_release(out);
    *out = w->in;
    rb_buf_init(&w->in);
}

/* The step function rb_step() calls: one try in a child process. */
static enum rb_err task_exec(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                             struct rb_error *err)
{
    const struct task_try *t = arg;
    struct rb_run *run = ctx->run;
    struct watch w;
    struct rb_buf detail;
    int fds[2] = {-1, -1};
    pid_t parent = getpid();
    enum rb_err rc;

    memset(&w, 0, sizeof(w));
    w.rss_base = -1;
    w.exit_code = -1;
    rb_buf_init(&w.in);
    rb_buf_init(&detail);
    if (pipe2(fds, O_CLOEXEC) != 0)
        return rb__fail_errno(err, RB_ECHILD, errno,
                              "cannot start the process of task step '%s'", ctx->key);
    w.pid = fork();
    if (w.pid < 0) {
        rc = rb__fail_errno(err, RB_ECHILD, errno,
                            "cannot start the process of task step '%s'", ctx->key);
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    if (w.pid == 0) {
        close(fds[0]);
        child_main(fds[1], parent, t, ctx);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    if (run->event_fd > 0) {
        rb__buf_printf(&detail,
                       "\"task_pid\":%ld,\"limit\":%llu,\"timeout_ms\":%d,"
                       "\"cpu_limit_s\":%d",
                       (long)w.pid, (unsigned long long)t->mem_limit, t->opts->timeout_ms,
                       t->opts->cpu_limit_s);
        rb__event(run, "task.start", ctx->key, (const char *)detail.data);
        rb_buf_release(&detail);
    }

    rc = watch_child(&w, fds[0], t, ctx->key, err);
    if (rc != RB_OK)
        goto out;
    judge(&w, t);
    if (run->event_fd > 0 && outcome_json(&detail, "outcome", &w, t) == RB_OK)
        rb__event(run, "task.end", ctx->key, (const char *)detail.data);
    rb_buf_release(&detail);
    if (w.outcome != OUT_OK) {
        rc = fail_try(&w, t, ctx->key, err);
        if (outcome_json(&detail, "kind", &w, t) != RB_OK) {
            rc = rb__fail(err, RB_ENOMEM, "out of memory");
            goto out;
        }
        /* rb_step() adds these to the failure context it records. */
        free(run->fail_extra);
        run->fail_extra = (char *)detail.data;
        rb_buf_init(&detail);
        goto out;
    }
    take_output(&w, out);
out:
    rb_buf_release(&w.in);
    rb_buf_release(&detail);
    return rc;
}

enum rb_err rb_task_step(struct rb_run *run, const char *key,
                         const struct rb_task_opts *opts, rb_step_fn fn, void *arg,
                         struct rb_buf *out, struct rb_step_info *info,
                         struct rb_error *err)
{
    static const struct rb_task_opts defaults = {0};
    struct task_try t;
    double factor, next;
    enum rb_err rc;

    if (!opts)
        opts = &defaults;
    factor = opts->retry_oom_factor;
    if (!run || !fn || !out)
        return rb__fail(err, RB_EINVAL,
                        "task step '%s' needs a run, a function and an "
                        "output buffer",
                        key ? key : "");
    if (isnan(factor) || factor < 0)
        return rb__fail(err, RB_EINVAL, "task step '%s': retry_oom_factor %g is not >= 0",
                        key ? key : "", factor);
    if (opts->timeout_ms < 0 || opts->cpu_limit_s < 0)
        return rb__fail(err, RB_EINVAL, "task step '%s': negative timeout or CPU limit",
                        key ? key : "");
    if (factor > 1 && !opts->mem_limit)
        return rb__fail(err, RB_EINVAL,
                        "task step '%s': retry_oom_factor needs a mem_limit",
                        key ? key : "");
    if (factor > 1 && opts->mem_cap < opts->mem_limit)
        return rb__fail(err, RB_EINVAL,
                        "task step '%s': mem_cap %zu is below mem_limit %zu",
                        key ? key : "", opts->mem_cap, opts->mem_limit);

    t.opts = opts;
    t.mem_limit = opts->mem_limit;
    t.fn = fn;
    t.arg = arg;
    for (;;) {
        rc = rb_step(run, key, &opts->step, task_exec, &t, out, info, err);
        if (rc != RB_EOOM || factor <= 1 || t.mem_limit >= opts->mem_cap)
            break;
        /* Bounded: the limit grows each round and stops at the cap. */
        next = (double)t.mem_limit * factor;
        if (next >= (double)opts->mem_cap || (size_t)next <= t.mem_limit)
            t.mem_limit = opts->mem_cap;
        else
            t.mem_limit = (size_t)next;
    }
    return rc;
}
