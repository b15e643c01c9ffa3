/* Unit tests of the event definition: the field table, value parsing and
 * formatting (integers, prices in cents, times in microseconds), UTF-8
 * counting, validation against the table's limits, equality and partitions. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/event.h"
#include "proto_test.h"

/* ---- Helpers ---- */

/* Text of n copies of the UTF-8 character ch. */
static char *s_repeat(const char *ch, size_t n)
{
    size_t k = strlen(ch);
    char *s = malloc(k * n + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * k, ch, k);
    s[k * n] = '\0';
    return s;
}

static int64_t s_price(const char *text)
{
    int64_t cents = -7;
    ev_error_t err = {0};
    ev_reject_t rc = ev_parse_price(text, strlen(text), &cents, "product_price", &err);
    cr_assert_eq(rc, EV_OK, "'%s' was refused: %s", text, err.detail);
    return cents;
}

static void s_price_refused(const char *text)
{
    int64_t cents = 0;
    ev_error_t err = {0};
    ev_reject_t rc = ev_parse_price(text, strlen(text), &cents, "product_price", &err);
    cr_assert_eq(rc, EV_REJECT_PRICE, "'%s' gave %s, bad_price expected", text, ev_reject_name(rc));
    cr_assert_eq(err.code, EV_REJECT_PRICE);
    cr_assert(strstr(err.detail, "product_price") != NULL, "detail does not name the field: %s", err.detail);
}

static int64_t s_time(const char *text)
{
    int64_t us = -7;
    ev_error_t err = {0};
    ev_reject_t rc = ev_parse_time(text, strlen(text), &us, "event_time", &err);
    cr_assert_eq(rc, EV_OK, "'%s' was refused: %s", text, err.detail);
    return us;
}

static void s_time_refused(const char *text)
{
    int64_t us = 0;
    ev_error_t err = {0};
    ev_reject_t rc = ev_parse_time(text, strlen(text), &us, "event_time", &err);
    cr_assert_eq(rc, EV_REJECT_TIME, "'%s' gave %s, bad_time expected", text, ev_reject_name(rc));
    cr_assert(strstr(err.detail, "event_time") != NULL, "detail does not name the field: %s", err.detail);
}

/* ev_format_time into a fresh string (the caller frees it). */
static char *s_format_time(int64_t us, bool iso)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_format_time(&b, us, iso);
    return b.data;
}

static char *s_format_price(int64_t cents)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_format_price(&b, cents);
    return b.data;
}

/* ---- The field table ---- */

Test(event_fields, payload_fields_come_first_in_the_old_generator_order)
{
    static const char *const payload[] = {"user_id", "user_name", "user_email", "event_type", "product_id",
                                          "product_name", "product_category", "product_price", "event_time"};
    size_t n = sizeof payload / sizeof payload[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(ev_fields[i].name, payload[i]);
        cr_assert_eq(ev_fields[i].where, EV_WHERE_PAYLOAD);
    }
    for (size_t i = n; i < EV_FIELD_COUNT; i++)
        cr_assert_neq(ev_fields[i].where, EV_WHERE_PAYLOAD, "%s is after the payload", ev_fields[i].name);
}

Test(event_fields, identity_is_source_partition_seq)
{
    cr_assert_eq(ev_fields[EV_F_source].where, EV_WHERE_IDENTITY);
    cr_assert_eq(ev_fields[EV_F_partition].where, EV_WHERE_IDENTITY);
    cr_assert_eq(ev_fields[EV_F_seq].where, EV_WHERE_IDENTITY);
    cr_assert_eq(ev_fields[EV_F_published_at].where, EV_WHERE_WIRE);
    cr_assert_eq(ev_fields[EV_F_seq].kind, EV_KIND_I64);
}

Test(event_fields, text_limits_match_the_table_columns)
{
    cr_assert_eq(ev_fields[EV_F_user_name].max_chars, 255);
    cr_assert_eq(ev_fields[EV_F_user_email].max_chars, 255);
    cr_assert_eq(ev_fields[EV_F_event_type].max_chars, 50);
    cr_assert_eq(ev_fields[EV_F_product_name].max_chars, 150);
    cr_assert_eq(ev_fields[EV_F_product_category].max_chars, 100);
    cr_assert_eq(ev_fields[EV_F_source].max_chars, 64);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        char want[64];
        if (ev_fields[i].kind != EV_KIND_STR)
            continue;
        snprintf(want, sizeof want, "character varying(%u)", ev_fields[i].max_chars);
        cr_assert_str_eq(ev_fields[i].sql_type, want);
    }
}

Test(event_fields, offsets_point_at_the_struct_members)
{
    cr_assert_eq(ev_fields[EV_F_user_id].offset, offsetof(ev_event_t, user_id));
    cr_assert_eq(ev_fields[EV_F_product_price].offset, offsetof(ev_event_t, product_price));
    cr_assert_eq(ev_fields[EV_F_published_at].offset, offsetof(ev_event_t, published_at));
}

Test(event_fields, field_index_finds_names_by_exact_length)
{
    cr_assert_eq(ev_field_index("user_id", 7), EV_F_user_id);
    cr_assert_eq(ev_field_index("seq", 3), EV_F_seq);
    cr_assert_eq(ev_field_index("user_idx", 7), EV_F_user_id, "only len bytes count");
    cr_assert_eq(ev_field_index("user_id", 6), -1);
    cr_assert_eq(ev_field_index("USER_ID", 7), -1);
    cr_assert_eq(ev_field_index("", 0), -1);
}

Test(event_fields, each_name_length_is_the_names)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        cr_assert_eq(ev_fields[i].name_len, strlen(ev_fields[i].name), "%s", ev_fields[i].name);
}

Test(event_fields, event_types_are_view_and_purchase)
{
    cr_assert_str_eq(ev_event_types[0], "view");
    cr_assert_str_eq(ev_event_types[1], "purchase");
    cr_assert_null(ev_event_types[2]);
    cr_assert(ev_event_type_allowed(pt_str("view")));
    cr_assert(ev_event_type_allowed(pt_str("purchase")));
    cr_assert_not(ev_event_type_allowed(pt_str("click")));
    cr_assert_not(ev_event_type_allowed(pt_str("View")));
    cr_assert_not(ev_event_type_allowed(pt_str("views")));
    cr_assert_not(ev_event_type_allowed(pt_str("")));
}

Test(event_fields, reject_names_are_stable)
{
    cr_assert_str_eq(ev_reject_name(EV_OK), "ok");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_COLUMNS), "column_count");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_MISSING), "missing_field");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_NUMBER), "bad_number");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_PRICE), "bad_price");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_TIME), "bad_time");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_EVENT_TYPE), "bad_event_type");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_TOO_LONG), "too_long");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_ENCODING), "bad_encoding");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_IDENTITY), "bad_identity");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_DECODE), "undecodable");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_LINE_TOO_LONG), "line_too_long");
    cr_assert_str_eq(ev_reject_name(EV_REJECT_DATABASE), "database");
    cr_assert_str_eq(ev_reject_name(EV_REJECT__COUNT), "unknown");
}

/* ---- Integers ---- */

Test(event_parse_int, accepts_the_whole_32_bit_range)
{
    int32_t v = 0;
    cr_assert_eq(ev_parse_i32("0", 1, &v, "user_id", NULL), EV_OK);
    cr_assert_eq(v, 0);
    cr_assert_eq(ev_parse_i32("2147483647", 10, &v, "user_id", NULL), EV_OK);
    cr_assert_eq(v, INT32_MAX);
    cr_assert_eq(ev_parse_i32("-2147483648", 11, &v, "user_id", NULL), EV_OK);
    cr_assert_eq(v, INT32_MIN);
    cr_assert_eq(ev_parse_i32("007", 3, &v, "user_id", NULL), EV_OK);
    cr_assert_eq(v, 7);
}

Test(event_parse_int, refuses_text_overflow_and_blanks_naming_the_field)
{
    static const char *const bad[] = {"abc", "2147483648", "-2147483649", "", " 5", "5 ", "1.0", "-", "0x10",
                                      "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t v = 0;
        ev_error_t err = {0};
        cr_assert_eq(ev_parse_i32(bad[i], strlen(bad[i]), &v, "user_id", &err), EV_REJECT_NUMBER, "'%s'", bad[i]);
        cr_assert(strstr(err.detail, "user_id") != NULL, "%s", err.detail);
    }
}

Test(event_parse_int, reads_only_len_bytes)
{
    int32_t v = 0;
    cr_assert_eq(ev_parse_i32("12,34", 2, &v, "user_id", NULL), EV_OK);
    cr_assert_eq(v, 12);
}

Test(event_parse_int, accepts_the_whole_64_bit_range)
{
    int64_t v = 0;
    cr_assert_eq(ev_parse_i64("9223372036854775807", 19, &v, "seq", NULL), EV_OK);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(ev_parse_i64("-9223372036854775808", 20, &v, "seq", NULL), EV_OK);
    cr_assert_eq(v, INT64_MIN);
    ev_error_t err = {0};
    cr_assert_eq(ev_parse_i64("9223372036854775808", 19, &v, "seq", &err), EV_REJECT_NUMBER);
    cr_assert(strstr(err.detail, "seq") != NULL);
    cr_assert_eq(ev_parse_i64("18446744073709551616", 20, &v, "seq", NULL), EV_REJECT_NUMBER);
}

/* ---- Prices ---- */

Test(event_price, parses_to_exact_cents)
{
    cr_assert_eq(s_price("0.01"), 1);
    cr_assert_eq(s_price("99999999.99"), 9999999999LL);
    cr_assert_eq(s_price("-0.50"), -50);
    cr_assert_eq(s_price("120.0"), 12000);
    cr_assert_eq(s_price("120.000"), 12000);
    cr_assert_eq(s_price("120"), 12000);
    cr_assert_eq(s_price("5"), 500);
    cr_assert_eq(s_price("19.99"), 1999);
    cr_assert_eq(s_price("0.1"), 10);
    cr_assert_eq(s_price("-3.10"), -310);
    cr_assert_eq(s_price("0"), 0);
    cr_assert_eq(s_price("0.29"), 29, "0.29 is not 28 cents (no floats)");
    cr_assert_eq(s_price("1.15"), 115);
    cr_assert_eq(s_price("00000012.50"), 1250, "leading zeros do not count towards the limit");
}

Test(event_price, refuses_what_numeric_10_2_would_not_hold)
{
    s_price_refused("12.345");
    s_price_refused("1e5");
    s_price_refused("");
    s_price_refused("123456789.00");
    s_price_refused("100000000");
    s_price_refused("-123456789");
    s_price_refused("abc");
    s_price_refused(".");
    s_price_refused("-");
    s_price_refused("1.2.3");
    s_price_refused("12,50");
    s_price_refused(" 12.50");
    s_price_refused("12.50 ");
    s_price_refused("NaN");
    s_price_refused("inf");
}

Test(event_price, formats_back_with_two_decimals)
{
    static const struct {
        int64_t cents;
        const char *text;
    } cases[] = {{1, "0.01"}, {9999999999LL, "99999999.99"}, {-50, "-0.50"}, {12000, "120.00"},
                 {0, "0.00"},  {1250, "12.50"},               {-310, "-3.10"}, {-9999999999LL, "-99999999.99"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = s_format_price(cases[i].cents);
        cr_assert_str_eq(s, cases[i].text);
        cr_assert_eq(s_price(s), cases[i].cents, "%s does not parse back", s);
        free(s);
    }
    /* Beyond numeric(10,2) (validation refuses those), still exact text. */
    char *s = s_format_price(INT64_MIN);
    cr_assert_str_eq(s, "-92233720368547758.08");
    free(s);
    s = s_format_price(INT64_MAX);
    cr_assert_str_eq(s, "92233720368547758.07");
    free(s);
}

Test(event_price, validation_refuses_cents_beyond_numeric_10_2)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {0};
    ev.product_price = EV_PRICE_MAX_CENTS;
    cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "%s", err.detail);
    ev.product_price = -EV_PRICE_MAX_CENTS;
    cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "%s", err.detail);
    ev.product_price = EV_PRICE_MAX_CENTS + 1;
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_PRICE);
    cr_assert(strstr(err.detail, "product_price") != NULL);
    ev.product_price = -EV_PRICE_MAX_CENTS - 1;
    cr_assert_eq(ev_event_validate_payload(&ev, &err), EV_REJECT_PRICE);
}

/* ---- Times ---- */

Test(event_time, parses_with_and_without_fractions)
{
    int64_t base = 1706702400LL * 1000000; /* 2024-01-31 12:00:00 UTC */
    cr_assert_eq(s_time("2024-01-31 12:00:00"), base);
    cr_assert_eq(s_time("2024-01-31T12:00:00"), base);
    cr_assert_eq(s_time("2024-01-31 12:00:00.5"), base + 500000);
    cr_assert_eq(s_time("2024-01-31 12:00:00.12"), base + 120000);
    cr_assert_eq(s_time("2024-01-31 12:00:00.123"), base + 123000);
    cr_assert_eq(s_time("2024-01-31 12:00:00.1234"), base + 123400);
    cr_assert_eq(s_time("2024-01-31 12:00:00.12345"), base + 123450);
    cr_assert_eq(s_time("2024-01-31 12:00:00.123456"), base + 123456);
    cr_assert_eq(s_time("2024-01-31 12:00:00.000001"), base + 1);
    cr_assert_eq(s_time("1970-01-01 00:00:00"), 0);
}

Test(event_time, converts_offsets_to_utc)
{
    int64_t base = 1706702400LL * 1000000;
    cr_assert_eq(s_time("2024-01-31 12:00:00Z"), base);
    cr_assert_eq(s_time("2024-01-31T12:00:00.25Z"), base + 250000);
    cr_assert_eq(s_time("2024-01-31 14:00:00+02:00"), base);
    cr_assert_eq(s_time("2024-01-31T06:30:00-05:30"), base);
    cr_assert_eq(s_time("2024-01-31 14:00:00+0200"), base);
    cr_assert_eq(s_time("2024-01-31 14:00:00+02"), base);
    cr_assert_eq(s_time("2024-01-31 12:00:00+00:00"), base);
    cr_assert_eq(s_time("2024-02-01 01:00:00.000001+13:00"), base + 1, "an offset can cross the date");
}

Test(event_time, knows_leap_days)
{
    cr_assert_eq(s_time("2024-02-29 00:00:00"), 1709164800LL * 1000000);
    cr_assert_eq(s_time("2000-02-29 00:00:00"), 951782400LL * 1000000);
    s_time_refused("2023-02-29 00:00:00");
    s_time_refused("1900-02-29 00:00:00");
    s_time_refused("2024-02-30 00:00:00");
    s_time_refused("2024-04-31 00:00:00");
}

Test(event_time, reaches_year_1_and_year_9999)
{
    int64_t first = s_time("0001-01-01 00:00:00");
    cr_assert_eq(first, -62135596800LL * 1000000);
    int64_t last = s_time("9999-12-31 23:59:59.999999");
    cr_assert_eq(last, 253402300799LL * 1000000 + 999999);
    char *s = s_format_time(first, false);
    cr_assert_str_eq(s, "0001-01-01 00:00:00.000000");
    free(s);
    s = s_format_time(last, false);
    cr_assert_str_eq(s, "9999-12-31 23:59:59.999999");
    free(s);
    s_time_refused("0000-12-31 23:59:59");
}

Test(event_time, refuses_what_is_not_a_time)
{
    s_time_refused("2024-13-01 00:00:00");
    s_time_refused("2024-00-10 00:00:00");
    s_time_refused("2024-01-00 00:00:00");
    s_time_refused("2024-01-01 24:00:00");
    s_time_refused("2024-01-01 23:60:00");
    s_time_refused("2024-01-01 23:59:60");
    s_time_refused("garbage");
    s_time_refused("");
    s_time_refused("2024-01-01");
    s_time_refused("2024/01/01 00:00:00");
    s_time_refused("2024-01-01x00:00:00");
    s_time_refused("2024-1-01 00:00:00");
    s_time_refused("2024-01-01 00:00:00.1234567"); /* 7 fractional digits */
    s_time_refused("2024-01-01 00:00:00.");
    s_time_refused("2024-01-01 00:00:00 ");
    s_time_refused("2024-01-01 00:00:00Z+01:00");
    s_time_refused("2024-01-01 00:00:00+24:00");
    s_time_refused("2024-01-01 00:00:00+01:60");
    s_time_refused("2024-01-01 00:00:00+1");
    s_time_refused("2024-01-01 00:00:00UTC");
    s_time_refused("+024-01-01 00:00:00");
}

Test(event_time, formats_back_exactly)
{
    int64_t t = s_time("2024-01-31 12:00:00.000001");
    char *s = s_format_time(t, false);
    cr_assert_str_eq(s, "2024-01-31 12:00:00.000001");
    free(s);
    s = s_format_time(t, true);
    cr_assert_str_eq(s, "2024-01-31T12:00:00.000001Z");
    free(s);
    s = s_format_time(0, false);
    cr_assert_str_eq(s, "1970-01-01 00:00:00.000000");
    free(s);
    s = s_format_time(-1, false);
    cr_assert_str_eq(s, "1969-12-31 23:59:59.999999", "times before 1970 round down");
    free(s);
    s = s_format_time(s_time("2024-02-29 23:59:59.5"), false);
    cr_assert_str_eq(s, "2024-02-29 23:59:59.500000");
    free(s);
}

Test(event_time, formatted_times_parse_back)
{
    static const int64_t samples[] = {0, 1, 999999, 1706702400000001LL, -1, -62135596800LL * 1000000,
                                      253402300799LL * 1000000 + 999999, 951782400LL * 1000000 - 1};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        for (int iso = 0; iso < 2; iso++) {
            char *s = s_format_time(samples[i], iso);
            cr_assert_eq(s_time(s), samples[i], "%s", s);
            free(s);
        }
    }
}

/* ---- Numbers against a reference ---- */

/* Whether text[0..len) matches the extended regular expression re (the
 * last one compiled is kept: the callers ask of one at a time). */
static bool s_matches(const char *re, const char *text, size_t len)
{
    static regex_t r;
    static const char *compiled;
    if (compiled != re) {
        if (compiled)
            regfree(&r);
        cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
        compiled = re;
    }
    char buf[64];
    cr_assert_lt(len, sizeof buf);
    memcpy(buf, text, len);
    buf[len] = '\0';
    return memchr(text, '\0', len) == NULL && regexec(&r, buf, 0, NULL, 0) == 0;
}

/* The integer ev_parse_i64 and ev_parse_i32 must read: a sign, 1 to 19
 * digits, within the type (strtoll and a range check). */
static bool s_int_reference(const char *text, size_t len, int64_t min, int64_t max, int64_t *out)
{
    if (!s_matches("^[+-]?[0-9]{1,19}$", text, len))
        return false;
    char buf[32];
    memcpy(buf, text, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* What ev_parse_price must give: its value in cents, or the refusal's last
 * words ("not a decimal", "larger", "finer"), from a regular expression and
 * strtoll on the digits. */
static const char *s_price_reference(const char *text, size_t len, int64_t *cents)
{
    if (!s_matches("^[+-]?[0-9]+([.][0-9]*)?$", text, len))
        return "is not a decimal number";
    char buf[64];
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *p = buf + (buf[0] == '-' || buf[0] == '+');
    char *dot = strchr(p, '.');
    if (dot)
        *dot = '\0';
    while (p[0] == '0' && p[1])
        p++;
    if (strlen(p) > 8)
        return "is larger than numeric(10,2) holds";
    const char *frac = dot ? dot + 1 : "";
    for (size_t i = 2; i < strlen(frac); i++)
        if (frac[i] != '0')
            return "is finer than cents";
    int64_t v = strtoll(p, NULL, 10) * 100;
    if (frac[0])
        v += (frac[0] - '0') * 10 + (frac[1] ? frac[1] - '0' : 0);
    *cents = buf[0] == '-' ? -v : v;
    return NULL;
}

/* Every text of up to `most` bytes from the alphabet, and the extra texts,
 * through check(). */
static void s_every_text(const char *alphabet, size_t most, const char *const *extra, void (*check)(const char *, size_t))
{
    size_t k = strlen(alphabet);
    char text[16];
    for (size_t len = 0; len <= most; len++) {
        size_t combos = 1;
        for (size_t i = 0; i < len; i++)
            combos *= k;
        for (size_t c = 0; c < combos; c++) {
            size_t x = c;
            for (size_t i = 0; i < len; i++, x /= k)
                text[i] = alphabet[x % k];
            check(text, len);
        }
    }
    for (size_t i = 0; extra[i]; i++)
        check(extra[i], strlen(extra[i]));
}

static void s_check_int(const char *text, size_t len)
{
    int64_t want = 0, got64 = -7;
    int32_t got32 = -7;
    ev_error_t err = {0};
    bool ok64 = s_int_reference(text, len, INT64_MIN, INT64_MAX, &want);
    ev_reject_t rc = ev_parse_i64(text, len, &got64, "seq", &err);
    cr_assert_eq(rc == EV_OK, ok64, "'%.*s' as a 64-bit integer: %s", (int)len, text, ev_reject_name(rc));
    if (ok64)
        cr_assert_eq(got64, want, "'%.*s' read as %lld", (int)len, text, (long long)got64);
    else
        cr_assert_eq(rc, EV_REJECT_NUMBER);
    bool ok32 = s_int_reference(text, len, INT32_MIN, INT32_MAX, &want);
    rc = ev_parse_i32(text, len, &got32, "user_id", &err);
    cr_assert_eq(rc == EV_OK, ok32, "'%.*s' as a 32-bit integer: %s", (int)len, text, ev_reject_name(rc));
    if (ok32)
        cr_assert_eq(got32, want, "'%.*s' read as %d", (int)len, text, got32);
    else
        cr_assert(rc == EV_REJECT_NUMBER && strstr(err.detail, "is not a 32-bit integer"), "%s", err.detail);
}

static void s_check_price(const char *text, size_t len)
{
    int64_t want = 0, got = -7;
    ev_error_t err = {0};
    const char *refused = s_price_reference(text, len, &want);
    ev_reject_t rc = ev_parse_price(text, len, &got, "product_price", &err);
    if (!refused) {
        cr_assert_eq(rc, EV_OK, "'%.*s' refused: %s", (int)len, text, err.detail);
        cr_assert_eq(got, want, "'%.*s' read as %lld, not %lld", (int)len, text, (long long)got, (long long)want);
    } else {
        cr_assert_eq(rc, EV_REJECT_PRICE, "'%.*s' accepted as %lld, the reference says %s", (int)len, text,
                     (long long)got, refused);
        cr_assert(strstr(err.detail, refused) != NULL, "'%.*s': '%s', not '%s'", (int)len, text, err.detail,
                  refused);
    }
}

Test(event_number, integers_agree_with_strtoll_for_every_short_text)
{
    static const char *const extra[] = {
        "2147483647", "2147483648", "-2147483648", "-2147483649", "+2147483647", "0000000000002147483647",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "99999999999999999999", "0000000000000000001",
        "00000000000000000001", "-0000000000000000001", "1 ", " 1", "1\n", "--1", "+-1", "0x10", "1e3", NULL,
    };
    s_every_text("019-+ x", 6, extra, s_check_int);
}

Test(event_number, prices_agree_with_a_reference_for_every_short_text)
{
    static const char *const extra[] = {
        "99999999.99", "99999999.999", "99999999.990", "100000000", "100000000.00", "000000099999999.99",
        "-99999999.99", "1.000000001", "1.0000000000", "0.01", "0.001", "0.010", ".5", "5.", "-5.", "+.5",
        "1..2", "1.2.3", "1,5", "1 ", " 1", "12345678", "123456789", "0000000000000", NULL,
    };
    s_every_text("0159.-+x", 6, extra, s_check_price);
}

/* ---- Times read after the same date ---- */

typedef struct {
    ev_reject_t rc;     /* what ev_parse_time returned */
    int64_t us;         /* what it stored (-7: nothing) */
    ev_error_t err;     /* its refusal */
} time_result_t;

static time_result_t s_parse_time_result(const char *text, size_t len)
{
    time_result_t r = {.us = -7};
    r.rc = ev_parse_time(text, len, &r.us, "event_time", &r.err);
    if (r.rc == EV_OK)
        r.err.detail[0] = '\0';
    return r;
}

/* text read whole (after a time of another date) and read after a time of
 * its own date, which ev_parse_time remembers: the same result, value or
 * refusal. Returns the result. */
static time_result_t s_time_both_ways(const char *text, size_t len)
{
    const char *other = len >= 4 && memcmp(text, "1970", 4) == 0 ? "1971-06-15 01:02:03" : "1970-01-01 00:00:00";
    cr_assert_eq(s_parse_time_result(other, 19).rc, EV_OK);
    time_result_t whole = s_parse_time_result(text, len);
    if (len >= 10) {
        char same[20];
        memcpy(same, text, 10);
        memcpy(same + 10, " 12:00:00", 10);
        if (s_parse_time_result(same, 19).rc == EV_OK) {
            time_result_t after = s_parse_time_result(text, len);
            cr_assert(after.rc == whole.rc && after.us == whole.us && strcmp(after.err.detail, whole.err.detail) == 0,
                      "'%.*s': %s %lld '%s' after its date, %s %lld '%s' alone", (int)len, text,
                      ev_reject_name(after.rc), (long long)after.us, after.err.detail, ev_reject_name(whole.rc),
                      (long long)whole.us, whole.err.detail);
        }
    }
    return whole;
}

Test(event_time, a_remembered_date_reads_every_time_as_a_whole_read_does)
{
    /* Days across months, years, leap days (2000, 2024; not 2100) and the
     * ends of the range, read in order as a file's rows are, each with
     * good and bad times; every good one formats back to itself. */
    static const int64_t ranges[][2] = {
        {10946, 11400},  /* 1999-12-20 .. 2001-03-18 */
        {19716, 19790},  /* 2023-12-25 .. 2024-03-08 */
        {47539, 47545},  /* 2100-02-25 .. 2100-03-03 */
        {-719162, -719158}, /* 0001-01-01 .. 0001-01-05 */
        {2932892, 2932896}, /* 9999-12-27 .. 9999-12-31 */
    };
    static const char *const times[] = {
        " 00:00:00", " 23:59:59", "T12:34:56", " 12:34:56.1", " 12:34:56.123456", "T01:02:03Z",
        " 01:02:03+01:00", " 01:02:03-0530", " 23:00:00+14", " 00:30:00-23:59", " 24:00:00", " 23:60:00",
        " 23:59:60", " 12:00:00.", " 12:00:00.1234567", " 12:00:00x", " 12-00-00", "x12:00:00", " 1:00:00",
        " 12:00:00+24:00", " 12:00:00Zz", " 12:00:00.5z",
    };
    size_t good = 0;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        for (int64_t day = ranges[r][0]; day <= ranges[r][1]; day++) {
            char *date = s_format_time(day * 86400 * 1000000, false);
            for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
                char text[64];
                int n = snprintf(text, sizeof text, "%.10s%s", date, times[t]);
                /* Read after the time before it, of the day before or the same day. */
                time_result_t next = s_parse_time_result(text, (size_t)n);
                time_result_t res = s_time_both_ways(text, (size_t)n);
                cr_assert(next.rc == res.rc && next.us == res.us && strcmp(next.err.detail, res.err.detail) == 0,
                          "'%s': %s %lld after the time before it, %s %lld alone", text, ev_reject_name(next.rc),
                          (long long)next.us, ev_reject_name(res.rc), (long long)res.us);
                if (res.rc != EV_OK || strpbrk(times[t] + 9, "Z+-"))
                    continue;
                /* Without an offset the time formats back to what was read. */
                char *back = s_format_time(res.us, false);
                cr_assert_arr_eq(back, text, 10, "%s read as %s", text, back);
                cr_assert_arr_eq(back + 11, text + 11, 8, "%s read as %s", text, back);
                free(back);
                good++;
            }
            free(date);
        }
    }
    cr_assert_gt(good, 1000);
}

/* One reader thread: reads its two times by turns, and counts any read that
 * differs from what the first reads gave. */
typedef struct {
    const char *times[2];
    int64_t want[2];
    long wrong;
} time_reader_t;

static void *s_read_times(void *arg)
{
    time_reader_t *r = arg;
    for (long i = 0; i < 400000; i++) {
        int64_t us = -1;
        ev_error_t err;
        const char *t = r->times[i & 1];
        if (ev_parse_time(t, strlen(t), &us, "event_time", &err) != EV_OK || us != r->want[i & 1])
            r->wrong++;
    }
    return NULL;
}

Test(event_time, threads_reading_other_dates_at_once_each_read_their_own)
{
    /* The remembered date is each thread's own: two threads reading other
     * dates at the same time never take the other's day. */
    time_reader_t readers[2] = {
        {.times = {"2024-03-01 10:00:00", "2024-03-02 10:00:00"}},
        {.times = {"1999-12-31 23:59:59", "2100-02-28 00:00:01"}},
    };
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++)
            readers[k].want[j] = s_parse_time_result(readers[k].times[j], strlen(readers[k].times[j])).us;
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, s_read_times, &readers[k]), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        cr_assert_eq(readers[k].wrong, 0, "thread %d: %ld of 400000 reads wrong", k, readers[k].wrong);
    }
}

Test(event_time, a_remembered_date_changes_no_refusal)
{
    /* Every byte of a full time replaced by likely and unlikely bytes, and
     * the time cut at every length: read alone and after its date, the same
     * result, value or refusal with its words. */
    static const char base[] = "2024-02-29 23:59:59.123456+01:00";
    static const char swaps[] = {'0', '1', '2', '3', '5', '9', ':', '-', ' ', 'T', 'x', '\0', '.', '+', 'Z', '/'};
    char text[sizeof base];
    for (size_t len = 0; len < sizeof base; len++)
        s_time_both_ways(base, len);
    for (size_t at = 0; at + 1 < sizeof base; at++)
        for (size_t k = 0; k < sizeof swaps; k++) {
            memcpy(text, base, sizeof base);
            text[at] = swaps[k];
            s_time_both_ways(text, sizeof base - 1);
            s_time_both_ways(text, 19);
            s_time_both_ways(text, 26);
        }
    /* After a date that differs from it in one byte only. */
    for (size_t at = 0; at < 10; at++)
        for (char d = '0'; d <= '9'; d++) {
            memcpy(text, "2020-10-10 10:10:10", 20);
            cr_assert_eq(s_parse_time_result(text, 19).rc, EV_OK);
            text[at] = at == 4 || at == 7 ? (d == '0' ? '-' : '/') : d;
            time_result_t next = s_parse_time_result(text, 19);
            time_result_t whole = s_time_both_ways(text, 19);
            cr_assert(next.rc == whole.rc && next.us == whole.us && strcmp(next.err.detail, whole.err.detail) == 0,
                      "'%s': %s %lld after 2020-10-10, %s %lld alone", text, ev_reject_name(next.rc),
                      (long long)next.us, ev_reject_name(whole.rc), (long long)whole.us);
        }
    /* A bad date after a good one of almost the same bytes. */
    s_time_both_ways("2023-02-29 00:00:00", 19);
    s_time_both_ways("2024-13-01 00:00:00", 19);
    s_time_both_ways("2024-00-01 00:00:00", 19);
    s_time_both_ways("0000-01-01 00:00:00", 19);
    s_time_both_ways("0001-01-01 00:00:00-01:00", 25);
    s_time_both_ways("9999-12-31 23:59:59+01:00", 25);
    s_time_both_ways("9999-12-31 23:59:59-01:00", 25);
}

/* ---- Text ---- */

Test(event_utf8, counts_characters_not_bytes)
{
    cr_assert_eq(ev_utf8_chars("", 0), 0);
    cr_assert_eq(ev_utf8_chars("abc", 3), 3);
    cr_assert_eq(ev_utf8_chars("é", strlen("é")), 1);
    cr_assert_eq(ev_utf8_chars("漢字", strlen("漢字")), 2);
    cr_assert_eq(ev_utf8_chars("😀", strlen("😀")), 1);
    cr_assert_eq(ev_utf8_chars("a\"b,c\n\t\\", 8), 8);
    cr_assert_eq(ev_utf8_chars("\xF4\x8F\xBF\xBF", 4), 1, "U+10FFFF is the last character");
}

Test(event_utf8, refuses_invalid_sequences_and_nul)
{
    static const char *const bad[] = {
        "\xC3",             /* truncated */
        "\x80",             /* a lone continuation byte */
        "\xC0\xAF",         /* overlong '/' */
        "\xE0\x80\xAF",     /* overlong */
        "\xED\xA0\x80",     /* a UTF-16 surrogate */
        "\xF4\x90\x80\x80", /* beyond U+10FFFF */
        "\xFF",
        "\xE6\xBC",         /* half of 漢 */
        "a\xC3(",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ev_utf8_chars(bad[i], strlen(bad[i])), -1, "case %zu", i);
    cr_assert_eq(ev_utf8_chars("a\0b", 3), -1, "a NUL byte is refused");
}

Test(event_utf8, every_length_and_tail_is_checked)
{
    /* Lengths that are not multiples of eight end in a tail read again
     * within the last eight bytes: what sits there still counts. */
    char text[41];
    for (size_t len = 1; len <= 40; len++) {
        memset(text, 'x', sizeof text);
        cr_assert_eq(ev_utf8_chars(text, len), (long)len, "len %zu", len);
        for (size_t at = 0; at < len; at++) {
            text[at] = '\0';
            cr_assert_eq(ev_utf8_chars(text, len), -1, "len %zu, a NUL at %zu", len, at);
            text[at] = '\xFF';
            cr_assert_eq(ev_utf8_chars(text, len), -1, "len %zu, a bad byte at %zu", len, at);
            text[at] = 'x';
        }
        for (size_t at = 0; at + 3 <= len; at++) {
            memcpy(text + at, "\xE6\xBC\xA2", 3); /* 漢 */
            cr_assert_eq(ev_utf8_chars(text, len), (long)len - 2, "len %zu, 漢 at %zu", len, at);
            cr_assert_eq(ev_utf8_chars(text, at + 2), -1, "len %zu, half of 漢 at the end", at + 2);
            memset(text + at, 'x', 3);
        }
    }
}

Test(event_utf8, long_text_is_checked_at_every_position)
{
    /* Long ASCII runs take the eight-bytes-at-a-time path: a NUL, a bad
     * byte or a character of several bytes anywhere in them still counts. */
    char text[41];
    memset(text, 'x', 40);
    text[40] = '\0';
    cr_assert_eq(ev_utf8_chars(text, 40), 40);
    for (size_t at = 0; at < 40; at++) {
        text[at] = '\0';
        cr_assert_eq(ev_utf8_chars(text, 40), -1, "a NUL at %zu", at);
        text[at] = '\xFF';
        cr_assert_eq(ev_utf8_chars(text, 40), -1, "a bad byte at %zu", at);
        text[at] = 'x';
    }
    for (size_t at = 0; at + 2 <= 40; at++) {
        memcpy(text + at, "\xC3\xA9", 2); /* é */
        cr_assert_eq(ev_utf8_chars(text, 40), 39, "é at %zu", at);
        memcpy(text + at, "xx", 2);
    }
}

/* The characters of s[0..len) one byte at a time, as the standard reads
 * them: the reference ev_utf8_chars must agree with. */
static long s_utf8_reference(const unsigned char *s, size_t len)
{
    long chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned c = s[i];
        if (c == 0)
            return -1;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xC0 && c < 0xE0)
            n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c < 0xF0)
            n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c < 0xF8)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return -1;
        if (i + n > len)
            return -1;
        for (size_t k = 1; k < n; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += n;
    }
    return chars;
}

/* Texts of every length 0..40 on four backgrounds (ASCII, and ASCII with
 * a character of two, three or four bytes in front), with `ins` written at
 * every position: ev_utf8_chars against the reference. */
static void s_utf8_compare_at_every_place(const unsigned char *ins, size_t n)
{
    static const char *const heads[] = {"", "\xC3\xA9", "\xE6\xBC\xA2", "\xF0\x9F\x98\x80"};
    unsigned char text[48];
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        size_t hl = strlen(heads[h]);
        for (size_t len = 0; len <= 40; len++) {
            for (size_t at = 0; at <= len; at++) {
                memset(text, 'a', sizeof text);
                memcpy(text, heads[h], hl < len ? hl : len);
                size_t k = at + n <= len ? n : len - at; /* cut at the end: a truncated sequence */
                memcpy(text + at, ins, k);
                long want = s_utf8_reference(text, len);
                long got = ev_utf8_chars((const char *)text, len);
                if (got != want)
                    cr_assert_fail("bytes %02X %02X %02X %02X (%zu of them) at %zu of %zu after head %zu: %ld, not %ld",
                             ins[0], n > 1 ? ins[1] : 0, n > 2 ? ins[2] : 0, n > 3 ? ins[3] : 0, k, at, len, h, got,
                             want);
            }
        }
    }
}

Test(event_utf8, agrees_with_a_byte_by_byte_reference_for_every_single_byte)
{
    for (unsigned b = 0; b < 256; b++)
        s_utf8_compare_at_every_place((const unsigned char[]){(unsigned char)b}, 1);
}

Test(event_utf8, agrees_with_a_byte_by_byte_reference_for_sequences)
{
    /* Every lead byte class and every boundary of the continuation bytes,
     * overlong forms, surrogates and the end of Unicode among them. */
    static const unsigned char v[] = {0x00, 0x01, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                      0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEE, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    const size_t nv = sizeof v;
    /* Bytes after a lead byte, at the edges of the continuation range. */
    static const unsigned char cont[] = {0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
    const size_t nc = sizeof cont;
    for (size_t a = 0; a < nv; a++) {
        for (size_t b = 0; b < nv; b++)
            s_utf8_compare_at_every_place((const unsigned char[]){v[a], v[b]}, 2);
        if (v[a] >= 0xC0)
            for (size_t b = 0; b < nc; b++)
                for (size_t c = 0; c < nc; c++)
                    s_utf8_compare_at_every_place((const unsigned char[]){v[a], cont[b], cont[c]}, 3);
    }
    static const unsigned char lead4[] = {0xF0, 0xF4, 0xF5};
    for (size_t a = 0; a < sizeof lead4; a++)
        for (size_t b = 0; b < sizeof cont; b++)
            for (size_t c = 0; c < sizeof cont; c++)
                for (size_t d = 0; d < sizeof cont; d++)
                    s_utf8_compare_at_every_place((const unsigned char[]){lead4[a], cont[b], cont[c], cont[d]}, 4);
}

Test(event_utf8, agrees_with_a_byte_by_byte_reference_for_every_pair)
{
    /* All 65,536 pairs of bytes, at every position of a few lengths around
     * the eight-byte words. */
    static const size_t lens[] = {2, 7, 8, 9, 15, 16, 17};
    unsigned char text[24];
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
                for (size_t at = 0; at + 2 <= lens[l]; at++) {
                    memset(text, 'a', sizeof text);
                    text[at] = (unsigned char)a, text[at + 1] = (unsigned char)b;
                    long want = s_utf8_reference(text, lens[l]);
                    long got = ev_utf8_chars((const char *)text, lens[l]);
                    if (got != want)
                        cr_assert_fail("%02X %02X at %zu of %zu: %ld, not %ld", a, b, at, lens[l], got, want);
                }
}

/* ---- Validation ---- */

Test(event_validate, a_complete_event_is_valid)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {.code = EV_REJECT_DATABASE};
    cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(err.code, EV_OK);
}

Test(event_validate, limits_are_in_characters_not_bytes)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {0};
    char *s = s_repeat("漢", 255);
    ev.user_name = pt_str(s);
    cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "255 characters of 3 bytes fit: %s", err.detail);
    free(s);
    ev = pt_event();
    s = s_repeat("😀", 255);
    ev.user_email = pt_str(s);
    cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "255 characters of 4 bytes fit: %s", err.detail);
    free(s);
    ev = pt_event();
    s = s_repeat("a", 256);
    ev.user_name = pt_str(s);
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_TOO_LONG);
    cr_assert(strstr(err.detail, "user_name") != NULL, "%s", err.detail);
    free(s);
}

Test(event_validate, each_text_field_has_its_own_limit)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (f->kind != EV_KIND_STR || i == EV_F_event_type)
            continue;
        ev_event_t ev = pt_event();
        ev_error_t err = {0};
        ev_str_t *field = (ev_str_t *)((char *)&ev + f->offset);
        char *s = s_repeat("é", f->max_chars);
        *field = pt_str(s);
        cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "%s at its limit: %s", f->name, err.detail);
        free(s);
        s = s_repeat("é", f->max_chars + 1);
        *field = pt_str(s);
        cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_TOO_LONG, "%s over its limit", f->name);
        cr_assert(strstr(err.detail, f->name) != NULL, "%s", err.detail);
        free(s);
    }
}

Test(event_validate, refuses_bad_encoding_naming_the_field)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {0};
    ev.product_name = (ev_str_t){"Te\xC3", 3};
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_ENCODING);
    cr_assert(strstr(err.detail, "product_name") != NULL, "%s", err.detail);
    ev = pt_event();
    ev.product_category = (ev_str_t){"Fo\0d", 4};
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_ENCODING);
    cr_assert(strstr(err.detail, "product_category") != NULL, "%s", err.detail);
}

Test(event_validate, refuses_unknown_event_types)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {0};
    ev.event_type = pt_str("click");
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_EVENT_TYPE);
    cr_assert(strstr(err.detail, "event_type") != NULL && strstr(err.detail, "click") != NULL, "%s", err.detail);
    ev.event_type = pt_str("");
    cr_assert_eq(ev_event_validate_payload(&ev, &err), EV_REJECT_EVENT_TYPE);
}

Test(event_validate, refuses_a_bad_identity_but_payload_validation_ignores_it)
{
    ev_event_t ev = pt_event();
    ev_error_t err = {0};
    ev.source = (ev_str_t){NULL, 0};
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_IDENTITY);
    cr_assert(strstr(err.detail, "source") != NULL, "%s", err.detail);
    cr_assert_eq(ev_event_validate_payload(&ev, &err), EV_OK, "%s", err.detail);
    ev = pt_event();
    ev.partition = -1;
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_IDENTITY);
    cr_assert(strstr(err.detail, "partition") != NULL, "%s", err.detail);
    ev = pt_event();
    ev.seq = 0;
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_IDENTITY);
    cr_assert(strstr(err.detail, "seq") != NULL, "%s", err.detail);
    char *s = s_repeat("x", 65);
    ev = pt_event();
    ev.source = pt_str(s);
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_TOO_LONG);
    free(s);
}

Test(event_validate, error_set_fills_code_and_detail)
{
    ev_error_t err = {0};
    cr_assert_eq(ev_error_set(&err, EV_REJECT_NUMBER, "%s: %d", "user_id", 5), EV_REJECT_NUMBER);
    cr_assert_eq(err.code, EV_REJECT_NUMBER);
    cr_assert_str_eq(err.detail, "user_id: 5");
    cr_assert_eq(ev_error_set(NULL, EV_REJECT_TIME, "x"), EV_REJECT_TIME, "err may be NULL");
    char *s = s_repeat("y", 500);
    ev_error_set(&err, EV_REJECT_TIME, "%s", s);
    cr_assert_eq(strlen(err.detail), sizeof err.detail - 1, "a long detail is cut, not overflowed");
    free(s);
}

/* ---- Equality ---- */

Test(event_equal, compares_text_by_content_and_only_the_fields_asked)
{
    ev_event_t a = pt_event(), b = pt_event();
    char name[64];
    strcpy(name, "Zoë Ångström");
    b.user_name = pt_str(name);
    cr_assert(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    b.published_at++;
    cr_assert_not(ev_event_equal(&a, &b, EV_WHERE_WIRE));
    cr_assert(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY));
    b = pt_event();
    b.seq = 2;
    cr_assert_not(ev_event_equal(&a, &b, EV_WHERE_IDENTITY));
    cr_assert(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD));
    b = pt_event();
    name[0] = 'z';
    b.user_name = pt_str(name);
    cr_assert_not(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD));
    b = pt_event();
    b.product_price = 1251;
    cr_assert_not(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD));
    b = pt_event();
    b.product_name.len--;
    cr_assert_not(ev_event_equal(&a, &b, EV_WHERE_PAYLOAD));
}

/* ---- Scalars ---- */

Test(event_scalar, formats_every_kind_but_text)
{
    ev_event_t ev = pt_event();
    ev.user_id = -5;
    ev.seq = 9007199254740993LL;
    ev_buf_t b;
    ev_buf_init(&b);
    cr_assert(ev_format_scalar(&b, &ev, EV_F_user_id, false));
    ev_buf_putc(&b, '|');
    cr_assert(ev_format_scalar(&b, &ev, EV_F_seq, false));
    ev_buf_putc(&b, '|');
    cr_assert(ev_format_scalar(&b, &ev, EV_F_product_price, false));
    ev_buf_putc(&b, '|');
    cr_assert(ev_format_scalar(&b, &ev, EV_F_event_time, true));
    cr_assert_not(ev_format_scalar(&b, &ev, EV_F_user_name, false));
    cr_assert_str_eq(b.data, "-5|9007199254740993|12.50|2024-01-31T12:00:00.000001Z");
    ev_buf_free(&b);
}

/* ---- Partitions ---- */

Test(event_partition, is_pinned_for_16_partitions)
{
    /* Computed once from the mix in docs/protocol.md; a change to the hash
     * moves users between partitions and must break this test. */
    static const struct {
        int32_t user_id;
        uint32_t partition;
    } pinned[] = {{0, 0},     {1, 7},       {2, 6},           {3, 7},  {42, 12},
                  {1000, 8},  {123456, 11}, {2147483647, 8},  {-1, 9}, {-2147483648, 0}};
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
        cr_assert_eq(ev_partition_of(pinned[i].user_id, 16), pinned[i].partition, "user %d",
                     (int)pinned[i].user_id);
}

Test(event_partition, is_the_full_32_bit_mix_modulo_partitions)
{
    cr_assert_eq(ev_partition_of(1, 0xFFFFFFFFu), 1364076727u);
    cr_assert_eq(ev_partition_of(123456, 0xFFFFFFFFu), 2524076747u);
    cr_assert_eq(ev_partition_of(1, 1024), 1364076727u % 1024);
}

Test(event_partition, stays_in_range_and_spreads_users)
{
    static const uint32_t counts[] = {1, 2, 3, 7, 16, 1000, 1024};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t n = counts[c];
        for (int32_t u = -5000; u < 5000; u++) {
            uint32_t p = ev_partition_of(u, n);
            cr_assert_lt(p, n);
            cr_assert_eq(p, ev_partition_of(u, n), "the same user, the same partition");
        }
    }
    unsigned hits[16] = {0};
    for (int32_t u = 1; u <= 16000; u++)
        hits[ev_partition_of(u, 16)]++;
    for (int p = 0; p < 16; p++)
        cr_assert_gt(hits[p], 500, "partition %d got only %u of 16000 users", p, hits[p]);
    cr_assert_eq(ev_partition_of(42, 0), 0, "no partitions: 0, not a division by zero");
}

/* ---- Elapsed time ---- */

Test(event_elapsed, saturates_for_any_time_a_peer_sends)
{
    int64_t now = ev_now_us();
    cr_assert_eq(ev_elapsed_us(now, now - 1500), 1500);
    cr_assert_eq(ev_elapsed_us(now, now + 1500), -1500);
    /* published_at is any int64 on the wire: no overflow (UBSan aborts on one). */
    cr_assert_eq(ev_elapsed_us(now, INT64_MIN), INT64_MAX);
    cr_assert_eq(ev_elapsed_us(now, INT64_MAX), now - INT64_MAX);
    cr_assert_eq(ev_elapsed_us(-now, INT64_MAX), INT64_MIN);
    cr_assert_eq(ev_elapsed_us(INT64_MAX, INT64_MIN), INT64_MAX);
    cr_assert_eq(ev_elapsed_us(INT64_MIN, INT64_MAX), INT64_MIN);
    cr_assert_eq(ev_elapsed_us(INT64_MIN, INT64_MIN), 0);
    cr_assert_eq(ev_elapsed_us(-1, INT64_MAX), INT64_MIN);
    cr_assert_eq(ev_elapsed_us(0, INT64_MIN), INT64_MAX);
}
