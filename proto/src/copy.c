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
