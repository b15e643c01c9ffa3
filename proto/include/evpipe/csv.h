/* The event as CSV: the header and row writer for archive files, and a
 * streaming record reader (RFC 4180 quoting, LF or CRLF, bounded record size)
 * with header-driven mapping of columns to fields, for archive files and the
 * old generator's files alike. */
#ifndef EVPIPE_CSV_H
#define EVPIPE_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/event.h"

typedef enum {
    EV_CSV_OLD,     /* the payload columns only: the old generator's files */
    EV_CSV_ARCHIVE, /* payload then identity: evpipe's archive, the write-ahead log */
} ev_csv_layout_t;

/* Appends the header line ("user_id,...\n"). */
void ev_csv_header(ev_buf_t *b, ev_csv_layout_t layout);
/* Appends one row with its line end ("\n"), quoting text where needed. */
void ev_csv_append_row(ev_buf_t *b, const ev_event_t *ev, ev_csv_layout_t layout);
/* Appends one field, quoted if it holds a comma, quote, CR or LF. */
void ev_csv_append_field(ev_buf_t *b, const char *s, size_t len);

/* ---- Reading ---- */

typedef struct {
    uint64_t line;    /* the line the record starts on (1 is the first line) */
    const char *raw;  /* the record as it stands in the file, without its line end */
    size_t raw_len;   /* (cut to the limit when too_long) */
    size_t nfields;   /* how many fields */
    ev_str_t *fields; /* the fields, unquoted; valid until the next read */
    bool too_long;    /* over the reader's record limit: no fields */
    bool bad_quote;   /* a quote out of place or never closed */
} ev_csv_record_t;

typedef struct ev_csv_reader_t ev_csv_reader_t;

/* Reads records from fd (not closed by the reader); records longer than
 * max_record bytes are reported too_long and skipped, never buffered whole. */
ev_csv_reader_t *ev_csv_reader_new(int fd, size_t max_record);
void ev_csv_reader_destroy(ev_csv_reader_t **self_p);
/* 1: a record in rec; 0: end of file; -1: read error (errno is set). */
int ev_csv_reader_next(ev_csv_reader_t *self, ev_csv_record_t *rec);
/* Bytes of the file consumed so far. */
uint64_t ev_csv_reader_offset(const ev_csv_reader_t *self);

/* Which column holds which field, from a header line. */
typedef struct {
    ev_csv_layout_t layout;         /* ARCHIVE when every identity column is named */
    size_t ncols;                   /* columns in the header */
    int column_of[EV_FIELD_COUNT];  /* -1 where a field has no column */
    size_t ignored;                 /* header columns that name no field */
} ev_csv_map_t;

/* Maps a header; every payload field must be named once. */
ev_reject_t ev_csv_map_header(ev_csv_map_t *map, const ev_csv_record_t *header, ev_error_t *err);

/* Parses one row into ev (text points into rec) and validates what the
 * layout carries. Identity fields of an OLD row are left zero. */
ev_reject_t ev_csv_parse_row(const ev_csv_map_t *map, const ev_csv_record_t *rec, ev_event_t *ev,
                             ev_error_t *err);

#endif
