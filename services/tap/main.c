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

static s_args_t s_args; /* written by the loader, from s_options */

static const evp_program_t s_program = {
    .program = "evpipe-tap",
    .service = EVP_SVC_TAP,
    .summary = "Prints the bus's traffic as JSON lines (for jq), from the lossy tap endpoint:\n"
               "a slow or stopped tap never slows the writers.",
    .options = s_options,
    .values = &s_args,
};

static int s_run(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs)
{
    (void)args, (void)nargs;
    tap_options_t opt = {
        .partitions = s_args.partitions,
        .event_type = s_args.event_type,
        .heartbeats = s_args.heartbeats,
        .stats = s_args.stats,
    };
    char *end = NULL;
    if (s_args.count && ((opt.count = strtoll(s_args.count, &end, 10)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --count %s: a positive whole number was expected\n", s_args.count);
        return 1;
    }
    double seconds = 0;
    if (s_args.seconds && ((seconds = strtod(s_args.seconds, &end)) <= 0 || *end)) {
        fprintf(stderr, "evpipe-tap: --seconds %s: a positive number was expected\n", s_args.seconds);
        return 1;
    }
    opt.run_ms = (int64_t)(seconds * 1000);
    char why[EVP_WHY_MAX] = "";
    tap_t *tap = tap_new(cfg, &opt, stdout, why, sizeof why);
    if (!tap)
        return evp_service_fail(prog, why);
    int rc = tap_run(tap);
    tap_destroy(&tap);
    return rc;
}

int main(int argc, char **argv)
{
    return evp_service_main(&s_program, argc, argv, 0, s_run);
}
