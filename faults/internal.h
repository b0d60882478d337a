/*
 * internal.h - what the files of rb_faults share and nothing outside may use:
 * the supervisor's state, the armed faults, and the helpers each injector
 * module offers the supervision loop.
 */
#ifndef REBOUND_FAULTS_INTERNAL_H
#define REBOUND_FAULTS_INTERNAL_H

#include "faults.h"

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

/* ---- errors, clock, events (util.c) ----------------------------------- */

/* librebound's error helpers (rebound.h), by this module's names. */
#define rb__fx_fail rb_error_set
#define rb__fx_fail_errno rb_error_set_errno

/* Maps an errno to the closest code (ENOENT, EACCES, ENOMEM, else EIO). */
enum rb_err rb__fx_errno_code(int e);

/* The supervisor's CLOCK_MONOTONIC in ns: all of rb_faults' measurements. */
int64_t rb__fx_now_ns(void);

/* Sleeps ms (restarting after signals). */
void rb__fx_sleep_ms(int64_t ms);

struct rb_sup;

/* Sends event `kind` with the fields of `obj` (stolen; may be NULL) plus
 * "t" (t_ns) and "kind" to the supervisor's callback. */
void rb__fx_emit(struct rb_sup *sup, const char *kind, int64_t t_ns, json_t *obj);

/* ---- armed faults ------------------------------------------------------ */

enum rb__fault_state {
    RB__ARMED = 0, /* waiting for its trigger */
    RB__PENDING,   /* triggered; fires at due_ns (DURING, TIME) */
    RB__ACTIVE,    /* injected; a second act (heal, escalation) is due at due_ns */
    RB__DONE,      /* finished */
};

struct rb__fault {
    struct rb_fault_spec spec; /* copy; spec.trigger.step_key points at step_key */
    char *step_key;            /* owned copy of the trigger's key, or NULL */
    enum rb__fault_state state;
    int64_t due_ns;     /* next timed act, supervisor clock */
    int64_t trigger_ns; /* when the trigger fired */
    int attempt;        /* the attempt it hit */
    char desc[96];      /* trigger description */
};

/* How the current attempt's death is to be reported, when a fault caused it. */
struct rb__blame {
    int set;          /* 1 when a fault claimed the death */
    const char *kind; /* "preemption", "oom" (static) */
    const char *form; /* form or mechanism name (static) */
    char trigger[96]; /* trigger description, or "" */
    int64_t limit;    /* memory limit in bytes, or 0 */
    int by_kill;      /* a SIGKILL: it claims only a death by signal */
};

struct rb_sup {
    char **argv; /* owned, NULL-terminated */
    char **env;  /* owned extra entries, NULL-terminated */
    char *cwd;   /* owned or NULL */
    struct rb_restart_policy restart;
    struct rb_mem_limit mem;
    struct rb_clock *clock; /* borrowed */
    struct rb_netns *netns; /* borrowed */
    int catch_signals;
    int64_t timeout_ms;
    rb_fault_event_fn on_event;
    void *event_arg;

    struct rb__fault *faults; /* armed faults */
    size_t n_faults;

    /* the current attempt */
    int attempt;     /* 1, 2, ... */
    pid_t pid;       /* the agent, leader of its group */
    pid_t pgid;      /* its process group (== pid), kept after it ends */
    int pidfd;       /* -1 when none */
    int64_t exit_ns; /* when its exit was seen (waitid), supervisor clock */
    int evfd;        /* read end of the event pipe, -1 when closed */
    char *evline;    /* partial event line */
    size_t evline_len, evline_cap;
    char **keys; /* distinct step keys entered in this attempt */
    size_t n_keys, cap_keys;
    int64_t first_start_ns;  /* when attempt 1 started */
    struct rb__blame blame;  /* set by the fault that killed the attempt */
    int injected;            /* faults injected, in all */
    char last_failure[1024]; /* JSON handed to the next attempt */

    /* memory limit */
    enum rb_mem_mechanism mech; /* in use; RB_MEM_AUTO when there is no limit */
    char cg_parent[512];        /* cgroup v2 folder found, or "" */
    char cg_dir[640];           /* the agent's cgroup, or "" */
    int64_t next_sample_ns;     /* watchdog */
    int64_t peak_rss;           /* largest sample in this attempt */

    /* rb_sup_fire(): requests from any thread, read by the loop */
    int fire_rd, fire_wr; /* non-blocking pipe, -1 when none */

    /* keeper process and signals */
    pid_t keeper_pid; /* 0 when none */
    int keeper_fd;    /* write end of its pipe, -1 when none */
    int sigfd;        /* signalfd during rb_sup_run, -1 otherwise */
    sigset_t oldmask; /* mask to restore */
};

/* ---- faults.c: firing and second acts ---------------------------------- */

/* Fires fault f now: injects it into the current group and reports it. */
void rb__fault_fire(struct rb_sup *sup, struct rb__fault *f, int64_t trigger_ns);

/* Runs the timed act of f (DURING/TIME fire, heal, escalation) if due. */
void rb__fault_tick(struct rb_sup *sup, struct rb__fault *f, int64_t now);

/* The attempt ended: forget acts that no longer have a target. */
void rb__faults_attempt_end(struct rb_sup *sup);

/* ---- preempt.c --------------------------------------------------------- */

/* Injects a preemption form into group pgid; returns the signal sent, or -1
 * (errno set) when kill() failed. */
int rb__preempt_inject(pid_t pgid, enum rb_fault_form form);

/* The second act: SIGKILL after a notice, SIGCONT after a freeze. */
int rb__preempt_second(pid_t pgid, enum rb_fault_form form);

/* ---- trigger.c --------------------------------------------------------- */

/* Feeds one agent event (kind, step key, may be NULL) to the armed triggers,
 * firing or scheduling what matches. With `fire` 0 (what an attempt wrote
 * after a fault claimed its death, or read after it died) nothing fires; an
 * armed step trigger fires on the replay (or cache hit) of its step. */
void rb__trigger_on_event(struct rb_sup *sup, const char *kind, const char *key,
                          int64_t now, int fire);

/* The attempt started: schedule time triggers, forget the step keys. */
void rb__trigger_attempt_start(struct rb_sup *sup);

/* ---- oom.c ------------------------------------------------------------- */

/* Chooses the mechanism for sup->mem and prepares it (cgroup parent). */
enum rb_err rb__oom_setup(struct rb_sup *sup, struct rb_error *err);

/* Before the agent starts: makes its cgroup when cgroup v2 is used. */
enum rb_err rb__oom_attempt_begin(struct rb_sup *sup, struct rb_error *err);

/* In the forked child, before exec: RLIMIT_AS and joining the cgroup.
 * Async-signal-safe; returns 0 or an errno. */
int rb__oom_child(const struct rb_sup *sup, pid_t self);

/* Watchdog sample when due; kills the group past the limit. */
void rb__oom_tick(struct rb_sup *sup, int64_t now);

/* The next time the watchdog wants to run, or INT64_MAX. */
int64_t rb__oom_next(const struct rb_sup *sup);

/* After the attempt died: blames the cgroup OOM killer if it acted, and
 * removes the attempt's cgroup. */
void rb__oom_attempt_end(struct rb_sup *sup, int signal);

/* ---- netns.c ----------------------------------------------------------- */

/* In the forked child: a new network namespace. Returns 0 or an errno. */
int rb__netns_child(void);

/* Names the child's namespace and wires it to the host. */
enum rb_err rb__netns_attach(struct rb_netns *ns, pid_t pid, struct rb_error *err);

/* Removes the attempt's namespace and link. */
void rb__netns_detach(struct rb_netns *ns);

/* ---- keeper.c ---------------------------------------------------------- */

/* Starts the keeper: a process that kills the current group should the
 * supervisor die. */
enum rb_err rb__keeper_start(struct rb_sup *sup, struct rb_error *err);

/* Tells the keeper which group to kill (0: none). */
void rb__keeper_watch(struct rb_sup *sup, pid_t pgid);

/* Stops the keeper and reaps it. */
void rb__keeper_stop(struct rb_sup *sup);

#endif /* REBOUND_FAULTS_INTERNAL_H */
