/* The last seq published per (source, partition) (see ingest_heads.h). */
#include "ingest_heads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_reader.h"

typedef struct {
    char name[INGEST_SOURCE_MAX]; /* the source */
    uint32_t len;                 /* its length */
    int64_t *seq;                 /* highest seq per partition */
} s_source_t;

struct ingest_heads_t {
    int partitions;      /* entries in each seq array */
    s_source_t *sources; /* in the order first noted */
    size_t count;        /* sources used */
    size_t cap;          /* sources allocated */
    size_t last;         /* the source noted last (most rows repeat it) */
};

ingest_heads_t *ingest_heads_new(int partitions)
{
    ingest_heads_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->partitions = partitions < 1 ? 1 : partitions;
    return self;
}

void ingest_heads_clear(ingest_heads_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free(self->sources[i].seq);
    self->count = 0;
    self->last = 0;
}

void ingest_heads_destroy(ingest_heads_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_heads_t *self = *self_p;
    ingest_heads_clear(self);
    free(self->sources);
    free(self);
    *self_p = NULL;
}

/* The entry of source name; made when missing and create is true. */
static s_source_t *s_find(ingest_heads_t *self, const char *name, uint32_t len, bool create)
{
    if (self->last < self->count) {
        s_source_t *s = &self->sources[self->last];
        if (s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_source_t *s = &self->sources[i];
        if (s->len == len && memcmp(s->name, name, len) == 0) {
            self->last = i;
            return s;
        }
    }
    if (!create || len >= INGEST_SOURCE_MAX)
        return NULL;
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 4;
        s_source_t *n = realloc(self->sources, cap * sizeof *n);
        if (!n)
            abort();
        self->sources = n;
        self->cap = cap;
    }
    s_source_t *s = &self->sources[self->count];
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->len = len;
    s->seq = calloc((size_t)self->partitions, sizeof *s->seq);
    if (!s->seq)
        abort();
    self->last = self->count++;
    return s;
}

void ingest_heads_note(ingest_heads_t *self, ev_str_t source, int32_t partition, int64_t seq)
{
    if (partition < 0 || partition >= self->partitions)
        return;
    s_source_t *s = s_find(self, source.ptr, source.len, true);
    if (s && seq > s->seq[partition])
        s->seq[partition] = seq;
}

int64_t ingest_heads_get(ingest_heads_t *self, ev_str_t source, int32_t partition)
{
    if (partition < 0 || partition >= self->partitions)
        return 0;
    s_source_t *s = s_find(self, source.ptr, source.len, false);
    return s ? s->seq[partition] : 0;
}

void ingest_heads_merge(ingest_heads_t *self, const ingest_heads_t *other)
{
    for (size_t i = 0; i < other->count; i++) {
        const s_source_t *o = &other->sources[i];
        ev_str_t name = {o->name, o->len};
        for (int p = 0; p < other->partitions; p++)
            if (o->seq[p])
                ingest_heads_note(self, name, p, o->seq[p]);
    }
}

void ingest_heads_remove(ingest_heads_t *self, size_t i)
{
    if (i >= self->count)
        return;
    free(self->sources[i].seq);
    memmove(&self->sources[i], &self->sources[i + 1], (self->count - i - 1) * sizeof *self->sources);
    self->count--;
    self->last = 0;
}

size_t ingest_heads_count(const ingest_heads_t *self)
{
    return self->count;
}

const char *ingest_heads_source(const ingest_heads_t *self, size_t i)
{
    return i < self->count ? self->sources[i].name : NULL;
}

int64_t ingest_heads_seq(const ingest_heads_t *self, size_t i, int32_t partition)
{
    if (i >= self->count || partition < 0 || partition >= self->partitions)
        return 0;
    return self->sources[i].seq[partition];
}

int ingest_heads_partitions(const ingest_heads_t *self)
{
    return self->partitions;
}

uint64_t ingest_heads_total(const ingest_heads_t *self)
{
    uint64_t total = 0;
    for (size_t i = 0; i < self->count; i++)
        for (int p = 0; p < self->partitions; p++)
            total += (uint64_t)self->sources[i].seq[p];
    return total;
}

void ingest_heads_list(const ingest_heads_t *self, char *out, size_t cap)
{
    if (!cap)
        return;
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < self->count; i++) {
        size_t len = self->sources[i].len;
        if (n + (n ? 1 : 0) + len + 1 > cap)
            break;
        if (n)
            out[n++] = ',';
        memcpy(out + n, self->sources[i].name, len);
        n += len;
        out[n] = '\0';
    }
}
