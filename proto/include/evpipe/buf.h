/* A growable byte buffer: the one place evpipe appends bytes for CSV, COPY,
 * JSON and log lines. Growth aborts on out-of-memory (nothing can go on). */
#ifndef EVPIPE_BUF_H
#define EVPIPE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* the bytes, always NUL-terminated after len */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} ev_buf_t;

void ev_buf_init(ev_buf_t *b);
void ev_buf_free(ev_buf_t *b);
void ev_buf_reset(ev_buf_t *b);
void ev_buf_reserve(ev_buf_t *b, size_t extra);
void ev_buf_append(ev_buf_t *b, const void *p, size_t n);
void ev_buf_putc(ev_buf_t *b, char c);
void ev_buf_puts(ev_buf_t *b, const char *s);
void ev_buf_printf(ev_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ev_buf_put_i64(ev_buf_t *b, int64_t v);
/* Drops the first n bytes. */
void ev_buf_consume(ev_buf_t *b, size_t n);

#endif
