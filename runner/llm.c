/*
 * llm.c - rb_llm_step() and rb_tool_step(): an OpenAI-compatible chat request
 * or a tool request made as a durable step. The request is checked and made
 * canonical here, the URL, the API key and the cache policy resolved from the
 * options or the environment, and the call itself (timeouts, retries) is
 * http.c's. The key goes to http.c for the Authorization header and nowhere
 * else: the step's input, meta, events and errors never see it.
 */
#include "http.h"
#include "internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything a call needs, resolved before rb_step(). */
struct call {
    const char *what;        /* "llm" or "tool" (also the step kind) */
    const char *name;        /* the tool, or NULL */
    char *url;               /* owned; full URL with any user:password */
    char *shown_url;         /* owned; the URL without user:password */
    const char *api_key;     /* borrowed (opts or environment), or NULL */
    char idem[40];           /* Idempotency-Key, or "" */
    struct rb__http_req req; /* timeouts and retry policy */
    uint64_t rng;            /* jitter state */
    struct rb_run *run;      /* for retry events */
    const char *key;         /* the step key, for retry events */
};

/* The URL with its user:password@ part (if any) removed, new. */
static char *url_shown(const char *url)
{
    const char *scheme = strstr(url, "://"), *host, *at, *end;
    struct rb_buf b;

    if (!scheme)
        return rb__strdup(url);
    host = scheme + 3;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (!at)
        return rb__strdup(url);
    rb_buf_init(&b);
    if (rb_buf_append(&b, url, (size_t)(host - url)) != RB_OK ||
        rb_buf_append(&b, at + 1, strlen(at + 1)) != RB_OK) {
        rb_buf_release(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* base + "/" + tail, without doubling a final slash of base; new. */
static char *url_join(const char *base, const char *tail)
{
    size_t n = strlen(base);
    struct rb_buf b;

    while (n && base[n - 1] == '/')
        n--;
    rb_buf_init(&b);
    if (rb__buf_printf(&b, "%.*s/%s", (int)n, base, tail) != RB_OK) {
        rb_buf_release(&b);
        return NULL;
    }
    return (char *)b.data;
}

static int tool_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static const char *env_or(const char *given, const char *var)
{
    const char *v;

    if (given)
        return given;
    v = getenv(var);
    return v;
}

static void on_retry(void *arg, int attempt, const struct rb__http_fail *why,
                     int64_t wait_ms)
{
    struct call *c = arg;
    char extra[192];

    snprintf(extra, sizeof(extra),
             "\"try\":%d,\"reason\":\"%s\",\"http_status\":%ld,\"curl_code\":%d,"
             "\"retry_after_ms\":%lld,\"wait_ms\":%lld",
             attempt, why->kind, why->http_status, why->curl_code,
             (long long)why->retry_after_ms, (long long)wait_ms);
    rb__event(c->run, "step.retry", c->key, extra);
}

/* The step function: the call, and on failure its structured context. */
static enum rb_err call_fn(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    struct call *c = arg;
    struct rb__http_fail fail;
    struct rb_buf detail;
    enum rb_err rc;
    char tail[320];

    rc = rb__http_post(&c->req, out, NULL, &fail);
    if (rc == RB_OK)
        return RB_OK;
    if (fail.kind && !strcmp(fail.kind, "http"))
        snprintf(tail, sizeof(tail), "http status %ld%s%s", fail.http_status,
                 fail.detail[0] ? ": " : "", fail.detail);
    else
        snprintf(tail, sizeof(tail), "%s (curl %d: %s)", fail.kind ? fail.kind : "error",
                 fail.curl_code, fail.detail);
    rb__fail(err, rc, "%s call '%s' to '%s' failed after %d %s: %s", c->what, ctx->key,
             c->shown_url, fail.attempts, fail.attempts == 1 ? "try" : "tries", tail);
    if (err) {
        if (fail.curl_code) {
            err->cause = fail.curl_code;
            err->cause_kind = "curl";
        } else if (fail.http_status) {
            err->cause = (int)fail.http_status;
            err->cause_kind = "http";
        }
    }
    rb_buf_init(&detail);
    if (rb__buf_printf(&detail,
                       "\"http\":{\"kind\":\"%s\",\"http_status\":%ld,\"curl_code\":%d,"
                       "\"attempts\":%d,\"retry_after_ms\":%lld,\"url\":",
                       fail.kind ? fail.kind : "request", fail.http_status,
                       fail.curl_code, fail.attempts,
                       (long long)fail.retry_after_ms) == RB_OK &&
        rb__json_str(&detail, c->shown_url) == RB_OK &&
        rb_buf_append(&detail, "}", 1) == RB_OK) {
        free(ctx->run->fail_extra);
        ctx->run->fail_extra = (char *)detail.data;
    } else {
        rb_buf_release(&detail);
    }
    return rc;
}

/* FNV-1a of the run id and step key: the jitter stream of a seeded call. */
static uint64_t key_mix(const char *run_id, const char *key)
{
    uint64_t h = 1469598103934665603ull;

    for (const char *p = run_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static int is_zero_temperature(json_t *req)
{
    json_t *t = json_object_get(req, "temperature");

    return t && json_is_number(t) && json_number_value(t) == 0.0;
}

static enum rb_err do_call(struct rb_run *run, const char *key,
                           const struct rb_llm_opts *opts, const char *what,
                           const char *tool, const char *json, struct rb_buf *out,
                           struct rb_step_info *info, struct rb_error *err)
{
    static const struct rb_llm_opts defaults = {0};
    struct call c;
    struct rb_step_opts so;
    struct rb_buf input, meta;
    json_error_t jerr;
    json_t *req = NULL;
    char *canon = NULL;
    const char *base;
    int cache;
    enum rb_err rc;

    if (!opts)
        opts = &defaults;
    memset(&c, 0, sizeof(c));
    rb_buf_init(&input);
    rb_buf_init(&meta);
    if (!run || !key || !json)
        return rb__fail(err, RB_EINVAL, "%s step needs a run, a key and a request", what);
    rc = rb_name_check("step name", key, err);
    if (rc != RB_OK)
        return rc;
    if (tool && !tool_name_ok(tool))
        return rb__fail(err, RB_EINVAL,
                        "invalid tool name '%s': use letters, digits, '_', '-' and '.'",
                        tool);

    req = json_loads(json, 0, &jerr);
    if (!req || !json_is_object(req)) {
        rc = req ? rb__fail(err, RB_EINVAL,
                            "request of %s step '%s' is not a JSON object", what, key)
                 : rb__fail(err, RB_EINVAL,
                            "request of %s step '%s' is not JSON: line %d column %d: %s",
                            what, key, jerr.line, jerr.column, jerr.text);
        goto out;
    }

    c.what = what;
    c.name = tool;
    c.run = run;
    c.key = key;
    base = tool ? env_or(opts->tools_url, "REBOUND_TOOLS_URL")
                : env_or(opts->base_url, "OPENAI_BASE_URL");
    if (!base || !*base) {
        rc = rb__fail(err, RB_EINVAL,
                      tool ? "no tools URL for step '%s': set REBOUND_TOOLS_URL or "
                             "opts.tools_url"
                           : "no LLM base URL for step '%s': set OPENAI_BASE_URL or "
                             "opts.base_url",
                      key);
        goto out;
    }
    c.api_key = env_or(opts->api_key, tool ? "REBOUND_TOOLS_API_KEY" : "OPENAI_API_KEY");
    c.url = url_join(base, tool ? tool : "chat/completions");
    c.shown_url = c.url ? url_shown(c.url) : NULL;
    canon = json_dumps(req, JSON_SORT_KEYS | JSON_COMPACT);
    if (!c.url || !c.shown_url || !canon)
        goto nomem;

    /* The step's input: what the answer depends on, and nothing secret. */
    if (rb__buf_printf(&input, "rebound-%s/1\n%s\n%s", what, c.shown_url, canon) != RB_OK)
        goto nomem;
    if (tool) {
        cache = !opts->side_effect && opts->cache > 0;
    } else {
        cache = opts->cache > 0 || (opts->cache == 0 && is_zero_temperature(req));
    }
    if (tool && opts->side_effect) {
        struct rb_buf idm;
        char h[RB_HASH_HEX_LEN + 1];

        rb_buf_init(&idm);
        if (rb__buf_printf(&idm, "rebound-idempotency/1\n%s\n%s", rb_run_id(run), key) !=
            RB_OK) {
            rb_buf_release(&idm);
            goto nomem;
        }
        rb_hash_hex(idm.data, idm.len, h);
        rb_buf_release(&idm);
        snprintf(c.idem, sizeof(c.idem), "rb-%.32s", h);
    }
    rb_buf_append(&meta, "{\"url\":", 7);
    rb__json_str(&meta, c.shown_url);
    if (tool) {
        rb_buf_append(&meta, ",\"tool\":", 8);
        rb__json_str(&meta, tool);
    }
    if (c.idem[0])
        rb__buf_printf(&meta, ",\"idempotency_key\":\"%s\"", c.idem);
    if (rb_buf_append(&meta, "}", 1) != RB_OK)
        goto nomem;

    c.rng = opts->jitter_seed ? opts->jitter_seed ^ key_mix(rb_run_id(run), key)
                              : (uint64_t)rb__mono_ns() ^ ((uint64_t)getpid() << 32) ^
                                    key_mix(rb_run_id(run), key);
    c.req.url = c.url;
    c.req.body = json;
    c.req.body_len = strlen(json);
    c.req.api_key = c.api_key;
    c.req.idempotency_key = c.idem[0] ? c.idem : NULL;
    c.req.connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
    c.req.timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 120000;
    c.req.max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
    c.req.backoff_base_ms = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : 500;
    c.req.backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 30000;
    c.req.retry_after_max_ms =
        opts->retry_after_max_ms > 0 ? opts->retry_after_max_ms : 60000;
    c.req.rng = &c.rng;
    c.req.on_retry = on_retry;
    c.req.on_retry_arg = &c;

    memset(&so, 0, sizeof(so));
    so.kind = what;
    so.input = input.data;
    so.input_len = input.len;
    so.cache = cache ? RB_CACHE_ON : RB_CACHE_OFF;
    so.version = opts->version;
    so.meta = (const char *)meta.data;
    rc = rb_step(run, key, &so, call_fn, &c, out, info, err);
    goto out;
nomem:
    rc = rb__fail(err, RB_ENOMEM, "out of memory");
out:
    json_decref(req);
    free(canon);
    free(c.url);
    free(c.shown_url);
    rb_buf_release(&input);
    rb_buf_release(&meta);
    return rc;
}

enum rb_err rb_llm_step(struct rb_run *run, const char *key,
                        const struct rb_llm_opts *opts, const char *request_json,
                        struct rb_buf *out, struct rb_step_info *info,
                        struct rb_error *err)
{
    return do_call(run, key, opts, "llm", NULL, request_json, out, info, err);
}

enum rb_err rb_tool_step(struct rb_run *run, const char *key,
                         const struct rb_llm_opts *opts, const char *tool,
                         const char *args_json, struct rb_buf *out,
                         struct rb_step_info *info, struct rb_error *err)
{
    if (!tool)
        return rb__fail(err, RB_EINVAL, "tool step '%s' needs a tool name",
                        key ? key : "");
    return do_call(run, key, opts, "tool", tool, args_json, out, info, err);
}
