/* The generator's archive, its write-ahead log: every event is appended as
 * a CSV row (EV_CSV_ARCHIVE layout) to ARCHIVE_DIR/events_YYYYMMDD_HHMMSS.csv
 * before it is published. The directory is locked by one generator; it
 * holds the generator's id (.source-id). Each start publishes under a new
 * source, the id and an epoch, with seqs from 1, so nothing that happens to
 * the files can make a seq be given out twice. On start a torn last line
 * left by a crash is cut off. */
#ifndef GEN_ARCHIVE_H
#define GEN_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "evpipe/config.h"
#include "evpipe/event.h"

/* "events_20261122_015413.csv" and its NUL. */
#define GEN_ARCHIVE_NAME_MAX 32

typedef struct gen_archive_t gen_archive_t;

/* Locks cfg->archive_dir (ARCHIVE_DIR/.lock), reads or creates the source
 * id, and cuts torn last lines off the archive files. Uses
 * ARCHIVE_ROTATE_SECONDS and ARCHIVE_SYNC_MS. NULL with why (one line that
 * names ARCHIVE_DIR) when the directory is locked or unusable. */
gen_archive_t *gen_archive_new(const evp_config_t *cfg, char *why, size_t whylen);
/* Syncs and closes the current file and releases the lock. */
void gen_archive_destroy(gen_archive_t **self_p);

/* This start's source: "gen-", the 16 hex digits of .source-id, "-" and
 * 16 hex digits of epoch (the start's UTC second, 32 random bits). */
ev_str_t gen_archive_source(const gen_archive_t *self);

/* Appends nrows complete CSV rows (len bytes) with one write, opening a new
 * file first at the first write and when ARCHIVE_ROTATE_SECONDS have passed;
 * syncs when ARCHIVE_SYNC_MS have passed. Returns 0, or -1 with why (the
 * file is left without a partial row). */
int gen_archive_write(gen_archive_t *self, const void *rows, size_t len, size_t nrows, char *why, size_t whylen);
/* Syncs the current file if ARCHIVE_SYNC_MS have passed since the last
 * sync; call while idle. Returns 0, or -1 with why. */
int gen_archive_tick(gen_archive_t *self, char *why, size_t whylen);
/* Syncs the current file now. Returns 0, or -1 with why. */
int gen_archive_sync(gen_archive_t *self, char *why, size_t whylen);
/* Closes the current file: the next write opens a new one. */
int gen_archive_rotate(gen_archive_t *self, char *why, size_t whylen);

/* The current file's path ("" before the first write). */
const char *gen_archive_path(const gen_archive_t *self);
/* Files opened, rows written and archive files synced (fdatasync, each
 * ARCHIVE_SYNC_MS and at rotation or the end) since gen_archive_new. */
uint64_t gen_archive_files_opened(const gen_archive_t *self);
uint64_t gen_archive_rows(const gen_archive_t *self);
uint64_t gen_archive_syncs(const gen_archive_t *self);

/* Writes the archive file name for the UTC second t. */
void gen_archive_file_name(char out[GEN_ARCHIVE_NAME_MAX], time_t t);
/* True when name is an archive file name (events_YYYYMMDD_HHMMSS.csv). */
bool gen_archive_is_file_name(const char *name);

#endif
