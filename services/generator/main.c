/* evpipe-generator: reads settings, makes fake shop events, archives and
 * publishes them until SIGTERM/SIGINT or --count events. */
#include <stdio.h>

#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "generator.h"

int main(int argc, char **argv)
{
    static evp_option_t options[] = {
        {"count", "N", "stop after N events (then sync, publish, send heartbeats and exit 0)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    static const evp_program_t prog = {
        .program = "evpipe-generator",
        .service = EVP_SVC_GENERATOR,
        .summary = "Makes fake shop events, appends each to the CSV archive in ARCHIVE_DIR (the\n"
                   "write-ahead log), then publishes it on the bus at BUS_PUBLISH_ENDPOINT.",
        .options = options,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_config_load(&cfg, &prog, argc, argv, args, &nargs);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    char why[600] = "";
    uint64_t count = 0;
    if (nargs > 0 || (options[0].value && generator_parse_count(options[0].value, &count, why, sizeof why) != 0)) {
        fprintf(stderr, "evpipe-generator: %s\n", nargs > 0 ? "takes no arguments (see --help)" : why);
        return 1;
    }
    evp_log_init("generator", cfg.log_level);
    evp_signals_install();
    generator_t *gen = generator_new(&cfg, count, why, sizeof why);
    if (!gen) {
        fprintf(stderr, "evpipe-generator: %s\n", why);
        return 1;
    }
    rc = generator_run(gen);
    generator_destroy(&gen);
    return rc;
}
