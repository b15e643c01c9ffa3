/* The event as one JSON object (see json.h). */
#include "evpipe/json.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if it is not one. */
static size_t s_utf8_seq(const unsigned char *p, size_t left)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > left)
        return 0;
    return ev_utf8_chars((const char *)p, n) == 1 ? n : 0;
}

void ev_json_append_string(ev_buf_t *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    ev_buf_putc(b, '"');
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            ev_buf_putc(b, '\\');
            ev_buf_putc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': ev_buf_puts(b, "\\n"); break;
            case '\r': ev_buf_puts(b, "\\r"); break;
            case '\t': ev_buf_puts(b, "\\t"); break;
            default: ev_buf_printf(b, "\\u%04x", c);
            }
            i++;
        } else {
            size_t n = s_utf8_seq(p + i, len - i);
            if (n == 0) {
                ev_buf_puts(b, "\\ufffd");
                i++;
            } else {
                ev_buf_append(b, p + i, n);
                i += n;
            }
        }
    }
    ev_buf_putc(b, '"');
}

void ev_json_append_event(ev_buf_t *b, const ev_event_t *ev)
{
    ev_buf_putc(b, '{');
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (i)
            ev_buf_putc(b, ',');
        ev_buf_putc(b, '"');
        ev_buf_puts(b, f->name);
        ev_buf_puts(b, "\":");
        const char *p = (const char *)ev + f->offset;
        switch (f->kind) {
        case EV_KIND_STR: {
            const ev_str_t *s = (const ev_str_t *)p;
            ev_json_append_string(b, s->ptr, s->len);
            break;
        }
        case EV_KIND_PRICE: /* a string, so no JSON reader turns it into a float */
        case EV_KIND_TIME:
            ev_buf_putc(b, '"');
            ev_format_scalar(b, ev, i, true);
            ev_buf_putc(b, '"');
            break;
        default:
            ev_format_scalar(b, ev, i, true);
        }
    }
    ev_buf_putc(b, '}');
}
