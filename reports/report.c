/*
 * report.c - the entry points of rb_reports (loading and checking a results
 * document, writing one report or all of them through temporary files) and
 * the helpers the writers share: errors, escaping and number formatting.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------ */

enum rb_err rb__rp_errno_code(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return RB_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS:
        return RB_EACCES;
    case ENOMEM:
        return RB_ENOMEM;
    case ENOSPC:
        return RB_ENOSPC;
    default:
        return RB_EIO;
    }
}

/* ---- text -------------------------------------------------------------- */

/* The length of the valid UTF-8 character at p (1-4), or 0 when p does not
 * start one (a stray continuation byte, a bad lead byte, an overlong form, a
 * surrogate, past U+10FFFF, or a character cut short). */
static size_t utf8_len(const unsigned char *p)
{
    size_t n, i;
    unsigned long cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int rb__bidi_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    /* U+202A-202E and U+2066-2069: E2 80 AA-AE, E2 81 A6-A9 */
    if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae)
        return 3;
    if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)
        return 3;
    return 0;
}

const char *rb__md_defuse(const char *s, size_t *len)
{
    if (rb__bidi_len(s)) {
        *len = 3;
        return "";
    }
    if ((unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbf &&
        (unsigned char)s[2] >= 0xbe) {
        *len = 3;
        return "\xef\xbf\xbd"; /* U+FFFE, U+FFFF: not characters */
    }
    if (s[0] == '@') {
        *len = 1;
        return "@\xe2\x80\x8b"; /* U+200B: no @mention */
    }
    if (strncmp(s, "://", 3) == 0) {
        *len = 3;
        return ":\xe2\x80\x8b//"; /* no autolink */
    }
    if (strncasecmp(s, "www.", 4) == 0) {
        *len = 1;
        return s[0] == 'w' ? "w\xe2\x80\x8b" : "W\xe2\x80\x8b";
    }
    return NULL;
}

void rb__put_xml(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;

    if (!s)
        return;
    while (*p) {
        switch (*p) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        case '\n':
            fputs("&#10;", out);
            break;
        case '\t':
            fputs("&#9;", out);
            break;
        case '\r':
            fputs("&#13;", out);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fputs("\xef\xbf\xbd", out); /* U+FFFD: not allowed in XML 1.0 */
                break;
            }
            n = utf8_len(p);
            if (n == 0) {
                fputs("\xef\xbf\xbd", out); /* not UTF-8 */
                p++;
                continue;
            }
            /* U+FFFE, U+FFFF (EF BF BE/BF) are not XML characters either. */
            if (n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe)
                fputs("\xef\xbf\xbd", out);
            else
                fwrite(p, 1, n, out);
            p += n;
            continue;
        }
        p++;
    }
}

void rb__put_md(FILE *out, const char *s)
{
    static const char special[] = "\\`*_[]<>#|&~$";
    const char *q = s, *rep;
    size_t skip;

    if (!s)
        return;
    while (*q) {
        unsigned char c = (unsigned char)*q;

        rep = rb__md_defuse(q, &skip);
        if (rep) {
            fputs(rep, out);
            q += skip;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\r')
            fputc(' ', out);
        else if (c < 0x20 || c == 0x7f)
            ;
        else if (strchr(special, c))
            fprintf(out, "\\%c", c);
        else
            fputc(c, out);
        q++;
    }
}

const char *rb__fmt_num(char buf[48], double v, int dec)
{
    char *dot, *end;

    if (!isfinite(v)) {
        snprintf(buf, 48, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return buf;
    }
    snprintf(buf, 48, "%.*f", dec, v);
    dot = strchr(buf, '.');
    if (dot) {
        end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0')
            *end-- = '\0';
        if (end == dot)
            *end = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        snprintf(buf, 48, "0");
    return buf;
}

const char *rb__jstr(json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int rb__jnum(json_t *obj, const char *key, double *v)
{
    json_t *j = json_is_object(obj) ? json_object_get(obj, key) : NULL;

    if (!json_is_number(j))
        return 0;
    *v = json_number_value(j);
    return 1;
}

int rb__jint(json_t *obj, const char *key, long long *v)
{
    json_t *j = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    double d;

    if (json_is_integer(j)) {
        *v = (long long)json_integer_value(j);
        return 1;
    }
    if (!json_is_real(j))
        return 0;
    d = json_real_value(j);
    if (!(d > -1e15))
        d = -1e15;
    if (!(d < 1e15))
        d = 1e15;
    *v = (long long)d;
    return 1;
}

int rb__bin(double x, int n)
{
    if (!(x >= 0) || !(x <= (double)n))
        return -1;
    return (int)x;
}

/* ---- entry points ------------------------------------------------------ */

enum rb_err rb_report_format_parse(const char *name, enum rb_report_format *out,
                                   struct rb_error *err)
{
    enum rb_report_format f;

    if (!name)
        return rb__rp_fail(err, RB_EINVAL, "no report format given");
    if (strcmp(name, "junit") == 0)
        f = RB_REPORT_JUNIT;
    else if (strcmp(name, "md") == 0 || strcmp(name, "markdown") == 0)
        f = RB_REPORT_MD;
    else if (strcmp(name, "html") == 0)
        f = RB_REPORT_HTML;
    else
        return rb__rp_fail(err, RB_EINVAL,
                           "unknown report format '%s' (junit, md or html)", name);
    *out = f;
    return RB_OK;
}

const char *rb_report_file_name(enum rb_report_format f)
{
    switch (f) {
    case RB_REPORT_JUNIT:
        return "junit.xml";
    case RB_REPORT_MD:
        return "summary.md";
    case RB_REPORT_HTML:
        return "report.html";
    }
    return "report";
}

enum rb_err rb_report_check(json_t *results, struct rb_error *err)
{
    json_t *schema;

    if (!json_is_object(results))
        return rb__rp_fail(err, RB_EINVAL, "not a results document: not a JSON object");
    schema = json_object_get(results, "schema");
    if (!json_is_integer(schema))
        return rb__rp_fail(err, RB_EINVAL,
                           "not a results document: no integer 'schema' field");
    if (json_integer_value(schema) > RB_REPORT_SCHEMA)
        return rb__rp_fail(err, RB_ESCHEMA,
                           "results schema %lld is newer than this rebound reads (%d)",
                           (long long)json_integer_value(schema), RB_REPORT_SCHEMA);
    if (json_integer_value(schema) < 1)
        return rb__rp_fail(err, RB_EINVAL, "not a results document: schema %lld",
                           (long long)json_integer_value(schema));
    if (!json_is_array(json_object_get(results, "trials")))
        return rb__rp_fail(err, RB_EINVAL, "not a results document: no 'trials' array");
    return RB_OK;
}

enum rb_err rb_report_load(const char *path, json_t **out, struct rb_error *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    struct rb_error sub;
    enum rb_err rc = RB_OK;
    FILE *f;

    f = fopen(path, "rb");
    if (!f)
        return rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                                 "cannot read results '%s'", path);
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (ferror(f))
            rc = rb__rp_fail(err, RB_EIO, "cannot read results '%s': read error", path);
        else {
            rc = rb__rp_fail(err, RB_EINVAL, "%s:%d:%d: not valid JSON: %s", path,
                             jerr.line, jerr.column, jerr.text);
            if (err) {
                snprintf(err->file, sizeof(err->file), "%s", path);
                err->line = jerr.line;
                err->column = jerr.column;
            }
        }
        goto close_file;
    }
    rc = rb_report_check(root, &sub);
    if (rc != RB_OK) {
        rb__rp_fail(err, rc, "'%s': %s", path, sub.message);
        goto free_root;
    }
    *out = root;
    root = NULL;
free_root:
    json_decref(root);
close_file:
    fclose(f);
    return rc;
}

enum rb_err rb_report_write(json_t *results, enum rb_report_format f, FILE *out,
                            struct rb_error *err)
{
    struct rb__suite s;
    enum rb_err rc;

    rc = rb_report_check(results, err);
    if (rc != RB_OK)
        return rc;
    rc = rb__suite_build(results, &s, err);
    if (rc != RB_OK)
        return rc;
    switch (f) {
    case RB_REPORT_JUNIT:
        rc = rb__write_junit(&s, out, err);
        break;
    case RB_REPORT_MD:
        rc = rb__write_md(&s, out, err);
        break;
    case RB_REPORT_HTML:
        rc = rb__write_html(&s, out, err);
        break;
    default:
        rc = rb__rp_fail(err, RB_EINVAL, "unknown report format %d", (int)f);
    }
    if (rc == RB_OK && (fflush(out) != 0 || ferror(out)))
        rc = rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                               "cannot write the report");
    rb__suite_release(&s);
    return rc;
}

/* Writes the report to the open stream `out` and closes it; `sync`: fsync
 * it first. */
static enum rb_err write_stream(json_t *results, enum rb_report_format f, FILE *out,
                                int sync, const char *path, struct rb_error *err)
{
    struct rb_error sub;
    enum rb_err rc;

    rb_error_init(&sub);
    rc = rb_report_write(results, f, out, &sub);
    if (rc != RB_OK) {
        fclose(out);
        return rb__rp_fail(err, rc, "cannot write report '%s': %s", path, sub.message);
    }
    if (sync && fsync(fileno(out)) != 0 && errno != EINVAL) {
        rc = rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                               "cannot write report '%s'", path);
        fclose(out);
        return rc;
    }
    if (fclose(out) != 0)
        return rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                                 "cannot write report '%s'", path);
    return RB_OK;
}

/* Opens `path` (not a regular file) for writing as it is. */
static enum rb_err write_in_place(json_t *results, enum rb_report_format f,
                                  const char *path, struct rb_error *err)
{
    enum rb_err rc;
    FILE *out;
    int fd;

    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                                 "cannot write report '%s'", path);
    out = fdopen(fd, "w");
    if (!out) {
        rc = rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                               "cannot write report '%s'", path);
        close(fd);
        return rc;
    }
    return write_stream(results, f, out, 0, path, err);
}

enum rb_err rb_report_write_path(json_t *results, enum rb_report_format f,
                                 const char *path, struct rb_error *err)
{
    static unsigned counter;
    const char *slash = strrchr(path, '/');
    char tmp[4096];
    struct stat st;
    enum rb_err rc;
    FILE *out;
    int fd = -1, n, tries;

    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return write_in_place(results, f, path, err);
    /* A new name each try: O_EXCL refuses one that is there (planted or
     * not), O_NOFOLLOW a link at it. */
    for (tries = 0; tries < 100 && fd < 0; tries++) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        n = snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp-%ld-%u-%ld",
                     slash ? (int)(slash - path + 1) : 0, path, slash ? slash + 1 : path,
                     (long)getpid(), counter++, (long)ts.tv_nsec);
        if (n < 0 || (size_t)n >= sizeof(tmp))
            return rb__rp_fail(err, RB_EINVAL, "report name '%s' is too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                                     "cannot write report '%s'", path);
    }
    if (fd < 0)
        return rb__rp_fail(err, RB_EIO,
                           "cannot write report '%s': no free temporary name", path);
    out = fdopen(fd, "w");
    if (!out) {
        rc = rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                               "cannot write report '%s'", path);
        close(fd);
        goto remove_tmp;
    }
    rc = write_stream(results, f, out, 1, path, err);
    if (rc != RB_OK)
        goto remove_tmp;
    if (rename(tmp, path) != 0) {
        rc = rb__rp_fail_errno(err, rb__rp_errno_code(errno), errno,
                               "cannot write report '%s'", path);
        goto remove_tmp;
    }
    return RB_OK;
remove_tmp:
    unlink(tmp);
    return rc;
}

/* Writes one report to dir/name. */
static enum rb_err write_one(const char *dir, json_t *results, enum rb_report_format f,
                             struct rb_error *err)
{
    const char *name = rb_report_file_name(f);
    char path[4096];
    int n;

    n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return rb__rp_fail(err, RB_EINVAL, "report folder name '%s' is too long", dir);
    return rb_report_write_path(results, f, path, err);
}

enum rb_err rb_reports_write_all(const char *dir, json_t *results, struct rb_error *err)
{
    static const enum rb_report_format all[] = {RB_REPORT_JUNIT, RB_REPORT_MD,
                                                RB_REPORT_HTML};
    enum rb_err rc;
    size_t i;

    rc = rb_report_check(results, err);
    if (rc != RB_OK)
        return rc;
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        rc = write_one(dir, results, all[i], err);
        if (rc != RB_OK)
            return rc;
    }
    return RB_OK;
}
