/* Ordering state of each (source, partition) stream: what has been taken,
 * which events wait behind a hole, which range to ask the repair service for
 * and what it could not send (gaps). Pure bookkeeping: no sockets, no SQL.
 *
 * A stream takes seq accepted+1 and anything held back right after it; an
 * event at or below accepted is a duplicate; one further on waits (a copy of
 * its body) until the hole before it is filled by a repair or declared a gap.
 * The registry (writer_streams_t) finds streams by identity and bounds the
 * number of events held back across all of them. */
#ifndef WRITER_STREAM_H
#define WRITER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/wire.h"

/* Longest source, in bytes (64 characters of at most 4 bytes). */
#define WRITER_SOURCE_MAX 256
/* Largest range one repair request asks for; the rest comes in later ones. */
#define WRITER_REPAIR_RANGE_MAX EV_REPAIR_RANGE_MAX

/* An event waiting behind a hole. */
typedef struct {
    int64_t seq;             /* its seq */
    int32_t topic_partition; /* partition of the topic it came on; -1 from a repair */
    bool from_repair;        /* it came in a repair answer */
    uint32_t len;            /* bytes in raw */
    uint8_t *raw;            /* the msgpack body, owned (malloc) */
} writer_held_t;

/* Why a stream waits for a repair it has asked for (none: it does not). */
typedef enum {
    WRITER_WAIT_NONE,    /* nothing unsettled */
    WRITER_WAIT_UNKNOWN, /* the repair service does not know the source: no answer yet */
    WRITER_WAIT_BEYOND,  /* seqs were claimed (heartbeat, publisher_heads, an event) beyond the
                          * archive's head: not known to exist */
    WRITER_WAIT_REFUSED, /* the repair service refused the request (its caps) */
} writer_wait_t;

/* The first retry after an answer without evidence, and the longest wait. */
#define WRITER_RETRY_FIRST_MS 500
#define WRITER_RETRY_MAX_MS 30000

/* Fields are read-only outside writer_stream.c. */
typedef struct {
    uint32_t id;                   /* index in the registry, stable while the stream lives */
    char source[WRITER_SOURCE_MAX + 1]; /* the publisher, NUL-terminated */
    uint32_t source_len;           /* bytes in source */
    char name[WRITER_SOURCE_MAX + 1]; /* source safe in a log line (spaces, quotes, controls as '?') */
    int32_t partition;             /* the partition */
    uint32_t hash;                 /* of (source, partition), for the registry */
    int64_t accepted;              /* highest seq taken contiguously (committed or in the batch) */
    int64_t committed;             /* its checkpoint in PostgreSQL, as last read or written (0: none);
                                    * the next commit expects to find it there */
    int64_t seen;                  /* highest seq seen in an event or a heartbeat */
    writer_held_t *held;           /* events held back, sorted by seq, from held_head */
    size_t held_head;              /* first live entry of held */
    size_t held_len;               /* entries used in held (from 0) */
    size_t held_cap;               /* entries allocated */
    bool repair_busy;              /* a repair request is in flight */
    uint64_t repair_id;            /* its id */
    int64_t repair_from, repair_to; /* its range */
    int64_t repair_sent_ms;        /* when it was sent or last answered (monotonic ms) */
    int64_t gap_until;             /* after an END: seqs up to here that are not held are gaps */
    int64_t head_seq;              /* latest seq the publisher announced */
    bool head_recorded;            /* head_seq has been put in a batch once */
    int64_t head_recorded_ms;      /* when head_seq was last put in a batch */
    int64_t head_recorded_seq;     /* the value put in the batch then (writer_stream_head) */
    int64_t probe_at_ms;           /* when to look for events nobody announced (monotonic ms; 0: not planned) */
    bool probe;                    /* looking for them: ask past the highest seq known */
    bool repair_probe;             /* the request in flight is such a look, not a known hole */
    int64_t proven;                /* highest seq evidence says exists: accepted, or the archive's head
                                    * from a repair END; heads are recorded up to here only */
    bool best_effort;              /* the publisher said no archive keeps its events (heartbeat) */
    writer_wait_t waiting;         /* why the last repair answer could not settle the hole */
    int64_t retry_at_ms;           /* no repair request before this (monotonic ms; 0: none) */
    int backoff_ms;                /* the wait before the next such retry */
    int64_t heard_ms;              /* when an event, heartbeat or answer of it last came (monotonic ms) */
    bool unread;                   /* made while its checkpoint could not be read: it takes events from 0
                                    * as a new source does (a commit's compare-and-set finds a checkpoint
                                    * it has) and asks for nothing until the checkpoint is read
                                    * (writer_stream_advance) */
} writer_stream_t;

typedef struct writer_streams_t writer_streams_t;

/* What happened to an event offered to its stream. */
typedef enum {
    WRITER_OFFER_TAKE,      /* seq == accepted+1: taken (accepted is now seq) */
    WRITER_OFFER_DUPLICATE, /* seq <= accepted, or already held: skip it */
    WRITER_OFFER_HELD,      /* seq > accepted+1: a copy waits behind the hole */
} writer_offer_t;

/* ---- The registry ---- */

/* holdback_max events, or holdback_bytes bytes of raw bodies, held back
 * across all streams before writer_streams_full says so (a held event keeps
 * its body, up to MAX_MESSAGE_BYTES); at most sources_max streams (sources)
 * per partition. NULL when out of memory. */
writer_streams_t *writer_streams_new(size_t holdback_max, size_t holdback_bytes, uint32_t sources_max);
void writer_streams_destroy(writer_streams_t **self_p);

/* The stream of (source, partition); created (accepted = 0) when create is
 * true and it does not exist yet, else NULL. NULL too when source is longer
 * than WRITER_SOURCE_MAX bytes, or when the partition already has
 * sources_max streams (a new source there is refused). */
writer_stream_t *writer_streams_get(writer_streams_t *self, const char *source, size_t len, int32_t partition,
                                    bool create);
/* Whether a new stream of partition would be refused (sources_max). */
bool writer_streams_crowded(const writer_streams_t *self, int32_t partition);
/* By id; NULL when it was dropped. Ids of streams forgotten are given to
 * new ones. */
writer_stream_t *writer_streams_by_id(const writer_streams_t *self, uint32_t id);
/* One more than the highest id in use (ids are below this). */
uint32_t writer_streams_id_limit(const writer_streams_t *self);
/* Forgets every stream of a partition (and what they hold back). */
void writer_streams_drop_partition(writer_streams_t *self, int32_t partition);
/* Up to max ids of streams that are settled (writer_stream_settled) and
 * were not heard from since now_ms - idle_ms: finished sources (replayed
 * files, generator runs that ended) to forget. */
size_t writer_streams_idle(const writer_streams_t *self, int64_t now_ms, int64_t idle_ms, uint32_t *ids, size_t max);
/* Forgets the streams of ids (and what they hold), so they do not count
 * against sources_max; their ids are given out again. The caller must hold
 * no other copy of them (no batch holds their rows). */
void writer_streams_forget(writer_streams_t *self, const uint32_t *ids, size_t n);
/* Events held back across all streams, and the bytes of their bodies. */
size_t writer_streams_held(const writer_streams_t *self);
size_t writer_streams_held_bytes(const writer_streams_t *self);
/* True when either holdback bound is reached: stop reading new events. */
bool writer_streams_full(const writer_streams_t *self);

/* ---- One stream ---- */

/* Marks a stream just made as unread (see writer_stream_t.unread). */
void writer_stream_unread(writer_streams_t *self, writer_stream_t *s);
/* Streams unread now. */
size_t writer_streams_unread(const writer_streams_t *self);
/* Notes that an event, heartbeat or repair answer of it came. */
void writer_stream_heard(writer_stream_t *s, int64_t now_ms);
/* Nothing left to do for it: everything seen and announced is committed,
 * nothing is held, asked for, waited on or planned. */
bool writer_stream_settled(const writer_stream_t *s);

/* Offers an event. raw (len bytes) is copied only when the event is held.
 * A held event may take the total past the bound (events from a repair
 * answer must be kept); the bound is enforced by the reader through
 * writer_streams_full. */
writer_offer_t writer_stream_offer(writer_streams_t *self, writer_stream_t *s, int64_t seq, const void *raw,
                                   size_t len, int32_t topic_partition, bool from_repair);
/* Pops the held event that comes next (seq == accepted+1) into *out and makes
 * it taken; drops held duplicates on the way. The caller frees out->raw.
 * False when the next one is not held. */
bool writer_stream_pop_ready(writer_streams_t *self, writer_stream_t *s, writer_held_t *out);
/* After a repair END: the next run of seqs that cannot be repaired (not held,
 * up to gap_until). Makes them taken; false when there is none. */
bool writer_stream_next_gap(writer_stream_t *s, int64_t *first, int64_t *last);
/* The checkpoint of s in PostgreSQL is seq (just read or written):
 * committed becomes seq, accepted rises to at least seq (a checkpoint another
 * writer committed), and held events at or below go. */
void writer_stream_advance(writer_streams_t *self, writer_stream_t *s, int64_t seq);
/* Seq of the first held event, or 0 when none is held. */
int64_t writer_stream_first_held(const writer_stream_t *s);
size_t writer_stream_held_count(const writer_stream_t *s);

/* ---- Repair ---- */

/* The range to ask for after accepted: up to the first held event, or up to
 * the highest seq seen (a known hole); with none and a probe on, the next
 * WRITER_REPAIR_RANGE_MAX seqs (a probe). At most WRITER_REPAIR_RANGE_MAX
 * seqs. False: nothing to ask for. */
bool writer_stream_missing(const writer_stream_t *s, int64_t *from, int64_t *to);
/* Whether a repair request should be sent now: something is missing and no
 * request is in flight, or the one in flight is older than timeout_ms.
 * *resend tells the second case. */
bool writer_stream_repair_due(const writer_stream_t *s, int64_t now_ms, int timeout_ms, bool *resend);
/* Notes a request sent (replacing any in flight). */
void writer_stream_repair_sent(writer_stream_t *s, uint64_t id, int64_t from, int64_t to, int64_t now_ms);
/* An answer (an EVENT) arrived for this stream: the request is alive. */
void writer_stream_repair_progress(writer_stream_t *s, int64_t now_ms);
/* What a repair END did to its stream. */
typedef enum {
    WRITER_END_STALE,   /* not the request in flight: ignored */
    WRITER_END_SETTLED, /* what is still missing up to the evidence is now gaps
                         * (writer_stream_next_gap); nothing claimed lies beyond it */
    WRITER_END_WAIT,    /* some of the hole has no evidence (s->waiting says why): no gap for
                         * it, asked again after a backoff (WRITER_RETRY_FIRST_MS, doubling
                         * to WRITER_RETRY_MAX_MS) */
} writer_end_t;

/* The END of the request in flight. Gaps need evidence: a seq is lost only
 * when the archive knows the source and its head (end->head) is at or
 * above it, so the seq existed and no file holds it any more; or, for a
 * best-effort source the repair service does not know, when a later event
 * of the stream is held. A source the repair service does not know is "no
 * answer yet", and seqs claimed beyond the archive's head are not known to
 * exist: neither becomes a gap or moves a checkpoint. The server may answer
 * less than was asked (end->to); the rest is asked for next. A probe makes
 * no gaps: it goes on from the new accepted when its answer reached the end
 * of its range, else the probe is over. */
writer_end_t writer_stream_repair_end(writer_stream_t *s, const ev_repair_t *end, int64_t now_ms);

/* ---- Probes: events nobody announces ----
 * A partition taken while its publisher is quiet (stopped) gets no
 * heartbeat, so events published after its last recorded head would never be
 * asked for. A probe asks the repair service for what comes after accepted,
 * without knowing whether anything does. */

/* Plans a probe at at_ms, unless a heartbeat comes first. */
void writer_stream_probe_at(writer_stream_t *s, int64_t at_ms);
/* Starts the planned probe when its time has come; true when it did (the
 * caller then asks: writer_stream_repair_due). */
bool writer_stream_probe_due(writer_stream_t *s, int64_t now_ms);
/* A head read from the database (publisher_heads): what a heartbeat says,
 * without planning to record it again. */
void writer_stream_learn_head(writer_stream_t *s, int64_t seq);

/* ---- Heartbeats ---- */

/* A heartbeat announced seq as the latest of the stream (a planned probe is
 * not needed any more); best_effort as the heartbeat says. Returns true
 * when the stream's head should be recorded now (at most once per
 * record_every_ms): writer_stream_head gives the value. */
bool writer_stream_heartbeat(writer_stream_t *s, int64_t seq, bool best_effort, int64_t now_ms,
                             int record_every_ms);
/* The head to record in publisher_heads: the announced head, but never past
 * what evidence says exists (s->proven), so one forged heartbeat cannot
 * leave a head no publisher reached. writer_stream_heartbeat returning true
 * notes it as recorded (s->head_recorded_seq). */
int64_t writer_stream_head(const writer_stream_t *s);
/* True when the head to record rose above what was last recorded (a repair
 * brought evidence after the heartbeat); *head is it, noted as recorded. */
bool writer_stream_head_grew(writer_stream_t *s, int64_t *head);

/* ---- Bounds ---- */

/* Frees held events that wait on claims without evidence: of streams whose
 * source the repair service does not know, and events above the proven
 * head of streams waiting on claims beyond the archive. They are asked for
 * again once evidence comes. Returns how many were freed. */
size_t writer_streams_evict_unproven(writer_streams_t *self);

#endif
