/* evpipe-ingest: replays CSV files (the archive, or the old generator's
 * files) onto the bus, watches a folder for new ones, and answers repairs. */
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/config.h"
#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "ingest.h"

/* A number of seconds from an option, or def when absent; -2 when invalid. */
static double s_seconds(const char *v, double def)
{
    if (!v)
        return def;
    char *end;
    double d = strtod(v, &end);
    return (*v && !*end && d >= 0) ? d : -2;
}

int main(int argc, char **argv)
{
    evp_option_t options[] = {
        {"force", NULL, "replay files the ledger already has", NULL},
        {"wait", NULL, "after publishing, wait until the writers have committed it", NULL},
        {"wait-timeout", "SECONDS", "with --wait: give up (exit 2) after this long [default: none]", NULL},
        {"bus-timeout", "SECONDS", "how long to wait for the bus before giving up (exit 1) [default: 30]", NULL},
        {NULL, NULL, NULL, NULL},
    };
    evp_program_t prog = {"evpipe-ingest", EVP_SVC_INGEST,
                          "Replays CSV files onto the bus, watches a folder for new ones, answers repairs.",
                          "[FILE|DIR...]", options};
    evp_config_t cfg;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int nargs = 0;
    int rc = args ? evp_config_load(&cfg, &prog, argc, argv, args, &nargs) : -1;
    ingest_opts_t opts = {args, nargs, options[0].value != NULL, options[1].value != NULL,
                          s_seconds(options[2].value, -1), s_seconds(options[3].value, 30)};
    if (rc == 0 && (opts.wait_timeout_s < -1 || opts.bus_timeout_s < 0)) {
        fprintf(stderr, "evpipe-ingest: --wait-timeout and --bus-timeout take a number of seconds\n");
        rc = -1;
    }
    if (rc != 0) {
        free(args);
        return rc > 0 ? 0 : 1;
    }
    evp_log_init("ingest", cfg.log_level);
    evp_signals_install();
    char why[512];
    ingest_t *ingest = ingest_new(&cfg, &opts, why, sizeof why);
    if (!ingest) {
        evp_error("cannot start", "error=\"%s\"", why);
        free(args);
        return 1;
    }
    rc = ingest_run(ingest);
    ingest_destroy(&ingest);
    free(args);
    return rc;
}
