/* Ordering state per (source, partition) and the registry that finds it (see
 * writer_stream.h). */
#include "writer_stream.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct writer_streams_t {
    writer_stream_t **by_id; /* streams by id; NULL where one was dropped */
    uint32_t id_count;       /* ids handed out */
    uint32_t id_cap;         /* entries allocated in by_id */
    uint32_t free_from;      /* no id below this is free (by_id NULL); ids are given out from the lowest */
    uint32_t *table;         /* open addressing: id + 1, 0 when empty */
    uint32_t table_cap;      /* a power of two, at least twice the streams */
    uint32_t live;           /* streams in the table */
    writer_stream_t *last;   /* the stream found last (events come in runs) */
    size_t held_total;       /* events held back across all streams */
    size_t holdback_max;     /* the bound for writer_streams_full, in events */
    size_t held_bytes;       /* bytes of raw bodies held back */
    uint32_t sources_max;    /* streams one partition may have (sources per partition) */
    size_t unread;           /* streams marked unread */
    uint32_t per_partition[EV_PARTITIONS_MAX]; /* live streams per partition */
    size_t holdback_bytes;   /* the bound for writer_streams_full, in bytes */
};

/* ---- Registry ---- */

static uint32_t s_hash(const char *source, size_t len, int32_t partition)
{
    /* FNV-1a over the source, then the partition mixed in. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)source[i]) * 16777619u;
    h ^= (uint32_t)partition * 0x9e3779b1u;
    h ^= h >> 15;
    return h;
}

writer_streams_t *writer_streams_new(size_t holdback_max, size_t holdback_bytes, uint32_t sources_max)
{
    writer_streams_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->sources_max = sources_max;
    self->holdback_max = holdback_max;
    self->holdback_bytes = holdback_bytes;
    self->table_cap = 64;
    self->table = calloc(self->table_cap, sizeof *self->table);
    if (!self->table) {
        free(self);
        return NULL;
    }
    return self;
}

static void s_free_stream(writer_stream_t *s)
{
    for (size_t i = s->held_head; i < s->held_len; i++)
        free(s->held[i].raw);
    free(s->held);
    free(s);
}

void writer_streams_destroy(writer_streams_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    writer_streams_t *self = *self_p;
    for (uint32_t i = 0; i < self->id_count; i++)
        if (self->by_id[i])
            s_free_stream(self->by_id[i]);
    free(self->by_id);
    free(self->table);
    free(self);
    *self_p = NULL;
}

static void s_table_put(uint32_t *table, uint32_t cap, const writer_stream_t *s)
{
    uint32_t i = s->hash & (cap - 1);
    while (table[i])
        i = (i + 1) & (cap - 1);
    table[i] = s->id + 1;
}

/* Rebuilds the table at cap slots from the live streams. */
static void s_rebuild(writer_streams_t *self, uint32_t cap)
{
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
        abort(); /* a few KB; nothing can go on without it */
    for (uint32_t i = 0; i < self->id_count; i++)
        if (self->by_id[i])
            s_table_put(t, cap, self->by_id[i]);
    free(self->table);
    self->table = t;
    self->table_cap = cap;
}

static bool s_same(const writer_stream_t *s, const char *source, size_t len, int32_t partition)
{
    return s->partition == partition && s->source_len == len && memcmp(s->source, source, len) == 0;
}

writer_stream_t *writer_streams_get(writer_streams_t *self, const char *source, size_t len, int32_t partition,
                                    bool create)
{
    assert(self);
    if (len > WRITER_SOURCE_MAX)
        return NULL;
    if (self->last && s_same(self->last, source, len, partition))
        return self->last;
    uint32_t h = s_hash(source, len, partition);
    for (uint32_t i = h & (self->table_cap - 1); self->table[i]; i = (i + 1) & (self->table_cap - 1)) {
        writer_stream_t *s = self->by_id[self->table[i] - 1];
        if (s->hash == h && s_same(s, source, len, partition))
            return self->last = s;
    }
    if (!create || writer_streams_crowded(self, partition))
        return NULL;
    writer_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        abort(); /* a few hundred bytes; nothing can go on without it */
    /* The id of a stream dropped before, else a new one. */
    uint32_t id = self->live < self->id_count ? self->free_from : self->id_count;
    while (id < self->id_count && self->by_id[id])
        id++;
    if (id == self->id_cap) {
        uint32_t cap = self->id_cap ? self->id_cap * 2 : 64;
        writer_stream_t **n = realloc(self->by_id, cap * sizeof *n);
        if (!n)
            abort();
        self->by_id = n;
        self->id_cap = cap;
    }
    if (id == self->id_count)
        self->id_count++;
    s->id = id;
    self->free_from = id + 1;
    memcpy(s->source, source, len);
    s->source[len] = '\0';
    s->source_len = (uint32_t)len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)source[i];
        s->name[i] = (c <= 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    s->name[len] = '\0';
    s->partition = partition;
    s->hash = h;
    self->by_id[s->id] = s;
    if ((self->live + 1) * 2 > self->table_cap)
        s_rebuild(self, self->table_cap * 2);
    s_table_put(self->table, self->table_cap, s);
    self->live++;
    self->per_partition[partition]++;
    return self->last = s;
}

writer_stream_t *writer_streams_by_id(const writer_streams_t *self, uint32_t id)
{
    return id < self->id_count ? self->by_id[id] : NULL;
}

uint32_t writer_streams_id_limit(const writer_streams_t *self)
{
    return self->id_count;
}

bool writer_streams_crowded(const writer_streams_t *self, int32_t partition)
{
    return partition < 0 || partition >= EV_PARTITIONS_MAX || self->per_partition[partition] >= self->sources_max;
}

/* Frees stream i, its id given out again; the table is rebuilt by the caller. */
static void s_drop(writer_streams_t *self, uint32_t i)
{
    writer_stream_t *s = self->by_id[i];
    self->held_total -= s->held_len - s->held_head;
    for (size_t k = s->held_head; k < s->held_len; k++)
        self->held_bytes -= s->held[k].len;
    self->per_partition[s->partition]--;
    self->unread -= s->unread;
    s_free_stream(s);
    self->by_id[i] = NULL;
    self->live--;
    if (i < self->free_from)
        self->free_from = i;
}

void writer_streams_drop_partition(writer_streams_t *self, int32_t partition)
{
    bool dropped = false;
    for (uint32_t i = 0; i < self->id_count; i++)
        if (self->by_id[i] && self->by_id[i]->partition == partition) {
            s_drop(self, i);
            dropped = true;
        }
    if (dropped) {
        self->last = NULL;
        s_rebuild(self, self->table_cap);
    }
}

size_t writer_streams_idle(const writer_streams_t *self, int64_t now_ms, int64_t idle_ms, uint32_t *ids, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < self->id_count && n < max; i++) {
        const writer_stream_t *s = self->by_id[i];
        if (s && s->heard_ms <= now_ms - idle_ms && writer_stream_settled(s))
            ids[n++] = i;
    }
    return n;
}

void writer_streams_forget(writer_streams_t *self, const uint32_t *ids, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (ids[k] < self->id_count && self->by_id[ids[k]])
            s_drop(self, ids[k]);
    if (n > 0) {
        self->last = NULL;
        s_rebuild(self, self->table_cap);
    }
}

size_t writer_streams_held(const writer_streams_t *self)
{
    return self->held_total;
}

size_t writer_streams_held_bytes(const writer_streams_t *self)
{
    return self->held_bytes;
}

bool writer_streams_full(const writer_streams_t *self)
{
    return self->held_total >= self->holdback_max || self->held_bytes >= self->holdback_bytes;
}

/* ---- Held events ---- */

size_t writer_stream_held_count(const writer_stream_t *s)
{
    return s->held_len - s->held_head;
}

int64_t writer_stream_first_held(const writer_stream_t *s)
{
    return s->held_head < s->held_len ? s->held[s->held_head].seq : 0;
}

/* Frees held entries at or below accepted from the front. */
static void s_drop_stale(writer_streams_t *self, writer_stream_t *s)
{
    while (s->held_head < s->held_len && s->held[s->held_head].seq <= s->accepted) {
        free(s->held[s->held_head].raw);
        self->held_bytes -= s->held[s->held_head].len;
        s->held_head++;
        self->held_total--;
    }
    if (s->held_head == s->held_len)
        s->held_head = s->held_len = 0;
}

/* Inserts keeping seq order; false when that seq is already held. */
static bool s_hold(writer_streams_t *self, writer_stream_t *s, int64_t seq, const void *raw, size_t len,
                   int32_t topic_partition, bool from_repair)
{
    /* Most held events arrive in order behind one hole: append is the usual case. */
    size_t pos = s->held_len;
    if (pos > s->held_head && s->held[pos - 1].seq >= seq) {
        size_t lo = s->held_head, hi = s->held_len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->held[mid].seq < seq)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < s->held_len && s->held[lo].seq == seq)
            return false;
        pos = lo;
    }
    if (s->held_len == s->held_cap) {
        if (s->held_head > 0 && s->held_head >= s->held_cap / 2) {
            /* Reclaim the drained front instead of growing. */
            size_t n = s->held_len - s->held_head;
            memmove(s->held, s->held + s->held_head, n * sizeof *s->held);
            pos -= s->held_head;
            s->held_head = 0;
            s->held_len = n;
        } else {
            size_t cap = s->held_cap ? s->held_cap * 2 : 16;
            writer_held_t *n = realloc(s->held, cap * sizeof *n);
            if (!n)
                abort(); /* held events cannot be dropped silently */
            s->held = n;
            s->held_cap = cap;
        }
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, raw, len);
    memmove(s->held + pos + 1, s->held + pos, (s->held_len - pos) * sizeof *s->held);
    s->held[pos] = (writer_held_t){seq, topic_partition, from_repair, (uint32_t)len, copy};
    s->held_len++;
    self->held_total++;
    self->held_bytes += len;
    return true;
}

writer_offer_t writer_stream_offer(writer_streams_t *self, writer_stream_t *s, int64_t seq, const void *raw,
                                   size_t len, int32_t topic_partition, bool from_repair)
{
    if (seq > s->seen)
        s->seen = seq;
    if (seq <= s->accepted)
        return WRITER_OFFER_DUPLICATE;
    if (seq == s->accepted + 1) {
        s->accepted = seq;
        return WRITER_OFFER_TAKE;
    }
    return s_hold(self, s, seq, raw, len, topic_partition, from_repair) ? WRITER_OFFER_HELD
                                                                        : WRITER_OFFER_DUPLICATE;
}

bool writer_stream_pop_ready(writer_streams_t *self, writer_stream_t *s, writer_held_t *out)
{
    s_drop_stale(self, s);
    if (s->held_head == s->held_len || s->held[s->held_head].seq != s->accepted + 1)
        return false;
    *out = s->held[s->held_head++];
    self->held_total--;
    self->held_bytes -= out->len;
    s->accepted = out->seq;
    if (s->held_head == s->held_len)
        s->held_head = s->held_len = 0;
    return true;
}

bool writer_stream_next_gap(writer_stream_t *s, int64_t *first, int64_t *last)
{
    if (s->gap_until <= s->accepted)
        return false;
    int64_t held = writer_stream_first_held(s);
    if (held == s->accepted + 1)
        return false; /* the next one is here: pop it first */
    int64_t to = s->gap_until;
    if (held && held - 1 < to)
        to = held - 1;
    *first = s->accepted + 1;
    *last = to;
    s->accepted = to;
    return true;
}

void writer_stream_advance(writer_streams_t *self, writer_stream_t *s, int64_t seq)
{
    if (seq > s->accepted)
        s->accepted = seq;
    s->committed = seq;
    if (s->unread)
        self->unread--;
    s->unread = false;
    if (seq > s->seen)
        s->seen = seq;
    s_drop_stale(self, s);
}

void writer_stream_unread(writer_streams_t *self, writer_stream_t *s)
{
    if (!s->unread)
        self->unread++;
    s->unread = true;
}

size_t writer_streams_unread(const writer_streams_t *self)
{
    return self->unread;
}

void writer_stream_heard(writer_stream_t *s, int64_t now_ms)
{
    s->heard_ms = now_ms;
}

bool writer_stream_settled(const writer_stream_t *s)
{
    return !s->unread && s->committed == s->accepted && s->seen <= s->committed && s->head_seq <= s->committed &&
           s->held_len == s->held_head && s->gap_until <= s->accepted && !s->repair_busy &&
           s->waiting == WRITER_WAIT_NONE && s->retry_at_ms == 0 && s->probe_at_ms == 0 && !s->probe;
}

/* ---- Repair ---- */

/* The known hole after accepted, if any (unbounded). */
static bool s_hole(const writer_stream_t *s, int64_t *end)
{
    int64_t held = writer_stream_first_held(s);
    *end = held ? held - 1 : s->seen;
    return *end > s->accepted;
}

bool writer_stream_missing(const writer_stream_t *s, int64_t *from, int64_t *to)
{
    int64_t end;
    if (s->unread)
        return false; /* a hole from 0 may be committed already */
    if (!s_hole(s, &end)) {
        if (!s->probe)
            return false;
        end = s->accepted + WRITER_REPAIR_RANGE_MAX;
    }
    *from = s->accepted + 1;
    *to = end - *from + 1 > WRITER_REPAIR_RANGE_MAX ? *from + WRITER_REPAIR_RANGE_MAX - 1 : end;
    return true;
}

bool writer_stream_repair_due(const writer_stream_t *s, int64_t now_ms, int timeout_ms, bool *resend)
{
    int64_t from, to;
    *resend = false;
    if (!writer_stream_missing(s, &from, &to))
        return false;
    if (!s->repair_busy)
        return now_ms >= s->retry_at_ms;
    /* The request in flight still covers the hole's start: wait for it. */
    if (now_ms - s->repair_sent_ms >= timeout_ms) {
        *resend = true;
        return true;
    }
    return false;
}

void writer_stream_repair_sent(writer_stream_t *s, uint64_t id, int64_t from, int64_t to, int64_t now_ms)
{
    int64_t end;
    s->repair_busy = true;
    s->repair_probe = !s_hole(s, &end);
    s->repair_id = id;
    s->repair_from = from;
    s->repair_to = to;
    s->repair_sent_ms = now_ms;
}

void writer_stream_repair_progress(writer_stream_t *s, int64_t now_ms)
{
    if (s->repair_busy)
        s->repair_sent_ms = now_ms;
}

/* The next retry after an answer without evidence: soon at first (a live
 * publisher's archive catches up within milliseconds), then rarer, so a
 * claim nothing backs costs one request per WRITER_RETRY_MAX_MS. */
static void s_backoff(writer_stream_t *s, writer_wait_t why, int64_t now_ms)
{
    s->waiting = why;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : WRITER_RETRY_FIRST_MS;
    if (s->backoff_ms > WRITER_RETRY_MAX_MS)
        s->backoff_ms = WRITER_RETRY_MAX_MS;
    s->retry_at_ms = now_ms + s->backoff_ms;
}

static void s_settled(writer_stream_t *s)
{
    s->waiting = WRITER_WAIT_NONE;
    s->backoff_ms = 0;
    s->retry_at_ms = 0;
}

/* Seqs up to last are lost for good: they become gaps as the stream reaches them. */
static void s_gap_until(writer_stream_t *s, int64_t last)
{
    if (last > s->gap_until)
        s->gap_until = last;
}

writer_end_t writer_stream_repair_end(writer_stream_t *s, const ev_repair_t *end, int64_t now_ms)
{
    if (!s->repair_busy || s->repair_id != end->id)
        return WRITER_END_STALE;
    s->repair_busy = false;
    /* What the answer covers: the server may stop short of what was asked. */
    int64_t to = end->to < s->repair_to ? end->to : s->repair_to;
    if (end->found_source && end->head > s->proven)
        s->proven = end->head;
    if (end->refused) {
        s_backoff(s, WRITER_WAIT_REFUSED, now_ms);
        return WRITER_END_WAIT;
    }
    if (s->repair_probe) {
        /* Its last seq came: there may be more after it. */
        s->probe = s->seen >= to;
        return WRITER_END_SETTLED;
    }
    int64_t held = writer_stream_first_held(s);
    int64_t hole_end = held ? held - 1 : s->seen;
    if (hole_end <= s->accepted) {
        /* The answer (or the bus meanwhile) filled it. */
        s_settled(s);
        return WRITER_END_SETTLED;
    }
    if (end->found_source) {
        /* The archive's head proves the seqs below it existed. */
        s_gap_until(s, to < end->head ? to : end->head);
        if (hole_end > end->head && to > end->head) {
            s_backoff(s, WRITER_WAIT_BEYOND, now_ms);
            return WRITER_END_WAIT;
        }
        s_settled(s);
        return WRITER_END_SETTLED;
    }
    if (s->best_effort && held) {
        /* Nothing keeps a best-effort source's events; a later event in hand
         * proves the ones before it were sent and lost. */
        s_gap_until(s, to < held - 1 ? to : held - 1);
        s_settled(s);
        return WRITER_END_SETTLED;
    }
    s_backoff(s, WRITER_WAIT_UNKNOWN, now_ms);
    return WRITER_END_WAIT;
}

/* ---- Probes ---- */

void writer_stream_probe_at(writer_stream_t *s, int64_t at_ms)
{
    s->probe_at_ms = at_ms > 0 ? at_ms : 1;
}

bool writer_stream_probe_due(writer_stream_t *s, int64_t now_ms)
{
    if (!s->probe_at_ms || now_ms < s->probe_at_ms)
        return false;
    s->probe_at_ms = 0;
    s->probe = true;
    return true;
}

void writer_stream_learn_head(writer_stream_t *s, int64_t seq)
{
    if (seq > s->seen)
        s->seen = seq;
    if (seq > s->head_seq)
        s->head_seq = seq;
}

/* ---- Heartbeats ---- */

bool writer_stream_heartbeat(writer_stream_t *s, int64_t seq, bool best_effort, int64_t now_ms,
                             int record_every_ms)
{
    if (seq > s->seen)
        s->seen = seq;
    s->head_seq = seq;
    s->best_effort = best_effort;
    s->probe_at_ms = 0;
    if (s->head_recorded && now_ms - s->head_recorded_ms < record_every_ms)
        return false;
    s->head_recorded = true;
    s->head_recorded_ms = now_ms;
    s->head_recorded_seq = writer_stream_head(s);
    return true;
}

int64_t writer_stream_head(const writer_stream_t *s)
{
    int64_t proven = s->proven > s->accepted ? s->proven : s->accepted;
    return s->head_seq < proven ? s->head_seq : proven;
}

bool writer_stream_head_grew(writer_stream_t *s, int64_t *head)
{
    *head = writer_stream_head(s);
    if (!s->head_recorded || *head <= s->head_recorded_seq)
        return false;
    s->head_recorded_seq = *head;
    return true;
}

/* ---- Bounds ---- */

/* Frees the held events of s above seq. */
static size_t s_free_above(writer_streams_t *self, writer_stream_t *s, int64_t seq)
{
    size_t freed = 0;
    while (s->held_len > s->held_head && s->held[s->held_len - 1].seq > seq) {
        free(s->held[--s->held_len].raw);
        self->held_total--;
        self->held_bytes -= s->held[s->held_len].len;
        freed++;
    }
    if (s->held_head == s->held_len)
        s->held_head = s->held_len = 0;
    return freed;
}

size_t writer_streams_evict_unproven(writer_streams_t *self)
{
    size_t freed = 0;
    for (uint32_t i = 0; i < self->id_count; i++) {
        writer_stream_t *s = self->by_id[i];
        if (!s || s->held_len == s->held_head)
            continue;
        if (s->waiting == WRITER_WAIT_UNKNOWN)
            freed += s_free_above(self, s, s->accepted);
        else if (s->waiting == WRITER_WAIT_BEYOND)
            freed += s_free_above(self, s, s->proven > s->accepted ? s->proven : s->accepted);
    }
    return freed;
}
