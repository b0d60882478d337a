/*
 * control.c - the world's control endpoints under /_world/, for a harness
 * that drives a standalone `rebound world` over HTTP: status, the journal as
 * JSON lines, effect counts, and adding, listing and healing faults. They are
 * never faulted nor journaled.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static enum rb_err reply_new(struct rb__world_reply *rep, int status, json_t *j)
{
    enum rb_err rc;

    if (!j)
        return RB_ENOMEM;
    rc = rb__world_reply_json(rep, status, j);
    json_decref(j);
    return rc;
}

static enum rb_err journal_lines(struct rb_world *w, const char *from_s,
                                 struct rb__world_reply *rep)
{
    char *end = NULL;
    unsigned long long from = 0;
    size_t i;
    enum rb_err rc = RB_OK;

    if (from_s && *from_s) {
        from = strtoull(from_s, &end, 10);
        if (*end)
            return rb__world_reply_error(rep, 400, "'from' must be a number",
                                         "invalid_request_error", "from", NULL);
    }
    rep->body.len = 0;
    pthread_mutex_lock(&w->lock);
    for (i = (size_t)from; rc == RB_OK && i < w->journal.len; i++)
        rc = rb_world_entry_json(&w->journal.entries[i], &rep->body);
    pthread_mutex_unlock(&w->lock);
    if (rc == RB_OK && !rep->body.data)
        rc = rb_buf_append(&rep->body, "", 0);
    rep->status = 200;
    rep->content_type = "application/x-ndjson";
    return rc;
}

static enum rb_err add_faults(struct rb_world *w, const struct rb_buf *body,
                              struct rb__world_reply *rep)
{
    struct rb_error err;
    int ids[256];
    size_t n = 0, i;
    json_t *arr;
    enum rb_err rc;

    rb_error_init(&err);
    rc = rb__world_faults_add_json(w, body->data ? (const char *)body->data : "", 1, ids,
                                   sizeof(ids) / sizeof(ids[0]), &n, &err);
    if (rc == RB_EINVAL)
        return rb__world_reply_error(rep, 400, err.message, "invalid_request_error", NULL,
                                     NULL);
    if (rc != RB_OK)
        return rc;
    arr = json_array();
    for (i = 0; arr && i < n && i < sizeof(ids) / sizeof(ids[0]); i++)
        if (json_array_append_new(arr, json_integer(ids[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    return reply_new(rep, 200, arr ? json_pack("{s:o}", "ids", arr) : NULL);
}

static enum rb_err heal(struct rb_world *w, const char *id_s, struct rb__world_reply *rep)
{
    char *end = NULL;
    long id = 0;

    if (id_s) {
        id = strtol(id_s, &end, 10);
        if (*end || id <= 0 || id > 1000000000)
            return rb__world_reply_error(rep, 400, "fault id must be a positive number",
                                         "invalid_request_error", NULL, NULL);
    }
    if (rb_world_fault_heal(w, (int)id) != RB_OK) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no active fault with id '%ld'", id);
        return rb__world_reply_error(rep, 404, msg, "invalid_request_error", NULL,
                                     "fault_not_found");
    }
    return reply_new(rep, 200, json_pack("{s:b}", "healed", 1));
}

enum rb_err rb__world_control(struct rb_world *w, const char *route, const char *method,
                              const char *query_from, const struct rb_buf *body,
                              struct rb__world_reply *rep)
{
    int get = strcmp(method, "GET") == 0;
    json_t *j;
    enum rb_err rc;

    if (get && strcmp(route, "/_world/status") == 0) {
        pthread_mutex_lock(&w->lock);
        j = json_pack("{s:i, s:I, s:i, s:I, s:b, s:s?, s:i}", "port", w->port, "seed",
                      (json_int_t)w->cfg.seed, "turns", w->cfg.turns, "requests",
                      (json_int_t)w->journal.len, "listening", w->listen_fd >= 0,
                      "journal", w->cfg.journal_path, "journal_errno",
                      w->journal.file_error);
        pthread_mutex_unlock(&w->lock);
        return reply_new(rep, 200, j);
    }
    if (get && strcmp(route, "/_world/journal") == 0)
        return journal_lines(w, query_from, rep);
    if (get && strcmp(route, "/_world/effects") == 0) {
        pthread_mutex_lock(&w->lock);
        j = rb__world_effects_json(w);
        pthread_mutex_unlock(&w->lock);
        return reply_new(rep, 200, j);
    }
    if (strcmp(route, "/_world/faults") == 0) {
        if (get) {
            pthread_mutex_lock(&w->lock);
            j = rb__world_faults_json(w);
            pthread_mutex_unlock(&w->lock);
            return reply_new(rep, 200, j ? json_pack("{s:o}", "faults", j) : NULL);
        }
        if (strcmp(method, "POST") == 0)
            return add_faults(w, body, rep);
        if (strcmp(method, "DELETE") == 0)
            return heal(w, NULL, rep);
    }
    if (strncmp(route, "/_world/faults/", 15) == 0 && strcmp(method, "DELETE") == 0)
        return heal(w, route + 15, rep);
    rc = rb__world_reply_error(rep, 404,
                               "unknown control endpoint (GET /_world/status, "
                               "/_world/journal, /_world/effects, /_world/faults; POST "
                               "/_world/faults; DELETE /_world/faults[/ID])",
                               "invalid_request_error", NULL, "unknown_url");
    return rc;
}
