/*
 * faults.c - the world's table of HTTP-level faults: adding them (from C or
 * JSON), deciding which one hits a call (by route prefix, time span, count
 * and seeded share), healing them, and listing them.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    NULL, "reset", "refused", "stall", "server_error", "rate_limit", "truncate", "slow",
};

#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *rb_world_fault_kind_name(enum rb_world_fault_kind kind)
{
    if ((size_t)kind >= N_KINDS)
        return NULL;
    return kind_names[kind];
}

void rb_world_fault_init(struct rb_world_fault *f, enum rb_world_fault_kind kind)
{
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->share = 1.0;
    f->status = 503;
    f->retry_after_s = 1;
    f->delay_ms = kind == RB_WORLD_FAULT_SLOW ? 100 : 0;
    f->chunk_bytes = kind == RB_WORLD_FAULT_SLOW ? 16 : 0;
}

static enum rb_err check(const struct rb_world_fault *f, struct rb_error *err)
{
    const char *name = rb_world_fault_kind_name(f->kind);

    if (!name)
        return rb__world_fail(err, RB_EINVAL, "unknown fault kind %d", (int)f->kind);
    if (f->duration_ms < 0 || f->count < 0)
        return rb__world_fail(err, RB_EINVAL,
                              "fault '%s': duration_ms and count must not be negative",
                              name);
    if (!(f->share > 0.0 && f->share <= 1.0))
        return rb__world_fail(err, RB_EINVAL, "fault '%s': share must be in (0, 1]",
                              name);
    if (f->route[0] && f->route[0] != '/')
        return rb__world_fail(
            err, RB_EINVAL, "fault '%s': route '%s' must start with '/'", name, f->route);
    if (f->kind == RB_WORLD_FAULT_REFUSED && (f->route[0] || f->count || f->share < 1.0))
        return rb__world_fail(err, RB_EINVAL,
                              "fault 'refused' stops the listener for every route: it "
                              "takes duration_ms, not route, count or share");
    if (f->kind == RB_WORLD_FAULT_SERVER_ERROR && (f->status < 500 || f->status > 599))
        return rb__world_fail(err, RB_EINVAL,
                              "fault 'server_error': status %d is not in 500..599",
                              f->status);
    if (f->retry_after_s < 0 || f->delay_ms < 0 || f->chunk_bytes < 0)
        return rb__world_fail(err, RB_EINVAL,
                              "fault '%s': retry_after_s, delay_ms and chunk_bytes must "
                              "not be negative",
                              name);
    if (f->kind == RB_WORLD_FAULT_SLOW && f->chunk_bytes == 0)
        return rb__world_fail(err, RB_EINVAL, "fault 'slow': chunk_bytes must be > 0");
    return RB_OK;
}

void rb__world_faults_release(struct rb__world_faults *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* Adds checked faults (lock held); all or nothing. */
static enum rb_err add_locked(struct rb_world *w, const struct rb_world_fault *fs,
                              size_t n, int *ids, size_t max_ids)
{
    struct rb__world_faults *t = &w->faults;
    int64_t now = rb__world_now_ns();
    size_t i;
    int refused = 0;

    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 8;
        struct rb__world_fault_slot *s;
        while (cap < t->len + n)
            cap *= 2;
        s = realloc(t->slots, cap * sizeof(*s));
        if (!s)
            return RB_ENOMEM;
        t->slots = s;
        t->cap = cap;
    }
    for (i = 0; i < n; i++) {
        struct rb__world_fault_slot *s = &t->slots[t->len++];
        memset(s, 0, sizeof(*s));
        s->id = ++t->next_id;
        s->f = fs[i];
        s->added_ns = now;
        if (ids && i < max_ids)
            ids[i] = s->id;
        refused |= fs[i].kind == RB_WORLD_FAULT_REFUSED;
    }
    rb__world_changed(w);
    if (refused)
        rb__world_sync_listener(w);
    return RB_OK;
}

enum rb_err rb_world_fault_add(struct rb_world *w, const struct rb_world_fault *f,
                               int *id, struct rb_error *err)
{
    enum rb_err rc;
    int got = 0;

    rc = check(f, err);
    if (rc != RB_OK)
        return rc;
    pthread_mutex_lock(&w->lock);
    rc = add_locked(w, f, 1, &got, 1);
    pthread_mutex_unlock(&w->lock);
    if (rc != RB_OK)
        return rb__world_fail(err, rc, "cannot add fault: out of memory");
    if (id)
        *id = got;
    return RB_OK;
}

/* ---- JSON ------------------------------------------------------------------ */

static enum rb_err get_int(const json_t *o, const char *key, int64_t min, int64_t max,
                           int64_t *out, const char *what, struct rb_error *err)
{
    const json_t *v = json_object_get(o, key);

    if (!v)
        return RB_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return rb__world_fail(err, RB_EINVAL,
                              "fault '%s': '%s' must be an integer in %lld..%lld", what,
                              key, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return RB_OK;
}

static enum rb_err parse_one(const json_t *o, struct rb_world_fault *f,
                             struct rb_error *err)
{
    static const char *const known[] = {"kind",          "route",    "duration_ms",
                                        "count",         "share",    "status",
                                        "retry_after_s", "delay_ms", "chunk_bytes"};
    const char *kind, *key;
    const json_t *v;
    int64_t x;
    size_t i;
    enum rb_err rc = RB_OK;

    if (!json_is_object(o))
        return rb__world_fail(err, RB_EINVAL, "a fault must be a JSON object");
    kind = json_string_value(json_object_get(o, "kind"));
    if (!kind)
        return rb__world_fail(err, RB_EINVAL, "fault needs 'kind' (a string)");
    for (i = 1; i < N_KINDS; i++)
        if (strcmp(kind, kind_names[i]) == 0)
            break;
    if (i == N_KINDS)
        return rb__world_fail(err, RB_EINVAL,
                              "unknown fault kind '%s' (known: reset, refused, stall, "
                              "server_error, rate_limit, truncate, slow)",
                              kind);
    rb_world_fault_init(f, (enum rb_world_fault_kind)i);

    json_object_foreach((json_t *)o, key, v)
    {
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0]))
            return rb__world_fail(err, RB_EINVAL, "fault '%s': unknown key '%s'", kind,
                                  key);
    }
    v = json_object_get(o, "route");
    if (v) {
        if (!json_is_string(v) || json_string_length(v) >= RB_WORLD_ROUTE_MAX)
            return rb__world_fail(err, RB_EINVAL,
                                  "fault '%s': 'route' must be a string of at most %d "
                                  "bytes",
                                  kind, RB_WORLD_ROUTE_MAX - 1);
        rb__world_copy(f->route, sizeof(f->route), json_string_value(v));
    }
    v = json_object_get(o, "share");
    if (v) {
        if (!json_is_number(v))
            return rb__world_fail(err, RB_EINVAL, "fault '%s': 'share' must be a number",
                                  kind);
        f->share = json_number_value(v);
    }
    x = f->duration_ms;
    rc = get_int(o, "duration_ms", 0, INT64_MAX / 1000000, &x, kind, err);
    f->duration_ms = x;
    if (rc == RB_OK) {
        x = f->count;
        rc = get_int(o, "count", 0, INT64_MAX, &x, kind, err);
        f->count = x;
    }
    if (rc == RB_OK) {
        x = f->status;
        rc = get_int(o, "status", 0, 999, &x, kind, err);
        f->status = (int)x;
    }
    if (rc == RB_OK) {
        x = f->retry_after_s;
        rc = get_int(o, "retry_after_s", 0, 86400, &x, kind, err);
        f->retry_after_s = (int)x;
    }
    if (rc == RB_OK) {
        x = f->delay_ms;
        rc = get_int(o, "delay_ms", 0, 3600000, &x, kind, err);
        f->delay_ms = (int)x;
    }
    if (rc == RB_OK) {
        x = f->chunk_bytes;
        rc = get_int(o, "chunk_bytes", 0, 1 << 24, &x, kind, err);
        f->chunk_bytes = (int)x;
    }
    if (rc == RB_OK)
        rc = check(f, err);
    return rc;
}

enum rb_err rb__world_faults_parse(const json_t *j, struct rb_world_fault **out,
                                   size_t *n, struct rb_error *err)
{
    size_t count = json_is_array(j) ? json_array_size(j) : 1, i;
    struct rb_world_fault *fs;
    enum rb_err rc = RB_OK;

    fs = calloc(count ? count : 1, sizeof(*fs));
    if (!fs)
        return rb__world_fail(err, RB_ENOMEM, "out of memory");
    for (i = 0; i < count && rc == RB_OK; i++) {
        rc = parse_one(json_is_array(j) ? json_array_get(j, i) : j, &fs[i], err);
        if (rc != RB_OK && err && json_is_array(j)) {
            char msg[sizeof(err->message)];
            rb__world_copy(msg, sizeof(msg), err->message);
            rb__world_fail(err, rc, "faults[%zu]: %s", i, msg);
        }
    }
    if (rc != RB_OK) {
        free(fs);
        return rc;
    }
    *out = fs;
    *n = count;
    return RB_OK;
}

enum rb_err rb_world_faults_add_json(struct rb_world *w, const char *json, int *ids,
                                     size_t max_ids, size_t *n_ids, struct rb_error *err)
{
    return rb__world_faults_add_json(w, json, 0, ids, max_ids, n_ids, err);
}

enum rb_err rb__world_faults_add_json(struct rb_world *w, const char *json, int remote,
                                      int *ids, size_t max_ids, size_t *n_ids,
                                      struct rb_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    struct rb_world_fault *fs = NULL;
    size_t n = 0, i;
    enum rb_err rc;

    if (!j)
        return rb__world_fail(err, RB_EINVAL, "faults: invalid JSON at line %d: %s",
                              jerr.line, jerr.text);
    rc = rb__world_faults_parse(j, &fs, &n, err);
    json_decref(j);
    if (rc != RB_OK)
        return rc;
    for (i = 0; remote && i < n; i++) {
        if (fs[i].kind == RB_WORLD_FAULT_REFUSED && !fs[i].duration_ms) {
            free(fs);
            return rb__world_fail(err, RB_EINVAL,
                                  "fault 'refused' needs 'duration_ms' when added over "
                                  "HTTP: the control endpoint cannot be reached to heal "
                                  "it while the world refuses connections");
        }
    }
    pthread_mutex_lock(&w->lock);
    rc = add_locked(w, fs, n, ids, max_ids);
    pthread_mutex_unlock(&w->lock);
    free(fs);
    if (rc != RB_OK)
        return rb__world_fail(err, rc, "cannot add faults: out of memory");
    if (n_ids)
        *n_ids = n;
    return RB_OK;
}

/* ---- deciding and healing -------------------------------------------------- */

static int alive(const struct rb__world_fault_slot *s, int64_t now)
{
    if (s->healed)
        return 0;
    if (s->f.duration_ms && now - s->added_ns >= s->f.duration_ms * 1000000)
        return 0;
    return 1;
}

void rb__world_faults_pick(struct rb_world *w, const char *route,
                           struct rb__world_hit *hit)
{
    struct rb__world_faults *t = &w->faults;
    int64_t now = rb__world_now_ns();
    size_t i;

    memset(hit, 0, sizeof(*hit));
    for (i = 0; i < t->len; i++) {
        struct rb__world_fault_slot *s = &t->slots[i];
        if (!alive(s, now) || (s->f.count && s->hits >= s->f.count))
            continue;
        if (s->f.kind != RB_WORLD_FAULT_REFUSED &&
            strncmp(route, s->f.route, strlen(s->f.route)) != 0)
            continue;
        if (s->f.share < 1.0) {
            struct rb__world_rng r;
            /* the draw depends on (seed, fault id, matching call number) only */
            rb__world_rng_seed(&r, "",
                               w->cfg.seed ^ ((uint64_t)s->id << 40) ^ (uint64_t)s->seen);
            s->seen++;
            if ((double)(rb__world_rng_next(&r) >> 11) * 0x1.0p-53 >= s->f.share)
                continue;
        } else {
            s->seen++;
        }
        s->hits++;
        hit->id = s->id;
        hit->f = s->f;
        return;
    }
}

int rb__world_faults_refused(struct rb_world *w, int64_t now, int64_t *until_ns)
{
    struct rb__world_faults *t = &w->faults;
    int64_t until = 0;
    int on = 0;
    size_t i;

    for (i = 0; i < t->len; i++) {
        const struct rb__world_fault_slot *s = &t->slots[i];
        if (s->f.kind != RB_WORLD_FAULT_REFUSED || !alive(s, now))
            continue;
        on = 1;
        if (!s->f.duration_ms) {
            until = 0;
            break;
        }
        if (s->added_ns + s->f.duration_ms * 1000000 > until)
            until = s->added_ns + s->f.duration_ms * 1000000;
    }
    *until_ns = on ? until : 0;
    return on;
}

int rb__world_fault_alive(struct rb_world *w, int id, int64_t now)
{
    size_t i;

    for (i = 0; i < w->faults.len; i++)
        if (w->faults.slots[i].id == id)
            return alive(&w->faults.slots[i], now);
    return 0;
}

enum rb_err rb_world_fault_heal(struct rb_world *w, int id)
{
    enum rb_err rc = id ? RB_ENOENT : RB_OK;
    size_t i;
    int refused = 0;

    pthread_mutex_lock(&w->lock);
    for (i = 0; i < w->faults.len; i++) {
        struct rb__world_fault_slot *s = &w->faults.slots[i];
        if (id && s->id != id)
            continue;
        if (!s->healed) {
            s->healed = 1;
            rc = RB_OK;
            refused |= s->f.kind == RB_WORLD_FAULT_REFUSED;
        }
    }
    rb__world_changed(w);
    if (refused)
        rb__world_sync_listener(w);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int64_t rb_world_fault_hits(struct rb_world *w, int id)
{
    int64_t hits = -1;
    size_t i;

    pthread_mutex_lock(&w->lock);
    for (i = 0; i < w->faults.len; i++)
        if (w->faults.slots[i].id == id)
            hits = w->faults.slots[i].hits;
    pthread_mutex_unlock(&w->lock);
    return hits;
}

json_t *rb__world_faults_json(struct rb_world *w)
{
    json_t *arr = json_array();
    int64_t now = rb__world_now_ns();
    size_t i;

    for (i = 0; arr && i < w->faults.len; i++) {
        const struct rb__world_fault_slot *s = &w->faults.slots[i];
        const struct rb_world_fault *f = &s->f;
        json_t *o = json_pack(
            "{s:i, s:s, s:s, s:I, s:I, s:f, s:i, s:i, s:i, s:i, s:I, s:b}", "id", s->id,
            "kind", rb_world_fault_kind_name(f->kind), "route", f->route, "duration_ms",
            (json_int_t)f->duration_ms, "count", (json_int_t)f->count, "share", f->share,
            "status", f->status, "retry_after_s", f->retry_after_s, "delay_ms",
            f->delay_ms, "chunk_bytes", f->chunk_bytes, "hits", (json_int_t)s->hits,
            "active", alive(s, now) && !(f->count && s->hits >= f->count));
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
