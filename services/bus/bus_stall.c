/* Finding and disconnecting subscribers that stopped reading (see bus_stall.h). */
#include "bus_stall.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#include "evpipe/log.h"

/* One connection of the watched socket. */
typedef struct {
    int fd;                        /* its socket (libzmq's: only looked at, and shut down) */
    bool tcp;                      /* TCP (acknowledged bytes tell progress) or IPC */
    struct sockaddr_storage peer;  /* its peer, to tell that fd is still this connection */
    socklen_t peer_len;            /* bytes of peer */
    char name[64];                 /* the peer for the log */
    uint64_t acked;                /* TCP: bytes the peer had acknowledged at the last look */
    int waiting;                   /* bytes waiting in the kernel at the last look */
    int64_t progress_ms;           /* when it last read, or had nothing waiting */
    bool cut;                      /* shut down; gone at its DISCONNECTED event */
} s_conn_t;

struct bus_stall_t {
    void *monitor;       /* PAIR connected to the socket monitor */
    int timeout_ms;      /* BUS_STALL_TIMEOUT_MS */
    s_conn_t *conns;     /* the connections */
    size_t nconns, cap;  /* how many, room for */
};

bus_stall_t *bus_stall_new(void *ctx, void *sock, const char *monitor_ep, int timeout_ms, char *why, size_t whylen)
{
    bus_stall_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->timeout_ms = timeout_ms;
    if (zmq_socket_monitor(sock, monitor_ep, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(self->monitor = zmq_socket(ctx, ZMQ_PAIR)) || zmq_connect(self->monitor, monitor_ep) != 0) {
        snprintf(why, whylen, "cannot monitor the writer side's connections: %s", zmq_strerror(errno));
        bus_stall_destroy(&self);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(self->monitor, ZMQ_LINGER, &linger, sizeof linger);
    return self;
}

void bus_stall_destroy(bus_stall_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_stall_t *self = *self_p;
    if (self->monitor)
        zmq_close(self->monitor);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

void *bus_stall_socket(bus_stall_t *self)
{
    return self->monitor;
}

size_t bus_stall_connections(const bus_stall_t *self)
{
    return self->nconns;
}

static void s_describe(const struct sockaddr_storage *a, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%d", host, ntohs(in->sin_port));
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, len, "ipc");
    }
}

static void s_add(bus_stall_t *self, int fd)
{
    if (self->nconns == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_conn_t *c = realloc(self->conns, cap * sizeof *c);
        if (!c) {
            evp_error("cannot watch a subscriber: out of memory", "fd=%d", fd);
            return;
        }
        self->conns = c;
        self->cap = cap;
    }
    s_conn_t *c = &self->conns[self->nconns];
    *c = (s_conn_t){.fd = fd, .peer_len = sizeof c->peer, .progress_ms = -1};
    if (getpeername(fd, (struct sockaddr *)&c->peer, &c->peer_len) != 0)
        return; /* already gone */
    c->tcp = c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6;
    s_describe(&c->peer, c->name, sizeof c->name);
    self->nconns++;
}

static void s_remove(bus_stall_t *self, int fd)
{
    for (size_t i = 0; i < self->nconns; i++)
        if (self->conns[i].fd == fd) {
            self->conns[i] = self->conns[--self->nconns];
            return;
        }
}

void bus_stall_events(bus_stall_t *self)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        /* Frame 1: event (16 bits) and value (32 bits: the fd); frame 2: the endpoint. */
        uint16_t event = 0;
        int32_t value = -1;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, self->monitor, 0);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_ACCEPTED && value >= 0) {
            s_remove(self, value); /* an fd reused before we saw it go */
            s_add(self, value);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            s_remove(self, value);
        }
    }
}

/* Whether fd still is the connection c watched (not closed and reused). */
static bool s_same(const s_conn_t *c)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    return getpeername(c->fd, (struct sockaddr *)&a, &len) == 0 && len == c->peer_len &&
           memcmp(&a, &c->peer, len) == 0;
}

/* Shuts the connection down: libzmq sees its end at once and drops the
 * subscriber, its pipe and its subscriptions. Linger 0: the unread bytes
 * are discarded with a reset rather than kept by the kernel. */
static bool s_cut(s_conn_t *c, int64_t stalled_ms)
{
    c->cut = true;
    if (!s_same(c))
        return false;
    if (c->tcp) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    shutdown(c->fd, SHUT_RDWR);
    evp_warn("disconnected a subscriber that stopped reading", "peer=%s stalled_ms=%lld unread_bytes=%d", c->name,
             (long long)stalled_ms, c->waiting);
    return true;
}

size_t bus_stall_check(bus_stall_t *self, int64_t now_ms)
{
    size_t cut = 0;
    for (size_t i = 0; i < self->nconns; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->cut)
            continue;
        int waiting = 0;
        if (ioctl(c->fd, SIOCOUTQ, &waiting) != 0)
            continue; /* closed: its DISCONNECTED event is on the way */
        bool progress = waiting == 0 || c->progress_ms < 0;
        if (c->tcp) {
            struct tcp_info ti;
            socklen_t len = sizeof ti;
            memset(&ti, 0, sizeof ti);
            if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
                len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked) {
                progress = progress || ti.tcpi_bytes_acked != c->acked;
                c->acked = ti.tcpi_bytes_acked;
            } else {
                progress = progress || waiting != c->waiting;
            }
        } else {
            progress = progress || waiting != c->waiting;
        }
        c->waiting = waiting;
        if (progress) {
            c->progress_ms = now_ms;
        } else if (now_ms - c->progress_ms >= self->timeout_ms) {
            cut += s_cut(c, now_ms - c->progress_ms);
        }
    }
    return cut;
}
