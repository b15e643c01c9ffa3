/* Asking PostgreSQL what the writers have committed: for every (source,
 * partition) ingest published, whether checkpoints.seq has reached the last
 * seq published. Used by --wait, and in watch mode to stop heartbeating
 * sources that are fully committed. Connects on first use and again after a
 * lost connection. */
#ifndef INGEST_COMMIT_H
#define INGEST_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/buf.h"
#include "evpipe/config.h"
#include "ingest_heads.h"

typedef struct ingest_commit_t ingest_commit_t;

ingest_commit_t *ingest_commit_new(const evp_config_t *cfg);
void ingest_commit_destroy(ingest_commit_t **self_p);

/* Events published and not yet committed: the sum over the heads of the last
 * seq minus the checkpoint (when below). per_source (ingest_heads_count
 * entries, or NULL) gets each source's part. report (or NULL) gets one line
 * per (source, partition) still short. -1 with why when the database cannot
 * be asked. */
int64_t ingest_commit_missing(ingest_commit_t *self, const ingest_heads_t *heads, int64_t *per_source,
                              ev_buf_t *report, char *why, size_t whylen);

/* The checkpoints of every source of heads, noted into committed (the
 * highest committed seq per (source, partition)). 0, or -1 with why. */
int ingest_commit_read(ingest_commit_t *self, const ingest_heads_t *heads, ingest_heads_t *committed, char *why,
                       size_t whylen);

/* How often --wait asks: every INGEST_COMMIT_ASK_MS while much is missing,
 * every INGEST_COMMIT_ASK_NEAR_MS once the rate at which missing has fallen
 * says the rest will be committed within two of the former (so --wait
 * returns soon after the last commit, without asking often all along). */
#define INGEST_COMMIT_ASK_MS 100
#define INGEST_COMMIT_ASK_NEAR_MS 10

typedef struct {
    bool started;          /* missing was known once */
    int64_t first_ms;      /* when */
    int64_t first_missing; /* missing then */
} ingest_commit_pace_t;

/* Milliseconds until the next question, given missing now (-1: unknown). */
int ingest_commit_pace(ingest_commit_pace_t *pace, int64_t now_ms, int64_t missing);

#endif
