/*
 * error.c - error codes, their names and descriptions, and the helpers that
 * fill a struct rb_error.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const err_text[] = {
#define RB__ERR_TEXT(name, text) text,
    RB_ERR_MAP(RB__ERR_TEXT)
#undef RB__ERR_TEXT
};

static const char *const err_names[] = {
#define RB__ERR_NAME(name, text) "RB_" #name,
    RB_ERR_MAP(RB__ERR_NAME)
#undef RB__ERR_NAME
};

const char *rb_strerror(enum rb_err code)
{
    if ((int)code < 0 || code >= RB_ERR_COUNT_)
        return "unknown error";
    return err_text[code];
}

const char *rb_err_name(enum rb_err code)
{
    if ((int)code < 0 || code >= RB_ERR_COUNT_)
        return "RB_UNKNOWN";
    return err_names[code];
}

void rb_error_init(struct rb_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
    err->code = RB_OK;
    err->cause_kind = "";
}

static __attribute__((format(printf, 3, 0))) void
vfill(struct rb_error *err, enum rb_err code, const char *fmt, va_list ap)
{
    rb_error_init(err);
    err->code = code;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

enum rb_err rb_error_set(struct rb_error *err, enum rb_err code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    va_start(ap, fmt);
    vfill(err, code, fmt, ap);
    va_end(ap);
    return code;
}

enum rb_err rb_error_set_errno(struct rb_error *err, enum rb_err code, int e,
                               const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!err)
        return code;
    va_start(ap, fmt);
    vfill(err, code, fmt, ap);
    va_end(ap);
    err->cause = e;
    err->cause_kind = "errno";
    n = strlen(err->message);
    if (n < sizeof(err->message)) {
        /* House style: messages are lowercase, strerror() is not. */
        char text[128];

        snprintf(text, sizeof(text), "%s", strerror(e));
        if (text[0] >= 'A' && text[0] <= 'Z' && !(text[1] >= 'A' && text[1] <= 'Z'))
            text[0] = (char)(text[0] - 'A' + 'a');
        snprintf(err->message + n, sizeof(err->message) - n, ": %s%s%s",
                 code == RB_ENOSPC ? "disk full (" : "", text,
                 code == RB_ENOSPC ? ")" : "");
    }
    return code;
}

enum rb_err rb__err_from_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return RB_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
        return RB_EACCES;
    case ENOENT:
    case ENOTDIR:
        return RB_ENOENT;
    case ENOMEM:
        return RB_ENOMEM;
    case EEXIST:
        return RB_EEXIST;
    default:
        return RB_EIO;
    }
}
