/*
 * util.c - the runner's small shared pieces: byte buffers, clocks, JSON
 * string escaping, name checks and SHA-256 (through OpenSSL's libcrypto,
 * which uses the CPU's SHA instructions where present).
 */
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rb_buf_init(struct rb_buf *buf)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void rb_buf_release(struct rb_buf *buf)
{
    free(buf->data);
    rb_buf_init(buf);
}

static enum rb_err buf_reserve(struct rb_buf *buf, size_t extra)
{
    size_t need, cap;
    unsigned char *p;

    if (extra > SIZE_MAX - buf->len - 1)
        return RB_ENOMEM;
    need = buf->len + extra + 1;
    if (need <= buf->cap)
        return RB_OK;
    cap = buf->cap ? buf->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(buf->data, cap);
    if (!p)
        return RB_ENOMEM;
    buf->data = p;
    buf->cap = cap;
    return RB_OK;
}

enum rb_err rb_buf_append(struct rb_buf *buf, const void *data, size_t len)
{
    if (buf_reserve(buf, len) != RB_OK)
        return RB_ENOMEM;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return RB_OK;
}

enum rb_err rb_buf_vprintf(struct rb_buf *buf, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    va_copy(again, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0 || buf_reserve(buf, (size_t)n) != RB_OK) {
        va_end(again);
        return n < 0 ? RB_EINVAL : RB_ENOMEM;
    }
    vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, again);
    va_end(again);
    buf->len += (size_t)n;
    return RB_OK;
}

enum rb_err rb_buf_printf(struct rb_buf *buf, const char *fmt, ...)
{
    va_list ap;
    enum rb_err rc;

    va_start(ap, fmt);
    rc = rb_buf_vprintf(buf, fmt, ap);
    va_end(ap);
    return rc;
}

enum rb_err rb__json_str(struct rb_buf *buf, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p;
    enum rb_err rc = rb_buf_append(buf, "\"", 1);

    for (p = (const unsigned char *)s; rc == RB_OK && *p; p++) {
        char esc[7] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15], 0};

        if (*p == '"' || *p == '\\') {
            esc[1] = (char)*p;
            rc = rb_buf_append(buf, esc, 2);
        } else if (*p == '\n') {
            rc = rb_buf_append(buf, "\\n", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            rc = rb_buf_append(buf, esc, 6);
        } else {
            rc = rb_buf_append(buf, p, 1);
        }
    }
    if (rc == RB_OK)
        rc = rb_buf_append(buf, "\"", 1);
    return rc;
}

char *rb__strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int64_t rb__mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rb__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SHA-256, fetched from the default provider once: with EVP_sha256(), every
 * EVP_Digest() call looks the implementation up again, under locks. NULL if
 * the fetch fails (EVP_sha256() is used then). Never freed. */
static const EVP_MD *sha256_md(void)
{
    static _Atomic(EVP_MD *) cached;
    EVP_MD *md = atomic_load(&cached), *none = NULL;

    if (md)
        return md;
    md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (md && !atomic_compare_exchange_strong(&cached, &none, md)) {
        EVP_MD_free(md); /* another thread was first */
        md = none;
    }
    return md;
}

void rb_hash_hex(const void *data, size_t len, char hex[RB_HASH_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    const EVP_MD *type = sha256_md();
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int mdlen = 0;
    size_t i;

    EVP_Digest(data, len, md, &mdlen, type ? type : EVP_sha256(), NULL);
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[RB_HASH_HEX_LEN] = '\0';
}

/* Length of the UTF-8 sequence starting at p, or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n, i;
    unsigned int cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

enum rb_err rb_name_check(const char *what, const char *name, struct rb_error *err)
{
    const unsigned char *p;
    size_t len, n;

    if (!what)
        what = "name";
    if (!name || !*name)
        return rb__fail(err, RB_ENAME, "%s is empty", what);
    len = strlen(name);
    if (len > RB_NAME_MAX)
        return rb__fail(err, RB_ENAME, "%s is %zu bytes long; the limit is %d", what, len,
                        RB_NAME_MAX);
    for (p = (const unsigned char *)name; *p; p += n) {
        if (*p < 0x20 || *p == 0x7f)
            return rb__fail(err, RB_ENAME,
                            "%s holds a control character (byte 0x%02x at offset %zu)",
                            what, *p, (size_t)(p - (const unsigned char *)name));
        n = utf8_len(p);
        if (!n)
            return rb__fail(err, RB_ENAME, "%s is not valid UTF-8 (at offset %zu)", what,
                            (size_t)(p - (const unsigned char *)name));
        if (p[0] == 0xc2 && p[1] < 0xa0) /* U+0080..U+009F: the C1 controls */
            return rb__fail(err, RB_ENAME,
                            "%s holds a control character (U+%04X at offset %zu)", what,
                            (unsigned)p[1], (size_t)(p - (const unsigned char *)name));
    }
    return RB_OK;
}

void rb_utf8_trim(char *s)
{
    size_t n = strlen(s), i = n, need;
    unsigned char c;

    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && n - i < 3)
        i--;
    if (i == 0)
        return;
    c = (unsigned char)s[i - 1];
    if (c < 0x80)
        return;
    need = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need != n - i + 1)
        s[i - 1] = '\0'; /* incomplete: drop the partial character */
}
