/* evpipe-tap: reads settings and filters, prints the bus's traffic. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/service.h"
#include "tap.h"

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    const char *partitions; /* --partition N[,M...] */
    const char *event_type; /* --event-type TYPE */
    const char *count;      /* --count N */
    const char *seconds;    /* --seconds S */
    bool heartbeats;        /* --heartbeats */
    bool stats;             /* --stats */
} s_args_t;

static const evp_option_t s_options[] = {
    {"partition", "N[,M...]", offsetof(s_args_t, partitions), "only these partitions"},
    {"event-type", "TYPE", offsetof(s_args_t, event_type), "only events of this type (view or purchase)"},
    {"count", "N", offsetof(s_args_t, count), "exit after N events"},
    {"seconds", "S", offsetof(s_args_t, seconds), "exit after S seconds"},
    {"heartbeats", NULL, offsetof(s_args_t, heartbeats), "print publishers' heartbeats too"},
    {"stats", NULL, offsetof(s_args_t, stats), "one line a second: events/s by type and partition, and lag"},
    {NULL, NULL, 0, NULL},
};

int main(int argc, char **argv)
{
    s_args_t a = {0};
    const evp_program_t prog = {
        .program = "evpipe-tap",
        .service = EVP_SVC_TAP,
        .summary = "Prints the bus's traffic as JSON lines (for jq), from the lossy tap endpoint:\n"
                   "a slow or stopped tap never slows the writers.",
        .options = s_options,
        .values = &a,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    tap_options_t opt = {
        .partitions = a.partitions,
        .event_type = a.event_type,
        .heartbeats = a.heartbeats,
        .stats = a.stats,
    };
    char *end = NULL;
    if (a.count && ((opt.count = strtoll(a.count, &end, 10)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --count %s: a positive whole number was expected\n", a.count);
        return 1;
    }
    double seconds = 0;
    if (a.seconds && ((seconds = strtod(a.seconds, &end)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --seconds %s: a positive number was expected\n", a.seconds);
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
