/* The event as a row of PostgreSQL's COPY text format, and the column list
 * that goes with it (payload and identity fields, in field-list order). */
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

#endif
