/* A growable byte buffer (see buf.h). */
#include "evpipe/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ev_buf_init(ev_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ev_buf_free(ev_buf_t *b)
{
    free(b->data);
    ev_buf_init(b);
}

void ev_buf_reset(ev_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ev_buf_reserve(ev_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        fprintf(stderr, "evpipe: out of memory growing a buffer to %zu bytes\n", cap);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void ev_buf_append(ev_buf_t *b, const void *p, size_t n)
{
    ev_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ev_buf_putc(ev_buf_t *b, char c)
{
    ev_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ev_buf_puts(ev_buf_t *b, const char *s)
{
    ev_buf_append(b, s, strlen(s));
}

void ev_buf_printf(ev_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        ev_buf_append(b, tmp, (size_t)n);
        return;
    }
    ev_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ev_buf_put_i64(ev_buf_t *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    ev_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

void ev_buf_consume(ev_buf_t *b, size_t n)
{
    if (n >= b->len) {
        ev_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
