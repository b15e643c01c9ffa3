/* ZeroMQ socket helpers shared by the services; no service logic here. */
#ifndef EVPIPE_ZMQUTIL_H
#define EVPIPE_ZMQUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "evpipe/config.h"

/* Sets the limits every evpipe socket carries: ZMQ_MAXMSGSIZE from the
 * settings, send and receive high-water marks, linger (ms), and TCP
 * keepalive after TCP_KEEPALIVE_S (a peer host gone is noticed). Returns 0
 * or -1. */
int evp_zmq_tune(void *sock, const evp_config_t *cfg, int hwm, int linger_ms);

/* zmq_bind or zmq_connect with a message naming the setting on failure. */
int evp_zmq_bind(void *sock, const char *endpoint, const char *setting, char *why, size_t whylen);
int evp_zmq_connect(void *sock, const char *endpoint, const char *setting, char *why, size_t whylen);

/* Sends the frames as one multipart message; flags (ZMQ_DONTWAIT) apply to
 * each. Returns 0, or -1 with errno (EAGAIN when it would block). */
int evp_zmq_send_parts(void *sock, int flags, int nparts, const void *const *data, const size_t *len);

#endif
