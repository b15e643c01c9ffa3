/* Unit tests of the generator's metrics: the counters as exported, archive
 * syncs pushed as they grow, and what /healthz answers in each state (the
 * loop not started, the bus away, the archive failed, healthy). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/buf.h"
#include "gen_metrics.h"
#include "testkit.h"

static char *s_render(gen_metrics_t *m)
{
    ev_buf_t b;
    ev_buf_init(&b);
    gen_metrics_render(m, &b);
    return b.data;
}

Test(gen_metrics, counts_events_made_archived_published_and_syncs)
{
    gen_metrics_t *m = gen_metrics_new();
    gen_metrics_generated(m, 1024);
    gen_metrics_archived(m, 1024);
    gen_metrics_published(m, 1000);
    gen_metrics_tick(m, 3);
    gen_metrics_tick(m, 3);
    gen_metrics_tick(m, 5);
    char *text = s_render(m);
    cr_assert_eq(tk_metric(text, "evpipe_generator_events_generated_total"), 1024);
    cr_assert_eq(tk_metric(text, "evpipe_generator_events_archived_total"), 1024);
    cr_assert_eq(tk_metric(text, "evpipe_generator_events_published_total"), 1000);
    cr_assert_eq(tk_metric(text, "evpipe_generator_archive_syncs_total"), 5);
    free(text);
    gen_metrics_destroy(&m);
    cr_assert_null(m);
}

Test(gen_metrics, every_update_accepts_no_registry)
{
    gen_metrics_generated(NULL, 1);
    gen_metrics_archived(NULL, 1);
    gen_metrics_published(NULL, 1);
    gen_metrics_tick(NULL, 1);
    gen_metrics_archive_failed(NULL, "x");
    cr_assert_null(gen_metrics_registry(NULL));
    gen_metrics_destroy(NULL);
}

Test(gen_metrics, healthz_needs_the_loop_the_bus_and_a_writable_archive)
{
    gen_metrics_t *m = gen_metrics_new();
    evp_gauge_t *bus = evp_gauge_new(gen_metrics_registry(m), "bus_connected", "Stands in for the publisher's.");
    char why[256] = "", detail[512];
    cr_assert_eq(gen_metrics_serve(m, 0, bus, why, sizeof why), 0, "%s", why);

    evp_gauge_set(bus, 0);
    cr_assert_not(gen_metrics_healthy(m, detail, sizeof detail));
    cr_assert_str_eq(detail, "bus: not connected (events are archived and will be repaired)");
    evp_gauge_set(bus, 1);
    cr_assert_not(gen_metrics_healthy(m, detail, sizeof detail));
    cr_assert_str_eq(detail, "main loop has not started");
    gen_metrics_published(m, 7);
    gen_metrics_tick(m, 0);
    cr_assert(gen_metrics_healthy(m, detail, sizeof detail), "%s", detail);
    cr_assert_str_eq(detail, "published=7");

    gen_metrics_archive_failed(m, "ARCHIVE_DIR: /x/events.csv: No space left on device");
    gen_metrics_archive_failed(m, "a later error does not replace the first");
    cr_assert_not(gen_metrics_healthy(m, detail, sizeof detail));
    cr_assert_str_eq(detail, "archive: ARCHIVE_DIR: /x/events.csv: No space left on device");
    gen_metrics_destroy(&m);
}
