/* The generator's archive, the write-ahead log (see gen_archive.h). */
#include "gen_archive.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/csv.h"
#include "evpipe/fsutil.h"
#include "evpipe/log.h"

#define S_SOURCE_PREFIX "gen-"
#define S_SOURCE_HEX 16
#define S_SOURCE_LEN (sizeof S_SOURCE_PREFIX - 1 + S_SOURCE_HEX)
/* "gen-" + 16 hex digits (.source-id) + "-" + 16 hex digits (the start's epoch) */
#define S_STREAM_SOURCE_LEN (S_SOURCE_LEN + 1 + 16)

struct gen_archive_t {
    char dir[EVP_PATH_MAX];          /* ARCHIVE_DIR */
    int lock_fd;                     /* holds the flock on ARCHIVE_DIR/.lock */
    char source[S_STREAM_SOURCE_LEN + 1]; /* this start's source: .source-id, "-", the epoch */
    int rotate_ms;                   /* ARCHIVE_ROTATE_SECONDS, in ms */
    int sync_ms;                     /* ARCHIVE_SYNC_MS */
    char newest[GEN_ARCHIVE_NAME_MAX]; /* the newest file name in the directory ("" if none) */
    int fd;                          /* the current file, -1 before the first write */
    char path[EVP_PATH_MAX + GEN_ARCHIVE_NAME_MAX]; /* its path */
    uint64_t size;                   /* its size: the end of the last whole row */
    int64_t opened_ms;               /* monotonic ms when it was opened */
    int64_t synced_ms;               /* monotonic ms of the last sync */
    bool dirty;                      /* rows written since the last sync */
    uint64_t files;                  /* files opened */
    uint64_t rows;                   /* rows written */
    uint64_t syncs;                  /* fdatasyncs of archive files */
};

/* ---- File names ---- */

void gen_archive_file_name(char out[GEN_ARCHIVE_NAME_MAX], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, GEN_ARCHIVE_NAME_MAX, "events_%Y%m%d_%H%M%S.csv", &tm);
}

bool gen_archive_is_file_name(const char *name)
{
    static const char pattern[] = "events_DDDDDDDD_DDDDDD.csv";
    if (strlen(name) != sizeof pattern - 1)
        return false;
    for (size_t i = 0; pattern[i]; i++) {
        if (pattern[i] == 'D' ? (name[i] < '0' || name[i] > '9') : name[i] != pattern[i])
            return false;
    }
    return true;
}

/* The UTC second an archive file name stands for. */
static time_t s_name_time(const char *name)
{
    struct tm tm = {0};
    if (sscanf(name, "events_%4d%2d%2d_%2d%2d%2d.csv", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The archive file names in dir, oldest first (by name). */
static int s_list(const char *dir, char (**names)[GEN_ARCHIVE_NAME_MAX], size_t *count, char *why,
                  size_t whylen)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot be read: %s", dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!gen_archive_is_file_name(e->d_name))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            char(*grown)[GEN_ARCHIVE_NAME_MAX] = realloc(*names, cap * sizeof **names);
            if (!grown)
                abort();
            *names = grown;
        }
        memcpy((*names)[(*count)++], e->d_name, strlen(e->d_name) + 1); /* 26 bytes, checked */
    }
    closedir(d);
    if (*count)
        qsort(*names, *count, sizeof **names, s_cmp_names);
    return 0;
}

/* ---- Opening: lock, source id, torn lines ---- */

static bool s_valid_source(const char *s, size_t len)
{
    if (len != S_SOURCE_LEN || memcmp(s, S_SOURCE_PREFIX, sizeof S_SOURCE_PREFIX - 1) != 0)
        return false;
    for (size_t i = sizeof S_SOURCE_PREFIX - 1; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Reads ARCHIVE_DIR/.source-id, or makes it once (atomically) when missing. */
static int s_source_id(gen_archive_t *self, char *why, size_t whylen)
{
    char path[EVP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/.source-id", self->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) {
            snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot read .source-id: %s", self->dir, strerror(errno));
            return -1;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        if (!s_valid_source(buf, (size_t)n)) {
            snprintf(why, whylen,
                     "ARCHIVE_DIR=%s: .source-id holds \"%.40s\", not gen- and 16 hex digits (remove it only "
                     "if the archive is to start a new source)",
                     self->dir, buf);
            return -1;
        }
        memcpy(self->source, buf, (size_t)n + 1);
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot open .source-id: %s", self->dir, strerror(errno));
        return -1;
    }
    uint8_t rnd[S_SOURCE_HEX / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(why, whylen, "no random bytes for a source id: %s", strerror(errno));
        return -1;
    }
    char *o = self->source + snprintf(self->source, sizeof self->source, "%s", S_SOURCE_PREFIX);
    for (size_t i = 0; i < sizeof rnd; i++)
        o += sprintf(o, "%02x", rnd[i]);
    char line[S_SOURCE_LEN + 2];
    int n = snprintf(line, sizeof line, "%s\n", self->source);
    char w[EVP_WHY_MAX] = "";
    if (evp_write_file_atomic(path, line, (size_t)n, w, sizeof w) != 0 ||
        evp_fsync_dir(self->dir, w, sizeof w) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot write .source-id: %s", self->dir, w);
        return -1;
    }
    evp_info("new source id", "source=%s file=\"%s\"", self->source, path);
    return 0;
}

/* Appends this start's epoch to the source id: the start's UTC second and
 * 32 random bits, in hex. Every start is a new source whose seqs begin at
 * 1, so a seq is never given out twice under one source, whatever happened
 * to the archive (files deleted, directory lost, copied to a second host,
 * the last lines lost in a machine crash). */
static int s_epoch(gen_archive_t *self, char *why, size_t whylen)
{
    uint32_t rnd;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(why, whylen, "no random bytes for a source epoch: %s", strerror(errno));
        return -1;
    }
    size_t n = strlen(self->source);
    snprintf(self->source + n, sizeof self->source - n, "-%08x%08x", (uint32_t)time(NULL), rnd);
    return 0;
}

/* Cuts a file back to its last complete line (a crash can leave half a row)
 * and removes a file left with no complete line at all. */
static int s_repair_tail(gen_archive_t *self, const char *name, char *why, size_t whylen)
{
    char path[EVP_PATH_MAX + GEN_ARCHIVE_NAME_MAX];
    snprintf(path, sizeof path, "%s/%s", self->dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot open %s: %s", self->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    off_t size = st.st_size, keep = 0;
    char last = '\n';
    if (size > 0 && pread(fd, &last, 1, size - 1) != 1)
        last = 0;
    if (size > 0 && last == '\n') {
        close(fd);
        return 0;
    }
    /* Look backwards for the last line end. */
    char buf[64 * 1024];
    for (off_t end = size; end > 0 && keep == 0;) {
        off_t start = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - start), start);
        if (n != end - start) {
            snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot read %s: %s", self->dir, name,
                     n < 0 ? strerror(errno) : "short read");
            close(fd);
            return -1;
        }
        for (ssize_t i = n - 1; i >= 0; i--)
            if (buf[i] == '\n') {
                keep = start + i + 1;
                break;
            }
        end = start;
    }
    if (keep == 0) {
        close(fd);
        if (unlink(path) != 0 || evp_fsync_dir(self->dir, why, whylen) != 0) {
            snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot remove the empty %s: %s", self->dir, name,
                     strerror(errno));
            return -1;
        }
        evp_warn("archive file without a complete line removed", "file=\"%s\" bytes=%lld", path,
                 (long long)size);
        return 1;
    }
    if (ftruncate(fd, keep) != 0 || fdatasync(fd) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot truncate %s: %s", self->dir, name, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    evp_warn("archive torn last line truncated", "file=\"%s\" size=%lld truncated_to=%lld dropped_bytes=%lld",
             path, (long long)size, (long long)keep, (long long)(size - keep));
    return 0;
}

gen_archive_t *gen_archive_new(const evp_config_t *cfg, char *why, size_t whylen)
{
    gen_archive_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->fd = -1;
    self->lock_fd = -1;
    snprintf(self->dir, sizeof self->dir, "%s", cfg->archive_dir);
    self->rotate_ms = cfg->archive_rotate_seconds * 1000;
    self->sync_ms = cfg->archive_sync_ms;

    char w[EVP_WHY_MAX] = "";
    if (evp_mkdirs(self->dir, w, sizeof w) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot be created: %s", self->dir, w);
        gen_archive_destroy(&self);
        return NULL;
    }
    char lock[EVP_PATH_MAX + 16];
    snprintf(lock, sizeof lock, "%s/.lock", self->dir);
    self->lock_fd = evp_lock_file(lock, w, sizeof w);
    if (self->lock_fd < 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s is in use by another generator (%s)", self->dir, w);
        gen_archive_destroy(&self);
        return NULL;
    }
    if (s_source_id(self, why, whylen) != 0 || s_epoch(self, why, whylen) != 0) {
        gen_archive_destroy(&self);
        return NULL;
    }
    /* Only the newest file is ever written, so only it can end in a torn
     * line; checking every file costs one read each and also covers a
     * clock that went backwards. */
    char(*names)[GEN_ARCHIVE_NAME_MAX];
    size_t n;
    if (s_list(self->dir, &names, &n, why, whylen) != 0) {
        gen_archive_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = s_repair_tail(self, names[i], why, whylen);
        if (rc < 0) {
            free(names);
            gen_archive_destroy(&self);
            return NULL;
        }
        if (rc == 0)
            snprintf(self->newest, sizeof self->newest, "%s", names[i]);
    }
    free(names);
    return self;
}

void gen_archive_destroy(gen_archive_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gen_archive_t *self = *self_p;
    char why[EVP_WHY_MAX];
    if (self->fd >= 0) {
        if (gen_archive_sync(self, why, sizeof why) != 0)
            evp_error("archive sync failed at close", "error=\"%s\"", why);
        close(self->fd);
    }
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self);
    *self_p = NULL;
}

ev_str_t gen_archive_source(const gen_archive_t *self)
{
    return (ev_str_t){self->source, (uint32_t)strlen(self->source)};
}

/* ---- Writing ---- */

/* Opens a new file named after the current UTC second, later than every
 * existing name (waiting for the next second when the name is taken). */
static int s_open_file(gen_archive_t *self, char *why, size_t whylen)
{
    char name[GEN_ARCHIVE_NAME_MAX];
    for (int attempt = 0;; attempt++) {
        time_t now = time(NULL);
        gen_archive_file_name(name, now);
        int cmp = self->newest[0] ? strcmp(name, self->newest) : 1;
        if (cmp < 0) {
            /* The clock is behind the newest file: keep names in order,
             * which is what readers rely on. */
            time_t after = s_name_time(self->newest) + 1;
            evp_warn("the clock is behind the newest archive file; naming the new file after it",
                     "newest=%s", self->newest);
            gen_archive_file_name(name, after);
            cmp = 1;
        }
        if (cmp > 0) {
            snprintf(self->path, sizeof self->path, "%s/%s", self->dir, name);
            self->fd = open(self->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
            if (self->fd >= 0)
                break;
            if (errno != EEXIST || attempt >= 3) {
                snprintf(why, whylen, "ARCHIVE_DIR=%s: cannot create %s: %s", self->dir, name, strerror(errno));
                return -1;
            }
            snprintf(self->newest, sizeof self->newest, "%s", name);
        } else if (attempt >= 3) {
            snprintf(why, whylen, "ARCHIVE_DIR=%s: %s exists and the clock does not move on", self->dir, name);
            return -1;
        }
        /* Wait for the next second (at most one). */
        zclock_sleep((int)(1001 - zclock_time() % 1000));
    }
    snprintf(self->newest, sizeof self->newest, "%s", name);
    ev_buf_t header;
    ev_buf_init(&header);
    ev_csv_header(&header, EV_CSV_ARCHIVE);
    char w[EVP_WHY_MAX] = "";
    int rc = evp_write_all(self->fd, header.data, header.len, w, sizeof w);
    if (rc == 0)
        rc = evp_fsync_dir(self->dir, w, sizeof w);
    self->size = header.len;
    ev_buf_free(&header);
    if (rc != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR=%s: %s: %s", self->dir, name, w);
        close(self->fd);
        self->fd = -1;
        unlink(self->path);
        return -1;
    }
    self->opened_ms = zclock_mono();
    self->synced_ms = self->opened_ms;
    self->dirty = true;
    self->files++;
    evp_info("archive file opened", "file=\"%s\"", self->path);
    return 0;
}

int gen_archive_sync(gen_archive_t *self, char *why, size_t whylen)
{
    if (self->fd < 0 || !self->dirty)
        return 0;
    if (fdatasync(self->fd) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR: fdatasync %.400s: %s", self->path, strerror(errno));
        return -1;
    }
    self->dirty = false;
    self->synced_ms = zclock_mono();
    self->syncs++;
    return 0;
}

int gen_archive_tick(gen_archive_t *self, char *why, size_t whylen)
{
    if (self->fd < 0 || !self->dirty || zclock_mono() - self->synced_ms < self->sync_ms)
        return 0;
    return gen_archive_sync(self, why, whylen);
}

int gen_archive_rotate(gen_archive_t *self, char *why, size_t whylen)
{
    if (self->fd < 0)
        return 0;
    int rc = gen_archive_sync(self, why, whylen);
    close(self->fd);
    self->fd = -1;
    return rc;
}

int gen_archive_write(gen_archive_t *self, const void *rows, size_t len, size_t nrows, char *why, size_t whylen)
{
    if (self->fd >= 0 && zclock_mono() - self->opened_ms >= self->rotate_ms &&
        gen_archive_rotate(self, why, whylen) != 0)
        return -1;
    if (self->fd < 0 && s_open_file(self, why, whylen) != 0)
        return -1;
    char w[EVP_WHY_MAX] = "";
    if (evp_write_all(self->fd, rows, len, w, sizeof w) != 0) {
        snprintf(why, whylen, "ARCHIVE_DIR: %.400s: %.180s", self->path, w);
        /* Leave no partial row behind. */
        if (ftruncate(self->fd, (off_t)self->size) != 0)
            evp_error("cannot cut a partial row off the archive", "file=\"%s\" error=\"%s\"", self->path,
                      strerror(errno));
        return -1;
    }
    self->size += len;
    self->rows += nrows;
    self->dirty = true;
    return gen_archive_tick(self, why, whylen);
}

const char *gen_archive_path(const gen_archive_t *self)
{
    return self->fd >= 0 ? self->path : "";
}

uint64_t gen_archive_files_opened(const gen_archive_t *self)
{
    return self->files;
}

uint64_t gen_archive_rows(const gen_archive_t *self)
{
    return self->rows;
}

uint64_t gen_archive_syncs(const gen_archive_t *self)
{
    return self->syncs;
}
