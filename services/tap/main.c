/* evpipe-tap: reads settings and filters, prints the bus's traffic. */
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/service.h"
#include "tap.h"

int main(int argc, char **argv)
{
    evp_option_t options[] = {
        {"partition", "N[,M...]", "only these partitions", NULL},
        {"event-type", "TYPE", "only events of this type (view or purchase)", NULL},
        {"count", "N", "exit after N events", NULL},
        {"seconds", "S", "exit after S seconds", NULL},
        {"heartbeats", NULL, "print publishers' heartbeats too", NULL},
        {"stats", NULL, "one line a second: events/s by type and partition, and lag", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const evp_program_t prog = {
        .program = "evpipe-tap",
        .service = EVP_SVC_TAP,
        .summary = "Prints the bus's traffic as JSON lines (for jq), from the lossy tap endpoint:\n"
                   "a slow or stopped tap never slows the writers.",
        .options = options,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    tap_options_t opt = {
        .partitions = options[0].value,
        .event_type = options[1].value,
        .heartbeats = options[4].value != NULL,
        .stats = options[5].value != NULL,
    };
    char *end = NULL;
    if (options[2].value && ((opt.count = strtoll(options[2].value, &end, 10)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --count %s: a positive whole number was expected\n", options[2].value);
        return 1;
    }
    double seconds = 0;
    if (options[3].value && ((seconds = strtod(options[3].value, &end)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --seconds %s: a positive number was expected\n", options[3].value);
        return 1;
    }
    opt.run_ms = (int64_t)(seconds * 1000);
    char why[EVP_WHY_MAX] = "";
    tap_t *tap = tap_new(&cfg, &opt, stdout, why, sizeof why);
    if (!tap) {
        fprintf(stderr, "evpipe-tap: %s\n", why);
        return 1;
    }
    rc = tap_run(tap);
    tap_destroy(&tap);
    return rc;
}
