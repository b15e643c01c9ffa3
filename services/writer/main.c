/* evpipe-writer: reads settings, runs the writer until SIGTERM/SIGINT (or
 * only applies the database migrations with --migrate-only, partitions the
 * events table with --partition-events, judges the server's settings with
 * --check-db). */
#include <stdio.h>

#include "evpipe/service.h"
#include "writer.h"

/* How long --migrate-only waits for PostgreSQL. */
#define MIGRATE_ONLY_WAIT_MS 30000

int main(int argc, char **argv)
{
    static evp_option_t options[] = {
        {"migrate-only", NULL, "apply the database migrations and exit", NULL},
        {"partition-events", NULL, "partition the events table by EVENTS_PARTITION_INTERVAL and exit", NULL},
        {"check-db", NULL, "print the server settings that will hurt, with advice; exit 1 if any", NULL},
        {NULL, NULL, NULL, NULL},
    };
    static const evp_program_t prog = {
        .program = "evpipe-writer",
        .service = EVP_SVC_WRITER,
        .summary = "The evpipe writer: takes events from the bus in order per (source, partition), asks\n"
                   "ingest to repair holes, and commits them to PostgreSQL in batches, exactly once.",
        .options = options,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    char why[512] = "";
    writer_t *writer = writer_new(&cfg, why, sizeof why);
    if (!writer) {
        fprintf(stderr, "evpipe-writer: %s\n", why);
        return 1;
    }
    if (options[0].value)
        rc = writer_migrate_only(writer, MIGRATE_ONLY_WAIT_MS);
    else if (options[1].value)
        rc = writer_partition_events(writer, MIGRATE_ONLY_WAIT_MS);
    else if (options[2].value)
        rc = writer_check_db(writer, MIGRATE_ONLY_WAIT_MS);
    else
        rc = writer_run(writer);
    writer_destroy(&writer);
    return rc;
}
