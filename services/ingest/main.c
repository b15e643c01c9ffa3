/* evpipe-ingest: replays CSV files (the archive, or the old generator's
 * files) onto the bus, watches a folder for new ones, and answers repairs. */
#include <stdbool.h>
#include <stddef.h>
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

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    bool force;               /* --force */
    bool wait;                /* --wait */
    const char *wait_timeout; /* --wait-timeout SECONDS */
    const char *bus_timeout;  /* --bus-timeout SECONDS */
    bool progress;            /* --progress */
    bool no_progress;         /* --no-progress */
} s_args_t;

static const evp_option_t s_options[] = {
    {"force", NULL, offsetof(s_args_t, force), "replay files the ledger already has"},
    {"wait", NULL, offsetof(s_args_t, wait), "after publishing, wait until the writers have committed it"},
    {"wait-timeout", "SECONDS", offsetof(s_args_t, wait_timeout),
     "with --wait: give up (exit 2) after this long [default: none]"},
    {"bus-timeout", "SECONDS", offsetof(s_args_t, bus_timeout),
     "how long to wait for the bus before giving up (exit 1) [default: 30]"},
    {"progress", NULL, offsetof(s_args_t, progress), "draw a progress bar on stderr even when it is not a terminal"},
    {"no-progress", NULL, offsetof(s_args_t, no_progress), "no bar: a progress log line every 5 s even on a terminal"},
    {NULL, NULL, 0, NULL},
};

int main(int argc, char **argv)
{
    s_args_t a = {0};
    const evp_program_t prog = {"evpipe-ingest", EVP_SVC_INGEST,
                                "Replays CSV files onto the bus, watches a folder for new ones, answers repairs.",
                                "[FILE|DIR...]", s_options, &a};
    evp_config_t cfg;
    char *args[argc + 1];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, -1);
    if (rc >= 0)
        return rc;
    ingest_opts_t opts = {args, nargs, a.force, a.wait, s_seconds(a.wait_timeout, -1), s_seconds(a.bus_timeout, 30),
                          a.progress      ? INGEST_PROGRESS_BAR
                          : a.no_progress ? INGEST_PROGRESS_LOG
                                          : INGEST_PROGRESS_AUTO};
    const char *bad = opts.wait_timeout_s < -1 || opts.bus_timeout_s < 0
                          ? "--wait-timeout and --bus-timeout take a number of seconds"
                      : a.progress && a.no_progress ? "--progress and --no-progress contradict each other"
                                                    : NULL;
    if (bad) {
        fprintf(stderr, "evpipe-ingest: %s\n", bad);
        return 1;
    }
    /* PARTITIONS must be the deployment's (docs/operations.md). */
    rc = evp_deploy_check(&cfg, prog.program, EVP_DEPLOY_WAIT_MS);
    if (rc != 0)
        return rc;
    char why[EVP_WHY_MAX];
    ingest_t *ingest = ingest_new(&cfg, &opts, why, sizeof why);
    if (!ingest) {
        evp_error("cannot start", "error=\"%s\"", why);
        return 1;
    }
    rc = ingest_run(ingest);
    ingest_destroy(&ingest);
    return rc;
}
