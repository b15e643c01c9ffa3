/* evpipe-ingest: replays CSV files onto the bus (once, or as they appear in
 * a watched folder), answers repair requests while it runs, and optionally
 * waits until the writers have committed what it published. Prints a
 * summary per run (one-shot) or per file (watch). */
#ifndef INGEST_H
#define INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "ingest_progress.h"

typedef struct {
    char *const *paths;    /* FILE|DIR arguments (a DIR: its *.csv, by name) */
    int npaths;            /* how many */
    bool force;            /* replay files the ledger already has */
    bool wait;             /* after publishing, wait until committed */
    double wait_timeout_s; /* < 0: wait without limit */
    double bus_timeout_s;  /* one-shot: how long to wait for the bus */
    ingest_progress_mode_t progress; /* a bar, log lines, or as stderr is */
} ingest_opts_t;

/* What a run (or, in watch mode, one file) did. */
typedef struct {
    uint64_t files;     /* files replayed to the end */
    uint64_t skipped;   /* files the ledger already had */
    uint64_t failed;    /* files refused or not finished */
    uint64_t rows;      /* records read */
    uint64_t published; /* events published */
    uint64_t rejected;  /* records rejected */
    double seconds;     /* time spent replaying */
    bool stopped;       /* interrupted before the end */
} ingest_summary_t;

typedef struct ingest_t ingest_t;

/* Creates the publisher, loads the ledger and serves METRICS_PORT. NULL
 * with why. */
ingest_t *ingest_new(const evp_config_t *cfg, const ingest_opts_t *opts, char *why, size_t whylen);
void ingest_destroy(ingest_t **self_p);

/* Runs until done (one-shot) or stopped (watch). Returns the exit code:
 * 0; 1 when a file could not be read, the bus did not answer, or it was
 * interrupted; 2 when --wait-timeout passed before everything was committed. */
int ingest_run(ingest_t *self);

/* The summary as one human line, "ingest: 3 files, 120000 rows read, ...". */
void ingest_summary_format(const ingest_summary_t *s, const char *reject_dir, char *out, size_t cap);

/* The files an argument names: the file, or a folder's *.csv files sorted by
 * name. Returns how many paths were added to *list (malloc'd strings, the
 * array grown as needed), or -1 with why. */
int ingest_expand(const char *arg, char ***list, size_t *count, size_t *cap, char *why, size_t whylen);

#endif
