/*
 * util.c - helpers shared by rb_faults: errno to error code, the
 * supervisor's own monotonic clock, and handing events to the callback.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum rb_err rb__fx_errno_code(int e)
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

int64_t rb__fx_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rb__fx_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void rb__fx_emit(struct rb_sup *sup, const char *kind, int64_t t_ns, json_t *obj)
{
    struct rb_fault_event ev;
    char *text;

    if (!obj)
        obj = json_object();
    if (!obj || !sup->on_event)
        goto out;
    json_object_set_new(obj, "t", json_integer(t_ns));
    json_object_set_new(obj, "kind", json_string(kind));
    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto out;
    ev.t_ns = t_ns;
    ev.kind = kind;
    ev.json = text;
    sup->on_event(sup->event_arg, &ev);
    free(text);
out:
    json_decref(obj);
}
