/*
 * det.c - the world's small shared pieces: errors, the monotonic clock,
 * canonical JSON and its hash, the seeded generator that makes answers a pure
 * function of (seed, request), the word list answers are made of, the
 * OpenAI error body, replies, and a string map.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t rb__world_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

enum rb_err rb__world_lit(struct rb_buf *buf, const char *s)
{
    return rb_buf_append(buf, s, strlen(s));
}

void rb__world_copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Appends s[0..len) escaped as jansson does, without quotes. */
static enum rb_err escape(struct rb_buf *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, start = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (rb_buf_append(buf, s + start, i - start) != RB_OK)
            return RB_ENOMEM;
        start = i + 1;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        if (rb_buf_append(buf, esc, n) != RB_OK)
            return RB_ENOMEM;
    }
    return rb_buf_append(buf, s + start, len - start);
}

enum rb_err rb__world_json_str(struct rb_buf *buf, const char *s, size_t len)
{
    if (rb_buf_append(buf, "\"", 1) != RB_OK || escape(buf, s, len) != RB_OK ||
        rb_buf_append(buf, "\"", 1) != RB_OK)
        return RB_ENOMEM;
    return RB_OK;
}

/* Length of the valid UTF-8 character at s[0..len) (len > 0, s[0] >= 0x80),
 * or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    size_t n, i;

    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (n > len)
        return 0;
    for (i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return n;
}

enum rb_err rb__world_json_text(struct rb_buf *buf, const void *data, size_t len)
{
    const char *s = data;
    size_t i = 0, start = 0, n;

    if (!len) /* data may be NULL */
        return rb__world_lit(buf, "\"\"");
    if (rb_buf_append(buf, "\"", 1) != RB_OK)
        return RB_ENOMEM;
    while (i < len) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_len((const unsigned char *)s + i, len - i);
        if (n) {
            i += n;
            continue;
        }
        if (escape(buf, s + start, i - start) != RB_OK ||
            rb_buf_append(buf, "\\ufffd", 6) != RB_OK)
            return RB_ENOMEM;
        start = ++i;
    }
    if (escape(buf, s + start, len - start) != RB_OK ||
        rb_buf_append(buf, "\"", 1) != RB_OK)
        return RB_ENOMEM;
    return RB_OK;
}

char *rb__world_canonical(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

enum rb_err rb__world_hash_json(const json_t *j, char hex[RB_HASH_HEX_LEN + 1])
{
    char *s = rb__world_canonical(j);

    if (!s)
        return RB_ENOMEM;
    rb_hash_hex(s, strlen(s), hex);
    free(s);
    return RB_OK;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rb__world_rng_seed(struct rb__world_rng *r, const char *hex, uint64_t salt)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 16 && hex[i]; i++) {
        char c = hex[i];
        v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    r->state = mix64(v ^ mix64(salt + 0x9e3779b97f4a7c15ULL));
}

uint64_t rb__world_rng_next(struct rb__world_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return mix64(r->state);
}

uint64_t rb__world_rng_below(struct rb__world_rng *r, uint64_t n)
{
    return rb__world_rng_next(r) % n;
}

static const char *const words[] = {
    "the",     "agent",   "found",   "three",   "sources", "that",    "agree",  "on",
    "a",       "stable",  "answer",  "while",   "one",     "record",  "shows",  "drift",
    "in",      "its",     "summary", "after",   "review",  "we",      "keep",   "context",
    "of",      "each",    "step",    "and",     "retry",   "only",    "what",   "failed",
    "ledger",  "river",   "copper",  "harbor",  "signal",  "lantern", "orbit",  "meadow",
    "quartz",  "summit",  "thread",  "beacon",  "canyon",  "delta",   "ember",  "falcon",
    "glacier", "horizon", "island",  "juniper", "kernel",  "lattice", "mosaic", "nectar",
    "outpost", "prairie", "quiver",  "relay",   "saddle",  "timber",  "upland", "vertex",
    "willow",  "yonder",  "zephyr",  "report",  "budget",  "latency",
};

enum rb_err rb__world_words(struct rb__world_rng *r, int n, struct rb_buf *out)
{
    int i;

    for (i = 0; i < n; i++) {
        const char *wd = words[rb__world_rng_below(r, sizeof(words) / sizeof(words[0]))];
        if (i && rb_buf_append(out, " ", 1) != RB_OK)
            return RB_ENOMEM;
        if (rb_buf_append(out, wd, strlen(wd)) != RB_OK)
            return RB_ENOMEM;
    }
    return RB_OK;
}

void rb__world_reply_init(struct rb__world_reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    rb_buf_init(&rep->body);
    rep->content_type = "application/json";
    rep->retry_after_s = -1;
}

void rb__world_reply_release(struct rb__world_reply *rep)
{
    rb_buf_release(&rep->body);
}

enum rb_err rb__world_reply_json(struct rb__world_reply *rep, int status, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    enum rb_err rc;

    if (!s)
        return RB_ENOMEM;
    rep->body.len = 0;
    rc = rb_buf_append(&rep->body, s, strlen(s));
    free(s);
    if (rc == RB_OK && rb_buf_append(&rep->body, "\n", 1) != RB_OK)
        rc = RB_ENOMEM;
    if (rc != RB_OK)
        return rc;
    rep->status = status;
    rep->content_type = "application/json";
    rep->sse = 0;
    return RB_OK;
}

/* Appends `s` as a JSON string (made valid UTF-8), or null. */
static enum rb_err str_or_null(struct rb_buf *buf, const char *s)
{
    return s ? rb__world_json_text(buf, s, strlen(s)) : rb_buf_append(buf, "null", 4);
}

enum rb_err rb__world_reply_error(struct rb__world_reply *rep, int status,
                                  const char *message, const char *type,
                                  const char *param, const char *code)
{
    struct rb_buf b;
    enum rb_err rc;

    /* written directly: a message quoting a broken request may hold bytes
     * that are not UTF-8 */
    rb_buf_init(&b);
    rc = rb__world_lit(&b, "{\"error\":{\"message\":");
    if (rc == RB_OK)
        rc = rb__world_json_text(&b, message, strlen(message));
    if (rc == RB_OK)
        rc = rb__world_lit(&b, ",\"type\":");
    if (rc == RB_OK)
        rc = str_or_null(&b, type);
    if (rc == RB_OK)
        rc = rb__world_lit(&b, ",\"param\":");
    if (rc == RB_OK)
        rc = str_or_null(&b, param);
    if (rc == RB_OK)
        rc = rb__world_lit(&b, ",\"code\":");
    if (rc == RB_OK)
        rc = str_or_null(&b, code);
    if (rc == RB_OK)
        rc = rb__world_lit(&b, "}}\n");
    if (rc != RB_OK) {
        rb_buf_release(&b);
        return rc;
    }
    rb_buf_release(&rep->body);
    rep->body = b;
    rep->status = status;
    rep->content_type = "application/json";
    rep->sse = 0;
    return RB_OK;
}

/* ---- string map ---------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void rb__world_map_init(struct rb__world_map *m)
{
    memset(m, 0, sizeof(*m));
}

void rb__world_map_release(struct rb__world_map *m)
{
    size_t i;

    for (i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    rb__world_map_init(m);
}

static size_t find_slot(char **keys, size_t cap, const char *key)
{
    size_t i = (size_t)hash_str(key) & (cap - 1);

    while (keys[i] && strcmp(keys[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

int rb__world_map_get(const struct rb__world_map *m, const char *key, size_t *val)
{
    size_t i;

    if (!m->cap)
        return 0;
    i = find_slot(m->keys, m->cap, key);
    if (!m->keys[i])
        return 0;
    *val = m->vals[i];
    return 1;
}

static enum rb_err grow(struct rb__world_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64, i;
    char **keys = calloc(cap, sizeof(*keys));
    size_t *vals = calloc(cap, sizeof(*vals));

    if (!keys || !vals) {
        free(keys);
        free(vals);
        return RB_ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = find_slot(keys, cap, m->keys[i]);
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return RB_OK;
}

enum rb_err rb__world_map_put(struct rb__world_map *m, const char *key, size_t val)
{
    size_t i;
    char *copy;

    if ((m->len + 1) * 2 > m->cap && grow(m) != RB_OK)
        return RB_ENOMEM;
    i = find_slot(m->keys, m->cap, key);
    if (m->keys[i]) {
        m->vals[i] = val;
        return RB_OK;
    }
    copy = strdup(key);
    if (!copy)
        return RB_ENOMEM;
    m->keys[i] = copy;
    m->vals[i] = val;
    m->len++;
    return RB_OK;
}
