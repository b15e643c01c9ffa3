/* The writer: subscribes to the partitions it owns on the bus, puts each
 * (source, partition) stream in seq order (asking ingest to repair holes),
 * and commits batches to PostgreSQL with their checkpoints in the same
 * transaction, so every event lands exactly once.
 *
 * One thread; writer_run is writer_start, writer_step until evp_stopping()
 * or writer_stop, then writer_finish. Tests may drive the steps themselves. */
#ifndef WRITER_H
#define WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/config.h"
#include "writer_stats.h"

typedef struct writer_t writer_t;

/* Makes the sockets (not connected yet); keeps a copy of cfg. NULL with why. */
writer_t *writer_new(const evp_config_t *cfg, char *why, size_t whylen);
void writer_destroy(writer_t **self_p);

/* Connects (retrying with backoff for up to deadline_ms), applies the
 * migrations and returns 0, or 1 on failure. */
int writer_migrate_only(writer_t *self, int deadline_ms);

/* Connects to PostgreSQL (retrying until it can or the writer is asked to
 * stop), applies the migrations, takes every partition, connects to the
 * bus and the repair service, logs "writer ready". 0, or -1 (stopping or a
 * migration failed). */
int writer_start(writer_t *self);
/* One turn of the loop: waits up to max_wait_ms for messages, takes them,
 * commits when the batch is full or old enough, sends repair requests. */
void writer_step(writer_t *self, int max_wait_ms);
/* Commits what the batch holds (retrying for up to about 10 s when
 * PostgreSQL is down) and logs the summary. 0, or 1 when the batch could
 * not be committed. */
int writer_finish(writer_t *self);
/* writer_start, writer_step until asked to stop, writer_finish: the exit code. */
int writer_run(writer_t *self);
/* Asks writer_run to stop, as SIGTERM does. */
void writer_stop(writer_t *self);
bool writer_stopping(const writer_t *self);

/* ---- Partitions owned ----
 * Every partition for now; a later change shares them among writers. */

/* Loads the partition's checkpoints and subscribes to it. 0, or -1 when
 * PostgreSQL is unavailable (nothing changed). */
int writer_take_partition(writer_t *self, int32_t partition);
/* Commits the batch, unsubscribes and forgets the partition's streams.
 * 0, or -1 when the batch could not be committed (nothing changed). */
int writer_release_partition(writer_t *self, int32_t partition);
bool writer_owns(const writer_t *self, int32_t partition);
size_t writer_owned_count(const writer_t *self);

/* The counters (valid while the writer lives). */
const writer_stats_t *writer_stats(const writer_t *self);
/* The metrics as GET /metrics shows them (Prometheus text). */
void writer_render_metrics(writer_t *self, ev_buf_t *out);
/* Events held back behind holes now. */
size_t writer_held(const writer_t *self);

#endif
