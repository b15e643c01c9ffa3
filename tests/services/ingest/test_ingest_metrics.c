/* Unit tests of ingest's metrics: the counters as exported (rejects by
 * reason, zeros included), and what /healthz answers in each state: the
 * loop not started, the bus away, the repair endpoint not bound in watch
 * mode, healthy. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "evpipe/buf.h"
#include "evpipe/metrics.h"
#include "ingest_metrics.h"
#include "testkit.h"

static char *s_render(ingest_metrics_t *m)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ingest_metrics_render(m, &b);
    return b.data;
}

Test(ingest_metrics, counts_rows_files_rejects_by_reason_and_repairs)
{
    ingest_metrics_t *m = ingest_metrics_new();
    ingest_metrics_rows(m, 1024, 1000);
    ingest_metrics_rows(m, 6, 4);
    ingest_metrics_reject(m, EV_REJECT_PRICE);
    ingest_metrics_reject(m, EV_REJECT_PRICE);
    ingest_metrics_reject(m, EV_REJECT_TIME);
    ingest_metrics_reject(m, EV_OK); /* not a reason: ignored */
    ingest_metrics_file_done(m);
    ingest_metrics_repair_event(m);
    ingest_metrics_repair_event(m);
    ingest_metrics_repair_answered(m);
    char *text = s_render(m);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_rows_read_total"), 1030);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_rows_published_total"), 1004);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_rows_rejected_total{reason=\"bad_price\"}"), 2);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_rows_rejected_total{reason=\"bad_time\"}"), 1);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_rows_rejected_total{reason=\"bad_encoding\"}"), 0);
    cr_assert(isnan(tk_metric(text, "evpipe_ingest_rows_rejected_total{reason=\"ok\"}")), "no series for EV_OK");
    cr_assert_eq(tk_metric(text, "evpipe_ingest_files_ingested_total"), 1);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_repair_requests_total"), 1);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_repair_events_sent_total"), 2);
    cr_assert_eq(tk_metric(text, "evpipe_ingest_repair_bound"), 0);
    free(text);
    ingest_metrics_destroy(&m);
    cr_assert_null(m);
}

Test(ingest_metrics, every_update_accepts_no_registry)
{
    ingest_metrics_rows(NULL, 1, 1);
    ingest_metrics_reject(NULL, EV_REJECT_PRICE);
    ingest_metrics_file_done(NULL);
    ingest_metrics_repair_event(NULL);
    ingest_metrics_repair_answered(NULL);
    ingest_metrics_repair_bound(NULL, true);
    ingest_metrics_beat(NULL);
    cr_assert_null(ingest_metrics_registry(NULL));
    ingest_metrics_destroy(NULL);
}

Test(ingest_metrics, healthz_needs_the_loop_the_bus_and_in_watch_mode_the_repair_endpoint)
{
    ingest_metrics_t *m = ingest_metrics_new();
    evp_metrics_t *reg = ingest_metrics_registry(m);
    evp_gauge_t *bus = evp_gauge_new(reg, "bus_connected", "Stands in for the publisher's gauge.");
    char why[256] = "";
    cr_assert_eq(ingest_metrics_serve(m, 0, bus, true, 5.0, why, sizeof why), 0, "%s", why);
    char detail[256];

    ingest_metrics_repair_bound(m, false);
    evp_gauge_set(bus, 1);
    cr_assert_not(ingest_metrics_healthy(m, detail, sizeof detail));
    cr_assert(strstr(detail, "repair: REPLAY_ENDPOINT is not bound"), "%s", detail);

    ingest_metrics_repair_bound(m, true);
    evp_gauge_set(bus, 0);
    cr_assert_not(ingest_metrics_healthy(m, detail, sizeof detail));
    cr_assert_str_eq(detail, "bus: not connected");

    evp_gauge_set(bus, 1);
    cr_assert_not(ingest_metrics_healthy(m, detail, sizeof detail));
    cr_assert_str_eq(detail, "main loop has not started");

    ingest_metrics_beat(m);
    ingest_metrics_rows(m, 7, 7);
    cr_assert(ingest_metrics_healthy(m, detail, sizeof detail), "%s", detail);
    cr_assert_str_eq(detail, "files=0 rows=7 repair=bound");
    ingest_metrics_destroy(&m);
}

Test(ingest_metrics, one_shot_mode_is_healthy_without_a_repair_endpoint)
{
    ingest_metrics_t *m = ingest_metrics_new();
    char why[256] = "";
    cr_assert_eq(ingest_metrics_serve(m, 0, NULL, false, 5.0, why, sizeof why), 0, "%s", why);
    ingest_metrics_beat(m);
    char detail[256];
    cr_assert(ingest_metrics_healthy(m, detail, sizeof detail), "%s", detail);
    cr_assert_str_eq(detail, "files=0 rows=0 repair=none");
    ingest_metrics_destroy(&m);
}

Test(ingest_metrics, serves_over_http_and_names_the_setting_when_the_port_is_taken)
{
    ingest_metrics_t *m = ingest_metrics_new();
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(ingest_metrics_serve(m, port, NULL, false, 5.0, why, sizeof why), 0, "%s", why);
    ingest_metrics_beat(m);
    ingest_metrics_rows(m, 3, 2);
    cr_assert_eq(tk_scrape(port, "evpipe_ingest_rows_read_total"), 3);
    tk_http_t r = tk_http_get(port, "/healthz");
    cr_assert_eq(r.status, 200, "%s", r.body);
    tk_http_free(&r);

    ingest_metrics_t *other = ingest_metrics_new();
    cr_assert_eq(ingest_metrics_serve(other, port, NULL, false, 5.0, why, sizeof why), -1);
    cr_assert(strstr(why, "METRICS_PORT"), "%s", why);
    ingest_metrics_destroy(&other);
    ingest_metrics_destroy(&m);
}
