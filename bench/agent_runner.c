/*
 * agent_runner.c - the librebound agent bench_faults supervises in its
 * second section: `agent_runner STORE RUN` opens the store and the run as
 * REBOUND_ATTEMPT and REBOUND_EVENT_FD say (the runner writes run.open and
 * the step events itself), commits step "s1" and then waits to be killed
 * (at most 10 s, then exits 3). A later attempt replays "s1", commits "s2",
 * closes the run and exits 0. It shows what a restart costs an agent built
 * on the durable runner, whose start-up opens SQLite.
 */
#include <rebound/rebound.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum rb_err no_op(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                         struct rb_error *err)
{
    (void)arg;
    (void)ctx;
    (void)err;
    return rb_buf_append(out, "{}", 2);
}

int main(int argc, char **argv)
{
    struct rb_run_opts ro;
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_error err;
    struct rb_buf out;
    int rc = 1, i;

    if (argc != 3) {
        fputs("usage: agent_runner STORE RUN\n", stderr);
        return 2;
    }
    memset(&ro, 0, sizeof(ro));
    rb_error_init(&err);
    rb_buf_init(&out);
    if (rb_run_opts_from_env(&ro, &err) != RB_OK ||
        rb_store_open(argv[1], NULL, &store, &err) != RB_OK ||
        rb_run_open(store, argv[2], &ro, &run, &err) != RB_OK ||
        rb_step(run, "s1", NULL, no_op, NULL, &out, NULL, &err) != RB_OK)
        goto fail;
    if (rb_run_attempt(run) == 1) {
        /* The fault kills us here; bounded should it never come. */
        for (i = 0; i < 1000; i++)
            usleep(10000);
        rc = 3;
        goto out;
    }
    if (rb_step(run, "s2", NULL, no_op, NULL, &out, NULL, &err) != RB_OK)
        goto fail;
    rb_run_close(run);
    run = NULL;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "agent_runner: %s\n", err.message);
out:
    rb_run_abandon(run);
    rb_store_close(store);
    rb_buf_release(&out);
    return rc;
}
