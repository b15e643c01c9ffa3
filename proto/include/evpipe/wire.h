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
    EV_MSG_EVENT,     /* topic "pNNNN/ev": one event */
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
ev_reject_t ev_codec_decode_event(ev_codec_t *self, const void *data, size_t len, ev_event_t *ev,
                                  ev_error_t *err);

void ev_codec_encode_heartbeat(ev_codec_t *self, const ev_heartbeat_t *hb, const void **data, size_t *len);
ev_reject_t ev_codec_decode_heartbeat(ev_codec_t *self, const void *data, size_t len, ev_heartbeat_t *hb,
                                      ev_error_t *err);

void ev_codec_encode_repair(ev_codec_t *self, const ev_repair_t *r, const void **data, size_t *len);
ev_reject_t ev_codec_decode_repair(ev_codec_t *self, const void *data, size_t len, ev_repair_t *r,
                                   ev_error_t *err);

#endif
