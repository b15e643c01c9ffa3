/* Exactly-once under faults. With the generator running steadily, each test
 * breaks one thing (kill -9 a writer, the bus or the generator, stop
 * PostgreSQL, stop or freeze a writer), then stops the generator, waits until
 * everything is committed and compares the table with the archive: the same
 * (source, partition, seq) with the same values, no duplicates, no gaps.
 * One more deletes an archive file before the repair: the hole lands in
 * `gaps` and nothing else is lost. Each test runs on its own PostgreSQL
 * cluster, so stopping it disturbs no other test. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void s_show(const tk_proc_t *p)
{
    if (!p)
        return;
    char *log = tk_read_file(p->log, NULL);
    size_t len = strlen(log);
    fprintf(stderr, "---- %s (last 3000 bytes) ----\n%s\n", p->name, len > 3000 ? log + len - 3000 : log);
    free(log);
}

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
        s_show(p);
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
        s_show(r->gen);
    cr_assert(exited && tk_exit_code(r->gen) == 0, "the generator did not stop cleanly");

    size_t archived = 0;
    char *archive = tk_archive_as_copy(r->w->archive_dir, &archived);
    cr_assert_gt(archived, 1000, "too little traffic to mean anything: %zu", archived);
    int64_t n = tk_wait_sql_int(r->w->conn, "SELECT count(*) FROM events", (int64_t)archived, 180000);
    if (n != (int64_t)archived) {
        s_show(r->writer);
        s_show(r->repair);
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
        tk_signal(r.writer, SIGKILL);
        cr_assert(tk_wait_exit(r.writer, 10000));
        tk_proc_destroy(&r.writer);
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
    tk_signal(r.bus, SIGKILL);
    cr_assert(tk_wait_exit(r.bus, 10000));
    tk_proc_destroy(&r.bus);
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
    tk_signal(r.writer, SIGTERM);
    cr_assert(tk_wait_exit(r.writer, 30000), "the writer did not stop on SIGTERM");
    cr_assert_eq(tk_exit_code(r.writer), 0, "the writer did not exit 0 on SIGTERM");
    tk_proc_destroy(&r.writer);
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
    tk_signal(r.gen, SIGKILL);
    cr_assert(tk_wait_exit(r.gen, 10000));
    tk_proc_destroy(&r.gen);
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
