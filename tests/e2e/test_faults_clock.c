/*
 * test_faults_clock.c - clock skew through libfaketime, as a real child sees
 * it: time() and CLOCK_REALTIME shifted by a fixed offset (compared with this
 * process's own clock), CLOCK_MONOTONIC left real or skewed on request, a
 * drift (the child's clock running ten times as fast as the kernel's), and a
 * jump while the child runs, fired by a time trigger. Every case checks that
 * nothing is left behind: no libfaketime file in /dev/shm for any agent
 * process (also for one killed mid-run), no control file.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <signal.h>

#define YEAR 31536000.0

struct reading {
    long long time;
    double wall, real, mono, rawmono;
};

/* The i-th "time=" line the child wrote; 0 when missing. */
static int reading(const char *text, int i, struct reading *r)
{
    const char *p = text;

    while ((p = strstr(p, "time=")) != NULL) {
        if (i-- == 0)
            return sscanf(p, "time=%lld wall=%lf real=%lf mono=%lf rawmono=%lf", &r->time,
                          &r->wall, &r->real, &r->mono, &r->rawmono) == 5;
        p++;
    }
    return 0;
}

static int shm_left(pid_t pid)
{
    char a[96], b[96];

    snprintf(a, sizeof(a), "/dev/shm/faketime_shm_%ld", (long)pid);
    snprintf(b, sizeof(b), "/dev/shm/sem.faketime_sem_%ld", (long)pid);
    return access(a, F_OK) == 0 || access(b, F_OK) == 0;
}

/* Checks every agent process the run started left nothing in /dev/shm. */
static void check_no_leftovers(struct fc_case *c)
{
    json_t *start;
    int i;

    for (i = 0; (start = fc_event(&c->ev, "proc.start", i)) != NULL; i++)
        CHECK(!shm_left((pid_t)fc_jint(start, "pid")),
              "%s: libfaketime files left in /dev/shm for pid %lld", c->run,
              fc_jint(start, "pid"));
    CHECK(i > 0, "%s: no proc.start event", c->run);
}

static struct rb_clock *make_clock(double offset, double rate, int fake_mono, char *file,
                                   size_t size)
{
    struct rb_clock_opts o = {
        .offset_s = offset, .rate = rate, .fake_monotonic = fake_mono};
    struct rb_clock *clock = NULL;
    struct rb_error err;
    const char *const *env;

    if (rb_clock_new(&o, &clock, &err) != RB_OK) {
        fprintf(stderr, "cannot make a skewed clock: %s\n", err.message);
        exit(1);
    }
    for (env = rb_clock_env(clock); *env; env++)
        if (strncmp(*env, "FAKETIME_TIMESTAMP_FILE=", 24) == 0)
            snprintf(file, size, "%s", *env + 24);
    return clock;
}

static void free_clock(struct rb_clock *clock, const char *file)
{
    rb_clock_free(clock);
    CHECK(access(file, F_OK) != 0, "control file '%s' left behind", file);
}

static void offset_case(const char *run, int fake_mono)
{
    struct fc_case c = {.run = run, .mode = "time", .arg = "1", .max_attempts = 1};
    char file[1024] = "";
    struct reading r = {0};
    time_t t0, t1;

    c.clock = make_clock(YEAR, 0, fake_mono, file, sizeof(file));
    t0 = time(NULL);
    fc_run(&c);
    t1 = time(NULL);
    CHECK(c.res.completed, "%s: the child failed: %s", run, c.text);
    CHECK(reading(c.text, 0, &r), "%s: no reading:\n%s", run, c.text);
    /* time() in the child is a year ahead of ours. */
    CHECK(r.time >= (long long)t0 + (long long)YEAR - 2 &&
              r.time <= (long long)t1 + (long long)YEAR + 2,
          "%s: child time() %lld, ours %lld..%lld", run, r.time, (long long)t0,
          (long long)t1);
    CHECK(r.wall - r.real > YEAR - 5 && r.wall - r.real < YEAR + 5,
          "%s: wall %.3f real %.3f", run, r.wall, r.real);
    if (fake_mono)
        CHECK(r.mono - r.rawmono > 1000, "%s: monotonic not skewed (%.3f vs %.3f)", run,
              r.mono, r.rawmono);
    else
        CHECK(r.mono - r.rawmono < 5 && r.rawmono - r.mono < 5,
              "%s: monotonic skewed (%.3f vs %.3f)", run, r.mono, r.rawmono);
    check_no_leftovers(&c);
    free_clock(c.clock, file);
    fc_case_release(&c);
}

static void drift_case(void)
{
    struct fc_case c = {.run = "drift", .mode = "time", .arg = "2", .max_attempts = 1};
    char file[1024] = "";
    struct reading a = {0}, b = {0};
    double rate = 0;

    c.env[0] = "GAP_MS=500";
    c.clock = make_clock(0, 10, 0, file, sizeof(file));
    fc_run(&c);
    CHECK(reading(c.text, 0, &a) && reading(c.text, 1, &b), "drift: readings:\n%s",
          c.text);
    if (b.real > a.real)
        rate = (b.wall - a.wall) / (b.real - a.real);
    CHECK(rate > 5 && rate < 15, "drift: the child's clock ran at x%.2f, not x10", rate);
    check_no_leftovers(&c);
    free_clock(c.clock, file);
    fc_case_release(&c);
}

static void jump_case(void)
{
    struct fc_case c = {.run = "jump", .mode = "time", .arg = "400", .max_attempts = 1};
    struct rb_fault_spec f = {.form = RB_FAULT_CLOCK_JUMP, .jump_s = 1e6};
    char file[1024] = "";
    struct reading first = {0};
    json_t *inj;

    c.env[0] = "GAP_MS=25";
    c.env[1] = "JUMP_OVER=500000";
    f.trigger.when = RB_TRIGGER_TIME;
    f.trigger.delay_ms = 200;
    c.faults[c.n_faults++] = f;
    c.clock = make_clock(0, 0, 0, file, sizeof(file));
    fc_run(&c);
    CHECK(reading(c.text, 0, &first) && first.wall - first.real < 5,
          "jump: the first reading is already skewed:\n%.300s", c.text);
    CHECK(strstr(c.text, "jump seen") != NULL && c.res.completed,
          "jump: the child never saw the jump");
    inj = fc_event(&c.ev, "fault.inject", 0);
    CHECK(inj && strcmp(fc_jstr(inj, "form"), "clock-jump") == 0 &&
              json_real_value(json_object_get(inj, "offset_s")) == 1e6 &&
              strcmp(fc_jstr(inj, "trigger"), "time 200ms") == 0,
          "jump: bad fault.inject event");
    CHECK(rb_clock_offset(c.clock) == 1e6, "jump: offset %.1f", rb_clock_offset(c.clock));
    check_no_leftovers(&c);
    free_clock(c.clock, file);
    fc_case_release(&c);
}

/* The SIGKILLed agent cannot clean up after libfaketime; the supervisor must.
 * The hook proves the file existed while the agent ran. */
static int shm_seen_at_kill = -1;

static void kill_hook(struct fc_events *ev, const char *kind, json_t *j)
{
    (void)ev;
    if (strcmp(kind, "step.start") == 0 && shm_seen_at_kill < 0)
        shm_seen_at_kill = shm_left((pid_t)fc_jint(j, "pid"));
}

static void killed_case(void)
{
    struct fc_case c = {
        .run = "skew-killed", .mode = "steps", .arg = "3", .max_attempts = 2};
    struct rb_fault_spec f = {.form = RB_FAULT_SIGKILL};
    char file[1024] = "";

    c.env[0] = "SLOW_STEP=2";
    c.env[1] = "SLOW_MS=20000";
    f.trigger.when = RB_TRIGGER_STEP_START;
    f.trigger.step = 2;
    c.faults[c.n_faults++] = f;
    c.ev.hook = kill_hook;
    c.clock = make_clock(3600, 0, 0, file, sizeof(file));
    fc_run(&c);
    CHECK(c.res.completed && c.res.attempts == 2,
          "skew-killed: completed %d, %d attempts", c.res.completed, c.res.attempts);
    CHECK(shm_seen_at_kill == 1, "skew-killed: libfaketime made no /dev/shm file (%d)",
          shm_seen_at_kill);
    check_no_leftovers(&c);
    free_clock(c.clock, file);
    fc_case_release(&c);
}

int main(void)
{
    struct rb_clock *probe = NULL;
    struct rb_error err;

    fc_init("test_faults_clock");
    if (rb_clock_new(NULL, &probe, &err) != RB_OK) {
        /* libfaketime is a declared dependency: its absence is a failure. */
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    rb_clock_free(probe);
    offset_case("offset", 0);
    offset_case("offset-mono", 1);
    drift_case();
    jump_case();
    killed_case();
    return fc_finish("clock (offset, monotonic apart, drift, jump, cleanup)");
}
