/* Replaying one CSV file onto the bus (see ingest_file.h). */
#include "ingest_file.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "ingest_reader.h"
#include "ingest_rejects.h"

/* Rows between checks of the bus connection and of a stop request. */
#define CHECK_EVERY 4096
/* Rows between updates of the metrics and the progress (one clock read). */
#define TICK_EVERY 1024

const char *ingest_file_status_name(ingest_file_status_t status)
{
    switch (status) {
    case INGEST_FILE_DONE:
        return "done";
    case INGEST_FILE_REFUSED:
        return "refused";
    case INGEST_FILE_FAILED:
        return "failed";
    case INGEST_FILE_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* The ledger entry of the file as it stands. */
static void s_entry(ingest_ledger_entry_t *e, const ingest_file_result_t *res, const ingest_reader_t *r,
                    const ingest_heads_t *heads)
{
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", res->path);
    e->size = ingest_reader_size(r);
    e->mtime_ns = ingest_reader_mtime_ns(r);
    if (ingest_reader_layout(r) == EV_CSV_OLD)
        snprintf(e->sources, sizeof e->sources, "%s", ingest_reader_source(r));
    else
        ingest_heads_list(heads, e->sources, sizeof e->sources);
    e->rows = res->rows;
    e->published = res->published;
    e->rejected = res->rejected;
    e->finished_us = ev_now_us();
}

/* Counts what was read and published since the last tick into the metrics,
 * shows the progress, notes that the loop turns. */
static void s_tick(const ingest_file_ctx_t *ctx, const ingest_file_result_t *res, uint64_t offset,
                   uint64_t *counted_rows, uint64_t *counted_published)
{
    ingest_metrics_rows(ctx->metrics, res->rows - *counted_rows, res->published - *counted_published);
    *counted_rows = res->rows;
    *counted_published = res->published;
    ingest_metrics_beat(ctx->metrics);
    ingest_progress_update(ctx->progress, res->rows, offset);
}

/* The hash pass of an old-format file: progress, and the loop is alive. */
static void s_hashing(void *arg, uint64_t bytes, uint64_t size)
{
    const ingest_file_ctx_t *ctx = arg;
    ingest_metrics_beat(ctx->metrics);
    ingest_progress_hashing(ctx->progress, bytes, size);
}

/* Events of the file the publisher has handed to the bus since it had
 * sent sent0 (those waiting in a body are counted once they leave). */
static void s_count_published(const ingest_file_ctx_t *ctx, ingest_file_result_t *res, uint64_t sent0)
{
    res->published = evp_publisher_sent(ctx->publisher) - sent0;
}

/* Waits for a bus that went away; false when it did not come back. */
static bool s_bus_back(const ingest_file_ctx_t *ctx, ingest_file_result_t *res)
{
    if (evp_publisher_connected(ctx->publisher))
        return true;
    evp_publisher_flush(ctx->publisher); /* nothing waits in a body while we wait */
    evp_warn("the bus went away; waiting for it before going on", "file=\"%s\" published=%" PRIu64, res->path,
             res->published);
    if (evp_publisher_wait_bus(ctx->publisher, ctx->bus_timeout_ms) == 0)
        return true;
    if (evp_stopping()) {
        res->status = INGEST_FILE_STOPPED;
        snprintf(res->why, sizeof res->why, "stopped while waiting for the bus");
    } else {
        res->status = INGEST_FILE_FAILED;
        snprintf(res->why, sizeof res->why, "the bus did not come back within %d ms", ctx->bus_timeout_ms);
    }
    return false;
}

/* The file failed in what (the reject file, the ledger) because of why.
 * why is as long as res->why may be: the end of a long one is cut off, so
 * that the message still starts by naming what failed. */
static void s_fail(ingest_file_result_t *res, const char *what, const char *why)
{
    res->status = INGEST_FILE_FAILED;
    int room = (int)(sizeof res->why - strlen(what) - sizeof ": ");
    snprintf(res->why, sizeof res->why, "%s: %.*s", what, room > 0 ? room : 0, why);
}

/* A send the publisher could not make: the service stops, or the bus refused. */
static void s_send_failed(ingest_file_result_t *res)
{
    res->status = evp_stopping() ? INGEST_FILE_STOPPED : INGEST_FILE_FAILED;
    snprintf(res->why, sizeof res->why, "%s", evp_stopping() ? "stopped" : "the bus refused a send");
}

void ingest_file_replay(const ingest_file_ctx_t *ctx, const char *path, ingest_heads_t *heads,
                        ingest_file_result_t *res)
{
    memset(res, 0, sizeof *res);
    double t0 = (double)zclock_usecs() / 1e6;
    if (!realpath(path, res->path)) {
        res->status = INGEST_FILE_REFUSED;
        snprintf(res->path, sizeof res->path, "%s", path);
        snprintf(res->why, sizeof res->why, "cannot open: %s", strerror(errno));
        evp_error("file refused", "file=\"%s\" error=\"%s\"", path, res->why);
        return;
    }
    ingest_reader_opts_t ro = {.partitions = ctx->cfg->partitions,
                               .max_line = (size_t)ctx->cfg->ingest_max_line,
                               .hashing = s_hashing,
                               .hashing_arg = (void *)ctx};
    bool refused = false;
    struct stat st0;
    ingest_progress_start(ctx->progress, res->path, stat(res->path, &st0) == 0 ? (uint64_t)st0.st_size : 0);
    ingest_reader_t *r = ingest_reader_open(res->path, &ro, NULL, &refused, res->why, sizeof res->why);
    if (!r) {
        ingest_progress_finish(ctx->progress, 0, 0);
        res->status = INGEST_FILE_REFUSED;
        evp_error("file refused", "file=\"%s\" error=\"%s\"", res->path, res->why);
        return;
    }
    ingest_heads_t *mine = ingest_heads_new(ctx->cfg->partitions);
    ingest_rejects_t *rejects = ingest_rejects_new(ctx->cfg->state_dir, res->path);
    if (!mine || !rejects) {
        res->status = INGEST_FILE_FAILED;
        snprintf(res->why, sizeof res->why, "out of memory");
        goto done;
    }
    bool old = ingest_reader_layout(r) == EV_CSV_OLD;
    snprintf(res->source, sizeof res->source, "%s", ingest_reader_source(r));
    ingest_ledger_entry_t entry;
    s_entry(&entry, res, r, mine);
    ingest_ledger_set_active(ctx->ledger, &entry);
    evp_info("file started", "file=\"%s\" format=%s source=%s", res->path, old ? "old" : "archive",
             old ? res->source : "(its columns)");

    size_t nsources = 0;
    ingest_row_t row;
    int rc;
    char why[EVP_WHY_MAX];
    uint64_t offset = ingest_reader_data_offset(r); /* just past the last record read */
    uint64_t counted_rows = 0, counted_published = 0; /* as far as the metrics know */
    uint64_t sent0 = evp_publisher_sent(ctx->publisher);
    ingest_progress_update(ctx->progress, 0, offset);
    res->status = INGEST_FILE_DONE;
    while ((rc = ingest_reader_next(r, &row, why, sizeof why)) > 0) {
        res->rows++;
        offset = row.end_offset;
        if (res->rows % TICK_EVERY == 0) {
            s_count_published(ctx, res, sent0);
            s_tick(ctx, res, offset, &counted_rows, &counted_published);
        }
        if (ctx->committed && (row.code != EV_OK ||
                               row.ev.seq <= ingest_heads_get(ctx->committed, row.ev.source, row.ev.partition)))
            continue; /* a resend: already rejected once, or committed */
        if (row.code != EV_OK) {
            res->rejected++;
            ingest_metrics_reject(ctx->metrics, row.code);
            if (ingest_rejects_add(rejects, row.line, ev_reject_name(row.code), row.err.detail, row.raw,
                                   row.raw_len, why, sizeof why) != 0) {
                s_fail(res, "reject file", why);
                break;
            }
            continue;
        }
        if (evp_publisher_send(ctx->publisher, &row.ev) != 0) {
            s_send_failed(res);
            break;
        }
        ingest_heads_note(mine, row.ev.source, row.ev.partition, row.ev.seq);
        if (!old && ingest_heads_count(mine) != nsources) {
            /* A new source in an archive file: repairs may ask for it now. */
            nsources = ingest_heads_count(mine);
            if (!res->source[0])
                snprintf(res->source, sizeof res->source, "%.*s", (int)row.ev.source.len, row.ev.source.ptr);
            s_entry(&entry, res, r, mine);
            ingest_ledger_set_active(ctx->ledger, &entry);
        }
        if (res->rows % CHECK_EVERY == 0) {
            if (evp_stopping()) {
                res->status = INGEST_FILE_STOPPED;
                snprintf(res->why, sizeof res->why, "stopped");
                break;
            }
            if (!s_bus_back(ctx, res))
                break;
        }
    }
    if (rc < 0) {
        res->status = INGEST_FILE_FAILED;
        snprintf(res->why, sizeof res->why, "%s", why);
    }
    /* The file's last events leave before it can count as done. */
    if (evp_publisher_flush(ctx->publisher) != 0 && res->status == INGEST_FILE_DONE)
        s_send_failed(res);
    s_count_published(ctx, res, sent0);
    s_tick(ctx, res, offset, &counted_rows, &counted_published);
    ingest_progress_finish(ctx->progress, res->rows, offset);
    if (ingest_rejects_close(rejects, why, sizeof why) != 0 && res->status == INGEST_FILE_DONE) {
        s_fail(res, "reject file", why);
    }
    if (res->rejected)
        snprintf(res->reject_path, sizeof res->reject_path, "%s", ingest_rejects_path(rejects));
    ingest_heads_merge(heads, mine);

    if (res->status == INGEST_FILE_DONE && !ctx->committed) {
        struct stat st;
        if (stat(res->path, &st) == 0 &&
            (st.st_size != ingest_reader_size(r) ||
             (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != ingest_reader_mtime_ns(r)))
            evp_warn("file changed while it was read; the ledger keeps its size and mtime from before",
                     "file=\"%s\"", res->path);
        s_entry(&entry, res, r, mine);
        if (ingest_ledger_append(ctx->ledger, &entry, why, sizeof why) != 0) {
            s_fail(res, "ledger", why);
        }
    }

done:
    ingest_progress_finish(ctx->progress, res->rows, 0); /* if not finished above */
    /* Finished, the file is served from its ledger line from now on. */
    ingest_ledger_set_active(ctx->ledger, NULL);
    res->seconds = (double)zclock_usecs() / 1e6 - t0;
    if (res->status == INGEST_FILE_DONE)
        ingest_metrics_file_done(ctx->metrics);
    if (res->status == INGEST_FILE_DONE)
        evp_info("file finished", "file=\"%s\" rows=%" PRIu64 " published=%" PRIu64 " rejected=%" PRIu64
                 " seconds=%.3f",
                 res->path, res->rows, res->published, res->rejected, res->seconds);
    else
        evp_error("file not finished", "file=\"%s\" status=%s error=\"%s\" rows=%" PRIu64 " published=%" PRIu64
                  " rejected=%" PRIu64,
                  res->path, ingest_file_status_name(res->status), res->why, res->rows, res->published,
                  res->rejected);
    ingest_rejects_destroy(&rejects);
    ingest_heads_destroy(&mine);
    ingest_reader_destroy(&r);
}
