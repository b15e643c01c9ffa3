/* Watching a folder for CSV files to ingest. A file is handed out once it is
 * complete: its name is *.csv and does not start with '.' (nor end in .tmp
 * or .part: names writers use before renaming), and its size and mtime have
 * not changed for settle_ms. inotify (IN_CLOSE_WRITE, IN_MOVED_TO) makes a
 * new file seen at once; a full rescan every second catches the rest (and
 * the files already there at start). A file is handed out again only when
 * its size or mtime change. */
#ifndef INGEST_WATCH_H
#define INGEST_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ingest_watch_t ingest_watch_t;

/* Watches dir (which must exist). NULL with why. */
ingest_watch_t *ingest_watch_new(const char *dir, int settle_ms, char *why, size_t whylen);
void ingest_watch_destroy(ingest_watch_t **self_p);

/* Waits up to timeout_ms for a change in the folder or the next rescan,
 * then looks. Returns how many files are ready. */
int ingest_watch_poll(ingest_watch_t *self, int timeout_ms);
/* Looks at the folder as at now_ms (a monotonic clock in ms): new files,
 * changed files, settled files. Returns how many files are ready. */
int ingest_watch_scan(ingest_watch_t *self, int64_t now_ms);
/* The next ready file (full path, valid until the next call), or NULL. */
const char *ingest_watch_next(ingest_watch_t *self);

/* Whether a file name is one the watch would ever take. */
bool ingest_watch_wanted(const char *name);

#endif
