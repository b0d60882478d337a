/*
 * fault_child.c - the agent the fault tests supervise. It writes what it
 * observes (its attempt, the failure it was handed, the steps it executed,
 * allocations that failed, the clock it sees) as lines appended to a file,
 * so a test can assert what the child itself saw.
 *
 *   rb_fault_child steps N OUT   N durable steps (REBOUND_STORE, REBOUND_RUN);
 *                                STEP_MS per step, SLOW_STEP/SLOW_MS in
 *                                attempt 1, ON_TERM=record|exit
 *   rb_fault_child alloc MB OUT  allocate and touch MB megabytes (CHUNK_MB)
 *   rb_fault_child time K OUT    K clock readings, GAP_MS apart (real time);
 *                                JUMP_OVER=S stops once the skew passes S
 *   rb_fault_child spawn 0 OUT   start a grandchild, then wait
 *   rb_fault_child net K OUT     K TCP connects to NET_ADDR:NET_PORT, GAP_MS
 *                                apart; stops once it saw ok, fail, ok
 */
#include <rebound/rebound.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *out_path;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    int fd, n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) < 0)
        n = 0;
    close(fd);
}

/* Sleeps in real time, past libfaketime (it scales the libc sleeps). */
static void real_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR)
        ;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);

    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static volatile sig_atomic_t term_exit;

static void on_term(int sig)
{
    static const char msg[] = "sigterm\n";
    int fd = open(out_path, O_WRONLY | O_APPEND | O_CLOEXEC);

    (void)sig;
    if (fd >= 0) {
        if (write(fd, msg, sizeof(msg) - 1) < 0)
            term_exit = term_exit;
        close(fd);
    }
    if (term_exit)
        _exit(143);
}

static enum rb_err step_fn(void *arg, const struct rb_step_ctx *ctx, struct rb_buf *out,
                           struct rb_error *err)
{
    long ms = env_long("STEP_MS", 20);
    char buf[64];

    (void)arg;
    (void)err;
    note("exec %s attempt=%d", ctx->key, ctx->attempt);
    if (ctx->attempt == 1 && getenv("SLOW_STEP") &&
        atoi(ctx->key + 1) == atoi(getenv("SLOW_STEP")))
        ms = env_long("SLOW_MS", 5000);
    real_sleep_ms(ms);
    snprintf(buf, sizeof(buf), "\"%s\"", ctx->key);
    return rb_buf_append(out, buf, strlen(buf));
}

static int run_steps(int n)
{
    struct rb_run_opts ro = {0};
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_error err;
    struct rb_buf b;
    const char *dir = getenv("REBOUND_STORE"), *id = getenv("REBOUND_RUN");
    const char *lf = getenv("REBOUND_LAST_FAILURE");
    int i;

    if (!dir || !id) {
        note("error: REBOUND_STORE and REBOUND_RUN must be set");
        return 2;
    }
    term_exit = getenv("ON_TERM") && strcmp(getenv("ON_TERM"), "exit") == 0;
    signal(SIGTERM, on_term);
    note("start attempt=%s pid=%ld pgid=%ld last_failure=%s",
         getenv("REBOUND_ATTEMPT") ? getenv("REBOUND_ATTEMPT") : "-", (long)getpid(),
         (long)getpgid(0), lf ? lf : "-");
    rb_error_init(&err);
    if (rb_run_opts_from_env(&ro, &err) != RB_OK ||
        rb_store_open(dir, NULL, &store, &err) != RB_OK ||
        rb_run_open(store, id, &ro, &run, &err) != RB_OK) {
        note("error: %s", err.message);
        rb_store_close(store);
        return 3;
    }
    rb_buf_init(&b);
    for (i = 1; i <= n; i++) {
        char key[32];

        snprintf(key, sizeof(key), "s%03d", i);
        if (rb_step(run, key, NULL, step_fn, NULL, &b, NULL, &err) != RB_OK) {
            note("error: %s", err.message);
            break;
        }
    }
    rb_buf_release(&b);
    note("done attempt=%d", rb_run_attempt(run));
    rb_run_abandon(run); /* the supervisor joins attempts: it records the end */
    rb_store_close(store);
    return i > n ? 0 : 4;
}

static int run_alloc(long mb)
{
    long chunk = env_long("CHUNK_MB", 4), total = 0;
    const char *lf = getenv("REBOUND_LAST_FAILURE");

    note("start attempt=%s last_failure=%s",
         getenv("REBOUND_ATTEMPT") ? getenv("REBOUND_ATTEMPT") : "-", lf ? lf : "-");
    if (lf && strstr(lf, "\"oom\"")) {
        note("retry after oom");
        return 0;
    }
    while (total < mb) {
        char *p = malloc((size_t)chunk << 20);

        if (!p) {
            note("alloc failed at %ld MB", total);
            return 3;
        }
        memset(p, 0x5a, (size_t)chunk << 20); /* touch: make it resident */
        total += chunk;
        note("allocated %ld MB", total);
    }
    note("reached %ld MB", total);
    real_sleep_ms(env_long("HOLD_MS", 30000));
    return 0;
}

static double ts_sec(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

static int run_time(long k)
{
    long gap = env_long("GAP_MS", 0), over = env_long("JUMP_OVER", 0), i;

    for (i = 0; i < k; i++) {
        struct timespec wall, mono, real, rmono;
        time_t t = time(NULL);

        clock_gettime(CLOCK_REALTIME, &wall);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        syscall(SYS_clock_gettime, CLOCK_REALTIME, &real);
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &rmono);
        note("time=%lld wall=%.6f real=%.6f mono=%.6f rawmono=%.6f", (long long)t,
             ts_sec(&wall), ts_sec(&real), ts_sec(&mono), ts_sec(&rmono));
        if (over && ts_sec(&wall) - ts_sec(&real) > (double)over) {
            note("jump seen");
            return 0;
        }
        if (i + 1 < k)
            real_sleep_ms(gap);
    }
    return over ? 5 : 0;
}

static int run_spawn(void)
{
    pid_t pid = fork();

    if (pid < 0)
        return 6;
    if (pid == 0) {
        alarm(60); /* never outlive a broken test by much */
        for (;;)
            pause();
    }
    note("grandchild=%ld pgid=%ld", (long)pid, (long)getpgid(0));
    alarm(60);
    for (;;)
        pause();
}

/* One connect with a 300 ms limit: 0 or an errno (ETIMEDOUT). */
static int try_connect(const char *addr, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct pollfd p;
    socklen_t len = sizeof(int);
    int fd, e = 0;

    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1)
        return EINVAL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            p.fd = fd;
            p.events = POLLOUT;
            if (poll(&p, 1, 300) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
            else
                e = ETIMEDOUT;
        }
    }
    close(fd);
    return e;
}

static int run_net(long k)
{
    const char *addr = getenv("NET_ADDR");
    long port = env_long("NET_PORT", 0), gap = env_long("GAP_MS", 50), i;
    char ifaces[1024] = "", line[256];
    int phase = 0; /* 0: no ok yet, 1: ok seen, 2: then a failure, 3: ok again */
    FILE *f = fopen("/proc/net/dev", "r");

    while (f && fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':'), *name = line;
        if (!colon)
            continue;
        *colon = '\0';
        while (*name == ' ')
            name++;
        snprintf(ifaces + strlen(ifaces), sizeof(ifaces) - strlen(ifaces), "%s,", name);
    }
    if (f)
        fclose(f);
    note("ifaces=%s", ifaces);
    for (i = 0; i < k && phase < 3 && addr; i++) {
        int e = try_connect(addr, (int)port);

        note(e ? "net fail %d" : "net ok", e);
        if (!e && (phase == 0 || phase == 2))
            phase++;
        else if (e && phase == 1)
            phase = 2;
        real_sleep_ms(gap);
    }
    return phase == 3 ? 0 : 5;
}

int main(int argc, char **argv)
{
    long n;

    if (argc != 4) {
        fprintf(stderr, "usage: rb_fault_child steps|alloc|time|spawn N OUT\n");
        return 2;
    }
    n = strtol(argv[2], NULL, 10);
    out_path = argv[3];
    if (strcmp(argv[1], "steps") == 0)
        return run_steps((int)n);
    if (strcmp(argv[1], "alloc") == 0)
        return run_alloc(n);
    if (strcmp(argv[1], "time") == 0)
        return run_time(n);
    if (strcmp(argv[1], "spawn") == 0)
        return run_spawn();
    if (strcmp(argv[1], "net") == 0)
        return run_net(n);
    fprintf(stderr, "rb_fault_child: unknown mode '%s'\n", argv[1]);
    return 2;
}
