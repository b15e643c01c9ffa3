/* evpipe-generator: reads settings, makes fake shop events, archives and
 * publishes them until SIGTERM/SIGINT or --count events. */
#include <stddef.h>

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

static s_args_t s_args; /* written by the loader, from s_options */

static const evp_program_t s_program = {
    .program = "evpipe-generator",
    .service = EVP_SVC_GENERATOR,
    .summary = "Makes fake shop events, appends each to the CSV archive in ARCHIVE_DIR (the\n"
               "write-ahead log), then publishes it on the bus at BUS_PUBLISH_ENDPOINT.",
    .options = s_options,
    .values = &s_args,
};

static int s_run(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs)
{
    (void)args, (void)nargs;
    char why[EVP_WHY_MAX] = "";
    uint64_t count = 0;
    if (s_args.count && generator_parse_count(s_args.count, &count, why, sizeof why) != 0)
        return evp_service_fail(prog, why);
    /* PARTITIONS must be the deployment's (docs/operations.md). */
    int rc = evp_deploy_check(cfg, prog->program, EVP_DEPLOY_WAIT_MS);
    if (rc != 0)
        return rc;
    generator_t *gen = generator_new(cfg, count, why, sizeof why);
    if (!gen)
        return evp_service_fail(prog, why);
    rc = generator_run(gen);
    generator_destroy(&gen);
    return rc;
}

int main(int argc, char **argv)
{
    return evp_service_main(&s_program, argc, argv, 0, s_run);
}
