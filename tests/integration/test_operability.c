/* Operability, end to end: every service runs as a real process with its
 * own METRICS_PORT; /metrics is scraped and its counters are checked against
 * the rows PostgreSQL committed, and the writer's /healthz is followed while
 * its PostgreSQL (a private cluster) stops and starts again. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/config.h"
#include "testkit.h"

/* Events the generator makes in the counting test. */
#define EVENTS 20000

/* One service: its process and its METRICS_PORT. */
typedef struct {
    tk_proc_t *proc;     /* the process, or NULL */
    int port;            /* its METRICS_PORT */
    char env[32];        /* "METRICS_PORT=<port>" (putenv keeps the pointer) */
} svc_t;

/* Everything a test starts, stopped by s_teardown even when it fails. */
static struct {
    tk_cluster_t *cluster; /* a private PostgreSQL, or NULL */
    tk_world_t *w;         /* database, endpoints, folders */
    svc_t bus, writer, ingest, gen;
} s_rig;

static void s_show(const svc_t *s)
{
    tk_show(s->proc, 3000);
}

/* Starts evpipe-<service> with a METRICS_PORT of its own (plus env). */
static void s_start(svc_t *s, const char *service, const char *const *args, const char *const *env)
{
    s->port = tk_free_port();
    snprintf(s->env, sizeof s->env, "METRICS_PORT=%d", s->port);
    const char *all[8] = {s->env};
    for (int i = 0; env && env[i] && i < 6; i++)
        all[i + 1] = env[i];
    s->proc = tk_start(s_rig.w, service, args, all);
}

static void s_expect_log(svc_t *s, const char *text, int timeout_ms)
{
    if (!tk_wait_log(s->proc, text, timeout_ms)) {
        s_show(s);
        cr_assert_fail("%s: no \"%s\" in its log", s->proc->name, text);
    }
}

static void s_stop(svc_t *s)
{
    if (!s->proc)
        return;
    tk_signal(s->proc, SIGTERM);
    if (!tk_wait_exit(s->proc, 20000))
        s_show(s);
    tk_proc_destroy(&s->proc);
}

static void s_teardown(void)
{
    s_stop(&s_rig.gen);
    s_stop(&s_rig.ingest);
    s_stop(&s_rig.writer);
    s_stop(&s_rig.bus);
    tk_world_destroy(&s_rig.w);
    tk_cluster_destroy(&s_rig.cluster);
    memset(&s_rig, 0, sizeof s_rig);
}

TestSuite(operability, .fini = s_teardown);

/* The bus and a writer subscribed to it. */
static void s_bus_and_writer(void)
{
    s_start(&s_rig.bus, "bus", NULL, NULL);
    s_expect_log(&s_rig.bus, "bus ready", 15000);
    s_start(&s_rig.writer, "writer", NULL, NULL);
    s_expect_log(&s_rig.writer, "subscribed to the bus", 60000);
}

/* /healthz of s until it answers want; fails the test (with the log and the
 * last answer) after timeout_ms. */
static void s_expect_health(svc_t *s, int want, int timeout_ms, const char *why)
{
    int got = tk_http_wait_status(s->port, "/healthz", want, timeout_ms);
    if (got != want) {
        tk_http_t r = tk_http_get(s->port, "/healthz");
        s_show(s);
        cr_assert_fail("%s /healthz: %d (%s), expected %d: %s", s->proc->name, got, r.body, want, why);
    }
}

/* A histogram is whole: its +Inf bucket equals its count. */
static double s_histogram_count(const char *body, const char *name)
{
    char key[160];
    snprintf(key, sizeof key, "%s_bucket{le=\"+Inf\"}", name);
    double inf = tk_metric(body, key);
    snprintf(key, sizeof key, "%s_count", name);
    double count = tk_metric(body, key);
    cr_assert(!isnan(count) && inf == count, "%s: +Inf bucket %g, count %g", name, inf, count);
    return count;
}

Test(operability, counters_agree_with_the_rows_committed, .timeout = 300)
{
    s_rig.w = tk_world_new("ops_counters");
    s_bus_and_writer();
    const char *watch[] = {"--watch", s_rig.w->data_dir, NULL};
    s_start(&s_rig.ingest, "ingest", watch, NULL);
    s_expect_log(&s_rig.ingest, "repair server listening", 15000);
    /* One burst of EVENTS, then a rest far longer than the test: the
     * generator stays up, so its final counters can be scraped. */
    char burst[2][32];
    snprintf(burst[0], sizeof burst[0], "MIN_EVENTS=%d", EVENTS);
    snprintf(burst[1], sizeof burst[1], "MAX_EVENTS=%d", EVENTS);
    const char *gen_env[] = {burst[0], burst[1], "SLEEP_INTERVAL=3600", "GENERATOR_RATE=", NULL};
    s_start(&s_rig.gen, "generator", NULL, gen_env);

    int64_t n = tk_wait_sql_int(s_rig.w->conn, "SELECT count(*) FROM events", EVENTS, 120000);
    if (n != EVENTS) {
        s_show(&s_rig.gen);
        s_show(&s_rig.writer);
    }
    cr_assert_eq(n, EVENTS, "committed %lld of %d events", (long long)n, EVENTS);

    /* The writer's counters catch up with its commit at its next turn. */
    int64_t end = tk_now_ms() + 10000;
    while (tk_scrape(s_rig.writer.port, "evpipe_writer_events_committed_total") != EVENTS && tk_now_ms() < end)
        tk_sleep_ms(100);
    tk_http_t wr = tk_http_get(s_rig.writer.port, "/metrics");
    cr_assert_eq(wr.status, 200);
    cr_assert_eq(tk_metric(wr.body, "evpipe_writer_events_committed_total"), EVENTS, "%s", wr.body);
    cr_assert_eq(tk_metric(wr.body, "evpipe_writer_events_committed_total"),
                 tk_sql_int(s_rig.w->conn, "SELECT count(*) FROM events"));
    cr_assert_geq(tk_metric(wr.body, "evpipe_writer_events_received_total"), EVENTS);
    double batches = tk_metric(wr.body, "evpipe_writer_batches_total");
    cr_assert_geq(batches, 1);
    cr_assert_eq(s_histogram_count(wr.body, "evpipe_writer_batch_rows"), batches, "one observation per batch");
    cr_assert_eq(s_histogram_count(wr.body, "evpipe_writer_commit_seconds"), batches);
    cr_assert_eq(s_histogram_count(wr.body, "evpipe_writer_publish_to_commit_seconds"), EVENTS,
                 "one latency per committed row");
    cr_assert_eq(tk_metric(wr.body, "evpipe_writer_batch_rows_sum"), EVENTS);
    cr_assert_eq(tk_metric(wr.body, "evpipe_writer_gaps_recorded_total"), 0);
    cr_assert_eq(tk_metric(wr.body, "evpipe_writer_postgres_connected"), 1);
    tk_http_free(&wr);

    tk_http_t gr = tk_http_get(s_rig.gen.port, "/metrics");
    cr_assert_eq(gr.status, 200);
    cr_assert_eq(tk_metric(gr.body, "evpipe_generator_events_generated_total"), EVENTS, "%s", gr.body);
    cr_assert_eq(tk_metric(gr.body, "evpipe_generator_events_archived_total"), EVENTS);
    cr_assert_eq(tk_metric(gr.body, "evpipe_generator_events_published_total"), EVENTS);
    cr_assert_eq(tk_metric(gr.body, "evpipe_generator_bus_connected"), 1);
    tk_http_free(&gr);

    /* The bus counts messages, not events: it handed every event to the
     * writer side in messages of at most PUBLISH_BATCH, fewer of them than
     * events in a burst, plus heartbeats. */
    evp_config_t defaults;
    evp_config_defaults(&defaults);
    double delivered = tk_scrape(s_rig.bus.port, "evpipe_bus_delivered_total");
    cr_assert_geq(delivered * defaults.publish_batch, EVENTS, "delivered %g", delivered);
    cr_assert_lt(delivered, EVENTS, "delivered %g: no message carried several events", delivered);
    cr_assert_geq(tk_scrape(s_rig.bus.port, "evpipe_bus_messages_in_total"), delivered);
    cr_assert_eq(tk_scrape(s_rig.bus.port, "evpipe_bus_writer_subscribers"), 1);

    tk_http_t ir = tk_http_get(s_rig.ingest.port, "/metrics");
    cr_assert_eq(ir.status, 200);
    cr_assert_eq(tk_metric(ir.body, "evpipe_ingest_repair_bound"), 1, "%s", ir.body);
    cr_assert_eq(tk_metric(ir.body, "evpipe_ingest_bus_connected"), 1);
    /* No holes: nothing was asked of the repair server. */
    cr_assert_eq(tk_metric(ir.body, "evpipe_ingest_repair_requests_total"), 0);
    tk_http_free(&ir);

    svc_t *all[] = {&s_rig.bus, &s_rig.writer, &s_rig.ingest, &s_rig.gen};
    for (int i = 0; i < 4; i++)
        s_expect_health(all[i], 200, 10000, "everything runs");
}

Test(operability, writer_healthz_turns_503_while_postgresql_is_down_and_200_when_it_is_back, .timeout = 300)
{
    s_rig.cluster = tk_cluster_new();
    s_rig.w = tk_world_new_on("ops_health", tk_cluster_port(s_rig.cluster));
    s_bus_and_writer();
    s_expect_health(&s_rig.writer, 200, 20000, "connected to PostgreSQL and the bus");

    /* No traffic at all: the writer must notice the dead connection by
     * itself. */
    tk_cluster_stop(s_rig.cluster);
    s_expect_health(&s_rig.writer, 503, 30000, "PostgreSQL is stopped");
    tk_http_t r = tk_http_get(s_rig.writer.port, "/healthz");
    cr_assert(strstr(r.body, "postgres"), "the reason names PostgreSQL: %s", r.body);
    tk_http_free(&r);
    cr_assert_eq(tk_scrape(s_rig.writer.port, "evpipe_writer_postgres_connected"), 0);

    tk_cluster_start(s_rig.cluster);
    tk_world_reconnect(s_rig.w);
    s_expect_health(&s_rig.writer, 200, 60000, "PostgreSQL is back");
    cr_assert_eq(tk_scrape(s_rig.writer.port, "evpipe_writer_postgres_connected"), 1);
}
