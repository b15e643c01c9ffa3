/* The writer's counters and its publish-to-commit latency histogram: plain
 * numbers that tests read and that metrics can export later. */
#ifndef WRITER_STATS_H
#define WRITER_STATS_H

#include <stdint.h>

#include "evpipe/event.h"

/* Log-scale buckets: 4 per power of two, from 1 us to 2^40 us (about 12 days). */
#define WRITER_LATENCY_BUCKETS 164

typedef struct {
    uint64_t buckets[WRITER_LATENCY_BUCKETS]; /* count per bucket (writer_latency_bucket) */
    uint64_t count;                           /* values recorded */
    int64_t max_us;                           /* largest value recorded */
} writer_latency_t;

typedef struct {
    uint64_t received;                      /* events decoded (bus and repair) */
    uint64_t committed;                     /* rows committed to events */
    uint64_t duplicates;                    /* events at or below what was already taken */
    uint64_t rejects[EV_REJECT__COUNT];     /* events committed to rejects, by reason */
    uint64_t rejects_total;                 /* sum of rejects[] */
    uint64_t undecodable;                   /* messages dropped: not an evpipe message */
    uint64_t heartbeats;                    /* heartbeats received */
    uint64_t holes;                         /* missing ranges found (one per new repair) */
    uint64_t repair_requests;               /* repair requests sent (with re-sends) */
    uint64_t repair_timeouts;               /* requests that were not answered in time */
    uint64_t repaired;                      /* events taken that came from a repair answer */
    uint64_t gaps;                          /* gap rows committed */
    uint64_t gap_events;                    /* seqs covered by those gaps */
    uint64_t batches;                       /* transactions committed */
    uint64_t commit_failures;               /* commits that had to be retried */
    uint64_t foreign;                       /* events of a partition this writer does not own */
    uint64_t unsettled[4];                  /* repair answers without evidence, by writer_wait_t */
    uint64_t evicted;                       /* held events freed: they waited on unproven claims */
    uint64_t streams_refused;               /* events and heartbeats of a new source refused (WRITER_SOURCES_MAX) */
    uint64_t streams_unread;                /* ... of a source whose checkpoint could not be read (asked for later) */
    uint64_t streams_forgotten;             /* settled sources forgotten after WRITER_STREAM_IDLE_MS */
    uint64_t partitions_differ;             /* heartbeats whose publisher's PARTITIONS is not this writer's */
    uint64_t leases_ended;                  /* other writers' sessions ended: their lease ran out */
    writer_latency_t latency;               /* published_at to commit, since the start */
    writer_latency_t latency_window;        /* the same since the last periodic log */
} writer_stats_t;

/* The bucket of a value in microseconds (negative values go to bucket 0). */
int writer_latency_bucket(int64_t us);
/* The largest value of a bucket, in microseconds. */
int64_t writer_latency_bucket_upper(int bucket);
void writer_latency_add(writer_latency_t *h, int64_t us);
void writer_latency_reset(writer_latency_t *h);
/* The p-th percentile (0 < p <= 100) as the upper bound of its bucket, in
 * microseconds; 0 when nothing was recorded. */
int64_t writer_latency_percentile(const writer_latency_t *h, double p);

#endif
