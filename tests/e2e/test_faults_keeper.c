/*
 * test_faults_keeper.c - the agent never outlives its supervisor. A
 * supervisor process runs an agent that starts a grandchild in its group;
 * the supervisor is then SIGKILLed (no cleanup of its own can run: the
 * keeper and the parent-death signal must act), sent SIGINT without catching
 * signals (it dies of it), and sent SIGTERM while catching signals (it kills
 * the group, reports the interruption and returns). Each time, no process of
 * the agent's group may be left: kill(-pgid, 0) fails with ESRCH.
 *
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include "faults_common.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int pgid_pipe[2];

static void report_pgid(void *arg, const struct rb_fault_event *ev)
{
    json_t *j;
    pid_t pgid;

    (void)arg;
    if (strcmp(ev->kind, "proc.start") != 0)
        return;
    j = json_loads(ev->json, 0, NULL);
    pgid = (pid_t)json_integer_value(json_object_get(j, "pgid"));
    json_decref(j);
    if (write(pgid_pipe[1], &pgid, sizeof(pgid)) != (ssize_t)sizeof(pgid))
        _exit(3);
}

/* The supervisor process: runs the agent until told otherwise. Exits 0 when
 * rb_sup_run() returned interrupted by SIGTERM with the group gone. */
static void supervisor_main(const char *out, int catch_signals)
{
    const char *argv[] = {fc_child, "spawn", "0", out, NULL};
    struct rb_sup_opts o = {.argv = argv, .catch_signals = catch_signals};
    struct rb_sup_result res;
    struct rb_sup *sup = NULL;
    struct rb_error err;
    pid_t pgid;

    o.timeout_ms = 60000;
    o.on_event = report_pgid;
    if (rb_sup_new(&o, &sup, &err) != RB_OK || rb_sup_run(sup, &res, &err) != RB_OK) {
        fprintf(stderr, "supervisor: %s\n", err.message);
        _exit(2);
    }
    pgid = rb_sup_pgid(sup);
    rb_sup_free(sup);
    _exit(res.interrupted == SIGTERM && kill(-pgid, 0) != 0 && errno == ESRCH ? 0 : 1);
}

/* Reaps what comes to us (we are a subreaper) until the group and the
 * grandchild are gone; 1 when they are. */
static int gone(pid_t pgid, pid_t grandchild)
{
    int i;

    for (i = 0; i < 1000; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (kill(-pgid, 0) != 0 && errno == ESRCH &&
            (grandchild <= 0 || (kill(grandchild, 0) != 0 && errno == ESRCH)))
            return 1;
        fc_sleep_ms(10);
    }
    return 0;
}

static void one_case(const char *name, int sig, int catch_signals)
{
    char out[700], *text = NULL, *p;
    struct pollfd pfd;
    pid_t sup, pgid = 0, grandchild = 0;
    int status = -1, i;

    snprintf(out, sizeof(out), "%s/%s.out", fc_tmp, name);
    if (pipe(pgid_pipe) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    sup = fork();
    if (sup == 0) {
        close(pgid_pipe[0]);
        supervisor_main(out, catch_signals);
    }
    close(pgid_pipe[1]);
    pfd.fd = pgid_pipe[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 20000) != 1 ||
        read(pgid_pipe[0], &pgid, sizeof(pgid)) != (ssize_t)sizeof(pgid)) {
        CHECK(0, "%s: the supervisor never started the agent", name);
        kill(sup, SIGKILL);
        waitpid(sup, NULL, 0);
        close(pgid_pipe[0]);
        return;
    }
    close(pgid_pipe[0]);
    /* Wait until the agent has its grandchild running. */
    for (i = 0; i < 2000 && !grandchild; i++) {
        free(text);
        text = fc_slurp(out);
        p = strstr(text, "grandchild=");
        if (p)
            grandchild = (pid_t)strtol(p + 11, NULL, 10);
        else
            fc_sleep_ms(10);
    }
    free(text);
    CHECK(grandchild > 0, "%s: the agent never started its grandchild", name);
    CHECK(kill(-pgid, 0) == 0, "%s: the group is not running before the signal", name);

    kill(sup, sig);
    waitpid(sup, &status, 0);
    if (sig == SIGTERM && catch_signals)
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "%s: the supervisor did not report the interruption cleanly (status %d)",
              name, status);
    else
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sig,
              "%s: the supervisor was not killed by signal %d (status %d)", name, sig,
              status);
    CHECK(gone(pgid, grandchild), "%s: the agent's group %ld outlived its supervisor",
          name, (long)pgid);
    if (grandchild > 0 && kill(grandchild, 0) == 0)
        kill(grandchild, SIGKILL); /* do not leave it to the alarm */
}

int main(void)
{
    fc_init("test_faults_keeper");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl");
        return 1;
    }
    one_case("sigkill", SIGKILL, 0);
    one_case("sigint", SIGINT, 0);
    one_case("sigterm-caught", SIGTERM, 1);
    return fc_finish("keeper (supervisor SIGKILLed, SIGINTed, SIGTERMed)");
}
