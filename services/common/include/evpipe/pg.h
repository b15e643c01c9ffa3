/* PostgreSQL helpers: connecting from the settings (the password goes only
 * to libpq, never into a log), and checking results with a message that
 * names what failed. Values never go into SQL text: use parameters or COPY. */
#ifndef EVPIPE_PG_H
#define EVPIPE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "evpipe/config.h"

/* Connects; NULL with why on failure. application_name is `app`. */
PGconn *evp_pg_connect(const evp_config_t *cfg, const char *app, char *why, size_t whylen);

/* "host=... port=... dbname=... user=..." without the password, for logs. */
void evp_pg_describe(const evp_config_t *cfg, char *out, size_t outlen);

/* Checks r has status `want`. On failure fills why with "what: message
 * (SQLSTATE)", clears r and returns false; on success r stays for the caller. */
bool evp_pg_ok(PGresult *r, ExecStatusType want, const char *what, char *why, size_t whylen);

/* Runs a command without parameters and checks it; false with why. */
bool evp_pg_exec(PGconn *c, const char *sql, const char *what, char *why, size_t whylen);

/* Runs a command with text parameters; false with why. */
bool evp_pg_exec_params(PGconn *c, const char *sql, int n, const char *const *values, const char *what,
                        char *why, size_t whylen);

/* True when the connection is gone (so the caller reconnects and retries). */
bool evp_pg_lost(PGconn *c);

#endif
