/* evpipe-writer: reads settings, runs the writer until SIGTERM/SIGINT (or
 * only applies the database migrations with --migrate-only, partitions the
 * events table with --partition-events, judges the server's settings with
 * --check-db). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

int main(int argc, char **argv)
{
    s_args_t a = {0};
    const evp_program_t prog = {
        .program = "evpipe-writer",
        .service = EVP_SVC_WRITER,
        .summary = "The evpipe writer: takes events from the bus in order per (source, partition), asks\n"
                   "ingest to repair holes, and commits them to PostgreSQL in batches, exactly once.",
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
    writer_t *writer = writer_new(&cfg, why, sizeof why);
    if (!writer) {
        fprintf(stderr, "evpipe-writer: %s\n", why);
        return 1;
    }
    if (a.migrate_only)
        rc = writer_migrate_only(writer, MIGRATE_ONLY_WAIT_MS);
    else if (a.partition_events)
        rc = writer_partition_events(writer, MIGRATE_ONLY_WAIT_MS);
    else if (a.check_db)
        rc = writer_check_db(writer, MIGRATE_ONLY_WAIT_MS);
    else
        rc = writer_run(writer);
    writer_destroy(&writer);
    return rc;
}
