/* Deployment-wide settings checked against the database (see deploy.h). */
#include "evpipe/deploy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evpipe/log.h"
#include "evpipe/pg.h"
#include "evpipe/service.h"
#include "evpipe/sig.h"

/* PARTITIONS decides an event's topic, so the writers that subscribe to it:
 * a publisher with more partitions than the writers publishes to topics
 * nobody reads. (INGEST_MAX_LINE, on which an old-format file's identities
 * depend, is named in its source instead: docs/protocol.md.) */
const char *const evp_deploy_settings[] = {"PARTITIONS", NULL};

static const char S_RECORD[] = "INSERT INTO deployment_settings (name, value, recorded_by) VALUES ($1, $2, $3)"
                               " ON CONFLICT (name) DO NOTHING";
static const char S_READ[] = "SELECT value, recorded_by,"
                             " to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                             " FROM deployment_settings WHERE name = $1";
/* SQLSTATE undefined_table: no writer has created deployment_settings yet. */
#define S_NO_TABLE "42P01"
/* Between connection attempts. */
#define S_RETRY_MS 250

/* The setting's value as text (integer settings only, for now). */
static void s_value(const evp_config_t *cfg, const evp_setting_t *s, char *out, size_t outlen)
{
    const char *p = (const char *)cfg + s->offset;
    if (s->max > INT32_MAX)
        snprintf(out, outlen, "%lld", (long long)*(const int64_t *)p);
    else
        snprintf(out, outlen, "%d", *(const int *)p);
}

/* A failed statement: NO_TABLE for undefined_table, else FAILED with why. */
static evp_deploy_t s_failed(const evp_pg_err_t *err, char *why, size_t whylen)
{
    snprintf(why, whylen, "%s", err->why);
    return strcmp(err->state, S_NO_TABLE) == 0 ? EVP_DEPLOY_NO_TABLE : EVP_DEPLOY_FAILED;
}

evp_deploy_t evp_deploy_check_conn(PGconn *c, const evp_config_t *cfg, const char *who, char *why, size_t whylen)
{
    for (const char *const *name = evp_deploy_settings; *name; name++) {
        const evp_setting_t *s = evp_config_find(*name);
        if (!s || s->type != EVP_SET_INT) {
            snprintf(why, whylen, "%s: not an integer setting", *name);
            return EVP_DEPLOY_FAILED;
        }
        char mine[32];
        s_value(cfg, s, mine, sizeof mine);
        const char *rec[] = {*name, mine, who};
        evp_pg_err_t err;
        if (!evp_pg_exec(c, S_RECORD, 3, rec, "recording the deployment settings", &err))
            return s_failed(&err, why, whylen);
        /* Read back in a statement of its own: it sees the row of whichever
         * service recorded first, even one whose insert this one waited for. */
        const char *key[] = {*name};
        PGresult *r = evp_pg_query_one(c, S_READ, 1, key, "reading the deployment settings", &err);
        if (!r)
            return s_failed(&err, why, whylen);
        const char *value = PQgetvalue(r, 0, 0);
        if (strcmp(value, mine) != 0) {
            char by[200], v[64];
            evp_log_text(v, sizeof v, value, strlen(value));
            evp_log_text(by, sizeof by, PQgetvalue(r, 0, 1), strlen(PQgetvalue(r, 0, 1)));
            snprintf(why, whylen,
                     "%s=%s here, but this deployment was set up with %s=%s (recorded by %s at %s); start every "
                     "service with %s=%s, or change it on purpose as docs/operations.md says",
                     *name, mine, *name, v, by, PQgetvalue(r, 0, 2), *name, v);
            PQclear(r);
            return EVP_DEPLOY_DIFFERENT;
        }
        PQclear(r);
    }
    return EVP_DEPLOY_AGREE;
}

void evp_deploy_who(char *out, size_t outlen, const char *program)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            *p = '-';
    snprintf(out, outlen, "%s/%.40s/%d", program, host, (int)getpid());
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evp_deploy_check(const evp_config_t *cfg, const char *program, int wait_ms)
{
    char who[128], where[400], why[EVP_WHY_MAX], reason[EVP_WHY_MAX];
    evp_deploy_who(who, sizeof who, program);
    evp_pg_describe(cfg, where, sizeof where);
    int64_t end = s_mono_ms() + wait_ms;
    /* Each attempt waits at most what is left of wait_ms (at least 1 s). */
    evp_config_t c = *cfg;
    for (;;) {
        int64_t left = end - s_mono_ms();
        int secs = (int)((left + 999) / 1000);
        c.postgres_connect_timeout = secs < 1 ? 1 : secs < cfg->postgres_connect_timeout ? secs
                                                                                         : cfg->postgres_connect_timeout;
        why[0] = '\0';
        PGconn *conn = evp_pg_connect(&c, program, why, sizeof why);
        evp_deploy_t rc = EVP_DEPLOY_FAILED;
        if (conn) {
            rc = evp_deploy_check_conn(conn, cfg, who, why, sizeof why);
            PQfinish(conn);
        }
        switch (rc) {
        case EVP_DEPLOY_AGREE:
            evp_info("deployment settings agree", "partitions=%d", cfg->partitions);
            return 0;
        case EVP_DEPLOY_NO_TABLE:
            evp_info("deployment settings not recorded yet: no writer has set up the database", "partitions=%d",
                     cfg->partitions);
            return 0;
        case EVP_DEPLOY_DIFFERENT:
            evp_error("refusing to start: a deployment setting differs", "reason=\"%s\"",
                      evp_log_text(reason, sizeof reason, why, strlen(why)));
            return EVP_EXIT_REFUSED;
        case EVP_DEPLOY_FAILED:
            break;
        }
        if (s_mono_ms() >= end || evp_stopping()) {
            evp_warn("deployment settings not checked: PostgreSQL unavailable; going on (the writers check them, "
                     "and the partitions in heartbeats)",
                     "%s waited_ms=%d reason=\"%s\"", where, wait_ms,
                     evp_log_text(reason, sizeof reason, why, strlen(why)));
            return 0;
        }
        struct timespec ts = {0, S_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}
