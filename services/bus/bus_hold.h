/* Messages the bus holds for subscribers that push back, one queue per
 * partition (the topic up to its first '/'), so that a subscriber that does
 * not read holds back only the partitions it subscribed to. Every send to
 * the writer side is non-blocking: a message whose subscribers have room
 * goes at once; one that cannot go waits at the end of its partition's
 * queue, and so does every later message of that partition (order within a
 * partition is kept). The queues are tried again every turn of the loop. */
#ifndef BUS_HOLD_H
#define BUS_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct bus_hold_t bus_hold_t;

/* sock: the writer side (XPUB, NODROP). max_bytes: bytes held at most before
 * bus_hold_full says so. NULL when out of memory. */
bus_hold_t *bus_hold_new(void *sock, size_t max_bytes);
/* Drops what is still held (the archive has it; writers repair). */
void bus_hold_destroy(bus_hold_t **self_p);

/* Sends [topic, body] now, or holds it behind its partition's earlier
 * messages. Takes the frames (they are closed or kept). true when it went
 * at once. */
bool bus_hold_deliver(bus_hold_t *self, zmq_msg_t frames[2]);
/* Sends what can go now, at most max messages; how many went. */
size_t bus_hold_flush(bus_hold_t *self, size_t max);
/* Whether it holds its maximum (bytes, or partitions): the caller stops
 * taking messages from publishers until it does not. */
bool bus_hold_full(const bus_hold_t *self);
/* Messages and bytes held, and partitions holding any. */
size_t bus_hold_messages(const bus_hold_t *self);
size_t bus_hold_bytes(const bus_hold_t *self);
size_t bus_hold_partitions(const bus_hold_t *self);

#endif
