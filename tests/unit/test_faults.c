/*
 * test_faults.c - unit tests of rb_faults: triggers drawn from a seed, the
 * cgroup v2 detection, group memory sampling, the libfaketime clock's control
 * file and cleanup, and supervision of real child processes (exit codes,
 * restarts with failure context, events, group kill, timeout, interruption).
 * The fault forms against a durable agent are in tests/e2e/test_faults_*.c.
 */
#define _GNU_SOURCE
/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults/faults.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp[256];

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");

    (void)state;
    snprintf(tmp, sizeof(tmp), "%s/test_faults-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[512];

    (void)state;
    snprintf(path, sizeof(path), "%s/out", tmp);
    unlink(path);
    rmdir(tmp);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (!f)
        return NULL;
    buf = calloc(1, 65536);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- triggers ------------------------------------------------------------ */

static void seed_gives_same_schedule(void **state)
{
    struct rb_trigger_range r = {.step_min = 2, .step_max = 9, .during_max_ms = 500};
    struct rb_trigger a, b;
    int phases[4] = {0}, steps[10] = {0}, distinct = 0, i;
    uint64_t s;

    (void)state;
    for (s = 1; s <= 200; s++) {
        assert_int_equal(rb_trigger_from_seed(s, &r, &a, NULL), RB_OK);
        assert_int_equal(rb_trigger_from_seed(s, &r, &b, NULL), RB_OK);
        assert_memory_equal(&a, &b, sizeof(a));
        assert_in_range(a.step, 2, 9);
        assert_in_range(a.when, RB_TRIGGER_STEP_START, RB_TRIGGER_STEP_COMMIT);
        assert_in_range(a.delay_ms, 0, 500);
        phases[a.when]++;
        steps[a.step]++;
    }
    for (i = 2; i <= 9; i++)
        distinct += steps[i] > 0;
    assert_int_equal(distinct, 8); /* 200 draws cover all 8 steps */
    assert_true(phases[1] && phases[2] && phases[3]);

    r.step_max = 0;
    r.time_min_ms = 100;
    r.time_max_ms = 300;
    assert_int_equal(rb_trigger_from_seed(7, &r, &a, NULL), RB_OK);
    assert_int_equal(a.when, RB_TRIGGER_TIME);
    assert_in_range(a.delay_ms, 100, 300);
}

static void seed_rejects_empty_range(void **state)
{
    struct rb_trigger_range r = {.step_min = 5, .step_max = 3};
    struct rb_trigger t = {.step = 42};
    struct rb_error err;

    (void)state;
    assert_int_equal(rb_trigger_from_seed(1, &r, &t, &err), RB_EINVAL);
    assert_string_equal(err.message, "step range '5..3' is empty; steps count from 1");
    assert_int_equal(t.step, 42); /* untouched on error */
    r.step_max = 0;
    r.time_min_ms = 10;
    r.time_max_ms = 5;
    assert_int_equal(rb_trigger_from_seed(1, &r, &t, &err), RB_EINVAL);
}

static void trigger_descriptions(void **state)
{
    struct rb_trigger t = {RB_TRIGGER_STEP_COMMIT, 3, NULL, 0};
    char buf[96];

    (void)state;
    rb_trigger_describe(&t, buf, sizeof(buf));
    assert_string_equal(buf, "step 3 commit");
    t.when = RB_TRIGGER_STEP_DURING;
    t.delay_ms = 40;
    t.step_key = "fetch";
    rb_trigger_describe(&t, buf, sizeof(buf));
    assert_string_equal(buf, "step 'fetch' start+40ms");
    t.when = RB_TRIGGER_TIME;
    rb_trigger_describe(&t, buf, sizeof(buf));
    assert_string_equal(buf, "time 40ms");
}

/* ---- OOM helpers ---------------------------------------------------------- */

static void cgroup2_detection_says_why(void **state)
{
    struct rb_error err;
    char dir[512] = "untouched";
    enum rb_err rc;

    (void)state;
    rb_error_init(&err);
    rc = rb_oom_cgroup2_detect(dir, sizeof(dir), &err);
    if (rc == RB_OK) {
        assert_int_equal(access(dir, W_OK), 0);
    } else {
        /* This machine: memory on cgroup v1, a cgroup2 mount without it. */
        assert_true(rc == RB_ENOENT || rc == RB_EACCES);
        assert_non_null(strstr(err.message, "cgroup"));
        assert_string_equal(dir, "untouched");
        print_message("cgroup v2: %s\n", err.message);
    }
}

static void group_rss_counts_members(void **state)
{
    int64_t bytes = 0;
    int n = 0;

    (void)state;
    assert_int_equal(rb_oom_group_rss(getpgid(0), &bytes, &n, NULL), RB_OK);
    assert_true(n >= 1);
    assert_true(bytes > 1 << 20); /* this test program is resident */
    /* A group that does not exist has nobody in it. */
    assert_int_equal(rb_oom_group_rss(0x3ffffff0, &bytes, &n, NULL), RB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bytes, 0);
}

/* ---- clock ----------------------------------------------------------------- */

static const char *env_value(const char *const *env, const char *name)
{
    size_t n = strlen(name);

    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static void clock_refuses_missing_lib(void **state)
{
    struct rb_clock_opts o = {.lib = "/nonexistent/libfaketime.so.1"};
    struct rb_clock *c = NULL;
    struct rb_error err;

    (void)state;
    assert_int_equal(rb_clock_new(&o, &c, &err), RB_ENOENT);
    assert_null(c);
    assert_string_equal(err.message,
                        "cannot use libfaketime '/nonexistent/libfaketime.so.1'"
                        ": no such file or directory");
}

static void clock_file_and_cleanup(void **state)
{
    struct rb_clock_opts o = {.offset_s = 3600, .dir = tmp};
    struct rb_clock *c = NULL;
    struct rb_error err;
    const char *const *env;
    char file[512], dir[512], *text;
    const char *v;

    (void)state;
    if (access("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", R_OK) != 0) {
        skip();
    }
    assert_int_equal(rb_clock_new(&o, &c, &err), RB_OK);
    env = rb_clock_env(c);
    assert_non_null(strstr(env_value(env, "LD_PRELOAD"), "libfaketime.so.1"));
    assert_string_equal(env_value(env, "FAKETIME_NO_CACHE"), "1");
    assert_string_equal(env_value(env, "FAKETIME_DONT_FAKE_MONOTONIC"), "1");
    v = env_value(env, "FAKETIME_TIMESTAMP_FILE");
    assert_non_null(v);
    snprintf(file, sizeof(file), "%s", v);
    snprintf(dir, sizeof(dir), "%s", v);
    *strrchr(dir, '/') = '\0';
    text = slurp(file);
    assert_string_equal(text, "+3600.000\n");
    free(text);

    assert_int_equal(rb_clock_set(c, -86400, 2.5, &err), RB_OK);
    text = slurp(file);
    assert_string_equal(text, "-86400.000 x2.500000\n");
    free(text);
    assert_int_equal(rb_clock_set(c, 0, -1, &err), RB_EINVAL);
    assert_true(rb_clock_offset(c) == -86400.0); /* unaltered on error */

    rb_clock_free(c);
    assert_int_equal(access(file, F_OK), -1);
    assert_int_equal(access(dir, F_OK), -1);
}

/* ---- supervision ----------------------------------------------------------- */

struct seen {
    int starts, exits, steps;
    char exit_json[1024];
    int raise_on_start; /* signal to raise at the first proc.start */
};

static void on_event(void *arg, const struct rb_fault_event *ev)
{
    struct seen *s = arg;

    if (strcmp(ev->kind, "proc.start") == 0) {
        s->starts++;
        if (s->raise_on_start && s->starts == 1)
            raise(s->raise_on_start);
    } else if (strcmp(ev->kind, "proc.exit") == 0) {
        s->exits++;
        snprintf(s->exit_json, sizeof(s->exit_json), "%s", ev->json);
    } else if (strcmp(ev->kind, "step.start") == 0) {
        s->steps++;
    }
}

static struct rb_sup_result supervise(const char *script, struct rb_sup_opts *o,
                                      struct seen *s, pid_t *pgid)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    struct rb_sup_result res;
    struct rb_sup *sup = NULL;
    struct rb_error err;

    o->argv = argv;
    o->on_event = on_event;
    o->event_arg = s;
    if (!o->timeout_ms)
        o->timeout_ms = 30000; /* hang guard */
    assert_int_equal(rb_sup_new(o, &sup, &err), RB_OK);
    if (rb_sup_run(sup, &res, &err) != RB_OK)
        fail_msg("rb_sup_run: %s", err.message);
    *pgid = rb_sup_pgid(sup);
    rb_sup_free(sup);
    return res;
}

static void group_gone(pid_t pgid)
{
    assert_true(pgid > 0);
    assert_int_equal(kill(-pgid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static void sup_reports_exit_code(void **state)
{
    struct rb_sup_opts o = {0};
    struct seen s = {0};
    struct rb_sup_result res;
    pid_t pgid;

    (void)state;
    res = supervise("exit 3", &o, &s, &pgid);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.completed, 0);
    assert_int_equal(res.exit_code, 3);
    assert_int_equal(res.signal, 0);
    assert_string_equal(res.last_failure,
                        "{\"kind\":\"exit\",\"form\":\"exit\",\"signal\":0,"
                        "\"exit_code\":3,\"limit\":null,\"trigger\":null,"
                        "\"attempt\":1}");
    assert_int_equal(s.starts, 1);
    assert_int_equal(s.exits, 1);
    group_gone(pgid);
}

static void sup_restart_hands_failure(void **state)
{
    struct rb_sup_opts o = {.restart = {.max_attempts = 3}};
    struct seen s = {0};
    struct rb_sup_result res;
    char script[1024], out[512], *text, *line2;
    json_t *lf;
    pid_t pgid;

    (void)state;
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(script, sizeof(script),
             "echo \"$REBOUND_ATTEMPT|$REBOUND_LAST_FAILURE\" >> '%s';"
             " [ \"$REBOUND_ATTEMPT\" = 1 ] && kill -9 $$; exit 0",
             out);
    res = supervise(script, &o, &s, &pgid);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(res.completed, 1);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.last_failure, "");
    text = slurp(out);
    assert_non_null(text);
    assert_memory_equal(text, "1|\n", 3); /* attempt 1 gets no failure */
    line2 = text + 3;
    assert_memory_equal(line2, "2|", 2);
    *strchr(line2, '\n') = '\0';
    lf = json_loads(line2 + 2, 0, NULL);
    assert_non_null(lf);
    assert_string_equal(json_string_value(json_object_get(lf, "kind")), "signal");
    assert_int_equal(json_integer_value(json_object_get(lf, "signal")), SIGKILL);
    assert_int_equal(json_integer_value(json_object_get(lf, "exit_code")), 137);
    assert_int_equal(json_integer_value(json_object_get(lf, "attempt")), 1);
    json_decref(lf);
    free(text);
    group_gone(pgid);
}

static void sup_restart_policy_backs_off(void **state)
{
    struct rb_sup_opts o = {.restart = {.max_attempts = 3, .delay_ms = 50, .backoff = 2}};
    struct seen s = {0};
    struct rb_sup_result res;
    int64_t t0 = now_ms();
    pid_t pgid;

    (void)state;
    res = supervise("exit 1", &o, &s, &pgid);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(s.starts, 3);
    assert_int_equal(res.completed, 0);
    assert_int_equal(res.exit_code, 1);
    assert_true(now_ms() - t0 >= 150); /* waited 50 then 100 ms at least */
}

static void sup_passes_events(void **state)
{
    struct rb_sup_opts o = {0};
    struct seen s = {0};
    struct rb_sup_result res;
    pid_t pgid;

    (void)state;
    res = supervise(
        "for k in a b c; do"
        " echo '{\"kind\":\"step.start\",\"step\":\"'$k'\"}' >&$REBOUND_EVENT_FD;"
        " done; echo 'not json' >&$REBOUND_EVENT_FD",
        &o, &s, &pgid);
    assert_int_equal(res.completed, 1);
    assert_int_equal(s.steps, 3);
}

static void sup_kills_leftovers(void **state)
{
    struct rb_sup_opts o = {0};
    struct seen s = {0};
    struct rb_sup_result res;
    pid_t pgid;

    (void)state;
    /* The agent exits 0 but leaves a process behind in its group. */
    res = supervise("sleep 30 & exit 0", &o, &s, &pgid);
    assert_int_equal(res.completed, 1);
    group_gone(pgid);
}

static void sup_timeout_kills(void **state)
{
    struct rb_sup_opts o = {.timeout_ms = 200, .restart = {.max_attempts = 5}};
    struct seen s = {0};
    struct rb_sup_result res;
    pid_t pgid;

    (void)state;
    res = supervise("sleep 30; sleep 30", &o, &s, &pgid);
    assert_int_equal(res.timed_out, 1);
    assert_int_equal(res.attempts, 1); /* no restart after the guard */
    assert_int_equal(res.signal, SIGKILL);
    group_gone(pgid);
}

static void sup_interrupted_by_sigterm(void **state)
{
    struct rb_sup_opts o = {.catch_signals = 1, .restart = {.max_attempts = 5}};
    struct seen s = {.raise_on_start = SIGTERM};
    struct rb_sup_result res;
    pid_t pgid;

    (void)state;
    res = supervise("sleep 30 & sleep 30", &o, &s, &pgid);
    assert_int_equal(res.interrupted, SIGTERM);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.completed, 0);
    group_gone(pgid);
}

/* An external trigger: the callback (as a world server's thread would) asks
 * for the fault when it sees the agent start. */
static struct rb_sup *fire_sup;

static void fire_on_start(void *arg, const struct rb_fault_event *ev)
{
    int *fired = arg;

    if (strcmp(ev->kind, "proc.start") == 0 && !*fired) {
        assert_int_equal(rb_sup_fire(fire_sup, 0), RB_OK);
        *fired = 1;
    }
}

static void sup_fires_external_trigger(void **state)
{
    const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30", NULL};
    struct rb_sup_opts o = {.argv = argv, .timeout_ms = 30000, .on_event = fire_on_start};
    struct rb_fault_spec f = {.form = RB_FAULT_SIGKILL,
                              .trigger = {.when = RB_TRIGGER_EXTERNAL}};
    struct rb_sup_result res;
    struct rb_error err;
    int fired = 0;
    pid_t pgid;

    (void)state;
    o.event_arg = &fired;
    assert_int_equal(rb_sup_new(&o, &fire_sup, &err), RB_OK);
    assert_int_equal(rb_sup_add_fault(fire_sup, &f, &err), RB_OK);
    assert_int_equal(rb_sup_fire(fire_sup, 1), RB_EINVAL); /* no such fault */
    assert_int_equal(rb_sup_run(fire_sup, &res, &err), RB_OK);
    pgid = rb_sup_pgid(fire_sup);
    rb_sup_free(fire_sup);
    assert_int_equal(fired, 1);
    assert_int_equal(res.timed_out, 0);
    assert_int_equal(res.signal, SIGKILL);
    assert_int_equal(res.injected, 1);
    assert_string_equal(res.last_failure,
                        "{\"kind\":\"preemption\",\"form\":\"sigkill\",\"signal\":9,"
                        "\"exit_code\":137,\"limit\":null,\"trigger\":\"external\","
                        "\"attempt\":1}");
    group_gone(pgid);
}

static void sup_rejects_bad_input(void **state)
{
    const char *argv[] = {"no-such-program-rebound", NULL};
    const char *env[] = {"NOEQUALS", NULL};
    struct rb_sup_opts o = {.argv = argv};
    struct rb_fault_spec f = {.form = RB_FAULT_SIGKILL,
                              .trigger = {.when = RB_TRIGGER_STEP_COMMIT, .step = 0}};
    struct rb_sup_result res;
    struct rb_sup *sup = NULL;
    struct rb_error err;

    (void)state;
    assert_int_equal(rb_sup_new(&o, &sup, &err), RB_OK);
    assert_int_equal(rb_sup_add_fault(sup, &f, &err), RB_EINVAL);
    assert_string_equal(err.message,
                        "trigger step '0' is out of range; steps count from 1");
    f.form = RB_FAULT_CLOCK_JUMP;
    f.trigger.step = 1;
    assert_int_equal(rb_sup_add_fault(sup, &f, &err), RB_EINVAL);
    assert_string_equal(err.message, "fault 'clock-jump' needs a skewed clock");
    f.form = RB_FAULT_PARTITION;
    assert_int_equal(rb_sup_add_fault(sup, &f, &err), RB_EINVAL);
    assert_string_equal(err.message, "fault 'partition' needs a network namespace");
    assert_int_equal(rb_sup_run(sup, &res, &err), RB_ECHILD);
    assert_string_equal(
        err.message, "cannot start agent 'no-such-program-rebound': not found on PATH");
    rb_sup_free(sup);

    o.env = env;
    sup = NULL;
    assert_int_equal(rb_sup_new(&o, &sup, &err), RB_EINVAL);
    assert_null(sup);
    assert_string_equal(err.message, "environment entry 'NOEQUALS' is not NAME=value");
    o.argv = NULL;
    assert_int_equal(rb_sup_new(&o, &sup, &err), RB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_gives_same_schedule),
        cmocka_unit_test(seed_rejects_empty_range),
        cmocka_unit_test(trigger_descriptions),
        cmocka_unit_test(cgroup2_detection_says_why),
        cmocka_unit_test(group_rss_counts_members),
        cmocka_unit_test(clock_refuses_missing_lib),
        cmocka_unit_test(clock_file_and_cleanup),
        cmocka_unit_test(sup_reports_exit_code),
        cmocka_unit_test(sup_restart_hands_failure),
        cmocka_unit_test(sup_restart_policy_backs_off),
        cmocka_unit_test(sup_passes_events),
        cmocka_unit_test(sup_kills_leftovers),
        cmocka_unit_test(sup_timeout_kills),
        cmocka_unit_test(sup_interrupted_by_sigterm),
        cmocka_unit_test(sup_fires_external_trigger),
        cmocka_unit_test(sup_rejects_bad_input),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
