/* Integration tests of the running writer (evpipe-writer processes) against
 * a real PostgreSQL, with the bus and the repair service played by real
 * sockets of the test: rows equal the events, duplicates add nothing, bad
 * events go to rejects, holes are repaired or recorded as gaps, nothing is
 * lost when the connection to PostgreSQL goes, and SIGTERM commits. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/wire.h"
#include "peers.h"
#include "testkit.h"

#define PARTITIONS 4
#define WAIT_MS 30000

static tk_world_t *w;
static wt_bus_t *bus;
static wt_router_t *router;
static tk_proc_t *writer;

static void setup(void)
{
    w = tk_world_new(criterion_current_test->name);
    bus = wt_bus_new(w->sub_ep);
}

static void teardown(void)
{
    tk_proc_destroy(&writer);
    wt_router_destroy(&router);
    wt_bus_destroy(&bus);
    tk_world_destroy(&w);
}

TestSuite(writer_run, .init = setup, .fini = teardown, .timeout = 120);

/* Starts a writer with extra settings (not waiting). */
static tk_proc_t *s_spawn(const char *const *extra)
{
    const char *env[16] = {"PARTITIONS=4", NULL};
    int n = 1;
    for (int i = 0; extra && extra[i] && n < 15; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return tk_start(w, "writer", NULL, env);
}

/* Waits until the bus saw `subscriptions` subscriptions in all (the stand-in
 * bus works only while it is polled: it sends "!welcome" then) and p logged
 * that it is attached. */
static void s_attached(tk_proc_t *p, int subscriptions)
{
    bool ok = wt_bus_wait_subscriptions(bus, subscriptions, WAIT_MS) &&
              tk_wait_log(p, "\"subscribed to the bus\" partitions=4", WAIT_MS);
    char *log = wt_log(p);
    if (!ok)
        cr_assert_fail("the writer did not attach to the bus: %s", log);
    free(log);
}

/* Starts a writer and waits until it is attached to the bus. */
static tk_proc_t *s_start(const char *const *extra)
{
    tk_proc_t *p = s_spawn(extra);
    s_attached(p, PARTITIONS + 1);
    return p;
}

/* Waits for a count; fails with the writer's log when it does not come. */
static void s_wait_sql(const char *sql, int64_t want)
{
    int64_t got = tk_wait_sql_int(w->conn, sql, want, WAIT_MS);
    if (got != want) {
        char *log = writer ? wt_log(writer) : strdup("");
        cr_assert_fail("%s: %lld expected, %lld found; writer log:\n%s", sql, (long long)want, (long long)got, log);
    }
}

static void s_stop_writer(void)
{
    tk_signal(writer, SIGTERM);
    cr_assert(tk_wait_exit(writer, WAIT_MS), "the writer did not stop");
    char *log = wt_log(writer);
    cr_assert_eq(tk_exit_code(writer), 0, "%s", log);
    cr_assert(strstr(log, "\"writer stopped\"") != NULL, "%s", log);
    free(log);
    tk_proc_destroy(&writer);
}

Test(writer_run, commits_rows_equal_to_the_events_published)
{
    writer = s_start(NULL);
    for (int32_t p = 0; p < PARTITIONS; p++)
        wt_bus_publish_range(bus, "gen-00000000000000aa", p, 1, 300 + p);
    wt_bus_publish_range(bus, "file-0123456789abcdef0123456789abcdef", 2, 1, 50);
    wt_bus_heartbeat(bus, "gen-00000000000000aa", 1, 301);
    s_wait_sql("SELECT count(*) FROM events", 4 * 300 + 6 + 50);
    for (int32_t p = 0; p < PARTITIONS; p++)
        wt_check_rows(w->conn, "gen-00000000000000aa", p, 1, 300 + p, NULL);
    wt_check_rows(w->conn, "file-0123456789abcdef0123456789abcdef", 2, 1, 50, NULL);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-00000000000000aa' AND partition = 3", 303);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source LIKE 'file-%' AND partition = 2", 50);
    s_wait_sql("SELECT seq FROM publisher_heads WHERE source = 'gen-00000000000000aa' AND partition = 1", 301);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects"), 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    s_stop_writer();
}

Test(writer_run, a_busy_writer_commits_the_rows_it_sent_ahead_before_it_looks_at_the_other_writers)
{
    /* Batches that fill for seconds (a long linger, a large size): the rows
     * go to PostgreSQL ahead of the commit, and each look at the members (once
     * a second) commits them first instead of giving them up. */
    const char *env[] = {"LOG_LEVEL=debug", "WRITER_LINGER_MS=5000", "WRITER_BATCH_SIZE=100000", NULL};
    writer = s_start(env);
    for (int64_t burst = 0; burst < 6; burst++) {
        wt_bus_publish_range(bus, "gen-busy", 1, burst * 2000 + 1, burst * 2000 + 2000);
        tk_sleep_ms(500);
    }
    s_wait_sql("SELECT count(*) FROM events", 12000);
    wt_check_rows(w->conn, "gen-busy", 1, 1, 12000, NULL);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-busy'", 12000);
    char *log = wt_log(writer);
    cr_assert_geq(wt_log_count(writer, "\"batch committed\""), 2, "%s", log);
    cr_assert_eq(wt_log_count(writer, "\"rows sent ahead of the commit given up\""), 0, "%s", log);
    free(log);
    s_stop_writer();
}

Test(writer_run, duplicates_and_replays_add_nothing)
{
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-dup", 1, 1, 100);
    s_wait_sql("SELECT count(*) FROM events", 100);
    /* The same again, and part of it a third time, then one new event: when
     * it is in, everything before it was seen. */
    wt_bus_publish_range(bus, "gen-dup", 1, 1, 100);
    wt_bus_publish_range(bus, "gen-dup", 1, 40, 60);
    wt_bus_publish_range(bus, "gen-dup", 1, 101, 101);
    s_wait_sql("SELECT count(*) FROM events WHERE seq = 101", 1);
    cr_assert_eq(wt_rows(w->conn), 101);
    s_stop_writer();

    /* A new writer starts from the checkpoint: a replay of everything adds only what is new. */
    writer = s_spawn(NULL);
    s_attached(writer, 2 * (PARTITIONS + 1));
    wt_bus_publish_range(bus, "gen-dup", 1, 1, 102);
    s_wait_sql("SELECT count(*) FROM events WHERE seq = 102", 1);
    cr_assert_eq(wt_rows(w->conn), 102);
    wt_check_rows(w->conn, "gen-dup", 1, 1, 102, NULL);
    tk_signal(writer, SIGTERM);
    cr_assert(tk_wait_exit(writer, WAIT_MS));
    char *log = wt_log(writer);
    cr_assert(strstr(log, "duplicates=101") != NULL, "the summary counts the duplicates: %s", log);
    free(log);
}

/* In the next test seq 5 is refused by validation, these by PostgreSQL. */
static bool s_refused_by_postgresql(int64_t seq)
{
    return seq == 8 || seq == 77 || seq == 150 || seq == 151 || seq == 200;
}

static bool s_stored(int64_t seq)
{
    return seq != 5 && !s_refused_by_postgresql(seq);
}

Test(writer_run, refused_events_go_to_rejects_and_the_rest_of_the_batch_commits)
{
    const char *env[] = {"WRITER_LINGER_MS=500", NULL};
    writer = s_start(env);
    /* A rule validation does not know, as a table may get one day. */
    tk_sql_exec(w->conn, "ALTER TABLE events ADD CONSTRAINT test_refuses CHECK (user_email <> 'refuse@example.com')");
    char raw_hex[1024] = ""; /* the refused event's bytes as published */
    for (int64_t seq = 1; seq <= 200; seq++) {
        ev_event_t ev = wt_event("gen-bad", 0, seq);
        if (seq == 5) {
            ev.user_name = (ev_str_t){"bad \xc3\x28 text", 12}; /* not UTF-8 */
            ev_codec_t *codec = ev_codec_new();
            const void *data;
            size_t len;
            ev_codec_encode_event(codec, &ev, &data, &len);
            cr_assert_lt(2 * len, sizeof raw_hex);
            for (size_t i = 0; i < len; i++)
                snprintf(raw_hex + 2 * i, 3, "%02x", ((const unsigned char *)data)[i]);
            ev_codec_destroy(&codec);
        }
        if (s_refused_by_postgresql(seq))
            ev.user_email = (ev_str_t){"refuse@example.com", 18};
        wt_bus_publish(bus, &ev);
    }
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE seq = 200", 1);
    cr_assert_eq(wt_rows(w->conn), 194);
    tk_sql_exec(w->conn, "ALTER TABLE events DROP CONSTRAINT test_refuses");
    wt_check_rows(w->conn, "gen-bad", 0, 1, 200, s_stored);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-bad' AND partition = 0 AND"
                                     " seq = 5 AND reason = 'bad_encoding' AND detail LIKE 'user_name:%'"),
                 1);
    char sql[1400];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM rejects WHERE source = 'gen-bad' AND seq = 5 AND raw = '\\x%s'",
             raw_hex);
    cr_assert_eq(tk_sql_int(w->conn, sql), 1, "raw is not the event's own bytes");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE seq IN (8, 77, 150, 151, 200)"
                                     " AND reason = 'database' AND detail LIKE '%test_refuses%SQLSTATE 23514%'"),
                 5);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects"), 6);
    /* The raw body is the event as it came: it decodes to seq 8. */
    PGresult *r = PQexecParams(w->conn, "SELECT raw FROM rejects WHERE seq = 8", 0, NULL, NULL, NULL, NULL, 1);
    cr_assert_eq(PQntuples(r), 1);
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev;
    ev_error_t err;
    cr_assert_eq(ev_codec_decode_event(codec, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &ev, &err), EV_OK);
    cr_assert_eq(ev.seq, 8);
    ev_codec_destroy(&codec);
    PQclear(r);
    s_stop_writer();
}

/* A batch was bounded in rows only, and a refused event keeps its body (up
 * to 64 KiB): 200,000 of them could take gigabytes before a commit. */
Test(writer_run, a_batch_is_committed_once_it_holds_writer_batch_mb)
{
    const char *env[] = {"WRITER_BATCH_SIZE=100000", "WRITER_LINGER_MS=60000", "WRITER_BATCH_MB=1", NULL};
    writer = s_start(env);
    static char big[20000];
    memset(big, 'n', sizeof big);
    for (int64_t seq = 1; seq <= 60; seq++) {
        ev_event_t ev = wt_event("gen-big", 1, seq);
        ev.user_name = (ev_str_t){big, sizeof big}; /* too long: a reject with its 20 KB body */
        wt_bus_publish(bus, &ev);
    }
    /* 60 bodies of 20 KB pass 1 MB long before WRITER_LINGER_MS. */
    int64_t got = tk_wait_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-big'", 60, 20000);
    cr_assert_geq(got, 45, "only %lld rejects committed within 20 s: the batch waited for its linger", (long long)got);
    s_stop_writer();
}

Test(writer_run, an_event_with_a_partition_other_than_its_topic_is_rejected)
{
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-x", 1, 1, 2);
    ev_event_t ev = wt_event("gen-x", 1, 3);
    const void *body;
    size_t len;
    ev_codec_t *codec = ev_codec_new();
    ev_codec_encode_event(codec, &ev, &body, &len);
    const void *parts[] = {"p0002/ev", body};
    size_t lens[] = {8, len};
    wt_bus_send_raw(bus, 2, parts, lens);
    ev_codec_destroy(&codec);
    wt_bus_publish_range(bus, "gen-x", 1, 4, 4);
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE source = 'gen-x' AND seq = 4", 1);
    cr_assert_eq(wt_rows(w->conn), 3);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE seq = 3 AND reason = 'bad_identity'"), 1);
    s_stop_writer();
}

/* Seqs past 2^62 would let seq + 1 overflow once taken (a best-effort
 * stream with a gap up to INT64_MAX - 1, say): refused as identities. */
Test(writer_run, a_seq_past_two_to_the_62_is_refused_as_an_identity)
{
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-far", 1, 1, 1);
    ev_event_t ev = wt_event("gen-far", 1, 4);
    ev.seq = INT64_MAX;
    wt_bus_publish(bus, &ev);
    ev.seq = ((int64_t)1 << 62) + 1;
    wt_bus_publish(bus, &ev);
    wt_bus_publish_range(bus, "gen-far", 1, 2, 3);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-far'", 3);
    s_wait_sql("SELECT count(*) FROM rejects WHERE source = 'gen-far' AND reason = 'bad_identity'", 2);
    cr_assert_eq(wt_rows(w->conn), 3);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    s_stop_writer();
}

Test(writer_run, undecodable_messages_are_dropped_and_the_writer_goes_on)
{
    writer = s_start(NULL);
    const void *garbage[] = {"p0001/ev", "\xc1\xc1 not msgpack"};
    size_t garbage_len[] = {8, 14};
    wt_bus_send_raw(bus, 2, garbage, garbage_len);
    const void *three[] = {"p0001/ev", "a", "b"};
    size_t three_len[] = {8, 1, 1};
    wt_bus_send_raw(bus, 3, three, three_len);
    const void *topic[] = {"p0001/zz\x01", "x"};
    size_t topic_len[] = {9, 1};
    wt_bus_send_raw(bus, 2, topic, topic_len);
    const void *not_map[] = {"p0001/hb", "\x93\x01\x02\x03"};
    size_t not_map_len[] = {8, 4};
    wt_bus_send_raw(bus, 2, not_map, not_map_len);
    wt_bus_publish_range(bus, "gen-ok", 1, 1, 3);
    s_wait_sql("SELECT count(*) FROM events", 3);
    cr_assert(tk_wait_log(writer, "topic=\"p0001/zz?\"", WAIT_MS), "the topic is logged, made printable");
    cr_assert_eq(wt_log_count(writer, "\"undecodable message dropped\""), 4);
    tk_signal(writer, SIGTERM);
    cr_assert(tk_wait_exit(writer, WAIT_MS));
    cr_assert_eq(tk_exit_code(writer), 0);
    cr_assert(tk_wait_log(writer, "undecodable=4", 1000));
}

Test(writer_run, sigterm_commits_the_batch_in_flight)
{
    const char *env[] = {"WRITER_LINGER_MS=60000", "WRITER_BATCH_SIZE=100000", NULL};
    writer = s_start(env);
    wt_bus_publish_range(bus, "gen-term", 3, 1, 50);
    /* A hole after 50: when the writer asks for it, 1..50 are in its batch. */
    wt_bus_publish_range(bus, "gen-term", 3, 52, 52);
    cr_assert(tk_wait_log(writer, "\"missing events, asking for a repair\" source=gen-term partition=3 from=51 to=51",
                          WAIT_MS));
    cr_assert_eq(wt_rows(w->conn), 0, "nothing committed before the linger time");
    tk_signal(writer, SIGTERM);
    cr_assert(tk_wait_exit(writer, WAIT_MS));
    char *log = wt_log(writer);
    cr_assert_eq(tk_exit_code(writer), 0, "%s", log);
    cr_assert(strstr(log, "\"writer stopped\" committed=50") != NULL, "%s", log);
    free(log);
    cr_assert_eq(wt_rows(w->conn), 50);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT seq FROM checkpoints WHERE source = 'gen-term'"), 50);
    wt_check_rows(w->conn, "gen-term", 3, 1, 50, NULL);
}

static bool s_all(int64_t seq)
{
    (void)seq;
    return true;
}

/* Waits for a repair request (`none`: the failure when none comes) and
 * checks that it asks from `from` (and up to `to`, unless to is 0); the
 * request, for more checks. */
static wt_request_t s_request(int64_t from, int64_t to, const char *none)
{
    wt_request_t req;
    cr_assert(wt_router_recv(router, &req, WAIT_MS), "%s", none);
    cr_assert_eq(req.from, from);
    if (to)
        cr_assert_eq(req.to, to);
    return req;
}

/* s_request, of (source, partition). */
static wt_request_t s_request_of(const char *source, int32_t partition, int64_t from, int64_t to, const char *none)
{
    wt_request_t req = s_request(from, to, none);
    cr_assert_str_eq(req.source, source);
    cr_assert_eq(req.partition, partition);
    return req;
}

/* Waits for a repair request of from..to and answers every seq of it. */
static void s_repair_all(int64_t from, int64_t to)
{
    s_request(from, to, "no repair request came");
    wt_router_answer(router, s_all);
}

static bool s_not_6_or_7(int64_t seq)
{
    return seq != 6 && seq != 7;
}

Test(writer_run, a_hole_is_repaired_by_the_repair_service)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-hole", 2, 1, 3);
    wt_bus_publish_range(bus, "gen-hole", 2, 7, 10);
    s_request_of("gen-hole", 2, 4, 6, "no repair request came");
    wt_router_answer(router, s_all);
    s_wait_sql("SELECT count(*) FROM events", 10);
    wt_check_rows(w->conn, "gen-hole", 2, 1, 10, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-hole'", 10);
    s_stop_writer();
}

Test(writer_run, a_hole_the_repair_service_cannot_fill_is_recorded_as_a_gap)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-gap", 0, 1, 3);
    wt_bus_publish_range(bus, "gen-gap", 0, 8, 9);
    s_request(4, 7, "no repair request came");
    wt_router_answer(router, s_not_6_or_7);
    s_wait_sql("SELECT count(*) FROM gaps WHERE source = 'gen-gap' AND partition = 0 AND first_seq = 6"
               " AND last_seq = 7",
               1);
    s_wait_sql("SELECT count(*) FROM events", 7);
    wt_check_rows(w->conn, "gen-gap", 0, 1, 9, s_not_6_or_7);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-gap'", 9);
    cr_assert(tk_wait_log(writer, "\"events cannot be repaired, recorded as a gap\" source=gen-gap partition=0 "
                                  "first_seq=6 last_seq=7",
                          WAIT_MS));
    s_stop_writer();
}

Test(writer_run, without_a_repair_service_a_hole_waits_and_is_asked_for_again)
{
    const char *env[] = {"WRITER_REPAIR_TIMEOUT_MS=300", NULL};
    writer = s_start(env);
    wt_bus_publish_range(bus, "gen-wait", 1, 1, 1);
    wt_bus_publish_range(bus, "gen-wait", 1, 3, 3);
    cr_assert(tk_wait_log(writer, "\"no answer from the repair service\" source=gen-wait partition=1 from=2 to=2",
                          WAIT_MS));
    s_wait_sql("SELECT count(*) FROM events", 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0, "no answer is not a gap");
    /* The repair service comes: the next request is answered. */
    router = wt_router_new(w->replay_ep);
    s_request(2, 2, "the request was not sent again");
    wt_router_answer(router, s_all);
    s_wait_sql("SELECT count(*) FROM events", 3);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    s_stop_writer();
}

static bool s_none(int64_t seq)
{
    (void)seq;
    return false;
}

/* One forged heartbeat announcing 2^62 for a real source used to record
 * about 10^11 events as gaps and move the checkpoint past every real event
 * to come; its head was kept in publisher_heads too. */
Test(writer_run, a_forged_head_beyond_the_archive_is_no_gap_and_real_events_still_commit)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-real", 1, 1, 3);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-real'", 3);
    wt_bus_heartbeat(bus, "gen-real", 1, (int64_t)1 << 62);
    s_request(4, 0, "no repair request came");
    /* The archive knows the source and holds nothing past 3. */
    wt_router_answer_as(router, s_none, true, 3);
    cr_assert(tk_wait_log(writer, "\"seqs claimed beyond the archive's head are not known to exist: no gap, asking "
                                  "again later\" source=gen-real partition=1 archive_head=3",
                          WAIT_MS));
    wt_bus_publish_range(bus, "gen-real", 1, 4, 6);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-real'", 6);
    wt_check_rows(w->conn, "gen-real", 1, 1, 6, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    /* Asked again after a backoff; the archive has caught up with the real
     * events only. */
    s_request(7, 0, "the claim was not asked for again");
    wt_router_answer_as(router, s_none, true, 6);
    wt_bus_publish_range(bus, "gen-real", 1, 7, 7);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-real'", 7);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    cr_assert_leq(tk_sql_int(w->conn, "SELECT COALESCE(max(seq), 0) FROM publisher_heads WHERE source = 'gen-real'"),
                  7, "no unproven head is recorded");
    s_stop_writer();
}

/* A one-shot ingest with another STATE_DIR: the repair service does not
 * know its source. That used to record every missing event as a gap. */
Test(writer_run, a_source_the_repair_service_does_not_know_waits_and_is_asked_again)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "file-elsewhere", 2, 1, 1);
    wt_bus_publish_range(bus, "file-elsewhere", 2, 3, 4);
    s_request(2, 2, "no repair request came");
    wt_router_answer_as(router, s_all, false, 0);
    cr_assert(tk_wait_log(writer, "\"the repair service does not know this source: no answer yet, asking again "
                                  "later\" source=file-elsewhere partition=2",
                          WAIT_MS));
    s_request(2, 0, "not asked again");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0, "no answer yet is not a gap");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT seq FROM checkpoints WHERE source = 'file-elsewhere'"), 1);
    /* Now it knows (the file was handed to it, or replayed). */
    wt_router_answer(router, s_all);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'file-elsewhere'", 4);
    wt_check_rows(w->conn, "file-elsewhere", 2, 1, 4, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    s_stop_writer();
}

Test(writer_run, a_heartbeat_beyond_the_last_event_asks_for_the_tail)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_bus_publish_range(bus, "gen-tail", 3, 1, 3);
    wt_bus_heartbeat(bus, "gen-tail", 3, 5);
    s_repair_all(4, 5);
    s_wait_sql("SELECT count(*) FROM events", 5);
    wt_check_rows(w->conn, "gen-tail", 3, 1, 5, NULL);
    s_wait_sql("SELECT seq FROM publisher_heads WHERE source = 'gen-tail' AND partition = 3", 5);
    s_stop_writer();
}

/* ---- Messages of several events ---- */

/* In the next test seq 100 of partition 2 is refused by validation. */
static bool s_not_100(int64_t seq)
{
    return seq != 100;
}

Test(writer_run, each_event_of_a_message_of_many_is_stored_or_rejected_on_its_own)
{
    writer = s_start(NULL);
    ev_buf_t body;
    ev_buf_init(&body);
    for (int32_t p = 0; p < PARTITIONS; p++) {
        for (int64_t first = 1; first <= 320; first += 64) {
            ev_buf_reset(&body);
            for (int64_t seq = first; seq < first + 64; seq++) {
                ev_event_t ev = wt_event("gen-many", p, seq);
                if (p == 2 && seq == 100)
                    ev.user_name = (ev_str_t){"bad \xc3\x28 text", 12}; /* not UTF-8 */
                wt_bus_body_add(bus, &body, &ev);
                if (p == 2 && seq == 200) {
                    ev_event_t other = wt_event("gen-other", 1, 1); /* of partition 1, in a body of 2 */
                    wt_bus_body_add(bus, &body, &other);
                }
            }
            wt_bus_publish_body(bus, p, body.data, body.len);
        }
    }
    ev_buf_free(&body);
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE source = 'gen-many' AND seq = 320", PARTITIONS);
    for (int32_t p = 0; p < PARTITIONS; p++)
        wt_check_rows(w->conn, "gen-many", p, 1, 320, p == 2 ? s_not_100 : NULL);
    cr_assert_eq(wt_rows(w->conn), PARTITIONS * 320 - 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-many' AND partition = 2 AND"
                                     " seq = 100 AND reason = 'bad_encoding'"),
                 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE source = 'gen-other' AND"
                                     " reason = 'bad_identity'"),
                 1);
    /* A reject keeps its own event's map, not the message's body. */
    PGresult *r = PQexecParams(w->conn, "SELECT raw FROM rejects WHERE seq = 100", 0, NULL, NULL, NULL, NULL, 1);
    cr_assert_eq(PQntuples(r), 1);
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev;
    ev_error_t err;
    cr_assert_eq(ev_codec_decode_event(codec, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &ev, &err), EV_OK,
                 "raw is one whole map: %s", err.detail);
    cr_assert_eq(ev.seq, 100);
    cr_assert_eq(ev.partition, 2);
    ev_codec_destroy(&codec);
    PQclear(r);
    cr_assert_eq(wt_log_count(writer, "undecodable"), 0);
    s_stop_writer();
}

/* A heartbeat's map: well-formed, but no event. */
static const char s_heartbeat_map[] = "\x85\xa1v\x01\xa6source\xa1x\xa9partition\x01\xa3seq\x05"
                                      "\xacpublished_at\x01";

Test(writer_run, a_bad_map_loses_its_event_alone_and_an_unreadable_one_the_rest_which_is_repaired)
{
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    ev_buf_t body;
    ev_buf_init(&body);
    /* 1, 2, a map that is no event (a heartbeat's), 3, 4. */
    for (int64_t seq = 1; seq <= 4; seq++) {
        ev_event_t ev = wt_event("gen-bad-map", 1, seq);
        wt_bus_body_add(bus, &body, &ev);
        if (seq == 2)
            ev_buf_append(&body, s_heartbeat_map, sizeof s_heartbeat_map - 1);
    }
    wt_bus_publish_body(bus, 1, body.data, body.len);
    s_wait_sql("SELECT count(*) FROM events", 4);
    cr_assert(tk_wait_log(writer, "\"undecodable events in a message\" from=bus topic=\"p0001/ev\" taken=4 dropped=1 "
                                  "unreadable_bytes=0 first_bad_event=3",
                          WAIT_MS),
              "%s", wt_log(writer));

    /* 5, 6, a byte msgpack never uses, then 7 and 8, which cannot be found. */
    ev_buf_reset(&body);
    for (int64_t seq = 5; seq <= 8; seq++) {
        ev_event_t ev = wt_event("gen-bad-map", 1, seq);
        if (seq == 7)
            ev_buf_putc(&body, '\xc1');
        wt_bus_body_add(bus, &body, &ev);
    }
    wt_bus_publish_body(bus, 1, body.data, body.len);
    s_wait_sql("SELECT count(*) FROM events", 6);
    cr_assert(tk_wait_log(writer, "taken=2 dropped=0 unreadable_bytes=", WAIT_MS), "%s", wt_log(writer));
    /* The publisher's heartbeat shows 7 and 8 missing: they are repaired. */
    wt_bus_heartbeat(bus, "gen-bad-map", 1, 8);
    s_repair_all(7, 8);
    s_wait_sql("SELECT count(*) FROM events", 8);
    wt_check_rows(w->conn, "gen-bad-map", 1, 1, 8, NULL);
    ev_buf_free(&body);
    tk_signal(writer, SIGTERM);
    cr_assert(tk_wait_exit(writer, WAIT_MS));
    cr_assert(tk_wait_log(writer, "undecodable=2", 1000), "each message counts once: %s", wt_log(writer));
}

Test(writer_run, a_lost_connection_loses_nothing)
{
    writer = s_start(NULL);
    char kill[512];
    snprintf(kill, sizeof kill,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE starts_with(application_name, 'evpipe-writer/') AND datname = '%s'",
             w->db);
    int64_t seq[PARTITIONS] = {0};
    for (int round = 0; round < 10; round++) {
        int32_t p = round % PARTITIONS;
        wt_bus_publish_range(bus, "gen-lost", p, seq[p] + 1, seq[p] + 200);
        seq[p] += 200;
        tk_sql_int(w->conn, kill);
    }
    wt_bus_publish_range(bus, "gen-lost", 0, seq[0] + 1, seq[0] + 100);
    seq[0] += 100;
    s_wait_sql("SELECT count(*) FROM events", 2100);
    for (int32_t p = 0; p < PARTITIONS; p++)
        wt_check_rows(w->conn, "gen-lost", p, 1, seq[p], NULL);
    cr_assert(tk_wait_log(writer, "\"lost the PostgreSQL connection\"", 1000));
    s_stop_writer();
}

/* A connection to the cluster's postgres database. */
static PGconn *s_admin(void)
{
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *vals[] = {w->pg_host, w->pg_port, w->pg_user, "postgres", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

Test(writer_run, postgresql_unavailable_for_a_while_loses_nothing)
{
    writer = s_start(NULL);
    tk_sql_exec(w->conn, "INSERT INTO checkpoints (source, partition, seq, updated_at)"
                         " VALUES ('gen-down-known', 2, 50, now() - interval '1 hour')");
    wt_bus_publish_range(bus, "gen-down", 2, 1, 100);
    s_wait_sql("SELECT count(*) FROM events", 100);
    /* No new connection to the test's database while it is disallowed. */
    char sql[512];
    PGconn *admin = s_admin();
    snprintf(sql, sizeof sql, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", w->db);
    tk_sql_exec(admin, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE starts_with(application_name, 'evpipe-writer/') AND datname = '%s'",
             w->db);
    tk_sql_int(w->conn, sql);
    wt_bus_publish_range(bus, "gen-down", 2, 101, 3000);
    cr_assert(tk_wait_log(writer, "\"PostgreSQL unavailable\"", WAIT_MS), "the failure is logged");
    /* A few backoff steps pass while events keep coming, of two sources the
     * writer has not met: one new, one committed up to 50 before. */
    cr_assert(tk_wait_log(writer, "retry_in_ms=400", WAIT_MS));
    wt_bus_publish_range(bus, "gen-down", 2, 3001, 4000);
    wt_bus_publish_range(bus, "gen-down-new", 2, 1, 20);
    wt_bus_publish_range(bus, "gen-down-known", 2, 40, 60);
    cr_assert(tk_wait_log(writer, "\"a source's checkpoint could not be read: it is read before anything is asked "
                                  "for\" source=gen-down-known",
                          WAIT_MS));
    cr_assert_eq(wt_rows(w->conn), 100);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS true", w->db);
    tk_sql_exec(admin, sql);
    PQfinish(admin);
    s_wait_sql("SELECT count(*) FROM events", 4000 + 20 + 10);
    wt_check_rows(w->conn, "gen-down", 2, 1, 4000, NULL);
    wt_check_rows(w->conn, "gen-down-new", 2, 1, 20, NULL);
    wt_check_rows(w->conn, "gen-down-known", 2, 51, 60, NULL);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-down-known'", 60);
    char *log = wt_log(writer);
    cr_assert(strstr(log, "unused-by-trust-auth") == NULL, "the password is never logged");
    free(log);
    s_stop_writer();
}

/* Partitions owned per writer in writer_assignments, as "a,b" sorted (the
 * counts only), e.g. "2,2". */
static void s_owned_counts(char *out, size_t len)
{
    PGresult *r = PQexec(w->conn, "SELECT count(*) FROM writer_assignments WHERE writer_pid IS NOT NULL"
                                  " GROUP BY writer_pid ORDER BY 1");
    out[0] = '\0';
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* Not migrated yet. */
        snprintf(out, len, "(%s)", PQresStatus(PQresultStatus(r)));
        PQclear(r);
        return;
    }
    for (int i = 0; i < PQntuples(r); i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
    PQclear(r);
}

/* Waits until the writers own the partitions as `want` says ("2,2"). */
static void s_wait_owned(const char *want)
{
    char got[64] = "";
    int64_t end = tk_now_ms() + WAIT_MS;
    while (tk_now_ms() < end) {
        s_owned_counts(got, sizeof got);
        if (strcmp(got, want) == 0)
            return;
        tk_sleep_ms(50);
    }
    cr_assert_fail("partitions owned per writer: %s, %s expected", got, want);
}

Test(writer_run, two_writers_share_the_partitions_and_store_each_event_once)
{
    writer = s_spawn(NULL);
    tk_proc_t *second = s_spawn(NULL);
    s_wait_owned("2,2");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) - count(DISTINCT partition) FROM writer_assignments"), 0,
                 "one owner per partition");
    /* Every subscription (a "!welcome" each, and one per partition taken)
     * has reached the stand-in bus: the same count twice in a row. */
    int expected = -1;
    for (int i = 0; i < 150; i++) {
        int now = 2 + wt_log_count(writer, "\"partition taken\"") + wt_log_count(second, "\"partition taken\"");
        if (wt_bus_wait_subscriptions(bus, now, 200) && now == expected)
            break;
        expected = now;
    }
    for (int round = 0; round < 5; round++)
        for (int32_t p = 0; p < PARTITIONS; p++)
            wt_bus_publish_range(bus, "gen-two", p, round * 500 + 1, round * 500 + 500);
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE seq = 2500", PARTITIONS);
    s_wait_sql("SELECT count(*) FROM events", PARTITIONS * 2500);
    for (int32_t p = 0; p < PARTITIONS; p++)
        wt_check_rows(w->conn, "gen-two", p, 1, 2500, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects"), 0);
    /* Each wrote only its own partitions. */
    char *log1 = wt_log(writer), *log2 = wt_log(second);
    cr_assert(strstr(log1, "\"another writer committed") == NULL, "%s", log1);
    cr_assert(strstr(log2, "\"another writer committed") == NULL, "%s", log2);
    free(log1);
    free(log2);
    /* The second stops: the first takes its partitions at once. */
    tk_signal(second, SIGTERM);
    cr_assert(tk_wait_exit(second, WAIT_MS));
    cr_assert_eq(tk_exit_code(second), 0);
    cr_assert_eq(wt_log_count(second, "\"partition given up\""), wt_log_count(second, "\"partition taken\""));
    tk_proc_destroy(&second);
    s_wait_owned("4");
    s_stop_writer();
}

/* In a transaction left open: COPYs seqs first..last of (source,
 * partition) into events and moves their checkpoint, as another writer
 * would. COMMIT ends it. */
static void s_commit_as_another_writer(const char *source, int32_t partition, int64_t first, int64_t last)
{
    wt_begin_as_another_writer(w->conn, source, partition, first, last);
    tk_sql_exec(w->conn, "COMMIT");
}

Test(writer_run, rows_another_writer_committed_meanwhile_are_dropped_not_stored_twice)
{
    /* Only a writer that lost its lock without noticing could meet this;
     * the checkpoint's compare-and-set still keeps each event once. The
     * writer knows the source at 10 when another commits 11..60. */
    const char *env[] = {"WRITER_LINGER_MS=300", NULL};
    writer = s_start(env);
    wt_bus_publish_range(bus, "gen-race", 1, 1, 10);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-race'", 10);
    s_commit_as_another_writer("gen-race", 1, 11, 60);
    wt_bus_publish_range(bus, "gen-race", 1, 1, 100);
    s_wait_sql("SELECT count(*) FROM events", 100);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-race'", 100);
    wt_check_rows(w->conn, "gen-race", 1, 1, 100, NULL);
    cr_assert(tk_wait_log(writer, "\"another writer committed some of these events; dropped from the batch\"",
                          WAIT_MS));
    s_stop_writer();
}

Test(writer_run, a_commit_racing_another_transaction_waits_for_it_and_stores_only_what_it_did_not)
{
    /* The other transaction has stored 1..60 and holds the checkpoint when
     * the writer commits 1..100: the writer waits for it, then finds the
     * checkpoint moved, drops 1..60 and stores 61..100. */
    const char *env[] = {"WRITER_LINGER_MS=50", NULL};
    writer = s_start(env);
    wt_begin_as_another_writer(w->conn, "gen-race2", 1, 1, 60);
    wt_bus_publish_range(bus, "gen-race2", 1, 1, 100);
    PGconn *look = tk_world_connect(w);
    cr_assert_eq(tk_wait_sql_int(look, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                 " AND application_name LIKE 'evpipe-writer%'", 1, WAIT_MS), 1,
                 "the writer's commit should wait for the other transaction");
    PQfinish(look);
    tk_sql_exec(w->conn, "COMMIT");
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-race2'", 100);
    wt_check_rows(w->conn, "gen-race2", 1, 1, 100, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events WHERE source = 'gen-race2'"), 100);
    cr_assert(tk_wait_log(writer, "\"another writer committed some of these events; dropped from the batch\" rows=60",
                          WAIT_MS));
    s_stop_writer();
}

/* Applies the migrations, as a writer's --migrate-only does. */
static void s_migrate(void)
{
    const char *args[] = {"--migrate-only", NULL};
    tk_proc_t *m = tk_start(w, "writer", args, NULL);
    cr_assert(tk_wait_exit(m, WAIT_MS) && tk_exit_code(m) == 0);
    tk_proc_destroy(&m);
}

static bool s_up_to_40(int64_t seq)
{
    return seq <= 40;
}

Test(writer_run, a_writer_starting_while_publishers_are_quiet_repairs_up_to_their_heads_and_past_them)
{
    /* What earlier writers recorded: committed up to 10, published up to 30;
     * the archive holds up to 40 (published after the last recorded head). */
    s_migrate();
    tk_sql_exec(w->conn, "INSERT INTO checkpoints (source, partition, seq) VALUES ('gen-quiet', 2, 10)");
    tk_sql_exec(w->conn, "INSERT INTO publisher_heads (source, partition, seq) VALUES ('gen-quiet', 2, 30)");
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_request_t req = s_request_of("gen-quiet", 2, 11, 30, "the recorded head did not ask for a repair");
    wt_router_answer(router, s_all);
    /* No heartbeat comes: it looks past the head. */
    req = s_request(31, 0, "no request past the head");
    cr_assert_gt(req.to, 40);
    cr_assert(tk_wait_log(writer, "\"asking for events after the last known seq\" source=gen-quiet partition=2 "
                                  "from=31",
                          WAIT_MS));
    wt_router_answer(router, s_up_to_40);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'gen-quiet'", 40);
    cr_assert_eq(wt_rows(w->conn), 30);
    wt_check_rows(w->conn, "gen-quiet", 2, 11, 40, NULL);
    /* What was not sent is not known to exist: no gap, no more asking. */
    cr_assert_not(wt_router_recv(router, &req, 1500), "asked again from %lld", (long long)req.from);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM gaps"), 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT lag FROM writer_assignments WHERE partition = 2"), 0);
    s_stop_writer();
}

/* Each file ingest replays is a new source. A writer kept a stream for every
 * source it had seen and loaded one for every checkpoint of its partitions,
 * and refused a new source once a partition had WRITER_SOURCES_MAX: after
 * that many files it stored nothing new, and restarting did not help. */
Test(writer_run, sources_finished_long_ago_leave_room_for_new_ones_and_are_known_again)
{
    const char *env[] = {"WRITER_SOURCES_MAX=16", "WRITER_STREAM_IDLE_MS=300", NULL};
    writer = s_start(env);
    char name[64];
    for (int round = 0; round < 5; round++) {
        for (int i = round * 8; i < round * 8 + 8; i++) {
            snprintf(name, sizeof name, "file-%032d", i);
            wt_bus_publish_range(bus, name, 1, 1, 5);
        }
        s_wait_sql("SELECT count(*) FROM events", (round + 1) * 8 * 5);
        tk_sleep_ms(600);
    }
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(DISTINCT source) FROM checkpoints WHERE partition = 1"), 40);
    /* A source forgotten long ago comes back with what it had and more:
     * its checkpoint is read again, and only the new events are stored. */
    snprintf(name, sizeof name, "file-%032d", 0);
    wt_bus_publish_range(bus, name, 1, 1, 7);
    s_wait_sql("SELECT max(seq) FROM events WHERE source = 'file-00000000000000000000000000000000'", 7);
    cr_assert_eq(wt_rows(w->conn), 40 * 5 + 2);
    /* What it forgot it marked settled; a commit clears the mark. */
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE settled AND source <> 'file-00000000000000000000000000000000'",
               39);
    s_wait_sql("SELECT count(*) FROM checkpoints WHERE settled", 40);
    s_stop_writer();

    /* A new writer with forty sources in the partition's checkpoints, all
     * settled, takes a new source. */
    writer = s_spawn(env);
    s_attached(writer, 2 * (PARTITIONS + 1));
    wt_bus_publish_range(bus, "file-new", 1, 1, 5);
    s_wait_sql("SELECT count(*) FROM events WHERE source = 'file-new'", 5);
    wt_check_rows(w->conn, "file-new", 1, 1, 5, NULL);
    cr_assert_eq(wt_rows(w->conn), 40 * 5 + 2 + 5);
    char *log = wt_log(writer);
    cr_assert_null(strstr(log, "a new source refused"), "%s", log);
    free(log);
    s_stop_writer();
}

Test(writer_run, a_source_left_unsettled_long_ago_is_looked_past_and_a_settled_one_is_not)
{
    /* A writer that died after committing part of a file replay whose
     * publisher died too: nobody announces the rest. Whoever takes the
     * partition looks past the checkpoint, however long ago it moved; a
     * checkpoint a writer marked settled when it forgot the source is left
     * unread. */
    s_migrate();
    tk_sql_exec(w->conn, "INSERT INTO checkpoints (source, partition, seq, updated_at, settled) VALUES"
                         " ('file-cut', 2, 10, now() - interval '1 day', false),"
                         " ('file-done', 2, 50, now() - interval '1 day', true)");
    router = wt_router_new(w->replay_ep);
    writer = s_start(NULL);
    wt_request_t req = s_request_of("file-cut", 2, 11, 0, "the unsettled source was not looked past");
    wt_router_answer(router, s_up_to_40);
    s_wait_sql("SELECT seq FROM checkpoints WHERE source = 'file-cut'", 40);
    wt_check_rows(w->conn, "file-cut", 2, 11, 40, NULL);
    while (wt_router_recv(router, &req, 1500)) {
        cr_assert_str_neq(req.source, "file-done", "a settled source was asked for");
        wt_router_answer(router, s_up_to_40);
    }
    s_stop_writer();
}

Test(writer_run, help_lists_the_settings_and_a_bad_setting_stops_it)
{
    const char *args[] = {"--help", NULL};
    tk_proc_t *p = tk_start(w, "writer", args, NULL);
    cr_assert(tk_wait_exit(p, WAIT_MS));
    cr_assert_eq(tk_exit_code(p), 0);
    char *log = wt_log(p);
    const char *names[] = {"WRITER_BATCH_SIZE", "WRITER_LINGER_MS", "WRITER_HOLDBACK_MAX", "WRITER_REPAIR_TIMEOUT_MS",
                           "BUS_SUBSCRIBE_ENDPOINT", "REPLAY_ENDPOINT", "POSTGRES_HOST", "--migrate-only"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(strstr(log, names[i]) != NULL, "--help does not list %s: %s", names[i], log);
    free(log);
    tk_proc_destroy(&p);

    const char *env[] = {"WRITER_BATCH_SIZE=lots", NULL};
    p = tk_start(w, "writer", NULL, env);
    cr_assert(tk_wait_exit(p, WAIT_MS));
    cr_assert_eq(tk_exit_code(p), 1);
    log = wt_log(p);
    cr_assert(strstr(log, "WRITER_BATCH_SIZE=lots") != NULL, "%s", log);
    cr_assert_eq(strchr(log, '\n'), log + strlen(log) - 1, "one line: %s", log);
    free(log);
    tk_proc_destroy(&p);
}

Test(writer_run, serves_metrics_and_health_on_metrics_port)
{
    char setting[40];
    int port = tk_free_port();
    snprintf(setting, sizeof setting, "METRICS_PORT=%d", port);
    const char *env[] = {setting, NULL};
    writer = s_start(env);
    wt_bus_publish_range(bus, "gen-metrics", 2, 1, 20);
    s_wait_sql("SELECT count(*) FROM events", 20);
    char *health = NULL, *metrics = NULL;
    /* The counters reach the registry with the next turn of the loop. */
    int64_t end = tk_now_ms() + WAIT_MS;
    do {
        free(health);
        free(metrics);
        health = wt_http_get(port, "/healthz");
        metrics = wt_http_get(port, "/metrics");
    } while ((!metrics || !strstr(metrics, "evpipe_writer_events_committed_total 20")) && tk_now_ms() < end &&
             (tk_sleep_ms(50), true));
    cr_assert_not_null(health, "nothing answers on METRICS_PORT");
    cr_assert(strncmp(health, "HTTP/1.", 7) == 0 && strstr(health, " 200 ") != NULL, "%s", health);
    cr_assert(strstr(metrics, "evpipe_writer_events_committed_total 20") != NULL, "%s", metrics);
    cr_assert(strstr(metrics, "evpipe_writer_partitions_owned 4") != NULL, "%s", metrics);
    cr_assert(strstr(metrics, "evpipe_writer_postgres_connected 1") != NULL, "%s", metrics);
    cr_assert(strstr(metrics, "evpipe_writer_rejects_total{reason=\"database\"} 0") != NULL, "%s", metrics);
    cr_assert(strstr(metrics, "evpipe_writer_publish_to_commit_seconds_count 20") != NULL, "%s", metrics);
    free(health);
    free(metrics);
    s_stop_writer();
}
