/* What the writer's integration tests stand in for: the bus (an XPUB bound
 * where the bus would be, sending "!welcome" to each subscriber) and ingest's
 * repair service (a ROUTER answering from a list of events), plus events to
 * publish and a check of the rows the writer committed. */
#ifndef WRITER_TEST_PEERS_H
#define WRITER_TEST_PEERS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "evpipe/event.h"
#include "testkit.h"

/* ---- Events ---- */

/* A valid event of source in partition, with seq; its text is kept in a
 * static pool so the views stay valid for the whole test. */
ev_event_t wt_event(const char *source, int32_t partition, int64_t seq);
/* A user_id whose events go to partition p of `partitions`. */
int32_t wt_user_in(int32_t p, int32_t partitions);

/* ---- The bus ---- */

typedef struct wt_bus_t wt_bus_t;

/* Binds an XPUB on endpoint (verbose, lossless, "!welcome" to subscribers). */
wt_bus_t *wt_bus_new(const char *endpoint);
void wt_bus_destroy(wt_bus_t **self_p);
/* Waits until `count` subscriptions arrived (each writer sends one per
 * partition plus "!welcome"); false at the deadline. */
bool wt_bus_wait_subscriptions(wt_bus_t *self, int count, int timeout_ms);
void wt_bus_publish(wt_bus_t *self, const ev_event_t *ev);
/* Appends ev's map to body: a body of several events is maps back to back. */
void wt_bus_body_add(wt_bus_t *self, ev_buf_t *body, const ev_event_t *ev);
/* Sends body (one or more maps, or any bytes) on partition's event topic. */
void wt_bus_publish_body(wt_bus_t *self, int32_t partition, const void *body, size_t len);
/* Publishes seqs first..last of (source, partition). */
void wt_bus_publish_range(wt_bus_t *self, const char *source, int32_t partition, int64_t first, int64_t last);
void wt_bus_heartbeat(wt_bus_t *self, const char *source, int32_t partition, int64_t seq);
/* Sends a raw message of n frames. */
void wt_bus_send_raw(wt_bus_t *self, int n, const void *const *data, const size_t *len);

/* ---- The repair service ---- */

typedef struct wt_router_t wt_router_t;

typedef struct {
    int64_t from, to; /* the range asked for */
    char source[80];  /* the source asked for */
    int32_t partition;
} wt_request_t;

wt_router_t *wt_router_new(const char *endpoint);
void wt_router_destroy(wt_router_t **self_p);
/* Waits for one request; false at the deadline. */
bool wt_router_recv(wt_router_t *self, wt_request_t *req, int timeout_ms);
/* Answers the last request: every seq in its range for which has(seq) is
 * true is sent as an EVENT (made by wt_event), then END, as an archive
 * that knows the source and held the whole range (head: its `to`). */
void wt_router_answer(wt_router_t *self, bool (*has)(int64_t seq));
/* The same from an archive that knows the source or not (found), with
 * head the highest seq it holds or held. */
void wt_router_answer_as(wt_router_t *self, bool (*has)(int64_t seq), bool found, int64_t head);

/* ---- Checks ---- */

/* Compares every committed row of (source, partition) with wt_event for
 * seqs in [first, last] for which want(seq) is true (NULL: all). Fails the test. */
void wt_check_rows(PGconn *c, const char *source, int32_t partition, int64_t first, int64_t last,
                   bool (*want)(int64_t seq));
/* GET path from 127.0.0.1:port; the whole answer (status line, headers,
 * body), malloc'd, or NULL when nothing answers. */
char *wt_http_get(int port, const char *path);
/* On c, as another writer would: BEGIN, COPY of wt_event rows first..last
 * of (source, partition), its checkpoint moved to last. The transaction is
 * left open (COMMIT it, or hold it to race). */
void wt_begin_as_another_writer(PGconn *c, const char *source, int32_t partition, int64_t first, int64_t last);
/* SELECT count(*) FROM events. */
int64_t wt_rows(PGconn *c);
/* The writer's log (for failure messages), malloc'd. */
char *wt_log(const tk_proc_t *p);
/* How many times text occurs in the process log. */
int wt_log_count(const tk_proc_t *p, const char *text);

/* A test's world (tk_world_new) with the writer's migrations applied. */
tk_world_t *wt_world_migrated(const char *name);

#endif
