/* The whole pipeline, end to end: real bus, writer, ingest and generator
 * processes on 127.0.0.1 against a real PostgreSQL, compared with the
 * archive and the input files row by row. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

#define FIXTURES "tests/fixtures/integration"

/* The running services of one test. */
typedef struct {
    tk_world_t *w;
    tk_proc_t *bus;
    tk_proc_t *writer;
    tk_proc_t *repair; /* ingest --watch: answers repair requests */
} pipeline_t;

static void s_start(pipeline_t *p, const char *name, const char *const *bus_env)
{
    p->w = tk_world_new(name);
    p->bus = tk_start(p->w, "bus", NULL, bus_env);
    cr_assert(tk_wait_log(p->bus, "bus ready", 10000), "the bus did not start");
    p->writer = tk_start(p->w, "writer", NULL, NULL);
    if (!tk_wait_log(p->writer, "subscribed to the bus", 60000)) {
        tk_show(p->writer, 4000);
        cr_fatal("the writer did not subscribe");
    }
    const char *watch[] = {"--watch", p->w->data_dir, NULL};
    p->repair = tk_start(p->w, "ingest", watch, NULL);
}

static void s_stop(pipeline_t *p)
{
    tk_proc_t *all[] = {p->repair, p->writer, p->bus};
    for (int i = 0; i < 3; i++) {
        if (!all[i])
            continue;
        tk_signal(all[i], SIGTERM);
        if (!tk_wait_exit(all[i], 20000) || tk_exit_code(all[i]) != 0)
            tk_show(all[i], 4000);
    }
    tk_proc_destroy(&p->repair);
    tk_proc_destroy(&p->writer);
    tk_proc_destroy(&p->bus);
    tk_world_destroy(&p->w);
}

static char s_path[1024];
static const char *s_fixture(const char *name)
{
    const char *root = getenv("EVPIPE_SOURCE_DIR");
    snprintf(s_path, sizeof s_path, "%s/%s/%s", root ? root : ".", FIXTURES, name);
    return s_path;
}

/* Runs evpipe-ingest ARGS... --wait to the end; asserts exit 0. */
static void s_ingest_and_wait(pipeline_t *p, const char *const *args)
{
    tk_proc_t *ing = tk_start(p->w, "ingest", args, NULL);
    bool done = tk_wait_exit(ing, 120000);
    if (!done || tk_exit_code(ing) != 0) {
        tk_show(ing, 4000);
        tk_show(p->writer, 4000);
    }
    cr_assert(done, "ingest did not finish");
    cr_assert_eq(tk_exit_code(ing), 0, "ingest failed");
    cr_assert(tk_wait_log(ing, "committed: all", 1000), "ingest --wait did not confirm the commit");
    tk_proc_destroy(&ing);
}

/* Runs evpipe-generator ARGS... to its end; asserts a clean exit. */
static void s_generate(pipeline_t *p, const char *const *args, int timeout_ms)
{
    tk_proc_t *gen = tk_start(p->w, "generator", args, NULL);
    bool exited = tk_wait_exit(gen, timeout_ms);
    if (!exited || tk_exit_code(gen) != 0)
        tk_show(gen, 4000);
    cr_assert(exited && tk_exit_code(gen) == 0, "the generator did not finish cleanly");
    tk_proc_destroy(&gen);
}

/* Waits until the events table holds want rows; asserts it does. */
static void s_wait_rows(pipeline_t *p, int64_t want, int timeout_ms)
{
    int64_t n = tk_wait_sql_int(p->w->conn, "SELECT count(*) FROM events", want, timeout_ms);
    if (n != want)
        tk_show(p->writer, 4000);
    cr_assert_eq(n, want, "rows committed: %lld of %lld", (long long)n, (long long)want);
}

Test(pipeline, generator_count_20000_gives_exactly_the_archive_and_a_replay_adds_nothing, .timeout = 300)
{
    pipeline_t p = {0};
    s_start(&p, "pipeline_20000", NULL);

    const char *args[] = {"--count", "20000", "--rate", "5000", "--seed", "42", NULL};
    s_generate(&p, args, 120000);
    s_wait_rows(&p, 20000, 120000);

    size_t table_rows = 0, archive_rows = 0;
    char *table = tk_events_as_copy(p.w->conn, &table_rows);
    char *archive = tk_archive_as_copy(p.w->archive_dir, &archive_rows);
    cr_assert_eq(archive_rows, 20000, "archived rows: %zu", archive_rows);
    cr_assert_eq(table_rows, 20000);
    cr_assert(strcmp(table, archive) == 0, "the table differs from the archive");
    free(table);
    free(archive);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(*) FROM gaps"), 0);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(*) FROM rejects"), 0);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(DISTINCT (source, partition, seq)) FROM events"), 20000);

    /* Replaying the whole archive: the same identities, so nothing new. */
    const char *replay[] = {p.w->archive_dir, "--wait", NULL};
    s_ingest_and_wait(&p, replay);
    tk_sleep_ms(500);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(*) FROM events"), 20000);

    s_stop(&p);
}

Test(pipeline, an_old_generator_file_ingests_to_rows_equal_to_the_file, .timeout = 180)
{
    pipeline_t p = {0};
    s_start(&p, "pipeline_old", NULL);
    const char *file = s_fixture("old_generator.csv");
    const char *args[] = {file, "--wait", NULL};
    s_ingest_and_wait(&p, args);

    size_t file_rows = 0, table_rows = 0;
    char *want = tk_csv_payload_lines(file, &file_rows);
    char *got = tk_events_payload_lines(p.w->conn, NULL, &table_rows);
    cr_assert_eq(file_rows, 400);
    cr_assert_eq(table_rows, 400, "rows in the table: %zu", table_rows);
    cr_assert(strcmp(want, got) == 0, "the table differs from the file");
    free(want);
    free(got);

    /* The same file again (forced past the ledger): the same identities. */
    const char *again[] = {file, "--force", "--wait", NULL};
    s_ingest_and_wait(&p, again);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(*) FROM events"), 400);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(DISTINCT source) FROM events"), 1);
    s_stop(&p);
}

Test(pipeline, a_file_with_bad_rows_stores_the_good_ones_and_lists_each_bad_one, .timeout = 180)
{
    pipeline_t p = {0};
    s_start(&p, "pipeline_bad", NULL);
    char file[1024];
    snprintf(file, sizeof file, "%s", s_fixture("bad_rows.csv"));
    const char *args[] = {file, "--wait", NULL};
    s_ingest_and_wait(&p, args);

    size_t file_rows = 0, table_rows = 0;
    char *want = tk_csv_payload_lines(file, &file_rows);
    char *got = tk_events_payload_lines(p.w->conn, NULL, &table_rows);
    cr_assert_eq(file_rows, 30, "good rows in the fixture: %zu", file_rows);
    cr_assert_eq(table_rows, 30);
    cr_assert(strcmp(want, got) == 0, "the good rows differ from the table");
    free(want);
    free(got);

    char rejects_path[1024];
    snprintf(rejects_path, sizeof rejects_path, "%s/rejects/bad_rows.csv.rejects.csv", p.w->state_dir);
    char *rejects = tk_read_file(rejects_path, NULL);
    char *expected = tk_read_file(s_fixture("bad_rows.expected"), NULL);
    int listed = 0;
    for (char *line = strtok(expected, "\n"); line; line = strtok(NULL, "\n")) {
        int lineno;
        char reason[64];
        cr_assert_eq(sscanf(line, "%d %63s", &lineno, reason), 2);
        /* file,line,reason,... : the file name, the line and the reason. */
        char want_row[256];
        snprintf(want_row, sizeof want_row, "bad_rows.csv,%d,%s,", lineno, reason);
        cr_assert(strstr(rejects, want_row) != NULL, "reject file lacks '%s':\n%s", want_row, rejects);
        listed++;
    }
    cr_assert_eq(listed, 6);
    free(rejects);
    free(expected);
    s_stop(&p);
}

Test(pipeline, a_stopped_tap_neither_slows_nor_loses_the_writers_events, .timeout = 300)
{
    pipeline_t p = {0};
    const char *bus_env[] = {"TAP_HWM=100", NULL};
    s_start(&p, "pipeline_tap", bus_env);
    const char *tap_args[] = {NULL};
    tk_proc_t *tap = tk_start(p.w, "tap", tap_args, NULL);
    tk_sleep_ms(500);

    /* A first trickle shows the tap is attached, then it is stopped. */
    const char *warm[] = {"--count", "100", "--rate", "1000", NULL};
    s_generate(&p, warm, 60000);
    cr_assert(tk_wait_log(tap, "\"event_type\"", 30000), "the tap printed nothing");
    tk_signal(tap, SIGSTOP);

    const char *flood[] = {"--count", "200000", "--rate", "max", NULL};
    s_generate(&p, flood, 240000); /* while the tap is stopped */
    s_wait_rows(&p, 200100, 240000);
    cr_assert_eq(tk_sql_int(p.w->conn, "SELECT count(*) FROM gaps"), 0);

    /* The bus dropped for the tap rather than waiting for it. */
    tk_signal(p.bus, SIGTERM);
    cr_assert(tk_wait_exit(p.bus, 20000));
    char *log = tk_read_file(p.bus->log, NULL);
    const char *dropped = strstr(log, "msg=\"bus stopped\"");
    cr_assert_not_null(dropped, "no final bus line");
    dropped = strstr(dropped, "tap_dropped=");
    cr_assert_not_null(dropped);
    long long count = atoll(dropped + strlen("tap_dropped="));
    cr_assert_gt(count, 0, "the bus dropped nothing for the stopped tap: it must have waited");
    free(log);

    size_t table_rows = 0, archive_rows = 0;
    char *table = tk_events_as_copy(p.w->conn, &table_rows);
    char *archive = tk_archive_as_copy(p.w->archive_dir, &archive_rows);
    cr_assert_eq(archive_rows, 200100);
    cr_assert(strcmp(table, archive) == 0, "the table differs from the archive");
    free(table);
    free(archive);

    tk_signal(tap, SIGCONT);
    tk_proc_destroy(&tap);
    s_stop(&p);
}
