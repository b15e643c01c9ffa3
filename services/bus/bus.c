/* The bus broker (see bus.h). A hand-written loop rather than zmq_proxy: the
 * tap copy must never block, and zmq_proxy's capture socket does; the writer
 * side never blocks either (bus_hold.h), and subscribers that stop reading
 * are disconnected (bus_stall.h). Its counters are metrics (evpipe_bus_*,
 * docs/metrics.md); bus_stats reads them. */
#include "bus.h"

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus_auth.h"
#include "bus_redact.h"
#include "evpipe/curve.h"
#include "evpipe/log.h"
#include "evpipe/metrics.h"
#include "evpipe/sig.h"
#include "evpipe/zmqutil.h"
#include "bus_hold.h"
#include "bus_stall.h"

#define WELCOME "!welcome"
#define MAX_FRAMES 4
/* /healthz fails when the loop has not turned for this long. */
#define HEALTH_MAX_AGE_S 5.0
/* How often the writer side's connections are looked at for stalls. */
#define S_STALL_CHECK_MS 200
/* While messages are held, they are tried again at least this often. */
#define S_RETRY_MS 2
/* Held messages sent per turn of the loop, at most. */
#define S_FLUSH_MAX 4096
#define S_MONITOR_EP "inproc://evpipe-bus-writer-side"

struct bus_t {
    void *ctx;           /* ZeroMQ context, owned */
    void *front;         /* XSUB: publishers connect here */
    void *back;          /* XPUB: writers, NODROP, sends never wait (hold) */
    void *tap;           /* XPUB: taps, NODROP + DONTWAIT: full means dropped */
    bus_hold_t *hold;    /* messages waiting for writer-side subscribers that push back */
    bus_stall_t *stall;  /* finds writer-side subscribers that stopped reading */
    evp_curve_server_t *curve;  /* CURVE authentication, when CURVE=1 */
    bus_auth_t *auth;           /* the publishers' source check, when CURVE=1 */
    bus_redact_t *redact;       /* personal data out of the tap copy, when TAP_REDACT=1 */
    evp_metrics_t *metrics;     /* registry "bus", owned; serves METRICS_PORT */
    evp_counter_t *messages_in; /* messages received from publishers */
    evp_counter_t *delivered;   /* messages handed to the writer side */
    evp_counter_t *tap_sent;    /* messages handed to the tap side */
    evp_counter_t *tap_dropped; /* messages taps did not get */
    evp_counter_t *malformed;   /* messages not of two frames, dropped */
    evp_gauge_t *writers;       /* current subscribers on the writer side */
    evp_gauge_t *taps;          /* current subscribers on the tap side (those that take !welcome) */
    evp_gauge_t *tap_topics;    /* subscriptions on the tap side, of any subscriber: copy while > 0 */
    evp_counter_t *stalled;     /* writer-side subscribers disconnected for not reading */
    evp_gauge_t *held_messages; /* messages waiting for writer-side subscribers */
    evp_gauge_t *held_bytes;    /* their bytes */
    evp_gauge_t *held_partitions; /* partitions with messages waiting */
    evp_gauge_t *paused;        /* 1 while publishers wait (the hold is full) */
    atomic_bool running;        /* bus_run is looping (read by /healthz) */
    evp_log_limit_t log_limit;  /* bounds the lines about malformed messages */
    int64_t next_report;        /* when the next periodic log line is due (ms) */
};

static void *s_socket(bus_t *self, int type, const evp_config_t *cfg, int hwm, const char *endpoint,
                      const char *setting, const char *domain, char *why, size_t whylen)
{
    void *s = zmq_socket(self->ctx, type);
    if (!s) {
        snprintf(why, whylen, "%s: cannot create a socket: %s", setting, zmq_strerror(errno));
        return NULL;
    }
    if (evp_zmq_tune(s, cfg, hwm, 0) != 0) {
        snprintf(why, whylen, "%s: cannot set socket options: %s", setting, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    if (self->curve && evp_curve_server_apply(self->curve, s, domain, why, whylen) != 0) {
        zmq_close(s);
        return NULL;
    }
    if (type == ZMQ_XPUB) {
        int one = 1, timeout = 100;
        zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
        /* Every subscriber's (un)subscriptions reach us, so we can count them. */
        zmq_setsockopt(s, ZMQ_XPUB_VERBOSER, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_XPUB_WELCOME_MSG, WELCOME, strlen(WELCOME));
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    }
    if (evp_zmq_bind(s, endpoint, setting, why, whylen) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* /healthz: the loop turns (it beats at least every 100 ms, also while
 * writers push back, which is their slowness, not the bus's). Runs on the
 * HTTP thread: atomics only. */
static bool s_health(void *arg, char *detail, size_t len)
{
    bus_t *self = arg;
    if (!atomic_load(&self->running)) {
        snprintf(detail, len, "bus loop is not running");
        return false;
    }
    if (!evp_metrics_loop_ok(self->metrics, HEALTH_MAX_AGE_S, detail, len))
        return false;
    snprintf(detail, len, "writers=%lld taps=%lld", (long long)evp_gauge_value(self->writers),
             (long long)evp_gauge_value(self->taps));
    return true;
}

bool bus_healthy(bus_t *self, char *detail, size_t len)
{
    return s_health(self, detail, len);
}

evp_metrics_t *bus_metrics(bus_t *self)
{
    return self->metrics;
}

static void s_metrics_new(bus_t *self)
{
    evp_metrics_t *m = self->metrics;
    self->messages_in = evp_counter_new(m, "messages_in_total", "Messages received from publishers (topic and body).");
    self->delivered = evp_counter_new(m, "delivered_total", "Messages handed to the writer side (lossless).");
    self->tap_sent = evp_counter_new(m, "tap_sent_total", "Messages handed to the tap side.");
    self->tap_dropped = evp_counter_new(m, "tap_dropped_total",
                                        "Messages the bus dropped for taps whose queue was full (writers never lose any).");
    self->malformed = evp_counter_new(m, "malformed_total", "Messages dropped because they were not two frames.");
    self->writers = evp_gauge_new(m, "writer_subscribers", "Subscribers connected on the writer side.");
    self->taps = evp_gauge_new(m, "tap_subscribers", "Subscribers connected on the tap side that take !welcome.");
    self->tap_topics = evp_gauge_new(m, "tap_subscriptions",
                                     "Subscriptions on the tap side, of any subscriber (taps get copies while above 0).");
    self->stalled = evp_counter_new(m, "stalled_disconnects_total",
                                    "Writer-side subscribers disconnected because they read nothing for "
                                    "BUS_STALL_TIMEOUT_MS while messages waited for them.");
    self->held_messages = evp_gauge_new(m, "held_messages",
                                        "Messages held for writer-side subscribers that push back (sent in order "
                                        "once they read).");
    self->held_bytes = evp_gauge_new(m, "held_bytes", "Bytes of the messages held.");
    self->held_partitions = evp_gauge_new(m, "held_partitions", "Partitions with messages held.");
    self->paused = evp_gauge_new(m, "publishers_paused",
                                 "1 while the bus takes nothing from publishers: it holds BUS_HOLD_MAX_MB.");
}

bus_t *bus_new(const evp_config_t *cfg, char *why, size_t whylen)
{
    bus_t *self = calloc(1, sizeof *self);
    if (!self || !(self->metrics = evp_metrics_new("bus"))) {
        snprintf(why, whylen, "out of memory");
        free(self);
        return NULL;
    }
    atomic_init(&self->running, false);
    s_metrics_new(self);
    self->ctx = zmq_ctx_new();
    if (self->ctx && cfg->curve &&
        (!(self->curve = evp_curve_server_new(self->ctx, cfg, why, whylen)) ||
         !(self->auth = bus_auth_new(self->metrics)))) {
        if (self->curve && !self->auth)
            snprintf(why, whylen, "out of memory");
        bus_destroy(&self);
        return NULL;
    }
    if (!self->ctx || !(self->front = s_socket(self, ZMQ_XSUB, cfg, cfg->bus_hwm, cfg->bus_publish_endpoint,
                                                "BUS_PUBLISH_ENDPOINT", EVP_CURVE_PUBLISH, why, whylen)) ||
        !(self->back = s_socket(self, ZMQ_XPUB, cfg, cfg->bus_hwm, cfg->bus_subscribe_endpoint,
                                "BUS_SUBSCRIBE_ENDPOINT", EVP_CURVE_SUBSCRIBE, why, whylen)) ||
        !(self->tap = s_socket(self, ZMQ_XPUB, cfg, cfg->tap_hwm, cfg->bus_tap_endpoint, "BUS_TAP_ENDPOINT",
                               EVP_CURVE_TAP, why, whylen))) {
        bus_destroy(&self);
        return NULL;
    }
    if (cfg->tap_redact && !(self->redact = bus_redact_new(cfg->tap_redact_key))) {
        snprintf(why, whylen, "TAP_REDACT: cannot start libsodium for the tap's redaction");
        bus_destroy(&self);
        return NULL;
    }
    if (!(self->hold = bus_hold_new(self->back, (size_t)cfg->bus_hold_max_mb << 20))) {
        snprintf(why, whylen, "out of memory");
        bus_destroy(&self);
        return NULL;
    }
    if (!(self->stall = bus_stall_new(self->ctx, self->back, S_MONITOR_EP, cfg->bus_stall_timeout_ms, why,
                                      whylen))) {
        bus_destroy(&self);
        return NULL;
    }
    if (evp_metrics_serve(self->metrics, cfg->metrics_port, s_health, self, why, whylen) != 0) {
        bus_destroy(&self);
        return NULL;
    }
    /* Everything from every publisher; filtering happens downstream. */
    const char subscribe_all = 1;
    zmq_send(self->front, &subscribe_all, 1, 0);
    self->next_report = zclock_mono() + 10000;
    return self;
}

void bus_destroy(bus_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_t *self = *self_p;
    /* First: stops the HTTP thread, which reads self. */
    evp_metrics_destroy(&self->metrics);
    bus_hold_destroy(&self->hold);
    bus_stall_destroy(&self->stall);
    if (self->front)
        zmq_close(self->front);
    if (self->back)
        zmq_close(self->back);
    if (self->tap)
        zmq_close(self->tap);
    evp_curve_server_destroy(&self->curve);
    bus_auth_destroy(&self->auth);
    bus_redact_destroy(&self->redact);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

void bus_stats(const bus_t *self, bus_stats_t *out)
{
    *out = (bus_stats_t){
        .messages_in = evp_counter_value(self->messages_in),
        .delivered = evp_counter_value(self->delivered),
        .tap_sent = evp_counter_value(self->tap_sent),
        .tap_dropped = evp_counter_value(self->tap_dropped),
        .malformed = evp_counter_value(self->malformed),
        .subscriptions = evp_gauge_value(self->writers),
        .tap_subscriptions = evp_gauge_value(self->taps),
        .tap_topics = evp_gauge_value(self->tap_topics),
        .curve_refused = self->curve ? evp_curve_server_refused(self->curve) : 0,
        .source_refused = self->auth ? bus_auth_refused(self->auth) : 0,
        .stalled_disconnects = evp_counter_value(self->stalled),
        .held_messages = evp_gauge_value(self->held_messages),
    };
}

/* Reads (un)subscriptions arriving on an XPUB side. The gauge `count`
 * counts subscribers that take the welcome (each one's first subscription).
 * `topics` (may be NULL) counts every subscription of every subscriber:
 * XPUB_VERBOSER passes each subscribe, each unsubscribe, and an unsubscribe
 * per subscription of a subscriber that leaves, so it returns to 0 when the
 * last one has gone. A subscriber that subscribes twice to the same prefix
 * leaves it one too high (its socket sends the first unsubscribe only):
 * copies then go to a tap socket nobody reads, which costs a send, no more.
 * A hostile unsubscribe cannot take it below 0. */
static void s_drain_subscriptions(void *sock, evp_gauge_t *count, evp_gauge_t *topics, const char *side)
{
    char buf[256];
    for (;;) {
        int n = zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        if (n < 1 || (buf[0] != 0 && buf[0] != 1))
            continue;
        int len = n > (int)sizeof buf ? (int)sizeof buf : n;
        bool subscribe = buf[0] == 1;
        if (topics && (subscribe || evp_gauge_value(topics) > 0))
            evp_gauge_add(topics, subscribe ? 1 : -1);
        /* The welcome subscription is each subscriber's first: count those. */
        bool welcome = len - 1 == (int)strlen(WELCOME) && memcmp(buf + 1, WELCOME, strlen(WELCOME)) == 0;
        if (!welcome)
            continue;
        evp_gauge_add(count, subscribe ? 1 : -1);
        evp_info(subscribe ? "subscriber joined" : "subscriber left", "side=%s subscribers=%lld", side,
                 (long long)evp_gauge_value(count));
    }
}

/* Sends frames[0..n) on sock; false if the first frame was refused. */
static bool s_forward(void *sock, zmq_msg_t *frames, int n, int flags)
{
    for (int i = 0; i < n; i++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &frames[i]);
        int rc;
        do {
            rc = zmq_msg_send(&copy, sock, flags | (i + 1 < n ? ZMQ_SNDMORE : 0));
        } while (rc < 0 && i > 0 && (errno == EINTR || errno == EAGAIN));
        if (rc < 0) {
            zmq_msg_close(&copy);
            return false;
        }
    }
    return true;
}

/* With CURVE on, whether the sender's key may publish the message's sources
 * (bus_auth counts and logs a refusal); always true with CURVE off. */
static bool s_admitted(bus_t *self, zmq_msg_t *frames)
{
    return !self->auth || bus_auth_allows(self->auth, &frames[0], &frames[1]);
}

/* The copy for taps: never waiting (a full tap loses the message), with
 * user_name and user_email redacted unless TAP_REDACT=0; a body that cannot
 * be read for redaction does not reach taps. With no subscription on the tap
 * side there is nothing to copy. */
static void s_tap_copy(bus_t *self, zmq_msg_t *frames, int n)
{
    if (evp_gauge_value(self->tap_topics) <= 0)
        return;
    bool sent = false;
    size_t len = 0;
    const uint8_t *body = self->redact ? bus_redact_body(self->redact, zmq_msg_data(&frames[1]),
                                                         zmq_msg_size(&frames[1]), &len)
                                       : zmq_msg_data(&frames[1]);
    if (body == zmq_msg_data(&frames[1])) { /* unchanged: no copy of the body */
        sent = zmq_msg_size(&frames[0]) > 0 && s_forward(self->tap, frames, n, ZMQ_DONTWAIT);
    } else {
        /* The topic through zmq_msg_copy, never a struct copy: a received
         * frame may share its decoder's buffer, and only zmq_msg_copy marks
         * it shared (a struct copy let the buffer be freed under the tap). */
        zmq_msg_t copy[2];
        zmq_msg_init(&copy[0]);
        zmq_msg_copy(&copy[0], &frames[0]);
        if (body && zmq_msg_init_size(&copy[1], len) == 0) {
            memcpy(zmq_msg_data(&copy[1]), body, len);
            sent = zmq_msg_size(&frames[0]) > 0 && s_forward(self->tap, copy, 2, ZMQ_DONTWAIT);
            zmq_msg_close(&copy[1]);
        }
        zmq_msg_close(&copy[0]);
    }
    evp_counter_inc(sent ? self->tap_sent : self->tap_dropped);
}

/* Moves one message from the publishers to the taps and the writers. */
static void s_relay(bus_t *self)
{
    zmq_msg_t frames[MAX_FRAMES];
    int n = 0;
    bool more = true, malformed = false;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->front, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < MAX_FRAMES)
            frames[n++] = m;
        else {
            malformed = true;
            zmq_msg_close(&m);
        }
    }
    if (n != 2 || malformed) {
        evp_counter_inc(self->malformed);
        if (evp_log_allow(&self->log_limit, NULL))
            evp_warn("dropped a malformed message", "frames=%d", n);
    } else if (s_admitted(self, frames)) {
        evp_counter_inc(self->messages_in);
        /* Taps first, never waiting (a full tap loses the message). */
        s_tap_copy(self, frames, n);
        /* Writers: sent now, or held behind the partition's earlier
         * messages while a subscriber of it pushes back (the hold takes
         * the frames). */
        if (bus_hold_deliver(self->hold, frames))
            evp_counter_inc(self->delivered);
        n = 0;
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

/* Held messages that can go now; the hold's gauges. */
static void s_flush(bus_t *self)
{
    size_t sent = bus_hold_flush(self->hold, S_FLUSH_MAX);
    if (sent > 0)
        evp_counter_add(self->delivered, sent);
    evp_gauge_set(self->held_messages, (int64_t)bus_hold_messages(self->hold));
    evp_gauge_set(self->held_bytes, (int64_t)bus_hold_bytes(self->hold));
    evp_gauge_set(self->held_partitions, (int64_t)bus_hold_partitions(self->hold));
}

int bus_run(bus_t *self)
{
    evp_info("bus ready", "%s", "");
    zmq_pollitem_t items[] = {
        {self->front, 0, ZMQ_POLLIN, 0},
        {self->back, 0, ZMQ_POLLIN, 0},
        {self->tap, 0, ZMQ_POLLIN, 0},
        {bus_stall_socket(self->stall), 0, ZMQ_POLLIN, 0},
    };
    uint64_t last_dropped = 0;
    int64_t next_stall_check = 0;
    atomic_store(&self->running, true);
    while (!evp_stopping()) {
        evp_metrics_beat(self->metrics);
        /* Publishers wait while the hold is full: their messages stay in
         * their queues, and their sends block (NODROP). */
        bool full = bus_hold_full(self->hold);
        if (full != (evp_gauge_value(self->paused) != 0)) {
            evp_gauge_set(self->paused, full);
            if (full)
                evp_warn("publishers wait: the bus holds its maximum for subscribers that push back",
                         "held_bytes=%zu held_messages=%zu", bus_hold_bytes(self->hold),
                         bus_hold_messages(self->hold));
        }
        items[0].events = full ? 0 : ZMQ_POLLIN;
        int rc = zmq_poll(items, 4, bus_hold_messages(self->hold) > 0 ? S_RETRY_MS : 100);
        if (rc < 0 && errno != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_drain_subscriptions(self->back, self->writers, NULL, "writer");
        if (items[2].revents & ZMQ_POLLIN)
            s_drain_subscriptions(self->tap, self->taps, self->tap_topics, "tap");
        if (items[3].revents & ZMQ_POLLIN)
            bus_stall_events(self->stall);
        int64_t now = zclock_mono();
        if (now >= next_stall_check) {
            next_stall_check = now + S_STALL_CHECK_MS;
            bus_stall_events(self->stall);
            size_t cut = bus_stall_check(self->stall, now);
            if (cut > 0)
                evp_counter_add(self->stalled, cut);
        }
        /* Held messages first: they are older than anything still to read. */
        s_flush(self);
        /* A bounded run of messages, then look at the other sockets again. */
        for (int i = 0; i < 1024 && (items[0].revents & ZMQ_POLLIN) && !bus_hold_full(self->hold); i++) {
            s_relay(self);
            int ev = 0;
            size_t len = sizeof ev;
            zmq_getsockopt(self->front, ZMQ_EVENTS, &ev, &len);
            if (!(ev & ZMQ_POLLIN))
                break;
        }
        if (now >= self->next_report) {
            self->next_report = now + 10000;
            bus_stats_t st;
            bus_stats(self, &st);
            if (st.tap_dropped != last_dropped)
                evp_warn("taps are slow: messages dropped for them", "tap_dropped=%llu",
                         (unsigned long long)(st.tap_dropped - last_dropped));
            last_dropped = st.tap_dropped;
            evp_info("bus stats", "messages_in=%llu delivered=%llu tap_sent=%llu tap_dropped=%llu writers=%lld taps=%lld "
                     "held=%llu stalled_disconnects=%llu",
                     (unsigned long long)st.messages_in, (unsigned long long)st.delivered,
                     (unsigned long long)st.tap_sent, (unsigned long long)st.tap_dropped,
                     (long long)st.subscriptions, (long long)st.tap_subscriptions,
                     (unsigned long long)st.held_messages, (unsigned long long)st.stalled_disconnects);
        }
    }
    atomic_store(&self->running, false);
    bus_stats_t st;
    bus_stats(self, &st);
    evp_info("bus stopped", "messages_in=%llu delivered=%llu tap_dropped=%llu",
             (unsigned long long)st.messages_in, (unsigned long long)st.delivered,
             (unsigned long long)st.tap_dropped);
    return 0;
}
