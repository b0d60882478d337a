/*
 * llm.c - the world's simulated LLM: POST /v1/chat/completions and
 * GET /v1/models, OpenAI-compatible. The answer is a pure function of the
 * seed and the request's model, messages, tools and tool_choice: while the
 * conversation holds fewer assistant turns than configured, a tool call (of a
 * tool the request declares, else of the world's own), then a final answer.
 * Token counts follow the rule in docs/world.md.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define CREATED_BASE 1767225600 /* 2026-01-01T00:00:00Z */

static const char world_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"search\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},"
    "\"required\":[\"query\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"fetch\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"url\":{\"type\":\"string\"}},"
    "\"required\":[\"url\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"send_email\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"to\":{\"type\":\"string\"},"
    "\"subject\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"}},"
    "\"required\":[\"to\",\"subject\",\"body\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"write_record\",\"parameters\":"
    "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
    "\"value\":{\"type\":\"string\"}},\"required\":[\"key\",\"value\"]}}}]";

/* What the request asks, once checked. Borrowed from the parsed request. */
struct ask {
    const char *model;
    json_t *messages;
    json_t *tools;             /* array, or NULL */
    const json_t *tool_choice; /* or NULL */
    int stream;
    int include_usage;
};

static int tokens_of(size_t bytes)
{
    return (int)((bytes + 3) / 4);
}

static size_t content_bytes(const json_t *content)
{
    size_t n = 0, i;

    if (json_is_string(content))
        return json_string_length(content);
    for (i = 0; json_is_array(content) && i < json_array_size(content); i++) {
        const json_t *t = json_object_get(json_array_get(content, i), "text");
        if (json_is_string(t))
            n += json_string_length(t);
    }
    return n;
}

/* Tokens of one tool call: its name and its arguments. */
static int call_tokens(const json_t *call)
{
    const json_t *fn = json_object_get(call, "function");
    const json_t *name = json_object_get(fn, "name");
    const json_t *args = json_object_get(fn, "arguments");

    return tokens_of(json_is_string(name) ? json_string_length(name) : 0) +
           tokens_of(json_is_string(args) ? json_string_length(args) : 0);
}

static int tool_call_tokens(const json_t *calls)
{
    int n = 0;
    size_t i;

    for (i = 0; json_is_array(calls) && i < json_array_size(calls); i++)
        n += call_tokens(json_array_get(calls, i));
    return n;
}

/* Checks the request; on a problem sets a 400 in rep and returns RB_EINVAL. */
static enum rb_err read_ask(json_t *req, struct ask *a, struct rb__world_reply *rep)
{
    static const char *const roles[] = {"system",    "developer", "user",
                                        "assistant", "tool",      "function"};
    char msg[256];
    const json_t *v;
    size_t i, k;

    memset(a, 0, sizeof(*a));
    if (!json_is_object(req))
        return rb__world_reply_error(rep, 400, "the request body must be a JSON object",
                                     "invalid_request_error", NULL, NULL) == RB_OK
                   ? RB_EINVAL
                   : RB_ENOMEM;
    a->model = json_string_value(json_object_get(req, "model"));
    if (!a->model || !a->model[0])
        return rb__world_reply_error(rep, 400, "you must provide a model parameter",
                                     "invalid_request_error", "model", NULL) == RB_OK
                   ? RB_EINVAL
                   : RB_ENOMEM;
    a->messages = json_object_get(req, "messages");
    if (!json_is_array(a->messages) || json_array_size(a->messages) == 0)
        return rb__world_reply_error(rep, 400, "'messages' must be a non-empty array",
                                     "invalid_request_error", "messages", NULL) == RB_OK
                   ? RB_EINVAL
                   : RB_ENOMEM;
    for (i = 0; i < json_array_size(a->messages); i++) {
        const json_t *m = json_array_get(a->messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        const json_t *calls = json_object_get(m, "tool_calls");
        msg[0] = '\0';
        for (k = 0; role && k < sizeof(roles) / sizeof(roles[0]); k++)
            if (strcmp(role, roles[k]) == 0)
                break;
        if (!json_is_object(m))
            snprintf(msg, sizeof(msg), "messages[%zu]: must be an object", i);
        else if (!role || k == sizeof(roles) / sizeof(roles[0]))
            snprintf(msg, sizeof(msg),
                     "messages[%zu]: 'role' must be one of system, developer, user, "
                     "assistant, tool, function",
                     i);
        else if (!(json_is_string(content) || json_is_array(content) ||
                   (strcmp(role, "assistant") == 0 &&
                    (!content || json_is_null(content)))))
            snprintf(msg, sizeof(msg),
                     "messages[%zu]: 'content' must be a string or an array of content "
                     "parts",
                     i);
        else if (calls && !json_is_array(calls) && !json_is_null(calls))
            snprintf(msg, sizeof(msg), "messages[%zu]: 'tool_calls' must be an array", i);
        if (msg[0])
            return rb__world_reply_error(rep, 400, msg, "invalid_request_error",
                                         "messages", NULL) == RB_OK
                       ? RB_EINVAL
                       : RB_ENOMEM;
    }
    v = json_object_get(req, "tools");
    if (v && !json_is_null(v)) {
        for (i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            const json_t *fn = json_object_get(json_array_get(v, i), "function");
            if (!json_is_string(json_object_get(fn, "name")))
                break;
        }
        if (!json_is_array(v) || i < json_array_size(v))
            return rb__world_reply_error(
                       rep, 400,
                       "'tools' must be an array of {\"type\": \"function\", "
                       "\"function\": {\"name\": ...}}",
                       "invalid_request_error", "tools", NULL) == RB_OK
                       ? RB_EINVAL
                       : RB_ENOMEM;
        if (json_array_size(v))
            a->tools = (json_t *)v;
    }
    a->tool_choice = json_object_get(req, "tool_choice");
    v = json_object_get(req, "stream");
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return rb__world_reply_error(rep, 400, "'stream' must be a boolean",
                                     "invalid_request_error", "stream", NULL) == RB_OK
                   ? RB_EINVAL
                   : RB_ENOMEM;
    a->stream = json_is_true(v);
    a->include_usage = json_is_true(
        json_object_get(json_object_get(req, "stream_options"), "include_usage"));
    return RB_OK;
}

/* Appends the canonical JSON of `j` (may be NULL: null). */
static enum rb_err add_canonical(struct rb_buf *buf, const json_t *j)
{
    char *s;
    enum rb_err rc;

    if (!j)
        return rb__world_lit(buf, "null");
    s = rb__world_canonical(j);
    if (!s)
        return RB_ENOMEM;
    rc = rb_buf_append(buf, s, strlen(s));
    free(s);
    return rc;
}

/* The part of the request answers depend on, hashed with the seed: the
 * canonical JSON of {messages, model, tool_choice, tools}, built from the
 * messages' canonical text already made for the history hash. */
static enum rb_err answer_key(const struct ask *a, const char *msgs_c, uint64_t seed,
                              char hex[RB_HASH_HEX_LEN + 1])
{
    struct rb_buf buf;
    enum rb_err rc;

    rb_buf_init(&buf);
    rc = rb__world_printf(
        &buf, "rebound-world/1 seed=%llu\n{\"messages\":", (unsigned long long)seed);
    if (rc == RB_OK)
        rc = rb_buf_append(&buf, msgs_c, strlen(msgs_c));
    if (rc == RB_OK)
        rc = rb__world_lit(&buf, ",\"model\":");
    if (rc == RB_OK)
        rc = rb__world_json_str(&buf, a->model, strlen(a->model));
    if (rc == RB_OK)
        rc = rb__world_lit(&buf, ",\"tool_choice\":");
    if (rc == RB_OK)
        rc = add_canonical(&buf, a->tool_choice);
    if (rc == RB_OK)
        rc = rb__world_lit(&buf, ",\"tools\":");
    if (rc == RB_OK)
        rc = add_canonical(&buf, a->tools);
    if (rc == RB_OK)
        rc = rb__world_lit(&buf, "}");
    if (rc == RB_OK)
        rb_hash_hex(buf.data, buf.len, hex);
    rb_buf_release(&buf);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *gen_value(const json_t *schema, const char *name, struct rb__world_rng *r,
                         int depth);

static json_t *gen_object(const json_t *schema, struct rb__world_rng *r, int depth)
{
    const json_t *props = json_object_get(schema, "properties");
    json_t *o = json_object();
    const char **keys = NULL;
    const char *key;
    json_t *v;
    size_t n = 0, i;

    if (!o || !json_is_object(props) || depth > 4)
        return o;
    keys = malloc((json_object_size(props) + 1) * sizeof(*keys));
    if (!keys)
        goto fail;
    json_object_foreach((json_t *)props, key, v)
    {
        keys[n++] = key;
    }
    qsort(keys, n, sizeof(*keys), cmp_str); /* the same for any key order */
    for (i = 0; i < n; i++) {
        json_t *x = gen_value(json_object_get(props, keys[i]), keys[i], r, depth + 1);
        if (!x || json_object_set_new(o, keys[i], x) != 0)
            goto fail;
    }
    free(keys);
    return o;
fail:
    free(keys);
    json_decref(o);
    return NULL;
}

static json_t *gen_string(const char *name, struct rb__world_rng *r)
{
    struct rb_buf b;
    json_t *s;
    enum rb_err rc;

    rb_buf_init(&b);
    if (strstr(name, "url") || strstr(name, "uri") || strstr(name, "link")) {
        rc = rb_buf_append(&b, "https://example.test/", 21);
        if (rc == RB_OK)
            rc = rb__world_words(r, 1, &b);
    } else if (strstr(name, "email") || strcmp(name, "to") == 0) {
        rc = rb__world_words(r, 1, &b);
        if (rc == RB_OK)
            rc = rb_buf_append(&b, "@example.test", 13);
    } else {
        rc = rb__world_words(r, 2 + (int)rb__world_rng_below(r, 4), &b);
    }
    s = rc == RB_OK ? json_stringn((const char *)b.data, b.len) : NULL;
    rb_buf_release(&b);
    return s;
}

static json_t *gen_value(const json_t *schema, const char *name, struct rb__world_rng *r,
                         int depth)
{
    const json_t *t = json_object_get(schema, "type");
    const json_t *en = json_object_get(schema, "enum");
    const char *type = json_string_value(t);
    size_t i;

    if (json_is_array(en) && json_array_size(en))
        return json_deep_copy(
            json_array_get(en, (size_t)rb__world_rng_below(r, json_array_size(en))));
    for (i = 0; json_is_array(t) && i < json_array_size(t) && !type; i++) {
        const char *s = json_string_value(json_array_get(t, i));
        if (s && strcmp(s, "null") != 0)
            type = s;
    }
    if (!type)
        type = json_object_get(schema, "properties") ? "object" : "string";
    if (strcmp(type, "object") == 0)
        return gen_object(schema, r, depth);
    if (strcmp(type, "array") == 0) {
        json_t *arr = json_array();
        json_t *x = depth > 4
                        ? NULL
                        : gen_value(json_object_get(schema, "items"), name, r, depth + 1);
        if (arr && x && json_array_append_new(arr, x) == 0)
            return arr;
        if (!x && depth > 4)
            return arr;
        json_decref(arr);
        return NULL;
    }
    if (strcmp(type, "integer") == 0)
        return json_integer(1 + (json_int_t)rb__world_rng_below(r, 100));
    if (strcmp(type, "number") == 0)
        return json_real((double)rb__world_rng_below(r, 10000) / 100.0);
    if (strcmp(type, "boolean") == 0)
        return json_boolean(rb__world_rng_next(r) & 1);
    if (strcmp(type, "null") == 0)
        return json_null();
    return gen_string(name, r);
}

/* The tool call to answer with: a new {"id","type","function":{...}} object. */
static json_t *make_tool_call(const struct ask *a, const char *key,
                              struct rb__world_rng *r, json_t *own_tools)
{
    const json_t *tools = a->tools ? a->tools : own_tools;
    const json_t *tool = NULL, *fn, *params;
    const char *forced = NULL, *name;
    json_t *args = NULL, *call = NULL;
    char *args_s = NULL;
    char id[32];
    size_t i;

    if (json_is_object(a->tool_choice))
        forced = json_string_value(
            json_object_get(json_object_get(a->tool_choice, "function"), "name"));
    for (i = 0; forced && i < json_array_size(tools); i++) {
        const char *n = json_string_value(json_object_get(
            json_object_get(json_array_get(tools, i), "function"), "name"));
        if (n && strcmp(n, forced) == 0)
            tool = json_array_get(tools, i);
    }
    if (!tool)
        tool =
            json_array_get(tools, (size_t)rb__world_rng_below(r, json_array_size(tools)));
    fn = json_object_get(tool, "function");
    name = json_string_value(json_object_get(fn, "name"));
    params = json_object_get(fn, "parameters");
    args = json_is_object(params) ? gen_object(params, r, 0) : json_object();
    if (!args)
        goto out;
    args_s = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    if (!args_s)
        goto out;
    snprintf(id, sizeof(id), "call_%.24s", key + 24);
    call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function",
                     "name", name, "arguments", args_s);
out:
    free(args_s);
    json_decref(args);
    return call;
}

static int count_turns(const json_t *messages)
{
    int n = 0;
    size_t i;

    for (i = 0; i < json_array_size(messages); i++) {
        const char *role =
            json_string_value(json_object_get(json_array_get(messages, i), "role"));
        if (role && strcmp(role, "assistant") == 0)
            n++;
    }
    return n;
}

static int prompt_tokens(const struct ask *a)
{
    int n = 3;
    size_t i;

    for (i = 0; i < json_array_size(a->messages); i++) {
        const json_t *m = json_array_get(a->messages, i);
        n += 4 + tokens_of(content_bytes(json_object_get(m, "content")));
        n += tool_call_tokens(json_object_get(m, "tool_calls"));
    }
    if (a->tools) {
        char *s = rb__world_canonical(a->tools);
        n += s ? tokens_of(strlen(s)) : 0;
        free(s);
    }
    return n;
}

/* Appends one "data: {chunk}\n\n" event; steals delta and usage. */
static enum rb_err add_event(struct rb_buf *out, const char *id, json_int_t created,
                             const char *model, json_t *delta, const char *finish,
                             json_t *usage)
{
    json_t *chunk;
    char *s;
    enum rb_err rc = RB_ENOMEM;

    if (usage)
        chunk =
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", id, "object",
                      "chat.completion.chunk", "created", created, "model", model,
                      "system_fingerprint", "rebound-world", "choices", "usage", usage);
    else
        chunk =
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:o, s:n, s:s?}]}", "id", id,
                      "object", "chat.completion.chunk", "created", created, "model",
                      model, "system_fingerprint", "rebound-world", "choices", "index", 0,
                      "delta", delta, "logprobs", "finish_reason", finish);
    if (!chunk)
        return RB_ENOMEM;
    s = json_dumps(chunk, JSON_COMPACT);
    if (s && rb__world_lit(out, "data: ") == RB_OK &&
        rb_buf_append(out, s, strlen(s)) == RB_OK && rb__world_lit(out, "\n\n") == RB_OK)
        rc = RB_OK;
    free(s);
    json_decref(chunk);
    return rc;
}

/* Length of the next piece of s[0..len): up to `max` bytes, whole UTF-8
 * characters; with `at_space`, ending before a space when one is found. */
static size_t piece_len(const char *s, size_t len, size_t max, int at_space)
{
    size_t n = len < max ? len : max;

    if (at_space) {
        size_t i;
        for (i = 1; i < len; i++)
            if (s[i] == ' ')
                return i;
        return len;
    }
    while (n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
        n++;
    return n;
}

static enum rb_err build_stream(const struct ask *a, const char *id, json_int_t created,
                                const char *content, json_t *call, json_t *usage,
                                struct rb_buf *out)
{
    const char *finish = call ? "tool_calls" : "stop";
    enum rb_err rc;
    size_t pos, n;

    if (call)
        rc = add_event(
            out, id, created, a->model,
            json_pack("{s:s, s:n, s:[{s:i, s:O, s:s, s:{s:O, s:s}}]}", "role",
                      "assistant", "content", "tool_calls", "index", 0, "id",
                      json_object_get(call, "id"), "type", "function", "function", "name",
                      json_object_get(json_object_get(call, "function"), "name"),
                      "arguments", ""),
            NULL, NULL);
    else
        rc = add_event(out, id, created, a->model,
                       json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL,
                       NULL);
    if (call) {
        const char *args = json_string_value(
            json_object_get(json_object_get(call, "function"), "arguments"));
        size_t len = strlen(args);
        for (pos = 0; rc == RB_OK && pos < len; pos += n) {
            n = piece_len(args + pos, len - pos, 16, 0);
            rc = add_event(out, id, created, a->model,
                           json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index", 0,
                                     "function", "arguments", args + pos, n),
                           NULL, NULL);
        }
    } else {
        size_t len = strlen(content);
        for (pos = 0; rc == RB_OK && pos < len; pos += n) {
            n = piece_len(content + pos, len - pos, 0, 1);
            rc = add_event(out, id, created, a->model,
                           json_pack("{s:s%}", "content", content + pos, n), NULL, NULL);
        }
    }
    if (rc == RB_OK)
        rc = add_event(out, id, created, a->model, json_object(), finish, NULL);
    if (rc == RB_OK && a->include_usage)
        rc = add_event(out, id, created, a->model, NULL, NULL, json_deep_copy(usage));
    if (rc == RB_OK)
        rc = rb__world_lit(out, "data: [DONE]\n\n");
    return rc;
}

static int wants_tool_call(const struct ask *a, int turn, int turns)
{
    const char *choice = json_string_value(a->tool_choice);

    if (choice && strcmp(choice, "none") == 0)
        return 0;
    if ((choice && strcmp(choice, "required") == 0) || json_is_object(a->tool_choice))
        return 1;
    return turn < turns;
}

/* The non-streamed answer, written directly (the hot path of the world). */
static enum rb_err build_plain(const struct ask *a, const char *id, json_int_t created,
                               const struct rb_buf *content, const json_t *call,
                               const struct rb__world_reply *usage, struct rb_buf *out)
{
    const json_t *fn = json_object_get(call, "function");
    const char *s;
    enum rb_err rc;

    rc =
        rb__world_printf(out,
                         "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
                         "\"model\":",
                         id, (long long)created);
    if (rc == RB_OK)
        rc = rb__world_json_str(out, a->model, strlen(a->model));
    if (rc == RB_OK)
        rc = rb__world_lit(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                                "\"assistant\",\"content\":");
    if (rc == RB_OK && call) {
        rc = rb__world_printf(
            out,
            "null,\"refusal\":null,\"tool_calls\":[{\"id\":\"%s\",\"type\":"
            "\"function\",\"function\":{\"name\":",
            json_string_value(json_object_get(call, "id")));
        s = json_string_value(json_object_get(fn, "name"));
        if (rc == RB_OK)
            rc = rb__world_json_str(out, s, strlen(s));
        if (rc == RB_OK)
            rc = rb__world_lit(out, ",\"arguments\":");
        s = json_string_value(json_object_get(fn, "arguments"));
        if (rc == RB_OK)
            rc = rb__world_json_str(out, s, strlen(s));
        if (rc == RB_OK)
            rc = rb__world_lit(
                out, "}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]");
    } else if (rc == RB_OK) {
        rc = rb__world_json_str(out, (const char *)content->data, content->len);
        if (rc == RB_OK)
            rc = rb__world_lit(
                out, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
    }
    if (rc == RB_OK)
        rc = rb__world_printf(
            out,
            ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
            "\"total_tokens\":%d},\"system_fingerprint\":\"rebound-world\"}"
            "\n",
            usage->prompt_tokens, usage->completion_tokens,
            usage->prompt_tokens + usage->completion_tokens);
    return rc;
}

static enum rb_err answer(struct rb_world *w, const struct ask *a, const char *msgs_c,
                          struct rb__world_reply *rep)
{
    char key[RB_HASH_HEX_LEN + 1], id[40];
    struct rb__world_rng r;
    struct rb_buf content;
    json_t *call = NULL, *usage = NULL;
    json_int_t created;
    enum rb_err rc = RB_ENOMEM;

    rb_buf_init(&content);
    if (answer_key(a, msgs_c, w->cfg.seed, key) != RB_OK)
        goto out;
    snprintf(id, sizeof(id), "chatcmpl-%.24s", key);
    rb__world_rng_seed(&r, key, 1);
    created = CREATED_BASE + 60 * (json_int_t)rep->turn +
              (json_int_t)rb__world_rng_below(&r, 60);
    if (wants_tool_call(a, rep->turn, w->cfg.turns)) {
        call = make_tool_call(a, key, &r, w->own_tools);
        if (!call)
            goto out;
        rep->completion_tokens = call_tokens(call);
    } else {
        if (rb__world_printf(&content, "After %d tool call%s: ", rep->turn,
                             rep->turn == 1 ? "" : "s") != RB_OK ||
            rb__world_words(&r, 12 + (int)rb__world_rng_below(&r, 24), &content) !=
                RB_OK ||
            rb_buf_append(&content, ".", 1) != RB_OK)
            goto out;
        rep->completion_tokens = tokens_of(content.len);
    }
    rep->body.len = 0;
    if (a->stream) {
        usage = json_pack("{s:i, s:i, s:i}", "prompt_tokens", rep->prompt_tokens,
                          "completion_tokens", rep->completion_tokens, "total_tokens",
                          rep->prompt_tokens + rep->completion_tokens);
        if (!usage)
            goto out;
        rc = build_stream(a, id, created, (const char *)content.data, call, usage,
                          &rep->body);
        rep->sse = 1;
        rep->content_type = "text/event-stream";
    } else {
        rc = build_plain(a, id, created, &content, call, rep, &rep->body);
        rep->content_type = "application/json";
    }
    if (rc != RB_OK)
        goto out;
    rep->status = 200;
    rep->latency_ms = w->cfg.latency_ms;
    if (w->cfg.jitter_ms > 0) {
        rb__world_rng_seed(&r, key, 2);
        rep->latency_ms +=
            (int64_t)rb__world_rng_below(&r, (uint64_t)w->cfg.jitter_ms + 1);
    }
out:
    json_decref(usage);
    json_decref(call);
    rb_buf_release(&content);
    return rc;
}

json_t *rb__world_own_tools(void)
{
    return json_loads(world_tools, 0, NULL);
}

enum rb_err rb__world_llm(struct rb_world *w, const struct rb_buf *body, int dry,
                          struct rb__world_reply *rep)
{
    json_error_t jerr;
    json_t *req;
    struct ask a;
    char msg[300], *msgs_c;
    enum rb_err rc;

    req = json_loadb((const char *)body->data, body->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req) {
        snprintf(msg, sizeof(msg),
                 "we could not parse the JSON body of your request: %s (line %d, column "
                 "%d)",
                 jerr.text, jerr.line, jerr.column);
        return rb__world_reply_error(rep, 400, msg, "invalid_request_error", NULL, NULL);
    }
    rc = read_ask(req, &a, rep);
    if (rc != RB_OK) {
        json_decref(req);
        return rc == RB_EINVAL ? RB_OK : rc;
    }
    msgs_c = rb__world_canonical(a.messages);
    if (!msgs_c) {
        json_decref(req);
        return RB_ENOMEM;
    }
    rb_hash_hex(msgs_c, strlen(msgs_c), rep->hash);
    rep->turn = count_turns(a.messages);
    rep->prompt_tokens = prompt_tokens(&a);
    if (!dry)
        rc = answer(w, &a, msgs_c, rep);
    free(msgs_c);
    json_decref(req);
    return rc;
}

enum rb_err rb__world_models(struct rb_world *w, const char *route,
                             struct rb__world_reply *rep)
{
    const char *model = w->cfg.model ? w->cfg.model : "rebound-world";
    json_t *j;
    enum rb_err rc;
    char msg[200];

    if (strcmp(route, "/v1/models") == 0) {
        j = json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                      model, "object", "model", "created", CREATED_BASE, "owned_by",
                      "rebound");
    } else {
        const char *id = route + strlen("/v1/models/");
        if (strcmp(id, model) != 0) {
            snprintf(msg, sizeof(msg), "the model '%.100s' does not exist", id);
            return rb__world_reply_error(rep, 404, msg, "invalid_request_error", "model",
                                         "model_not_found");
        }
        j = json_pack("{s:s, s:s, s:i, s:s}", "id", model, "object", "model", "created",
                      CREATED_BASE, "owned_by", "rebound");
    }
    if (!j)
        return RB_ENOMEM;
    rc = rb__world_reply_json(rep, 200, j);
    json_decref(j);
    return rc;
}
