/* The reject file of one ingested file: STATE_DIR/rejects/<basename>.rejects.csv
 * with the columns file,line,reason,detail,raw, one line per refused record.
 * Created on the first reject (replacing the one of an earlier run), written
 * in large buffered pieces, synced when closed. */
#ifndef INGEST_REJECTS_H
#define INGEST_REJECTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ingest_rejects_t ingest_rejects_t;

/* Nothing is created yet. file is the ingested file's path as named (it goes
 * into the file column; its basename names the reject file). */
ingest_rejects_t *ingest_rejects_new(const char *state_dir, const char *file);
void ingest_rejects_destroy(ingest_rejects_t **self_p);

/* Appends one reject. Returns 0, or -1 with why (the reject file cannot be
 * written). */
int ingest_rejects_add(ingest_rejects_t *self, uint64_t line, const char *reason, const char *detail,
                       const char *raw, size_t raw_len, char *why, size_t whylen);
/* Writes what is buffered and syncs. Returns 0 or -1 with why. */
int ingest_rejects_close(ingest_rejects_t *self, char *why, size_t whylen);

/* The reject file's path (whether or not it exists). */
const char *ingest_rejects_path(const ingest_rejects_t *self);
/* The folder of reject files. */
const char *ingest_rejects_dir(const ingest_rejects_t *self);
uint64_t ingest_rejects_count(const ingest_rejects_t *self);

#endif
