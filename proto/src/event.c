/* The event's field table, value parsing and formatting, and validation. */
#include "evpipe/event.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- The field table, made from event_fields.def ---- */

#define EV_WHERE_OF(where) EV_WHERE_##where
/* A text column's type is its base type with the field's length after it:
 * "character varying" and 255 make "character varying(255)". */
#define EV_SQL_LEN_STR(max) "(" #max ")"
#define EV_SQL_LEN_I32(max) ""
#define EV_SQL_LEN_I64(max) ""
#define EV_SQL_LEN_PRICE(max) ""
#define EV_SQL_LEN_TIME(max) ""
const ev_field_t ev_fields[EV_FIELD_COUNT] = {
#define EV_FIELD(name, kind, max, sql, where) \
    {#name, EV_KIND_##kind, max, sql EV_SQL_LEN_##kind(max), EV_WHERE_OF(where), offsetof(ev_event_t, name), \
     sizeof #name - 1},
#include "evpipe/event_fields.def"
#undef EV_FIELD
};

const char *const ev_event_types[] = {
#define EV_EVENT_TYPE(name) #name,
#include "evpipe/event_types.def"
#undef EV_EVENT_TYPE
    NULL,
};

static const char *const s_reject_names[EV_REJECT__COUNT] = {
#define EV_REJECT_CODE(code, name) [code] = name,
#include "evpipe/reject_codes.def"
#undef EV_REJECT_CODE
};
_Static_assert(EV_OK == 0, "EV_OK comes first in reject_codes.def: callers test a code for non-zero");

const char *ev_reject_name(ev_reject_t code)
{
    if ((unsigned)code >= EV_REJECT__COUNT)
        return "unknown";
    return s_reject_names[code];
}

ev_reject_t ev_error_set(ev_error_t *err, ev_reject_t code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof err->detail, fmt, ap);
        va_end(ap);
    }
    return code;
}

int ev_field_index(const char *name, size_t len)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        if (ev_fields[i].name_len == len && memcmp(ev_fields[i].name, name, len) == 0)
            return i;
    return -1;
}

/* ---- Text ---- */

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ev_utf8_chars finds a byte's place in a word as on a little-endian machine"
#endif

/* The eight bytes at p as one word, p[0] lowest. */
static inline uint64_t s_load8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* A text of 1 to 7 bytes as one word without a libc call: two overlapping
 * four-byte loads, or three bytes (some read twice) padded with 0x01. Every
 * byte is in it, though not in its place: only good to test all at once. */
static inline uint64_t s_load_short(const unsigned char *p, size_t len)
{
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, p, sizeof a);
        memcpy(&b, p + len - 4, sizeof b);
        return (uint64_t)a | (uint64_t)b << 32;
    }
    return (uint64_t)p[0] | (uint64_t)p[len / 2] << 8 | (uint64_t)p[len - 1] << 16 | 0x0101010101000000ULL;
}

/* The high bit of each byte of w that is not ASCII (its own high bit) or
 * is a NUL (0x00 - 1 sets it), among other bits: s_flags keeps the high
 * bits. Non-zero high bits when any byte is one of them. */
static inline uint64_t s_flags_rough(uint64_t w)
{
    return w | (w - 0x0101010101010101ULL);
}

/* The high bit of each byte of w that is not ASCII or is a NUL. Exact up to
 * the first flagged byte: a NUL's borrow may flag bytes above it. */
static inline uint64_t s_flags(uint64_t w)
{
    return s_flags_rough(w) & 0x8080808080808080ULL;
}

/* The bytes of the character at p (p < end): 1 to 4, or 0 for a NUL, a
 * malformed or truncated sequence, an overlong form, a surrogate or a code
 * point beyond U+10FFFF. */
__attribute__((always_inline)) static inline int s_utf8_char(const unsigned char *p, const unsigned char *end)
{
    unsigned c = *p;
    if (c < 0x80)
        return c ? 1 : 0;
    int n;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0) {
        n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 3, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (end - p <= n)
        return 0;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n + 1;
}

/* The characters of a text that is not all ASCII without a NUL (len > 0):
 * eight bytes at a time (the last eight for the tail) up to the next byte
 * to look at, then one character there. */
static long s_utf8_walk(const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    size_t extra = 0; /* bytes after the first of each character */
    while (p < end) {
        size_t rest = (size_t)(end - p);
        uint64_t m;
        if (rest >= 8) {
            m = s_flags(s_load8(p));
        } else if (len >= 8) {
            /* The bytes before p in the last word were checked: none is a
             * NUL, so the flags of the rest are exact. */
            m = s_flags(s_load8(end - 8)) >> (8 * (8 - rest));
        } else {
            m = 0x80; /* a short text: one character at a time */
        }
        if (!m) {
            p += rest >= 8 ? 8 : rest;
            continue;
        }
        p += (unsigned)__builtin_ctzll(m) / 8; /* the first byte flagged */
        int n = s_utf8_char(p, end);
        if (!n)
            return -1;
        p += n;
        extra += (size_t)n - 1;
    }
    return (long)(len - extra);
}

/* ev_utf8_chars, inline where text is validated. Most text is ASCII without
 * a NUL: all its words at once (the last eight bytes read again for the
 * tail, a short text in one word), and s_utf8_walk for the rest. */
static inline long s_utf8_chars(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t acc;
    if (len >= 8) {
        acc = s_flags_rough(s_load8(p + len - 8));
        for (size_t i = 0; i + 8 < len; i += 8)
            acc |= s_flags_rough(s_load8(p + i));
    } else if (len > 0) {
        acc = s_flags_rough(s_load_short(p, len));
    } else {
        return 0; /* empty text may be (NULL, 0): no pointer arithmetic on NULL */
    }
    return acc & 0x8080808080808080ULL ? s_utf8_walk(p, len) : (long)len;
}

long ev_utf8_chars(const char *s, size_t len)
{
    return s_utf8_chars(s, len);
}

bool ev_event_type_allowed(ev_str_t type)
{
#define EV_EVENT_TYPE(name)                                                                                     \
    if (type.len == sizeof #name - 1 && memcmp(type.ptr, #name, sizeof #name - 1) == 0)                         \
        return true;
#include "evpipe/event_types.def"
#undef EV_EVENT_TYPE
    return false;
}

/* ---- Validation ---- */

static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Text field i: present, UTF-8 without a NUL, within its characters.
 * Inlined into each of s_validate's calls (the compiler would not, with
 * s_utf8_chars in it): the field's place and limit become constants, and
 * ASCII text costs no call at all. */
__attribute__((always_inline)) static inline ev_reject_t s_validate_text(const ev_event_t *ev, int i, ev_error_t *err)
{
    const ev_field_t *f = &ev_fields[i];
    const ev_str_t *s = (const ev_str_t *)((const char *)ev + f->offset);
    if (s->len && !s->ptr)
        return ev_error_set(err, EV_REJECT_MISSING, "%s: missing", f->name);
    long chars = s_utf8_chars(s->ptr, s->len);
    if (chars < 0)
        return ev_error_set(err, EV_REJECT_ENCODING, "%s: not valid UTF-8 text (or holds a NUL byte)", f->name);
    if ((unsigned long)chars > f->max_chars)
        return ev_error_set(err, EV_REJECT_TOO_LONG, "%s: %ld characters, the limit is %u", f->name, chars,
                            f->max_chars);
    return EV_OK;
}

static ev_reject_t s_validate(const ev_event_t *ev, unsigned where, ev_error_t *err)
{
    /* Each text field, written out from the field list (the others drop out
     * when compiling). */
#define EV_FIELD(name, kind, max, sql, where_)                                                                  \
    if (EV_KIND_##kind == EV_KIND_STR && (EV_WHERE_##where_ & where)) {                                         \
        ev_reject_t rc = s_validate_text(ev, EV_F_##name, err);                                                 \
        if (rc != EV_OK)                                                                                        \
            return rc;                                                                                          \
    }
#include "evpipe/event_fields.def"
#undef EV_FIELD
    if (where & EV_WHERE_PAYLOAD) {
        if (!ev_event_type_allowed(ev->event_type))
            return ev_error_set(err, EV_REJECT_EVENT_TYPE, "event_type: '%.*s' is not one of the allowed types",
                                (int)(ev->event_type.len > 40 ? 40 : ev->event_type.len),
                                ev->event_type.ptr ? ev->event_type.ptr : "");
        if (ev->product_price > EV_PRICE_MAX_CENTS || ev->product_price < -EV_PRICE_MAX_CENTS)
            return ev_error_set(err, EV_REJECT_PRICE, "product_price: %lld cents is outside numeric(10,2)",
                                (long long)ev->product_price);
        /* Years 1 to 9999, as ev_parse_time reads them: a valid event can be
         * archived and read back (and COPY refuses years before 1 as written). */
        const int64_t day_us = 86400LL * 1000000;
        if (ev->event_time < s_days_from_civil(1, 1, 1) * day_us ||
            ev->event_time >= s_days_from_civil(10000, 1, 1) * day_us)
            return ev_error_set(err, EV_REJECT_TIME, "event_time: %lld us is outside years 1 to 9999",
                                (long long)ev->event_time);
    }
    if (where & EV_WHERE_IDENTITY) {
        if (ev->source.len == 0)
            return ev_error_set(err, EV_REJECT_IDENTITY, "source: empty");
        if (ev->partition < 0 || ev->partition >= EV_PARTITIONS_MAX)
            return ev_error_set(err, EV_REJECT_IDENTITY, "partition: %d is outside 0..%d", (int)ev->partition,
                                EV_PARTITIONS_MAX - 1);
        if (ev->seq < 1)
            return ev_error_set(err, EV_REJECT_IDENTITY, "seq: %lld, it starts at 1", (long long)ev->seq);
    }
    if (err)
        err->code = EV_OK, err->detail[0] = '\0';
    return EV_OK;
}

ev_reject_t ev_event_validate(const ev_event_t *ev, ev_error_t *err)
{
    return s_validate(ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY, err);
}

ev_reject_t ev_event_validate_payload(const ev_event_t *ev, ev_error_t *err)
{
    return s_validate(ev, EV_WHERE_PAYLOAD, err);
}

bool ev_event_equal(const ev_event_t *a, const ev_event_t *b, unsigned where)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & where))
            continue;
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        switch (f->kind) {
        case EV_KIND_I32:
            if (*(const int32_t *)pa != *(const int32_t *)pb)
                return false;
            break;
        case EV_KIND_I64:
        case EV_KIND_PRICE:
        case EV_KIND_TIME:
            if (*(const int64_t *)pa != *(const int64_t *)pb)
                return false;
            break;
        case EV_KIND_STR: {
            const ev_str_t *sa = (const ev_str_t *)pa, *sb = (const ev_str_t *)pb;
            if (sa->len != sb->len || (sa->len && memcmp(sa->ptr, sb->ptr, sa->len) != 0))
                return false;
            break;
        }
        }
    }
    return true;
}

/* ---- Parsing values ---- */

static bool s_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Parses an optionally signed decimal integer into [min, max]. */
__attribute__((always_inline)) static inline bool s_parse_int(const char *s, size_t len, int64_t min, int64_t max,
                                                      int64_t *out)
{
    bool neg = false;
    if (len && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++, len--;
    }
    /* At most 19 digits: below 10^19, which never overflows a uint64_t. */
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        int64_t sv = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        if (sv < min)
            return false;
        *out = sv;
    } else {
        if (v > (uint64_t)max)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static void s_quote(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = len > cap - 1 ? cap - 1 : len;
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[n] = '\0';
}

/* A value refused: "field: 'value' what", the value quoted printable and
 * cut short. Only on the failure path: good values pay nothing for it. */
static ev_reject_t s_bad_value(ev_error_t *err, ev_reject_t code, const char *field, const char *s, size_t len,
                               const char *what)
{
    char q[48];
    s_quote(q, sizeof q, s, len);
    return ev_error_set(err, code, "%s: '%s' %s", field, q, what);
}

ev_reject_t ev_parse_i32(const char *s, size_t len, int32_t *out, const char *field, ev_error_t *err)
{
    int64_t v;
    if (!s_parse_int(s, len, INT32_MIN, INT32_MAX, &v))
        return s_bad_value(err, EV_REJECT_NUMBER, field, s, len, "is not a 32-bit integer");
    *out = (int32_t)v;
    return EV_OK;
}

ev_reject_t ev_parse_i64(const char *s, size_t len, int64_t *out, const char *field, ev_error_t *err)
{
    if (!s_parse_int(s, len, INT64_MIN, INT64_MAX, out))
        return s_bad_value(err, EV_REJECT_NUMBER, field, s, len, "is not a 64-bit integer");
    return EV_OK;
}

ev_reject_t ev_parse_price(const char *s, size_t len, int64_t *cents, const char *field, ev_error_t *err)
{
    const char *orig = s;
    size_t olen = len;
    bool neg = false;
    if (len && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++, len--;
    }
    /* One pass: the integer digits (those after leading zeros counted),
     * then after a dot the fraction's. Every byte is checked before the
     * size, and the size before the cents, as the refusals come. */
    size_t i = 0, significant = 0;
    uint64_t v = 0; /* wraps past 8 significant digits, unused then */
    unsigned d;
    for (; i < len && (d = (unsigned)(unsigned char)s[i] - '0') <= 9; i++) {
        if (v || d)
            significant++, v = v * 10 + d;
    }
    bool decimal = i > 0, finer = false;
    uint64_t frac = 0;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        for (; i < len && (d = (unsigned)(unsigned char)s[i] - '0') <= 9; i++) {
            if (i - start < 2)
                frac = frac * 10 + d;
            else if (d)
                finer = true;
        }
        if (i - start == 1)
            frac *= 10;
    }
    if (!decimal || i < len)
        return s_bad_value(err, EV_REJECT_PRICE, field, orig, olen, "is not a decimal number");
    if (significant > 8)
        return s_bad_value(err, EV_REJECT_PRICE, field, orig, olen, "is larger than numeric(10,2) holds");
    if (finer)
        return s_bad_value(err, EV_REJECT_PRICE, field, orig, olen, "is finer than cents");
    int64_t c = (int64_t)(v * 100 + frac);
    *cents = neg ? -c : c;
    return EV_OK;
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void s_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static bool s_num(const char *s, size_t n, unsigned *out)
{
    if (!s_digits(s, n))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    *out = v;
    return true;
}

/* The last valid date ev_parse_time read on this thread ("YYYY-MM-DD") and
 * its day number: the rows of a file nearly all share their date with the
 * row before, and the same ten bytes always read as the same valid date. */
static _Thread_local struct {
    char ymd[10];  /* the date's bytes */
    bool set;      /* ymd and days hold one */
    int64_t days;  /* s_days_from_civil of it */
} s_last_date;

ev_reject_t ev_parse_time(const char *s, size_t len, int64_t *us, const char *field, ev_error_t *err)
{
    static const char not_a_time[] = "is not a time like 2024-01-31 12:00:00[.ffffff]";
    static const char not_valid[] = "is not a valid date and time";
    /* Every check of the form comes before any of the values, as the
     * refusals say: the time of day's form, the date's (unless it is the
     * date remembered, which passed every check before), then the date's
     * values, then the time's. */
    unsigned Y, M, D, h, mi, sec;
    if (len < 19 || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' || !s_num(s + 11, 2, &h) ||
        !s_num(s + 14, 2, &mi) || !s_num(s + 17, 2, &sec))
        return s_bad_value(err, EV_REJECT_TIME, field, s, len, not_a_time);
    int64_t days;
    if (s_last_date.set && memcmp(s, s_last_date.ymd, sizeof s_last_date.ymd) == 0) {
        days = s_last_date.days;
    } else {
        if (s[4] != '-' || s[7] != '-' || !s_num(s, 4, &Y) || !s_num(s + 5, 2, &M) || !s_num(s + 8, 2, &D))
            return s_bad_value(err, EV_REJECT_TIME, field, s, len, not_a_time);
        static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
        if (Y < 1 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap))
            return s_bad_value(err, EV_REJECT_TIME, field, s, len, not_valid);
        days = s_days_from_civil(Y, M, D);
        memcpy(s_last_date.ymd, s, sizeof s_last_date.ymd);
        s_last_date.days = days;
        s_last_date.set = true;
    }
    if (h > 23 || mi > 59 || sec > 59)
        return s_bad_value(err, EV_REJECT_TIME, field, s, len, not_valid);
    size_t i = 19;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        unsigned d;
        while (i < len && (d = (unsigned char)s[i] - '0') <= 9) {
            if (i - start < 6)
                frac = frac * 10 + d;
            i++;
        }
        size_t n = i - start;
        if (n == 0 || n > 6)
            return s_bad_value(err, EV_REJECT_TIME, field, s, len, "needs 1 to 6 fractional digits");
        static const int64_t scale[] = {1000000, 100000, 10000, 1000, 100, 10, 1};
        frac *= scale[n];
    }
    int64_t offset_s = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        unsigned oh, om;
        size_t rest = len - i - 1;
        const char *o = s + i + 1;
        bool ok = (rest == 5 && o[2] == ':' && s_num(o, 2, &oh) && s_num(o + 3, 2, &om)) ||
                  (rest == 4 && s_num(o, 2, &oh) && s_num(o + 2, 2, &om)) || (rest == 2 && s_num(o, 2, &oh) && !(om = 0));
        if (!ok || oh > 23 || om > 59)
            return s_bad_value(err, EV_REJECT_TIME, field, s, len, "has a bad UTC offset");
        offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i = len;
    }
    if (i != len)
        return s_bad_value(err, EV_REJECT_TIME, field, s, len, "has trailing characters");
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    /* An offset may move a time out of years 1..9999, which PostgreSQL refuses. */
    if (secs < s_days_from_civil(1, 1, 1) * 86400 || secs >= s_days_from_civil(10000, 1, 1) * 86400)
        return s_bad_value(err, EV_REJECT_TIME, field, s, len, "is outside years 1 to 9999 in UTC");
    *us = secs * 1000000 + frac;
    return EV_OK;
}

/* ---- Formatting values ---- */

void ev_format_price(ev_buf_t *b, int64_t cents)
{
    /* Every CSV, COPY and JSON row: digits by hand, from the right. */
    uint64_t u = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char tmp[32];
    char *p = tmp + sizeof tmp;
    *--p = (char)('0' + u % 10);
    *--p = (char)('0' + u / 10 % 10);
    *--p = '.';
    u /= 100;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (cents < 0)
        *--p = '-';
    ev_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

static void s_put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void ev_format_time(ev_buf_t *b, int64_t us, bool iso_t)
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0)
        frac += 1000000, secs--;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0)
        rem += 86400, days--;
    int y;
    unsigned m, d;
    s_civil_from_days(days, &y, &m, &d);
    char t[40];
    if (y < 0 || y > 9999) {
        int n = snprintf(t, sizeof t, "%04d-%02u-%02u%c%02u:%02u:%02u.%06u%s", y, m, d, iso_t ? 'T' : ' ',
                         (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60),
                         (unsigned)frac, iso_t ? "Z" : "");
        ev_buf_append(b, t, (size_t)n);
        return;
    }
    /* The hot path (every CSV, COPY and JSON row): no printf. */
    t[0] = (char)('0' + y / 1000), t[1] = (char)('0' + y / 100 % 10);
    s_put2(t + 2, (unsigned)y % 100);
    t[4] = '-';
    s_put2(t + 5, m);
    t[7] = '-';
    s_put2(t + 8, d);
    t[10] = iso_t ? 'T' : ' ';
    s_put2(t + 11, (unsigned)(rem / 3600));
    t[13] = ':';
    s_put2(t + 14, (unsigned)(rem / 60 % 60));
    t[16] = ':';
    s_put2(t + 17, (unsigned)(rem % 60));
    t[19] = '.';
    unsigned f = (unsigned)frac;
    for (int k = 25; k >= 20; k--, f /= 10)
        t[k] = (char)('0' + f % 10);
    size_t n = 26;
    if (iso_t)
        t[n++] = 'Z';
    ev_buf_append(b, t, n);
}

bool ev_format_scalar(ev_buf_t *b, const ev_event_t *ev, int field, bool iso_t)
{
    const ev_field_t *f = &ev_fields[field];
    const char *p = (const char *)ev + f->offset;
    switch (f->kind) {
    case EV_KIND_I32:
        ev_buf_put_i64(b, *(const int32_t *)p);
        return true;
    case EV_KIND_I64:
        ev_buf_put_i64(b, *(const int64_t *)p);
        return true;
    case EV_KIND_PRICE:
        ev_format_price(b, *(const int64_t *)p);
        return true;
    case EV_KIND_TIME:
        ev_format_time(b, *(const int64_t *)p, iso_t);
        return true;
    case EV_KIND_STR:
        break;
    }
    return false;
}

void ev_format_row(ev_buf_t *b, const ev_event_t *ev, unsigned where, char sep,
                   void (*text)(ev_buf_t *b, const char *s, size_t len))
{
    bool first = true;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & where))
            continue;
        if (!first)
            ev_buf_putc(b, sep);
        first = false;
        if (!ev_format_scalar(b, ev, i, false)) {
            const ev_str_t *s = (const ev_str_t *)((const char *)ev + f->offset);
            text(b, s->ptr, s->len);
        }
    }
    ev_buf_putc(b, '\n');
}

int64_t ev_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ev_elapsed_us(int64_t now, int64_t then)
{
    int64_t d;
    if (!__builtin_sub_overflow(now, then, &d))
        return d;
    /* Only a then of the other sign from now overflows: then < 0 gives +. */
    return then < 0 ? INT64_MAX : INT64_MIN;
}

uint32_t ev_partition_of(int32_t user_id, uint32_t partitions)
{
    /* murmur3's 32-bit finaliser: every bit of user_id moves every bit. */
    uint32_t h = (uint32_t)user_id;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return partitions ? h % partitions : 0;
}
