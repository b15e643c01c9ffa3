/* evpipe-ingest: replays CSV files (the archive, or the old generator's
 * files) onto the bus, watches a folder for new ones, and answers repairs. */
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/deploy.h"
#include "evpipe/log.h"
#include "evpipe/service.h"
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
        {"progress", NULL, "draw a progress bar on stderr even when it is not a terminal", NULL},
        {"no-progress", NULL, "no bar: a progress log line every 5 s even on a terminal", NULL},
        {NULL, NULL, NULL, NULL},
    };
    evp_program_t prog = {"evpipe-ingest", EVP_SVC_INGEST,
                          "Replays CSV files onto the bus, watches a folder for new ones, answers repairs.",
                          "[FILE|DIR...]", options};
    evp_config_t cfg;
    char *args[argc + 1];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, -1);
    if (rc >= 0)
        return rc;
    ingest_opts_t opts = {args, nargs, options[0].value != NULL, options[1].value != NULL,
                          s_seconds(options[2].value, -1), s_seconds(options[3].value, 30),
                          options[4].value ? INGEST_PROGRESS_BAR
                                           : options[5].value ? INGEST_PROGRESS_LOG : INGEST_PROGRESS_AUTO};
    const char *bad = opts.wait_timeout_s < -1 || opts.bus_timeout_s < 0
                          ? "--wait-timeout and --bus-timeout take a number of seconds"
                      : options[4].value && options[5].value ? "--progress and --no-progress contradict each other"
                                                             : NULL;
    if (bad) {
        fprintf(stderr, "evpipe-ingest: %s\n", bad);
        return 1;
    }
    /* PARTITIONS must be the deployment's (docs/operations.md). */
    rc = evp_deploy_check(&cfg, prog.program, EVP_DEPLOY_WAIT_MS);
    if (rc != 0)
        return rc;
    char why[512];
    ingest_t *ingest = ingest_new(&cfg, &opts, why, sizeof why);
    if (!ingest) {
        evp_error("cannot start", "error=\"%s\"", why);
        return 1;
    }
    rc = ingest_run(ingest);
    ingest_destroy(&ingest);
    return rc;
}
