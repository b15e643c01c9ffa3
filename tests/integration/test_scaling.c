/* Several writers sharing the partitions through PostgreSQL, as
 * `docker compose up --scale writer=N` runs them: real bus, generator at a
 * steady rate, ingest --watch answering repairs, writers as processes.
 * Writers join, are killed with SIGKILL, come back and stop cleanly; a
 * sampler checks every 200 ms that no partition has two owners in
 * writer_assignments, and after each change the test waits (bounded) until
 * every live writer owns PARTITIONS/N rounded down or up. At the end the
 * table equals the archive exactly and there are no gaps.
 * Another test starts a writer after the generator stopped: it learns what
 * it missed from the recorded heads and by asking past them. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

#define RATE "2000"
#define PARTITIONS 16
#define WRITERS_MAX 3
/* Bounded waits. */
#define SETTLE_MS 30000
#define DRAIN_MS 120000

/* ---- The sampler: a thread with its own connection ---- */

typedef struct {
    char conninfo[512];      /* the world's database */
    pthread_t thread;        /* the sampling thread */
    atomic_bool stop;        /* asks it to end */
    atomic_long samples;     /* looks at writer_assignments */
    atomic_long doubles;     /* looks that found a partition with two owners */
    atomic_long errors;      /* queries that failed */
    char first_double[256];  /* what the first such look saw */
} sampler_t;

static void *s_sample(void *arg)
{
    sampler_t *s = arg;
    PGconn *c = PQconnectdb(s->conninfo);
    while (!atomic_load(&s->stop)) {
        if (PQstatus(c) != CONNECTION_OK) {
            atomic_fetch_add(&s->errors, 1);
            PQreset(c);
        } else {
            PGresult *r = PQexec(c, "SELECT partition, count(*), string_agg(writer, ' ') FROM writer_assignments"
                                    " WHERE writer_pid IS NOT NULL GROUP BY partition HAVING count(*) > 1");
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                atomic_fetch_add(&s->errors, 1);
            } else {
                if (PQntuples(r) > 0 && atomic_fetch_add(&s->doubles, 1) == 0)
                    snprintf(s->first_double, sizeof s->first_double, "partition %s: %s", PQgetvalue(r, 0, 0),
                             PQgetvalue(r, 0, 2));
                atomic_fetch_add(&s->samples, 1);
            }
            PQclear(r);
        }
        tk_sleep_ms(200);
    }
    PQfinish(c);
    return NULL;
}

static void s_sampler_start(sampler_t *s, const tk_world_t *w)
{
    memset(s, 0, sizeof *s);
    snprintf(s->conninfo, sizeof s->conninfo, "host=%s port=%s user=%s dbname=%s", w->pg_host, w->pg_port,
             w->pg_user, w->db);
    cr_assert_eq(pthread_create(&s->thread, NULL, s_sample, s), 0);
}

static void s_sampler_stop(sampler_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
}

/* ---- The services ---- */

typedef struct {
    tk_world_t *w;
    tk_proc_t *bus;
    tk_proc_t *repair; /* ingest --watch: answers repair requests */
    tk_proc_t *gen;    /* the steady generator */
    tk_proc_t *writers[WRITERS_MAX];
    sampler_t sampler;
} rig_t;

static void s_show_writers(const rig_t *r)
{
    for (int i = 0; i < WRITERS_MAX; i++)
        tk_show(r->writers[i], 4000);
}

static void s_setup(rig_t *r, const char *name)
{
    memset(r, 0, sizeof *r);
    r->w = tk_world_new(name);
    r->bus = tk_start(r->w, "bus", NULL, NULL);
    cr_assert(tk_wait_log(r->bus, "bus ready", 15000), "the bus did not start");
    const char *watch[] = {"--watch", r->w->data_dir, NULL};
    r->repair = tk_start(r->w, "ingest", watch, NULL);
}

static void s_teardown(rig_t *r)
{
    tk_proc_t **all[] = {&r->gen, &r->writers[0], &r->writers[1], &r->writers[2], &r->repair, &r->bus};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tk_signal(*all[i], SIGTERM);
        tk_wait_exit(*all[i], 20000);
        tk_proc_destroy(all[i]);
    }
    tk_world_destroy(&r->w);
}

/* Starts writer i and waits until it is attached to the bus. */
static void s_writer(rig_t *r, int i)
{
    cr_assert_null(r->writers[i]);
    r->writers[i] = tk_start(r->w, "writer", NULL, NULL);
    if (!tk_wait_log(r->writers[i], "subscribed to the bus", 60000)) {
        tk_show(r->writers[i], 4000);
        cr_fatal("writer %d did not start", i);
    }
}

static void s_generator(rig_t *r)
{
    const char *args[] = {"--rate", RATE, NULL};
    r->gen = tk_start(r->w, "generator", args, NULL);
    cr_assert(tk_wait_log(r->gen, "generator started", 15000), "the generator did not start");
}

static void s_stop_generator(rig_t *r)
{
    tk_signal(r->gen, SIGTERM);
    bool exited = tk_wait_exit(r->gen, 30000);
    if (!exited)
        tk_show(r->gen, 4000);
    cr_assert(exited && tk_exit_code(r->gen) == 0, "the generator did not stop cleanly");
}

/* Whether the owners in writer_assignments are exactly the live writers,
 * each with PARTITIONS/N rounded down or up, and every partition owned.
 * what says what was seen. */
static bool s_settled(rig_t *r, char *what, size_t len)
{
    pid_t live[WRITERS_MAX];
    int n = 0;
    for (int i = 0; i < WRITERS_MAX; i++)
        if (r->writers[i])
            live[n++] = r->writers[i]->pid;
    /* The writer's process id is the third part of its name. */
    PGresult *res = PQexec(r->w->conn, "SELECT substring(writer from '^evpipe-writer/[^/]*/([0-9]+)/')::int,"
                                       " count(*), count(DISTINCT partition)"
                                       " FROM writer_assignments WHERE writer_pid IS NOT NULL GROUP BY 1 ORDER BY 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(what, len, "query failed: %s", PQerrorMessage(r->w->conn));
        PQclear(res);
        return false;
    }
    int lo = PARTITIONS / (n ? n : 1), hi = lo + (n && PARTITIONS % n != 0);
    bool ok = PQntuples(res) == n;
    int owned = 0;
    what[0] = '\0';
    for (int i = 0; i < PQntuples(res); i++) {
        const char *pid_text = PQgetvalue(res, i, 0);
        int count = atoi(PQgetvalue(res, i, 1));
        owned += count;
        snprintf(what + strlen(what), len - strlen(what), "%s%s:%d", i ? " " : "", *pid_text ? pid_text : "?",
                 count);
        bool known = false;
        for (int k = 0; k < n; k++)
            known = known || (*pid_text && atoi(pid_text) == (int)live[k]);
        ok = ok && known && count >= lo && count <= hi;
    }
    PQclear(res);
    snprintf(what + strlen(what), len - strlen(what), " (%d owned, %d live writers)", owned, n);
    return ok && owned == PARTITIONS;
}

/* Waits (bounded) until the partitions are shared out among the live writers. */
static void s_wait_settled(rig_t *r, const char *after)
{
    char what[256] = "";
    int64_t start = tk_now_ms(), end = start + SETTLE_MS;
    while (tk_now_ms() < end) {
        if (s_settled(r, what, sizeof what)) {
            fprintf(stderr, "scaling: settled %lld ms after %s: %s\n", (long long)(tk_now_ms() - start), after,
                    what);
            return;
        }
        tk_sleep_ms(200);
    }
    s_show_writers(r);
    cr_fatal("not shared out %d s after %s: %s", SETTLE_MS / 1000, after, what);
}

/* Waits until the table holds the archive; then compares them. */
static void s_check_table_equals_archive(rig_t *r)
{
    size_t archived = 0;
    char *archive = tk_archive_as_copy(r->w->archive_dir, &archived);
    int64_t n = tk_wait_sql_int(r->w->conn, "SELECT count(*) FROM events", (int64_t)archived, DRAIN_MS);
    if (n != (int64_t)archived) {
        s_show_writers(r);
        tk_show(r->repair, 4000);
    }
    cr_assert_eq(n, (int64_t)archived, "committed %lld of %zu archived events", (long long)n, archived);
    cr_assert_gt(archived, 1000, "too little traffic to mean anything: %zu", archived);
    size_t rows = 0;
    char *table = tk_events_as_copy(r->w->conn, &rows);
    cr_assert_eq(rows, archived, "rows with an identity");
    cr_assert(strcmp(table, archive) == 0, "the table differs from the archive");
    cr_assert_eq(tk_sql_int(r->w->conn, "SELECT count(*) FROM gaps"), 0, "gaps");
    cr_assert_eq(tk_sql_int(r->w->conn, "SELECT count(*) FROM rejects"), 0, "rejects");
    cr_assert_eq(tk_wait_sql_int(r->w->conn, "SELECT COALESCE(sum(lag), 0) FROM writer_assignments", 0, 10000), 0,
                 "lag once everything is committed");
    free(table);
    free(archive);
}

/* No writer ever had to drop rows another writer had committed: only the
 * owner of a partition wrote it. */
static void s_check_only_owners_wrote(const tk_proc_t *p)
{
    if (!p)
        return;
    char *log = tk_read_file(p->log, NULL);
    cr_assert(strstr(log, "\"another writer committed") == NULL, "writer %d wrote another's partition:\n%s",
              (int)p->pid, log);
    free(log);
}

static void s_traffic(int ms)
{
    tk_sleep_ms(ms);
}

Test(scaling, writers_join_die_come_back_and_leave_without_losing_or_doubling_anything, .timeout = 300)
{
    rig_t r;
    s_setup(&r, "scaling_writers");
    s_writer(&r, 0);
    s_sampler_start(&r.sampler, r.w);
    s_wait_settled(&r, "the first writer started");
    s_generator(&r);
    s_traffic(2000);

    /* Two more join. */
    s_writer(&r, 1);
    s_writer(&r, 2);
    s_wait_settled(&r, "two writers joined");
    s_traffic(2000);

    /* One dies. */
    tk_kill(&r.writers[1], 10000);
    s_wait_settled(&r, "a writer was killed");
    s_traffic(2000);

    /* It comes back. */
    s_writer(&r, 1);
    s_wait_settled(&r, "the killed writer came back");
    s_traffic(2000);

    /* One stops cleanly: it commits, gives its partitions up and exits 0. */
    tk_signal(r.writers[2], SIGTERM);
    bool exited = tk_wait_exit(r.writers[2], 30000);
    if (!exited || tk_exit_code(r.writers[2]) != 0)
        tk_show(r.writers[2], 4000);
    cr_assert(exited && tk_exit_code(r.writers[2]) == 0, "the writer did not stop cleanly");
    char *log = tk_read_file(r.writers[2]->log, NULL);
    cr_assert(strstr(log, "\"partition given up\"") != NULL && strstr(log, "reason=stopping") != NULL, "%s", log);
    cr_assert(strstr(log, "\"partition taken\"") != NULL, "%s", log);
    free(log);
    s_check_only_owners_wrote(r.writers[2]);
    tk_proc_destroy(&r.writers[2]);
    s_wait_settled(&r, "a writer stopped");
    s_traffic(2000);

    s_stop_generator(&r);
    s_check_table_equals_archive(&r);
    s_sampler_stop(&r.sampler);
    fprintf(stderr, "scaling: %ld looks at writer_assignments, %ld with a partition owned twice, %ld failed\n",
            atomic_load(&r.sampler.samples), atomic_load(&r.sampler.doubles), atomic_load(&r.sampler.errors));
    cr_assert_eq(atomic_load(&r.sampler.doubles), 0, "a partition had two owners: %s", r.sampler.first_double);
    cr_assert_gt(atomic_load(&r.sampler.samples), 50, "the sampler hardly looked");
    for (int i = 0; i < WRITERS_MAX; i++)
        s_check_only_owners_wrote(r.writers[i]);
    s_teardown(&r);
}

Test(scaling, a_writer_starting_after_the_generator_stopped_repairs_what_it_missed, .timeout = 200)
{
    rig_t r;
    s_setup(&r, "scaling_quiet_start");
    s_writer(&r, 0);
    s_generator(&r);
    s_traffic(1500);
    /* The writer dies; the generator goes on without any writer, then stops. */
    tk_kill(&r.writers[0], 10000);
    s_traffic(2500);
    s_stop_generator(&r);
    int64_t committed = tk_sql_int(r.w->conn, "SELECT count(*) FROM events");
    /* No publisher heartbeats now: the writer has only the database and the
     * repair service to learn from. */
    s_writer(&r, 0);
    s_check_table_equals_archive(&r);
    fprintf(stderr, "scaling: %lld events committed before the restart, the rest repaired\n", (long long)committed);
    char *log = tk_read_file(r.writers[0]->log, NULL);
    cr_assert(strstr(log, "\"asking for events after the last known seq\"") != NULL, "%s", log);
    free(log);
    s_teardown(&r);
}
