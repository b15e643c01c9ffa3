/* Integration tests of the evpipe-generator process: a stand-in for the
 * bus (an XSUB socket on the world's BUS_PUBLISH_ENDPOINT that subscribes to
 * everything) receives what it publishes, which is compared with its
 * archive; restarts after kill -9, the directory lock, bad settings, and
 * the metrics and /healthz it serves. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "evpipe/config.h"
#include "evpipe/csv.h"
#include "evpipe/event.h"
#include "evpipe/wire.h"
#include "gen_archive.h"
#include "testkit.h"

#define PARTS 16
#define MAX_SEQ 100000

/* ---- A stand-in for the bus ---- */

/* One heartbeat, or one event of a message: the topic and a copy of the
 * heartbeat's body or of the event's own map. */
typedef struct {
    uint32_t partition; /* from the topic */
    ev_msg_kind_t kind; /* event or heartbeat */
    void *body;         /* owned copy */
    size_t len;         /* its bytes */
    size_t message;     /* which message it came in (counted from 1) */
} s_msg_t;

typedef struct {
    void *ctx;        /* ZeroMQ context */
    void *xsub;       /* bound on the world's pub_ep */
    ev_codec_t *codec; /* walks event bodies */
    s_msg_t *msgs;    /* everything received, in order, one entry per event */
    size_t n, cap;    /* used, allocated */
    size_t messages;  /* messages received */
} s_bus_t;

static s_bus_t *s_bus_new(const char *endpoint)
{
    s_bus_t *b = calloc(1, sizeof *b);
    b->ctx = zmq_ctx_new();
    b->xsub = tk_bus_standin(b->ctx, endpoint, 1000); /* libzmq's default queue */
    b->codec = ev_codec_new();
    return b;
}

static void s_bus_clear(s_bus_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->msgs[i].body);
    b->n = 0;
    b->messages = 0;
}

/* Keeps a copy of len bytes of data as an entry of kind. */
static void s_bus_keep(s_bus_t *b, uint32_t partition, ev_msg_kind_t kind, const void *data, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1024;
        b->msgs = realloc(b->msgs, b->cap * sizeof *b->msgs);
    }
    s_msg_t *m = &b->msgs[b->n++];
    *m = (s_msg_t){partition, kind, malloc(len ? len : 1), len, b->messages};
    memcpy(m->body, data, len);
}

static void s_bus_destroy(s_bus_t **bp)
{
    s_bus_t *b = *bp;
    s_bus_clear(b);
    free(b->msgs);
    ev_codec_destroy(&b->codec);
    zmq_close(b->xsub);
    zmq_ctx_term(b->ctx);
    free(b);
    *bp = NULL;
}

/* Receives for up to wait_ms; true if anything came. */
static bool s_bus_poll(s_bus_t *b, int wait_ms)
{
    zmq_pollitem_t item = {b->xsub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, wait_ms) <= 0)
        return false;
    bool got = false;
    for (;;) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, b->xsub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            return got;
        }
        cr_assert(zmq_msg_more(&topic), "two frames");
        zmq_msg_init(&body);
        cr_assert_geq(zmq_msg_recv(&body, b->xsub, 0), 0);
        uint32_t partition;
        ev_msg_kind_t kind;
        cr_assert(ev_topic_parse(zmq_msg_data(&topic), zmq_msg_size(&topic), &partition, &kind), "bad topic %.*s",
                  (int)zmq_msg_size(&topic), (char *)zmq_msg_data(&topic));
        b->messages++;
        if (kind == EV_MSG_HEARTBEAT) {
            s_bus_keep(b, partition, kind, zmq_msg_data(&body), zmq_msg_size(&body));
        } else {
            /* One entry per event of the body, each with its own map. */
            size_t offset = 0, rawlen;
            const void *raw;
            ev_event_t ev;
            ev_error_t err = {0};
            ev_next_t next;
            while ((next = ev_codec_next_event(b->codec, zmq_msg_data(&body), zmq_msg_size(&body), &offset, &ev,
                                               &raw, &rawlen, &err)) == EV_NEXT_EVENT)
                s_bus_keep(b, partition, kind, raw, rawlen);
            cr_assert_eq(next, EV_NEXT_END, "a body that does not walk: %s", err.detail);
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        got = true;
    }
}

/* Receives until p has exited and nothing came for quiet_ms (p NULL: until
 * quiet only); false at the deadline. */
static bool s_bus_drain(s_bus_t *b, tk_proc_t *p, int quiet_ms, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms, last = tk_now_ms();
    while (tk_now_ms() < end) {
        if (s_bus_poll(b, 50))
            last = tk_now_ms();
        bool exited = !p || tk_wait_exit(p, 0);
        if (exited && tk_now_ms() - last >= quiet_ms)
            return true;
    }
    return false;
}

/* Receives for ms. */
static void s_bus_listen(s_bus_t *b, int ms)
{
    int64_t end = tk_now_ms() + ms;
    while (tk_now_ms() < end)
        s_bus_poll(b, 50);
}

/* Waits for text in p's log while receiving (a socket attaches new peers
 * and sends them its subscription only while it is being used). */
static bool s_bus_wait_log(s_bus_t *b, tk_proc_t *p, const char *text, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    while (tk_now_ms() < end) {
        s_bus_poll(b, 50);
        if (tk_wait_log(p, text, 0))
            return true;
    }
    return false;
}

/* ---- What was published ---- */

/* Events received, by partition and seq (entries point into the bus's list). */
typedef struct {
    const s_msg_t **by_seq[PARTS]; /* [p][seq]: the event with that seq, or NULL */
    int64_t first[PARTS];          /* lowest seq received per partition (0: none) */
    int64_t last[PARTS];           /* highest seq received per partition */
    int64_t hb_last[PARTS];        /* seq of the last heartbeat per partition (-1: none) */
    size_t events;                 /* events received */
    char source[72];               /* the events' source */
} s_published_t;

/* Indexes the events; checks seqs are contiguous per partition in the order
 * received and all come from one source. */
static s_published_t *s_published(const s_bus_t *b)
{
    s_published_t *pub = calloc(1, sizeof *pub);
    ev_codec_t *codec = ev_codec_new();
    for (int p = 0; p < PARTS; p++) {
        pub->by_seq[p] = calloc(MAX_SEQ + 1, sizeof *pub->by_seq[p]);
        pub->hb_last[p] = -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        const s_msg_t *m = &b->msgs[i];
        cr_assert_lt(m->partition, PARTS);
        ev_error_t err;
        if (m->kind == EV_MSG_HEARTBEAT) {
            ev_heartbeat_t hb;
            cr_assert_eq(ev_codec_decode_heartbeat(codec, m->body, m->len, &hb, &err), EV_OK, "%s", err.detail);
            cr_assert_eq((uint32_t)hb.partition, m->partition);
            pub->hb_last[m->partition] = hb.seq;
            continue;
        }
        ev_event_t ev;
        cr_assert_eq(ev_codec_decode_event(codec, m->body, m->len, &ev, &err), EV_OK, "%s", err.detail);
        cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "%s", err.detail);
        cr_assert_eq((uint32_t)ev.partition, m->partition);
        cr_assert_eq((uint32_t)ev.partition, ev_partition_of(ev.user_id, PARTS));
        if (!pub->source[0])
            snprintf(pub->source, sizeof pub->source, "%.*s", (int)ev.source.len, ev.source.ptr);
        cr_assert(ev.source.len == strlen(pub->source) && memcmp(ev.source.ptr, pub->source, ev.source.len) == 0);
        int p = ev.partition;
        cr_assert(ev.seq >= 1 && ev.seq <= MAX_SEQ);
        if (pub->first[p])
            cr_assert_eq(ev.seq, pub->last[p] + 1, "partition %d: seq %lld after %lld", p, (long long)ev.seq,
                         (long long)pub->last[p]);
        else
            pub->first[p] = ev.seq;
        pub->last[p] = ev.seq;
        pub->by_seq[p][ev.seq] = m;
        pub->events++;
    }
    ev_codec_destroy(&codec);
    return pub;
}

static void s_published_destroy(s_published_t **pp)
{
    for (int p = 0; p < PARTS; p++)
        free((*pp)->by_seq[p]);
    free(*pp);
    *pp = NULL;
}

/* ---- What was archived ---- */

/* Calls fn for every complete row of every archive file, oldest first; a
 * torn last line (after kill -9) is not a row. Returns the row count. */
static size_t s_archive_rows(const char *dir, tk_row_fn fn, void *arg)
{
    char names[256][GEN_ARCHIVE_NAME_MAX];
    size_t n = 0, rows = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (gen_archive_is_file_name(e->d_name) && n < 256)
            memcpy(names[n++], e->d_name, strlen(e->d_name) + 1); /* 26 bytes, checked */
    closedir(d);
    qsort(names, n, GEN_ARCHIVE_NAME_MAX, (int (*)(const void *, const void *))strcmp);
    for (size_t i = 0; i < n; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rows += tk_archive_file_rows(path, fn, arg);
    }
    return rows;
}

/* Per partition: which seqs the archive holds (each at most once). */
typedef struct {
    uint8_t *have[PARTS]; /* [p][seq]: times seen */
    int64_t max[PARTS];   /* highest seq per partition */
} s_archived_t;

static void s_note_row(const ev_event_t *ev, void *arg)
{
    s_archived_t *a = arg;
    cr_assert(ev->partition >= 0 && ev->partition < PARTS && ev->seq >= 1 && ev->seq <= MAX_SEQ);
    cr_assert_eq(a->have[ev->partition][ev->seq], 0, "partition %d seq %lld archived twice", ev->partition,
                 (long long)ev->seq);
    a->have[ev->partition][ev->seq]++;
    if (ev->seq > a->max[ev->partition])
        a->max[ev->partition] = ev->seq;
}

/* Reads the archive and checks every partition holds seqs 1..max, each once. */
static s_archived_t *s_archived(const char *dir, size_t *rows)
{
    s_archived_t *a = calloc(1, sizeof *a);
    for (int p = 0; p < PARTS; p++)
        a->have[p] = calloc(MAX_SEQ + 1, 1);
    *rows = s_archive_rows(dir, s_note_row, a);
    for (int p = 0; p < PARTS; p++)
        for (int64_t s = 1; s <= a->max[p]; s++)
            cr_assert_eq(a->have[p][s], 1, "partition %d: seq %lld missing below %lld", p, (long long)s,
                         (long long)a->max[p]);
    return a;
}

static void s_archived_destroy(s_archived_t **ap)
{
    for (int p = 0; p < PARTS; p++)
        free((*ap)->have[p]);
    free(*ap);
    *ap = NULL;
}

/* Compares an archived row with the event published under its identity. */
typedef struct {
    const s_published_t *pub; /* what was received */
    ev_codec_t *codec;        /* decodes bodies */
    size_t compared;          /* rows that matched an event */
} s_compare_t;

static void s_compare_row(const ev_event_t *row, void *arg)
{
    s_compare_t *c = arg;
    const s_msg_t *m = c->pub->by_seq[row->partition][row->seq];
    cr_assert_not_null(m, "archived partition %d seq %lld was not published", row->partition,
                       (long long)row->seq);
    ev_event_t ev;
    ev_error_t err;
    cr_assert_eq(ev_codec_decode_event(c->codec, m->body, m->len, &ev, &err), EV_OK);
    cr_assert(ev_event_equal(row, &ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY),
              "partition %d seq %lld: published event differs from the archive row", row->partition,
              (long long)row->seq);
    c->compared++;
}

/* ---- Helpers ---- */

static void s_ignore_row(const ev_event_t *ev, void *arg)
{
    (void)ev;
    (void)arg;
}

static void s_expect_exit(tk_proc_t *p, int code, int timeout_ms)
{
    bool exited = tk_wait_exit(p, timeout_ms);
    if (!exited || tk_exit_code(p) != code) {
        char *log = tk_read_file(p->log, NULL);
        cr_assert_fail("%s: %s (exit %d, expected %d); log:\n%s", p->name, exited ? "exited" : "still running",
                       tk_exit_code(p), code, log);
    }
}

static void s_expect_log(tk_proc_t *p, const char *text, int timeout_ms)
{
    if (!tk_wait_log(p, text, timeout_ms)) {
        char *log = tk_read_file(p->log, NULL);
        cr_assert_fail("%s: no \"%s\" in the log:\n%s", p->name, text, log);
    }
}

static size_t s_count_lines(const char *text)
{
    size_t n = 0;
    for (const char *c = text; *c; c++)
        n += *c == '\n';
    return n;
}

/* Lines that are not info log lines (the deployment check logs its outcome
 * at info before anything can fail). */
static size_t s_count_lines_but_info(const char *text)
{
    size_t n = 0;
    for (const char *c = text; *c; c = strchr(c, '\n') ? strchr(c, '\n') + 1 : c + strlen(c)) {
        const char *end = strchr(c, '\n');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        const char *info = strstr(c, " level=info ");
        n += len > 0 && !(info && info < c + len);
    }
    return n;
}

/* ---- Cleanup even when a test fails ---- */

static tk_world_t *s_world;  /* the test's world */
static tk_proc_t *s_procs[8]; /* every process it started */
static size_t s_nprocs;       /* entries in s_procs */

static tk_world_t *s_world_new(const char *name)
{
    s_world = tk_world_new(name);
    return s_world;
}

static tk_proc_t *s_start(const char *const *args, const char *const *env)
{
    cr_assert_lt(s_nprocs, 8);
    s_procs[s_nprocs] = tk_start(s_world, "generator", args, env);
    return s_procs[s_nprocs++];
}

/* Runs a generator to its end, receiving what it publishes; it exits 0. */
static void s_run_to_end(s_bus_t *bus, const char *const *args, const char *const *env)
{
    tk_proc_t *p = s_start(args, env);
    cr_assert(s_bus_drain(bus, p, 500, 60000), "generator did not finish");
    s_expect_exit(p, 0, 0);
}

/* Kills what is still running and removes the world, failed test or not. */
static void s_cleanup(void)
{
    for (size_t i = 0; i < s_nprocs; i++)
        tk_proc_destroy(&s_procs[i]);
    s_nprocs = 0;
    tk_world_destroy(&s_world);
}

TestSuite(generator_process, .fini = s_cleanup);

/* ---- Tests ---- */

Test(generator_process, count_publishes_exactly_the_archived_events_then_heartbeats)
{
    tk_world_t *w = s_world_new("gen_count");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    const char *args[] = {"--count", "1000", "--rate", "5000", NULL};
    const char *env[] = {"HEARTBEAT_MS=100", "GENERATOR_SEED=11", NULL};
    tk_proc_t *p = s_start(args, env);
    cr_assert(s_bus_drain(bus, p, 500, 60000), "generator did not finish");
    s_expect_exit(p, 0, 0);

    s_published_t *pub = s_published(bus);
    cr_assert_eq(pub->events, 1000, "published %zu events", pub->events);
    for (int part = 0; part < PARTS; part++) {
        if (!pub->last[part])
            continue;
        cr_assert_eq(pub->first[part], 1, "partition %d starts at 1", part);
        cr_assert_eq(pub->hb_last[part], pub->last[part], "partition %d: last heartbeat says %lld, last seq %lld",
                     part, (long long)pub->hb_last[part], (long long)pub->last[part]);
    }
    s_compare_t cmp = {pub, ev_codec_new(), 0};
    size_t rows = s_archive_rows(w->archive_dir, s_compare_row, &cmp);
    cr_assert_eq(rows, 1000);
    cr_assert_eq(cmp.compared, 1000);
    ev_codec_destroy(&cmp.codec);
    s_expect_log(p, "generator stopped", 0);
    s_expect_log(p, "events=1000", 0);

    s_published_destroy(&pub);
    s_bus_destroy(&bus);
}

/* Per event message: how many events it holds, at most, and how many
 * messages there were; fails when a heartbeat announces a seq whose event
 * has not come before it (or before the run: done[p], NULL for none). */
static size_t s_event_messages(const s_bus_t *b, const int64_t *done, size_t *most)
{
    ev_codec_t *codec = ev_codec_new();
    int64_t last[PARTS] = {0};
    for (int p = 0; done && p < PARTS; p++)
        last[p] = done[p];
    size_t messages = 0, in_message = 0, message = 0;
    *most = 0;
    for (size_t i = 0; i < b->n; i++) {
        const s_msg_t *m = &b->msgs[i];
        ev_error_t err;
        if (m->kind == EV_MSG_HEARTBEAT) {
            ev_heartbeat_t hb;
            cr_assert_eq(ev_codec_decode_heartbeat(codec, m->body, m->len, &hb, &err), EV_OK);
            cr_assert_leq(hb.seq, last[m->partition], "partition %u: a heartbeat says %lld, the last event came %lld",
                          m->partition, (long long)hb.seq, (long long)last[m->partition]);
            continue;
        }
        ev_event_t ev;
        cr_assert_eq(ev_codec_decode_event(codec, m->body, m->len, &ev, &err), EV_OK);
        last[m->partition] = ev.seq;
        if (m->message != message) {
            message = m->message;
            messages++;
            in_message = 0;
        }
        if (++in_message > *most)
            *most = in_message;
    }
    ev_codec_destroy(&codec);
    return messages;
}

Test(generator_process, publishes_several_events_per_message_and_never_heartbeats_ahead_of_them)
{
    tk_world_t *w = s_world_new("gen_batches");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    const char *args[] = {"--count", "20000", "--rate", "max", NULL};
    const char *env[] = {"HEARTBEAT_MS=10", "GENERATOR_SEED=5", NULL};
    s_run_to_end(bus, args, env);
    s_published_t *pub = s_published(bus); /* each seq once, in order, per partition */
    cr_assert_eq(pub->events, 20000);
    int64_t done[PARTS];
    memcpy(done, pub->last, sizeof done);
    s_published_destroy(&pub);
    size_t most, messages = s_event_messages(bus, NULL, &most);
    evp_config_t defaults;
    evp_config_defaults(&defaults);
    cr_assert_leq(most, (size_t)defaults.publish_batch, "more than PUBLISH_BATCH (%d) in a message",
                  defaults.publish_batch);
    cr_assert_lt(messages * 4, 20000, "%zu messages for 20000 events", messages);

    /* PUBLISH_BATCH=1: every event alone, as before (the restart announces
     * the first run's heads before its first event). */
    s_bus_clear(bus);
    const char *args1[] = {"--count", "300", "--rate", "max", NULL};
    const char *env1[] = {"PUBLISH_BATCH=1", "HEARTBEAT_MS=10", NULL};
    s_run_to_end(bus, args1, env1);
    messages = s_event_messages(bus, done, &most);
    cr_assert_eq(messages, 300);
    cr_assert_eq(most, 1);
    s_bus_destroy(&bus);
}

Test(generator_process, nothing_is_made_before_the_bus_is_there)
{
    tk_world_t *w = s_world_new("gen_late_bus");
    const char *args[] = {"--count", "300", "--rate", "5000", NULL};
    tk_proc_t *p = s_start(args, NULL);
    s_expect_log(p, "waiting for the bus", 20000);
    tk_sleep_ms(300);
    cr_assert_eq(s_archive_rows(w->archive_dir, s_ignore_row, NULL), 0, "nothing archived without a bus");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    cr_assert(s_bus_drain(bus, p, 500, 60000));
    s_expect_exit(p, 0, 0);
    s_published_t *pub = s_published(bus);
    cr_assert_eq(pub->events, 300, "every event reached the late bus: %zu", pub->events);
    s_published_destroy(&pub);
    s_bus_destroy(&bus);
}

/* Counts archive rows of one source. */
typedef struct {
    const char *source; /* the source counted */
    size_t rows;        /* its rows */
} s_source_rows_t;

static void s_count_source_row(const ev_event_t *ev, void *arg)
{
    s_source_rows_t *c = arg;
    if (ev->source.len == strlen(c->source) && memcmp(ev->source.ptr, c->source, ev->source.len) == 0)
        c->rows++;
}

/* A restart after kill -9 (or after the archive's files were deleted, or
 * on a copy of the directory) must never give out a (source, partition,
 * seq) again: it publishes under a new source of the same generator. */
Test(generator_process, after_kill_9_a_restart_publishes_a_new_source_from_seq_1)
{
    tk_world_t *w = s_world_new("gen_kill9");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    const char *args1[] = {"--rate", "4000", NULL};
    const char *env[] = {"HEARTBEAT_MS=100", NULL};
    tk_proc_t *p1 = s_start(args1, env);
    cr_assert(s_bus_wait_log(bus, p1, "archive file opened", 20000), "the first run did not start");
    s_bus_listen(bus, 700);
    tk_signal(p1, SIGKILL);
    cr_assert(tk_wait_exit(p1, 10000));
    s_bus_drain(bus, NULL, 300, 10000);
    s_published_t *first = s_published(bus);
    cr_assert_gt(first->events, 0);
    char old_source[72];
    snprintf(old_source, sizeof old_source, "%s", first->source);
    s_published_destroy(&first);
    s_bus_clear(bus);

    size_t rows1;
    s_archived_t *before = s_archived(w->archive_dir, &rows1);
    cr_assert_gt(rows1, 0, "the first run archived events");
    s_archived_destroy(&before);

    const char *args2[] = {"--count", "500", "--rate", "5000", NULL};
    tk_proc_t *p2 = s_start(args2, env);
    cr_assert(s_bus_drain(bus, p2, 500, 60000));
    s_expect_exit(p2, 0, 0);

    s_published_t *pub = s_published(bus); /* one source, seqs contiguous */
    cr_assert_eq(pub->events, 500);
    cr_assert_str_neq(pub->source, old_source, "a restart is a new source");
    cr_assert_eq(strncmp(pub->source, old_source, 20), 0, "of the same generator (.source-id): %s, %s",
                 pub->source, old_source);
    for (int part = 0; part < PARTS; part++)
        if (pub->first[part])
            cr_assert_eq(pub->first[part], 1, "partition %d: the new source began at %lld", part,
                         (long long)pub->first[part]);
    s_source_rows_t old_rows = {old_source, 0}, new_rows = {pub->source, 0};
    size_t total = s_archive_rows(w->archive_dir, s_count_source_row, &old_rows);
    s_archive_rows(w->archive_dir, s_count_source_row, &new_rows);
    cr_assert_eq(old_rows.rows, rows1, "the first run's rows are kept as they were");
    cr_assert_eq(new_rows.rows, 500);
    cr_assert_eq(total, rows1 + 500);
    s_published_destroy(&pub);
    s_bus_destroy(&bus);
}

/* Counts archive rows (complete lines). */
static size_t s_archive_count(const char *dir)
{
    return s_archive_rows(dir, s_ignore_row, NULL);
}

Test(generator_process, without_the_bus_it_keeps_archiving_and_publishes_again_when_it_returns)
{
    tk_world_t *w = s_world_new("gen_bus_away");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    const char *args[] = {"--rate", "2000", NULL};
    const char *env[] = {"HEARTBEAT_MS=100", NULL};
    tk_proc_t *p = s_start(args, env);
    cr_assert(s_bus_wait_log(bus, p, "archive file opened", 20000), "the generator did not start");
    s_bus_listen(bus, 300);
    s_bus_destroy(&bus);
    s_expect_log(p, "the bus went away", 20000);
    size_t away = s_archive_count(w->archive_dir);
    int64_t end = tk_now_ms() + 20000;
    while (s_archive_count(w->archive_dir) < away + 500 && tk_now_ms() < end)
        tk_sleep_ms(100);
    cr_assert_geq(s_archive_count(w->archive_dir), away + 500, "archiving went on without the bus");

    bus = s_bus_new(w->pub_ep);
    end = tk_now_ms() + 20000;
    s_published_t *pub = NULL;
    while (tk_now_ms() < end) {
        s_bus_poll(bus, 50);
        size_t events = 0;
        for (size_t i = 0; i < bus->n; i++)
            events += bus->msgs[i].kind == EV_MSG_EVENT;
        if (events >= 200)
            break;
    }
    tk_signal(p, SIGTERM);
    cr_assert(s_bus_drain(bus, p, 500, 30000));
    s_expect_exit(p, 0, 0);
    pub = s_published(bus); /* contiguous per partition from where it resumed */
    cr_assert_geq(pub->events, 200, "publishing resumed: %zu events", pub->events);
    size_t rows;
    s_archived_t *arch = s_archived(w->archive_dir, &rows);
    for (int part = 0; part < PARTS; part++)
        cr_assert_eq(pub->last[part], arch->max[part], "partition %d: the tail was published", part);
    s_archived_destroy(&arch);
    s_published_destroy(&pub);
    s_bus_destroy(&bus);
}

Test(generator_process, sigterm_finishes_publishes_everything_archived_and_exits_0)
{
    tk_world_t *w = s_world_new("gen_sigterm");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    const char *args[] = {"--rate", "3000", NULL};
    tk_proc_t *p = s_start(args, NULL);
    cr_assert(s_bus_wait_log(bus, p, "archive file opened", 20000), "the generator did not start");
    s_bus_listen(bus, 500);
    tk_signal(p, SIGTERM);
    cr_assert(s_bus_drain(bus, p, 500, 30000));
    s_expect_exit(p, 0, 0);
    s_expect_log(p, "generator stopped", 0);
    s_published_t *pub = s_published(bus);
    size_t rows;
    s_archived_t *arch = s_archived(w->archive_dir, &rows);
    cr_assert_eq(pub->events, rows, "published %zu, archived %zu", pub->events, rows);
    s_archived_destroy(&arch);
    s_published_destroy(&pub);
    s_bus_destroy(&bus);
}

Test(generator_process, a_second_generator_on_the_same_archive_exits_1_naming_archive_dir)
{
    tk_world_t *w = s_world_new("gen_lock");
    const char *args[] = {"--rate", "100", NULL};
    tk_proc_t *first = s_start(args, NULL);
    s_expect_log(first, "generator started", 20000);
    tk_proc_t *second = s_start(args, NULL);
    s_expect_exit(second, 1, 20000);
    char *log = tk_read_file(second->log, NULL);
    cr_assert_not_null(strstr(log, "ARCHIVE_DIR"), "%s", log);
    cr_assert_not_null(strstr(log, w->archive_dir), "%s", log);
    cr_assert_eq(s_count_lines_but_info(log), 1, "one line: %s", log);
    free(log);
    /* The first is unharmed and stops cleanly (it never saw a bus). */
    tk_signal(first, SIGTERM);
    s_expect_exit(first, 0, 20000);
}

Test(generator_process, a_bad_setting_exits_1_with_one_line)
{
    s_world_new("gen_bad_setting");
    const char *env[] = {"PARTITIONS=0", NULL};
    tk_proc_t *p = s_start(NULL, env);
    s_expect_exit(p, 1, 20000);
    char *log = tk_read_file(p->log, NULL);
    cr_assert_not_null(strstr(log, "PARTITIONS"), "%s", log);
    cr_assert_eq(s_count_lines(log), 1, "one line: %s", log);
    free(log);

    const char *args[] = {"--count", "ten", NULL};
    p = s_start(args, NULL);
    s_expect_exit(p, 1, 20000);
    log = tk_read_file(p->log, NULL);
    cr_assert_not_null(strstr(log, "--count"), "%s", log);
    cr_assert_eq(s_count_lines(log), 1, "one line: %s", log);
    free(log);
}

/* ---- Metrics and /healthz ---- */

/* Polls the stand-in bus (absent: sleeps) until /healthz answers want; the
 * last status. */
static int s_wait_health(s_bus_t *b, int port, int want, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    int status;
    do {
        if (b)
            s_bus_poll(b, 100);
        else
            tk_sleep_ms(100);
        status = tk_http_wait_status(port, "/healthz", want, 0);
    } while (status != want && tk_now_ms() < end);
    return status;
}

static size_t s_events(const s_bus_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->msgs[i].kind == EV_MSG_EVENT;
    return n;
}

Test(generator_process, metrics_count_what_was_made_archived_and_published_and_healthz_follows_the_bus)
{
    tk_world_t *w = s_world_new("gen_metrics");
    s_bus_t *bus = s_bus_new(w->pub_ep);
    int port = tk_free_port();
    char metrics_port[32];
    snprintf(metrics_port, sizeof metrics_port, "METRICS_PORT=%d", port);
    /* One burst of 500, then a long rest: the numbers stand still. */
    const char *env[] = {metrics_port, "MIN_EVENTS=500", "MAX_EVENTS=500", "SLEEP_INTERVAL=600",
                         "ARCHIVE_SYNC_MS=100", "HEARTBEAT_MS=100", NULL};
    tk_proc_t *p = s_start(NULL, env);
    cr_assert_eq(s_wait_health(bus, port, 200, 20000), 200, "healthy once the bus is there");
    int64_t end = tk_now_ms() + 20000;
    while (s_events(bus) < 500 && tk_now_ms() < end)
        s_bus_poll(bus, 50);
    cr_assert_eq(s_events(bus), 500);
    end = tk_now_ms() + 10000;
    while (tk_scrape(port, "evpipe_generator_archive_syncs_total") < 1 && tk_now_ms() < end)
        s_bus_poll(bus, 100);

    tk_http_t r = tk_http_get(port, "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(tk_metric(r.body, "evpipe_generator_events_generated_total"), 500, "%s", r.body);
    cr_assert_eq(tk_metric(r.body, "evpipe_generator_events_archived_total"), 500);
    cr_assert_eq(tk_metric(r.body, "evpipe_generator_events_published_total"), 500);
    cr_assert_geq(tk_metric(r.body, "evpipe_generator_archive_syncs_total"), 1);
    cr_assert_eq(tk_metric(r.body, "evpipe_generator_bus_connected"), 1);
    cr_assert(!isnan(tk_metric(r.body, "evpipe_generator_publish_blocked_seconds_count")), "%s", r.body);
    tk_http_free(&r);
    r = tk_http_get(port, "/healthz");
    cr_assert_str_eq(r.body, "ok\npublished=500\n");
    tk_http_free(&r);

    /* The bus goes away: 503 with the reason; it comes back: 200. */
    s_bus_destroy(&bus);
    cr_assert_eq(s_wait_health(NULL, port, 503, 20000), 503);
    r = tk_http_get(port, "/healthz");
    cr_assert_str_eq(r.body, "bus: not connected (events are archived and will be repaired)\n");
    tk_http_free(&r);
    bus = s_bus_new(w->pub_ep);
    cr_assert_eq(s_wait_health(bus, port, 200, 20000), 200);

    tk_signal(p, SIGTERM);
    cr_assert(s_bus_drain(bus, p, 200, 30000));
    s_expect_exit(p, 0, 0);
    s_bus_destroy(&bus);
}
