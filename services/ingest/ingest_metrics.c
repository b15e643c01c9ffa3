/* Ingest's Prometheus metrics (see ingest_metrics.h). */
#include "ingest_metrics.h"

#include <stdio.h>
#include <stdlib.h>

struct ingest_metrics_t {
    evp_metrics_t *registry;      /* "ingest", owned */
    evp_counter_t *rows_read;     /* rows_read_total */
    evp_counter_t *rows_published;/* rows_published_total */
    evp_counter_t *rows_rejected; /* rows_rejected_total{reason} */
    evp_counter_t *files;         /* files_ingested_total */
    evp_counter_t *repairs;       /* repair_requests_total */
    evp_counter_t *repair_events; /* repair_events_sent_total */
    evp_gauge_t *repair_bound;    /* repair_bound: 1 while REPLAY_ENDPOINT is bound here */
    evp_gauge_t *bus;             /* the publisher's bus_connected (not owned), or NULL */
    bool watching;                /* watch mode: the repair endpoint is required */
    double max_age_s;             /* the loop may go this long without a beat */
};

ingest_metrics_t *ingest_metrics_new(void)
{
    ingest_metrics_t *self = calloc(1, sizeof *self);
    if (!self || !(self->registry = evp_metrics_new("ingest"))) {
        free(self);
        return NULL;
    }
    self->max_age_s = 5.0;
    evp_metrics_t *m = self->registry;
    self->rows_read = evp_counter_new(m, "rows_read_total", "CSV rows read, from files and the watched folder.");
    self->rows_published = evp_counter_new(m, "rows_published_total", "Rows published on the bus as events.");
    /* One series per reason, EV_OK excluded: series i is reason i + 1. */
    const char *reasons[EV_REJECT__COUNT - 1];
    for (int i = 1; i < EV_REJECT__COUNT; i++)
        reasons[i - 1] = ev_reject_name((ev_reject_t)i);
    self->rows_rejected = evp_counter_new_labeled(m, "rows_rejected_total",
                                                  "Rows refused, by reason (written to the file's reject file).",
                                                  "reason", reasons, EV_REJECT__COUNT - 1);
    self->files = evp_counter_new(m, "files_ingested_total", "Files read to the end and recorded in the ledger.");
    self->repairs = evp_counter_new(m, "repair_requests_total", "Repair requests answered (REPLAY_ENDPOINT).");
    self->repair_events = evp_counter_new(m, "repair_events_sent_total", "Events sent in repair answers.");
    self->repair_bound = evp_gauge_new(m, "repair_bound", "1 while this process serves REPLAY_ENDPOINT, else 0.");
    return self;
}

void ingest_metrics_destroy(ingest_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evp_metrics_destroy(&(*self_p)->registry);
    free(*self_p);
    *self_p = NULL;
}

evp_metrics_t *ingest_metrics_registry(ingest_metrics_t *self)
{
    return self ? self->registry : NULL;
}

bool ingest_metrics_healthy(ingest_metrics_t *self, char *detail, size_t len)
{
    if (self->watching && evp_gauge_value(self->repair_bound) == 0) {
        snprintf(detail, len, "repair: REPLAY_ENDPOINT is not bound here (see the log)");
        return false;
    }
    if (self->bus && evp_gauge_value(self->bus) == 0) {
        snprintf(detail, len, "bus: not connected");
        return false;
    }
    if (!evp_metrics_loop_ok(self->registry, self->max_age_s, detail, len))
        return false;
    snprintf(detail, len, "files=%llu rows=%llu repair=%s", (unsigned long long)evp_counter_value(self->files),
             (unsigned long long)evp_counter_value(self->rows_read),
             evp_gauge_value(self->repair_bound) ? "bound" : "none");
    return true;
}

/* Runs on the HTTP thread: reads atomics only. */
static bool s_health(void *arg, char *detail, size_t len)
{
    return ingest_metrics_healthy(arg, detail, len);
}

int ingest_metrics_serve(ingest_metrics_t *self, int port, evp_gauge_t *bus_connected, bool watching,
                         double max_age_s, char *why, size_t whylen)
{
    self->bus = bus_connected;
    self->watching = watching;
    self->max_age_s = max_age_s;
    return evp_metrics_serve(self->registry, port, s_health, self, why, whylen);
}

void ingest_metrics_beat(ingest_metrics_t *self)
{
    if (self)
        evp_metrics_beat(self->registry);
}

void ingest_metrics_rows(ingest_metrics_t *self, uint64_t read, uint64_t published)
{
    if (!self)
        return;
    if (read)
        evp_counter_add(self->rows_read, read);
    if (published)
        evp_counter_add(self->rows_published, published);
}

void ingest_metrics_reject(ingest_metrics_t *self, ev_reject_t reason)
{
    if (self && (int)reason > EV_OK && reason < EV_REJECT__COUNT)
        evp_counter_add_at(self->rows_rejected, (size_t)reason - 1, 1);
}

void ingest_metrics_file_done(ingest_metrics_t *self)
{
    if (self)
        evp_counter_inc(self->files);
}

void ingest_metrics_repair_bound(ingest_metrics_t *self, bool bound)
{
    if (self)
        evp_gauge_set(self->repair_bound, bound ? 1 : 0);
}

void ingest_metrics_repair_event(ingest_metrics_t *self)
{
    if (self)
        evp_counter_inc(self->repair_events);
}

void ingest_metrics_repair_answered(ingest_metrics_t *self)
{
    if (self)
        evp_counter_inc(self->repairs);
}

void ingest_metrics_render(ingest_metrics_t *self, ev_buf_t *out)
{
    evp_metrics_render(self->registry, out);
}
