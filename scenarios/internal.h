/*
 * internal.h - what the files of rb_scenarios share: the position index,
 * which maps a value's JSON path ("/faults/0/at/step") to where its key and
 * its value start in the text, so that a problem found in the parsed JSON is
 * reported at its line and column.
 */
#ifndef REBOUND_SCENARIOS_INTERNAL_H
#define REBOUND_SCENARIOS_INTERNAL_H

#include <rebound/rebound.h>

#include <stddef.h>

#define RB__PATH_MAX 1024 /* bytes of a JSON path; deeper values use an ancestor */

/* Where one value is. For an array element, the key is the value. */
struct rb__pos {
    char *path;            /* owned; "" for the root, "/key/0/key" below it */
    int line, col;         /* the value's first character, 1-based */
    int key_line, key_col; /* its key's opening quote */
};

struct rb__pos_index {
    struct rb__pos *items; /* owned, in text order */
    size_t count, cap;
};

/*
 * Scans `len` bytes of JSON text that jansson has accepted and records the
 * position of every value. Returns RB_OK or RB_ENOMEM (the index is then
 * released). Columns count characters (UTF-8 code points), from 1.
 */
enum rb_err rb__pos_index_build(const char *text, size_t len, struct rb__pos_index *idx);

/* The entry for `path`, or of its nearest ancestor that has one, or NULL. */
const struct rb__pos *rb__pos_find(const struct rb__pos_index *idx, const char *path);

void rb__pos_index_release(struct rb__pos_index *idx);

/* Appends "/" and `key` to the path in buf (of `size`, holding *len bytes),
 * escaping '~' as "~0" and '/' as "~1". Returns -1, buf unaltered, when it
 * does not fit. */
int rb__path_push(char *buf, size_t size, size_t *len, const char *key);

#endif
