/* Integration tests of the time partitions of events (sql/011, the writer's
 * --partition-events and EVENTS_PARTITION_INTERVAL) against a real
 * PostgreSQL: partitions made ahead with the seed's constraint and indexes,
 * retention dropping whole partitions, the conversion of a plain table with
 * rows, and events far outside the partitions. Times are given to the SQL
 * functions explicitly, so nothing depends on today's date. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"
#include "testkit.h"

static tk_world_t *w;

static void setup(void)
{
    w = wt_world_migrated(criterion_current_test->name);
}

static void teardown(void)
{
    tk_world_destroy(&w);
}

TestSuite(writer_partition, .init = setup, .fini = teardown, .timeout = 120);

/* Runs evpipe-writer with one flag and EVENTS_PARTITION_INTERVAL; its exit code. */
static int s_writer(const char *flag, const char *interval, tk_proc_t **out)
{
    const char *args[] = {flag, NULL};
    char env0[128];
    snprintf(env0, sizeof env0, "EVENTS_PARTITION_INTERVAL=%s", interval);
    const char *env[] = {env0, NULL};
    tk_proc_t *p = tk_start(w, "writer", args, env);
    cr_assert(tk_wait_exit(p, 60000), "evpipe-writer %s did not finish", flag);
    return tk_finish(p, out);
}

static bool s_partitioned(void)
{
    return tk_sql_int(w->conn, "SELECT count(*) FROM pg_class WHERE relname = 'events' AND relkind = 'p'") == 1;
}

static int64_t s_partitions(void)
{
    return tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE NOT is_default");
}

/* Rows in one partition (a table of its own). */
static int64_t s_rows_in(const char *partition)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", partition);
    return tk_sql_int(w->conn, sql);
}

/* One event per hour from `from` for `hours` hours, as the old guide's INSERT
 * writes them (no event_id, no identity). */
static void s_insert_hours(const char *from, int hours)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO events (user_id, user_name, event_type, product_price, event_time) "
             "SELECT g, 'u' || g, 'view', 1.50, timestamp '%s' + g * interval '1 hour' "
             "FROM generate_series(0, %d) g",
             from, hours - 1);
    tk_sql_exec(w->conn, sql);
}

/* Every partition (the default one included) has the seed's primary key on
 * event_id, its two indexes and its CHECK on event_type. */
static void s_assert_seed_on_every_partition(void)
{
    int64_t parts = tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions()");
    cr_assert_gt(parts, 0);
    cr_assert_eq(tk_sql_int(w->conn,
                            "SELECT count(*) FROM evpipe_partitions() p JOIN pg_constraint k"
                            " ON k.conrelid = p.name::regclass AND k.contype = 'p'"
                            " AND pg_get_constraintdef(k.oid) = 'PRIMARY KEY (event_id)'"),
                 parts, "a primary key on event_id on every partition");
    cr_assert_eq(tk_sql_int(w->conn,
                            "SELECT count(*) FROM evpipe_partitions() p JOIN pg_constraint k"
                            " ON k.conrelid = p.name::regclass AND k.conname = 'valid_event_type'"),
                 parts, "valid_event_type on every partition");
    cr_assert_eq(tk_sql_int(w->conn,
                            "SELECT count(*) FROM evpipe_partitions() p JOIN pg_indexes i ON i.tablename = p.name"
                            " WHERE i.indexdef LIKE '%btree (event_time)' OR i.indexdef LIKE '%btree (user_id)'"),
                 2 * parts, "idx_event_time and idx_user_id on every partition");
    /* The CHECK holds on every partition: a bad type is refused wherever it goes. */
    PGresult *r = PQexec(w->conn, "INSERT INTO events (event_type, event_time) VALUES ('click', now())");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
}

Test(writer_partition, without_the_setting_the_migration_changes_nothing)
{
    cr_assert_not(s_partitioned());
    cr_assert_eq(s_writer("--migrate-only", "", NULL), 0);
    cr_assert_not(s_partitioned(), "EVENTS_PARTITION_INTERVAL empty: events stays a plain table");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'events\\_%' AND relkind = 'r'"),
                 0, "no partition made");
}

Test(writer_partition, a_writer_partitions_an_empty_table_and_makes_partitions_ahead)
{
    tk_proc_t *p;
    cr_assert_eq(s_writer("--migrate-only", "1 day", &p), 0);
    char *log = wt_log(p);
    cr_assert(s_partitioned(), "%s", log);
    free(log);
    tk_proc_destroy(&p);
    /* Today's partition and EVENTS_PARTITION_PREMAKE (4) ahead, and the default one. */
    cr_assert_eq(s_partitions(), 5);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions()"
                                     " WHERE lower_bound <= now() AT TIME ZONE 'UTC'"
                                     " AND upper_bound > now() AT TIME ZONE 'UTC'"),
                 1, "a partition holds now");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE is_default"), 1);
    s_assert_seed_on_every_partition();
    /* Starting again changes nothing. */
    cr_assert_eq(s_writer("--migrate-only", "1 day", NULL), 0);
    cr_assert_eq(s_partitions(), 5);
}

Test(writer_partition, partitions_are_made_ahead_by_days_weeks_and_months)
{
    tk_sql_exec(w->conn, "SELECT evpipe_partition_events('1 month', false, '2026-12-03 10:00')");
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 month', 2, NULL, '2026-12-03 10:00')");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE name IN "
                                     "('events_p20261201', 'events_p20270101', 'events_p20270201')"),
                 3);
    cr_assert_eq(s_partitions(), 3);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE name = 'events_p20270201'"
                                     " AND upper_bound = '2027-03-01'"),
                 1);
    /* Weeks start on Mondays (2026-11-30 is one). */
    cr_assert_eq(tk_sql_int(w->conn, "SELECT extract(epoch FROM evpipe_partition_floor('2026-12-03 10:00', '1 week')"
                                     " - timestamp '2026-11-30')::bigint"),
                 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT extract(epoch FROM evpipe_partition_floor('1999-12-31 23:00', '3 months')"
                                     " - timestamp '1999-10-01')::bigint"),
                 0, "quarters before 2000 are counted right too");
    s_assert_seed_on_every_partition();
}

Test(writer_partition, retention_drops_whole_partitions_and_nothing_else)
{
    tk_sql_exec(w->conn, "SELECT evpipe_partition_events('1 day', false, '2026-12-01 00:00')");
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 9, NULL, '2026-12-01 00:00')");
    s_insert_hours("2026-12-01 00:00", 24 * 10); /* 24 rows in each of ten days */
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 0);
    /* On 12-08 with 3 days of retention: the days before 12-05 go, whole. */
    PGresult *r = PQexec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 2, '3 days', '2026-12-08 12:00')");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    int dropped = 0;
    for (int i = 0; i < PQntuples(r); i++)
        dropped += strncmp(PQgetvalue(r, i, 0), "dropped ", 8) == 0;
    PQclear(r);
    cr_assert_eq(dropped, 4, "12-01 to 12-04 dropped");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events"), 24 * 6);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events WHERE event_time < '2026-12-05'"), 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE NOT is_default"
                                     " AND lower_bound < '2026-12-05'"),
                 0);
    /* A day later the table keeps its age: one more day goes, a new one comes. */
    int64_t parts = s_partitions();
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 2, '3 days', '2026-12-09 12:00')");
    cr_assert_eq(s_partitions(), parts);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events"), 24 * 5);
}

Test(writer_partition, events_far_outside_go_to_the_default_and_are_never_lost)
{
    tk_sql_exec(w->conn, "SELECT evpipe_partition_events('1 day', false, '2026-12-03 10:00')");
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 2, '30 days', '2026-12-03 10:00')");
    /* A year back, a year ahead, none at all, and today. */
    tk_sql_exec(w->conn, "INSERT INTO events (user_id, event_type, event_time) VALUES"
                         " (1, 'view', '2025-12-03 10:00'), (2, 'view', '2027-12-03 10:00'),"
                         " (3, 'view', NULL), (4, 'purchase', '2026-12-03 11:00')");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 3);
    cr_assert_eq(s_rows_in("events_p20261203"), 1);
    /* Retention does not touch the default partition; the far ones stay. */
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 2, '30 days', '2026-12-04 10:00')");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 3);
    /* When their day comes within reach, the future one moves to its own partition. */
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 2, '30 days', '2027-12-02 00:00')");
    cr_assert_eq(s_rows_in("events_p20271203"), 1);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 2);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events WHERE user_id IN (1, 2, 3)"), 3);
}

Test(writer_partition, a_backfill_within_retention_gets_its_own_partitions)
{
    tk_sql_exec(w->conn, "SELECT evpipe_partition_events('1 day', false, '2026-12-03 10:00')");
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 1, '30 days', '2026-12-03 10:00')");
    s_insert_hours("2026-11-20 00:00", 48); /* two days before the first partition */
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 48);
    tk_sql_exec(w->conn, "SELECT * FROM evpipe_partition_maintain('1 day', 1, '30 days', '2026-12-03 10:05')");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default"), 0);
    cr_assert_eq(s_rows_in("events_p20261120"), 24);
    cr_assert_eq(s_rows_in("events_p20261121"), 24);
}

/* The old guide's queries (docs/user-guide.md), as text, one line per row. */
static char *s_guide_answers(void)
{
    static const char *queries[] = {
        "SELECT count(*) FROM events",
        "SELECT event_type, count(*) FROM events GROUP BY event_type ORDER BY 1",
        "SELECT event_time, user_name, event_type, product_name, product_price FROM events"
        " ORDER BY event_id DESC LIMIT 10",
        "SELECT product_category, count(*) AS purchases, sum(product_price) AS revenue FROM events"
        " WHERE event_type = 'purchase' GROUP BY product_category ORDER BY revenue DESC",
        "SELECT event_id, user_id, event_time FROM events ORDER BY event_id",
    };
    size_t cap = 1 << 20, len = 0;
    char *out = calloc(1, cap);
    cr_assert(out);
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        PGresult *r = PQexec(w->conn, queries[q]);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", queries[q], PQerrorMessage(w->conn));
        for (int i = 0; i < PQntuples(r); i++)
            for (int j = 0; j < PQnfields(r); j++)
                len += (size_t)snprintf(out + len, cap - len, "%s%c", PQgetvalue(r, i, j),
                                        j + 1 < PQnfields(r) ? '|' : '\n');
        PQclear(r);
        cr_assert_lt(len, cap - 1);
    }
    return out;
}

Test(writer_partition, a_plain_table_with_rows_is_converted_on_request_and_answers_the_same)
{
    /* Rows as the old pipeline left them, and evpipe's with identities. */
    s_insert_hours("2026-11-25 00:00", 24 * 12);
    tk_sql_exec(w->conn, "INSERT INTO events (user_id, event_type, product_category, product_price, event_time,"
                         " source, partition, seq) VALUES"
                         " (7, 'purchase', 'Books', 12.50, '2026-12-02 10:00', 'gen', 1, 1),"
                         " (8, 'purchase', 'Home', 3.25, NULL, 'gen', 1, 2),"
                         " (9, 'purchase', 'Books', 1.00, '2027-06-01 00:00', 'gen', 1, 3)");
    char *before = s_guide_answers();
    int64_t next_id = tk_sql_int(w->conn, "SELECT last_value FROM events_event_id_seq");

    /* A writer with the setting does not convert a table that has rows. */
    tk_proc_t *p;
    cr_assert_eq(s_writer("--migrate-only", "1 day", &p), 0);
    cr_assert_eq(wt_log_count(p, "--partition-events"), 1, "it says how to convert it");
    tk_proc_destroy(&p);
    cr_assert_not(s_partitioned());

    cr_assert_eq(s_writer("--partition-events", "1 day", &p), 0);
    char *log = wt_log(p);
    cr_assert(s_partitioned(), "%s", log);
    free(log);
    tk_proc_destroy(&p);
    char *after = s_guide_answers();
    cr_assert_str_eq(after, before, "the old guide's queries answer the same");
    free(before);
    free(after);
    s_assert_seed_on_every_partition();
    /* The rows stayed where they were: the old table is a partition now. */
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() WHERE name = 'events_legacy'"
                                     " AND lower_bound IS NULL"),
                 1);
    cr_assert_gt(s_rows_in("events_legacy"), 24 * 8);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default WHERE user_id IN (8, 9)"), 2,
                 "the row without event_time and the far one are in the default partition");
    /* New rows take their ids from the same sequence. */
    s_insert_hours("2030-01-01 00:00", 1);
    cr_assert_gt(tk_sql_int(w->conn, "SELECT max(event_id) FROM events"), next_id);
    /* Doing it again changes nothing. */
    cr_assert_eq(s_writer("--partition-events", "1 day", NULL), 0);
    cr_assert(s_partitioned());
}

Test(writer_partition, partition_events_without_an_interval_fails_and_changes_nothing)
{
    tk_proc_t *p;
    cr_assert_neq(s_writer("--partition-events", "", &p), 0);
    cr_assert_eq(wt_log_count(p, "EVENTS_PARTITION_INTERVAL"), 1);
    tk_proc_destroy(&p);
    cr_assert_not(s_partitioned());
    cr_assert_neq(s_writer("--partition-events", "1 fortnight", NULL), 0, "not an interval");
    cr_assert_not(s_partitioned());
}

Test(writer_partition, two_writers_converting_at_once_convert_once)
{
    /* The first holds its transaction open; the second's call waits for it
     * and then finds the table partitioned (without the lock it would have
     * renamed the new partitioned table away). */
    PGconn *a = tk_world_connect(w), *b = tk_world_connect(w);
    tk_sql_exec(a, "BEGIN");
    tk_sql_exec(a, "SELECT evpipe_partition_events('1 day')");
    cr_assert_eq(PQsendQuery(b, "SELECT evpipe_partition_events('1 day')"), 1);
    tk_sleep_ms(300);
    PQconsumeInput(b);
    cr_assert(PQisBusy(b), "the second call waits for the first");
    tk_sql_exec(a, "COMMIT");
    PGresult *r = PQgetResult(b);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(b));
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "events is partitioned already");
    PQclear(r);
    while ((r = PQgetResult(b)) != NULL)
        PQclear(r);
    PQfinish(a);
    PQfinish(b);
    cr_assert(s_partitioned());
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'events%' AND relkind = 'p'"),
                 1, "one partitioned table");
}

Test(writer_partition, a_running_writer_stores_events_in_their_partitions_and_far_ones_in_the_default)
{
    /* The writer partitions the empty table at start; events of now go to
     * today's partition, events of 2023 (wt_event's times) to the default
     * one; each is stored once and every checkpoint moves. */
    wt_bus_t *bus = wt_bus_new(w->sub_ep);
    const char *env[] = {"PARTITIONS=4", "EVENTS_PARTITION_INTERVAL=1 day", NULL};
    tk_proc_t *p = tk_start(w, "writer", NULL, env);
    bool attached = wt_bus_wait_subscriptions(bus, 5, 30000) && tk_wait_log(p, "\"subscribed to the bus\"", 30000);
    char *log = wt_log(p);
    cr_assert(attached, "the writer did not attach: %s", log);
    free(log);
    cr_assert(s_partitioned());
    for (int64_t seq = 1; seq <= 100; seq++) {
        ev_event_t old = wt_event("gen-far", 0, seq);
        wt_bus_publish(bus, &old);
        ev_event_t now = wt_event("gen-now", 1, seq);
        now.event_time = ev_now_us();
        wt_bus_publish(bus, &now);
    }
    cr_assert_eq(tk_wait_sql_int(w->conn, "SELECT count(*) FROM events", 200, 30000), 200);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events_default WHERE source = 'gen-far'"), 100);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_partitions() p, events e"
                                     " WHERE e.tableoid = p.name::regclass AND NOT p.is_default"
                                     " AND e.source = 'gen-now'"),
                 100, "events of now are in a dated partition");
    cr_assert_eq(tk_wait_sql_int(w->conn, "SELECT COALESCE(sum(seq), 0) FROM checkpoints", 200, 30000), 200);
    /* Published again: nothing more is stored. */
    wt_bus_publish_range(bus, "gen-now", 1, 1, 100);
    ev_event_t next = wt_event("gen-now", 1, 101);
    next.event_time = ev_now_us();
    wt_bus_publish(bus, &next);
    cr_assert_eq(tk_wait_sql_int(w->conn, "SELECT count(*) FROM events", 201, 30000), 201);
    tk_stop(&p, 30000);
    wt_bus_destroy(&bus);
}
