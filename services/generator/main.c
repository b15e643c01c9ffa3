/* evpipe-generator: reads settings, makes fake shop events, archives and
 * publishes them until SIGTERM/SIGINT or --count events. */
#include <stddef.h>
#include <stdio.h>

#include "evpipe/deploy.h"
#include "evpipe/service.h"
#include "generator.h"

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    const char *count; /* --count N */
} s_args_t;

static const evp_option_t s_options[] = {
    {"count", "N", offsetof(s_args_t, count), "stop after N events (then sync, publish, send heartbeats and exit 0)"},
    {NULL, NULL, 0, NULL},
};

int main(int argc, char **argv)
{
    s_args_t a = {0};
    const evp_program_t prog = {
        .program = "evpipe-generator",
        .service = EVP_SVC_GENERATOR,
        .summary = "Makes fake shop events, appends each to the CSV archive in ARCHIVE_DIR (the\n"
                   "write-ahead log), then publishes it on the bus at BUS_PUBLISH_ENDPOINT.",
        .options = s_options,
        .values = &a,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    char why[EVP_WHY_MAX] = "";
    uint64_t count = 0;
    if (a.count && generator_parse_count(a.count, &count, why, sizeof why) != 0) {
        fprintf(stderr, "evpipe-generator: %s\n", why);
        return 1;
    }
    /* PARTITIONS must be the deployment's (docs/operations.md). */
    rc = evp_deploy_check(&cfg, prog.program, EVP_DEPLOY_WAIT_MS);
    if (rc != 0)
        return rc;
    generator_t *gen = generator_new(&cfg, count, why, sizeof why);
    if (!gen) {
        fprintf(stderr, "evpipe-generator: %s\n", why);
        return 1;
    }
    rc = generator_run(gen);
    generator_destroy(&gen);
    return rc;
}
