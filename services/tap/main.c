/* evpipe-tap: reads settings and filters, prints the bus's traffic. */
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/log.h"
#include "evpipe/sig.h"
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
    int rc = evp_config_load(&cfg, &prog, argc, argv, args, &nargs);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    tap_options_t opt = {
        .partitions = options[0].value,
        .event_type = options[1].value,
        .count = options[2].value ? atoll(options[2].value) : 0,
        .run_ms = options[3].value ? (int64_t)(atof(options[3].value) * 1000) : 0,
        .heartbeats = options[4].value != NULL,
        .stats = options[5].value != NULL,
    };
    if (nargs > 0 || opt.count < 0 || opt.run_ms < 0) {
        fprintf(stderr, "evpipe-tap: bad arguments (see --help)\n");
        return 1;
    }
    evp_log_init("tap", cfg.log_level);
    evp_signals_install();
    char why[512] = "";
    tap_t *tap = tap_new(&cfg, &opt, stdout, why, sizeof why);
    if (!tap) {
        fprintf(stderr, "evpipe-tap: %s\n", why);
        return 1;
    }
    rc = tap_run(tap);
    tap_destroy(&tap);
    return rc;
}
