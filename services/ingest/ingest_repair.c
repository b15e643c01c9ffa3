/* The repair server (see ingest_repair.h). */
#include "ingest_repair.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "evpipe/curve.h"
#include "evpipe/log.h"
#include "evpipe/publisher.h"
#include "evpipe/wire.h"
#include "evpipe/zmqutil.h"
#include "ingest_archive.h"

/* How long one reply may wait for a writer that does not read. */
#define SEND_PATIENCE_MS 30000
/* Files of one source looked up in the ledger, at most. */
#define LEDGER_FILES_MAX 64
/* Archive heads are announced every ANNOUNCE_BEATS heartbeat intervals, and
 * only once they have not risen for QUIET_BEATS intervals (the publisher
 * itself announces what it is still publishing). */
#define ANNOUNCE_BEATS 5
#define QUIET_BEATS 3

struct ingest_repair_t {
    void *ctx;                   /* ZeroMQ context of the server, owned */
    void *router;                /* ROUTER bound on REPLAY_ENDPOINT */
    evp_curve_server_t *curve;   /* CURVE authentication, when CURVE=1 */
    pthread_t thread;            /* serves requests */
    bool started;                /* thread is running */
    atomic_bool stop;            /* asks the thread to end */
    atomic_uint_fast64_t served; /* requests answered */
    ingest_ledger_t *ledger;     /* files ingested (not owned) */
    ingest_metrics_t *metrics;   /* counts requests and events (not owned), or NULL */
    ingest_archive_t *index;     /* the archive index (used by the thread only) */
    ev_codec_t *codec;           /* encodes replies (thread only) */
    ingest_ledger_entry_t *found;/* LEDGER_FILES_MAX entries of scratch */
    bool warm;                   /* index the folder before the first request */
    char endpoint[EVP_TEXT_MAX]; /* for logs */
    evp_config_t cfg;            /* settings (the announcer's publisher is made from them) */
    evp_publisher_t *heads_pub;  /* announces the archive's heads (thread only), or NULL */
    int64_t next_announce_ms;    /* when the heads are next looked at (thread only) */
    evp_log_limit_t log_limit;   /* bounds the lines about requests (thread only) */
};

/* The request being answered. */
typedef struct {
    ingest_repair_t *self;   /* the server */
    zmq_msg_t *identity;     /* the asker's routing id */
    bool delimiter;          /* the asker sent an empty frame first (REQ style) */
    bool gone;               /* the asker cannot be reached any more */
    int64_t deadline_ms;     /* the answer stops here (REPAIR_MAX_MS: END then says how far it got) */
    bool out_of_time;        /* it did */
    int64_t last_seq;        /* the last seq sent (0: none) */
    int64_t sent;            /* events sent */
} s_reply_t;

/* ---- Replies ---- */

/* Sends [identity][""][command][body], waiting while the asker's queue is
 * full. Returns 0, or -1 when the asker is gone, does not read, or the
 * server stops. */
static int s_send(s_reply_t *rp, const char *command, const void *body, size_t blen)
{
    ingest_repair_t *self = rp->self;
    if (rp->gone)
        return -1;
    int64_t give_up = zclock_mono() + SEND_PATIENCE_MS;
    for (;;) {
        zmq_msg_t id;
        zmq_msg_init(&id);
        zmq_msg_copy(&id, rp->identity);
        int rc = zmq_msg_send(&id, self->router, ZMQ_SNDMORE);
        if (rc < 0)
            zmq_msg_close(&id);
        if (rc >= 0) {
            const void *parts[3] = {"", command, body};
            size_t lens[3] = {0, strlen(command), blen};
            int first = rp->delimiter ? 0 : 1;
            if (evp_zmq_send_parts(self->router, 0, 3 - first, parts + first, lens + first) == 0)
                return 0;
            /* The routing frame is queued: the rest cannot fail for lack of room. */
            evp_warn("repair reply cut short", "error=\"%s\"", zmq_strerror(errno));
            rp->gone = true;
            return -1;
        }
        if (errno == EHOSTUNREACH) {
            evp_info("repair asker went away", "%s", "");
            rp->gone = true;
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR) {
            evp_warn("repair reply failed", "error=\"%s\"", zmq_strerror(errno));
            rp->gone = true;
            return -1;
        }
        if (atomic_load(&self->stop) || zclock_mono() >= give_up) {
            if (!atomic_load(&self->stop))
                evp_warn("repair asker does not read its replies; giving up", "waited_ms=%d", SEND_PATIENCE_MS);
            rp->gone = true;
            return -1;
        }
    }
}

static int s_send_event(const ev_event_t *ev, void *arg)
{
    s_reply_t *rp = arg;
    if (zclock_mono() >= rp->deadline_ms) {
        rp->out_of_time = true;
        return -1;
    }
    ev_event_t out = *ev;
    out.published_at = ev_now_us();
    const void *body;
    size_t blen;
    ev_codec_encode_event(rp->self->codec, &out, &body, &blen);
    if (s_send(rp, EV_REPAIR_EVENT, body, blen) != 0)
        return -1;
    rp->last_seq = ev->seq;
    rp->sent++;
    ingest_metrics_repair_event(rp->self->metrics);
    return 0;
}

/* ---- Finding a source ---- */

/* Brings the index up to date for source: the folder, then the files the
 * ledger names for it. */
static void s_locate(ingest_repair_t *self, const char *source)
{
    ingest_archive_refresh(self->index);
    size_t n = ingest_ledger_find_source(self->ledger, source, self->found, LEDGER_FILES_MAX);
    for (size_t i = 0; i < n; i++) {
        const ingest_ledger_entry_t *e = &self->found[i];
        /* An old-format file has exactly one source, its file- source: known,
         * so it is not hashed again. */
        const char *known = strcmp(e->sources, source) == 0 && strncmp(source, "file-", 5) == 0 ? source : NULL;
        char why[EVP_WHY_MAX];
        if (ingest_archive_add(self->index, e->path, known, e->size, e->mtime_ns, why, sizeof why) != 0)
            evp_warn("ingested file cannot serve repairs", "source=%s error=\"%s\"", source, why);
    }
}

/* Sends the END of a request; false when the asker is gone. */
static bool s_end(s_reply_t *rp, const ev_repair_t *end)
{
    const void *body;
    size_t blen;
    ev_codec_encode_repair(rp->self->codec, end, &body, &blen);
    return s_send(rp, EV_REPAIR_END, body, blen) == 0;
}

/* Refuses a request that decoded but cannot be served: an END with
 * refused, so the asker does not wait for an answer that never comes. */
static void s_refuse(ingest_repair_t *self, s_reply_t *rp, const ev_repair_t *req, const char *why)
{
    ev_repair_t end = *req;
    end.refused = true;
    if (evp_log_allow(&self->log_limit, NULL)) {
        char src[4 * 64 + 1];
        evp_log_text(src, sizeof src, req->source.ptr, req->source.len);
        evp_warn("repair request refused", "id=%" PRIu64 " source=\"%s\" partition=%d error=\"%s\"", req->id, src,
                 (int)req->partition, why);
    }
    s_end(rp, &end);
}

static void s_serve(ingest_repair_t *self, s_reply_t *rp, const void *data, size_t len)
{
    ev_repair_t req;
    ev_error_t err;
    if (ev_codec_decode_repair(self->codec, data, len, &req, &err) != EV_OK) {
        /* No id to answer to. */
        if (evp_log_allow(&self->log_limit, NULL)) {
            char detail[sizeof err.detail];
            evp_log_text(detail, sizeof detail, err.detail, strlen(err.detail));
            evp_warn("repair request refused", "reason=%s error=\"%s\"", ev_reject_name(err.code), detail);
        }
        return;
    }
    /* A source the protocol allows: 1..64 characters of UTF-8, no NUL. */
    char source[4 * 64 + 1];
    long chars = req.source.ptr ? ev_utf8_chars(req.source.ptr, req.source.len) : -1;
    if (chars < 1 || (unsigned long)chars > ev_fields[EV_F_source].max_chars || req.source.len >= sizeof source ||
        memchr(req.source.ptr, '\0', req.source.len)) {
        s_refuse(self, rp, &req, "source: empty, too long or not text");
        return;
    }
    memcpy(source, req.source.ptr, req.source.len);
    source[req.source.len] = '\0';
    char shown[sizeof source];
    evp_log_text(shown, sizeof shown, source, req.source.len);
    /* A range over the cap is answered up to the cap; END's `to` says so. */
    int64_t to = req.to - req.from >= EV_REPAIR_RANGE_MAX ? req.from + EV_REPAIR_RANGE_MAX - 1 : req.to;
    int64_t t0 = zclock_mono();
    rp->deadline_ms = t0 + self->cfg.repair_max_ms;
    s_locate(self, source);
    bool found = ingest_archive_knows(self->index, source);
    int64_t sent = 0;
    if (found) {
        int64_t n = ingest_archive_read(self->index, source, req.partition, req.from, to, s_send_event, rp);
        if (n < 0 && !rp->out_of_time) {
            /* The asker is gone or the server stops: no END to send. */
            evp_info("repair abandoned", "id=%" PRIu64 " source=\"%s\" partition=%d", req.id, shown,
                     (int)req.partition);
            return;
        }
        sent = n < 0 ? rp->sent : n;
        if (rp->out_of_time) {
            /* What was sent answers [from, last sent]; the rest is asked again. */
            to = rp->last_seq >= req.from ? rp->last_seq : req.from;
        }
    }
    ev_repair_t end = req;
    end.source.ptr = source;
    end.to = to;
    end.sent = sent;
    end.found_source = found;
    end.head = found ? ingest_archive_head(self->index, source, req.partition) : 0;
    end.refused = rp->out_of_time && rp->last_seq < req.from;
    if (!s_end(rp, &end))
        return;
    atomic_fetch_add(&self->served, 1);
    ingest_metrics_repair_answered(self->metrics);
    evp_info("repair served", "id=%" PRIu64 " source=\"%s\" partition=%d from=%" PRId64 " to=%" PRId64
             " asked_to=%" PRId64 " sent=%" PRId64 " found_source=%s head=%" PRId64 " ms=%" PRId64,
             req.id, shown, (int)req.partition, req.from, end.to, req.to, sent, found ? "true" : "false", end.head,
             zclock_mono() - t0);
}

/* ---- Announcing the archive's heads ---- */

static void s_announce_one(const char *source, int32_t partition, int64_t head, int64_t changed_ms, void *arg)
{
    ingest_repair_t *self = arg;
    if (zclock_mono() - changed_ms < (int64_t)QUIET_BEATS * self->cfg.heartbeat_ms)
        return; /* still growing: its publisher announces it */
    evp_publisher_set_latest(self->heads_pub, (ev_str_t){source, (uint32_t)strlen(source)}, partition, head);
}

/* Heads of the archive that stopped growing are heartbeated (archived:
 * true), so events archived but never sent (a generator killed between the
 * two) reach the writers without waiting for any restart. */
static void s_announce(ingest_repair_t *self)
{
    if (!self->heads_pub)
        return;
    int64_t now = zclock_mono();
    if (now >= self->next_announce_ms) {
        self->next_announce_ms = now + (int64_t)ANNOUNCE_BEATS * self->cfg.heartbeat_ms;
        ingest_archive_refresh(self->index);
        ingest_archive_heads(self->index, s_announce_one, self);
    }
    evp_publisher_tick(self->heads_pub);
}

/* ---- The thread ---- */

/* Receives one whole message; frames go into parts (at most max; the rest
 * are dropped). Returns the number of frames, 0 when nothing came. */
static int s_recv(ingest_repair_t *self, zmq_msg_t *parts, int max)
{
    int n = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return n;
        }
        bool more = zmq_msg_more(&m);
        if (n < max)
            parts[n++] = m;
        else
            zmq_msg_close(&m);
        if (!more)
            return n;
    }
}

static bool s_cancelled(void *arg)
{
    ingest_repair_t *self = arg;
    return atomic_load(&self->stop);
}

static void *s_run(void *arg)
{
    ingest_repair_t *self = arg;
    if (self->warm) {
        int64_t t0 = zclock_mono();
        ingest_archive_refresh(self->index);
        if (!atomic_load(&self->stop))
            evp_info("archive indexed", "files=%zu bytes_read=%" PRIu64 " ms=%" PRId64,
                     ingest_archive_file_count(self->index), ingest_archive_bytes_read(self->index),
                     zclock_mono() - t0);
    }
    char why[EVP_WHY_MAX] = "";
    self->heads_pub = evp_publisher_new(&self->cfg, why, sizeof why);
    if (self->heads_pub)
        evp_publisher_announce_archive(self->heads_pub);
    else
        evp_warn("archive heads are not announced", "error=\"%s\"", why);
    while (!atomic_load(&self->stop)) {
        s_announce(self);
        zmq_pollitem_t item = {self->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) <= 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t parts[4];
        int n = s_recv(self, parts, 4);
        if (n == 0)
            continue;
        /* [identity] ([""]) ["REPAIR"] [body] */
        int cmd = 1;
        bool delimiter = n > 1 && zmq_msg_size(&parts[1]) == 0;
        if (delimiter)
            cmd = 2;
        if (n == cmd + 2 && zmq_msg_size(&parts[cmd]) == strlen(EV_REPAIR_REQUEST) &&
            memcmp(zmq_msg_data(&parts[cmd]), EV_REPAIR_REQUEST, strlen(EV_REPAIR_REQUEST)) == 0) {
            s_reply_t rp = {.self = self, .identity = &parts[0], .delimiter = delimiter};
            s_serve(self, &rp, zmq_msg_data(&parts[cmd + 1]), zmq_msg_size(&parts[cmd + 1]));
        } else {
            if (evp_log_allow(&self->log_limit, NULL))
                evp_warn("repair endpoint got a message that is not a repair request", "frames=%d", n);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    evp_publisher_destroy(&self->heads_pub, 0);
    return NULL;
}

/* ---- Life cycle ---- */

ingest_repair_t *ingest_repair_new(const evp_config_t *cfg, ingest_ledger_t *ledger, bool warm,
                                   ingest_metrics_t *metrics, char *why, size_t whylen)
{
    ingest_repair_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    atomic_init(&self->stop, false);
    atomic_init(&self->served, 0);
    self->ledger = ledger;
    self->metrics = metrics;
    self->warm = warm;
    self->cfg = *cfg;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", cfg->replay_endpoint);
    ingest_archive_opts_t ao = {cfg->archive_dir, cfg->partitions, (size_t)cfg->ingest_max_line, 0, s_cancelled,
                                self};
    self->index = ingest_archive_new(&ao);
    self->codec = ev_codec_new();
    if (self->codec)
        ev_codec_set_form(self->codec, ev_form_named(cfg->publish_form));
    self->found = calloc(LEDGER_FILES_MAX, sizeof *self->found);
    self->ctx = zmq_ctx_new();
    self->router = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->index || !self->codec || !self->found || !self->router) {
        snprintf(why, whylen, "cannot create the repair server: %s",
                 self->router ? "out of memory" : zmq_strerror(errno));
        ingest_repair_destroy(&self);
        return NULL;
    }
    int one = 1, timeout = 100;
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (evp_zmq_tune(self->router, cfg, cfg->bus_hwm, 0) != 0) {
        snprintf(why, whylen, "cannot set socket options: %s", zmq_strerror(errno));
        ingest_repair_destroy(&self);
        return NULL;
    }
    /* With CURVE on, writers are admitted by the same allowed keys as on the bus. */
    if (cfg->curve && (!(self->curve = evp_curve_server_new(self->ctx, cfg, why, whylen)) ||
                       evp_curve_server_apply(self->curve, self->router, EVP_CURVE_REPAIR, why, whylen) != 0)) {
        ingest_repair_destroy(&self);
        return NULL;
    }
    if (evp_zmq_bind(self->router, cfg->replay_endpoint, "REPLAY_ENDPOINT", why, whylen) != 0) {
        ingest_repair_destroy(&self);
        return NULL;
    }
    /* Thread creation is a full barrier: the socket moves to the thread. */
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        snprintf(why, whylen, "cannot start the repair thread: %s", strerror(errno));
        ingest_repair_destroy(&self);
        return NULL;
    }
    self->started = true;
    evp_info("repair server listening", "endpoint=%s archive_dir=\"%s\"", cfg->replay_endpoint, cfg->archive_dir);
    return self;
}

void ingest_repair_destroy(ingest_repair_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_repair_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, true);
        pthread_join(self->thread, NULL);
    }
    if (self->router)
        zmq_close(self->router);
    evp_curve_server_destroy(&self->curve);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    ingest_archive_destroy(&self->index);
    ev_codec_destroy(&self->codec);
    free(self->found);
    free(self);
    *self_p = NULL;
}

uint64_t ingest_repair_requests(const ingest_repair_t *self)
{
    return atomic_load(&((ingest_repair_t *)self)->served);
}
