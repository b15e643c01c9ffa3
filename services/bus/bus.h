/* The bus: a broker between publishers (XSUB side), writers (XPUB side,
 * lossless: a slow writer pushes back) and debug taps (a separate XPUB that
 * drops instead of waiting, so a slow or stopped tap never slows writers). */
#ifndef EVPIPE_BUS_H
#define EVPIPE_BUS_H

#include <stdint.h>

#include "evpipe/config.h"

typedef struct bus_t bus_t;

typedef struct {
    uint64_t messages_in;   /* messages received from publishers */
    uint64_t delivered;     /* messages handed to the writer side */
    uint64_t tap_sent;      /* messages handed to the tap side */
    uint64_t tap_dropped;   /* messages taps did not get (their queue was full) */
    uint64_t malformed;     /* messages not of two frames, dropped */
    int64_t subscriptions;  /* current subscriptions on the writer side */
    int64_t tap_subscriptions; /* current subscriptions on the tap side */
} bus_stats_t;

/* Binds the three endpoints; NULL with why (naming the setting) on failure. */
bus_t *bus_new(const evp_config_t *cfg, char *why, size_t whylen);
/* Forwards until evp_stopping(); returns 0. */
int bus_run(bus_t *self);
void bus_stats(const bus_t *self, bus_stats_t *out);
void bus_destroy(bus_t **self_p);

#endif
