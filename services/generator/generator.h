/* The generator service: makes fake shop events (gen_fake), appends each
 * batch to the archive (gen_archive) and then publishes it on the bus
 * (evp_publisher), in bursts like the old generator, at a steady
 * GENERATOR_RATE, or as fast as it can; optionally stops after N events. */
#ifndef GENERATOR_H
#define GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"

typedef struct generator_t generator_t;

/* Locks and reads back the archive, builds the fake data and connects to
 * the bus. count: stop after this many events (0: run until a signal).
 * NULL with why (one line) on failure. */
generator_t *generator_new(const evp_config_t *cfg, uint64_t count, char *why, size_t whylen);
/* Sends the final heartbeats, waits up to a few seconds for the last
 * messages to leave, syncs and releases the archive. */
void generator_destroy(generator_t **self_p);

/* Waits for the bus, then generates until --count events are done or
 * SIGTERM/SIGINT (finishing the current batch). Returns the exit code: 0,
 * or 1 when the archive failed. */
int generator_run(generator_t *self);

/* Parses the value of --count: a positive integer. 0, or -1 with why. */
int generator_parse_count(const char *text, uint64_t *count, char *why, size_t whylen);

#endif
