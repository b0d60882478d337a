/*
 * fuzz_world.c - libFuzzer target for the world's parsers of untrusted input:
 * the bodies of HTTP requests as the server hands them on - the chat
 * completion handler (request JSON, tools' schemas, streaming), the tools
 * (arguments, idempotency keys) - plus fault JSON and the JSON text of raw
 * bytes. The first byte picks the parser, the rest is its input (see
 * corpus/world/). Built and run by scripts/fuzz.sh.
 */
#include "harness/world/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rb_world *world(void)
{
    static struct rb_world *w;
    struct rb_world_config cfg;

    if (!w) {
        rb_world_config_init(&cfg);
        cfg.turns = 2;
        if (rb_world_start(&cfg, &w, NULL) != RB_OK)
            abort();
    }
    return w;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *const tools[] = {"search", "fetch", "send_email", "write_record",
                                        "nope"};
    struct rb_world *w = world();
    struct rb__world_reply rep;
    struct rb_buf body;
    char *text;

    if (size < 1)
        return 0;
    rb_buf_init(&body);
    rb_buf_append(&body, data + 1, size - 1);
    rb__world_reply_init(&rep);
    switch (data[0] % 5) {
    case 0:
    case 1:
        rb__world_llm(w, &body, data[0] & 0x80, &rep);
        break;
    case 2:
        /* the key (from the body's last bytes) is not UTF-8-checked by HTTP either */
        rb__world_tool(w, tools[(data[0] >> 3) % 5], &body, (data[0] & 0x40) ? "k" : NULL,
                       0, 1, &rep);
        break;
    case 3: {
        json_t *j = json_loadb((const char *)body.data, body.len, 0, NULL);
        struct rb_world_fault *fs = NULL;
        size_t n = 0;
        if (j && rb__world_faults_parse(j, &fs, &n, NULL) == RB_OK)
            free(fs);
        json_decref(j);
        break;
    }
    default:
        text = malloc(size);
        if (text) {
            memcpy(text, data + 1, size - 1);
            text[size - 1] = '\0';
            rb__world_json_text(&rep.body, text, size - 1);
            free(text);
        }
    }
    /* whatever came in, an answer is valid JSON or SSE text */
    if (rep.body.len && !rep.sse) {
        json_t *j = json_loadb((const char *)rep.body.data, rep.body.len,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!j)
            abort();
        json_decref(j);
    }
    rb__world_reply_release(&rep);
    rb_buf_release(&body);
    return 0;
}
