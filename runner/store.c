/*
 * store.c - the public store functions: opening a store folder, and the
 * reading and escalation calls, each handed to the backend behind
 * struct rb_store_ops.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum rb_err rb_store_open(const char *dir, const struct rb_store_opts *opts,
                          struct rb_store **out, struct rb_error *err)
{
    struct rb_store *store = NULL;
    struct stat sb;
    enum rb_err rc = RB_OK;

    if (!dir || !*dir)
        return rb__fail(err, RB_EINVAL, "no store folder given");
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            return rb__fail_errno(err, rb__err_from_errno(errno), errno,
                                  "cannot open store '%s'", dir);
        if (opts && (opts->flags & RB_STORE_MUST_EXIST))
            return rb__fail(err, RB_ENOENT, "no store at '%s'", dir);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            if (e == ENOENT)
                return rb__fail(err, RB_EACCES,
                                "cannot create store '%s': its parent folder does not "
                                "exist",
                                dir);
            return rb__fail_errno(err, e == ENOSPC ? RB_ENOSPC : RB_EACCES, e,
                                  "cannot create store '%s'", dir);
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        return rb__fail(err, RB_EACCES, "cannot open store '%s': not a folder", dir);
    }
    store = calloc(1, sizeof(*store));
    if (!store)
        return rb__fail(err, RB_ENOMEM, "out of memory");
    if (opts)
        store->opts = *opts;
    if (!store->opts.inline_max)
        store->opts.inline_max = 4096;
    if (store->opts.busy_timeout_ms <= 0)
        store->opts.busy_timeout_ms = 10000;
    store->dir = strdup(dir);
    if (!store->dir) {
        rc = rb__fail(err, RB_ENOMEM, "out of memory");
        goto fail;
    }
    rc = rb__sqlite_open(dir, &store->opts, &store->ops, &store->be, err);
    if (rc != RB_OK)
        goto fail;
    rc = rb__blobs_init(&store->blobs, dir, store->opts.durability == RB_DURABLE_FULL,
                        err);
    if (rc != RB_OK)
        goto fail;
    *out = store;
    return RB_OK;
fail:
    rb_store_close(store);
    return rc;
}

void rb_store_close(struct rb_store *store)
{
    if (!store)
        return;
    if (store->ops)
        store->ops->close(store->be);
    rb__blobs_release(&store->blobs);
    free(store->dir);
    free(store);
}

struct check_ctx {
    struct rb_store *store;
    struct rb_error *err;
    enum rb_err rc;
};

/* Reads every blob the log names, which verifies its content hash too. */
static int check_step(void *arg, const struct rb_step_record *rec)
{
    struct check_ctx *c = arg;
    struct rb_buf b;

    if (strcmp(rec->status, "committed") != 0 || rec->output || !rec->output_hash)
        return 0;
    rb_buf_init(&b);
    c->rc = rb_store_read_output(c->store, rec, &b, c->err);
    rb_buf_release(&b);
    return c->rc != RB_OK;
}

struct run_ids {
    char **ids;
    size_t n, cap;
};

static int collect_run(void *arg, const struct rb_run_summary *r)
{
    struct run_ids *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->ids, cap * sizeof(*p));
        if (!p)
            return 1;
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n] = strdup(r->run_id);
    if (!l->ids[l->n])
        return 1;
    l->n++;
    return 0;
}

enum rb_err rb_store_check(struct rb_store *store, struct rb_error *err)
{
    struct run_ids ids = {0};
    struct check_ctx c = {store, err, RB_OK};
    enum rb_err rc = store->ops->check(store->be, err);
    size_t i;

    if (rc == RB_OK)
        rc = store->ops->list_runs(store->be, collect_run, &ids, err);
    for (i = 0; rc == RB_OK && i < ids.n; i++) {
        rc = store->ops->read_log(store->be, ids.ids[i], check_step, &c, err);
        if (rc == RB_OK)
            rc = c.rc;
    }
    for (i = 0; i < ids.n; i++)
        free(ids.ids[i]);
    free(ids.ids);
    return rc;
}

enum rb_err rb_store_attempt_end(struct rb_store *store, const char *run_id, int attempt,
                                 enum rb_end_kind end, int exit_code, int signal,
                                 const char *detail, struct rb_error *err)
{
    enum rb_err rc = rb_name_check("run id", run_id, err);

    if (rc != RB_OK)
        return rc;
    return store->ops->attempt_end(store->be, run_id, attempt, end, exit_code, signal,
                                   detail, 0, err);
}

enum rb_err rb_store_resolve(struct rb_store *store, const char *run_id, const char *note,
                             struct rb_error *err)
{
    enum rb_err rc = rb_name_check("run id", run_id, err);

    if (rc != RB_OK)
        return rc;
    return store->ops->resolve(store->be, run_id, note, err);
}

enum rb_err rb_store_list_runs(struct rb_store *store, rb_run_cb cb, void *arg,
                               struct rb_error *err)
{
    return store->ops->list_runs(store->be, cb, arg, err);
}

enum rb_err rb_store_read_log(struct rb_store *store, const char *run_id, rb_step_cb cb,
                              void *arg, struct rb_error *err)
{
    enum rb_err rc = rb_name_check("run id", run_id, err);

    if (rc != RB_OK)
        return rc;
    return store->ops->read_log(store->be, run_id, cb, arg, err);
}

enum rb_err rb_store_read_attempts(struct rb_store *store, const char *run_id,
                                   rb_attempt_cb cb, void *arg, struct rb_error *err)
{
    enum rb_err rc = rb_name_check("run id", run_id, err);

    if (rc != RB_OK)
        return rc;
    return store->ops->read_attempts(store->be, run_id, cb, arg, err);
}

enum rb_err rb_store_read_lineage(struct rb_store *store, const char *run_id,
                                  rb_lineage_cb cb, void *arg, struct rb_error *err)
{
    enum rb_err rc = rb_name_check("run id", run_id, err);

    if (rc != RB_OK)
        return rc;
    return store->ops->read_lineage(store->be, run_id, cb, arg, err);
}

enum rb_err rb_store_list_escalations(struct rb_store *store, int only_open,
                                      rb_escalation_cb cb, void *arg,
                                      struct rb_error *err)
{
    return store->ops->list_escalations(store->be, only_open, cb, arg, err);
}

enum rb_err rb_store_read_blob(struct rb_store *store, const char *hash,
                               struct rb_buf *out, struct rb_error *err)
{
    return rb__blob_get(&store->blobs, hash, out, err);
}

enum rb_err rb_store_read_output(struct rb_store *store, const struct rb_step_record *rec,
                                 struct rb_buf *out, struct rb_error *err)
{
    enum rb_err rc;

    if (rec->output)
        return rb_buf_append(out, rec->output, rec->output_len) == RB_OK
                   ? RB_OK
                   : rb__fail(err, RB_ENOMEM, "out of memory");
    if (!rec->output_hash)
        return rb__fail(err, RB_ENOENT, "step '%s' has no output", rec->key);
    rc = rb__blob_get(&store->blobs, rec->output_hash, out, err);
    if (rc == RB_ENOENT)
        rc = rb__fail(err, RB_ECORRUPT,
                      "step '%s' of run '%s' refers to blob %s, which is missing from "
                      "store '%s'",
                      rec->key, rec->run_id, rec->output_hash, store->dir);
    else if (rc == RB_ECORRUPT && err) {
        char why[sizeof(err->message)];

        snprintf(why, sizeof(why), "%s", err->message);
        rb__fail(err, RB_ECORRUPT, "step '%s' of run '%s': %s", rec->key, rec->run_id,
                 why);
    }
    return rc;
}
