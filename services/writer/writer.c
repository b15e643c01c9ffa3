/* The writer's loop (see writer.h): bus and repair sockets in, batches out. */
#include "writer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "evpipe/curve.h"
#include "evpipe/deploy.h"
#include "evpipe/log.h"
#include "evpipe/pg.h"
#include "evpipe/service.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "evpipe/zmqutil.h"
#include "writer_batch.h"
#include "writer_checkdb.h"
#include "writer_db.h"
#include "writer_metrics.h"
#include "writer_migrate.h"
#include "writer_partition.h"
#include "writer_share.h"
#include "writer_stream.h"

#define S_WELCOME "!welcome"
/* Messages taken from one socket per turn before looking at the others;
 * a turn also ends after S_CHECK_MS, so that the lease, the checks and the
 * linger come round while the bus never runs dry. */
#define S_READ_BURST 10000
/* How often repair timeouts are checked and a progress line may be logged. */
#define S_CHECK_MS 100
#define S_PROGRESS_MS 10000
/* How often settled sources are looked for to forget. */
#define S_FORGET_EVERY_MS 1000
/* ...and at most this many at a time (one statement marks them settled). */
#define S_FORGET_MAX 1024
/* Publishers' heads are recorded at most this often per stream. */
#define S_HEAD_EVERY_MS 1000
/* How long writer_finish keeps trying to commit. */
#define S_FINISH_MS 10000
/* A partition taken looks for events nobody announced after this long,
 * unless a heartbeat of the stream came first. */
#define S_PROBE_AFTER_MS 3000

struct writer_t {
    evp_config_t cfg;              /* settings (a copy) */
    void *zctx;                    /* ZeroMQ context */
    void *sub;                     /* SUB to BUS_SUBSCRIBE_ENDPOINT */
    void *dealer;                  /* DEALER to REPLAY_ENDPOINT */
    bool connected;                /* sockets connected (writer_start done) */
    ev_codec_t *codec;             /* decodes bodies, encodes repair requests */
    writer_streams_t *streams;     /* ordering state per (source, partition) */
    writer_batch_t *batch;         /* what the next transaction writes */
    writer_db_t *db;               /* PostgreSQL */
    writer_metrics_t *metrics;     /* Prometheus metrics and /healthz (METRICS_PORT) */
    writer_stats_t stats;          /* counters */
    writer_share_t *share;         /* the partitions owned, shared with the other writers */
    size_t pending_max;            /* rows the batch may hold while PostgreSQL is down */
    uint64_t next_repair_id;       /* ids of repair requests */
    bool stop;                     /* writer_stop was called */
    int64_t next_check_ms;         /* next repair timeout check */
    int64_t next_forget_ms;        /* next look for settled sources to forget */
    int64_t next_progress_ms;      /* next progress line */
    int64_t next_partition_ms;     /* next keeping of the events partitions (EVENTS_PARTITION_INTERVAL) */
    uint64_t progress_committed;   /* committed at the last progress line */
    evp_log_limit_t log_limit;     /* bounds the lines about bad messages */
};

/* ---- Bad messages ---- */

/* True when one more line about a bad message may be logged this second. */
static bool s_log_allowed(writer_t *self)
{
    return evp_log_allow(&self->log_limit, NULL);
}

/* Printable copy of at most 64 bytes (quotes and backslashes too become '?'). */
static void s_printable(char out[65], const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = len > 64 ? 64 : len;
    for (size_t i = 0; i < n; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') ? (char)p[i] : '?';
    out[n] = '\0';
}

/* Bytes of the reason in a line about an undecodable message. */
#define S_REASON_MAX 256

/* Counts a message with something undecodable in it; true when a line
 * about it may be logged, with the topic made printable in t and why in
 * reason. */
static bool s_undecodable_count(writer_t *self, const void *topic, size_t topic_len, const char *why, char t[65],
                                char reason[S_REASON_MAX])
{
    self->stats.undecodable++;
    if (!s_log_allowed(self))
        return false;
    s_printable(t, topic, topic_len);
    evp_log_text(reason, S_REASON_MAX, why, strlen(why));
    return true;
}

static void s_undecodable(writer_t *self, const char *where, const void *topic, size_t topic_len, const char *why)
{
    char t[65], reason[S_REASON_MAX];
    if (s_undecodable_count(self, topic, topic_len, why, t, reason))
        evp_warn("undecodable message dropped", "from=%s topic=\"%s\" reason=\"%s\"", where, t, reason);
}

/* ---- Repair requests ---- */

static void s_send_repair(writer_t *self, writer_stream_t *s, int64_t from, int64_t to, int64_t now)
{
    ev_repair_t req = {.id = self->next_repair_id++,
                       .source = {s->source, s->source_len},
                       .partition = s->partition,
                       .from = from,
                       .to = to};
    const void *body;
    size_t len;
    ev_codec_encode_repair(self->codec, &req, &body, &len);
    const void *parts[] = {EV_REPAIR_REQUEST, body};
    size_t lens[] = {strlen(EV_REPAIR_REQUEST), len};
    if (evp_zmq_send_parts(self->dealer, ZMQ_DONTWAIT, 2, parts, lens) != 0)
        evp_debug("repair request not sent", "source=%s partition=%d reason=\"%s\"", s->name, (int)s->partition,
                  zmq_strerror(errno));
    self->stats.repair_requests++;
    writer_stream_repair_sent(s, req.id, from, to, now);
}

/* Sends a repair request when the stream misses something and none is in
 * flight, or sends it again when the one in flight timed out. */
static void s_check_repair(writer_t *self, writer_stream_t *s, int64_t now)
{
    bool resend;
    if (!self->connected || !writer_stream_repair_due(s, now, self->cfg.writer_repair_timeout_ms, &resend))
        return;
    int64_t from, to;
    writer_stream_missing(s, &from, &to);
    if (resend) {
        self->stats.repair_timeouts++;
        evp_warn("no answer from the repair service", "source=%s partition=%d from=%lld to=%lld waited_ms=%lld",
                 s->name, (int)s->partition, (long long)s->repair_from, (long long)s->repair_to,
                 (long long)(now - s->repair_sent_ms));
    }
    s_send_repair(self, s, from, to, now);
    if (resend)
        return;
    if (s->repair_probe) {
        evp_info("asking for events after the last known seq", "source=%s partition=%d from=%lld to=%lld",
                 s->name, (int)s->partition, (long long)from, (long long)to);
    } else {
        self->stats.holes++;
        evp_info("missing events, asking for a repair", "source=%s partition=%d from=%lld to=%lld held=%zu",
                 s->name, (int)s->partition, (long long)from, (long long)to, writer_stream_held_count(s));
    }
}

/* ---- Events ---- */

/* Puts a taken event into the batch (as a row or a reject). */
static void s_take(writer_t *self, writer_stream_t *s, const ev_event_t *ev, const void *raw, size_t len,
                   int32_t topic_partition, bool from_repair, int64_t now)
{
    ev_error_t err;
    ev_reject_t rc =
        writer_batch_add_event(self->batch, s, ev, raw, len, topic_partition, from_repair, now, &err);
    if (rc != EV_OK && s_log_allowed(self)) {
        char detail[sizeof err.detail];
        evp_log_text(detail, sizeof detail, err.detail, strlen(err.detail));
        evp_warn("event rejected", "source=%s partition=%d seq=%lld reason=%s detail=\"%s\"", s->name,
                 (int)s->partition, (long long)ev->seq, ev_reject_name(rc), detail);
    }
}

/* Takes what the stream can take now: held events that come next, and the
 * gaps a finished repair left. Then asks for the next hole, if any. */
static void s_drain(writer_t *self, writer_stream_t *s, int64_t now)
{
    for (;;) {
        int64_t first, last;
        if (writer_stream_next_gap(s, &first, &last)) {
            writer_batch_add_gap(self->batch, s, first, last, now);
            evp_error("events cannot be repaired, recorded as a gap", "source=%s partition=%d first_seq=%lld "
                      "last_seq=%lld count=%lld",
                      s->name, (int)s->partition, (long long)first, (long long)last,
                      (long long)(last - first + 1));
            continue;
        }
        writer_held_t h;
        if (!writer_stream_pop_ready(self->streams, s, &h))
            break;
        ev_event_t ev;
        ev_error_t err;
        if (ev_codec_decode_event(self->codec, h.raw, h.len, &ev, &err) == EV_OK) {
            s_take(self, s, &ev, h.raw, h.len, h.topic_partition, h.from_repair, now);
        } else {
            /* It decoded when it came; keep the seq accounted for anyway. */
            memset(&ev, 0, sizeof ev);
            ev.source = (ev_str_t){s->source, s->source_len};
            ev.partition = s->partition;
            ev.seq = h.seq;
            writer_batch_add_reject(self->batch, s, &ev, h.raw, h.len, EV_REJECT_DECODE, err.detail, now);
            writer_batch_checkpoint(self->batch, s, h.seq);
        }
        free(h.raw);
    }
    s_check_repair(self, s, now);
}

/* Whether an event's identity names a stream this writer can keep; else
 * err says why. */
static bool s_identity_ok(const writer_t *self, const ev_event_t *ev, ev_error_t *err)
{
    long chars = ev->source.ptr ? ev_utf8_chars(ev->source.ptr, ev->source.len) : -1;
    if (chars < 1 || (unsigned long)chars > ev_fields[EV_F_source].max_chars) {
        if (ev_event_validate(ev, err) == EV_OK)
            ev_error_set(err, EV_REJECT_IDENTITY, "source: empty, too long or not text");
        return false;
    }
    if (ev->seq < 1 || ev->seq > EV_SEQ_MAX) {
        ev_error_set(err, EV_REJECT_IDENTITY, "seq: %lld, outside 1..2^62", (long long)ev->seq);
        return false;
    }
    if (ev->partition < 0 || ev->partition >= self->cfg.partitions) {
        ev_error_set(err, EV_REJECT_IDENTITY, "partition: %d is outside 0..%d", (int)ev->partition,
                     self->cfg.partitions - 1);
        return false;
    }
    return true;
}

/* The stream of (source, partition). One the writer does not hold (new, or
 * forgotten once settled) is made from its checkpoint, read from
 * PostgreSQL; when that cannot be read now, it is made unread (it takes
 * events from 0, asks for nothing, and its checkpoint is read as soon as it
 * can be). NULL when the partition already has WRITER_SOURCES_MAX sources:
 * refused, counted and logged (its events stay in the archive until the
 * bound is raised). */
static writer_stream_t *s_stream(writer_t *self, ev_str_t source, int32_t partition, int64_t now)
{
    writer_stream_t *s = writer_streams_get(self->streams, source.ptr, source.len, partition, false);
    if (!s && !writer_streams_crowded(self->streams, partition)) {
        char why[EVP_WHY_MAX];
        s = writer_db_stream(self->db, self->streams, NULL, source.ptr, source.len, partition, now, why, sizeof why);
        if (!s && (s = writer_streams_get(self->streams, source.ptr, source.len, partition, true))) {
            writer_stream_unread(self->streams, s);
            self->stats.streams_unread++;
            if (s_log_allowed(self))
                evp_warn("a source's checkpoint could not be read: it is read before anything is asked for",
                         "source=%s partition=%d error=\"%s\"", s->name, (int)partition, why);
        }
    }
    if (s) {
        writer_stream_heard(s, now);
        return s;
    }
    self->stats.streams_refused++;
    if (s_log_allowed(self)) {
        char shown[4 * 64 + 1];
        evp_log_text(shown, sizeof shown, source.ptr, source.len);
        evp_warn("a new source refused: the partition has WRITER_SOURCES_MAX sources", "source=\"%s\" "
                 "partition=%d sources_max=%d", shown, (int)partition, self->cfg.writer_sources_max);
    }
    return NULL;
}

/* An event from the bus (topic_partition >= 0) or a repair answer (-1). */
static void s_on_event(writer_t *self, const ev_event_t *ev, const void *raw, size_t len, int32_t topic_partition,
                       int64_t now)
{
    bool from_repair = topic_partition < 0;
    self->stats.received++;
    ev_error_t err;
    bool usable = s_identity_ok(self, ev, &err);
    if (usable && !writer_share_owns(self->share, ev->partition)) {
        /* The topic was ours, the body names another partition. */
        usable = false;
        ev_error_set(&err, EV_REJECT_IDENTITY, "partition: %d in the body, %d in the topic", (int)ev->partition,
                     (int)topic_partition);
    }
    if (!usable) {
        if (from_repair) {
            self->stats.foreign++; /* not an answer to anything this writer asked */
            return;
        }
        /* No stream of ours to account it to: a reject, no seq taken. */
        writer_batch_add_reject(self->batch, NULL, ev, raw, len, err.code, err.detail, now);
        if (s_log_allowed(self)) {
            char detail[sizeof err.detail];
            evp_log_text(detail, sizeof detail, err.detail, strlen(err.detail));
            evp_warn("event rejected", "topic_partition=%d seq=%lld reason=%s detail=\"%s\"", (int)topic_partition,
                     (long long)ev->seq, ev_reject_name(err.code), detail);
        }
        return;
    }
    writer_stream_t *s = s_stream(self, ev->source, ev->partition, now);
    if (!s)
        return;
    if (from_repair)
        writer_stream_repair_progress(s, now);
    switch (writer_stream_offer(self->streams, s, ev->seq, raw, len, topic_partition, from_repair)) {
    case WRITER_OFFER_DUPLICATE:
        self->stats.duplicates++;
        break;
    case WRITER_OFFER_HELD:
        s_check_repair(self, s, now);
        break;
    case WRITER_OFFER_TAKE:
        s_take(self, s, ev, raw, len, topic_partition, from_repair, now);
        if (writer_stream_held_count(s) > 0 || s->gap_until > s->accepted)
            s_drain(self, s, now);
        break;
    }
}

/* A heartbeat that says its publisher runs with another PARTITIONS than
 * this writer: its events in partitions the writers do not have are never
 * read, and its users are spread over partitions in another way.
 * Counted and logged (rate-limited); the heartbeat is taken all the same
 * (its seq is true of its own partition). */
static void s_check_partitions(writer_t *self, const ev_heartbeat_t *hb)
{
    if (hb->partitions == 0 || hb->partitions == self->cfg.partitions)
        return;
    self->stats.partitions_differ++;
    if (s_log_allowed(self)) {
        char src[65];
        s_printable(src, hb->source.ptr, hb->source.len);
        evp_error("a publisher runs with another PARTITIONS than this writer",
                  "source=\"%s\" publisher_partitions=%d partitions=%d", src, (int)hb->partitions,
                  self->cfg.partitions);
    }
}

static void s_on_heartbeat(writer_t *self, const void *body, size_t len, uint32_t topic_partition, int64_t now)
{
    ev_heartbeat_t hb;
    ev_error_t err;
    if (ev_codec_decode_heartbeat(self->codec, body, len, &hb, &err) != EV_OK) {
        char topic[EV_TOPIC_MAX];
        size_t n = ev_topic_format(topic, topic_partition, EV_MSG_HEARTBEAT);
        s_undecodable(self, "bus", topic, n, err.detail);
        return;
    }
    self->stats.heartbeats++;
    s_check_partitions(self, &hb);
    long chars = hb.source.ptr ? ev_utf8_chars(hb.source.ptr, hb.source.len) : -1;
    if (chars < 1 || (unsigned long)chars > ev_fields[EV_F_source].max_chars || hb.partition != (int32_t)topic_partition ||
        hb.partition >= self->cfg.partitions || !writer_share_owns(self->share, hb.partition)) {
        char topic[EV_TOPIC_MAX];
        size_t n = ev_topic_format(topic, topic_partition, EV_MSG_HEARTBEAT);
        s_undecodable(self, "bus", topic, n, "heartbeat: bad source or partition");
        return;
    }
    writer_stream_t *s = s_stream(self, hb.source, hb.partition, now);
    if (!s)
        return;
    /* The archive's announcements say nothing of how the publisher keeps its events. */
    bool best_effort = hb.archived ? s->best_effort : hb.best_effort;
    /* A head past any seq a writer takes claims nothing it could ever see. */
    int64_t head = hb.seq < EV_SEQ_MAX ? hb.seq : EV_SEQ_MAX;
    if (writer_stream_heartbeat(s, head, best_effort, now, S_HEAD_EVERY_MS))
        writer_batch_add_head(self->batch, s, s->head_recorded_seq, now);
    s_check_repair(self, s, now);
}

/* ---- Commit ---- */

/* While the batch is empty (it holds stream ids and checkpoints to move):
 * reads the checkpoints of streams made unread, and about once a second
 * forgets settled sources not heard from for WRITER_STREAM_IDLE_MS, their
 * checkpoints marked settled first, so finished files and generator runs
 * never fill WRITER_SOURCES_MAX and a writer taking the partition later
 * leaves them unread. */
static void s_tidy_streams(writer_t *self, int64_t now)
{
    if (!writer_batch_empty(self->batch))
        return;
    uint32_t limit = writer_streams_id_limit(self->streams);
    for (uint32_t id = 0; id < limit && writer_streams_unread(self->streams) > 0; id++) {
        writer_stream_t *s = writer_streams_by_id(self->streams, id);
        char why[EVP_WHY_MAX];
        if (!s || !s->unread)
            continue;
        if (!writer_db_connected(self->db) ||
            !writer_db_stream(self->db, self->streams, s, s->source, s->source_len, s->partition, now, why, sizeof why))
            break;
        s_drain(self, s, now); /* what it held above its checkpoint goes now, or is asked for */
    }
    if (now < self->next_forget_ms || !writer_db_connected(self->db) || !writer_batch_empty(self->batch))
        return;
    self->next_forget_ms = now + S_FORGET_EVERY_MS;
    uint32_t ids[S_FORGET_MAX];
    size_t n = writer_streams_idle(self->streams, now, self->cfg.writer_stream_idle_ms, ids, S_FORGET_MAX);
    char why[EVP_WHY_MAX];
    if (n == 0)
        return;
    if (writer_db_settle(self->db, self->streams, ids, n, now, why, sizeof why) != 0) {
        evp_warn("could not mark finished sources settled: kept for now", "error=\"%s\"", why);
        return;
    }
    writer_streams_forget(self->streams, ids, n);
    self->stats.streams_forgotten += n;
    evp_debug("settled sources forgotten", "streams=%zu", n);
}

/* Commits the batch, on a session that holds the locks of the partitions
 * owned (re-taken first after a reconnection). */
static bool s_commit(writer_t *self, int64_t now)
{
    if (!writer_share_ready(self->share, now))
        return false;
    if (writer_db_commit(self->db, self->batch, self->streams, &self->stats, now) != WRITER_COMMIT_OK)
        return false;
    writer_batch_reset(self->batch);
    s_tidy_streams(self, now);
    return true;
}

static size_t s_batch_items(const writer_t *self)
{
    return self->batch->nrows + self->batch->nrejects;
}

/* WRITER_BATCH_SIZE rows, or WRITER_BATCH_MB of rows, bodies and rejects:
 * commit now (a flood of large refused events cannot grow a batch without
 * bound either). */
static bool s_batch_full(const writer_t *self)
{
    return s_batch_items(self) >= (size_t)self->cfg.writer_batch_size ||
           writer_batch_bytes(self->batch) >= (size_t)self->cfg.writer_batch_mb * 1024 * 1024;
}

/* Whether new events may be read from the bus: not when the holdback bound
 * is reached, nor when the batch is full and cannot be committed. */
static bool s_may_read_bus(writer_t *self)
{
    if (writer_streams_full(self->streams)) {
        /* Events waiting on claims nothing backs must not stop the others:
         * they are freed (and asked for again once there is evidence). */
        size_t freed = writer_streams_evict_unproven(self->streams);
        if (freed) {
            self->stats.evicted += freed;
            if (s_log_allowed(self))
                evp_warn("holdback full: events waiting on unproven claims freed", "events=%zu held=%zu", freed,
                         writer_streams_held(self->streams));
        }
    }
    return !writer_streams_full(self->streams) && s_batch_items(self) < self->pending_max &&
           writer_batch_bytes(self->batch) < (size_t)self->cfg.writer_batch_mb * 1024 * 1024;
}

/* Sends what the batch gained to PostgreSQL ahead of its commit, on a
 * session that holds the locks (else the commit sends it all). */
static void s_send_ahead(writer_t *self, int64_t now)
{
    if (writer_db_connected(self->db) && writer_share_joined(self->share))
        writer_db_send_ahead(self->db, self->batch, now);
}

static void s_commit_if_due(writer_t *self, int64_t now)
{
    if (writer_batch_empty(self->batch))
        return;
    bool full = s_batch_full(self);
    bool old = now - self->batch->first_ms >= self->cfg.writer_linger_ms;
    if ((full || old) && (writer_db_connected(self->db) || now >= writer_db_next_attempt_ms(self->db)))
        s_commit(self, now);
}

/* ---- Partitions: what sharing them asks of the writer (writer_share.h) ---- */

static void s_subscribe(void *arg, int32_t p, bool on)
{
    writer_t *self = arg;
    char prefix[EV_TOPIC_MAX];
    size_t len = ev_topic_prefix(prefix, (uint32_t)p);
    if (zmq_setsockopt(self->sub, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, prefix, len) != 0)
        evp_error(on ? "cannot subscribe" : "cannot unsubscribe", "partition=%d reason=\"%s\"", (int)p,
                  zmq_strerror(errno));
}

/* Commits the batch before partitions are given up, when it holds anything. */
static bool s_commit_held(void *arg, int64_t now)
{
    writer_t *self = arg;
    return writer_batch_empty(self->batch) || s_commit(self, now);
}

/* Forgets partitions: what the batch holds of them, their streams and the
 * events they hold back (the next owner repairs them from the archive). */
static void s_forget(void *arg, const int32_t *parts, size_t n)
{
    writer_t *self = arg;
    bool gone[EV_PARTITIONS_MAX] = {false};
    for (size_t i = 0; i < n; i++)
        gone[parts[i]] = true;
    uint32_t limit = writer_streams_id_limit(self->streams);
    bool *drop = calloc(limit ? limit : 1, sizeof *drop);
    if (!drop)
        abort();
    for (uint32_t id = 0; id < limit; id++) {
        const writer_stream_t *s = writer_streams_by_id(self->streams, id);
        drop[id] = s && gone[s->partition];
    }
    size_t rows = writer_batch_drop_streams(self->batch, drop, limit);
    free(drop);
    if (rows > 0)
        evp_info("rows of partitions given up dropped from the batch", "rows=%zu", rows);
    for (size_t i = 0; i < n; i++)
        writer_streams_drop_partition(self->streams, parts[i]);
}

/* Partitions just taken: the heads read are holes to repair now; events
 * published after them are looked for later unless a heartbeat tells. How
 * many streams the partitions have. */
static size_t s_taken(void *arg, const int32_t *parts, size_t n, int64_t now)
{
    writer_t *self = arg;
    bool mine[EV_PARTITIONS_MAX] = {false};
    for (size_t i = 0; i < n; i++)
        mine[parts[i]] = true;
    size_t streams = 0;
    uint32_t limit = writer_streams_id_limit(self->streams);
    for (uint32_t id = 0; id < limit; id++) {
        writer_stream_t *s = writer_streams_by_id(self->streams, id);
        if (!s || !mine[s->partition])
            continue;
        streams++;
        writer_stream_probe_at(s, now + S_PROBE_AFTER_MS);
        s_check_repair(self, s, now);
    }
    return streams;
}

/* ---- Messages ---- */

/* Receives one whole message: up to two frames kept, the rest counted.
 * False when there is none waiting. */
static bool s_recv(void *sock, zmq_msg_t frames[2], int *nframes)
{
    *nframes = 0;
    zmq_msg_t extra;
    for (;;) {
        zmq_msg_t *m = *nframes < 2 ? &frames[*nframes] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, *nframes == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            if (*nframes == 0)
                return false;
            break; /* interrupted within a message: what came is judged */
        }
        bool more = zmq_msg_more(m);
        if (*nframes >= 2)
            zmq_msg_close(m);
        (*nframes)++;
        if (!more)
            break;
    }
    return true;
}

static void s_close_frames(zmq_msg_t frames[2], int nframes)
{
    for (int i = 0; i < nframes && i < 2; i++)
        zmq_msg_close(&frames[i]);
}

/* Part of a message of several events could not be decoded: counted once
 * as undecodable, logged with what was taken and what was lost. dropped:
 * arrays or maps that were not events (one event lost each); unreadable:
 * bytes at the end whose events cannot be found; why: the first refusal, of
 * event `nth` (from 1) at byte `at`. */
static void s_undecodable_part(writer_t *self, const void *topic, size_t topic_len, size_t taken, size_t dropped,
                               size_t unreadable, size_t nth, size_t at, const char *why)
{
    char t[65], reason[S_REASON_MAX];
    if (s_undecodable_count(self, topic, topic_len, why, t, reason))
        evp_warn("undecodable events in a message",
                 "from=bus topic=\"%s\" taken=%zu dropped=%zu unreadable_bytes=%zu first_bad_event=%zu at_byte=%zu "
                 "reason=\"%s\"",
                 t, taken, dropped, unreadable, nth, at, reason);
}

/* Every event of an `ev` body, in order, each with its own bytes and
 * checked against the topic's partition. An array or map that is not an
 * event is lost alone; a value whose end cannot be found loses the rest of
 * the body. Either way the message counts once as undecodable; a body of
 * one event that fails is dropped as a whole, as it always was. */
static void s_on_event_body(writer_t *self, const void *topic, size_t topic_len, uint32_t partition,
                            const void *body, size_t len, int64_t now)
{
    size_t offset = 0, events = 0, taken = 0, dropped = 0, unreadable = 0;
    size_t bad_nth = 0, bad_at = 0;
    ev_error_t bad = {0}; /* the first refusal */
    for (;;) {
        size_t at = offset, rawlen;
        const void *raw;
        ev_event_t ev;
        ev_error_t err;
        ev_next_t next = ev_codec_next_event(self->codec, body, len, &offset, &ev, &raw, &rawlen, &err);
        if (next == EV_NEXT_END)
            break;
        events++;
        if (next == EV_NEXT_EVENT) {
            s_on_event(self, &ev, raw, rawlen, (int32_t)partition, now);
            taken++;
            continue;
        }
        if (!bad_nth)
            bad = err, bad_nth = events, bad_at = at;
        if (next == EV_NEXT_BROKEN) {
            unreadable = len - at;
            break;
        }
        dropped++;
    }
    if (!bad_nth)
        return;
    if (events == 1)
        s_undecodable(self, "bus", topic, topic_len, bad.detail); /* the whole message was that one value */
    else
        s_undecodable_part(self, topic, topic_len, taken, dropped, unreadable, bad_nth, bad_at, bad.detail);
}

static void s_on_bus_message(writer_t *self, zmq_msg_t frames[2], int nframes, int64_t now)
{
    const void *topic = zmq_msg_data(&frames[0]);
    size_t topic_len = zmq_msg_size(&frames[0]);
    if (nframes == 1 && topic_len == strlen(S_WELCOME) && memcmp(topic, S_WELCOME, topic_len) == 0) {
        evp_info("subscribed to the bus", "partitions=%zu endpoint=%s", writer_share_owned_count(self->share),
                 self->cfg.bus_subscribe_endpoint);
        return;
    }
    uint32_t partition;
    ev_msg_kind_t kind;
    if (nframes != 2) {
        char why[EVP_WHY_MAX];
        snprintf(why, sizeof why, "%d frames, 2 were expected", nframes);
        s_undecodable(self, "bus", topic, topic_len, why);
        return;
    }
    if (!ev_topic_parse(topic, topic_len, &partition, &kind)) {
        s_undecodable(self, "bus", topic, topic_len, "not a topic like p0007/ev");
        return;
    }
    if (!writer_share_owns(self->share, (int32_t)partition)) {
        self->stats.foreign++; /* still in flight after giving the partition up */
        return;
    }
    const void *body = zmq_msg_data(&frames[1]);
    size_t len = zmq_msg_size(&frames[1]);
    if (kind == EV_MSG_HEARTBEAT) {
        s_on_heartbeat(self, body, len, partition, now);
        return;
    }
    s_on_event_body(self, topic, topic_len, partition, body, len, now);
}

/* A repair answer left part of a hole without evidence: counted, logged
 * (rate-limited), asked for again after the stream's backoff. Nothing of
 * it becomes a gap or moves a checkpoint. */
static void s_unsettled(writer_t *self, const writer_stream_t *s)
{
    self->stats.unsettled[s->waiting]++;
    if (!s_log_allowed(self))
        return;
    switch (s->waiting) {
    case WRITER_WAIT_UNKNOWN:
        evp_warn("the repair service does not know this source: no answer yet, asking again later",
                 "source=%s partition=%d accepted=%lld claimed=%lld retry_ms=%d", s->name, (int)s->partition,
                 (long long)s->accepted, (long long)s->seen, s->backoff_ms);
        break;
    case WRITER_WAIT_BEYOND:
        evp_warn("seqs claimed beyond the archive's head are not known to exist: no gap, asking again later",
                 "source=%s partition=%d archive_head=%lld claimed=%lld retry_ms=%d", s->name, (int)s->partition,
                 (long long)s->proven, (long long)s->seen, s->backoff_ms);
        break;
    case WRITER_WAIT_REFUSED:
        evp_warn("the repair service refused a request: asking again later", "source=%s partition=%d retry_ms=%d",
                 s->name, (int)s->partition, s->backoff_ms);
        break;
    case WRITER_WAIT_NONE:
        break;
    }
}

static void s_on_repair_message(writer_t *self, zmq_msg_t frames[2], int nframes, int64_t now)
{
    const void *kind = zmq_msg_data(&frames[0]);
    size_t kind_len = zmq_msg_size(&frames[0]);
    if (nframes != 2) {
        s_undecodable(self, "repair", kind, kind_len, "2 frames were expected");
        return;
    }
    const void *body = zmq_msg_data(&frames[1]);
    size_t len = zmq_msg_size(&frames[1]);
    ev_error_t err;
    if (kind_len == strlen(EV_REPAIR_EVENT) && memcmp(kind, EV_REPAIR_EVENT, kind_len) == 0) {
        ev_event_t ev;
        if (ev_codec_decode_event(self->codec, body, len, &ev, &err) != EV_OK) {
            s_undecodable(self, "repair", kind, kind_len, err.detail);
            return;
        }
        s_on_event(self, &ev, body, len, -1, now);
        return;
    }
    if (kind_len == strlen(EV_REPAIR_END) && memcmp(kind, EV_REPAIR_END, kind_len) == 0) {
        ev_repair_t end;
        if (ev_codec_decode_repair(self->codec, body, len, &end, &err) != EV_OK) {
            s_undecodable(self, "repair", kind, kind_len, err.detail);
            return;
        }
        writer_stream_t *s = writer_streams_get(self->streams, end.source.ptr, end.source.len, end.partition, false);
        writer_end_t what = s ? writer_stream_repair_end(s, &end, now) : WRITER_END_STALE;
        if (what == WRITER_END_STALE) {
            evp_debug("stale repair answer ignored", "id=%llu", (unsigned long long)end.id);
            return;
        }
        evp_info("repair answered", "source=%s partition=%d from=%lld to=%lld sent=%lld found_source=%s head=%lld",
                 s->name, (int)s->partition, (long long)end.from, (long long)end.to, (long long)end.sent,
                 end.found_source ? "true" : "false", (long long)end.head);
        if (what == WRITER_END_WAIT)
            s_unsettled(self, s);
        int64_t head;
        if (writer_stream_head_grew(s, &head))
            writer_batch_add_head(self->batch, s, head, now);
        s_drain(self, s, now);
        return;
    }
    s_undecodable(self, "repair", kind, kind_len, "neither EVENT nor END");
}

/* ---- Periodic work ---- */

/* Requests timed out, holes not asked for yet (a partition taken before the
 * sockets were connected), probes whose time has come, and held events a
 * checkpoint read since has made next (reloaded after a reconnection). */
static void s_check_timeouts(writer_t *self, int64_t now)
{
    uint32_t n = writer_streams_id_limit(self->streams);
    for (uint32_t i = 0; i < n; i++) {
        writer_stream_t *s = writer_streams_by_id(self->streams, i);
        if (!s)
            continue;
        writer_stream_probe_due(s, now);
        if (writer_stream_held_count(s) > 0)
            s_drain(self, s, now);
        else
            s_check_repair(self, s, now);
    }
}

static void s_progress(writer_t *self)
{
    writer_stats_t *st = &self->stats;
    if (st->latency_window.count > 0 || st->committed != self->progress_committed)
        evp_info("progress", "committed=%llu total=%llu duplicates=%llu rejects=%llu gaps=%llu held=%zu "
                 "p50_ms=%.1f p99_ms=%.1f",
                 (unsigned long long)(st->committed - self->progress_committed), (unsigned long long)st->committed,
                 (unsigned long long)st->duplicates, (unsigned long long)st->rejects_total,
                 (unsigned long long)st->gaps, writer_streams_held(self->streams),
                 (double)writer_latency_percentile(&st->latency_window, 50) / 1000.0,
                 (double)writer_latency_percentile(&st->latency_window, 99) / 1000.0);
    self->progress_committed = st->committed;
    writer_latency_reset(&st->latency_window);
}

/* Keeps the events partitions on the writer's connection, between two
 * transactions (so its own open COPY never waits for the partition locks). */
static void s_keep_partitions(writer_t *self, int64_t now)
{
    char why[EVP_WHY_MAX];
    self->next_partition_ms = now + WRITER_PARTITION_EVERY_MS;
    if (writer_partition_maintain(writer_db_conn(self->db), &self->cfg, false, why, sizeof why) == 0)
        return;
    if (evp_pg_lost(writer_db_conn(self->db))) {
        writer_db_fail(self->db, now, why);
        return;
    }
    char reason[sizeof why];
    evp_warn("events partitions not kept; trying again later", "reason=\"%s\"",
             evp_log_text(reason, sizeof reason, why, strlen(why)));
}

/* ---- The loop ---- */

/* Reads the repair answers or the bus (bus) until either has nothing,
 * S_READ_BURST messages or turn_end; commits a batch that fills, else
 * sends its rows ahead. Returns the time after the last message. */
static int64_t s_read_turn(writer_t *self, bool bus, int64_t now, int64_t turn_end)
{
    void *sock = bus ? self->sub : self->dealer;
    zmq_msg_t frames[2];
    int nframes;
    for (int i = 0;
         i < S_READ_BURST && now < turn_end && (!bus || s_may_read_bus(self)) && s_recv(sock, frames, &nframes);
         i++) {
        if (bus)
            s_on_bus_message(self, frames, nframes, now);
        else
            s_on_repair_message(self, frames, nframes, now);
        s_close_frames(frames, nframes);
        if (s_batch_full(self))
            s_commit_if_due(self, now);
        else
            s_send_ahead(self, now);
        now = zclock_mono();
    }
    return now;
}

void writer_step(writer_t *self, int max_wait_ms)
{
    assert(self->connected);
    int64_t now = zclock_mono();
    int64_t wait = max_wait_ms;
    if (!writer_batch_empty(self->batch)) {
        int64_t due = self->batch->first_ms + self->cfg.writer_linger_ms - now;
        if (!writer_db_connected(self->db) && writer_db_next_attempt_ms(self->db) - now > due)
            due = writer_db_next_attempt_ms(self->db) - now;
        if (due < wait)
            wait = due < 0 ? 0 : due;
    }
    if (wait > S_CHECK_MS)
        wait = S_CHECK_MS;
    bool read_bus = s_may_read_bus(self);
    zmq_pollitem_t items[] = {{self->dealer, 0, ZMQ_POLLIN, 0}, {self->sub, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, read_bus ? 2 : 1, (long)wait) < 0 && errno != EINTR)
        evp_error("zmq_poll failed", "reason=\"%s\"", zmq_strerror(errno));

    /* Repair answers first: they are what frees held events. */
    now = zclock_mono();
    int64_t turn_end = now + S_CHECK_MS;
    now = s_read_turn(self, false, now, turn_end);
    s_read_turn(self, true, now, turn_end);
    now = zclock_mono();
    s_commit_if_due(self, now);
    if (now >= self->next_check_ms) {
        s_tidy_streams(self, now);
        s_check_timeouts(self, now);
        writer_share_check_notify(self->share);
        self->next_check_ms = now + S_CHECK_MS;
    }
    if (writer_share_due(self->share, now)) {
        /* Looking at the members needs the connection: a batch whose rows
         * went ahead is committed first rather than given up. */
        if (writer_db_ahead(self->db))
            s_commit(self, now);
        writer_share_rebalance(self->share, now);
    }
    if (writer_partition_enabled(&self->cfg) && now >= self->next_partition_ms && !writer_db_ahead(self->db) &&
        writer_db_connected(self->db))
        s_keep_partitions(self, now);
    if (now >= self->next_progress_ms) {
        s_progress(self);
        self->next_progress_ms = now + S_PROGRESS_MS;
    }
    writer_metrics_sync(self->metrics, &self->stats, writer_share_owned_count(self->share),
                        writer_db_connected(self->db));
}

/* ---- Lifecycle ---- */

writer_t *writer_new(const evp_config_t *cfg, char *why, size_t whylen)
{
    writer_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->pending_max = (size_t)(cfg->writer_holdback_max > cfg->writer_batch_size ? cfg->writer_holdback_max
                                                                                   : cfg->writer_batch_size);
    self->next_repair_id = 1;
    self->zctx = zmq_ctx_new();
    self->codec = ev_codec_new();
    self->streams =
        writer_streams_new((size_t)cfg->writer_holdback_max, (size_t)cfg->writer_holdback_mb * 1024 * 1024,
                           (uint32_t)cfg->writer_sources_max);
    self->batch = writer_batch_new((size_t)cfg->writer_batch_size);
    self->metrics = writer_metrics_new();
    self->db = writer_db_new(&self->cfg, self->metrics);
    writer_share_hooks_t hooks = {s_subscribe, s_commit_held, s_forget, s_taken, self};
    if (self->db && self->streams)
        self->share = writer_share_new(&self->cfg, self->db, self->streams, &self->stats, &hooks);
    if (!self->zctx || !self->codec || !self->streams || !self->batch || !self->metrics || !self->db ||
        !self->share) {
        snprintf(why, whylen, "out of memory");
        writer_destroy(&self);
        return NULL;
    }
    self->sub = zmq_socket(self->zctx, ZMQ_SUB);
    self->dealer = zmq_socket(self->zctx, ZMQ_DEALER);
    int immediate = 1;
    if (!self->sub || !self->dealer || evp_zmq_tune(self->sub, &self->cfg, cfg->bus_hwm, 0) != 0 ||
        evp_zmq_tune(self->dealer, &self->cfg, cfg->bus_hwm, 0) != 0 ||
        /* Requests are not queued for a repair service that is not there: they are re-sent. */
        zmq_setsockopt(self->dealer, ZMQ_IMMEDIATE, &immediate, sizeof immediate) != 0 ||
        zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, S_WELCOME, strlen(S_WELCOME)) != 0) {
        snprintf(why, whylen, "cannot set up the sockets: %s", zmq_strerror(errno));
        writer_destroy(&self);
        return NULL;
    }
    /* With CURVE=1 both the bus and the repair endpoint admit only known keys. */
    if (evp_curve_client_apply(self->sub, &self->cfg, why, whylen) != 0 ||
        evp_curve_client_apply(self->dealer, &self->cfg, why, whylen) != 0) {
        writer_destroy(&self);
        return NULL;
    }
    writer_metrics_set_partitions(self->metrics, cfg->partitions);
    if (writer_metrics_serve(self->metrics, cfg->metrics_port, why, whylen) != 0) {
        writer_destroy(&self);
        return NULL;
    }
    return self;
}

void writer_destroy(writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    writer_t *self = *self_p;
    /* First: the HTTP thread stops before anything it reads goes. */
    writer_metrics_destroy(&self->metrics);
    if (self->sub)
        zmq_close(self->sub);
    if (self->dealer)
        zmq_close(self->dealer);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    ev_codec_destroy(&self->codec);
    writer_streams_destroy(&self->streams);
    writer_batch_destroy(&self->batch);
    writer_share_destroy(&self->share);
    writer_db_destroy(&self->db);
    free(self);
    *self_p = NULL;
}

void writer_stop(writer_t *self)
{
    self->stop = true;
}

bool writer_stopping(const writer_t *self)
{
    return self->stop || evp_stopping();
}

const writer_stats_t *writer_stats(const writer_t *self)
{
    return &self->stats;
}

void writer_render_metrics(writer_t *self, ev_buf_t *out)
{
    writer_metrics_sync(self->metrics, &self->stats, writer_share_owned_count(self->share),
                        writer_db_connected(self->db));
    writer_metrics_render(self->metrics, out);
}

size_t writer_held(const writer_t *self)
{
    return writer_streams_held(self->streams);
}

size_t writer_pending_rows(const writer_t *self)
{
    return self->batch->nrows;
}

/* ---- Start and finish ---- */

/* Waits for a connection; false when stopping or past deadline_ms (< 0: none). */
static bool s_connect_wait(writer_t *self, int deadline_ms)
{
    int64_t end = deadline_ms >= 0 ? zclock_mono() + deadline_ms : INT64_MAX;
    for (;;) {
        int64_t now = zclock_mono();
        if (writer_db_ensure(self->db, now))
            return true;
        if (writer_stopping(self) || now >= end)
            return false;
        int64_t wait = writer_db_next_attempt_ms(self->db) - now;
        zclock_sleep((int)(wait < 1 ? 1 : wait > S_CHECK_MS ? S_CHECK_MS : wait));
    }
}

/* s_migrate and writer_start: the database refuses this writer (its
 * schema is newer, or its deployment settings differ). */
#define S_REFUSED (-2)

/* Connects and applies the migrations, retrying on a lost connection. 0,
 * -1, or S_REFUSED. */

/* With EVENTS_PARTITION_INTERVAL: partitions an empty events table, keeps
 * the partitions. A failure is logged: events still go to the table (its
 * default partition), and the loop tries again. */
static void s_partition_start(writer_t *self)
{
    if (!writer_partition_enabled(&self->cfg))
        return;
    char why[EVP_WHY_MAX];
    PGconn *c = writer_db_conn(self->db);
    if (writer_partition_convert(c, &self->cfg, true, why, sizeof why) != 0 ||
        writer_partition_maintain(c, &self->cfg, true, why, sizeof why) != 0) {
        char reason[sizeof why];
        evp_error("events partitions not kept", "reason=\"%s\"",
                  evp_log_text(reason, sizeof reason, why, strlen(why)));
        if (evp_pg_lost(c))
            writer_db_fail(self->db, zclock_mono(), why);
    }
    self->next_partition_ms = zclock_mono() + WRITER_PARTITION_EVERY_MS;
}

/* Connects and applies the migrations, retrying on a lost connection. */
static int s_migrate(writer_t *self, int deadline_ms)
{
    int64_t end = deadline_ms >= 0 ? zclock_mono() + deadline_ms : INT64_MAX;
    for (;;) {
        int64_t left = end - zclock_mono();
        if (!s_connect_wait(self, deadline_ms >= 0 ? (int)(left > 0 ? left : 0) : -1)) {
            if (!writer_stopping(self))
                evp_error("PostgreSQL stayed unavailable", "waited_ms=%d", deadline_ms);
            return -1;
        }
        char why[EVP_WHY_MAX];
        int applied;
        bool lost;
        int rc = writer_migrate_apply(writer_db_conn(self->db), &applied, &lost, why, sizeof why);
        if (rc == 0) {
            evp_info("migrations up to date", "applied=%d known=%zu", applied, writer_migrations_count);
            s_partition_start(self);
            return 0;
        }
        if (rc == WRITER_MIGRATE_NEWER) {
            char reason[sizeof why];
            evp_error("refusing a database migrated by a newer writer", "reason=\"%s\"",
                      evp_log_text(reason, sizeof reason, why, strlen(why)));
            return S_REFUSED;
        }
        if (!lost) {
            char reason[sizeof why];
            evp_error("migration failed", "reason=\"%s\"", evp_log_text(reason, sizeof reason, why, strlen(why)));
            return -1;
        }
        writer_db_fail(self->db, zclock_mono(), why);
    }
}

/* Records the deployment's settings when no service has yet, or checks
 * this writer's against them (evp_deploy_check_conn), retrying on a lost
 * connection. 0, -1, or S_REFUSED. */
static int s_check_deployment(writer_t *self)
{
    for (;;) {
        if (!s_connect_wait(self, -1))
            return -1;
        char why[EVP_WHY_MAX], reason[EVP_WHY_MAX];
        PGconn *c = writer_db_conn(self->db);
        evp_deploy_t rc = evp_deploy_check_conn(c, &self->cfg, writer_share_name(self->share), why, sizeof why);
        if (rc == EVP_DEPLOY_AGREE)
            return 0;
        evp_log_text(reason, sizeof reason, why, strlen(why));
        if (rc == EVP_DEPLOY_DIFFERENT) {
            evp_error("refusing to start: a deployment setting differs", "reason=\"%s\"", reason);
            return S_REFUSED;
        }
        /* The table is there after the migrations: a failure. */
        if (!evp_pg_lost(c)) {
            evp_error("cannot check the deployment settings", "reason=\"%s\"", reason);
            return -1;
        }
        writer_db_fail(self->db, zclock_mono(), why);
    }
}

int writer_migrate_only(writer_t *self, int deadline_ms)
{
    int rc = s_migrate(self, deadline_ms);
    return rc == 0 ? 0 : rc == S_REFUSED ? EVP_EXIT_REFUSED : 1;
}

int writer_check_db(writer_t *self, int deadline_ms)
{
    if (!s_connect_wait(self, deadline_ms)) {
        evp_error("PostgreSQL stayed unavailable", "waited_ms=%d", deadline_ms);
        return 2;
    }
    char why[EVP_WHY_MAX];
    int hurts = writer_checkdb_run(writer_db_conn(self->db), stdout, why, sizeof why);
    if (hurts < 0) {
        char reason[sizeof why];
        evp_error("checking the database failed", "reason=\"%s\"",
                  evp_log_text(reason, sizeof reason, why, strlen(why)));
        return 2;
    }
    printf("%d setting(s) will hurt (docs/postgresql.md explains each)\n", hurts);
    return hurts > 0 ? 1 : 0;
}

int writer_partition_events(writer_t *self, int deadline_ms)
{
    if (!writer_partition_enabled(&self->cfg)) {
        evp_error("--partition-events needs EVENTS_PARTITION_INTERVAL", "hint=\"1 day, 1 week or 1 month\"");
        return 1;
    }
    if (s_migrate(self, deadline_ms) != 0)
        return 1;
    char why[EVP_WHY_MAX];
    PGconn *c = writer_db_conn(self->db);
    if (!c || writer_partition_convert(c, &self->cfg, false, why, sizeof why) != 0 ||
        writer_partition_maintain(c, &self->cfg, true, why, sizeof why) != 0) {
        char reason[sizeof why];
        evp_error("partitioning events failed", "reason=\"%s\"",
                  evp_log_text(reason, sizeof reason, why, strlen(why)));
        return 1;
    }
    return 0;
}

int writer_start(writer_t *self)
{
    /* The first connection already counts as a live writer. */
    writer_db_set_name(self->db, writer_share_name(self->share));
    int rc = s_migrate(self, -1);
    if (rc == 0)
        rc = s_check_deployment(self);
    if (rc != 0)
        return rc;
    /* Subscriptions first, then connect: nothing is missed while joining. */
    while (!writer_share_start(self->share, zclock_mono()))
        if (!s_connect_wait(self, -1))
            return -1;
    char why[EVP_WHY_MAX];
    if (evp_zmq_connect(self->sub, self->cfg.bus_subscribe_endpoint, "BUS_SUBSCRIBE_ENDPOINT", why, sizeof why) !=
            0 ||
        evp_zmq_connect(self->dealer, self->cfg.replay_endpoint, "REPLAY_ENDPOINT", why, sizeof why) != 0) {
        evp_error("cannot connect to the bus or the repair service", "reason=\"%s\"", why);
        return -1;
    }
    self->connected = true;
    int64_t now = zclock_mono();
    self->next_progress_ms = now + S_PROGRESS_MS;
    evp_info("writer ready", "name=%s batch_size=%d linger_ms=%d holdback_max=%d repair_timeout_ms=%d "
             "partitions=%zu writers=%zu bus=%s replay=%s",
             writer_share_name(self->share), self->cfg.writer_batch_size, self->cfg.writer_linger_ms,
             self->cfg.writer_holdback_max, self->cfg.writer_repair_timeout_ms, writer_share_owned_count(self->share),
             writer_share_members(self->share), self->cfg.bus_subscribe_endpoint, self->cfg.replay_endpoint);
    return 0;
}

int writer_finish(writer_t *self)
{
    int rc = 0;
    int64_t end = zclock_mono() + S_FINISH_MS;
    while (!writer_batch_empty(self->batch)) {
        int64_t now = zclock_mono();
        if (s_commit(self, now))
            break;
        if (now >= end) {
            evp_error("the last batch could not be committed; its events will be repaired from the archive",
                      "rows=%zu", self->batch->nrows);
            rc = 1;
            break;
        }
        int64_t wait = writer_db_next_attempt_ms(self->db) - now;
        if (wait > end - now)
            wait = end - now;
        /* Signals are ignored here: the 10 s bound is what ends this wait. */
        zclock_sleep((int)(wait < 1 ? 1 : wait > S_CHECK_MS ? S_CHECK_MS : wait));
    }
    writer_share_leave(self->share);
    const writer_stats_t *st = &self->stats;
    evp_info("writer stopped", "committed=%llu duplicates=%llu rejects=%llu undecodable=%llu gaps=%llu "
             "repaired=%llu batches=%llu held_dropped=%zu sources_forgotten=%llu",
             (unsigned long long)st->committed, (unsigned long long)st->duplicates,
             (unsigned long long)st->rejects_total, (unsigned long long)st->undecodable,
             (unsigned long long)st->gaps, (unsigned long long)st->repaired, (unsigned long long)st->batches,
             writer_streams_held(self->streams), (unsigned long long)st->streams_forgotten);
    return rc;
}

int writer_run(writer_t *self)
{
    int rc = writer_start(self);
    if (rc != 0)
        return rc == S_REFUSED ? EVP_EXIT_REFUSED : writer_stopping(self) ? 0 : 1;
    while (!writer_stopping(self))
        writer_step(self, S_CHECK_MS);
    return writer_finish(self);
}

/* ---- Partitions owned (writer_share.c shares them) ---- */

int writer_take_partition(writer_t *self, int32_t partition)
{
    return writer_share_take(self->share, partition);
}

int writer_release_partition(writer_t *self, int32_t partition)
{
    return writer_share_release(self->share, partition);
}

bool writer_owns(const writer_t *self, int32_t partition)
{
    return writer_share_owns(self->share, partition);
}

size_t writer_owned_count(const writer_t *self)
{
    return writer_share_owned_count(self->share);
}

const char *writer_name(const writer_t *self)
{
    return writer_share_name(self->share);
}
