/* Sharing the partitions with the other writers: which partitions this
 * writer owns, the live writers it last saw, the PostgreSQL session whose
 * advisory locks match what it owns, and the looks at the others that renew
 * its lease, give up what is another's share and take the free partitions
 * of its own.
 *
 * A partition is this writer's while its connection holds the session
 * advisory lock (WRITER_DB_PARTITION_LOCK, partition): the connection that
 * COPYs, so ownership and writing share one session. If the connection
 * goes, so do the locks; nothing is committed on a new session before the
 * locks of the partitions owned are taken again (writer_share_ready), and a
 * partition whose lock could not be taken again is forgotten.
 *
 * What it needs of the rest of the writer (the bus socket, the batch, the
 * repair requests) goes through writer_share_hooks_t. */
#ifndef WRITER_SHARE_H
#define WRITER_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "writer_db.h"
#include "writer_stats.h"
#include "writer_stream.h"

/* What sharing asks of the writer; each is called with arg. */
typedef struct {
    /* Subscribes the bus socket to the partition's topics (on), or unsubscribes. */
    void (*subscribe)(void *arg, int32_t partition, bool on);
    /* Commits the batch when it holds anything (on a session writer_share_ready
     * says holds the locks). False when it could not be committed. */
    bool (*commit)(void *arg, int64_t now_ms);
    /* Forgets partitions given up: what the batch holds of them, their
     * streams and the events they hold back. */
    void (*forget)(void *arg, const int32_t *partitions, size_t n);
    /* Partitions just taken (checkpoints and heads loaded): looks for what
     * their streams miss. Returns how many streams they have. */
    size_t (*taken)(void *arg, const int32_t *partitions, size_t n, int64_t now_ms);
    void *arg;
} writer_share_hooks_t;

typedef struct writer_share_t writer_share_t;

/* Owns nothing yet, shares nothing until writer_share_start; makes this
 * writer's name. cfg, db, streams and stats (leases_ended is counted there)
 * must outlive it. NULL when out of memory. */
writer_share_t *writer_share_new(const evp_config_t *cfg, writer_db_t *db, writer_streams_t *streams,
                                 writer_stats_t *stats, const writer_share_hooks_t *hooks);
void writer_share_destroy(writer_share_t **self_p);

/* This writer's name among the writers (its connection's application_name):
 * evpipe-writer/<host>/<pid>/<random>, at most WRITER_DB_NAME_MAX - 1
 * printable bytes. */
const char *writer_share_name(const writer_share_t *self);

/* Starts sharing: joins the writers and takes the free partitions of its
 * share. False when PostgreSQL did not answer (call again; it keeps
 * sharing). */
bool writer_share_start(writer_share_t *self, int64_t now_ms);
/* Connected, on a session that holds the locks of every partition owned
 * (joining again first after a reconnection, while sharing). */
bool writer_share_ready(writer_share_t *self, int64_t now_ms);
/* True when the session joined is the connection's now (or nothing is
 * shared): what goes to PostgreSQL now is written under the locks. */
bool writer_share_joined(const writer_share_t *self);
/* Reads whether another writer notified (never waits): the next
 * writer_share_due is then true. */
void writer_share_check_notify(writer_share_t *self);
/* Whether it is time to look at the live writers (every second, at once
 * after a notification or a join); when it is, the next look is scheduled. */
bool writer_share_due(writer_share_t *self, int64_t now_ms);
/* Renews the lease, looks at the live writers, gives up the partitions that
 * are another's share now and takes the free ones of its own. True when it
 * could look (PostgreSQL answered). */
bool writer_share_rebalance(writer_share_t *self, int64_t now_ms);
/* Stops sharing: unsubscribes from every partition, gives up the lease and
 * the locks and tells the others (they take the partitions at once). */
void writer_share_leave(writer_share_t *self);

/* Takes the partition (writer_take_partition). 0, or -1 when PostgreSQL is
 * unavailable or another writer holds it. */
int writer_share_take(writer_share_t *self, int32_t partition);
/* Gives the partition up (writer_release_partition). 0, or -1 when the
 * batch could not be committed (nothing changed). */
int writer_share_release(writer_share_t *self, int32_t partition);
bool writer_share_owns(const writer_share_t *self, int32_t partition);
size_t writer_share_owned_count(const writer_share_t *self);
/* Live writers at the last look. */
size_t writer_share_members(const writer_share_t *self);

#endif
