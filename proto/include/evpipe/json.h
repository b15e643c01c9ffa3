/* The event as one JSON object (for taps and jq): every field by name, the
 * price as an exact decimal string, times as ISO 8601 UTC. */
#ifndef EVPIPE_JSON_H
#define EVPIPE_JSON_H

#include "evpipe/buf.h"
#include "evpipe/event.h"

/* Appends a JSON string literal; bytes that are not valid UTF-8 become U+FFFD. */
void ev_json_append_string(ev_buf_t *b, const char *s, size_t len);
/* Appends {"user_id":1,...}; no line end. */
void ev_json_append_event(ev_buf_t *b, const ev_event_t *ev);

#endif
