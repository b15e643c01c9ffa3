/* Ingest's Prometheus metrics (docs/metrics.md, "ingest"): rows read,
 * published and rejected (by reason), files ingested, repairs answered and
 * events sent in them, and the /healthz answer (the main loop turns, the bus
 * is subscribed, and in watch mode the repair endpoint is bound). The
 * publisher's own metrics (bus_connected, publish_blocked_seconds) go into
 * the same registry through evp_publisher_metrics.
 *
 * Every function accepts a NULL ingest_metrics_t and does nothing, so the
 * modules that count (ingest_file, ingest_repair) run in tests without one.
 * Updates are relaxed atomics, safe from the repair thread too. */
#ifndef INGEST_METRICS_H
#define INGEST_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/event.h"
#include "evpipe/metrics.h"

typedef struct ingest_metrics_t ingest_metrics_t;

/* Registers every metric. NULL when out of memory. */
ingest_metrics_t *ingest_metrics_new(void);
/* Stops the HTTP server first. Accepts NULL. */
void ingest_metrics_destroy(ingest_metrics_t **self_p);
/* The registry, for evp_publisher_metrics. */
evp_metrics_t *ingest_metrics_registry(ingest_metrics_t *self);
/* Serves GET /metrics and /healthz on port (0: not started). bus_connected:
 * the publisher's gauge (NULL: the bus is not part of the answer). watching:
 * the repair endpoint must be bound to be healthy. max_age_s: how long the
 * loop may go without a beat. 0, or -1 with why naming METRICS_PORT. */
int ingest_metrics_serve(ingest_metrics_t *self, int port, evp_gauge_t *bus_connected, bool watching,
                         double max_age_s, char *why, size_t whylen);

/* The main loop turns (or a file is being read). */
void ingest_metrics_beat(ingest_metrics_t *self);
/* Rows read and published since the last call (add per batch of rows). */
void ingest_metrics_rows(ingest_metrics_t *self, uint64_t read, uint64_t published);
/* One row rejected for reason. */
void ingest_metrics_reject(ingest_metrics_t *self, ev_reject_t reason);
/* One file read to the end and recorded in the ledger. */
void ingest_metrics_file_done(ingest_metrics_t *self);
/* Whether REPLAY_ENDPOINT is bound by this process's repair server. */
void ingest_metrics_repair_bound(ingest_metrics_t *self, bool bound);
/* Repair answers: one event sent; one request answered (its END sent). */
void ingest_metrics_repair_event(ingest_metrics_t *self);
void ingest_metrics_repair_answered(ingest_metrics_t *self);

/* What /healthz answers: true (200) or false (503), with detail. */
bool ingest_metrics_healthy(ingest_metrics_t *self, char *detail, size_t len);
/* The metrics in the Prometheus text format (tests). */
void ingest_metrics_render(ingest_metrics_t *self, ev_buf_t *out);

#endif
