/* The evpipe event: the struct and field table made from event_fields.def,
 * value parsing and formatting, and validation against the table's limits. */
#ifndef EVPIPE_EVENT_H
#define EVPIPE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"

/* A view of UTF-8 text held elsewhere (a message, a line buffer, a catalogue). */
typedef struct {
    const char *ptr;
    uint32_t len;
} ev_str_t;

#define EV_CTYPE_I32 int32_t
#define EV_CTYPE_I64 int64_t
#define EV_CTYPE_STR ev_str_t
#define EV_CTYPE_PRICE int64_t
#define EV_CTYPE_TIME int64_t

typedef struct {
#define EV_FIELD(name, kind, max, sql, where) EV_CTYPE_##kind name;
#include "evpipe/event_fields.def"
#undef EV_FIELD
} ev_event_t;

typedef enum { EV_KIND_I32, EV_KIND_I64, EV_KIND_STR, EV_KIND_PRICE, EV_KIND_TIME } ev_kind_t;

/* Where a field travels (see event_fields.def). */
enum {
    EV_WHERE_PAYLOAD = 1 << 0,
    EV_WHERE_IDENTITY = 1 << 1,
    EV_WHERE_WIRE = 1 << 2,
};

/* Field indexes: EV_F_user_id, EV_F_user_name, ... */
enum {
#define EV_FIELD(name, kind, max, sql, where) EV_F_##name,
#include "evpipe/event_fields.def"
#undef EV_FIELD
    EV_FIELD_COUNT
};

typedef struct {
    const char *name;     /* column, CSV header and msgpack key */
    ev_kind_t kind;       /* how the value is held and written */
    uint32_t max_chars;   /* STR only: the varchar limit, in characters */
    const char *sql_type; /* the type of its column in sql/ */
    unsigned where;       /* EV_WHERE_* */
    size_t offset;        /* offsetof(ev_event_t, name) */
    size_t name_len;      /* strlen(name) */
} ev_field_t;

extern const ev_field_t ev_fields[EV_FIELD_COUNT];

/* The allowed event types (event_types.def), NULL-terminated. */
extern const char *const ev_event_types[];

/* Partitions are numbered 0..EV_PARTITIONS_MAX-1 (the topic has four digits). */
#define EV_PARTITIONS_MAX 1024
/* The highest seq a writer takes (2^62): a stream could not reach it in
 * centuries, and arithmetic on seqs (seq + 1, ranges) never overflows. */
#define EV_SEQ_MAX ((int64_t)1 << 62)

/* Largest price numeric(10,2) holds, in cents. */
#define EV_PRICE_MAX_CENTS 9999999999LL

/* Why an event or a row was refused (reject_codes.def). */
typedef enum {
#define EV_REJECT_CODE(code, name) code,
#include "evpipe/reject_codes.def"
#undef EV_REJECT_CODE
    EV_REJECT__COUNT
} ev_reject_t;

typedef struct {
    ev_reject_t code;
    char detail[200]; /* what failed and why, naming the field */
} ev_error_t;

const char *ev_reject_name(ev_reject_t code);

/* Sets err to code and a printf-style detail; returns code. */
ev_reject_t ev_error_set(ev_error_t *err, ev_reject_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Looks a field up by name; -1 when there is none. */
int ev_field_index(const char *name, size_t len);

/* Checks what the table would refuse: text encoding and length, event_type,
 * price range, event_time within years 1..9999 (what ev_parse_time reads, so
 * a valid event survives the archive) and the identity. Returns EV_OK or the
 * reason (in err). */
ev_reject_t ev_event_validate(const ev_event_t *ev, ev_error_t *err);

/* Checks only the payload fields (an old-format row before it has an identity). */
ev_reject_t ev_event_validate_payload(const ev_event_t *ev, ev_error_t *err);

bool ev_event_type_allowed(ev_str_t type);

/* Field-by-field equality (text by content). */
bool ev_event_equal(const ev_event_t *a, const ev_event_t *b, unsigned where);

/* ---- Values as text ----
 * Parsers take exactly len bytes, accept nothing else, and return EV_OK or the
 * reason, naming `field` in err. */
ev_reject_t ev_parse_i32(const char *s, size_t len, int32_t *out, const char *field, ev_error_t *err);
ev_reject_t ev_parse_i64(const char *s, size_t len, int64_t *out, const char *field, ev_error_t *err);
/* "120", "120.5", "120.50", "120.0", "-3.10"; digits past cents must be 0. */
ev_reject_t ev_parse_price(const char *s, size_t len, int64_t *cents, const char *field, ev_error_t *err);
/* "YYYY-MM-DD HH:MM:SS" or with 'T'; optional .f (1-6 digits); optional Z or
 * +HH:MM / -HH:MM (converted to UTC). Remembers the last valid date it read
 * on the calling thread (thread-local), to skip reading it again. */
ev_reject_t ev_parse_time(const char *s, size_t len, int64_t *us, const char *field, ev_error_t *err);

/* Appends "123.45" / "-0.50". */
void ev_format_price(ev_buf_t *b, int64_t cents);
/* Appends "YYYY-MM-DD HH:MM:SS.ffffff" (iso_t: 'T' between and 'Z' after). */
void ev_format_time(ev_buf_t *b, int64_t us, bool iso_t);

/* Appends a field that is not text: the integer, "12.50" or the time
 * (iso_t as in ev_format_time). Returns false for a text field. */
bool ev_format_scalar(ev_buf_t *b, const ev_event_t *ev, int field, bool iso_t);

/* Appends the fields in where (EV_WHERE_*) as one text row and a newline:
 * sep between fields, the others as ev_format_scalar writes them (iso_t
 * false), text through text (the format's own quoting or escaping). The
 * CSV and COPY text rows are both this. */
void ev_format_row(ev_buf_t *b, const ev_event_t *ev, unsigned where, char sep,
                   void (*text)(ev_buf_t *b, const char *s, size_t len));

/* Microseconds since the epoch, now (CLOCK_REALTIME). */
int64_t ev_now_us(void);
/* now - then, saturated to INT64_MIN..INT64_MAX instead of overflowing: the
 * age of a time a peer sent (published_at), which may be any int64. */
int64_t ev_elapsed_us(int64_t now, int64_t then);

/* The partition of a user: a fixed 32-bit mix of user_id modulo partitions
 * (documented in docs/protocol.md, so every publisher agrees). */
uint32_t ev_partition_of(int32_t user_id, uint32_t partitions);

/* Counts UTF-8 characters; -1 if the text is not valid UTF-8 or has a NUL. */
long ev_utf8_chars(const char *s, size_t len);

#endif
