/* Integration tests of the migrations against a real PostgreSQL: applied
 * once, safe when several writers start together, and the schema they make
 * agrees with the event field list and the event types. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/event.h"
#include "testkit.h"
#include "peers.h"
#include "writer_migrate.h"

static tk_world_t *w;

static void setup(void)
{
    w = tk_world_new(criterion_current_test->name);
}

static void teardown(void)
{
    tk_world_destroy(&w);
}

TestSuite(writer_migrate, .init = setup, .fini = teardown, .timeout = 120);

/* Runs evpipe-writer --migrate-only to its end; returns its exit code. */
static int s_migrate_only(tk_proc_t **out)
{
    const char *args[] = {"--migrate-only", NULL};
    tk_proc_t *p = tk_start(w, "writer", args, NULL);
    cr_assert(tk_wait_exit(p, 60000), "--migrate-only did not finish");
    return tk_finish(p, out);
}

Test(writer_migrate, applies_every_migration_once)
{
    tk_proc_t *p;
    cr_assert_eq(s_migrate_only(&p), 0);
    cr_assert_eq(wt_log_count(p, "\"migration applied\""), (int)writer_migrations_count);
    tk_proc_destroy(&p);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations"), (int64_t)writer_migrations_count);
    int64_t first = tk_sql_int(w->conn, "SELECT extract(epoch FROM max(applied_at)) * 1000000 FROM evpipe_migrations");

    cr_assert_eq(s_migrate_only(&p), 0);
    char *log = wt_log(p);
    cr_assert(strstr(log, "\"migration applied\"") == NULL, "nothing is applied twice: %s", log);
    cr_assert(strstr(log, "\"migrations up to date\" applied=0") != NULL, "%s", log);
    free(log);
    tk_proc_destroy(&p);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations"), (int64_t)writer_migrations_count);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT extract(epoch FROM max(applied_at)) * 1000000 FROM evpipe_migrations"),
                 first);
}

Test(writer_migrate, records_each_file_with_its_name_and_checksum_in_order)
{
    cr_assert_eq(s_migrate_only(NULL), 0);
    PGresult *r = PQexec(w->conn, "SELECT version, name, checksum FROM evpipe_migrations ORDER BY version");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    cr_assert_eq(PQntuples(r), (int)writer_migrations_count);
    int last = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const writer_migration_t *m = &writer_migrations[i];
        cr_assert(m->version > last, "embedded migrations are in version order");
        last = m->version;
        cr_assert_eq(atoi(PQgetvalue(r, i, 0)), m->version);
        cr_assert_str_eq(PQgetvalue(r, i, 1), m->name);
        cr_assert_str_eq(PQgetvalue(r, i, 2), m->checksum);
        cr_assert_eq(strlen(m->checksum), 64, "a SHA-256 in hex");
    }
    PQclear(r);
}

Test(writer_migrate, writers_migrating_together_do_not_race)
{
    enum { N = 4 };
    tk_proc_t *p[N];
    const char *args[] = {"--migrate-only", NULL};
    for (int i = 0; i < N; i++)
        p[i] = tk_start(w, "writer", args, NULL);
    int applied = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(tk_wait_exit(p[i], 60000), "writer %d did not finish", i);
        char *log = wt_log(p[i]);
        cr_assert_eq(tk_exit_code(p[i]), 0, "writer %d failed: %s", i, log);
        free(log);
        applied += wt_log_count(p[i], "\"migration applied\"");
        tk_proc_destroy(&p[i]);
    }
    cr_assert_eq(applied, (int)writer_migrations_count, "each migration is applied by exactly one writer");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations"), (int64_t)writer_migrations_count);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(DISTINCT version) FROM evpipe_migrations"),
                 (int64_t)writer_migrations_count);
}

Test(writer_migrate, events_columns_have_the_types_of_the_field_list)
{
    cr_assert_eq(s_migrate_only(NULL), 0);
    int fields = 0;
    for (int f = 0; f < EV_FIELD_COUNT; f++) {
        if (!(ev_fields[f].where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        fields++;
        const char *vals[] = {ev_fields[f].name};
        PGresult *r = PQexecParams(w->conn,
                                   "SELECT format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c"
                                   " JOIN pg_attribute a ON a.attrelid = 'events'::regclass AND a.attname = c.column_name"
                                   " WHERE c.table_schema = current_schema() AND c.table_name = 'events'"
                                   " AND c.column_name = $1 AND NOT a.attisdropped",
                                   1, NULL, vals, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
        cr_assert_eq(PQntuples(r), 1, "events has no column %s", ev_fields[f].name);
        cr_assert_str_eq(PQgetvalue(r, 0, 0), ev_fields[f].sql_type, "column %s: sql/ says %s, the field list %s",
                         ev_fields[f].name, PQgetvalue(r, 0, 0), ev_fields[f].sql_type);
        PQclear(r);
    }
    /* And nothing else but the table's own key. */
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM information_schema.columns WHERE table_schema ="
                                     " current_schema() AND table_name = 'events' AND column_name <> 'event_id'"),
                 fields, "events has columns the field list does not know");
}

Test(writer_migrate, the_event_type_check_holds_exactly_the_allowed_types)
{
    cr_assert_eq(s_migrate_only(NULL), 0);
    PGresult *r = PQexec(w->conn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                                  " WHERE conname = 'valid_event_type' AND conrelid = 'events'::regclass");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    cr_assert_eq(PQntuples(r), 1, "the constraint valid_event_type is missing");
    const char *def = PQgetvalue(r, 0, 0);
    /* Every quoted literal of the definition is an allowed type, and every
     * allowed type is one of them. */
    int literals = 0;
    for (const char *q = strchr(def, '\''); q; q = strchr(q, '\'')) {
        const char *end = strchr(q + 1, '\'');
        cr_assert_not_null(end, "%s", def);
        ev_str_t lit = {q + 1, (uint32_t)(end - q - 1)};
        cr_assert(ev_event_type_allowed(lit), "the CHECK allows '%.*s', event_types.def does not: %s", (int)lit.len,
                  lit.ptr, def);
        literals++;
        q = end + 1;
    }
    int types = 0;
    for (const char *const *t = ev_event_types; *t; t++) {
        types++;
        char quoted[80];
        snprintf(quoted, sizeof quoted, "'%s'", *t);
        cr_assert(strstr(def, quoted) != NULL, "event_types.def allows %s, the CHECK does not: %s", *t, def);
    }
    cr_assert_eq(literals, types, "%s", def);
    PQclear(r);
}

Test(writer_migrate, refuses_a_database_with_a_migration_it_does_not_know)
{
    cr_assert_eq(s_migrate_only(NULL), 0);
    /* A newer writer's migration, recorded as that writer would. */
    tk_sql_exec(w->conn, "INSERT INTO evpipe_migrations (version, name, checksum)"
                         " VALUES (999, '999_from_the_future.sql', 'x')");
    int64_t before = tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations");
    tk_proc_t *p;
    int rc = s_migrate_only(&p);
    char *log = wt_log(p);
    cr_assert_eq(rc, 3, "a refusal has its own exit code: %s", log);
    cr_assert(strstr(log, "refusing a database migrated by a newer writer") != NULL, "%s", log);
    cr_assert(strstr(log, "versions 999") != NULL, "the unknown version is named: %s", log);
    char newest[40];
    snprintf(newest, sizeof newest, "its newest is %d", writer_migrations[writer_migrations_count - 1].version);
    cr_assert(strstr(log, newest) != NULL, "its own newest is named: %s", log);
    free(log);
    tk_proc_destroy(&p);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations"), before, "nothing changed");

    /* The writer that runs (not only --migrate-only) refuses too, before it
     * subscribes to anything. */
    p = tk_start(w, "writer", NULL, NULL);
    cr_assert(tk_wait_exit(p, 60000), "the writer did not refuse to start");
    log = wt_log(p);
    cr_assert_eq(tk_exit_code(p), 3, "%s", log);
    cr_assert(strstr(log, "writer ready") == NULL, "%s", log);
    free(log);
    tk_proc_destroy(&p);
}

Test(writer_migrate, applies_a_known_migration_the_database_lacks_instead_of_refusing)
{
    /* A gap in what is recorded is not newer: the writer applies what is
     * missing (a known version). Only unknown versions are refused. */
    cr_assert_eq(s_migrate_only(NULL), 0);
    tk_sql_exec(w->conn, "DELETE FROM evpipe_migrations WHERE version = 5");
    cr_assert_eq(s_migrate_only(NULL), 0);
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM evpipe_migrations"), (int64_t)writer_migrations_count);
}
