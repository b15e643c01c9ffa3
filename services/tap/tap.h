/* The debug tap: subscribes to the bus's lossy tap endpoint and prints what
 * passes as one JSON object per line (for jq): each event of a message on a
 * line of its own, filtered by partition and event type, or with --stats a
 * live view of rates and lag once a second. --count and the filters count
 * events, not messages. */
#ifndef EVPIPE_TAP_H
#define EVPIPE_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "evpipe/config.h"

typedef struct {
    const char *partitions;  /* "3" or "0,5,7": only these; NULL: all */
    const char *event_type;  /* only this type; NULL: all */
    int64_t count;           /* stop after this many events printed; 0: never */
    bool heartbeats;         /* print heartbeats too */
    bool stats;              /* a line of rates a second instead of events */
    int64_t run_ms;          /* stop after this long; 0: never */
} tap_options_t;

typedef struct tap_t tap_t;

/* NULL with why (naming the option or setting) on a bad filter or socket. */
tap_t *tap_new(const evp_config_t *cfg, const tap_options_t *opt, FILE *out, char *why, size_t whylen);
/* Prints until --count is reached, the run time ends, stdout closes or a
 * signal; returns 0, or 1 when output failed for another reason. */
int tap_run(tap_t *self);
/* Events printed (or counted, with --stats). */
uint64_t tap_printed(const tap_t *self);
void tap_destroy(tap_t **self_p);

#endif
