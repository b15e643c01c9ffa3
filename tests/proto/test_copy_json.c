/* Unit tests of the event as a COPY text row (escaping, column list) and as a
 * JSON line (valid JSON that a strict parser reads back to the same values). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/copy.h"
#include "evpipe/json.h"
#include "proto_test.h"

/* ---- Helpers ---- */

#define NASTY "say \"hi\", then\nnew line\r\nCRLF\ttab \\back\\ \\N é 漢字 😀"

/* The shared event, its text made of what COPY and JSON must escape. */
static ev_event_t s_event(void)
{
    ev_event_t ev = pt_event();
    ev.user_id = -42;
    ev.user_name = pt_str(NASTY);
    ev.product_name = pt_str("\\.");
    ev.product_category = pt_str("\t\x01\x1f\x7f");
    ev.seq = 9007199254740993LL;
    return ev;
}

/* Undoes COPY text escaping of one field (the test's own reading of the format). */
static char *s_copy_unescape(const char *s, size_t len, size_t *out_len)
{
    char *o = malloc(len + 1), *p = o;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            *p++ = s[i];
            continue;
        }
        cr_assert_lt(i + 1, len, "a lone backslash at the end of a field");
        char c = s[++i];
        *p++ = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == '\\' ? '\\' : '?';
        cr_assert(c == 't' || c == 'n' || c == 'r' || c == '\\', "unexpected escape \\%c", c);
    }
    *p = '\0';
    *out_len = (size_t)(p - o);
    return o;
}

/* ---- A strict JSON reader (RFC 8259), enough to check our lines ---- */

typedef struct {
    char key[64];    /* member name */
    char type;       /* 's' string, 'n' number, 'l' literal, 'o' object, 'a' array */
    char *value;     /* decoded string, or the number's text */
    size_t len;      /* bytes in value */
} json_member_t;

typedef struct {
    const char *p, *end; /* what is left to read */
    const char *error;   /* the first error */
} json_t;

static void s_ws(json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int s_hex4(json_t *j)
{
    if (j->end - j->p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    j->p += 4;
    return v;
}

static void s_put_utf8(ev_buf_t *b, unsigned cp)
{
    if (cp < 0x80) {
        ev_buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        ev_buf_putc(b, (char)(0xC0 | cp >> 6));
        ev_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        ev_buf_putc(b, (char)(0xE0 | cp >> 12));
        ev_buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        ev_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        ev_buf_putc(b, (char)(0xF0 | cp >> 18));
        ev_buf_putc(b, (char)(0x80 | (cp >> 12 & 0x3F)));
        ev_buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        ev_buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* Reads a string literal into b (decoded); false on any error. */
static bool s_string(json_t *j, ev_buf_t *b)
{
    if (j->p >= j->end || *j->p != '"')
        return j->error = "a string was expected", false;
    j->p++;
    const char *run = j->p;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"' || c == '\\') {
            if (ev_utf8_chars(run, (size_t)(j->p - run)) < 0)
                return j->error = "raw bytes that are not UTF-8", false;
            ev_buf_append(b, run, (size_t)(j->p - run));
            j->p++;
            if (c == '"')
                return true;
            if (j->p >= j->end)
                return j->error = "a backslash at the end", false;
            char e = *j->p++;
            switch (e) {
            case '"': ev_buf_putc(b, '"'); break;
            case '\\': ev_buf_putc(b, '\\'); break;
            case '/': ev_buf_putc(b, '/'); break;
            case 'b': ev_buf_putc(b, '\b'); break;
            case 'f': ev_buf_putc(b, '\f'); break;
            case 'n': ev_buf_putc(b, '\n'); break;
            case 'r': ev_buf_putc(b, '\r'); break;
            case 't': ev_buf_putc(b, '\t'); break;
            case 'u': {
                int cp = s_hex4(j);
                if (cp < 0)
                    return j->error = "a bad \\u escape", false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                        return j->error = "a lone high surrogate", false;
                    j->p += 2;
                    int lo = s_hex4(j);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return j->error = "a bad low surrogate", false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return j->error = "a lone low surrogate", false;
                }
                s_put_utf8(b, (unsigned)cp);
                break;
            }
            default:
                return j->error = "an unknown escape", false;
            }
            run = j->p;
            continue;
        }
        if (c < 0x20)
            return j->error = "a raw control character in a string", false;
        j->p++;
    }
    return j->error = "an unterminated string", false;
}

static bool s_number(json_t *j)
{
    const char *p = j->p;
    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end || *p < '0' || *p > '9')
        return j->error = "a bad number", false;
    if (*p == '0')
        p++;
    else
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return j->error = "a bad fraction", false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return j->error = "a bad exponent", false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return true;
}

static bool s_value(json_t *j, int depth);

static bool s_container(json_t *j, int depth, bool object)
{
    j->p++;
    s_ws(j);
    if (j->p < j->end && *j->p == (object ? '}' : ']')) {
        j->p++;
        return true;
    }
    for (;;) {
        s_ws(j);
        if (object) {
            ev_buf_t key;
            ev_buf_init(&key);
            bool ok = s_string(j, &key);
            ev_buf_free(&key);
            if (!ok)
                return false;
            s_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return j->error = "a colon was expected", false;
            j->p++;
        }
        if (!s_value(j, depth + 1))
            return false;
        s_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (object ? '}' : ']')) {
            j->p++;
            return true;
        }
        return j->error = "a comma or a closing bracket was expected", false;
    }
}

static bool s_value(json_t *j, int depth)
{
    if (depth > 32)
        return j->error = "nested too deep", false;
    s_ws(j);
    if (j->p >= j->end)
        return j->error = "a value was expected", false;
    char c = *j->p;
    if (c == '{' || c == '[')
        return s_container(j, depth, c == '{');
    if (c == '"') {
        ev_buf_t b;
        ev_buf_init(&b);
        bool ok = s_string(j, &b);
        ev_buf_free(&b);
        return ok;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return s_number(j);
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
            j->p += n;
            return true;
        }
    }
    return j->error = "an unknown value", false;
}

/* Parses one JSON object of scalars into members; fails the test when the
 * text is not valid JSON. Returns the number of members. */
static size_t s_parse_object(const char *text, size_t len, json_member_t *m, size_t max)
{
    json_t j = {text, text + len, NULL};
    /* First the whole text, strictly. */
    cr_assert(s_value(&j, 0), "not JSON (%s) at byte %zu of: %.*s", j.error, (size_t)(j.p - text), (int)len,
              text);
    s_ws(&j);
    cr_assert_eq(j.p, j.end, "text after the JSON value");
    /* Then the members, one level deep. */
    j.p = text;
    s_ws(&j);
    cr_assert_eq(*j.p, '{', "an object was expected");
    j.p++;
    size_t n = 0;
    for (;;) {
        s_ws(&j);
        if (*j.p == '}')
            break;
        cr_assert_lt(n, max);
        ev_buf_t key, val;
        ev_buf_init(&key);
        ev_buf_init(&val);
        cr_assert(s_string(&j, &key));
        cr_assert_lt(key.len, sizeof m[n].key);
        memcpy(m[n].key, key.data, key.len + 1);
        ev_buf_free(&key);
        s_ws(&j);
        j.p++; /* the colon */
        s_ws(&j);
        const char *start = j.p;
        if (*j.p == '"') {
            m[n].type = 's';
            cr_assert(s_string(&j, &val));
        } else {
            m[n].type = *j.p == '{' ? 'o' : *j.p == '[' ? 'a' : (*j.p == '-' || (*j.p >= '0' && *j.p <= '9')) ? 'n' : 'l';
            cr_assert(s_value(&j, 1));
            ev_buf_append(&val, start, (size_t)(j.p - start));
        }
        if (!val.data)
            ev_buf_reserve(&val, 0);
        m[n].value = val.data;
        m[n].len = val.len;
        n++;
        s_ws(&j);
        if (*j.p == ',')
            j.p++;
    }
    return n;
}

static void s_free_members(json_member_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].value);
}

static char *s_json_string(const char *s, size_t len)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_json_append_string(&b, s, len);
    return b.data;
}

/* ---- COPY ---- */

Test(copy_row, column_list_is_payload_then_identity_in_field_order)
{
    cr_assert_str_eq(ev_copy_columns(), "user_id,user_name,user_email,event_type,product_id,product_name,"
                                        "product_category,product_price,event_time,source,partition,seq");
    ev_buf_t b;
    ev_buf_init(&b);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (!(ev_fields[i].where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        if (b.len)
            ev_buf_putc(&b, ',');
        ev_buf_puts(&b, ev_fields[i].name);
    }
    cr_assert_str_eq(ev_copy_columns(), b.data);
    cr_assert_eq(ev_copy_columns(), ev_copy_columns(), "made once");
    ev_buf_free(&b);
}

Test(copy_row, is_one_line_of_tab_separated_escaped_fields)
{
    ev_event_t ev = s_event();
    ev_buf_t b;
    ev_buf_init(&b);
    ev_copy_append_row(&b, &ev);
    cr_assert_gt(b.len, 0);
    cr_assert_eq(b.data[b.len - 1], '\n');
    cr_assert_eq(memchr(b.data, '\n', b.len), b.data + b.len - 1, "one line end, at the end");
    cr_assert_null(memchr(b.data, '\r', b.len), "no raw CR");
    size_t tabs = 0;
    for (size_t i = 0; i < b.len; i++)
        tabs += b.data[i] == '\t';
    cr_assert_eq(tabs, 11, "12 columns, 11 separators (tabs in text are escaped)");
    ev_buf_free(&b);
}

Test(copy_row, escapes_backslash_tab_newline_and_cr)
{
    ev_event_t ev = s_event();
    ev.user_name = pt_str("a\\b\tc\nd\re\\N");
    ev.product_name = pt_str("é 漢字 😀 \"q\", ok");
    ev.product_category = pt_str("");
    ev_buf_t b;
    ev_buf_init(&b);
    ev_copy_append_row(&b, &ev);
    cr_assert_str_eq(b.data, "-42\ta\\\\b\\tc\\nd\\re\\\\N\tzoe@example.com\tpurchase\t7\t"
                             "é 漢字 😀 \"q\", ok\t\t12.50\t2024-01-31 12:00:00.000001\t"
                             "gen-0123456789abcdef\t3\t9007199254740993\n");
    ev_buf_free(&b);
}

Test(copy_row, append_text_escapes_one_value_without_a_separator)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_copy_append_text(&b, "a\\b\tc\nd\re é", strlen("a\\b\tc\nd\re é"));
    cr_assert_str_eq(b.data, "a\\\\b\\tc\\nd\\re é");
    ev_buf_reset(&b);
    ev_copy_append_text(&b, "", 0);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    ev_buf_free(&b);
}

Test(copy_row, fields_read_back_to_the_event)
{
    ev_event_t ev = s_event();
    ev.product_price = -50;
    ev_buf_t b;
    ev_buf_init(&b);
    ev_copy_append_row(&b, &ev);
    /* Split on tabs, undo the escapes, and compare with the field list. */
    const char *p = b.data, *end = b.data + b.len - 1;
    int col = 0;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        size_t n;
        char *text = s_copy_unescape(p, (size_t)(stop - p), &n);
        ev_buf_t want;
        ev_buf_init(&want);
        if (!ev_format_scalar(&want, &ev, i, false)) {
            const ev_str_t *s = (const ev_str_t *)((const char *)&ev + f->offset);
            ev_buf_append(&want, s->ptr, s->len);
        }
        if (!want.data)
            ev_buf_reserve(&want, 0);
        cr_assert_eq(n, want.len, "%s", f->name);
        cr_assert_arr_eq(text, want.data, n, "%s", f->name);
        free(text);
        ev_buf_free(&want);
        col++;
        p = stop + 1;
    }
    cr_assert_eq(col, 12);
    cr_assert_eq(p, end + 1, "no columns left over");
    cr_assert(strstr(b.data, "\t-0.50\t") != NULL, "the price is exact: %s", b.data);
    ev_buf_free(&b);
}

/* ---- Binary COPY rows ---- */

/* A row's bytes as hex. */
static char *s_hex(const ev_buf_t *b)
{
    char *h = malloc(2 * b->len + 1);
    for (size_t i = 0; i < b->len; i++)
        sprintf(h + 2 * i, "%02x", (unsigned char)b->data[i]);
    h[2 * b->len] = '\0';
    return h;
}

/* The bytes were checked against PostgreSQL's own COPY ... FROM binary when
 * first written (the writer's tests load such rows and read them back); a
 * new field in the field list changes them. */
Test(copy_binary, rows_are_the_bytes_postgresql_reads)
{
    ev_event_t e[4];
    e[0] = pt_event();
    e[0].user_id = 42, e[0].user_name = pt_str("Zo\xc3\xab"), e[0].user_email = pt_str("z@x.org");
    e[0].event_type = pt_str("purchase"), e[0].product_id = 7, e[0].product_name = pt_str("Tea, green");
    e[0].product_category = pt_str("Food"), e[0].product_price = 1250, e[0].event_time = 1706702400000001LL;
    e[0].source = pt_str("gen-a"), e[0].partition = 3, e[0].seq = 1;
    /* the extremes: int32 limits, empty text, a negative price below 1, year 1, the last seq */
    e[1] = e[0];
    e[1].user_id = INT32_MIN, e[1].product_id = INT32_MAX, e[1].user_name = pt_str(""), e[1].product_price = -5;
    e[1].event_time = -62135596800000000LL, e[1].partition = 1023, e[1].seq = INT64_MAX;
    /* zero, and PostgreSQL's epoch */
    e[2] = e[0];
    e[2].product_price = 0, e[2].event_time = 946684800000000LL;
    /* the lowest price numeric(10,2) holds, the last microsecond of year 9999 */
    e[3] = e[0];
    e[3].product_price = -EV_PRICE_MAX_CENTS, e[3].event_time = 253402300799999999LL;
    static const char *const want[] = {
        "000c000000040000002a000000045a6fc3ab000000077a40782e6f726700000008707572636861736500000004000000070000000a"
        "5465612c20677265656e00000004466f6f640000000c0002000000000002000c1388000000080002b33b631230010000000567656e"
        "2d610000000400000003000000080000000000000001",
        "000c000000048000000000000000000000077a40782e6f7267000000087075726368617365000000047fffffff0000000a5465612c"
        "20677265656e00000004466f6f640000000a0001ffff4000000201f400000008ff1fe2ffc59c60000000000567656e2d6100000004"
        "000003ff000000087fffffffffffffff",
        "000c000000040000002a000000045a6fc3ab000000077a40782e6f726700000008707572636861736500000004000000070000000a"
        "5465612c20677265656e00000004466f6f6400000008000000000000000200000008000000000000000000000005"
        "67656e2d610000000400000003000000080000000000000001",
        "000c000000040000002a000000045a6fc3ab000000077a40782e6f726700000008707572636861736500000004000000070000000a"
        "5465612c20677265656e00000004466f6f640000000e0003000140000002270f270f26ac000000080380e70b913b7fff0000000567"
        "656e2d610000000400000003000000080000000000000001",
    };
    ev_buf_t all;
    ev_buf_init(&all);
    for (int i = 0; i < 4; i++) {
        ev_buf_t b;
        ev_buf_init(&b);
        ev_copy_append_row_binary(&b, &e[i]);
        char *h = s_hex(&b);
        cr_assert_str_eq(h, want[i], "row %d", i);
        free(h);
        ev_copy_append_row_binary(&all, &e[i]);
        ev_buf_free(&b);
    }
    /* Rows append one after another into one buffer that grows. */
    cr_assert_eq(all.len, (strlen(want[0]) + strlen(want[1]) + strlen(want[2]) + strlen(want[3])) / 2);
    ev_buf_free(&all);
}

/* ---- JSON ---- */

Test(json_event, is_valid_json_with_every_field_by_name)
{
    ev_event_t ev = s_event();
    ev_buf_t b;
    ev_buf_init(&b);
    ev_json_append_event(&b, &ev);
    cr_assert_null(memchr(b.data, '\n', b.len), "one line");
    json_member_t m[32];
    size_t n = s_parse_object(b.data, b.len, m, 32);
    cr_assert_eq(n, EV_FIELD_COUNT);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        cr_assert_str_eq(m[i].key, f->name);
        const char *p = (const char *)&ev + f->offset;
        switch (f->kind) {
        case EV_KIND_STR: {
            const ev_str_t *s = (const ev_str_t *)p;
            cr_assert_eq(m[i].type, 's', "%s", f->name);
            cr_assert_eq(m[i].len, s->len, "%s", f->name);
            cr_assert_arr_eq(m[i].value, s->ptr, s->len, "%s", f->name);
            break;
        }
        case EV_KIND_I32:
        case EV_KIND_I64:
            cr_assert_eq(m[i].type, 'n', "%s is a number", f->name);
            cr_assert_eq(strtoll(m[i].value, NULL, 10), f->kind == EV_KIND_I32 ? *(const int32_t *)p
                                                                                : *(const int64_t *)p);
            break;
        case EV_KIND_PRICE:
        case EV_KIND_TIME:
            cr_assert_eq(m[i].type, 's', "%s is a string", f->name);
            break;
        }
    }
    cr_assert_str_eq(m[EV_F_product_price].value, "12.50");
    cr_assert_str_eq(m[EV_F_event_time].value, "2024-01-31T12:00:00.000001Z");
    cr_assert_str_eq(m[EV_F_published_at].value, "2024-01-31T12:00:00.000002Z");
    cr_assert_str_eq(m[EV_F_seq].value, "9007199254740993");
    cr_assert_str_eq(m[EV_F_user_id].value, "-42");
    s_free_members(m, n);
    ev_buf_free(&b);
}

Test(json_event, prices_are_exact_strings)
{
    static const struct {
        int64_t cents;
        const char *text;
    } cases[] = {{1250, "12.50"}, {-50, "-0.50"}, {0, "0.00"}, {9999999999LL, "99999999.99"}, {1, "0.01"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ev_event_t ev = s_event();
        ev.product_price = cases[i].cents;
        ev_buf_t b;
        ev_buf_init(&b);
        ev_json_append_event(&b, &ev);
        char want[64];
        snprintf(want, sizeof want, "\"product_price\":\"%s\"", cases[i].text);
        cr_assert(strstr(b.data, want) != NULL, "%s not in %s", want, b.data);
        ev_buf_free(&b);
    }
}

Test(json_string, escapes_quotes_backslashes_and_control_characters)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"", 0, "\"\""},
        {"say \"hi\"", 8, "\"say \\\"hi\\\"\""},
        {"back\\slash", 10, "\"back\\\\slash\""},
        {"a\nb\rc\td", 7, "\"a\\nb\\rc\\td\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"nul\0!", 5, "\"nul\\u0000!\""},
        {"\x7f/", 2, "\"\x7f/\""},
        {"é 漢字 😀", strlen("é 漢字 😀"), "\"é 漢字 😀\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = s_json_string(cases[i].in, cases[i].len);
        cr_assert_str_eq(s, cases[i].out, "case %zu", i);
        json_t j = {s, s + strlen(s), NULL};
        ev_buf_t back;
        ev_buf_init(&back);
        cr_assert(s_string(&j, &back), "case %zu is not a JSON string: %s", i, j.error);
        cr_assert_eq(back.len, cases[i].len, "case %zu", i);
        if (back.len)
            cr_assert_arr_eq(back.data, cases[i].in, back.len, "case %zu reads back", i);
        ev_buf_free(&back);
        free(s);
    }
}

Test(json_string, invalid_utf8_becomes_the_replacement_character)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"a\xFF" "b", "\"a\\ufffdb\""},
        {"\xC3", "\"\\ufffd\""},                       /* truncated at the end */
        {"\xC3(", "\"\\ufffd(\""},                     /* truncated before ASCII */
        {"\xC0\xAF", "\"\\ufffd\\ufffd\""},            /* overlong */
        {"\xED\xA0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a surrogate */
        {"\xE6\xBC", "\"\\ufffd\\ufffd\""},            /* half of 漢 */
        {"\x80\xBFé", "\"\\ufffd\\ufffdé\""},          /* lone continuations, then a good character */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = s_json_string(cases[i].in, strlen(cases[i].in));
        cr_assert_str_eq(s, cases[i].out, "case %zu", i);
        json_t j = {s, s + strlen(s), NULL};
        ev_buf_t back;
        ev_buf_init(&back);
        cr_assert(s_string(&j, &back), "case %zu is not a JSON string: %s", i, j.error);
        ev_buf_free(&back);
        free(s);
    }
}

Test(json_event, stays_valid_with_invalid_text_in_every_field)
{
    ev_event_t ev = s_event();
    static const char bad[] = "\"\\\x01\xFF\xC3\n\0\xF0\x9F\x98";
    ev_str_t b = {bad, sizeof bad - 1};
    ev.user_name = ev.user_email = ev.event_type = ev.product_name = ev.product_category = ev.source = b;
    ev_buf_t out;
    ev_buf_init(&out);
    ev_json_append_event(&out, &ev);
    json_member_t m[32];
    size_t n = s_parse_object(out.data, out.len, m, 32);
    cr_assert_eq(n, EV_FIELD_COUNT);
    cr_assert_geq(ev_utf8_chars(out.data, out.len), 0, "the line is valid UTF-8 with no NUL");
    s_free_members(m, n);
    ev_buf_free(&out);
}
