/*
 * test_world.c - unit tests of the world (harness/world): a real world on
 * loopback, driven by a small HTTP/1.1 client over a socket. Determinism
 * (same request, same bytes; another seed, another answer), the tool-call
 * loop, tools and idempotency, server-sent events, OpenAI error bodies, the
 * journal, faults from the in-process API, and the config file.
 *
 * ctest-timeout: 60
 */
#define _GNU_SOURCE
#include "harness/world/world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* ---- a minimal HTTP client (one request per connection) ----------------- */

struct resp {
    int status;   /* 0 when no answer came (reset, closed) */
    char *head;   /* status line and headers */
    char *body;   /* NUL-terminated */
    size_t len;   /* body bytes */
    int complete; /* body as long as Content-Length said */
};

static void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* The value of header `name` in r->head (a static copy), or NULL. */
static const char *header(const struct resp *r, const char *name)
{
    static char val[256];
    const char *p = r->head;
    size_t n = strlen(name);

    while (p && (p = strchr(p, '\n'))) {
        p++;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e;
            while (*v == ' ')
                v++;
            e = strpbrk(v, "\r\n");
            snprintf(val, sizeof(val), "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return val;
        }
    }
    return NULL;
}

/* Sends one request and reads until the server closes (bounded: 20 s). */
static int http(uint16_t port, const char *method, const char *path, const char *extra,
                const char *body, struct resp *out)
{
    struct sockaddr_in sa;
    char req[1024];
    size_t blen = body ? strlen(body) : 0, cap = 65536, len = 0;
    char *buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;
    char *sep;
    const char *cl;
    time_t t0 = time(NULL);

    memset(out, 0, sizeof(*out));
    assert_non_null(buf);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        free(buf);
        return -e;
    }
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                 method, path, blen, extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    if (blen)
        assert_int_equal(write(fd, body, blen), (ssize_t)blen);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t got;
        assert_true(time(NULL) - t0 < 20); /* hang guard */
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    sep = strstr(buf, "\r\n\r\n");
    if (sep) {
        *sep = '\0';
        out->head = strdup(buf);
        out->len = len - (size_t)(sep + 4 - buf);
        out->body = malloc(out->len + 1);
        memcpy(out->body, sep + 4, out->len);
        out->body[out->len] = '\0';
        sscanf(buf, "HTTP/1.1 %d", &out->status);
        cl = header(out, "Content-Length");
        out->complete = !cl || (size_t)atol(cl) == out->len;
    }
    free(buf);
    return 0;
}

static int post(uint16_t port, const char *path, const char *body, struct resp *out)
{
    return http(port, "POST", path, NULL, body, out);
}

/* ---- fixtures --------------------------------------------------------------- */

static struct rb_world *start(uint64_t seed, int turns)
{
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct rb_error err;

    rb_world_config_init(&cfg);
    cfg.seed = seed;
    cfg.turns = turns;
    rb_error_init(&err);
    if (rb_world_start(&cfg, &w, &err) != RB_OK)
        fail_msg("cannot start world: %s", err.message);
    rb_world_config_release(&cfg);
    return w;
}

static const char hello[] = "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"system\","
                            "\"content\":\"be brief\"},"
                            "{\"role\":\"user\",\"content\":\"hello\"}]}";

static json_t *parse(const struct resp *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->len, 0, &jerr);

    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, r->body);
    return j;
}

/* ---- determinism ------------------------------------------------------------- */

static void test_same_request_same_bytes(void **state)
{
    struct rb_world *w = start(42, 2), *w2 = start(42, 2), *other = start(43, 2);
    struct resp a, b, c, d;

    (void)state;
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &a), 0);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &b), 0);
    assert_int_equal(post(rb_world_port(w2), "/v1/chat/completions", hello, &c), 0);
    assert_int_equal(post(rb_world_port(other), "/v1/chat/completions", hello, &d), 0);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.body, b.body, a.len);
    /* another world with the same seed answers the same bytes too */
    assert_int_equal(a.len, c.len);
    assert_memory_equal(a.body, c.body, a.len);
    /* another seed answers differently */
    assert_int_equal(d.status, 200);
    assert_true(a.len != d.len || memcmp(a.body, d.body, a.len) != 0);
    resp_free(&a);
    resp_free(&b);
    resp_free(&c);
    resp_free(&d);
    rb_world_stop(w);
    rb_world_stop(w2);
    rb_world_stop(other);
}

static void test_key_order_does_not_matter(void **state)
{
    struct rb_world *w = start(5, 2);
    struct resp a, b;
    const char *swapped =
        "{\"messages\":[{\"content\":\"be brief\",\"role\":\"system\"},"
        "{\"content\":\"hello\",\"role\":\"user\"}],\"model\":\"gpt-test\"}";

    (void)state;
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &a), 0);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", swapped, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.body, b.body, a.len);
    resp_free(&a);
    resp_free(&b);
    rb_world_stop(w);
}

/* ---- the agent loop ---------------------------------------------------------- */

/* Plays an agent: sends the conversation, appends each tool call and a tool
 * result, until a final answer. Returns the number of tool calls. */
static int agent_loop(uint16_t port, const char *tools_json, json_t **final, int *hops)
{
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}]}", "model", "gpt-test", "messages",
                            "role", "user", "content", "find the answer");
    int calls = 0, i;

    if (tools_json)
        json_object_set_new(req, "tools", json_loads(tools_json, 0, NULL));
    for (i = 0; i < 20; i++) {
        struct resp r;
        char *body = json_dumps(req, JSON_COMPACT);
        json_t *ans, *msg, *tc;
        const char *finish;
        assert_int_equal(post(port, "/v1/chat/completions", body, &r), 0);
        free(body);
        assert_int_equal(r.status, 200);
        ans = parse(&r);
        resp_free(&r);
        assert_string_equal(json_string_value(json_object_get(ans, "object")),
                            "chat.completion");
        msg = json_object_get(json_array_get(json_object_get(ans, "choices"), 0),
                              "message");
        finish = json_string_value(json_object_get(
            json_array_get(json_object_get(ans, "choices"), 0), "finish_reason"));
        tc = json_object_get(msg, "tool_calls");
        if (!tc) {
            assert_string_equal(finish, "stop");
            assert_true(json_is_string(json_object_get(msg, "content")));
            *final = ans;
            *hops = i + 1;
            json_decref(req);
            return calls;
        }
        assert_string_equal(finish, "tool_calls");
        assert_true(json_is_null(json_object_get(msg, "content")));
        calls++;
        json_array_append(json_object_get(req, "messages"), msg);
        json_array_append_new(json_object_get(req, "messages"),
                              json_pack("{s:s, s:O, s:s}", "role", "tool", "tool_call_id",
                                        json_object_get(json_array_get(tc, 0), "id"),
                                        "content", "result"));
        json_decref(ans);
    }
    fail_msg("no final answer after 20 requests");
    return -1;
}

static void test_tool_loop_turns_then_final(void **state)
{
    struct rb_world *w3 = start(1, 3), *w0 = start(1, 0);
    json_t *final = NULL, *usage;
    int hops = 0;

    (void)state;
    assert_int_equal(agent_loop(rb_world_port(w3), NULL, &final, &hops), 3);
    assert_int_equal(hops, 4);
    usage = json_object_get(final, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")),
                     json_integer_value(json_object_get(usage, "prompt_tokens")) +
                         json_integer_value(json_object_get(usage, "completion_tokens")));
    json_decref(final);
    /* turns = 0: the first answer is final */
    assert_int_equal(agent_loop(rb_world_port(w0), NULL, &final, &hops), 0);
    assert_int_equal(hops, 1);
    json_decref(final);
    rb_world_stop(w3);
    rb_world_stop(w0);
}

static void test_tool_call_uses_declared_tools(void **state)
{
    struct rb_world *w = start(9, 1);
    const char *tools =
        "[{\"type\":\"function\",\"function\":{\"name\":\"lookup_weather\","
        "\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"enum\":"
        "[\"Oslo\",\"Lima\"]},\"days\":{\"type\":\"integer\"},\"metric\":{\"type\":"
        "\"boolean\"}},\"required\":[\"city\",\"days\"]}}}]";
    char body[2048];
    struct resp r;
    json_t *ans, *fn, *args;
    const char *city;

    (void)state;
    snprintf(body, sizeof(body),
             "{\"model\":\"m\",\"tools\":%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"weather?\"}]}",
             tools);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", body, &r), 0);
    assert_int_equal(r.status, 200);
    ans = parse(&r);
    fn = json_object_get(
        json_array_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(ans, "choices"), 0),
                                "message"),
                "tool_calls"),
            0),
        "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "lookup_weather");
    args = json_loads(json_string_value(json_object_get(fn, "arguments")), 0, NULL);
    assert_non_null(args);
    city = json_string_value(json_object_get(args, "city"));
    assert_non_null(city);
    assert_true(strcmp(city, "Oslo") == 0 || strcmp(city, "Lima") == 0);
    assert_true(json_is_integer(json_object_get(args, "days")));
    assert_true(json_is_boolean(json_object_get(args, "metric")));
    json_decref(args);
    json_decref(ans);
    resp_free(&r);
    rb_world_stop(w);
}

static void test_token_rule(void **state)
{
    struct rb_world *w = start(3, 0);
    struct resp r;
    json_t *ans, *usage;
    const char *content;
    json_int_t completion;

    (void)state;
    /* prompt: 3 + (4 + ceil(8/4)) + (4 + ceil(5/4)) = 3 + 6 + 6 = 15 */
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &r), 0);
    ans = parse(&r);
    usage = json_object_get(ans, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 15);
    content = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(ans, "choices"), 0), "message"),
        "content"));
    completion = json_integer_value(json_object_get(usage, "completion_tokens"));
    assert_int_equal(completion, (json_int_t)((strlen(content) + 3) / 4));
    json_decref(ans);
    resp_free(&r);
    rb_world_stop(w);
}

/* ---- streaming ---------------------------------------------------------------- */

static void test_stream_is_sse(void **state)
{
    struct rb_world *w = start(11, 0);
    struct resp s, plain;
    const char *stream =
        "{\"model\":\"gpt-test\",\"stream\":true,\"stream_options\":{\"include_usage\":"
        "true},"
        "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\","
        "\"content\":\"hello\"}]}";
    char *p, *content = calloc(1, 4096);
    json_t *plain_j;
    int events = 0, done = 0, usage_seen = 0, finish_seen = 0;

    (void)state;
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", stream, &s), 0);
    assert_int_equal(s.status, 200);
    assert_non_null(header(&s, "Content-Type"));
    assert_string_equal(header(&s, "Content-Type"), "text/event-stream");
    /* every event is "data: ...\n\n"; the last is [DONE] */
    for (p = s.body; *p;) {
        char *end = strstr(p, "\n\n");
        json_t *chunk;
        assert_non_null(end);
        assert_memory_equal(p, "data: ", 6);
        *end = '\0';
        assert_false(done);
        if (strcmp(p + 6, "[DONE]") == 0) {
            done = 1;
        } else {
            json_t *choices, *delta;
            chunk = json_loads(p + 6, 0, NULL);
            assert_non_null(chunk);
            assert_string_equal(json_string_value(json_object_get(chunk, "object")),
                                "chat.completion.chunk");
            choices = json_object_get(chunk, "choices");
            if (json_array_size(choices) == 0) {
                assert_non_null(json_object_get(chunk, "usage"));
                usage_seen = 1;
            } else {
                delta = json_object_get(json_array_get(choices, 0), "delta");
                if (json_is_string(json_object_get(delta, "content")))
                    strncat(content, json_string_value(json_object_get(delta, "content")),
                            4095 - strlen(content));
                if (json_is_string(
                        json_object_get(json_array_get(choices, 0), "finish_reason")))
                    finish_seen = 1;
            }
            json_decref(chunk);
        }
        events++;
        p = end + 2;
    }
    assert_true(done);
    assert_true(usage_seen);
    assert_true(finish_seen);
    assert_true(events > 3);
    /* the streamed text is the non-streamed answer's text */
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &plain), 0);
    plain_j = parse(&plain);
    assert_string_equal(
        content,
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(plain_j, "choices"), 0),
                            "message"),
            "content")));
    json_decref(plain_j);
    free(content);
    resp_free(&s);
    resp_free(&plain);
    rb_world_stop(w);
}

/* ---- errors -------------------------------------------------------------------- */

static void expect_error(uint16_t port, const char *method, const char *path,
                         const char *body, int status, const char *param)
{
    struct resp r;
    json_t *j, *e;

    assert_int_equal(http(port, method, path, NULL, body, &r), 0);
    assert_int_equal(r.status, status);
    j = parse(&r);
    e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_true(json_is_string(json_object_get(e, "type")));
    assert_non_null(json_object_get(e, "code"));
    if (param)
        assert_string_equal(json_string_value(json_object_get(e, "param")), param);
    else
        assert_true(json_is_null(json_object_get(e, "param")));
    json_decref(j);
    resp_free(&r);
}

static void test_malformed_requests(void **state)
{
    struct rb_world *w = start(1, 1);
    uint16_t p = rb_world_port(w);

    (void)state;
    expect_error(p, "POST", "/v1/chat/completions", "{\"model\":", 400, NULL);
    expect_error(p, "POST", "/v1/chat/completions", "[1,2]", 400, NULL);
    expect_error(p, "POST", "/v1/chat/completions", "{\"messages\":[]}", 400, "model");
    expect_error(p, "POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":[]}",
                 400, "messages");
    expect_error(
        p, "POST", "/v1/chat/completions",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400,
        "messages");
    expect_error(p, "POST", "/v1/chat/completions",
                 "{\"model\":\"m\",\"tools\":[{}],\"messages\":[{\"role\":\"user\","
                 "\"content\":\"x\"}]}",
                 400, "tools");
    expect_error(p, "GET", "/v1/chat/completions", NULL, 405, NULL);
    expect_error(p, "GET", "/v1/nothing", NULL, 404, NULL);
    expect_error(p, "POST", "/tools/teleport", "{}", 404, NULL);
    expect_error(p, "POST", "/tools/search", "{\"q\":1}", 400, NULL);
    expect_error(p, "GET", "/v1/models/nope", NULL, 404, "model");
    rb_world_stop(w);
}

/* ---- tools and idempotency ---------------------------------------------------- */

static void test_read_only_tools_are_deterministic(void **state)
{
    struct rb_world *w = start(8, 1);
    struct resp a, b, c;
    json_t *j;

    (void)state;
    assert_int_equal(post(rb_world_port(w), "/tools/search", "{\"query\":\"rust\"}", &a),
                     0);
    assert_int_equal(post(rb_world_port(w), "/tools/search", "{\"query\":\"rust\"}", &b),
                     0);
    assert_int_equal(post(rb_world_port(w), "/tools/search", "{\"query\":\"zig\"}", &c),
                     0);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.body, b.body, a.len);
    assert_true(a.len != c.len || memcmp(a.body, c.body, a.len) != 0);
    j = parse(&a);
    assert_int_equal(json_array_size(json_object_get(j, "results")), 3);
    json_decref(j);
    resp_free(&a);
    resp_free(&b);
    resp_free(&c);
    assert_int_equal(post(rb_world_port(w), "/tools/fetch",
                          "{\"url\":\"https://example.test/x\"}", &a),
                     0);
    assert_int_equal(a.status, 200);
    resp_free(&a);
    rb_world_stop(w);
}

static void test_idempotency_key(void **state)
{
    struct rb_world *w = start(2, 1);
    uint16_t p = rb_world_port(w);
    const char *mail = "{\"to\":\"ops@example.test\",\"subject\":\"s\",\"body\":\"b\"}";
    struct rb_world_effects fx;
    struct resp a, b, c;

    (void)state;
    assert_int_equal(
        http(p, "POST", "/tools/send_email", "Idempotency-Key: k1\r\n", mail, &a), 0);
    assert_int_equal(
        http(p, "POST", "/tools/send_email", "Idempotency-Key: k1\r\n", mail, &b), 0);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.body, b.body, a.len);
    assert_null(header(&a, "Idempotent-Replayed"));
    assert_non_null(header(&b, "Idempotent-Replayed"));
    rb_world_effects(w, "send_email", &fx);
    assert_int_equal(fx.applied, 1);
    assert_int_equal(fx.replayed, 1);
    assert_int_equal(fx.duplicated, 0);
    resp_free(&a);
    resp_free(&b);

    /* without a key, the same email twice takes effect twice */
    assert_int_equal(post(p, "/tools/send_email", mail, &a), 0);
    resp_free(&a);
    rb_world_effects(w, "send_email", &fx);
    assert_int_equal(fx.applied, 2);
    assert_int_equal(fx.duplicated, 1);

    /* write_record counts versions; a replayed key does not bump it */
    assert_int_equal(http(p, "POST", "/tools/write_record", "Idempotency-Key: w1\r\n",
                          "{\"key\":\"a\",\"value\":1}", &a),
                     0);
    assert_int_equal(http(p, "POST", "/tools/write_record", "Idempotency-Key: w1\r\n",
                          "{\"key\":\"a\",\"value\":1}", &b),
                     0);
    assert_int_equal(http(p, "POST", "/tools/write_record", "Idempotency-Key: w2\r\n",
                          "{\"key\":\"a\",\"value\":2}", &c),
                     0);
    assert_non_null(strstr(a.body, "\"version\":1"));
    assert_non_null(strstr(b.body, "\"version\":1"));
    assert_non_null(strstr(c.body, "\"version\":2"));
    rb_world_effects(w, NULL, &fx);
    assert_int_equal(fx.applied, 4);
    assert_int_equal(fx.replayed, 2);
    resp_free(&a);
    resp_free(&b);
    resp_free(&c);

    /* the control endpoint says the same */
    assert_int_equal(http(p, "GET", "/_world/effects", NULL, NULL, &a), 0);
    assert_non_null(strstr(a.body, "\"applied\":4"));
    resp_free(&a);
    rb_world_stop(w);
}

/* ---- journal ----------------------------------------------------------------- */

/* Waits (bounded) until the first n journal entries have ended: a client
 * may see the end of an answer a moment before the world records it. */
static void settle(struct rb_world *w, size_t n)
{
    struct rb_world_entry e[16];
    size_t i, got = 0;
    int k;

    assert_true(n <= 16);
    for (k = 0; k < 2000; k++) {
        got = rb_world_journal_read(w, 0, e, n);
        for (i = 0; i < got && e[i].end_ns; i++)
            ;
        if (got == n && i == n)
            return;
        usleep(5000);
    }
    fail_msg("journal entries did not end");
}

static void test_journal(void **state)
{
    char path[] = "/tmp/rb_world_journal_XXXXXX";
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct rb_world_entry e[8];
    struct resp r;
    size_t n, lines = 0;
    FILE *f;
    char line[16384];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    rb_world_config_init(&cfg);
    cfg.journal_path = strdup(path);
    cfg.journal_bodies = 1;
    assert_int_equal(rb_world_start(&cfg, &w, NULL), RB_OK);
    rb_world_config_release(&cfg);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &r), 0);
    resp_free(&r);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &r), 0);
    resp_free(&r);
    assert_int_equal(post(rb_world_port(w), "/tools/search", "{\"query\":\"q\"}", &r), 0);
    resp_free(&r);
    /* bytes that are not UTF-8: a 400 whose body is still JSON */
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", "\xff\xfe{", &r), 0);
    assert_int_equal(r.status, 400);
    json_decref(parse(&r));
    resp_free(&r);
    /* control calls are not journaled */
    assert_int_equal(http(rb_world_port(w), "GET", "/_world/status", NULL, NULL, &r), 0);
    resp_free(&r);

    settle(w, 4);
    n = rb_world_journal_read(w, 0, e, 8);
    assert_int_equal(n, 4);
    assert_int_equal(e[0].seq, 1);
    assert_string_equal(e[0].route, "/v1/chat/completions");
    assert_int_equal(e[0].status, 200);
    assert_true(e[0].completed);
    assert_int_equal(strlen(e[0].hash), RB_HASH_HEX_LEN);
    assert_string_equal(e[0].hash, e[1].hash);
    assert_int_equal(e[0].repeat_of, 0);
    assert_int_equal(e[1].repeat_of, 1);
    assert_true(e[0].end_ns >= e[0].start_ns && e[0].start_ns > 0);
    assert_true(e[1].start_ns >= e[0].start_ns);
    assert_string_equal(e[0].response_hash, e[1].response_hash);
    assert_string_equal(e[2].tool, "search");
    assert_int_equal(e[0].prompt_tokens, 15);
    assert_int_equal(e[3].status, 400);
    assert_string_equal(e[3].hash, "");
    rb_world_stop(w);

    /* the file: one JSON line per entry, with the bodies */
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *req;
        assert_non_null(j);
        req = json_string_value(json_object_get(j, "request_body"));
        assert_non_null(req);
        assert_true(json_is_string(json_object_get(j, "response_body")));
        if (json_integer_value(json_object_get(j, "seq")) == 1)
            assert_string_equal(req, hello);
        if (json_integer_value(json_object_get(j, "seq")) == 4)
            assert_string_equal(req, "\xef\xbf\xbd\xef\xbf\xbd{"); /* U+FFFD twice */
        json_decref(j);
        lines++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(lines, 4);
}

/* The callback fires a fault after the 2nd LLM call has ended: the 3rd is
 * hit, the 4th is not. */
struct watcher {
    struct rb_world *w;
    int started, ended; /* LLM calls seen */
    int add_failed;     /* adding the fault failed */
};

static void on_entry(void *arg, const struct rb_world_entry *e)
{
    struct watcher *wt = arg;

    if (strcmp(e->route, "/v1/chat/completions") != 0)
        return;
    if (!e->end_ns) {
        __atomic_add_fetch(&wt->started, 1, __ATOMIC_SEQ_CST);
        return;
    }
    /* (no cmocka asserts here: this runs on a world thread) */
    if (__atomic_add_fetch(&wt->ended, 1, __ATOMIC_SEQ_CST) == 2 &&
        rb_world_faults_add_json(wt->w, "{\"kind\":\"server_error\",\"count\":1}", NULL,
                                 0, NULL, NULL) != RB_OK)
        wt->add_failed = 1;
}

static void test_entry_callback(void **state)
{
    struct rb_world_config cfg;
    struct watcher wt = {NULL, 0, 0, 0};
    struct resp r;
    int i, want[4] = {200, 200, 503, 200};

    (void)state;
    rb_world_config_init(&cfg);
    cfg.on_entry = on_entry;
    cfg.on_entry_arg = &wt;
    assert_int_equal(rb_world_start(&cfg, &wt.w, NULL), RB_OK);
    for (i = 0; i < 4; i++) {
        assert_int_equal(post(rb_world_port(wt.w), "/v1/chat/completions", hello, &r), 0);
        assert_int_equal(r.status, want[i]);
        resp_free(&r);
        /* the end of an exchange is seen after the client has its answer */
        for (int k = 0; k < 5000 && __atomic_load_n(&wt.ended, __ATOMIC_SEQ_CST) < i + 1;
             k++)
            usleep(2000);
    }
    rb_world_stop(wt.w);
    assert_int_equal(wt.started, 4);
    assert_int_equal(wt.ended, 4);
    assert_false(wt.add_failed);
}

/* ---- faults through the in-process API --------------------------------------- */

static void test_fault_count_and_route(void **state)
{
    struct rb_world *w = start(4, 1);
    uint16_t p = rb_world_port(w);
    struct rb_world_fault f;
    struct rb_world_entry e[16];
    struct resp r;
    int id = 0, i;

    (void)state;
    rb_world_fault_init(&f, RB_WORLD_FAULT_SERVER_ERROR);
    f.count = 2;
    f.status = 502;
    snprintf(f.route, sizeof(f.route), "/tools/");
    assert_int_equal(rb_world_fault_add(w, &f, &id, NULL), RB_OK);
    assert_true(id > 0);
    /* another route is not hit */
    assert_int_equal(post(p, "/v1/chat/completions", hello, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    for (i = 0; i < 3; i++) {
        assert_int_equal(post(p, "/tools/search", "{\"query\":\"q\"}", &r), 0);
        assert_int_equal(r.status, i < 2 ? 502 : 200);
        resp_free(&r);
    }
    assert_int_equal(rb_world_fault_hits(w, id), 2);
    assert_int_equal(rb_world_journal_read(w, 0, e, 16), 4);
    assert_string_equal(e[1].fault, "server_error");
    assert_int_equal(e[1].fault_id, id);
    assert_string_equal(e[3].fault, "");
    assert_int_equal(rb_world_fault_hits(w, 999), -1);
    rb_world_stop(w);
}

static void test_fault_share_is_seeded(void **state)
{
    uint16_t ports[2];
    struct rb_world *ws[2] = {start(77, 1), start(77, 1)};
    char pattern[2][41];
    int k, i, hits = 0;

    (void)state;
    for (k = 0; k < 2; k++) {
        struct rb_world_fault f;
        ports[k] = rb_world_port(ws[k]);
        rb_world_fault_init(&f, RB_WORLD_FAULT_RATE_LIMIT);
        f.share = 0.5;
        assert_int_equal(rb_world_fault_add(ws[k], &f, NULL, NULL), RB_OK);
        for (i = 0; i < 40; i++) {
            struct resp r;
            assert_int_equal(http(ports[k], "GET", "/v1/models", NULL, NULL, &r), 0);
            assert_true(r.status == 200 || r.status == 429);
            if (r.status == 429)
                assert_non_null(header(&r, "Retry-After"));
            pattern[k][i] = r.status == 429 ? 'x' : '.';
            resp_free(&r);
        }
        pattern[k][40] = '\0';
    }
    /* same seed, same calls: the same calls are hit */
    assert_string_equal(pattern[0], pattern[1]);
    for (i = 0; i < 40; i++)
        hits += pattern[0][i] == 'x';
    assert_true(hits > 5 && hits < 35);
    rb_world_stop(ws[0]);
    rb_world_stop(ws[1]);
}

static void test_fault_heal_and_bad_faults(void **state)
{
    struct rb_world *w = start(4, 1);
    uint16_t p = rb_world_port(w);
    struct rb_world_fault f;
    struct rb_error err;
    struct resp r;
    int id = 0;

    (void)state;
    rb_world_fault_init(&f, RB_WORLD_FAULT_SERVER_ERROR);
    assert_int_equal(rb_world_fault_add(w, &f, &id, NULL), RB_OK);
    assert_int_equal(http(p, "GET", "/v1/models", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    resp_free(&r);
    assert_int_equal(rb_world_fault_heal(w, id), RB_OK);
    assert_int_equal(rb_world_fault_heal(w, id), RB_ENOENT);
    assert_int_equal(http(p, "GET", "/v1/models", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    rb_error_init(&err);
    f.share = 0;
    assert_int_equal(rb_world_fault_add(w, &f, NULL, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "share"));
    rb_world_fault_init(&f, RB_WORLD_FAULT_REFUSED);
    f.count = 3;
    assert_int_equal(rb_world_fault_add(w, &f, NULL, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "refused"));
    assert_int_equal(
        rb_world_faults_add_json(w, "{\"kind\":\"melt\"}", NULL, 0, NULL, &err),
        RB_EINVAL);
    assert_non_null(strstr(err.message, "'melt'"));
    assert_int_equal(rb_world_faults_add_json(w,
                                              "[{\"kind\":\"reset\"},{\"kind\":\"stall\","
                                              "\"cuont\":1}]",
                                              NULL, 0, NULL, &err),
                     RB_EINVAL);
    assert_non_null(strstr(err.message, "faults[1]"));
    assert_non_null(strstr(err.message, "'cuont'"));
    /* all or nothing: the valid reset was not added */
    assert_int_equal(http(p, "GET", "/v1/models", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    rb_world_stop(w);
}

static void test_reset_and_truncate(void **state)
{
    struct rb_world *w = start(4, 1);
    uint16_t p = rb_world_port(w);
    struct resp r;
    struct rb_world_entry e[4];

    (void)state;
    assert_int_equal(rb_world_faults_add_json(
                         w,
                         "[{\"kind\":\"reset\",\"count\":1},"
                         "{\"kind\":\"truncate\",\"count\":1,\"chunk_bytes\":10}]",
                         NULL, 0, NULL, NULL),
                     RB_OK);
    assert_int_equal(post(p, "/v1/chat/completions", hello, &r), 0);
    assert_int_equal(r.status, 0); /* no answer */
    resp_free(&r);
    assert_int_equal(post(p, "/v1/chat/completions", hello, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 10);
    assert_false(r.complete);
    resp_free(&r);
    assert_int_equal(post(p, "/v1/chat/completions", hello, &r), 0);
    assert_true(r.complete);
    resp_free(&r);
    settle(w, 3);
    assert_int_equal(rb_world_journal_read(w, 0, e, 4), 3);
    assert_string_equal(e[0].fault, "reset");
    assert_int_equal(e[0].status, 0);
    assert_false(e[0].completed);
    assert_string_equal(e[1].fault, "truncate");
    assert_false(e[1].completed);
    assert_true(e[2].completed);
    rb_world_stop(w);
}

/* Connects and sends `req` without reading; returns the socket. */
static int send_only(uint16_t port, const char *req)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return fd;
}

/* Reads one response with a Content-Length from a keep-alive socket; returns
 * its status, or 0 when the connection ended first. */
static int read_one(int fd)
{
    char buf[8192];
    size_t len = 0;
    int status = 0;
    time_t t0 = time(NULL);

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        char *sep, *cl;
        ssize_t got;
        assert_true(time(NULL) - t0 < 20); /* hang guard */
        if (poll(&p, 1, 1000) <= 0)
            continue;
        got = read(fd, buf + len, sizeof(buf) - len - 1);
        if (got <= 0)
            return 0;
        len += (size_t)got;
        buf[len] = '\0';
        sep = strstr(buf, "\r\n\r\n");
        cl = strcasestr(buf, "Content-Length:");
        if (sep && cl && len >= (size_t)(sep + 4 - buf) + (size_t)atol(cl + 15)) {
            sscanf(buf, "HTTP/1.1 %d", &status);
            return status;
        }
    }
}

static void test_refused_and_listening_again(void **state)
{
    struct rb_world *w = start(4, 1);
    uint16_t p = rb_world_port(w);
    const char *get = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
    struct rb_world_fault f;
    struct resp r;
    int fd = send_only(p, get), id = 0, rc = 0;

    (void)state;
    assert_int_equal(read_one(fd), 200); /* a kept-alive connection */
    rb_world_fault_init(&f, RB_WORLD_FAULT_REFUSED);
    assert_int_equal(rb_world_fault_add(w, &f, &id, NULL), RB_OK);
    /* new connections are refused as soon as the fault is added */
    rc = http(p, "GET", "/v1/models", NULL, NULL, &r);
    resp_free(&r);
    assert_int_equal(rc, -ECONNREFUSED);
    /* a request on the open connection is reset */
    assert_int_equal(write(fd, get, strlen(get)), (ssize_t)strlen(get));
    assert_int_equal(read_one(fd), 0);
    close(fd);
    /* healed: the same port answers again, at once */
    assert_int_equal(rb_world_fault_heal(w, id), RB_OK);
    rc = http(p, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    rb_world_stop(w);
}

static void test_latency_and_stop_during_stall(void **state)
{
    char buf[256];
    int fd, i;
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct resp r;
    struct timespec t0, t1;
    double secs;

    (void)state;
    rb_world_config_init(&cfg);
    cfg.latency_ms = 300;
    assert_int_equal(rb_world_start(&cfg, &w, NULL), RB_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(post(rb_world_port(w), "/v1/chat/completions", hello, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs >= 0.29); /* at least the configured latency */
    /* a stalled call does not keep the world from stopping */
    assert_int_equal(
        rb_world_faults_add_json(w, "{\"kind\":\"stall\"}", NULL, 0, NULL, NULL), RB_OK);
    fd = send_only(rb_world_port(w), "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    for (i = 0; i < 200 && rb_world_journal_count(w) < 2; i++)
        usleep(10000);
    assert_int_equal(rb_world_journal_count(w), 2); /* the stalled call arrived */
    rb_world_stop(w);
    /* the client sees the connection end without an answer */
    assert_true(read(fd, buf, sizeof(buf)) <= 0);
    close(fd);
}

/* ---- config -------------------------------------------------------------------- */

static void test_config_file(void **state)
{
    char path[] = "/tmp/rb_world_cfg_XXXXXX";
    struct rb_world_config cfg;
    struct rb_error err;
    FILE *f;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("{\"seed\": 12, \"turns\": 4, \"latency_ms\": 5, \"model\": \"m1\",\n"
          " \"faults\": [{\"kind\": \"slow\", \"route\": \"/v1/\"}]}\n",
          f);
    fclose(f);
    rb_world_config_init(&cfg);
    rb_error_init(&err);
    assert_int_equal(rb_world_config_load(path, &cfg, &err), RB_OK);
    assert_int_equal(cfg.seed, 12);
    assert_int_equal(cfg.turns, 4);
    assert_int_equal(cfg.latency_ms, 5);
    assert_string_equal(cfg.model, "m1");
    assert_non_null(strstr(cfg.faults, "slow"));

    f = fopen(path, "w");
    fputs("{\"seed\": 1,\n \"turn\": 4}\n", f);
    fclose(f);
    assert_int_equal(rb_world_config_load(path, &cfg, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "'turn'"));
    assert_int_equal(cfg.seed, 12); /* unaltered */

    f = fopen(path, "w");
    fputs("{\"seed\": 1,\n \"turns\": }\n", f);
    fclose(f);
    assert_int_equal(rb_world_config_load(path, &cfg, &err), RB_EINVAL);
    assert_int_equal(err.line, 2);

    f = fopen(path, "w");
    fputs("{\"faults\": [{\"kind\": \"server_error\", \"status\": 404}]}\n", f);
    fclose(f);
    assert_int_equal(rb_world_config_load(path, &cfg, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "404"));
    unlink(path);
    assert_int_equal(rb_world_config_load(path, &cfg, &err), RB_ENOENT);
    rb_world_config_release(&cfg);
}

static void test_port_in_use(void **state)
{
    struct rb_world *w = start(1, 1), *w2 = NULL;
    struct rb_world_config cfg;
    struct rb_error err;

    (void)state;
    rb_world_config_init(&cfg);
    cfg.port = rb_world_port(w);
    rb_error_init(&err);
    assert_int_equal(rb_world_start(&cfg, &w2, &err), RB_EIO);
    assert_null(w2);
    assert_non_null(strstr(err.message, "cannot listen on 127.0.0.1:"));
    rb_world_stop(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_request_same_bytes),
        cmocka_unit_test(test_key_order_does_not_matter),
        cmocka_unit_test(test_tool_loop_turns_then_final),
        cmocka_unit_test(test_tool_call_uses_declared_tools),
        cmocka_unit_test(test_token_rule),
        cmocka_unit_test(test_stream_is_sse),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_read_only_tools_are_deterministic),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_entry_callback),
        cmocka_unit_test(test_fault_count_and_route),
        cmocka_unit_test(test_fault_share_is_seeded),
        cmocka_unit_test(test_fault_heal_and_bad_faults),
        cmocka_unit_test(test_reset_and_truncate),
        cmocka_unit_test(test_refused_and_listening_again),
        cmocka_unit_test(test_latency_and_stop_during_stall),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_port_in_use),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
