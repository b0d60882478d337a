/*
 * wire.c - reads a trial's world journal (world.jsonl) into the requests the
 * scorer compares: each LLM and tool request with its time on rebound's
 * monotonic clock, its hash, whether it was answered, the tokens the world
 * counted, and for chat requests the model and a digest of each message
 * (what the agent sent is visible on the wire, whatever the agent is). Also
 * reads whether the trial's run was parked for a human, from its store.
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rb_wire_init(struct rb_wire *w)
{
    memset(w, 0, sizeof(*w));
}

void rb_wire_release(struct rb_wire *w)
{
    size_t i;

    for (i = 0; i < w->n; i++)
        free(w->reqs[i].msgs);
    free(w->reqs);
    rb_wire_init(w);
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
    rb_utf8_trim(dst); /* an agent's long role or model, cut: still valid text */
}

static int64_t get_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The message digests of a journal line: [["role", "digest"], ...]. */
static enum rb_err read_msgs(const json_t *a, struct rb_wire_req *r)
{
    size_t i, n = json_array_size(a);
    json_t *m;

    r->msgs = NULL;
    r->n_msgs = 0;
    if (!json_is_array(a) || n == 0)
        return RB_OK;
    r->msgs = calloc(n, sizeof(*r->msgs));
    if (!r->msgs)
        return RB_ENOMEM;
    json_array_foreach(a, i, m)
    {
        copy(r->msgs[i].role, sizeof(r->msgs[i].role),
             json_string_value(json_array_get(m, 0)));
        copy(r->msgs[i].digest, sizeof(r->msgs[i].digest),
             json_string_value(json_array_get(m, 1)));
    }
    r->n_msgs = n;
    return RB_OK;
}

enum rb_err rb_wire_add_line(struct rb_wire *w, const char *line)
{
    json_t *e = json_loads(line, 0, NULL);
    const char *route = json_string_value(json_object_get(e, "route"));
    struct rb_wire_req r, *p;
    enum rb_err rc = RB_EINVAL;

    memset(&r, 0, sizeof(r));
    if (!route)
        goto out;
    if (strncmp(route, "/v1/chat/completions", 20) == 0)
        r.llm = 1;
    else if (strncmp(route, "/tools/", 7) != 0)
        goto out;
    r.seq = (uint64_t)get_int(e, "seq");
    r.t_ns = get_int(e, "start_ns");
    copy(r.route, sizeof(r.route), route);
    copy(r.hash, sizeof(r.hash), json_string_value(json_object_get(e, "hash")));
    copy(r.model, sizeof(r.model), json_string_value(json_object_get(e, "model")));
    r.status = (int)get_int(e, "status");
    r.answered = r.status == 200 && json_is_true(json_object_get(e, "completed"));
    r.prompt_tokens = (int)get_int(e, "prompt_tokens");
    r.completion_tokens = (int)get_int(e, "completion_tokens");
    rc = read_msgs(json_object_get(e, "messages"), &r);
    if (rc != RB_OK)
        goto out;
    if (w->n == w->cap) {
        size_t cap2 = w->cap ? w->cap * 2 : 64;

        p = realloc(w->reqs, cap2 * sizeof(*p));
        if (!p) {
            free(r.msgs);
            rc = RB_ENOMEM;
            goto out;
        }
        w->reqs = p;
        w->cap = cap2;
    }
    w->reqs[w->n++] = r;
out:
    json_decref(e);
    return rc;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const struct rb_wire_req *)a)->seq,
             y = ((const struct rb_wire_req *)b)->seq;

    return (x > y) - (x < y);
}

enum rb_err rb_wire_read(const char *path, struct rb_wire *out, struct rb_error *err)
{
    struct rb_wire w;
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "re");
    enum rb_err rc = RB_OK;

    rb_wire_init(&w);
    if (!f) {
        rc = RB_EIO;
        if (err) {
            rb_error_init(err);
            err->code = rc;
            err->cause = errno;
            err->cause_kind = "errno";
            snprintf(err->message, sizeof(err->message), "cannot read journal '%s': %s",
                     path, strerror(errno));
        }
        return rc;
    }
    while (getline(&line, &cap, f) > 0) {
        if (rb_wire_add_line(&w, line) == RB_ENOMEM) {
            rc = RB_ENOMEM;
            if (err) {
                rb_error_init(err);
                err->code = rc;
                snprintf(err->message, sizeof(err->message), "out of memory");
            }
            break;
        }
    }
    free(line);
    fclose(f);
    /* lines are written as exchanges end; the requests go in arrival order */
    if (w.n > 1)
        qsort(w.reqs, w.n, sizeof(*w.reqs), by_seq);
    if (rc != RB_OK) {
        rb_wire_release(&w);
        return rc;
    }
    rb_wire_release(out);
    *out = w;
    return RB_OK;
}

/* What the escalation walk keeps: the open escalation of one run. */
struct esc_find {
    const char *run_id;
    struct rb_trial *t;
};

static int on_escalation(void *arg, const struct rb_escalation *e)
{
    struct esc_find *f = arg;

    if (!e->run_id || strcmp(e->run_id, f->run_id) || !e->status ||
        strcmp(e->status, "open"))
        return 0;
    f->t->escalated = 1;
    f->t->escalation_context = e->context && e->context[0] && strcmp(e->context, "null");
    copy(f->t->escalation_reason, sizeof(f->t->escalation_reason), e->reason);
    return 1;
}

enum rb_err rb_trial_read_wire(const struct rb_scenario *s, struct rb_trial *t,
                               struct rb_error *err)
{
    struct rb_store_opts so;
    struct rb_store *store = NULL;
    struct esc_find find;
    char path[4200];
    enum rb_err rc;

    t->price_prompt = s->world.price_prompt;
    t->price_completion = s->world.price_completion;
    snprintf(path, sizeof(path), "%s/world.jsonl", t->dir);
    rc = rb_wire_read(path, &t->wire, err);
    if (rc != RB_OK)
        return rc;

    /* The store the agent was given; an agent that keeps none leaves no
     * folder, and nothing is parked. Read only: nothing is created. */
    memset(&so, 0, sizeof(so));
    so.flags = RB_STORE_MUST_EXIST;
    snprintf(path, sizeof(path), "%s/store", t->dir);
    if (access(path, F_OK) != 0 || rb_store_open(path, &so, &store, NULL) != RB_OK)
        return RB_OK;
    find.run_id = t->run_id;
    find.t = t;
    rb_store_list_escalations(store, 1, on_escalation, &find, NULL);
    rb_store_close(store);
    return RB_OK;
}
