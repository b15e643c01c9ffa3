/* What one transaction will write: the events as binary COPY rows with
 * each row's identity, the checkpoint of every stream touched, the rejects (as COPY
 * text of the rejects table), the gaps and the publishers' heads. Buffers
 * are reused from one batch to the next. No SQL is run here (writer_db). */
#ifndef WRITER_BATCH_H
#define WRITER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/event.h"
#include "writer_stream.h"

/* One event row of the binary COPY data. */
typedef struct {
    uint32_t stream;      /* stream id */
    int64_t seq;          /* its seq */
    int64_t published_at; /* microseconds since the epoch, for the latency record */
    size_t off;           /* where its COPY row starts in copy */
    uint32_t len;         /* bytes of the line, "\n" included */
    size_t raw_off;       /* where its msgpack body starts in raw */
    uint32_t raw_len;     /* bytes of the body */
    bool from_repair;     /* it came in a repair answer */
    bool refused;         /* PostgreSQL refused it in this commit: it is a reject now */
} writer_row_t;

/* One row of the rejects COPY text. */
typedef struct {
    int64_t stream;       /* stream id, or -1 when the event had no usable identity */
    int64_t seq;          /* its seq (as it came) */
    ev_reject_t reason;   /* why */
    size_t off;           /* where its line starts in reject_copy */
    uint32_t len;         /* bytes of the line */
} writer_reject_t;

/* A range the repair service could not send. */
typedef struct {
    uint32_t stream; /* stream id */
    int64_t first;   /* first seq missing */
    int64_t last;    /* last seq missing */
} writer_gap_t;

/* A (stream, seq) pair: a checkpoint or a publisher's head. */
typedef struct {
    uint32_t stream; /* stream id */
    int64_t seq;     /* the value */
} writer_mark_t;

/* Fields are read-only outside writer_batch.c (tests and writer_db read them). */
typedef struct {
    ev_buf_t copy;             /* the events as COPY rows in binary format (no header or trailer) */
    ev_buf_t raw;              /* msgpack bodies of the rows (a refused row goes to rejects with it) */
    writer_row_t *rows;        /* the rows, in COPY order */
    size_t nrows, rows_cap;    /* used, allocated */
    ev_buf_t reject_copy;      /* COPY text of rejects (source, partition, seq, reason, detail, raw) */
    writer_reject_t *rejects;  /* the rejects, in reject_copy order */
    size_t nrejects, rejects_cap;
    writer_gap_t *gaps;        /* the gaps */
    size_t ngaps, gaps_cap;
    writer_mark_t *ckpts;      /* new checkpoint of each stream touched */
    size_t nckpts, ckpts_cap;
    int32_t *ckpt_slot;        /* by stream id: index in ckpts, or -1 */
    size_t slot_cap;           /* entries in ckpt_slot */
    writer_mark_t *heads;      /* publishers' heads to record */
    size_t nheads, heads_cap;
    size_t refused;            /* rows marked refused in this commit */
    int64_t first_ms;          /* when the first item came (monotonic ms); 0 when empty */
    size_t size_hint;          /* rows a batch usually holds: more capacity is given back on reset */
    uint64_t edits;            /* changes of the COPY rows other than rows added at its end (reset,
                                * drops): text sent ahead of the commit stays valid while it holds */
} writer_batch_t;

/* size_hint: WRITER_BATCH_SIZE, to keep the buffers around that size. */
writer_batch_t *writer_batch_new(size_t size_hint);
void writer_batch_destroy(writer_batch_t **self_p);
/* Empties it (keeping the buffers, unless they grew far past the hint). */
void writer_batch_reset(writer_batch_t *self);
/* True when there is nothing to write. */
bool writer_batch_empty(const writer_batch_t *self);

/* Validates an event of stream s (taken: seq == its next seq) and adds it as
 * a row, or as a reject when it is refused; either way the checkpoint of s
 * moves to its seq. topic_partition is the partition of the topic it came on
 * (-1 when it came from a repair; then it is not compared). now_ms starts the
 * linger clock. Returns EV_OK or the reason it was refused (detail in err). */
ev_reject_t writer_batch_add_event(writer_batch_t *self, const writer_stream_t *s, const ev_event_t *ev,
                                   const void *raw, size_t len, int32_t topic_partition, bool from_repair,
                                   int64_t now_ms, ev_error_t *err);
/* Adds a reject. s is the event's stream, or NULL when its identity is not
 * usable (then source is stored only when it is valid text for the column).
 * Does not move any checkpoint. */
void writer_batch_add_reject(writer_batch_t *self, const writer_stream_t *s, const ev_event_t *ev,
                             const void *raw, size_t len, ev_reject_t reason, const char *detail,
                             int64_t now_ms);
/* Adds a gap [first, last] of s and moves its checkpoint to last. */
void writer_batch_add_gap(writer_batch_t *self, const writer_stream_t *s, int64_t first, int64_t last,
                          int64_t now_ms);
/* Records the publisher's head of s (replaces an earlier one of this batch). */
void writer_batch_add_head(writer_batch_t *self, const writer_stream_t *s, int64_t seq, int64_t now_ms);
/* Moves the checkpoint of s to seq (never back). */
void writer_batch_checkpoint(writer_batch_t *self, const writer_stream_t *s, int64_t seq);
/* The checkpoint this batch sets for s; -1 when it does not touch s. */
int64_t writer_batch_checkpoint_of(const writer_batch_t *self, uint32_t stream);

/* ---- Used by the commit ---- */

/* Takes row i out of the COPY: a reject with reason "database" and
 * PostgreSQL's message as detail, or, with a NULL detail, simply skipped
 * (its identity is already in the table). */
void writer_batch_refuse_row(writer_batch_t *self, const writer_stream_t *s, size_t i, const char *detail);
/* Undoes what the refuse calls of a failed commit attempt added, down to
 * nrejects rejects. */
void writer_batch_unrefuse(writer_batch_t *self, size_t nrejects);

/* Bytes the batch holds: COPY rows, event bodies and rejects. */
size_t writer_batch_bytes(const writer_batch_t *self);
/* Removes rows, rejects and gaps at or below upto[stream id] (n entries;
 * -1: keep all of that stream), and checkpoints that would not move past it.
 * Returns how many rows went. */
size_t writer_batch_drop_upto(writer_batch_t *self, const int64_t *upto, size_t n);
/* Rejects without a stream (no usable identity): no checkpoint covers
 * them, so a commit whose outcome was unknown is asked about instead
 * (writer_db). How many the batch holds: */
size_t writer_batch_anonymous_rejects(const writer_batch_t *self);
/* Removes the first n of them (those a transaction that committed held:
 * later ones were added after them); returns how many went. */
size_t writer_batch_drop_anonymous_rejects(writer_batch_t *self, size_t n);
/* Removes everything of the streams whose drop[stream id] is true (n
 * entries): rows, rejects, gaps, checkpoints and heads, as if they had never
 * come (a partition this writer no longer owns). Returns how many rows went. */
size_t writer_batch_drop_streams(writer_batch_t *self, const bool *drop, size_t n);

#endif
