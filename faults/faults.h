/*
 * faults.h - the interface of rb_faults: supervision of an agent process
 * group and the fault injectors that act on it (preemption, OOM, clock skew),
 * fired by triggers (a step of the built-in runner, a time, or a seed).
 *
 * The shape is the same for every fault: a struct rb_fault_spec arms a fault
 * on the supervised agent with a trigger; when the trigger fires the fault is
 * injected into the agent's process group, healed when it has a duration, and
 * everything done is reported as events (kind, form, parameters, monotonic
 * time of the supervisor) through a callback. Nothing here knows about
 * scenarios; the harness drives it.
 *
 * Conventions as in rebound.h: functions return enum rb_err, `err` may be
 * NULL, out-parameters are written only on success, the library never prints
 * and never exits.
 */
#ifndef REBOUND_FAULTS_H
#define REBOUND_FAULTS_H

#include <rebound/rebound.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------
 * Events
 */

/*
 * One event. Kinds written by the supervisor: "proc.start", "proc.exit",
 * "fault.inject", "fault.heal", "oom.mechanism"; lines the agent writes to
 * REBOUND_EVENT_FD ("step.start", "step.commit", ...) are passed on with
 * their own kind and their text as json. All fields are borrowed for the
 * duration of the callback.
 */
struct rb_fault_event {
    int64_t t_ns;     /* supervisor's CLOCK_MONOTONIC, ns */
    const char *kind; /* event kind */
    const char *json; /* the whole event: one JSON object, no newline */
};

typedef void (*rb_fault_event_fn)(void *arg, const struct rb_fault_event *ev);

/* ------------------------------------------------------------------------
 * Triggers
 */

enum rb_trigger_when {
    RB_TRIGGER_NONE = 0,    /* never fires */
    RB_TRIGGER_STEP_START,  /* on step.start of step N: before its work runs */
    RB_TRIGGER_STEP_DURING, /* delay_ms after step.start of step N */
    RB_TRIGGER_STEP_COMMIT, /* on step.commit of step N */
    RB_TRIGGER_TIME,        /* delay_ms after the agent's first start */
    RB_TRIGGER_EXTERNAL,    /* when rb_sup_fire() names it (e.g. the world saw
                               the K-th LLM request) */
};

/*
 * When a fault fires. Step N is the N-th distinct step key an attempt enters
 * (started, replayed or served from the cache), so a resumed attempt counts
 * replayed steps as a fresh one counts executed ones. A fault fires at most
 * once over the whole supervision.
 */
struct rb_trigger {
    enum rb_trigger_when when;
    int step;             /* N, from 1, when step_key is NULL */
    const char *step_key; /* or the step's key (copied when armed) */
    int64_t delay_ms;     /* DURING and TIME */
};

/* The space a seed draws a trigger from. */
struct rb_trigger_range {
    int step_min, step_max; /* step N in [min, max]; step_max 0: time trigger */
    int64_t during_max_ms;  /* DURING delay in [0, max] */
    int64_t time_min_ms;    /* time trigger in [min, max] ms after start */
    int64_t time_max_ms;
};

/*
 * Draws a trigger from `seed`: the same seed and range always give the same
 * trigger. With step_max > 0, a step in [step_min, step_max] and a phase
 * (start, during, commit); else a time in [time_min_ms, time_max_ms].
 * RB_EINVAL for an empty or negative range; *out is written only on success.
 */
enum rb_err rb_trigger_from_seed(uint64_t seed, const struct rb_trigger_range *range,
                                 struct rb_trigger *out, struct rb_error *err);

/* Writes a short description ("step 3 commit", "time 250ms") into buf. */
void rb_trigger_describe(const struct rb_trigger *t, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * Faults
 */

enum rb_fault_form {
    RB_FAULT_NOTICE = 1, /* preemption: SIGTERM to the group, SIGKILL after grace_ms */
    RB_FAULT_SIGKILL,    /* preemption: SIGKILL to the group (machine loss) */
    RB_FAULT_FREEZE,     /* preemption: SIGSTOP, SIGCONT after duration_ms */
    RB_FAULT_OOM_KILL,   /* OOM: SIGKILL, reported as OOM-killed (exit 137) */
    RB_FAULT_CLOCK_JUMP, /* clock: move the agent's wall clock by jump_s */
    RB_FAULT_PARTITION,  /* network: cut the agent's link (needs opts.netns),
                            restored after duration_ms */
};

/* "notice", "sigkill", "freeze", "oom-kill", "clock-jump", "partition", or
 * "unknown". */
const char *rb_fault_form_name(enum rb_fault_form form);

/* A fault to arm on a supervised agent. */
struct rb_fault_spec {
    enum rb_fault_form form;
    struct rb_trigger trigger;
    int64_t grace_ms;    /* NOTICE: SIGTERM to SIGKILL; 0 means 2000 */
    int64_t duration_ms; /* FREEZE, PARTITION: how long; 0 means 1000 */
    double jump_s;       /* CLOCK_JUMP: seconds added to the clock offset */
};

/* ------------------------------------------------------------------------
 * OOM
 */

enum rb_mem_mechanism {
    RB_MEM_AUTO = 0, /* cgroup v2 when delegated, else the watchdog */
    RB_MEM_CGROUP2,  /* memory.max in a cgroup v2 made for the agent */
    RB_MEM_WATCHDOG, /* sample the group's resident memory, SIGKILL past the limit */
};

/* "auto", "cgroup2", "watchdog". */
const char *rb_mem_mechanism_name(enum rb_mem_mechanism m);

/* A memory limit on the agent. Zero-initialised means none. */
struct rb_mem_limit {
    int64_t max_bytes;               /* 0: no limit */
    enum rb_mem_mechanism mechanism; /* how it is enforced */
    int sample_ms;                   /* watchdog period; 0 means 10 */
    int64_t rlimit_as_bytes;         /* >0: RLIMIT_AS in the agent (allocations fail) */
};

/*
 * Finds a writable, delegated cgroup v2 folder with the memory controller
 * where a cgroup for the agent can be made (the parent of the caller's
 * cgroup, or the root when the caller is in it). Returns RB_OK and the
 * folder in dir, or RB_ENOENT (no cgroup v2, or its memory controller is
 * elsewhere, e.g. on cgroup v1) or RB_EACCES (not writable or not delegated),
 * with the reason in err. dir is written only on success.
 */
enum rb_err rb_oom_cgroup2_detect(char *dir, size_t size, struct rb_error *err);

/*
 * Sums the resident memory of every process in process group `pgid`
 * (/proc/PID/statm). Returns RB_OK with the bytes and the number of
 * processes found (0 when the group is gone).
 */
enum rb_err rb_oom_group_rss(pid_t pgid, int64_t *bytes, int *nprocs,
                             struct rb_error *err);

/* ------------------------------------------------------------------------
 * Clock skew (libfaketime)
 */

struct rb_clock_opts {
    const char *lib;    /* libfaketime.so.1; NULL: $REBOUND_FAKETIME_LIB, then the
                           Debian path */
    double offset_s;    /* wall clock offset, seconds (may be negative) */
    double rate;        /* clock speed; 0 or 1 means real speed (no drift) */
    int fake_monotonic; /* 1: CLOCK_MONOTONIC skewed too; 0: left real */
    const char *dir;    /* folder for the control file; NULL: $TMPDIR or /tmp */
};

struct rb_clock;

/*
 * Prepares a skewed clock: finds libfaketime (RB_ENOENT with the paths tried
 * when absent) and writes its control file. The agent gets it through the
 * environment of rb_clock_env(). Free with rb_clock_free().
 */
enum rb_err rb_clock_new(const struct rb_clock_opts *opts, struct rb_clock **out,
                         struct rb_error *err);

/* The environment entries ("NAME=value", NULL-terminated) that put an agent
 * under this clock. Borrowed; valid until rb_clock_free(). */
const char *const *rb_clock_env(const struct rb_clock *clock);

/* Changes offset and rate now: running agents see the jump at their next
 * clock read (caching is off). On error the clock is unaltered. */
enum rb_err rb_clock_set(struct rb_clock *clock, double offset_s, double rate,
                         struct rb_error *err);

/* The current offset (seconds) and rate. */
double rb_clock_offset(const struct rb_clock *clock);
double rb_clock_rate(const struct rb_clock *clock);

/* The libfaketime library in use (borrowed). */
const char *rb_clock_lib(const struct rb_clock *clock);

/* Removes what libfaketime leaves in /dev/shm for process `pid` (its shared
 * memory and semaphore). The supervisor calls it for each agent it started. */
void rb_clock_cleanup_pid(pid_t pid);

/* Removes the control file and its folder and frees. NULL is fine. */
void rb_clock_free(struct rb_clock *clock);

/* ------------------------------------------------------------------------
 * Supervision
 */

/* When and how often a failed agent is started again. */
struct rb_restart_policy {
    int max_attempts;     /* attempts in all, the first included; 0 means 1 */
    int64_t delay_ms;     /* before the first restart */
    double backoff;       /* factor on the delay per restart; 0 means 1 */
    int64_t max_delay_ms; /* cap on the delay; 0 means none */
    int final_exit;       /* an attempt exiting with this code (not 0) is not
                             restarted: it asked for a human (rebound's 8,
                             parked); 0 means none */
};

struct rb_sup_opts {
    const char *const *argv;          /* program (searched on PATH) and arguments */
    const char *const *env;           /* "NAME=value" added to the environment, or
                                         NULL (NULL-terminated) */
    const char *cwd;                  /* working folder, or NULL */
    struct rb_restart_policy restart; /* restarts after a failure */
    struct rb_mem_limit mem;          /* memory limit, or none */
    struct rb_clock *clock;           /* skewed clock (borrowed), or NULL */
    struct rb_netns *netns;           /* own network namespace (borrowed), or NULL */
    int catch_signals;                /* 1: SIGINT, SIGTERM, SIGHUP during
                                         rb_sup_run() kill the agent and end it */
    int64_t timeout_ms;               /* hang guard for the whole run; 0: none */
    rb_fault_event_fn on_event;       /* events, or NULL */
    void *event_arg;                  /* passed to on_event */
};

/* How a supervision ended. */
struct rb_sup_result {
    int attempts;            /* attempts started */
    int completed;           /* 1 when the last attempt exited 0 unfaulted */
    int exit_code;           /* last attempt's exit code, -1 if signalled */
    int signal;              /* last attempt's terminating signal, or 0 */
    int interrupted;         /* signal that interrupted the supervisor, or 0 */
    int timed_out;           /* 1 when timeout_ms ran out */
    int injected;            /* faults injected */
    char last_failure[1024]; /* JSON of the last failure, or "" */
};

struct rb_sup;

/*
 * Makes a supervisor for the agent in opts (copied; clock stays borrowed).
 * Nothing starts yet. RB_EINVAL for an empty argv or a bad policy.
 */
enum rb_err rb_sup_new(const struct rb_sup_opts *opts, struct rb_sup **out,
                       struct rb_error *err);

/* Arms a fault (copied). RB_EINVAL for a bad spec, e.g. a clock jump without
 * a clock. Call before rb_sup_run(). */
enum rb_err rb_sup_add_fault(struct rb_sup *sup, const struct rb_fault_spec *spec,
                             struct rb_error *err);

/*
 * Runs the agent to its end: starts it in its own process group with
 * REBOUND_ATTEMPT, REBOUND_EVENT_FD and, after a failure,
 * REBOUND_LAST_FAILURE (JSON: kind, form, signal, exit_code, limit, trigger,
 * attempt); fires the armed faults; restarts per the policy. An attempt that
 * exits 0 without a fault on it ends the run. Whatever happens, the group is
 * killed and reaped before this returns; a keeper process kills it should the
 * supervisor itself be killed, and the agent gets SIGKILL as parent-death
 * signal.
 *
 * Returns RB_OK with the outcome in *out (the agent's failures are outcomes,
 * not errors), RB_ECHILD when the agent cannot be started (the message names
 * the program), RB_EIO when the supervisor's own plumbing fails.
 */
enum rb_err rb_sup_run(struct rb_sup *sup, struct rb_sup_result *out,
                       struct rb_error *err);

/*
 * Fires armed fault number `index` (0-based, in the order added) now, for
 * triggers the supervisor cannot see itself (RB_TRIGGER_EXTERNAL; a fault of
 * another trigger that has not fired yet is fired too). Safe from any thread
 * and from a signal handler while rb_sup_run() runs: it only writes to a
 * pipe the supervision loop watches, which injects the fault into the
 * running attempt and measures the latency from this call. Returns RB_OK, or
 * RB_EINVAL for an index out of range, RB_EIO when the pipe is full.
 */
enum rb_err rb_sup_fire(struct rb_sup *sup, size_t index);

/* The process group of the current or last attempt (0 before the first). */
pid_t rb_sup_pgid(const struct rb_sup *sup);

/* The memory mechanism in use ("watchdog", "cgroup2", or "none"). */
const char *rb_sup_mem_mechanism(const struct rb_sup *sup);

/* Kills the group if still alive and frees. NULL is fine. */
void rb_sup_free(struct rb_sup *sup);

/* ------------------------------------------------------------------------
 * Network: a TCP proxy on loopback for any upstream the agent uses
 */

enum rb_net_mode {
    RB_NET_PASS = 0,  /* forward (shaped as below) */
    RB_NET_RESET,     /* reset open connections; accept and reset new ones */
    RB_NET_BLACKHOLE, /* accept and drop: nothing is forwarded or answered */
    RB_NET_REFUSE,    /* stop listening: new connections are refused; open
                         ones go on */
};

/* "pass", "reset", "blackhole", "refuse". */
const char *rb_net_mode_name(enum rb_net_mode mode);

/* How the proxy treats traffic. Zero-initialised: pass everything as is. */
struct rb_net_shape {
    enum rb_net_mode mode;
    int latency_ms;            /* added to every chunk, each direction */
    int jitter_ms;             /* plus a seeded draw in [0, jitter_ms]; order kept */
    int64_t bandwidth_bps;     /* bytes per second, each direction of each
                                  connection; 0: no cap */
    int64_t close_after_bytes; /* close a connection once it has sent this many
                                  bytes to the client; 0: never */
};

struct rb_proxy_opts {
    int listen_port;           /* on 127.0.0.1; 0 picks a free port */
    const char *upstream_host; /* numeric address, e.g. "127.0.0.1" or "::1" */
    int upstream_port;
    struct rb_net_shape shape;  /* at start */
    uint64_t seed;              /* for jitter */
    rb_fault_event_fn on_event; /* shape changes, as fault.inject events; may be
                                   NULL. Called in the thread calling
                                   rb_proxy_set(). */
    void *event_arg;
};

/* Counters since start. */
struct rb_proxy_stats {
    int64_t accepted;   /* connections accepted */
    int64_t refused;    /* upstream connections that failed */
    int64_t resets;     /* connections reset by the proxy */
    int64_t bytes_up;   /* client to upstream, forwarded */
    int64_t bytes_down; /* upstream to client, forwarded */
};

struct rb_proxy;

/*
 * Starts a proxy thread listening on 127.0.0.1 that forwards each connection
 * to the upstream. RB_EINVAL for a bad address, RB_EIO when it cannot listen
 * (the message says why). Stop and free with rb_proxy_free().
 */
enum rb_err rb_proxy_start(const struct rb_proxy_opts *opts, struct rb_proxy **out,
                           struct rb_error *err);

/* The port it listens on. */
int rb_proxy_port(const struct rb_proxy *proxy);

/* Switches the shape now, for open connections too. Thread-safe. RB_EIO when
 * the listener cannot be made again after RB_NET_REFUSE. */
enum rb_err rb_proxy_set(struct rb_proxy *proxy, const struct rb_net_shape *shape,
                         struct rb_error *err);

/* Reads the counters. Thread-safe. */
void rb_proxy_stats(struct rb_proxy *proxy, struct rb_proxy_stats *out);

/* Stops the thread, closes every connection and frees. NULL is fine. */
void rb_proxy_free(struct rb_proxy *proxy);

/* ------------------------------------------------------------------------
 * Network: the agent in its own network namespace (needs root)
 */

struct rb_netns;

/*
 * Checks that network namespaces can be made here: root (CAP_SYS_ADMIN and
 * CAP_NET_ADMIN) and the `ip` program. RB_EACCES or RB_ENOENT with a plain
 * reason when not.
 */
enum rb_err rb_netns_check(struct rb_error *err);

/*
 * Prepares a namespace for the agent: names and a /30 subnet. The supervisor
 * (rb_sup_opts.netns) puts each attempt in a fresh namespace joined to the
 * host by a veth pair: the agent reaches the host at rb_netns_host_addr()
 * and has rb_netns_agent_addr(). Namespaces and links left by a crashed
 * supervisor are removed first.
 */
enum rb_err rb_netns_new(struct rb_netns **out, struct rb_error *err);

const char *rb_netns_host_addr(const struct rb_netns *ns);
const char *rb_netns_agent_addr(const struct rb_netns *ns);

/* Cuts (on = 1) or restores (on = 0) the agent's link to the host. */
enum rb_err rb_netns_partition(struct rb_netns *ns, int on, struct rb_error *err);

/*
 * Sets `tc netem` delay and loss on the host side of the link (both 0:
 * removes it). RB_ENOENT when this kernel has no netem qdisc (sch_netem).
 */
enum rb_err rb_netns_netem(struct rb_netns *ns, int delay_ms, double loss_pct,
                           struct rb_error *err);

/* Removes what is left (the namespace, the link) and frees. NULL is fine. */
void rb_netns_free(struct rb_netns *ns);

#endif /* REBOUND_FAULTS_H */
