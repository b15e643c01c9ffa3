/* The ledger of finished files (see ingest_ledger.h). */
#include "ingest_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/fsutil.h"
#include "evpipe/log.h"

#define LEDGER_HEADER "# path\tsize\tmtime\tsources\trows\tpublished\trejected\tfinished\n"

struct ingest_ledger_t {
    pthread_mutex_t lock;           /* guards everything below */
    char *path;                     /* STATE_DIR/ledger.tsv */
    ingest_ledger_entry_t *entries; /* finished files, in ledger order */
    size_t count;                   /* entries used */
    size_t cap;                     /* entries allocated */
    uint64_t read_to;               /* bytes of the ledger file read (whole lines) */
    ingest_ledger_entry_t active;   /* the file being published */
    bool has_active;                /* active is set */
};

/* ---- Lines ---- */

/* Appends text with tab, newline and backslash escaped. */
static void s_put_escaped(ev_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\t')
            ev_buf_puts(b, "\\t");
        else if (*s == '\n')
            ev_buf_puts(b, "\\n");
        else if (*s == '\r')
            ev_buf_puts(b, "\\r");
        else if (*s == '\\')
            ev_buf_puts(b, "\\\\");
        else
            ev_buf_putc(b, *s);
    }
}

/* Copies an escaped field into out; false if it does not fit. */
static bool s_unescape(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len) {
            char e = s[++i];
            c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

static void s_format_line(ev_buf_t *b, const ingest_ledger_entry_t *e)
{
    s_put_escaped(b, e->path);
    ev_buf_printf(b, "\t%" PRId64 "\t%" PRId64 ".%09" PRId64 "\t", e->size, e->mtime_ns / 1000000000,
                  e->mtime_ns % 1000000000);
    s_put_escaped(b, e->sources);
    ev_buf_printf(b, "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t", e->rows, e->published, e->rejected);
    time_t secs = (time_t)(e->finished_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    ev_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(e->finished_us % 1000000));
}

static bool s_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses one line (without its newline). */
static bool s_parse_line(const char *line, size_t len, ingest_ledger_entry_t *e)
{
    const char *f[8];
    size_t fl[8];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == '\t') {
            if (n == 8)
                return false;
            f[n] = line + start;
            fl[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n != 8)
        return false;
    memset(e, 0, sizeof *e);
    uint64_t size, secs, nsec = 0;
    const char *dot = memchr(f[2], '.', fl[2]);
    size_t slen = dot ? (size_t)(dot - f[2]) : fl[2];
    if (!s_unescape(f[0], fl[0], e->path, sizeof e->path) || e->path[0] != '/' ||
        !s_parse_u64(f[1], fl[1], &size) || !s_parse_u64(f[2], slen, &secs) ||
        (dot && !s_parse_u64(dot + 1, fl[2] - slen - 1, &nsec)) ||
        !s_unescape(f[3], fl[3], e->sources, sizeof e->sources) || !s_parse_u64(f[4], fl[4], &e->rows) ||
        !s_parse_u64(f[5], fl[5], &e->published) || !s_parse_u64(f[6], fl[6], &e->rejected))
        return false;
    e->size = (int64_t)size;
    e->mtime_ns = (int64_t)(secs * 1000000000 + nsec);
    /* The finished time is for people; a bad one costs nothing. */
    struct tm tm = {0};
    int us = 0;
    char when[40];
    snprintf(when, sizeof when, "%.*s", (int)(fl[7] < 39 ? fl[7] : 39), f[7]);
    if (sscanf(when, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &us) >= 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        e->finished_us = (int64_t)timegm(&tm) * 1000000 + us;
    }
    return true;
}

static void s_add(ingest_ledger_t *self, const ingest_ledger_entry_t *e)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        ingest_ledger_entry_t *n = realloc(self->entries, cap * sizeof *n);
        if (!n)
            abort();
        self->entries = n;
        self->cap = cap;
    }
    self->entries[self->count++] = *e;
}

/* Reads whole lines appended since the last read (by us or another
 * process). Lock held. */
static int s_catch_up(ingest_ledger_t *self, char *why, size_t whylen)
{
    struct stat st;
    if (stat(self->path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, whylen, "%s: %s", self->path, strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size <= self->read_to)
        return 0;
    int fd = open(self->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", self->path, strerror(errno));
        return -1;
    }
    ev_buf_t buf;
    ev_buf_init(&buf);
    char chunk[65536];
    off_t pos = (off_t)self->read_to;
    int rc = 0;
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof chunk, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "%s: %s", self->path, strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        pos += n;
        ev_buf_append(&buf, chunk, (size_t)n);
        /* Whole lines only: a line being appended is read next time. */
        size_t start = 0;
        for (size_t i = 0; i < buf.len; i++) {
            if (buf.data[i] != '\n')
                continue;
            const char *line = buf.data + start;
            size_t len = i - start;
            if (len && line[0] != '#') {
                ingest_ledger_entry_t e;
                if (s_parse_line(line, len, &e))
                    s_add(self, &e);
                else
                    evp_warn("ledger line ignored: not path, size, mtime, sources, rows, published, rejected, "
                             "finished",
                             "ledger=\"%s\" offset=%" PRIu64, self->path, self->read_to);
            }
            self->read_to += len + 1;
            start = i + 1;
        }
        ev_buf_consume(&buf, start);
    }
    ev_buf_free(&buf);
    close(fd);
    return rc;
}

/* ---- Life cycle ---- */

ingest_ledger_t *ingest_ledger_new(const char *state_dir, char *why, size_t whylen)
{
    ingest_ledger_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    if (asprintf(&self->path, "%s/ledger.tsv", state_dir) < 0) {
        self->path = NULL;
        snprintf(why, whylen, "out of memory");
        ingest_ledger_destroy(&self);
        return NULL;
    }
    if (s_catch_up(self, why, whylen) != 0) {
        ingest_ledger_destroy(&self);
        return NULL;
    }
    return self;
}

void ingest_ledger_destroy(ingest_ledger_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_ledger_t *self = *self_p;
    pthread_mutex_destroy(&self->lock);
    free(self->entries);
    free(self->path);
    free(self);
    *self_p = NULL;
}

/* ---- Queries ---- */

/* The latest entry for path, lock held; NULL if none. */
static const ingest_ledger_entry_t *s_find_path(ingest_ledger_t *self, const char *path)
{
    char why[EVP_WHY_MAX];
    if (s_catch_up(self, why, sizeof why) != 0)
        evp_warn("cannot read the ledger", "error=\"%s\"", why);
    for (size_t i = self->count; i-- > 0;)
        if (strcmp(self->entries[i].path, path) == 0)
            return &self->entries[i];
    return NULL;
}

bool ingest_ledger_done(ingest_ledger_t *self, const char *path, int64_t size, int64_t mtime_ns)
{
    pthread_mutex_lock(&self->lock);
    const ingest_ledger_entry_t *e = s_find_path(self, path);
    bool done = e && e->size == size && e->mtime_ns == mtime_ns;
    pthread_mutex_unlock(&self->lock);
    return done;
}

bool ingest_ledger_find_path(ingest_ledger_t *self, const char *path, ingest_ledger_entry_t *out)
{
    pthread_mutex_lock(&self->lock);
    const ingest_ledger_entry_t *e = s_find_path(self, path);
    if (e)
        *out = *e;
    pthread_mutex_unlock(&self->lock);
    return e != NULL;
}

bool ingest_ledger_sources_have(const char *sources, const char *source)
{
    size_t n = strlen(source);
    if (n == 0)
        return false;
    for (const char *p = sources; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, source, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

size_t ingest_ledger_find_source(ingest_ledger_t *self, const char *source, ingest_ledger_entry_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&self->lock);
    char why[EVP_WHY_MAX];
    if (s_catch_up(self, why, sizeof why) != 0)
        evp_warn("cannot read the ledger", "error=\"%s\"", why);
    if (self->has_active && n < max && ingest_ledger_sources_have(self->active.sources, source))
        out[n++] = self->active;
    for (size_t i = self->count; i-- > 0 && n < max;) {
        const ingest_ledger_entry_t *e = &self->entries[i];
        if (!ingest_ledger_sources_have(e->sources, source))
            continue;
        /* One entry per path: the latest says what the file is now. */
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(out[k].path, e->path) == 0;
        if (!dup)
            out[n++] = *e;
    }
    pthread_mutex_unlock(&self->lock);
    return n;
}

size_t ingest_ledger_count(ingest_ledger_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->count;
    pthread_mutex_unlock(&self->lock);
    return n;
}

const char *ingest_ledger_path(const ingest_ledger_t *self)
{
    return self->path;
}

/* ---- Changes ---- */

void ingest_ledger_set_active(ingest_ledger_t *self, const ingest_ledger_entry_t *e)
{
    pthread_mutex_lock(&self->lock);
    self->has_active = e != NULL;
    if (e)
        self->active = *e;
    pthread_mutex_unlock(&self->lock);
}

int ingest_ledger_append(ingest_ledger_t *self, const ingest_ledger_entry_t *e, char *why, size_t whylen)
{
    if (whylen)
        why[0] = '\0';
    ev_buf_t line;
    ev_buf_init(&line);
    s_format_line(&line, e);
    pthread_mutex_lock(&self->lock);
    int rc = -1;
    /* Read what others appended first, so read_to stays on a line start. */
    if (s_catch_up(self, why, whylen) != 0)
        goto out;
    int fd = open(self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", self->path, strerror(errno));
        goto out;
    }
    struct stat st;
    bool fresh = fstat(fd, &st) == 0 && st.st_size == 0;
    if (fresh && evp_write_all(fd, LEDGER_HEADER, strlen(LEDGER_HEADER), why, whylen) != 0) {
        close(fd);
        goto out;
    }
    if (evp_write_all(fd, line.data, line.len, why, whylen) != 0 || fsync(fd) != 0) {
        if (!*why)
            snprintf(why, whylen, "fsync %s: %s", self->path, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    if (fresh) {
        /* The ledger's name must be durable too. */
        char dir[EVP_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", self->path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            if (evp_fsync_dir(dir, why, whylen) != 0)
                evp_warn("cannot sync the state folder", "error=\"%s\"", why);
        }
    }
    /* Our line (and anything appended just before it) is read back now. */
    rc = s_catch_up(self, why, whylen);
out:
    pthread_mutex_unlock(&self->lock);
    ev_buf_free(&line);
    return rc;
}
