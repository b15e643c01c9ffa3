/* Deployment-wide settings (PARTITIONS): the first service that finds the
 * deployment_settings table records its value; a writer, generator or
 * ingest started with another value refuses to start (exit 3) naming both;
 * the same value starts; several services starting together agree on one
 * value; a database without the table, or none at all, lets the generator
 * and ingest go on. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

#define WAIT_MS 30000
#define REFUSED 3

static tk_world_t *w;

static void setup(void)
{
    w = tk_world_new(criterion_current_test->name);
}

static void teardown(void)
{
    tk_world_destroy(&w);
}

TestSuite(deploy, .init = setup, .fini = teardown, .timeout = 180);

static char *s_log(const tk_proc_t *p)
{
    char *log = tk_read_file(p->log, NULL);
    return log ? log : strdup("");
}

/* Runs service to its end; it must exit with `want` within WAIT_MS and its
 * log must hold every text of `has` (NULL-terminated). */
static void s_exits(const char *service, const char *const *args, const char *const *env, int want,
                    const char *const *has)
{
    tk_proc_t *p = tk_start(w, service, args, env);
    bool ended = tk_wait_exit(p, WAIT_MS);
    char *log = s_log(p);
    cr_assert(ended, "%s did not exit: %s", service, log);
    cr_assert_eq(tk_exit_code(p), want, "%s exited %d, not %d: %s", service, tk_exit_code(p), want, log);
    for (int i = 0; has && has[i]; i++)
        cr_assert(strstr(log, has[i]) != NULL, "%s: no \"%s\" in: %s", service, has[i], log);
    free(log);
    tk_proc_destroy(&p);
}

static int64_t s_recorded(void)
{
    return tk_sql_int(w->conn, "SELECT COALESCE(max(value::int), 0) FROM deployment_settings WHERE name = 'PARTITIONS'");
}

/* A writer (not only its migrations) with env, left running once ready. */
static tk_proc_t *s_writer(const char *const *env)
{
    tk_proc_t *p = tk_start(w, "writer", NULL, env);
    if (!tk_wait_log(p, "\"writer ready\"", WAIT_MS)) {
        char *log = s_log(p);
        cr_assert_fail("the writer did not start: %s", log);
    }
    return p;
}

static const char *const s_p32[] = {"PARTITIONS=32", NULL};
static const char *const s_both[] = {"PARTITIONS=32 here, but this deployment was set up with PARTITIONS=16",
                                     "(recorded by evpipe-writer/", "refusing to start", NULL};

Test(deploy, the_first_writer_records_partitions_and_every_other_value_is_refused)
{
    tk_proc_t *bus = tk_start(w, "bus", NULL, NULL);
    cr_assert(tk_wait_log(bus, "bus ready", 10000));
    tk_proc_t *writer = s_writer(NULL);
    cr_assert_eq(s_recorded(), 16);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM deployment_settings WHERE name = 'PARTITIONS'"
                                     " AND recorded_by LIKE 'evpipe-writer/%' AND recorded_at <= now()"),
                 1);

    /* A generator with 32 refuses before it archives anything. */
    const char *count[] = {"--count", "10", NULL};
    s_exits("generator", count, s_p32, REFUSED, s_both);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM events"), 0);
    DIR *d = opendir(w->archive_dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
                  "the refused generator wrote %s to its archive", e->d_name);
    closedir(d);

    /* So does an ingest, and a second writer. */
    char path[400];
    snprintf(path, sizeof path, "%s/old.csv", w->data_dir);
    const char *csv = "user_id,user_name,user_email,event_type,product_id,product_name,product_category,"
                      "product_price,event_time\n7,Ann,a@example.com,view,1,Tea,Food,1.50,2024-01-01 10:00:00\n";
    tk_write_file(path, csv, strlen(csv));
    const char *ingest_args[] = {path, NULL};
    s_exits("ingest", ingest_args, s_p32, REFUSED, s_both);
    s_exits("writer", NULL, s_p32, REFUSED, s_both);
    cr_assert_eq(s_recorded(), 16, "a refusal changes nothing");

    /* The same value starts: a generator's events are stored. */
    s_exits("generator", count, NULL, 0, (const char *const[]){"\"deployment settings agree\" partitions=16", NULL});
    cr_assert_eq(tk_wait_sql_int(w->conn, "SELECT count(*) FROM events", 10, WAIT_MS), 10);
    tk_proc_t *second = s_writer((const char *const[]){"PARTITIONS=16", NULL});
    tk_stop(&second, 20000);
    tk_stop(&writer, 20000);
    tk_stop(&bus, 20000);
}

Test(deploy, the_generator_records_partitions_when_it_finds_the_table_first)
{
    /* --migrate-only makes the table and records nothing (a migration job
     * need not carry the deployment's settings). */
    s_exits("writer", (const char *const[]){"--migrate-only", NULL}, s_p32, 0, NULL);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM deployment_settings"), 0);
    tk_proc_t *gen = tk_start(w, "generator", NULL, s_p32);
    cr_assert(tk_wait_log(gen, "\"deployment settings agree\" partitions=32", WAIT_MS));
    tk_proc_destroy(&gen);
    cr_assert_eq(s_recorded(), 32);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM deployment_settings WHERE recorded_by LIKE"
                                     " 'evpipe-generator/%'"),
                 1);
    s_exits("writer", NULL, NULL, REFUSED,
            (const char *const[]){"PARTITIONS=16 here, but this deployment was set up with PARTITIONS=32",
                                  "(recorded by evpipe-generator/", NULL});
}

Test(deploy, services_starting_together_agree_on_one_value)
{
    s_exits("writer", (const char *const[]){"--migrate-only", NULL}, NULL, 0, NULL);
    enum { N = 6 };
    tk_proc_t *p[N];
    const char *const p8[] = {"PARTITIONS=8", NULL};
    const char *const p12[] = {"PARTITIONS=12", NULL};
    for (int i = 0; i < N; i++)
        p[i] = tk_start(w, "generator", NULL, i % 2 ? p8 : p12);
    int agree[2] = {0, 0}, refused[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        int64_t end = tk_now_ms() + WAIT_MS;
        bool ok = false, no = false;
        while (!ok && !no && tk_now_ms() < end) {
            char *log = s_log(p[i]);
            ok = strstr(log, "\"deployment settings agree\"") != NULL;
            no = strstr(log, "refusing to start") != NULL;
            free(log);
            if (!ok && !no)
                tk_sleep_ms(20);
        }
        cr_assert(ok || no, "generator %d neither agreed nor refused", i);
        agree[i % 2] += ok;
        refused[i % 2] += no;
    }
    for (int i = 0; i < N; i++)
        tk_proc_destroy(&p[i]);
    int64_t v = s_recorded();
    cr_assert(v == 8 || v == 12, "recorded %lld", (long long)v);
    int winner = v == 8 ? 1 : 0;
    cr_assert_eq(agree[winner], N / 2, "every service with the recorded value goes on");
    cr_assert_eq(refused[winner], 0);
    cr_assert_eq(agree[1 - winner], 0, "every service with the other value refuses");
    cr_assert_eq(refused[1 - winner], N / 2);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM deployment_settings"), 1);
}

Test(deploy, generator_and_ingest_go_on_without_the_table_or_without_postgresql)
{
    /* No writer has set the database up: nothing is recorded, nothing made. */
    tk_proc_t *gen = tk_start(w, "generator", NULL, s_p32);
    cr_assert(tk_wait_log(gen, "deployment settings not recorded yet", WAIT_MS));
    cr_assert(tk_wait_log(gen, "\"generator started\"", WAIT_MS));
    tk_proc_destroy(&gen);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM pg_tables WHERE tablename = 'deployment_settings'"), 0);

    /* Nothing answers where PostgreSQL should be: a warning after a bounded
     * wait, then the service goes on (the writers check). */
    char port[40];
    snprintf(port, sizeof port, "POSTGRES_PORT=%d", tk_free_port());
    const char *env[] = {port, "PARTITIONS=32", NULL};
    int64_t t0 = tk_now_ms();
    gen = tk_start(w, "generator", NULL, env);
    cr_assert(tk_wait_log(gen, "deployment settings not checked: PostgreSQL unavailable", WAIT_MS));
    cr_assert(tk_wait_log(gen, "\"generator started\"", WAIT_MS));
    int64_t waited = tk_now_ms() - t0;
    cr_assert(waited >= 4000 && waited < 25000, "waited %lld ms", (long long)waited);
    tk_proc_destroy(&gen);
    const char *args[] = {"--bus-timeout", "1", w->data_dir, NULL};
    tk_proc_t *ing = tk_start(w, "ingest", args, env);
    cr_assert(tk_wait_log(ing, "deployment settings not checked: PostgreSQL unavailable", WAIT_MS));
    tk_proc_destroy(&ing);
}
