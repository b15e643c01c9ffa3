/* Logging (see log.h). */
#include "evpipe/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

static char s_service[32] = "evpipe";
static evp_log_level_t s_level = EVP_LOG_INFO;
static const char *const s_names[] = {"debug", "info", "warn", "error"};
static atomic_bool s_erase; /* records start by erasing the terminal line */

/* What starts a record when s_erase is on: carriage return, erase line. */
#define S_ERASE "\r\033[K"

void evp_log_init(const char *service, evp_log_level_t level)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    s_level = level;
}

void evp_log_erase_line(bool on)
{
    atomic_store(&s_erase, on);
}

bool evp_log_enabled(evp_log_level_t level)
{
    return level >= s_level;
}

/* The escape for byte c inside a quoted value, as go-logfmt (Loki) and
 * JSON write it, into esc; returns its length (1 when c stands for itself). */
static size_t s_escape(unsigned char c, char esc[6])
{
    static const char hex[] = "0123456789abcdef";
    esc[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        esc[1] = (char)c;
        return 2;
    case '\n':
        esc[1] = 'n';
        return 2;
    case '\r':
        esc[1] = 'r';
        return 2;
    case '\t':
        esc[1] = 't';
        return 2;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 0xf];
        return 6;
    }
    esc[0] = (char)c;
    return 1;
}

char *evp_log_text(char *dst, size_t dstlen, const char *src, size_t len)
{
    if (dstlen == 0)
        return dst;
    size_t o = 0, i = 0;
    for (; i < len; i++) {
        char esc[6];
        size_t n = s_escape((unsigned char)src[i], esc);
        if (o + n > dstlen - 1)
            break;
        memcpy(dst + o, esc, n);
        o += n;
    }
    /* Cut inside a UTF-8 character: drop its first bytes too. */
    if (i < len && ((unsigned char)src[i] & 0xc0) == 0x80) {
        while (o > 0 && ((unsigned char)dst[o - 1] & 0xc0) == 0x80)
            o--;
        if (o > 0 && (unsigned char)dst[o - 1] >= 0xc0)
            o--;
    }
    dst[o] = '\0';
    return dst;
}

bool evp_log_allow(evp_log_limit_t *l, uint64_t *suppressed)
{
    int64_t now = zclock_mono();
    int window = l->window_ms > 0 ? l->window_ms : 1000, burst = l->burst > 0 ? l->burst : 20;
    if (l->window_start == 0 || now - l->window_start >= window) {
        l->window_start = now;
        l->used = 0;
    }
    if (l->used >= burst) {
        l->suppressed++;
        return false;
    }
    l->used++;
    if (suppressed)
        *suppressed = l->suppressed;
    else if (l->suppressed)
        evp_warn("log lines about peer input suppressed", "count=%llu", (unsigned long long)l->suppressed);
    l->suppressed = 0;
    return true;
}

void evp_log(evp_log_level_t level, const char *msg, const char *kv, ...)
{
    if (level < s_level)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ level=%s service=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000, s_names[level], s_service, msg);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line - 2 && kv && *kv) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, kv);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, kv, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    /* One write per record, so lines of concurrent writers do not mix. */
    ssize_t w;
    if (atomic_load_explicit(&s_erase, memory_order_relaxed)) {
        char erased[sizeof S_ERASE - 1 + sizeof line];
        memcpy(erased, S_ERASE, sizeof S_ERASE - 1);
        memcpy(erased + sizeof S_ERASE - 1, line, (size_t)n);
        w = write(STDERR_FILENO, erased, sizeof S_ERASE - 1 + (size_t)n);
    } else {
        w = write(STDERR_FILENO, line, (size_t)n);
    }
    (void)w;
}

