/* The event as CSV: writing archive rows and reading any evpipe or old
 * generator file (see csv.h). */
#include "evpipe/csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* EV_CSV_PORTABLE: the plain C of other machines, also on x86-64 (a test
 * builds the reader both ways). */
#if defined(__SSE2__) && !defined(EV_CSV_PORTABLE)
#define S_SSE2 1
#include <emmintrin.h>
#endif

static unsigned s_layout_where(ev_csv_layout_t layout)
{
    return layout == EV_CSV_ARCHIVE ? (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY) : EV_WHERE_PAYLOAD;
}

/* ---- Writing ---- */

void ev_csv_header(ev_buf_t *b, ev_csv_layout_t layout)
{
    unsigned where = s_layout_where(layout);
    bool first = true;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (!(ev_fields[i].where & where))
            continue;
        if (!first)
            ev_buf_putc(b, ',');
        ev_buf_puts(b, ev_fields[i].name);
        first = false;
    }
    ev_buf_putc(b, '\n');
}

void ev_csv_append_field(ev_buf_t *b, const char *s, size_t len)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        ev_buf_append(b, s, len);
        return;
    }
    ev_buf_reserve(b, len * 2 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            *o++ = '"';
        *o++ = s[i];
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void ev_csv_append_row(ev_buf_t *b, const ev_event_t *ev, ev_csv_layout_t layout)
{
    ev_format_row(b, ev, s_layout_where(layout), ',', ev_csv_append_field);
}

/* ---- Reading ---- */

enum { S_FIELD_START, S_UNQUOTED, S_QUOTED, S_QUOTE_IN_QUOTED };

#define READ_CHUNK (256 * 1024)
#define RAW_KEEP 1024 /* bytes of a too-long record kept for the reject file */
#define S_WIDTH 32      /* bytes s_scan_plain looks at at once */

struct ev_csv_reader_t {
    int fd;              /* the file, not owned */
    size_t max_record;   /* longest record returned whole */
    ev_buf_t in;         /* bytes read and not yet returned */
    size_t pos;          /* start of the next record in `in` */
    bool eof;            /* read() said end of file */
    uint64_t offset;     /* file bytes before in.data[0] */
    uint64_t line;       /* line number of the next record */
    ev_buf_t scratch;    /* unquoted field text */
    ev_str_t *fields;    /* field views */
    size_t fields_cap;   /* entries in fields */
    ev_buf_t skipped;    /* head of a too-long record */
};

ev_csv_reader_t *ev_csv_reader_new(int fd, size_t max_record)
{
    ev_csv_reader_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = fd;
    self->max_record = max_record ? max_record : 1024 * 1024;
    self->line = 1;
    ev_buf_init(&self->in);
    ev_buf_init(&self->scratch);
    ev_buf_init(&self->skipped);
    return self;
}

void ev_csv_reader_destroy(ev_csv_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ev_csv_reader_t *self = *self_p;
    ev_buf_free(&self->in);
    ev_buf_free(&self->scratch);
    ev_buf_free(&self->skipped);
    free(self->fields);
    free(self);
    *self_p = NULL;
}

uint64_t ev_csv_reader_offset(const ev_csv_reader_t *self)
{
    return self->offset + self->pos;
}

/* Reads more bytes after dropping what was returned; 0 at end of file. */
static ssize_t s_fill(ev_csv_reader_t *self)
{
    if (self->pos) {
        self->offset += self->pos;
        ev_buf_consume(&self->in, self->pos);
        self->pos = 0;
    }
    ev_buf_reserve(&self->in, READ_CHUNK + S_WIDTH);
    ssize_t n;
    do {
        n = read(self->fd, self->in.data + self->in.len, READ_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        self->in.len += (size_t)n;
        /* s_scan_plain reads up to S_WIDTH - 1 bytes past the data. */
        memset(self->in.data + self->in.len, 0, S_WIDTH);
    } else if (n == 0) {
        self->eof = true;
    }
    return n;
}

/* Room for twice as many fields (16 at first). */
static void s_grow_fields(ev_csv_reader_t *self)
{
    size_t cap = self->fields_cap ? 2 * self->fields_cap : 16;
    ev_str_t *f = realloc(self->fields, cap * sizeof *f);
    if (!f)
        abort();
    self->fields = f;
    self->fields_cap = cap;
}

/* ---- Reading a plain record ---- */

/* Most records hold no quoted field: their fields end at commas and the
 * record at the first newline. s_scan_plain finds both in one pass over
 * S_WIDTH bytes at a time (the compiler's 16-byte vectors, SSE2 on x86-64),
 * where the quote-aware scan and s_split walk the record byte by byte or
 * call memchr for every field. A quote at the start of a field, or a record
 * not whole in the buffer, goes to that scan as before. */

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "s_scan_plain finds a byte's place in a word as on a little-endian machine"
#endif

typedef unsigned char s_bytes16 __attribute__((vector_size(16)));

/* One bit for each of the 16 bytes of m (0x00 or 0xFF each), bit k for
 * byte k. */
static inline unsigned s_bits(s_bytes16 m)
{
#ifdef S_SSE2
    return (unsigned)_mm_movemask_epi8((__m128i)m);
#else
    uint64_t lo, hi;
    memcpy(&lo, &m, 8);
    memcpy(&hi, (const char *)&m + 8, 8);
    /* Byte k's low bit lands on bit 56 + k. */
    const uint64_t gather = 0x0102040810204080ULL;
    lo = ((lo & 0x0101010101010101ULL) * gather) >> 56;
    hi = ((hi & 0x0101010101010101ULL) * gather) >> 56;
    return (unsigned)(lo | hi << 8);
#endif
}

/* Of the S_WIDTH bytes at p, bit k of *commas for p[k] a comma, of *others
 * for a quote or a newline. */
static inline void s_marks(const char *p, unsigned *commas, unsigned *others)
{
    s_bytes16 lo, hi;
    memcpy(&lo, p, sizeof lo);
    memcpy(&hi, p + sizeof lo, sizeof hi);
    *commas = s_bits((s_bytes16)(lo == ',')) | s_bits((s_bytes16)(hi == ',')) << 16;
    *others = s_bits((s_bytes16)((lo == '"') | (lo == '\n'))) | s_bits((s_bytes16)((hi == '"') | (hi == '\n'))) << 16;
}

/* The record at pos when it is plain: no field starts with a quote, and its
 * newline is in the buffer within max_record bytes. Fills self->fields and
 * *nfields, sets *line_len to the bytes before the newline (with any CR) and
 * returns true; false when the record needs the quote-aware scan. */
static bool s_scan_plain(ev_csv_reader_t *self, size_t *line_len, size_t *nfields)
{
    const char *base = self->in.data + self->pos;
    size_t avail = self->in.len - self->pos;
    /* Where the newline may be: in the data, within max_record. */
    size_t limit = avail <= self->max_record ? avail : self->max_record + 1;
    size_t count = 0;        /* fields done */
    const char *start = base; /* of the current field */
    for (size_t off = 0; off < limit; off += S_WIDTH) {
        /* Room for a field at each byte of this block (with the last). */
        while (self->fields_cap - count <= S_WIDTH)
            s_grow_fields(self);
        ev_str_t *out = self->fields + count;
        const char *p = base + off;
        unsigned commas, others;
        s_marks(p, &commas, &others);
        if (limit - off < S_WIDTH) { /* bytes past the data or the limit */
            uint32_t keep = (UINT32_C(1) << (limit - off)) - 1;
            commas &= keep, others &= keep;
        }
        /* The commas, up to each quote or newline in turn. */
        for (;;) {
            unsigned stop = others & -others; /* the first of the others, or 0 */
            for (unsigned now = commas & (stop - 1); now; now &= now - 1) {
                const char *at = p + __builtin_ctz(now);
                out->ptr = start;
                out->len = (uint32_t)(at - start);
                out++;
                start = at + 1;
            }
            if (!stop)
                break;
            commas &= ~(stop - 1);
            others &= others - 1;
            const char *at = p + __builtin_ctz(stop);
            if (*at == '"') {
                if (at == start)
                    return false; /* a quoted field */
                continue;
            }
            const char *end = at > base && at[-1] == '\r' ? at - 1 : at;
            out->ptr = start;
            out->len = (uint32_t)(end - start);
            *nfields = (size_t)(out - self->fields) + 1;
            *line_len = (size_t)(at - base);
            return true;
        }
        count = (size_t)(out - self->fields);
    }
    return false;
}

/* ---- Reading any record ---- */

/* Splits raw[0..len) into fields. scratch has room for len bytes, so the
 * views stay put. Returns false on misplaced or unclosed quotes. */
static bool s_split(ev_csv_reader_t *self, const char *raw, size_t len, size_t *nfields)
{
    ev_buf_reset(&self->scratch);
    ev_buf_reserve(&self->scratch, len);
    char *out = self->scratch.data;
    size_t count = 0, i = 0;
    bool ok = true;
    if (self->fields_cap == 0)
        s_grow_fields(self);
    for (;;) {
        if (i < len && raw[i] == '"') {
            char *start = out;
            i++;
            bool closed = false;
            while (i < len) {
                if (raw[i] == '"') {
                    if (i + 1 < len && raw[i + 1] == '"') {
                        *out++ = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    closed = true;
                    break;
                }
                *out++ = raw[i++];
            }
            if (!closed || (i < len && raw[i] != ','))
                ok = false;
            while (i < len && raw[i] != ',')
                *out++ = raw[i++];
            self->fields[count].ptr = start;
            self->fields[count].len = (uint32_t)(out - start);
        } else {
            size_t start = i;
            const char *comma = memchr(raw + i, ',', len - i);
            i = comma ? (size_t)(comma - raw) : len;
            self->fields[count].ptr = raw + start;
            self->fields[count].len = (uint32_t)(i - start);
        }
        count++;
        if (i >= len)
            break;
        i++; /* the comma */
        if (count == self->fields_cap)
            s_grow_fields(self);
    }
    *nfields = count;
    return ok;
}

int ev_csv_reader_next(ev_csv_reader_t *self, ev_csv_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    for (;;) {
        /* Scan from pos for the end of one record, refilling as needed. */
        int state = S_FIELD_START;
        size_t i = self->pos;
        uint64_t newlines = 0;
        bool too_long = false;
        /* Most records: plain, their fields found in the same pass. */
        size_t line_len = 0, nfields = 0;
        bool fast = self->in.len > self->pos && s_scan_plain(self, &line_len, &nfields);
        if (fast) {
            i += line_len;
            state = S_UNQUOTED;
        }
        /* Otherwise the quote-aware scan, refilling as needed. */
        while (!fast) {
            if (i >= self->in.len) {
                if (self->eof)
                    break;
                if (too_long) {
                    /* Keep nothing of a record that is over the limit. */
                    self->pos = i;
                }
                size_t rel = i - self->pos;
                ssize_t n = s_fill(self);
                if (n < 0)
                    return -1;
                i = self->pos + rel;
                continue;
            }
            char c = self->in.data[i];
            if (c == '\n' && state != S_QUOTED)
                break;
            if (c == '\n')
                newlines++;
            switch (state) {
            case S_FIELD_START:
                state = c == '"' ? S_QUOTED : c == ',' ? S_FIELD_START : S_UNQUOTED;
                break;
            case S_UNQUOTED:
                if (c == ',')
                    state = S_FIELD_START;
                break;
            case S_QUOTED:
                if (c == '"')
                    state = S_QUOTE_IN_QUOTED;
                break;
            case S_QUOTE_IN_QUOTED:
                state = c == '"' ? S_QUOTED : c == ',' ? S_FIELD_START : S_UNQUOTED;
                break;
            }
            i++;
            if (!too_long && i - self->pos > self->max_record) {
                too_long = true;
                size_t keep = i - self->pos < RAW_KEEP ? i - self->pos : RAW_KEEP;
                ev_buf_reset(&self->skipped);
                ev_buf_append(&self->skipped, self->in.data + self->pos, keep);
            }
        }
        bool at_eof = i >= self->in.len;
        if (at_eof && i == self->pos && !too_long)
            return 0; /* nothing left */
        size_t end = i;
        rec->line = self->line;
        self->line += newlines + 1;
        size_t next = at_eof ? i : i + 1;
        if (too_long) {
            rec->too_long = true;
            rec->raw = self->skipped.data;
            rec->raw_len = self->skipped.len;
            self->pos = next;
            return 1;
        }
        const char *raw = self->in.data + self->pos;
        size_t len = end - self->pos;
        if (len && raw[len - 1] == '\r' && state != S_QUOTED)
            len--;
        self->pos = next;
        if (len == 0 && !at_eof)
            continue; /* a blank line */
        if (len == 0)
            return 0;
        rec->raw = raw;
        rec->raw_len = len;
        if (fast)
            rec->nfields = nfields;
        else
            rec->bad_quote = !s_split(self, raw, len, &rec->nfields) || state == S_QUOTED;
        rec->fields = self->fields;
        return 1;
    }
}

/* ---- Mapping columns to fields ---- */

ev_reject_t ev_csv_map_header(ev_csv_map_t *map, const ev_csv_record_t *header, ev_error_t *err)
{
    memset(map, 0, sizeof *map);
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        map->column_of[i] = -1;
    if (header->too_long || header->bad_quote)
        return ev_error_set(err, EV_REJECT_COLUMNS, "header: malformed header line");
    map->ncols = header->nfields;
    for (size_t c = 0; c < header->nfields; c++) {
        ev_str_t h = header->fields[c];
        /* A UTF-8 byte-order mark before the first name is tolerated. */
        if (c == 0 && h.len >= 3 && memcmp(h.ptr, "\xEF\xBB\xBF", 3) == 0)
            h.ptr += 3, h.len -= 3;
        while (h.len && (h.ptr[0] == ' '))
            h.ptr++, h.len--;
        while (h.len && (h.ptr[h.len - 1] == ' '))
            h.len--;
        int f = ev_field_index(h.ptr, h.len);
        if (f < 0 || !(ev_fields[f].where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY))) {
            map->ignored++;
            continue;
        }
        if (map->column_of[f] >= 0)
            return ev_error_set(err, EV_REJECT_COLUMNS, "header: column %s is named twice", ev_fields[f].name);
        map->column_of[f] = (int)c;
    }
    int identity = 0, identity_named = 0;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (ev_fields[i].where & EV_WHERE_PAYLOAD && map->column_of[i] < 0)
            return ev_error_set(err, EV_REJECT_MISSING, "header: no column named %s", ev_fields[i].name);
        if (ev_fields[i].where & EV_WHERE_IDENTITY) {
            identity++;
            identity_named += map->column_of[i] >= 0;
        }
    }
    if (identity_named && identity_named != identity)
        return ev_error_set(err, EV_REJECT_MISSING, "header: source, partition and seq go together");
    map->layout = identity_named ? EV_CSV_ARCHIVE : EV_CSV_OLD;
    return EV_OK;
}

ev_reject_t ev_csv_parse_row(const ev_csv_map_t *map, const ev_csv_record_t *rec, ev_event_t *ev,
                             ev_error_t *err)
{
    memset(ev, 0, sizeof *ev);
    if (rec->too_long)
        return ev_error_set(err, EV_REJECT_LINE_TOO_LONG, "line: longer than the limit");
    if (rec->bad_quote)
        return ev_error_set(err, EV_REJECT_COLUMNS, "line: a quote is misplaced or never closed");
    if (rec->nfields != map->ncols)
        return ev_error_set(err, EV_REJECT_COLUMNS, "line: %zu columns, the header has %zu", rec->nfields,
                            map->ncols);
    /* Each field with a column, written out from the field list: its kind
     * (and so the parser) and its place are known when compiling. */
    int c;
    ev_reject_t rc;
#define S_PARSE_I32(v, dst, name) ev_parse_i32((v)->ptr, (v)->len, dst, name, err)
#define S_PARSE_I64(v, dst, name) ev_parse_i64((v)->ptr, (v)->len, dst, name, err)
#define S_PARSE_PRICE(v, dst, name) ev_parse_price((v)->ptr, (v)->len, dst, name, err)
#define S_PARSE_TIME(v, dst, name) ev_parse_time((v)->ptr, (v)->len, dst, name, err)
#define S_PARSE_STR(v, dst, name) (*(dst) = *(v), EV_OK)
#define EV_FIELD(name, kind, max, sql, where)                                                                   \
    if ((c = map->column_of[EV_F_##name]) >= 0 &&                                                              \
        (rc = S_PARSE_##kind(&rec->fields[c], &ev->name, #name)) != EV_OK)                                      \
        return rc;
#include "evpipe/event_fields.def"
#undef EV_FIELD
#undef S_PARSE_I32
#undef S_PARSE_I64
#undef S_PARSE_PRICE
#undef S_PARSE_TIME
#undef S_PARSE_STR
    return map->layout == EV_CSV_ARCHIVE ? ev_event_validate(ev, err) : ev_event_validate_payload(ev, err);
}
