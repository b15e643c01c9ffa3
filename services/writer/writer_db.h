/* The writer's PostgreSQL side: one connection, re-made with exponential
 * backoff when it fails; committing a batch in one transaction (COPY of the
 * rows, checkpoints, rejects, gaps and publishers' heads), isolating rows
 * PostgreSQL refuses and dropping rows another writer already committed;
 * reading checkpoints. */
#ifndef WRITER_DB_H
#define WRITER_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "writer_batch.h"
#include "writer_metrics.h"
#include "writer_stats.h"
#include "writer_stream.h"

/* Reconnection backoff: from 100 ms, doubling, up to 5 s. */
#define WRITER_DB_BACKOFF_MIN_MS 100
#define WRITER_DB_BACKOFF_MAX_MS 5000

typedef struct writer_db_t writer_db_t;

typedef enum {
    WRITER_COMMIT_OK,    /* committed; the batch can be reset */
    WRITER_COMMIT_RETRY, /* not committed (PostgreSQL unavailable): keep the batch, retry later */
} writer_commit_t;

/* Does not connect yet. metrics (may be NULL) gets each commit's timing
 * and latencies. NULL when out of memory. */
writer_db_t *writer_db_new(const evp_config_t *cfg, writer_metrics_t *metrics);
void writer_db_destroy(writer_db_t **self_p);

/* Connects when there is no connection and the backoff allows an attempt
 * now; logs each failure once, with the reason and the next delay. True
 * when connected. */
bool writer_db_ensure(writer_db_t *self, int64_t now_ms);
bool writer_db_connected(const writer_db_t *self);
/* When the next connection attempt may be made (monotonic ms). */
int64_t writer_db_next_attempt_ms(const writer_db_t *self);
/* The connection, or NULL. */
PGconn *writer_db_conn(writer_db_t *self);
/* Drops the connection after a failure (why is logged) and schedules a reconnection. */
void writer_db_fail(writer_db_t *self, int64_t now_ms, const char *why);

/* Commits the batch in one transaction. On OK the counters in st, the
 * streams' committed seqs and the latency record are updated; the caller
 * resets the batch. */
writer_commit_t writer_db_commit(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, writer_stats_t *st,
                                 int64_t now_ms);

/* Loads the checkpoints of the given partitions into the registry (creating
 * their streams). Returns 0, or -1 with why (the connection is dropped
 * when it failed). */
int writer_db_load_checkpoints(writer_db_t *self, const int32_t *partitions, size_t n, writer_streams_t *ss,
                               int64_t now_ms, char *why, size_t whylen);

#endif
