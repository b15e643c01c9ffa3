/* The event as a COPY text-format row (see copy.h). */
#include "evpipe/copy.h"

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

/* Text with backslash and the control characters COPY's text format names
 * escaped, exactly as PostgreSQL's own COPY TO writes them. */
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
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '\v': *o++ = '\\'; *o++ = 'v'; break;
        default: *o++ = c;
        }
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
