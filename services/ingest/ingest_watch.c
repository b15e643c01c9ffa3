/* Watching a folder for complete CSV files (see ingest_watch.h). */
#include "ingest_watch.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evpipe/log.h"

#define RESCAN_MS 1000

/* One file of the folder as last seen. */
typedef struct {
    char *name;              /* file name */
    int64_t size;            /* size last seen */
    int64_t mtime_ns;        /* mtime last seen */
    int64_t stable_since_ms; /* when size and mtime took these values */
    bool handed;             /* handed out at handed_size/handed_mtime */
    int64_t handed_size;     /* size when handed out */
    int64_t handed_mtime_ns; /* mtime when handed out */
    bool seen;               /* found by the current scan */
} s_entry_t;

struct ingest_watch_t {
    char *dir;             /* the folder */
    int settle_ms;         /* unchanged this long = complete */
    int inotify_fd;        /* inotify instance, or -1 */
    s_entry_t *entries;    /* files seen */
    size_t count;          /* entries used */
    size_t cap;            /* entries allocated */
    char **ready;          /* full paths ready, in order */
    size_t nready;         /* ready paths queued */
    size_t ready_next;     /* the next one to hand out */
    size_t ready_cap;      /* ready allocated */
    char *current;         /* the path last handed out */
    int64_t next_scan_ms;  /* when the next rescan is due */
    int64_t next_due_ms;   /* when a file seen settles, if sooner */
    bool dir_missing;      /* the folder could not be read (said once) */
};

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool ingest_watch_wanted(const char *name)
{
    if (name[0] == '.' || s_ends_with(name, ".tmp") || s_ends_with(name, ".part"))
        return false;
    return strlen(name) > 4 && s_ends_with(name, ".csv");
}

ingest_watch_t *ingest_watch_new(const char *dir, int settle_ms, char *why, size_t whylen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(why, whylen, "INGEST_WATCH_DIR=%s: %s", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "INGEST_WATCH_DIR=%s: not a folder", dir);
        return NULL;
    }
    ingest_watch_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->settle_ms = settle_ms;
    self->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (self->inotify_fd < 0 ||
        inotify_add_watch(self->inotify_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        /* The rescan alone still finds every file, a second later. */
        evp_warn("inotify unavailable; the folder is rescanned every second", "dir=\"%s\" error=\"%s\"", dir,
                 strerror(errno));
        if (self->inotify_fd >= 0)
            close(self->inotify_fd);
        self->inotify_fd = -1;
    }
    return self;
}

static void s_ready_clear(ingest_watch_t *self)
{
    for (size_t i = 0; i < self->nready; i++)
        free(self->ready[i]);
    self->nready = self->ready_next = 0;
}

void ingest_watch_destroy(ingest_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_watch_t *self = *self_p;
    if (self->inotify_fd >= 0)
        close(self->inotify_fd);
    for (size_t i = 0; i < self->count; i++)
        free(self->entries[i].name);
    free(self->entries);
    s_ready_clear(self);
    free(self->ready);
    free(self->current);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

static int s_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_push_ready(ingest_watch_t *self, const char *name)
{
    if (self->nready == self->ready_cap) {
        size_t cap = self->ready_cap ? self->ready_cap * 2 : 16;
        char **n = realloc(self->ready, cap * sizeof *n);
        if (!n)
            abort();
        self->ready = n;
        self->ready_cap = cap;
    }
    char *path;
    if (asprintf(&path, "%s/%s", self->dir, name) < 0)
        abort();
    self->ready[self->nready++] = path;
}

int ingest_watch_scan(ingest_watch_t *self, int64_t now_ms)
{
    self->next_due_ms = INT64_MAX;
    DIR *d = opendir(self->dir);
    if (!d) {
        if (!self->dir_missing)
            evp_warn("cannot read the watched folder", "dir=\"%s\" error=\"%s\"", self->dir, strerror(errno));
        self->dir_missing = true;
        return (int)(self->nready - self->ready_next);
    }
    self->dir_missing = false;
    for (size_t i = 0; i < self->count; i++)
        self->entries[i].seen = false;
    /* Files handed out by this scan, sorted by name. */
    size_t first_new = self->nready;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        if (!ingest_watch_wanted(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", self->dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        s_entry_t *e = NULL;
        for (size_t i = 0; i < self->count && !e; i++)
            if (strcmp(self->entries[i].name, de->d_name) == 0)
                e = &self->entries[i];
        if (!e) {
            if (self->count == self->cap) {
                size_t cap = self->cap ? self->cap * 2 : 32;
                s_entry_t *n = realloc(self->entries, cap * sizeof *n);
                if (!n)
                    abort();
                self->entries = n;
                self->cap = cap;
            }
            e = &self->entries[self->count++];
            *e = (s_entry_t){.name = strdup(de->d_name), .size = st.st_size, .mtime_ns = mtime_ns,
                             .stable_since_ms = now_ms};
            if (!e->name)
                abort();
        } else if (e->size != st.st_size || e->mtime_ns != mtime_ns) {
            e->size = st.st_size;
            e->mtime_ns = mtime_ns;
            e->stable_since_ms = now_ms;
        }
        e->seen = true;
        if (e->handed && e->handed_size == e->size && e->handed_mtime_ns == e->mtime_ns)
            continue;
        if (now_ms - e->stable_since_ms < self->settle_ms) {
            if (e->stable_since_ms + self->settle_ms < self->next_due_ms)
                self->next_due_ms = e->stable_since_ms + self->settle_ms;
            continue;
        }
        e->handed = true;
        e->handed_size = e->size;
        e->handed_mtime_ns = e->mtime_ns;
        s_push_ready(self, e->name);
    }
    closedir(d);
    if (self->nready > first_new)
        qsort(self->ready + first_new, self->nready - first_new, sizeof *self->ready, s_name_cmp);
    /* Forget files that went away (a file coming back is new). */
    size_t kept = 0;
    for (size_t i = 0; i < self->count; i++) {
        if (self->entries[i].seen)
            self->entries[kept++] = self->entries[i];
        else
            free(self->entries[i].name);
    }
    self->count = kept;
    return (int)(self->nready - self->ready_next);
}

int ingest_watch_poll(ingest_watch_t *self, int timeout_ms)
{
    int64_t now = zclock_mono();
    int64_t due = self->next_due_ms < self->next_scan_ms ? self->next_due_ms : self->next_scan_ms;
    int64_t wait = due - now;
    if (wait > timeout_ms)
        wait = timeout_ms;
    bool changed = false;
    if (wait > 0) {
        if (self->inotify_fd >= 0) {
            struct pollfd p = {self->inotify_fd, POLLIN, 0};
            changed = poll(&p, 1, (int)wait) > 0;
        } else {
            zclock_sleep((int)wait);
        }
    }
    if (self->inotify_fd >= 0) {
        /* Drain the events: what they name, the scan finds. */
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(self->inotify_fd, buf, sizeof buf) > 0)
            changed = true;
    }
    now = zclock_mono();
    if (changed || now >= due) {
        self->next_scan_ms = now + RESCAN_MS;
        return ingest_watch_scan(self, now);
    }
    return (int)(self->nready - self->ready_next);
}

const char *ingest_watch_next(ingest_watch_t *self)
{
    if (self->ready_next >= self->nready) {
        s_ready_clear(self);
        return NULL;
    }
    free(self->current);
    self->current = self->ready[self->ready_next];
    self->ready[self->ready_next++] = NULL;
    return self->current;
}
