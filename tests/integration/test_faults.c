/* Exactly-once under faults. With the generator running steadily, each test
 * breaks one thing (kill -9 a writer, the bus or the generator, stop
 * PostgreSQL, stop or freeze a writer), then stops the generator, waits until
 * everything is committed and compares the table with the archive: the same
 * (source, partition, seq) with the same values, no duplicates, no gaps.
 * One more deletes an archive file before the repair: the hole lands in
 * `gaps` and nothing else is lost. Then the ordinary operations that
 * used to break the guarantee: archive retention followed by a restart, one
 * forged heartbeat, and a one-shot replay run with another STATE_DIR while
 * writers restart. Each test runs on its own PostgreSQL cluster, so
 * stopping it disturbs no other test. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "testkit.h"

#define RATE "5000"

typedef struct {
    tk_cluster_t *cluster; /* this test's PostgreSQL */
    tk_world_t *w;         /* database, endpoints, folders */
    tk_proc_t *bus;
    tk_proc_t *writer;
    tk_proc_t *repair;     /* ingest --watch: answers repair requests */
    tk_proc_t *gen;        /* the steady generator */
} rig_t;

static tk_proc_t *s_bus(rig_t *r)
{
    tk_proc_t *p = tk_start(r->w, "bus", NULL, NULL);
    cr_assert(tk_wait_log(p, "bus ready", 15000), "the bus did not start");
    return p;
}

static tk_proc_t *s_writer(rig_t *r)
{
    tk_proc_t *p = tk_start(r->w, "writer", NULL, NULL);
    if (!tk_wait_log(p, "subscribed to the bus", 60000)) {
        tk_show(p, 3000);
        cr_fatal("the writer did not subscribe");
    }
    return p;
}

static tk_proc_t *s_generator(rig_t *r, const char *const *extra_env)
{
    const char *args[] = {"--rate", RATE, NULL};
    tk_proc_t *p = tk_start(r->w, "generator", args, extra_env);
    cr_assert(tk_wait_log(p, "generator started", 15000), "the generator did not start");
    return p;
}

static void s_setup(rig_t *r, const char *name, bool with_writer)
{
    memset(r, 0, sizeof *r);
    r->cluster = tk_cluster_new();
    r->w = tk_world_new_on(name, tk_cluster_port(r->cluster));
    r->bus = s_bus(r);
    if (with_writer)
        r->writer = s_writer(r);
    const char *watch[] = {"--watch", r->w->data_dir, NULL};
    r->repair = tk_start(r->w, "ingest", watch, NULL);
}

static void s_teardown(rig_t *r)
{
    tk_proc_t *all[] = {r->gen, r->repair, r->writer, r->bus};
    for (int i = 0; i < 4; i++) {
        tk_signal(all[i], SIGCONT);
        tk_signal(all[i], SIGTERM);
        tk_wait_exit(all[i], 20000);
    }
    tk_proc_destroy(&r->gen);
    tk_proc_destroy(&r->repair);
    tk_proc_destroy(&r->writer);
    tk_proc_destroy(&r->bus);
    tk_world_destroy(&r->w);
    tk_cluster_destroy(&r->cluster);
}

/* Stops the generator, waits until the table holds the archive, compares;
 * the gaps must cover exactly gap_seqs seqs. */
static void s_check(rig_t *r, int64_t gap_seqs)
{
    tk_signal(r->gen, SIGTERM);
    bool exited = tk_wait_exit(r->gen, 30000);
    if (!exited)
        tk_show(r->gen, 3000);
    cr_assert(exited && tk_exit_code(r->gen) == 0, "the generator did not stop cleanly");

    size_t archived = 0;
    char *archive = tk_archive_as_copy(r->w->archive_dir, &archived);
    cr_assert_gt(archived, 1000, "too little traffic to mean anything: %zu", archived);
    int64_t n = tk_wait_sql_int(r->w->conn, "SELECT count(*) FROM events", (int64_t)archived, 180000);
    if (n != (int64_t)archived) {
        tk_show(r->writer, 3000);
        tk_show(r->repair, 3000);
    }
    cr_assert_eq(n, (int64_t)archived, "committed %lld of %zu archived events", (long long)n, archived);
    cr_assert_eq(tk_sql_int(r->w->conn, "SELECT count(DISTINCT (source, partition, seq)) FROM events"),
                 (int64_t)archived, "duplicates in the table");
    size_t rows = 0;
    char *table = tk_events_as_copy(r->w->conn, &rows);
    cr_assert(strcmp(table, archive) == 0, "the table differs from the archive");
    cr_assert_eq(tk_sql_int(r->w->conn, "SELECT COALESCE(sum(last_seq - first_seq + 1), 0) FROM gaps"), gap_seqs,
                 "seqs recorded in gaps");
    free(table);
    free(archive);
}

/* Lets the generator run for ms. */
static void s_check_table_equals_archive(rig_t *r)
{
    s_check(r, 0);
}

static void s_traffic(int ms)
{
    tk_sleep_ms(ms);
}

Test(faults, writer_killed_three_times_at_random_moments, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_kill_writer", true);
    r.gen = s_generator(&r, NULL);
    srand((unsigned)getpid());
    for (int i = 0; i < 3; i++) {
        s_traffic(1000 + rand() % 2500);
        tk_kill(&r.writer, 10000);
        r.writer = s_writer(&r);
    }
    s_traffic(2000);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

Test(faults, bus_killed_and_restarted, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_kill_bus", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(2000);
    tk_kill(&r.bus, 10000);
    s_traffic(1000);
    r.bus = s_bus(&r);
    s_traffic(3000);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

Test(faults, postgresql_stopped_for_five_seconds, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_stop_pg", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(2000);
    tk_cluster_stop(r.cluster);
    s_traffic(5000);
    tk_cluster_start(r.cluster);
    tk_world_reconnect(r.w);
    s_traffic(3000);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

Test(faults, writer_stopped_for_ten_seconds_while_the_generator_goes_on, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_stop_writer", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(2000);
    tk_stop(&r.writer, 30000);
    s_traffic(10000);
    r.writer = s_writer(&r);
    s_traffic(3000);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

Test(faults, generator_killed_and_restarted, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_kill_gen", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(2500);
    tk_kill(&r.gen, 10000);
    r.gen = s_generator(&r, NULL);
    s_traffic(2500);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

Test(faults, writer_frozen_for_five_seconds, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_freeze_writer", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(2000);
    tk_signal(r.writer, SIGSTOP);
    s_traffic(5000);
    tk_signal(r.writer, SIGCONT);
    s_traffic(3000);
    s_check_table_equals_archive(&r);
    s_teardown(&r);
}

/* The archive files, sorted by name. */
static int s_archive_files(const char *dir, char names[][64], int max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != '.' && len > 4 && len < 64 && strcmp(e->d_name + len - 4, ".csv") == 0)
            snprintf(names[n++], 64, "%.63s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

Test(faults, a_deleted_archive_file_becomes_gaps_and_nothing_else_is_lost, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "faults_deleted_file", false);
    /* No writer yet: several archive files fill up, nothing is committed. */
    const char *rotate[] = {"ARCHIVE_ROTATE_SECONDS=1", NULL};
    r.gen = s_generator(&r, rotate);
    s_traffic(4500);
    tk_signal(r.gen, SIGTERM);
    cr_assert(tk_wait_exit(r.gen, 30000) && tk_exit_code(r.gen) == 0);
    tk_proc_destroy(&r.gen);

    char names[64][64];
    int files = s_archive_files(r.w->archive_dir, names, 64);
    cr_assert_geq(files, 3, "the generator did not rotate: %d files", files);
    char victim[1200];
    snprintf(victim, sizeof victim, "%s/%s", r.w->archive_dir, names[1]);
    size_t lost = 0;
    free(tk_archive_as_copy(victim, &lost));
    cr_assert_gt(lost, 0);
    cr_assert_eq(unlink(victim), 0);

    /* The writer comes, learns the heads from the restarted generator,
     * repairs from the archive and records what is gone. */
    r.writer = s_writer(&r);
    r.gen = s_generator(&r, NULL);
    s_traffic(3000);
    s_check(&r, (int64_t)lost);
    s_teardown(&r);
}

/* ---- Ordinary operations ---- */

/* Runs the generator for count events and waits for it to exit 0. */
static void s_generate(rig_t *r, const char *count)
{
    const char *args[] = {"--count", count, "--rate", RATE, NULL};
    tk_proc_t *g = tk_start(r->w, "generator", args, NULL);
    bool exited = tk_wait_exit(g, 60000);
    if (!exited || tk_exit_code(g) != 0)
        tk_show(g, 3000);
    cr_assert(exited && tk_exit_code(g) == 0, "the generator did not finish");
    tk_proc_destroy(&g);
}

/* What a cron job keeping a week of CSV does: the committed archive files
 * are deleted, then the generator starts again. Its seqs used to start at 1
 * under the same source, and writers skipped the new events as
 * duplicates. */
Test(faults, deleting_committed_archive_files_then_restarting_loses_nothing, .timeout = 300)
{
    rig_t r;
    s_setup(&r, "ops_retention", true);
    s_generate(&r, "3000");
    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT count(*) FROM events", 3000, 60000), 3000);
    char names[64][64];
    int files = s_archive_files(r.w->archive_dir, names, 64);
    for (int i = 0; i < files; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%.*s", r.w->archive_dir, (int)sizeof names[i], names[i]);
        cr_assert_eq(unlink(path), 0);
    }
    s_generate(&r, "3000");
    int64_t n = tk_wait_sql_int(r.w->conn, "SELECT count(*) FROM events", 6000, 60000);
    if (n != 6000)
        tk_show(r.writer, 3000);
    cr_assert_eq(n, 6000, "stored %lld of 6000 events", (long long)n);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(DISTINCT (source, partition, seq)) FROM events"), 6000);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(DISTINCT source) FROM events"), 2, "one source per start");
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM gaps"), 0);
    s_teardown(&r);
}

/* The generator's source, from its start line. */
static void s_generator_source(tk_proc_t *g, char *out, size_t cap)
{
    char *log = tk_read_file(g->log, NULL);
    const char *at = strstr(log, " source=");
    cr_assert_not_null(at, "no source in the generator's log");
    at += strlen(" source=");
    size_t n = strcspn(at, " \n");
    cr_assert_lt(n, cap);
    memcpy(out, at, n);
    out[n] = '\0';
    free(log);
}

/* Any peer that reaches the publish endpoint sends one heartbeat per
 * partition for a real generator's source, announcing seq 2^62. That used
 * to record about 10^11 events as gaps and drop every real event after it
 * as a duplicate, for good. */
Test(faults, one_forged_heartbeat_far_beyond_the_archive_changes_nothing, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "ops_forged_heartbeat", true);
    r.gen = s_generator(&r, NULL);
    s_traffic(1500);
    char source[80];
    s_generator_source(r.gen, source, sizeof source);
    void *ctx = zmq_ctx_new();
    void *forger = tk_bus_publisher(ctx, r.w);
    ev_codec_t *codec = ev_codec_new();
    for (uint32_t p = 0; p < 16; p++) {
        ev_heartbeat_t hb = {.source = {source, (uint32_t)strlen(source)},
                             .partition = (int32_t)p,
                             .seq = (int64_t)1 << 62,
                             .published_at = ev_now_us()};
        const void *body;
        size_t len;
        ev_codec_encode_heartbeat(codec, &hb, &body, &len);
        tk_bus_send(forger, p, EV_MSG_HEARTBEAT, body, len);
    }
    ev_codec_destroy(&codec);
    zmq_close(forger);
    zmq_ctx_term(ctx);
    s_traffic(3000);
    s_check(&r, 0);
    cr_assert_lt(tk_sql_int(r.w->conn, "SELECT COALESCE(max(seq), 0) FROM publisher_heads"), (int64_t)1 << 40,
                 "a forged head was recorded");
    s_teardown(&r);
}

/* An old generator's CSV file of rows events (no identity columns). */
static void s_old_file(const char *path, int rows)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,"
               "event_time\n");
    for (int i = 0; i < rows; i++)
        fprintf(f, "%d,User %d,user%d@example.com,%s,%d,Item %d,Cat%d,%d.%02d,2024-03-%02d %02d:%02d:%02d\n",
                1 + i % 997, i, i, i % 3 ? "view" : "purchase", i % 50, i % 50, i % 7, 1 + i % 500, i % 100,
                1 + i % 28, i % 24, i % 60, (i / 60) % 60);
    cr_assert_eq(fclose(f), 0);
}

/* `evpipe-ingest --wait FILE` run from another directory (another
 * STATE_DIR) while `ingest --watch` serves repairs, and the writers are
 * killed and replaced mid-replay: the repair service does not know the
 * file. Its missing events used to become gaps, and --wait exited 0. */
Test(faults, a_replay_unknown_to_the_repair_service_survives_writer_restarts, .timeout = 400)
{
    rig_t r;
    s_setup(&r, "ops_other_state_dir", true);
    char file[600], state[600], env_state[640];
    snprintf(file, sizeof file, "%s/old-export.csv", r.w->dir);
    snprintf(state, sizeof state, "%s/elsewhere", r.w->dir);
    snprintf(env_state, sizeof env_state, "STATE_DIR=%s", state);
    const int rows = 120000;
    s_old_file(file, rows);
    const char *args[] = {"--wait", "--wait-timeout", "300", file, NULL};
    const char *env[] = {env_state, NULL};
    tk_proc_t *once = tk_start(r.w, "ingest", args, env);
    for (int i = 0; i < 2; i++) {
        s_traffic(700);
        tk_kill(&r.writer, 10000);
        r.writer = s_writer(&r);
    }
    bool exited = tk_wait_exit(once, 320000);
    if (!exited || tk_exit_code(once) != 0) {
        tk_show(once, 3000);
        tk_show(r.writer, 3000);
    }
    cr_assert(exited, "ingest --wait did not finish");
    cr_assert_eq(tk_exit_code(once), 0);
    tk_proc_destroy(&once);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM gaps"), 0, "events on disk recorded as lost");
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM events"), rows);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(DISTINCT (source, partition, seq)) FROM events"), rows);
    size_t in_table = 0, in_file = 0;
    char *table = tk_events_payload_lines(r.w->conn, NULL, &in_table);
    char *csv = tk_csv_payload_lines(file, &in_file);
    cr_assert(strcmp(table, csv) == 0, "the table differs from the file");
    free(table);
    free(csv);
    s_teardown(&r);
}
