/*
 * http.c - one JSON POST with timeouts and retries, for the runner's LLM and
 * tool steps (see http.h). A try that fails on the way (refused, reset,
 * timed out, cut short, an answer that is not JSON) or gets 408, 429 or 5xx
 * is tried again after a wait: full jitter over an exponential ceiling, or the
 * Retry-After the server asked for (capped) when that is longer. Other
 * statuses fail at once. The API key goes into the Authorization header and
 * nowhere else: not into messages, not into the failure detail.
 */
#include "http.h"
#include "internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX ((size_t)64 << 20) /* answers larger than this are refused */

/* Headers of every request; "Expect:" turns off 100-continue. */
static const char *const fixed[] = {"Content-Type: application/json",
                                    "Accept: application/json", "Expect:"};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t rb__http_rand(uint64_t *s, uint64_t n)
{
    uint64_t z;

    *s += 0x9e3779b97f4a7c15ull;
    z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return n == UINT64_MAX ? z : z % (n + 1);
}

/* The answer of one try, bounded by BODY_MAX. */
struct sink {
    struct rb_buf body;
    int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;

    if (s->body.len + len > BODY_MAX) {
        s->too_big = 1;
        return 0;
    }
    if (rb_buf_append(&s->body, p, len) != RB_OK)
        return 0;
    return len;
}

static void sleep_ms(int64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}

/* Sorts a failed transfer into a kind; *retry says whether to try again. */
static const char *curl_kind(CURLcode c, int *retry)
{
    *retry = 1;
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "connect";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_PARTIAL_FILE:
        return "truncated";
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return "reset";
    default:
        *retry = 0;
        return "request";
    }
}

static int status_retryable(long status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* Copies the server's error message (OpenAI's error.message, else the start
 * of the body) into `to`, with any copy of the API key blanked. */
static void server_words(const struct rb_buf *body, const char *key, char *to,
                         size_t size)
{
    json_t *root = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *msg = NULL;
    char *hit;

    if (root)
        msg =
            json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    if (!msg)
        msg = body->len ? (const char *)body->data : "";
    snprintf(to, size, "%s", msg);
    json_decref(root);
    for (size_t i = 0; to[i]; i++)
        if ((unsigned char)to[i] < 0x20)
            to[i] = ' ';
    if (key && *key)
        while ((hit = strstr(to, key)) != NULL)
            memset(hit, '*', strlen(key));
}

/* One try: fills *fail and returns 1 when it failed (*retry says whether
 * another try may succeed), 0 when `s` holds a good answer. */
static int try_once(CURL *h, const struct rb__http_req *req, struct sink *s,
                    struct rb__http_fail *fail, int *retry)
{
    char cerr[CURL_ERROR_SIZE];
    curl_off_t ra = -1;
    CURLcode c;
    long status = 0;

    cerr[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    c = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    fail->http_status = status;
    fail->curl_code = (int)c;
    fail->retry_after_ms = 0;
    fail->detail[0] = '\0';
    if (c != CURLE_OK) {
        if (s->too_big) {
            fail->kind = "body";
            *retry = 0;
            snprintf(fail->detail, sizeof(fail->detail), "answer larger than %zu bytes",
                     BODY_MAX);
        } else {
            fail->kind = curl_kind(c, retry);
            snprintf(fail->detail, sizeof(fail->detail), "%s",
                     cerr[0] ? cerr : curl_easy_strerror(c));
        }
        return 1;
    }
    if (status < 200 || status > 299) {
        fail->kind = "http";
        *retry = status_retryable(status);
        if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            fail->retry_after_ms = (int64_t)ra * 1000;
        /* 401 and 403 answers may quote part of the key: not kept. */
        if (status != 401 && status != 403)
            server_words(&s->body, req->api_key, fail->detail, sizeof(fail->detail));
        return 1;
    }
    {
        json_error_t jerr;
        json_t *root = json_loadb((const char *)s->body.data, s->body.len, 0, &jerr);

        if (!root) {
            /* A body cut short without a Content-Length to tell. */
            fail->kind = "body";
            *retry = 1;
            snprintf(fail->detail, sizeof(fail->detail), "answer is not JSON: %s",
                     jerr.text);
            return 1;
        }
        json_decref(root);
    }
    return 0;
}

/* The wait before try `attempt + 1`: full jitter under the doubled ceiling,
 * or the server's Retry-After (capped) when that is longer. */
static int64_t backoff_ms(const struct rb__http_req *req, int attempt,
                          const struct rb__http_fail *fail)
{
    int64_t ceiling = req->backoff_base_ms, wait, ra = fail->retry_after_ms;

    for (int i = 1; i < attempt && ceiling < req->backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > req->backoff_max_ms)
        ceiling = req->backoff_max_ms;
    wait = (int64_t)rb__http_rand(req->rng, (uint64_t)(ceiling > 0 ? ceiling : 0));
    if (ra > req->retry_after_max_ms)
        ra = req->retry_after_max_ms;
    return ra > wait ? ra : wait;
}

enum rb_err rb__http_post(const struct rb__http_req *req, struct rb_buf *out,
                          int *attempts, struct rb__http_fail *fail)
{
    struct curl_slist *hdrs = NULL, *h2;
    struct sink s;
    CURL *h = NULL;
    char line[512];
    int attempt = 0, retry = 0;
    enum rb_err rc = RB_OK;

    memset(fail, 0, sizeof(*fail));
    rb_buf_init(&s.body);
    s.too_big = 0;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK || !(h = curl_easy_init())) {
        fail->kind = "request";
        snprintf(fail->detail, sizeof(fail->detail), "cannot start libcurl");
        rc = RB_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        h2 = curl_slist_append(hdrs, fixed[i]);
        if (!h2)
            goto nomem;
        hdrs = h2;
    }
    if (req->idempotency_key) {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", req->idempotency_key);
        h2 = curl_slist_append(hdrs, line);
        if (!h2)
            goto nomem;
        hdrs = h2;
    }
    if (req->api_key && *req->api_key) {
        size_t n = strlen(req->api_key) + 32;
        char *auth = malloc(n);

        if (!auth)
            goto nomem;
        snprintf(auth, n, "Authorization: Bearer %s", req->api_key);
        h2 = curl_slist_append(hdrs, auth);
        explicit_bzero(auth, n);
        free(auth);
        if (!h2)
            goto nomem;
        hdrs = h2;
    }
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rebound/" RB_VERSION_STRING);

    for (;;) {
        attempt++;
        s.body.len = 0;
        s.too_big = 0;
        if (!try_once(h, req, &s, fail, &retry))
            break;
        fail->attempts = attempt;
        if (!retry || attempt >= req->max_attempts) {
            rc = RB_EHTTP;
            goto out;
        }
        {
            int64_t wait = backoff_ms(req, attempt, fail);

            if (req->on_retry)
                req->on_retry(req->on_retry_arg, attempt, fail, wait);
            sleep_ms(wait);
        }
    }
    if (!s.body.data && rb_buf_append(&s.body, "", 0) != RB_OK)
        goto nomem;
    rb_buf_release(out);
    *out = s.body;
    rb_buf_init(&s.body);
    if (attempts)
        *attempts = attempt;
    goto out;
nomem:
    fail->kind = "request";
    snprintf(fail->detail, sizeof(fail->detail), "out of memory");
    rc = RB_ENOMEM;
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    rb_buf_release(&s.body);
    return rc;
}
