/* The table of fuzz targets (see fuzz_targets.h). */
#include "fuzz_targets.h"

#include <string.h>

const fuzz_target_t fuzz_targets[] = {
    {"wire", fuzz_wire_run},
    {"csv", fuzz_csv_run},
    {"config", fuzz_config_run},
    {"bus", fuzz_bus_run},
    {NULL, NULL},
};

const fuzz_target_t *fuzz_target_find(const char *name)
{
    for (const fuzz_target_t *t = fuzz_targets; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}
