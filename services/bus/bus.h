/* The bus: a broker between publishers (XSUB side), writers (XPUB side,
 * lossless: a slow writer holds back its own partitions, and one that stops
 * reading for BUS_STALL_TIMEOUT_MS is disconnected) and debug taps (a separate XPUB that
 * drops instead of waiting, so a slow or stopped tap never slows writers).
 * With METRICS_PORT it serves /metrics (evpipe_bus_*) and /healthz. */
#ifndef EVPIPE_BUS_H
#define EVPIPE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "evpipe/metrics.h"

typedef struct bus_t bus_t;

typedef struct {
    uint64_t messages_in;   /* messages received from publishers */
    uint64_t delivered;     /* messages handed to the writer side */
    uint64_t tap_sent;      /* messages handed to the tap side */
    uint64_t tap_dropped;   /* messages taps did not get (their queue was full) */
    uint64_t malformed;     /* messages not of two frames, dropped */
    int64_t subscriptions;  /* current subscriptions on the writer side */
    int64_t tap_subscriptions; /* current subscribers on the tap side that take !welcome */
    int64_t tap_topics;     /* current subscriptions on the tap side, of any subscriber */
    uint64_t curve_refused;  /* clients refused by CURVE authentication */
    uint64_t source_refused; /* messages dropped: a source the sender's key may not publish */
    uint64_t stalled_disconnects; /* writer-side subscribers disconnected for not reading */
    uint64_t held_messages;  /* messages held for writer-side subscribers that push back */
} bus_stats_t;

/* Binds the three endpoints and, when METRICS_PORT is not 0, starts the
 * metrics server; NULL with why (naming the setting) on failure. */
bus_t *bus_new(const evp_config_t *cfg, char *why, size_t whylen);
/* Forwards until evp_stopping(); returns 0. */
int bus_run(bus_t *self);
/* The counters, read from the metrics (safe from any thread). */
void bus_stats(const bus_t *self, bus_stats_t *out);
/* What /healthz answers: true while bus_run loops and has turned within the
 * last 5 s; detail says why not, or the subscriber counts. */
bool bus_healthy(bus_t *self, char *detail, size_t len);
/* The bus's registry (rendering in tests). */
evp_metrics_t *bus_metrics(bus_t *self);
void bus_destroy(bus_t **self_p);

#endif
