/* The event as a row of PostgreSQL's COPY formats, text and binary, and the
 * column list that goes with them (payload and identity fields, in
 * field-list order). */
#ifndef EVPIPE_COPY_H
#define EVPIPE_COPY_H

#include "evpipe/buf.h"
#include "evpipe/event.h"

/* "user_id,user_name,...,seq": for COPY events (...) FROM STDIN. */
const char *ev_copy_columns(void);
/* Appends one row, tab-separated, backslash-escaped, ending in "\n".
 * Text must already be valid (ev_event_validate). */
void ev_copy_append_row(ev_buf_t *b, const ev_event_t *ev);
/* Appends one text value escaped for COPY's text format (backslash, tab,
 * newline and carriage return), without a separator. */
void ev_copy_append_text(ev_buf_t *b, const char *s, size_t len);

/* COPY's binary format: the signature, flags and header extension that
 * open the data (EV_COPY_BINARY_HEADER_LEN bytes), and the field count -1
 * that ends it (2 bytes). */
#define EV_COPY_BINARY_HEADER_LEN 19
extern const char ev_copy_binary_header[EV_COPY_BINARY_HEADER_LEN];
extern const char ev_copy_binary_trailer[2];
/* Appends one row in COPY's binary format: the field count, then each value
 * as its length and PostgreSQL's binary form (integers big-endian, text as
 * UTF-8 bytes, the price as a numeric of scale 2, times as microseconds
 * since 2000-01-01). Text must already be valid (ev_event_validate). */
void ev_copy_append_row_binary(ev_buf_t *b, const ev_event_t *ev);

#endif
