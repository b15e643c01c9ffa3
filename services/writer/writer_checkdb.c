/* Judging a PostgreSQL server's settings for evpipe (see writer_checkdb.h).
 * The rules are one table; docs/postgresql.md explains each with its
 * measured effect. */
#include "writer_checkdb.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/pg.h"

typedef enum {
    S_ON,      /* must be on */
    S_AT_LEAST, /* a number (in base units: bytes, seconds) at least limit */
    S_NOT,     /* must not be the text of `text` */
} s_test_t;

typedef struct {
    const char *name;   /* the setting */
    s_test_t test;
    double limit;       /* S_AT_LEAST, in base units */
    const char *text;   /* S_NOT: the value that is wrong */
    bool hurts;         /* false: advice only */
    const char *want;   /* what it should be, as a person writes it */
    const char *why;    /* the advice */
} s_rule_t;

#define S_MB (1024.0 * 1024.0)
#define S_GB (1024.0 * S_MB)

static const s_rule_t s_rules[] = {
    {"fsync", S_ON, 0, NULL, true, "on",
     "off loses committed rows and checkpoints together in a crash, and can corrupt the database"},
    {"full_page_writes", S_ON, 0, NULL, true, "on", "off can leave torn pages after a crash"},
    {"autovacuum", S_ON, 0, NULL, true, "on",
     "an append-only table is then never vacuumed until an anti-wraparound vacuum reads all of it at once"},
    {"track_counts", S_ON, 0, NULL, true, "on", "autovacuum needs it to see the table grow"},
    {"autovacuum_vacuum_insert_threshold", S_AT_LEAST, 0, NULL, true, "not -1",
     "-1 stops the vacuums that inserts trigger, so events' pages are frozen only by an anti-wraparound vacuum"},
    {"shared_buffers", S_AT_LEAST, 256 * S_MB, NULL, true, "at least 256MB (a quarter of memory)",
     "the indexes of a growing table fall out of the cache: an out-of-order backfill slowed to 0.38x at 39M rows "
     "with 128MB, 0.62x with 4GB"},
    {"max_wal_size", S_AT_LEAST, 2 * S_GB, NULL, true, "at least 2GB (4-16GB for bulk loads)",
     "a million events write about 0.5GB of WAL: with less, checkpoints come every few seconds of load and "
     "every page they touch is written in full again"},
    {"checkpoint_timeout", S_AT_LEAST, 600, NULL, false, "at least 10min",
     "fewer checkpoints, fewer full-page images in the WAL"},
    {"checkpoint_completion_target", S_AT_LEAST, 0.9, NULL, false, "0.9",
     "spreads checkpoint writes over the interval"},
    {"maintenance_work_mem", S_AT_LEAST, 256 * S_MB, NULL, false, "at least 256MB",
     "index builds (a new index, partitioning a table with rows) and vacuum go faster"},
    {"wal_compression", S_NOT, 0, "off", false, "lz4 or pglz",
     "full-page images after a checkpoint take less WAL"},
};

/* Bytes, seconds or a plain number, from a setting and its unit. */
static bool s_number(const char *setting, const char *unit, double *out)
{
    char *end;
    double v = strtod(setting, &end);
    if (end == setting || *end)
        return false;
    static const struct {
        const char *unit;
        double factor;
    } units[] = {{"B", 1},        {"kB", 1024},     {"8kB", 8192},     {"16kB", 16384}, {"MB", S_MB},
                 {"16MB", 16 * S_MB}, {"GB", S_GB}, {"ms", 0.001},     {"s", 1},        {"min", 60},
                 {"h", 3600},      {"d", 86400},     {"", 1}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit ? unit : "", units[i].unit) == 0) {
            *out = v * units[i].factor;
            return true;
        }
    return false;
}

static const writer_checkdb_value_t *s_find(const writer_checkdb_value_t *values, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(values[i].name, name) == 0)
            return &values[i];
    return NULL;
}

/* The value as a person writes it: 128MB, 300s, 0.2. */
static void s_human(const writer_checkdb_value_t *v, char *out, size_t outlen)
{
    double x;
    bool bytes = v->unit && strchr(v->unit, 'B');
    if (!bytes || !s_number(v->setting, v->unit, &x))
        snprintf(out, outlen, "%s%s", v->setting, v->unit && *v->unit && !bytes ? v->unit : "");
    else if (x >= S_GB && x == (double)(long long)(x / S_GB) * S_GB)
        snprintf(out, outlen, "%.0fGB", x / S_GB);
    else
        snprintf(out, outlen, "%.0fMB", x / S_MB);
}

static void s_print(FILE *out, bool hurts, const writer_checkdb_value_t *v, const char *want, const char *why)
{
    char value[64];
    s_human(v, value, sizeof value);
    fprintf(out, "%-6s %s = %s (want %s): %s\n", hurts ? "hurts" : "advice", v->name, value, want, why);
}

/* Rules that read more than one value. */
static int s_special(const writer_checkdb_value_t *values, size_t n, FILE *out)
{
    int hurts = 0;
    const writer_checkdb_value_t *sf = s_find(values, n, "autovacuum_vacuum_insert_scale_factor");
    double f;
    if (sf && s_number(sf->setting, sf->unit, &f) && f > 0.05)
        s_print(out, false, sf, "0.05 or less",
                "an append-only table is vacuumed (its pages marked all-visible and frozen) after this share of "
                "new rows: at 0.2 a 50M-row table waits for 10M new rows, then vacuums them at once");
    const writer_checkdb_value_t *timed = s_find(values, n, "checkpoints_timed");
    const writer_checkdb_value_t *req = s_find(values, n, "checkpoints_req");
    double t, r;
    if (timed && req && s_number(timed->setting, "", &t) && s_number(req->setting, "", &r) && r >= 5 && r > t) {
        s_print(out, true, req, "fewer than checkpoints_timed",
                "most checkpoints were forced by WAL volume, not by checkpoint_timeout: raise max_wal_size");
        hurts++;
    }
    return hurts;
}

int writer_checkdb_judge(const writer_checkdb_value_t *values, size_t n, FILE *out)
{
    int hurts = 0;
    for (size_t i = 0; i < sizeof s_rules / sizeof s_rules[0]; i++) {
        const s_rule_t *rule = &s_rules[i];
        const writer_checkdb_value_t *v = s_find(values, n, rule->name);
        if (!v)
            continue;
        bool bad;
        double x;
        switch (rule->test) {
        case S_ON:
            bad = strcmp(v->setting, "on") != 0;
            break;
        case S_NOT:
            bad = strcmp(v->setting, rule->text) == 0;
            break;
        default:
            bad = s_number(v->setting, v->unit, &x) && x < rule->limit;
            break;
        }
        if (!bad)
            continue;
        s_print(out, rule->hurts, v, rule->want, rule->why);
        if (rule->hurts)
            hurts++;
    }
    return hurts + s_special(values, n, out);
}

int writer_checkdb_run(PGconn *c, FILE *out, char *why, size_t whylen)
{
    static const char sql[] =
        "SELECT name, setting, coalesce(unit, '') FROM pg_settings "
        "UNION ALL SELECT 'checkpoints_timed', checkpoints_timed::text, '' FROM pg_stat_bgwriter "
        "UNION ALL SELECT 'checkpoints_req', checkpoints_req::text, '' FROM pg_stat_bgwriter";
    PGresult *r = evp_pg_query_why(c, sql, 0, NULL, PGRES_TUPLES_OK, "reading pg_settings", why, whylen);
    if (!r)
        return -1;
    size_t n = (size_t)PQntuples(r);
    writer_checkdb_value_t *values = calloc(n ? n : 1, sizeof *values);
    if (!values) {
        PQclear(r);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        values[i] = (writer_checkdb_value_t){PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1),
                                              PQgetvalue(r, (int)i, 2)};
    int hurts = writer_checkdb_judge(values, n, out);
    free(values);
    PQclear(r);
    return hurts;
}
