/* The database migrations (sql/NNN_name.sql), embedded in the binary at build
 * time, and applying them: one transaction under an advisory lock, so several
 * writers starting together apply each file exactly once. */
#ifndef WRITER_MIGRATE_H
#define WRITER_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* The advisory lock every writer takes while migrating ("evpipe" in ASCII). */
#define WRITER_MIGRATE_LOCK_KEY "111559483256933"

typedef struct {
    int version;          /* NNN of the file name */
    const char *name;     /* the file name */
    const char *checksum; /* SHA-256 of the file, hex */
    const char *sql;      /* its text */
} writer_migration_t;

/* Generated from sql/ (embed_sql.cmake), in version order, then an entry
 * with a NULL name. */
extern const writer_migration_t writer_migrations[];
extern const size_t writer_migrations_count;

/* writer_migrate_apply refused the database: it records migrations this
 * writer does not know (a newer writer's). */
#define WRITER_MIGRATE_NEWER (-2)

/* Applies, in version order, every migration not yet recorded in
 * evpipe_migrations (created if missing), and records each, in one
 * transaction under pg_advisory_xact_lock. Logs each one applied.
 * Returns 0 (*applied: how many), -1 with why (*lost is true when the
 * connection failed: worth retrying after a reconnect), or
 * WRITER_MIGRATE_NEWER with why naming the versions, having changed
 * nothing, when evpipe_migrations records a version this writer does not
 * embed (unknown, or newer than its newest): a writer never runs under a
 * schema a newer writer made. */
int writer_migrate_apply(PGconn *c, int *applied, bool *lost, char *why, size_t whylen);

#endif
