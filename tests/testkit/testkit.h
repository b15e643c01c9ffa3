/* Test kit for evpipe's integration tests: a fresh database on the test
 * PostgreSQL cluster (started by scripts/test), free ports and temporary
 * directories, real service processes with deadlines, and small SQL helpers.
 * Every wait has a deadline; every process started is killed at the end. */
#ifndef EVPIPE_TESTKIT_H
#define EVPIPE_TESTKIT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "evpipe/event.h"
#include "evpipe/wire.h"

/* ---- A test's world: database, ports, folders ---- */

typedef struct {
    char dir[256];          /* temporary directory, removed by tk_world_destroy */
    char archive_dir[300];  /* dir/archive */
    char state_dir[300];    /* dir/state */
    char data_dir[300];     /* dir/data: files to ingest */
    char db[64];            /* the test's own database */
    char pg_host[128];      /* the test cluster */
    char pg_port[16];
    char pg_user[64];
    char pub_ep[64], sub_ep[64], tap_ep[64], replay_ep[64]; /* tcp://127.0.0.1:<free port> */
    PGconn *conn;           /* a connection to db */
} tk_world_t;

/* Creates a database named after the test, free endpoints and folders.
 * Fails the test (cr_fatal) when the test cluster is not configured. */
tk_world_t *tk_world_new(const char *name);
/* The same on another cluster (a tk_cluster_t's port). */
tk_world_t *tk_world_new_on(const char *name, const char *port);
/* A new connection to the world's database (after a cluster restart). */
void tk_world_reconnect(tk_world_t *w);
/* Another connection to the world's database (PQfinish it). */
PGconn *tk_world_connect(tk_world_t *w);
void tk_world_destroy(tk_world_t **self_p);

/* ---- A private PostgreSQL cluster, for tests that stop and start it ---- */

typedef struct tk_cluster_t tk_cluster_t;
tk_cluster_t *tk_cluster_new(void);
const char *tk_cluster_port(const tk_cluster_t *c);
/* Its data directory (postgresql.conf, pg_hba.conf), to change while stopped. */
const char *tk_cluster_data_dir(const tk_cluster_t *c);
void tk_cluster_stop(tk_cluster_t *c);
void tk_cluster_start(tk_cluster_t *c);
void tk_cluster_destroy(tk_cluster_t **c);

/* ---- Processes ---- */

typedef struct {
    pid_t pid;          /* 0 once reaped */
    int status;         /* wait status once reaped */
    char log[320];      /* stdout and stderr go here */
    char name[64];      /* for messages */
} tk_proc_t;

/* Starts build/bin/evpipe-<service> with args (NULL-terminated) and the
 * world's settings in its environment, plus extra "NAME=value" entries. */
tk_proc_t *tk_start(tk_world_t *w, const char *service, const char *const *args, const char *const *extra_env);
/* Sends sig. */
void tk_signal(tk_proc_t *p, int sig);
/* A clean stop: SIGTERM, then waits up to timeout_ms; fails the test unless
 * it exited with 0; frees it. */
void tk_stop(tk_proc_t **p, int timeout_ms);
/* A crash: SIGKILL, then waits up to timeout_ms (fails the test if it has
 * not died by then); frees it. */
void tk_kill(tk_proc_t **p, int timeout_ms);
/* Waits for exit up to timeout_ms; true when it exited (status set). */
bool tk_wait_exit(tk_proc_t *p, int timeout_ms);
/* SIGKILL if still running, reap, free. */
void tk_proc_destroy(tk_proc_t **p);
/* Waits until the process log holds `text`; false at the deadline. */
bool tk_wait_log(tk_proc_t *p, const char *text, int timeout_ms);
/* The process log, malloc'd (tests print it when they fail). */
char *tk_read_file(const char *path, size_t *len);
/* Prints the last tail bytes of the process log to stderr (NULL: nothing). */
void tk_show(const tk_proc_t *p, size_t tail);
/* Exit code, or -1 when killed by a signal or still running. */
int tk_exit_code(const tk_proc_t *p);
/* The exit code of p, which has exited; p is handed to *out when out is not
 * NULL (the caller reads its log, then destroys it), else destroyed. */
int tk_finish(tk_proc_t *p, tk_proc_t **out);

/* ---- Events ---- */

/* A valid event of (source, partition, seq) with plain payload text (one
 * comma, nothing else to escape); user_id is seq * 100 + partition, so a
 * row says which event it is. source is not copied: it must outlive the
 * event. */
ev_event_t tk_event(const char *source, int32_t partition, int64_t seq);

/* ---- A peer on the bus ---- */

/* An XPUB connected to the world's BUS_PUBLISH_ENDPOINT, as any publisher
 * written from docs/protocol.md would be, returned once the bus has
 * subscribed (fails the test after 10 s). Close it with zmq_close. */
void *tk_bus_publisher(void *ctx, const tk_world_t *w);
/* A stand-in for the bus where publishers connect: an XSUB bound on
 * endpoint, without linger, queueing up to rcvhwm messages (ZMQ_RCVHWM), and
 * subscribed to everything as the bus is (XSUB sends that again to each
 * publisher that connects later). Close it with zmq_close. */
void *tk_bus_standin(void *ctx, const char *endpoint, int rcvhwm);
/* Sends [topic, body] for partition and kind. */
void tk_bus_send(void *pub, uint32_t partition, ev_msg_kind_t kind, const void *body, size_t len);

/* ---- SQL ---- */

/* First column of the first row as int64; fails the test on error. */
int64_t tk_sql_int(PGconn *c, const char *sql);
/* Runs a command; fails the test on error. */
void tk_sql_exec(PGconn *c, const char *sql);
/* Waits until tk_sql_int(sql) == want; returns the last value seen. */
int64_t tk_wait_sql_int(PGconn *c, const char *sql, int64_t want, int timeout_ms);

/* ---- Files and time ---- */

void tk_write_file(const char *path, const char *data, size_t len);
int64_t tk_now_ms(void);
void tk_sleep_ms(int ms);
/* A free TCP port on 127.0.0.1, below the range the kernel gives outgoing
 * connections (so none of them can take it before it is bound). */
int tk_free_port(void);

/* ---- HTTP (a service's METRICS_PORT) ---- */

/* One HTTP/1.0 exchange with 127.0.0.1:port. */
typedef struct {
    int status;    /* HTTP status; 0 when nothing could be exchanged */
    char *headers; /* the header block, malloc'd ("" when status is 0) */
    char *body;    /* the body, malloc'd, NUL-terminated ("" when status is 0) */
} tk_http_t;

/* Sends `method path` and reads the reply to its end (10 s at most per
 * read). A refused connection gives status 0 (a service not up yet, or
 * gone); a reply that is not HTTP fails the test. */
tk_http_t tk_http_request(int port, const char *method, const char *path);
/* GET path. */
tk_http_t tk_http_get(int port, const char *path);
void tk_http_free(tk_http_t *r);
/* GETs path until the status is want; the last status seen (0 when nothing
 * answered) after at most timeout_ms. */
int tk_http_wait_status(int port, const char *path, int want, int timeout_ms);
/* The value of one sample in a Prometheus text body: key is the name with
 * its labels as exported, e.g. `evpipe_ingest_rows_rejected_total{reason="price"}`.
 * NAN when there is no such sample. */
double tk_metric(const char *body, const char *key);
/* GET /metrics and the value of key (NAN when absent or not answered). */
double tk_scrape(int port, const char *key);

/* ---- Comparing the table with files ---- */

/* Every row of `events` with an identity, as COPY text lines (ev_copy_append_row
 * layout, times with 6 fractional digits), sorted by (source, partition, seq). */
char *tk_events_as_copy(PGconn *c, size_t *rows);
/* Every row of the CSV files in dir (or the one file), parsed with the proto
 * reader, as the same COPY text lines, sorted by identity; rows that do not
 * parse are left out. For old-format files (no identity) only `payload` lines
 * are comparable: see tk_payload_lines. */
char *tk_archive_as_copy(const char *path, size_t *rows);
/* The payload columns only, one line per row, lines sorted: from the table
 * (source restricts to one source when not NULL) or from CSV files. */
char *tk_events_payload_lines(PGconn *c, const char *source, size_t *rows);
char *tk_csv_payload_lines(const char *path, size_t *rows);
/* Calls fn for every complete row of the archive file at path, in order; a
 * torn last line (a file being written, or after kill -9) is not a row. The
 * header must be the archive's. Returns the row count. */
typedef void (*tk_row_fn)(const ev_event_t *ev, void *arg);
size_t tk_archive_file_rows(const char *path, tk_row_fn fn, void *arg);

#endif
