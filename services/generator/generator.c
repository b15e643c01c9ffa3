/* The generator's loop: pacing, batches, archive-then-publish, progress and
 * the clean stop (see generator.h). */
#include "generator.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evpipe/buf.h"
#include "evpipe/csv.h"
#include "evpipe/event.h"
#include "evpipe/log.h"
#include "evpipe/publisher.h"
#include "evpipe/sig.h"
#include "gen_archive.h"
#include "gen_fake.h"
#include "gen_metrics.h"
#include "gen_rng.h"

#define S_BATCH_MAX 1024        /* events archived with one write, then published */
#define S_PROGRESS_MS 10000     /* progress is logged this often */
#define S_LINGER_MS 30000       /* how long the last messages may take to leave (a moving bus takes far less) */
#define S_TICK_MIN_NS 1000000LL /* steady rate: never sleep less than 1 ms ... */
#define S_TICK_MAX_NS 50000000LL /* ... nor more than 50 ms (signals, heartbeats) */

struct generator_t {
    evp_config_t cfg;         /* the settings */
    uint64_t count;           /* stop after this many events; 0: never */
    uint64_t seed;            /* the seed in use (GENERATOR_SEED or a fresh one) */
    bool fresh_seed;          /* seed was picked at start, not set */
    gen_rng_t rng_events;     /* draws users, products, types */
    gen_rng_t rng_bursts;     /* draws burst sizes (apart, so events do not depend on the mode) */
    gen_fake_t *fake;         /* users and catalogue */
    gen_archive_t *archive;   /* the write-ahead log, locked */
    evp_publisher_t *pub;     /* the bus */
    gen_metrics_t *metrics;   /* counters and /healthz on METRICS_PORT */
    ev_str_t source;          /* our source id (held by archive) */
    uint32_t partitions;      /* PARTITIONS */
    int64_t *last_seq;        /* per partition: the latest seq given out */
    ev_event_t *batch;        /* the current batch, S_BATCH_MAX events */
    ev_buf_t rows;            /* the current batch as CSV rows */
    uint64_t events;          /* events archived since the start */
    uint64_t published;       /* events the publisher had sent when last counted */
    uint64_t untried;         /* archived events not given to the publisher (it stopped) */
    uint64_t rate_skipped;    /* events the steady rate gave up on while far behind */
    int64_t started_ns;       /* monotonic ns when generation began */
    int64_t progress_ns;      /* when progress was last logged */
    uint64_t progress_events; /* events at that time */
    bool failed;              /* the archive failed: stop with exit code 1 */
};

int generator_parse_count(const char *text, uint64_t *count, char *why, size_t whylen)
{
    char *end;
    errno = 0;
    unsigned long long v = text && *text != '-' ? strtoull(text, &end, 10) : 0;
    if (!text || !*text || *text == '-' || errno || *end || v == 0) {
        snprintf(why, whylen, "--count %s: a positive number of events was expected", text ? text : "");
        return -1;
    }
    *count = v;
    return 0;
}

/* ---- Setup ---- */

static void s_rate_text(const evp_config_t *cfg, char *out, size_t len)
{
    if (cfg->generator_rate < 0)
        snprintf(out, len, "max");
    else if (cfg->generator_rate > 0)
        snprintf(out, len, "%g", cfg->generator_rate);
    else
        snprintf(out, len, "bursts");
}

generator_t *generator_new(const evp_config_t *cfg, uint64_t count, char *why, size_t whylen)
{
    generator_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->count = count;
    self->partitions = (uint32_t)cfg->partitions;
    ev_buf_init(&self->rows);
    self->fresh_seed = cfg->generator_seed == 0;
    self->seed = self->fresh_seed ? gen_rng_fresh_seed() : (uint64_t)cfg->generator_seed;
    gen_rng_seed(&self->rng_events, self->seed);
    gen_rng_seed(&self->rng_bursts, gen_rng_mix(self->seed ^ 0x6275727374ULL));

    /* The archive first: a locked directory stops us before anything else. */
    self->archive = gen_archive_new(cfg, why, whylen);
    if (!self->archive)
        goto fail;
    self->source = gen_archive_source(self->archive);
    self->fake = gen_fake_new(cfg->event_types, why, whylen);
    if (!self->fake)
        goto fail;

    /* A new source each start (gen_archive.h): every seq starts at 1. */
    self->last_seq = calloc(self->partitions, sizeof *self->last_seq);
    self->batch = calloc(S_BATCH_MAX, sizeof *self->batch);
    if (!self->last_seq || !self->batch) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }

    self->pub = evp_publisher_new(cfg, why, whylen);
    if (!self->pub)
        goto fail;
    self->metrics = gen_metrics_new();
    if (!self->metrics) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    evp_gauge_t *bus_connected = evp_publisher_metrics(self->pub, gen_metrics_registry(self->metrics));
    if (gen_metrics_serve(self->metrics, cfg->metrics_port, bus_connected, why, whylen) != 0)
        goto fail;
    return self;
fail:
    generator_destroy(&self);
    return NULL;
}

void generator_destroy(generator_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    generator_t *self = *self_p;
    /* The HTTP thread first: it reads the publisher's gauge. */
    gen_metrics_destroy(&self->metrics);
    evp_publisher_destroy(&self->pub, S_LINGER_MS);
    gen_archive_destroy(&self->archive);
    gen_fake_destroy(&self->fake);
    ev_buf_free(&self->rows);
    free(self->batch);
    free(self->last_seq);
    free(self);
    *self_p = NULL;
}

/* ---- One batch: archive, then publish ---- */

/* Makes n events, appends them to the archive with one write, then gives
 * them to the publisher. Returns 0, or -1 when the archive failed. */
static int s_emit(generator_t *self, size_t n)
{
    assert(n > 0 && n <= S_BATCH_MAX);
    ev_buf_reset(&self->rows);
    for (size_t i = 0; i < n; i++) {
        ev_event_t *ev = &self->batch[i];
        gen_fake_next(self->fake, &self->rng_events, ev_now_us(), ev);
        ev->source = self->source;
        ev->partition = (int32_t)ev_partition_of(ev->user_id, self->partitions);
        ev->seq = ++self->last_seq[ev->partition];
        ev->published_at = 0;
        ev_csv_append_row(&self->rows, ev, EV_CSV_ARCHIVE);
    }
    gen_metrics_generated(self->metrics, n);
    char why[EVP_WHY_MAX];
    if (gen_archive_write(self->archive, self->rows.data, self->rows.len, n, why, sizeof why) != 0) {
        evp_error("archive write failed; nothing of the batch is published", "error=\"%s\" events=%zu", why, n);
        gen_metrics_archive_failed(self->metrics, why);
        self->failed = true;
        return -1;
    }
    self->events += n;
    gen_metrics_archived(self->metrics, n);
    for (size_t i = 0; i < n; i++) {
        if (evp_publisher_send(self->pub, &self->batch[i]) == 0 || !evp_stopping())
            continue;
        /* Archived: writers repair them from the archive, once the last
         * heartbeats tell them these seqs exist (the publisher announces
         * those it could not send; the rest are not tried). */
        self->untried += n - i - 1;
        for (size_t j = i + 1; j < n; j++)
            evp_publisher_set_latest(self->pub, self->batch[j].source, self->batch[j].partition,
                                     self->batch[j].seq);
        break;
    }
    return 0;
}

/* Counts the events the publisher handed to the bus since the last count:
 * events_published_total follows what left, not what waits in a body. */
static void s_count_published(generator_t *self)
{
    uint64_t sent = evp_publisher_sent(self->pub);
    gen_metrics_published(self->metrics, sent - self->published);
    self->published = sent;
}

/* Archived events that were not published: not tried, or not sent. */
static uint64_t s_unpublished(const generator_t *self)
{
    return self->untried + evp_publisher_unsent(self->pub);
}

/* Heartbeats, archive syncs and progress; call between batches. */
static int s_housekeeping(generator_t *self)
{
    evp_publisher_tick(self->pub);
    s_count_published(self);
    char why[EVP_WHY_MAX];
    if (gen_archive_tick(self->archive, why, sizeof why) != 0) {
        evp_error("archive sync failed", "error=\"%s\"", why);
        gen_metrics_archive_failed(self->metrics, why);
        self->failed = true;
        return -1;
    }
    gen_metrics_tick(self->metrics, gen_archive_syncs(self->archive));
    int64_t now = zclock_usecs() * 1000;
    if (now - self->progress_ns >= S_PROGRESS_MS * 1000000LL) {
        double secs = (double)(now - self->progress_ns) / 1e9;
        evp_info("progress", "events=%llu rate=%.0f files=%llu unpublished=%llu",
                 (unsigned long long)self->events, (double)(self->events - self->progress_events) / secs,
                 (unsigned long long)gen_archive_files_opened(self->archive),
                 (unsigned long long)s_unpublished(self));
        self->progress_ns = now;
        self->progress_events = self->events;
    }
    return 0;
}

static bool s_done(const generator_t *self)
{
    return self->failed || evp_stopping() || (self->count && self->events >= self->count);
}

/* At most n, and no more than --count leaves. */
static size_t s_limit(const generator_t *self, uint64_t n)
{
    if (n > S_BATCH_MAX)
        n = S_BATCH_MAX;
    if (self->count && n > self->count - self->events)
        n = self->count - self->events;
    return (size_t)n;
}

/* ---- Modes ---- */

/* GENERATOR_RATE=max: full batches, back to back. */
static void s_run_max(generator_t *self)
{
    while (!s_done(self)) {
        if (s_emit(self, s_limit(self, S_BATCH_MAX)) != 0 || s_housekeeping(self) != 0)
            return;
    }
}

/* GENERATOR_RATE=N: what is due by a monotonic clock, in small ticks. */
static void s_run_rate(generator_t *self)
{
    double rate = self->cfg.generator_rate;
    /* Never owe more than a second (or a batch): after a long stall the
     * rate resumes instead of bursting to catch up. */
    uint64_t max_debt = rate > S_BATCH_MAX ? (uint64_t)rate : S_BATCH_MAX;
    int64_t t0 = zclock_usecs() * 1000;
    uint64_t paced = 0; /* events counted against the clock since t0 */
    while (!s_done(self)) {
        int64_t now = zclock_usecs() * 1000;
        uint64_t due_total = (uint64_t)(rate * (double)(now - t0) / 1e9);
        if (due_total > paced) {
            uint64_t due = due_total - paced;
            if (due > max_debt) {
                self->rate_skipped += due - max_debt;
                paced += due - max_debt;
                due = max_debt;
            }
            size_t n = s_limit(self, due);
            if (s_emit(self, n) != 0 || s_housekeeping(self) != 0)
                return;
            paced += n;
            continue;
        }
        /* Nothing is due: what waits in bodies goes before the sleep. */
        evp_publisher_flush(self->pub);
        if (s_housekeeping(self) != 0)
            return;
        int64_t next = t0 + (int64_t)((double)(paced + 1) * 1e9 / rate);
        int64_t wait = next - zclock_usecs() * 1000;
        zclock_sleep(
            (int)((wait < S_TICK_MIN_NS ? S_TICK_MIN_NS : wait > S_TICK_MAX_NS ? S_TICK_MAX_NS : wait) / 1000000));
    }
}

/* GENERATOR_RATE empty: like the old generator, a burst of MIN_EVENTS..
 * MAX_EVENTS events, then SLEEP_INTERVAL seconds of rest. */
static void s_run_bursts(generator_t *self)
{
    const evp_config_t *c = &self->cfg;
    while (!s_done(self)) {
        uint64_t burst = (uint64_t)c->min_events +
                         gen_rng_below(&self->rng_bursts, (uint32_t)(c->max_events - c->min_events + 1));
        evp_debug("burst", "events=%llu", (unsigned long long)burst);
        while (burst > 0 && !s_done(self)) {
            size_t n = s_limit(self, burst);
            if (s_emit(self, n) != 0 || s_housekeeping(self) != 0)
                return;
            burst -= n;
        }
        evp_publisher_flush(self->pub); /* the burst leaves before the rest */
        int64_t end = zclock_usecs() * 1000 + (int64_t)(c->sleep_interval * 1e9);
        while (!s_done(self)) {
            int64_t left = end - zclock_usecs() * 1000;
            if (left <= 0)
                break;
            if (s_housekeeping(self) != 0)
                return;
            /* Whole ms, rounded up; a signal cuts it short: the loop looks at it. */
            zclock_sleep((int)(((left < 100000000LL ? left : 100000000LL) + 999999) / 1000000));
        }
    }
}

/* ---- Run ---- */

int generator_run(generator_t *self)
{
    char rate[32];
    s_rate_text(&self->cfg, rate, sizeof rate);
    evp_info("generator started",
             "source=%.*s seed=%llu seed_from=%s archive=\"%s\" rate=%s partitions=%u event_types=%s count=%llu",
             (int)self->source.len, self->source.ptr, (unsigned long long)self->seed,
             self->fresh_seed ? "random" : "GENERATOR_SEED", self->cfg.archive_dir, rate, self->partitions,
             self->cfg.event_types, (unsigned long long)self->count);

    /* Nothing is made before the bus listens: the first events are not
     * lost to a slow joiner. */
    if (evp_publisher_wait_bus(self->pub, -1) != 0) {
        evp_info("stopped before the bus was there", "events=0");
        return 0;
    }
    evp_publisher_heartbeat_now(self->pub);
    self->started_ns = zclock_usecs() * 1000;
    self->progress_ns = self->started_ns;

    if (self->cfg.generator_rate < 0)
        s_run_max(self);
    else if (self->cfg.generator_rate > 0)
        s_run_rate(self);
    else
        s_run_bursts(self);

    char why[EVP_WHY_MAX];
    if (gen_archive_sync(self->archive, why, sizeof why) != 0) {
        evp_error("archive sync failed", "error=\"%s\"", why);
        gen_metrics_archive_failed(self->metrics, why);
        self->failed = true;
    }
    gen_metrics_tick(self->metrics, gen_archive_syncs(self->archive));
    evp_publisher_heartbeat_now(self->pub); /* what waits in bodies first */
    s_count_published(self);
    double secs = (double)(zclock_usecs() * 1000 - self->started_ns) / 1e9;
    evp_info("generator stopped",
             "events=%llu files=%llu seconds=%.3f rate=%.0f unpublished=%llu rate_skipped=%llu reason=%s",
             (unsigned long long)self->events, (unsigned long long)gen_archive_files_opened(self->archive), secs,
             secs > 0 ? (double)self->events / secs : 0.0, (unsigned long long)s_unpublished(self),
             (unsigned long long)self->rate_skipped,
             self->failed ? "archive-failure" : evp_stopping() ? "signal" : "count");
    return self->failed ? 1 : 0;
}
