/* Reading one CSV file as events with their identities (see ingest_reader.h). */
#include "ingest_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_CHUNK (1024 * 1024)

struct ingest_reader_t {
    int fd;                          /* the file, owned */
    ev_csv_reader_t *csv;            /* record reader over fd */
    ev_csv_map_t map;                /* header: which column holds which field */
    ev_csv_record_t rec;             /* the current record (views into csv) */
    ingest_reader_opts_t opts;       /* partitions, record limit */
    char source[INGEST_SOURCE_MAX];  /* old format: the file- source */
    uint32_t source_len;             /* its length */
    int64_t *seq;                    /* old format: last seq given per partition */
    int64_t size;                    /* size when opened */
    int64_t mtime_ns;                /* modification time when opened */
    uint64_t base_offset;            /* file offset where csv started reading */
    uint64_t base_line;              /* line number of csv's first record, minus 1 */
    uint64_t data_offset;            /* offset of the first data record */
    uint64_t data_line;              /* its line */
};

/* ---- The file- source ---- */

/* The hash pass, telling fn (when not NULL) how far it got. */
static int s_hash_source(int fd, char *out, uint64_t *bytes, ingest_reader_hashing_fn fn, void *arg, uint64_t size,
                         char *why, size_t whylen)
{
    if (sodium_init() < 0) {
        snprintf(why, whylen, "libsodium cannot start");
        return -1;
    }
    unsigned char *buf = malloc(HASH_CHUNK);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES_MAX);
    uint64_t total = 0;
    off_t pos = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, HASH_CHUNK, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "read: %s", strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        crypto_generichash_update(&st, buf, (unsigned long long)n);
        pos += n;
        total += (uint64_t)n;
        if (fn)
            fn(arg, total, size);
    }
    free(buf);
    unsigned char h[crypto_generichash_BYTES_MAX];
    crypto_generichash_final(&st, h, sizeof h);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "file-", 5);
    for (int i = 0; i < 16; i++) {
        out[5 + 2 * i] = hex[h[i] >> 4];
        out[6 + 2 * i] = hex[h[i] & 15];
    }
    out[INGEST_FILE_SOURCE_LEN] = '\0';
    if (bytes)
        *bytes = total;
    return 0;
}

int ingest_reader_hash_source(int fd, char *out, uint64_t *bytes, char *why, size_t whylen)
{
    return s_hash_source(fd, out, bytes, NULL, NULL, 0, why, whylen);
}

void ingest_reader_source_suffix(char *source, const ingest_reader_opts_t *opts)
{
    size_t len = strlen(source);
    if (opts->partitions != INGEST_IDENTITY_PARTITIONS)
        len += (size_t)snprintf(source + len, INGEST_SOURCE_MAX - len, "-p%d", opts->partitions);
    if (opts->max_line != INGEST_IDENTITY_MAX_LINE)
        snprintf(source + len, INGEST_SOURCE_MAX - len, "-l%zu", opts->max_line);
}

/* Whether known (a ledger's source) names the settings of opts: its suffix
 * after "file-<32 hex>" is the one they give. */
static bool s_known_matches(const char *known, const ingest_reader_opts_t *opts)
{
    char want[INGEST_SOURCE_MAX];
    if (strlen(known) < INGEST_FILE_SOURCE_LEN)
        return false;
    snprintf(want, sizeof want, "%.*s", INGEST_FILE_SOURCE_LEN, known);
    ingest_reader_source_suffix(want, opts);
    return strcmp(want, known) == 0;
}

/* ---- Opening ---- */

static int s_restart(ingest_reader_t *self, uint64_t offset, uint64_t line, char *why, size_t whylen)
{
    ev_csv_reader_destroy(&self->csv);
    if (lseek(self->fd, (off_t)offset, SEEK_SET) < 0) {
        snprintf(why, whylen, "seek: %s", strerror(errno));
        return -1;
    }
    self->csv = ev_csv_reader_new(self->fd, self->opts.max_line);
    if (!self->csv) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    self->base_offset = offset;
    self->base_line = line - 1;
    return 0;
}

ingest_reader_t *ingest_reader_open(const char *path, const ingest_reader_opts_t *opts, const char *known_source,
                                    bool *header_refused, char *why, size_t whylen)
{
    *header_refused = false;
    ingest_reader_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->opts = *opts;
    if (self->opts.partitions < 1)
        self->opts.partitions = 1;
    self->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (self->fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        free(self);
        return NULL;
    }
    struct stat st;
    if (fstat(self->fd, &st) != 0) {
        snprintf(why, whylen, "stat: %s", strerror(errno));
        ingest_reader_destroy(&self);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        ingest_reader_destroy(&self);
        return NULL;
    }
    self->size = st.st_size;
    self->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    posix_fadvise(self->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    self->seq = calloc((size_t)self->opts.partitions, sizeof *self->seq);
    if (!self->seq || s_restart(self, 0, 1, why, whylen) != 0) {
        if (!self->seq)
            snprintf(why, whylen, "out of memory");
        ingest_reader_destroy(&self);
        return NULL;
    }

    int rc = ev_csv_reader_next(self->csv, &self->rec);
    if (rc < 0) {
        snprintf(why, whylen, "read: %s", strerror(errno));
        ingest_reader_destroy(&self);
        return NULL;
    }
    ev_error_t err = {0};
    if (rc == 0) {
        *header_refused = true;
        snprintf(why, whylen, "the file is empty (no header line)");
        ingest_reader_destroy(&self);
        return NULL;
    }
    if (ev_csv_map_header(&self->map, &self->rec, &err) != EV_OK) {
        *header_refused = true;
        snprintf(why, whylen, "%s", err.detail);
        ingest_reader_destroy(&self);
        return NULL;
    }
    self->data_offset = ev_csv_reader_offset(self->csv);
    self->data_line = self->rec.line + 1;

    if (self->map.layout == EV_CSV_OLD) {
        if (known_source && !s_known_matches(known_source, &self->opts)) {
            char mine[INGEST_SOURCE_MAX] = "file-<hash>";
            ingest_reader_source_suffix(mine, &self->opts);
            snprintf(why, whylen,
                     "its source %.64s was read with other PARTITIONS or INGEST_MAX_LINE than this process's "
                     "(which give %s): its identities cannot be derived again here",
                     known_source, mine);
            ingest_reader_destroy(&self);
            return NULL;
        }
        if (known_source) {
            snprintf(self->source, sizeof self->source, "%s", known_source);
        } else if (s_hash_source(self->fd, self->source, NULL, self->opts.hashing, self->opts.hashing_arg,
                                 (uint64_t)self->size, why, whylen) != 0) {
            ingest_reader_destroy(&self);
            return NULL;
        } else {
            ingest_reader_source_suffix(self->source, &self->opts);
        }
        self->source_len = (uint32_t)strlen(self->source);
    }
    return self;
}

void ingest_reader_destroy(ingest_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_reader_t *self = *self_p;
    ev_csv_reader_destroy(&self->csv);
    if (self->fd >= 0)
        close(self->fd);
    free(self->seq);
    free(self);
    *self_p = NULL;
}

ev_csv_layout_t ingest_reader_layout(const ingest_reader_t *self)
{
    return self->map.layout;
}

const char *ingest_reader_source(const ingest_reader_t *self)
{
    return self->source;
}

int64_t ingest_reader_size(const ingest_reader_t *self)
{
    return self->size;
}

int64_t ingest_reader_mtime_ns(const ingest_reader_t *self)
{
    return self->mtime_ns;
}

uint64_t ingest_reader_data_offset(const ingest_reader_t *self)
{
    return self->data_offset;
}

uint64_t ingest_reader_data_line(const ingest_reader_t *self)
{
    return self->data_line;
}

/* ---- Rows ---- */

int ingest_reader_next(ingest_reader_t *self, ingest_row_t *row, char *why, size_t whylen)
{
    int rc = ev_csv_reader_next(self->csv, &self->rec);
    if (rc < 0) {
        snprintf(why, whylen, "read: %s", strerror(errno));
        return -1;
    }
    if (rc == 0)
        return 0;
    const ev_csv_record_t *rec = &self->rec;
    row->line = rec->line + self->base_line;
    row->raw = rec->raw;
    row->raw_len = rec->raw_len;
    row->end_offset = self->base_offset + ev_csv_reader_offset(self->csv);
    row->err.code = EV_OK;
    row->err.detail[0] = '\0';
    row->code = ev_csv_parse_row(&self->map, rec, &row->ev, &row->err);
    if (row->code != EV_OK)
        return 1;
    if (self->map.layout == EV_CSV_OLD) {
        uint32_t p = ev_partition_of(row->ev.user_id, (uint32_t)self->opts.partitions);
        row->ev.source.ptr = self->source;
        row->ev.source.len = self->source_len;
        row->ev.partition = (int32_t)p;
        row->ev.seq = ++self->seq[p];
    } else if (row->ev.partition >= self->opts.partitions) {
        row->code = ev_error_set(&row->err, EV_REJECT_IDENTITY, "partition: %d is not below PARTITIONS=%d",
                                 (int)row->ev.partition, self->opts.partitions);
    }
    return 1;
}

int ingest_reader_seek(ingest_reader_t *self, uint64_t offset, uint64_t line, const int64_t *seq_before,
                       char *why, size_t whylen)
{
    for (int p = 0; p < self->opts.partitions; p++)
        self->seq[p] = seq_before ? seq_before[p] : 0;
    return s_restart(self, offset, line, why, whylen);
}
