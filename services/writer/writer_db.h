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

/* A partition is owned through the session advisory lock
 * (WRITER_DB_PARTITION_LOCK, partition) held on the writer's connection
 * (pg_locks: classid = this, objid = the partition, objsubid = 2). "evpw" in
 * ASCII. The writer_assignments view (sql/007) names it too. */
#define WRITER_DB_PARTITION_LOCK 1702260855
/* Live writers are the connections to the database whose application_name
 * starts with this (then host/pid/random). */
#define WRITER_DB_MEMBER_PREFIX "evpipe-writer/"
/* application_name holds 63 bytes. */
#define WRITER_DB_NAME_MAX 64
/* The channel writers NOTIFY when they join, leave or give partitions up. */
#define WRITER_DB_CHANNEL "evpipe_writers"

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
/* The application_name of the next connections ("evpipe-writer" until set;
 * at most WRITER_DB_NAME_MAX - 1 bytes of printable ASCII). */
void writer_db_set_name(writer_db_t *self, const char *name);
/* Counts connections made: a new number means a new session, whose advisory
 * locks are none yet. 0 before the first. */
uint64_t writer_db_session(const writer_db_t *self);
/* Runs sql with n text parameters on the connection (evp_pg_query; rows
 * sent ahead are given up first): the result when its status is want (the
 * caller clears it), else NULL with why after dropping the connection
 * (writer_db_fail). Does not connect: "not connected" when there is none. */
PGresult *writer_db_query(writer_db_t *self, int64_t now_ms, const char *sql, int n, const char *const *vals,
                          ExecStatusType want, const char *what, char *why, size_t whylen);

/* ---- Sharing partitions (each call drops the connection when it fails) ---- */

/* Starts a session as a member: LISTEN on WRITER_DB_CHANNEL, and ends this
 * writer's previous backend if it lingers (a connection lost on this side
 * only), so its locks go. 0, or -1 with why. */
int writer_db_join(writer_db_t *self, int64_t now_ms, char *why, size_t whylen);
/* The names of the live writers of this database (sorted, this one
 * included), at most max. 0, or -1 with why. */
int writer_db_members(writer_db_t *self, int64_t now_ms, char (*names)[WRITER_DB_NAME_MAX], size_t max, size_t *n,
                      char *why, size_t whylen);
/* Tries the lock of each partition (never waits): got[i] tells whether
 * partitions[i] is this session's now. 0, or -1 with why. */
int writer_db_lock(writer_db_t *self, int64_t now_ms, const int32_t *partitions, size_t n, bool *got, char *why,
                   size_t whylen);
/* Releases the locks of partitions[0..n). 0, or -1 with why. */
int writer_db_unlock(writer_db_t *self, int64_t now_ms, const int32_t *partitions, size_t n, char *why,
                     size_t whylen);
/* Tells the other writers to look at the members again (best effort). */
void writer_db_notify(writer_db_t *self);
/* True when another writer notified since the last call (reads what the
 * connection has received, never waits). */
bool writer_db_notified(writer_db_t *self);
/* Leaves: stops counting as a live writer, releases every lock, notifies.
 * The connection stays open. 0, or -1 with why. */
int writer_db_leave(writer_db_t *self, int64_t now_ms, char *why, size_t whylen);

/* Sends the rows the batch gained since the last call to PostgreSQL ahead of
 * its commit, once they make 64 KiB: the first call opens the transaction and
 * its COPY, so that PostgreSQL inserts while the batch fills; the commit sends
 * the rest. Rows sent ahead are given up (rolled back) when the batch changes
 * other than by rows added, or the connection is needed for anything else;
 * the commit then sends them again. Call only on a session holding the locks
 * of the batch's partitions. A failure drops the connection. */
void writer_db_send_ahead(writer_db_t *self, const writer_batch_t *b, int64_t now_ms);
/* True while rows sent ahead wait for the commit. */
bool writer_db_ahead(const writer_db_t *self);

/* Commits the batch in one transaction. On OK the counters in st, the
 * streams' committed seqs and the latency record are updated; the caller
 * resets the batch. */
writer_commit_t writer_db_commit(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, writer_stats_t *st,
                                 int64_t now_ms);

/* For tests: the next COMMIT that succeeds is treated as if its answer had
 * been lost (the connection is closed right after it, the commit returns
 * RETRY), as a network failure at that moment would. */
void writer_db_lose_next_commit_answer(writer_db_t *self);

/* Loads the checkpoints and the publishers' heads (publisher_heads, taken as
 * heartbeats: writer_stream_learn_head) of the given partitions' sources
 * that may still have work (published past their checkpoint, or not marked
 * settled) into the registry, creating their streams. Returns 0, or -1 with
 * why (the connection is dropped when it failed). */
int writer_db_load_checkpoints(writer_db_t *self, const int32_t *partitions, size_t n, writer_streams_t *ss,
                               int64_t now_ms, char *why, size_t whylen);
/* Reads the checkpoint and recorded head of (source, partition) from
 * PostgreSQL on the connection (rows sent ahead are given up; no connection
 * is made) into stream s: one the registry does not hold yet (s NULL: it is
 * made; a new source, or one forgotten by writer_streams_forget), or one
 * made unread (writer_stream_unread), whose rows the caller's batch must
 * not hold (the checkpoint would move under them). The stream, or NULL with
 * why when they cannot be read or the partition has no room. */
writer_stream_t *writer_db_stream(writer_db_t *self, writer_streams_t *ss, writer_stream_t *s, const char *source,
                                  size_t len, int32_t partition, int64_t now_ms, char *why, size_t whylen);
/* Marks the checkpoints of the streams of ids settled (where they still
 * are at the streams' committed seq): a writer taking their partitions
 * then leaves them unread until they come back. 0, or -1 with why. */
int writer_db_settle(writer_db_t *self, const writer_streams_t *ss, const uint32_t *ids, size_t n, int64_t now_ms,
                     char *why, size_t whylen);

#endif
