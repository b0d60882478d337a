/*
 * test_score.c - the scorer of `rebound run` (harness/run/score.c, wire.c) on
 * trials built by hand: events as the supervisor and the agent write them,
 * and world journals as the world writes them. What it must find: LLM calls
 * duplicated after a restart and the tokens and cost they wasted (also for an
 * agent whose requests never repeat exactly), the first point where a
 * conversation diverged from golden's and which message differs, parallel
 * requests matched whatever their order, unknown (null) step metrics and
 * black-box recovery for an agent that writes no step events, the escalated
 * outcome, and whether a failure reached the step retried after it. One
 * test runs the real world on loopback to check the message digests its
 * journal writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "run/run.h"
#include "world/world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#define BASE_NS 1000000000LL

static int64_t at(double ms)
{
    return BASE_NS + (int64_t)(ms * 1e6);
}

/* Appends an event (JSON text) seen at `ms`. */
static void ev(struct rb_trial *t, double ms, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    struct rb_trial_event *e;
    const char *step;

    if (!j)
        fail_msg("bad event %s: %s", text, jerr.text);
    t->events = realloc(t->events, (t->n_events + 1) * sizeof(*t->events));
    assert_non_null(t->events);
    e = &t->events[t->n_events++];
    e->t_ns = at(ms);
    e->kind = strdup(json_string_value(json_object_get(j, "kind")));
    step = json_string_value(json_object_get(j, "step"));
    e->step = step ? strdup(step) : NULL;
    e->json = j;
}

/* Appends a chat request to the trial's wire, as a journal line: read at
 * `ms`, messages given as "role:digest role:digest ...", answered or with
 * `status`. */
static void llm(struct rb_trial *t, double ms, const char *msgs, int status, int pt,
                int ct)
{
    char line[4096], list[3000] = "", hash[RB_HASH_HEX_LEN + 1], one[512];
    const char *p = msgs;
    size_t off = 0;
    int n = 0;

    rb_hash_hex(msgs, strlen(msgs), hash); /* the messages' hash */
    while (*p) {
        size_t len = strcspn(p, " ");
        const char *colon = memchr(p, ':', len);

        assert_non_null(colon);
        snprintf(one, sizeof(one), "%s[\"%.*s\",\"%.*s\"]", n++ ? "," : "",
                 (int)(colon - p), p, (int)(len - (size_t)(colon - p) - 1), colon + 1);
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s", one);
        p += len;
        while (*p == ' ')
            p++;
    }
    snprintf(line, sizeof(line),
             "{\"seq\":%zu,\"start_ns\":%lld,\"end_ns\":%lld,\"method\":\"POST\","
             "\"route\":\"/v1/chat/completions\",\"status\":%d,\"completed\":%s,"
             "\"hash\":\"%s\",\"prompt_tokens\":%d,\"completion_tokens\":%d,"
             "\"model\":\"rebound-world\",\"messages\":[%s]}",
             t->wire.n + 1, (long long)at(ms), (long long)at(ms + 1), status,
             status ? "true" : "false", hash, pt, ct, list);
    assert_int_equal(rb_wire_add_line(&t->wire, line), RB_OK);
}

/* Appends a tool call to the wire. */
static void tool(struct rb_trial *t, double ms, const char *args)
{
    char line[1024], hash[RB_HASH_HEX_LEN + 1];

    rb_hash_hex(args, strlen(args), hash);
    snprintf(line, sizeof(line),
             "{\"seq\":%zu,\"start_ns\":%lld,\"route\":\"/tools/search\",\"status\":200,"
             "\"completed\":true,\"hash\":\"%s\"}",
             t->wire.n + 1, (long long)at(ms), hash);
    assert_int_equal(rb_wire_add_line(&t->wire, line), RB_OK);
}

/* A scenario from JSON text. */
static struct rb_scenario *parse(const char *text)
{
    struct rb_scenario *sp = NULL;
    struct rb_error err;

    rb_error_init(&err);
    if (rb_scenario_parse(text, strlen(text), "t.json", &sp, NULL, &err) != RB_OK)
        fail_msg("%d:%d: %s", err.line, err.column, err.message);
    return sp;
}

static void start(struct rb_trial *t, int faulted)
{
    rb_trial_init(t);
    t->faulted = faulted;
    t->start_ns = at(0);
    t->completed = 1;
    t->exit_code = 0;
    t->attempts = 1;
    snprintf(t->run_id, sizeof(t->run_id), "r-%s", faulted ? "faulted" : "golden");
    memset(t->stdout_hash, 'a', RB_HASH_HEX_LEN);
}

/* A golden trial of three LLM turns, each with one more message. */
static void golden3(struct rb_trial *g)
{
    start(g, 0);
    ev(g, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    llm(g, 10, "system:s0 user:u0", 200, 100, 10);
    llm(g, 20, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(g, 30, "system:s0 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 200, 300,
        30);
    ev(g, 40, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    g->end_ns = at(40);
}

/* A kill at 25 ms, after two answered calls, and a restart at 30 ms. */
static void killed_at_25(struct rb_trial *t)
{
    ev(t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(t, 25,
       "{\"kind\":\"fault.inject\",\"form\":\"sigkill\",\"fault\":0,\"trigger\":\"time "
       "25ms\"}");
    ev(t, 26,
       "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":null,\"signal\":9,"
       "\"failure\":\"preemption\"}");
    ev(t, 30,
       "{\"kind\":\"proc.start\",\"attempt\":2,\"last_failure\":\"{\\\"kind\\\":"
       "\\\"preemption\\\"}\"}");
    t->attempts = 2;
}

/* An agent without a replay log asks everything again after the kill: the
 * repeats of answered requests are duplicated, their tokens wasted, at the
 * scenario's prices; a repeat of a request that got no answer is not. */
static void test_duplicated_calls_and_tokens(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    golden3(&g);
    start(&t, 1);
    t.price_prompt = 0.5;     /* per 1k prompt tokens */
    t.price_completion = 2.0; /* per 1k completion tokens */
    killed_at_25(&t);
    llm(&t, 10, "system:s0 user:u0", 200, 100, 10);
    llm(&t, 20, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 24, "system:s0 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 503, 300,
        0);
    llm(&t, 31, "system:s0 user:u0", 200, 100, 10);
    llm(&t, 32, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 33, "system:s0 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 200, 300,
        30);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.llm_calls, 6);
    assert_int_equal(sc.llm_golden_calls, 3);
    assert_int_equal(sc.llm_answered, 5);
    assert_int_equal(sc.llm_duplicated, 2);
    assert_int_equal(sc.prompt_wasted, 300);
    assert_int_equal(sc.completion_wasted, 30);
    assert_int_equal(sc.tokens_wasted, 330);
    assert_true(sc.cost_wasted > 0.2099 && sc.cost_wasted < 0.2101); /* .15 + .06 */
    assert_int_equal(sc.prompt_tokens, 900);
    assert_int_equal(sc.completion_tokens, 90);
    assert_int_equal(sc.diverged, 0);
    assert_int_equal(sc.context_preserved, 1);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* An agent whose requests never repeat exactly (a fresh conversation id in
 * each, say) still shows its redone calls: those beyond golden's count. */
static void test_calls_beyond_golden(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    golden3(&g);
    start(&t, 1);
    killed_at_25(&t);
    llm(&t, 10, "system:x0 user:u0", 200, 100, 10);
    llm(&t, 20, "system:x0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 31, "system:x1 user:u0", 200, 101, 11);
    llm(&t, 32, "system:x1 user:u0 assistant:a1 tool:t1", 200, 201, 21);
    llm(&t, 33, "system:x1 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 200, 301,
        31);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.llm_duplicated, 2);                  /* 5 answered, golden 3 */
    assert_int_equal(sc.tokens_wasted, 100 + 10 + 200 + 20); /* the earliest two */
    assert_int_equal(sc.diverged, 1);
    assert_int_equal(sc.div_request, 0);
    assert_int_equal(sc.div_message, 0);
    assert_string_equal(sc.div_what, "message 0 (role system) differs");
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* After the restart the agent sends a tool result that differs from
 * golden's: the divergence is that request, in attempt 2, at message 3. */
/* An agent's role string long enough to be cut in the divergence's words,
 * in a multi-byte script: the words stay valid UTF-8, so the record (a
 * JSON document) is still written. */
static void test_divergence_cut_role(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;
    struct rb_scenario *sp;
    char msgs[1024], role[200] = "";
    json_t *rec;
    int i;

    (void)state;
    for (i = 0; i < 80; i++)
        strcat(role, "\xc3\xa9"); /* é: 160 bytes */
    golden3(&g);
    start(&t, 1);
    killed_at_25(&t);
    snprintf(msgs, sizeof(msgs), "system:s0 %s:u0", role);
    llm(&t, 10, msgs, 200, 100, 10);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.diverged, 1);
    assert_non_null(strstr(sc.div_what, "message 1 (role \xc3\xa9"));
    sp = parse("{\"rebound\":1,\"description\":\"t\",\"agent\":{\"builtin\":{"
               "\"workflow\":{\"steps\":4,\"llm_turns\":3}}},\"seeds\":[1]}");
    rec = rb_score_json(sp, &g, &t, &sc);
    assert_non_null(rec);
    assert_non_null(json_object_get(json_object_get(rec, "context"), "divergence"));
    json_decref(rec);
    rb_scenario_free(sp);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

static void test_divergence_at_message(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;
    const struct rb_scenario *s = NULL;
    json_t *rec, *d;

    (void)state;
    (void)s;
    golden3(&g);
    start(&t, 1);
    killed_at_25(&t);
    llm(&t, 10, "system:s0 user:u0", 200, 100, 10);
    llm(&t, 20, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 33, "system:s0 user:u0 assistant:a1 tool:tX assistant:a2 tool:t2", 200, 300,
        30);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.diverged, 1);
    assert_int_equal(sc.div_request, 2);
    assert_int_equal(sc.div_attempt, 2);
    assert_int_equal(sc.div_golden_request, 2);
    assert_int_equal(sc.div_message, 3);
    assert_string_equal(sc.div_what, "message 3 (role tool) differs");
    /* the same stdout, but the context was not kept */
    assert_int_equal(sc.context_preserved, 0);
    assert_int_equal(sc.outcome, RB_OUTCOME_DEGRADED);
    assert_int_equal(sc.llm_duplicated, 0);
    rb_trial_release(&g);
    rb_trial_release(&t);

    /* and in the record */
    {
        struct rb_scenario *sp = NULL;
        static const char text[] = "{\"rebound\":1,\"description\":\"t\",\"agent\":{"
                                   "\"builtin\":{\"workflow\":{\"steps\":4,"
                                   "\"llm_turns\":3}}},\"seeds\":[1]}";

        sp = parse(text);
        golden3(&g);
        start(&t, 1);
        killed_at_25(&t);
        llm(&t, 31, "system:s0 user:u0 assistant:a1", 200, 150, 15);
        t.end_ns = at(40);
        rb_score_trial(&g, &t, &sc);
        rec = rb_score_json(sp, &g, &t, &sc);
        assert_non_null(rec);
        d = json_object_get(json_object_get(rec, "context"), "divergence");
        assert_true(json_is_object(d));
        assert_int_equal(json_integer_value(json_object_get(d, "request")), 0);
        assert_int_equal(json_integer_value(json_object_get(d, "attempt")), 2);
        /* a prefix of golden's third request: message 3 is missing */
        assert_string_equal(json_string_value(json_object_get(d, "what")),
                            "message 3 (role tool) missing: 3 messages, golden's had 4");
        assert_false(
            json_is_true(json_object_get(json_object_get(rec, "context"), "preserved")));
        json_decref(rec);
        rb_scenario_free(sp);
        rb_trial_release(&g);
        rb_trial_release(&t);
    }
}

/* Research threads run in parallel and reach the world in another order in
 * every trial: their requests match golden's whatever the order. */
static void test_parallel_requests_match_as_multiset(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    start(&g, 0);
    ev(&g, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    llm(&g, 10, "system:s0 user:q1", 200, 50, 5);
    llm(&g, 11, "system:s0 user:q2", 200, 50, 5);
    llm(&g, 12, "system:s0 user:q3", 200, 50, 5);
    llm(&g, 13, "system:s0 user:q1 assistant:r1 user:q2 assistant:r2", 200, 90, 9);
    ev(&g, 20, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    g.end_ns = at(20);
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    llm(&t, 10, "system:s0 user:q3", 200, 50, 5);
    llm(&t, 11, "system:s0 user:q1", 200, 50, 5);
    llm(&t, 12, "system:s0 user:q2", 200, 50, 5);
    llm(&t, 13, "system:s0 user:q1 assistant:r1 user:q2 assistant:r2", 200, 90, 9);
    ev(&t, 20, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(20);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.diverged, 0);
    assert_int_equal(sc.llm_duplicated, 0);
    assert_int_equal(sc.context_preserved, 1);
    assert_int_equal(sc.outcome, RB_OUTCOME_RECOVERED);

    /* one thread asking something golden never asked is caught */
    llm(&t, 14, "system:s0 user:q4", 200, 50, 5);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.diverged, 1);
    assert_int_equal(sc.div_request, 4);
    assert_string_equal(sc.div_what, "message 1 (role user) differs");
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* An agent that writes no step events: its step metrics are unknown (null),
 * never 0, and its recovery is read off the wire: the kill -> the first
 * request of the next attempt not made before the kill. */
static void test_black_box_nulls(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;
    struct rb_scenario *sp = NULL;
    json_t *rec, *f;
    static const char text[] = "{\"rebound\":1,\"description\":\"t\",\"agent\":{"
                               "\"command\":{\"argv\":[\"true\"]}},\"seeds\":[1],"
                               "\"expect\":{\"max_steps_redone\":0}}";
    char why[512];

    (void)state;
    sp = parse(text);
    golden3(&g);
    tool(&g, 15, "{\"q\":1}");
    start(&t, 1);
    killed_at_25(&t);
    llm(&t, 10, "system:s0 user:u0", 200, 100, 10);
    tool(&t, 15, "{\"q\":1}");
    llm(&t, 20, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 32, "system:s0 user:u0", 200, 100, 10);                      /* again */
    tool(&t, 33, "{\"q\":1}");                                           /* again */
    llm(&t, 34, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20); /* again */
    llm(&t, 37, "system:s0 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 200, 300,
        30);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.steps_known, 0);
    assert_int_equal(sc.steps_redone, -1);
    assert_int_equal(sc.inflight_lost, -1);
    assert_int_equal(sc.steps_executed, -1);
    assert_int_equal(sc.n_faults, 1);
    assert_int_equal(sc.faults[0].recovery_ms, -1);
    assert_int_equal(sc.faults[0].detect_ms, 1);
    assert_int_equal(sc.faults[0].restart_ms, 4);
    assert_int_equal(sc.faults[0].recovery_first_request_ms, 12); /* 37 - 25 */
    assert_int_equal(sc.llm_duplicated, 2);
    assert_int_equal(sc.tool_calls, 2);
    assert_int_equal(sc.tool_duplicated, 1);

    /* a request the golden trial also made twice is a repeat only beyond
     * golden's count */
    tool(&g, 16, "{\"q\":1}");
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.tool_duplicated, 0);
    tool(&t, 38, "{\"q\":1}");
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.tool_calls, 3);
    assert_int_equal(sc.tool_duplicated, 1);

    rec = rb_score_json(sp, &g, &t, &sc);
    assert_non_null(rec);
    assert_true(json_is_null(json_object_get(rec, "steps_redone")));
    assert_true(json_is_null(json_object_get(rec, "inflight_lost")));
    assert_true(json_is_null(json_object_get(rec, "steps_executed")));
    assert_true(json_is_null(json_object_get(rec, "golden_steps")));
    assert_true(json_is_null(json_object_get(rec, "recovery_ms")));
    f = json_array_get(json_object_get(rec, "faults"), 0);
    assert_true(json_is_null(json_object_get(f, "inflight")));
    assert_int_equal(json_integer_value(json_object_get(f, "recovery_first_request_ms")),
                     12);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(rec, "llm"), "duplicated")),
        2);
    json_decref(rec);

    /* an expectation on what cannot be known is not silently met */
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "steps_redone unknown"));
    rb_scenario_free(sp);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* expect.max_llm_calls_duplicated: an agent re-asking more than the call
 * in flight breaks it, naming the metric, the value and the limit; with no
 * golden trial it cannot be judged. */
static void test_expect_llm_duplicated(void **state)
{
    struct rb_scenario *sp;
    struct rb_score sc;
    static const char text[] =
        "{\"rebound\":1,\"description\":\"t\",\"agent\":{\"builtin\":{\"workflow\":{"
        "\"steps\":4,\"llm_turns\":3}}},\"seeds\":[1],"
        "\"expect\":{\"max_llm_calls_duplicated\":1}}";
    char why[512];

    (void)state;
    sp = parse(text);
    memset(&sc, 0, sizeof(sc));
    sc.outcome = RB_OUTCOME_RECOVERED;
    sc.context_preserved = 1;
    sc.failure_context_delivered = -1;
    sc.golden_known = 1;
    sc.llm_duplicated = 1;
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 1);
    sc.llm_duplicated = 4;
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 0);
    assert_string_equal(why, "llm_calls_duplicated 4 > max_llm_calls_duplicated 1");
    /* with no golden trial (audit --no-golden) the count is a guess: the
     * expectation is broken as unknown, not met or missed by it */
    sc.golden_known = 0;
    sc.llm_duplicated = 0;
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 0);
    assert_string_equal(why,
                        "llm_calls_duplicated unknown (no golden trial), expected at "
                        "most 1");
    rb_scenario_free(sp);
}

/* A freeze and then a kill in one attempt: the freeze did not kill the
 * attempt, so it takes neither the kill's death nor its in-flight loss; a
 * step that went on through the freeze is not lost, the one the kill cut
 * short and ran again is. */
static void test_freeze_then_kill(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    start(&g, 0);
    ev(&g, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&g, 1, "{\"kind\":\"step.start\",\"step\":\"s1\"}");
    ev(&g, 2, "{\"kind\":\"step.commit\",\"step\":\"s1\"}");
    ev(&g, 3, "{\"kind\":\"step.start\",\"step\":\"s2\"}");
    ev(&g, 4, "{\"kind\":\"step.commit\",\"step\":\"s2\"}");
    ev(&g, 5, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    g.end_ns = at(5);

    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&t, 1, "{\"kind\":\"step.start\",\"step\":\"s1\"}");
    ev(&t, 2, "{\"kind\":\"fault.inject\",\"form\":\"freeze\",\"fault\":0}");
    ev(&t, 12, "{\"kind\":\"fault.heal\",\"form\":\"freeze\",\"fault\":0}");
    ev(&t, 13, "{\"kind\":\"step.commit\",\"step\":\"s1\"}");
    ev(&t, 14, "{\"kind\":\"step.start\",\"step\":\"s2\"}");
    ev(&t, 15, "{\"kind\":\"fault.inject\",\"form\":\"sigkill\",\"fault\":1}");
    ev(&t, 16,
       "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":null,\"signal\":9,"
       "\"exit_t\":1016000000,\"failure\":\"preemption\",\"form\":\"sigkill\"}");
    ev(&t, 20, "{\"kind\":\"proc.start\",\"attempt\":2}");
    ev(&t, 21, "{\"kind\":\"step.replay\",\"step\":\"s1\"}");
    ev(&t, 22, "{\"kind\":\"step.start\",\"step\":\"s2\"}");
    ev(&t, 23, "{\"kind\":\"step.commit\",\"step\":\"s2\"}");
    ev(&t, 24, "{\"kind\":\"proc.exit\",\"attempt\":2,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(24);
    t.attempts = 2;

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.n_faults, 2);
    /* the freeze: no death of its own, recovery from its end, nothing lost */
    assert_int_equal(sc.faults[0].detect_ms, -1);
    assert_int_equal(sc.faults[0].restart_ms, -1);
    assert_int_equal(sc.faults[0].recovery_ms, 1); /* heal 12 -> s1 commit 13 */
    assert_int_equal(sc.faults[0].inflight, 1);
    assert_int_equal(sc.faults[0].inflight_lost, 0);
    /* the kill: its death, its restart, s2 cut short and run again */
    assert_int_equal(sc.faults[1].detect_ms, 1);
    assert_int_equal(sc.faults[1].restart_ms, 4);
    assert_int_equal(sc.faults[1].inflight_lost, 1);
    assert_int_equal(sc.inflight_lost, 1);
    assert_int_equal(sc.steps_redone, 0);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* expect.recovery_ms with no recovery known at all: broken as unknown,
 * not passed. */
static void test_expect_recovery_unknown(void **state)
{
    struct rb_scenario *sp;
    struct rb_score sc;
    static const char text[] =
        "{\"rebound\":1,\"description\":\"t\",\"agent\":{\"builtin\":{\"workflow\":{"
        "\"steps\":4,\"llm_turns\":3}}},\"seeds\":[1],"
        "\"expect\":{\"recovery_ms\":{\"p95\":500}}}";
    char why[512];

    (void)state;
    sp = parse(text);
    memset(&sc, 0, sizeof(sc));
    sc.golden_known = 1;
    sc.outcome = RB_OUTCOME_RECOVERED;
    sc.context_preserved = 1;
    sc.failure_context_delivered = -1;
    assert_int_equal(rb_score_check(sp, &sc, 200, 400, why, sizeof(why)), 1);
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "recovery unknown"));
    assert_non_null(strstr(why, "expected p95 at most 500 ms"));
    rb_scenario_free(sp);
}

/* Retries ran out and the run was parked for a human with its context: the
 * outcome is escalated, which expect.outcome can ask for; parked without a
 * context it is a failure. */
static void test_escalated_outcome(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;
    struct rb_scenario *sp = NULL;
    json_t *rec;
    static const char text[] =
        "{\"rebound\":1,\"description\":\"t\",\"agent\":{\"builtin\":{\"workflow\":{"
        "\"steps\":4,"
        "\"llm_turns\":3}}},\"seeds\":[1],\"expect\":{\"outcome\":\"escalated\"}}";
    char why[512];

    (void)state;
    sp = parse(text);
    golden3(&g);
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&t, 5, "{\"kind\":\"step.start\",\"step\":\"llm-001\"}");
    ev(&t, 9, "{\"kind\":\"step.fail\",\"step\":\"llm-001\"}");
    ev(&t, 10, "{\"kind\":\"run.park\"}");
    ev(&t, 11, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":8,\"signal\":0}");
    t.end_ns = at(11);
    t.completed = 0;
    t.exit_code = 8;
    t.escalated = 1;
    t.escalation_context = 1;
    snprintf(t.escalation_reason, sizeof(t.escalation_reason), "llm step failed");

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.outcome, RB_OUTCOME_ESCALATED);
    assert_string_equal(rb_outcome_name(sc.outcome), "escalated");
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 1);
    rec = rb_score_json(sp, &g, &t, &sc);
    assert_string_equal(json_string_value(json_object_get(rec, "outcome")), "escalated");
    assert_true(json_is_true(
        json_object_get(json_object_get(rec, "escalation"), "context_kept")));
    json_decref(rec);

    t.escalation_context = 0;
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.outcome, RB_OUTCOME_FAILED);
    assert_int_equal(rb_score_check(sp, &sc, -1, -1, why, sizeof(why)), 0);
    assert_string_equal(why, "outcome: failed, expected escalated");
    rb_scenario_free(sp);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* A task step OOM-killed and retried in the same process: the failure
 * reached the retry when it asked for more memory; blindly again with the
 * same memory, it did not. */
static void oom_retry(struct rb_trial *t, long long retry_limit)
{
    char text[512];

    start(t, 1);
    ev(t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(t, 5, "{\"kind\":\"step.start\",\"step\":\"task-006\"}");
    ev(t, 6, "{\"kind\":\"task.start\",\"step\":\"task-006\",\"limit\":67108864}");
    ev(t, 7,
       "{\"kind\":\"task.end\",\"step\":\"task-006\",\"outcome\":\"oom\","
       "\"limit\":67108864}");
    ev(t, 8, "{\"kind\":\"step.fail\",\"step\":\"task-006\"}");
    ev(t, 9,
       "{\"kind\":\"step.start\",\"step\":\"task-006\",\"tries\":1,\"last_error\":"
       "{\"code\":\"RB_EOOM\"}}");
    snprintf(text, sizeof(text),
             "{\"kind\":\"task.start\",\"step\":\"task-006\",\"limit\":%lld}",
             retry_limit);
    ev(t, 10, text);
    snprintf(text, sizeof(text),
             "{\"kind\":\"task.end\",\"step\":\"task-006\",\"outcome\":\"ok\","
             "\"limit\":%lld}",
             retry_limit);
    ev(t, 11, text);
    ev(t, 12, "{\"kind\":\"step.commit\",\"step\":\"task-006\"}");
    ev(t, 20, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    t->end_ns = at(20);
}

static void test_failure_context_of_retries(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    start(&g, 0);
    ev(&g, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&g, 5, "{\"kind\":\"step.start\",\"step\":\"task-006\"}");
    ev(&g, 6, "{\"kind\":\"step.commit\",\"step\":\"task-006\"}");
    g.end_ns = at(10);

    oom_retry(&t, 134217728); /* twice the memory */
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.retries_judged, 1);
    assert_int_equal(sc.retries_blind, 0);
    assert_int_equal(sc.failure_context_delivered, 1);
    rb_trial_release(&t);

    oom_retry(&t, 67108864); /* the same: the failure was ignored */
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.retries_judged, 1);
    assert_int_equal(sc.retries_blind, 1);
    assert_int_equal(sc.failure_context_delivered, 0);
    assert_non_null(strstr(sc.blind_what, "task-006 retried with 64 MiB after an OOM"));
    rb_trial_release(&t);

    /* an LLM call retried inside its step carries the failure's reason */
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&t, 5, "{\"kind\":\"step.start\",\"step\":\"llm-001\"}");
    ev(&t, 6,
       "{\"kind\":\"step.retry\",\"step\":\"llm-001\",\"try\":1,\"reason\":\"http\","
       "\"http_status\":503}");
    ev(&t, 8, "{\"kind\":\"step.commit\",\"step\":\"llm-001\"}");
    t.end_ns = at(10);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.retries_judged, 1);
    assert_int_equal(sc.failure_context_delivered, 1);
    rb_trial_release(&t);

    /* nothing retried, nothing restarted: not judged */
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    t.end_ns = at(10);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.failure_context_delivered, -1);
    rb_trial_release(&t);
    rb_trial_release(&g);
}

/* A 503 from the world on one call, ridden out inside the attempt: asking
 * the same again is not new progress, the next request is; the attempt did
 * not die, so there is no detect time. */
static void test_recovery_to_first_new_request(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    golden3(&g);
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    llm(&t, 10, "system:s0 user:u0", 200, 100, 10);
    llm(&t, 19.5, "system:s0 user:u0 assistant:a1 tool:t1", 503, 200, 0);
    ev(&t, 20,
       "{\"kind\":\"fault.inject\",\"form\":\"server_error\",\"where\":\"world\"}");
    llm(&t, 25, "system:s0 user:u0 assistant:a1 tool:t1", 200, 200, 20);
    llm(&t, 30, "system:s0 user:u0 assistant:a1 tool:t1 assistant:a2 tool:t2", 200, 300,
        30);
    ev(&t, 40, "{\"kind\":\"proc.exit\",\"attempt\":1,\"exit_code\":0,\"signal\":0}");
    t.end_ns = at(40);

    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.n_faults, 1);
    assert_int_equal(sc.faults[0].recovery_first_request_ms, 10);
    assert_int_equal(sc.faults[0].detect_ms, -1); /* it exited 0 at the end */
    assert_int_equal(sc.llm_duplicated, 0);       /* the 503 had no answer */
    assert_int_equal(sc.diverged, 0);
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* A step that failed and is run again: librebound's step.start says so and
 * carries the failure; one that carries `tries` without it was not handed
 * the failure. */
static void test_step_retry_carries_failure(void **state)
{
    struct rb_trial g, t;
    struct rb_score sc;

    (void)state;
    start(&g, 0);
    ev(&g, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    g.end_ns = at(10);
    start(&t, 1);
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    ev(&t, 1, "{\"kind\":\"step.start\",\"step\":\"fetch\"}");
    ev(&t, 2, "{\"kind\":\"step.fail\",\"step\":\"fetch\"}");
    ev(&t, 3,
       "{\"kind\":\"step.start\",\"step\":\"fetch\",\"tries\":1,\"last_error\":"
       "{\"code\":\"RB_EIO\",\"try\":1}}");
    ev(&t, 4, "{\"kind\":\"step.fail\",\"step\":\"fetch\"}");
    ev(&t, 5,
       "{\"kind\":\"step.start\",\"step\":\"fetch\",\"tries\":2,\"last_error\":"
       "null}");
    ev(&t, 6, "{\"kind\":\"step.commit\",\"step\":\"fetch\"}");
    t.end_ns = at(10);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.retries_judged, 2);
    assert_int_equal(sc.retries_blind, 1);
    assert_int_equal(sc.failure_context_delivered, 0);
    assert_string_equal(sc.blind_what, "fetch retried without its last failure");
    rb_trial_release(&g);
    rb_trial_release(&t);
}

/* The journal as the world writes it: lines of other routes are skipped, a
 * missing file is a clear error and leaves the wire as it was. */
static void test_wire_read(void **state)
{
    char path[] = "/tmp/test_score_XXXXXX";
    struct rb_wire w;
    struct rb_error err;
    FILE *f;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("{\"seq\":1,\"start_ns\":5,\"route\":\"/v1/models\",\"status\":200}\n"
          "{\"seq\":2,\"start_ns\":6,\"route\":\"/v1/chat/completions\",\"status\":200,"
          "\"completed\":true,\"hash\":\"ab\",\"prompt_tokens\":7,\"completion_tokens\":"
          "3,\"model\":\"m\",\"messages\":[[\"system\",\"0123456789abcdef\"],[\"user\","
          "\"fedcba9876543210\"]]}\n"
          "not json\n"
          "{\"seq\":4,\"start_ns\":9,\"route\":\"/tools/search\",\"status\":200,"
          "\"completed\":true,\"hash\":\"ef\"}\n"
          "{\"seq\":3,\"start_ns\":8,\"route\":\"/tools/fetch\",\"status\":429,"
          "\"completed\":true,\"hash\":\"cd\"}\n",
          f);
    fclose(f);
    rb_wire_init(&w);
    assert_int_equal(rb_wire_read(path, &w, NULL), RB_OK);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.reqs[0].llm, 1);
    assert_int_equal(w.reqs[0].answered, 1);
    assert_int_equal(w.reqs[0].prompt_tokens, 7);
    assert_int_equal(w.reqs[0].n_msgs, 2);
    assert_string_equal(w.reqs[0].msgs[1].role, "user");
    assert_string_equal(w.reqs[0].msgs[1].digest, "fedcba9876543210");
    assert_int_equal(w.reqs[1].llm, 0); /* in order of arrival, not of the lines */
    assert_int_equal(w.reqs[1].seq, 3);
    assert_int_equal(w.reqs[1].answered, 0);
    assert_int_equal(w.reqs[2].seq, 4);
    unlink(path);
    rb_error_init(&err);
    assert_int_equal(rb_wire_read(path, &w, &err), RB_EIO);
    assert_non_null(strstr(err.message, "cannot read journal '/tmp/test_score_"));
    assert_int_equal(w.n, 3); /* unaltered */
    rb_wire_release(&w);
}

/* POSTs a chat request to the world on 127.0.0.1:port and reads the answer
 * to its end (bounded: 20 s). */
static void chat(uint16_t port, const char *body)
{
    struct sockaddr_in sa;
    char req[512], buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;
    time_t t0 = time(NULL);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req),
                 "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Connection: close\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 strlen(body));
    assert_int_equal(write(fd, req, (size_t)n), n);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};

        assert_true(time(NULL) - t0 < 20); /* hang guard */
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (read(fd, buf, sizeof(buf)) <= 0)
            break;
    }
    close(fd);
}

/* The real world's journal: each chat request's model and a digest per
 * message, so a message that differs is found from the files alone. */
static void test_world_journal_digests(void **state)
{
    char dir[] = "/tmp/test_score_world_XXXXXX", path[128];
    struct rb_world_config cfg;
    struct rb_world *w = NULL;
    struct rb_trial g, t;
    struct rb_score sc;
    struct rb_error err;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/world.jsonl", dir);
    rb_world_config_init(&cfg);
    cfg.seed = 3;
    cfg.journal_path = strdup(path);
    rb_error_init(&err);
    assert_int_equal(rb_world_start(&cfg, &w, &err), RB_OK);
    chat(rb_world_port(w), "{\"model\":\"rebound-world\",\"messages\":["
                           "{\"role\":\"system\",\"content\":\"be brief\"},"
                           "{\"role\":\"user\",\"content\":\"what is 1+1\"}]}");
    chat(rb_world_port(w), "{\"model\":\"rebound-world\",\"messages\":["
                           "{\"content\":\"be brief\",\"role\":\"system\"},"
                           "{\"role\":\"user\",\"content\":\"what is 2+2\"}]}");
    rb_world_stop(w);
    rb_world_config_release(&cfg);

    start(&g, 0);
    start(&t, 1);
    assert_int_equal(rb_wire_read(path, &g.wire, &err), RB_OK);
    assert_int_equal(g.wire.n, 2);
    assert_int_equal(g.wire.reqs[0].llm, 1);
    assert_int_equal(g.wire.reqs[0].answered, 1);
    assert_true(g.wire.reqs[0].prompt_tokens > 0);
    assert_string_equal(g.wire.reqs[0].model, "rebound-world");
    assert_int_equal(g.wire.reqs[0].n_msgs, 2);
    assert_string_equal(g.wire.reqs[0].msgs[0].role, "system");
    assert_int_equal(strlen(g.wire.reqs[0].msgs[0].digest), 16);
    /* the same message in another key order is the same message */
    assert_string_equal(g.wire.reqs[0].msgs[0].digest, g.wire.reqs[1].msgs[0].digest);
    assert_string_not_equal(g.wire.reqs[0].msgs[1].digest, g.wire.reqs[1].msgs[1].digest);

    /* golden sent the first, the faulted trial the second */
    t.wire.reqs = malloc(sizeof(*t.wire.reqs));
    assert_non_null(t.wire.reqs);
    t.wire.reqs[0] = g.wire.reqs[1];
    t.wire.n = t.wire.cap = 1;
    g.wire.n = 1;
    g.wire.reqs[1].msgs = NULL; /* now t's */
    ev(&t, 0, "{\"kind\":\"proc.start\",\"attempt\":1}");
    t.end_ns = at(10);
    rb_score_trial(&g, &t, &sc);
    assert_int_equal(sc.diverged, 1);
    assert_string_equal(sc.div_what, "message 1 (role user) differs");
    rb_trial_release(&g);
    rb_trial_release(&t);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicated_calls_and_tokens),
        cmocka_unit_test(test_calls_beyond_golden),
        cmocka_unit_test(test_divergence_at_message),
        cmocka_unit_test(test_parallel_requests_match_as_multiset),
        cmocka_unit_test(test_black_box_nulls),
        cmocka_unit_test(test_escalated_outcome),
        cmocka_unit_test(test_freeze_then_kill),
        cmocka_unit_test(test_divergence_cut_role),
        cmocka_unit_test(test_expect_recovery_unknown),
        cmocka_unit_test(test_expect_llm_duplicated),
        cmocka_unit_test(test_failure_context_of_retries),
        cmocka_unit_test(test_recovery_to_first_new_request),
        cmocka_unit_test(test_step_retry_carries_failure),
        cmocka_unit_test(test_wire_read),
        cmocka_unit_test(test_world_journal_digests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
