/* Logging: one line per record on stderr,
 *   2026-11-22T01:54:13.123456Z level=info service=writer msg="batch committed" rows=5000
 * with key=value pairs after the message (logfmt). Text from outside goes
 * into a quoted value through evp_log_text; lines never break: any newline
 * left in a record becomes a space. LOG_LEVEL picks the least level shown. */
#ifndef EVPIPE_LOG_H
#define EVPIPE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "evpipe/config.h"

void evp_log_init(const char *service, evp_log_level_t level);
bool evp_log_enabled(evp_log_level_t level);
/* msg is quoted; kv is a printf format of "key=value key2=value2" (may be ""). */
void evp_log(evp_log_level_t level, const char *msg, const char *kv, ...) __attribute__((format(printf, 3, 4)));

/* on: every record starts with "\r" and ESC[K, erasing the line a progress
 * display keeps redrawing on the terminal (evpipe-ingest's bar), so a log
 * line never lands after it. Only for a stderr that is a terminal. */
void evp_log_erase_line(bool on);

/* Copies text that came from outside (an event, a server message) into dst
 * escaped the logfmt way, to sit inside a quoted value: \" \\ \n \r \t, any
 * other control character (and DEL) as \u00XX, as go-logfmt (Loki) and JSON
 * read them back; other bytes as they are. Cut to at most dstlen-1 bytes,
 * never inside an escape or a UTF-8 character. Returns dst. */
char *evp_log_text(char *dst, size_t dstlen, const char *src, size_t len);

/* A budget for log lines about peer input (bad messages, forged claims,
 * refused requests), so a peer cannot flood the log: at most `burst` lines
 * per `window_ms`. Zero-initialised it allows 20 lines a second. One
 * thread uses a budget. */
typedef struct {
    int burst;            /* lines allowed per window (0: 20) */
    int window_ms;        /* the window (0: 1000) */
    int64_t window_start; /* monotonic ms the current window began */
    int used;             /* lines logged in it */
    uint64_t suppressed;  /* lines not logged since the last one that was */
} evp_log_limit_t;
/* True when a line may be logged now; then *suppressed gets how many were
 * held back before it (to log with it) and starts again. suppressed NULL:
 * that count, when not 0, is logged on a line of its own instead. */
bool evp_log_allow(evp_log_limit_t *l, uint64_t *suppressed);

#define evp_debug(msg, ...) evp_log(EVP_LOG_DEBUG, msg, __VA_ARGS__)
#define evp_info(msg, ...) evp_log(EVP_LOG_INFO, msg, __VA_ARGS__)
#define evp_warn(msg, ...) evp_log(EVP_LOG_WARN, msg, __VA_ARGS__)
#define evp_error(msg, ...) evp_log(EVP_LOG_ERROR, msg, __VA_ARGS__)

#endif
