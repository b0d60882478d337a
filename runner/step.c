/*
 * step.c - rb_step(), the durable step: replay from the run's log, else serve
 * from the global cache (single flight across processes), else execute and
 * persist. The order of writes is what makes a kill at any moment safe: the
 * output blob is on disk before the log row that names it is committed, and
 * the caller sees the output only after the commit.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *rb_source_name(enum rb_source src)
{
    switch (src) {
    case RB_FROM_LOG:
        return "log";
    case RB_FROM_CACHE:
        return "cache";
    default:
        return "exec";
    }
}

/* SHA-256 of no bytes: the input hash of a step without input. */
static const char empty_hash[RB_HASH_HEX_LEN + 1] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* What the log holds for a step, copied out of the backend's row. */
struct found {
    struct rb_store *store;
    struct rb_error *err;
    enum rb_err rc;       /* reading a committed output failed */
    int committed;        /* the step is committed */
    struct rb_buf output; /* its output, when committed */
    int64_t seq;
    int attempt;
    int tries;        /* executions so far */
    char *last_error; /* when the last try failed */
    char hash[RB_HASH_HEX_LEN + 1];
};

static int on_record(void *arg, const struct rb_step_record *rec)
{
    struct found *f = arg;

    f->tries = rec->tries;
    if (strcmp(rec->status, "committed") != 0) {
        f->last_error = rb__strdup(rec->error);
        return 0;
    }
    f->committed = 1;
    f->seq = rec->seq;
    f->attempt = rec->attempt;
    snprintf(f->hash, sizeof(f->hash), "%s", rec->output_hash ? rec->output_hash : "");
    f->rc = rb_store_read_output(f->store, rec, &f->output, f->err);
    return 0;
}

static void found_release(struct found *f)
{
    rb_buf_release(&f->output);
    free(f->last_error);
    f->last_error = NULL;
}

/* Replaces out's contents with src's, leaving src empty. */
static void buf_move(struct rb_buf *out, struct rb_buf *src)
{
    rb_buf_release(out);
    *out = *src;
    rb_buf_init(src);
    if (!out->data) {
        /* An empty output is still a NUL-terminated string. */
        rb_buf_append(out, "", 0);
    }
}

static void set_info(struct rb_step_info *info, enum rb_source src, int64_t seq,
                     int attempt, const char *hash)
{
    if (!info)
        return;
    info->source = src;
    info->seq = seq;
    info->attempt = attempt;
    snprintf(info->output_hash, sizeof(info->output_hash), "%s", hash);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The cache key: SHA-256 over kind, version and input, NUL-separated. */
static enum rb_err cache_key(const char *kind, const char *version, const void *input,
                             size_t input_len, char key[RB_HASH_HEX_LEN + 1])
{
    struct rb_buf b;
    enum rb_err rc;

    rb_buf_init(&b);
    rc = rb_buf_append(&b, kind, strlen(kind) + 1);
    if (rc == RB_OK)
        rc = rb_buf_append(&b, version, strlen(version) + 1);
    if (rc == RB_OK)
        rc = rb_buf_append(&b, input ? input : "", input ? input_len : 0);
    if (rc == RB_OK)
        rb_hash_hex(b.data, b.len, key);
    rb_buf_release(&b);
    return rc;
}

/*
 * Claims the cache entry `key`: returns RB_OK with *state DONE (value read
 * into value) or MINE (we compute it). Waits while another live process
 * computes it, up to wait_ms.
 */
static enum rb_err cache_acquire(struct rb_run *run, const char *key, const char *kind,
                                 int wait_ms, enum rb__claim *state, struct rb_buf *value,
                                 char hash[RB_HASH_HEX_LEN + 1], struct rb_error *err)
{
    struct rb_store *store = run->store;
    struct rb__claim_result res;
    int64_t deadline = rb__mono_ns() + (int64_t)wait_ms * 1000000;
    const char *steal = NULL;
    char dead[128];
    int nap = 1;
    enum rb_err rc;

    for (;;) {
        rc = store->ops->cache_claim(store->be, key, kind, run->owner, steal, &res, err);
        if (rc != RB_OK)
            return rc;
        steal = NULL;
        if (res.state == RB__CLAIM_MINE) {
            *state = RB__CLAIM_MINE;
            return RB_OK;
        }
        if (res.state == RB__CLAIM_DONE) {
            struct rb_buf v;

            rb_buf_init(&v);
            rc = rb__blob_get(&store->blobs, res.hash, &v, NULL);
            if (rc == RB_OK) {
                buf_move(value, &v);
                snprintf(hash, RB_HASH_HEX_LEN + 1, "%s", res.hash);
                *state = RB__CLAIM_DONE;
                return RB_OK;
            }
            rb_buf_release(&v);
            /* The blob is gone or damaged: forget the entry and compute. */
            rc = store->ops->cache_drop(store->be, key, err);
            if (rc != RB_OK)
                return rc;
            continue;
        }
        if (rb__owner_dead(res.owner)) {
            snprintf(dead, sizeof(dead), "%s", res.owner);
            steal = dead;
            continue;
        }
        if (rb__mono_ns() > deadline)
            return rb__fail(err, RB_EBUSY,
                            "waited %d ms for another process (%s) computing the same "
                            "cached call; it is still running",
                            wait_ms, res.owner);
        sleep_ms(nap);
        if (nap < 50)
            nap *= 2;
    }
}

/* The failure context recorded for a failed try, as JSON. */
static void failure_json(struct rb_buf *b, const struct rb_run *run, int tries,
                         enum rb_err code, const struct rb_error *ferr, const char *extra)
{
    rb__buf_printf(b, "{\"code\":\"%s\",\"message\":", rb_err_name(code));
    rb__json_str(b, ferr->message[0] ? ferr->message : rb_strerror(code));
    if (ferr->cause)
        rb__buf_printf(b, ",\"cause\":%d,\"cause_kind\":\"%s\"", ferr->cause,
                       ferr->cause_kind ? ferr->cause_kind : "");
    if (extra && *extra)
        rb__buf_printf(b, ",%s", extra);
    rb__buf_printf(b, ",\"attempt\":%d,\"try\":%d}", run->attempt, tries + 1);
}

enum rb_err rb_step(struct rb_run *run, const char *key, const struct rb_step_opts *opts,
                    rb_step_fn fn, void *arg, struct rb_buf *out,
                    struct rb_step_info *info, struct rb_error *err)
{
    static const struct rb_step_opts defaults = {0};
    struct rb_store *store = run->store;
    struct found f;
    struct rb_step_record rec;
    struct rb_step_ctx ctx;
    struct rb_error ferr;
    struct rb_buf result, ejson;
    enum rb__claim claim = RB__CLAIM_MINE;
    char in_hash[RB_HASH_HEX_LEN + 1], out_hash[RB_HASH_HEX_LEN + 1];
    char ckey[RB_HASH_HEX_LEN + 1], extra[96];
    char *extra_ctx = NULL; /* the step function's run->fail_extra */
    int use_cache, found_row = 0, replay = !(run->flags & RB_RUN_NO_REPLAY);
    int64_t seq = 0;
    enum rb_err rc;

    if (!opts)
        opts = &defaults;
    rc = rb_name_check("step name", key, err);
    if (rc != RB_OK)
        return rc;

    memset(&f, 0, sizeof(f));
    f.store = store;
    f.err = err;
    rb_buf_init(&f.output);
    rb_buf_init(&result);
    rb_buf_init(&ejson);

    /* 1. The replay log. */
    rc =
        store->ops->step_get(store->be, run->run_id, key, on_record, &f, &found_row, err);
    if (rc == RB_OK)
        rc = f.rc;
    if (rc != RB_OK)
        goto out;
    if (f.committed && replay) {
        if (run->event_fd > 0) {
            snprintf(extra, sizeof(extra), "\"seq\":%lld,\"source\":\"log\"",
                     (long long)f.seq);
            rb__event(run, "step.replay", key, extra);
        }
        set_info(info, RB_FROM_LOG, f.seq, f.attempt, f.hash);
        buf_move(out, &f.output);
        goto out;
    }

    memset(&rec, 0, sizeof(rec));
    rec.run_id = run->run_id;
    rec.key = key;
    rec.kind = opts->kind ? opts->kind : "task";
    rec.attempt = run->attempt;
    rec.meta = opts->meta;
    if (opts->input && opts->input_len) {
        rb_hash_hex(opts->input, opts->input_len, in_hash);
        rec.input_hash = in_hash;
    } else {
        rec.input_hash = empty_hash; /* no input: spare the hashing */
    }

    /* 2. The global cache. */
    use_cache = opts->cache == RB_CACHE_ON && replay;
    if (use_cache) {
        rc = cache_key(rec.kind, opts->version ? opts->version : "", opts->input,
                       opts->input_len, ckey);
        if (rc != RB_OK) {
            rc = rb__fail(err, rc, "out of memory");
            goto out;
        }
        rc = cache_acquire(run, ckey, rec.kind,
                           opts->cache_wait_ms > 0 ? opts->cache_wait_ms : 600000, &claim,
                           &result, out_hash, err);
        if (rc != RB_OK)
            goto out;
    }

    /* 3. Execute. */
    rec.start_wall_ms = rb__wall_ms();
    rec.start_mono_ns = rb__mono_ns();
    if (claim == RB__CLAIM_DONE) {
        rec.cached = 1;
        rb__event(run, "step.cached", key, NULL);
    } else {
        ctx.run = run;
        ctx.key = key;
        ctx.attempt = run->attempt;
        ctx.tries = f.tries;
        ctx.last_error = f.last_error;
        rb_error_init(&ferr);
        if (f.tries > 0 && run->event_fd > 0) {
            /* a retry: the failure it is handed, for the harness to see */
            struct rb_buf ev;

            rb_buf_init(&ev);
            if (rb__buf_printf(&ev, "\"tries\":%d,\"last_error\":%s", f.tries,
                               !f.last_error ? "null"
                               : strlen(f.last_error) < 2048
                                   ? f.last_error
                                   : "{\"truncated\":true}") == RB_OK)
                rb__event(run, "step.start", key, (const char *)ev.data);
            else
                rb__event(run, "step.start", key, NULL);
            rb_buf_release(&ev);
        } else {
            rb__event(run, "step.start", key, NULL);
        }
        rc = fn(arg, &ctx, &result, &ferr);
        extra_ctx = run->fail_extra;
        run->fail_extra = NULL;
        if (rc == RB_OK && !result.data)
            rb_buf_append(&result, "", 0);
        if (rc != RB_OK) {
            rec.end_mono_ns = rb__mono_ns();
            rec.end_wall_ms = rb__wall_ms();
            failure_json(&ejson, run, f.tries, rc, &ferr, extra_ctx);
            rec.error = (const char *)ejson.data;
            store->ops->step_fail(store->be, &rec, NULL);
            if (use_cache)
                store->ops->cache_release(store->be, ckey, run->owner, NULL);
            rb__event(run, "step.fail", key, NULL);
            if (err) {
                *err = ferr;
                err->code = rc;
                if (!err->message[0])
                    snprintf(err->message, sizeof(err->message), "step '%s' failed: %s",
                             key, rb_strerror(rc));
            }
            goto out;
        }
        rb_hash_hex(result.data, result.len, out_hash);
    }
    rec.end_mono_ns = rb__mono_ns();
    rec.end_wall_ms = rb__wall_ms();

    /* 4. Persist: the blob first, then the log row that names it. */
    rec.output_hash = out_hash;
    rec.output_len = result.len;
    rec.output = result.len <= store->opts.inline_max ? result.data : NULL;
    if (!rec.output || (use_cache && claim == RB__CLAIM_MINE)) {
        rc = rb__blob_put(&store->blobs, out_hash, result.data, result.len, err);
        if (rc != RB_OK)
            goto release_claim;
    }
    rc = store->ops->step_commit(store->be, &rec, opts->inputs, opts->n_inputs,
                                 use_cache && claim == RB__CLAIM_MINE ? ckey : NULL,
                                 !replay, &seq, err);
    if (rc == RB_EEXIST) {
        /* Another process committed this step meanwhile: its record wins. */
        found_release(&f);
        memset(&f, 0, sizeof(f));
        f.store = store;
        f.err = err;
        rc = store->ops->step_get(store->be, run->run_id, key, on_record, &f, &found_row,
                                  err);
        if (rc == RB_OK)
            rc = f.rc;
        if (rc == RB_OK && !f.committed)
            rc = rb__fail(err, RB_ESTORE, "step '%s' vanished while committing", key);
        if (rc != RB_OK)
            goto release_claim;
        set_info(info, RB_FROM_LOG, f.seq, f.attempt, f.hash);
        buf_move(out, &f.output);
        goto release_claim;
    }
    if (rc != RB_OK)
        goto release_claim;
    if (run->event_fd > 0) {
        snprintf(extra, sizeof(extra), "\"seq\":%lld,\"source\":\"%s\"", (long long)seq,
                 rec.cached ? "cache" : "exec");
        rb__event(run, "step.commit", key, extra);
    }
    set_info(info, rec.cached ? RB_FROM_CACHE : RB_FROM_EXEC, seq, run->attempt,
             out_hash);
    buf_move(out, &result);
    goto out;

release_claim:
    if (use_cache && claim == RB__CLAIM_MINE)
        store->ops->cache_release(store->be, ckey, run->owner, NULL);
out:
    found_release(&f);
    rb_buf_release(&result);
    rb_buf_release(&ejson);
    free(extra_ctx);
    return rc;
}
