/*
 * cmd_agent.c - `rebound agent`: runs the built-in agent on a scenario's
 * workflow as a durable run, against the world (OPENAI_BASE_URL,
 * REBOUND_TOOLS_URL), and prints the final answer and what was executed,
 * replayed and served from the cache. A supervisor's REBOUND_ATTEMPT,
 * REBOUND_LAST_FAILURE and REBOUND_EVENT_FD are honoured.
 */
#include "cli.h"

#include "agent/agent.h"
#include "scenario.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rebound agent --scenario FILE [options]\n"
    "\n"
    "Runs rebound's built-in agent on the workflow of a scenario (its agent must\n"
    "be 'builtin') as a durable run: a tool-using loop of LLM and tool steps,\n"
    "task steps that allocate memory in a child under a limit, and research\n"
    "threads at the fan-out. Steps already committed in the run are replayed, so\n"
    "running it again resumes where it stopped. Prints the final answer, then\n"
    "one line: steps executed, replayed and served from the global cache.\n"
    "See docs/agent.md.\n"
    "\n"
    "options:\n"
    "  --scenario FILE     the scenario (required)\n"
    "  --store DIR         store folder (default $REBOUND_STORE)\n"
    "  --run ID            run id (default $REBOUND_RUN, else the scenario's name)\n"
    "  --mode MODE         override the scenario's agent mode: correct, no-replay,\n"
    "                      drop-history, ignore-failure-context, no-idempotency,\n"
    "                      wall-clock-lease\n"
    "  --concurrency N     research threads at once (default: the fan-out's\n"
    "                      concurrency, else 4)\n"
    "  --task-mem-mb N     memory limit of task steps, MiB (default\n"
    "                      $REBOUND_TASK_MEM_MB, else none)\n"
    "  --task-mem-cap-mb N largest limit an OOM retry may use (default 8x)\n"
    "  --tries N           tries per LLM or tool call (default 5)\n"
    "  --backoff-ms MS     first backoff ceiling between tries (default 500)\n"
    "  --model NAME        model named in requests (default rebound-world)\n"
    "  --lease-ms MS       the agent's lease on the run, renewed at every step;\n"
    "                      past it the agent stops, exit 9 (default 60000)\n"
    "  -h, --help          show this help\n"
    "\n"
    "environment: OPENAI_BASE_URL (the LLM, e.g. http://127.0.0.1:PORT/v1),\n"
    "REBOUND_TOOLS_URL (the tools, e.g. http://127.0.0.1:PORT/tools),\n"
    "OPENAI_API_KEY, REBOUND_STORE, REBOUND_RUN, REBOUND_TASK_MEM_MB,\n"
    "REBOUND_ATTEMPT, REBOUND_LAST_FAILURE, REBOUND_EVENT_FD.\n"
    "\n"
    "SIGTERM (a preemption notice): the step in flight is finished and\n"
    "committed, no other starts, and the agent exits 143; run it again to resume.\n"
    "\n"
    "exit codes: 0 done; 2 bad usage or scenario; 8 the run is parked for a\n"
    "human (a call or task failed for good); 9 the agent's lease on the run\n"
    "expired; 143 stopped by SIGTERM; others as for every command.\n";

/* Set by SIGTERM: the agent stops at the next step boundary. */
static volatile sig_atomic_t stop_requested;

static void on_sigterm(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int parse_count(const char *opt, const char *s, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > max) {
        cli_errorf("agent", "%s: '%s' is not a number in 0..%ld", opt, s, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_mode(const char *s, enum rb_scenario_mode *out)
{
    int m;

    for (m = RB_SCENARIO_MODE_CORRECT; m <= RB_SCENARIO_MODE_WALL_CLOCK_LEASE; m++)
        if (strcmp(s, rb_scenario_mode_name((enum rb_scenario_mode)m)) == 0) {
            *out = (enum rb_scenario_mode)m;
            return 0;
        }
    cli_errorf("agent", "--mode: unknown mode '%s'", s);
    return -1;
}

enum {
    OPT_SCENARIO = 256,
    OPT_STORE,
    OPT_RUN,
    OPT_MODE,
    OPT_CONCURRENCY,
    OPT_MEM,
    OPT_CAP,
    OPT_TRIES,
    OPT_BACKOFF,
    OPT_MODEL,
    OPT_LEASE,
};

int cmd_agent(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"store", required_argument, NULL, OPT_STORE},
        {"run", required_argument, NULL, OPT_RUN},
        {"mode", required_argument, NULL, OPT_MODE},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"task-mem-mb", required_argument, NULL, OPT_MEM},
        {"task-mem-cap-mb", required_argument, NULL, OPT_CAP},
        {"tries", required_argument, NULL, OPT_TRIES},
        {"backoff-ms", required_argument, NULL, OPT_BACKOFF},
        {"model", required_argument, NULL, OPT_MODEL},
        {"lease-ms", required_argument, NULL, OPT_LEASE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *scenario_path = NULL, *store_opt = NULL, *run_opt = NULL, *mode = NULL;
    const char *env_mem = getenv("REBOUND_TASK_MEM_MB");
    struct rb_scenario *sc = NULL;
    struct rb_agent_opts ao;
    struct rb_agent_result res;
    struct rb_error err;
    long v = 0, mem_mb = 0, cap_mb = 0;
    int c, rc = EXIT_OK;

    memset(&ao, 0, sizeof(ao));
    rb_agent_result_init(&res);
    rb_error_init(&err);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SCENARIO:
            scenario_path = optarg;
            break;
        case OPT_STORE:
            store_opt = optarg;
            break;
        case OPT_RUN:
            run_opt = optarg;
            break;
        case OPT_MODE:
            mode = optarg;
            break;
        case OPT_CONCURRENCY:
            if (parse_count("--concurrency", optarg, 1024, &v) != 0)
                return EXIT_USAGE;
            if (v == 0) {
                cli_errorf("agent", "--concurrency: must be at least 1");
                return EXIT_USAGE;
            }
            ao.concurrency = (int)v;
            break;
        case OPT_MEM:
            if (parse_count("--task-mem-mb", optarg, 1 << 20, &mem_mb) != 0)
                return EXIT_USAGE;
            env_mem = NULL;
            break;
        case OPT_CAP:
            if (parse_count("--task-mem-cap-mb", optarg, 1 << 20, &cap_mb) != 0)
                return EXIT_USAGE;
            break;
        case OPT_TRIES:
            if (parse_count("--tries", optarg, 1000, &v) != 0)
                return EXIT_USAGE;
            ao.llm_tries = (int)v;
            break;
        case OPT_BACKOFF:
            if (parse_count("--backoff-ms", optarg, 600000, &v) != 0)
                return EXIT_USAGE;
            ao.backoff_ms = (int)v;
            break;
        case OPT_MODEL:
            ao.model = optarg;
            break;
        case OPT_LEASE:
            if (parse_count("--lease-ms", optarg, 86400000, &v) != 0)
                return EXIT_USAGE;
            ao.lease_ms = (int)v;
            break;
        case 'h':
            fputs(help, stdout);
            return EXIT_OK;
        default:
            if (optopt >= OPT_SCENARIO)
                cli_errorf("agent", "option '%s' needs a value", argv[optind - 1]);
            else
                cli_errorf("agent", "unknown option '%s'", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_errorf("agent", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (!scenario_path) {
        cli_errorf("agent", "no scenario: give --scenario FILE");
        return EXIT_USAGE;
    }
    if (env_mem && *env_mem &&
        parse_count("REBOUND_TASK_MEM_MB", env_mem, 1 << 20, &mem_mb) != 0)
        return EXIT_USAGE;
    if (cap_mb && cap_mb < mem_mb) {
        cli_errorf("agent", "--task-mem-cap-mb %ld is below the task memory limit %ld",
                   cap_mb, mem_mb);
        return EXIT_USAGE;
    }
    if (rb_scenario_load(scenario_path, &sc, NULL, &err) != RB_OK) {
        if (err.file[0] && err.line > 0)
            cli_errorf("agent", "%s:%d:%d: %s", err.file, err.line, err.column,
                       err.message);
        else
            cli_errorf("agent", "%s",
                       err.message[0] ? err.message : rb_strerror(err.code));
        rc = cli_exit_for(err.code);
        goto out;
    }
    if (sc->agent.kind != RB_SCENARIO_AGENT_BUILTIN) {
        cli_errorf("agent", "scenario '%s' runs its own command, not the built-in agent",
                   scenario_path);
        rc = EXIT_USAGE;
        goto out;
    }
    ao.mode = sc->agent.mode;
    if (mode && parse_mode(mode, &ao.mode) != 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    ao.store_dir = cli_store_dir(store_opt);
    if (!ao.store_dir) {
        cli_errorf("agent", "no store: give --store DIR or set REBOUND_STORE");
        rc = EXIT_USAGE;
        goto out;
    }
    ao.run_id = run_opt && *run_opt ? run_opt : getenv("REBOUND_RUN");
    if (!ao.run_id || !*ao.run_id)
        ao.run_id = sc->name;
    ao.name = sc->name;
    ao.wf = &sc->agent.workflow;
    ao.tools = (const char *const *)sc->world.tools;
    ao.task_mem = (size_t)mem_mb << 20;
    ao.task_mem_cap = (size_t)cap_mb << 20;
    if (rb_run_opts_from_env(&ao.run_opts, &err) != RB_OK) {
        rc = cli_fail("agent", &err);
        goto out;
    }
    {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigterm;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        ao.stop = &stop_requested;
    }
    if (rb_agent_run(&ao, &res, &err) != RB_OK) {
        rc = cli_fail("agent", &err);
        goto out;
    }
    if (res.stopped) {
        cli_errorf("agent",
                   "run '%s' attempt %d stopped by SIGTERM before workflow step %d; "
                   "its committed steps are kept: run it again to resume",
                   ao.run_id, res.attempt, res.stopped);
        rc = 128 + SIGTERM;
        goto out;
    }
    printf("%s\n", res.answer);
    printf("agent: run '%s' attempt %d: %d steps: %d executed, %d replayed, %d cached\n",
           ao.run_id, res.attempt, res.steps, res.executed, res.replayed, res.cached);
    if (fflush(stdout) != 0)
        rc = EXIT_IO;
out:
    rb_agent_result_release(&res);
    rb_scenario_free(sc);
    return rc;
}
