/* Integration tests of the writer's commit against a real PostgreSQL: rows
 * sent ahead of the commit while the batch fills, and what happens to them
 * when the batch changes, a row is refused, the connection is needed for
 * something else or lost, or another transaction moves the checkpoint. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/config.h"
#include "evpipe/copy.h"
#include "evpipe/log.h"
#include "evpipe/wire.h"
#include "peers.h"
#include "testkit.h"
#include "writer_batch.h"
#include "writer_db.h"
#include "writer_stream.h"

/* Enough rows for several sends ahead (about 150 bytes of COPY text each). */
#define ROWS 3000
#define NAME "evpipe-writer/test-db"
#define WAIT_MS 30000

static tk_world_t *w;
static evp_config_t cfg;
static writer_db_t *db;
static writer_streams_t *ss;
static writer_batch_t *b;
static ev_codec_t *codec;
static writer_stats_t st;

static void setup(void)
{
    w = wt_world_migrated(criterion_current_test->name);
    /* The writer_db_partitioned test: the same tests with events partitioned
     * by day, partitions around the test events' times (wt_event). */
    if (getenv("EVPIPE_TEST_PARTITIONED")) {
        tk_sql_exec(w->conn, "SELECT evpipe_partition_events('1 day', false, '2023-11-14 12:00')");
        tk_sql_exec(w->conn, "SELECT count(*) FROM evpipe_partition_maintain('1 day', 2, NULL, '2023-11-14 12:00')");
    }
    evp_config_defaults(&cfg);
    snprintf(cfg.postgres_host, sizeof cfg.postgres_host, "%s", w->pg_host);
    cfg.postgres_port = atoi(w->pg_port);
    snprintf(cfg.postgres_user, sizeof cfg.postgres_user, "%s", w->pg_user);
    snprintf(cfg.postgres_db, sizeof cfg.postgres_db, "%s", w->db);
    evp_log_init("writer", EVP_LOG_WARN);
    db = writer_db_new(&cfg, NULL);
    ss = writer_streams_new(1000, SIZE_MAX, 1000);
    b = writer_batch_new(ROWS);
    codec = ev_codec_new();
    cr_assert(db && ss && b && codec);
    memset(&st, 0, sizeof st);
    writer_db_set_name(db, NAME);
    cr_assert(writer_db_ensure(db, tk_now_ms()));
}

static void teardown(void)
{
    writer_db_destroy(&db);
    cr_assert_null(db);
    writer_batch_destroy(&b);
    writer_streams_destroy(&ss);
    ev_codec_destroy(&codec);
    tk_world_destroy(&w);
}

TestSuite(writer_db, .init = setup, .fini = teardown, .timeout = 120);

static writer_stream_t *s_stream(const char *source, int32_t partition)
{
    return writer_streams_get(ss, source, strlen(source), partition, true);
}

/* Adds ev to the batch and sends ahead what the batch gained, as the
 * writer's loop does after each message. */
static void s_add(const ev_event_t *ev)
{
    const void *raw;
    size_t len;
    ev_codec_encode_event(codec, ev, &raw, &len);
    ev_error_t err;
    cr_assert_eq(writer_batch_add_event(b, s_stream(ev->source.ptr, ev->partition), ev, raw, len, ev->partition,
                                        false, tk_now_ms(), &err),
                 EV_OK, "%s", err.detail);
    writer_db_send_ahead(db, b, tk_now_ms());
}

static void s_fill(const char *source, int32_t partition, int64_t first, int64_t last)
{
    for (int64_t seq = first; seq <= last; seq++) {
        ev_event_t ev = wt_event(source, partition, seq);
        s_add(&ev);
    }
}

/* Commits until it is done (a dropped connection is made again). */
static void s_commit(void)
{
    int64_t end = tk_now_ms() + WAIT_MS;
    while (writer_db_commit(db, b, ss, &st, tk_now_ms()) != WRITER_COMMIT_OK) {
        cr_assert(tk_now_ms() < end, "the batch was not committed");
        tk_sleep_ms(20);
    }
    writer_batch_reset(b);
}

/* Whether this writer's backend is inside a COPY of events now. */
static int64_t s_copying(void)
{
    return tk_sql_int(w->conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" NAME "'"
                               " AND state = 'active' AND query LIKE 'COPY events%'");
}

/* Whether this writer's backend is in a transaction (or a statement) now. */
static int64_t s_busy(void)
{
    return tk_sql_int(w->conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" NAME "'"
                               " AND state <> 'idle'");
}

static int64_t s_checkpoint(const char *source, int32_t partition)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COALESCE(max(seq), -1) FROM checkpoints WHERE source = '%s' AND partition = %d",
             source, (int)partition);
    return tk_sql_int(w->conn, sql);
}

/* Commits; then the table holds seqs 1..ROWS of the stream, each once and
 * nothing else, and its checkpoint is ROWS. */
static void s_commit_whole(const char *source, int32_t partition)
{
    s_commit();
    cr_assert_eq(wt_rows(w->conn), ROWS);
    wt_check_rows(w->conn, source, partition, 1, ROWS, NULL);
    cr_assert_eq(s_checkpoint(source, partition), ROWS);
    if (getenv("EVPIPE_TEST_PARTITIONED"))
        cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 0, "every row in its partition");
}

Test(writer_db, rows_go_to_postgresql_while_the_batch_fills_and_are_committed_once)
{
    s_fill("gen-ahead", 1, 1, ROWS);
    cr_assert_eq(s_copying(), 1, "the rows should be in PostgreSQL's COPY before the commit");
    cr_assert_eq(wt_rows(w->conn), 0, "nothing is visible before the commit");
    cr_assert_eq(s_checkpoint("gen-ahead", 1), -1);
    int64_t xid = tk_sql_int(w->conn, "SELECT backend_xid::text::bigint FROM pg_stat_activity"
                                      " WHERE application_name = '" NAME "'");
    s_commit_whole("gen-ahead", 1);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE xmin::text::bigint = %lld", (long long)xid);
    cr_assert_eq(tk_sql_int(w->conn, sql), ROWS, "the commit should end the transaction the rows went ahead in");
    cr_assert_eq(s_copying(), 0);
    cr_assert_eq(st.committed, ROWS);

    /* The next batch of the same stream goes ahead in a transaction of its own. */
    s_fill("gen-ahead", 1, ROWS + 1, 2 * ROWS);
    cr_assert_eq(s_copying(), 1);
    s_commit();
    wt_check_rows(w->conn, "gen-ahead", 1, 1, 2 * ROWS, NULL);
    cr_assert_eq(s_checkpoint("gen-ahead", 1), 2 * ROWS);
}

Test(writer_db, a_small_batch_is_sent_whole_at_its_commit)
{
    s_fill("gen-small", 2, 1, 20);
    cr_assert_eq(s_copying(), 0, "20 rows are too few to send ahead");
    s_commit();
    wt_check_rows(w->conn, "gen-small", 2, 1, 20, NULL);
    cr_assert_eq(s_checkpoint("gen-small", 2), 20);
}

static bool s_odd(int64_t seq)
{
    return seq % 2 == 1;
}

Test(writer_db, rows_of_a_partition_dropped_after_they_went_ahead_are_not_committed)
{
    /* Two partitions interleaved; then partition 3 is given up. */
    for (int64_t seq = 1; seq <= ROWS; seq++) {
        ev_event_t ev = wt_event(seq % 2 ? "gen-kept" : "gen-gone", seq % 2 ? 2 : 3, seq);
        s_add(&ev);
    }
    cr_assert_eq(s_copying(), 1);
    uint32_t limit = writer_streams_id_limit(ss);
    bool *drop = calloc(limit, sizeof *drop);
    cr_assert_not_null(drop);
    drop[s_stream("gen-gone", 3)->id] = true;
    cr_assert_eq(writer_batch_drop_streams(b, drop, limit), ROWS / 2);
    free(drop);
    s_commit();
    cr_assert_eq(wt_rows(w->conn), ROWS / 2);
    wt_check_rows(w->conn, "gen-kept", 2, 1, ROWS, s_odd);
    cr_assert_eq(s_checkpoint("gen-kept", 2), ROWS - 1);
    cr_assert_eq(s_checkpoint("gen-gone", 3), -1);
}

static bool s_not_refused(int64_t seq)
{
    return seq != 17 && seq != 2500;
}

Test(writer_db, a_row_postgresql_refuses_after_rows_went_ahead_is_rejected_alone)
{
    /* A rule validation does not know, as a table may get one day. */
    tk_sql_exec(w->conn, "ALTER TABLE events ADD CONSTRAINT test_refuses CHECK (user_email <> 'refuse@example.com')");
    for (int64_t seq = 1; seq <= ROWS; seq++) {
        ev_event_t ev = wt_event("gen-refused", 1, seq);
        if (!s_not_refused(seq))
            ev.user_email = (ev_str_t){"refuse@example.com", 18};
        s_add(&ev);
    }
    /* The rows went ahead: the transaction is open (its COPY failed at row
     * 17 already; the rest was sent into it all the same). */
    cr_assert_eq(s_busy(), 1);
    s_commit();
    cr_assert_eq(wt_rows(w->conn), ROWS - 2);
    tk_sql_exec(w->conn, "ALTER TABLE events DROP CONSTRAINT test_refuses");
    wt_check_rows(w->conn, "gen-refused", 1, 1, ROWS, s_not_refused);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-refused' AND seq IN (17, 2500)"
                                     " AND reason = 'database' AND detail LIKE '%test_refuses%'"),
                 2);
    cr_assert_eq(s_checkpoint("gen-refused", 1), ROWS);
    cr_assert_eq(st.committed, ROWS - 2);
    cr_assert_eq(st.rejects_total, 2);
}

Test(writer_db, using_the_connection_for_anything_else_gives_the_rows_sent_ahead_up_and_the_commit_sends_them_again)
{
    s_fill("gen-lock", 0, 1, ROWS / 2);
    cr_assert_eq(s_copying(), 1);
    int32_t parts[] = {0};
    bool got[1];
    char why[600];
    cr_assert_eq(writer_db_lock(db, tk_now_ms(), parts, 1, got, why, sizeof why), 0, "%s", why);
    cr_assert(got[0]);
    cr_assert_eq(s_busy(), 0, "the COPY sent ahead should have been given up, its transaction ended");
    s_fill("gen-lock", 0, ROWS / 2 + 1, ROWS);
    s_commit_whole("gen-lock", 0);
}

Test(writer_db, a_connection_lost_while_rows_went_ahead_loses_and_duplicates_nothing)
{
    s_fill("gen-lost", 1, 1, ROWS / 2);
    cr_assert_eq(s_copying(), 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                     " WHERE application_name = '" NAME "'"),
                 1);
    /* The rest is added (the sends ahead may not notice the connection is
     * gone), then committed: the commit finds it gone and tries again on a
     * new one. */
    s_fill("gen-lost", 1, ROWS / 2 + 1, ROWS);
    s_commit_whole("gen-lost", 1);
}

/* Another writer's transaction stores seqs 1..last of the stream and
 * moves its checkpoint to last. */
static void s_commit_as_another(const char *source, int32_t partition, int64_t last)
{
    PGconn *other = tk_world_connect(w);
    wt_begin_as_another_writer(other, source, partition, 1, last);
    tk_sql_exec(other, "COMMIT");
    PQfinish(other);
}

Test(writer_db, a_checkpoint_another_transaction_moved_while_rows_went_ahead_drops_what_it_committed)
{
    /* The writer sends 1..ROWS ahead; meanwhile another transaction commits
     * 1..100 and the checkpoint 100. The compare-and-set at the end finds
     * it moved: the writer drops 1..100 and stores the rest once. */
    s_fill("gen-race", 2, 1, ROWS);
    cr_assert_eq(s_copying(), 1);
    s_commit_as_another("gen-race", 2, 100);
    s_commit_whole("gen-race", 2);
    cr_assert_eq(st.duplicates, 100);
}

Test(writer_db, a_batch_kept_across_a_lost_connection_stores_only_what_another_writer_did_not)
{
    /* The connection goes outside a commit, and the partition's lock with
     * it: meanwhile another writer commits 1..100. The writer takes the
     * partition again (loading checkpoint 100), and its commit drops 1..100
     * from the batch instead of storing them twice. */
    s_fill("gen-lost-lock", 1, 1, ROWS);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                     " WHERE application_name = '" NAME "'"),
                 1);
    int32_t parts[] = {1};
    bool got[1];
    char why[600];
    cr_assert_eq(writer_db_lock(db, tk_now_ms(), parts, 1, got, why, sizeof why), -1, "the connection is gone");
    s_commit_as_another("gen-lost-lock", 1, 100);
    int64_t end = tk_now_ms() + WAIT_MS;
    while (writer_db_load_checkpoints(db, parts, 1, ss, tk_now_ms(), why, sizeof why) != 0) {
        cr_assert(tk_now_ms() < end, "%s", why);
        tk_sleep_ms(20);
    }
    cr_assert_eq(s_stream("gen-lost-lock", 1)->committed, 100);
    s_commit_whole("gen-lost-lock", 1);
    cr_assert_eq(st.duplicates, 100);
}

Test(writer_db, a_checkpoint_another_writer_moved_past_the_whole_batch_is_not_moved_back)
{
    s_fill("gen-past", 3, 1, ROWS);
    s_commit_as_another("gen-past", 3, ROWS + 50);
    s_commit();
    cr_assert_eq(st.duplicates, ROWS);
    cr_assert_eq(wt_rows(w->conn), ROWS + 50);
    wt_check_rows(w->conn, "gen-past", 3, 1, ROWS + 50, NULL);
    cr_assert_eq(s_checkpoint("gen-past", 3), ROWS + 50);
}

Test(writer_db, a_published_at_at_either_end_of_int64_does_not_overflow_the_latency)
{
    /* published_at is any int64 a peer sends; now - published_at would
     * overflow for these (UBSan aborts on it). */
    const int64_t hostile[] = {INT64_MIN, INT64_MAX};
    for (int64_t seq = 1; seq <= 2; seq++) {
        ev_event_t ev = wt_event("gen-hostile-time", 1, seq);
        ev.published_at = hostile[seq - 1];
        s_add(&ev);
    }
    s_commit();
    wt_check_rows(w->conn, "gen-hostile-time", 1, 1, 2, NULL);
    cr_assert_eq(st.latency.count, 2);
    cr_assert_eq(st.latency.max_us, INT64_MAX, "a published_at of INT64_MIN is as old as can be");
}

/* ---- Rejects without an identity across a lost COMMIT answer ---- */

/* Adds a reject with no stream (an identity the writer cannot keep), as
 * s_on_event does for a bad source, partition or seq. */
static void s_add_anonymous_reject(int64_t seq)
{
    ev_event_t ev = wt_event("gen-anon", 1, seq);
    ev.partition = 999;
    const void *raw;
    size_t len;
    ev_codec_encode_event(codec, &ev, &raw, &len);
    writer_batch_add_reject(b, NULL, &ev, raw, len, EV_REJECT_IDENTITY, "partition: 999 is outside 0..15",
                            tk_now_ms());
}

static int64_t s_anonymous_rejects(void)
{
    return tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-anon' AND partition = 999");
}

Test(writer_db, a_reject_without_identity_is_stored_once_when_the_commit_answer_is_lost)
{
    s_fill("gen-answer", 1, 1, 100);
    s_add_anonymous_reject(7);
    s_fill("gen-answer", 1, 101, 200);
    writer_db_lose_next_commit_answer(db);
    cr_assert_eq(writer_db_commit(db, b, ss, &st, tk_now_ms()), WRITER_COMMIT_RETRY,
                 "the answer was lost: the writer cannot know it committed");
    cr_assert_eq(s_anonymous_rejects(), 1, "PostgreSQL committed it");
    /* A reject that came after the lost commit is stored by the next one. */
    s_add_anonymous_reject(8);
    s_commit();
    cr_assert_eq(s_anonymous_rejects(), 2, "each reject once: the retried batch must not store the first again");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE partition = 999 AND seq = 7"), 1);
    wt_check_rows(w->conn, "gen-answer", 1, 1, 200, NULL);
    cr_assert_eq(wt_rows(w->conn), 200);
}

Test(writer_db, a_batch_of_only_a_reject_without_identity_is_stored_once_when_the_commit_answer_is_lost)
{
    s_add_anonymous_reject(3);
    writer_db_lose_next_commit_answer(db);
    cr_assert_eq(writer_db_commit(db, b, ss, &st, tk_now_ms()), WRITER_COMMIT_RETRY);
    cr_assert_eq(writer_db_commit(db, b, ss, &st, tk_now_ms()), WRITER_COMMIT_OK);
    cr_assert(writer_batch_empty(b), "nothing is left to store");
    cr_assert_eq(s_anonymous_rejects(), 1);
}

Test(writer_db, a_reject_without_identity_whose_commit_failed_is_stored_by_the_retry)
{
    /* The COMMIT itself fails (a deferred trigger refuses it once): the
     * writer must not take the reject for stored. */
    tk_sql_exec(w->conn, "CREATE TABLE test_fail_once (n int)");
    tk_sql_exec(w->conn, "INSERT INTO test_fail_once VALUES (1)");
    tk_sql_exec(w->conn, "CREATE FUNCTION test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$"
                         " BEGIN IF (SELECT count(*) FROM test_fail_once) > 0 THEN"
                         " RAISE EXCEPTION 'refused once, at COMMIT'; END IF; RETURN NULL; END $$");
    tk_sql_exec(w->conn, "CREATE CONSTRAINT TRIGGER test_fail_once AFTER INSERT ON rejects"
                         " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_once()");
    s_fill("gen-refused-commit", 2, 1, 50);
    s_add_anonymous_reject(9);
    cr_assert_eq(writer_db_commit(db, b, ss, &st, tk_now_ms()), WRITER_COMMIT_RETRY);
    cr_assert_eq(s_anonymous_rejects(), 0);
    tk_sql_exec(w->conn, "DELETE FROM test_fail_once");
    s_commit();
    cr_assert_eq(s_anonymous_rejects(), 1);
    wt_check_rows(w->conn, "gen-refused-commit", 2, 1, 50, NULL);
}

Test(writer_db, binary_rows_store_the_values_the_text_format_would)
{
    /* Rows go as COPY binary; PostgreSQL's own text of what it stored must
     * be the text format's line of the same event, at the edges of each type. */
    static const int64_t prices[] = {0, 1, 99, 100, 101, 10000, 123456, 100000000, 9999999999LL, -1, -100, -123456};
    static const int64_t times[] = {0, -1, 946684800000000LL, 946684799999999LL, 946684800000001LL,
                                    4102444800123456LL, 1700000000000000LL};
    static const int32_t ints[] = {0, -1, 1, INT32_MAX, INT32_MIN, 10000};
    ev_buf_t want;
    ev_buf_init(&want);
    int64_t n = 0;
    for (size_t i = 0; i < sizeof prices / sizeof prices[0]; i++) {
        ev_event_t ev = wt_event("gen-binary", 4, ++n);
        ev.product_price = prices[i];
        ev.event_time = times[i % (sizeof times / sizeof times[0])];
        ev.user_id = ints[i % (sizeof ints / sizeof ints[0])];
        ev.product_id = ints[(i + 3) % (sizeof ints / sizeof ints[0])];
        if (i == 2)
            ev.user_name = (ev_str_t){"", 0}; /* empty text is not NULL */
        s_add(&ev);
        ev_copy_append_row(&want, &ev);
    }
    s_commit();
    size_t rows;
    char *got = tk_events_as_copy(w->conn, &rows);
    cr_assert_eq(rows, (size_t)n);
    cr_assert_str_eq(got, want.data);
    free(got);
    ev_buf_free(&want);
}
