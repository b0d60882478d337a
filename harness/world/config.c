/*
 * config.c - the world's configuration: defaults, and the JSON config file
 * of `rebound world --config FILE` (and of scenarios that start a world).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void rb_world_config_init(struct rb_world_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->turns = 2;
}

void rb_world_config_release(struct rb_world_config *cfg)
{
    free(cfg->model);
    free(cfg->journal_path);
    free(cfg->faults);
    rb_world_config_init(cfg);
}

static enum rb_err bad(struct rb_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum rb_err bad(struct rb_error *err, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rb__world_fail(err, RB_EINVAL, "config '%s': %s", path, msg);
    if (err)
        rb__world_copy(err->file, sizeof(err->file), path);
    return RB_EINVAL;
}

static enum rb_err int_key(const json_t *root, const char *key, long long max,
                           long long *out, const char *path, struct rb_error *err)
{
    const json_t *v = json_object_get(root, key);

    if (!v)
        return RB_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return bad(err, path, "'%s' must be a non-negative integer in range", key);
    *out = json_integer_value(v);
    return RB_OK;
}

static enum rb_err str_key(const json_t *root, const char *key, char **out,
                           const char *path, struct rb_error *err)
{
    const json_t *v = json_object_get(root, key);

    if (!v)
        return RB_OK;
    if (!json_is_string(v) || !json_string_value(v)[0])
        return bad(err, path, "'%s' must be a non-empty string", key);
    *out = strdup(json_string_value(v));
    return *out ? RB_OK : rb__world_fail(err, RB_ENOMEM, "out of memory");
}

enum rb_err rb_world_config_load(const char *path, struct rb_world_config *cfg,
                                 struct rb_error *err)
{
    static const char *const known[] = {"port",       "seed",           "turns",
                                        "latency_ms", "jitter_ms",      "model",
                                        "journal",    "journal_bodies", "faults"};
    json_error_t jerr;
    json_t *root, *v;
    struct rb_world_fault *fs = NULL;
    struct rb_world_config next = *cfg;
    char *model = NULL, *journal = NULL, *faults = NULL;
    const char *key;
    long long port = cfg->port, seed = (long long)cfg->seed, turns = cfg->turns;
    long long latency = cfg->latency_ms, jitter = cfg->jitter_ms;
    size_t i, n = 0;
    enum rb_err rc = RB_OK;

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        FILE *f = fopen(path, "r");
        int e = errno;
        if (!f) {
            rc = rb__world_fail(err,
                                e == ENOENT   ? RB_ENOENT
                                : e == EACCES ? RB_EACCES
                                              : RB_EIO,
                                "cannot read config '%s': %s", path, strerror(e));
            if (err)
                rb__world_copy(err->file, sizeof(err->file), path);
            return rc;
        }
        fclose(f);
        rb__world_fail(err, RB_EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                       jerr.text);
        if (err) {
            rb__world_copy(err->file, sizeof(err->file), path);
            err->line = jerr.line;
            err->column = jerr.column;
        }
        return RB_EINVAL;
    }
    if (!json_is_object(root)) {
        rc = bad(err, path, "%s", "the top level must be a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            rc = bad(err, path,
                     "unknown key '%s' (known: port, seed, turns, latency_ms, jitter_ms, "
                     "model, journal, journal_bodies, faults)",
                     key);
            goto out;
        }
    }
    if ((rc = int_key(root, "port", 65535, &port, path, err)) != RB_OK ||
        (rc = int_key(root, "seed", INT64_MAX, &seed, path, err)) != RB_OK ||
        (rc = int_key(root, "turns", 1000, &turns, path, err)) != RB_OK ||
        (rc = int_key(root, "latency_ms", 600000, &latency, path, err)) != RB_OK ||
        (rc = int_key(root, "jitter_ms", 600000, &jitter, path, err)) != RB_OK ||
        (rc = str_key(root, "model", &model, path, err)) != RB_OK ||
        (rc = str_key(root, "journal", &journal, path, err)) != RB_OK)
        goto out;
    v = json_object_get(root, "journal_bodies");
    if (v && !json_is_boolean(v)) {
        rc = bad(err, path, "'%s' must be true or false", "journal_bodies");
        goto out;
    }
    if (v)
        next.journal_bodies = json_is_true(v);
    v = json_object_get(root, "faults");
    if (v) {
        char msg[sizeof(err->message)];
        struct rb_error ferr;
        if (!json_is_array(v)) {
            rc = bad(err, path, "'%s' must be an array of faults", "faults");
            goto out;
        }
        rb_error_init(&ferr);
        rc = rb__world_faults_parse(v, &fs, &n, &ferr);
        if (rc != RB_OK) {
            rb__world_copy(msg, sizeof(msg), ferr.message);
            rc = bad(err, path, "%s", msg);
            goto out;
        }
        faults = json_dumps(v, JSON_COMPACT);
        if (!faults) {
            rc = rb__world_fail(err, RB_ENOMEM, "out of memory");
            goto out;
        }
    }
    next.port = (uint16_t)port;
    next.seed = (uint64_t)seed;
    next.turns = (int)turns;
    next.latency_ms = (int)latency;
    next.jitter_ms = (int)jitter;
    if (model) {
        free(next.model);
        next.model = model;
        model = NULL;
    }
    if (journal) {
        free(next.journal_path);
        next.journal_path = journal;
        journal = NULL;
    }
    if (faults) {
        free(next.faults);
        next.faults = faults;
        faults = NULL;
    }
    *cfg = next;
out:
    free(fs);
    free(model);
    free(journal);
    free(faults);
    json_decref(root);
    return rc;
}
