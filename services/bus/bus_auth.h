/* The bus's source check (CURVE=1 only): a publisher's key names the sources
 * it may publish (its Sources property, from the ZAP handler); every event
 * map and heartbeat of a message must carry a source those patterns admit,
 * or the whole message is dropped, counted (evpipe_bus_source_refused_total)
 * and logged (rate-limited, the peer's text escaped). */
#ifndef EVPIPE_BUS_AUTH_H
#define EVPIPE_BUS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "evpipe/metrics.h"

typedef struct bus_auth_t bus_auth_t;

/* Registers its counter in m. NULL when out of memory. */
bus_auth_t *bus_auth_new(evp_metrics_t *m);
void bus_auth_destroy(bus_auth_t **self_p);

/* True when every map of body carries a source its sender may publish.
 * False (counted and logged) when one does not, when a map has no source,
 * or when the body cannot be read to its end. */
bool bus_auth_allows(bus_auth_t *self, zmq_msg_t *topic, zmq_msg_t *body);

/* Messages refused so far. */
uint64_t bus_auth_refused(const bus_auth_t *self);

/* The scan bus_auth_allows does, on bytes (tests, fuzzing): calls fn with
 * each map's source (str values of the top-level "source" keys); returns
 * the number of maps, or -1 when a map has no string source, the body holds
 * something other than maps, or a value runs past the end. fn returning
 * false stops the scan with -1. */
int bus_auth_scan(const uint8_t *body, size_t len, bool (*fn)(void *arg, const char *source, size_t len),
                  void *arg);

#endif
