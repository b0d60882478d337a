/*
 * fuzz_report.c - libFuzzer target for the report writers
 * (reports/reports.h): any bytes that parse as JSON are checked as a
 * results document and, when they pass, written as JUnit XML, Markdown and
 * HTML; each must give a report or a clear error without crashing, leaking
 * or reading out of bounds. Built and run by scripts/fuzz.sh; seed corpus:
 * corpus/report/ (from tests/fixtures/results/).
 */
#include "reports/reports.h"

#include <stddef.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static FILE *sink;
    json_t *doc;

    if (!sink)
        sink = fopen("/dev/null", "w");
    if (!sink)
        return 0;
    doc = json_loadb((const char *)data, size, 0, NULL);
    if (!doc)
        return 0;
    if (rb_report_check(doc, NULL) == RB_OK) {
        rb_report_write(doc, RB_REPORT_JUNIT, sink, NULL);
        rb_report_write(doc, RB_REPORT_MD, sink, NULL);
        rb_report_write(doc, RB_REPORT_HTML, sink, NULL);
    }
    json_decref(doc);
    return 0;
}
