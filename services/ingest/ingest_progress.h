/* Progress of the file being ingested. On a terminal (stderr), one line
 * redrawn about four times a second: the file's name, a bar, percent of its
 * bytes, rows, rows/s and the time left. Elsewhere (a log file, a
 * container), a plain log line every 5 s with the same numbers. --progress
 * and --no-progress force one or the other.
 *
 * The text comes from pure functions (numbers in, text out) that tests call
 * directly; ingest_progress_t only decides when to draw. */
#ifndef INGEST_PROGRESS_H
#define INGEST_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- The text (pure functions) ---- */

/* Where one file stands. */
typedef struct {
    const char *name; /* the file's name as shown (a basename) */
    bool hashing;     /* the hash pass of an old-format file (no rows yet) */
    uint64_t rows;    /* records read so far */
    uint64_t bytes;   /* bytes read (or hashed) so far */
    uint64_t size;    /* the file's size; 0: unknown */
    double seconds;   /* since the file (or its hash pass) started */
} ingest_progress_view_t;

/* Percent of the bytes read, 0..100; -1 when the size is unknown. */
double ingest_progress_percent(const ingest_progress_view_t *v);
/* Rows per second so far; 0 before any time has passed. */
double ingest_progress_rate(const ingest_progress_view_t *v);
/* Seconds left at the byte rate so far; -1 when it cannot be told yet. */
double ingest_progress_eta(const ingest_progress_view_t *v);

/* The terminal line, at most width - 1 columns (ASCII only), e.g.
 *   big.csv [=========>          ]  45.2%  1,234,567 rows  310,245 rows/s  ETA 0:12
 * A long name is cut at its start ("...name.csv"); on a narrow terminal the
 * bar goes first, then the name. out holds cap bytes. */
void ingest_progress_format_line(const ingest_progress_view_t *v, int width, char *out, size_t cap);
/* The key=value pairs of the log line:
 *   file="big.csv" rows=1234567 rows_per_s=310245 bytes=52428800 size=115964116 percent=45.2 eta_s=12
 * (percent and eta_s are -1 when unknown; phase=hashing while hashing). */
void ingest_progress_format_kv(const ingest_progress_view_t *v, char *out, size_t cap);
/* A duration for people: "0:07", "12:34", "1:02:03"; "--:--" when s < 0. */
void ingest_progress_format_duration(double s, char *out, size_t cap);

/* ---- Drawing ---- */

typedef enum {
    INGEST_PROGRESS_AUTO, /* a bar when stderr is a terminal, log lines otherwise */
    INGEST_PROGRESS_BAR,  /* --progress: a bar even when stderr is not a terminal */
    INGEST_PROGRESS_LOG,  /* --no-progress: log lines only */
} ingest_progress_mode_t;

typedef struct ingest_progress_t ingest_progress_t;

/* Draws on stderr. NULL when out of memory. */
ingest_progress_t *ingest_progress_new(ingest_progress_mode_t mode);
/* Ends a line still drawn. Accepts NULL. */
void ingest_progress_destroy(ingest_progress_t **self_p);
/* Whether a bar is drawn (the mode resolved). */
bool ingest_progress_draws_bar(const ingest_progress_t *self);

/* A file begins (path: its name is shown), size bytes. */
void ingest_progress_start(ingest_progress_t *self, const char *path, uint64_t size);
/* The hash pass reached bytes (an ingest_reader_hashing_fn). */
void ingest_progress_hashing(void *self, uint64_t bytes, uint64_t size);
/* Where the file stands; draws when due (a bar: at once, then every
 * 250 ms; a log line: after 5 s, then every 5 s). Cheap: one clock read. */
void ingest_progress_update(ingest_progress_t *self, uint64_t rows, uint64_t bytes);
/* The file ended: the bar, if one was drawn, shows the final numbers and
 * the line is ended, so the next log line starts on its own line. */
void ingest_progress_finish(ingest_progress_t *self, uint64_t rows, uint64_t bytes);

#endif
