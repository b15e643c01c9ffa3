/* Applying the embedded migrations (see writer_migrate.h). */
#include "writer_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/log.h"
#include "evpipe/pg.h"

#define S_MAX_MIGRATIONS 1000

static const char S_CREATE[] = "CREATE TABLE IF NOT EXISTS evpipe_migrations ("
                               " version int PRIMARY KEY,"
                               " name text NOT NULL,"
                               " checksum text NOT NULL,"
                               " applied_at timestamptz NOT NULL DEFAULT now())";
static const char S_RECORDED[] = "SELECT version, checksum FROM evpipe_migrations";
static const char S_RECORD[] = "INSERT INTO evpipe_migrations (version, name, checksum) VALUES ($1, $2, $3)";

/* Rolls back what can be; tells whether the connection is gone. why gets
 * err's message when err is given. */
static int s_fail(PGconn *c, bool *lost, const evp_pg_err_t *err, char *why, size_t whylen)
{
    if (err)
        snprintf(why, whylen, "%s", err->why);
    *lost = !evp_pg_rollback(c);
    return -1;
}

/* The checksum recorded for a version, or NULL when it is not recorded. */
static const char *s_recorded(PGresult *r, int version)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (atoi(PQgetvalue(r, i, 0)) == version)
            return PQgetvalue(r, i, 1);
    return NULL;
}

static bool s_known(int version)
{
    for (size_t k = 0; k < writer_migrations_count; k++)
        if (writer_migrations[k].version == version)
            return true;
    return false;
}

/* True when evpipe_migrations records versions this writer does not embed
 * (unknown, or newer than its newest); why then names them. */
static bool s_unknown(PGresult *rec, char *why, size_t whylen)
{
    char list[200] = "";
    size_t len = 0;
    int unknown = 0;
    for (int i = 0; i < PQntuples(rec); i++) {
        int v = atoi(PQgetvalue(rec, i, 0));
        if (s_known(v))
            continue;
        if (unknown++ < 10 && len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", len ? "," : "", v);
    }
    if (unknown == 0)
        return false;
    int newest = writer_migrations_count ? writer_migrations[writer_migrations_count - 1].version : 0;
    snprintf(why, whylen,
             "the database has %d migration(s) this writer does not know (versions %s%s; its newest is %d): "
             "a newer evpipe-writer migrated it, and an older one must not write to its schema; run the newer "
             "version",
             unknown, list, unknown > 10 ? ",..." : "", newest);
    return true;
}

int writer_migrate_apply(PGconn *c, int *applied, bool *lost, char *why, size_t whylen)
{
    *applied = 0;
    *lost = false;
    evp_pg_err_t err;
    const char *key[] = {WRITER_MIGRATE_LOCK_KEY};
    if (!evp_pg_exec(c, "BEGIN", 0, NULL, "BEGIN", &err) ||
        !evp_pg_exec(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, key, "taking the migration lock", &err) ||
        !evp_pg_exec(c, S_CREATE, 0, NULL, "creating evpipe_migrations", &err))
        return s_fail(c, lost, &err, why, whylen);
    PGresult *rec = evp_pg_query(c, S_RECORDED, 0, NULL, PGRES_TUPLES_OK, "reading evpipe_migrations", &err);
    if (!rec)
        return s_fail(c, lost, &err, why, whylen);

    /* A schema a newer writer made is not this writer's: refuse it before
     * applying anything (an older writer under a newer schema could store
     * what the newer schema's rules forbid, e.g. without an index it needs). */
    if (s_unknown(rec, why, whylen)) {
        PQclear(rec);
        s_fail(c, lost, NULL, why, whylen);
        return WRITER_MIGRATE_NEWER;
    }
    const writer_migration_t *done[S_MAX_MIGRATIONS];
    int ndone = 0;
    for (size_t i = 0; i < writer_migrations_count; i++) {
        const writer_migration_t *m = &writer_migrations[i];
        const char *sum = s_recorded(rec, m->version);
        if (sum) {
            if (strcmp(sum, m->checksum) != 0)
                evp_warn("migration changed since it was applied", "version=%d name=%s", m->version, m->name);
            continue;
        }
        char what[200];
        snprintf(what, sizeof what, "migration %s", m->name);
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *vals[] = {version, m->name, m->checksum};
        /* A file of several statements answers with the last one's result. */
        if (!evp_pg_exec(c, m->sql, 0, NULL, what, &err) ||
            !evp_pg_exec(c, S_RECORD, 3, vals, "recording a migration", &err)) {
            PQclear(rec);
            return s_fail(c, lost, &err, why, whylen);
        }
        if (ndone < S_MAX_MIGRATIONS)
            done[ndone++] = m;
    }
    PQclear(rec);
    if (!evp_pg_exec(c, "COMMIT", 0, NULL, "COMMIT of the migrations", &err))
        return s_fail(c, lost, &err, why, whylen);
    for (int i = 0; i < ndone; i++)
        evp_info("migration applied", "version=%d name=%s", done[i]->version, done[i]->name);
    *applied = ndone;
    return 0;
}
