/*
 * proxy.c - a TCP proxy on loopback between the agent and any upstream it
 * uses (a database, a real API), with network faults switchable while
 * connections are open: latency and jitter, a bandwidth cap, resets, a
 * blackhole (accept and drop), closing after N bytes, and refusing new
 * connections. One thread runs a poll loop over every connection; each
 * direction keeps a queue of chunks released at their due time.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 16384
#define QUEUE_MAX (256 * 1024) /* bytes queued per direction before reading stops */
#define MAX_CONNS 256

struct chunk {
    struct chunk *next;
    int64_t due_ns; /* when it may be written */
    size_t len, off;
    unsigned char data[];
};

/* One direction of a connection: from fd `src` to fd `dst`. */
struct dir {
    struct chunk *head, *tail;
    size_t queued;     /* bytes in the queue */
    int64_t sent;      /* bytes written to dst */
    int src_eof;       /* src said end of file */
    int dst_shut;      /* dst was shut down for writing */
    double tokens;     /* bandwidth bucket, bytes */
    int64_t refill_ns; /* last refill */
};

struct conn {
    int cfd;         /* client */
    int ufd;         /* upstream, -1 when none (blackhole) */
    int connecting;  /* upstream connect in progress */
    struct dir up;   /* client to upstream */
    struct dir down; /* upstream to client */
};

struct rb_proxy {
    pthread_t thread;
    pthread_mutex_t lock; /* guards shape_next, changed, stats, stop */
    int wake[2];          /* pipe: wakes the loop */
    int lfd;              /* listener, -1 while refusing */
    int port;
    struct sockaddr_storage up_addr; /* upstream */
    socklen_t up_len;
    struct rb_net_shape shape;      /* in force (loop thread) */
    struct rb_net_shape shape_next; /* set by rb_proxy_set() */
    int changed, stop;
    struct rb_proxy_stats stats;
    uint64_t rng; /* jitter */
    struct conn *conns[MAX_CONNS];
    rb_fault_event_fn on_event;
    void *event_arg;
};

static const char *const mode_names[] = {"pass", "reset", "blackhole", "refuse"};

const char *rb_net_mode_name(enum rb_net_mode mode)
{
    if ((int)mode < 0 || (size_t)mode >= sizeof(mode_names) / sizeof(mode_names[0]))
        return "unknown";
    return mode_names[mode];
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int make_listener(int port, int *bound_port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *bound_port = ntohs(a.sin_port);
    return fd;
}

/* ---- connections ---------------------------------------------------------- */

static void dir_release(struct dir *d)
{
    while (d->head) {
        struct chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->queued = 0;
}

/* Closes a connection; with `reset`, both sides get a RST instead of a FIN. */
static void conn_close(struct rb_proxy *p, int i, int reset)
{
    struct conn *c = p->conns[i];
    struct linger lg = {1, 0};

    if (!c)
        return;
    if (reset) {
        setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        if (c->ufd >= 0)
            setsockopt(c->ufd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        pthread_mutex_lock(&p->lock);
        p->stats.resets++;
        pthread_mutex_unlock(&p->lock);
    }
    close(c->cfd);
    if (c->ufd >= 0)
        close(c->ufd);
    dir_release(&c->up);
    dir_release(&c->down);
    free(c);
    p->conns[i] = NULL;
}

static void accept_one(struct rb_proxy *p)
{
    struct linger lg = {1, 0};
    struct conn *c;
    int fd, i, one = 1;

    fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    pthread_mutex_lock(&p->lock);
    p->stats.accepted++;
    pthread_mutex_unlock(&p->lock);
    for (i = 0; i < MAX_CONNS && p->conns[i]; i++)
        ;
    c = i < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c || p->shape.mode == RB_NET_RESET) {
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        free(c);
        pthread_mutex_lock(&p->lock);
        p->stats.resets++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->cfd = fd;
    c->ufd = -1;
    c->up.refill_ns = c->down.refill_ns = rb__fx_now_ns();
    p->conns[i] = c;
    if (p->shape.mode == RB_NET_BLACKHOLE)
        return; /* accept and drop: no upstream at all */
    c->ufd = socket(p->up_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->ufd >= 0) {
        setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->ufd, (struct sockaddr *)&p->up_addr, p->up_len) == 0)
            return;
        if (errno == EINPROGRESS) {
            c->connecting = 1;
            return;
        }
    }
    pthread_mutex_lock(&p->lock);
    p->stats.refused++;
    pthread_mutex_unlock(&p->lock);
    conn_close(p, i, 1); /* the client sees the upstream's refusal as a reset */
}

/* Reads what src has into d's queue; returns -1 when src failed (reset). */
static int pump_in(struct rb_proxy *p, int src, struct dir *d, int discard)
{
    unsigned char buf[CHUNK];
    ssize_t n = read(src, buf, sizeof(buf));
    int64_t now = rb__fx_now_ns(), due;
    struct chunk *ch;

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0) {
        d->src_eof = 1;
        return 0;
    }
    if (discard)
        return 0;
    due = now + (int64_t)p->shape.latency_ms * 1000000;
    if (p->shape.jitter_ms > 0)
        due +=
            (int64_t)(next_rand(&p->rng) % ((uint64_t)p->shape.jitter_ms + 1)) * 1000000;
    if (d->tail && due < d->tail->due_ns)
        due = d->tail->due_ns; /* jitter never reorders a stream */
    ch = malloc(sizeof(*ch) + (size_t)n);
    if (!ch)
        return -1;
    ch->next = NULL;
    ch->due_ns = due;
    ch->len = (size_t)n;
    ch->off = 0;
    memcpy(ch->data, buf, (size_t)n);
    if (d->tail)
        d->tail->next = ch;
    else
        d->head = ch;
    d->tail = ch;
    d->queued += (size_t)n;
    return 0;
}

static void refill(struct rb_proxy *p, struct dir *d, int64_t now)
{
    double cap;

    if (p->shape.bandwidth_bps <= 0)
        return;
    cap = (double)p->shape.bandwidth_bps / 20; /* bursts of 50 ms at most */
    if (cap < 1024)
        cap = 1024;
    d->tokens += (double)(now - d->refill_ns) * (double)p->shape.bandwidth_bps / 1e9;
    if (d->tokens > cap)
        d->tokens = cap;
    d->refill_ns = now;
}

/* Writes what is due from d's queue to dst; returns -1 when dst failed, 1
 * when the connection is to be closed (close_after_bytes reached). */
static int pump_out(struct rb_proxy *p, int dst, struct dir *d, int downstream)
{
    int64_t now = rb__fx_now_ns(), *counter;

    refill(p, d, now);
    while (d->head && d->head->due_ns <= now) {
        struct chunk *ch = d->head;
        size_t want = ch->len - ch->off;
        ssize_t n;

        if (p->shape.bandwidth_bps > 0) {
            if (d->tokens < 1)
                break;
            if ((double)want > d->tokens)
                want = (size_t)d->tokens;
        }
        if (downstream && p->shape.close_after_bytes > 0 &&
            d->sent + (int64_t)want > p->shape.close_after_bytes)
            want = (size_t)(p->shape.close_after_bytes - d->sent);
        if (want == 0)
            return 1;
        n = write(dst, ch->data + ch->off, want);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        ch->off += (size_t)n;
        d->sent += n;
        d->queued -= (size_t)n;
        if (p->shape.bandwidth_bps > 0)
            d->tokens -= (double)n;
        counter = downstream ? &p->stats.bytes_down : &p->stats.bytes_up;
        pthread_mutex_lock(&p->lock);
        *counter += n;
        pthread_mutex_unlock(&p->lock);
        if (ch->off == ch->len) {
            d->head = ch->next;
            if (!d->head)
                d->tail = NULL;
            free(ch);
        }
        if (downstream && p->shape.close_after_bytes > 0 &&
            d->sent >= p->shape.close_after_bytes)
            return 1;
    }
    if (!d->head && d->src_eof && !d->dst_shut) {
        shutdown(dst, SHUT_WR);
        d->dst_shut = 1;
    }
    return 0;
}

/* The next time a queue wants to write (due chunk or tokens), or INT64_MAX. */
static int64_t dir_next(const struct rb_proxy *p, const struct dir *d)
{
    int64_t t;

    if (!d->head)
        return INT64_MAX;
    t = d->head->due_ns;
    if (p->shape.bandwidth_bps > 0 && d->tokens < 1) {
        int64_t wait = (int64_t)((1 - d->tokens) * 1e9 / (double)p->shape.bandwidth_bps);
        if (d->refill_ns + wait > t)
            t = d->refill_ns + wait;
    }
    return t;
}

/* ---- the loop --------------------------------------------------------------- */

static void apply_shape(struct rb_proxy *p)
{
    struct rb_net_shape next;
    int i, port;

    pthread_mutex_lock(&p->lock);
    next = p->shape_next;
    p->changed = 0;
    pthread_mutex_unlock(&p->lock);
    p->shape = next;
    if (next.mode == RB_NET_RESET)
        for (i = 0; i < MAX_CONNS; i++)
            conn_close(p, i, 1);
    if (next.mode == RB_NET_REFUSE && p->lfd >= 0) {
        close(p->lfd);
        p->lfd = -1;
    }
    if (next.mode != RB_NET_REFUSE && p->lfd < 0)
        p->lfd = make_listener(p->port, &port);
}

static void *loop(void *arg)
{
    struct rb_proxy *p = arg;
    struct pollfd pf[2 + 2 * MAX_CONNS];
    int who[2 + 2 * MAX_CONNS];

    for (;;) {
        int64_t now = rb__fx_now_ns(), next = INT64_MAX;
        int n = 0, i, k, timeout, stop, changed;
        char drain[64];

        pthread_mutex_lock(&p->lock);
        stop = p->stop;
        changed = p->changed;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        if (changed)
            apply_shape(p);

        pf[n].fd = p->wake[0];
        pf[n].events = POLLIN;
        who[n++] = -1;
        if (p->lfd >= 0) {
            pf[n].fd = p->lfd;
            pf[n].events = POLLIN;
            who[n++] = -2;
        }
        for (i = 0; i < MAX_CONNS; i++) {
            struct conn *c = p->conns[i];
            int64_t t;

            if (!c)
                continue;
            pf[n].fd = c->cfd;
            pf[n].events = 0;
            if (!c->up.src_eof && c->up.queued < QUEUE_MAX)
                pf[n].events |= POLLIN;
            if (c->down.head && dir_next(p, &c->down) <= now &&
                p->shape.mode != RB_NET_BLACKHOLE)
                pf[n].events |= POLLOUT;
            who[n++] = i;
            if (c->ufd >= 0) {
                pf[n].fd = c->ufd;
                pf[n].events = 0;
                if (c->connecting)
                    pf[n].events |= POLLOUT;
                else {
                    if (!c->down.src_eof && c->down.queued < QUEUE_MAX &&
                        p->shape.mode != RB_NET_BLACKHOLE)
                        pf[n].events |= POLLIN;
                    if (c->up.head && dir_next(p, &c->up) <= now &&
                        p->shape.mode != RB_NET_BLACKHOLE)
                        pf[n].events |= POLLOUT;
                }
                who[n++] = i;
            }
            if (p->shape.mode == RB_NET_BLACKHOLE)
                continue; /* nothing is written: no timer */
            t = dir_next(p, &c->up);
            if (t > now && t < next)
                next = t;
            t = dir_next(p, &c->down);
            if (t > now && t < next)
                next = t;
        }
        timeout = next == INT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        for (k = 0; k < n; k++) {
            struct conn *c;
            int r = 0, blackhole = p->shape.mode == RB_NET_BLACKHOLE;

            if (!pf[k].revents)
                continue;
            if (who[k] == -1) {
                while (read(p->wake[0], drain, sizeof(drain)) > 0)
                    ;
                continue;
            }
            if (who[k] == -2) {
                accept_one(p);
                continue;
            }
            c = p->conns[who[k]];
            if (!c)
                continue; /* closed earlier in this round */
            if (pf[k].fd == c->cfd) {
                if (pf[k].revents & (POLLIN | POLLHUP | POLLERR))
                    r = pump_in(p, c->cfd, &c->up, blackhole || c->ufd < 0);
                if (r == 0 && (pf[k].revents & POLLOUT) && !blackhole)
                    r = pump_out(p, c->cfd, &c->down, 1);
            } else if (c->connecting) {
                int e = 0;
                socklen_t len = sizeof(e);
                getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &len);
                if (e) {
                    pthread_mutex_lock(&p->lock);
                    p->stats.refused++;
                    pthread_mutex_unlock(&p->lock);
                    r = -1;
                } else {
                    c->connecting = 0;
                }
            } else {
                if (pf[k].revents & (POLLIN | POLLHUP | POLLERR))
                    r = pump_in(p, c->ufd, &c->down, blackhole);
                if (r == 0 && (pf[k].revents & POLLOUT) && !blackhole)
                    r = pump_out(p, c->ufd, &c->up, 0);
            }
            if (r < 0)
                conn_close(p, who[k], 1); /* a reset on one side resets the other */
            else if (r > 0)
                conn_close(p, who[k], 0);
            else if (c->up.dst_shut && c->down.dst_shut)
                conn_close(p, who[k], 0); /* both sides done */
            else if (c->ufd < 0 && c->up.src_eof)
                conn_close(p, who[k], 0); /* blackholed client left */
        }
        /* Write what became due while nobody polled for it. */
        now = rb__fx_now_ns();
        for (i = 0; i < MAX_CONNS; i++) {
            struct conn *c = p->conns[i];
            int r = 0;

            if (!c || p->shape.mode == RB_NET_BLACKHOLE || c->connecting)
                continue;
            if (c->ufd >= 0 && c->up.head && dir_next(p, &c->up) <= now)
                r = pump_out(p, c->ufd, &c->up, 0);
            if (r == 0 && c->down.head && dir_next(p, &c->down) <= now)
                r = pump_out(p, c->cfd, &c->down, 1);
            if (r < 0)
                conn_close(p, i, 1);
            else if (r > 0)
                conn_close(p, i, 0);
        }
    }
    return NULL;
}

/* ---- interface ----------------------------------------------------------- */

enum rb_err rb_proxy_start(const struct rb_proxy_opts *opts, struct rb_proxy **out,
                           struct rb_error *err)
{
    struct sockaddr_in *a4;
    struct sockaddr_in6 *a6;
    struct rb_proxy *p;
    int e;

    if (!opts || !opts->upstream_host || opts->upstream_port <= 0 ||
        opts->upstream_port > 65535 || opts->listen_port < 0 || opts->listen_port > 65535)
        return rb__fx_fail(err, RB_EINVAL, "proxy needs an upstream host and port");
    p = calloc(1, sizeof(*p));
    if (!p)
        return rb__fx_fail(err, RB_ENOMEM, "out of memory");
    p->wake[0] = p->wake[1] = p->lfd = -1;
    a4 = (struct sockaddr_in *)&p->up_addr;
    a6 = (struct sockaddr_in6 *)&p->up_addr;
    if (inet_pton(AF_INET, opts->upstream_host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)opts->upstream_port);
        p->up_len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, opts->upstream_host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)opts->upstream_port);
        p->up_len = sizeof(*a6);
    } else {
        free(p);
        return rb__fx_fail(err, RB_EINVAL,
                           "upstream address '%s' is not a numeric IPv4 or IPv6 address",
                           opts->upstream_host);
    }
    p->shape = p->shape_next = opts->shape;
    p->rng = opts->seed;
    p->on_event = opts->on_event;
    p->event_arg = opts->event_arg;
    pthread_mutex_init(&p->lock, NULL);
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        e = errno;
        goto fail;
    }
    p->lfd = make_listener(opts->listen_port, &p->port);
    if (p->lfd < 0) {
        e = errno;
        goto fail;
    }
    if (opts->shape.mode == RB_NET_REFUSE) {
        close(p->lfd);
        p->lfd = -1;
    }
    e = pthread_create(&p->thread, NULL, loop, p);
    if (e)
        goto fail;
    *out = p;
    return RB_OK;
fail:
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
    return rb__fx_fail_errno(err, RB_EIO, e, "cannot start proxy on 127.0.0.1:%d",
                             opts->listen_port);
}

int rb_proxy_port(const struct rb_proxy *proxy)
{
    return proxy->port;
}

enum rb_err rb_proxy_set(struct rb_proxy *proxy, const struct rb_net_shape *shape,
                         struct rb_error *err)
{
    ssize_t n;
    json_t *o;

    if ((int)shape->mode < RB_NET_PASS || shape->mode > RB_NET_REFUSE ||
        shape->latency_ms < 0 || shape->jitter_ms < 0 || shape->bandwidth_bps < 0 ||
        shape->close_after_bytes < 0)
        return rb__fx_fail(err, RB_EINVAL, "network shape has a bad value");
    pthread_mutex_lock(&proxy->lock);
    proxy->shape_next = *shape;
    proxy->changed = 1;
    pthread_mutex_unlock(&proxy->lock);
    do
        n = write(proxy->wake[1], "w", 1);
    while (n < 0 && errno == EINTR);
    if (proxy->on_event) {
        struct rb_sup fake; /* rb__fx_emit only needs the callback */
        memset(&fake, 0, sizeof(fake));
        fake.on_event = proxy->on_event;
        fake.event_arg = proxy->event_arg;
        o = json_object();
        if (o) {
            json_object_set_new(o, "form", json_string("net"));
            json_object_set_new(o, "mode", json_string(rb_net_mode_name(shape->mode)));
            json_object_set_new(o, "port", json_integer(proxy->port));
            json_object_set_new(o, "latency_ms", json_integer(shape->latency_ms));
            json_object_set_new(o, "jitter_ms", json_integer(shape->jitter_ms));
            json_object_set_new(o, "bandwidth_bps", json_integer(shape->bandwidth_bps));
            json_object_set_new(o, "close_after_bytes",
                                json_integer(shape->close_after_bytes));
        }
        rb__fx_emit(&fake, "fault.inject", rb__fx_now_ns(), o);
    }
    return RB_OK;
}

void rb_proxy_stats(struct rb_proxy *proxy, struct rb_proxy_stats *out)
{
    pthread_mutex_lock(&proxy->lock);
    *out = proxy->stats;
    pthread_mutex_unlock(&proxy->lock);
}

void rb_proxy_free(struct rb_proxy *proxy)
{
    ssize_t n;
    int i;

    if (!proxy)
        return;
    pthread_mutex_lock(&proxy->lock);
    proxy->stop = 1;
    pthread_mutex_unlock(&proxy->lock);
    do
        n = write(proxy->wake[1], "s", 1);
    while (n < 0 && errno == EINTR);
    pthread_join(proxy->thread, NULL);
    for (i = 0; i < MAX_CONNS; i++)
        conn_close(proxy, i, 0);
    if (proxy->lfd >= 0)
        close(proxy->lfd);
    close(proxy->wake[0]);
    close(proxy->wake[1]);
    pthread_mutex_destroy(&proxy->lock);
    free(proxy);
}
