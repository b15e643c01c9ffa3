/* Tests of evpipe-writer --check-db: the rules on given values (what hurts,
 * what is only advice, what is fine), and the command against the test
 * cluster, which runs with PostgreSQL's defaults on purpose (small). */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"
#include "testkit.h"
#include "writer_checkdb.h"

/* Judges values; the printed findings in out (malloc'd). */
static int s_judge(const writer_checkdb_value_t *v, size_t n, char **out)
{
    size_t len;
    FILE *f = open_memstream(out, &len);
    cr_assert(f);
    int hurts = writer_checkdb_judge(v, n, f);
    fclose(f);
    return hurts;
}

/* A server set up as docs/postgresql.md says. */
static const writer_checkdb_value_t s_good[] = {
    {"fsync", "on", ""},
    {"full_page_writes", "on", ""},
    {"autovacuum", "on", ""},
    {"track_counts", "on", ""},
    {"autovacuum_vacuum_insert_threshold", "1000000", ""},
    {"autovacuum_vacuum_insert_scale_factor", "0.01", ""},
    {"shared_buffers", "524288", "8kB"},
    {"max_wal_size", "8192", "MB"},
    {"checkpoint_timeout", "900", "s"},
    {"checkpoint_completion_target", "0.9", ""},
    {"maintenance_work_mem", "524288", "kB"},
    {"wal_compression", "lz4", ""},
    {"checkpoints_timed", "40", ""},
    {"checkpoints_req", "2", ""},
};
#define S_GOOD_N (sizeof s_good / sizeof s_good[0])

Test(writer_checkdb, a_server_set_up_for_the_job_has_no_finding)
{
    char *out;
    cr_assert_eq(s_judge(s_good, S_GOOD_N, &out), 0);
    cr_assert_str_eq(out, "");
    free(out);
}

/* s_good with one value changed. */
static int s_judge_one(const char *name, const char *setting, char **out)
{
    writer_checkdb_value_t v[S_GOOD_N];
    memcpy(v, s_good, sizeof v);
    bool found = false;
    for (size_t i = 0; i < S_GOOD_N; i++)
        if (strcmp(v[i].name, name) == 0) {
            v[i].setting = setting;
            found = true;
        }
    cr_assert(found, "%s", name);
    return s_judge(v, S_GOOD_N, out);
}

Test(writer_checkdb, each_harmful_setting_is_named_with_advice_and_counted)
{
    static const struct {
        const char *name, *setting, *shown;
    } cases[] = {
        {"fsync", "off", "fsync = off"},
        {"full_page_writes", "off", "full_page_writes = off"},
        {"autovacuum", "off", "autovacuum = off"},
        {"track_counts", "off", "track_counts = off"},
        {"autovacuum_vacuum_insert_threshold", "-1", "autovacuum_vacuum_insert_threshold = -1"},
        {"shared_buffers", "16384", "shared_buffers = 128MB"},
        {"max_wal_size", "1024", "max_wal_size = 1GB"},
        {"checkpoints_req", "50", "checkpoints_req = 50"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        cr_assert_eq(s_judge_one(cases[i].name, cases[i].setting, &out), 1, "%s=%s: %s", cases[i].name,
                     cases[i].setting, out);
        cr_assert(strncmp(out, "hurts  ", 7) == 0, "%s", out);
        cr_assert(strstr(out, cases[i].shown), "%s", out);
        cr_assert(strstr(out, "(want "), "what it should be: %s", out);
        free(out);
    }
}

Test(writer_checkdb, settings_that_only_could_be_better_are_advice_and_do_not_count)
{
    static const struct {
        const char *name, *setting;
    } cases[] = {
        {"checkpoint_timeout", "300"},
        {"checkpoint_completion_target", "0.5"},
        {"maintenance_work_mem", "65536"},
        {"wal_compression", "off"},
        {"autovacuum_vacuum_insert_scale_factor", "0.2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        cr_assert_eq(s_judge_one(cases[i].name, cases[i].setting, &out), 0, "%s", out);
        cr_assert(strncmp(out, "advice ", 7) == 0 && strstr(out, cases[i].name), "%s", out);
        free(out);
    }
}

Test(writer_checkdb, the_command_reads_the_server_and_exits_non_zero_when_something_hurts, .timeout = 120)
{
    /* scripts/test's cluster keeps PostgreSQL's defaults (max_wal_size 1GB
     * hurts); on another cluster the exit code must still match the lines. */
    tk_world_t *w = tk_world_new(criterion_current_test->name);
    const char *args[] = {"--check-db", NULL};
    tk_proc_t *p = tk_start(w, "writer", args, NULL);
    cr_assert(tk_wait_exit(p, 60000), "--check-db did not finish");
    char *log = wt_log(p);
    bool hurts = strstr(log, "\nhurts  ") || strncmp(log, "hurts  ", 7) == 0;
    cr_assert_eq(tk_exit_code(p), hurts ? 1 : 0, "%s", log);
    if (tk_sql_int(w->conn, "SELECT count(*) FROM pg_settings WHERE name = 'max_wal_size' AND setting = '1024'"))
        cr_assert(strstr(log, "hurts  max_wal_size = 1GB (want"), "%s", log);
    cr_assert(strstr(log, "setting(s) will hurt"), "%s", log);
    free(log);
    tk_proc_destroy(&p);
    tk_world_destroy(&w);
}
