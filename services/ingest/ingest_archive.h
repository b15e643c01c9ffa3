/* An index of the files repairs are read from: the CSV files of ARCHIVE_DIR
 * and any file added by name (an ingested file from the ledger). Per file it
 * keeps blocks of about block_bytes, and per block and per (source,
 * partition) the lowest and highest seq, so a repair opens only the files
 * and reads only the blocks that can hold its range. A file whose size or
 * mtime changed is indexed again: a growing archive file from where the
 * index stopped, counting complete lines only (the generator may be halfway
 * through one). The folder is only ever read. One thread uses an index.
 *
 * The index also keeps, per (source, partition), the highest seq it has
 * ever seen, in files still there or deleted since: the evidence a repair
 * answer gives for what existed (a range below it that no file holds any
 * more is lost; a seq above it is not known to exist). */
#ifndef INGEST_ARCHIVE_H
#define INGEST_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/event.h"

typedef struct {
    const char *dir;    /* ARCHIVE_DIR (its *.csv files); NULL or "": none */
    int partitions;     /* PARTITIONS, to derive old-format identities */
    size_t max_line;    /* INGEST_MAX_LINE */
    size_t block_bytes; /* index granularity; 0: 4 MiB */
    bool (*cancelled)(void *arg); /* asked now and then during long reads; true stops them (NULL: never) */
    void *cancel_arg;   /* passed to cancelled */
} ingest_archive_opts_t;

typedef struct ingest_archive_t ingest_archive_t;

ingest_archive_t *ingest_archive_new(const ingest_archive_opts_t *opts);
void ingest_archive_destroy(ingest_archive_t **self_p);

/* Indexes new files of the folder and the new part of grown ones; forgets
 * deleted ones. A cancelled refresh goes on from where it stopped next time. */
void ingest_archive_refresh(ingest_archive_t *self);

/* Adds (or brings up to date) one file outside the folder. known_source is
 * its file- source when it has the old format (the ledger's word, so it is
 * not hashed again), or NULL. size and mtime_ns are what the ledger recorded:
 * a file that is no longer so is refused (its identities would differ). A
 * file of the folder is left to the folder's refresh. Returns 0, or -1 with
 * why. */
int ingest_archive_add(ingest_archive_t *self, const char *path, const char *known_source, int64_t size,
                       int64_t mtime_ns, char *why, size_t whylen);

/* True when some file indexed since the index was made holds or held
 * events of source (a deleted file's events still count). */
bool ingest_archive_knows(ingest_archive_t *self, const char *source);
/* The highest seq of (source, partition) in any file indexed since the
 * index was made, deleted ones included: the seqs up to it are known to
 * exist. 0 when none. */
int64_t ingest_archive_head(ingest_archive_t *self, const char *source, int32_t partition);
/* Called for every (source, partition) with its head and the monotonic ms
 * (zclock_mono) when the head last rose. */
typedef void (*ingest_archive_head_fn)(const char *source, int32_t partition, int64_t head, int64_t changed_ms,
                                       void *arg);
/* Calls fn for every head; returns how many there are. */
size_t ingest_archive_heads(ingest_archive_t *self, ingest_archive_head_fn fn, void *arg);

/* Called for each event found; return 0 to go on, -1 to stop. */
typedef int (*ingest_archive_fn)(const ev_event_t *ev, void *arg);

/* Calls fn for every event of (source, partition) with from <= seq <= to, in
 * seq order (each seq once: files are read lowest seqs first, and a row whose
 * seq is not above the last one passed is a duplicate, skipped). Returns how many were passed to fn, or -1 when
 * fn asked to stop or the read was cancelled. */
int64_t ingest_archive_read(ingest_archive_t *self, const char *source, int32_t partition, int64_t from,
                            int64_t to, ingest_archive_fn fn, void *arg);

/* The files that can hold part of the range, lowest seqs first: up to max
 * paths (valid until the next refresh or add). Returns how many. */
size_t ingest_archive_files_for(ingest_archive_t *self, const char *source, int32_t partition, int64_t from,
                                int64_t to, const char **paths, size_t max);

/* Bytes read from files since the index was made (indexing and repairs). */
uint64_t ingest_archive_bytes_read(const ingest_archive_t *self);
/* Files indexed (bad ones included). */
size_t ingest_archive_file_count(const ingest_archive_t *self);

#endif
