/*
 * journal.c - the world's journal: one entry per request and its response,
 * with monotonic timestamps, the hash of the request's message history and
 * whether an earlier request had the same one. Kept in memory for the scorer
 * and, on request, written as JSON lines as each exchange ends; a chat
 * request's line also names its model and a digest of each message (role
 * and hash), so a scorer can tell which message of a conversation differs
 * from another trial's without the bodies.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum rb_err rb__world_journal_open(struct rb__world_journal *j, const char *path,
                                   struct rb_error *err)
{
    memset(j, 0, sizeof(*j));
    rb__world_map_init(&j->seen);
    if (!path)
        return RB_OK;
    j->file = fopen(path, "we");
    if (!j->file)
        return rb__world_fail(err, RB_EIO, "cannot open journal '%s': %s", path,
                              strerror(errno));
    j->path = strdup(path);
    if (!j->path) {
        fclose(j->file);
        j->file = NULL;
        return rb__world_fail(err, RB_ENOMEM, "out of memory");
    }
    return RB_OK;
}

void rb__world_journal_close(struct rb__world_journal *j)
{
    if (j->file)
        fclose(j->file);
    free(j->entries);
    free(j->path);
    rb__world_map_release(&j->seen);
    memset(j, 0, sizeof(*j));
}

size_t rb__world_journal_begin(struct rb_world *w, const char *method, const char *route,
                               int64_t start_ns)
{
    struct rb__world_journal *j = &w->journal;
    struct rb_world_entry *e;

    if (j->len == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 256;
        struct rb_world_entry *p = realloc(j->entries, cap * sizeof(*p));
        if (!p)
            return SIZE_MAX;
        j->entries = p;
        j->cap = cap;
    }
    e = &j->entries[j->len];
    memset(e, 0, sizeof(*e));
    e->seq = j->len + 1;
    e->start_ns = start_ns;
    rb__world_copy(e->method, sizeof(e->method), method);
    rb__world_copy(e->route, sizeof(e->route), route);
    return j->len++;
}

void rb__world_journal_describe(struct rb_world *w, size_t idx,
                                const struct rb__world_reply *rep,
                                const struct rb__world_hit *hit)
{
    struct rb__world_journal *j = &w->journal;
    struct rb_world_entry *e;
    char key[RB_WORLD_ROUTE_MAX + RB_HASH_HEX_LEN + 2];
    size_t first;

    if (idx >= j->len)
        return;
    e = &j->entries[idx];
    if (hit->id) {
        rb__world_copy(e->fault, sizeof(e->fault), rb_world_fault_kind_name(hit->f.kind));
        e->fault_id = hit->id;
    }
    if (!rep)
        return;
    memcpy(e->hash, rep->hash, sizeof(e->hash));
    e->turn = rep->turn;
    e->prompt_tokens = rep->prompt_tokens;
    e->completion_tokens = rep->completion_tokens;
    memcpy(e->tool, rep->tool, sizeof(e->tool));
    e->effect = rep->effect;
    e->replayed = rep->replayed;
    if (rep->body.len)
        rb_hash_hex(rep->body.data, rep->body.len, e->response_hash);
    if (!e->hash[0])
        return;
    snprintf(key, sizeof(key), "%s %s", e->route, e->hash);
    if (rb__world_map_get(&j->seen, key, &first))
        e->repeat_of = first;
    else
        (void)rb__world_map_put(&j->seen, key, (size_t)e->seq);
}

static enum rb_err json_str(struct rb_buf *out, const char *s)
{
    return rb__world_json_str(out, s, strlen(s));
}

enum rb_err rb_world_entry_json(const struct rb_world_entry *e, struct rb_buf *out)
{
    size_t len0 = out->len;
    enum rb_err rc;

    rc = rb__world_printf(
        out, "{\"seq\":%llu,\"start_ns\":%lld,\"end_ns\":%lld,\"method\":",
        (unsigned long long)e->seq, (long long)e->start_ns, (long long)e->end_ns);
    if (rc == RB_OK)
        rc = json_str(out, e->method);
    if (rc == RB_OK)
        rc = rb__world_lit(out, ",\"route\":");
    if (rc == RB_OK)
        rc = json_str(out, e->route);
    if (rc == RB_OK)
        rc =
            rb__world_printf(out, ",\"status\":%d,\"completed\":%s,\"fault\":", e->status,
                             e->completed ? "true" : "false");
    if (rc == RB_OK)
        rc = e->fault[0] ? rb__world_printf(out, "\"%s\"", e->fault)
                         : rb__world_lit(out, "null");
    if (rc == RB_OK)
        rc = rb__world_printf(out, ",\"fault_id\":%d,\"hash\":", e->fault_id);
    if (rc == RB_OK)
        rc = e->hash[0] ? rb__world_printf(out, "\"%s\"", e->hash)
                        : rb__world_lit(out, "null");
    if (rc == RB_OK)
        rc = rb__world_printf(
            out, ",\"repeat\":%s,\"repeat_of\":", e->repeat_of ? "true" : "false");
    if (rc == RB_OK)
        rc = e->repeat_of
                 ? rb__world_printf(out, "%llu", (unsigned long long)e->repeat_of)
                 : rb__world_lit(out, "null");
    if (rc == RB_OK)
        rc =
            rb__world_printf(out,
                             ",\"turn\":%d,\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                             "\"tool\":",
                             e->turn, e->prompt_tokens, e->completion_tokens);
    if (rc == RB_OK)
        rc = e->tool[0] ? json_str(out, e->tool) : rb__world_lit(out, "null");
    if (rc == RB_OK)
        rc = rb__world_printf(out, ",\"effect\":%s,\"replayed\":%s,\"response_hash\":",
                              e->effect ? "true" : "false",
                              e->replayed ? "true" : "false");
    if (rc == RB_OK)
        rc = e->response_hash[0] ? rb__world_printf(out, "\"%s\"}\n", e->response_hash)
                                 : rb__world_lit(out, "null}\n");
    if (rc != RB_OK) {
        out->len = len0;
        if (out->data)
            out->data[len0] = '\0';
    }
    return rc;
}

/* Replaces the final "}\n" of a line with the bodies and "}\n". */
static enum rb_err add_bodies(struct rb_buf *line, const struct rb_buf *request,
                              const struct rb_buf *response)
{
    enum rb_err rc;

    line->len -= 2;
    rc = rb__world_lit(line, ",\"request_body\":");
    if (rc == RB_OK)
        rc = rb__world_json_text(line, request ? request->data : NULL,
                                 request ? request->len : 0);
    if (rc == RB_OK)
        rc = rb__world_lit(line, ",\"response_body\":");
    if (rc == RB_OK)
        rc = response && response->len
                 ? rb__world_json_text(line, response->data, response->len)
                 : rb__world_lit(line, "null");
    if (rc == RB_OK)
        rc = rb__world_lit(line, "}\n");
    return rc;
}

/* The digest of one message: the first 16 hex digits of the SHA-256 of its
 * canonical JSON. */
#define MSG_DIGEST_LEN 16

/* Replaces the final "}\n" of a chat request's line with its model and the
 * digest of each message, ["role", "digest"], then "}\n". Leaves the line as
 * it was when the body is not a chat request it can read, or out of memory. */
static void add_conversation(struct rb_buf *line, const struct rb_buf *request)
{
    json_t *req, *msgs, *m;
    const char *model, *role;
    char hex[RB_HASH_HEX_LEN + 1];
    size_t len0 = line->len, i;
    enum rb_err rc = RB_OK;

    if (!request || !request->len)
        return;
    req = json_loadb((const char *)request->data, request->len, 0, NULL);
    msgs = json_object_get(req, "messages");
    model = json_string_value(json_object_get(req, "model"));
    if (!json_is_array(msgs) || !model)
        goto out;
    line->len -= 2;
    rc = rb__world_lit(line, ",\"model\":");
    if (rc == RB_OK)
        rc = json_str(line, model);
    if (rc == RB_OK)
        rc = rb__world_lit(line, ",\"messages\":[");
    json_array_foreach(msgs, i, m)
    {
        if (rc != RB_OK)
            break;
        role = json_string_value(json_object_get(m, "role"));
        rc = rb__world_hash_json(m, hex);
        if (rc == RB_OK)
            rc = rb__world_lit(line, i ? ",[" : "[");
        if (rc == RB_OK)
            rc = json_str(line, role ? role : "");
        if (rc == RB_OK)
            rc = rb__world_printf(line, ",\"%.*s\"]", MSG_DIGEST_LEN, hex);
    }
    if (rc == RB_OK)
        rc = rb__world_lit(line, "]}\n");
    if (rc != RB_OK) { /* out of memory: the line as it was */
        memcpy(line->data + len0 - 2, "}\n", 2);
        line->len = len0;
        line->data[len0] = '\0';
    }
out:
    json_decref(req);
}

void rb__world_journal_end(struct rb_world *w, size_t idx, int status, int completed,
                           const struct rb_buf *request, const struct rb_buf *response)
{
    struct rb__world_journal *j = &w->journal;
    struct rb_world_entry *e;
    struct rb_buf line;

    if (idx >= j->len)
        return;
    e = &j->entries[idx];
    e->end_ns = rb__world_now_ns();
    e->status = status;
    e->completed = completed;
    if (!j->file || j->file_error)
        return;
    rb_buf_init(&line);
    if (rb_world_entry_json(e, &line) != RB_OK)
        goto out;
    if (strncmp(e->route, "/v1/chat/completions", 20) == 0)
        add_conversation(&line, request);
    if ((!w->cfg.journal_bodies || add_bodies(&line, request, response) == RB_OK) &&
        (fwrite(line.data, 1, line.len, j->file) != line.len || fflush(j->file) != 0))
        j->file_error = errno ? errno : EIO;
out:
    rb_buf_release(&line);
}

size_t rb_world_journal_count(struct rb_world *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->journal.len;
    pthread_mutex_unlock(&w->lock);
    return n;
}

size_t rb_world_journal_read(struct rb_world *w, size_t from, struct rb_world_entry *out,
                             size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&w->lock);
    if (from < w->journal.len) {
        n = w->journal.len - from;
        if (n > max)
            n = max;
        memcpy(out, w->journal.entries + from, n * sizeof(*out));
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}
