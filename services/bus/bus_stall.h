/* Watching the writer side's connections for subscribers that stopped
 * reading. libzmq does not say which subscriber a full pipe belongs to, so
 * this looks at each connection's socket (learnt from the socket monitor):
 * a connection that has bytes waiting in the kernel and whose peer has
 * acknowledged none of them (TCP; for IPC: the bytes waiting did not
 * change) for BUS_STALL_TIMEOUT_MS is shut down, which makes libzmq drop the
 * subscriber and its pipe. A peer that reads, however slowly, always
 * acknowledges something; one with nothing waiting is never stalled. */
#ifndef BUS_STALL_H
#define BUS_STALL_H

#include <stddef.h>
#include <stdint.h>

typedef struct bus_stall_t bus_stall_t;

/* Monitors sock (an XPUB in ctx) under the inproc name monitor_ep.
 * NULL with why when the monitor cannot be made. */
bus_stall_t *bus_stall_new(void *ctx, void *sock, const char *monitor_ep, int timeout_ms, char *why, size_t whylen);
void bus_stall_destroy(bus_stall_t **self_p);
/* The monitor's socket (PAIR), to poll for ZMQ_POLLIN. */
void *bus_stall_socket(bus_stall_t *self);
/* Reads the monitor's events (connections accepted and gone). */
void bus_stall_events(bus_stall_t *self);
/* Looks at every connection; shuts down those stalled for the timeout
 * (each logged). How many were shut down. */
size_t bus_stall_check(bus_stall_t *self, int64_t now_ms);
/* Connections watched. */
size_t bus_stall_connections(const bus_stall_t *self);

#endif
