/* The writer's Prometheus metrics (docs/metrics.md, "writer"): the counters
 * of writer_stats_t pushed to the registry, batch and latency histograms,
 * and the /healthz answer (PostgreSQL connected, main loop turning). */
#ifndef WRITER_METRICS_H
#define WRITER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "evpipe/buf.h"
#include "writer_stats.h"

typedef struct writer_metrics_t writer_metrics_t;

/* Registers every metric. NULL when out of memory. */
writer_metrics_t *writer_metrics_new(void);
/* Stops the HTTP server first. Accepts NULL. */
void writer_metrics_destroy(writer_metrics_t **self_p);
/* Serves GET /metrics and /healthz on port (0: not started). 0, or -1 with
 * why naming METRICS_PORT. */
int writer_metrics_serve(writer_metrics_t *self, int port, char *why, size_t whylen);

/* Once per turn of the loop: adds what the counters gained since the last
 * call, sets the gauges, notes that the loop turns. */
void writer_metrics_sync(writer_metrics_t *self, const writer_stats_t *st, size_t partitions_owned,
                         bool postgres_connected);
/* The deployment's partitions (PARTITIONS), exported as a gauge. */
void writer_metrics_set_partitions(writer_metrics_t *self, int partitions);
/* One committed batch: its rows and how long the commit took. */
void writer_metrics_batch(writer_metrics_t *self, size_t rows, double seconds);
/* One committed row: published_at to commit, in seconds. */
void writer_metrics_latency(writer_metrics_t *self, double seconds);
/* The metrics in the Prometheus text format (tests). */
void writer_metrics_render(writer_metrics_t *self, ev_buf_t *out);

#endif
