/* The debug tap (see tap.h). */
#include "tap.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "evpipe/buf.h"
#include "evpipe/curve.h"
#include "evpipe/json.h"
#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "evpipe/zmqutil.h"

#define WELCOME "!welcome"
#define MAX_TYPES 8

struct tap_t {
    void *ctx;                /* ZeroMQ context, owned */
    void *sock;               /* SUB on the tap endpoint */
    FILE *out;                /* where lines go */
    tap_options_t opt;        /* filters and limits */
    int partitions;           /* PARTITIONS */
    ev_codec_t *codec;        /* decodes bodies */
    ev_buf_t line;            /* the line being written */
    uint64_t printed;         /* events printed or counted */
    uint64_t undecodable;     /* event maps that did not decode, and bodies whose rest could not be read */
    /* --stats: counts over the current second */
    uint64_t *by_partition;   /* events per partition */
    uint64_t by_type[MAX_TYPES]; /* events per ev_event_types entry */
    double lag_sum_us;        /* sum of now - published_at (a double: any int64 a peer sends adds up) */
    int64_t lag_max_us;       /* largest now - published_at */
};

static int s_subscribe(void *sock, const char *topic, size_t len)
{
    return zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topic, len);
}

/* Subscribes to each partition in "0,5,7", or to all. */
static int s_subscribe_partitions(tap_t *self, char *why, size_t whylen)
{
    if (!self->opt.partitions)
        return s_subscribe(self->sock, "p", 1);
    const char *p = self->opt.partitions;
    while (*p) {
        char *end;
        errno = 0;
        long n = strtol(p, &end, 10);
        if (end == p || errno || n < 0 || n >= self->partitions || (*end && *end != ',')) {
            snprintf(why, whylen, "--partition %s: partitions from 0 to %d, separated by commas, were expected",
                     self->opt.partitions, self->partitions - 1);
            return -1;
        }
        char topic[EV_TOPIC_MAX];
        size_t len = ev_topic_prefix(topic, (uint32_t)n);
        if (s_subscribe(self->sock, topic, len) != 0)
            return -1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

tap_t *tap_new(const evp_config_t *cfg, const tap_options_t *opt, FILE *out, char *why, size_t whylen)
{
    tap_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->opt = *opt;
    self->out = out;
    self->partitions = cfg->partitions;
    ev_buf_init(&self->line);
    self->codec = ev_codec_new();
    self->by_partition = calloc((size_t)cfg->partitions, sizeof *self->by_partition);
    if (opt->event_type) {
        ev_str_t t = {opt->event_type, (uint32_t)strlen(opt->event_type)};
        if (!ev_event_type_allowed(t)) {
            snprintf(why, whylen, "--event-type %s: one of view, purchase was expected", opt->event_type);
            tap_destroy(&self);
            return NULL;
        }
    }
    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_SUB) : NULL;
    if (!self->codec || !self->by_partition || !self->sock) {
        snprintf(why, whylen, "cannot create the tap socket: %s", zmq_strerror(errno));
        tap_destroy(&self);
        return NULL;
    }
    /* Subscriptions before connecting, so the welcome message reaches us. */
    if (evp_zmq_tune(self->sock, cfg, cfg->tap_hwm, 0) != 0 || evp_curve_client_apply(self->sock, cfg, why, whylen) ||
        s_subscribe(self->sock, WELCOME, strlen(WELCOME)) ||
        s_subscribe_partitions(self, why, whylen) != 0 ||
        evp_zmq_connect(self->sock, cfg->bus_tap_endpoint, "BUS_TAP_ENDPOINT", why, whylen) != 0) {
        if (!*why)
            snprintf(why, whylen, "cannot set up the tap socket: %s", zmq_strerror(errno));
        tap_destroy(&self);
        return NULL;
    }
    return self;
}

void tap_destroy(tap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tap_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    ev_codec_destroy(&self->codec);
    ev_buf_free(&self->line);
    free(self->by_partition);
    free(self);
    *self_p = NULL;
}

uint64_t tap_printed(const tap_t *self)
{
    return self->printed;
}

/* Writes the line buffer; false when stdout is gone. */
static bool s_flush_line(tap_t *self)
{
    ev_buf_putc(&self->line, '\n');
    bool ok = fwrite(self->line.data, 1, self->line.len, self->out) == self->line.len;
    ev_buf_reset(&self->line);
    return ok;
}

static void s_count(tap_t *self, const ev_event_t *ev)
{
    if (ev->partition >= 0 && ev->partition < self->partitions)
        self->by_partition[ev->partition]++;
    for (int i = 0; ev_event_types[i] && i < MAX_TYPES; i++)
        if (strlen(ev_event_types[i]) == ev->event_type.len &&
            memcmp(ev_event_types[i], ev->event_type.ptr, ev->event_type.len) == 0)
            self->by_type[i]++;
    int64_t lag = ev_elapsed_us(ev_now_us(), ev->published_at);
    self->lag_sum_us += (double)lag;
    if (lag > self->lag_max_us)
        self->lag_max_us = lag;
}

/* --stats: one line for the last second; resets the counts. */
static bool s_stats_line(tap_t *self, uint64_t events, double seconds)
{
    ev_buf_printf(&self->line, "{\"time\":\"");
    ev_format_time(&self->line, ev_now_us(), true);
    ev_buf_printf(&self->line, "\",\"events_per_s\":%.0f,\"by_type\":{", (double)events / seconds);
    for (int i = 0; ev_event_types[i] && i < MAX_TYPES; i++) {
        ev_buf_printf(&self->line, "%s\"%s\":%.0f", i ? "," : "", ev_event_types[i],
                      (double)self->by_type[i] / seconds);
        self->by_type[i] = 0;
    }
    ev_buf_puts(&self->line, "},\"by_partition\":{");
    bool first = true;
    for (int p = 0; p < self->partitions; p++) {
        if (!self->by_partition[p])
            continue;
        ev_buf_printf(&self->line, "%s\"%d\":%.0f", first ? "" : ",", p, (double)self->by_partition[p] / seconds);
        first = false;
        self->by_partition[p] = 0;
    }
    ev_buf_printf(&self->line, "},\"lag_ms_avg\":%.1f,\"lag_ms_max\":%.1f}",
                  events ? self->lag_sum_us / (double)events / 1000.0 : 0.0, (double)self->lag_max_us / 1000.0);
    self->lag_sum_us = 0;
    self->lag_max_us = 0;
    bool ok = s_flush_line(self);
    fflush(self->out);
    return ok;
}

/* True once --count events were printed. */
static bool s_enough(const tap_t *self)
{
    return self->opt.count && (int64_t)self->printed >= self->opt.count;
}

/* Filters, then prints or counts one event; false when output failed. */
static bool s_event(tap_t *self, const ev_event_t *ev, uint64_t *second_events)
{
    if (self->opt.event_type &&
        (strlen(self->opt.event_type) != ev->event_type.len ||
         memcmp(self->opt.event_type, ev->event_type.ptr, ev->event_type.len) != 0))
        return true;
    self->printed++;
    if (self->opt.stats) {
        (*second_events)++;
        s_count(self, ev);
        return true;
    }
    ev_json_append_event(&self->line, ev);
    return s_flush_line(self);
}

/* Handles one message: a heartbeat, or each event of an event message;
 * false when output failed. */
static bool s_message(tap_t *self, zmq_msg_t *topic, zmq_msg_t *body, uint64_t *second_events)
{
    uint32_t partition;
    ev_msg_kind_t kind;
    if (!ev_topic_parse(zmq_msg_data(topic), zmq_msg_size(topic), &partition, &kind))
        return true; /* the welcome, or a topic of a later version */
    ev_error_t err;
    if (kind == EV_MSG_HEARTBEAT) {
        ev_heartbeat_t hb;
        if (!self->opt.heartbeats || self->opt.stats ||
            ev_codec_decode_heartbeat(self->codec, zmq_msg_data(body), zmq_msg_size(body), &hb, &err))
            return true;
        ev_buf_puts(&self->line, "{\"heartbeat\":{\"source\":");
        ev_json_append_string(&self->line, hb.source.ptr, hb.source.len);
        ev_buf_printf(&self->line, ",\"partition\":%d,\"seq\":%lld,\"published_at\":\"", hb.partition,
                      (long long)hb.seq);
        ev_format_time(&self->line, hb.published_at, true);
        ev_buf_puts(&self->line, "\"}}");
        return s_flush_line(self);
    }
    /* Each event of the body on its own, until --count is reached. */
    size_t offset = 0, rawlen;
    const void *raw;
    ev_event_t ev;
    ev_next_t next;
    while (!s_enough(self) && (next = ev_codec_next_event(self->codec, zmq_msg_data(body), zmq_msg_size(body),
                                                          &offset, &ev, &raw, &rawlen, &err)) != EV_NEXT_END) {
        if (next != EV_NEXT_EVENT) {
            self->undecodable++;
            evp_warn(next == EV_NEXT_BROKEN ? "undecodable rest of a message" : "undecodable event",
                     "topic=%.8s reason=%s detail=\"%s\"", (const char *)zmq_msg_data(topic),
                     ev_reject_name(err.code), err.detail);
            if (next == EV_NEXT_BROKEN)
                break;
            continue;
        }
        if (!s_event(self, &ev, second_events))
            return false;
    }
    return true;
}

int tap_run(tap_t *self)
{
    int64_t start = zclock_mono(), last_flush = start, second_start = start;
    uint64_t second_events = 0;
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    int rc = 0;
    while (!evp_stopping()) {
        if (s_enough(self))
            break;
        int64_t now = zclock_mono();
        if (self->opt.run_ms && now - start >= self->opt.run_ms)
            break;
        if (self->opt.stats && now - second_start >= 1000) {
            if (!s_stats_line(self, second_events, (double)(now - second_start) / 1000.0))
                break;
            second_events = 0;
            second_start = now;
        }
        if (now - last_flush >= 100) {
            fflush(self->out);
            last_flush = now;
        }
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        /* A bounded run of messages between the checks above. */
        for (int i = 0; i < 4096; i++) {
            zmq_msg_t topic, body;
            zmq_msg_init(&topic);
            zmq_msg_init(&body);
            bool ok = zmq_msg_recv(&topic, self->sock, ZMQ_DONTWAIT) >= 0;
            bool two = ok && zmq_msg_more(&topic) && zmq_msg_recv(&body, self->sock, 0) >= 0;
            bool written = true;
            if (two)
                written = s_message(self, &topic, &body, &second_events);
            /* Frames beyond two belong to no message of ours. */
            while (ok && zmq_msg_more(two ? &body : &topic)) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->sock, 0);
                bool more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                if (!more)
                    break;
            }
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            if (!written) {
                /* A closed pipe (| head) is the reader's way to say enough. */
                rc = errno == EPIPE ? 0 : 1;
                goto done;
            }
            if (!ok || s_enough(self))
                break;
        }
    }
done:
    if (fflush(self->out) != 0 && errno != EPIPE)
        rc = 1;
    return rc;
}
