/* The publishing side of the bus (see publisher.h). */
#include "evpipe/publisher.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "evpipe/curve.h"
#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "evpipe/zmqutil.h"

/* A pending event waits at most this long for more of its partition: the
 * next evp_publisher_tick sends its body. */
#define S_PENDING_MAX_US 1000

/* The latest seq of one (source, partition), for heartbeats. */
typedef struct {
    char source[72];   /* the publisher id, NUL-terminated */
    int32_t partition; /* the partition */
    int64_t seq;       /* latest seq sent */
    bool used;         /* slot holds an entry */
} s_head_t;

/* One source in a pending body: the highest of its seqs there. */
typedef struct {
    char source[72];     /* NUL-terminated, as in s_head_t */
    uint32_t source_len; /* strlen(source) */
    int64_t seq;         /* highest seq of the source in the body */
} s_mark_t;

/* The body of one partition being filled: events encoded back to back. */
typedef struct {
    ev_buf_t body;     /* the events' maps */
    uint32_t events;   /* how many */
    int64_t since_us;  /* monotonic time the first was added */
    size_t open_at;    /* its index in the publisher's open list while events > 0 */
    s_mark_t *marks;   /* each source in the body and its highest seq */
    size_t nmarks;     /* used */
    size_t marks_cap;  /* allocated */
} s_pending_t;

struct evp_publisher_t {
    void *ctx;             /* ZeroMQ context, owned */
    void *sock;            /* XPUB connected to the bus */
    ev_codec_t *codec;     /* encodes bodies */
    int heartbeat_ms;      /* HEARTBEAT_MS */
    int32_t partitions;    /* PARTITIONS, announced in heartbeats so writers can tell a mismatch */
    int64_t next_beat_us;  /* when heartbeats are next due (monotonic) */
    int subscriptions;     /* subscriptions the bus holds on us (0 or 1) */
    uint32_t batch;        /* PUBLISH_BATCH: events a message carries at most */
    size_t max_bytes;      /* MAX_MESSAGE_BYTES: a body goes before it would pass this */
    s_pending_t *pending;  /* [EV_PARTITIONS_MAX]: the body being filled per partition */
    int32_t *open;         /* partitions whose body holds events, in no order */
    size_t nopen;          /* how many */
    uint64_t taken;        /* events given to evp_publisher_send */
    uint64_t sent;         /* events handed to ZeroMQ */
    uint64_t unsent;       /* events whose message could not be handed over */
    s_head_t *heads;       /* open-addressing table of heads */
    size_t heads_cap;      /* slots (a power of two) */
    size_t heads_used;     /* slots used */
    evp_metrics_t *metrics;    /* the service's registry (not owned), or NULL */
    evp_gauge_t *connected;    /* bus_connected, or NULL */
    evp_histogram_t *blocked;  /* publish_blocked_seconds, or NULL */
    bool archive_heads;        /* heartbeats announce an archive's heads (archived: true) */
};

/* ---- Heads: (source, partition) -> latest seq ---- */

static uint64_t s_hash(const char *s, size_t len, int32_t partition)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uint32_t)partition;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static s_head_t *s_head_find(const evp_publisher_t *self, ev_str_t source, int32_t partition, bool *found)
{
    size_t mask = self->heads_cap - 1;
    for (size_t i = s_hash(source.ptr, source.len, partition) & mask;; i = (i + 1) & mask) {
        s_head_t *h = &self->heads[i];
        if (!h->used) {
            *found = false;
            return h;
        }
        if (h->partition == partition && strlen(h->source) == source.len &&
            memcmp(h->source, source.ptr, source.len) == 0) {
            *found = true;
            return h;
        }
    }
}

static void s_head_grow(evp_publisher_t *self)
{
    s_head_t *old = self->heads;
    size_t old_cap = self->heads_cap;
    self->heads_cap = old_cap ? old_cap * 2 : 64;
    self->heads = calloc(self->heads_cap, sizeof *self->heads);
    if (!self->heads)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].used)
            continue;
        bool found;
        ev_str_t s = {old[i].source, (uint32_t)strlen(old[i].source)};
        *s_head_find(self, s, old[i].partition, &found) = old[i];
    }
    free(old);
}

static void s_head_set(evp_publisher_t *self, ev_str_t source, int32_t partition, int64_t seq)
{
    if (source.len >= sizeof self->heads[0].source)
        return; /* longer than any valid source: never heartbeated */
    if ((self->heads_used + 1) * 2 > self->heads_cap)
        s_head_grow(self);
    bool found;
    s_head_t *h = s_head_find(self, source, partition, &found);
    if (!found) {
        memcpy(h->source, source.ptr, source.len);
        h->source[source.len] = '\0';
        h->partition = partition;
        h->used = true;
        h->seq = seq;
        self->heads_used++;
    } else if (seq > h->seq) {
        h->seq = seq;
    }
}

void evp_publisher_announce_archive(evp_publisher_t *self)
{
    self->archive_heads = true;
}

void evp_publisher_set_latest(evp_publisher_t *self, ev_str_t source, int32_t partition, int64_t seq)
{
    s_head_set(self, source, partition, seq);
}

int64_t evp_publisher_latest(const evp_publisher_t *self, ev_str_t source, int32_t partition)
{
    if (!self->heads_cap)
        return 0;
    bool found;
    s_head_t *h = s_head_find(self, source, partition, &found);
    return found ? h->seq : 0;
}

void evp_publisher_forget_source(evp_publisher_t *self, ev_str_t source)
{
    /* Rebuild without the source: rare (once per ingested file). */
    s_head_t *old = self->heads;
    size_t old_cap = self->heads_cap;
    self->heads = calloc(old_cap ? old_cap : 64, sizeof *self->heads);
    if (!self->heads)
        abort();
    self->heads_cap = old_cap ? old_cap : 64;
    self->heads_used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].used)
            continue;
        if (strlen(old[i].source) == source.len && memcmp(old[i].source, source.ptr, source.len) == 0)
            continue;
        ev_str_t s = {old[i].source, (uint32_t)strlen(old[i].source)};
        s_head_set(self, s, old[i].partition, old[i].seq);
    }
    free(old);
}

/* ---- Socket ---- */

evp_publisher_t *evp_publisher_new(const evp_config_t *cfg, char *why, size_t whylen)
{
    evp_publisher_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->heartbeat_ms = cfg->heartbeat_ms;
    self->partitions = cfg->partitions;
    self->next_beat_us = zclock_usecs() + (int64_t)cfg->heartbeat_ms * 1000;
    self->batch = cfg->publish_batch > 0 ? (uint32_t)cfg->publish_batch : 1;
    self->max_bytes = (size_t)cfg->max_message_bytes;
    self->pending = calloc(EV_PARTITIONS_MAX, sizeof *self->pending);
    self->open = calloc(EV_PARTITIONS_MAX, sizeof *self->open);
    self->codec = ev_codec_new();
    if (self->codec)
        ev_codec_set_form(self->codec, ev_form_named(cfg->publish_form));
    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_XPUB) : NULL;
    if (!self->pending || !self->open) {
        snprintf(why, whylen, "out of memory");
        evp_publisher_destroy(&self, 0);
        return NULL;
    }
    if (!self->codec || !self->sock) {
        snprintf(why, whylen, "cannot create the publisher socket: %s", zmq_strerror(errno));
        evp_publisher_destroy(&self, 0);
        return NULL;
    }
    int one = 1, timeout = 100;
    /* Lossless while connected: a full queue blocks (bounded by SNDTIMEO,
     * retried) instead of dropping. Every (un)subscription is reported. */
    zmq_setsockopt(self->sock, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_XPUB_VERBOSER, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    /* Queue only on a live connection: when the bus goes away its pipe
     * ends, the unsubscription is seen, and sending goes on (the archive
     * and heartbeats let writers repair) instead of blocking at BUS_HWM. */
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    if (evp_zmq_tune(self->sock, cfg, cfg->bus_hwm, 0) != 0 ||
        evp_curve_client_apply(self->sock, cfg, why, whylen) != 0 ||
        evp_zmq_connect(self->sock, cfg->bus_publish_endpoint, "BUS_PUBLISH_ENDPOINT", why, whylen) != 0) {
        if (!*why)
            snprintf(why, whylen, "cannot set socket options: %s", zmq_strerror(errno));
        evp_publisher_destroy(&self, 0);
        return NULL;
    }
    s_head_grow(self);
    return self;
}

static void s_send_heartbeats(evp_publisher_t *self, int flags);

void evp_publisher_destroy(evp_publisher_t **self_p, int linger_ms)
{
    if (!self_p || !*self_p)
        return;
    evp_publisher_t *self = *self_p;
    if (self->sock) {
        /* The pending bodies, then the last heartbeats, wait their turn
         * behind queued events (each send bounded by SNDTIMEO while
         * stopping): the heartbeats tell writers of any tail to repair. */
        int patience = 1000;
        zmq_setsockopt(self->sock, ZMQ_SNDTIMEO, &patience, sizeof patience);
        evp_publisher_flush(self);
        if (self->subscriptions > 0)
            s_send_heartbeats(self, 0);
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close(self->sock);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    ev_codec_destroy(&self->codec);
    for (size_t p = 0; self->pending && p < EV_PARTITIONS_MAX; p++) {
        ev_buf_free(&self->pending[p].body);
        free(self->pending[p].marks);
    }
    free(self->pending);
    free(self->open);
    free(self->heads);
    free(self);
    *self_p = NULL;
}

/* Reads the bus's (un)subscriptions without waiting. */
static void s_read_subscriptions(evp_publisher_t *self)
{
    char buf[64];
    for (;;) {
        int n = zmq_recv(self->sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        if (n >= 1 && buf[0] == 1) {
            if (self->subscriptions == 0)
                evp_info("the bus subscribed", "endpoint_subscriptions=1");
            self->subscriptions = 1;
            evp_gauge_set(self->connected, 1);
        } else if (n >= 1 && buf[0] == 0) {
            if (self->subscriptions > 0)
                evp_warn("the bus went away; events are archived and will be repaired", "%s", "");
            self->subscriptions = 0;
            evp_gauge_set(self->connected, 0);
        }
    }
}

bool evp_publisher_connected(const evp_publisher_t *self)
{
    return self->subscriptions > 0;
}

int evp_publisher_wait_bus(evp_publisher_t *self, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? INT64_MAX : zclock_mono() + timeout_ms;
    bool said = false;
    while (!evp_stopping()) {
        s_read_subscriptions(self);
        if (self->subscriptions > 0)
            return 0;
        if (!said && timeout_ms != 0) {
            evp_info("waiting for the bus", "%s", "");
            said = true;
        }
        int64_t now = zclock_mono();
        if (now >= end)
            return -1;
        evp_metrics_beat(self->metrics);
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, (long)(end - now < 100 ? end - now : 100));
    }
    return -1;
}

/* Sends one message, retrying while the bus pushes back. */
static int s_send(evp_publisher_t *self, const char *topic, size_t tlen, const void *body, size_t blen)
{
    const void *parts[2] = {topic, body};
    size_t lens[2] = {tlen, blen};
    int64_t started_us = zclock_usecs(); /* for publish_blocked_seconds */
    bool waited = false;
    for (;;) {
        if (evp_zmq_send_parts(self->sock, 0, 2, parts, lens) == 0) {
            if (waited)
                evp_histogram_observe(self->blocked, (double)(zclock_usecs() - started_us) / 1e6);
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR) {
            evp_warn("send failed", "error=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        if (evp_stopping())
            return -1;
        waited = true;
        evp_metrics_beat(self->metrics);
        s_read_subscriptions(self);
    }
}

static void s_send_heartbeats(evp_publisher_t *self, int flags)
{
    int64_t now_us = ev_now_us();
    for (size_t i = 0; i < self->heads_cap; i++) {
        const s_head_t *h = &self->heads[i];
        if (!h->used)
            continue;
        ev_heartbeat_t hb = {.source = {h->source, (uint32_t)strlen(h->source)},
                             .partition = h->partition,
                             .seq = h->seq,
                             .published_at = now_us,
                             .archived = self->archive_heads,
                             .partitions = self->partitions};
        const void *body;
        size_t blen;
        ev_codec_encode_heartbeat(self->codec, &hb, &body, &blen);
        char topic[EV_TOPIC_MAX];
        size_t tlen = ev_topic_format(topic, (uint32_t)h->partition, EV_MSG_HEARTBEAT);
        const void *parts[2] = {topic, body};
        size_t lens[2] = {tlen, blen};
        /* A periodic heartbeat never blocks (flags ZMQ_DONTWAIT): a later one says the same. */
        evp_zmq_send_parts(self->sock, flags, 2, parts, lens);
    }
}

/* ---- Pending bodies ---- */

/* Notes seq as the highest of its source in the body (sources too long to
 * be heartbeated are not noted, as s_head_set ignores them). */
static void s_pending_mark(s_pending_t *b, ev_str_t source, int64_t seq)
{
    if (source.len >= sizeof b->marks[0].source)
        return;
    for (size_t i = b->nmarks; i-- > 0;) {
        s_mark_t *m = &b->marks[i];
        if (m->source_len == source.len && memcmp(m->source, source.ptr, source.len) == 0) {
            if (seq > m->seq)
                m->seq = seq;
            return;
        }
    }
    if (b->nmarks == b->marks_cap) {
        b->marks_cap = b->marks_cap ? b->marks_cap * 2 : 2;
        b->marks = realloc(b->marks, b->marks_cap * sizeof *b->marks);
        if (!b->marks)
            abort();
    }
    s_mark_t *m = &b->marks[b->nmarks++];
    memcpy(m->source, source.ptr, source.len);
    m->source[source.len] = '\0';
    m->source_len = source.len;
    m->seq = seq;
}

/* Counts events whose message was handed to ZeroMQ (rc 0) or not. */
static void s_account(evp_publisher_t *self, int rc, uint64_t events)
{
    if (rc == 0)
        self->sent += events;
    else
        self->unsent += events;
}

/* Sends the body of partition p, whatever it holds (send false: gives it
 * up unsent), and empties it. The heads of its events move either way: sent,
 * or archived by the caller and announced by the next heartbeat so that
 * writers repair them. */
static int s_pending_settle(evp_publisher_t *self, int32_t p, bool send)
{
    s_pending_t *b = &self->pending[p];
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, (uint32_t)p, EV_MSG_EVENT);
    int rc = send ? s_send(self, topic, tlen, b->body.data, b->body.len) : -1;
    for (size_t i = 0; i < b->nmarks; i++)
        s_head_set(self, (ev_str_t){b->marks[i].source, b->marks[i].source_len}, p, b->marks[i].seq);
    s_account(self, rc, b->events);
    b->events = 0;
    b->nmarks = 0;
    ev_buf_reset(&b->body);
    int32_t last = self->open[--self->nopen];
    self->open[b->open_at] = last;
    self->pending[last].open_at = b->open_at;
    return rc;
}

static int s_pending_send(evp_publisher_t *self, int32_t p)
{
    return s_pending_settle(self, p, true);
}

int evp_publisher_flush(evp_publisher_t *self)
{
    int rc = 0;
    while (self->nopen > 0) {
        /* Once stopping refused a send, the others are not tried: each would
         * wait out a send timeout for nothing. */
        if (s_pending_settle(self, self->open[self->nopen - 1], rc == 0 || !evp_stopping()) != 0)
            rc = -1;
    }
    return rc;
}

size_t evp_publisher_pending(const evp_publisher_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nopen; i++)
        n += self->pending[self->open[i]].events;
    return n;
}

/* ---- Heartbeats and sending ---- */

void evp_publisher_heartbeat_now(evp_publisher_t *self)
{
    s_read_subscriptions(self);
    /* A heartbeat never announces a seq still waiting in a body. */
    evp_publisher_flush(self);
    s_send_heartbeats(self, ZMQ_DONTWAIT);
    self->next_beat_us = zclock_usecs() + (int64_t)self->heartbeat_ms * 1000;
}

void evp_publisher_tick(evp_publisher_t *self)
{
    int64_t now = zclock_usecs();
    for (size_t i = self->nopen; i-- > 0;) {
        /* s_pending_send moves the last open body to i: it was looked at. */
        int32_t p = self->open[i];
        if (now - self->pending[p].since_us >= S_PENDING_MAX_US)
            s_pending_send(self, p);
    }
    if (now >= self->next_beat_us)
        evp_publisher_heartbeat_now(self);
}

/* Settles an event that went alone (rc 0) or could not go (-1): its head
 * moves either way, as in s_pending_settle. Returns rc. */
static int s_settle_alone(evp_publisher_t *self, const ev_event_t *ev, int rc)
{
    s_head_set(self, ev->source, ev->partition, ev->seq);
    s_account(self, rc, 1);
    return rc;
}

int evp_publisher_send(evp_publisher_t *self, const ev_event_t *ev)
{
    /* First: a heartbeat it sends reuses the codec's buffer. */
    if ((++self->taken & 255) == 0)
        evp_publisher_tick(self);
    ev_event_t stamped = *ev;
    stamped.published_at = ev_now_us();
    const void *data;
    size_t len;
    ev_codec_encode_event(self->codec, &stamped, &data, &len);
    int32_t p = ev->partition;
    if (p < 0 || p >= EV_PARTITIONS_MAX) {
        /* No topic of its own (a caller's bug): alone, as it is. */
        char topic[EV_TOPIC_MAX];
        size_t tlen = ev_topic_format(topic, (uint32_t)p, EV_MSG_EVENT);
        return s_settle_alone(self, ev, s_send(self, topic, tlen, data, len));
    }
    s_pending_t *b = &self->pending[p];
    /* What is there goes first when this event would take it past the limit;
     * when that fails, this event is not taken either. */
    if (b->events > 0 && b->body.len + len > self->max_bytes && s_pending_send(self, p) != 0)
        return s_settle_alone(self, ev, -1);
    if (b->events == 0) {
        b->since_us = zclock_usecs();
        b->open_at = self->nopen;
        self->open[self->nopen++] = p;
    }
    ev_buf_append(&b->body, data, len);
    b->events++;
    s_pending_mark(b, ev->source, ev->seq);
    if (b->events >= self->batch || b->body.len >= self->max_bytes)
        return s_pending_send(self, p);
    return 0;
}

evp_gauge_t *evp_publisher_metrics(evp_publisher_t *self, evp_metrics_t *m)
{
    if (!m)
        return NULL;
    /* A send waits in steps of SNDTIMEO (100 ms). */
    static const double waits[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    self->metrics = m;
    self->connected = evp_gauge_new(m, "bus_connected", "1 while the bus is subscribed to this publisher, else 0.");
    self->blocked = evp_histogram_new(m, "publish_blocked_seconds",
                                      "Sends that waited 0.1 s or more for a bus pushing back, by how long they waited.",
                                      waits, sizeof waits / sizeof waits[0]);
    evp_gauge_set(self->connected, self->subscriptions > 0 ? 1 : 0);
    return self->connected;
}

uint64_t evp_publisher_sent(const evp_publisher_t *self)
{
    return self->sent;
}

uint64_t evp_publisher_unsent(const evp_publisher_t *self)
{
    return self->unsent;
}
