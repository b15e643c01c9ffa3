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
 * migrations and returns 0, EVP_EXIT_REFUSED when the database's schema is
 * newer than this writer, or 1 on failure. The deployment settings are
 * neither recorded nor checked (a migration job need not carry them). */
int writer_migrate_only(writer_t *self, int deadline_ms);
/* The same, then partitions the events table by EVENTS_PARTITION_INTERVAL
 * (its rows stay, as the partition events_legacy) and makes the partitions
 * ahead. 0, or 1 on failure (nothing changed). */
int writer_partition_events(writer_t *self, int deadline_ms);
/* Connects and prints, on stdout, each setting of the server that will hurt
 * evpipe or could serve it better, with advice (writer_checkdb.h). 0 when
 * nothing hurts, 1 when something does, 2 when PostgreSQL could not be
 * asked. */
int writer_check_db(writer_t *self, int deadline_ms);

/* Connects to PostgreSQL (retrying until it can or the writer is asked to
 * stop), applies the migrations, records the deployment settings (the first
 * service to find them unrecorded does) or checks its own against them
 * (evpipe/deploy.h), joins the writers and takes the free
 * partitions of its share, connects to the bus and the repair service, logs
 * "writer ready". 0, -1 (stopping or a migration failed), or -2 when the
 * database refuses this writer (a newer schema, other deployment settings:
 * logged). */
int writer_start(writer_t *self);
/* One turn of the loop: waits up to max_wait_ms for messages, takes them,
 * commits when the batch is full or old enough, sends repair requests. */
void writer_step(writer_t *self, int max_wait_ms);
/* Commits what the batch holds (retrying for up to about 10 s when
 * PostgreSQL is down), gives every partition up (the other writers take
 * them at once) and logs the summary. 0, or 1 when the batch could not be
 * committed. */
int writer_finish(writer_t *self);
/* writer_start, writer_step until asked to stop, writer_finish: the exit
 * code (EVP_EXIT_REFUSED when the database refuses this writer). */
int writer_run(writer_t *self);
/* Asks writer_run to stop, as SIGTERM does. */
void writer_stop(writer_t *self);
bool writer_stopping(const writer_t *self);

/* ---- Partitions owned ----
 * Writers share the partitions out among themselves through PostgreSQL
 * (writer_share.h): a partition is a writer's while its connection holds
 * the session advisory lock (WRITER_DB_PARTITION_LOCK, partition). Every
 * second (at once when another writer notifies) the loop lists the live
 * writers, computes each one's share (writer_assign), gives up what is
 * another's share and takes the free partitions of its own. */

/* Takes the partition's lock (when free), loads its checkpoints and
 * publishers' heads, subscribes to it and asks for what is missing. 0, or
 * -1 when PostgreSQL is unavailable or another writer holds it. */
int writer_take_partition(writer_t *self, int32_t partition);
/* Unsubscribes, commits the batch, forgets the partition's streams and
 * releases its lock. 0, or -1 when the batch could not be committed
 * (nothing changed). The next look at the live writers may take it again. */
int writer_release_partition(writer_t *self, int32_t partition);
bool writer_owns(const writer_t *self, int32_t partition);
size_t writer_owned_count(const writer_t *self);
/* This writer's name among the writers (its connection's application_name):
 * evpipe-writer/<host>/<pid>/<random>. */
const char *writer_name(const writer_t *self);

/* The counters (valid while the writer lives). */
const writer_stats_t *writer_stats(const writer_t *self);
/* The metrics as GET /metrics shows them (Prometheus text). */
void writer_render_metrics(writer_t *self, ev_buf_t *out);
/* Events held back behind holes now. */
size_t writer_held(const writer_t *self);
/* Rows in the batch, not committed yet. */
size_t writer_pending_rows(const writer_t *self);

#endif
