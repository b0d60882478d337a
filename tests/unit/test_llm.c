/*
 * test_llm.c - unit tests of the durable LLM and tool steps (runner/llm.c,
 * runner/http.c) against the real world server on loopback, started in
 * process: replay from the log after a reopen, the global cache across runs,
 * every fault form of the world through the retry logic (reset, refused,
 * stall against the timeout, slow, 5xx, 429 with Retry-After, truncated
 * bodies), the structured error recorded when retries run out, the
 * Idempotency-Key of side-effecting tools across retries and restarts, and
 * the API key never reaching the store, the events or the world's journal.
 *
 * ctest-timeout: 90
 */
#define _GNU_SOURCE
#include "harness/world/world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#define HELLO "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
#define SECRET "sk-test-7f3a9c1e5b2d4068aa11cafe0ddba11"

/* ---- fixture: a world, a store folder and an event pipe ----------------- */

struct fx {
    struct rb_world *w;
    char dir[64];    /* scratch folder */
    char store[96];  /* the store inside it */
    char base[128];  /* OpenAI base URL of the world */
    char tools[128]; /* tools URL of the world */
    int ev[2];       /* event pipe: read end, write end */
    struct rb_store *st;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rb_world_config cfg;
    struct rb_error err;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rb-test-llm-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
    rb_world_config_init(&cfg);
    cfg.seed = 7;
    assert_int_equal(rb_world_start(&cfg, &f->w, &err), RB_OK);
    rb_world_config_release(&cfg);
    snprintf(f->base, sizeof(f->base), "%s/v1", rb_world_url(f->w));
    snprintf(f->tools, sizeof(f->tools), "%s/tools/", rb_world_url(f->w));
    assert_int_equal(pipe(f->ev), 0);
    assert_int_equal(fcntl(f->ev[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(rb_store_open(f->store, NULL, &f->st, &err), RB_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    rb_store_close(f->st);
    rb_world_stop(f->w);
    close(f->ev[0]);
    close(f->ev[1]);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static struct rb_run *open_run(struct fx *f, const char *id)
{
    struct rb_run_opts ro = {0};
    struct rb_run *run = NULL;
    struct rb_error err;

    ro.event_fd = f->ev[1];
    assert_int_equal(rb_run_open(f->st, id, &ro, &run, &err), RB_OK);
    return run;
}

/* Fast retries, seeded jitter, short timeouts: the test's policy. */
static struct rb_llm_opts fast_opts(const struct fx *f)
{
    struct rb_llm_opts o;

    memset(&o, 0, sizeof(o));
    o.base_url = f->base;
    o.tools_url = f->tools;
    o.api_key = "";
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 5000;
    o.max_attempts = 5;
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 50;
    o.jitter_seed = 42;
    return o;
}

/* Everything written to the event pipe so far (new, NUL-terminated). */
static char *drain_events(struct fx *f)
{
    struct rb_buf b;
    char chunk[4096];
    ssize_t n;

    rb_buf_init(&b);
    while ((n = read(f->ev[0], chunk, sizeof(chunk))) > 0)
        assert_int_equal(rb_buf_append(&b, chunk, (size_t)n), RB_OK);
    assert_int_equal(rb_buf_append(&b, "", 0), RB_OK);
    return (char *)b.data;
}

/* The step.retry events among `events`, as JSON objects (new array). */
static json_t *retries(const char *events)
{
    json_t *arr = json_array();
    const char *p = events;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_t *o = json_loadb(p, len, 0, NULL);

        assert_non_null(o);
        if (!strcmp(json_string_value(json_object_get(o, "kind")), "step.retry"))
            json_array_append(arr, o);
        json_decref(o);
        p = nl ? nl + 1 : NULL;
    }
    return arr;
}

static json_int_t geti(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    assert_non_null(v);
    return json_integer_value(v);
}

/* The failure context recorded for `key` of `run_id`, parsed (new). */
struct found_err {
    const char *key;
    json_t *error;
};

static int on_rec(void *arg, const struct rb_step_record *rec)
{
    struct found_err *fe = arg;

    if (!strcmp(rec->key, fe->key) && rec->error)
        fe->error = json_loads(rec->error, 0, NULL);
    return 0;
}

static json_t *recorded_error(struct fx *f, const char *run_id, const char *key)
{
    struct found_err fe = {key, NULL};
    struct rb_error err;

    assert_int_equal(rb_store_read_log(f->st, run_id, on_rec, &fe, &err), RB_OK);
    assert_non_null(fe.error);
    return fe.error;
}

/* ---- replay and cache ---------------------------------------------------- */

static void test_replay_after_reopen(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_step_info info;
    struct rb_buf a, b;
    struct rb_error err;
    struct rb_run *run = open_run(f, "replay");
    json_t *ans;

    rb_buf_init(&a);
    rb_buf_init(&b);
    assert_int_equal(rb_llm_step(run, "ask", &o, HELLO, &a, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    ans = json_loadb((const char *)a.data, a.len, 0, NULL);
    assert_non_null(ans);
    assert_string_equal(json_string_value(json_object_get(ans, "object")),
                        "chat.completion");
    json_decref(ans);
    rb_run_abandon(run); /* as a crash leaves it */

    run = open_run(f, "replay");
    assert_int_equal(rb_run_attempt(run), 2);
    assert_int_equal(rb_llm_step(run, "ask", &o, HELLO, &b, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_LOG);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(rb_world_journal_count(f->w), 1); /* asked once, not twice */
    rb_run_close(run);
    rb_buf_release(&a);
    rb_buf_release(&b);
    free(drain_events(f));
}

static void test_cache_across_runs(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_error err;
    struct rb_run *r1 = open_run(f, "cache-1"), *r2 = open_run(f, "cache-2");
    const char *t0 =
        "{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"role\":\"user\","
        "\"content\":\"what is 2+2\"}]}";
    /* The same request with its keys in another order. */
    const char *t0b = "{\"messages\":[{\"content\":\"what is 2+2\",\"role\":\"user\"}],"
                      "\"temperature\":0,\"model\":\"m\"}";

    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(r1, "q", &o, t0, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(rb_llm_step(r2, "q", &o, t0b, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_int_equal(rb_world_journal_count(f->w), 1);

    /* Without temperature 0 the call is not deterministic: no cache. */
    assert_int_equal(rb_llm_step(r1, "free", &o, HELLO, &out, &info, &err), RB_OK);
    assert_int_equal(rb_llm_step(r2, "free", &o, HELLO, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    assert_int_equal(rb_world_journal_count(f->w), 3);

    /* Forced on, for any request. */
    o.cache = 1;
    assert_int_equal(rb_llm_step(r1, "forced", &o, HELLO, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC); /* the "free" answers were not cached */
    assert_int_equal(rb_llm_step(r2, "forced", &o, HELLO, &out, &info, &err), RB_OK);
    assert_int_equal(info.source, RB_FROM_CACHE);
    assert_int_equal(rb_world_journal_count(f->w), 4);
    rb_run_close(r1);
    rb_run_close(r2);
    rb_buf_release(&out);
    free(drain_events(f));
}

/* ---- faults through the retry logic -------------------------------------- */

/* Adds a fault of `kind` for `count` calls on `route`. */
static int add_fault(struct fx *f, enum rb_world_fault_kind kind, const char *route,
                     int count)
{
    struct rb_world_fault ft;
    struct rb_error err;
    int id = 0;

    rb_world_fault_init(&ft, kind);
    snprintf(ft.route, sizeof(ft.route), "%s", route);
    ft.count = count;
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    return id;
}

/* Runs step `key` (in a fresh run) through a fault added beforehand; it must
 * succeed after at least one retry whose reason is `reason`. */
static void through_fault(struct fx *f, const struct rb_llm_opts *o, const char *key,
                          const char *reason)
{
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_error err;
    struct rb_run *run = open_run(f, key);
    char *ev;
    json_t *rs, *ans;

    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, key, o, HELLO, &out, &info, &err), RB_OK);
    ans = json_loadb((const char *)out.data, out.len, 0, NULL);
    assert_non_null(ans); /* a whole answer, not a piece */
    json_decref(ans);
    ev = drain_events(f);
    rs = retries(ev);
    assert_true(json_array_size(rs) >= 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(rs, 0), "reason")), reason);
    json_decref(rs);
    free(ev);
    rb_run_close(run);
    rb_buf_release(&out);
}

static void test_faults_are_retried(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_world_fault ft;
    struct rb_error err;
    int id;

    add_fault(f, RB_WORLD_FAULT_RESET, "/v1/", 1);
    through_fault(f, &o, "reset", "reset");

    add_fault(f, RB_WORLD_FAULT_SERVER_ERROR, "/v1/", 2);
    through_fault(f, &o, "server-error", "http");

    add_fault(f, RB_WORLD_FAULT_TRUNCATE, "/v1/", 1);
    through_fault(f, &o, "truncate", "truncated");

    /* A stall is cut by the timeout and tried again. */
    o.timeout_ms = 500;
    add_fault(f, RB_WORLD_FAULT_STALL, "/v1/", 1);
    through_fault(f, &o, "stall", "timeout");

    /* Refused connections: retried until the world listens again. */
    o.timeout_ms = 5000;
    o.max_attempts = 200; /* bounded by the fault's 300 ms, not by the count */
    rb_world_fault_init(&ft, RB_WORLD_FAULT_REFUSED);
    ft.duration_ms = 300;
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    through_fault(f, &o, "refused", "connect");
}

static void test_slow_answer_within_timeout_is_not_retried(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_world_fault ft;
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_error err;
    struct rb_run *run = open_run(f, "slow");
    char *ev;
    json_t *rs;
    int id;

    rb_world_fault_init(&ft, RB_WORLD_FAULT_SLOW);
    ft.delay_ms = 20;
    ft.chunk_bytes = 64;
    ft.count = 1;
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, "slow", &o, HELLO, &out, &info, &err), RB_OK);
    assert_int_equal(rb_world_fault_hits(f->w, id), 1);
    ev = drain_events(f);
    rs = retries(ev);
    assert_int_equal(json_array_size(rs), 0);
    assert_int_equal(rb_world_journal_count(f->w), 1);
    json_decref(rs);
    free(ev);
    rb_run_close(run);
    rb_buf_release(&out);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_retry_after_is_honoured(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_world_fault ft;
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_error err;
    struct rb_run *run = open_run(f, "rate");
    int64_t t0;
    char *ev;
    json_t *rs, *r;
    int id;

    rb_world_fault_init(&ft, RB_WORLD_FAULT_RATE_LIMIT);
    ft.retry_after_s = 1;
    ft.count = 1;
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    rb_buf_init(&out);
    t0 = now_ms();
    assert_int_equal(rb_llm_step(run, "rate", &o, HELLO, &out, &info, &err), RB_OK);
    assert_true(now_ms() - t0 >= 1000); /* a lower bound only: the wait was asked for */
    ev = drain_events(f);
    rs = retries(ev);
    assert_int_equal(json_array_size(rs), 1);
    r = json_array_get(rs, 0);
    assert_int_equal(geti(r, "http_status"), 429);
    assert_int_equal(geti(r, "retry_after_ms"), 1000);
    assert_true(geti(r, "wait_ms") >= 1000);
    json_decref(rs);
    free(ev);

    /* A Retry-After larger than the cap waits the cap. */
    rb_world_fault_init(&ft, RB_WORLD_FAULT_RATE_LIMIT);
    ft.retry_after_s = 30;
    ft.count = 1;
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    o.retry_after_max_ms = 100;
    assert_int_equal(rb_llm_step(run, "capped", &o, HELLO, &out, &info, &err), RB_OK);
    ev = drain_events(f);
    rs = retries(ev);
    assert_int_equal(json_array_size(rs), 1);
    r = json_array_get(rs, 0);
    assert_int_equal(geti(r, "retry_after_ms"), 30000);
    assert_int_equal(geti(r, "wait_ms"), 100);
    json_decref(rs);
    free(ev);
    rb_run_close(run);
    rb_buf_release(&out);
}

/* ---- retries run out ------------------------------------------------------ */

/* Runs `key` expecting RB_EHTTP; checks the recorded "http" context. */
static void expect_failure(struct fx *f, struct rb_run *run, const struct rb_llm_opts *o,
                           const char *key, const char *request, const char *kind,
                           int status, int curl_code, int attempts)
{
    struct rb_buf out;
    struct rb_error err;
    json_t *e, *h;
    char want[64];

    rb_buf_init(&out);
    assert_int_equal(rb_buf_append(&out, "before", 6), RB_OK);
    assert_int_equal(rb_llm_step(run, key, o, request, &out, NULL, &err), RB_EHTTP);
    assert_string_equal((const char *)out.data, "before"); /* unaltered */
    snprintf(want, sizeof(want), "after %d tr", attempts);
    assert_non_null(strstr(err.message, want));
    assert_non_null(strstr(err.message, key));
    assert_int_equal(err.cause, curl_code ? curl_code : status);
    assert_string_equal(err.cause_kind, curl_code ? "curl" : "http");
    e = recorded_error(f, rb_run_id(run), key);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "RB_EHTTP");
    h = json_object_get(e, "http");
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "kind")), kind);
    assert_int_equal(geti(h, "http_status"), status);
    assert_int_equal(geti(h, "curl_code"), curl_code);
    assert_int_equal(geti(h, "attempts"), attempts);
    assert_non_null(json_object_get(h, "retry_after_ms"));
    json_decref(e);
    rb_buf_release(&out);
}

static void test_exhausted_retries_give_a_structured_error(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_world_fault ft;
    struct rb_error err;
    struct rb_run *run = open_run(f, "exhausted");
    struct rb_buf out;
    struct rb_step_info info;
    int id;
    size_t before;

    o.max_attempts = 3;
    id = add_fault(f, RB_WORLD_FAULT_SERVER_ERROR, "/v1/", 0);
    expect_failure(f, run, &o, "five-oh-three", HELLO, "http", 503, 0, 3);
    assert_int_equal(rb_world_fault_hits(f->w, id), 3);
    assert_int_equal(rb_world_fault_heal(f->w, id), RB_OK);

    o.timeout_ms = 200;
    o.max_attempts = 2;
    id = add_fault(f, RB_WORLD_FAULT_STALL, "/v1/", 0);
    expect_failure(f, run, &o, "stalled", HELLO, "timeout", 0, 28, 2);
    assert_int_equal(rb_world_fault_heal(f->w, id), RB_OK);

    o.timeout_ms = 5000;
    rb_world_fault_init(&ft, RB_WORLD_FAULT_REFUSED);
    assert_int_equal(rb_world_fault_add(f->w, &ft, &id, &err), RB_OK);
    expect_failure(f, run, &o, "refused", HELLO, "connect", 0, 7, 2);
    assert_int_equal(rb_world_fault_heal(f->w, id), RB_OK);

    /* A request the server rejects is not tried again. */
    before = rb_world_journal_count(f->w);
    o.max_attempts = 5;
    expect_failure(f, run, &o, "bad-request", "{\"messages\":[]}", "http", 400, 0, 1);
    assert_int_equal(rb_world_journal_count(f->w), before + 1);

    /* The failed step runs again on the next call, and now succeeds. */
    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, "five-oh-three", &o, HELLO, &out, &info, &err),
                     RB_OK);
    assert_int_equal(info.source, RB_FROM_EXEC);
    rb_buf_release(&out);
    rb_run_close(run);
    free(drain_events(f));
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_run *run = open_run(f, "bad");
    struct rb_buf out;
    struct rb_error err;

    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, "x", &o, "{\"model\":", &out, NULL, &err),
                     RB_EINVAL);
    assert_non_null(strstr(err.message, "request of llm step 'x' is not JSON: line 1"));
    assert_int_equal(rb_llm_step(run, "x", &o, "[1]", &out, NULL, &err), RB_EINVAL);
    assert_string_equal(err.message, "request of llm step 'x' is not a JSON object");
    assert_int_equal(rb_tool_step(run, "t", &o, "../x", "{}", &out, NULL, &err),
                     RB_EINVAL);
    assert_non_null(strstr(err.message, "invalid tool name '../x'"));
    o.base_url = NULL;
    unsetenv("OPENAI_BASE_URL");
    assert_int_equal(rb_llm_step(run, "x", &o, HELLO, &out, NULL, &err), RB_EINVAL);
    assert_non_null(strstr(err.message, "OPENAI_BASE_URL"));
    assert_null(out.data);
    assert_int_equal(rb_world_journal_count(f->w), 0);
    rb_run_close(run);
}

/* ---- tools and idempotency ------------------------------------------------ */

static void test_idempotency_key_applies_once(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_world_effects fx;
    struct rb_step_info info;
    struct rb_buf out;
    struct rb_error err;
    struct rb_run *run = open_run(f, "tools");
    json_t *ans;

    rb_buf_init(&out);
    /* A read-only tool. */
    assert_int_equal(rb_tool_step(run, "search", &o, "search", "{\"query\":\"cats\"}",
                                  &out, &info, &err),
                     RB_OK);
    ans = json_loadb((const char *)out.data, out.len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(ans, "results")), 3);
    json_decref(ans);

    /* The effect happens, the answer is cut: the retry carries the same key. */
    o.side_effect = 1;
    add_fault(f, RB_WORLD_FAULT_TRUNCATE, "/tools/send_email", 1);
    assert_int_equal(rb_tool_step(run, "mail", &o, "send_email",
                                  "{\"to\":\"a@example.com\",\"body\":\"hi\"}", &out,
                                  &info, &err),
                     RB_OK);
    rb_world_effects(f->w, "send_email", &fx);
    assert_int_equal(fx.applied, 1);
    assert_int_equal(fx.replayed, 1);
    assert_int_equal(fx.duplicated, 0);

    /* A crash after the effect and before the commit: the next attempt of
     * the run sends the same key. */
    o.max_attempts = 1;
    add_fault(f, RB_WORLD_FAULT_TRUNCATE, "/tools/write_record", 1);
    assert_int_equal(rb_tool_step(run, "rec", &o, "write_record",
                                  "{\"key\":\"k\",\"value\":\"v\"}", &out, &info, &err),
                     RB_EHTTP);
    rb_run_abandon(run);
    run = open_run(f, "tools");
    assert_int_equal(rb_tool_step(run, "rec", &o, "write_record",
                                  "{\"key\":\"k\",\"value\":\"v\"}", &out, &info, &err),
                     RB_OK);
    rb_world_effects(f->w, "write_record", &fx);
    assert_int_equal(fx.applied, 1);
    assert_int_equal(fx.replayed, 1);

    /* Without the flag no key is sent, and the same fault doubles the effect:
     * what the key prevents. */
    o.side_effect = 0;
    o.max_attempts = 5;
    add_fault(f, RB_WORLD_FAULT_TRUNCATE, "/tools/send_email", 1);
    assert_int_equal(rb_tool_step(run, "mail-2", &o, "send_email",
                                  "{\"to\":\"b@example.com\"}", &out, &info, &err),
                     RB_OK);
    rb_world_effects(f->w, "send_email", &fx);
    assert_int_equal(fx.applied, 3);
    assert_int_equal(fx.duplicated, 1);
    rb_run_close(run);
    rb_buf_release(&out);
    free(drain_events(f));
}

/* ---- the API key ------------------------------------------------------------ */

/* A one-shot HTTP server that keeps the request it got. */
struct catcher {
    int fd;
    uint16_t port;
    char req[8192];
};

static void *catch_one(void *arg)
{
    struct catcher *c = arg;
    const char *answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    size_t len = 0;
    struct pollfd p;
    int fd;

    p.fd = c->fd;
    p.events = POLLIN;
    if (poll(&p, 1, 10000) != 1)
        return NULL;
    fd = accept(c->fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (int i = 0; i < 100 && !strstr(c->req, "\r\n\r\n{"); i++) {
        struct pollfd q = {fd, POLLIN, 0};
        ssize_t n;

        if (poll(&q, 1, 100) != 1)
            continue;
        n = read(fd, c->req + len, sizeof(c->req) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (write(fd, answer, strlen(answer)) < 0)
        len = 0;
    close(fd);
    return NULL;
}

/* 1 when the file at `path` holds `needle`. */
static int file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;
    int hit;

    if (!fp)
        return 0;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    hit = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return hit;
}

static int leaks;
static int files_seen;

static int check_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_F) {
        files_seen++;
        if (file_has(path, SECRET))
            leaks++;
    }
    return 0;
}

static void test_api_key_never_stored(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_step_info info;
    struct rb_buf out, big;
    struct rb_error err;
    struct rb_run *run = open_run(f, "secret");
    struct catcher c;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    pthread_t th;
    struct rb_world_config cfg;
    struct rb_world_fault ft;
    struct rb_world *w2 = NULL;
    char url[96], journal[128], *ev;

    /* The key is sent: a server of our own sees it in the header. */
    memset(&c, 0, sizeof(c));
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(c.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(c.fd, 4), 0);
    assert_int_equal(getsockname(c.fd, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(pthread_create(&th, NULL, catch_one, &c), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1", ntohs(sa.sin_port));
    setenv("OPENAI_API_KEY", SECRET, 1);
    setenv("OPENAI_BASE_URL", url, 1);
    o.api_key = NULL;
    o.base_url = NULL;
    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, "caught", &o, HELLO, &out, &info, &err), RB_OK);
    pthread_join(th, NULL);
    close(c.fd);
    assert_non_null(strstr(c.req, "Authorization: Bearer " SECRET "\r\n"));

    /* Against a world that writes its journal with the bodies: a success,
     * a large answer (a blob), a failure. */
    rb_world_config_init(&cfg);
    snprintf(journal, sizeof(journal), "%s/journal.jsonl", f->dir);
    cfg.journal_path = strdup(journal);
    cfg.journal_bodies = 1;
    assert_int_equal(rb_world_start(&cfg, &w2, &err), RB_OK);
    rb_world_config_release(&cfg);
    snprintf(url, sizeof(url), "%s/v1", rb_world_url(w2));
    setenv("OPENAI_BASE_URL", url, 1);
    assert_int_equal(rb_llm_step(run, "ok", &o, HELLO, &out, &info, &err), RB_OK);
    rb_buf_init(&big);
    {
        const char *head = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                           "\"content\":\"";
        assert_int_equal(rb_buf_append(&big, head, strlen(head)), RB_OK);
    }
    for (int i = 0; i < 2000; i++)
        assert_int_equal(rb_buf_append(&big, "words ", 6), RB_OK);
    assert_int_equal(rb_buf_append(&big, "\"}],\"temperature\":0}", 21), RB_OK);
    assert_int_equal(
        rb_llm_step(run, "cached", &o, (const char *)big.data, &out, &info, &err), RB_OK);
    o.max_attempts = 2;
    rb_world_fault_init(&ft, RB_WORLD_FAULT_SERVER_ERROR);
    assert_int_equal(rb_world_fault_add(w2, &ft, NULL, &err), RB_OK);
    assert_int_equal(rb_llm_step(run, "fails", &o, HELLO, &out, &info, &err), RB_EHTTP);
    assert_null(strstr(err.message, SECRET));
    rb_run_close(run);
    rb_world_stop(w2); /* flushes the journal */
    assert_true(file_has(journal, "\"request_body\""));
    assert_false(file_has(journal, SECRET));

    ev = drain_events(f);
    assert_null(strstr(ev, SECRET));
    assert_non_null(strstr(ev, "step.retry"));
    free(ev);
    leaks = 0;
    files_seen = 0;
    nftw(f->store, check_file, 16, FTW_PHYS);
    assert_true(files_seen >= 2); /* rebound.db and at least one blob */
    assert_int_equal(leaks, 0);
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    rb_buf_release(&out);
    rb_buf_release(&big);
}

/* A URL's user:password stays out of messages and the log. */
static void test_url_credentials_not_shown(void **state)
{
    struct fx *f = *state;
    struct rb_llm_opts o = fast_opts(f);
    struct rb_run *run = open_run(f, "userinfo");
    struct rb_buf out;
    struct rb_error err;
    char url[160];
    json_t *e;

    snprintf(url, sizeof(url), "http://user:" SECRET "@%s/v1",
             rb_world_url(f->w) + strlen("http://"));
    o.base_url = url;
    o.max_attempts = 1;
    add_fault(f, RB_WORLD_FAULT_SERVER_ERROR, "/v1/", 1);
    rb_buf_init(&out);
    assert_int_equal(rb_llm_step(run, "u", &o, HELLO, &out, NULL, &err), RB_EHTTP);
    assert_null(strstr(err.message, SECRET));
    assert_non_null(strstr(err.message, rb_world_url(f->w) + strlen("http://")));
    e = recorded_error(f, "userinfo", "u");
    assert_null(strstr(json_string_value(json_object_get(e, "message")), SECRET));
    assert_null(strstr(
        json_string_value(json_object_get(json_object_get(e, "http"), "url")), SECRET));
    json_decref(e);
    rb_run_close(run);
    free(drain_events(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_across_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_answer_within_timeout_is_not_retried,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exhausted_retries_give_a_structured_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_applies_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_api_key_never_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_credentials_not_shown, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
