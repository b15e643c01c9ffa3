/* The writer's Prometheus metrics (see writer_metrics.h). */
#include "writer_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/event.h"
#include "evpipe/metrics.h"

/* The main loop turns at least every 100 ms; 5 s without a turn is a fault. */
#define S_LOOP_MAX_AGE_S 5.0

struct writer_metrics_t {
    evp_metrics_t *registry;      /* "writer", owned */
    evp_counter_t *received;      /* events_received_total */
    evp_counter_t *committed;     /* events_committed_total */
    evp_counter_t *duplicates;    /* duplicates_total */
    evp_counter_t *rejects;       /* rejects_total{reason} */
    evp_counter_t *undecodable;   /* undecodable_total */
    evp_counter_t *batches;       /* batches_total */
    evp_counter_t *holes;         /* holes_found_total */
    evp_counter_t *repaired;      /* repaired_events_total */
    evp_counter_t *gaps;          /* gaps_recorded_total */
    evp_counter_t *unsettled;     /* repairs_unsettled_total{reason} */
    evp_counter_t *evicted;       /* held_evicted_total */
    evp_counter_t *refused;       /* streams_refused_total */
    evp_counter_t *unread;        /* streams_unread_total */
    evp_counter_t *forgotten;     /* streams_forgotten_total */
    evp_counter_t *partitions_differ; /* heartbeats_partitions_differ_total */
    evp_counter_t *leases_ended;  /* leases_ended_total */
    evp_counter_t *repair_timeouts; /* repair_timeouts_total */
    evp_histogram_t *batch_rows;  /* rows per committed batch */
    evp_histogram_t *commit_s;    /* commit time */
    evp_histogram_t *latency_s;   /* published_at to commit */
    evp_gauge_t *owned;           /* partitions_owned */
    evp_gauge_t *connected;       /* postgres_connected */
    evp_gauge_t *partitions;      /* partitions: the PARTITIONS setting */
    writer_stats_t pushed;        /* the counters as last pushed */
};

writer_metrics_t *writer_metrics_new(void)
{
    writer_metrics_t *self = calloc(1, sizeof *self);
    if (!self || !(self->registry = evp_metrics_new("writer"))) {
        free(self);
        return NULL;
    }
    evp_metrics_t *m = self->registry;
    self->received = evp_counter_new(m, "events_received_total", "Events decoded, from the bus and from repair answers.");
    self->committed = evp_counter_new(m, "events_committed_total", "Rows committed to the events table.");
    self->duplicates = evp_counter_new(m, "duplicates_total",
                                       "Events skipped: at or below what was already taken or committed.");
    const char *reasons[EV_REJECT__COUNT];
    for (int i = 0; i < EV_REJECT__COUNT; i++)
        reasons[i] = ev_reject_name((ev_reject_t)i);
    self->rejects = evp_counter_new_labeled(m, "rejects_total", "Events committed to the rejects table, by reason.",
                                            "reason", reasons, EV_REJECT__COUNT);
    self->undecodable = evp_counter_new(m, "undecodable_total", "Messages dropped: not valid evpipe messages.");
    self->batches = evp_counter_new(m, "batches_total", "Transactions committed: one batch with its checkpoints.");
    self->holes = evp_counter_new(m, "holes_found_total", "Missing seq ranges found, one per new repair request.");
    self->repaired = evp_counter_new(m, "repaired_events_total", "Events committed that came from repair answers.");
    self->gaps = evp_counter_new(m, "gaps_recorded_total", "Rows written to gaps: ranges that could not be repaired.");
    static const char *const waits[] = {"none", "unknown_source", "beyond_archive", "refused"};
    self->unsettled = evp_counter_new_labeled(
        m, "repairs_unsettled_total",
        "Repair answers that left part of a hole without evidence (asked again later, never a gap), by reason.",
        "reason", waits, 4);
    self->refused = evp_counter_new(m, "streams_refused_total",
                                    "Events and heartbeats of a new source refused: its partition had WRITER_SOURCES_MAX.");
    self->unread = evp_counter_new(m, "streams_unread_total",
                                   "Events and heartbeats of a source new to this writer whose checkpoint could not be "
                                   "read (PostgreSQL unavailable): asked for again later.");
    self->forgotten = evp_counter_new(m, "streams_forgotten_total",
                                      "Sources forgotten: everything committed and nothing heard for "
                                      "WRITER_STREAM_IDLE_MS.");
    self->evicted = evp_counter_new(m, "held_evicted_total",
                                    "Held events freed while the holdback was full: they waited on unproven claims.");
    self->partitions_differ = evp_counter_new(m, "heartbeats_partitions_differ_total",
                                              "Heartbeats of publishers running with another PARTITIONS.");
    static const double rows[] = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000};
    static const double commit[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const double latency[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60,  300};
    self->batch_rows = evp_histogram_new(m, "batch_rows", "Rows per committed batch.", rows, 12);
    self->commit_s = evp_histogram_new(m, "commit_seconds",
                                       "Time to write and commit one batch (COPY, checkpoints, COMMIT), in seconds.",
                                       commit, 13);
    self->latency_s = evp_histogram_new(m, "publish_to_commit_seconds",
                                        "Time from an event's published_at to the commit that stored it, in seconds.",
                                        latency, 16);
    self->leases_ended = evp_counter_new(m, "leases_ended_total",
                                         "Other writers' sessions this writer ended because their lease ran out "
                                         "(WRITER_LEASE_MS); their partitions were shared out.");
    self->repair_timeouts = evp_counter_new(m, "repair_timeouts_total",
                                            "Repair requests that were not answered in time (asked again).");
    self->owned = evp_gauge_new(m, "partitions_owned", "Partitions this writer owns now.");
    self->partitions = evp_gauge_new(m, "partitions",
                                     "Partitions of the deployment (PARTITIONS): the writers together own them all.");
    self->connected = evp_gauge_new(m, "postgres_connected",
                                    "1 while the PostgreSQL connection is up, 0 while the writer reconnects.");
    return self;
}

void writer_metrics_destroy(writer_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evp_metrics_destroy(&(*self_p)->registry);
    free(*self_p);
    *self_p = NULL;
}

/* Runs on the HTTP thread: reads atomics only. */
static bool s_health(void *arg, char *detail, size_t len)
{
    writer_metrics_t *self = arg;
    if (evp_gauge_value(self->connected) == 0) {
        snprintf(detail, len, "postgres: connection lost");
        return false;
    }
    if (!evp_metrics_loop_ok(self->registry, S_LOOP_MAX_AGE_S, detail, len))
        return false;
    snprintf(detail, len, "partitions=%lld", (long long)evp_gauge_value(self->owned));
    return true;
}

int writer_metrics_serve(writer_metrics_t *self, int port, char *why, size_t whylen)
{
    return evp_metrics_serve(self->registry, port, s_health, self, why, whylen);
}

static void s_push(evp_counter_t *c, uint64_t now, uint64_t *was)
{
    if (now > *was)
        evp_counter_add(c, now - *was);
    *was = now;
}

void writer_metrics_sync(writer_metrics_t *self, const writer_stats_t *st, size_t partitions_owned,
                         bool postgres_connected)
{
    if (!self)
        return;
    writer_stats_t *p = &self->pushed;
    s_push(self->received, st->received, &p->received);
    s_push(self->committed, st->committed, &p->committed);
    s_push(self->duplicates, st->duplicates, &p->duplicates);
    s_push(self->undecodable, st->undecodable, &p->undecodable);
    s_push(self->batches, st->batches, &p->batches);
    s_push(self->holes, st->holes, &p->holes);
    s_push(self->repaired, st->repaired, &p->repaired);
    s_push(self->gaps, st->gaps, &p->gaps);
    s_push(self->evicted, st->evicted, &p->evicted);
    s_push(self->refused, st->streams_refused, &p->streams_refused);
    s_push(self->unread, st->streams_unread, &p->streams_unread);
    s_push(self->forgotten, st->streams_forgotten, &p->streams_forgotten);
    for (size_t i = 0; i < 4; i++)
        if (st->unsettled[i] > p->unsettled[i]) {
            evp_counter_add_at(self->unsettled, i, st->unsettled[i] - p->unsettled[i]);
            p->unsettled[i] = st->unsettled[i];
        }
    s_push(self->partitions_differ, st->partitions_differ, &p->partitions_differ);
    s_push(self->leases_ended, st->leases_ended, &p->leases_ended);
    s_push(self->repair_timeouts, st->repair_timeouts, &p->repair_timeouts);
    for (int i = 0; i < EV_REJECT__COUNT; i++)
        if (st->rejects[i] > p->rejects[i]) {
            evp_counter_add_at(self->rejects, (size_t)i, st->rejects[i] - p->rejects[i]);
            p->rejects[i] = st->rejects[i];
        }
    evp_gauge_set(self->owned, (int64_t)partitions_owned);
    evp_gauge_set(self->connected, postgres_connected ? 1 : 0);
    evp_metrics_beat(self->registry);
}

void writer_metrics_set_partitions(writer_metrics_t *self, int partitions)
{
    if (self)
        evp_gauge_set(self->partitions, partitions);
}

void writer_metrics_batch(writer_metrics_t *self, size_t rows, double seconds)
{
    if (!self)
        return;
    evp_histogram_observe(self->batch_rows, (double)rows);
    evp_histogram_observe(self->commit_s, seconds);
}

void writer_metrics_latency(writer_metrics_t *self, double seconds)
{
    if (self)
        evp_histogram_observe(self->latency_s, seconds);
}

void writer_metrics_render(writer_metrics_t *self, ev_buf_t *out)
{
    evp_metrics_render(self->registry, out);
}
