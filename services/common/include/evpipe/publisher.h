/* The publishing side of the bus, shared by the generator and ingest: an
 * XPUB socket connected to BUS_PUBLISH_ENDPOINT that waits until the bus has
 * subscribed, gathers each partition's events into one body and sends it as
 * [topic, msgpack events] with ZMQ_XPUB_NODROP (so a slow bus pushes back
 * instead of losing), tracks the latest seq per (source, partition) and
 * sends the heartbeats that let writers see lost tails.
 *
 * A partition's body goes out when it holds PUBLISH_BATCH events or the next
 * event would take it past MAX_MESSAGE_BYTES (in evp_publisher_send), before
 * any heartbeat, when its first event has waited 1 ms (in
 * evp_publisher_tick), on evp_publisher_flush and in evp_publisher_destroy.
 * Callers flush before they wait or sleep, so batching adds no wait of its
 * own. */
#ifndef EVPIPE_PUBLISHER_H
#define EVPIPE_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "evpipe/event.h"
#include "evpipe/metrics.h"

typedef struct evp_publisher_t evp_publisher_t;

/* Creates the socket and connects; NULL with why on failure. */
evp_publisher_t *evp_publisher_new(const evp_config_t *cfg, char *why, size_t whylen);
/* Registers the publisher's metrics in the service's registry m (call once,
 * after evp_publisher_new; m NULL: nothing):
 *   bus_connected            gauge, 1 while the bus is subscribed, else 0
 *   publish_blocked_seconds  histogram, one value per send that waited for
 *                            a bus pushing back (at least one 100 ms step),
 *                            in seconds
 * and beats m's loop while a send waits for the bus or evp_publisher_wait_bus
 * waits (both check evp_stopping at least every 100 ms: a slow or absent bus
 * is not a stalled service). Returns the bus_connected gauge, which a health
 * callback may read from the HTTP thread; NULL when m is NULL. */
evp_gauge_t *evp_publisher_metrics(evp_publisher_t *self, evp_metrics_t *m);
/* Sends the pending bodies and a last round of heartbeats, then closes,
 * waiting up to linger_ms for queued messages to leave. */
void evp_publisher_destroy(evp_publisher_t **self_p, int linger_ms);

/* Waits until the bus has subscribed (the connection is live). Returns 0, or
 * -1 at the deadline or when the service is stopping. timeout_ms < 0: no limit. */
int evp_publisher_wait_bus(evp_publisher_t *self, int timeout_ms);
/* True once the bus has subscribed (and not since unsubscribed). */
bool evp_publisher_connected(const evp_publisher_t *self);

/* Stamps published_at and adds the event to its partition's body, sending
 * the body when it is full (see above). A send blocks while the bus pushes
 * back, checking evp_stopping(). Returns 0 when the event was taken (sent, or
 * pending until a later send, tick or flush), or -1 when a send this call
 * made failed (stopping): this event and the others of that body were not
 * sent. Also sends what evp_publisher_tick would, every 256 events. */
int evp_publisher_send(evp_publisher_t *self, const ev_event_t *ev);
/* Sends every pending body now; 0, or -1 when one could not be sent
 * (stopping: the rest are then given up unsent). Nothing is pending after. */
int evp_publisher_flush(evp_publisher_t *self);

/* Sends the bodies whose first event has waited 1 ms, heartbeats when due,
 * and notices the bus (un)subscribing; call at least every HEARTBEAT_MS
 * when idle, and often while events come. */
void evp_publisher_tick(evp_publisher_t *self);
/* Sends the pending bodies, then the heartbeats of every known (source,
 * partition) now. */
void evp_publisher_heartbeat_now(evp_publisher_t *self);
/* Stops heartbeating a source (an ingested file whose events are committed). */
void evp_publisher_forget_source(evp_publisher_t *self, ev_str_t source);

/* Sets the latest seq of (source, partition) without sending an event (it
 * only moves forward), so heartbeats announce what an earlier run of the
 * same source published: a restarted generator's tail gets repaired. */
void evp_publisher_set_latest(evp_publisher_t *self, ev_str_t source, int32_t partition, int64_t seq);

/* From now on the heartbeats say archived: true: they announce what an
 * archive holds (the repair service), not what this process published. */
void evp_publisher_announce_archive(evp_publisher_t *self);

/* The latest seq of (source, partition) that heartbeats announce: of events
 * handed to ZeroMQ, or whose hand-over failed while stopping (archived:
 * writers repair them), or set by evp_publisher_set_latest; never of a
 * pending event. 0 when none. */
int64_t evp_publisher_latest(const evp_publisher_t *self, ev_str_t source, int32_t partition);
/* Events handed to ZeroMQ since the start (not messages). */
uint64_t evp_publisher_sent(const evp_publisher_t *self);
/* Events taken whose message could not be handed over (stopping, or a
 * socket error); their heads moved, so writers repair them. */
uint64_t evp_publisher_unsent(const evp_publisher_t *self);
/* Events taken and not yet sent. */
size_t evp_publisher_pending(const evp_publisher_t *self);

#endif
