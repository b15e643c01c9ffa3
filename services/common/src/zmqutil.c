/* ZeroMQ socket helpers (see zmqutil.h). */
#include "evpipe/zmqutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int evp_zmq_tune(void *sock, const evp_config_t *cfg, int hwm, int linger_ms)
{
    int64_t max = cfg->max_message_bytes;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms) != 0)
        return -1;
    /* Dead peers are found by TCP keepalive, not by ZMTP heartbeats. A peer
     * that pushes back stops reading its socket, so it would answer no ZMTP
     * PING, and a heartbeat timeout (or TTL) would close a live connection
     * and drop what is queued on it (seen as lost tails under load). Its
     * kernel still answers keepalive probes (and zero-window probes), so
     * keepalive closes only connections whose peer host is gone or cut off.
     * Probes go after TCP_KEEPALIVE_S of silence, then every third of it;
     * the third unanswered one ends the connection. Keepalive probes go
     * only while nothing waits for an acknowledgement: a peer that vanished
     * with data on its way is the writer side's stall detector's (the bus),
     * not TCP_USER_TIMEOUT's, which was seen to end connections to peers
     * that merely advertise a zero window. */
    int on = 1, idle = cfg->tcp_keepalive_s, intvl = (cfg->tcp_keepalive_s + 2) / 3, cnt = 3;
    if (zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE, &on, sizeof on) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_INTVL, &intvl, sizeof intvl) != 0 ||
        zmq_setsockopt(sock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt) != 0)
        return -1;
    return 0;
}

int evp_zmq_bind(void *sock, const char *endpoint, const char *setting, char *why, size_t whylen)
{
    if (zmq_bind(sock, endpoint) == 0)
        return 0;
    snprintf(why, whylen, "%s=%s: cannot bind: %s", setting, endpoint, zmq_strerror(errno));
    return -1;
}

int evp_zmq_connect(void *sock, const char *endpoint, const char *setting, char *why, size_t whylen)
{
    if (zmq_connect(sock, endpoint) == 0)
        return 0;
    snprintf(why, whylen, "%s=%s: cannot connect: %s", setting, endpoint, zmq_strerror(errno));
    return -1;
}

int evp_zmq_send_parts(void *sock, int flags, int nparts, const void *const *data, const size_t *len)
{
    for (int i = 0; i < nparts; i++) {
        int f = flags | (i + 1 < nparts ? ZMQ_SNDMORE : 0);
        int rc;
        do {
            rc = zmq_send(sock, data[i], len[i], f);
        } while (rc < 0 && errno == EINTR && i > 0);
        if (rc < 0)
            return -1;
    }
    return 0;
}
