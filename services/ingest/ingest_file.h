/* Replaying one CSV file onto the bus: every good row is published with its
 * identity (ingest_reader), every bad row goes to the file's reject file,
 * and a file fully published goes into the ledger. While it is published
 * the file is the ledger's active file, so repairs can be served from it. */
#ifndef INGEST_FILE_H
#define INGEST_FILE_H

#include <stdint.h>

#include "evpipe/config.h"
#include "evpipe/publisher.h"
#include "ingest_heads.h"
#include "ingest_ledger.h"
#include "ingest_metrics.h"
#include "ingest_progress.h"

typedef struct {
    const evp_config_t *cfg;     /* PARTITIONS, INGEST_MAX_LINE, STATE_DIR */
    evp_publisher_t *publisher;  /* where events go */
    ingest_ledger_t *ledger;     /* finished files are appended */
    int bus_timeout_ms;          /* how long to wait for a bus that went away; < 0: no limit */
    ingest_metrics_t *metrics;   /* rows, rejects, files counted here; NULL: none */
    ingest_progress_t *progress; /* progress shown here; NULL: none */
    ingest_heads_t *committed;   /* a resend (--wait saw commits stall): only events above these
                                  * committed seqs are published again, and neither the reject
                                  * file nor the ledger is written again; NULL: a replay */
} ingest_file_ctx_t;

typedef enum {
    INGEST_FILE_DONE,    /* every row published or rejected, and in the ledger */
    INGEST_FILE_REFUSED, /* not opened, or its header refused: nothing published */
    INGEST_FILE_FAILED,  /* stopped part way: read error, bus gone, reject file or ledger unwritable */
    INGEST_FILE_STOPPED, /* the service is stopping */
} ingest_file_status_t;

typedef struct {
    ingest_file_status_t status;  /* how it ended */
    char path[EVP_PATH_MAX];      /* the file's absolute path */
    char source[80];              /* old format: its file- source; archive: its first source */
    uint64_t rows;                /* records read, header excluded */
    uint64_t published;           /* events the publisher handed to the bus */
    uint64_t rejected;            /* records rejected */
    double seconds;               /* time spent */
    char reject_path[EVP_PATH_MAX]; /* the reject file, when rejected > 0 */
    char why[EVP_WHY_MAX];        /* what went wrong, when not DONE */
} ingest_file_result_t;

/* Replays path. The (source, partition) heads it published are added to
 * heads. res says how it went (also logged). */
void ingest_file_replay(const ingest_file_ctx_t *ctx, const char *path, ingest_heads_t *heads,
                        ingest_file_result_t *res);

const char *ingest_file_status_name(ingest_file_status_t status);

#endif
