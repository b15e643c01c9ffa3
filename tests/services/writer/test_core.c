/* Integration test of the writer's library driven directly (no process):
 * its counters, and taking and giving up a partition at run time, against a
 * real PostgreSQL and real sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/config.h"
#include "evpipe/log.h"
#include "evpipe/wire.h"
#include "peers.h"
#include "testkit.h"
#include "writer.h"

#define PARTITIONS 4
#define WAIT_MS 30000

static tk_world_t *w;
static wt_bus_t *bus;
static writer_t *wr;
static evp_config_t cfg;

static void setup(void)
{
    w = tk_world_new(criterion_current_test->name);
    bus = wt_bus_new(w->sub_ep);
    evp_config_defaults(&cfg);
    snprintf(cfg.postgres_host, sizeof cfg.postgres_host, "%s", w->pg_host);
    cfg.postgres_port = atoi(w->pg_port);
    snprintf(cfg.postgres_user, sizeof cfg.postgres_user, "%s", w->pg_user);
    snprintf(cfg.postgres_db, sizeof cfg.postgres_db, "%s", w->db);
    snprintf(cfg.bus_subscribe_endpoint, sizeof cfg.bus_subscribe_endpoint, "%s", w->sub_ep);
    snprintf(cfg.replay_endpoint, sizeof cfg.replay_endpoint, "%s", w->replay_ep);
    cfg.partitions = PARTITIONS;
    evp_log_init("writer", EVP_LOG_WARN);
    char why[256];
    wr = writer_new(&cfg, why, sizeof why);
    cr_assert_not_null(wr, "%s", why);
}

static void teardown(void)
{
    writer_destroy(&wr);
    cr_assert_null(wr);
    wt_bus_destroy(&bus);
    tk_world_destroy(&w);
}

TestSuite(writer_core, .init = setup, .fini = teardown, .timeout = 120);

/* Turns the writer's loop and the bus until done(st) holds; false at the deadline. */
static bool s_pump(bool (*done)(const writer_stats_t *st), int subscriptions)
{
    int64_t end = tk_now_ms() + WAIT_MS;
    while (tk_now_ms() < end) {
        writer_step(wr, 10);
        bool subscribed = wt_bus_wait_subscriptions(bus, subscriptions, 0);
        if (subscribed && (!done || done(writer_stats(wr))))
            return true;
    }
    return false;
}

static bool s_first_round(const writer_stats_t *st)
{
    return st->committed == 10 && st->rejects_total == 1 && st->undecodable == 1 && st->duplicates == 3 &&
           st->holes == 1 && writer_held(wr) == 1;
}

static bool s_second_round(const writer_stats_t *st)
{
    return st->committed == 11;
}

Test(writer_core, counts_what_happens_and_takes_partitions_at_run_time)
{
    cr_assert_eq(writer_start(wr), 0);
    cr_assert_eq(writer_owned_count(wr), PARTITIONS);
    cr_assert(s_pump(NULL, PARTITIONS + 1), "the writer did not subscribe");

    wt_bus_publish_range(bus, "gen-core", 1, 1, 10);
    wt_bus_publish_range(bus, "gen-core", 1, 3, 5);
    const void *garbage[] = {"p0001/ev", "\xc1"};
    size_t garbage_len[] = {8, 1};
    wt_bus_send_raw(bus, 2, garbage, garbage_len);
    ev_event_t bad = wt_event("gen-core", 1, 11);
    bad.product_category = (ev_str_t){"\xff", 1};
    wt_bus_publish(bus, &bad);
    wt_bus_publish_range(bus, "gen-core", 1, 13, 13); /* 12 is missing: held */
    cr_assert(s_pump(s_first_round, PARTITIONS + 1), "counters: committed %llu rejects %llu undecodable %llu "
              "duplicates %llu holes %llu held %zu",
              (unsigned long long)writer_stats(wr)->committed, (unsigned long long)writer_stats(wr)->rejects_total,
              (unsigned long long)writer_stats(wr)->undecodable, (unsigned long long)writer_stats(wr)->duplicates,
              (unsigned long long)writer_stats(wr)->holes, writer_held(wr));
    const writer_stats_t *st = writer_stats(wr);
    cr_assert_eq(st->received, 15, "10 + 3 duplicates + the refused one + the held one");
    cr_assert_eq(st->rejects[EV_REJECT_ENCODING], 1);
    cr_assert_eq(st->latency.count, 10, "one latency per committed row");
    cr_assert(writer_latency_percentile(&st->latency, 99) > 0);
    cr_assert(st->batches >= 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT seq FROM checkpoints WHERE source = 'gen-core' AND partition = 1"), 11);

    /* Giving partition 1 up forgets what it held back; taking it again
     * starts from its checkpoint. */
    cr_assert_eq(writer_release_partition(wr, 1), 0);
    cr_assert_not(writer_owns(wr, 1));
    cr_assert_eq(writer_owned_count(wr), PARTITIONS - 1);
    cr_assert_eq(writer_held(wr), 0);
    cr_assert_eq(writer_take_partition(wr, 1), 0);
    cr_assert(writer_owns(wr, 1));
    cr_assert(s_pump(NULL, PARTITIONS + 2), "the writer did not subscribe again");
    wt_bus_publish_range(bus, "gen-core", 1, 12, 12);
    cr_assert(s_pump(s_second_round, PARTITIONS + 2));
    cr_assert_eq(st->duplicates, 3);

    ev_buf_t text;
    ev_buf_init(&text);
    writer_render_metrics(wr, &text);
    cr_assert(strstr(text.data, "evpipe_writer_events_committed_total 11\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "evpipe_writer_duplicates_total 3\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "evpipe_writer_undecodable_total 1\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "evpipe_writer_rejects_total{reason=\"bad_encoding\"} 1\n") != NULL, "%s",
              text.data);
    cr_assert(strstr(text.data, "evpipe_writer_holes_found_total 1\n") != NULL, "%s", text.data);
    ev_buf_free(&text);

    writer_stop(wr);
    cr_assert(writer_stopping(wr));
    cr_assert_eq(writer_finish(wr), 0);
    cr_assert_eq(wt_rows(w->conn), 11);
    wt_check_rows(w->conn, "gen-core", 1, 1, 10, NULL);
    wt_check_rows(w->conn, "gen-core", 1, 12, 12, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM rejects WHERE seq = 11 AND reason = 'bad_encoding'"), 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT seq FROM checkpoints WHERE source = 'gen-core' AND partition = 1"), 12);
}

/* ---- Two writers in one process, sharing the partitions ---- */

/* Turns both loops (and the stand-in bus) until done() holds, checking at
 * every turn that no partition has two owners in PostgreSQL (a writer that
 * lost its session may still believe it owns a partition, but it writes
 * nothing before it has the lock again); false at the deadline. */
static bool s_pump_two(writer_t *a, writer_t *b, bool (*done)(writer_t *a, writer_t *b))
{
    int64_t end = tk_now_ms() + WAIT_MS;
    while (tk_now_ms() < end) {
        if (a)
            writer_step(a, 5);
        if (b)
            writer_step(b, 5);
        wt_bus_wait_subscriptions(bus, 0, 0);
        cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) - count(DISTINCT partition) FROM writer_assignments"), 0,
                     "a partition has two owners");
        if (done(a, b))
            return true;
    }
    return false;
}

static bool s_two_each(writer_t *a, writer_t *b)
{
    return writer_owned_count(a) == 2 && writer_owned_count(b) == 2;
}

static bool s_first_owns_all(writer_t *a, writer_t *b)
{
    (void)b;
    return writer_owned_count(a) == PARTITIONS;
}

static bool s_second_owns_all(writer_t *a, writer_t *b)
{
    (void)a;
    return writer_owned_count(b) == PARTITIONS;
}

/* Rows of writer_assignments owned by name. */
static int64_t s_owned_in_view(const char *name)
{
    const char *vals[] = {name};
    PGresult *r = PQexecParams(w->conn, "SELECT count(*) FROM writer_assignments WHERE writer = $1", 1, NULL, vals,
                               NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(w->conn));
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

Test(writer_core, two_writers_share_the_partitions_and_hand_them_over_when_one_stops)
{
    cr_assert_eq(writer_start(wr), 0);
    cr_assert_eq(strncmp(writer_name(wr), "evpipe-writer/", 14), 0, "%s", writer_name(wr));
    cr_assert_eq(writer_owned_count(wr), PARTITIONS, "alone, it takes everything");
    cr_assert_eq(s_owned_in_view(writer_name(wr)), PARTITIONS);

    char why[256];
    writer_t *second = writer_new(&cfg, why, sizeof why);
    cr_assert_not_null(second, "%s", why);
    cr_assert_str_neq(writer_name(second), writer_name(wr));
    cr_assert_eq(writer_start(second), 0);
    cr_assert(s_pump_two(wr, second, s_two_each), "owned: %zu and %zu", writer_owned_count(wr),
              writer_owned_count(second));
    cr_assert_eq(s_owned_in_view(writer_name(wr)), 2);
    cr_assert_eq(s_owned_in_view(writer_name(second)), 2);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) - count(DISTINCT partition) FROM writer_assignments"), 0);

    /* The second stops: its partitions come back to the first. */
    writer_stop(second);
    cr_assert_eq(writer_finish(second), 0);
    writer_destroy(&second);
    cr_assert(s_pump_two(wr, NULL, s_first_owns_all), "owned: %zu", writer_owned_count(wr));
    cr_assert_eq(s_owned_in_view(writer_name(wr)), PARTITIONS);
    writer_stop(wr);
    cr_assert_eq(writer_finish(wr), 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM writer_assignments WHERE writer_pid IS NOT NULL"), 0,
                 "a writer that stopped owns nothing");
}

Test(writer_core, a_writer_that_lost_its_connection_forgets_partitions_another_took_meanwhile)
{
    /* Events stay in the batch: a long linger. */
    writer_destroy(&wr);
    cfg.writer_linger_ms = 60000;
    char why[256];
    wr = writer_new(&cfg, why, sizeof why);
    cr_assert_not_null(wr, "%s", why);
    cr_assert_eq(writer_start(wr), 0);
    writer_t *second = writer_new(&cfg, why, sizeof why);
    cr_assert_not_null(second, "%s", why);
    cr_assert_eq(writer_start(second), 0);
    cr_assert(s_pump_two(wr, second, s_two_each));
    int32_t p = 0;
    while (!writer_owns(wr, p))
        p++;
    /* Published again until the subscription has reached the stand-in bus
     * and all five are in the batch (a repeat is a duplicate). */
    int64_t end = tk_now_ms() + WAIT_MS;
    while (writer_stats(wr)->committed == 0 && writer_pending_rows(wr) < 5 && tk_now_ms() < end) {
        wt_bus_publish_range(bus, "gen-lost", p, 1, 5);
        for (int i = 0; i < 20; i++) {
            writer_step(wr, 10);
            writer_step(second, 10);
            wt_bus_wait_subscriptions(bus, 0, 0);
        }
    }
    cr_assert_eq(writer_pending_rows(wr), 5, "the events wait in the batch");

    /* Its session ends (as when the network drops it); the other writer
     * sees it gone and takes everything. */
    const char *vals[] = {writer_name(wr)};
    PGresult *r = PQexecParams(w->conn, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                                        " WHERE application_name = $1",
                               1, NULL, vals, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(w->conn));
    PQclear(r);
    cr_assert(s_pump_two(NULL, second, s_second_owns_all), "owned: %zu", writer_owned_count(second));

    /* The first comes back: the locks are not its any more, so the rows it
     * held are dropped, not written; then the partitions are shared again. */
    cr_assert(s_pump_two(wr, second, s_two_each), "owned: %zu and %zu", writer_owned_count(wr),
              writer_owned_count(second));
    cr_assert_eq(wt_rows(w->conn), 0, "nothing was committed without the lock");
    writer_stop(second);
    cr_assert_eq(writer_finish(second), 0);
    writer_destroy(&second);
    writer_stop(wr);
    writer_finish(wr);
}

/* Sends a heartbeat of (source, partition) announcing seq, whose publisher
 * says it runs with `partitions` (0: says nothing). */
static void s_heartbeat_saying(const char *source, int32_t partition, int64_t seq, int32_t partitions)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {.source = {source, (uint32_t)strlen(source)},
                         .partition = partition,
                         .seq = seq,
                         .published_at = tk_now_ms() * 1000,
                         .partitions = partitions};
    const void *body;
    size_t len;
    ev_codec_encode_heartbeat(codec, &hb, &body, &len);
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, (uint32_t)partition, EV_MSG_HEARTBEAT);
    const void *parts[] = {topic, body};
    size_t lens[] = {tlen, len};
    wt_bus_send_raw(bus, 2, parts, lens);
    ev_codec_destroy(&codec);
}

static bool s_three_heartbeats(const writer_stats_t *st)
{
    return st->heartbeats == 3;
}

Test(writer_core, counts_heartbeats_of_publishers_with_another_partitions)
{
    cr_assert_eq(writer_start(wr), 0);
    cr_assert(s_pump(NULL, PARTITIONS + 1), "the writer did not subscribe");
    s_heartbeat_saying("gen-agrees", 1, 0, PARTITIONS);
    s_heartbeat_saying("gen-silent", 1, 0, 0);
    s_heartbeat_saying("gen-differs", 2, 0, 32);
    cr_assert(s_pump(s_three_heartbeats, PARTITIONS + 1), "heartbeats: %llu",
              (unsigned long long)writer_stats(wr)->heartbeats);
    cr_assert_eq(writer_stats(wr)->partitions_differ, 1, "only the publisher that says 32");
    ev_buf_t text;
    ev_buf_init(&text);
    writer_render_metrics(wr, &text);
    cr_assert(strstr(text.data, "evpipe_writer_heartbeats_partitions_differ_total 1\n") != NULL, "%s", text.data);
    ev_buf_free(&text);
    writer_stop(wr);
    cr_assert_eq(writer_finish(wr), 0);
}
