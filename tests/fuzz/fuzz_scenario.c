/*
 * fuzz_scenario.c - libFuzzer target for the scenario loader (rb_scenarios):
 * any bytes go through rb_scenario_parse(), which must report problems (or
 * load a scenario) without crashing, leaking or reading out of bounds. A
 * workflow_file in the input is read relative to the current folder. Built and
 * run by scripts/fuzz.sh; seed corpus: corpus/scenario/ (from tests/cases/ and
 * scenarios/library/).
 */
#include "scenarios/scenario.h"

#include <stddef.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct rb_scenario_diags diags;
    struct rb_scenario *s = NULL;

    rb_scenario_diags_init(&diags);
    if (rb_scenario_parse((const char *)data, size, "fuzz.json", &s, &diags, NULL) ==
        RB_OK)
        rb_scenario_free(s);
    rb_scenario_diags_release(&diags);
    return 0;
}
