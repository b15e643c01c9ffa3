/* The generator's Prometheus metrics (docs/metrics.md, "generator"): events
 * made, archived and published, archive syncs, and the /healthz answer (the
 * archive writes, the bus is subscribed, the main loop turns). The
 * publisher's own metrics (bus_connected, publish_blocked_seconds) go into
 * the same registry through evp_publisher_metrics. */
#ifndef GEN_METRICS_H
#define GEN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/metrics.h"

typedef struct gen_metrics_t gen_metrics_t;

/* Registers every metric. NULL when out of memory. */
gen_metrics_t *gen_metrics_new(void);
/* Stops the HTTP server first. Accepts NULL. */
void gen_metrics_destroy(gen_metrics_t **self_p);
/* The registry, for evp_publisher_metrics. */
evp_metrics_t *gen_metrics_registry(gen_metrics_t *self);
/* Serves GET /metrics and /healthz on port (0: not started). bus_connected:
 * the publisher's gauge (NULL: the bus is not part of the answer). 0, or -1
 * with why naming METRICS_PORT. */
int gen_metrics_serve(gen_metrics_t *self, int port, evp_gauge_t *bus_connected, char *why, size_t whylen);

/* One batch: n events made; then archived; then published (those the bus
 * took). */
void gen_metrics_generated(gen_metrics_t *self, uint64_t n);
void gen_metrics_archived(gen_metrics_t *self, uint64_t n);
void gen_metrics_published(gen_metrics_t *self, uint64_t n);
/* Once per turn of the loop: the archive's sync count so far
 * (gen_archive_syncs), and the loop turns. */
void gen_metrics_tick(gen_metrics_t *self, uint64_t archive_syncs);
/* The archive cannot be written: /healthz answers 503 with why from now on. */
void gen_metrics_archive_failed(gen_metrics_t *self, const char *why);

/* What /healthz answers: true (200) or false (503), with detail. */
bool gen_metrics_healthy(gen_metrics_t *self, char *detail, size_t len);
/* The metrics in the Prometheus text format (tests). */
void gen_metrics_render(gen_metrics_t *self, ev_buf_t *out);

#endif
