/* Progress of the file being ingested (see ingest_progress.h). */
#include "ingest_progress.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/log.h"

#define S_BAR_EVERY_NS 250000000LL   /* the bar is redrawn this often */
#define S_LOG_EVERY_NS 5000000000LL  /* a log line this often */
#define S_NAME_MAX 256               /* bytes of the name kept */
#define S_BAR_MIN 10                 /* a narrower bar is left out */
#define S_NAME_SHOWN_MAX 40          /* columns the name takes at most */
#define S_WIDTH_DEFAULT 80           /* when the terminal does not say */
#define S_ERASE "\r\033[K"           /* back to column 0, erase the line */

/* ---- The text ---- */

double ingest_progress_percent(const ingest_progress_view_t *v)
{
    if (v->size == 0)
        return -1;
    double p = 100.0 * (double)v->bytes / (double)v->size;
    return p > 100 ? 100 : p;
}

double ingest_progress_rate(const ingest_progress_view_t *v)
{
    return v->seconds > 0 ? (double)v->rows / v->seconds : 0;
}

double ingest_progress_eta(const ingest_progress_view_t *v)
{
    if (v->size == 0 || v->bytes == 0 || v->seconds <= 0)
        return -1;
    if (v->bytes >= v->size)
        return 0;
    return v->seconds * (double)(v->size - v->bytes) / (double)v->bytes;
}

void ingest_progress_format_duration(double s, char *out, size_t cap)
{
    if (s < 0 || s != s) {
        snprintf(out, cap, "--:--");
        return;
    }
    if (s > 359999999.0) /* 99999 hours: enough */
        s = 359999999.0;
    unsigned long long t = (unsigned long long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%llu:%02llu:%02llu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%llu:%02llu", t / 60, t % 60);
}

/* n with a comma every three digits: 1,234,567. */
static void s_grouped(uint64_t n, char *out, size_t cap)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char text[32];
    int o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            text[o++] = ',';
        text[o++] = digits[i];
    }
    text[o] = '\0';
    snprintf(out, cap, "%s", text);
}

/* The name as shown: printable ASCII (anything else becomes '?'), at most
 * max columns, a long one cut at its start ("...end.csv"). */
static void s_shown_name(const char *name, size_t max, char *out, size_t cap)
{
    size_t len = strlen(name);
    size_t from = 0;
    const char *dots = "";
    if (len > max && max > 3) {
        from = len - (max - 3);
        dots = "...";
    } else if (len > max) {
        from = len - max;
    }
    size_t o = (size_t)snprintf(out, cap, "%s", dots);
    for (size_t i = from; i < len && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o < cap ? o : cap - 1] = '\0';
}

/* The numbers after the bar: "  45.2%  1,234,567 rows  310,245 rows/s  ETA 0:12". */
static void s_numbers(const ingest_progress_view_t *v, char *out, size_t cap)
{
    double pct = ingest_progress_percent(v);
    char pct_text[16], eta[24];
    if (pct < 0)
        snprintf(pct_text, sizeof pct_text, "    ?%%");
    else
        snprintf(pct_text, sizeof pct_text, "%5.1f%%", pct);
    ingest_progress_format_duration(ingest_progress_eta(v), eta, sizeof eta);
    if (v->hashing) {
        snprintf(out, cap, " %s  hashing  ETA %s", pct_text, eta);
        return;
    }
    char rows[32], rate[32];
    s_grouped(v->rows, rows, sizeof rows);
    s_grouped((uint64_t)(ingest_progress_rate(v) + 0.5), rate, sizeof rate);
    snprintf(out, cap, " %s  %s rows  %s rows/s  ETA %s", pct_text, rows, rate, eta);
}

void ingest_progress_format_line(const ingest_progress_view_t *v, int width, char *out, size_t cap)
{
    if (cap == 0)
        return;
    /* The last column is left free: writing there wraps on some terminals. */
    size_t room = width > 1 ? (size_t)width - 1 : 0;
    char numbers[128];
    s_numbers(v, numbers, sizeof numbers);
    size_t nlen = strlen(numbers);
    char name[S_NAME_SHOWN_MAX + 1];
    s_shown_name(v->name ? v->name : "", S_NAME_SHOWN_MAX, name, sizeof name);
    size_t name_len = strlen(name);

    ev_buf_t b;
    ev_buf_init(&b);
    /* name + " [" + bar + "]" + numbers, the bar as wide as there is room. */
    if (name_len + 3 + S_BAR_MIN + nlen <= room) {
        size_t bar = room - name_len - 3 - nlen;
        if (bar > 50)
            bar = 50;
        double pct = ingest_progress_percent(v);
        size_t filled = pct < 0 ? 0 : (size_t)(pct / 100.0 * (double)bar + 1e-9);
        ev_buf_printf(&b, "%s [", name);
        for (size_t i = 0; i < bar; i++)
            ev_buf_putc(&b, i < filled ? '=' : (i == filled && pct >= 0 ? '>' : ' '));
        ev_buf_printf(&b, "]%s", numbers);
    } else if (name_len + nlen <= room) {
        ev_buf_printf(&b, "%s%s", name, numbers);
    } else {
        /* The numbers alone, cut to the room (without their leading space). */
        ev_buf_printf(&b, "%.*s", (int)(room < nlen - 1 ? room : nlen - 1), numbers + 1);
    }
    snprintf(out, cap, "%s", b.data ? b.data : "");
    ev_buf_free(&b);
}

void ingest_progress_format_kv(const ingest_progress_view_t *v, char *out, size_t cap)
{
    char name[S_NAME_MAX * 4];
    const char *n = v->name ? v->name : "";
    evp_log_text(name, sizeof name, n, strlen(n));
    double pct = ingest_progress_percent(v);
    double eta = ingest_progress_eta(v);
    snprintf(out, cap,
             "file=\"%s\"%s rows=%llu rows_per_s=%.0f bytes=%llu size=%llu percent=%.1f eta_s=%.0f", name,
             v->hashing ? " phase=hashing" : "", (unsigned long long)v->rows, ingest_progress_rate(v),
             (unsigned long long)v->bytes, (unsigned long long)v->size, pct < 0 ? -1.0 : pct,
             eta < 0 ? -1.0 : eta);
}

/* ---- Drawing ---- */

struct ingest_progress_t {
    bool bar;              /* draw a bar (else log lines) */
    char path[S_NAME_MAX * 4]; /* the current file's path (log lines name it) */
    char name[S_NAME_MAX]; /* its basename (the bar shows it) */
    uint64_t size;         /* its size */
    bool hashing;          /* in its hash pass */
    int64_t started_ns;    /* when the file (or its phase) started */
    int64_t next_ns;       /* when the next draw is due */
    bool drawn;            /* a bar line is on the terminal, not ended */
    bool active;           /* between start and finish */
};

/* The terminal's width, or S_WIDTH_DEFAULT. */
static int s_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    int c = cols ? atoi(cols) : 0;
    return c > 0 ? c : S_WIDTH_DEFAULT;
}

ingest_progress_t *ingest_progress_new(ingest_progress_mode_t mode)
{
    ingest_progress_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->bar = mode == INGEST_PROGRESS_BAR || (mode == INGEST_PROGRESS_AUTO && isatty(STDERR_FILENO));
    /* Log lines erase the bar before they are written. */
    if (self->bar)
        evp_log_erase_line(true);
    return self;
}

static void s_write(const char *text, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, text, len);
        if (w <= 0)
            return; /* the terminal is gone: progress is not worth an error */
        text += w;
        len -= (size_t)w;
    }
}

/* Draws the bar (end: and ends the line) or writes the log line. */
static void s_draw(ingest_progress_t *self, uint64_t rows, uint64_t bytes, int64_t now, bool end)
{
    ingest_progress_view_t v = {self->bar ? self->name : self->path, self->hashing, rows, bytes, self->size,
                                (double)(now - self->started_ns) / 1e9};
    if (!self->bar) {
        char kv[1400];
        ingest_progress_format_kv(&v, kv, sizeof kv);
        evp_info("progress", "%s", kv);
        return;
    }
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof line, "%s", S_ERASE);
    ingest_progress_format_line(&v, s_width(), line + n, sizeof line - n - 1);
    n = strlen(line);
    if (end)
        line[n++] = '\n';
    s_write(line, n);
    self->drawn = !end;
}

void ingest_progress_destroy(ingest_progress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_progress_t *self = *self_p;
    if (self->drawn)
        s_write("\n", 1);
    if (self->bar)
        evp_log_erase_line(false);
    free(self);
    *self_p = NULL;
}

bool ingest_progress_draws_bar(const ingest_progress_t *self)
{
    return self && self->bar;
}

void ingest_progress_start(ingest_progress_t *self, const char *path, uint64_t size)
{
    if (!self)
        return;
    snprintf(self->path, sizeof self->path, "%s", path);
    const char *slash = strrchr(path, '/');
    snprintf(self->name, sizeof self->name, "%s", slash ? slash + 1 : path);
    self->size = size;
    self->hashing = false;
    self->started_ns = zclock_usecs() * 1000;
    /* The bar shows at once; a log line only for a file that takes a while. */
    self->next_ns = self->started_ns + (self->bar ? 0 : S_LOG_EVERY_NS);
    self->active = true;
}

void ingest_progress_hashing(void *arg, uint64_t bytes, uint64_t size)
{
    ingest_progress_t *self = arg;
    if (!self || !self->active)
        return;
    if (!self->hashing) {
        self->hashing = true;
        self->started_ns = zclock_usecs() * 1000;
    }
    self->size = size;
    int64_t now = zclock_usecs() * 1000;
    if (now < self->next_ns)
        return;
    self->next_ns = now + (self->bar ? S_BAR_EVERY_NS : S_LOG_EVERY_NS);
    s_draw(self, 0, bytes, now, false);
}

void ingest_progress_update(ingest_progress_t *self, uint64_t rows, uint64_t bytes)
{
    if (!self || !self->active)
        return;
    int64_t now = zclock_usecs() * 1000;
    if (self->hashing) {
        /* The rows start now: rates and time left count from here, and a
         * bar shows the new phase at once. */
        self->hashing = false;
        self->started_ns = now;
        if (self->bar)
            self->next_ns = now;
    }
    if (now < self->next_ns)
        return;
    self->next_ns = now + (self->bar ? S_BAR_EVERY_NS : S_LOG_EVERY_NS);
    s_draw(self, rows, bytes, now, false);
}

void ingest_progress_finish(ingest_progress_t *self, uint64_t rows, uint64_t bytes)
{
    if (!self || !self->active)
        return;
    self->active = false;
    if (self->bar && self->drawn) {
        self->hashing = false;
        s_draw(self, rows, bytes, zclock_usecs() * 1000, true);
    }
}
