/* Invariants and input plumbing shared by the fuzz targets (see fuzz_check.h). */
#include "fuzz_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evpipe/copy.h"
#include "evpipe/json.h"

#define MAX_READS 64               /* reads a cut file is split into, at most */
#define SEQPACKET_MAX (64 * 1024)  /* larger inputs go through a memfd (socket buffers are finite) */

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    /* Straight to fd 2: a target may point stdio's stderr elsewhere meanwhile. */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dprintf(2, "fuzz invariant failed at %s:%d: %s: %s\n", file, line, cond, msg);
    abort();
}

int fuzz_within(const void *p, size_t n, const void *base, size_t len)
{
    if (n == 0)
        return 1;
    const char *c = p, *b = base;
    return c && c >= b && c <= b + len && n <= (size_t)(b + len - c);
}

/* ---- Input as a file ---- */

static int s_memfd(const void *data, size_t len)
{
    int fd = memfd_create("evpipe-fuzz", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        FUZZ_CHECK(n > 0, "write to memfd: %s", strerror(errno));
        p += n, len -= (size_t)n;
    }
    FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
    return fd;
}

int fuzz_fd_from_bytes(const void *data, size_t len, size_t chunk)
{
    if (chunk == 0 || len > SEQPACKET_MAX)
        return s_memfd(data, len);
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
               strerror(errno));
    const char *p = data;
    size_t left = len;
    for (int reads = 1; left; reads++) {
        /* Never an empty packet: the reader would take it for end of file. */
        size_t n = reads == MAX_READS || chunk > left ? left : chunk;
        if (send(sv[0], p, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
            /* The socket buffer is smaller than expected here: read it whole. */
            close(sv[0]);
            close(sv[1]);
            return s_memfd(data, len);
        }
        p += n, left -= n;
    }
    close(sv[0]); /* what was sent stays readable, then end of file */
    return sv[1];
}

/* ---- Refused and accepted events ---- */

void fuzz_check_refusal(ev_reject_t rc, const ev_error_t *err)
{
    FUZZ_CHECK(rc > EV_OK && rc < EV_REJECT__COUNT, "reject code %d", (int)rc);
    FUZZ_CHECK(err->code == rc, "err->code %d, returned %d", (int)err->code, (int)rc);
    FUZZ_CHECK(memchr(err->detail, '\0', sizeof err->detail) != NULL, "detail not terminated");
    FUZZ_CHECK(err->detail[0] != '\0', "a refusal without a reason");
}

static const ev_str_t *s_text(const ev_event_t *ev, int field)
{
    return (const ev_str_t *)((const char *)ev + ev_fields[field].offset);
}

void fuzz_check_valid_event(const ev_event_t *ev, unsigned where)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & where) || f->kind != EV_KIND_STR)
            continue;
        const ev_str_t *s = s_text(ev, i);
        FUZZ_CHECK(s->len == 0 || s->ptr, "%s: %u bytes at NULL", f->name, s->len);
        long chars = ev_utf8_chars(s->ptr, s->len);
        FUZZ_CHECK(chars >= 0, "%s: accepted text that is not valid UTF-8", f->name);
        FUZZ_CHECK((unsigned long)chars <= f->max_chars, "%s: %ld characters accepted, the limit is %u", f->name,
                   chars, f->max_chars);
    }
    if (where & EV_WHERE_PAYLOAD) {
        FUZZ_CHECK(ev_event_type_allowed(ev->event_type), "event_type accepted outside the allowed set");
        FUZZ_CHECK(ev->product_price >= -EV_PRICE_MAX_CENTS && ev->product_price <= EV_PRICE_MAX_CENTS,
                   "product_price %lld accepted", (long long)ev->product_price);
        /* 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC. */
        FUZZ_CHECK(ev->event_time >= -62135596800000000LL && ev->event_time < 253402300800000000LL,
                   "event_time %lld accepted", (long long)ev->event_time);
    }
    if (where & EV_WHERE_IDENTITY) {
        FUZZ_CHECK(ev->source.len > 0, "an empty source accepted");
        FUZZ_CHECK(ev->partition >= 0 && ev->partition < EV_PARTITIONS_MAX, "partition %d accepted",
                   (int)ev->partition);
        FUZZ_CHECK(ev->seq >= 1, "seq %lld accepted", (long long)ev->seq);
    }
}

/* ---- Renderings ---- */

/* Reads one JSON string literal at *p (within end) into out; false if it is not one. */
static bool s_json_string(const char **p, const char *end, ev_buf_t *out)
{
    const char *s = *p;
    ev_buf_reset(out);
    if (s >= end || *s++ != '"')
        return false;
    while (s < end && *s != '"') {
        if (*s != '\\') {
            ev_buf_putc(out, *s++);
            continue;
        }
        if (++s >= end)
            return false;
        char c = *s++;
        if (c == 'u') {
            unsigned cp = 0;
            for (int i = 0; i < 4; i++, s++) {
                if (s >= end || !strchr("0123456789abcdef", *s) || !*s)
                    return false;
                cp = cp * 16 + (unsigned)(*s <= '9' ? *s - '0' : *s - 'a' + 10);
            }
            if (cp < 0x20)
                ev_buf_putc(out, (char)cp);
            else if (cp == 0xfffd)
                ev_buf_puts(out, "\xEF\xBF\xBD");
            else
                return false; /* the writer escapes nothing else this way */
        } else {
            const char *from = "\"\\/nrtbf", *to = "\"\\/\n\r\t\b\f";
            const char *hit = strchr(from, c);
            if (!hit || !c)
                return false;
            ev_buf_putc(out, to[hit - from]);
        }
    }
    if (s >= end)
        return false;
    *p = s + 1;
    return true;
}

void fuzz_check_json(const ev_event_t *ev)
{
    ev_buf_t b, text, want;
    ev_buf_init(&b);
    ev_buf_init(&text);
    ev_buf_init(&want);
    ev_json_append_event(&b, ev);
    FUZZ_CHECK(b.len >= 2 && b.data[0] == '{' && b.data[b.len - 1] == '}', "JSON is not one object");
    for (size_t i = 0; i < b.len; i++)
        FUZZ_CHECK((unsigned char)b.data[i] >= 0x20, "JSON holds raw byte 0x%02x at %zu",
                   (unsigned)(unsigned char)b.data[i], i);
    FUZZ_CHECK(ev_utf8_chars(b.data, b.len) >= 0, "JSON is not valid UTF-8");
    /* Read it back: every field by name, in order; values as written. */
    const char *p = b.data + 1, *end = b.data + b.len - 1;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (i)
            FUZZ_CHECK(p < end && *p++ == ',', "JSON: no comma before %s", f->name);
        FUZZ_CHECK(s_json_string(&p, end, &text) && text.len == strlen(f->name) &&
                       memcmp(text.data, f->name, text.len) == 0 && p < end && *p++ == ':',
                   "JSON: %s is not where it belongs", f->name);
        ev_buf_reset(&want);
        if (f->kind == EV_KIND_STR) {
            FUZZ_CHECK(s_json_string(&p, end, &text), "JSON: %s is not a string", f->name);
            const ev_str_t *s = s_text(ev, i);
            /* Valid text comes back byte for byte; invalid bytes became U+FFFD. */
            if (ev_utf8_chars(s->ptr, s->len) >= 0)
                FUZZ_CHECK(text.len == s->len && (s->len == 0 || memcmp(text.data, s->ptr, s->len) == 0),
                           "JSON: %s does not read back as its text", f->name);
        } else if (f->kind == EV_KIND_PRICE || f->kind == EV_KIND_TIME) {
            ev_format_scalar(&want, ev, i, true);
            FUZZ_CHECK(s_json_string(&p, end, &text) && text.len == want.len &&
                           memcmp(text.data, want.data, want.len) == 0,
                       "JSON: %s is not \"%s\"", f->name, want.data);
        } else {
            ev_format_scalar(&want, ev, i, true);
            FUZZ_CHECK((size_t)(end - p) >= want.len && memcmp(p, want.data, want.len) == 0, "JSON: %s is not %s",
                       f->name, want.data);
            p += want.len;
        }
    }
    FUZZ_CHECK(p == end, "JSON: bytes after the last field");
    ev_buf_free(&b);
    ev_buf_free(&text);
    ev_buf_free(&want);
}

/* Un-escapes one COPY text column; false on an escape the writer never makes. */
static bool s_copy_unescape(const char *s, size_t len, ev_buf_t *out)
{
    ev_buf_reset(out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            ev_buf_putc(out, s[i]);
            continue;
        }
        if (++i == len)
            return false;
        const char *from = "\\tnrbfv", *to = "\\\t\n\r\b\f\v";
        const char *hit = strchr(from, s[i]);
        if (!hit || !*hit)
            return false;
        ev_buf_putc(out, to[hit - from]);
    }
    return true;
}

void fuzz_check_copy(const ev_event_t *ev)
{
    ev_buf_t b, text;
    ev_buf_init(&b);
    ev_buf_init(&text);
    ev_copy_append_row(&b, ev);
    FUZZ_CHECK(b.len && b.data[b.len - 1] == '\n', "COPY row does not end its line");
    FUZZ_CHECK(memchr(b.data, '\n', b.len - 1) == NULL && memchr(b.data, '\r', b.len) == NULL,
               "COPY row holds a raw line end");
    const char *p = b.data, *end = b.data + b.len - 1;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        FUZZ_CHECK(p <= end, "COPY row ends before column %s", f->name);
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *col_end = tab ? tab : end;
        if (f->kind == EV_KIND_STR) {
            const ev_str_t *s = s_text(ev, i);
            FUZZ_CHECK(s_copy_unescape(p, (size_t)(col_end - p), &text), "%s: a bad escape in the COPY row",
                       f->name);
            FUZZ_CHECK(text.len == s->len && (s->len == 0 || memcmp(text.data, s->ptr, s->len) == 0),
                       "%s: the COPY column does not un-escape to the text", f->name);
        }
        p = tab ? tab + 1 : end + 1;
    }
    FUZZ_CHECK(p == end + 1, "COPY row has more columns than fields");
    ev_buf_free(&b);
    ev_buf_free(&text);
}

/* ---- The archive round trip ---- */

void fuzz_check_csv_round_trip(const ev_event_t *ev, ev_csv_layout_t layout)
{
    unsigned where = layout == EV_CSV_ARCHIVE ? EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY : EV_WHERE_PAYLOAD;
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, layout);
    ev_csv_append_row(&b, ev, layout);
    int fd = fuzz_fd_from_bytes(b.data, b.len, 0);
    ev_csv_reader_t *r = ev_csv_reader_new(fd, 0);
    FUZZ_CHECK(r, "ev_csv_reader_new failed");
    ev_csv_record_t rec;
    ev_csv_map_t map;
    ev_error_t err = {0};
    FUZZ_CHECK(ev_csv_reader_next(r, &rec) == 1, "the written header does not read back");
    FUZZ_CHECK(ev_csv_map_header(&map, &rec, &err) == EV_OK, "the written header does not map: %s", err.detail);
    FUZZ_CHECK(map.layout == layout, "the written header maps to layout %d, not %d", (int)map.layout, (int)layout);
    FUZZ_CHECK(ev_csv_reader_next(r, &rec) == 1, "the written row does not read back");
    ev_event_t back;
    ev_reject_t rc = ev_csv_parse_row(&map, &rec, &back, &err);
    FUZZ_CHECK(rc == EV_OK, "the written row [%.*s] is refused: %s", (int)(rec.raw_len > 300 ? 300 : rec.raw_len),
               rec.raw ? rec.raw : "", err.detail);
    FUZZ_CHECK(ev_event_equal(ev, &back, where), "the written row [%.*s] reads back as another event",
               (int)(rec.raw_len > 300 ? 300 : rec.raw_len), rec.raw);
    FUZZ_CHECK(ev_csv_reader_next(r, &rec) == 0, "more than one row read back");
    ev_csv_reader_destroy(&r);
    close(fd);
    ev_buf_free(&b);
}
