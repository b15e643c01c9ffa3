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

/* C types of the keys of msg_fields.def. */
#define EV_MSG_CTYPE_STR ev_str_t
#define EV_MSG_CTYPE_I32 int32_t
#define EV_MSG_CTYPE_I64 int64_t
#define EV_MSG_CTYPE_U64 uint64_t
#define EV_MSG_CTYPE_BOOL bool

/* A publisher's latest seq in one partition, sent every heartbeat interval
 * (the keys: msg_fields.def). */
typedef struct {
#define EV_HEARTBEAT_FIELD(key, type, required, min, max, doc) EV_MSG_CTYPE_##type key;
#include "evpipe/msg_fields.def"
} ev_heartbeat_t;

/* Repair (REPLAY_ENDPOINT, DEALER to ROUTER): frames ["REPAIR", body]; the
 * answer is any number of ["EVENT", event body] then ["END", body]. */
#define EV_REPAIR_REQUEST "REPAIR"
#define EV_REPAIR_EVENT "EVENT"
#define EV_REPAIR_END "END"
/* Seqs one repair request may ask for; a server answers a larger request up
 * to this many, and its END's `to` says where it stopped. */
#define EV_REPAIR_RANGE_MAX 100000

/* A repair request, or its END (the keys: msg_fields.def). */
typedef struct {
#define EV_REPAIR_FIELD(key, type, required, min, max, doc) EV_MSG_CTYPE_##type key;
#include "evpipe/msg_fields.def"
} ev_repair_t;

/* Encoding and decoding. A codec owns its buffers: what encode returns stays
 * valid until the next call on the same codec; what decode fills points into
 * the message it was given. One codec per thread. */
typedef struct ev_codec_t ev_codec_t;

ev_codec_t *ev_codec_new(void);
void ev_codec_destroy(ev_codec_t **self_p);

/* The two forms of an event (docs/protocol.md): an array of the version and
 * the values in field order, or a map keyed by field name (twice the bytes).
 * Decoding reads both; a new codec encodes arrays. */
typedef enum { EV_FORM_ARRAY, EV_FORM_MAP } ev_form_t;
void ev_codec_set_form(ev_codec_t *self, ev_form_t form);
/* The form the setting PUBLISH_FORM names: "map", or else arrays. */
ev_form_t ev_form_named(const char *name);

void ev_codec_encode_event(ev_codec_t *self, const ev_event_t *ev, const void **data, size_t *len);
/* Decodes a body of exactly one event (a repair answer's EVENT); a body with
 * bytes after its first event is refused. Bus bodies go through
 * ev_codec_next_event. */
ev_reject_t ev_codec_decode_event(ev_codec_t *self, const void *data, size_t len, ev_event_t *ev,
                                  ev_error_t *err);

/* The body of an `ev` message is one or more events (arrays or maps) back
 * to back (a msgpack stream), all of the topic's partition; a body of one
 * event is the single-event message of before. What ev_codec_next_event
 * found: */
typedef enum {
    EV_NEXT_EVENT,   /* *ev is the next event; raw/rawlen are its bytes */
    EV_NEXT_INVALID, /* the next event's bytes are raw/rawlen, but they are not a valid event (err says
                        why): that event is lost, the walk goes on after it */
    EV_NEXT_BROKEN,  /* the bytes at *offset are not one whole msgpack value (err says why), so where
                        the next event starts cannot be known: the rest of the body is lost */
    EV_NEXT_END,     /* every byte of the body was walked */
} ev_next_t;

/* Walks the events of a body one by one: start with *offset = 0 and call
 * until EV_NEXT_END or EV_NEXT_BROKEN. Each call reads the event at *offset,
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
