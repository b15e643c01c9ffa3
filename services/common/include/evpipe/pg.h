/* PostgreSQL helpers: connecting from the settings (the password goes only
 * to libpq, never into a log), running statements and COPY with every
 * result checked, and one classification of a failed result (evp_pg_err_t)
 * that every caller reads the same way. Values never go into SQL text: use
 * parameters or COPY. */
#ifndef EVPIPE_PG_H
#define EVPIPE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "evpipe/config.h"

/* What failed, as PostgreSQL (or libpq) told it. */
typedef struct {
    char why[EVP_WHY_MAX];    /* for the log: "what: message (SQLSTATE xxxxx)", then PostgreSQL's
                               * DETAIL, HINT and CONTEXT when it gave them; one line */
    char detail[EVP_WHY_MAX]; /* for a reject: "message (SQLSTATE xxxxx)" ("SQLSTATE none" when
                               * there is none); one line */
    char state[6];            /* the SQLSTATE, "" when there is none (libpq's own errors) */
    long line;                /* the COPY line that failed, 1-based; 0 when unknown */
    bool data;                /* class 22 (data exception) or 23 (integrity constraint): a value
                               * was refused, the same statement without it may pass */
    bool conflict;            /* class 40 (deadlock, serialization failure): another transaction
                               * got in the way; try again at once */
} evp_pg_err_t;

/* Connects; NULL with why on failure (libpq's message, its lines joined
 * with "; " on one line). application_name is `app`. */
PGconn *evp_pg_connect(const evp_config_t *cfg, const char *app, char *why, size_t whylen);

/* "host=... port=... dbname=... user=..." without the password, for logs. */
void evp_pg_describe(const evp_config_t *cfg, char *out, size_t outlen);

/* True when the connection is gone (so the caller reconnects and retries). */
bool evp_pg_lost(PGconn *c);

/* ---- Errors ---- */

/* Fills err from a failed result (NULL: none came, the connection is
 * likely gone) of the statement `what`, and clears r. */
void evp_pg_classify(PGresult *r, const char *what, evp_pg_err_t *err);

/* Fills err for a failure PostgreSQL did not report (a send that failed, an
 * answer that is not what was expected): why and detail from fmt, no SQLSTATE. */
void evp_pg_err_set(evp_pg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when r has status want (r stays for the caller); else classifies
 * it into err (clearing it) and returns false. */
bool evp_pg_check(PGresult *r, ExecStatusType want, const char *what, evp_pg_err_t *err);

/* ---- Statements ---- */

/* Runs sql with n text parameters (n == 0: as a simple query, which may
 * hold several statements) and returns its result when its status is want
 * (the caller clears it), else NULL with err. */
PGresult *evp_pg_query(PGconn *c, const char *sql, int n, const char *const *vals, ExecStatusType want,
                       const char *what, evp_pg_err_t *err);

/* evp_pg_query for a query that answers exactly one row. */
PGresult *evp_pg_query_one(PGconn *c, const char *sql, int n, const char *const *vals, const char *what,
                           evp_pg_err_t *err);

/* evp_pg_query for a caller that only needs the message: NULL with why
 * (err.why) on failure. */
PGresult *evp_pg_query_why(PGconn *c, const char *sql, int n, const char *const *vals, ExecStatusType want,
                           const char *what, char *why, size_t whylen);

/* Runs a command (as evp_pg_query; a query's rows are thrown away): false with err. */
bool evp_pg_exec(PGconn *c, const char *sql, int n, const char *const *vals, const char *what, evp_pg_err_t *err);

/* Rolls back the transaction open on c, if c is still there. False when
 * the connection is gone. */
bool evp_pg_rollback(PGconn *c);

/* ---- COPY ... FROM STDIN ---- */

/* Starts the COPY: false with err. */
bool evp_pg_copy_begin(PGconn *c, const char *sql, const char *what, evp_pg_err_t *err);

/* Sends len bytes of COPY data, in large chunks. False when sending failed
 * (the COPY must then be ended with sent = false). */
bool evp_pg_copy_put(PGconn *c, const char *data, size_t len);

/* Ends the COPY and reads its result. sent: all its data went; when not,
 * the COPY is failed on purpose so nothing of it stays, and the result is
 * a failure. False with err (err.line names PostgreSQL's failing line). */
bool evp_pg_copy_end(PGconn *c, bool sent, const char *what, evp_pg_err_t *err);

/* The three above for len bytes of data. */
bool evp_pg_copy(PGconn *c, const char *sql, const char *data, size_t len, const char *what, evp_pg_err_t *err);

/* Reads and clears the results left of a statement. A COPY that could not
 * be ended keeps answering "copy in": that ends the reading too (the caller
 * drops the connection after such a failure). */
void evp_pg_drain(PGconn *c);

#endif
