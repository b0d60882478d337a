/*
 * http.h - the runner's HTTP client for LLM and tool steps (llm.c): one JSON
 * POST through a libcurl easy handle, with connect and total timeouts, and
 * retries on connection errors, timeouts, 408, 429 and 5xx, waiting an
 * exponential backoff with full jitter or the server's Retry-After, whichever
 * is longer. Only the runner uses it.
 */
#ifndef REBOUND_RUNNER_HTTP_H
#define REBOUND_RUNNER_HTTP_H

#include <rebound/rebound.h>

#include <stdint.h>

/* Why an exchange failed, and how the last try went. */
struct rb__http_fail {
    const char *kind;       /* static: "http", "timeout", "connect", "reset",
                               "truncated", "body" or "request" */
    long http_status;       /* status of the last answer, 0 when none came */
    int curl_code;          /* CURLcode of the last try, 0 when none */
    int attempts;           /* tries made */
    int64_t retry_after_ms; /* the last Retry-After asked for, 0 when none */
    char detail[256];       /* curl's words, or the server's error message */
};

/* Called before each wait between tries: `attempt` tries have failed so far,
 * the last as `why` says, and the next starts after `wait_ms`. */
typedef void (*rb__http_retry_fn)(void *arg, int attempt, const struct rb__http_fail *why,
                                  int64_t wait_ms);

struct rb__http_req {
    const char *url;             /* http:// or https:// */
    const char *body;            /* JSON request body */
    size_t body_len;             /* bytes in body */
    const char *api_key;         /* sent as "Authorization: Bearer", or NULL */
    const char *idempotency_key; /* sent as Idempotency-Key, or NULL */
    long connect_timeout_ms;     /* per try */
    long timeout_ms;             /* per try, the whole exchange */
    int max_attempts;            /* tries in all, at least 1 */
    int backoff_base_ms;         /* first backoff ceiling; doubles each try */
    int backoff_max_ms;          /* ceiling of the backoff */
    int retry_after_max_ms;      /* cap on a Retry-After wait */
    uint64_t *rng;               /* jitter state (splitmix64), updated */
    rb__http_retry_fn on_retry;  /* may be NULL */
    void *on_retry_arg;          /* passed to on_retry */
};

/*
 * POSTs req->body to req->url and expects a 2xx answer whose body is JSON.
 * Returns RB_OK with the body in `out` (replacing its contents) and the
 * tries made in *attempts (may be NULL). On failure returns RB_EHTTP (or
 * RB_ENOMEM), fills *fail and leaves `out` unaltered. The API key is never
 * copied anywhere but the request's header.
 */
enum rb_err rb__http_post(const struct rb__http_req *req, struct rb_buf *out,
                          int *attempts, struct rb__http_fail *fail);

/* A uniform draw in [0, n] from the splitmix64 state *s. */
uint64_t rb__http_rand(uint64_t *s, uint64_t n);

#endif /* REBOUND_RUNNER_HTTP_H */
