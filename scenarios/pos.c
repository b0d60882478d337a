/*
 * pos.c - the position index of a JSON text: one pass over text jansson has
 * already accepted, recording where each value and each object key starts,
 * by JSON path. jansson reports positions only for syntax errors; this is how
 * the validator reports `file:line:col` for a value it rejects.
 */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048 /* jansson's own nesting limit */

struct scan {
    const char *s;
    size_t len, i;
    int line, col;
    char path[RB__PATH_MAX];
    size_t plen;
    int truncated; /* the path did not fit: nothing deeper is recorded */
    struct rb__pos_index *idx;
    int nomem;
};

static int peek(const struct scan *sc)
{
    return sc->i < sc->len ? (unsigned char)sc->s[sc->i] : -1;
}

static void advance(struct scan *sc)
{
    unsigned char c;

    if (sc->i >= sc->len)
        return;
    c = (unsigned char)sc->s[sc->i++];
    if (c == '\n') {
        sc->line++;
        sc->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        sc->col++;
    }
}

static void skip_ws(struct scan *sc)
{
    int c = peek(sc);

    /* jansson drops a NUL byte that follows a token: skip it as it does */
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0') {
        advance(sc);
        c = peek(sc);
    }
}

static void record(struct scan *sc, int line, int col, int key_line, int key_col)
{
    struct rb__pos *p;

    if (sc->truncated || sc->nomem)
        return;
    if (sc->idx->count == sc->idx->cap) {
        size_t cap = sc->idx->cap ? sc->idx->cap * 2 : 32;
        struct rb__pos *items = realloc(sc->idx->items, cap * sizeof(*items));

        if (!items) {
            sc->nomem = 1;
            return;
        }
        sc->idx->items = items;
        sc->idx->cap = cap;
    }
    p = &sc->idx->items[sc->idx->count];
    p->path = malloc(sc->plen + 1);
    if (!p->path) {
        sc->nomem = 1;
        return;
    }
    memcpy(p->path, sc->path, sc->plen);
    p->path[sc->plen] = '\0';
    p->line = line;
    p->col = col;
    p->key_line = key_line;
    p->key_col = key_col;
    sc->idx->count++;
}

static void put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static uint32_t hex4(struct scan *sc)
{
    uint32_t v = 0;
    int k, c;

    for (k = 0; k < 4; k++) {
        c = peek(sc);
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        advance(sc);
    }
    return v;
}

/* Scans a string at the opening quote; with `out` (room for the raw length
 * plus one), decodes it there. */
static void scan_string(struct scan *sc, char *out)
{
    size_t n = 0;
    int c;

    advance(sc); /* the quote */
    for (;;) {
        c = peek(sc);
        if (c < 0 || c == '"')
            break;
        if (c != '\\') {
            if (out)
                out[n++] = (char)c;
            advance(sc);
            continue;
        }
        advance(sc);
        c = peek(sc);
        advance(sc);
        if (c == 'u') {
            uint32_t cp = hex4(sc);

            if (cp >= 0xD800 && cp < 0xDC00 && peek(sc) == '\\') {
                advance(sc);
                advance(sc); /* 'u' */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(sc) - 0xDC00);
            }
            if (out)
                put_utf8(out, &n, cp);
        } else if (out) {
            out[n++] = c == 'b'   ? '\b'
                       : c == 'f' ? '\f'
                       : c == 'n' ? '\n'
                       : c == 'r' ? '\r'
                       : c == 't' ? '\t'
                                  : (char)c;
        }
    }
    advance(sc); /* the closing quote */
    if (out)
        out[n] = '\0';
}

static size_t raw_string_len(const struct scan *sc)
{
    size_t j = sc->i + 1;

    while (j < sc->len && sc->s[j] != '"')
        j += sc->s[j] == '\\' ? 2 : 1;
    return j - sc->i;
}

static void scan_value(struct scan *sc, int key_line, int key_col, int depth);

static void scan_members(struct scan *sc, int depth, int is_object)
{
    size_t saved = sc->plen;
    int saved_trunc = sc->truncated;
    size_t index = 0;

    advance(sc); /* '{' or '[' */
    skip_ws(sc);
    while (peek(sc) >= 0 && peek(sc) != (is_object ? '}' : ']') && !sc->nomem) {
        int kl = sc->line, kc = sc->col;
        size_t start = sc->i;

        if (is_object) {
            char *key = malloc(raw_string_len(sc) + 1);

            if (!key) {
                sc->nomem = 1;
                return;
            }
            scan_string(sc, key);
            if (rb__path_push(sc->path, sizeof(sc->path), &sc->plen, key) < 0)
                sc->truncated = 1;
            free(key);
            skip_ws(sc);
            advance(sc); /* ':' */
            skip_ws(sc);
        } else {
            char num[24];
            size_t k = 0;
            size_t v = index;

            do {
                num[k++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            num[k] = '\0';
            for (v = 0; v < k / 2; v++) {
                char t = num[v];

                num[v] = num[k - 1 - v];
                num[k - 1 - v] = t;
            }
            if (rb__path_push(sc->path, sizeof(sc->path), &sc->plen, num) < 0)
                sc->truncated = 1;
        }
        scan_value(sc, kl, kc, depth + 1);
        sc->plen = saved;
        sc->path[saved] = '\0';
        sc->truncated = saved_trunc;
        index++;
        skip_ws(sc);
        if (peek(sc) == ',') {
            advance(sc);
            skip_ws(sc);
        }
        if (sc->i == start) /* text jansson did not mean: stop, never spin */
            break;
    }
    advance(sc); /* '}' or ']' */
}

static void scan_value(struct scan *sc, int key_line, int key_col, int depth)
{
    int line, col, c;

    skip_ws(sc);
    line = sc->line;
    col = sc->col;
    record(sc, line, col, key_line ? key_line : line, key_line ? key_col : col);
    c = peek(sc);
    if (depth > MAX_DEPTH)
        return;
    if (c == '{' || c == '[') {
        scan_members(sc, depth, c == '{');
    } else if (c == '"') {
        scan_string(sc, NULL);
    } else {
        /* number, true, false, null */
        while (peek(sc) > 0 && strchr(" \t\r\n,]}", peek(sc)) == NULL)
            advance(sc);
    }
}

enum rb_err rb__pos_index_build(const char *text, size_t len, struct rb__pos_index *idx)
{
    struct scan sc;

    memset(&sc, 0, sizeof(sc));
    sc.s = text;
    sc.len = len;
    sc.line = 1;
    sc.col = 1;
    sc.idx = idx;
    idx->items = NULL;
    idx->count = idx->cap = 0;
    scan_value(&sc, 0, 0, 0);
    if (sc.nomem) {
        rb__pos_index_release(idx);
        return RB_ENOMEM;
    }
    return RB_OK;
}

const struct rb__pos *rb__pos_find(const struct rb__pos_index *idx, const char *path)
{
    size_t plen = strlen(path);
    size_t i;

    for (;;) {
        for (i = 0; i < idx->count; i++)
            if (strlen(idx->items[i].path) == plen &&
                memcmp(idx->items[i].path, path, plen) == 0)
                return &idx->items[i];
        if (plen == 0)
            return NULL;
        while (plen > 0 && path[plen - 1] != '/')
            plen--;
        if (plen > 0)
            plen--; /* the '/' itself */
    }
}

void rb__pos_index_release(struct rb__pos_index *idx)
{
    size_t i;

    for (i = 0; i < idx->count; i++)
        free(idx->items[i].path);
    free(idx->items);
    idx->items = NULL;
    idx->count = idx->cap = 0;
}

int rb__path_push(char *buf, size_t size, size_t *len, const char *key)
{
    size_t n = *len;
    const char *k;

    if (n + 1 >= size)
        return -1;
    buf[n++] = '/';
    for (k = key; *k; k++) {
        if (n + 3 >= size) {
            buf[*len] = '\0';
            return -1;
        }
        if (*k == '~' || *k == '/') {
            buf[n++] = '~';
            buf[n++] = *k == '~' ? '0' : '1';
        } else {
            buf[n++] = *k;
        }
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}
