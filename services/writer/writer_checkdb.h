/* evpipe-writer --check-db: reads the PostgreSQL server's settings
 * (pg_settings) and checkpoint statistics (pg_stat_bgwriter) and prints each
 * one that will hurt evpipe's load or could serve it better, with the advice
 * of docs/postgresql.md. */
#ifndef WRITER_CHECKDB_H
#define WRITER_CHECKDB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

/* One setting as pg_settings gives it (unit: "8kB", "MB", "s", "" ...).
 * checkpoints_timed and checkpoints_req come from pg_stat_bgwriter. */
typedef struct {
    const char *name;
    const char *setting;
    const char *unit;
} writer_checkdb_value_t;

/* Judges the values against the rules and prints one line per finding to
 * out ("hurts" or "advice", the setting, what it should be, why). Returns
 * how many hurt. */
int writer_checkdb_judge(const writer_checkdb_value_t *values, size_t n, FILE *out);

/* Reads the server's values and judges them. How many hurt, or -1 with why. */
int writer_checkdb_run(PGconn *c, FILE *out, char *why, size_t whylen);

#endif
