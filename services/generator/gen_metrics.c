/* The generator's Prometheus metrics (see gen_metrics.h). */
#include "gen_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "evpipe/config.h"

/* The loop turns at least every 100 ms; 5 s without a turn is a fault. */
#define S_LOOP_MAX_AGE_S 5.0

struct gen_metrics_t {
    evp_metrics_t *registry;  /* "generator", owned */
    evp_counter_t *generated; /* events_generated_total */
    evp_counter_t *archived;  /* events_archived_total */
    evp_counter_t *published; /* events_published_total */
    evp_counter_t *syncs;     /* archive_syncs_total */
    evp_gauge_t *bus;         /* the publisher's bus_connected (not owned), or NULL */
    uint64_t syncs_pushed;    /* archive syncs as last pushed */
    atomic_bool failed;       /* the archive failed; failure is set before it */
    char failure[EVP_WHY_MAX]; /* why, written once before failed turns true */
};

gen_metrics_t *gen_metrics_new(void)
{
    gen_metrics_t *self = calloc(1, sizeof *self);
    if (!self || !(self->registry = evp_metrics_new("generator"))) {
        free(self);
        return NULL;
    }
    atomic_init(&self->failed, false);
    evp_metrics_t *m = self->registry;
    self->generated = evp_counter_new(m, "events_generated_total", "Events made.");
    self->archived = evp_counter_new(m, "events_archived_total",
                                     "Events appended to the CSV archive (the write-ahead log).");
    self->published = evp_counter_new(m, "events_published_total",
                                      "Events published on the bus, each after it was archived.");
    self->syncs = evp_counter_new(m, "archive_syncs_total", "fdatasyncs of the archive (ARCHIVE_SYNC_MS).");
    return self;
}

void gen_metrics_destroy(gen_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evp_metrics_destroy(&(*self_p)->registry);
    free(*self_p);
    *self_p = NULL;
}

evp_metrics_t *gen_metrics_registry(gen_metrics_t *self)
{
    return self ? self->registry : NULL;
}

bool gen_metrics_healthy(gen_metrics_t *self, char *detail, size_t len)
{
    if (atomic_load_explicit(&self->failed, memory_order_acquire)) {
        snprintf(detail, len, "archive: %s", self->failure);
        return false;
    }
    if (self->bus && evp_gauge_value(self->bus) == 0) {
        snprintf(detail, len, "bus: not connected (events are archived and will be repaired)");
        return false;
    }
    if (!evp_metrics_loop_ok(self->registry, S_LOOP_MAX_AGE_S, detail, len))
        return false;
    snprintf(detail, len, "published=%llu", (unsigned long long)evp_counter_value(self->published));
    return true;
}

/* Runs on the HTTP thread: reads atomics only (and failure, published by
 * the release store of failed). */
static bool s_health(void *arg, char *detail, size_t len)
{
    return gen_metrics_healthy(arg, detail, len);
}

int gen_metrics_serve(gen_metrics_t *self, int port, evp_gauge_t *bus_connected, char *why, size_t whylen)
{
    self->bus = bus_connected;
    return evp_metrics_serve(self->registry, port, s_health, self, why, whylen);
}

void gen_metrics_generated(gen_metrics_t *self, uint64_t n)
{
    if (self)
        evp_counter_add(self->generated, n);
}

void gen_metrics_archived(gen_metrics_t *self, uint64_t n)
{
    if (self)
        evp_counter_add(self->archived, n);
}

void gen_metrics_published(gen_metrics_t *self, uint64_t n)
{
    if (self)
        evp_counter_add(self->published, n);
}

void gen_metrics_tick(gen_metrics_t *self, uint64_t archive_syncs)
{
    if (!self)
        return;
    if (archive_syncs > self->syncs_pushed) {
        evp_counter_add(self->syncs, archive_syncs - self->syncs_pushed);
        self->syncs_pushed = archive_syncs;
    }
    evp_metrics_beat(self->registry);
}

void gen_metrics_archive_failed(gen_metrics_t *self, const char *why)
{
    if (!self || atomic_load(&self->failed))
        return;
    snprintf(self->failure, sizeof self->failure, "%s", why);
    atomic_store_explicit(&self->failed, true, memory_order_release);
}

void gen_metrics_render(gen_metrics_t *self, ev_buf_t *out)
{
    evp_metrics_render(self->registry, out);
}
