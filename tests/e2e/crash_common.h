/*
 * crash_common.h - what the crash test (test_crash_kills.c) and its writer
 * (crash_writer.c) agree on: the step keys, the exact output each step must
 * have, and the lines the writer reports on its report fd. The output is a
 * pure function of the step index, so anyone can tell whether a recorded
 * output is exact; every eighth step is larger than the 4096-byte inline limit
 * and goes to the blob store, a few are empty, and every fourth goes through
 * the global cache.
 */
#ifndef REBOUND_TESTS_CRASH_COMMON_H
#define REBOUND_TESTS_CRASH_COMMON_H

#include <rebound/rebound.h>

#include <stdint.h>
#include <stdio.h>

#define CRASH_KEY_FMT "k%07ld"   /* step key of index i */
#define CRASH_REPORT_FD 3        /* where the writer reports, one line a fact */
#define CRASH_MAX_STEPS 1000000L /* indexes stay below this */

/*
 * Report lines, each written with one write() so a kill never splits one:
 *   R <attempt>          the run is open
 *   B <index>            the step function made a blob-sized output and is
 *                        about to return it (the blob write comes next)
 *   C <index> <seq> <s>  rb_step() returned RB_OK: the step is committed, with
 *                        its seq, from source s ("exec" or "log")
 */

static inline uint64_t crash_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The size of step i's output: 0 for a few, > 4096 for every eighth. */
static inline size_t crash_output_size(long i)
{
    uint64_t h = crash_mix((uint64_t)i);

    if (i % 50 == 7)
        return 0;
    if (i % 8 == 5)
        return 4097 + (size_t)(h % 60000);
    return 1 + (size_t)(h % 300);
}

/* 1 when step i goes through the global cache (its input is its key, so no
 * two steps share an entry). */
static inline int crash_cached(long i)
{
    return i % 4 == 2;
}

/* Fills `out` (empty on entry) with step i's exact output: printable text
 * starting with the key, so `rebound log --json` shows it as a string. */
static inline enum rb_err crash_output(long i, struct rb_buf *out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 .,-\n";
    size_t size = crash_output_size(i), k;
    uint64_t state = crash_mix((uint64_t)i ^ 0x5eedULL);
    char head[32], c;
    int n = snprintf(head, sizeof(head), CRASH_KEY_FMT ":", i);
    enum rb_err rc = RB_OK;

    for (k = 0; rc == RB_OK && k < size; k++) {
        if (k < (size_t)n) {
            c = head[k];
        } else {
            state = crash_mix(state);
            c = alphabet[state % (sizeof(alphabet) - 1)];
        }
        rc = rb_buf_append(out, &c, 1);
    }
    if (rc == RB_OK && size == 0)
        rc = rb_buf_append(out, "", 0);
    return rc;
}

#endif
