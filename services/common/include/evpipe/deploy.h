/* Settings every service of one deployment must agree on (PARTITIONS),
 * checked against the database at start: the first service that finds the
 * deployment_settings table (sql/009) records its values, and a service
 * started with another value refuses to start with a message naming both.
 * The writer checks on its own connection after its migrations; the
 * generator and ingest, which need no database otherwise, connect for the
 * check alone (evp_deploy_check). */
#ifndef EVPIPE_DEPLOY_H
#define EVPIPE_DEPLOY_H

#include <libpq-fe.h>
#include <stddef.h>

#include "evpipe/config.h"

/* How long the generator and ingest wait for PostgreSQL at start. */
#define EVP_DEPLOY_WAIT_MS 5000

typedef enum {
    EVP_DEPLOY_AGREE,     /* every value recorded is this service's (values not recorded yet are now) */
    EVP_DEPLOY_DIFFERENT, /* a value recorded differs: why names both and who recorded it when */
    EVP_DEPLOY_NO_TABLE,  /* no deployment_settings yet (no writer has migrated): nothing recorded */
    EVP_DEPLOY_FAILED,    /* PostgreSQL failed: why */
} evp_deploy_t;

/* The settings checked, by environment name (NULL-terminated). */
extern const char *const evp_deploy_settings[];

/* On c: for each setting of evp_deploy_settings, records cfg's value unless
 * one is recorded already (INSERT ... ON CONFLICT DO NOTHING: the first
 * service wins, however many start together), reads the recorded value back
 * and compares. who is recorded as recorded_by (evp_deploy_who). */
evp_deploy_t evp_deploy_check_conn(PGconn *c, const evp_config_t *cfg, const char *who, char *why, size_t whylen);

/* "<program>/<host>/<pid>": who recorded a value. */
void evp_deploy_who(char *out, size_t outlen, const char *program);

/* The generator's and ingest's check: connects with the POSTGRES_* settings,
 * retrying for up to wait_ms, and runs evp_deploy_check_conn. Returns 0 to
 * go on (the values agree or were recorded now; no table yet; or PostgreSQL
 * could not be reached in time, which is logged as a warning: the writers
 * check the same values, and the partitions of every heartbeat), or
 * EVP_EXIT_REFUSED after logging the difference (the service must exit). */
int evp_deploy_check(const evp_config_t *cfg, const char *program, int wait_ms);

#endif
