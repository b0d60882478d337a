/*
 * suite.c - the run engine (suite.h): every scenario's trials run in forked
 * worker processes, scored against their golden trial and gathered into the
 * root of results.json. This first version only holds the interface; the
 * engine moves here from cmd_run.c next.
 */
#include "suite.h"

#include <stdio.h>
#include <string.h>

void rb_suite_opts_init(struct rb_suite_opts *o)
{
    memset(o, 0, sizeof(*o));
}

enum rb_err rb_suite_run(const struct rb_suite_opts *o, json_t **results,
                         int *stop_signal, struct rb_error *err)
{
    (void)o;
    (void)results;
    (void)stop_signal;
    if (err) {
        rb_error_init(err);
        err->code = RB_EINVAL;
        snprintf(err->message, sizeof(err->message), "the suite engine is not there yet");
    }
    return RB_EINVAL;
}

void rb_suite_summary(const json_t *results, char *buf, size_t size)
{
    (void)results;
    if (size)
        buf[0] = '\0';
}

enum rb_err rb_trial_save(const struct rb_trial *t, const char *path,
                          struct rb_error *err)
{
    (void)t;
    (void)path;
    (void)err;
    return RB_EINVAL;
}

enum rb_err rb_trial_load(const char *path, struct rb_trial *out, struct rb_error *err)
{
    (void)path;
    (void)out;
    (void)err;
    return RB_EINVAL;
}
