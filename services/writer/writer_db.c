/* The writer's PostgreSQL side (see writer_db.h). */
#include "writer_db.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evpipe/copy.h"
#include "evpipe/log.h"
#include "evpipe/pg.h"

/* ---- SQL ---- */

/* The checkpoints move by compare-and-set: each stream's row must still hold
 * what this writer last read or wrote ($4; 0 and no row for a new stream).
 * A row another transaction moved (or inserted) meanwhile is left alone,
 * so the count of rows set falls short and the batch is not committed: two
 * transactions can never both store the rows after the same checkpoint. A
 * concurrent transaction on the same row is waited for and then re-checked. */
static const char S_SET_CHECKPOINTS[] =
    "WITH k AS (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[])"
    " AS k(source, partition, seq, expect)),"
    " moved AS (UPDATE checkpoints c SET seq = k.seq, updated_at = now(), settled = false FROM k"
    " WHERE c.source = k.source AND c.partition = k.partition AND c.seq = k.expect RETURNING 1),"
    " added AS (INSERT INTO checkpoints (source, partition, seq)"
    " SELECT source, partition, seq FROM k WHERE expect = 0 ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM added)";
static const char S_UPSERT_HEADS[] =
    "INSERT INTO publisher_heads (source, partition, seq)"
    " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
    " ON CONFLICT (source, partition) DO UPDATE SET seq = EXCLUDED.seq, seen_at = now()";
static const char S_INSERT_GAPS[] =
    "INSERT INTO gaps (source, partition, first_seq, last_seq)"
    " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[])";
/* A transaction's id, and later whether it committed (PostgreSQL 10 and
 * later): 'committed', 'aborted', 'in progress', or NULL when too old. */
static const char S_TXID[] = "SELECT txid_current()";
static const char S_TXID_STATUS[] = "SELECT txid_status($1::bigint)";
static const char S_COPY_REJECTS[] = "COPY rejects (source, partition, seq, reason, detail, raw) FROM STDIN";
static const char S_RELOAD[] =
    "SELECT k.i, c.seq FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS k(source, partition, i)"
    " JOIN checkpoints c USING (source, partition)";
/* The streams of partitions taken that may still have work: published past
 * their checkpoint, or not marked settled by the writer that last forgot
 * them (S_SETTLE; such a stream is looked past for events nobody announced).
 * At most $2 a partition, the latest moved first; the others are read when
 * they come back (S_STREAM). */
static const char S_LOAD[] =
    "SELECT source, partition, seq, head FROM ("
    " SELECT source, partition, COALESCE(c.seq, 0) AS seq, COALESCE(h.seq, 0) AS head,"
    " row_number() OVER (PARTITION BY partition ORDER BY c.updated_at DESC NULLS FIRST) AS n"
    " FROM (SELECT source, partition, seq, updated_at, settled FROM checkpoints"
    " WHERE partition = ANY($1::int[])) c"
    " FULL JOIN (SELECT source, partition, seq FROM publisher_heads WHERE partition = ANY($1::int[])) h"
    " USING (source, partition)"
    " WHERE COALESCE(h.seq, 0) > COALESCE(c.seq, 0) OR NOT COALESCE(c.settled, true)) s"
    " WHERE n <= $2::int";
/* Marks the checkpoints of forgotten streams settled, where they still are
 * where the writer left them. */
static const char S_SETTLE[] =
    "UPDATE checkpoints c SET settled = true"
    " FROM unnest($1::text[], $2::int[], $3::bigint[]) AS k(source, partition, seq)"
    " WHERE c.source = k.source AND c.partition = k.partition AND c.seq = k.seq";
/* One stream's checkpoint and recorded head (0 when none). */
static const char S_STREAM[] =
    "SELECT COALESCE((SELECT seq FROM checkpoints WHERE source = $1 AND partition = $2::int), 0),"
    " COALESCE((SELECT seq FROM publisher_heads WHERE source = $1 AND partition = $2::int), 0)";
/* Sharing partitions. */
static const char S_LISTEN[] = "LISTEN " WRITER_DB_CHANNEL;
static const char S_NOTIFY[] = "NOTIFY " WRITER_DB_CHANNEL;
/* PostgreSQL 14 and later wait (up to 2 s) until the backend is gone. */
static const char S_END_PREVIOUS[] =
    "SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity"
    " WHERE pid = $1::int AND application_name = $2 AND pid <> pg_backend_pid()";
static const char S_END_PREVIOUS_OLD[] =
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE pid = $1::int AND application_name = $2 AND pid <> pg_backend_pid()";
static const char S_MEMBERS[] =
    "SELECT DISTINCT application_name FROM pg_stat_activity"
    " WHERE datname = current_database() AND left(application_name, length($1)) = $1 ORDER BY 1";
static const char S_LOCK[] = "SELECT p FROM unnest($2::int[]) AS p WHERE pg_try_advisory_lock($1::int, p)";
static const char S_UNLOCK[] = "SELECT pg_advisory_unlock($1::int, p) FROM unnest($2::int[]) AS p";
/* One implicit transaction: the NOTIFY goes out once the name and the locks are gone. */
static const char S_LEAVE[] = "SELECT set_config('application_name', 'evpipe-writer-leaving', false);"
                              " SELECT pg_advisory_unlock_all();"
                              " NOTIFY " WRITER_DB_CHANNEL;

/* Rows are sent ahead of the commit once this many bytes of them wait. */
#define S_AHEAD_MIN (64 * 1024)

struct writer_db_t {
    const evp_config_t *cfg; /* settings (connection) */
    writer_metrics_t *metrics; /* commit timing and latencies, or NULL */
    PGconn *conn;            /* the connection, or NULL */
    char name[WRITER_DB_NAME_MAX]; /* application_name of the connections */
    uint64_t session;        /* connections made */
    int previous_pid;        /* backend of the last connection dropped, or 0 */
    char describe[300];      /* where it connects, without the password */
    char copy_sql[1200];     /* COPY events (columns) FROM STDIN */
    int backoff_ms;          /* delay after the next failure */
    int64_t next_attempt_ms; /* no connection attempt before this */
    bool verify;             /* a commit or the connection failed: this writer (a commit whose answer was
                              * lost) or another (the locks went) may have committed some of the batch;
                              * reread the checkpoints first */
    /* Rejects without a stream: no checkpoint tells whether a transaction
     * whose COMMIT answer was lost stored them, so PostgreSQL is asked
     * about that transaction (txid_status) before they are sent again. */
    char anon_xid[24];       /* txid of the last attempt that held such rejects, "" when none is in doubt */
    size_t anon_count;       /* how many it held: the batch's first ones */
    bool lose_answer;        /* tests: treat the next successful COMMIT's answer as lost */
    ev_buf_t a1, a2, a3, a4; /* array parameters, as text literals */
    int64_t *upto;           /* per stream id: committed seq read back, or -1 */
    size_t upto_cap;         /* entries in upto */
    /* Rows sent ahead of the commit (writer_db_send_ahead): a transaction is
     * open on the connection, in the COPY of the events. */
    bool ahead;                        /* such a COPY is open */
    const writer_batch_t *ahead_batch; /* the batch whose rows it holds */
    uint64_t ahead_edits;              /* that batch's edits when it began */
    size_t ahead_bytes;                /* bytes of the batch's COPY rows sent */
};

static void s_ahead_drop(writer_db_t *self);

/* ---- Connection ---- */

static void s_notice(void *arg, const char *message)
{
    (void)arg;
    /* "relation ... already exists, skipping" and the like. */
    if (evp_log_enabled(EVP_LOG_DEBUG))
        evp_debug("PostgreSQL notice", "notice=\"%.*s\"", (int)strcspn(message, "\n"), message);
}

writer_db_t *writer_db_new(const evp_config_t *cfg, writer_metrics_t *metrics)
{
    writer_db_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->metrics = metrics;
    self->backoff_ms = WRITER_DB_BACKOFF_MIN_MS;
    snprintf(self->name, sizeof self->name, "evpipe-writer");
    evp_pg_describe(cfg, self->describe, sizeof self->describe);
    snprintf(self->copy_sql, sizeof self->copy_sql, "COPY events (%s) FROM STDIN WITH (FORMAT binary)",
             ev_copy_columns());
    ev_buf_init(&self->a1);
    ev_buf_init(&self->a2);
    ev_buf_init(&self->a3);
    ev_buf_init(&self->a4);
    return self;
}

void writer_db_destroy(writer_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    writer_db_t *self = *self_p;
    if (self->conn)
        PQfinish(self->conn);
    ev_buf_free(&self->a1);
    ev_buf_free(&self->a2);
    ev_buf_free(&self->a3);
    ev_buf_free(&self->a4);
    free(self->upto);
    free(self);
    *self_p = NULL;
}

bool writer_db_connected(const writer_db_t *self)
{
    return self->conn != NULL;
}

int64_t writer_db_next_attempt_ms(const writer_db_t *self)
{
    return self->next_attempt_ms;
}

PGconn *writer_db_conn(writer_db_t *self)
{
    s_ahead_drop(self);
    return self->conn;
}

/* Schedules the next attempt after the current delay, then doubles it. */
static int s_backoff(writer_db_t *self, int64_t now_ms)
{
    int delay = self->backoff_ms;
    self->next_attempt_ms = now_ms + delay;
    self->backoff_ms = delay * 2 > WRITER_DB_BACKOFF_MAX_MS ? WRITER_DB_BACKOFF_MAX_MS : delay * 2;
    return delay;
}

bool writer_db_ensure(writer_db_t *self, int64_t now_ms)
{
    if (self->conn)
        return true;
    if (now_ms < self->next_attempt_ms)
        return false;
    char why[EVP_WHY_MAX];
    PGconn *c = evp_pg_connect(self->cfg, self->name, why, sizeof why);
    if (!c) {
        int delay = s_backoff(self, now_ms);
        char reason[sizeof why];
        evp_warn("PostgreSQL unavailable", "%s reason=\"%s\" retry_in_ms=%d", self->describe,
                 evp_log_text(reason, sizeof reason, why, strlen(why)), delay);
        return false;
    }
    PQsetNoticeProcessor(c, s_notice, NULL);
    self->conn = c;
    self->session++;
    self->backoff_ms = WRITER_DB_BACKOFF_MIN_MS;
    evp_info("connected to PostgreSQL", "%s", self->describe);
    return true;
}

void writer_db_fail(writer_db_t *self, int64_t now_ms, const char *why)
{
    bool lost = evp_pg_lost(self->conn);
    char reason[EVP_WHY_MAX];
    evp_error(lost ? "lost the PostgreSQL connection" : "PostgreSQL failed", "%s reason=\"%s\"", self->describe,
              evp_log_text(reason, sizeof reason, why, strlen(why)));
    if (self->conn) {
        self->previous_pid = PQbackendPID(self->conn);
        PQfinish(self->conn);
    }
    self->conn = NULL;
    self->ahead = false; /* its transaction went with the connection */
    /* The locks went with it too: another writer may commit some of this
     * batch's events before the next commit, which reads the checkpoints
     * back first and drops what they cover. */
    self->verify = true;
    /* A lost connection is tried again at once; after an error, wait. */
    if (lost)
        self->next_attempt_ms = now_ms;
    else
        s_backoff(self, now_ms);
}

void writer_db_set_name(writer_db_t *self, const char *name)
{
    snprintf(self->name, sizeof self->name, "%s", name);
}

uint64_t writer_db_session(const writer_db_t *self)
{
    return self->session;
}

/* ---- Array parameters as text literals ---- */

static void s_array_begin(ev_buf_t *b)
{
    ev_buf_reset(b);
    ev_buf_putc(b, '{');
}

static void s_array_sep(ev_buf_t *b)
{
    if (b->len > 1)
        ev_buf_putc(b, ',');
}

static void s_array_text(ev_buf_t *b, const char *s, size_t len)
{
    s_array_sep(b);
    ev_buf_reserve(b, 2 * len + 2);
    ev_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            ev_buf_putc(b, '\\');
        ev_buf_putc(b, s[i]);
    }
    ev_buf_putc(b, '"');
}

static void s_array_int(ev_buf_t *b, int64_t v)
{
    s_array_sep(b);
    ev_buf_put_i64(b, v);
}

static void s_array_end(ev_buf_t *b)
{
    ev_buf_putc(b, '}');
}

/* An int array parameter of partitions, in a1. */
static void s_partitions_array(writer_db_t *self, const int32_t *partitions, size_t n)
{
    s_array_begin(&self->a1);
    for (size_t i = 0; i < n; i++)
        s_array_int(&self->a1, partitions[i]);
    s_array_end(&self->a1);
}

/* a1/a2/a3: sources, partitions and seqs of marks (checkpoints or heads). */
static void s_marks_arrays(writer_db_t *self, const writer_mark_t *marks, size_t n, const writer_streams_t *ss)
{
    s_array_begin(&self->a1);
    s_array_begin(&self->a2);
    s_array_begin(&self->a3);
    for (size_t i = 0; i < n; i++) {
        const writer_stream_t *s = writer_streams_by_id(ss, marks[i].stream);
        assert(s);
        s_array_text(&self->a1, s->source, s->source_len);
        s_array_int(&self->a2, s->partition);
        s_array_int(&self->a3, marks[i].seq);
    }
    s_array_end(&self->a1);
    s_array_end(&self->a2);
    s_array_end(&self->a3);
}

/* ---- Statements ---- */

/* The outcome of a step of a commit. */
typedef enum {
    S_OK,   /* done */
    S_DATA, /* PostgreSQL refused a value (SQLSTATE class 22 or 23: evp_pg_err_t.data) */
    S_RACE, /* a checkpoint was not where this writer left it: another transaction moved it */
    S_FAIL, /* anything else: the transaction is lost, retry later */
} s_rc_t;

/* The outcome of a step run through evpipe/pg.h (err set when !ok). */
static s_rc_t s_rc(bool ok, const evp_pg_err_t *err)
{
    return ok ? S_OK : err->data ? S_DATA : S_FAIL;
}

PGresult *writer_db_query(writer_db_t *self, int64_t now_ms, const char *sql, int n, const char *const *vals,
                          ExecStatusType want, const char *what, char *why, size_t whylen)
{
    if (!self->conn) {
        snprintf(why, whylen, "%s: not connected", what);
        return NULL;
    }
    s_ahead_drop(self);
    PGresult *r = evp_pg_query_why(self->conn, sql, n, vals, want, what, why, whylen);
    if (!r)
        writer_db_fail(self, now_ms, why);
    return r;
}

/* writer_db_query after connecting when not connected. */
static PGresult *s_query(writer_db_t *self, int64_t now_ms, const char *sql, int n, const char *const *vals,
                         ExecStatusType want, const char *what, char *why, size_t whylen)
{
    if (!writer_db_ensure(self, now_ms)) {
        snprintf(why, whylen, "%s: PostgreSQL unavailable", what);
        return NULL;
    }
    return writer_db_query(self, now_ms, sql, n, vals, want, what, why, whylen);
}

/* Ends the transaction open on the connection, if it is still there. */
static s_rc_t s_rollback(writer_db_t *self, s_rc_t rc)
{
    evp_pg_rollback(self->conn);
    return rc;
}

/* ---- Rows ---- */

/* Starts the binary COPY of events: the statement, then the header. */
static s_rc_t s_copy_events_begin(writer_db_t *self, const char *what, evp_pg_err_t *err)
{
    if (!evp_pg_copy_begin(self->conn, self->copy_sql, what, err))
        return s_rc(false, err);
    if (!evp_pg_copy_put(self->conn, ev_copy_binary_header, sizeof ev_copy_binary_header))
        return s_rc(evp_pg_copy_end(self->conn, false, what, err), err);
    return S_OK;
}

/* Sends the last len bytes of rows and the trailer, ends the COPY of events. */
static s_rc_t s_copy_events_end(writer_db_t *self, const char *data, size_t len, evp_pg_err_t *err)
{
    bool sent = evp_pg_copy_put(self->conn, data, len) &&
                evp_pg_copy_put(self->conn, ev_copy_binary_trailer, sizeof ev_copy_binary_trailer);
    return s_rc(evp_pg_copy_end(self->conn, sent, "COPY events", err), err);
}

/* COPY of rows [lo, hi) (contiguous in the batch's binary rows). */
static s_rc_t s_copy_rows(writer_db_t *self, const writer_batch_t *b, size_t lo, size_t hi, evp_pg_err_t *err)
{
    size_t start = b->rows[lo].off, end = b->rows[hi - 1].off + b->rows[hi - 1].len;
    s_rc_t rc = s_copy_events_begin(self, "COPY events", err);
    return rc == S_OK ? s_copy_events_end(self, b->copy.data + start, end - start, err) : rc;
}

/* Copies rows [lo, hi) under savepoints, isolating each row PostgreSQL
 * refuses: the failing line PostgreSQL names is tried alone, or the range is
 * halved when it names none. A refused row becomes a reject. */
static s_rc_t s_copy_isolating(writer_db_t *self, writer_batch_t *b, const writer_streams_t *ss, size_t lo,
                               size_t hi, evp_pg_err_t *err)
{
    while (lo < hi) {
        if (!evp_pg_exec(self->conn, "SAVEPOINT w", 0, NULL, "SAVEPOINT", err))
            return S_FAIL;
        s_rc_t rc = s_copy_rows(self, b, lo, hi, err);
        if (rc == S_OK)
            return evp_pg_exec(self->conn, "RELEASE SAVEPOINT w", 0, NULL, "RELEASE SAVEPOINT", err) ? S_OK : S_FAIL;
        if (rc == S_FAIL)
            return S_FAIL;
        evp_pg_err_t undo;
        if (!evp_pg_exec(self->conn, "ROLLBACK TO SAVEPOINT w", 0, NULL, "ROLLBACK TO SAVEPOINT", &undo)) {
            *err = undo;
            return S_FAIL;
        }
        if (hi - lo == 1) {
            const writer_stream_t *s = writer_streams_by_id(ss, b->rows[lo].stream);
            writer_batch_refuse_row(b, s, lo, err->detail);
            char reason[sizeof err->detail];
            evp_log_text(reason, sizeof reason, err->detail, strlen(err->detail));
            evp_warn("PostgreSQL refused an event", "source=%s partition=%d seq=%lld reason=\"%s\"", s->name,
                     (int)s->partition, (long long)b->rows[lo].seq, reason);
            return S_OK;
        }
        if (err->line >= 1 && (size_t)err->line <= hi - lo) {
            size_t bad = lo + (size_t)err->line - 1;
            if (bad > lo && (rc = s_copy_isolating(self, b, ss, lo, bad, err)) != S_OK)
                return rc;
            if ((rc = s_copy_isolating(self, b, ss, bad, bad + 1, err)) != S_OK)
                return rc;
            lo = bad + 1;
            continue;
        }
        size_t mid = lo + (hi - lo) / 2;
        if ((rc = s_copy_isolating(self, b, ss, lo, mid, err)) != S_OK)
            return rc;
        lo = mid;
    }
    return S_OK;
}

/* ---- Rows sent ahead of the commit ---- */

/* Where the batch's rows end in its COPY rows. */
static size_t s_rows_end(const writer_batch_t *b)
{
    return b->nrows > 0 ? b->rows[b->nrows - 1].off + b->rows[b->nrows - 1].len : 0;
}

/* Whether what was sent ahead is still the start of b's COPY rows. */
static bool s_ahead_valid(const writer_db_t *self, const writer_batch_t *b)
{
    return self->ahead && self->ahead_batch == b && self->ahead_edits == b->edits &&
           self->ahead_bytes <= s_rows_end(b);
}

/* Gives up the rows sent ahead before the connection serves anything else:
 * their COPY is failed on purpose and the transaction rolled back (the batch
 * keeps the rows; its commit sends them again). */
static void s_ahead_drop(writer_db_t *self)
{
    if (!self->ahead)
        return;
    self->ahead = false;
    evp_debug("rows sent ahead of the commit given up", "bytes=%zu", self->ahead_bytes);
    if (evp_pg_lost(self->conn))
        return;
    PQputCopyEnd(self->conn, "rows sent ahead of the commit were given up");
    evp_pg_drain(self->conn);
    s_rollback(self, S_OK);
}

bool writer_db_ahead(const writer_db_t *self)
{
    return self->ahead;
}

void writer_db_send_ahead(writer_db_t *self, const writer_batch_t *b, int64_t now_ms)
{
    if (self->ahead && !s_ahead_valid(self, b))
        s_ahead_drop(self);
    size_t end = s_rows_end(b), from = self->ahead ? self->ahead_bytes : 0;
    if (!self->conn || self->verify || end - from < S_AHEAD_MIN)
        return;
    evp_pg_err_t err;
    if (!self->ahead) {
        if (!evp_pg_exec(self->conn, "BEGIN", 0, NULL, "sending rows ahead: BEGIN", &err) ||
            s_copy_events_begin(self, "sending rows ahead: COPY events", &err) != S_OK) {
            writer_db_fail(self, now_ms, err.why);
            return;
        }
        self->ahead = true;
        self->ahead_batch = b;
        self->ahead_edits = b->edits;
    }
    if (!evp_pg_copy_put(self->conn, b->copy.data + from, end - from)) {
        const char *why = PQerrorMessage(self->conn);
        evp_pg_err_set(&err, "sending rows ahead: %s", *why ? why : "the connection failed");
        writer_db_fail(self, now_ms, err.why);
        return;
    }
    self->ahead_bytes = end;
}

/* ---- The transaction ---- */

/* Moves the batch's checkpoints from where this writer last saw them
 * (S_SET_CHECKPOINTS). S_RACE when another transaction moved one. */
static s_rc_t s_set_checkpoints(writer_db_t *self, const writer_batch_t *b, const writer_streams_t *ss,
                                evp_pg_err_t *err)
{
    s_marks_arrays(self, b->ckpts, b->nckpts, ss);
    s_array_begin(&self->a4);
    for (size_t i = 0; i < b->nckpts; i++)
        s_array_int(&self->a4, writer_streams_by_id(ss, b->ckpts[i].stream)->committed);
    s_array_end(&self->a4);
    const char *vals[] = {self->a1.data, self->a2.data, self->a3.data, self->a4.data};
    PGresult *r = evp_pg_query_one(self->conn, S_SET_CHECKPOINTS, 4, vals, "setting checkpoints", err);
    if (!r)
        return S_FAIL;
    long set = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (set == (long)b->nckpts)
        return S_OK;
    evp_pg_err_set(err, "setting checkpoints: %zu of %ld were moved by another transaction",
                   b->nckpts - (size_t)set, (long)b->nckpts);
    return S_RACE;
}

static s_rc_t s_note_anonymous(writer_db_t *self, const writer_batch_t *b, evp_pg_err_t *err);

/* One attempt. isolate: copy under savepoints (a row was refused before).
 * ahead: bytes of the COPY rows already sent in this transaction
 * (writer_db_send_ahead), or 0. The checkpoints go last: their
 * compare-and-set waits for a concurrent transaction on the same rows and
 * then finds what it moved, and the rows it locks stay locked until the
 * COMMIT, so no other writer's commit can slip in between. */
static s_rc_t s_attempt(writer_db_t *self, writer_batch_t *b, const writer_streams_t *ss, bool isolate,
                        size_t ahead, evp_pg_err_t *err)
{
    PGconn *c = self->conn;
    s_rc_t rc = S_OK;
    if (ahead > 0) {
        rc = s_copy_events_end(self, b->copy.data + ahead, s_rows_end(b) - ahead, err);
    } else {
        if (!evp_pg_exec(c, "BEGIN", 0, NULL, "BEGIN", err))
            return s_rollback(self, S_FAIL);
        if (b->nrows > 0)
            rc = isolate ? s_copy_isolating(self, b, ss, 0, b->nrows, err)
                         : s_copy_rows(self, b, 0, b->nrows, err);
    }
    if (rc != S_OK)
        return s_rollback(self, rc);
    if (b->nrejects > 0 &&
        !evp_pg_copy(c, S_COPY_REJECTS, b->reject_copy.data, b->reject_copy.len, "COPY rejects", err))
        return s_rollback(self, S_FAIL);
    if (b->ngaps > 0) {
        s_array_begin(&self->a1);
        s_array_begin(&self->a2);
        s_array_begin(&self->a3);
        s_array_begin(&self->a4);
        for (size_t i = 0; i < b->ngaps; i++) {
            const writer_stream_t *s = writer_streams_by_id(ss, b->gaps[i].stream);
            s_array_text(&self->a1, s->source, s->source_len);
            s_array_int(&self->a2, s->partition);
            s_array_int(&self->a3, b->gaps[i].first);
            s_array_int(&self->a4, b->gaps[i].last);
        }
        s_array_end(&self->a1);
        s_array_end(&self->a2);
        s_array_end(&self->a3);
        s_array_end(&self->a4);
        const char *vals[] = {self->a1.data, self->a2.data, self->a3.data, self->a4.data};
        if (!evp_pg_exec(c, S_INSERT_GAPS, 4, vals, "inserting gaps", err))
            return s_rollback(self, S_FAIL);
    }
    if (b->nheads > 0) {
        s_marks_arrays(self, b->heads, b->nheads, ss);
        const char *vals[] = {self->a1.data, self->a2.data, self->a3.data};
        if (!evp_pg_exec(c, S_UPSERT_HEADS, 3, vals, "upserting publisher heads", err))
            return s_rollback(self, S_FAIL);
    }
    if (b->nckpts > 0 && (rc = s_set_checkpoints(self, b, ss, err)) != S_OK)
        return s_rollback(self, rc);
    if (s_note_anonymous(self, b, err) != S_OK)
        return s_rollback(self, S_FAIL);
    if (!evp_pg_exec(c, "COMMIT", 0, NULL, "COMMIT", err))
        return s_rollback(self, S_FAIL);
    if (self->lose_answer) {
        /* As if the connection went right after PostgreSQL committed. */
        self->lose_answer = false;
        PQfinish(self->conn);
        self->conn = NULL;
        evp_pg_err_set(err, "COMMIT: no answer (lost on purpose, for a test)");
        return S_FAIL;
    }
    self->anon_xid[0] = '\0';
    return S_OK;
}

/* ---- Rejects without a stream ---- */

/* Before the COMMIT of a batch holding rejects without a stream: notes the
 * transaction's id, so that if its answer is lost, s_anonymous_outcome can
 * ask PostgreSQL whether it committed. One round trip, only for such
 * batches (events with no usable identity are rare). */
static s_rc_t s_note_anonymous(writer_db_t *self, const writer_batch_t *b, evp_pg_err_t *err)
{
    self->anon_xid[0] = '\0';
    size_t n = b->nrejects ? writer_batch_anonymous_rejects(b) : 0;
    if (n == 0)
        return S_OK;
    PGresult *r = evp_pg_query_one(self->conn, S_TXID, 0, NULL, "reading the transaction id", err);
    if (!r)
        return S_FAIL;
    snprintf(self->anon_xid, sizeof self->anon_xid, "%s", PQgetvalue(r, 0, 0));
    self->anon_count = n;
    PQclear(r);
    return S_OK;
}

/* After a failed commit attempt whose transaction held rejects without a
 * stream: drops them from the batch when that transaction committed after
 * all (its answer was lost), keeps them when it did not. S_OK when the
 * outcome is known, S_RACE when the transaction is still in progress (its
 * backend has not ended yet: ask again later), S_FAIL when asking failed. */
static s_rc_t s_anonymous_outcome(writer_db_t *self, writer_batch_t *b, evp_pg_err_t *err)
{
    if (!self->anon_xid[0])
        return S_OK;
    const char *vals[] = {self->anon_xid};
    PGresult *r =
        evp_pg_query_one(self->conn, S_TXID_STATUS, 1, vals, "asking whether the last transaction committed", err);
    if (!r)
        return S_FAIL;
    const char *status = PQgetisnull(r, 0, 0) ? "unknown" : PQgetvalue(r, 0, 0);
    s_rc_t rc = S_OK;
    if (strcmp(status, "in progress") == 0) {
        rc = S_RACE;
    } else if (strcmp(status, "committed") == 0) {
        size_t dropped = writer_batch_drop_anonymous_rejects(b, self->anon_count);
        evp_info("rejects without an identity were committed before the connection went; dropped from the batch",
                 "txid=%s rejects=%zu", self->anon_xid, dropped);
    } else if (strcmp(status, "aborted") != 0) {
        /* Too old for PostgreSQL to know (beyond its wraparound horizon): it
         * cannot be the transaction of a moment ago. */
        evp_warn("PostgreSQL does not know the outcome of the last transaction; its rejects are stored again",
                 "txid=%s status=%s", self->anon_xid, status);
    }
    PQclear(r);
    if (rc == S_OK)
        self->anon_xid[0] = '\0';
    return rc;
}

void writer_db_lose_next_commit_answer(writer_db_t *self)
{
    self->lose_answer = true;
}

/* Reads back the checkpoints of the streams the batch touches (0 when a
 * stream has none), sets the streams to them and drops what they cover.
 * Returns the rows dropped, or -1. */
static long s_drop_committed(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, evp_pg_err_t *err)
{
    if (b->nckpts == 0)
        return 0;
    s_marks_arrays(self, b->ckpts, b->nckpts, ss);
    const char *vals[] = {self->a1.data, self->a2.data};
    PGresult *r = evp_pg_query(self->conn, S_RELOAD, 2, vals, PGRES_TUPLES_OK, "reading checkpoints back", err);
    if (!r)
        return -1;
    size_t n = writer_streams_id_limit(ss);
    if (n > self->upto_cap) {
        int64_t *u = realloc(self->upto, n * sizeof *u);
        if (!u)
            abort();
        self->upto = u;
        self->upto_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        self->upto[i] = -1;
    for (size_t k = 0; k < b->nckpts; k++)
        writer_stream_advance(ss, writer_streams_by_id(ss, b->ckpts[k].stream), 0);
    for (int i = 0; i < PQntuples(r); i++) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 1;
        int64_t seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (k < 0 || (size_t)k >= b->nckpts)
            continue;
        writer_stream_t *s = writer_streams_by_id(ss, b->ckpts[k].stream);
        self->upto[s->id] = seq;
        writer_stream_advance(ss, s, seq);
    }
    PQclear(r);
    return (long)writer_batch_drop_upto(b, self->upto, n);
}

/* Counts what a committed batch did. */
static void s_committed(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, writer_stats_t *st,
                        int64_t took_us)
{
    int64_t now = ev_now_us();
    size_t rows = 0, repaired = 0;
    for (size_t i = 0; i < b->nrows; i++) {
        const writer_row_t *row = &b->rows[i];
        if (row->refused)
            continue;
        rows++;
        repaired += row->from_repair;
        int64_t latency = ev_elapsed_us(now, row->published_at);
        writer_latency_add(&st->latency, latency);
        writer_latency_add(&st->latency_window, latency);
        writer_metrics_latency(self->metrics, (double)latency / 1e6);
    }
    for (size_t i = 0; i < b->nrejects; i++) {
        st->rejects[b->rejects[i].reason < EV_REJECT__COUNT ? b->rejects[i].reason : EV_REJECT_DECODE]++;
        st->rejects_total++;
    }
    for (size_t i = 0; i < b->ngaps; i++) {
        st->gaps++;
        st->gap_events += (uint64_t)(b->gaps[i].last - b->gaps[i].first + 1);
    }
    for (size_t i = 0; i < b->nckpts; i++)
        writer_stream_advance(ss, writer_streams_by_id(ss, b->ckpts[i].stream), b->ckpts[i].seq);
    st->committed += rows;
    st->repaired += repaired;
    st->batches++;
    writer_metrics_batch(self->metrics, rows, (double)took_us / 1e6);
    evp_debug("batch committed", "rows=%zu rejects=%zu gaps=%zu heads=%zu took_ms=%.1f", rows, b->nrejects,
              b->ngaps, b->nheads, (double)took_us / 1000.0);
}

/* What another transaction committed leaves the batch: the rows its
 * checkpoints cover go, counted as duplicates (logged as `what` when there
 * are some, or always with `always`), so the rest can be tried again. -1
 * (err set), 0 when nothing is left to commit, 1 to go on. */
static int s_drop_what_committed(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, writer_stats_t *st,
                                 size_t *nrejects, const char *what, bool always, evp_pg_err_t *err)
{
    long dropped = s_drop_committed(self, b, ss, err);
    if (dropped < 0)
        return -1;
    if (what && (dropped > 0 || always))
        evp_info(what, "rows=%ld", dropped);
    st->duplicates += (uint64_t)dropped;
    *nrejects = b->nrejects;
    return writer_batch_empty(b) ? 0 : 1;
}

writer_commit_t writer_db_commit(writer_db_t *self, writer_batch_t *b, writer_streams_t *ss, writer_stats_t *st,
                                 int64_t now_ms)
{
    /* Rows sent ahead serve the first attempt while the batch still starts with them. */
    size_t ahead = s_ahead_valid(self, b) ? self->ahead_bytes : 0;
    if (ahead > 0)
        self->ahead = false;
    else
        s_ahead_drop(self);
    if (writer_batch_empty(b))
        return WRITER_COMMIT_OK;
    if (!writer_db_ensure(self, now_ms))
        return WRITER_COMMIT_RETRY;
    evp_pg_err_t err = {0};
    size_t nrejects = b->nrejects;
    int64_t started_us = zclock_usecs();
    /* After a failed attempt the outcome of its COMMIT is unknown. */
    if (self->verify) {
        s_rc_t known = s_anonymous_outcome(self, b, &err);
        if (known == S_FAIL)
            goto fail;
        if (known == S_RACE) {
            evp_debug("the last transaction is still in progress; the commit waits for its outcome", "txid=%s",
                      self->anon_xid);
            return WRITER_COMMIT_RETRY;
        }
        int left = s_drop_what_committed(self, b, ss, st, &nrejects, "rows already committed were dropped from the batch",
                                         false, &err);
        if (left < 0)
            goto fail;
        self->verify = false;
        if (left == 0)
            return WRITER_COMMIT_OK;
    }
    bool isolate = false;
    for (int round = 0; round < 4; round++) {
        s_rc_t rc = s_attempt(self, b, ss, isolate, round == 0 ? ahead : 0, &err);
        if (rc == S_OK) {
            s_committed(self, b, ss, st, zclock_usecs() - started_us);
            return WRITER_COMMIT_OK;
        }
        writer_batch_unrefuse(b, nrejects);
        if (rc == S_FAIL && err.conflict && !evp_pg_lost(self->conn)) {
            /* Another writer's transaction got in the way: what it
             * committed goes, the rest is tried again. */
            char reason[sizeof err.detail];
            evp_info("commit conflicted with another transaction, trying again", "reason=\"%s\"",
                     evp_log_text(reason, sizeof reason, err.detail, strlen(err.detail)));
        } else if (rc == S_RACE) {
            /* Another writer committed after what this one last saw: what
             * it committed goes, the rest is tried again from there. */
        } else if (rc == S_FAIL) {
            goto fail;
        } else {
            isolate = true;
            continue;
        }
        int left = s_drop_what_committed(self, b, ss, st, &nrejects,
                                         rc == S_RACE ? "another writer committed some of these events; dropped "
                                                        "from the batch"
                                                      : NULL,
                                         true, &err);
        if (left < 0)
            goto fail;
        if (left == 0)
            return WRITER_COMMIT_OK;
    }
    evp_pg_err_set(&err, "the batch could not be committed after isolating refused rows");
fail:
    writer_batch_unrefuse(b, nrejects);
    st->commit_failures++;
    writer_db_fail(self, now_ms, err.why); /* the next commit reads the checkpoints back first */
    return WRITER_COMMIT_RETRY;
}

/* ---- Loading checkpoints ---- */

/* Sets s (made first when NULL; NULL when the partition has no room) to the
 * checkpoint seq and recorded head read from PostgreSQL. */
static writer_stream_t *s_stream_from(writer_streams_t *ss, writer_stream_t *s, const char *source, size_t len,
                                      int32_t partition, int64_t seq, int64_t head, int64_t now_ms)
{
    if (!s && !(s = writer_streams_get(ss, source, len, partition, true)))
        return NULL;
    writer_stream_advance(ss, s, seq);
    if (head > 0)
        writer_stream_learn_head(s, head);
    writer_stream_heard(s, now_ms);
    return s;
}

int writer_db_load_checkpoints(writer_db_t *self, const int32_t *partitions, size_t n, writer_streams_t *ss,
                               int64_t now_ms, char *why, size_t whylen)
{
    s_partitions_array(self, partitions, n);
    char most[24];
    snprintf(most, sizeof most, "%d", self->cfg->writer_sources_max / 2);
    const char *vals[] = {self->a1.data, most};
    PGresult *r = s_query(self, now_ms, S_LOAD, 2, vals, PGRES_TUPLES_OK, "loading checkpoints", why, whylen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *source = PQgetvalue(r, i, 0);
        int32_t partition = (int32_t)strtol(PQgetvalue(r, i, 1), NULL, 10);
        int64_t seq = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        int64_t head = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        s_stream_from(ss, NULL, source, strlen(source), partition, seq, head, now_ms);
    }
    PQclear(r);
    return 0;
}

writer_stream_t *writer_db_stream(writer_db_t *self, writer_streams_t *ss, writer_stream_t *s, const char *source,
                                  size_t len, int32_t partition, int64_t now_ms, char *why, size_t whylen)
{
    char name[WRITER_SOURCE_MAX + 1], part[16];
    if (len > WRITER_SOURCE_MAX || memchr(source, '\0', len)) {
        snprintf(why, whylen, "not a source");
        return NULL;
    }
    memcpy(name, source, len);
    name[len] = '\0';
    snprintf(part, sizeof part, "%d", (int)partition);
    const char *vals[] = {name, part};
    PGresult *r = writer_db_query(self, now_ms, S_STREAM, 2, vals, PGRES_TUPLES_OK, "reading a source's checkpoint",
                                  why, whylen);
    if (!r)
        return NULL;
    int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    int64_t head = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (!(s = s_stream_from(ss, s, source, len, partition, seq, head, now_ms)))
        snprintf(why, whylen, "the partition has WRITER_SOURCES_MAX sources");
    return s;
}

int writer_db_settle(writer_db_t *self, const writer_streams_t *ss, const uint32_t *ids, size_t n, int64_t now_ms,
                     char *why, size_t whylen)
{
    if (n == 0)
        return 0;
    writer_mark_t *marks = malloc(n * sizeof *marks);
    if (!marks) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        marks[i] = (writer_mark_t){ids[i], writer_streams_by_id(ss, ids[i])->committed};
    s_marks_arrays(self, marks, n, ss);
    free(marks);
    const char *vals[] = {self->a1.data, self->a2.data, self->a3.data};
    PGresult *r = writer_db_query(self, now_ms, S_SETTLE, 3, vals, PGRES_COMMAND_OK, "marking checkpoints settled",
                                  why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* ---- Sharing partitions ---- */

int writer_db_join(writer_db_t *self, int64_t now_ms, char *why, size_t whylen)
{
    PGresult *r = s_query(self, now_ms, S_LISTEN, 0, NULL, PGRES_COMMAND_OK, "LISTEN", why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    if (self->previous_pid == 0)
        return 0;
    char pid[16];
    snprintf(pid, sizeof pid, "%d", self->previous_pid);
    const char *vals[] = {pid, self->name};
    const char *sql = PQserverVersion(self->conn) >= 140000 ? S_END_PREVIOUS : S_END_PREVIOUS_OLD;
    r = s_query(self, now_ms, sql, 2, vals, PGRES_TUPLES_OK, "ending the previous session", why, whylen);
    if (!r)
        return -1;
    if (PQntuples(r) > 0)
        evp_info("ended this writer's previous PostgreSQL session", "pid=%d ended=%s", self->previous_pid,
                 strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? "true" : "false");
    PQclear(r);
    self->previous_pid = 0;
    return 0;
}

int writer_db_members(writer_db_t *self, int64_t now_ms, char (*names)[WRITER_DB_NAME_MAX], size_t max, size_t *n,
                      char *why, size_t whylen)
{
    const char *vals[] = {WRITER_DB_MEMBER_PREFIX};
    PGresult *r = s_query(self, now_ms, S_MEMBERS, 1, vals, PGRES_TUPLES_OK, "listing the writers", why, whylen);
    if (!r)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        snprintf(names[(*n)++], WRITER_DB_NAME_MAX, "%s", PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

/* S_LOCK or S_UNLOCK on partitions[0..n) (n > 0): the result, or NULL
 * after dropping the connection. */
static PGresult *s_lock_query(writer_db_t *self, int64_t now_ms, const char *sql, const int32_t *partitions,
                              size_t n, const char *what, char *why, size_t whylen)
{
    char key[16];
    snprintf(key, sizeof key, "%d", WRITER_DB_PARTITION_LOCK);
    s_partitions_array(self, partitions, n);
    const char *vals[] = {key, self->a1.data};
    return s_query(self, now_ms, sql, 2, vals, PGRES_TUPLES_OK, what, why, whylen);
}

int writer_db_lock(writer_db_t *self, int64_t now_ms, const int32_t *partitions, size_t n, bool *got, char *why,
                   size_t whylen)
{
    for (size_t i = 0; i < n; i++)
        got[i] = false;
    if (n == 0)
        return 0;
    PGresult *r = s_lock_query(self, now_ms, S_LOCK, partitions, n, "locking partitions", why, whylen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        int32_t p = (int32_t)strtol(PQgetvalue(r, i, 0), NULL, 10);
        for (size_t k = 0; k < n; k++)
            if (partitions[k] == p)
                got[k] = true;
    }
    PQclear(r);
    return 0;
}

int writer_db_unlock(writer_db_t *self, int64_t now_ms, const int32_t *partitions, size_t n, char *why,
                     size_t whylen)
{
    if (n == 0)
        return 0;
    PGresult *r = s_lock_query(self, now_ms, S_UNLOCK, partitions, n, "unlocking partitions", why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

void writer_db_notify(writer_db_t *self)
{
    if (!self->conn)
        return;
    s_ahead_drop(self);
    evp_pg_err_t err;
    char reason[sizeof err.why];
    if (!evp_pg_exec(self->conn, S_NOTIFY, 0, NULL, "NOTIFY", &err))
        evp_debug("NOTIFY failed", "reason=\"%s\"", evp_log_text(reason, sizeof reason, err.why, strlen(err.why)));
}

bool writer_db_notified(writer_db_t *self)
{
    if (!self->conn)
        return false;
    /* While rows go ahead the connection is in a COPY: notifications come only
     * between transactions, and those that came with the last results are
     * queued already. A broken connection shows at the next statement. */
    if (!self->ahead && !PQconsumeInput(self->conn))
        return false;
    int me = PQbackendPID(self->conn);
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(self->conn)) != NULL) {
        if (n->be_pid != me)
            any = true;
        PQfreemem(n);
    }
    return any;
}

int writer_db_leave(writer_db_t *self, int64_t now_ms, char *why, size_t whylen)
{
    if (!self->conn) {
        snprintf(why, whylen, "leaving: not connected (the locks went with the connection)");
        return -1;
    }
    PGresult *r = s_query(self, now_ms, S_LEAVE, 0, NULL, PGRES_COMMAND_OK, "leaving", why, whylen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
