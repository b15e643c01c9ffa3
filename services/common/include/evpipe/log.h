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

/* A bound on log lines about what peers send (bad messages, forged
 * claims, refused requests): at most burst lines a second; the lines held
 * back are counted and reported in one line when the next second starts.
 * Zero-initialise, then set burst (0: 20). One thread uses a limit. */
typedef struct {
    unsigned burst;                /* lines a second */
    int64_t window_ms;             /* start of the current second (monotonic) */
    unsigned count;                /* lines logged in it */
    unsigned long long suppressed; /* lines held back in it */
} evp_log_limit_t;

/* True when one more line may be logged now. */
bool evp_log_limit_allow(evp_log_limit_t *lim);

#define evp_debug(msg, ...) evp_log(EVP_LOG_DEBUG, msg, __VA_ARGS__)
#define evp_info(msg, ...) evp_log(EVP_LOG_INFO, msg, __VA_ARGS__)
#define evp_warn(msg, ...) evp_log(EVP_LOG_WARN, msg, __VA_ARGS__)
#define evp_error(msg, ...) evp_log(EVP_LOG_ERROR, msg, __VA_ARGS__)

#endif
