/* Time partitions of events from the writer (see writer_partition.h). */
#include "writer_partition.h"

#include <stdio.h>
#include <string.h>

#include "evpipe/log.h"
#include "evpipe/pg.h"

static const char S_CONVERT[] = "SELECT evpipe_partition_events($1::interval, $2::boolean)";
static const char S_MAINTAIN[] = "SELECT evpipe_partition_maintain($1::interval, $2::int, NULLIF($3, '')::interval)";

bool writer_partition_enabled(const evp_config_t *cfg)
{
    return cfg->events_partition_interval[0] != '\0';
}

/* Runs one of the functions: one line of text per row; each is logged. */
static int s_call(PGconn *c, const char *sql, int n, const char *const *values, const char *what, bool verbose,
                  char *why, size_t whylen)
{
    PGresult *r = evp_pg_query_why(c, sql, n, values, PGRES_TUPLES_OK, what, why, whylen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *line = PQgetvalue(r, i, 0);
        char text[600];
        evp_log_text(text, sizeof text, line, strlen(line));
        bool changed = strncmp(line, "created ", 8) == 0 || strncmp(line, "dropped ", 8) == 0 ||
                       strncmp(line, "events partitioned", 18) == 0;
        if (strstr(line, "evpipe-writer --partition-events"))
            evp_warn("events is not partitioned", "detail=\"%s\"", text);
        else if (verbose || changed)
            evp_info("events partitions", "detail=\"%s\"", text);
        else
            evp_debug("events partitions", "detail=\"%s\"", text);
    }
    PQclear(r);
    return 0;
}

int writer_partition_convert(PGconn *c, const evp_config_t *cfg, bool only_if_empty, char *why, size_t whylen)
{
    const char *values[] = {cfg->events_partition_interval, only_if_empty ? "true" : "false"};
    return s_call(c, S_CONVERT, 2, values, "partitioning events", true, why, whylen);
}

int writer_partition_maintain(PGconn *c, const evp_config_t *cfg, bool verbose, char *why, size_t whylen)
{
    char premake[16];
    snprintf(premake, sizeof premake, "%d", cfg->events_partition_premake);
    const char *values[] = {cfg->events_partition_interval, premake, cfg->events_retention};
    return s_call(c, S_MAINTAIN, 3, values, "keeping the partitions of events", verbose, why, whylen);
}
