/* Renewing writer leases and ending the sessions of expired ones (see writer_lease.h). */
#include "writer_lease.h"

#include <stdio.h>
#include <string.h>

#include "evpipe/log.h"
#include "evpipe/pg.h"

static const char S_RENEW[] =
    "INSERT INTO writer_leases (name, backend_pid, renewed_at, lease_ms)"
    " VALUES ($1, pg_backend_pid(), clock_timestamp(), $2::int)"
    " ON CONFLICT (name) DO UPDATE SET backend_pid = excluded.backend_pid, renewed_at = excluded.renewed_at,"
    " lease_ms = excluded.lease_ms";
/* The expired leases go, and their backends with them (only a backend that
 * still carries the lease's name: a pid may have been reused). PostgreSQL
 * 14 and later wait (up to 2 s) until the backend is gone, so the writers
 * that look next see its locks released. */
#define S_EXPIRE(terminate)                                                                                        \
    "WITH expired AS (DELETE FROM writer_leases"                                                                   \
    " WHERE name <> $1 AND renewed_at < clock_timestamp() - lease_ms * interval '1 millisecond'"                  \
    " RETURNING name, backend_pid, renewed_at)"                                                                    \
    " SELECT e.name, e.backend_pid, (extract(epoch FROM clock_timestamp() - e.renewed_at) * 1000)::bigint,"      \
    " COALESCE((SELECT " terminate " FROM pg_stat_activity a"                                                     \
    " WHERE a.pid = e.backend_pid AND a.application_name = e.name), false)"                                       \
    " FROM expired e"
static const char S_EXPIRE_NEW[] = S_EXPIRE("pg_terminate_backend(a.pid, 2000)");
static const char S_EXPIRE_OLD[] = S_EXPIRE("pg_terminate_backend(a.pid)");
static const char S_RELEASE[] = "DELETE FROM writer_leases WHERE name = $1";

int writer_lease_session(writer_db_t *db, int lease_ms, int64_t now_ms, char *why, size_t whylen)
{
    PGconn *c = writer_db_conn(db);
    if (!c) {
        snprintf(why, whylen, "session settings: not connected");
        return -1;
    }
    int idle = lease_ms / 1000 > 1 ? lease_ms / 1000 : 1;
    char s_idle[16], s_intvl[16], s_user[16];
    snprintf(s_idle, sizeof s_idle, "%d", idle);
    snprintf(s_intvl, sizeof s_intvl, "%d", (idle + 2) / 3);
    /* Unacknowledged data (a host gone mid-answer) ends the connection
     * after about the time keepalive takes on an idle one. */
    snprintf(s_user, sizeof s_user, "%d", 2 * idle * 1000);
    int version = PQserverVersion(c);
    const char *vals[] = {s_idle, s_intvl, s_user};
    /* tcp_user_timeout: PostgreSQL 12; client_connection_check_interval: 14. */
    const char *sql = version >= 140000
                          ? "SELECT set_config('tcp_keepalives_idle', $1, false),"
                            " set_config('tcp_keepalives_interval', $2, false),"
                            " set_config('tcp_keepalives_count', '3', false),"
                            " set_config('tcp_user_timeout', $3, false),"
                            " set_config('client_connection_check_interval', $3, false)"
                      : version >= 120000 ? "SELECT set_config('tcp_keepalives_idle', $1, false),"
                                            " set_config('tcp_keepalives_interval', $2, false),"
                                            " set_config('tcp_keepalives_count', '3', false),"
                                            " set_config('tcp_user_timeout', $3, false)"
                                          : "SELECT set_config('tcp_keepalives_idle', $1, false),"
                                            " set_config('tcp_keepalives_interval', $2, false),"
                                            " set_config('tcp_keepalives_count', '3', false), $3";
    PGresult *r =
        writer_db_query(db, now_ms, sql, 3, vals, PGRES_TUPLES_OK, "setting the session's keepalives", why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int writer_lease_renew(writer_db_t *db, const char *name, int lease_ms, int64_t now_ms, int *ended, char *why,
                       size_t whylen)
{
    *ended = 0;
    char ms[16];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *vals[] = {name, ms};
    PGresult *r =
        writer_db_query(db, now_ms, S_RENEW, 2, vals, PGRES_COMMAND_OK, "renewing the lease", why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    PGconn *c = writer_db_conn(db);
    r = writer_db_query(db, now_ms, PQserverVersion(c) >= 140000 ? S_EXPIRE_NEW : S_EXPIRE_OLD, 1, vals,
                        PGRES_TUPLES_OK, "ending expired leases", why, whylen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        bool was_ended = strcmp(PQgetvalue(r, i, 3), "t") == 0;
        *ended += was_ended;
        char who[WRITER_DB_NAME_MAX * 2];
        const char *n = PQgetvalue(r, i, 0);
        evp_warn(was_ended ? "ended the session of a writer whose lease ran out: its partitions are shared out"
                           : "removed the lease of a writer that is gone",
                 "writer=\"%s\" pid=%s unrenewed_ms=%s", evp_log_text(who, sizeof who, n, strlen(n)),
                 PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return 0;
}

void writer_lease_release(writer_db_t *db, const char *name)
{
    PGconn *c = writer_db_conn(db);
    if (!c)
        return;
    const char *vals[] = {name};
    evp_pg_err_t err;
    if (!evp_pg_exec(c, S_RELEASE, 1, vals, "giving the lease up", &err)) {
        char reason[sizeof err.why];
        evp_warn("could not give the lease up; it runs out by itself", "reason=\"%s\"",
                 evp_log_text(reason, sizeof reason, err.why, strlen(err.why)));
    }
}
