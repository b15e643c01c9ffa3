/* PostgreSQL helpers (see pg.h). */
#include "evpipe/pg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes per PQputCopyData call. */
#define S_COPY_CHUNK (1 << 20)

/* ---- Messages on one line ---- */

/* Puts s on one line: each run of white space (newlines and tabs included)
 * becomes one space, none at either end. */
static void s_one_line(char *s)
{
    char *out = s;
    bool space = false;
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p)) {
            space = out > s;
            continue;
        }
        if (space)
            *out++ = ' ';
        space = false;
        *out++ = *p;
    }
    *out = '\0';
}

/* Appends to out (cap bytes, len used), cut to fit. */
static void s_append(char *out, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_append(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

/* libpq's own message (a failed connection runs over several lines, each
 * ending in a newline, the second indented) as one line: the lines trimmed
 * and joined with "; ". */
static void s_lines_joined(const char *msg, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    while (*msg) {
        msg += strspn(msg, " \t\n");
        size_t n = strcspn(msg, "\n");
        if (n)
            s_append(out, cap, &len, "%s%.*s", len ? "; " : "", (int)n, msg);
        msg += n;
    }
    s_one_line(out);
}

/* ---- Connecting ---- */

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
        s_lines_joined(PQerrorMessage(c), why, whylen);
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

bool evp_pg_lost(PGconn *c)
{
    return !c || PQstatus(c) != CONNECTION_OK;
}

/* ---- Errors ---- */

static bool s_class(const char *state, const char *cls)
{
    return strncmp(state, cls, 2) == 0;
}

void evp_pg_classify(PGresult *r, const char *what, evp_pg_err_t *err)
{
    if (!r) {
        evp_pg_err_set(err, "%s: no result (connection lost?)", what);
        return;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!primary) /* libpq's own errors have only the message */
        primary = PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQresStatus(PQresultStatus(r));
    snprintf(err->detail, sizeof err->detail, "%s (SQLSTATE %s)", primary, state ? state : "none");
    s_one_line(err->detail);
    size_t len = 0;
    s_append(err->why, sizeof err->why, &len, "%s: %s", what, err->detail);
    static const struct {
        int field;
        const char *label;
    } more[] = {{PG_DIAG_MESSAGE_DETAIL, "DETAIL"}, {PG_DIAG_MESSAGE_HINT, "HINT"}, {PG_DIAG_CONTEXT, "CONTEXT"}};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        const char *text = PQresultErrorField(r, more[i].field);
        if (text && *text)
            s_append(err->why, sizeof err->why, &len, " %s: %s", more[i].label, text);
    }
    s_one_line(err->why);
    snprintf(err->state, sizeof err->state, "%.5s", state ? state : "");
    const char *context = PQresultErrorField(r, PG_DIAG_CONTEXT);
    const char *at = context ? strstr(context, ", line ") : NULL;
    err->line = at ? strtol(at + 7, NULL, 10) : 0;
    err->data = s_class(err->state, "22") || s_class(err->state, "23");
    err->conflict = s_class(err->state, "40");
    PQclear(r);
}

void evp_pg_err_set(evp_pg_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->why, sizeof err->why, fmt, ap);
    va_end(ap);
    s_one_line(err->why);
    memcpy(err->detail, err->why, sizeof err->detail);
    err->state[0] = '\0';
    err->line = 0;
    err->data = false;
    err->conflict = false;
}

bool evp_pg_check(PGresult *r, ExecStatusType want, const char *what, evp_pg_err_t *err)
{
    if (r && PQresultStatus(r) == want)
        return true;
    evp_pg_classify(r, what, err);
    return false;
}

/* ---- Statements ---- */

static PGresult *s_run(PGconn *c, const char *sql, int n, const char *const *vals)
{
    return n > 0 ? PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(c, sql);
}

PGresult *evp_pg_query(PGconn *c, const char *sql, int n, const char *const *vals, ExecStatusType want,
                       const char *what, evp_pg_err_t *err)
{
    PGresult *r = s_run(c, sql, n, vals);
    return evp_pg_check(r, want, what, err) ? r : NULL;
}

PGresult *evp_pg_query_why(PGconn *c, const char *sql, int n, const char *const *vals, ExecStatusType want,
                           const char *what, char *why, size_t whylen)
{
    evp_pg_err_t err;
    PGresult *r = evp_pg_query(c, sql, n, vals, want, what, &err);
    if (!r)
        snprintf(why, whylen, "%s", err.why);
    return r;
}

PGresult *evp_pg_query_one(PGconn *c, const char *sql, int n, const char *const *vals, const char *what,
                           evp_pg_err_t *err)
{
    PGresult *r = evp_pg_query(c, sql, n, vals, PGRES_TUPLES_OK, what, err);
    if (r && PQntuples(r) != 1) {
        evp_pg_err_set(err, "%s: %d rows where one was expected", what, PQntuples(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

bool evp_pg_exec(PGconn *c, const char *sql, int n, const char *const *vals, const char *what, evp_pg_err_t *err)
{
    PGresult *r = s_run(c, sql, n, vals);
    /* A command answers "command ok"; a query (or a script ending in one) its rows. */
    bool rows = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!evp_pg_check(r, rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, what, err))
        return false;
    PQclear(r);
    return true;
}

bool evp_pg_rollback(PGconn *c)
{
    if (evp_pg_lost(c))
        return false;
    PQclear(PQexec(c, "ROLLBACK"));
    return !evp_pg_lost(c);
}

/* ---- COPY ---- */

bool evp_pg_copy_begin(PGconn *c, const char *sql, const char *what, evp_pg_err_t *err)
{
    PGresult *r = PQexec(c, sql);
    if (!evp_pg_check(r, PGRES_COPY_IN, what, err))
        return false;
    PQclear(r);
    return true;
}

bool evp_pg_copy_put(PGconn *c, const char *data, size_t len)
{
    bool sent = true;
    for (size_t off = 0; off < len && sent; off += S_COPY_CHUNK) {
        size_t n = len - off < S_COPY_CHUNK ? len - off : S_COPY_CHUNK;
        sent = PQputCopyData(c, data + off, (int)n) == 1;
    }
    return sent;
}

void evp_pg_drain(PGconn *c)
{
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        bool copy_in = PQresultStatus(r) == PGRES_COPY_IN;
        PQclear(r);
        if (copy_in)
            break;
    }
}

bool evp_pg_copy_end(PGconn *c, bool sent, const char *what, evp_pg_err_t *err)
{
    /* A COPY whose data did not all go is failed on purpose: nothing of it stays. */
    if (sent)
        sent = PQputCopyEnd(c, NULL) == 1;
    else
        PQputCopyEnd(c, "sending the data failed");
    PGresult *r = PQgetResult(c);
    bool ok = evp_pg_check(r, PGRES_COMMAND_OK, what, err);
    if (ok)
        PQclear(r);
    evp_pg_drain(c);
    if (ok && !sent) {
        evp_pg_err_set(err, "%s: sending data failed: %s", what, PQerrorMessage(c));
        ok = false;
    }
    return ok;
}

bool evp_pg_copy(PGconn *c, const char *sql, const char *data, size_t len, const char *what, evp_pg_err_t *err)
{
    return evp_pg_copy_begin(c, sql, what, err) && evp_pg_copy_end(c, evp_pg_copy_put(c, data, len), what, err);
}
