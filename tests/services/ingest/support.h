/* Helpers shared by the ingest tests: fixture paths, temporary folders,
 * whole-file reads and writes, and reading a file through ingest_reader. */
#ifndef INGEST_TEST_SUPPORT_H
#define INGEST_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ingest_reader.h"

/* The path of a fixture (tests/fixtures/ingest/<name>); static storage,
 * four in rotation. */
const char *fx(const char *name);
/* A new temporary folder (malloc'd path); rm_rf removes it. */
char *tmp_dir(void);
void rm_rf(const char *dir);
/* Each test's own temporary folder, for a suite that sets
 * .init = test_dir_new, .fini = test_dir_remove. */
extern char *test_dir;
void test_dir_new(void);
void test_dir_remove(void);
/* Whole files. */
char *slurp(const char *path, size_t *len);
void spit(const char *path, const void *data, size_t len);
void copy_file(const char *from, const char *to);
/* Sets a file's mtime (seconds since the epoch). */
void set_mtime(const char *path, int64_t secs);

/* One row of a file as read by ingest_reader, copied out. */
typedef struct {
    ev_reject_t code;               /* EV_OK or why it was refused */
    uint64_t line;                  /* where the record starts */
    char source[INGEST_SOURCE_MAX]; /* identity (good rows only) */
    int32_t partition;
    int64_t seq;
    int32_t user_id;                /* a few payload fields */
    int32_t product_id;
    int64_t price;                  /* cents */
    int64_t time;                   /* us since the epoch */
    char product_name[160];
} trow_t;

/* Reads every record of path (cr_assert on failure); returns how many were
 * filled into rows (at most max). */
size_t read_rows(const char *path, int partitions, size_t max_line, trow_t *rows, size_t max);

#endif
