/* Writer leases (sql/010_writer_leases.sql): each writer renews its lease at
 * every look at the other writers; a writer that has not renewed it for its
 * WRITER_LEASE_MS (frozen, stuck, cut off) has its PostgreSQL backend ended
 * by the next writer that looks, so its advisory locks, and with them its
 * partitions, go to the others. Also the session's server-side TCP
 * keepalives, so that PostgreSQL drops a vanished host's connection (and
 * its locks) when no other writer is there to end it. Each call drops the
 * connection when it fails (writer_db_fail). */
#ifndef WRITER_LEASE_H
#define WRITER_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "writer_db.h"

/* Sets the session's server-side TCP keepalives (idle lease_ms, then three
 * probes a third of it apart) and, where PostgreSQL has them, its TCP user
 * timeout and client connection check. 0, or -1 with why. */
int writer_lease_session(writer_db_t *db, int lease_ms, int64_t now_ms, char *why, size_t whylen);
/* Renews name's lease for lease_ms, then ends the backends of the writers
 * whose lease ran out (each logged) and deletes their leases; *ended says
 * how many backends were ended. 0, or -1 with why. */
int writer_lease_renew(writer_db_t *db, const char *name, int lease_ms, int64_t now_ms, int *ended, char *why,
                       size_t whylen);
/* Gives name's lease up (a clean stop); failures are only logged. */
void writer_lease_release(writer_db_t *db, const char *name);

#endif
