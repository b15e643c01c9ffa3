/* Unit tests of the log line: values from outside are escaped the logfmt
 * way, and a logfmt reader that decodes as go-logfmt (Loki) does gets them
 * back byte for byte, even when cut to fit. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evpipe/log.h"
#include "testkit.h"

/* ---- A logfmt reader ---- */

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the quoted value starting after the opening quote at *p into out
 * (NUL-terminated, *outlen bytes); leaves *p after the closing quote. False
 * on what go-logfmt refuses: a raw control character, an unknown escape, a
 * missing closing quote. */
static bool s_unquote(const char **p, char *out, size_t cap, size_t *outlen)
{
    const char *s = *p;
    size_t o = 0;
    for (;;) {
        unsigned char c = (unsigned char)*s++;
        if (c == '\0' || c < 0x20 || o + 4 >= cap)
            return false;
        if (c == '"')
            break;
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        /* The one-letter escapes and what they stand for, as JSON has them. */
        static const char from[] = "\"\\/nrtbf", to[] = "\"\\/\n\r\t\b\f";
        char e = *s++;
        const char *named = e ? strchr(from, e) : NULL;
        if (named) {
            out[o++] = to[named - from];
            continue;
        }
        if (e != 'u')
            return false;
        unsigned cp = 0;
        for (int k = 0; k < 4; k++) {
            int h = s_hex(*s++);
            if (h < 0)
                return false;
            cp = cp << 4 | (unsigned)h;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xc0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (char)(0xe0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    out[o] = '\0';
    *outlen = o;
    *p = s;
    return true;
}

/* The value of key in a logfmt line (pairs key=value or key="quoted",
 * bare words as keys without value), decoded into out; false when the key
 * is absent or the line does not parse. */
static bool s_logfmt_get(const char *line, const char *key, char *out, size_t cap, size_t *outlen)
{
    const char *p = line;
    while (*p && *p != '\n') {
        while (*p == ' ')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\n' && *p != '"')
            p++;
        size_t klen = (size_t)(p - k);
        if (klen == 0)
            return false;
        bool wanted = klen == strlen(key) && memcmp(k, key, klen) == 0;
        if (*p != '=') {
            if (wanted) {
                out[0] = '\0';
                *outlen = 0;
                return true;
            }
            continue;
        }
        p++;
        char tmp[4096];
        size_t n = 0;
        if (*p == '"') {
            p++;
            if (!s_unquote(&p, tmp, sizeof tmp, &n))
                return false;
            if (*p != ' ' && *p != '\n' && *p != '\0')
                return false;
        } else {
            while (*p && *p != ' ' && *p != '\n') {
                if (*p == '"' || (unsigned char)*p < 0x20 || n + 1 >= sizeof tmp)
                    return false;
                tmp[n++] = *p++;
            }
        }
        if (wanted) {
            cr_assert_lt(n, cap);
            memcpy(out, tmp, n);
            out[n] = '\0';
            *outlen = n;
            return true;
        }
    }
    return false;
}

/* ---- Helpers ---- */

/* What evp_warn writes on stderr for kv, read back from a temporary file. */
static void s_log_line(char *line, size_t cap, const char *kv_format, const char *value)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_geq(dup2(fileno(f), STDERR_FILENO), 0);
    evp_warn("something failed", kv_format, value);
    cr_assert_geq(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    rewind(f);
    size_t n = fread(line, 1, cap - 1, f);
    line[n] = '\0';
    fclose(f);
}

/* A value with every ASCII byte but NUL, a libpq message and UTF-8 text. */
static size_t s_hostile(char *v, size_t cap)
{
    size_t n = 0;
    for (int c = 1; c < 0x80; c++)
        v[n++] = (char)c;
    const char *more = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
                       "\tIs the server running on that host and accepting TCP/IP connections?\n"
                       "C:\\dir\\file \\n is not a newline, \\\" not a quote; caf\xc3\xa9 \xe2\x82\xac 1";
    cr_assert_lt(n + strlen(more), cap);
    memcpy(v + n, more, strlen(more));
    n += strlen(more);
    v[n] = '\0';
    return n;
}

/* ---- Tests ---- */

Test(log, each_special_byte_has_its_logfmt_escape)
{
    const char in[] = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi\xc3\xa9";
    char out[128];
    evp_log_text(out, sizeof out, in, sizeof in - 1);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u007fi\xc3\xa9");
}

Test(log, a_value_with_quotes_newlines_backslashes_and_controls_reads_back_exactly)
{
    char value[1024];
    size_t len = s_hostile(value, sizeof value);
    char escaped[4096];
    evp_log_text(escaped, sizeof escaped, value, len);
    char line[8192];
    s_log_line(line, sizeof line, "reason=\"%s\" next=1", escaped);

    char *nl = strchr(line, '\n');
    cr_assert_not_null(nl, "%s", line);
    cr_assert_eq(nl[1], '\0', "one record, one line: %s", line);
    char got[4096];
    size_t n;
    cr_assert(s_logfmt_get(line, "reason", got, sizeof got, &n), "the line parses as logfmt: %s", line);
    cr_assert_eq(n, len, "%zu bytes back, %zu in: %s", n, len, line);
    cr_assert(memcmp(got, value, len) == 0, "the value reads back exactly: %s", line);
    cr_assert(s_logfmt_get(line, "next", got, sizeof got, &n) && strcmp(got, "1") == 0, "%s", line);
    cr_assert(s_logfmt_get(line, "msg", got, sizeof got, &n) && strcmp(got, "something failed") == 0, "%s", line);
    cr_assert(s_logfmt_get(line, "level", got, sizeof got, &n) && strcmp(got, "warn") == 0, "%s", line);
}

Test(log, a_cut_value_never_ends_inside_an_escape_or_a_character)
{
    char value[1024];
    size_t len = s_hostile(value, sizeof value);
    for (size_t cap = 1; cap < 2 * len; cap++) {
        char quoted[4096] = "\"";
        evp_log_text(quoted + 1, cap, value, len);
        cr_assert_leq(strlen(quoted + 1), cap - 1);
        strcat(quoted, "\"");
        const char *p = quoted + 1;
        char got[4096];
        size_t n;
        cr_assert(s_unquote(&p, got, sizeof got, &n), "cut to %zu: %s", cap, quoted);
        cr_assert(n <= len && memcmp(got, value, n) == 0, "a prefix of the value when cut to %zu", cap);
        cr_assert(n == len || ((unsigned char)value[n] & 0xc0) != 0x80, "no character cut in two at %zu", cap);
    }
}

/* Log lines about peer input: a budget keeps a peer from flooding the log. */
Test(log_limit, a_burst_is_logged_then_lines_are_held_back_and_counted_until_the_next_window)
{
    evp_log_limit_t l = {.burst = 3, .window_ms = 2000};
    uint64_t held = 99;
    for (int i = 0; i < 3; i++) {
        cr_assert(evp_log_allow(&l, &held), "line %d of the burst", i);
        cr_assert_eq(held, 0);
    }
    for (int i = 0; i < 5; i++)
        cr_assert_not(evp_log_allow(&l, &held), "line %d beyond the burst was allowed", i);
    tk_sleep_ms(2100);
    cr_assert(evp_log_allow(&l, &held), "a new window allows again");
    cr_assert_eq(held, 5, "the lines held back are reported with the next one");
    cr_assert(evp_log_allow(&l, &held));
    cr_assert_eq(held, 0);
}

Test(log_limit, zero_initialised_it_allows_twenty_lines_a_second)
{
    evp_log_limit_t l = {0};
    for (int i = 0; i < 20; i++)
        cr_assert(evp_log_allow(&l, NULL), "line %d", i);
    cr_assert_not(evp_log_allow(&l, NULL));
}
