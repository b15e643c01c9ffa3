/* The event as a COPY row, text or binary (see copy.h). */
#include "evpipe/copy.h"

#include "be.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The column list, made at compile time from the field list. */
#define EV_COL_PAYLOAD(name) "," #name
#define EV_COL_IDENTITY(name) "," #name
#define EV_COL_WIRE(name)
static const char s_columns[] = ""
#define EV_FIELD(name, kind, max, sql, where) EV_COL_##where(name)
#include "evpipe/event_fields.def"
#undef EV_FIELD
    ;

const char *ev_copy_columns(void)
{
    return s_columns + 1; /* past the leading comma */
}

/* The letter after the backslash for each byte COPY's text format escapes
 * (backslash and the control characters it names); 0: copied as it is. */
static const char s_escape[256] = {
    ['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r', ['\b'] = 'b', ['\f'] = 'f', ['\v'] = 'v',
};

/* Text escaped exactly as PostgreSQL's own COPY TO writes it: runs of plain
 * bytes are copied whole. */
static void s_text(ev_buf_t *b, const char *s, size_t len)
{
    ev_buf_reserve(b, len * 2);
    char *o = b->data + b->len;
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && !s_escape[(unsigned char)s[run]])
            run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        if (run == len)
            break;
        *o++ = '\\';
        *o++ = s_escape[(unsigned char)s[run]];
        i = run + 1;
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void ev_copy_append_text(ev_buf_t *b, const char *s, size_t len)
{
    s_text(b, s, len);
}

void ev_copy_append_row(ev_buf_t *b, const ev_event_t *ev)
{
    ev_format_row(b, ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY, '\t', s_text);
}

/* ---- Binary format ---- */

const char ev_copy_binary_header[EV_COPY_BINARY_HEADER_LEN] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
const char ev_copy_binary_trailer[2] = {'\xff', '\xff'};

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define S_PG_EPOCH_US (INT64_C(946684800) * 1000000)

/* The columns COPY writes: payload and identity. */
#define EV_NCOL_PAYLOAD 1 +
#define EV_NCOL_IDENTITY 1 +
#define EV_NCOL_WIRE
static const int s_ncolumns =
#define EV_FIELD(name, kind, max, sql, where) EV_NCOL_##where
#include "evpipe/event_fields.def"
#undef EV_FIELD
    0;

/* The most a price takes: its length, the numeric header, and the base-10000
 * digits of |cents| < 2^63 (five for the whole part, one for the cents). */
#define S_PRICE_MAX (4 + 8 + 2 * 6)

/* cents as numeric(…, 2): base-10000 digits, most significant first, weight
 * of the first, sign, display scale 2 (numeric_send's layout), length first. */
static unsigned char *s_price(unsigned char *o, int64_t cents)
{
    uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    uint64_t whole = a / 100;
    uint16_t digits[8];
    int n = 0;
    uint16_t groups[6];
    int ng = 0;
    for (; whole > 0; whole /= 10000)
        groups[ng++] = (uint16_t)(whole % 10000);
    for (int i = ng - 1; i >= 0; i--)
        digits[n++] = groups[i];
    uint16_t frac = (uint16_t)(a % 100 * 100);
    if (frac)
        digits[n++] = frac;
    int weight = ng > 0 ? ng - 1 : -1;
    /* No leading zero group: a value below 1 starts at its fraction. */
    if (n == 0)
        weight = 0;
    o = ev_be32_put(o, (uint32_t)(8 + 2 * n));
    o = ev_be16_put(o, (uint16_t)n);
    o = ev_be16_put(o, (uint16_t)(int16_t)weight);
    o = ev_be16_put(o, cents < 0 && n > 0 ? 0x4000 : 0);
    o = ev_be16_put(o, 2);
    for (int i = 0; i < n; i++)
        o = ev_be16_put(o, digits[i]);
    return o;
}

/* One row: its column count, then each column as its length and bytes,
 * written straight from the field list after one reservation for the row. */
void ev_copy_append_row_binary(ev_buf_t *b, const ev_event_t *ev)
{
    size_t need = 2;
#define EV_ROW_PAYLOAD 1
#define EV_ROW_IDENTITY 1
#define EV_ROW_WIRE 0
#define EV_NEED_I32(name) 4 + 4
#define EV_NEED_I64(name) 4 + 8
#define EV_NEED_TIME(name) 4 + 8
#define EV_NEED_PRICE(name) S_PRICE_MAX
#define EV_NEED_STR(name) 4 + (size_t)ev->name.len
#define EV_FIELD(name, kind, max, sql, where)                                                                   \
    if (EV_ROW_##where)                                                                                         \
        need += EV_NEED_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
    ev_buf_reserve(b, need);
    unsigned char *o = ev_be16_put((unsigned char *)b->data + b->len, (uint16_t)s_ncolumns);
#define EV_PUT_I32(name) o = ev_be32_put(ev_be32_put(o, 4), (uint32_t)ev->name)
#define EV_PUT_I64(name) o = ev_be64_put(ev_be32_put(o, 8), (uint64_t)ev->name)
#define EV_PUT_TIME(name) o = ev_be64_put(ev_be32_put(o, 8), (uint64_t)ev->name - (uint64_t)S_PG_EPOCH_US)
#define EV_PUT_PRICE(name) o = s_price(o, ev->name)
#define EV_PUT_STR(name)                                                                                        \
    do {                                                                                                        \
        o = ev_be32_put(o, ev->name.len);                                                                       \
        if (ev->name.len)                                                                                       \
            memcpy(o, ev->name.ptr, ev->name.len);                                                              \
        o += ev->name.len;                                                                                      \
    } while (0)
#define EV_FIELD(name, kind, max, sql, where)                                                                   \
    if (EV_ROW_##where)                                                                                         \
        EV_PUT_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
    b->len = (size_t)(o - (unsigned char *)b->data);
    b->data[b->len] = '\0';
}
