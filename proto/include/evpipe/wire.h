/* The bus protocol (docs/protocol.md): topic frames, the msgpack event and
 * heartbeat bodies, and the repair request/reply messages. */
#ifndef EVPIPE_WIRE_H
#define EVPIPE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/event.h"

#define EV_PROTOCOL_VERSION 1
#define EV_TOPIC_MAX 16

typedef enum {
    EV_MSG_EVENT,     /* topic "pNNNN/ev": one or more events of the partition */
    EV_MSG_HEARTBEAT, /* topic "pNNNN/hb": a publisher's latest seq in a partition */
} ev_msg_kind_t;

/* "p0007/ev" or "p0007/hb"; returns its length. */
size_t ev_topic_format(char buf[EV_TOPIC_MAX], uint32_t partition, ev_msg_kind_t kind);
/* "p0007/": the subscription prefix that takes both kinds of one partition. */
size_t ev_topic_prefix(char buf[EV_TOPIC_MAX], uint32_t partition);
bool ev_topic_parse(const void *topic, size_t len, uint32_t *partition, ev_msg_kind_t *kind);

/* A publisher's latest seq in one partition, sent every heartbeat interval. */
typedef struct {
    ev_str_t source;
    int32_t partition;
    int64_t seq;          /* latest seq published; 0 when none yet */
    int64_t published_at; /* microseconds since the epoch */
    int32_t partitions;   /* the publisher's PARTITIONS (optional key): 0 when it did not say */
} ev_heartbeat_t;

/* Repair (REPLAY_ENDPOINT, DEALER to ROUTER): frames ["REPAIR", body]; the
 * answer is any number of ["EVENT", event body] then ["END", body]. */
#define EV_REPAIR_REQUEST "REPAIR"
#define EV_REPAIR_EVENT "EVENT"
#define EV_REPAIR_END "END"

typedef struct {
    uint64_t id;       /* chosen by the asker; echoed in END */
    ev_str_t source;
    int32_t partition;
    int64_t from, to;  /* inclusive seq range */
    int64_t sent;      /* END only: how many events were sent back */
    bool found_source; /* END only: the archive knows this source */
} ev_repair_t;

/* Encoding and decoding. A codec owns its buffers: what encode returns stays
 * valid until the next call on the same codec; what decode fills points into
 * the message it was given. One codec per thread. */
typedef struct ev_codec_t ev_codec_t;

ev_codec_t *ev_codec_new(void);
void ev_codec_destroy(ev_codec_t **self_p);

void ev_codec_encode_event(ev_codec_t *self, const ev_event_t *ev, const void **data, size_t *len);
/* Decodes a body of exactly one event (a repair answer's EVENT); a body with
 * bytes after its first map is refused. Bus bodies go through
 * ev_codec_next_event. */
ev_reject_t ev_codec_decode_event(ev_codec_t *self, const void *data, size_t len, ev_event_t *ev,
                                  ev_error_t *err);

/* The body of an `ev` message is one or more event maps back to back (a
 * msgpack stream), all of the topic's partition; a body of one map is the
 * single-event message of before. What ev_codec_next_event found: */
typedef enum {
    EV_NEXT_EVENT,   /* *ev is the next event; raw/rawlen are its map's bytes */
    EV_NEXT_INVALID, /* the next map's bytes are raw/rawlen, but they are not a valid event (err says
                        why): that event is lost, the walk goes on after it */
    EV_NEXT_BROKEN,  /* the bytes at *offset are not one whole msgpack value (err says why), so where
                        the next event starts cannot be known: the rest of the body is lost */
    EV_NEXT_END,     /* every byte of the body was walked */
} ev_next_t;

/* Walks the events of a body one by one: start with *offset = 0 and call
 * until EV_NEXT_END or EV_NEXT_BROKEN. Each call reads the map at *offset,
 * checks its sizes against the bytes left in the body (as a single-event
 * decode does), decodes it and moves *offset past it. An empty body is
 * broken: a body holds at least one event. *ev points into body (raw too);
 * *raw and *rawlen are set for EVENT and INVALID. */
ev_next_t ev_codec_next_event(ev_codec_t *self, const void *body, size_t len, size_t *offset, ev_event_t *ev,
                              const void **raw, size_t *rawlen, ev_error_t *err);

void ev_codec_encode_heartbeat(ev_codec_t *self, const ev_heartbeat_t *hb, const void **data, size_t *len);
ev_reject_t ev_codec_decode_heartbeat(ev_codec_t *self, const void *data, size_t len, ev_heartbeat_t *hb,
                                      ev_error_t *err);

void ev_codec_encode_repair(ev_codec_t *self, const ev_repair_t *r, const void **data, size_t *len);
ev_reject_t ev_codec_decode_repair(ev_codec_t *self, const void *data, size_t len, ev_repair_t *r,
                                   ev_error_t *err);

#endif
