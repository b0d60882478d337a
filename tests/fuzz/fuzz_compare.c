/*
 * fuzz_compare.c - libFuzzer target for `rebound compare` (reports/compare.h):
 * any bytes that parse as JSON are compared as a results file with a fixed
 * one, both ways, and with themselves, and every comparison is rendered as
 * text and Markdown; each must give a comparison or a clear error without
 * crashing, leaking or reading out of bounds. Built and run by
 * scripts/fuzz.sh; seed corpus: corpus/compare/ (from
 * tests/fixtures/compare/).
 */
#include "reports/compare.h"

#include <stddef.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char fixed[] =
    "{\"schema\": 1, \"suite\": {\"complete\": true}, \"trials\": ["
    "{\"scenario\": \"k|*\", \"seed\": 1, \"trial\": \"faulted\", \"outcome\": "
    "\"recovered\", \"faults\": [{\"recovery_ms\": 30}, {\"recovery_ms\": null}], "
    "\"recovery_ms\": 30, \"steps_redone\": 1, \"verdict\": \"pass\"},"
    "{\"scenario\": \"k|*\", \"seed\": 2, \"outcome\": \"hung\", \"verdict\": \"fail\"},"
    "{\"scenario\": \"other\", \"seed\": \"x\", \"recovery_ms\": 1000}]}";

static void one(const json_t *a, const json_t *b)
{
    struct rb_compare_opts opts;
    struct rb_compare *cmp = NULL;
    struct rb_buf out;

    rb_compare_opts_init(&opts);
    if (rb_compare_json(a, "base", b, "new", &opts, &cmp, NULL) != RB_OK)
        return;
    rb_buf_init(&out);
    rb_compare_render(cmp, RB_COMPARE_TEXT, &out, NULL);
    rb_compare_render(cmp, RB_COMPARE_MD, &out, NULL);
    rb_buf_release(&out);
    rb_compare_free(cmp);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    json_t *doc, *base;

    doc = json_loadb((const char *)data, size, 0, NULL);
    if (!doc)
        return 0;
    base = json_loads(fixed, 0, NULL);
    if (base) {
        one(base, doc);
        one(doc, base);
        one(doc, doc);
        json_decref(base);
    }
    json_decref(doc);
    return 0;
}
