/* Time partitions of events, from the writer: turning the plain events table
 * into one partitioned by event_time, and keeping its partitions (made
 * ahead, old ones dropped), through the SQL functions of
 * sql/011_event_partitions.sql. Opt-in: EVENTS_PARTITION_INTERVAL. */
#ifndef WRITER_PARTITION_H
#define WRITER_PARTITION_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "evpipe/config.h"

/* How often a running writer keeps the partitions. */
#define WRITER_PARTITION_EVERY_MS 60000

/* True when EVENTS_PARTITION_INTERVAL is set. */
bool writer_partition_enabled(const evp_config_t *cfg);

/* Partitions events by EVENTS_PARTITION_INTERVAL (one transaction, ACCESS
 * EXCLUSIVE on events while it runs). With only_if_empty, a table that has
 * rows is left as it is (and a warning says how to convert it). An events
 * table partitioned already is left alone. 0, or -1 with why. */
int writer_partition_convert(PGconn *c, const evp_config_t *cfg, bool only_if_empty, char *why, size_t whylen);

/* Makes the partitions ahead, moves rows of new partitions out of the
 * default one, and drops partitions wholly older than EVENTS_RETENTION.
 * Logs what it did (at info when verbose or when it created or dropped a
 * partition, at debug otherwise). Call on a connection with no transaction
 * open. 0, or -1 with why. */
int writer_partition_maintain(PGconn *c, const evp_config_t *cfg, bool verbose, char *why, size_t whylen);

#endif
