/* The reject file of one ingested file (see ingest_rejects.h). */
#include "ingest_rejects.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/csv.h"
#include "evpipe/fsutil.h"

#define FLUSH_BYTES (256 * 1024)

struct ingest_rejects_t {
    char *file;      /* the ingested file, as named */
    char *dir;       /* STATE_DIR/rejects */
    char *path;      /* dir/<basename>.rejects.csv */
    int fd;          /* the reject file once created, else -1 */
    ev_buf_t out;    /* lines not yet written */
    uint64_t count;  /* rejects added */
};

ingest_rejects_t *ingest_rejects_new(const char *state_dir, const char *file)
{
    ingest_rejects_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    self->fd = -1;
    self->file = strdup(file);
    if (asprintf(&self->dir, "%s/rejects", state_dir) < 0)
        self->dir = NULL;
    if (asprintf(&self->path, "%s/rejects/%s.rejects.csv", state_dir, base) < 0)
        self->path = NULL;
    ev_buf_init(&self->out);
    if (!self->file || !self->dir || !self->path) {
        ingest_rejects_destroy(&self);
        return NULL;
    }
    return self;
}

void ingest_rejects_destroy(ingest_rejects_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_rejects_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    ev_buf_free(&self->out);
    free(self->file);
    free(self->dir);
    free(self->path);
    free(self);
    *self_p = NULL;
}

static int s_flush(ingest_rejects_t *self, char *why, size_t whylen)
{
    if (self->fd < 0) {
        if (evp_mkdirs(self->dir, why, whylen) != 0)
            return -1;
        self->fd = open(self->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (self->fd < 0) {
            snprintf(why, whylen, "%s: %s", self->path, strerror(errno));
            return -1;
        }
    }
    if (evp_write_all(self->fd, self->out.data, self->out.len, why, whylen) != 0)
        return -1;
    ev_buf_reset(&self->out);
    return 0;
}

int ingest_rejects_add(ingest_rejects_t *self, uint64_t line, const char *reason, const char *detail,
                       const char *raw, size_t raw_len, char *why, size_t whylen)
{
    if (self->count == 0)
        ev_buf_puts(&self->out, "file,line,reason,detail,raw\n");
    self->count++;
    ev_csv_append_field(&self->out, self->file, strlen(self->file));
    ev_buf_putc(&self->out, ',');
    ev_buf_put_i64(&self->out, (int64_t)line);
    ev_buf_putc(&self->out, ',');
    ev_csv_append_field(&self->out, reason, strlen(reason));
    ev_buf_putc(&self->out, ',');
    ev_csv_append_field(&self->out, detail, strlen(detail));
    ev_buf_putc(&self->out, ',');
    ev_csv_append_field(&self->out, raw, raw_len);
    ev_buf_putc(&self->out, '\n');
    if (self->out.len >= FLUSH_BYTES)
        return s_flush(self, why, whylen);
    return 0;
}

int ingest_rejects_close(ingest_rejects_t *self, char *why, size_t whylen)
{
    if (self->count == 0)
        return 0;
    if (s_flush(self, why, whylen) != 0)
        return -1;
    if (fsync(self->fd) != 0) {
        snprintf(why, whylen, "fsync %s: %s", self->path, strerror(errno));
        return -1;
    }
    close(self->fd);
    self->fd = -1;
    return 0;
}

const char *ingest_rejects_path(const ingest_rejects_t *self)
{
    return self->path;
}

const char *ingest_rejects_dir(const ingest_rejects_t *self)
{
    return self->dir;
}

uint64_t ingest_rejects_count(const ingest_rejects_t *self)
{
    return self->count;
}
