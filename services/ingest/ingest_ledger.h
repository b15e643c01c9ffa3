/* The ledger of finished files, STATE_DIR/ledger.tsv: one tab-separated
 * line per file fully published (path, size, mtime, sources, rows,
 * published, rejected, finished time), appended and synced, read back at
 * start. It decides what is skipped as already ingested, and tells the
 * repair server which file holds a file- source. Safe to use from the
 * ingesting thread and the repair thread at once; lines other processes
 * append are picked up. */
#ifndef INGEST_LEDGER_H
#define INGEST_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"

/* Room for the comma-separated sources of one file (usually one). */
#define INGEST_LEDGER_SOURCES 400

typedef struct {
    char path[EVP_PATH_MAX];             /* absolute path of the file */
    int64_t size;                        /* bytes, when read */
    int64_t mtime_ns;                    /* modification time, ns since the epoch */
    char sources[INGEST_LEDGER_SOURCES]; /* sources of its events, comma-separated */
    uint64_t rows;                       /* records read (header excluded) */
    uint64_t published;                  /* events published */
    uint64_t rejected;                   /* records rejected */
    int64_t finished_us;                 /* when it was finished, us since the epoch */
} ingest_ledger_entry_t;

typedef struct ingest_ledger_t ingest_ledger_t;

/* Loads STATE_DIR/ledger.tsv (a missing file is an empty ledger; malformed
 * lines are logged and ignored). NULL with why when it cannot be read. */
ingest_ledger_t *ingest_ledger_new(const char *state_dir, char *why, size_t whylen);
void ingest_ledger_destroy(ingest_ledger_t **self_p);

/* True when path was finished with this size and mtime. */
bool ingest_ledger_done(ingest_ledger_t *self, const char *path, int64_t size, int64_t mtime_ns);
/* The latest entry for path; false when there is none. */
bool ingest_ledger_find_path(ingest_ledger_t *self, const char *path, ingest_ledger_entry_t *out);
/* Appends a finished file and syncs the ledger. Returns 0 or -1 with why. */
int ingest_ledger_append(ingest_ledger_t *self, const ingest_ledger_entry_t *e, char *why, size_t whylen);

/* The file being published now (so repairs can be served from it before it
 * is finished), or NULL when none. */
void ingest_ledger_set_active(ingest_ledger_t *self, const ingest_ledger_entry_t *e);

/* Files whose events carry `source` (the latest first, the active file
 * included), at most max of them. Returns how many were filled. */
size_t ingest_ledger_find_source(ingest_ledger_t *self, const char *source, ingest_ledger_entry_t *out,
                                 size_t max);

/* Finished entries loaded or appended. */
size_t ingest_ledger_count(ingest_ledger_t *self);
/* The ledger file's path. */
const char *ingest_ledger_path(const ingest_ledger_t *self);

/* True when the comma-separated list holds source. */
bool ingest_ledger_sources_have(const char *sources, const char *source);

#endif
