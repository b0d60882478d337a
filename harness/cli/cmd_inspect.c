/*
 * cmd_inspect.c - the commands that read a store or change a run's status
 * for a human: runs, log, lineage, escalations, park, check.
 */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Options shared by the reading commands. */
struct common {
    const char *store;
    const char *run;
    int json;
    int dot;
    int all;
    const char *note;
    const char *reason;
    const char *context;
    const char *cmd;
    int run_from_env; /* run came from REBOUND_RUN, not the command line */
};

/* Parses the options of `cmd`; the first positional argument, if any, is the
 * run id. Returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, struct common *o, const char *help)
{
    static const struct option longopts[] = {
        {"store", required_argument, NULL, 's'},
        {"run", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"dot", no_argument, NULL, 'd'},
        {"all", no_argument, NULL, 'a'},
        {"note", required_argument, NULL, 'n'},
        {"reason", required_argument, NULL, 'R'},
        {"context", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    opterr = 0; /* we say what is wrong, in one line */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->store = optarg;
            break;
        case 'r':
            o->run = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'd':
            o->dot = 1;
            break;
        case 'a':
            o->all = 1;
            break;
        case 'n':
            o->note = optarg;
            break;
        case 'R':
            o->reason = optarg;
            break;
        case 'C':
            o->context = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return EXIT_OK;
        case ':':
            cli_errorf(o->cmd, "option '%s' needs a value; run 'rebound %s --help'",
                       argv[optind - 1], o->cmd);
            return EXIT_USAGE;
        default:
            if (optopt)
                cli_errorf(o->cmd, "unknown option '-%c'; run 'rebound %s --help'",
                           optopt, o->cmd);
            else
                cli_errorf(o->cmd, "unknown option '%s'; run 'rebound %s --help'",
                           argv[optind - 1], o->cmd);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        o->run = argv[optind++];
    if (optind < argc) {
        cli_errorf(o->cmd, "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (!o->run) {
        const char *env = getenv("REBOUND_RUN");
        if (env && *env) {
            o->run = env;
            o->run_from_env = 1;
        }
    }
    return -1;
}

static void fmt_wall(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    int rc = s && puts(s) >= 0 ? EXIT_OK : EXIT_IO;

    free(s);
    json_decref(v);
    return rc;
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- runs --------------------------------------------------------------- */

static const char runs_help[] =
    "usage: rebound runs [--store DIR] [--json]\n"
    "\n"
    "Lists the runs in the store, newest first: status (active or parked),\n"
    "committed and failed steps, attempts, last update.\n";

static int runs_text(void *arg, const struct rb_run_summary *r)
{
    char when[32];

    (void)arg;
    fmt_wall(r->updated_wall_ms, when, sizeof(when));
    printf("%-24s %-7s %8lld %6lld %8d  %s\n", r->run_id, r->status, (long long)r->steps,
           (long long)r->failed, r->attempts, when);
    return 0;
}

static int runs_json(void *arg, const struct rb_run_summary *r)
{
    json_array_append_new(
        arg, json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:I}", "run", r->run_id, "status",
                       r->status, "steps", (json_int_t)r->steps, "failed",
                       (json_int_t)r->failed, "attempts", r->attempts, "created_wall_ms",
                       (json_int_t)r->created_wall_ms, "updated_wall_ms",
                       (json_int_t)r->updated_wall_ms));
    return 0;
}

int cmd_runs(int argc, char **argv)
{
    struct common o = {.cmd = "runs"};
    struct rb_store *store = NULL;
    struct rb_error err;
    json_t *arr = NULL;
    int code = parse(argc, argv, &o, runs_help);

    if (code >= 0)
        return code;
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    if (o.json) {
        arr = json_array();
        if (rb_store_list_runs(store, runs_json, arr, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        else
            code = print_json(
                json_pack("{s:i, s:o}", "schema", 1, "runs", json_incref(arr)));
        json_decref(arr);
    } else {
        printf("%-24s %-7s %8s %6s %8s  %s\n", "RUN", "STATUS", "STEPS", "FAILED",
               "ATTEMPTS", "UPDATED");
        if (rb_store_list_runs(store, runs_text, NULL, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
    }
    rb_store_close(store);
    return code;
}

/* ---- log ------------------------------------------------------------------ */

static const char log_help[] =
    "usage: rebound log [--store DIR] [--json] RUN\n"
    "\n"
    "Shows the replay log of RUN: committed steps in order (seq, name, kind,\n"
    "attempt, tries, source, size, duration, output), then steps whose last try\n"
    "failed with their error context, then the run's attempts and how each\n"
    "ended. --json prints the same as one JSON document, with outputs inline\n"
    "(as text when they are UTF-8, else as hex under 'output_hex').\n"
    "RUN defaults to $REBOUND_RUN.\n";

struct log_ctx {
    struct rb_store *store;
    json_t *steps;
    enum rb_err rc;
    struct rb_error *err;
};

/* Bytes in the well-formed UTF-8 character at p (n bytes left), or 0. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    size_t len, i;
    unsigned char lo = 0x80, hi = 0xbf;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0; /* no overlong forms */
    else if (p[0] == 0xed)
        hi = 0x9f; /* no surrogates */
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f; /* nothing above U+10FFFF */
    if (len > n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Prints about `max` bytes of an output as a quoted preview: UTF-8 text as it
 * is, control characters and bytes that are not UTF-8 escaped. */
static void preview(const unsigned char *p, size_t len, size_t max)
{
    size_t i = 0, n;

    putchar('"');
    while (i < len && i < max) {
        n = utf8_char(p + i, len - i);
        if (p[i] == '\n')
            fputs("\\n", stdout);
        else if (p[i] == '"' || p[i] == '\\')
            printf("\\%c", p[i]);
        else if (p[i] < 0x20 || p[i] == 0x7f || n == 0)
            printf("\\x%02x", p[i]);
        else
            fwrite(p + i, 1, n, stdout);
        i += n ? n : 1;
    }
    putchar('"');
    if (i < len)
        fputs("...", stdout);
}

static int log_text(void *arg, const struct rb_step_record *r)
{
    struct log_ctx *c = arg;
    double ms = (double)(r->end_mono_ns - r->start_mono_ns) / 1e6;

    if (strcmp(r->status, "committed") == 0) {
        printf("%6lld  %-20s %-6s %7d %5d  %-5s %8zu  %9.3f  ", (long long)r->seq, r->key,
               r->kind, r->attempt, r->tries, r->cached ? "cache" : "exec", r->output_len,
               ms);
        if (r->output)
            preview(r->output, r->output_len, 40);
        else
            printf("blob %.16s...", r->output_hash ? r->output_hash : "");
        putchar('\n');
    } else {
        printf("%6s  %-20s %-6s %7d %5d  %-5s %8s  %9.3f  failed: %s\n", "-", r->key,
               r->kind, r->attempt, r->tries, "-", "-", ms, r->error ? r->error : "");
    }
    (void)c;
    return 0;
}

/* 1 when the bytes are UTF-8 text without NULs (jansson refuses invalid UTF-8). */
static int is_utf8_text(const unsigned char *p, size_t len)
{
    json_t *t;

    if (memchr(p, 0, len))
        return 0;
    t = json_stringn((const char *)p, len);
    if (!t)
        return 0;
    json_decref(t);
    return 1;
}

static int log_json(void *arg, const struct rb_step_record *r)
{
    struct log_ctx *c = arg;
    json_t *o = json_pack(
        "{s:s, s:I, s:s, s:s, s:i, s:i, s:s, s:o, s:I, s:b, s:I, s:I, "
        "s:I, s:I}",
        "step", r->key, "seq", (json_int_t)r->seq, "kind", r->kind, "status", r->status,
        "attempt", r->attempt, "tries", r->tries, "input_hash", r->input_hash,
        "output_hash", jstr(r->output_hash), "output_size", (json_int_t)r->output_len,
        "cached", r->cached, "start_mono_ns", (json_int_t)r->start_mono_ns, "end_mono_ns",
        (json_int_t)r->end_mono_ns, "start_wall_ms", (json_int_t)r->start_wall_ms,
        "end_wall_ms", (json_int_t)r->end_wall_ms);
    struct rb_buf out;

    if (!o)
        return 1;
    if (r->error) {
        json_t *e = json_loads(r->error, 0, NULL);
        json_object_set_new(o, "error", e ? e : json_string(r->error));
    }
    if (r->meta) {
        json_t *m = json_loads(r->meta, 0, NULL);
        json_object_set_new(o, "meta", m ? m : json_string(r->meta));
    }
    if (strcmp(r->status, "committed") == 0) {
        rb_buf_init(&out);
        if (rb_store_read_output(c->store, r, &out, c->err) != RB_OK) {
            c->rc = c->err->code;
            json_decref(o);
            return 1;
        }
        if (is_utf8_text(out.data ? out.data : (unsigned char *)"", out.len)) {
            json_object_set_new(o, "output", json_stringn((char *)out.data, out.len));
        } else {
            char *hex = malloc(out.len * 2 + 1);
            size_t i;
            for (i = 0; hex && i < out.len; i++)
                snprintf(hex + 2 * i, 3, "%02x", out.data[i]);
            if (hex) {
                hex[out.len * 2] = '\0';
                json_object_set_new(o, "output_hex", json_string(hex));
            }
            free(hex);
        }
        rb_buf_release(&out);
    }
    json_array_append_new(c->steps, o);
    return 0;
}

static int attempt_text(void *arg, const struct rb_attempt *a)
{
    char when[32];

    (void)arg;
    fmt_wall(a->started_wall_ms, when, sizeof(when));
    printf("  attempt %d  pid %d  started %s  ended: %s", a->attempt, a->pid, when,
           a->end == RB_END_NONE ? "still open" : rb_end_kind_name(a->end));
    if (a->end == RB_END_EXIT)
        printf(" (status %d)", a->exit_code);
    if (a->signal)
        printf(" (signal %d)", a->signal);
    if (a->detail)
        printf("  %s", a->detail);
    putchar('\n');
    return 0;
}

static int attempt_json(void *arg, const struct rb_attempt *a)
{
    json_t *o =
        json_pack("{s:i, s:i, s:I, s:I, s:s, s:i, s:i}", "attempt", a->attempt, "pid",
                  a->pid, "started_wall_ms", (json_int_t)a->started_wall_ms,
                  "ended_wall_ms", (json_int_t)a->ended_wall_ms, "end",
                  a->end == RB_END_NONE ? "open" : rb_end_kind_name(a->end), "exit_code",
                  a->exit_code, "signal", a->signal);

    if (a->detail) {
        json_t *d = json_loads(a->detail, 0, NULL);
        json_object_set_new(o, "detail", d ? d : json_string(a->detail));
    }
    json_array_append_new(arg, o);
    return 0;
}

int cmd_log(int argc, char **argv)
{
    struct common o = {.cmd = "log"};
    struct rb_store *store = NULL;
    struct rb_error err;
    struct log_ctx c;
    json_t *attempts = NULL;
    int code = parse(argc, argv, &o, log_help);

    if (code >= 0)
        return code;
    if (!o.run) {
        cli_errorf(o.cmd, "no run id: 'rebound log RUN' (or set REBOUND_RUN)");
        return EXIT_USAGE;
    }
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    c.store = store;
    c.err = &err;
    c.rc = RB_OK;
    c.steps = json_array();
    attempts = json_array();
    if (o.json) {
        if (rb_store_read_log(store, o.run, log_json, &c, &err) != RB_OK ||
            c.rc != RB_OK ||
            rb_store_read_attempts(store, o.run, attempt_json, attempts, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        else
            code = print_json(json_pack("{s:i, s:s, s:O, s:O}", "schema", 1, "run", o.run,
                                        "steps", c.steps, "attempts", attempts));
    } else {
        printf("run '%s'\n", o.run);
        printf("%6s  %-20s %-6s %7s %5s  %-5s %8s  %9s  %s\n", "SEQ", "STEP", "KIND",
               "ATTEMPT", "TRIES", "FROM", "BYTES", "MS", "OUTPUT");
        if (rb_store_read_log(store, o.run, log_text, &c, &err) != RB_OK) {
            code = cli_fail(o.cmd, &err);
        } else {
            printf("attempts:\n");
            if (rb_store_read_attempts(store, o.run, attempt_text, NULL, &err) != RB_OK)
                code = cli_fail(o.cmd, &err);
        }
    }
    json_decref(c.steps);
    json_decref(attempts);
    rb_store_close(store);
    return code;
}

/* ---- lineage -------------------------------------------------------------- */

static const char lineage_help[] =
    "usage: rebound lineage [--store DIR] [--dot] RUN\n"
    "\n"
    "Shows which step produced which blob (content hash) from which inputs.\n"
    "An input produced by an earlier step of the run names that step. --dot\n"
    "prints a Graphviz graph (steps as boxes, blobs as ellipses):\n"
    "  rebound lineage --dot RUN | dot -Tsvg > lineage.svg\n";

static void dot_quote(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static int lineage_text(void *arg, const struct rb_lineage_edge *e)
{
    (void)arg;
    if (strcmp(e->role, "output") == 0)
        printf("%-20s -> %.16s  (output)\n", e->key, e->hash);
    else
        printf("%-20s <- %.16s  (input%s%s)\n", e->key, e->hash,
               e->producer ? ", from " : "", e->producer ? e->producer : "");
    return 0;
}

static int lineage_dot(void *arg, const struct rb_lineage_edge *e)
{
    char blob[32];

    (void)arg;
    snprintf(blob, sizeof(blob), "blob:%.12s", e->hash);
    printf("  ");
    dot_quote(blob);
    printf(" [shape=ellipse, label=\"%.12s\"];\n  ", e->hash);
    if (strcmp(e->role, "output") == 0) {
        dot_quote(e->key);
        printf(" -> ");
        dot_quote(blob);
    } else {
        dot_quote(blob);
        printf(" -> ");
        dot_quote(e->key);
    }
    printf(";\n");
    return 0;
}

int cmd_lineage(int argc, char **argv)
{
    struct common o = {.cmd = "lineage"};
    struct rb_store *store = NULL;
    struct rb_error err;
    int code = parse(argc, argv, &o, lineage_help);

    if (code >= 0)
        return code;
    if (!o.run) {
        cli_errorf(o.cmd, "no run id: 'rebound lineage RUN' (or set REBOUND_RUN)");
        return EXIT_USAGE;
    }
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    if (o.dot) {
        printf("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
        if (rb_store_read_lineage(store, o.run, lineage_dot, NULL, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        printf("}\n");
    } else if (rb_store_read_lineage(store, o.run, lineage_text, NULL, &err) != RB_OK) {
        code = cli_fail(o.cmd, &err);
    }
    rb_store_close(store);
    return code;
}

/* ---- escalations and park ------------------------------------------------------ */

static const char esc_help[] =
    "usage: rebound escalations [--store DIR] [--all] [--json]\n"
    "       rebound escalations resolve [--store DIR] [--note TEXT] RUN\n"
    "\n"
    "Lists runs parked for a human (open escalations; --all adds resolved ones)\n"
    "with the reason and the context the run left. 'resolve' closes RUN's open\n"
    "escalation, with an optional note, so the run can be started again.\n";

static int esc_text(void *arg, const struct rb_escalation *e)
{
    char when[32];

    (*(int *)arg)++;
    fmt_wall(e->created_wall_ms, when, sizeof(when));
    printf("#%lld  %-8s run '%s'  since %s\n  reason: %s\n", (long long)e->id, e->status,
           e->run_id, when, e->reason);
    if (e->context)
        printf("  context: %s\n", e->context);
    if (e->note)
        printf("  note: %s\n", e->note);
    return 0;
}

static int esc_json(void *arg, const struct rb_escalation *e)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:o, s:I, s:I}", "id", (json_int_t)e->id, "run",
                  e->run_id, "status", e->status, "reason", e->reason, "note",
                  jstr(e->note), "created_wall_ms", (json_int_t)e->created_wall_ms,
                  "resolved_wall_ms", (json_int_t)e->resolved_wall_ms);

    if (e->context) {
        json_t *c = json_loads(e->context, 0, NULL);
        json_object_set_new(o, "context", c ? c : json_string(e->context));
    } else {
        json_object_set_new(o, "context", json_null());
    }
    json_array_append_new(arg, o);
    return 0;
}

int cmd_escalations(int argc, char **argv)
{
    struct common o = {.cmd = "escalations"};
    struct rb_store *store = NULL;
    struct rb_error err;
    int resolve = argc > 1 && strcmp(argv[1], "resolve") == 0, code, n = 0;
    json_t *arr;

    if (resolve) {
        o.cmd = "escalations resolve";
        argc--;
        argv++;
    }
    code = parse(argc, argv, &o, esc_help);
    if (code >= 0)
        return code;
    if (resolve && !o.run) {
        cli_errorf(o.cmd, "no run id: 'rebound escalations resolve RUN'");
        return EXIT_USAGE;
    }
    if (!resolve && o.run && !o.run_from_env) {
        cli_errorf(o.cmd,
                   "unexpected argument '%s' (did you mean 'escalations resolve'?)",
                   o.run);
        return EXIT_USAGE;
    }
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    if (resolve) {
        if (rb_store_resolve(store, o.run, o.note, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        else
            printf("resolved: run '%s' can be started again\n", o.run);
    } else if (o.json) {
        arr = json_array();
        if (rb_store_list_escalations(store, !o.all, esc_json, arr, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        else
            code = print_json(json_pack("{s:i, s:O}", "schema", 1, "escalations", arr));
        json_decref(arr);
    } else {
        if (rb_store_list_escalations(store, !o.all, esc_text, &n, &err) != RB_OK)
            code = cli_fail(o.cmd, &err);
        else if (n == 0)
            printf("no %sescalations: no run waits for a human\n", o.all ? "" : "open ");
    }
    rb_store_close(store);
    return code;
}

static const char park_help[] =
    "usage: rebound park [--store DIR] --reason TEXT [--context JSON] RUN\n"
    "\n"
    "Parks RUN for a human: records the reason and context, and makes later\n"
    "attempts refuse to start (exit 8) until 'rebound escalations resolve RUN'.\n";

int cmd_park(int argc, char **argv)
{
    struct common o = {.cmd = "park"};
    struct rb_store *store = NULL;
    struct rb_run *run = NULL;
    struct rb_run_opts ropts = {.flags = RB_RUN_JOIN | RB_RUN_FORCE};
    struct rb_error err;
    json_t *ctx;
    int code = parse(argc, argv, &o, park_help);

    if (code >= 0)
        return code;
    if (!o.run || !o.reason || !*o.reason) {
        cli_errorf(o.cmd,
                   "'rebound park --reason TEXT RUN' needs both a run and a reason");
        return EXIT_USAGE;
    }
    if (o.context) {
        ctx = json_loads(o.context, 0, NULL);
        if (!ctx) {
            cli_errorf(o.cmd, "--context is not valid JSON");
            return EXIT_USAGE;
        }
        json_decref(ctx);
    }
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    if (rb_run_open(store, o.run, &ropts, &run, &err) != RB_OK ||
        rb_run_park(run, o.reason, o.context, &err) != RB_OK)
        code = cli_fail(o.cmd, &err);
    else
        printf("parked: run '%s' waits for a human ('rebound escalations')\n", o.run);
    rb_run_close(run);
    rb_store_close(store);
    return code;
}

/* Copies `in` to `out` with each newline turned into "; ". */
static void one_line(const char *in, char *out, size_t size)
{
    size_t n = 0;

    for (; *in && n + 3 < size; in++) {
        if (*in == '\n') {
            out[n++] = ';';
            out[n++] = ' ';
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
}

static const char check_help[] =
    "usage: rebound check [--store DIR]\n"
    "\n"
    "Checks the store: SQLite's integrity check, and that every blob the log\n"
    "names is present. Exit 0 when sound, 6 when corrupt.\n";

int cmd_check(int argc, char **argv)
{
    struct common o = {.cmd = "check"};
    struct rb_store *store = NULL;
    struct rb_error err;
    char line[sizeof(err.message) + 256];
    int code = parse(argc, argv, &o, check_help);

    if (code >= 0)
        return code;
    code = cli_open_existing_store(o.cmd, cli_store_dir(o.store), &store);
    if (code)
        return code;
    rb_error_init(&err);
    if (rb_store_check(store, &err) != RB_OK) {
        /* SQLite's integrity report has a line per problem: keep one message. */
        one_line(err.message, line, sizeof(line));
        cli_errorf(o.cmd, "%s", line);
        code = cli_exit_for(err.code);
    } else {
        printf("store '%s' is sound\n", cli_store_dir(o.store));
    }
    rb_store_close(store);
    return code;
}
