/*
 * fanout.c - the built-in agent's research threads: at the workflow's
 * fanout step, the fan-out's leaf threads run on at most `concurrency` worker
 * threads, each worker with its own store and run handle joined to the same
 * attempt; each leaf has its own key prefix, search and summarise a topic.
 * A one-level fan-out names its threads "research-2/tool-041"; a nested one
 * (drivers -> coordinators -> researchers) names each leaf by its path,
 * "d1/c2/r3/llm-041". The tree is scheduled as its leaves, depth first, on
 * one pool: the concurrency limit holds across the whole tree, and no parent
 * holds a worker while it waits for its children. Threads asked the same
 * question (duplicates, at any level) make identical calls, which the global
 * cache collapses into one (single flight): they converge instead of redoing
 * work.
 */
#include "agent/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct research {
    struct rb__agent *a;            /* shared, read only in threads */
    int index;                      /* 1-based leaf number */
    int step;                       /* its workflow step */
    char prefix[96];                /* its key prefix: "research-2", "d1/c2/r3" */
    char label[96];                 /* in the findings: "2", "d1/c2/r3" */
    char query[256];                /* the topic it searches */
    char *summary;                  /* owned; what it found */
    struct rb__agent_counts counts; /* its steps */
    enum rb_err rc;                 /* how it ended */
    struct rb_error err;            /* why, when rc is not RB_OK */
    char failed_key[128];           /* the step that failed, or "" */
};

struct pool {
    pthread_mutex_t lock;
    struct research *items;
    int n;
    int next; /* next item to take */
};

static enum rb_err research_calls(struct research *r, struct rb_run *run)
{
    struct rb__agent *a = r->a;
    struct rb_llm_opts lo;
    struct rb_step_info info;
    struct rb_buf out;
    json_t *args = NULL, *req = NULL, *call = NULL;
    char *args_text = NULL, *body = NULL, *text = NULL, prompt[8192];
    enum rb_err rc;

    rb_buf_init(&out);
    rb__agent_llm_opts(a, &lo);
    lo.cache = 1;
    args = json_pack("{s:s}", "query", r->query);
    args_text = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!args_text) {
        rc = rb__agent_fail(&r->err, RB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(r->failed_key, sizeof(r->failed_key), "%s/tool-%03d", r->prefix, r->step);
    rc = rb_tool_step(run, r->failed_key, &lo, "search", args_text, &out, &info, &r->err);
    if (rc != RB_OK)
        goto out;
    rb__agent_count(&r->counts, &info);
    if (!a->research_llm) {
        text = strdup((const char *)out.data);
        goto done;
    }
    snprintf(prompt, sizeof(prompt), "Summarise the research on '%s': %.7000s", r->query,
             (const char *)out.data);
    req = json_pack("{s:s, s:i, s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "model", a->model,
                    "temperature", 0, "tool_choice", "none", "messages", "role", "system",
                    "content", "You are a researcher. Answer briefly.", "role", "user",
                    "content", prompt);
    body = req ? json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!body) {
        rc = rb__agent_fail(&r->err, RB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(r->failed_key, sizeof(r->failed_key), "%s/llm-%03d", r->prefix, r->step);
    rc = rb_llm_step(run, r->failed_key, &lo, body, &out, &info, &r->err);
    if (rc != RB_OK)
        goto out;
    rb__agent_count(&r->counts, &info);
    if (info.source == RB_FROM_EXEC)
        r->counts.llm_calls++;
    text = rb__agent_answer_content((const char *)out.data, out.len, &call);
    if (!text) {
        rc = rb__agent_fail(&r->err, RB_EINVAL,
                            "llm step '%s' got an answer without choices[0].message",
                            r->failed_key);
        goto out;
    }
done:
    r->summary = text;
    text = NULL;
    r->failed_key[0] = '\0';
out:
    json_decref(call);
    json_decref(req);
    json_decref(args);
    free(body);
    free(args_text);
    free(text);
    rb_buf_release(&out);
    return rc;
}

/* A worker thread's handles, opened by the main thread before any thread
 * starts: opening a store sweeps old blob temp files, which must not race
 * with the other threads' writes. */
struct worker {
    struct pool *pool;
    struct rb_store *store;
    struct rb_run *run; /* joined to the main thread's attempt */
};

static enum rb_err worker_open(struct rb__agent *a, struct worker *w,
                               struct rb_error *err)
{
    struct rb_run_opts ro = {0};
    enum rb_err rc;

    rc = rb_store_open(a->o->store_dir, NULL, &w->store, err);
    if (rc != RB_OK)
        return rc;
    ro.flags = RB_RUN_JOIN | (a->run_flags & RB_RUN_NO_REPLAY);
    ro.attempt = a->attempt;
    ro.event_fd = a->event_fd;
    rc = rb_run_open(w->store, a->o->run_id, &ro, &w->run, err);
    if (rc != RB_OK) {
        rb_store_close(w->store);
        w->store = NULL;
    }
    return rc;
}

static void worker_close(struct worker *w)
{
    /* a joined handle does not end the attempt: the main thread does */
    rb_run_abandon(w->run);
    rb_store_close(w->store);
    w->run = NULL;
    w->store = NULL;
}

static void *worker(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->pool;
    int i;

    for (;;) {
        pthread_mutex_lock(&p->lock);
        i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->lock);
        if (i < 0)
            break;
        rb_error_init(&p->items[i].err);
        p->items[i].rc = research_calls(&p->items[i], w->run);
    }
    return NULL;
}

static enum rb_err gather(struct rb__agent *a, struct research *items, int n,
                          struct rb_error *err)
{
    size_t len = 0;
    char *all, *p;
    int i;
    enum rb_err rc;

    for (i = 0; i < n; i++) {
        a->counts.steps += items[i].counts.steps;
        a->counts.executed += items[i].counts.executed;
        a->counts.replayed += items[i].counts.replayed;
        a->counts.cached += items[i].counts.cached;
        a->counts.llm_calls += items[i].counts.llm_calls;
    }
    for (i = 0; i < n; i++) {
        if (items[i].rc == RB_OK)
            continue;
        if (err)
            *err = items[i].err;
        if (items[i].rc == RB_EHTTP)
            return rb__agent_park(a, items[i].failed_key,
                                  strstr(items[i].failed_key, "/llm-") ? "llm" : "tool",
                                  err);
        return items[i].rc;
    }
    len = a->findings ? strlen(a->findings) + 2 : 0;
    for (i = 0; i < n; i++)
        len += strlen(items[i].summary) + strlen(items[i].label) + 32;
    all = malloc(len + 1);
    if (!all)
        return rb__agent_fail(err, RB_ENOMEM, "out of memory");
    p = all;
    if (a->findings)
        p += snprintf(p, len + 1, "%s; ", a->findings);
    for (i = 0; i < n; i++)
        p += snprintf(p, len + 1 - (size_t)(p - all), "research %s: %s%s", items[i].label,
                      items[i].summary, i + 1 < n ? "; " : "");
    rc = rb__agent_set_findings(a, all, 0);
    free(all);
    return rc;
}

/* The levels of the fan-out, top first: the scenario's, or one level made
 * of the flat fields of a workflow set up by hand. */
static size_t fanout_levels(const struct rb_scenario_workflow *wf,
                            struct rb_scenario_fanout_level *levels)
{
    size_t i;

    if (wf->fanout_depth == 0 || !wf->fanout_levels) {
        levels[0].threads = wf->fanout_threads;
        levels[0].duplicates = wf->fanout_duplicates;
        return 1;
    }
    for (i = 0; i < wf->fanout_depth && i < RB_SCENARIO_FANOUT_MAX_DEPTH; i++)
        levels[i] = wf->fanout_levels[i];
    return i;
}

/* Names leaf `j` (0-based, depth first) of the tree: its key prefix, its
 * label and its query. At each level the last `duplicates` threads fold
 * onto the first ones, so a duplicate's whole subtree asks what the
 * original's asks. */
static void name_leaf(struct research *r, const char *name,
                      const struct rb_scenario_fanout_level *levels, size_t depth, int j)
{
    static const char *const letters[] = {"d", "c", "s"};
    int idx[RB_SCENARIO_FANOUT_MAX_DEPTH], rest = j, unique;
    size_t i, pl = 0, ql = 0;

    for (i = depth; i-- > 0;) {
        int t = levels[i].threads > 0 ? levels[i].threads : 1;

        idx[i] = rest % t;
        rest /= t;
    }
    if (depth == 1) {
        unique = levels[0].threads - levels[0].duplicates;
        snprintf(r->prefix, sizeof(r->prefix), "research-%d", j + 1);
        snprintf(r->label, sizeof(r->label), "%d", j + 1);
        snprintf(r->query, sizeof(r->query), "%s topic %d", name,
                 idx[0] % (unique > 0 ? unique : 1) + 1);
        return;
    }
    ql = (size_t)snprintf(r->query, sizeof(r->query), "%s topic ", name);
    for (i = 0; i < depth; i++) {
        const char *letter = i + 1 == depth ? "r" : letters[i];

        unique = levels[i].threads - levels[i].duplicates;
        if (pl < sizeof(r->prefix))
            pl += (size_t)snprintf(r->prefix + pl, sizeof(r->prefix) - pl, "%s%s%d",
                                   i ? "/" : "", letter, idx[i] + 1);
        if (ql < sizeof(r->query))
            ql += (size_t)snprintf(r->query + ql, sizeof(r->query) - ql, "%s%d",
                                   i ? "." : "", idx[i] % (unique > 0 ? unique : 1) + 1);
    }
    snprintf(r->label, sizeof(r->label), "%s", r->prefix);
}

enum rb_err rb__agent_fanout(struct rb__agent *a, struct rb_error *err)
{
    const struct rb_scenario_workflow *wf = a->o->wf;
    struct rb_scenario_fanout_level levels[RB_SCENARIO_FANOUT_MAX_DEPTH];
    size_t depth = fanout_levels(wf, levels);
    int n = wf->fanout_threads, i, opened = 0;
    int nthreads = a->concurrency < n ? a->concurrency : n, started = 0;
    struct pool pool;
    pthread_t *threads = NULL;
    struct worker *workers = NULL;
    struct research *items = NULL;
    enum rb_err rc = RB_OK;

    items = calloc((size_t)n, sizeof(*items));
    threads = calloc((size_t)nthreads, sizeof(*threads));
    workers = calloc((size_t)nthreads, sizeof(*workers));
    if (!items || !threads || !workers) {
        rc = rb__agent_fail(err, RB_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        items[i].a = a;
        items[i].index = i + 1;
        items[i].step = wf->fanout_at_step + i;
        name_leaf(&items[i], a->o->name, levels, depth, i);
    }
    pool.items = items;
    pool.n = n;
    pool.next = 0;
    for (opened = 0; opened < nthreads; opened++) {
        workers[opened].pool = &pool;
        rc = worker_open(a, &workers[opened], err);
        if (rc != RB_OK)
            goto close;
    }
    pthread_mutex_init(&pool.lock, NULL);
    for (i = 0; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, worker, &workers[i]) != 0)
            break;
        started++;
    }
    if (started == 0)
        worker(&workers[0]); /* no thread could start: do the work here */
    for (i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&pool.lock);
    rc = gather(a, items, n, err);
close:
    for (i = 0; i < opened; i++)
        worker_close(&workers[i]);
out:
    for (i = 0; items && i < n; i++)
        free(items[i].summary);
    free(items);
    free(workers);
    free(threads);
    return rc;
}
