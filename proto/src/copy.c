/* The event as a COPY text-format row (see copy.h). */
#include "evpipe/copy.h"

#include <stdio.h>
#include <string.h>

const char *ev_copy_columns(void)
{
    static char cols[1024];
    if (!cols[0]) {
        size_t n = 0;
        for (int i = 0; i < EV_FIELD_COUNT; i++) {
            if (!(ev_fields[i].where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
                continue;
            n += (size_t)snprintf(cols + n, sizeof cols - n, "%s%s", n ? "," : "", ev_fields[i].name);
        }
    }
    return cols;
}

/* Text with backslash, tab, LF and CR escaped, as COPY's text format wants. */
static void s_text(ev_buf_t *b, const char *s, size_t len)
{
    ev_buf_reserve(b, len * 2);
    char *o = b->data + b->len;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        switch (c) {
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        default: *o++ = c;
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void ev_copy_append_row(ev_buf_t *b, const ev_event_t *ev)
{
    bool first = true;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)))
            continue;
        if (!first)
            ev_buf_putc(b, '\t');
        first = false;
        if (!ev_format_scalar(b, ev, i, false)) {
            const ev_str_t *s = (const ev_str_t *)((const char *)ev + f->offset);
            s_text(b, s->ptr, s->len);
        }
    }
    ev_buf_putc(b, '\n');
}
