/*
 * server.c - the world's HTTP server: its own listening socket on 127.0.0.1
 * (or the host address it is given)
 * (so a `refused` fault can stop listening and listen again on the same
 * port), connections handed to libmicrohttpd with one thread each (answers
 * may pause: latency, stalls, slow bodies), routing, and the faults that act
 * on delivery (reset, stall, error answers, truncated and slow bodies).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_MAX (16u << 20) /* largest request body read */

/* One HTTP request on a connection. */
struct req {
    struct rb_buf body;   /* request body */
    int too_large;        /* body exceeded BODY_MAX (the rest was dropped) */
    int oom;              /* out of memory while reading */
    struct rb_buf answer; /* copy of the answer's body, for journal_bodies */
    size_t entry;         /* journal index, or SIZE_MAX when not journaled */
    int status;           /* status queued, 0 when none */
    int64_t start_ns;     /* arrival */
};

/* A body sent through a callback: truncated or slowed. */
struct delivery {
    struct rb_world *w;
    struct rb_buf body; /* the full answer */
    size_t limit;       /* bytes to send */
    int truncated;      /* end with an error at `limit` */
    int slow;           /* pause before each piece but the first */
    int sse;            /* slow pieces are whole events */
    int fault_id;       /* the slowing fault: full speed once it ends */
    int delay_ms;       /* pause */
    size_t chunk;       /* bytes per piece (not SSE) */
};

/* ---- waiting and waking ----------------------------------------------------- */

void rb__world_changed(struct rb_world *w)
{
    char c = 'x';
    ssize_t n;

    w->changes++;
    pthread_cond_broadcast(&w->cond);
    if (w->wake[1] >= 0) {
        n = write(w->wake[1], &c, 1); /* full pipe: a wake-up is pending anyway */
        (void)n;
    }
}

void rb__world_sync_listener(struct rb_world *w)
{
    uint64_t target = w->changes;
    int64_t give_up = rb__world_now_ns() + 5000000000LL; /* a hang guard */

    while (w->acceptor_started && !w->stopping && w->applied < target &&
           rb__world_now_ns() < give_up) {
        int64_t until = rb__world_now_ns() + 100000000;
        struct timespec ts = {until / 1000000000, until % 1000000000};
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
}

int rb__world_wait(struct rb_world *w, int64_t deadline_ns, int fault_id)
{
    for (;;) {
        int64_t now = rb__world_now_ns(), until = now + 100000000;
        struct timespec ts;
        if (w->stopping)
            return 1;
        if (fault_id > 0 && !rb__world_fault_alive(w, fault_id, now))
            return 2;
        if (deadline_ns && now >= deadline_ns)
            return 0;
        /* wake at least every 100 ms: a fault's span may end meanwhile */
        if (deadline_ns && deadline_ns < until)
            until = deadline_ns;
        ts.tv_sec = until / 1000000000;
        ts.tv_nsec = until % 1000000000;
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
}

/* ---- listening ---------------------------------------------------------------- */

static int open_listener(struct in_addr host, uint16_t port, uint16_t *bound, int *e)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *e = errno;
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr = host;
    /* IP_FREEBIND: the host end of an agent's namespace comes and goes with
     * its attempts; the world listens there throughout */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        *e = errno;
        close(fd);
        return -1;
    }
    if (bound)
        *bound = ntohs(sa.sin_port);
    return fd;
}

static void accept_all(struct rb_world *w, int fd)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int c = accept4(fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (c < 0 && errno == EINTR)
            continue;
        if (c < 0)
            return; /* EAGAIN, or a connection that died in the backlog */
        /* MHD owns (and closes) the socket from here, even on failure */
        (void)MHD_add_connection(w->daemon, c, (struct sockaddr *)&sa, len);
    }
}

/* Accepts connections, and closes and reopens the listener as `refused`
 * faults start and end. */
static void *acceptor(void *arg)
{
    struct rb_world *w = arg;
    struct pollfd pfd[2];
    char drain[64];

    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        int64_t now = rb__world_now_ns(), until = 0;
        int refused = rb__world_faults_refused(w, now, &until), timeout = 1000, e = 0;
        uint64_t seen = w->changes;
        nfds_t n = 1;
        if (refused && w->listen_fd >= 0) {
            close(w->listen_fd);
            w->listen_fd = -1;
        } else if (!refused && w->listen_fd < 0) {
            w->listen_fd = open_listener(w->addr, w->port, NULL, &e);
            if (w->listen_fd < 0)
                timeout = 20; /* the port is busy a moment: try again soon */
        }
        if (w->listen_fd >= 0 || refused) {
            w->applied = seen; /* the listener is as the faults say */
            pthread_cond_broadcast(&w->cond);
        }
        if (refused && until && (until - now) / 1000000 + 1 < timeout)
            timeout = (int)((until - now) / 1000000 + 1);
        pfd[0].fd = w->wake[0];
        pfd[0].events = POLLIN;
        if (w->listen_fd >= 0) {
            pfd[1].fd = w->listen_fd;
            pfd[1].events = POLLIN;
            n = 2;
        }
        pthread_mutex_unlock(&w->lock);
        /* only this thread closes or reopens listen_fd while the world runs */
        if (poll(pfd, n, timeout) > 0) {
            if (pfd[0].revents)
                while (read(w->wake[0], drain, sizeof(drain)) > 0)
                    ;
            if (n == 2 && pfd[1].revents)
                accept_all(w, pfd[1].fd);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- delivery ------------------------------------------------------------------- */

static ssize_t deliver_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct delivery *d = cls;
    size_t n;

    if (pos >= d->limit)
        return d->truncated ? MHD_CONTENT_READER_END_WITH_ERROR
                            : MHD_CONTENT_READER_END_OF_STREAM;
    n = d->limit - (size_t)pos;
    if (d->slow && pos > 0) {
        int why;
        pthread_mutex_lock(&d->w->lock);
        why = rb__world_wait(d->w, rb__world_now_ns() + (int64_t)d->delay_ms * 1000000,
                             d->fault_id);
        pthread_mutex_unlock(&d->w->lock);
        if (why == 1)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (why == 2)
            d->slow = 0; /* healed: the rest at full speed */
    }
    if (d->slow && d->sse) {
        const unsigned char *p = d->body.data + pos;
        size_t i;
        for (i = 1; i < n; i++)
            if (p[i - 1] == '\n' && p[i] == '\n')
                break;
        if (i < n)
            n = i + 1;
    } else if (d->slow && n > d->chunk) {
        n = d->chunk;
    }
    if (n > max)
        n = max;
    memcpy(buf, d->body.data + pos, n);
    return (ssize_t)n;
}

static void delivery_free(void *cls)
{
    struct delivery *d = cls;

    rb_buf_release(&d->body);
    free(d);
}

/* Queues rep as the answer, through a callback when a fault truncates or
 * slows it. Steals rep->body. */
static enum MHD_Result send_reply(struct rb_world *w, struct MHD_Connection *c,
                                  struct req *r, struct rb__world_reply *rep,
                                  const struct rb__world_hit *hit)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char num[32];
    int kind = hit->id ? (int)hit->f.kind : 0;

    if (kind == RB_WORLD_FAULT_TRUNCATE || kind == RB_WORLD_FAULT_SLOW) {
        struct delivery *d = calloc(1, sizeof(*d));
        if (!d)
            return MHD_NO;
        d->w = w;
        d->body = rep->body;
        rb_buf_init(&rep->body);
        d->limit = d->body.len;
        d->sse = rep->sse;
        if (kind == RB_WORLD_FAULT_TRUNCATE) {
            size_t cut = hit->f.chunk_bytes ? (size_t)hit->f.chunk_bytes : d->limit / 2;
            d->limit = cut < d->limit ? cut : (d->limit ? d->limit - 1 : 0);
            d->truncated = 1;
        } else {
            d->slow = 1;
            d->fault_id = hit->id;
            d->delay_ms = hit->f.delay_ms;
            d->chunk = (size_t)hit->f.chunk_bytes;
        }
        resp =
            MHD_create_response_from_callback(rep->sse ? MHD_SIZE_UNKNOWN : d->body.len,
                                              4096, deliver_cb, d, delivery_free);
        if (!resp) {
            delivery_free(d);
            return MHD_NO;
        }
    } else if (rep->body.len == 0) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(rep->body.len, rep->body.data,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp)
            rb_buf_init(&rep->body); /* MHD frees it */
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    if (rep->sse)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (rep->retry_after_s >= 0) {
        snprintf(num, sizeof(num), "%d", rep->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (rep->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    ret = MHD_queue_response(c, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES)
        r->status = rep->status;
    return ret;
}

/* Closes the connection with a TCP reset instead of an answer. Linux aborts
 * an established connection (sends RST) when it is connected to AF_UNSPEC;
 * SO_LINGER 0 makes the close that MHD does next abortive as well. */
static enum MHD_Result reset(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct linger lg = {1, 0};
    struct sockaddr sa;

    if (ci) {
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        memset(&sa, 0, sizeof(sa));
        sa.sa_family = AF_UNSPEC;
        (void)connect(ci->connect_fd, &sa, sizeof(sa));
    }
    return MHD_NO;
}

/* ---- routing ------------------------------------------------------------------- */

static enum rb_err not_allowed(struct rb__world_reply *rep, const char *method,
                               const char *url)
{
    char msg[200];

    snprintf(msg, sizeof(msg), "method '%.10s' is not allowed on '%.100s'", method, url);
    return rb__world_reply_error(rep, 405, msg, "invalid_request_error", NULL,
                                 "method_not_allowed");
}

static enum rb_err route(struct rb_world *w, struct MHD_Connection *c, struct req *r,
                         const char *url, const char *method, int dry,
                         struct rb__world_reply *rep)
{
    int post = strcmp(method, "POST") == 0;
    char msg[200];

    if (r->too_large)
        return rb__world_reply_error(rep, 413, "the request body is larger than 16 MiB",
                                     "invalid_request_error", NULL, NULL);
    if (strcmp(url, "/v1/chat/completions") == 0)
        return post ? rb__world_llm(w, &r->body, dry, rep)
                    : not_allowed(rep, method, url);
    if (strcmp(url, "/v1/models") == 0 || strncmp(url, "/v1/models/", 11) == 0)
        return strcmp(method, "GET") == 0 ? rb__world_models(w, url, rep)
                                          : not_allowed(rep, method, url);
    if (strncmp(url, "/tools/", 7) == 0 && url[7])
        return post ? rb__world_tool(
                          w, url + 7, &r->body,
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      "Idempotency-Key"),
                          dry, r->entry == SIZE_MAX ? 0 : (uint64_t)r->entry + 1, rep)
                    : not_allowed(rep, method, url);
    snprintf(msg, sizeof(msg), "unknown url '%.100s'", url);
    return rb__world_reply_error(rep, 404, msg, "invalid_request_error", NULL,
                                 "unknown_url");
}

/* Gives the harness's callback a copy of journal entry `idx`. */
static void notify(struct rb_world *w, size_t idx)
{
    struct rb_world_entry e;

    if (!w->cfg.on_entry || idx == SIZE_MAX)
        return;
    if (rb_world_journal_read(w, idx, &e, 1) == 1)
        w->cfg.on_entry(w->cfg.on_entry_arg, &e);
}

static int is_dry(const struct rb__world_hit *hit)
{
    return hit->id && hit->f.kind != RB_WORLD_FAULT_TRUNCATE &&
           hit->f.kind != RB_WORLD_FAULT_SLOW;
}

static enum MHD_Result handle(struct rb_world *w, struct MHD_Connection *c, struct req *r,
                              const char *url, const char *method)
{
    struct rb__world_reply rep;
    struct rb__world_hit hit;
    enum MHD_Result ret = MHD_NO;
    enum rb_err rc;
    int why;

    rb__world_reply_init(&rep);
    memset(&hit, 0, sizeof(hit));
    if (r->oom)
        goto out;
    if (strncmp(url, "/_world/", 8) == 0) {
        rc = r->too_large
                 ? rb__world_reply_error(&rep, 413, "the request body is too large",
                                         "invalid_request_error", NULL, NULL)
                 : rb__world_control(
                       w, url, method,
                       MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from"),
                       &r->body, &rep);
        if (rc == RB_OK)
            ret = send_reply(w, c, r, &rep, &hit);
        goto out;
    }

    pthread_mutex_lock(&w->lock);
    r->entry = rb__world_journal_begin(w, method, url, r->start_ns);
    rb__world_faults_pick(w, url, &hit);
    pthread_mutex_unlock(&w->lock);

    rc = route(w, c, r, url, method, is_dry(&hit), &rep);
    if (rc != RB_OK)
        rc = rb__world_reply_error(&rep, 500, "the world ran out of memory",
                                   "server_error", NULL, NULL);
    /* faults that answer in the world's place */
    if (rc == RB_OK && hit.id && hit.f.kind == RB_WORLD_FAULT_SERVER_ERROR) {
        rep.latency_ms = 0;
        rc = rb__world_reply_error(&rep, hit.f.status,
                                   "the server had an error while processing your "
                                   "request (injected by the world)",
                                   "server_error", NULL, NULL);
    } else if (rc == RB_OK && hit.id && hit.f.kind == RB_WORLD_FAULT_RATE_LIMIT) {
        rep.latency_ms = 0;
        rc = rb__world_reply_error(
            &rep, 429, "rate limit reached for requests (injected by the world)",
            "requests", NULL, "rate_limit_exceeded");
        rep.retry_after_s = hit.f.retry_after_s;
    } else if (rc == RB_OK && hit.id &&
               (hit.f.kind == RB_WORLD_FAULT_RESET ||
                hit.f.kind == RB_WORLD_FAULT_REFUSED ||
                hit.f.kind == RB_WORLD_FAULT_STALL)) {
        rep.body.len = 0; /* nothing is sent */
    }
    pthread_mutex_lock(&w->lock);
    rb__world_journal_describe(w, r->entry, &rep, &hit);
    pthread_mutex_unlock(&w->lock);
    notify(w, r->entry);
    if (rc != RB_OK)
        goto out;

    if (hit.id &&
        (hit.f.kind == RB_WORLD_FAULT_RESET || hit.f.kind == RB_WORLD_FAULT_REFUSED)) {
        ret = reset(c);
        goto out;
    }
    if (hit.id && hit.f.kind == RB_WORLD_FAULT_STALL) {
        pthread_mutex_lock(&w->lock);
        rb__world_wait(
            w,
            hit.f.delay_ms ? rb__world_now_ns() + (int64_t)hit.f.delay_ms * 1000000 : 0,
            hit.id);
        pthread_mutex_unlock(&w->lock);
        goto out; /* close without an answer */
    }
    if (rep.latency_ms > 0) {
        pthread_mutex_lock(&w->lock);
        why = rb__world_wait(w, rb__world_now_ns() + rep.latency_ms * 1000000, 0);
        pthread_mutex_unlock(&w->lock);
        if (why == 1)
            goto out; /* stopping */
    }
    if (w->cfg.journal_bodies && w->journal.file &&
        rb_buf_append(&r->answer, rep.body.data, rep.body.len) != RB_OK)
        goto out;
    ret = send_reply(w, c, r, &rep, &hit);
out:
    rb__world_reply_release(&rep);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    struct rb_world *w = cls;
    struct req *r = *con_cls;

    (void)version;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        rb_buf_init(&r->body);
        rb_buf_init(&r->answer);
        r->entry = SIZE_MAX;
        r->start_ns = rb__world_now_ns();
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->too_large || r->body.len + *upload_size > BODY_MAX)
            r->too_large = 1;
        else if (rb_buf_append(&r->body, upload, *upload_size) != RB_OK)
            r->oom = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    return handle(w, c, r, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct rb_world *w = cls;
    struct req *r = *con_cls;

    (void)c;
    if (!r)
        return;
    if (r->entry != SIZE_MAX) {
        pthread_mutex_lock(&w->lock);
        rb__world_journal_end(w, r->entry, r->status,
                              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK, &r->body,
                              &r->answer);
        pthread_mutex_unlock(&w->lock);
        notify(w, r->entry);
    }
    rb_buf_release(&r->body);
    rb_buf_release(&r->answer);
    free(r);
    *con_cls = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, int *oom)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

enum rb_err rb_world_start(const struct rb_world_config *cfg, struct rb_world **out,
                           struct rb_error *err)
{
    struct rb_world *w;
    pthread_condattr_t ca;
    int oom = 0, e = 0;
    enum rb_err rc = RB_OK;

    if (cfg->turns < 0 || cfg->latency_ms < 0 || cfg->jitter_ms < 0)
        return rb__world_fail(err, RB_EINVAL,
                              "world: turns, latency_ms and jitter_ms must not be "
                              "negative");
    w = calloc(1, sizeof(*w));
    if (!w)
        return rb__world_fail(err, RB_ENOMEM, "out of memory");
    w->listen_fd = -1;
    w->wake[0] = w->wake[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->cfg = *cfg;
    w->cfg.model = dup_or_null(cfg->model, &oom);
    w->cfg.journal_path = dup_or_null(cfg->journal_path, &oom);
    w->cfg.faults = NULL;
    if (oom) {
        rc = rb__world_fail(err, RB_ENOMEM, "out of memory");
        goto fail;
    }
    w->own_tools = rb__world_own_tools();
    if (!w->own_tools) {
        rc = rb__world_fail(err, RB_ENOMEM, "out of memory");
        goto fail;
    }
    rc = rb__world_journal_open(&w->journal, cfg->journal_path, err);
    if (rc != RB_OK)
        goto fail;
    if (cfg->faults) {
        rc = rb_world_faults_add_json(w, cfg->faults, NULL, 0, NULL, err);
        if (rc != RB_OK)
            goto fail;
    }
    w->addr.s_addr = htonl(INADDR_LOOPBACK);
    if (cfg->host[0] && inet_pton(AF_INET, cfg->host, &w->addr) != 1) {
        rc = rb__world_fail(err, RB_EINVAL, "world: bad host '%s': not an IPv4 address",
                            cfg->host);
        goto fail;
    }
    w->listen_fd = open_listener(w->addr, cfg->port, &w->port, &e);
    if (w->listen_fd < 0) {
        rc = rb__world_fail(err, RB_EIO, "cannot listen on %s:%u: %s",
                            cfg->host[0] ? cfg->host : "127.0.0.1", (unsigned)cfg->port,
                            strerror(e));
        if (err) {
            err->cause = e;
            err->cause_kind = "errno";
        }
        goto fail;
    }
    snprintf(w->url, sizeof(w->url), "http://%s:%u",
             cfg->host[0] ? cfg->host : "127.0.0.1", (unsigned)w->port);
    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = rb__world_fail(err, RB_EIO, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    w->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
            MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_USE_SUPPRESS_DATE_NO_CLOCK |
            MHD_USE_POLL,
        0, NULL, NULL, on_request, w, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)(1u << 20), MHD_OPTION_END);
    if (!w->daemon) {
        rc = rb__world_fail(err, RB_EIO, "cannot start the HTTP server");
        goto fail;
    }
    if (pthread_create(&w->acceptor, NULL, acceptor, w) != 0) {
        rc = rb__world_fail(err, RB_EIO, "cannot start the accept thread");
        goto fail;
    }
    w->acceptor_started = 1;
    *out = w;
    return RB_OK;
fail:
    rb_world_stop(w);
    return rc;
}

void rb_world_stop(struct rb_world *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    rb__world_changed(w);
    pthread_mutex_unlock(&w->lock);
    if (w->acceptor_started)
        pthread_join(w->acceptor, NULL);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->daemon)
        MHD_stop_daemon(w->daemon);
    if (w->wake[0] >= 0)
        close(w->wake[0]);
    if (w->wake[1] >= 0)
        close(w->wake[1]);
    rb__world_journal_close(&w->journal);
    rb__world_faults_release(&w->faults);
    rb__world_effects_release(&w->effects);
    rb_world_config_release(&w->cfg);
    json_decref(w->own_tools);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

const char *rb_world_url(const struct rb_world *w)
{
    return w->url;
}

uint16_t rb_world_port(const struct rb_world *w)
{
    return w->port;
}
