/* evpipe-writer: reads settings, runs the writer until SIGTERM/SIGINT (or
 * only applies the database migrations with --migrate-only, partitions the
 * events table with --partition-events, judges the server's settings with
 * --check-db). */
#include <stdbool.h>
#include <stddef.h>

#include "evpipe/service.h"
#include "writer.h"

/* How long the one-shot commands wait for PostgreSQL. */
#define MIGRATE_ONLY_WAIT_MS 30000

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    bool migrate_only;     /* --migrate-only */
    bool partition_events; /* --partition-events */
    bool check_db;         /* --check-db */
} s_args_t;

static const evp_option_t s_options[] = {
    {"migrate-only", NULL, offsetof(s_args_t, migrate_only), "apply the database migrations and exit"},
    {"partition-events", NULL, offsetof(s_args_t, partition_events),
     "partition the events table by EVENTS_PARTITION_INTERVAL and exit"},
    {"check-db", NULL, offsetof(s_args_t, check_db),
     "print the server settings that will hurt, with advice; exit 1 if any"},
    {NULL, NULL, 0, NULL},
};

static s_args_t s_args; /* written by the loader, from s_options */

static const evp_program_t s_program = {
    .program = "evpipe-writer",
    .service = EVP_SVC_WRITER,
    .summary = "The evpipe writer: takes events from the bus in order per (source, partition), asks\n"
               "ingest to repair holes, and commits them to PostgreSQL in batches, exactly once.",
    .options = s_options,
    .values = &s_args,
};

static int s_run(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs)
{
    (void)args, (void)nargs;
    char why[EVP_WHY_MAX] = "";
    writer_t *writer = writer_new(cfg, why, sizeof why);
    if (!writer)
        return evp_service_fail(prog, why);
    int rc;
    if (s_args.migrate_only)
        rc = writer_migrate_only(writer, MIGRATE_ONLY_WAIT_MS);
    else if (s_args.partition_events)
        rc = writer_partition_events(writer, MIGRATE_ONLY_WAIT_MS);
    else if (s_args.check_db)
        rc = writer_check_db(writer, MIGRATE_ONLY_WAIT_MS);
    else
        rc = writer_run(writer);
    writer_destroy(&writer);
    return rc;
}

int main(int argc, char **argv)
{
    return evp_service_main(&s_program, argc, argv, 0, s_run);
}
