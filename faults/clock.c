/*
 * clock.c - clock skew for the agent through libfaketime preloaded into it:
 * a fixed offset, a drift (clock speed), and jumps while it runs, written to
 * a control file the library re-reads at every clock call (its cache is off).
 * The wall clock is always skewed; CLOCK_MONOTONIC is left real unless asked.
 * Also removes what libfaketime leaves in /dev/shm when a process dies
 * without running its destructor (killed, or replaced by exec).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_ENV 5

struct rb_clock {
    char *lib;            /* libfaketime in use */
    char *dir;            /* private folder holding the control file */
    char *file;           /* the control file (FAKETIME_TIMESTAMP_FILE) */
    double offset_s;      /* current offset */
    double rate;          /* current speed */
    char *env[N_ENV + 1]; /* entries for the agent, NULL-terminated */
};

static const char *const debian_paths[] = {
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
};

static enum rb_err find_lib(const char *given, char **out, struct rb_error *err)
{
    const char *env = getenv("REBOUND_FAKETIME_LIB");
    size_t i;

    if (!given && env && *env)
        given = env;
    if (given) {
        if (access(given, R_OK) != 0)
            return rb__fx_fail_errno(err, rb__fx_errno_code(errno), errno,
                                     "cannot use libfaketime '%s'", given);
        *out = strdup(given);
        return *out ? RB_OK : rb__fx_fail(err, RB_ENOMEM, "out of memory");
    }
    for (i = 0; i < sizeof(debian_paths) / sizeof(debian_paths[0]); i++) {
        if (access(debian_paths[i], R_OK) == 0) {
            *out = strdup(debian_paths[i]);
            return *out ? RB_OK : rb__fx_fail(err, RB_ENOMEM, "out of memory");
        }
    }
    return rb__fx_fail(err, RB_ENOENT,
                       "cannot skew the clock: libfaketime not found (tried '%s' and "
                       "others); install package 'libfaketime' or set "
                       "REBOUND_FAKETIME_LIB",
                       debian_paths[0]);
}

/* libfaketime's spec: "+SECONDS" with an optional " xRATE" (it needs the
 * explicit offset before a rate). */
static void format_spec(char *buf, size_t size, double offset_s, double rate)
{
    if (rate == 1.0)
        snprintf(buf, size, "%+.3f\n", offset_s);
    else
        snprintf(buf, size, "%+.3f x%.6f\n", offset_s, rate);
}

/* Writes the control file whole (temp file, then rename), so the agent's
 * next read sees the old spec or the new one, never half of it. */
static enum rb_err write_spec(struct rb_clock *c, double offset_s, double rate,
                              struct rb_error *err)
{
    char spec[96], tmp[4200];
    size_t len;
    int fd, e;

    format_spec(spec, sizeof(spec), offset_s, rate);
    len = strlen(spec);
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->file);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rb__fx_fail_errno(err, rb__fx_errno_code(errno), errno,
                                 "cannot write clock file '%s'", tmp);
    if (write(fd, spec, len) != (ssize_t)len) {
        e = errno ? errno : EIO;
        close(fd);
        unlink(tmp);
        return rb__fx_fail_errno(err, rb__fx_errno_code(e), e,
                                 "cannot write clock file '%s'", tmp);
    }
    close(fd);
    if (rename(tmp, c->file) != 0) {
        e = errno;
        unlink(tmp);
        return rb__fx_fail_errno(err, rb__fx_errno_code(e), e,
                                 "cannot replace clock file '%s'", c->file);
    }
    c->offset_s = offset_s;
    c->rate = rate;
    return RB_OK;
}

static char *join(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s=%s", name, value);
    return s;
}

enum rb_err rb_clock_new(const struct rb_clock_opts *opts, struct rb_clock **out,
                         struct rb_error *err)
{
    struct rb_clock_opts o = {0};
    struct rb_clock *c;
    const char *base;
    enum rb_err rc;
    size_t n;
    int i = 0;

    if (opts)
        o = *opts;
    if (o.rate < 0)
        return rb__fx_fail(err, RB_EINVAL, "clock rate '%g' is negative", o.rate);
    if (o.rate == 0)
        o.rate = 1.0;
    c = calloc(1, sizeof(*c));
    if (!c)
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    rc = find_lib(o.lib, &c->lib, err);
    if (rc != RB_OK)
        goto fail;
    base = o.dir ? o.dir : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    n = strlen(base) + 32;
    c->dir = malloc(n);
    c->file = malloc(n + 16);
    if (!c->dir || !c->file) {
        rc = rb__fx_fail(err, RB_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(c->dir, n, "%s/rebound-clock-XXXXXX", base);
    if (!mkdtemp(c->dir)) {
        rc = rb__fx_fail_errno(err, rb__fx_errno_code(errno), errno,
                               "cannot make a clock folder in '%s'", base);
        free(c->dir);
        c->dir = NULL;
        goto fail;
    }
    snprintf(c->file, n + 16, "%s/faketimerc", c->dir);
    rc = write_spec(c, o.offset_s, o.rate, err);
    if (rc != RB_OK)
        goto fail;
    c->env[i++] = join("LD_PRELOAD", c->lib);
    c->env[i++] = join("FAKETIME_TIMESTAMP_FILE", c->file);
    c->env[i++] = join("FAKETIME_NO_CACHE", "1");
    if (!o.fake_monotonic)
        c->env[i++] = join("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    while (i-- > 0) {
        if (!c->env[i]) {
            rc = rb__fx_fail(err, RB_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = c;
    return RB_OK;
fail:
    rb_clock_free(c);
    return rc;
}

const char *const *rb_clock_env(const struct rb_clock *clock)
{
    return (const char *const *)clock->env;
}

enum rb_err rb_clock_set(struct rb_clock *clock, double offset_s, double rate,
                         struct rb_error *err)
{
    if (rate < 0)
        return rb__fx_fail(err, RB_EINVAL, "clock rate '%g' is negative", rate);
    return write_spec(clock, offset_s, rate == 0 ? 1.0 : rate, err);
}

double rb_clock_offset(const struct rb_clock *clock)
{
    return clock->offset_s;
}

double rb_clock_rate(const struct rb_clock *clock)
{
    return clock->rate;
}

const char *rb_clock_lib(const struct rb_clock *clock)
{
    return clock->lib;
}

void rb_clock_cleanup_pid(pid_t pid)
{
    char path[64];

    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/dev/shm/faketime_shm_%ld", (long)pid);
    unlink(path);
    snprintf(path, sizeof(path), "/dev/shm/sem.faketime_sem_%ld", (long)pid);
    unlink(path);
}

void rb_clock_free(struct rb_clock *clock)
{
    size_t i;

    if (!clock)
        return;
    if (clock->file)
        unlink(clock->file);
    if (clock->dir)
        rmdir(clock->dir);
    for (i = 0; i < N_ENV; i++)
        free(clock->env[i]);
    free(clock->file);
    free(clock->dir);
    free(clock->lib);
    free(clock);
}
