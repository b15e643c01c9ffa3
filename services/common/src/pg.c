/* PostgreSQL helpers (see pg.h). */
#include "evpipe/pg.h"

#include <stdio.h>
#include <string.h>

PGconn *evp_pg_connect(const evp_config_t *cfg, const char *app, char *why, size_t whylen)
{
    char port[16], timeout[16];
    snprintf(port, sizeof port, "%d", cfg->postgres_port);
    snprintf(timeout, sizeof timeout, "%d", cfg->postgres_connect_timeout);
    /* sslrootcert last: left out when empty, so libpq's default applies. */
    const char *keys[] = {"host", "port", "dbname", "user", "password", "application_name", "connect_timeout",
                          "keepalives_idle", "sslmode", "sslrootcert", NULL};
    const char *vals[] = {cfg->postgres_host, port, cfg->postgres_db, cfg->postgres_user, cfg->postgres_password,
                          app, timeout, "10", cfg->postgres_sslmode,
                          cfg->postgres_sslrootcert[0] ? cfg->postgres_sslrootcert : NULL, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(why, whylen, "%s", PQerrorMessage(c));
        size_t n = strlen(why);
        while (n && (why[n - 1] == '\n' || why[n - 1] == ' '))
            why[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
    return c;
}

void evp_pg_describe(const evp_config_t *cfg, char *out, size_t outlen)
{
    snprintf(out, outlen, "host=%s port=%d dbname=%s user=%s sslmode=%s", cfg->postgres_host, cfg->postgres_port,
             cfg->postgres_db, cfg->postgres_user, cfg->postgres_sslmode);
}

bool evp_pg_ok(PGresult *r, ExecStatusType want, const char *what, char *why, size_t whylen)
{
    if (r && PQresultStatus(r) == want)
        return true;
    if (!r) {
        snprintf(why, whylen, "%s: no result (connection lost?)", what);
        return false;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorMessage(r);
    snprintf(why, whylen, "%s: %s%s%s%s", what, *msg ? msg : PQresStatus(PQresultStatus(r)), state ? " (SQLSTATE " : "",
             state ? state : "", state ? ")" : "");
    for (char *p = why; *p; p++)
        if (*p == '\n')
            *p = ' ';
    PQclear(r);
    return false;
}

bool evp_pg_exec(PGconn *c, const char *sql, const char *what, char *why, size_t whylen)
{
    PGresult *r = PQexec(c, sql);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        return true;
    }
    if (!evp_pg_ok(r, PGRES_COMMAND_OK, what, why, whylen))
        return false;
    PQclear(r);
    return true;
}

bool evp_pg_exec_params(PGconn *c, const char *sql, int n, const char *const *values, const char *what,
                        char *why, size_t whylen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        return true;
    }
    if (!evp_pg_ok(r, PGRES_COMMAND_OK, what, why, whylen))
        return false;
    PQclear(r);
    return true;
}

bool evp_pg_lost(PGconn *c)
{
    return !c || PQstatus(c) != CONNECTION_OK;
}
