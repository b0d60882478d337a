/*
 * scenario.c - loads a scenario file (JSON, `"rebound": 1`) into a struct
 * rb_scenario and validates it: unknown keys (with the closest known one
 * suggested), wrong types, missing fields and impossible combinations (a
 * trigger past the workflow's last step, a duration on a fault that has none,
 * an OOM limit form without its limit). Every problem is collected, sorted in
 * file order and reported with the line and column of the key or value at
 * fault, taken from the position index (pos.c).
 */
#include "scenario.h"

#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Validation context and reporting
 */

struct ctx {
    const char *file;                /* name in messages */
    const struct rb__pos_index *idx; /* positions in the current file */
    struct rb_scenario_diags *diags; /* where problems go */
    char path[RB__PATH_MAX];         /* JSON path of the value being checked */
    size_t plen;
    const char *dir; /* folder for workflow_file ("" : current) */
    int nomem;
};

void rb_scenario_diags_init(struct rb_scenario_diags *d)
{
    d->items = NULL;
    d->count = d->cap = 0;
}

void rb_scenario_diags_release(struct rb_scenario_diags *d)
{
    free(d->items);
    rb_scenario_diags_init(d);
}

static void add_diag(struct ctx *c, enum rb_err code, int line, int col, const char *fmt,
                     va_list ap) __attribute__((format(printf, 5, 0)));

static void add_diag(struct ctx *c, enum rb_err code, int line, int col, const char *fmt,
                     va_list ap)
{
    struct rb_error *e;

    if (c->diags->count == c->diags->cap) {
        size_t cap = c->diags->cap ? c->diags->cap * 2 : 8;
        struct rb_error *items = realloc(c->diags->items, cap * sizeof(*items));

        if (!items) {
            c->nomem = 1;
            return;
        }
        c->diags->items = items;
        c->diags->cap = cap;
    }
    e = &c->diags->items[c->diags->count++];
    rb_error_init(e);
    e->code = code;
    e->line = line;
    e->column = col;
    snprintf(e->file, sizeof(e->file), "%s", c->file);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
}

/* Reports at the current path: its value (at_key 0) or its key (1). */
static void report(struct ctx *c, int at_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct ctx *c, int at_key, const char *fmt, ...)
{
    const struct rb__pos *p = rb__pos_find(c->idx, c->path);
    va_list ap;

    va_start(ap, fmt);
    add_diag(c, RB_EINVAL, p ? (at_key ? p->key_line : p->line) : 1,
             p ? (at_key ? p->key_col : p->col) : 1, fmt, ap);
    va_end(ap);
}

/* Enters key `key` of the current object; returns what leave() restores. */
static size_t enter(struct ctx *c, const char *key)
{
    size_t saved = c->plen;

    rb__path_push(c->path, sizeof(c->path), &c->plen, key);
    return saved;
}

static size_t enter_index(struct ctx *c, size_t i)
{
    char num[32];

    snprintf(num, sizeof(num), "%zu", i);
    return enter(c, num);
}

static void leave(struct ctx *c, size_t saved)
{
    c->plen = saved;
    c->path[saved] = '\0';
}

/* Reports at key `key` of the current object (its value, or its key). */
static void report_in(struct ctx *c, const char *key, int at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report_in(struct ctx *c, const char *key, int at_key, const char *fmt, ...)
{
    size_t saved = enter(c, key);
    const struct rb__pos *p = rb__pos_find(c->idx, c->path);
    va_list ap;

    va_start(ap, fmt);
    add_diag(c, RB_EINVAL, p ? (at_key ? p->key_line : p->line) : 1,
             p ? (at_key ? p->key_col : p->col) : 1, fmt, ap);
    va_end(ap);
    leave(c, saved);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* ------------------------------------------------------------------------
 * Suggestions: the known name closest to a misspelt one
 */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[65];

    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest of `names` (NULL-terminated), if it is close enough to be what
 * was meant, else NULL. */
static const char *closest(const char *word, const char *const *names)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t k;

    for (k = 0; names[k]; k++) {
        size_t d = edit_distance(word, names[k]);

        if (d < best_d) {
            best_d = d;
            best = names[k];
        }
    }
    if (best && best_d <= 3 && best_d * 3 <= strlen(best))
        return best;
    return NULL;
}

/* "a, b or c" into buf. */
static const char *join_names(const char *const *names, char *buf, size_t size)
{
    size_t n = 0, k, count = 0;

    while (names[count])
        count++;
    buf[0] = '\0';
    for (k = 0; k < count; k++) {
        int w = snprintf(buf + n, size - n, "%s%s",
                         k == 0           ? ""
                         : k + 1 == count ? " or "
                                          : ", ",
                         names[k]);

        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
    return buf;
}

static int in_list(const char *word, const char *const *names)
{
    size_t k;

    for (k = 0; names[k]; k++)
        if (strcmp(word, names[k]) == 0)
            return 1;
    return 0;
}

/* Reports every key of `obj` not in `known` as unknown, in `what`. */
static void check_keys(struct ctx *c, json_t *obj, const char *const *known,
                       const char *what)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        const char *hint;

        if (in_list(key, known))
            continue;
        hint = closest(key, known);
        if (hint)
            report_in(c, key, 1, "unknown key '%s' in %s; did you mean '%s'?", key, what,
                      hint);
        else
            report_in(c, key, 1, "unknown key '%s' in %s", key, what);
    }
}

/* ------------------------------------------------------------------------
 * Typed getters. Each returns 1 when the key is there and valid (out
 * written), 0 when it is absent, -1 when it is there but bad (reported).
 */

static int get_int(struct ctx *c, json_t *obj, const char *key, int64_t min, int64_t max,
                   int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    int64_t n;

    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        report_in(c, key, 0, "'%s' must be an integer, not %s", key, type_name(v));
        return -1;
    }
    n = (int64_t)json_integer_value(v);
    if (n < min || n > max) {
        if (max == INT64_MAX)
            report_in(c, key, 0, "'%s' must be at least %lld, not %lld", key,
                      (long long)min, (long long)n);
        else
            report_in(c, key, 0, "'%s' must be between %lld and %lld, not %lld", key,
                      (long long)min, (long long)max, (long long)n);
        return -1;
    }
    *out = n;
    return 1;
}

static int get_int32(struct ctx *c, json_t *obj, const char *key, int min, int max,
                     int *out)
{
    int64_t n;
    int r = get_int(c, obj, key, min, max, &n);

    if (r == 1)
        *out = (int)n;
    return r;
}

static int get_num(struct ctx *c, json_t *obj, const char *key, double min, double max,
                   double *out)
{
    json_t *v = json_object_get(obj, key);
    double n;

    if (!v)
        return 0;
    if (!json_is_number(v)) {
        report_in(c, key, 0, "'%s' must be a number, not %s", key, type_name(v));
        return -1;
    }
    n = json_number_value(v);
    if (n < min || n > max) {
        report_in(c, key, 0, "'%s' must be between %g and %g, not %g", key, min, max, n);
        return -1;
    }
    *out = n;
    return 1;
}

static int get_bool(struct ctx *c, json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        report_in(c, key, 0, "'%s' must be true or false, not %s", key, type_name(v));
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* A non-empty string, borrowed from obj. */
static int get_str(struct ctx *c, json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_string(v)) {
        report_in(c, key, 0, "'%s' must be a string, not %s", key, type_name(v));
        return -1;
    }
    if (json_string_length(v) == 0) {
        report_in(c, key, 0, "'%s' must not be empty", key);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

static int get_typed(struct ctx *c, json_t *obj, const char *key, json_type type,
                     json_t **out)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (json_typeof(v) != type) {
        report_in(c, key, 0, "'%s' must be %s, not %s", key,
                  type == JSON_OBJECT ? "an object" : "an array", type_name(v));
        return -1;
    }
    *out = v;
    return 1;
}

/* One of `names` (NULL-terminated); *out is its index. `what` names the
 * set in messages ("mode", "fault kind"). */
static int get_enum(struct ctx *c, json_t *obj, const char *key, const char *const *names,
                    const char *what, int *out)
{
    const char *s = NULL;
    int r = get_str(c, obj, key, &s);
    const char *hint;
    char list[256];
    int k;

    if (r != 1)
        return r;
    for (k = 0; names[k]; k++)
        if (strcmp(s, names[k]) == 0) {
            *out = k;
            return 1;
        }
    hint = closest(s, names);
    if (hint)
        report_in(c, key, 0, "unknown %s '%s'; did you mean '%s'?", what, s, hint);
    else
        report_in(c, key, 0, "unknown %s '%s' (expected %s)", what, s,
                  join_names(names, list, sizeof(list)));
    return -1;
}

static char *dup_str(struct ctx *c, const char *s)
{
    char *d = strdup(s);

    if (!d)
        c->nomem = 1;
    return d;
}

static void *alloc_zero(struct ctx *c, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        c->nomem = 1;
    return p;
}

/* ------------------------------------------------------------------------
 * The agent and its workflow
 */

static const char *const mode_names[] = {"correct",
                                         "no-replay",
                                         "drop-history",
                                         "ignore-failure-context",
                                         "no-idempotency",
                                         "wall-clock-lease",
                                         NULL};

/* Checks one level of a fan-out (the current path) and those nested in it
 * under "each", filling levels[depth - 1] and on; returns the levels read
 * (0 when one is bad). */
static size_t check_fanout_level(struct ctx *c, json_t *fan, size_t depth,
                                 struct rb_scenario_fanout_level *levels)
{
    static const char *const top_keys[] = {"at_step",     "threads", "duplicates",
                                           "concurrency", "each",    NULL};
    static const char *const top_only[] = {"at_step", "concurrency", NULL};
    struct rb_scenario_fanout_level lv = {0, 0};
    json_t *each = NULL;
    size_t k, saved, below = 1;
    int ok = 1;

    check_keys(c, fan, top_keys, depth == 1 ? "fanout" : "fanout.each");
    for (k = 0; depth > 1 && top_only[k]; k++)
        if (json_object_get(fan, top_only[k]))
            report_in(c, top_only[k], 1,
                      "'%s' belongs to the top fanout level, not to an 'each'",
                      top_only[k]);
    if (get_int32(c, fan, "threads", 1, 10000, &lv.threads) != 1) {
        ok = 0;
        if (!json_object_get(fan, "threads"))
            report(c, 0, "missing required key 'threads' in %s",
                   depth == 1 ? "fanout" : "fanout.each");
    }
    if (get_int32(c, fan, "duplicates", 0, 10000, &lv.duplicates) < 0)
        ok = 0;
    if (ok && lv.duplicates >= lv.threads) {
        report_in(c, "duplicates", 0,
                  "'duplicates' must be less than 'threads' (%d): a duplicate "
                  "repeats another thread",
                  lv.threads);
        ok = 0;
    }
    levels[depth - 1] = lv;
    if (get_typed(c, fan, "each", JSON_OBJECT, &each) < 0)
        return 0;
    if (each && depth >= RB_SCENARIO_FANOUT_MAX_DEPTH) {
        report_in(c, "each", 1, "a fanout nests %d levels deep at most",
                  RB_SCENARIO_FANOUT_MAX_DEPTH);
        return 0;
    }
    if (each) {
        saved = enter(c, "each");
        below = check_fanout_level(c, each, depth + 1, levels);
        leave(c, saved);
        if (below == 0)
            return 0;
        below++;
    }
    return ok ? below : 0;
}

/* Checks a workflow's fanout (the current path) and fills its fields. */
static void check_fanout(struct ctx *c, json_t *fan, int steps_ok,
                         struct rb_scenario_workflow *out)
{
    struct rb_scenario_fanout_level levels[RB_SCENARIO_FANOUT_MAX_DEPTH];
    int at = 0, conc = 0, ok = 1;
    int64_t leaves = 1;
    size_t depth, i;

    if (get_int32(c, fan, "at_step", 1, 1000000, &at) != 1) {
        ok = 0;
        if (!json_object_get(fan, "at_step"))
            report(c, 0, "missing required key 'at_step' in fanout");
    }
    if (get_int32(c, fan, "concurrency", 1, 1024, &conc) < 0)
        ok = 0;
    depth = check_fanout_level(c, fan, 1, levels);
    if (depth == 0 || !ok)
        return;
    for (i = 0; i < depth; i++)
        leaves *= levels[i].threads;
    if (leaves > 10000) {
        report_in(c, "threads", 0,
                  "the fanout's levels make %lld leaf threads, more than 10000",
                  (long long)leaves);
        return;
    }
    if (steps_ok && at + leaves - 1 > out->steps) {
        if (depth == 1)
            report_in(c, "threads", 0,
                      "fanout threads take steps %d..%d, beyond the workflow's %d steps",
                      at, at + (int)leaves - 1, out->steps);
        else
            report_in(c, "threads", 0,
                      "the fanout's %lld leaf threads take steps %d..%d, beyond the "
                      "workflow's %d steps",
                      (long long)leaves, at, at + (int)leaves - 1, out->steps);
        return;
    }
    out->fanout_levels = alloc_zero(c, depth, sizeof(*out->fanout_levels));
    if (!out->fanout_levels)
        return;
    memcpy(out->fanout_levels, levels, depth * sizeof(*levels));
    out->fanout_depth = depth;
    out->fanout_at_step = at;
    out->fanout_threads = (int)leaves;
    out->fanout_duplicates = levels[0].duplicates;
    out->fanout_concurrency = conc;
}

static void check_workflow(struct ctx *c, json_t *wf, struct rb_scenario_workflow *out)
{
    static const char *const keys[] = {"steps", "llm_turns", "tasks", "fanout", NULL};
    static const char *const task_keys[] = {"step", "alloc_mb", NULL};
    json_t *tasks = NULL, *fan = NULL, *t;
    size_t i, saved;
    int steps_ok;

    if (!json_is_object(wf)) {
        report(c, 0, "a workflow must be an object, not %s", type_name(wf));
        return;
    }
    check_keys(c, wf, keys, "workflow");
    steps_ok = get_int32(c, wf, "steps", 1, 1000000, &out->steps) == 1;
    if (!json_object_get(wf, "steps"))
        report(c, 0, "missing required key 'steps' in workflow");
    if (get_int32(c, wf, "llm_turns", 0, 1000000, &out->llm_turns) == 1 && steps_ok &&
        out->llm_turns > out->steps)
        report_in(c, "llm_turns", 0,
                  "'llm_turns' is %d but the workflow has only %d steps (each LLM call "
                  "is a step)",
                  out->llm_turns, out->steps);
    if (get_typed(c, wf, "tasks", JSON_ARRAY, &tasks) == 1) {
        out->tasks = alloc_zero(c, json_array_size(tasks), sizeof(*out->tasks));
        if (!out->tasks)
            return;
        saved = enter(c, "tasks");
        json_array_foreach(tasks, i, t)
        {
            size_t s2 = enter_index(c, i);
            struct rb_scenario_task task = {0, 0};
            size_t k;

            if (!json_is_object(t)) {
                report(c, 0, "a task must be an object, not %s", type_name(t));
                leave(c, s2);
                continue;
            }
            check_keys(c, t, task_keys, "task");
            if (get_int32(c, t, "step", 1, 1000000, &task.step) == 1) {
                if (steps_ok && task.step > out->steps)
                    report_in(c, "step", 0,
                              "task at step %d is beyond the workflow's %d steps",
                              task.step, out->steps);
                for (k = 0; k < out->n_tasks; k++)
                    if (out->tasks[k].step == task.step)
                        report_in(c, "step", 0, "step %d already has a task", task.step);
            } else if (!json_object_get(t, "step")) {
                report(c, 0, "missing required key 'step' in task");
            }
            get_int(c, t, "alloc_mb", 0, 1 << 20, &task.alloc_mb);
            out->tasks[out->n_tasks++] = task;
            leave(c, s2);
        }
        leave(c, saved);
    }
    if (get_typed(c, wf, "fanout", JSON_OBJECT, &fan) == 1) {
        saved = enter(c, "fanout");
        check_fanout(c, fan, steps_ok, out);
        leave(c, saved);
    }
}

static int read_file(const char *path, char **text, size_t *len, struct rb_error *err);

/* Loads a workflow_file: its problems are reported in that file. */
static void load_workflow_file(struct ctx *c, const char *name,
                               struct rb_scenario_workflow *out)
{
    char *full = NULL, *text = NULL;
    size_t len = 0, n;
    json_t *root = NULL;
    json_error_t jerr;
    struct rb_error e;
    struct rb__pos_index idx = {NULL, 0, 0};
    struct ctx sub;

    n = strlen(c->dir) + strlen(name) + 2;
    full = malloc(n);
    if (!full) {
        c->nomem = 1;
        return;
    }
    if (name[0] == '/' || !c->dir[0])
        snprintf(full, n, "%s", name);
    else
        snprintf(full, n, "%s/%s", c->dir, name);
    rb_error_init(&e);
    if (read_file(full, &text, &len, &e) != RB_OK) {
        report_in(c, "workflow_file", 0, "%s", e.message);
        goto out;
    }
    memset(&sub, 0, sizeof(sub));
    sub.file = full;
    sub.diags = c->diags;
    sub.dir = c->dir;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        struct rb__pos_index none = {NULL, 0, 0};
        size_t before = c->diags->count;

        sub.idx = &none;
        report(&sub, 0, "%s", jerr.text);
        if (c->diags->count > before) {
            c->diags->items[before].line = jerr.line > 0 ? jerr.line : 1;
            c->diags->items[before].column = jerr.column > 0 ? jerr.column : 1;
        }
        c->nomem |= sub.nomem;
        goto out;
    }
    if (rb__pos_index_build(text, len, &idx) != RB_OK) {
        c->nomem = 1;
        goto out;
    }
    sub.idx = &idx;
    check_workflow(&sub, root, out);
    c->nomem |= sub.nomem;
    if (!c->nomem) {
        out->file = full;
        full = NULL;
    }
out:
    rb__pos_index_release(&idx);
    json_decref(root);
    free(text);
    free(full);
}

static void check_command(struct ctx *c, json_t *cmd, struct rb_scenario_agent *out)
{
    static const char *const keys[] = {"argv", "cwd", "env", NULL};
    json_t *argv = NULL, *env = NULL, *v;
    const char *s = NULL, *key;
    size_t i, saved, n;

    if (!json_is_object(cmd)) {
        report(c, 0, "'command' must be an object, not %s", type_name(cmd));
        return;
    }
    check_keys(c, cmd, keys, "command");
    if (get_typed(c, cmd, "argv", JSON_ARRAY, &argv) == 1) {
        if (json_array_size(argv) == 0) {
            report_in(c, "argv", 0, "'argv' must name a program");
        } else {
            out->argv = alloc_zero(c, json_array_size(argv) + 1, sizeof(char *));
            saved = enter(c, "argv");
            json_array_foreach(argv, i, v)
            {
                size_t s2 = enter_index(c, i);

                if (!json_is_string(v))
                    report(c, 0, "'argv' entries must be strings, not %s", type_name(v));
                else if (i == 0 && json_string_length(v) == 0)
                    report(c, 0, "the program in 'argv' must not be empty");
                else if (out->argv)
                    out->argv[i] = dup_str(c, json_string_value(v));
                leave(c, s2);
            }
            leave(c, saved);
        }
    } else if (!json_object_get(cmd, "argv")) {
        report(c, 0, "missing required key 'argv' in command");
    }
    if (get_str(c, cmd, "cwd", &s) == 1)
        out->cwd = dup_str(c, s);
    if (get_typed(c, cmd, "env", JSON_OBJECT, &env) == 1) {
        out->env = alloc_zero(c, json_object_size(env) + 1, sizeof(char *));
        n = 0;
        saved = enter(c, "env");
        json_object_foreach(env, key, v)
        {
            if (!key[0] || strchr(key, '=')) {
                report_in(c, key, 1, "bad environment variable name '%s'", key);
            } else if (!json_is_string(v)) {
                report_in(c, key, 0, "environment variable '%s' must be a string, not %s",
                          key, type_name(v));
            } else if (out->env) {
                size_t sz = strlen(key) + json_string_length(v) + 2;
                char *e = malloc(sz);

                if (!e) {
                    c->nomem = 1;
                    continue;
                }
                snprintf(e, sz, "%s=%s", key, json_string_value(v));
                out->env[n++] = e;
            }
        }
        leave(c, saved);
    }
}

static void check_agent(struct ctx *c, json_t *agent, struct rb_scenario_agent *out)
{
    static const char *const keys[] = {"builtin", "command", NULL};
    static const char *const bkeys[] = {"workflow", "workflow_file", "mode", NULL};
    json_t *b = json_object_get(agent, "builtin");
    json_t *cmd = json_object_get(agent, "command");
    json_t *wf;
    const char *wf_file = NULL;
    size_t saved;
    int mode = 0;

    check_keys(c, agent, keys, "agent");
    if (b && cmd) {
        report_in(c, "command", 1, "agent has both 'builtin' and 'command'; give one");
        return;
    }
    if (!b && !cmd) {
        report(c, 0, "agent needs 'builtin' or 'command'");
        return;
    }
    if (cmd) {
        out->kind = RB_SCENARIO_AGENT_COMMAND;
        saved = enter(c, "command");
        check_command(c, cmd, out);
        leave(c, saved);
        return;
    }
    out->kind = RB_SCENARIO_AGENT_BUILTIN;
    saved = enter(c, "builtin");
    if (!json_is_object(b)) {
        report(c, 0, "'builtin' must be an object, not %s", type_name(b));
        goto out;
    }
    check_keys(c, b, bkeys, "builtin agent");
    if (get_enum(c, b, "mode", mode_names, "agent mode", &mode) == 1)
        out->mode = (enum rb_scenario_mode)mode;
    wf = json_object_get(b, "workflow");
    if (wf && json_object_get(b, "workflow_file")) {
        report_in(c, "workflow_file", 1,
                  "builtin agent has both 'workflow' and 'workflow_file'; give one");
    } else if (wf) {
        size_t s2 = enter(c, "workflow");

        check_workflow(c, wf, &out->workflow);
        leave(c, s2);
    } else if (get_str(c, b, "workflow_file", &wf_file) == 1) {
        load_workflow_file(c, wf_file, &out->workflow);
    } else if (!json_object_get(b, "workflow_file")) {
        report(c, 0, "builtin agent needs 'workflow' or 'workflow_file'");
    }
out:
    leave(c, saved);
}

/* ------------------------------------------------------------------------
 * The world
 */

static const char *const tool_names[] = {"search", "fetch", "send_email", "write_record",
                                         NULL};

static void check_world(struct ctx *c, json_t *w, struct rb_scenario_world *out)
{
    static const char *const keys[] = {"seed",   "turns", "tools", "latency",
                                       "prices", "port",  NULL};
    static const char *const lat_keys[] = {"fixed_ms", "jitter_ms", NULL};
    static const char *const price_keys[] = {"prompt", "completion", NULL};
    json_t *tools = NULL, *lat = NULL, *prices = NULL, *v;
    int64_t seed;
    size_t i, k, saved;

    check_keys(c, w, keys, "world");
    if (get_int(c, w, "seed", 0, INT64_MAX, &seed) == 1) {
        out->has_seed = 1;
        out->seed = (uint64_t)seed;
    }
    get_int32(c, w, "turns", 0, 1000, &out->turns);
    get_int32(c, w, "port", 1, 65535, &out->port);
    if (get_typed(c, w, "tools", JSON_ARRAY, &tools) == 1) {
        char **names = alloc_zero(c, json_array_size(tools) + 1, sizeof(char *));
        size_t n = 0;

        saved = enter(c, "tools");
        json_array_foreach(tools, i, v)
        {
            size_t s2 = enter_index(c, i);
            const char *hint;
            char list[128];

            if (!json_is_string(v)) {
                report(c, 0, "a tool must be a string, not %s", type_name(v));
            } else if (!in_list(json_string_value(v), tool_names)) {
                hint = closest(json_string_value(v), tool_names);
                if (hint)
                    report(c, 0, "unknown tool '%s'; did you mean '%s'?",
                           json_string_value(v), hint);
                else
                    report(c, 0, "unknown tool '%s' (the world has %s)",
                           json_string_value(v),
                           join_names(tool_names, list, sizeof(list)));
            } else {
                int dup = 0;

                for (k = 0; k < n; k++)
                    dup |= strcmp(names[k], json_string_value(v)) == 0;
                if (dup)
                    report(c, 0, "tool '%s' is listed twice", json_string_value(v));
                else if (names)
                    names[n++] = dup_str(c, json_string_value(v));
            }
            leave(c, s2);
        }
        leave(c, saved);
        if (names) {
            for (k = 0; out->tools && out->tools[k]; k++)
                free(out->tools[k]);
            free(out->tools);
            out->tools = names;
            out->n_tools = n;
        }
    }
    if (get_typed(c, w, "latency", JSON_OBJECT, &lat) == 1) {
        saved = enter(c, "latency");
        check_keys(c, lat, lat_keys, "latency");
        get_int32(c, lat, "fixed_ms", 0, 600000, &out->latency_ms);
        get_int32(c, lat, "jitter_ms", 0, 600000, &out->jitter_ms);
        leave(c, saved);
    }
    if (get_typed(c, w, "prices", JSON_OBJECT, &prices) == 1) {
        saved = enter(c, "prices");
        check_keys(c, prices, price_keys, "prices");
        get_num(c, prices, "prompt", 0, 1e6, &out->price_prompt);
        get_num(c, prices, "completion", 0, 1e6, &out->price_completion);
        leave(c, saved);
    }
}

/* ------------------------------------------------------------------------
 * Faults
 */

static const char *const kind_names[] = {"preemption", "oom", "network", "clock", NULL};

/* What a form takes. */
#define P_AT_REQUIRED 0x01u /* needs a trigger */
#define P_AT_NONE 0x02u     /* a standing condition: no trigger */
#define P_DURATION 0x04u    /* takes duration_ms */
#define P_DUR_REQUIRED 0x08u
#define P_LIMIT 0x10u /* needs limit_mb */
#define P_HTTP 0x20u  /* route, count, share */

struct form_info {
    const char *name;
    enum rb_scenario_fault_kind kind;
    enum rb_scenario_form form;
    unsigned flags;
    const char *params[5]; /* form-specific keys beyond the flags' */
};

static const struct form_info forms[] = {
    {"notice", RB_SCENARIO_PREEMPTION, RB_SCENARIO_NOTICE, P_AT_REQUIRED, {"grace_ms"}},
    {"sigkill", RB_SCENARIO_PREEMPTION, RB_SCENARIO_SIGKILL, P_AT_REQUIRED, {NULL}},
    {"freeze",
     RB_SCENARIO_PREEMPTION,
     RB_SCENARIO_FREEZE,
     P_AT_REQUIRED | P_DURATION,
     {NULL}},
    {"oom-kill", RB_SCENARIO_OOM, RB_SCENARIO_OOM_KILL, P_AT_REQUIRED, {NULL}},
    {"limit",
     RB_SCENARIO_OOM,
     RB_SCENARIO_OOM_LIMIT,
     P_AT_NONE | P_LIMIT,
     {"mechanism", "sample_ms"}},
    {"rlimit", RB_SCENARIO_OOM, RB_SCENARIO_OOM_RLIMIT, P_AT_NONE | P_LIMIT, {NULL}},
    {"task", RB_SCENARIO_OOM, RB_SCENARIO_OOM_TASK, P_AT_REQUIRED | P_LIMIT, {NULL}},
    {"reset", RB_SCENARIO_NETWORK, RB_SCENARIO_NET_RESET, P_DURATION | P_HTTP, {NULL}},
    {"refused",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_REFUSED,
     P_DURATION | P_DUR_REQUIRED,
     {NULL}},
    {"stall",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_STALL,
     P_DURATION | P_HTTP,
     {"delay_ms"}},
    {"server_error",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_SERVER_ERROR,
     P_DURATION | P_HTTP,
     {"status"}},
    {"rate_limit",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_RATE_LIMIT,
     P_DURATION | P_HTTP,
     {"retry_after_s"}},
    {"truncate",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_TRUNCATE,
     P_DURATION | P_HTTP,
     {"chunk_bytes"}},
    {"slow",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_SLOW,
     P_DURATION | P_HTTP,
     {"delay_ms", "chunk_bytes"}},
    {"partition",
     RB_SCENARIO_NETWORK,
     RB_SCENARIO_NET_PARTITION,
     P_AT_REQUIRED | P_DURATION | P_DUR_REQUIRED,
     {NULL}},
    {"jump",
     RB_SCENARIO_CLOCK,
     RB_SCENARIO_CLOCK_JUMP,
     P_AT_REQUIRED,
     {"jump_s", "fake_monotonic"}},
    {"offset",
     RB_SCENARIO_CLOCK,
     RB_SCENARIO_CLOCK_OFFSET,
     P_AT_NONE,
     {"offset_s", "fake_monotonic"}},
    {"drift",
     RB_SCENARIO_CLOCK,
     RB_SCENARIO_CLOCK_DRIFT,
     P_AT_NONE,
     {"rate", "fake_monotonic"}},
};

#define N_FORMS (sizeof(forms) / sizeof(forms[0]))

/* Every key a fault may hold, whatever its form. */
static const char *const fault_keys[] = {
    "kind",           "form",      "at",          "duration_ms", "grace_ms", "limit_mb",
    "mechanism",      "sample_ms", "route",       "count",       "share",    "status",
    "retry_after_s",  "delay_ms",  "chunk_bytes", "jump_s",      "offset_s", "rate",
    "fake_monotonic", NULL};

static int form_takes(const struct form_info *f, const char *key)
{
    size_t k;

    if (!strcmp(key, "kind") || !strcmp(key, "form"))
        return 1;
    if (!strcmp(key, "at"))
        return !(f->flags & P_AT_NONE);
    if (!strcmp(key, "duration_ms"))
        return (f->flags & P_DURATION) != 0;
    if (!strcmp(key, "limit_mb"))
        return (f->flags & P_LIMIT) != 0;
    if (!strcmp(key, "route") || !strcmp(key, "count") || !strcmp(key, "share"))
        return (f->flags & P_HTTP) != 0;
    for (k = 0; k < 5 && f->params[k]; k++)
        if (!strcmp(key, f->params[k]))
            return 1;
    return 0;
}

static void forms_of_kind(enum rb_scenario_fault_kind kind, const char **names)
{
    size_t i, n = 0;

    for (i = 0; i < N_FORMS; i++)
        if (forms[i].kind == kind)
            names[n++] = forms[i].name;
    names[n] = NULL;
}

/* Facts about the workflow the faults are checked against. */
struct shape {
    int steps;     /* 0: unknown (an external agent) */
    int llm_turns; /* when steps is known */
    const struct rb_scenario_workflow *wf;
    int64_t deadline_ms; /* the scenario's (its default when not valid) */
};

static void check_trigger(struct ctx *c, json_t *at, const struct shape *sh,
                          struct rb_scenario_trigger *out)
{
    static const char *const keys[] = {"step",      "when",    "delay_ms", "llm_call",
                                       "tool_call", "time_ms", NULL};
    static const char *const which[] = {"step", "llm_call", "tool_call", "time_ms"};
    static const char *const when_names[] = {"before", "during", "after", NULL};
    const char *first = NULL;
    int k, when = 0;
    int64_t n = 0;

    if (!json_is_object(at)) {
        report(c, 0, "a trigger must be an object, not %s", type_name(at));
        return;
    }
    check_keys(c, at, keys, "trigger");
    for (k = 0; k < 4; k++) {
        if (!json_object_get(at, which[k]))
            continue;
        if (first) {
            report_in(c, which[k], 1, "trigger has both '%s' and '%s'; give one", first,
                      which[k]);
            return;
        }
        first = which[k];
        out->kind = (enum rb_scenario_trigger_kind)(RB_SCENARIO_AT_STEP + k);
    }
    if (!first) {
        report(c, 0, "trigger needs one of 'step', 'llm_call', 'tool_call' or 'time_ms'");
        return;
    }
    if (get_int(c, at, first, out->kind == RB_SCENARIO_AT_TIME ? 0 : 1, INT32_MAX, &n) !=
        1)
        return;
    out->n = n;
    if (out->kind != RB_SCENARIO_AT_STEP) {
        if (json_object_get(at, "when"))
            report_in(c, "when", 1, "'when' applies only to a step trigger");
        if (json_object_get(at, "delay_ms"))
            report_in(c, "delay_ms", 1, "'delay_ms' applies only to a step trigger");
    } else {
        if (get_enum(c, at, "when", when_names, "trigger phase", &when) == 1)
            out->when = (enum rb_scenario_when)when;
        out->delay_ms = out->when == RB_SCENARIO_DURING ? 100 : 0;
        if (json_object_get(at, "delay_ms") && out->when != RB_SCENARIO_DURING)
            report_in(c, "delay_ms", 1, "'delay_ms' needs \"when\": \"during\"");
        else
            get_int(c, at, "delay_ms", 0, 3600000, &out->delay_ms);
        if (sh->steps && n > sh->steps)
            report_in(c, "step", 0,
                      "trigger at step %lld is beyond the workflow's %d steps",
                      (long long)n, sh->steps);
    }
    if (out->kind == RB_SCENARIO_AT_LLM_CALL && sh->steps && n > sh->llm_turns)
        report_in(c, "llm_call", 0,
                  "trigger at llm_call %lld is beyond the workflow's %d llm_turns",
                  (long long)n, sh->llm_turns);
}

static void check_fault(struct ctx *c, json_t *f, const struct shape *sh,
                        struct rb_scenario_fault *out)
{
    static const char *const mem_names[] = {"auto", "cgroup2", "watchdog", NULL};
    const struct form_info *info = NULL;
    const char *form = NULL, *key, *route = NULL;
    const char *names[N_FORMS + 1];
    char list[256], what[64];
    json_t *v, *at;
    int kind = 0, mech = 0;
    size_t i;

    if (get_enum(c, f, "kind", kind_names, "fault kind", &kind) != 1) {
        if (!json_object_get(f, "kind"))
            report(c, 0, "fault needs 'kind' (%s)",
                   join_names(kind_names, list, sizeof(list)));
        return;
    }
    out->kind = (enum rb_scenario_fault_kind)(kind + 1);
    forms_of_kind(out->kind, names);
    snprintf(what, sizeof(what), "%s form", kind_names[kind]);
    if (!json_object_get(f, "form")) {
        report(c, 0, "%s fault needs 'form' (%s)", kind_names[kind],
               join_names(names, list, sizeof(list)));
        return;
    }
    if (get_str(c, f, "form", &form) != 1)
        return;
    for (i = 0; i < N_FORMS; i++)
        if (!strcmp(forms[i].name, form))
            info = &forms[i];
    if (info && info->kind != out->kind) {
        report_in(c, "form", 0, "form '%s' is not a%s %s fault (expected %s)", form,
                  out->kind == RB_SCENARIO_OOM ? "n" : "", kind_names[kind],
                  join_names(names, list, sizeof(list)));
        return;
    }
    if (!info) {
        int ignored;

        get_enum(c, f, "form", names, what, &ignored);
        return;
    }
    out->form = info->form;

    /* Keys this form does not take. */
    json_object_foreach(f, key, v)
    {
        if (!in_list(key, fault_keys) || form_takes(info, key))
            continue;
        if (!strcmp(key, "duration_ms"))
            report_in(c, key, 1, "form '%s' has no duration; remove 'duration_ms'", form);
        else if (!strcmp(key, "at"))
            report_in(c, key, 1,
                      "form '%s' takes no trigger: it holds from the start; remove 'at'",
                      form);
        else
            report_in(c, key, 1, "'%s' does not apply to form '%s'", key, form);
    }
    check_keys(c, f, fault_keys, "fault");

    at = json_object_get(f, "at");
    if (at && form_takes(info, "at")) {
        size_t saved = enter(c, "at");

        check_trigger(c, at, sh, &out->at);
        leave(c, saved);
    } else if (!at && (info->flags & P_AT_REQUIRED)) {
        report(c, 0, "fault '%s' needs 'at'", form);
    }
    if (info->form == RB_SCENARIO_OOM_TASK && at && out->at.kind == RB_SCENARIO_AT_STEP &&
        sh->steps) {
        int found = 0;

        for (i = 0; i < sh->wf->n_tasks; i++)
            found |= sh->wf->tasks[i].step == out->at.n;
        if (!found) {
            size_t saved = enter(c, "at");

            report_in(c, "step", 0, "step %lld is not a task step of the workflow",
                      (long long)out->at.n);
            leave(c, saved);
        }
    } else if (info->form == RB_SCENARIO_OOM_TASK && at &&
               out->at.kind != RB_SCENARIO_AT_START &&
               out->at.kind != RB_SCENARIO_AT_STEP) {
        report_in(c, "at", 0, "form 'task' needs a step trigger at a task step");
    }

    /* Defaults, then the form's parameters. */
    if (info->form == RB_SCENARIO_FREEZE || info->form == RB_SCENARIO_NET_PARTITION)
        out->duration_ms = 1000;
    out->grace_ms = info->form == RB_SCENARIO_NOTICE ? 2000 : 0;
    out->share = (info->flags & P_HTTP) ? 1.0 : 0;
    out->status = info->form == RB_SCENARIO_NET_SERVER_ERROR ? 503 : 0;
    out->retry_after_s = info->form == RB_SCENARIO_NET_RATE_LIMIT ? 1 : 0;
    out->delay_ms = info->form == RB_SCENARIO_NET_SLOW ? 100 : 0;
    out->chunk_bytes = info->form == RB_SCENARIO_NET_SLOW ? 16 : 0;
    out->rate = info->form == RB_SCENARIO_CLOCK_DRIFT ? 1.0 : 0;

    if (form_takes(info, "duration_ms"))
        get_int(c, f, "duration_ms", 1, 86400000, &out->duration_ms);
    if ((info->flags & P_DUR_REQUIRED) && !json_object_get(f, "duration_ms"))
        report(c, 0, "fault '%s' needs 'duration_ms': %s", form,
               info->form == RB_SCENARIO_NET_PARTITION
                   ? "how long the link stays down before it comes back"
                   : "the world must listen again");
    if (form_takes(info, "grace_ms"))
        get_int(c, f, "grace_ms", 1, 3600000, &out->grace_ms);
    if (info->flags & P_LIMIT) {
        if (get_int(c, f, "limit_mb", 1, 1 << 20, &out->limit_mb) == 0)
            report(c, 0, "fault '%s' needs 'limit_mb'", form);
    }
    if (form_takes(info, "mechanism") &&
        get_enum(c, f, "mechanism", mem_names, "memory mechanism", &mech) == 1)
        out->mechanism = (enum rb_scenario_mem)mech;
    if (form_takes(info, "sample_ms"))
        get_int32(c, f, "sample_ms", 1, 10000, &out->sample_ms);
    if (info->flags & P_HTTP) {
        if (get_str(c, f, "route", &route) == 1) {
            if (route[0] != '/')
                report_in(c, "route", 0,
                          "'route' must start with '/', as '/v1/' or "
                          "'/tools/send_email'");
            else if (strlen(route) >= sizeof(out->route))
                report_in(c, "route", 0, "'route' is longer than %zu bytes",
                          sizeof(out->route) - 1);
            else
                snprintf(out->route, sizeof(out->route), "%s", route);
        }
        get_int(c, f, "count", 1, INT32_MAX, &out->count);
        if (json_object_get(f, "share") &&
            get_num(c, f, "share", 0, 1, &out->share) == 1 && out->share <= 0) {
            report_in(c, "share", 0, "'share' must be above 0 and at most 1");
        }
    }
    if (form_takes(info, "status"))
        get_int32(c, f, "status", 500, 599, &out->status);
    if (form_takes(info, "retry_after_s"))
        get_int32(c, f, "retry_after_s", 0, 3600, &out->retry_after_s);
    if (form_takes(info, "delay_ms"))
        get_int32(c, f, "delay_ms", 0, 3600000, &out->delay_ms);
    if (form_takes(info, "chunk_bytes"))
        get_int32(c, f, "chunk_bytes", 0, 1 << 24, &out->chunk_bytes);
    if (info->form == RB_SCENARIO_CLOCK_JUMP &&
        get_num(c, f, "jump_s", -1e9, 1e9, &out->jump_s) == 0)
        report(c, 0, "fault 'jump' needs 'jump_s'");
    if (info->form == RB_SCENARIO_CLOCK_OFFSET &&
        get_num(c, f, "offset_s", -1e9, 1e9, &out->offset_s) == 0)
        report(c, 0, "fault 'offset' needs 'offset_s'");
    if (info->form == RB_SCENARIO_CLOCK_DRIFT) {
        int r = get_num(c, f, "rate", 0, 1000, &out->rate);

        if (r == 0)
            report(c, 0, "fault 'drift' needs 'rate'");
        else if (r == 1 && out->rate <= 0)
            report_in(c, "rate", 0, "'rate' must be above 0");
    }
    if (form_takes(info, "fake_monotonic"))
        get_bool(c, f, "fake_monotonic", &out->fake_monotonic);
}

static void check_random(struct ctx *c, json_t *r, const struct shape *sh,
                         struct rb_scenario_random *out)
{
    static const char *const keys[] = {"kinds",     "count", "window_steps",
                                       "window_ms", "seed",  NULL};
    json_t *kinds = NULL, *win = NULL, *v;
    int64_t seed;
    size_t i, saved;

    if (!json_is_object(r)) {
        report(c, 0, "'random' must be an object, not %s", type_name(r));
        return;
    }
    check_keys(c, r, keys, "random schedule");
    if (get_typed(c, r, "kinds", JSON_ARRAY, &kinds) == 1) {
        saved = enter(c, "kinds");
        if (json_array_size(kinds) == 0)
            report(c, 0, "'kinds' must name at least one fault kind");
        json_array_foreach(kinds, i, v)
        {
            size_t s2 = enter_index(c, i);
            int k;

            if (!json_is_string(v)) {
                report(c, 0, "a fault kind must be a string, not %s", type_name(v));
            } else {
                const char *hint;
                char list[128];

                for (k = 0; kind_names[k]; k++)
                    if (!strcmp(kind_names[k], json_string_value(v)))
                        break;
                if (kind_names[k]) {
                    out->kinds |= 1u << (k + 1);
                } else if ((hint = closest(json_string_value(v), kind_names)) != NULL) {
                    report(c, 0, "unknown fault kind '%s'; did you mean '%s'?",
                           json_string_value(v), hint);
                } else {
                    report(c, 0, "unknown fault kind '%s' (expected %s)",
                           json_string_value(v),
                           join_names(kind_names, list, sizeof(list)));
                }
            }
            leave(c, s2);
        }
        leave(c, saved);
    } else if (!json_object_get(r, "kinds")) {
        report(c, 0, "missing required key 'kinds' in random schedule");
    }
    if (get_int32(c, r, "count", 1, 1000, &out->count) == 0)
        report(c, 0, "missing required key 'count' in random schedule");
    if (json_object_get(r, "window_steps") && json_object_get(r, "window_ms")) {
        report_in(c, "window_ms", 1,
                  "random schedule has both 'window_steps' and 'window_ms'; give one");
    } else if (json_object_get(r, "window_ms")) {
        if (get_typed(c, r, "window_ms", JSON_ARRAY, &win) == 1) {
            json_t *a = json_array_get(win, 0), *b = json_array_get(win, 1);

            if (json_array_size(win) != 2 || !json_is_integer(a) || !json_is_integer(b) ||
                json_integer_value(a) < 0 ||
                json_integer_value(b) < json_integer_value(a) ||
                json_integer_value(b) > 86400000) {
                report_in(
                    c, "window_ms", 0,
                    "'window_ms' must be [first, last] ms after the start with 0 <= "
                    "first <= last");
            } else if (json_integer_value(b) >= sh->deadline_ms) {
                report_in(c, "window_ms", 0,
                          "'window_ms' ends at %lld ms, past the scenario's deadline_ms "
                          "of %lld",
                          (long long)json_integer_value(b), (long long)sh->deadline_ms);
            } else {
                out->window_time = 1;
                out->window_ms_min = json_integer_value(a);
                out->window_ms_max = json_integer_value(b);
            }
        }
    } else if (get_typed(c, r, "window_steps", JSON_ARRAY, &win) == 1) {
        json_t *a = json_array_get(win, 0), *b = json_array_get(win, 1);

        if (json_array_size(win) != 2 || !json_is_integer(a) || !json_is_integer(b) ||
            json_integer_value(a) < 1 || json_integer_value(b) < json_integer_value(a) ||
            json_integer_value(b) > 1000000) {
            report_in(
                c, "window_steps", 0,
                "'window_steps' must be [first, last] steps with 1 <= first <= last");
        } else if (sh->steps && json_integer_value(b) > sh->steps) {
            report_in(c, "window_steps", 0,
                      "'window_steps' ends at step %lld, beyond the workflow's %d steps",
                      (long long)json_integer_value(b), sh->steps);
        } else {
            out->window_min = (int)json_integer_value(a);
            out->window_max = (int)json_integer_value(b);
        }
    } else if (!json_object_get(r, "window_steps")) {
        report(c, 0,
               "random schedule needs 'window_steps' (a step window) or 'window_ms' (a "
               "time window)");
    }
    if (get_int(c, r, "seed", 0, INT64_MAX, &seed) == 1) {
        out->has_seed = 1;
        out->seed = (uint64_t)seed;
    }
}

static int line_of(struct ctx *c)
{
    const struct rb__pos *p = rb__pos_find(c->idx, c->path);

    return p ? p->line : 0;
}

static void check_faults(struct ctx *c, json_t *faults, const struct shape *sh,
                         struct rb_scenario *s)
{
    json_t *f;
    size_t i, n = json_array_size(faults);

    s->faults = alloc_zero(c, n, sizeof(*s->faults));
    s->randoms = alloc_zero(c, n, sizeof(*s->randoms));
    if (!s->faults || !s->randoms)
        return;
    json_array_foreach(faults, i, f)
    {
        size_t saved = enter_index(c, i);

        if (!json_is_object(f)) {
            report(c, 0, "a fault must be an object, not %s", type_name(f));
        } else if (json_object_get(f, "random")) {
            struct rb_scenario_random *r = &s->randoms[s->n_randoms++];
            const char *key;
            json_t *v;
            size_t s2;

            json_object_foreach(f, key, v)
            {
                if (strcmp(key, "random"))
                    report_in(c, key, 1,
                              "a random schedule takes no '%s': put it in 'random' or in "
                              "a fault of its own",
                              key);
            }
            s2 = enter(c, "random");
            r->line = line_of(c);
            check_random(c, json_object_get(f, "random"), sh, r);
            leave(c, s2);
        } else {
            struct rb_scenario_fault *out = &s->faults[s->n_faults++];

            out->line = line_of(c);
            check_fault(c, f, sh, out);
        }
        leave(c, saved);
    }
}

/* ------------------------------------------------------------------------
 * Restart policy, expectations, the scenario
 */

static void check_restart(struct ctx *c, json_t *r, struct rb_scenario_restart *out)
{
    static const char *const keys[] = {"delay_ms", "max_attempts", "backoff",
                                       "max_delay_ms", NULL};

    check_keys(c, r, keys, "restart");
    get_int(c, r, "delay_ms", 0, 3600000, &out->delay_ms);
    get_int32(c, r, "max_attempts", 1, 1000, &out->max_attempts);
    get_num(c, r, "backoff", 1, 100, &out->backoff);
    get_int(c, r, "max_delay_ms", 0, 3600000, &out->max_delay_ms);
}

static void check_expect(struct ctx *c, json_t *e, struct rb_scenario_expect *out)
{
    static const char *const keys[] = {"outcome",
                                       "recovery_ms",
                                       "max_steps_redone",
                                       "max_llm_calls_duplicated",
                                       "context_preserved",
                                       "failure_context_delivered",
                                       "side_effects_exactly_once",
                                       "max_time_lost_ms",
                                       NULL};
    static const char *const outcomes[] = {"recovered", "degraded", "escalated",
                                           "failed",    "hung",     NULL};
    static const char *const rec_keys[] = {"p50", "p95", NULL};
    json_t *rec = NULL;
    int o = 0;

    check_keys(c, e, keys, "expect");
    if (get_enum(c, e, "outcome", outcomes, "outcome", &o) == 1)
        out->outcome = (enum rb_scenario_outcome)(o + 1);
    if (get_typed(c, e, "recovery_ms", JSON_OBJECT, &rec) == 1) {
        size_t saved = enter(c, "recovery_ms");

        check_keys(c, rec, rec_keys, "recovery_ms");
        get_int(c, rec, "p50", 0, INT32_MAX, &out->recovery_p50_ms);
        get_int(c, rec, "p95", 0, INT32_MAX, &out->recovery_p95_ms);
        if (out->recovery_p50_ms >= 0 && out->recovery_p95_ms >= 0 &&
            out->recovery_p50_ms > out->recovery_p95_ms)
            report_in(c, "p50", 0, "'p50' (%lld) is above 'p95' (%lld)",
                      (long long)out->recovery_p50_ms, (long long)out->recovery_p95_ms);
        leave(c, saved);
    }
    get_int(c, e, "max_steps_redone", 0, INT32_MAX, &out->max_steps_redone);
    get_int(c, e, "max_llm_calls_duplicated", 0, INT32_MAX,
            &out->max_llm_calls_duplicated);
    get_bool(c, e, "context_preserved", &out->context_preserved);
    get_bool(c, e, "failure_context_delivered", &out->failure_context_delivered);
    get_bool(c, e, "side_effects_exactly_once", &out->side_effects_exactly_once);
    get_int(c, e, "max_time_lost_ms", 0, INT64_MAX, &out->max_time_lost_ms);
}

/* A scenario's name is part of its trials' folder names: a plain file name. */
static int name_ok(const char *name)
{
    size_t i, n = strlen(name);

    if (n == 0 || n > 100 || name[0] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static void set_defaults(struct ctx *c, struct rb_scenario *s)
{
    size_t k;

    s->world.turns = 2;
    s->world.tools = alloc_zero(c, 5, sizeof(char *));
    for (k = 0; s->world.tools && tool_names[k]; k++)
        s->world.tools[s->world.n_tools++] = dup_str(c, tool_names[k]);
    s->restart.max_attempts = 3;
    s->restart.backoff = 1;
    s->expect.outcome = RB_SCENARIO_OUTCOME_ANY;
    s->expect.recovery_p50_ms = -1;
    s->expect.recovery_p95_ms = -1;
    s->expect.max_steps_redone = -1;
    s->expect.max_llm_calls_duplicated = -1;
    s->expect.context_preserved = -1;
    s->expect.failure_context_delivered = -1;
    s->expect.side_effects_exactly_once = -1;
    s->expect.max_time_lost_ms = -1;
    s->trials = 1;
    s->deadline_ms = 60000;
}

/* The name of a path without its folder and its ".json". */
static char *default_name(struct ctx *c, const char *path)
{
    const char *base = strrchr(path, '/');
    size_t n;
    char *name;

    base = base ? base + 1 : path;
    n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".json"))
        n -= 5;
    name = malloc(n + 1);
    if (!name) {
        c->nomem = 1;
        return NULL;
    }
    memcpy(name, base, n);
    name[n] = '\0';
    return name;
}

static void check_scenario(struct ctx *c, json_t *root, const char *path,
                           struct rb_scenario *s)
{
    static const char *const keys[] = {"rebound", "name",   "description", "agent",
                                       "world",   "faults", "restart",     "expect",
                                       "trials",  "seeds",  "deadline_ms", NULL};
    json_t *agent = NULL, *world = NULL, *faults = NULL, *restart = NULL, *expect = NULL;
    json_t *seeds = NULL, *v;
    const char *str = NULL;
    struct shape sh = {0, 0, NULL, 60000};
    int64_t version = 0;
    size_t i;

    set_defaults(c, s);
    check_keys(c, root, keys, "scenario");
    if (!json_object_get(root, "rebound"))
        report(c, 0, "missing required key 'rebound' (the format version, %d)",
               RB_SCENARIO_VERSION);
    else if (get_int(c, root, "rebound", 1, INT32_MAX, &version) == 1 &&
             version != RB_SCENARIO_VERSION)
        report_in(c, "rebound", 0,
                  "unsupported format version %lld; this rebound reads %d",
                  (long long)version, RB_SCENARIO_VERSION);
    if (get_str(c, root, "name", &str) == 1) {
        if (!name_ok(str))
            report_in(c, "name", 0,
                      "bad name '%.80s': the name names the trials' folders, so use 1 to "
                      "100 letters, digits, '.', '_' or '-', not starting with '.'",
                      str);
        s->name = dup_str(c, str);
    } else if (!json_object_get(root, "name"))
        s->name = default_name(c, path);
    if (get_str(c, root, "description", &str) == 1)
        s->description = dup_str(c, str);
    else if (!json_object_get(root, "description"))
        report(c, 0,
               "missing required key 'description': say what this scenario checks "
               "and why it matters");

    if (get_typed(c, root, "agent", JSON_OBJECT, &agent) == 1) {
        size_t saved = enter(c, "agent");

        check_agent(c, agent, &s->agent);
        leave(c, saved);
        if (s->agent.kind == RB_SCENARIO_AGENT_BUILTIN && s->agent.workflow.steps > 0) {
            sh.steps = s->agent.workflow.steps;
            sh.llm_turns = s->agent.workflow.llm_turns;
            sh.wf = &s->agent.workflow;
        }
    } else if (!json_object_get(root, "agent")) {
        report(c, 0, "missing required key 'agent'");
    }
    if (get_typed(c, root, "world", JSON_OBJECT, &world) == 1) {
        size_t saved = enter(c, "world");

        check_world(c, world, &s->world);
        leave(c, saved);
    }
    v = json_object_get(root, "deadline_ms"); /* checked below */
    if (json_is_integer(v) && json_integer_value(v) >= 1)
        sh.deadline_ms = json_integer_value(v);
    if (get_typed(c, root, "faults", JSON_ARRAY, &faults) == 1) {
        size_t saved = enter(c, "faults");

        check_faults(c, faults, &sh, s);
        leave(c, saved);
    }
    if (get_typed(c, root, "restart", JSON_OBJECT, &restart) == 1) {
        size_t saved = enter(c, "restart");

        check_restart(c, restart, &s->restart);
        leave(c, saved);
    }
    if (get_typed(c, root, "expect", JSON_OBJECT, &expect) == 1) {
        size_t saved = enter(c, "expect");

        check_expect(c, expect, &s->expect);
        leave(c, saved);
    }
    get_int32(c, root, "trials", 1, 10000, &s->trials);
    if (get_typed(c, root, "seeds", JSON_ARRAY, &seeds) == 1) {
        size_t saved = enter(c, "seeds");

        if (json_array_size(seeds) == 0)
            report(c, 0, "'seeds' must hold at least one seed");
        s->seeds = alloc_zero(c, json_array_size(seeds), sizeof(uint64_t));
        json_array_foreach(seeds, i, v)
        {
            size_t s2 = enter_index(c, i);

            if (!json_is_integer(v) || json_integer_value(v) < 0)
                report(c, 0, "a seed must be an integer of 0 or more, not %s",
                       json_is_integer(v) ? "a negative one" : type_name(v));
            else if (s->seeds)
                s->seeds[s->n_seeds++] = (uint64_t)json_integer_value(v);
            leave(c, s2);
        }
        leave(c, saved);
    }
    if (!s->seeds) {
        s->seeds = alloc_zero(c, 1, sizeof(uint64_t));
        s->n_seeds = s->seeds ? 1 : 0;
    }
    get_int(c, root, "deadline_ms", 1, INT32_MAX, &s->deadline_ms);
}

/* ------------------------------------------------------------------------
 * Loading
 */

/* Reads a whole file; the message says what failed, in the house style. */
static int read_file(const char *path, char **text, size_t *len, struct rb_error *err)
{
    FILE *fp = NULL;
    char *buf = NULL, *grown;
    size_t n = 0, cap = 0, got;
    int rc = RB_OK, saved;
    char why[128];

    fp = fopen(path, "rb");
    if (!fp)
        goto fail_errno;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            grown = realloc(buf, cap);
            if (!grown) {
                rc = RB_ENOMEM;
                snprintf(err->message, sizeof(err->message), "out of memory");
                goto out;
            }
            buf = grown;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0)
            break;
        if (n > (64u << 20)) {
            rc = RB_EINVAL;
            snprintf(err->message, sizeof(err->message),
                     "cannot read '%s': larger than 64 MiB", path);
            goto out;
        }
    }
    if (ferror(fp))
        goto fail_errno;
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    goto out;

fail_errno:
    saved = errno;
    snprintf(why, sizeof(why), "%s", strerror(saved));
    if (why[0] >= 'A' && why[0] <= 'Z')
        why[0] = (char)(why[0] - 'A' + 'a');
    rc = saved == ENOENT ? RB_ENOENT : saved == EACCES ? RB_EACCES : RB_EIO;
    err->cause = saved;
    err->cause_kind = "errno";
    snprintf(err->message, sizeof(err->message), "cannot %s '%s': %s",
             fp ? "read" : "open", path, why);
out:
    err->code = (enum rb_err)rc;
    if (fp)
        fclose(fp);
    free(buf);
    return rc;
}

static int cmp_diag(const void *a, const void *b)
{
    const struct rb_error *x = a, *y = b;
    int f = strcmp(x->file, y->file);

    if (f)
        return f;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return 0;
}

/* Sorts the diagnostics from `from` on in file order, keeping the order of
 * equal positions (insertion sort: the lists are short). */
static void sort_diags(struct rb_scenario_diags *d, size_t from)
{
    size_t i, j;

    for (i = from + 1; i < d->count; i++) {
        struct rb_error e = d->items[i];

        for (j = i; j > from && cmp_diag(&d->items[j - 1], &e) > 0; j--)
            d->items[j] = d->items[j - 1];
        d->items[j] = e;
    }
}

enum rb_err rb_scenario_parse(const char *text, size_t len, const char *path,
                              struct rb_scenario **out, struct rb_scenario_diags *diags,
                              struct rb_error *err)
{
    struct rb_scenario_diags local;
    struct rb__pos_index idx = {NULL, 0, 0};
    struct rb_scenario *s = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    struct ctx c;
    char *dir = NULL;
    const char *slash;
    size_t first;
    enum rb_err rc = RB_OK;

    rb_scenario_diags_init(&local);
    memset(&c, 0, sizeof(c));
    c.file = path ? path : "<input>";
    c.diags = diags ? diags : &local;
    first = c.diags->count;
    c.idx = &idx;
    slash = path ? strrchr(path, '/') : NULL;
    dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("");
    if (!dir) {
        rc = RB_ENOMEM;
        goto out;
    }
    c.dir = dir;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        size_t before = c.diags->count;

        report(&c, 0, "%s", jerr.text);
        if (c.diags->count > before) {
            c.diags->items[before].line = jerr.line > 0 ? jerr.line : 1;
            c.diags->items[before].column = jerr.column > 0 ? jerr.column : 1;
        }
        goto done;
    }
    if (rb__pos_index_build(text, len, &idx) != RB_OK) {
        rc = RB_ENOMEM;
        goto out;
    }
    if (!json_is_object(root)) {
        report(&c, 0, "a scenario must be a JSON object, not %s", type_name(root));
        goto done;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        rc = RB_ENOMEM;
        goto out;
    }
    check_scenario(&c, root, c.file, s);
    if (path && !c.nomem) {
        s->path = strdup(path);
        c.nomem |= s->path == NULL;
    }
done:
    if (c.nomem) {
        rc = RB_ENOMEM;
        goto out;
    }
    sort_diags(c.diags, first);
    if (c.diags->count > first) {
        rc = RB_EINVAL;
        if (err)
            *err = c.diags->items[first];
        goto out;
    }
    *out = s;
    s = NULL;
out:
    if (rc == RB_ENOMEM && err) {
        rb_error_init(err);
        err->code = RB_ENOMEM;
        snprintf(err->message, sizeof(err->message), "out of memory loading '%s'",
                 c.file);
    }
    rb_scenario_free(s);
    json_decref(root);
    rb__pos_index_release(&idx);
    rb_scenario_diags_release(&local);
    free(dir);
    return rc;
}

enum rb_err rb_scenario_load(const char *path, struct rb_scenario **out,
                             struct rb_scenario_diags *diags, struct rb_error *err)
{
    struct rb_error e;
    char *text = NULL;
    size_t len = 0;
    enum rb_err rc;

    rb_error_init(&e);
    rc = (enum rb_err)read_file(path, &text, &len, &e);
    if (rc != RB_OK) {
        snprintf(e.file, sizeof(e.file), "%s", path);
        if (err)
            *err = e;
        return rc;
    }
    rc = rb_scenario_parse(text, len, path, out, diags, err);
    free(text);
    return rc;
}

static void free_strv(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void rb_scenario_free(struct rb_scenario *s)
{
    if (!s)
        return;
    free(s->path);
    free(s->name);
    free(s->description);
    free(s->agent.workflow.tasks);
    free(s->agent.workflow.fanout_levels);
    free(s->agent.workflow.file);
    free_strv(s->agent.argv);
    free(s->agent.cwd);
    free_strv(s->agent.env);
    free_strv(s->world.tools);
    free(s->faults);
    free(s->randoms);
    free(s->seeds);
    free(s);
}

const char *rb_scenario_kind_name(enum rb_scenario_fault_kind kind)
{
    if (kind >= RB_SCENARIO_PREEMPTION && kind <= RB_SCENARIO_CLOCK)
        return kind_names[kind - 1];
    return "unknown";
}

const char *rb_scenario_form_name(enum rb_scenario_form form)
{
    size_t i;

    for (i = 0; i < N_FORMS; i++)
        if (forms[i].form == form)
            return forms[i].name;
    return "unknown";
}

const char *rb_scenario_mode_name(enum rb_scenario_mode mode)
{
    if ((int)mode >= 0 && mode <= RB_SCENARIO_MODE_WALL_CLOCK_LEASE)
        return mode_names[mode];
    return "unknown";
}

const char *rb_scenario_outcome_name(enum rb_scenario_outcome outcome)
{
    static const char *const names[] = {"any",       "recovered", "degraded",
                                        "escalated", "failed",    "hung"};

    if ((int)outcome >= 0 && outcome <= RB_SCENARIO_HUNG)
        return names[outcome];
    return "unknown";
}
