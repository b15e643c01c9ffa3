/* Reading one CSV file as events with their identities: the one place that
 * decides what a row of an archive file or of an old generator's file is, so
 * that ingesting a file and repairing from it always derive the same
 * (source, partition, seq). Streams the file; nothing is loaded whole. */
#ifndef INGEST_READER_H
#define INGEST_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/csv.h"
#include "evpipe/event.h"

/* "file-" and 32 hex digits: the source of an old-format file read with the
 * identity settings below. */
#define INGEST_FILE_SOURCE_LEN 37
/* The settings an old-format file's identities depend on (PARTITIONS: its
 * rows' partitions; INGEST_MAX_LINE: which rows are refused and so take no
 * seq). Read with these, its source is "file-<32 hex>", as before the
 * settings were named in it; read with others it is that followed by
 * "-p<PARTITIONS>" and/or "-l<INGEST_MAX_LINE>" for each one that differs
 * ("file-<32 hex>-p32-l4096", at most 54 characters). Fixed for good: they
 * were the defaults when the suffix came, and a replay after an upgrade must
 * give the same identities whatever the defaults become. */
#define INGEST_IDENTITY_PARTITIONS 16
#define INGEST_IDENTITY_MAX_LINE 65536
/* The longest source the protocol allows, plus the NUL. */
#define INGEST_SOURCE_MAX 65

/* Called after each MiB of the hash pass of an old-format file: bytes
 * hashed so far, of size. */
typedef void (*ingest_reader_hashing_fn)(void *arg, uint64_t bytes, uint64_t size);

typedef struct {
    int partitions;  /* PARTITIONS: partition = ev_partition_of(user_id, partitions) */
    size_t max_line; /* INGEST_MAX_LINE: longer records are rejected */
    ingest_reader_hashing_fn hashing; /* progress of the hash pass; NULL: none */
    void *hashing_arg;                /* its argument */
} ingest_reader_opts_t;

/* One record of the file: an event, or the reason it was refused. */
typedef struct {
    ev_event_t ev;        /* the event with its identity (when code is EV_OK); text points into the reader */
    ev_reject_t code;     /* EV_OK or why the row was refused */
    ev_error_t err;       /* the reason in words, naming the field */
    uint64_t line;        /* the line the record starts on (1 is the header) */
    const char *raw;      /* the record as in the file, without its line end */
    size_t raw_len;       /* bytes in raw */
    uint64_t end_offset;  /* file offset just past the record and its line end */
} ingest_row_t;

typedef struct ingest_reader_t ingest_reader_t;

/* Opens path and maps its header. An old-format file gets its source from a
 * BLAKE2b pass over the whole file and the settings in opts (see
 * INGEST_IDENTITY_PARTITIONS), unless known_source (the ledger's word for
 * this file) is given; a known_source whose settings are not those of opts
 * is refused (its identities cannot be derived with them). NULL with why
 * when the file cannot be opened, or its header or known_source is refused
 * (*header_refused then says it was the header). */
ingest_reader_t *ingest_reader_open(const char *path, const ingest_reader_opts_t *opts, const char *known_source,
                                    bool *header_refused, char *why, size_t whylen);
void ingest_reader_destroy(ingest_reader_t **self_p);

/* EV_CSV_OLD or EV_CSV_ARCHIVE, from the header. */
ev_csv_layout_t ingest_reader_layout(const ingest_reader_t *self);
/* The file- source of an old-format file (with its settings' suffix); ""
 * for an archive file (its rows carry their own). */
const char *ingest_reader_source(const ingest_reader_t *self);
/* Size and modification time (ns since the epoch) when opened. */
int64_t ingest_reader_size(const ingest_reader_t *self);
int64_t ingest_reader_mtime_ns(const ingest_reader_t *self);
/* File offset and line number of the first data record. */
uint64_t ingest_reader_data_offset(const ingest_reader_t *self);
uint64_t ingest_reader_data_line(const ingest_reader_t *self);

/* The next record: 1 (row filled), 0 at end of file, -1 on a read error
 * (why). Good rows of an old-format file take seq = 1, 2, 3... per partition
 * in file order; refused rows take none. */
int ingest_reader_next(ingest_reader_t *self, ingest_row_t *row, char *why, size_t whylen);

/* Goes on reading from a record boundary found earlier: offset and line of
 * that record, and (old format) seq_before[p], the last seq given in each
 * partition before it (PARTITIONS entries; NULL: all 0). */
int ingest_reader_seek(ingest_reader_t *self, uint64_t offset, uint64_t line, const int64_t *seq_before,
                       char *why, size_t whylen);

/* Appends to source (INGEST_SOURCE_MAX bytes, holding "file-<32 hex>") the
 * suffix naming the settings of opts that differ from the identity
 * settings: "", "-p32", "-l4096" or "-p32-l4096". */
void ingest_reader_source_suffix(char *source, const ingest_reader_opts_t *opts);

/* The file- source of the content of fd, read from its start to its end:
 * "file-" and the first 32 hex digits of its BLAKE2b-512 hash (the same as
 * `b2sum FILE | cut -c1-32`). out holds INGEST_FILE_SOURCE_LEN + 1 bytes.
 * Returns 0, or -1 with why. *bytes (if given) is how many were hashed. */
int ingest_reader_hash_source(int fd, char *out, uint64_t *bytes, char *why, size_t whylen);

#endif
