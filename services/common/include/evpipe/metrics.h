/* Metrics: a small Prometheus registry (counters, gauges, histograms) and the
 * HTTP endpoint of every service (GET /metrics, GET /healthz on METRICS_PORT).
 *
 * Updates are lock-free (C11 atomics, relaxed order), cheap enough for the
 * hottest loop, and safe while the HTTP thread reads. Registration and
 * rendering take the registry's mutex; they are not for the hot path.
 *
 * Names: a metric "events_committed_total" of the service "writer" is
 * exported as "evpipe_writer_events_committed_total". Names match
 * [a-zA-Z_][a-zA-Z0-9_]*; counters end in "_total" (OpenMetrics rule).
 * docs/metrics.md lists every metric of every service.
 *
 * Typical use (see docs/metrics.md):
 *
 *   self->metrics = evp_metrics_new("writer");
 *   self->committed = evp_counter_new(self->metrics, "events_committed_total",
 *                                     "Events committed to the events table.");
 *   static const double rows[] = {1, 10, 100, 1000, 5000, 10000};
 *   self->batch_rows = evp_histogram_new(self->metrics, "batch_rows",
 *                                        "Rows per committed batch.", rows, 6);
 *   if (evp_metrics_serve(self->metrics, cfg->metrics_port, s_health, self, why, whylen) != 0)
 *       goto fail;                       // why names METRICS_PORT
 *   ...
 *   evp_metrics_beat(self->metrics);     // once per turn of the main loop
 *   evp_counter_add(self->committed, rows);
 *   evp_histogram_observe(self->batch_rows, (double)rows);
 *   ...
 *   evp_metrics_destroy(&self->metrics); // first in x_destroy: stops HTTP
 *
 * Programming errors at registration (a bad or duplicate name, buckets not
 * increasing, out of memory) abort with a message naming the metric: the
 * first test that starts the service finds them. Every update function
 * accepts a NULL handle and does nothing, and every registration function
 * given a NULL registry returns NULL, so a module can run without metrics. */
#ifndef EVPIPE_METRICS_H
#define EVPIPE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"

typedef struct evp_metrics_t evp_metrics_t;
typedef struct evp_counter_t evp_counter_t;
typedef struct evp_gauge_t evp_gauge_t;
typedef struct evp_histogram_t evp_histogram_t;

/* ---- Registry ---- */

/* A registry for one service ("bus", "writer", ...): the middle part of
 * every exported name. NULL only when out of memory. */
evp_metrics_t *evp_metrics_new(const char *service);
/* Stops the HTTP server first (waiting for a request in progress), then
 * frees every metric: handles are invalid afterwards. Accepts NULL. */
void evp_metrics_destroy(evp_metrics_t **self_p);

/* Appends every metric in the Prometheus text format 0.0.4, in the order
 * they were registered: # HELP, # TYPE, then the samples. */
void evp_metrics_render(evp_metrics_t *self, ev_buf_t *out);

/* ---- Counters: only go up ---- */

/* A counter without labels. */
evp_counter_t *evp_counter_new(evp_metrics_t *m, const char *name, const char *help);
/* A counter with one label and a fixed set of values, one series each:
 * evp_counter_new_labeled(m, "rejects_total", "...", "reason", names, EV_REJECT__COUNT)
 * exports rejects_total{reason="<names[i]>"} for every i, zeros included.
 * The strings are copied. */
evp_counter_t *evp_counter_new_labeled(evp_metrics_t *m, const char *name, const char *help, const char *label,
                                       const char *const *values, size_t nvalues);
/* Adds n (to the first series of a labeled counter). */
void evp_counter_add(evp_counter_t *c, uint64_t n);
static inline void evp_counter_inc(evp_counter_t *c)
{
    evp_counter_add(c, 1);
}
/* Adds n to the series of values[index]; an index out of range is a
 * programming error (assert; ignored when built without asserts). */
void evp_counter_add_at(evp_counter_t *c, size_t index, uint64_t n);
/* The index of a label value, or -1 (setup code, not the hot path). */
int evp_counter_index(const evp_counter_t *c, const char *value);
/* The sum over all series (the only one without labels); 0 for NULL. */
uint64_t evp_counter_value(const evp_counter_t *c);
/* One series; 0 for NULL or an index out of range. */
uint64_t evp_counter_value_at(const evp_counter_t *c, size_t index);

/* ---- Gauges: go up and down ---- */

/* An integer gauge (subscribers, partitions owned, 0/1 flags). */
evp_gauge_t *evp_gauge_new(evp_metrics_t *m, const char *name, const char *help);
/* A floating-point gauge (seconds, ratios). */
evp_gauge_t *evp_gauge_new_double(evp_metrics_t *m, const char *name, const char *help);
/* Both kinds accept both setters; a double gauge stores integers as
 * doubles, an integer gauge rounds doubles to the nearest integer. */
void evp_gauge_set(evp_gauge_t *g, int64_t v);
void evp_gauge_add(evp_gauge_t *g, int64_t delta);
void evp_gauge_set_double(evp_gauge_t *g, double v);
void evp_gauge_add_double(evp_gauge_t *g, double delta);
int64_t evp_gauge_value(const evp_gauge_t *g);
double evp_gauge_value_double(const evp_gauge_t *g);

/* ---- Histograms: a distribution in fixed buckets ---- */

/* bounds: the upper bounds ("le") of the buckets, strictly increasing and
 * finite; a +Inf bucket is added. They are copied. A value v is counted in
 * the first bucket with v <= bound (Prometheus semantics). */
evp_histogram_t *evp_histogram_new(evp_metrics_t *m, const char *name, const char *help, const double *bounds,
                                   size_t nbounds);
/* Counts one value and adds it to the sum; NaN is ignored. */
void evp_histogram_observe(evp_histogram_t *h, double v);
uint64_t evp_histogram_count(const evp_histogram_t *h);
double evp_histogram_sum(const evp_histogram_t *h);
/* An estimate of the q-quantile (0 <= q <= 1: 0.5, 0.99, 0.999) as
 * Prometheus's histogram_quantile computes it: find the bucket holding rank
 * q * count and interpolate linearly between its bounds (the first bucket
 * starts at 0, or at its bound when that is negative). When the rank falls
 * in the +Inf bucket the largest finite bound is returned. 0 when nothing
 * was observed (handy for logs). */
double evp_histogram_quantile(const evp_histogram_t *h, double q);

/* Fills out[0..n) with start, start*factor, start*factor^2, ... (start > 0,
 * factor > 1): a quick way to make bucket bounds. */
void evp_buckets_exponential(double *out, size_t n, double start, double factor);

/* ---- Liveness of the main loop ---- */

/* Records that the main loop turned now (one clock read, one atomic store). */
void evp_metrics_beat(evp_metrics_t *self);
/* True when the loop turned within max_age_s; otherwise false with why in
 * detail ("main loop has not turned for 7.3 s" or "... has not started").
 * For health callbacks. */
bool evp_metrics_loop_ok(evp_metrics_t *self, double max_age_s, char *detail, size_t len);

/* ---- HTTP endpoint ---- */

/* Whether the service really works. Runs on the HTTP thread: read only
 * atomics there (gauges, counters, evp_metrics_loop_ok). Write a short
 * reason into detail (len bytes, starts empty), e.g. "postgres: connection
 * lost", or a short status when healthy. */
typedef bool (*evp_health_fn)(void *arg, char *detail, size_t len);

/* Starts an HTTP server (evpipe/http.h) on port (METRICS_PORT):
 *   GET /metrics  200, text/plain; version=0.0.4, evp_metrics_render
 *   GET /healthz  fn(arg) true: 200 "ok\n" + detail; false: 503 + detail
 *                 (fn NULL: always 200)
 *   other paths 404; methods other than GET and HEAD 405.
 * The server listens on the address evp_http_set_bind gave (METRICS_BIND,
 * 127.0.0.1 unless set: inside a container a scraper or probe comes from
 * outside, so compose sets 0.0.0.0). port 0: not started, returns 0. Returns -1 with
 * why naming METRICS_PORT (e.g. the port is already in use). Stopped by
 * evp_metrics_destroy. */
int evp_metrics_serve(evp_metrics_t *self, int port, evp_health_fn fn, void *arg, char *why, size_t whylen);

#endif
