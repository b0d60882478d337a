/*
 * crash_writer.c - the process test_crash_kills.c kills over and over: it
 * opens a store and a run with librebound and records steps FIRST, FIRST+1,
 * ... with rb_step(), each step's output a pure function of its index
 * (crash_common.h). After each rb_step() returns it reports the commit on fd 3,
 * so everything the parent hears about is a step the library said was
 * committed. Replayed steps are checked against their expected output here
 * too: a step up to KNOWN (reported committed earlier) must come from the log.
 * Every fourth step goes through the global cache (single flight), so kills
 * also leave cache claims pending.
 *
 *   crash_writer STORE RUN FIRST LAST KNOWN
 *
 * Steps FIRST to LAST-1, then closes the run and exits 0. Exits 3 with a
 * message on stderr when anything is wrong.
 */
#include "crash_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes one report line with a single write(), so a kill cannot split it. */
static int report(const char *line, size_t len)
{
    ssize_t n;

    do {
        n = write(CRASH_REPORT_FD, line, len);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

static enum rb_err make_output(void *arg, const struct rb_step_ctx *ctx,
                               struct rb_buf *out, struct rb_error *err)
{
    long i = *(const long *)arg;
    char line[64];
    int n;

    (void)ctx;
    if (crash_output(i, out) != RB_OK) {
        snprintf(err->message, sizeof(err->message), "out of memory");
        return RB_ENOMEM;
    }
    if (out->len > 4096) {
        n = snprintf(line, sizeof(line), "B %ld\n", i);
        if (report(line, (size_t)n) != 0) {
            snprintf(err->message, sizeof(err->message), "cannot report");
            return RB_EIO;
        }
    }
    return RB_OK;
}

static int parse_long(const char *s, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_error err;
    struct rb_buf out, want;
    struct rb_step_info info;
    struct rb_step_opts opts;
    long first, last, known, i;
    char key[32], line[96];
    int n, code = 3;

    rb_error_init(&err);
    rb_buf_init(&out);
    rb_buf_init(&want);
    if (argc != 6 || parse_long(argv[3], &first) != 0 ||
        parse_long(argv[4], &last) != 0 || parse_long(argv[5], &known) != 0 ||
        first < 0 || last > CRASH_MAX_STEPS) {
        fprintf(stderr, "usage: crash_writer STORE RUN FIRST LAST KNOWN\n");
        return 2;
    }
    if (rb_store_open(argv[1], NULL, &store, &err) != RB_OK) {
        fprintf(stderr, "crash_writer: %s\n", err.message);
        goto out;
    }
    if (rb_run_open(store, argv[2], NULL, &run, &err) != RB_OK) {
        fprintf(stderr, "crash_writer: %s\n", err.message);
        goto out;
    }
    n = snprintf(line, sizeof(line), "R %d\n", rb_run_attempt(run));
    if (report(line, (size_t)n) != 0)
        goto out;
    for (i = first; i < last; i++) {
        snprintf(key, sizeof(key), CRASH_KEY_FMT, i);
        memset(&opts, 0, sizeof(opts));
        if (crash_cached(i)) {
            /* Through the global cache: a kill can leave its claim pending,
             * and the next process must take it over, not wait for it. */
            opts.kind = "crash";
            opts.input = key;
            opts.input_len = strlen(key);
            opts.cache = RB_CACHE_ON;
            opts.cache_wait_ms = 10000;
        }
        if (rb_step(run, key, &opts, make_output, &i, &out, &info, &err) != RB_OK) {
            fprintf(stderr, "crash_writer: step '%s': %s\n", key, err.message);
            goto out;
        }
        rb_buf_release(&want);
        if (crash_output(i, &want) != RB_OK)
            goto out;
        if (out.len != want.len || memcmp(out.data, want.data, want.len) != 0) {
            fprintf(stderr,
                    "crash_writer: step '%s' returned %zu bytes (%s) that differ from "
                    "its expected %zu bytes\n",
                    key, out.len, rb_source_name(info.source), want.len);
            goto out;
        }
        if (i <= known && info.source != RB_FROM_LOG) {
            fprintf(stderr,
                    "crash_writer: step '%s' was reported committed before, yet it "
                    "ran again (source %s)\n",
                    key, rb_source_name(info.source));
            goto out;
        }
        n = snprintf(line, sizeof(line), "C %ld %lld %s\n", i, (long long)info.seq,
                     rb_source_name(info.source));
        if (report(line, (size_t)n) != 0)
            goto out;
    }
    code = 0;
out:
    rb_buf_release(&out);
    rb_buf_release(&want);
    rb_run_close(run);
    rb_store_close(store);
    return code;
}
