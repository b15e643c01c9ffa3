/* The index of archive and ingested files for repairs (see ingest_archive.h). */
#include "ingest_archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "evpipe/log.h"
#include "ingest_reader.h"

#define DEFAULT_BLOCK_BYTES (4u * 1024 * 1024)
/* Rows between questions to the cancel hook. */
#define CANCEL_EVERY 4096

/* The seqs of one (source, partition) in a block or a file. */
typedef struct {
    uint32_t src;       /* index into sources */
    int32_t partition;  /* the partition */
    int64_t min, max;   /* lowest and highest seq seen */
} s_range_t;

/* A run of whole records of a file. */
typedef struct {
    uint64_t offset;    /* where its first record starts */
    s_range_t *ranges;  /* what its good rows hold */
    uint32_t nranges;   /* ranges used */
    uint32_t cap;       /* ranges allocated */
} s_block_t;

typedef struct {
    char *path;            /* the file */
    bool extra;            /* added by name (not from the folder) */
    bool seen;             /* found by the current folder scan */
    bool bad;              /* unreadable or refused header at size/mtime */
    int64_t size;          /* size when last indexed */
    int64_t mtime_ns;      /* mtime when last indexed */
    char source[INGEST_SOURCE_MAX]; /* old format: its file- source ("" otherwise) */
    bool old_layout;       /* the old generator's format */
    uint64_t indexed_to;   /* end of the last complete record indexed */
    s_block_t *blocks;     /* in file order */
    size_t nblocks;        /* blocks used */
    size_t blocks_cap;     /* blocks allocated */
    s_range_t *totals;     /* the union of the blocks' ranges */
    uint32_t ntotals;      /* totals used */
    uint32_t totals_cap;   /* totals allocated */
} s_file_t;

/* The highest seq of one (source, partition) the index has ever seen, in a
 * file still there or since deleted. */
typedef struct {
    uint32_t src;       /* index into sources */
    int32_t partition;  /* the partition */
    int64_t head;       /* highest seq seen */
    int64_t changed_ms; /* monotonic ms when head last rose */
} s_head_t;

struct ingest_archive_t {
    ingest_archive_opts_t opts; /* settings (dir copied below) */
    char *dir;                  /* the folder, or NULL */
    s_file_t **files;           /* indexed files */
    size_t nfiles;              /* files used */
    size_t files_cap;           /* files allocated */
    char **sources;             /* interned sources */
    uint32_t nsources;          /* sources used */
    uint32_t sources_cap;       /* sources allocated */
    uint64_t bytes_read;        /* file bytes read */
    int64_t *seq_tmp;           /* PARTITIONS entries: seqs before a block */
    s_head_t *heads;            /* per (source, partition): the highest seq ever indexed */
    size_t nheads;              /* heads used */
    size_t heads_cap;           /* heads allocated */
};

/* ---- Small tables ---- */

static void *s_grow(void *ptr, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 16;
    void *p = realloc(ptr, n * elem);
    if (!p)
        abort();
    *cap = n;
    return p;
}

/* The id of a source, added when new (or UINT32_MAX when add is false). */
static uint32_t s_source_id(ingest_archive_t *self, const char *s, size_t len, bool add)
{
    for (uint32_t i = 0; i < self->nsources; i++)
        if (strlen(self->sources[i]) == len && memcmp(self->sources[i], s, len) == 0)
            return i;
    if (!add)
        return UINT32_MAX;
    if (self->nsources == self->sources_cap) {
        size_t cap = self->sources_cap;
        self->sources = s_grow(self->sources, &cap, sizeof *self->sources);
        self->sources_cap = (uint32_t)cap;
    }
    char *copy = strndup(s, len);
    if (!copy)
        abort();
    self->sources[self->nsources] = copy;
    return self->nsources++;
}

/* Widens (src, partition) in a range list to hold [min, max]. */
static void s_ranges_note(s_range_t **ranges, uint32_t *n, uint32_t *cap, uint32_t src, int32_t partition,
                          int64_t min, int64_t max)
{
    for (uint32_t i = 0; i < *n; i++) {
        s_range_t *r = &(*ranges)[i];
        if (r->src == src && r->partition == partition) {
            if (min < r->min)
                r->min = min;
            if (max > r->max)
                r->max = max;
            return;
        }
    }
    if (*n == *cap) {
        size_t c = *cap;
        *ranges = s_grow(*ranges, &c, sizeof **ranges);
        *cap = (uint32_t)c;
    }
    (*ranges)[(*n)++] = (s_range_t){src, partition, min, max};
}

static const s_range_t *s_ranges_find(const s_range_t *ranges, uint32_t n, uint32_t src, int32_t partition)
{
    for (uint32_t i = 0; i < n; i++)
        if (ranges[i].src == src && ranges[i].partition == partition)
            return &ranges[i];
    return NULL;
}

static void s_file_clear(s_file_t *f)
{
    for (size_t i = 0; i < f->nblocks; i++)
        free(f->blocks[i].ranges);
    free(f->blocks);
    free(f->totals);
    f->blocks = NULL;
    f->nblocks = f->blocks_cap = 0;
    f->totals = NULL;
    f->ntotals = f->totals_cap = 0;
    f->indexed_to = 0;
    f->bad = false;
}

static void s_file_free(s_file_t *f)
{
    if (!f)
        return;
    s_file_clear(f);
    free(f->path);
    free(f);
}

static void s_file_totals(s_file_t *f)
{
    f->ntotals = 0;
    for (size_t b = 0; b < f->nblocks; b++)
        for (uint32_t i = 0; i < f->blocks[b].nranges; i++) {
            const s_range_t *r = &f->blocks[b].ranges[i];
            s_ranges_note(&f->totals, &f->ntotals, &f->totals_cap, r->src, r->partition, r->min, r->max);
        }
}

/* ---- Life cycle ---- */

ingest_archive_t *ingest_archive_new(const ingest_archive_opts_t *opts)
{
    ingest_archive_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (self->opts.partitions < 1)
        self->opts.partitions = 1;
    if (!self->opts.block_bytes)
        self->opts.block_bytes = DEFAULT_BLOCK_BYTES;
    /* Canonical, so a file named by the ledger (a real path) is recognised. */
    char real[4096];
    if (opts->dir && *opts->dir)
        self->dir = strdup(realpath(opts->dir, real) ? real : opts->dir);
    self->opts.dir = self->dir;
    self->seq_tmp = calloc((size_t)self->opts.partitions, sizeof *self->seq_tmp);
    if (!self->seq_tmp || (opts->dir && *opts->dir && !self->dir)) {
        ingest_archive_destroy(&self);
        return NULL;
    }
    return self;
}

void ingest_archive_destroy(ingest_archive_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_archive_t *self = *self_p;
    for (size_t i = 0; i < self->nfiles; i++)
        s_file_free(self->files[i]);
    free(self->files);
    for (uint32_t i = 0; i < self->nsources; i++)
        free(self->sources[i]);
    free(self->sources);
    free(self->seq_tmp);
    free(self->heads);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

uint64_t ingest_archive_bytes_read(const ingest_archive_t *self)
{
    return self->bytes_read;
}

size_t ingest_archive_file_count(const ingest_archive_t *self)
{
    return self->nfiles;
}

/* ---- Heads: what the archive holds or held ---- */

static s_head_t *s_heads_find(const ingest_archive_t *self, uint32_t src, int32_t partition)
{
    for (size_t i = 0; i < self->nheads; i++)
        if (self->heads[i].src == src && self->heads[i].partition == partition)
            return &self->heads[i];
    return NULL;
}

/* Raises the head of (src, partition) to seq. Heads never go down: a file
 * deleted later still proves that its seqs existed. */
static void s_heads_note(ingest_archive_t *self, uint32_t src, int32_t partition, int64_t seq)
{
    s_head_t *h = s_heads_find(self, src, partition);
    if (!h) {
        if (self->nheads == self->heads_cap)
            self->heads = s_grow(self->heads, &self->heads_cap, sizeof *self->heads);
        h = &self->heads[self->nheads++];
        *h = (s_head_t){src, partition, 0, 0};
    }
    if (seq > h->head) {
        h->head = seq;
        h->changed_ms = zclock_mono();
    }
}

/* ---- Indexing one file ---- */

static bool s_cancelled(const ingest_archive_t *self)
{
    return self->opts.cancelled && self->opts.cancelled(self->opts.cancel_arg);
}

/* The end of the last complete line of the first size bytes (0: none). */
static uint64_t s_complete_end(const char *path, int64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[65536];
    int64_t end = size;
    uint64_t found = 0;
    while (end > 0 && !found) {
        int64_t start = end > (int64_t)sizeof buf ? end - (int64_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - start), start);
        if (n <= 0)
            break;
        for (ssize_t i = n; i-- > 0;)
            if (buf[i] == '\n') {
                found = (uint64_t)(start + i + 1);
                break;
            }
        end = start;
    }
    close(fd);
    return found;
}

/* The seqs given per partition before block b (old format). */
static void s_seq_before(ingest_archive_t *self, const s_file_t *f, size_t b)
{
    memset(self->seq_tmp, 0, (size_t)self->opts.partitions * sizeof *self->seq_tmp);
    for (size_t i = 0; i < b; i++)
        for (uint32_t k = 0; k < f->blocks[i].nranges; k++) {
            const s_range_t *r = &f->blocks[i].ranges[k];
            if (r->partition < self->opts.partitions && r->max > self->seq_tmp[r->partition])
                self->seq_tmp[r->partition] = r->max;
        }
}

/* Brings f up to date with the file as it is (st). */
static void s_index(ingest_archive_t *self, s_file_t *f, const struct stat *st, const char *known_source)
{
    int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    if (f->size == st->st_size && f->mtime_ns == mtime_ns && (f->bad || f->indexed_to || f->nblocks))
        return; /* unchanged since last time */
    /* An archive file only grows: go on from where the index stopped. An
     * old-format file's source is its whole content: index it anew. */
    bool go_on = !f->bad && !f->old_layout && f->indexed_to > 0 && (uint64_t)st->st_size >= f->indexed_to &&
                 (f->size < 0 || st->st_size >= f->size);
    if (!go_on)
        s_file_clear(f);
    f->size = st->st_size;
    f->mtime_ns = mtime_ns;

    ingest_reader_opts_t ro = {.partitions = self->opts.partitions, .max_line = self->opts.max_line};
    bool refused = false;
    char why[EVP_WHY_MAX];
    uint64_t limit = s_complete_end(f->path, st->st_size);
    if (limit == 0) {
        /* Not even a whole header line yet (a file just started): later. */
        s_file_clear(f);
        f->size = -1;
        return;
    }
    ingest_reader_t *r = ingest_reader_open(f->path, &ro, known_source, &refused, why, sizeof why);
    if (!r) {
        evp_warn("archive file not indexed", "file=\"%s\" error=\"%s\"", f->path, why);
        s_file_clear(f);
        f->bad = true;
        return;
    }
    f->old_layout = ingest_reader_layout(r) == EV_CSV_OLD;
    snprintf(f->source, sizeof f->source, "%s", ingest_reader_source(r));
    if (f->old_layout && !known_source)
        self->bytes_read += (uint64_t)st->st_size; /* the hash pass */
    uint64_t pos = ingest_reader_data_offset(r);
    if (go_on && f->indexed_to > pos) {
        pos = f->indexed_to;
        if (ingest_reader_seek(r, pos, 1, NULL, why, sizeof why) != 0) {
            evp_warn("archive file not indexed", "file=\"%s\" error=\"%s\"", f->path, why);
            ingest_reader_destroy(&r);
            s_file_clear(f);
            f->bad = true;
            return;
        }
    }
    s_block_t *block = f->nblocks ? &f->blocks[f->nblocks - 1] : NULL;
    uint32_t last_src = UINT32_MAX;
    const char *last_ptr = NULL;
    uint32_t last_len = 0;
    uint64_t start = pos, rejected = 0, count = 0;
    ingest_row_t row;
    int rc;
    while ((rc = ingest_reader_next(r, &row, why, sizeof why)) > 0) {
        if (row.end_offset > limit)
            break; /* a line still being written */
        if (++count % CANCEL_EVERY == 0 && s_cancelled(self)) {
            /* Next time, go on from here (an old-format file starts over). */
            f->size = -1;
            break;
        }
        uint64_t row_start = pos;
        pos = row.end_offset;
        if (row.code != EV_OK) {
            rejected++;
            continue;
        }
        if (!block || row_start - block->offset >= self->opts.block_bytes) {
            if (f->nblocks == f->blocks_cap)
                f->blocks = s_grow(f->blocks, &f->blocks_cap, sizeof *f->blocks);
            block = &f->blocks[f->nblocks++];
            *block = (s_block_t){.offset = row_start};
        }
        if (last_src == UINT32_MAX || row.ev.source.len != last_len ||
            memcmp(row.ev.source.ptr, last_ptr, last_len) != 0) {
            last_src = s_source_id(self, row.ev.source.ptr, row.ev.source.len, true);
            last_ptr = self->sources[last_src];
            last_len = row.ev.source.len;
        }
        s_ranges_note(&block->ranges, &block->nranges, &block->cap, last_src, row.ev.partition, row.ev.seq,
                      row.ev.seq);
    }
    if (rc < 0)
        evp_warn("archive file read failed", "file=\"%s\" error=\"%s\"", f->path, why);
    f->indexed_to = pos;
    self->bytes_read += pos - start;
    ingest_reader_destroy(&r);
    s_file_totals(f);
    for (uint32_t i = 0; i < f->ntotals; i++)
        s_heads_note(self, f->totals[i].src, f->totals[i].partition, f->totals[i].max);
    if (rejected)
        evp_debug("archive file has rows that are not events", "file=\"%s\" rows=%" PRIu64, f->path, rejected);
}

static s_file_t *s_find_file(ingest_archive_t *self, const char *path)
{
    for (size_t i = 0; i < self->nfiles; i++)
        if (strcmp(self->files[i]->path, path) == 0)
            return self->files[i];
    return NULL;
}

static s_file_t *s_add_file(ingest_archive_t *self, const char *path, bool extra)
{
    s_file_t *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path)))
        abort();
    f->extra = extra;
    f->size = -1;
    if (self->nfiles == self->files_cap)
        self->files = s_grow(self->files, &self->files_cap, sizeof *self->files);
    self->files[self->nfiles++] = f;
    return f;
}

/* ---- The folder ---- */

static bool s_is_csv(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".csv") == 0;
}

void ingest_archive_refresh(ingest_archive_t *self)
{
    if (!self->dir)
        return;
    DIR *d = opendir(self->dir);
    if (!d) {
        evp_warn("cannot read the archive folder", "dir=\"%s\" error=\"%s\"", self->dir, strerror(errno));
        return;
    }
    for (size_t i = 0; i < self->nfiles; i++)
        self->files[i]->seen = self->files[i]->extra;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        if (!s_is_csv(de->d_name))
            continue;
        if (s_cancelled(self)) {
            /* Keep what is known; the rest is looked at next time. */
            for (size_t i = 0; i < self->nfiles; i++)
                self->files[i]->seen = true;
            break;
        }
        snprintf(path, sizeof path, "%s/%s", self->dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        s_file_t *f = s_find_file(self, path);
        if (!f)
            f = s_add_file(self, path, false);
        f->seen = true;
        s_index(self, f, &st, NULL);
    }
    closedir(d);
    /* Forget files that are gone. */
    size_t kept = 0;
    for (size_t i = 0; i < self->nfiles; i++) {
        if (self->files[i]->seen)
            self->files[kept++] = self->files[i];
        else
            s_file_free(self->files[i]);
    }
    self->nfiles = kept;
}

int ingest_archive_add(ingest_archive_t *self, const char *path, const char *known_source, int64_t size,
                       int64_t mtime_ns, char *why, size_t whylen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (st.st_size != size || m != mtime_ns) {
        snprintf(why, whylen, "%s: changed since it was ingested (size %lld, was %lld)", path,
                 (long long)st.st_size, (long long)size);
        return -1;
    }
    s_file_t *f = s_find_file(self, path);
    if (f && !f->extra)
        return 0; /* a file of the folder: its refresh keeps it current */
    if (!f)
        f = s_add_file(self, path, true);
    s_index(self, f, &st, known_source);
    if (f->bad) {
        snprintf(why, whylen, "%s: cannot be read as events", path);
        return -1;
    }
    return 0;
}

/* ---- Queries ---- */

bool ingest_archive_knows(ingest_archive_t *self, const char *source)
{
    uint32_t src = s_source_id(self, source, strlen(source), false);
    if (src == UINT32_MAX)
        return false;
    for (size_t i = 0; i < self->nheads; i++)
        if (self->heads[i].src == src)
            return true;
    return false;
}

int64_t ingest_archive_head(ingest_archive_t *self, const char *source, int32_t partition)
{
    uint32_t src = s_source_id(self, source, strlen(source), false);
    const s_head_t *h = src == UINT32_MAX ? NULL : s_heads_find(self, src, partition);
    return h ? h->head : 0;
}

size_t ingest_archive_heads(ingest_archive_t *self, ingest_archive_head_fn fn, void *arg)
{
    for (size_t i = 0; i < self->nheads; i++) {
        const s_head_t *h = &self->heads[i];
        fn(self->sources[h->src], h->partition, h->head, h->changed_ms, arg);
    }
    return self->nheads;
}

typedef struct {
    s_file_t *file;  /* a file that can hold part of the range */
    int64_t min;     /* its lowest seq of the (source, partition) */
} s_candidate_t;

static int s_candidate_cmp(const void *a, const void *b)
{
    const s_candidate_t *x = a, *y = b;
    return x->min < y->min ? -1 : x->min > y->min;
}

/* The files that can hold part of the range, sorted; caller frees. */
static s_candidate_t *s_candidates(ingest_archive_t *self, uint32_t src, int32_t partition, int64_t from,
                                   int64_t to, size_t *n)
{
    *n = 0;
    s_candidate_t *c = calloc(self->nfiles ? self->nfiles : 1, sizeof *c);
    if (!c)
        abort();
    for (size_t i = 0; i < self->nfiles; i++) {
        s_file_t *f = self->files[i];
        const s_range_t *r = s_ranges_find(f->totals, f->ntotals, src, partition);
        if (r && r->max >= from && r->min <= to)
            c[(*n)++] = (s_candidate_t){f, r->min};
    }
    qsort(c, *n, sizeof *c, s_candidate_cmp);
    return c;
}

size_t ingest_archive_files_for(ingest_archive_t *self, const char *source, int32_t partition, int64_t from,
                                int64_t to, const char **paths, size_t max)
{
    uint32_t src = s_source_id(self, source, strlen(source), false);
    if (src == UINT32_MAX)
        return 0;
    size_t n;
    s_candidate_t *c = s_candidates(self, src, partition, from, to, &n);
    size_t k = 0;
    for (; k < n && k < max; k++)
        paths[k] = c[k].file->path;
    free(c);
    return k;
}

/* Reads the blocks of f that can hold the range; passes matching events. */
static int64_t s_read_file(ingest_archive_t *self, s_file_t *f, uint32_t src, int32_t partition, int64_t from,
                           int64_t to, int64_t *last_sent, ingest_archive_fn fn, void *arg)
{
    ingest_reader_opts_t ro = {.partitions = self->opts.partitions, .max_line = self->opts.max_line};
    bool refused;
    char why[EVP_WHY_MAX];
    ingest_reader_t *r = NULL;
    int64_t passed = 0;
    size_t b = 0;
    while (b < f->nblocks) {
        const s_range_t *rg = s_ranges_find(f->blocks[b].ranges, f->blocks[b].nranges, src, partition);
        if (!rg || rg->max < from || rg->min > to || rg->max <= *last_sent) {
            b++;
            continue;
        }
        /* A run of blocks that can hold the range. */
        size_t last = b;
        while (last + 1 < f->nblocks) {
            const s_range_t *n = s_ranges_find(f->blocks[last + 1].ranges, f->blocks[last + 1].nranges, src,
                                               partition);
            if (!n || n->min > to)
                break;
            last++;
        }
        uint64_t end = last + 1 < f->nblocks ? f->blocks[last + 1].offset : f->indexed_to;
        if (!r) {
            r = ingest_reader_open(f->path, &ro, f->old_layout ? f->source : NULL, &refused, why, sizeof why);
            if (!r) {
                evp_warn("archive file unreadable for a repair", "file=\"%s\" error=\"%s\"", f->path, why);
                return passed;
            }
        }
        if (f->old_layout)
            s_seq_before(self, f, b);
        if (ingest_reader_seek(r, f->blocks[b].offset, 1, f->old_layout ? self->seq_tmp : NULL, why,
                               sizeof why) != 0) {
            evp_warn("archive file unreadable for a repair", "file=\"%s\" error=\"%s\"", f->path, why);
            break;
        }
        uint64_t pos = f->blocks[b].offset;
        ingest_row_t row;
        uint64_t count = 0;
        while (pos < end) {
            if (++count % CANCEL_EVERY == 0 && s_cancelled(self)) {
                ingest_reader_destroy(&r);
                return -1;
            }
            int rc = ingest_reader_next(r, &row, why, sizeof why);
            if (rc <= 0) {
                if (rc < 0)
                    evp_warn("archive file read failed", "file=\"%s\" error=\"%s\"", f->path, why);
                break;
            }
            self->bytes_read += row.end_offset - pos;
            pos = row.end_offset;
            if (row.code != EV_OK || row.ev.partition != partition || row.ev.seq < from || row.ev.seq > to ||
                row.ev.seq <= *last_sent)
                continue;
            if (strlen(self->sources[src]) != row.ev.source.len ||
                memcmp(self->sources[src], row.ev.source.ptr, row.ev.source.len) != 0)
                continue;
            *last_sent = row.ev.seq;
            if (fn(&row.ev, arg) != 0) {
                ingest_reader_destroy(&r);
                return -1;
            }
            passed++;
            if (row.ev.seq == to)
                break;
        }
        if (*last_sent >= to)
            break;
        b = last + 1;
    }
    ingest_reader_destroy(&r);
    return passed;
}

int64_t ingest_archive_read(ingest_archive_t *self, const char *source, int32_t partition, int64_t from,
                            int64_t to, ingest_archive_fn fn, void *arg)
{
    uint32_t src = s_source_id(self, source, strlen(source), false);
    if (src == UINT32_MAX || from > to)
        return 0;
    size_t n;
    s_candidate_t *c = s_candidates(self, src, partition, from, to, &n);
    int64_t last_sent = from - 1, total = 0;
    for (size_t i = 0; i < n && last_sent < to; i++) {
        int64_t got = s_read_file(self, c[i].file, src, partition, from, to, &last_sent, fn, arg);
        if (got < 0) {
            total = -1;
            break;
        }
        total += got;
    }
    free(c);
    return total;
}
