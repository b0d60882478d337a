/*
 * test_faults_proxy.c - the TCP proxy between a real client and a real echo
 * server, both on loopback: bytes pass; latency delays them; a reset reaches
 * a connection already open and new ones; refusal makes connect() fail and
 * passing again makes it work; a blackhole accepts and answers nothing (the
 * server never sees the connection); closing after N bytes delivers exactly
 * N; a bandwidth cap slows a transfer; jitter keeps the stream in order.
 *
 * ctest-timeout: 60
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

/* ---- the echo server ------------------------------------------------------- */

static int echo_lfd, echo_port, echo_accepted;
static pthread_mutex_t echo_lock = PTHREAD_MUTEX_INITIALIZER;

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(fd, buf, (size_t)n) != n)
            break;
    close(fd);
    return NULL;
}

static void *echo_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_t t;
        int fd = accept(echo_lfd, NULL, NULL);

        if (fd < 0)
            return NULL; /* listener shut down: the test is over */
        pthread_mutex_lock(&echo_lock);
        echo_accepted++;
        pthread_mutex_unlock(&echo_lock);
        if (pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static int echo_count(void)
{
    int n;

    pthread_mutex_lock(&echo_lock);
    n = echo_accepted;
    pthread_mutex_unlock(&echo_lock);
    return n;
}

static void echo_start(pthread_t *t)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    echo_lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (echo_lfd < 0 || bind(echo_lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(echo_lfd, 16) != 0 || getsockname(echo_lfd, (struct sockaddr *)&a, &len)) {
        perror("echo server");
        exit(1);
    }
    echo_port = ntohs(a.sin_port);
    pthread_create(t, NULL, echo_main, NULL);
}

/* ---- client helpers -------------------------------------------------------- */

/* A connection to the proxy, or -1 with errno. */
static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Reads until `want` bytes, EOF, an error or `ms` pass. Returns bytes read;
 * *status: 0 data/timeout, 1 EOF, -errno on error. */
static size_t recv_some(int fd, char *buf, size_t want, int ms, int *status)
{
    size_t got = 0;
    int64_t end = fc_now_ms() + ms;

    *status = 0;
    while (got < want) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = end - fc_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        n = read(fd, buf + got, want - got);
        if (n == 0) {
            *status = 1;
            break;
        }
        if (n < 0) {
            *status = -errno;
            break;
        }
        got += (size_t)n;
    }
    return got;
}

static int echo_ok(int fd, const char *msg)
{
    char buf[256];
    int st;
    size_t n = strlen(msg);

    if (write(fd, msg, n) != (ssize_t)n)
        return 0;
    return recv_some(fd, buf, n, 10000, &st) == n && memcmp(buf, msg, n) == 0;
}

static void set(struct rb_proxy *p, struct rb_net_shape s)
{
    struct rb_error err;

    CHECK(rb_proxy_set(p, &s, &err) == RB_OK, "rb_proxy_set: %s", err.message);
    fc_sleep_ms(50); /* the proxy thread applies it at its next wake-up */
}

int main(void)
{
    struct rb_proxy_opts o = {.upstream_host = "127.0.0.1", .seed = 42};
    struct rb_net_shape pass = {0}, s;
    struct fc_events ev = {0};
    struct rb_proxy_stats st;
    struct rb_proxy *p = NULL;
    struct rb_error err;
    pthread_t echo;
    char buf[65536], big[50000];
    int a, b, status, i, port, before;
    int64_t t0;
    size_t n;

    fc_init("test_faults_proxy");
    echo_start(&echo);
    o.upstream_port = echo_port;
    o.on_event = fc_on_event;
    o.event_arg = &ev;
    if (rb_proxy_start(&o, &p, &err) != RB_OK) {
        fprintf(stderr, "rb_proxy_start: %s\n", err.message);
        return 1;
    }
    port = rb_proxy_port(p);

    /* Pass. */
    a = dial(port);
    CHECK(a >= 0 && echo_ok(a, "hello"), "pass: no echo through the proxy");

    /* Latency: 150 ms each way. */
    s = pass;
    s.latency_ms = 150;
    set(p, s);
    t0 = fc_now_ms();
    CHECK(echo_ok(a, "slow"), "latency: no echo");
    CHECK(fc_now_ms() - t0 >= 290, "latency: round trip took %lld ms",
          (long long)(fc_now_ms() - t0));
    set(p, pass);

    /* Reset, switched while the connection is open. */
    set(p, (struct rb_net_shape){.mode = RB_NET_RESET});
    n = recv_some(a, buf, 1, 5000, &status);
    CHECK(n == 0 && status == -ECONNRESET, "reset: open connection got %zu bytes, %d", n,
          status);
    close(a);
    b = dial(port);
    n = b >= 0 ? recv_some(b, buf, 1, 5000, &status) : 0;
    CHECK(b >= 0 && n == 0 && status == -ECONNRESET,
          "reset: new connection not reset (%d)", status);
    if (b >= 0)
        close(b);

    /* Refuse, then pass again. */
    set(p, (struct rb_net_shape){.mode = RB_NET_REFUSE});
    b = dial(port);
    CHECK(b < 0 && errno == ECONNREFUSED, "refuse: connect gave %d (%s)", b,
          strerror(errno));
    if (b >= 0)
        close(b);
    set(p, pass);
    b = dial(port);
    CHECK(b >= 0 && echo_ok(b, "back"), "refuse: no echo after passing again");
    if (b >= 0)
        close(b);

    /* Blackhole: accepted, never answered, the server never sees it. */
    set(p, (struct rb_net_shape){.mode = RB_NET_BLACKHOLE});
    before = echo_count();
    b = dial(port);
    CHECK(b >= 0, "blackhole: connect failed");
    if (b >= 0) {
        CHECK(write(b, "anyone?", 7) == 7, "blackhole: write failed");
        n = recv_some(b, buf, 1, 300, &status);
        CHECK(n == 0 && status == 0, "blackhole: got %zu bytes, status %d", n, status);
        close(b);
    }
    CHECK(echo_count() == before, "blackhole: the server saw a connection");
    set(p, pass);

    /* Close after 10 bytes to the client. */
    set(p, (struct rb_net_shape){.close_after_bytes = 10});
    b = dial(port);
    if (b >= 0) {
        memset(big, 'x', 100);
        CHECK(write(b, big, 100) == 100, "close-after: write failed");
        n = recv_some(b, buf, 100, 5000, &status);
        CHECK(n == 10 && status == 1, "close-after: got %zu bytes, status %d", n, status);
        close(b);
    }
    set(p, pass);

    /* Bandwidth: 50 KB each way at 100 KB/s. */
    set(p, (struct rb_net_shape){.bandwidth_bps = 100000});
    b = dial(port);
    if (b >= 0) {
        for (i = 0; i < (int)sizeof(big); i++)
            big[i] = (char)('a' + i % 26);
        t0 = fc_now_ms();
        CHECK(write(b, big, sizeof(big)) == (ssize_t)sizeof(big), "bandwidth: write");
        n = recv_some(b, buf, sizeof(big), 20000, &status);
        CHECK(n == sizeof(big) && memcmp(buf, big, n) == 0, "bandwidth: got %zu bytes",
              n);
        CHECK(fc_now_ms() - t0 >= 300, "bandwidth: 50 KB took %lld ms",
              (long long)(fc_now_ms() - t0));
        close(b);
    }

    /* Jitter keeps the stream in order. */
    set(p, (struct rb_net_shape){.latency_ms = 5, .jitter_ms = 30});
    b = dial(port);
    if (b >= 0) {
        for (i = 0; i < 40; i++) {
            char m[8];
            snprintf(m, sizeof(m), "%03d,", i);
            CHECK(write(b, m, 4) == 4, "jitter: write");
            fc_sleep_ms(2);
        }
        n = recv_some(b, buf, 160, 10000, &status);
        CHECK(n == 160, "jitter: got %zu bytes", n);
        for (i = 0; i < 40 && n == 160; i++) {
            char m[8];
            snprintf(m, sizeof(m), "%03d,", i);
            CHECK(memcmp(buf + 4 * i, m, 4) == 0, "jitter: out of order at %d", i);
        }
        close(b);
    }

    rb_proxy_stats(p, &st);
    CHECK(st.accepted >= 7 && st.resets >= 2 && st.bytes_up > 50000 &&
              st.bytes_down > 50000,
          "stats: accepted %lld resets %lld up %lld down %lld", (long long)st.accepted,
          (long long)st.resets, (long long)st.bytes_up, (long long)st.bytes_down);
    CHECK(fc_event_count(&ev, "fault.inject") >= 10, "events: %d",
          fc_event_count(&ev, "fault.inject"));
    rb_proxy_free(p);
    shutdown(echo_lfd, SHUT_RDWR);
    close(echo_lfd);
    pthread_join(echo, NULL);
    fc_events_release(&ev);
    return fc_finish("proxy (pass, latency, reset, refuse, blackhole, close-after, "
                     "bandwidth, jitter)");
}
