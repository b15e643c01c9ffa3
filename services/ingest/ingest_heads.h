/* The last seq published per (source, partition): what ingest must see
 * committed (--wait), and the sources a file's events carry (its ledger
 * line). Noting a row costs a comparison and an array store. */
#ifndef INGEST_HEADS_H
#define INGEST_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "evpipe/event.h"

typedef struct ingest_heads_t ingest_heads_t;

/* Partitions 0..partitions-1. NULL when out of memory. */
ingest_heads_t *ingest_heads_new(int partitions);
void ingest_heads_destroy(ingest_heads_t **self_p);

/* Records seq for (source, partition), keeping the highest. Sources longer
 * than the protocol allows and partitions out of range are ignored. */
void ingest_heads_note(ingest_heads_t *self, ev_str_t source, int32_t partition, int64_t seq);
/* The highest seq of (source, partition); 0 when none. */
int64_t ingest_heads_get(ingest_heads_t *self, ev_str_t source, int32_t partition);
/* Adds every head of other. */
void ingest_heads_merge(ingest_heads_t *self, const ingest_heads_t *other);
/* Forgets source i (the others keep their order). */
void ingest_heads_remove(ingest_heads_t *self, size_t i);
void ingest_heads_clear(ingest_heads_t *self);

/* Sources noted, each with its seqs. */
size_t ingest_heads_count(const ingest_heads_t *self);
const char *ingest_heads_source(const ingest_heads_t *self, size_t i);
/* The highest seq of source i in partition (0: none). */
int64_t ingest_heads_seq(const ingest_heads_t *self, size_t i, int32_t partition);
int ingest_heads_partitions(const ingest_heads_t *self);
/* Sum over every (source, partition) of its highest seq. */
uint64_t ingest_heads_total(const ingest_heads_t *self);

/* Writes the sources comma-separated into out (cut at a source boundary
 * when they do not fit). */
void ingest_heads_list(const ingest_heads_t *self, char *out, size_t cap);

#endif
