/* The event as a COPY row, text or binary (see copy.h). */
#include "evpipe/copy.h"

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

static void s_be(char *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        o[i] = (char)(v & 0xff);
}

/* A value of n bytes: its length, then room for it; returns where it goes. */
static char *s_value(ev_buf_t *b, uint32_t n)
{
    ev_buf_reserve(b, 4 + (size_t)n);
    char *o = b->data + b->len;
    s_be(o, n, 4);
    b->len += 4 + (size_t)n;
    b->data[b->len] = '\0';
    return o + 4;
}

/* cents as numeric(…, 2): base-10000 digits, most significant first, weight
 * of the first, sign, display scale 2 (numeric_send's layout). */
static void s_price(ev_buf_t *b, int64_t cents)
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
    char *o = s_value(b, (uint32_t)(8 + 2 * n));
    s_be(o, (uint64_t)n, 2);
    s_be(o + 2, (uint64_t)(uint16_t)(int16_t)weight, 2);
    s_be(o + 4, cents < 0 && n > 0 ? 0x4000 : 0, 2);
    s_be(o + 6, 2, 2);
    for (int i = 0; i < n; i++)
        s_be(o + 8 + 2 * i, digits[i], 2);
}

void ev_copy_append_row_binary(ev_buf_t *b, const ev_event_t *ev)
{
    ev_buf_reserve(b, 2);
    s_be(b->data + b->len, (uint64_t)s_ncolumns, 2);
    b->len += 2;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        const char *p = (const char *)ev + f->offset;
        switch (f->kind) {
        case EV_KIND_I32:
            s_be(s_value(b, 4), (uint64_t)(uint32_t) * (const int32_t *)p, 4);
            break;
        case EV_KIND_I64:
            s_be(s_value(b, 8), (uint64_t) * (const int64_t *)p, 8);
            break;
        case EV_KIND_TIME:
            s_be(s_value(b, 8), (uint64_t)(*(const int64_t *)p - S_PG_EPOCH_US), 8);
            break;
        case EV_KIND_PRICE:
            s_price(b, *(const int64_t *)p);
            break;
        case EV_KIND_STR: {
            const ev_str_t *str = (const ev_str_t *)p;
            char *o = s_value(b, str->len);
            if (str->len)
                memcpy(o, str->ptr, str->len);
            break;
        }
        }
    }
}
