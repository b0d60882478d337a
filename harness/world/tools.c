/*
 * tools.c - the world's tools at POST /tools/<name>: read-only `search` and
 * `fetch`, answering as a pure function of (seed, arguments), and
 * side-effecting `send_email` and `write_record`, which record each effect,
 * honour an Idempotency-Key (a repeated key is answered with the first
 * answer and applies nothing), and let the scorer count what happened twice.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct tool {
    const char *name;
    int effect;        /* 1: side-effecting */
    const char *need;  /* required string argument */
    const char *need2; /* a second required argument (any type), or NULL */
};

static const struct tool tools[] = {
    {"search", 0, "query", NULL},
    {"fetch", 0, "url", NULL},
    {"send_email", 1, "to", NULL},
    {"write_record", 1, "key", "value"},
};

#define N_TOOLS (sizeof(tools) / sizeof(tools[0]))

static enum rb_err bad(struct rb__world_reply *rep, int status, const char *msg,
                       const char *code)
{
    return rb__world_reply_error(rep, status, msg, "invalid_request_error", NULL, code);
}

static json_t *words_json(struct rb__world_rng *r, int min, int spread)
{
    struct rb_buf b;
    json_t *s = NULL;

    rb_buf_init(&b);
    if (rb__world_words(r, min + (int)rb__world_rng_below(r, (uint64_t)spread), &b) ==
        RB_OK)
        s = json_stringn((const char *)b.data, b.len);
    rb_buf_release(&b);
    return s;
}

static json_t *answer_search(const json_t *args, struct rb__world_rng *r)
{
    json_t *results = json_array();
    int i;

    for (i = 0; results && i < 3; i++) {
        char url[96];
        json_t *item;
        snprintf(url, sizeof(url), "https://example.test/doc/%llu",
                 (unsigned long long)rb__world_rng_below(r, 1000000));
        item = json_pack("{s:o, s:s, s:o}", "title", words_json(r, 3, 4), "url", url,
                         "snippet", words_json(r, 12, 9));
        if (!item || json_array_append_new(results, item) != 0) {
            json_decref(results);
            return NULL;
        }
    }
    return json_pack("{s:O, s:o}", "query", json_object_get(args, "query"), "results",
                     results);
}

static json_t *answer_fetch(const json_t *args, struct rb__world_rng *r)
{
    return json_pack("{s:O, s:i, s:o, s:o}", "url", json_object_get(args, "url"),
                     "status", 200, "title", words_json(r, 3, 4), "content",
                     words_json(r, 40, 41));
}

/* Applies a side effect and builds its answer (lock held). */
static json_t *apply(struct rb_world *w, size_t t, const json_t *args, const char *key,
                     const char *idem_key, uint64_t seq, const char *args_hash)
{
    struct rb__world_effects_log *e = &w->effects;
    struct rb__world_effect *ef;
    char map_key[RB_WORLD_TOOL_MAX + RB_HASH_HEX_LEN + 2], id[40];
    size_t first, version = 0;

    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        struct rb__world_effect *p = realloc(e->list, cap * sizeof(*p));
        if (!p)
            return NULL;
        e->list = p;
        e->cap = cap;
    }
    snprintf(map_key, sizeof(map_key), "%s %s", tools[t].name, args_hash);
    if (!rb__world_map_get(&e->by_args, map_key, &first)) {
        first = e->len;
        if (rb__world_map_put(&e->by_args, map_key, first) != RB_OK)
            return NULL;
    }
    if (strcmp(tools[t].name, "write_record") == 0) {
        const char *rk = json_string_value(json_object_get(args, "key"));
        if (!rb__world_map_get(&e->records, rk, &version))
            version = 0;
        version++;
        if (rb__world_map_put(&e->records, rk, version) != RB_OK)
            return NULL;
    }
    ef = &e->list[e->len];
    memset(ef, 0, sizeof(*ef));
    rb__world_copy(ef->tool, sizeof(ef->tool), tools[t].name);
    memcpy(ef->args_hash, args_hash, sizeof(ef->args_hash));
    ef->idem_key = idem_key ? strdup(idem_key) : NULL;
    ef->seq = seq;
    ef->t_ns = rb__world_now_ns();
    ef->first = first;
    e->len++;
    if (version) {
        snprintf(id, sizeof(id), "rec_%.20s", key);
        return json_pack("{s:s, s:O, s:I, s:b}", "id", id, "key",
                         json_object_get(args, "key"), "version", (json_int_t)version,
                         "written", 1);
    }
    snprintf(id, sizeof(id), "msg_%.20s", key);
    return json_pack("{s:s, s:s, s:O}", "id", id, "status", "sent", "to",
                     json_object_get(args, "to"));
}

/* Keeps a copy of rep for an Idempotency-Key (lock held). */
static enum rb_err remember(struct rb_world *w, size_t t, const char *map_key,
                            const struct rb__world_reply *rep)
{
    struct rb__world_effects_log *e = &w->effects;
    struct rb__world_kept *k;

    if (e->n_kept == e->cap_kept) {
        size_t cap = e->cap_kept ? e->cap_kept * 2 : 16;
        struct rb__world_kept *p = realloc(e->kept, cap * sizeof(*p));
        if (!p)
            return RB_ENOMEM;
        e->kept = p;
        e->cap_kept = cap;
    }
    k = &e->kept[e->n_kept];
    memset(k, 0, sizeof(*k));
    rb_buf_init(&k->body);
    rb__world_copy(k->tool, sizeof(k->tool), tools[t].name);
    k->status = rep->status;
    if (rb_buf_append(&k->body, rep->body.data, rep->body.len) != RB_OK)
        return RB_ENOMEM;
    if (rb__world_map_put(&e->idem, map_key, e->n_kept) != RB_OK) {
        rb_buf_release(&k->body);
        return RB_ENOMEM;
    }
    e->n_kept++;
    return RB_OK;
}

static enum rb_err side_effect(struct rb_world *w, size_t t, const json_t *args,
                               const char *key, const char *idem_key, uint64_t seq,
                               struct rb__world_reply *rep)
{
    struct rb__world_effects_log *e = &w->effects;
    char map_key[RB_WORLD_TOOL_MAX + 1024];
    json_t *ans = NULL;
    size_t idx;
    enum rb_err rc = RB_ENOMEM;

    if (idem_key && strlen(idem_key) > 512)
        return bad(rep, 400, "the Idempotency-Key header is longer than 512 bytes",
                   "idempotency_key_too_long");
    pthread_mutex_lock(&w->lock);
    if (idem_key) {
        snprintf(map_key, sizeof(map_key), "%s\n%s", tools[t].name, idem_key);
        if (rb__world_map_get(&e->idem, map_key, &idx)) {
            rep->body.len = 0;
            rc = rb_buf_append(&rep->body, e->kept[idx].body.data, e->kept[idx].body.len);
            rep->status = e->kept[idx].status;
            rep->content_type = "application/json";
            rep->replayed = 1;
            e->kept[idx].replays++;
            goto out;
        }
    }
    ans = apply(w, t, args, key, idem_key, seq, rep->hash);
    if (!ans)
        goto out;
    rc = rb__world_reply_json(rep, 200, ans);
    if (rc != RB_OK)
        goto out;
    rep->effect = 1;
    if (idem_key)
        rc = remember(w, t, map_key, rep);
out:
    pthread_mutex_unlock(&w->lock);
    json_decref(ans);
    return rc;
}

enum rb_err rb__world_tool(struct rb_world *w, const char *name,
                           const struct rb_buf *body, const char *idem_key, int dry,
                           uint64_t seq, struct rb__world_reply *rep)
{
    json_error_t jerr;
    json_t *args = NULL, *ans = NULL;
    struct rb_buf keybuf;
    char key[RB_HASH_HEX_LEN + 1], msg[300];
    struct rb__world_rng r;
    const json_t *need2 = NULL;
    size_t t;
    enum rb_err rc = RB_OK;

    rb_buf_init(&keybuf);
    rb__world_copy(rep->tool, sizeof(rep->tool), name);
    for (t = 0; t < N_TOOLS; t++)
        if (strcmp(name, tools[t].name) == 0)
            break;
    if (t == N_TOOLS) {
        snprintf(msg, sizeof(msg),
                 "unknown tool '%.100s' (known: search, fetch, send_email, write_record)",
                 name);
        return bad(rep, 404, msg, "unknown_tool");
    }
    if (body->len == 0)
        args = json_object();
    else
        args = json_loadb((const char *)body->data, body->len, JSON_REJECT_DUPLICATES,
                          &jerr);
    if (!args) {
        snprintf(msg, sizeof(msg),
                 "tool '%s': the body is not valid JSON: %s (line %d, column %d)", name,
                 jerr.text, jerr.line, jerr.column);
        return bad(rep, 400, msg, NULL);
    }
    if (!json_is_object(args)) {
        snprintf(msg, sizeof(msg), "tool '%s': the body must be a JSON object", name);
        rc = bad(rep, 400, msg, NULL);
        goto out;
    }
    rc = rb__world_hash_json(args, rep->hash);
    if (rc != RB_OK)
        goto out;
    if (tools[t].need2)
        need2 = json_object_get(args, tools[t].need2);
    if (!json_is_string(json_object_get(args, tools[t].need)) ||
        (tools[t].need2 && !need2)) {
        snprintf(msg, sizeof(msg), "tool '%s' needs '%s' (a string)%s%s%s", name,
                 tools[t].need, tools[t].need2 ? " and '" : "",
                 tools[t].need2 ? tools[t].need2 : "", tools[t].need2 ? "'" : "");
        rc = bad(rep, 400, msg, NULL);
        goto out;
    }
    if (dry)
        goto out;
    if (rb__world_printf(&keybuf, "rebound-world/1 seed=%llu tool=%s\n",
                         (unsigned long long)w->cfg.seed, name) != RB_OK) {
        rc = RB_ENOMEM;
        goto out;
    }
    {
        char *canon = rb__world_canonical(args);
        if (!canon || rb_buf_append(&keybuf, canon, strlen(canon)) != RB_OK) {
            free(canon);
            rc = RB_ENOMEM;
            goto out;
        }
        free(canon);
    }
    rb_hash_hex(keybuf.data, keybuf.len, key);
    if (tools[t].effect) {
        rc = side_effect(w, t, args, key, idem_key, seq, rep);
        goto out;
    }
    rb__world_rng_seed(&r, key, 3);
    ans = t == 0 ? answer_search(args, &r) : answer_fetch(args, &r);
    rc = ans ? rb__world_reply_json(rep, 200, ans) : RB_ENOMEM;
out:
    json_decref(ans);
    json_decref(args);
    rb_buf_release(&keybuf);
    return rc;
}

/* ---- counting ---------------------------------------------------------------- */

void rb__world_effects_release(struct rb__world_effects_log *e)
{
    size_t i;

    for (i = 0; i < e->len; i++)
        free(e->list[i].idem_key);
    for (i = 0; i < e->n_kept; i++)
        rb_buf_release(&e->kept[i].body);
    free(e->list);
    free(e->kept);
    rb__world_map_release(&e->by_args);
    rb__world_map_release(&e->idem);
    rb__world_map_release(&e->records);
    memset(e, 0, sizeof(*e));
}

/* Counts for one tool or all (lock held). */
static void count(struct rb_world *w, const char *tool, struct rb_world_effects *out)
{
    const struct rb__world_effects_log *e = &w->effects;
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < e->len; i++) {
        if (tool && strcmp(e->list[i].tool, tool) != 0)
            continue;
        out->applied++;
        if (e->list[i].first != i)
            out->duplicated++;
    }
    for (i = 0; i < e->n_kept; i++)
        if (!tool || strcmp(e->kept[i].tool, tool) == 0)
            out->replayed += e->kept[i].replays;
}

void rb_world_effects(struct rb_world *w, const char *tool, struct rb_world_effects *out)
{
    pthread_mutex_lock(&w->lock);
    count(w, tool, out);
    pthread_mutex_unlock(&w->lock);
}

json_t *rb__world_effects_json(struct rb_world *w)
{
    const struct rb__world_effects_log *e = &w->effects;
    json_t *list = json_array(), *by = json_object(), *o;
    struct rb_world_effects c;
    size_t i;

    if (!list || !by)
        goto fail;
    for (i = 0; i < N_TOOLS; i++) {
        if (!tools[i].effect)
            continue;
        count(w, tools[i].name, &c);
        o = json_pack("{s:I, s:I, s:I}", "applied", (json_int_t)c.applied, "replayed",
                      (json_int_t)c.replayed, "duplicated", (json_int_t)c.duplicated);
        if (!o || json_object_set_new(by, tools[i].name, o) != 0)
            goto fail;
    }
    for (i = 0; i < e->len; i++) {
        const struct rb__world_effect *ef = &e->list[i];
        o = json_pack("{s:I, s:s, s:s, s:s?, s:I, s:b, s:I}", "seq", (json_int_t)ef->seq,
                      "tool", ef->tool, "args_hash", ef->args_hash, "idempotency_key",
                      ef->idem_key, "t_ns", (json_int_t)ef->t_ns, "duplicate",
                      ef->first != i, "first_seq", (json_int_t)e->list[ef->first].seq);
        if (!o || json_array_append_new(list, o) != 0)
            goto fail;
    }
    count(w, NULL, &c);
    return json_pack("{s:I, s:I, s:I, s:o, s:o}", "applied", (json_int_t)c.applied,
                     "replayed", (json_int_t)c.replayed, "duplicated",
                     (json_int_t)c.duplicated, "by_tool", by, "effects", list);
fail:
    json_decref(list);
    json_decref(by);
    return NULL;
}
