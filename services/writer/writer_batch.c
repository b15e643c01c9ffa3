/* The rows of one transaction (see writer_batch.h). */
#include "writer_batch.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/copy.h"

/* Grows an array of n used entries to hold one more. */
#define S_GROW(arr, n, cap)                                                          \
    do {                                                                             \
        if ((n) == (cap)) {                                                          \
            size_t c_ = (cap) ? (cap) * 2 : 64;                                      \
            void *p_ = realloc((arr), c_ * sizeof *(arr));                           \
            if (!p_)                                                                 \
                abort(); /* the batch cannot lose what it holds */                  \
            (arr) = p_;                                                              \
            (cap) = c_;                                                              \
        }                                                                            \
    } while (0)

writer_batch_t *writer_batch_new(size_t size_hint)
{
    writer_batch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    ev_buf_init(&self->copy);
    ev_buf_init(&self->raw);
    ev_buf_init(&self->reject_copy);
    self->size_hint = size_hint ? size_hint : 1;
    return self;
}

void writer_batch_destroy(writer_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    writer_batch_t *self = *self_p;
    ev_buf_free(&self->copy);
    ev_buf_free(&self->raw);
    ev_buf_free(&self->reject_copy);
    free(self->rows);
    free(self->rejects);
    free(self->gaps);
    free(self->ckpts);
    free(self->ckpt_slot);
    free(self->heads);
    free(self);
    *self_p = NULL;
}

void writer_batch_reset(writer_batch_t *self)
{
    for (size_t i = 0; i < self->nckpts; i++)
        self->ckpt_slot[self->ckpts[i].stream] = -1;
    /* A batch that grew during an outage gives its memory back. */
    if (self->rows_cap > 4 * self->size_hint + 64) {
        free(self->rows);
        self->rows = NULL;
        self->rows_cap = 0;
        ev_buf_free(&self->copy);
        ev_buf_free(&self->raw);
    }
    ev_buf_reset(&self->copy);
    ev_buf_reset(&self->raw);
    ev_buf_reset(&self->reject_copy);
    self->nrows = self->nrejects = self->ngaps = self->nckpts = self->nheads = 0;
    self->refused = 0;
    self->first_ms = 0;
    self->edits++;
}

bool writer_batch_empty(const writer_batch_t *self)
{
    return self->nrows == 0 && self->nrejects == 0 && self->ngaps == 0 && self->nckpts == 0 && self->nheads == 0;
}

/* Starts the linger clock with the first item. */
static void s_touch(writer_batch_t *self, int64_t now_ms)
{
    if (writer_batch_empty(self))
        self->first_ms = now_ms;
}

/* ---- Checkpoints ---- */

void writer_batch_checkpoint(writer_batch_t *self, const writer_stream_t *s, int64_t seq)
{
    if (s->id >= self->slot_cap) {
        size_t cap = self->slot_cap ? self->slot_cap : 64;
        while (cap <= s->id)
            cap *= 2;
        int32_t *n = realloc(self->ckpt_slot, cap * sizeof *n);
        if (!n)
            abort();
        for (size_t i = self->slot_cap; i < cap; i++)
            n[i] = -1;
        self->ckpt_slot = n;
        self->slot_cap = cap;
    }
    int32_t slot = self->ckpt_slot[s->id];
    if (slot >= 0) {
        if (seq > self->ckpts[slot].seq)
            self->ckpts[slot].seq = seq;
        return;
    }
    S_GROW(self->ckpts, self->nckpts, self->ckpts_cap);
    self->ckpt_slot[s->id] = (int32_t)self->nckpts;
    self->ckpts[self->nckpts++] = (writer_mark_t){s->id, seq};
}

int64_t writer_batch_checkpoint_of(const writer_batch_t *self, uint32_t stream)
{
    if (stream >= self->slot_cap || self->ckpt_slot[stream] < 0)
        return -1;
    return self->ckpts[self->ckpt_slot[stream]].seq;
}

/* ---- Rejects ---- */

/* Appends text for a text column: valid UTF-8 as it is (escaped), anything
 * else with its non-ASCII bytes as '?', so the row always loads. */
static void s_put_text(ev_buf_t *b, const char *s, size_t len)
{
    if (ev_utf8_chars(s, len) >= 0) {
        ev_copy_append_text(b, s, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((unsigned char)c >= 0x80 || c == '\0')
            c = '?';
        ev_copy_append_text(b, &c, 1);
    }
}

static void s_reject_line(writer_batch_t *self, int64_t stream, const char *source, size_t source_len,
                          int32_t partition, int64_t seq, ev_reject_t reason, const char *detail, const void *raw,
                          size_t len)
{
    ev_buf_t *b = &self->reject_copy;
    S_GROW(self->rejects, self->nrejects, self->rejects_cap);
    size_t off = b->len;
    if (source)
        ev_copy_append_text(b, source, source_len);
    else
        ev_buf_append(b, "\\N", 2);
    ev_buf_putc(b, '\t');
    ev_buf_put_i64(b, partition);
    ev_buf_putc(b, '\t');
    ev_buf_put_i64(b, seq);
    ev_buf_putc(b, '\t');
    ev_buf_puts(b, ev_reject_name(reason));
    ev_buf_putc(b, '\t');
    size_t dlen = strnlen(detail, 1000);
    s_put_text(b, detail, dlen);
    ev_buf_putc(b, '\t');
    /* bytea in hex; the backslash of \x is doubled for COPY. */
    static const char hex[] = "0123456789abcdef";
    ev_buf_reserve(b, 3 + 2 * len + 1);
    char *o = b->data + b->len;
    *o++ = '\\', *o++ = '\\', *o++ = 'x';
    const uint8_t *r = raw;
    for (size_t i = 0; i < len; i++) {
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o++ = '\n';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    self->rejects[self->nrejects++] = (writer_reject_t){stream, seq, reason, off, (uint32_t)(b->len - off)};
}

void writer_batch_add_reject(writer_batch_t *self, const writer_stream_t *s, const ev_event_t *ev,
                             const void *raw, size_t len, ev_reject_t reason, const char *detail,
                             int64_t now_ms)
{
    s_touch(self, now_ms);
    if (s) {
        s_reject_line(self, s->id, s->source, s->source_len, s->partition, ev->seq, reason, detail, raw, len);
        return;
    }
    /* No usable identity: keep the source only if the column takes it. */
    long chars = ev->source.ptr ? ev_utf8_chars(ev->source.ptr, ev->source.len) : -1;
    bool source_ok = chars > 0 && (unsigned long)chars <= ev_fields[EV_F_source].max_chars;
    s_reject_line(self, -1, source_ok ? ev->source.ptr : NULL, ev->source.len, ev->partition, ev->seq, reason,
                  detail, raw, len);
}

/* ---- Events ---- */

ev_reject_t writer_batch_add_event(writer_batch_t *self, const writer_stream_t *s, const ev_event_t *ev,
                                   const void *raw, size_t len, int32_t topic_partition, bool from_repair,
                                   int64_t now_ms, ev_error_t *err)
{
    assert(self && s);
    ev_error_t local;
    if (!err)
        err = &local;
    ev_reject_t rc = ev_event_validate(ev, err);
    if (rc == EV_OK && topic_partition >= 0 && topic_partition != ev->partition)
        rc = ev_error_set(err, EV_REJECT_IDENTITY, "partition: %d in the body, %d in the topic",
                          (int)ev->partition, (int)topic_partition);
    if (rc != EV_OK) {
        writer_batch_add_reject(self, s, ev, raw, len, rc, err->detail, now_ms);
        writer_batch_checkpoint(self, s, ev->seq);
        return rc;
    }
    s_touch(self, now_ms);
    S_GROW(self->rows, self->nrows, self->rows_cap);
    writer_row_t *row = &self->rows[self->nrows++];
    row->stream = s->id;
    row->seq = ev->seq;
    row->published_at = ev->published_at;
    row->from_repair = from_repair;
    row->refused = false;
    row->off = self->copy.len;
    ev_copy_append_row_binary(&self->copy, ev);
    row->len = (uint32_t)(self->copy.len - row->off);
    row->raw_off = self->raw.len;
    row->raw_len = (uint32_t)len;
    ev_buf_append(&self->raw, raw, len);
    writer_batch_checkpoint(self, s, ev->seq);
    return EV_OK;
}

/* ---- Gaps and heads ---- */

void writer_batch_add_gap(writer_batch_t *self, const writer_stream_t *s, int64_t first, int64_t last,
                          int64_t now_ms)
{
    s_touch(self, now_ms);
    S_GROW(self->gaps, self->ngaps, self->gaps_cap);
    self->gaps[self->ngaps++] = (writer_gap_t){s->id, first, last};
    writer_batch_checkpoint(self, s, last);
}

void writer_batch_add_head(writer_batch_t *self, const writer_stream_t *s, int64_t seq, int64_t now_ms)
{
    s_touch(self, now_ms);
    for (size_t i = 0; i < self->nheads; i++)
        if (self->heads[i].stream == s->id) {
            self->heads[i].seq = seq;
            return;
        }
    S_GROW(self->heads, self->nheads, self->heads_cap);
    self->heads[self->nheads++] = (writer_mark_t){s->id, seq};
}

/* ---- Commit helpers ---- */

void writer_batch_refuse_row(writer_batch_t *self, const writer_stream_t *s, size_t i, const char *detail)
{
    writer_row_t *row = &self->rows[i];
    if (row->refused)
        return;
    row->refused = true;
    self->refused++;
    if (!detail)
        return;
    s_reject_line(self, row->stream, s->source, s->source_len, s->partition, row->seq, EV_REJECT_DATABASE,
                  detail, self->raw.data + row->raw_off, row->raw_len);
}

void writer_batch_unrefuse(writer_batch_t *self, size_t nrejects)
{
    if (nrejects < self->nrejects) {
        self->reject_copy.len = self->rejects[nrejects].off;
        self->reject_copy.data[self->reject_copy.len] = '\0';
        self->nrejects = nrejects;
    }
    for (size_t i = 0; i < self->nrows && self->refused; i++)
        if (self->rows[i].refused) {
            self->rows[i].refused = false;
            self->refused--;
        }
}

static bool s_covered(const int64_t *upto, size_t n, int64_t stream, int64_t seq)
{
    return stream >= 0 && (size_t)stream < n && upto[stream] >= 0 && seq <= upto[stream];
}

/* Keeps the rejects for which gone(r, arg) is false, in order. */
static void s_keep_rejects(writer_batch_t *self, bool (*gone)(const writer_reject_t *r, void *arg), void *arg)
{
    size_t kept = 0, off = 0;
    for (size_t i = 0; i < self->nrejects; i++) {
        writer_reject_t r = self->rejects[i];
        if (gone(&r, arg))
            continue;
        memmove(self->reject_copy.data + off, self->reject_copy.data + r.off, r.len);
        r.off = off;
        off += r.len;
        self->rejects[kept++] = r;
    }
    self->nrejects = kept;
    self->reject_copy.len = off;
    if (self->reject_copy.data)
        self->reject_copy.data[off] = '\0';
}

typedef struct {
    const int64_t *upto; /* per stream id */
    size_t n;            /* entries */
} s_upto_t;

static bool s_reject_covered(const writer_reject_t *r, void *arg)
{
    const s_upto_t *u = arg;
    return s_covered(u->upto, u->n, r->stream, r->seq);
}

/* Counts down the rejects without a stream still to drop (arg: size_t left). */
static bool s_reject_anonymous(const writer_reject_t *r, void *arg)
{
    size_t *left = arg;
    if (r->stream >= 0 || *left == 0)
        return false;
    (*left)--;
    return true;
}

size_t writer_batch_anonymous_rejects(const writer_batch_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nrejects; i++)
        n += self->rejects[i].stream < 0;
    return n;
}

size_t writer_batch_drop_anonymous_rejects(writer_batch_t *self, size_t n)
{
    size_t left = n;
    s_keep_rejects(self, s_reject_anonymous, &left);
    return n - left;
}

size_t writer_batch_drop_upto(writer_batch_t *self, const int64_t *upto, size_t n)
{
    /* Rows: compact in place; each kept line moves to a lower or equal offset. */
    size_t kept = 0, off = 0, raw_off = 0;
    for (size_t i = 0; i < self->nrows; i++) {
        writer_row_t row = self->rows[i];
        if (s_covered(upto, n, row.stream, row.seq))
            continue;
        memmove(self->copy.data + off, self->copy.data + row.off, row.len);
        memmove(self->raw.data + raw_off, self->raw.data + row.raw_off, row.raw_len);
        row.off = off;
        row.raw_off = raw_off;
        off += row.len;
        raw_off += row.raw_len;
        self->rows[kept++] = row;
    }
    size_t dropped = self->nrows - kept;
    if (dropped > 0)
        self->edits++;
    self->nrows = kept;
    self->copy.len = off;
    self->raw.len = raw_off;
    if (self->copy.data)
        self->copy.data[off] = '\0';
    if (self->raw.data)
        self->raw.data[raw_off] = '\0';

    s_upto_t covered = {upto, n};
    s_keep_rejects(self, s_reject_covered, &covered);

    kept = 0;
    for (size_t i = 0; i < self->ngaps; i++) {
        writer_gap_t g = self->gaps[i];
        if (s_covered(upto, n, g.stream, g.last))
            continue;
        if (s_covered(upto, n, g.stream, g.first))
            g.first = upto[g.stream] + 1;
        self->gaps[kept++] = g;
    }
    self->ngaps = kept;

    /* A checkpoint at or below what is committed already would move it back. */
    kept = 0;
    for (size_t i = 0; i < self->nckpts; i++) {
        writer_mark_t c = self->ckpts[i];
        self->ckpt_slot[c.stream] = -1;
        if (!s_covered(upto, n, c.stream, c.seq))
            self->ckpts[kept++] = c;
    }
    self->nckpts = kept;
    for (size_t i = 0; i < self->nckpts; i++)
        self->ckpt_slot[self->ckpts[i].stream] = (int32_t)i;
    return dropped;
}

/* Keeps the marks whose stream is not dropped; returns how many are kept. */
static size_t s_keep_marks(writer_mark_t *marks, size_t count, const bool *drop, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (marks[i].stream >= n || !drop[marks[i].stream])
            marks[kept++] = marks[i];
    return kept;
}

size_t writer_batch_drop_streams(writer_batch_t *self, const bool *drop, size_t n)
{
    int64_t *upto = malloc((n ? n : 1) * sizeof *upto);
    if (!upto)
        abort();
    for (size_t i = 0; i < n; i++)
        upto[i] = drop[i] ? INT64_MAX : -1;
    /* Their checkpoints go with their rows (none stays at or below "all"). */
    size_t dropped = writer_batch_drop_upto(self, upto, n);
    free(upto);
    self->nheads = s_keep_marks(self->heads, self->nheads, drop, n);
    if (writer_batch_empty(self))
        writer_batch_reset(self);
    return dropped;
}

size_t writer_batch_bytes(const writer_batch_t *self)
{
    return self->copy.len + self->raw.len + self->reject_copy.len;
}
