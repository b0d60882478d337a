/*
 * cmd_world.c - `rebound world`: run the world (simulated LLM and tools) as a
 * standalone server on 127.0.0.1 until SIGINT or SIGTERM, printing its base
 * URL, so any agent stack can point its OpenAI base URL at it.
 */
#include "cli.h"

#include "world/world.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rebound world [options]\n"
    "\n"
    "Runs the world on 127.0.0.1 until SIGINT or SIGTERM: an OpenAI-compatible\n"
    "LLM (POST /v1/chat/completions, GET /v1/models) and tools (POST\n"
    "/tools/search, fetch, send_email, write_record) whose answers are a pure\n"
    "function of the seed and the request. It prints one line,\n"
    "  world: listening on http://127.0.0.1:PORT/v1\n"
    "(the OpenAI base URL), then journals every request. Control endpoints:\n"
    "GET /_world/status, /_world/journal, /_world/effects, /_world/faults;\n"
    "POST /_world/faults (add HTTP faults); DELETE /_world/faults[/ID] (heal).\n"
    "See docs/world.md.\n"
    "\n"
    "options:\n"
    "  --port N         port (default 0: pick a free one)\n"
    "  --seed S         seed of the answers (default 0)\n"
    "  --turns N        tool-call turns before the final answer (default 2)\n"
    "  --latency MS     delay before each LLM answer (default 0)\n"
    "  --jitter MS      plus 0..MS, drawn from the seed and request (default 0)\n"
    "  --model NAME     model listed by /v1/models (default rebound-world)\n"
    "  --journal FILE   write the journal to FILE as JSON lines (truncated)\n"
    "  --journal-bodies put each request's and answer's body in those lines\n"
    "  --config FILE    JSON config: port, seed, turns, latency_ms, jitter_ms,\n"
    "                   model, journal, journal_bodies, faults; options given\n"
    "                   here win\n"
    "  -h, --help       show this help\n"
    "\n"
    "exit codes: 0 stopped by SIGINT/SIGTERM; 2 bad usage or config; 10 cannot\n"
    "listen or write the journal; 3 internal error.\n";

static int parse_num(const char *opt, const char *s, unsigned long long max,
                     unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-') {
        cli_errorf("world", "%s: '%s' is not a number in 0..%llu", opt, s, max);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_PORT = 256,
    OPT_SEED,
    OPT_TURNS,
    OPT_LATENCY,
    OPT_JITTER,
    OPT_MODEL,
    OPT_JOURNAL,
    OPT_CONFIG,
    OPT_BODIES /* a flag, kept apart from the valued options above */
};

struct opts {
    const char *val[OPT_CONFIG - OPT_PORT + 1]; /* each option's text, or NULL */
};

static int set_str(char **dst, const char *s)
{
    char *d = strdup(s);

    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

/* Lays the command-line options over cfg. */
static int apply(const struct opts *o, struct rb_world_config *cfg)
{
    unsigned long long v;
    const char *s;

    s = o->val[OPT_PORT - OPT_PORT];
    if (s) {
        if (parse_num("--port", s, 65535, &v) != 0)
            return EXIT_USAGE;
        cfg->port = (uint16_t)v;
    }
    s = o->val[OPT_SEED - OPT_PORT];
    if (s) {
        if (parse_num("--seed", s, ULLONG_MAX, &v) != 0)
            return EXIT_USAGE;
        cfg->seed = v;
    }
    s = o->val[OPT_TURNS - OPT_PORT];
    if (s) {
        if (parse_num("--turns", s, 1000, &v) != 0)
            return EXIT_USAGE;
        cfg->turns = (int)v;
    }
    s = o->val[OPT_LATENCY - OPT_PORT];
    if (s) {
        if (parse_num("--latency", s, 600000, &v) != 0)
            return EXIT_USAGE;
        cfg->latency_ms = (int)v;
    }
    s = o->val[OPT_JITTER - OPT_PORT];
    if (s) {
        if (parse_num("--jitter", s, 600000, &v) != 0)
            return EXIT_USAGE;
        cfg->jitter_ms = (int)v;
    }
    s = o->val[OPT_MODEL - OPT_PORT];
    if (s && set_str(&cfg->model, s) != 0)
        return EXIT_INTERNAL;
    s = o->val[OPT_JOURNAL - OPT_PORT];
    if (s && set_str(&cfg->journal_path, s) != 0)
        return EXIT_INTERNAL;
    return EXIT_OK;
}

int cmd_world(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"turns", required_argument, NULL, OPT_TURNS},
        {"latency", required_argument, NULL, OPT_LATENCY},
        {"jitter", required_argument, NULL, OPT_JITTER},
        {"model", required_argument, NULL, OPT_MODEL},
        {"journal", required_argument, NULL, OPT_JOURNAL},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"journal-bodies", no_argument, NULL, OPT_BODIES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o;
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct rb_error err;
    sigset_t set;
    int c, sig = 0, rc = EXIT_OK, bodies = 0;

    memset(&o, 0, sizeof(o));
    rb_world_config_init(&cfg);
    rb_error_init(&err);
    optind = 1;
    opterr = 0; /* we say what is wrong, in one line */
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            goto out;
        }
        if (c == OPT_BODIES) {
            bodies = 1;
            continue;
        }
        if (c >= OPT_PORT && c <= OPT_CONFIG) {
            o.val[c - OPT_PORT] = optarg;
            continue;
        }
        if (c == ':')
            cli_errorf("world", "option '%s' needs a value; run 'rebound world --help'",
                       argv[optind - 1]);
        else if (optopt)
            cli_errorf("world", "unknown option '-%c'; run 'rebound world --help'",
                       optopt);
        else
            cli_errorf("world", "unknown option '%s'; run 'rebound world --help'",
                       argv[optind - 1]);
        rc = EXIT_USAGE;
        goto out;
    }
    if (optind < argc) {
        cli_errorf("world", "unexpected argument '%s'", argv[optind]);
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.val[OPT_CONFIG - OPT_PORT] &&
        rb_world_config_load(o.val[OPT_CONFIG - OPT_PORT], &cfg, &err) != RB_OK) {
        cli_errorf("world", "%s", err.message);
        rc = err.code == RB_ENOMEM ? EXIT_INTERNAL : EXIT_USAGE;
        goto out;
    }
    rc = apply(&o, &cfg);
    if (rc != EXIT_OK)
        goto out;
    if (bodies)
        cfg.journal_bodies = 1;

    /* Block the stop signals before any thread starts, so that all threads
     * inherit the mask and sigwait() below receives them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (rb_world_start(&cfg, &w, &err) != RB_OK) {
        rc = cli_fail("world", &err);
        goto out;
    }
    printf("world: listening on %s/v1\n", rb_world_url(w));
    fflush(stdout);
    while (sigwait(&set, &sig) != 0)
        ;
    fprintf(stderr, "world: stopped by signal %d after %zu requests\n", sig,
            rb_world_journal_count(w));
    rb_world_stop(w);
out:
    rb_world_config_release(&cfg);
    return rc;
}
