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

static s_args_t s_args; /* written by the loader, from s_options */

static const evp_program_t s_program = {
    "evpipe-ingest", EVP_SVC_INGEST, "Replays CSV files onto the bus, watches a folder for new ones, answers repairs.",
    "[FILE|DIR...]", s_options, &s_args};

static int s_run(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs)
{
    ingest_opts_t opts = {
        .paths = args,
        .npaths = nargs,
        .force = s_args.force,
        .wait = s_args.wait,
        .wait_timeout_s = s_seconds(s_args.wait_timeout, -1),
        .bus_timeout_s = s_seconds(s_args.bus_timeout, 30),
        .progress = s_args.progress      ? INGEST_PROGRESS_BAR
                    : s_args.no_progress ? INGEST_PROGRESS_LOG
                                         : INGEST_PROGRESS_AUTO,
    };
    const char *bad = opts.wait_timeout_s < -1 || opts.bus_timeout_s < 0
                          ? "--wait-timeout and --bus-timeout take a number of seconds"
                      : s_args.progress && s_args.no_progress ? "--progress and --no-progress contradict each other"
                                                              : NULL;
    if (bad)
        return evp_service_fail(prog, bad);
    /* PARTITIONS must be the deployment's (docs/operations.md). */
    int rc = evp_deploy_check(cfg, prog->program, EVP_DEPLOY_WAIT_MS);
    if (rc != 0)
        return rc;
    char why[EVP_WHY_MAX];
    ingest_t *ingest = ingest_new(cfg, &opts, why, sizeof why);
    if (!ingest) {
        evp_error("cannot start", "error=\"%s\"", why);
        return 1;
    }
    rc = ingest_run(ingest);
    ingest_destroy(&ingest);
    return rc;
}

int main(int argc, char **argv)
{
    return evp_service_main(&s_program, argc, argv, -1, s_run);
}
