/*
 * agent.c - the built-in agent's main line: walks the workflow's steps in
 * order and makes each one a durable step of the run. LLM steps carry the
 * whole conversation so far, rebuilt after a restart from the replayed
 * outputs; an answer with a tool call is followed by a tool step; task steps
 * allocate and touch memory in a child under a limit, and answer an OOM with
 * more memory; the fan-out (fanout.c) runs research threads. The deliberately
 * flawed modes differ from the correct agent in one place each.
 */
#include "agent/internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rb__agent_count(struct rb__agent_counts *c, const struct rb_step_info *info)
{
    c->steps++;
    if (info->source == RB_FROM_LOG)
        c->replayed++;
    else if (info->source == RB_FROM_CACHE)
        c->cached++;
    else
        c->executed++;
}

void rb__agent_llm_opts(const struct rb__agent *a, struct rb_llm_opts *lo)
{
    memset(lo, 0, sizeof(*lo));
    lo->base_url = a->o->base_url;
    lo->tools_url = a->o->tools_url;
    lo->max_attempts = a->o->llm_tries;
    lo->backoff_base_ms = a->o->backoff_ms;
    if (a->o->backoff_ms > 0)
        lo->backoff_max_ms = a->o->backoff_ms * 8;
}

char *rb__agent_answer_content(const char *body, size_t len, json_t **call)
{
    json_t *root, *msg, *calls, *content;
    char *text = NULL;

    *call = NULL;
    root = json_loadb(body, len, 0, NULL);
    msg = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "message");
    if (!json_is_object(msg))
        goto out;
    calls = json_object_get(msg, "tool_calls");
    if (json_is_array(calls) && json_array_size(calls) > 0) {
        *call = json_incref(json_array_get(calls, 0));
        text = strdup("");
        goto out;
    }
    content = json_object_get(msg, "content");
    text = strdup(json_is_string(content) ? json_string_value(content) : "");
out:
    json_decref(root);
    return text;
}

/* ------------------------------------------------------------------------
 * The conversation
 */

/* The parameters of the tools the agent knows (the world's tools). */
static const struct {
    const char *name;
    const char *schema;
} known_tools[] = {
    {"search", "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},"
               "\"required\":[\"query\"]}"},
    {"fetch", "{\"type\":\"object\",\"properties\":{\"url\":{\"type\":\"string\"}},"
              "\"required\":[\"url\"]}"},
    {"send_email", "{\"type\":\"object\",\"properties\":{\"to\":{\"type\":\"string\"},"
                   "\"subject\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"}},"
                   "\"required\":[\"to\",\"subject\",\"body\"]}"},
    {"write_record", "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":"
                     "\"string\"},\"value\":{\"type\":\"string\"}},\"required\":"
                     "[\"key\",\"value\"]}"},
};

/* Builds the OpenAI `tools` array of the tools named in opts->tools. */
static enum rb_err build_tools(struct rb__agent *a, struct rb_error *err)
{
    const char *const *t;
    size_t k;

    if (!a->o->tools)
        return RB_OK;
    a->tools = json_array();
    if (!a->tools)
        return rb__agent_fail(err, RB_ENOMEM, "out of memory");
    for (t = a->o->tools; *t; t++) {
        json_t *params = NULL;

        for (k = 0; k < sizeof(known_tools) / sizeof(known_tools[0]); k++)
            if (strcmp(*t, known_tools[k].name) == 0)
                params = json_loads(known_tools[k].schema, 0, NULL);
        if (!params)
            return rb__agent_fail(err, RB_EINVAL, "the agent knows no tool '%s'", *t);
        if (json_array_append_new(a->tools, json_pack("{s:s, s:{s:s, s:o}}", "type",
                                                      "function", "function", "name", *t,
                                                      "parameters", params)) != 0)
            return rb__agent_fail(err, RB_ENOMEM, "out of memory");
    }
    return RB_OK;
}

/* Appends `m` (stolen) to the conversation, remembering whether it came from
 * a step replayed from the log. */
static enum rb_err conv_add(struct rb__agent *a, json_t *m, int from_log)
{
    if (!m || json_array_append_new(a->messages, m) != 0 ||
        json_array_append_new(a->from_log, json_boolean(from_log)) != 0)
        return RB_ENOMEM;
    return RB_OK;
}

static json_t *user_message(const struct rb__agent *a, int with_findings)
{
    char text[4096];
    const char *f = with_findings && a->findings ? a->findings : "none yet";

    snprintf(text, sizeof(text), "Task '%s', part %d. Findings so far: %s", a->o->name,
             a->conv, f);
    return json_pack("{s:s, s:s}", "role", "user", "content", text);
}

static enum rb_err conv_start(struct rb__agent *a)
{
    enum rb_err rc;

    json_decref(a->messages);
    json_decref(a->from_log);
    a->messages = json_array();
    a->from_log = json_array();
    if (!a->messages || !a->from_log)
        return RB_ENOMEM;
    a->conv++;
    rc = conv_add(a,
                  json_pack("{s:s, s:s}", "role", "system", "content",
                            "You are rebound's built-in agent. Use the tools, then "
                            "answer."),
                  0);
    if (rc == RB_OK)
        rc = conv_add(a, user_message(a, 1), a->findings_from_log);
    return rc;
}

static void conv_end(struct rb__agent *a)
{
    json_decref(a->messages);
    json_decref(a->from_log);
    json_decref(a->pending);
    a->messages = NULL;
    a->from_log = NULL;
    a->pending = NULL;
}

/* The messages to send: all of them; in drop-history mode after a restart,
 * only those of this attempt (what a stack that keeps its history in memory
 * sends). */
static json_t *conv_messages(const struct rb__agent *a)
{
    json_t *out, *m;
    size_t i;
    int has_user = 0;

    if (a->o->mode != RB_SCENARIO_MODE_DROP_HISTORY || a->attempt <= 1)
        return json_deep_copy(a->messages);
    out = json_array();
    json_array_foreach(a->messages, i, m)
    {
        if (json_is_true(json_array_get(a->from_log, i)))
            continue;
        if (strcmp(json_string_value(json_object_get(m, "role")), "user") == 0)
            has_user = 1;
        json_array_append(out, m);
    }
    if (!has_user)
        json_array_insert_new(out, json_array_size(out) > 0 ? 1 : 0, user_message(a, 0));
    return out;
}

/* ------------------------------------------------------------------------
 * Steps of the main line
 */

static enum rb_err handle_call_error(struct rb__agent *a, const char *key, enum rb_err rc,
                                     struct rb_error *err)
{
    if (rc != RB_EHTTP)
        return rc;
    return rb__agent_park(a, key, strstr(key, "llm-") ? "llm" : "tool", err);
}

enum rb_err rb__agent_park(struct rb__agent *a, const char *key, const char *what,
                           struct rb_error *err)
{
    char reason[600];
    json_t *ctx;
    char *ctx_text;
    struct rb_error perr;
    enum rb_err rc;

    /* the step's error names the step already; say so when it is empty */
    if (err && err->message[0])
        snprintf(reason, sizeof(reason), "%s", err->message);
    else
        snprintf(reason, sizeof(reason), "%s step '%s' failed for good", what, key);
    ctx = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "step", key, "kind", what,
                    "code", rb_err_name(err ? err->code : RB_ESTEP), "message",
                    err ? err->message : "", "cause", err ? err->cause : 0, "attempt",
                    a->attempt, "findings", a->findings ? a->findings : "");
    ctx_text = ctx ? json_dumps(ctx, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(ctx);
    rb_error_init(&perr);
    rc = rb_run_park(a->run, reason, ctx_text, &perr);
    free(ctx_text);
    if (rc != RB_OK) {
        if (err)
            *err = perr;
        return rc;
    }
    a->parked = 1;
    return rb__agent_fail(err, RB_EPARKED, "run '%s' is parked for a human: %s",
                          a->o->run_id, reason);
}

static enum rb_err llm_step(struct rb__agent *a, int step, int last, struct rb_error *err)
{
    struct rb_llm_opts lo;
    struct rb_step_info info;
    struct rb_buf out;
    json_t *req = NULL, *call = NULL, *msg = NULL;
    char key[64], *body = NULL, *text = NULL;
    enum rb_err rc = RB_OK;

    rb_buf_init(&out);
    if (!a->messages) {
        rc = conv_start(a);
        if (rc != RB_OK)
            goto out;
    }
    req = json_pack("{s:s, s:o}", "model", a->model, "messages", conv_messages(a));
    if (req && a->tools && json_array_size(a->tools) > 0)
        json_object_set(req, "tools", a->tools);
    if (req && last)
        json_object_set_new(req, "tool_choice", json_string("none"));
    body = req ? json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!body) {
        rc = rb__agent_fail(err, RB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), "llm-%03d", step);
    rb__agent_llm_opts(a, &lo);
    lo.cache = -1;
    rc = rb_llm_step(a->run, key, &lo, body, &out, &info, err);
    if (rc != RB_OK) {
        rc = handle_call_error(a, key, rc, err);
        goto out;
    }
    rb__agent_count(&a->counts, &info);
    if (info.source == RB_FROM_EXEC)
        a->counts.llm_calls++;
    text = rb__agent_answer_content((const char *)out.data, out.len, &call);
    if (!text) {
        rc =
            rb__agent_fail(err, RB_EINVAL,
                           "llm step '%s' got an answer without choices[0].message", key);
        goto out;
    }
    if (call) {
        msg = json_pack("{s:s, s:n, s:[O]}", "role", "assistant", "content", "tool_calls",
                        call);
        rc = conv_add(a, msg, info.source == RB_FROM_LOG);
        json_decref(a->pending);
        a->pending = call;
        call = NULL;
        goto out;
    }
    rc = conv_add(a, json_pack("{s:s, s:s}", "role", "assistant", "content", text),
                  info.source == RB_FROM_LOG);
    if (rc != RB_OK)
        goto out;
    free(a->answer);
    a->answer = text;
    text = NULL;
    rc = rb__agent_set_findings(a, a->answer, info.source == RB_FROM_LOG);
    conv_end(a);
out:
    json_decref(call);
    json_decref(req);
    free(body);
    free(text);
    rb_buf_release(&out);
    return rc;
}

enum rb_err rb__agent_set_findings(struct rb__agent *a, const char *text, int from_log)
{
    char *f = strdup(text);

    if (!f)
        return RB_ENOMEM;
    free(a->findings);
    a->findings = f;
    a->findings_from_log = from_log;
    return RB_OK;
}

static int is_side_effect(const char *tool)
{
    return strcmp(tool, "send_email") == 0 || strcmp(tool, "write_record") == 0;
}

static enum rb_err tool_step(struct rb__agent *a, int step, struct rb_error *err)
{
    struct rb_llm_opts lo;
    struct rb_step_info info;
    struct rb_buf out;
    json_t *fn = json_object_get(a->pending, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    const char *id = json_string_value(json_object_get(a->pending, "id"));
    char key[64];
    enum rb_err rc;

    rb_buf_init(&out);
    snprintf(key, sizeof(key), "tool-%03d", step);
    if (!name || !args) {
        rc = rb__agent_fail(err, RB_EINVAL,
                            "tool step '%s': the tool call has no function name or "
                            "arguments",
                            key);
        goto out;
    }
    rb__agent_llm_opts(a, &lo);
    lo.cache = -1;
    lo.side_effect =
        is_side_effect(name) && a->o->mode != RB_SCENARIO_MODE_NO_IDEMPOTENCY;
    rc = rb_tool_step(a->run, key, &lo, name, args, &out, &info, err);
    if (rc != RB_OK) {
        rc = handle_call_error(a, key, rc, err);
        goto out;
    }
    rb__agent_count(&a->counts, &info);
    rc = conv_add(a,
                  json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                            id ? id : "", "content", (const char *)out.data),
                  info.source == RB_FROM_LOG);
    json_decref(a->pending);
    a->pending = NULL;
out:
    rb_buf_release(&out);
    return rc;
}

/* A step of plain computation between the calls: cheap and deterministic. */
static enum rb_err work_fn(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    const int *step = arg;
    char text[160], hex[RB_HASH_HEX_LEN + 1];
    int n;

    (void)err;
    rb_hash_hex(ctx->key, strlen(ctx->key), hex);
    n = snprintf(text, sizeof(text), "{\"step\":%d,\"digest\":\"%.16s\"}", *step, hex);
    return rb_buf_append(out, text, (size_t)n);
}

static enum rb_err work_step(struct rb__agent *a, int step, struct rb_error *err)
{
    struct rb_step_opts so = {0};
    struct rb_step_info info;
    struct rb_buf out;
    char key[64];
    enum rb_err rc;

    rb_buf_init(&out);
    snprintf(key, sizeof(key), "work-%03d", step);
    so.kind = "work";
    rc = rb_step(a->run, key, &so, work_fn, &step, &out, &info, err);
    if (rc == RB_OK)
        rb__agent_count(&a->counts, &info);
    rb_buf_release(&out);
    return rc;
}

/* ------------------------------------------------------------------------
 * Task steps
 */

struct task_arg {
    int step;
    int64_t alloc_mb;
};

/* Runs in the child: allocates alloc_mb MiB and touches every page. */
static enum rb_err task_fn(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    const struct task_arg *t = arg;
    size_t size = (size_t)t->alloc_mb << 20, i;
    unsigned long sum = 0;
    unsigned char *p = NULL;
    char text[200];
    int n;

    (void)ctx;
    if (size) {
        p = malloc(size);
        if (!p)
            return rb__agent_fail(err, RB_ENOMEM, "task step %d cannot allocate %lld MiB",
                                  t->step, (long long)t->alloc_mb);
        for (i = 0; i < size; i += 4096)
            p[i] = (unsigned char)(i >> 12);
        for (i = 0; i < size; i += 4096)
            sum += p[i];
        free(p);
    }
    n = snprintf(text, sizeof(text), "{\"step\":%d,\"alloc_mb\":%lld,\"checksum\":%lu}",
                 t->step, (long long)t->alloc_mb, sum);
    return rb_buf_append(out, text, (size_t)n);
}

static enum rb_err task_step(struct rb__agent *a, int step, int64_t alloc_mb,
                             struct rb_error *err)
{
    struct rb_task_opts to;
    struct rb_step_info info;
    struct rb_buf out;
    struct task_arg t = {step, alloc_mb};
    char key[64], input[64];
    enum rb_err rc;
    int tries = 0;

    rb_buf_init(&out);
    memset(&to, 0, sizeof(to));
    snprintf(key, sizeof(key), "task-%03d", step);
    snprintf(input, sizeof(input), "alloc_mb=%lld", (long long)alloc_mb);
    to.step.kind = "task";
    to.step.input = input;
    to.step.input_len = strlen(input);
    to.mem_limit = a->o->task_mem;
    to.mem_cap = a->mem_cap;
    if (to.mem_limit && a->o->mode != RB_SCENARIO_MODE_IGNORE_FAILURE_CONTEXT) {
        /* the answer to infrastructure as context: the attempt before died
         * of an OOM, so the first task run now starts with twice that */
        if (a->oom_limit) {
            size_t want = 2 * (a->oom_limit > to.mem_limit ? a->oom_limit : to.mem_limit);

            to.mem_limit = want < to.mem_cap ? want : to.mem_cap;
        }
        to.retry_oom_factor = 2.0;
    } else if (!to.mem_limit && a->whole_limit) {
        /* the whole agent was OOM-killed under a limit it cannot raise: run
         * the task apart, under half that limit, so that an OOM kills the
         * task, not the agent, and the run is parked instead of crash-looping */
        to.mem_limit = a->whole_limit / 2;
        to.mem_cap = to.mem_limit;
    }
    for (;;) {
        rc = rb_task_step(a->run, key, &to, task_fn, &t, &out, &info, err);
        tries++;
        /* ignore-failure-context: try again blindly, with the same memory */
        if (rc == RB_EOOM && a->o->mode == RB_SCENARIO_MODE_IGNORE_FAILURE_CONTEXT &&
            tries < 3)
            continue;
        break;
    }
    if (rc == RB_OK) {
        rb__agent_count(&a->counts, &info);
        if (info.source == RB_FROM_EXEC)
            a->oom_limit = 0;
    } else if (rc == RB_ECRASH && a->o->stop && *a->o->stop) {
        /* the notice's signal killed the child too: not the task's failure,
         * so nothing to park; it runs again in the next attempt */
        a->stopped_at = step;
        rc = RB_OK;
    } else if (rc == RB_EOOM || rc == RB_ETIMEOUT || rc == RB_ECRASH || rc == RB_ENOMEM) {
        rc = rb__agent_park(a, key, "task", err);
    }
    rb_buf_release(&out);
    return rc;
}

/* Reads how the attempt before ended; an OOM sets the limit to answer. */
static void read_failure_context(struct rb__agent *a)
{
    struct rb_attempt last = {0};
    json_t *d;
    json_int_t v;

    if (a->o->mode == RB_SCENARIO_MODE_IGNORE_FAILURE_CONTEXT)
        return;
    if (rb_run_last_failure(a->run, &last, NULL) != RB_OK)
        return;
    if (last.end == RB_END_OOM) {
        a->oom_limit = a->o->task_mem;
        d = last.detail ? json_loads(last.detail, 0, NULL) : NULL;
        v = json_integer_value(json_object_get(d, "limit"));
        if (v <= 0)
            v = json_integer_value(json_object_get(d, "limit_mb")) * 1024 * 1024;
        if (v > 0)
            a->oom_limit = (size_t)v;
        if (v > 0 && !a->o->task_mem)
            a->whole_limit = (size_t)v;
        json_decref(d);
    }
    rb_attempt_release(&last);
}

/* ------------------------------------------------------------------------
 * The lease
 */

/* The clock the lease is measured with: monotonic, as a lease must be; the
 * wall clock in wall-clock-lease mode, which a clock jump fools. */
static int64_t lease_now_ms(const struct rb__agent *a)
{
    struct timespec ts;

    clock_gettime(a->o->mode == RB_SCENARIO_MODE_WALL_CLOCK_LEASE ? CLOCK_REALTIME
                                                                  : CLOCK_MONOTONIC,
                  &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Before a step: the lease must still hold; then it is renewed. */
static enum rb_err lease_check(struct rb__agent *a, int step, struct rb_error *err)
{
    int64_t now = lease_now_ms(a), lease = a->o->lease_ms > 0 ? a->o->lease_ms : 60000;

    if (now - a->renewed_ms > lease)
        return rb__agent_fail(err, RB_EBUSY,
                              "lease on run '%s' expired before step %d: %.1f s since it "
                              "was renewed, lease %.1f s; another worker may own the run",
                              a->o->run_id, step, (double)(now - a->renewed_ms) / 1000.0,
                              (double)lease / 1000.0);
    a->renewed_ms = now;
    return RB_OK;
}

/* ------------------------------------------------------------------------
 * The walk
 */

static int task_at(const struct rb_scenario_workflow *wf, int step, int64_t *alloc_mb)
{
    size_t i;

    for (i = 0; i < wf->n_tasks; i++)
        if (wf->tasks[i].step == step) {
            *alloc_mb = wf->tasks[i].alloc_mb;
            return 1;
        }
    return 0;
}

static int in_fanout(const struct rb_scenario_workflow *wf, int step)
{
    return wf->fanout_at_step > 0 && step >= wf->fanout_at_step &&
           step < wf->fanout_at_step + wf->fanout_threads;
}

static enum rb_err walk(struct rb__agent *a, struct rb_error *err)
{
    const struct rb_scenario_workflow *wf = a->o->wf;
    int64_t alloc_mb;
    int s, slots = 0, slot = 0, budget, done = 0;
    enum rb_err rc = RB_OK;

    for (s = 1; s <= wf->steps; s++)
        if (!task_at(wf, s, &alloc_mb) && !in_fanout(wf, s))
            slots++;
    a->research_llm = wf->fanout_threads > 0 && wf->llm_turns >= wf->fanout_threads;
    budget = wf->llm_turns - (a->research_llm ? wf->fanout_threads : 0);
    if (budget > slots)
        budget = slots;
    for (s = 1; s <= wf->steps && rc == RB_OK && !a->stopped_at; s++) {
        int left, want;

        if (a->o->stop && *a->o->stop) {
            /* preempted with notice: what is committed stays, nothing more
             * starts */
            a->stopped_at = s;
            break;
        }
        rc = lease_check(a, s, err);
        if (rc != RB_OK)
            break;
        if (task_at(wf, s, &alloc_mb)) {
            rc = task_step(a, s, alloc_mb, err);
            continue;
        }
        if (in_fanout(wf, s)) {
            if (s == wf->fanout_at_step)
                rc = rb__agent_fanout(a, err);
            continue;
        }
        left = slots - slot;
        want = (int)(((long long)(slot + 1) * budget + slots - 1) / slots);
        slot++;
        if (a->pending) {
            if (budget - done <= left - 1) {
                rc = tool_step(a, s, err);
                continue;
            }
            conv_end(a); /* no room for the tool call: a new conversation */
        }
        if (done < budget && (done < want || budget - done >= left)) {
            done++;
            rc = llm_step(a, s, done == budget, err);
            continue;
        }
        rc = work_step(a, s, err);
    }
    return rc;
}

void rb_agent_result_init(struct rb_agent_result *r)
{
    memset(r, 0, sizeof(*r));
}

void rb_agent_result_release(struct rb_agent_result *r)
{
    free(r->answer);
    rb_agent_result_init(r);
}

enum rb_err rb_agent_run(const struct rb_agent_opts *opts, struct rb_agent_result *out,
                         struct rb_error *err)
{
    struct rb__agent a;
    struct rb_run_opts ro;
    enum rb_err rc;

    /* errors without a message of their own (out of memory) leave it empty */
    rb_error_init(err);
    memset(&a, 0, sizeof(a));
    a.o = opts;
    a.model = opts->model ? opts->model : "rebound-world";
    if (!opts->store_dir || !opts->run_id || !opts->wf || opts->wf->steps <= 0)
        return rb__agent_fail(err, RB_EINVAL,
                              "the agent needs a store, a run and a "
                              "workflow with steps");
    a.mem_cap = opts->task_mem_cap ? opts->task_mem_cap : 8 * opts->task_mem;
    if (a.mem_cap < opts->task_mem)
        a.mem_cap = opts->task_mem;
    /* --concurrency, else the fan-out's own limit, else 4 */
    a.concurrency = opts->concurrency > 0              ? opts->concurrency
                    : opts->wf->fanout_concurrency > 0 ? opts->wf->fanout_concurrency
                                                       : 4;
    rc = build_tools(&a, err);
    if (rc != RB_OK)
        goto release_tools;
    rc = rb_store_open(opts->store_dir, NULL, &a.store, err);
    if (rc != RB_OK)
        goto release_tools;
    ro = opts->run_opts;
    if (opts->mode == RB_SCENARIO_MODE_NO_REPLAY)
        ro.flags |= RB_RUN_NO_REPLAY;
    rc = rb_run_open(a.store, opts->run_id, &ro, &a.run, err);
    if (rc != RB_OK)
        goto close_store;
    a.run_flags = ro.flags;
    a.event_fd = ro.event_fd;
    a.attempt = rb_run_attempt(a.run);
    read_failure_context(&a);
    a.renewed_ms = lease_now_ms(&a);
    rc = walk(&a, err);
    if (rc != RB_OK) {
        /* a parked or failed run is left for the next attempt to see */
        rb_run_abandon(a.run);
        goto release;
    }
    rb_agent_result_init(out);
    out->attempt = a.attempt;
    out->steps = a.counts.steps;
    out->executed = a.counts.executed;
    out->replayed = a.counts.replayed;
    out->cached = a.counts.cached;
    out->llm_calls = a.counts.llm_calls;
    if (a.stopped_at) {
        /* left as a crash leaves it: the next attempt is told why */
        out->stopped = a.stopped_at;
        rb_run_abandon(a.run);
        goto release;
    }
    /* a workflow without LLM turns answers with what its research found */
    out->answer = a.answer ? a.answer : strdup(a.findings ? a.findings : "");
    a.answer = NULL;
    rb_run_close(a.run);
release:
    conv_end(&a);
    free(a.answer);
    free(a.findings);
close_store:
    rb_store_close(a.store);
release_tools:
    json_decref(a.tools);
    return rc;
}
