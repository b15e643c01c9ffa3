/* The PostgreSQL layer against a real PostgreSQL: one classification of a
 * failed result (evp_pg_err_t) for statements and COPY, read the same way by
 * every caller: a refused value is data with its SQLSTATE and detail, a
 * concurrent transaction's conflict is a conflict, a COPY names its failing
 * line, a lost connection is a failure that says so. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "evpipe/pg.h"
#include "testkit.h"

static tk_world_t *w;
static PGconn *c;

static void setup(void)
{
    w = tk_world_new(criterion_current_test->name);
    c = tk_world_connect(w);
    tk_sql_exec(w->conn, "CREATE TABLE t (k int PRIMARY KEY, v int CHECK (v > 0))");
    tk_sql_exec(w->conn, "INSERT INTO t VALUES (1, 1)");
}

static void teardown(void)
{
    PQfinish(c);
    tk_world_destroy(&w);
}

TestSuite(pg, .init = setup, .fini = teardown, .timeout = 60);

/* What every failure has: the statement named first, one line. */
static void s_one_line_naming(const evp_pg_err_t *err, const char *what)
{
    cr_assert(strncmp(err->why, what, strlen(what)) == 0 && err->why[strlen(what)] == ':', "%s", err->why);
    cr_assert_null(strchr(err->why, '\n'), "%s", err->why);
    cr_assert_null(strchr(err->detail, '\n'), "%s", err->detail);
}

Test(pg, a_unique_violation_is_data_with_its_sqlstate_and_detail)
{
    evp_pg_err_t err;
    const char *vals[] = {"1", "2"};
    cr_assert_not(evp_pg_exec(c, "INSERT INTO t VALUES ($1::int, $2::int)", 2, vals, "inserting", &err));
    cr_assert(err.data);
    cr_assert_not(err.conflict);
    cr_assert_str_eq(err.state, "23505");
    cr_assert_str_eq(err.detail, "duplicate key value violates unique constraint \"t_pkey\" (SQLSTATE 23505)");
    s_one_line_naming(&err, "inserting");
    cr_assert(strstr(err.why, "inserting: duplicate key value violates unique constraint \"t_pkey\" (SQLSTATE "
                              "23505) DETAIL: Key (k)=(1) already exists.") == err.why,
              "PostgreSQL's DETAIL goes to the log: %s", err.why);
    /* The connection serves on. */
    cr_assert(evp_pg_exec(c, "INSERT INTO t VALUES ($1::int, $2::int)", 2, (const char *[]){"2", "2"}, "inserting",
                          &err),
              "%s", err.why);
}

Test(pg, a_value_of_the_wrong_type_is_data)
{
    evp_pg_err_t err;
    cr_assert_null(evp_pg_query(c, "SELECT $1::int", 1, (const char *[]){"x"}, PGRES_TUPLES_OK, "casting", &err));
    cr_assert(err.data);
    cr_assert_str_eq(err.state, "22P02");
    s_one_line_naming(&err, "casting");
}

Test(pg, a_serialization_failure_is_a_conflict)
{
    evp_pg_err_t err;
    cr_assert(evp_pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, "BEGIN", &err), "%s", err.why);
    PGresult *r = evp_pg_query_one(c, "SELECT v FROM t WHERE k = 1", 0, NULL, "reading", &err);
    cr_assert_not_null(r, "%s", err.why);
    PQclear(r);
    /* Another transaction moves the row after this one's snapshot. */
    tk_sql_exec(w->conn, "UPDATE t SET v = 2 WHERE k = 1");
    cr_assert_not(evp_pg_exec(c, "UPDATE t SET v = 3 WHERE k = 1", 0, NULL, "updating", &err));
    cr_assert(err.conflict);
    cr_assert_not(err.data);
    cr_assert_str_eq(err.state, "40001");
    s_one_line_naming(&err, "updating");
    cr_assert(evp_pg_rollback(c), "the connection is still there");
    cr_assert_not(evp_pg_lost(c));
}

Test(pg, a_deadlock_class_error_is_a_conflict)
{
    evp_pg_err_t err;
    cr_assert_not(evp_pg_exec(c, "DO $$ BEGIN RAISE EXCEPTION 'stand-in' USING ERRCODE = 'deadlock_detected'; END $$",
                              0, NULL, "raising", &err));
    cr_assert(err.conflict);
    cr_assert_not(err.data);
    cr_assert_str_eq(err.state, "40P01");
    cr_assert_str_eq(err.detail, "stand-in (SQLSTATE 40P01)");
}

Test(pg, a_copy_names_its_failing_line)
{
    static const char rows[] = "10\t1\n11\t2\n12\t-3\n13\t4\n";
    evp_pg_err_t err;
    cr_assert_not(evp_pg_copy(c, "COPY t (k, v) FROM STDIN", rows, strlen(rows), "COPY t", &err));
    cr_assert(err.data);
    cr_assert_str_eq(err.state, "23514");
    cr_assert_eq(err.line, 3, "line %ld: %s", err.line, err.why);
    cr_assert(strstr(err.detail, "violates check constraint \"t_v_check\" (SQLSTATE 23514)") != NULL, "%s",
              err.detail);
    cr_assert(strstr(err.why, "CONTEXT: COPY t, line 3") != NULL, "%s", err.why);
    s_one_line_naming(&err, "COPY t");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM t"), 1, "nothing of the COPY stays");

    static const char good[] = "10\t1\n11\t2\n";
    cr_assert(evp_pg_copy(c, "COPY t (k, v) FROM STDIN", good, strlen(good), "COPY t", &err), "%s", err.why);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM t"), 3);
}

Test(pg, a_copy_whose_data_did_not_all_go_leaves_nothing)
{
    evp_pg_err_t err;
    cr_assert(evp_pg_copy_begin(c, "COPY t (k, v) FROM STDIN", "COPY t", &err), "%s", err.why);
    cr_assert(evp_pg_copy_put(c, "20\t1\n", 5));
    cr_assert_not(evp_pg_copy_end(c, false, "COPY t", &err));
    cr_assert_not(err.data);
    cr_assert_not(err.conflict);
    s_one_line_naming(&err, "COPY t");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM t"), 1);
    cr_assert_not(evp_pg_lost(c));
}

Test(pg, a_lost_connection_is_a_failure_naming_it)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", PQbackendPID(c));
    char end[128];
    snprintf(end, sizeof end, "SELECT count(*) FROM (SELECT pg_terminate_backend(%d)) x", PQbackendPID(c));
    tk_sql_int(w->conn, end);
    cr_assert_eq(tk_wait_sql_int(w->conn, sql, 0, 10000), 0, "the backend did not end");

    evp_pg_err_t err;
    cr_assert_not(evp_pg_exec(c, "SELECT 1", 0, NULL, "asking", &err));
    cr_assert_not(err.data);
    cr_assert_not(err.conflict);
    cr_assert(strstr(err.why, "connection") != NULL, "the loss is named: %s", err.why);
    s_one_line_naming(&err, "asking");
    cr_assert(evp_pg_lost(c));
    cr_assert_not(evp_pg_rollback(c));

    evp_pg_classify(NULL, "asking", &err);
    cr_assert_str_eq(err.why, "asking: no result (connection lost?)");
    cr_assert_not(err.data || err.conflict);
    cr_assert_str_eq(err.state, "");
}

Test(pg, an_answer_of_another_shape_is_a_failure)
{
    evp_pg_err_t err;
    cr_assert_null(evp_pg_query_one(c, "SELECT k FROM t WHERE k > 5", 0, NULL, "reading", &err));
    cr_assert_str_eq(err.why, "reading: 0 rows where one was expected");
    cr_assert_null(evp_pg_query(c, "SELECT 1", 0, NULL, PGRES_COMMAND_OK, "commanding", &err));
    cr_assert_str_eq(err.why, "commanding: PGRES_TUPLES_OK (SQLSTATE none)");
    char why[EVP_WHY_MAX];
    cr_assert_null(evp_pg_query_why(c, "SELECT nothing", 0, NULL, PGRES_TUPLES_OK, "selecting", why, sizeof why));
    cr_assert(strstr(why, "selecting: column \"nothing\" does not exist (SQLSTATE 42703)") == why, "%s", why);
}

/* libpq's message for a refused connection runs over two lines ("...
 * Connection refused\n\tIs the server running ...?\n"): the reason comes
 * back on one line that still names the server and why. */
Test(pg_connect, a_refused_connection_is_named_on_one_line, .timeout = 60)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    snprintf(cfg.postgres_host, sizeof cfg.postgres_host, "127.0.0.1");
    cfg.postgres_port = tk_free_port(); /* nothing listens there */
    char why[EVP_WHY_MAX], port[32];
    cr_assert_null(evp_pg_connect(&cfg, "test", why, sizeof why));
    snprintf(port, sizeof port, "port %d", cfg.postgres_port);
    cr_assert_null(strchr(why, '\n'), "one line: %s", why);
    cr_assert_null(strchr(why, '\t'), "one line: %s", why);
    cr_assert(strstr(why, "127.0.0.1") && strstr(why, port), "names the server: %s", why);
    cr_assert(strstr(why, "Connection refused; Is the server running"), "says why, lines joined: %s", why);
    cr_assert(why[strlen(why) - 1] != ' ', "nothing trails: \"%s\"", why);
}
