/* Asking PostgreSQL what the writers have committed (see ingest_commit.h). */
#include "ingest_commit.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/pg.h"

#define SQL_CHECKPOINTS_OF_SOURCE "SELECT partition, seq FROM checkpoints WHERE source = $1"

struct ingest_commit_t {
    const evp_config_t *cfg; /* POSTGRES_* settings (not owned) */
    PGconn *conn;            /* the connection, or NULL */
    int64_t *committed;      /* PARTITIONS entries of scratch */
    int partitions;          /* entries in committed */
};

ingest_commit_t *ingest_commit_new(const evp_config_t *cfg)
{
    ingest_commit_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->partitions = cfg->partitions;
    self->committed = calloc((size_t)cfg->partitions, sizeof *self->committed);
    if (!self->committed) {
        free(self);
        return NULL;
    }
    return self;
}

void ingest_commit_destroy(ingest_commit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_commit_t *self = *self_p;
    if (self->conn)
        PQfinish(self->conn);
    free(self->committed);
    free(self);
    *self_p = NULL;
}

/* Fills committed[] for source. */
static int s_checkpoints(ingest_commit_t *self, const char *source, char *why, size_t whylen)
{
    memset(self->committed, 0, (size_t)self->partitions * sizeof *self->committed);
    const char *params[1] = {source};
    PGresult *r = evp_pg_query_why(self->conn, SQL_CHECKPOINTS_OF_SOURCE, 1, params, PGRES_TUPLES_OK,
                                   "reading checkpoints", why, whylen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        long p = strtol(PQgetvalue(r, i, 0), NULL, 10);
        int64_t seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (p >= 0 && p < self->partitions)
            self->committed[p] = seq;
    }
    PQclear(r);
    return 0;
}

/* Connects when not connected (again after a lost connection). */
static int s_connect(ingest_commit_t *self, char *why, size_t whylen)
{
    if (self->conn && evp_pg_lost(self->conn)) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    if (!self->conn)
        self->conn = evp_pg_connect(self->cfg, "evpipe-ingest", why, whylen);
    return self->conn ? 0 : -1;
}

int ingest_commit_read(ingest_commit_t *self, const ingest_heads_t *heads, ingest_heads_t *committed, char *why,
                       size_t whylen)
{
    if (s_connect(self, why, whylen) != 0)
        return -1;
    for (size_t i = 0; i < ingest_heads_count(heads); i++) {
        const char *source = ingest_heads_source(heads, i);
        if (s_checkpoints(self, source, why, whylen) != 0)
            return -1;
        for (int p = 0; p < self->partitions; p++)
            if (self->committed[p] > 0)
                ingest_heads_note(committed, (ev_str_t){source, (uint32_t)strlen(source)}, p, self->committed[p]);
    }
    return 0;
}

int64_t ingest_commit_missing(ingest_commit_t *self, const ingest_heads_t *heads, int64_t *per_source,
                              ev_buf_t *report, char *why, size_t whylen)
{
    if (s_connect(self, why, whylen) != 0)
        return -1;
    int64_t missing = 0;
    int parts = ingest_heads_partitions(heads) < self->partitions ? ingest_heads_partitions(heads)
                                                                    : self->partitions;
    for (size_t i = 0; i < ingest_heads_count(heads); i++) {
        const char *source = ingest_heads_source(heads, i);
        if (s_checkpoints(self, source, why, whylen) != 0)
            return -1;
        int64_t mine = 0;
        for (int p = 0; p < parts; p++) {
            int64_t want = ingest_heads_seq(heads, i, p);
            if (want <= self->committed[p])
                continue;
            mine += want - self->committed[p];
            if (report)
                ev_buf_printf(report, "  source=%s partition=%d committed=%" PRId64 " published=%" PRId64 "\n",
                              source, p, self->committed[p], want);
        }
        if (per_source)
            per_source[i] = mine;
        missing += mine;
    }
    return missing;
}

int ingest_commit_pace(ingest_commit_pace_t *pace, int64_t now_ms, int64_t missing)
{
    if (missing < 0)
        return INGEST_COMMIT_ASK_MS;
    if (!pace->started || missing > pace->first_missing) {
        /* The first answer, or more missing than then: start over. */
        pace->started = true;
        pace->first_ms = now_ms;
        pace->first_missing = missing;
        return INGEST_COMMIT_ASK_MS;
    }
    int64_t fell = pace->first_missing - missing, took = now_ms - pace->first_ms;
    if (fell <= 0 || took <= 0)
        return INGEST_COMMIT_ASK_MS;
    /* missing / (fell / took) < 2 * ASK, without dividing. */
    bool near = (double)missing * (double)took < 2.0 * INGEST_COMMIT_ASK_MS * (double)fell;
    return near ? INGEST_COMMIT_ASK_NEAR_MS : INGEST_COMMIT_ASK_MS;
}
