/* Process tests of evpipe-ingest: the real program against a stand-in bus
 * (an XSUB bound on the world's publish endpoint that subscribes to
 * everything), a real DEALER for repairs, and the test PostgreSQL for
 * --wait. Every wait has a deadline. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "evpipe/buf.h"
#include "evpipe/config.h"
#include "evpipe/csv.h"
#include "evpipe/wire.h"
#include "support.h"
#include "testkit.h"

/* `b2sum FILE | cut -c1-32` of the fixtures */
#define OLD_FORMAT_SOURCE "file-bb2abb539c17ecb9911d2806c6be1a3e"
#define BAD_ROWS_SOURCE "file-bda111ebfd536f651844fadb64f7341c"
#define ARCHIVE_SOURCE "gen-00112233aabbccdd"

/* ---- What came over the bus ---- */

typedef struct {
    char source[72];
    int32_t partition;
    int64_t seq;
    int32_t user_id;
    int64_t published_at;
} s_ev_t;

typedef struct {
    s_ev_t *ev;          /* events, in arrival order */
    size_t n, cap;       /* used, allocated */
    size_t heartbeats;   /* heartbeats seen */
    size_t messages;     /* event messages seen (each one or more events) */
    size_t most;         /* events in the fullest message */
    s_ev_t archived[64]; /* heartbeats that announce an archive's heads (seq: the head) */
    size_t narchived;    /* how many */
} s_got_t;

static void s_got_add(s_got_t *g, const ev_event_t *e)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 256;
        g->ev = realloc(g->ev, g->cap * sizeof *g->ev);
        cr_assert_not_null(g->ev);
    }
    s_ev_t *o = &g->ev[g->n++];
    snprintf(o->source, sizeof o->source, "%.*s", (int)e->source.len, e->source.ptr);
    o->partition = e->partition;
    o->seq = e->seq;
    o->user_id = e->user_id;
    o->published_at = e->published_at;
}

static size_t s_count_source(const s_got_t *g, const char *source)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += strcmp(g->ev[i].source, source) == 0;
    return n;
}

static const s_ev_t *s_find(const s_got_t *g, const char *source, int32_t partition, int64_t seq)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->ev[i].source, source) == 0 && g->ev[i].partition == partition && g->ev[i].seq == seq)
            return &g->ev[i];
    return NULL;
}

/* ---- The stand-in bus ---- */

typedef struct {
    void *ctx;       /* ZeroMQ context */
    void *xsub;      /* bound on the world's publish endpoint */
    ev_codec_t *codec;
} s_bus_t;

static s_bus_t *s_bus_new(const tk_world_t *w)
{
    s_bus_t *b = calloc(1, sizeof *b);
    b->ctx = zmq_ctx_new();
    b->xsub = tk_bus_standin(b->ctx, w->pub_ep, 1000000);
    b->codec = ev_codec_new();
    return b;
}

static void s_bus_destroy(s_bus_t **bp)
{
    s_bus_t *b = *bp;
    if (!b)
        return;
    zmq_close(b->xsub);
    zmq_ctx_term(b->ctx);
    ev_codec_destroy(&b->codec);
    free(b);
    *bp = NULL;
}

/* Receives until `want` events came (0: any number) and no event came for
 * quiet_ms (heartbeats do not count), or max_ms passed; polls at least once. */
static void s_bus_drain(s_bus_t *b, s_got_t *g, size_t want, int quiet_ms, int max_ms)
{
    int64_t end = tk_now_ms() + max_ms, last = tk_now_ms();
    for (bool polled = false;; polled = true) {
        int64_t now = tk_now_ms();
        if (polled && (now >= end || ((!want || g->n >= want) && now - last >= quiet_ms)))
            return;
        zmq_pollitem_t it = {b->xsub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, b->xsub, 0) < 0)
            continue;
        cr_assert(zmq_msg_more(&topic));
        cr_assert_geq(zmq_msg_recv(&body, b->xsub, 0), 0);
        uint32_t partition;
        ev_msg_kind_t kind;
        cr_assert(ev_topic_parse(zmq_msg_data(&topic), zmq_msg_size(&topic), &partition, &kind));
        if (kind == EV_MSG_EVENT) {
            /* Every event of the body, each of the topic's partition. */
            size_t offset = 0, rawlen, before = g->n;
            const void *raw;
            ev_event_t e;
            ev_error_t err = {0};
            ev_next_t next;
            while ((next = ev_codec_next_event(b->codec, zmq_msg_data(&body), zmq_msg_size(&body), &offset, &e, &raw,
                                               &rawlen, &err)) == EV_NEXT_EVENT) {
                cr_assert_eq((uint32_t)e.partition, partition);
                s_got_add(g, &e);
            }
            cr_assert_eq(next, EV_NEXT_END, "%s", err.detail);
            g->messages++;
            if (g->n - before > g->most)
                g->most = g->n - before;
            last = tk_now_ms();
        } else {
            g->heartbeats++;
            ev_heartbeat_t hb;
            ev_error_t err;
            cr_assert_eq(ev_codec_decode_heartbeat(b->codec, zmq_msg_data(&body), zmq_msg_size(&body), &hb, &err),
                         EV_OK, "%s", err.detail);
            if (hb.archived && g->narchived < sizeof g->archived / sizeof g->archived[0]) {
                s_ev_t *o = &g->archived[g->narchived++];
                snprintf(o->source, sizeof o->source, "%.*s", (int)hb.source.len, hb.source.ptr);
                o->partition = hb.partition;
                o->seq = hb.seq;
            }
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
}

/* ---- Running ingest ---- */

static void s_dump_log(tk_proc_t *p)
{
    char *log = tk_read_file(p->log, NULL);
    fprintf(stderr, "---- %s log ----\n%s\n----\n", p->name, log);
    free(log);
}

static bool s_log_has(tk_proc_t *p, const char *text)
{
    char *log = tk_read_file(p->log, NULL);
    bool has = strstr(log, text) != NULL;
    free(log);
    return has;
}

/* Runs ingest to its end, draining the bus meanwhile. Returns the exit code. */
static int s_run(tk_world_t *w, s_bus_t *bus, s_got_t *g, const char *const *args, const char *const *env,
                 tk_proc_t **out)
{
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    int64_t end = tk_now_ms() + 60000;
    while (!tk_wait_exit(p, 0) && tk_now_ms() < end) {
        if (bus)
            s_bus_drain(bus, g, 0, 50, 100);
        else
            tk_sleep_ms(50);
    }
    if (bus)
        s_bus_drain(bus, g, 0, 300, 3000);
    cr_assert(tk_wait_exit(p, 0), "ingest did not finish in time");
    return tk_finish(p, out);
}

static void s_copy_in(const char *dir, const char *fixture, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    copy_file(fx(fixture), path);
}

static const char *const s_small_lines[] = {"INGEST_MAX_LINE=256", "HEARTBEAT_MS=100", NULL};
/* The sources of the two files read with INGEST_MAX_LINE=256: the setting
 * decides which rows take seqs, so the source names it. */
#define OLD_FORMAT_SOURCE_L256 OLD_FORMAT_SOURCE "-l256"
#define BAD_ROWS_SOURCE_L256 BAD_ROWS_SOURCE "-l256"

/* ---- One-shot replay ---- */

Test(ingest_process, one_shot_replay_publishes_exactly_the_good_rows_with_their_identities)
{
    tk_world_t *w = tk_world_new("ingest_oneshot");
    s_bus_t *bus = s_bus_new(w);
    s_copy_in(w->data_dir, "old_format.csv", "a-old.csv");
    s_copy_in(w->data_dir, "bad_rows.csv", "b-bad.csv");
    s_got_t g = {0};
    tk_proc_t *p;
    const char *args[] = {w->data_dir, NULL};
    int rc = s_run(w, bus, &g, args, s_small_lines, &p);
    if (rc != 0 || g.n != 12)
        s_dump_log(p);
    cr_assert_eq(rc, 0);
    cr_assert_eq(g.n, 12, "published %zu", g.n);
    cr_assert_eq(s_count_source(&g, OLD_FORMAT_SOURCE_L256), 8);
    cr_assert_eq(s_count_source(&g, BAD_ROWS_SOURCE_L256), 4);
    /* Old format: users 101 102 101 103 104 102 105 106. */
    const int32_t part[] = {4, 9, 4, 4, 12, 9, 6, 11};
    const int64_t seq[] = {1, 1, 2, 3, 1, 2, 1, 1};
    const int32_t user[] = {101, 102, 101, 103, 104, 102, 105, 106};
    for (int i = 0; i < 8; i++) {
        const s_ev_t *e = s_find(&g, OLD_FORMAT_SOURCE_L256, part[i], seq[i]);
        cr_assert_not_null(e, "no event %d/%lld", part[i], (long long)seq[i]);
        cr_assert_eq(e->user_id, user[i]);
        cr_assert_gt(e->published_at, 0);
    }
    /* The bad-rows file: only its good rows, seqs skipping the bad ones. */
    cr_assert_not_null(s_find(&g, BAD_ROWS_SOURCE_L256, 2, 1));
    cr_assert_not_null(s_find(&g, BAD_ROWS_SOURCE_L256, 2, 2));
    cr_assert_not_null(s_find(&g, BAD_ROWS_SOURCE_L256, 9, 1));
    cr_assert_not_null(s_find(&g, BAD_ROWS_SOURCE_L256, 15, 1));
    cr_assert_null(s_find(&g, BAD_ROWS_SOURCE_L256, 2, 3));
    /* The summary, as a log line and a human line. */
    cr_assert(s_log_has(p, "ingest: 2 files, 20 rows read, 12 published, 8 rejected (see "));
    cr_assert(s_log_has(p, "msg=\"summary\" files=2"));
    /* The reject file: a header and eight lines. */
    char path[700];
    snprintf(path, sizeof path, "%s/rejects/b-bad.csv.rejects.csv", w->state_dir);
    size_t len;
    char *rej = slurp(path, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += rej[i] == '\n';
    cr_assert_eq(lines, 9, "%s", rej);
    free(rej);
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, a_second_replay_skips_and_force_publishes_the_same_identities)
{
    tk_world_t *w = tk_world_new("ingest_force");
    s_bus_t *bus = s_bus_new(w);
    s_copy_in(w->data_dir, "old_format.csv", "old.csv");
    char file[600];
    snprintf(file, sizeof file, "%s/old.csv", w->data_dir);
    const char *args[] = {file, NULL};
    s_got_t first = {0}, second = {0}, third = {0};
    cr_assert_eq(s_run(w, bus, &first, args, NULL, NULL), 0);
    cr_assert_eq(first.n, 8);
    /* Its 8 events fall in 5 partitions: one message each at the end of the file. */
    cr_assert_eq(first.messages, 5, "%zu messages", first.messages);

    tk_proc_t *p;
    cr_assert_eq(s_run(w, bus, &second, args, NULL, &p), 0);
    cr_assert_eq(second.n, 0);
    cr_assert(s_log_has(p, "already ingested"));
    cr_assert(s_log_has(p, "1 skipped"));
    tk_proc_destroy(&p);

    const char *force[] = {"--force", file, NULL};
    const char *one_each[] = {"PUBLISH_BATCH=1", NULL};
    cr_assert_eq(s_run(w, bus, &third, force, one_each, NULL), 0);
    cr_assert_eq(third.n, 8);
    cr_assert_eq(third.messages, 8, "PUBLISH_BATCH=1: one event per message");
    for (size_t i = 0; i < first.n; i++) {
        const s_ev_t *e = &first.ev[i];
        const s_ev_t *again = s_find(&third, e->source, e->partition, e->seq);
        cr_assert_not_null(again);
        cr_assert_eq(again->user_id, e->user_id);
    }
    free(first.ev);
    free(third.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, an_archive_file_replays_with_the_identity_its_columns_carry)
{
    tk_world_t *w = tk_world_new("ingest_archive_replay");
    s_bus_t *bus = s_bus_new(w);
    const char *args[] = {fx("archive_format.csv"), NULL};
    s_got_t g = {0};
    cr_assert_eq(s_run(w, bus, &g, args, NULL, NULL), 0);
    cr_assert_eq(g.n, 12);
    cr_assert_eq(s_count_source(&g, ARCHIVE_SOURCE), 12);
    const s_ev_t *e = s_find(&g, ARCHIVE_SOURCE, 1, 3);
    cr_assert_not_null(e);
    cr_assert_eq(e->user_id, 207);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, a_bad_header_refuses_that_file_and_exits_1)
{
    tk_world_t *w = tk_world_new("ingest_bad_header");
    s_bus_t *bus = s_bus_new(w);
    const char *args[] = {fx("bad_header.csv"), fx("old_format.csv"), NULL};
    s_got_t g = {0};
    tk_proc_t *p;
    cr_assert_eq(s_run(w, bus, &g, args, NULL, &p), 1);
    cr_assert_eq(g.n, 8);
    cr_assert(s_log_has(p, "file refused"));
    cr_assert(s_log_has(p, "no column named product_price"));
    cr_assert(s_log_has(p, "1 failed"));
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, without_a_bus_it_gives_up_after_the_bus_timeout)
{
    tk_world_t *w = tk_world_new("ingest_no_bus");
    const char *args[] = {"--bus-timeout", "1", fx("old_format.csv"), NULL};
    tk_proc_t *p;
    cr_assert_eq(s_run(w, NULL, NULL, args, NULL, &p), 1);
    cr_assert(s_log_has(p, "the bus did not answer"));
    tk_proc_destroy(&p);
    tk_world_destroy(&w);
}

/* ---- Repairs ---- */

typedef struct {
    s_got_t events;       /* EVENT replies */
    ev_repair_t end;      /* the END body */
    char end_source[80];  /* its source */
    bool ended;           /* END came */
} s_answer_t;

static void s_ask(void *dealer, uint64_t id, const char *source, int32_t partition, int64_t from, int64_t to,
                  s_answer_t *a)
{
    memset(a, 0, sizeof *a);
    ev_codec_t *codec = ev_codec_new();
    ev_repair_t req = {.id = id, .source = {source, (uint32_t)strlen(source)}, .partition = partition,
                       .from = from, .to = to};
    const void *body;
    size_t blen;
    ev_codec_encode_repair(codec, &req, &body, &blen);
    cr_assert_eq(zmq_send(dealer, EV_REPAIR_REQUEST, strlen(EV_REPAIR_REQUEST), ZMQ_SNDMORE), 6);
    cr_assert_eq(zmq_send(dealer, body, blen, 0), (int)blen);
    int64_t end = tk_now_ms() + 15000;
    while (!a->ended && tk_now_ms() < end) {
        zmq_pollitem_t it = {dealer, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t cmd, msg;
        zmq_msg_init(&cmd);
        zmq_msg_init(&msg);
        cr_assert_geq(zmq_msg_recv(&cmd, dealer, 0), 0);
        cr_assert(zmq_msg_more(&cmd));
        cr_assert_geq(zmq_msg_recv(&msg, dealer, 0), 0);
        cr_assert_not(zmq_msg_more(&msg));
        if (zmq_msg_size(&cmd) == 5 && memcmp(zmq_msg_data(&cmd), "EVENT", 5) == 0) {
            ev_event_t e;
            ev_error_t err;
            cr_assert_eq(ev_codec_decode_event(codec, zmq_msg_data(&msg), zmq_msg_size(&msg), &e, &err), EV_OK);
            s_got_add(&a->events, &e);
        } else {
            cr_assert_eq(zmq_msg_size(&cmd), 3);
            cr_assert_eq(memcmp(zmq_msg_data(&cmd), "END", 3), 0);
            ev_error_t err;
            cr_assert_eq(ev_codec_decode_repair(codec, zmq_msg_data(&msg), zmq_msg_size(&msg), &a->end, &err),
                         EV_OK, "%s", err.detail);
            snprintf(a->end_source, sizeof a->end_source, "%.*s", (int)a->end.source.len, a->end.source.ptr);
            a->ended = true;
        }
        zmq_msg_close(&cmd);
        zmq_msg_close(&msg);
    }
    ev_codec_destroy(&codec);
    cr_assert(a->ended, "no END for %s/%d", source, partition);
}

Test(ingest_process, repair_answers_ranges_from_the_archive_and_from_ingested_files)
{
    tk_world_t *w = tk_world_new("ingest_repair");
    s_bus_t *bus = s_bus_new(w);
    mkdir(w->archive_dir, 0755);
    s_copy_in(w->archive_dir, "archive_format.csv", "archive-20241122.csv");
    const char *args[] = {"--watch", w->data_dir, NULL};
    const char *env[] = {"INGEST_SETTLE_MS=100", NULL};
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    s_got_t g = {0};
    s_copy_in(w->data_dir, "old_format.csv", "old.csv");
    int64_t end = tk_now_ms() + 30000;
    while (g.n < 8 && tk_now_ms() < end)
        s_bus_drain(bus, &g, 8, 0, 200);
    if (!tk_wait_log(p, "file finished", 10000))
        s_dump_log(p);
    cr_assert_eq(g.n, 8);

    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(dealer, w->replay_ep), 0);

    /* The archive: partition 1 holds seqs 1-3 (users 203, 203, 207). */
    s_answer_t a;
    s_ask(dealer, 7, ARCHIVE_SOURCE, 1, 2, 3, &a);
    cr_assert_eq(a.events.n, 2);
    cr_assert_eq(a.events.ev[0].seq, 2);
    cr_assert_eq(a.events.ev[0].user_id, 203);
    cr_assert_eq(a.events.ev[1].seq, 3);
    cr_assert_eq(a.events.ev[1].user_id, 207);
    cr_assert_str_eq(a.events.ev[0].source, ARCHIVE_SOURCE);
    cr_assert_gt(a.events.ev[0].published_at, 0);
    cr_assert_eq(a.end.id, 7);
    cr_assert_str_eq(a.end_source, ARCHIVE_SOURCE);
    cr_assert_eq(a.end.partition, 1);
    cr_assert_eq(a.end.from, 2);
    cr_assert_eq(a.end.to, 3);
    cr_assert_eq(a.end.sent, 2);
    cr_assert(a.end.found_source);
    free(a.events.ev);

    /* The ingested file, by its file- source: partition 4 is users 101, 101, 103. */
    s_ask(dealer, 8, OLD_FORMAT_SOURCE, 4, 1, 3, &a);
    cr_assert_eq(a.events.n, 3);
    const int32_t users[] = {101, 101, 103};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(a.events.ev[i].seq, i + 1);
        cr_assert_eq(a.events.ev[i].user_id, users[i]);
        cr_assert_str_eq(a.events.ev[i].source, OLD_FORMAT_SOURCE);
    }
    cr_assert_eq(a.end.sent, 3);
    cr_assert(a.end.found_source);
    free(a.events.ev);

    /* Beyond what the source holds: found, nothing sent. */
    s_ask(dealer, 9, OLD_FORMAT_SOURCE, 4, 4, 10, &a);
    cr_assert_eq(a.events.n, 0);
    cr_assert_eq(a.end.sent, 0);
    cr_assert(a.end.found_source);

    /* A source nobody knows. */
    s_ask(dealer, 10, "gen-ffffffffffffffff", 0, 1, 5, &a);
    cr_assert_eq(a.events.n, 0);
    cr_assert_eq(a.end.id, 10);
    cr_assert_eq(a.end.sent, 0);
    cr_assert_not(a.end.found_source);

    zmq_close(dealer);
    zmq_ctx_term(ctx);
    tk_stop(&p, 15000);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

/* `ingest --watch` over an archive holding the archive_format.csv fixture,
 * and a DEALER connected to its repair endpoint. */
typedef struct {
    tk_world_t *w;  /* the world */
    tk_proc_t *p;   /* ingest */
    void *ctx;      /* the dealer's context */
    void *dealer;   /* asks for repairs */
} s_server_t;

/* `ingest --watch` on w (its archive already in place), with extra
 * settings env (NULL: none), and a DEALER connected to its repair endpoint. */
static s_server_t s_server_start(tk_world_t *w, const char *const *env)
{
    s_server_t sv = {w, NULL, zmq_ctx_new(), NULL};
    const char *args[] = {"--watch", w->data_dir, NULL};
    sv.p = tk_start(w, "ingest", args, env);
    cr_assert(tk_wait_log(sv.p, "repair server listening", 20000));
    sv.dealer = zmq_socket(sv.ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sv.dealer, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(sv.dealer, w->replay_ep), 0);
    return sv;
}

static s_server_t s_server_new(const char *name)
{
    tk_world_t *w = tk_world_new(name);
    mkdir(w->archive_dir, 0755);
    s_copy_in(w->archive_dir, "archive_format.csv", "archive-20241122.csv");
    return s_server_start(w, NULL);
}

static void s_server_destroy(s_server_t *sv)
{
    zmq_close(sv->dealer);
    zmq_ctx_term(sv->ctx);
    tk_stop(&sv->p, 15000);
    tk_world_destroy(&sv->w);
}

/* END says the archive's head: the evidence a writer needs before it may
 * call a range lost. A deleted file's seqs still count (they existed). */
Test(ingest_process, repair_answers_carry_the_archives_head_deleted_files_included)
{
    s_server_t sv = s_server_new("ingest_repair_head");
    void *dealer = sv.dealer;
    s_answer_t a;
    s_ask(dealer, 1, ARCHIVE_SOURCE, 1, 5, 9, &a);
    cr_assert(a.end.found_source);
    cr_assert_eq(a.end.sent, 0);
    cr_assert_eq(a.end.head, 3, "partition 1 holds seqs 1-3");
    free(a.events.ev);

    char path[600];
    snprintf(path, sizeof path, "%s/archive-20241122.csv", sv.w->archive_dir);
    cr_assert_eq(unlink(path), 0);
    s_ask(dealer, 2, ARCHIVE_SOURCE, 1, 2, 3, &a);
    cr_assert_eq(a.events.n, 0, "the file is gone");
    cr_assert(a.end.found_source, "but the source is known");
    cr_assert_eq(a.end.head, 3, "and 1-3 existed: a gap, not a claim");
    free(a.events.ev);

    s_ask(dealer, 3, "gen-ffffffffffffffff-0123456789abcdef", 0, 1, 5, &a);
    cr_assert_not(a.end.found_source);
    cr_assert_eq(a.end.head, 0);
    free(a.events.ev);
    s_server_destroy(&sv);
}

/* A source of 80 bytes or more used to get no END, so the writer re-asked
 * forever; a range of any size was read in full. */
Test(ingest_process, every_request_gets_an_end_and_ranges_are_capped)
{
    s_server_t sv = s_server_new("ingest_repair_caps");
    void *dealer = sv.dealer;
    tk_proc_t *p = sv.p;
    s_answer_t a;
    s_ask(dealer, 1, ARCHIVE_SOURCE, 1, 1, INT64_MAX, &a);
    cr_assert_eq(a.events.n, 3);
    cr_assert_eq(a.end.to, EV_REPAIR_RANGE_MAX, "answered up to the cap: the rest is asked for next");
    cr_assert_not(a.end.refused);
    free(a.events.ev);

    /* 64 characters of 4 bytes: a source the protocol allows. */
    char wide[4 * 64 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(wide, "\xf0\x9f\x98\x80");
    s_ask(dealer, 2, wide, 0, 1, 5, &a);
    cr_assert_not(a.end.refused);
    cr_assert_not(a.end.found_source);
    cr_assert_eq(a.end.source.len, strlen(wide));
    free(a.events.ev);

    /* 65 characters: refused, with an END. */
    char long_source[80];
    memset(long_source, 'x', 65);
    long_source[65] = '\0';
    s_ask(dealer, 3, long_source, 0, 1, 5, &a);
    cr_assert(a.end.refused);
    cr_assert_eq(a.end.id, 3);
    free(a.events.ev);
    cr_assert(tk_wait_log(p, "repair request refused", 5000));
    /* Control characters are text the protocol allows: answered, and
     * escaped in the log (no terminal escapes, no forged log fields). */
    s_ask(dealer, 4, "gen-\x1b[31mred\nlevel=error", 0, 1, 5, &a);
    cr_assert_not(a.end.refused);
    cr_assert_not(a.end.found_source);
    free(a.events.ev);
    cr_assert(tk_wait_log(p, "id=4", 5000));
    cr_assert_not(s_log_has(p, "\x1b[31m"), "a requested source is escaped in the log");
    cr_assert_not(s_log_has(p, "\nlevel=error"));
    s_server_destroy(&sv);
}

/* A request was read for as long as it took. With REPAIR_MAX_MS it stops,
 * and END's `to` says how far the answer went (or `refused` when it got
 * nowhere), so the asker asks again for the rest. */
Test(ingest_process, a_repair_that_takes_too_long_ends_where_it_got)
{
    tk_world_t *w = tk_world_new("ingest_repair_time");
    mkdir(w->archive_dir, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/events_20240101_000000.csv", w->archive_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,"
               "event_time,source,partition,seq\n");
    for (int seq = 1; seq <= 20000; seq++)
        fprintf(f, "7,U,u@example.com,view,1,P,C,1.00,2024-01-01 00:00:00,gen-slow,3,%d\n", seq);
    cr_assert_eq(fclose(f), 0);
    const char *env[] = {"REPAIR_MAX_MS=1", NULL};
    s_server_t sv = s_server_start(w, env);
    s_answer_t a;
    s_ask(sv.dealer, 1, "gen-slow", 3, 1, 20000, &a);
    cr_assert(a.end.found_source);
    cr_assert_eq(a.end.head, 20000);
    cr_assert_lt(a.end.to, 20000, "a 1 ms cap cannot send 20,000 events");
    cr_assert_eq((int64_t)a.events.n, a.end.refused ? 0 : a.end.to, "END's to is the last seq sent");
    free(a.events.ev);
    s_server_destroy(&sv);
}

/* Events a generator archived but never sent (killed between the two)
 * reached writers only when some publisher or writer restarted. */
Test(ingest_process, quiet_archive_heads_are_announced_as_archived_heartbeats)
{
    tk_world_t *w = tk_world_new("ingest_announce");
    s_bus_t *bus = s_bus_new(w);
    mkdir(w->archive_dir, 0755);
    s_copy_in(w->archive_dir, "archive_format.csv", "archive-20241122.csv");
    const char *args[] = {"--watch", w->data_dir, NULL};
    const char *env[] = {"HEARTBEAT_MS=100", NULL};
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    s_got_t g = {0};
    int64_t end = tk_now_ms() + 20000;
    bool seen = false;
    while (!seen && tk_now_ms() < end) {
        s_bus_drain(bus, &g, 0, 0, 200);
        for (size_t i = 0; i < g.narchived; i++)
            if (strcmp(g.archived[i].source, ARCHIVE_SOURCE) == 0 && g.archived[i].partition == 1) {
                cr_assert_eq(g.archived[i].seq, 3);
                seen = true;
            }
    }
    cr_assert(seen, "no archived heartbeat for %s partition 1", ARCHIVE_SOURCE);
    cr_assert_eq(g.n, 0, "announcing sends no events");
    tk_stop(&p, 15000);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, a_second_ingest_goes_on_without_the_repair_endpoint)
{
    tk_world_t *w = tk_world_new("ingest_second");
    s_bus_t *bus = s_bus_new(w);
    const char *watch[] = {"--watch", w->data_dir, NULL};
    tk_proc_t *first = tk_start(w, "ingest", watch, NULL);
    cr_assert(tk_wait_log(first, "repair server listening", 10000));
    const char *args[] = {fx("old_format.csv"), NULL};
    s_got_t g = {0};
    tk_proc_t *p;
    cr_assert_eq(s_run(w, bus, &g, args, NULL, &p), 0);
    cr_assert_eq(g.n, 8);
    cr_assert(s_log_has(p, "no repair server in this process"));
    tk_proc_destroy(&p);
    tk_stop(&first, 15000);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

/* ---- Watching ---- */

Test(ingest_process, watch_takes_a_file_renamed_into_the_folder_and_not_a_tmp_one)
{
    tk_world_t *w = tk_world_new("ingest_watch");
    s_bus_t *bus = s_bus_new(w);
    const char *args[] = {"--watch", w->data_dir, NULL};
    const char *env[] = {"INGEST_SETTLE_MS=200", NULL};
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    cr_assert(tk_wait_log(p, "watching", 10000));
    /* Left as .tmp: never complete. */
    s_copy_in(w->data_dir, "bad_rows.csv", "still-writing.csv.tmp");
    /* Written under a temporary name, then renamed in. */
    s_copy_in(w->data_dir, "old_format.csv", "incoming.csv.tmp");
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/incoming.csv.tmp", w->data_dir);
    snprintf(to, sizeof to, "%s/incoming.csv", w->data_dir);
    cr_assert_eq(rename(from, to), 0);
    s_got_t g = {0};
    int64_t end = tk_now_ms() + 30000;
    while (g.n < 8 && tk_now_ms() < end)
        s_bus_drain(bus, &g, 8, 0, 200);
    if (g.n != 8)
        s_dump_log(p);
    cr_assert_eq(g.n, 8);
    cr_assert_eq(s_count_source(&g, OLD_FORMAT_SOURCE), 8);
    cr_assert(tk_wait_log(p, "ingest: 1 file, 8 rows read, 8 published, 0 rejected", 10000));
    /* Several rescans later the .tmp file is still not taken. */
    s_bus_drain(bus, &g, 0, 2500, 5000);
    cr_assert_eq(g.n, 8);
    cr_assert_eq(s_count_source(&g, BAD_ROWS_SOURCE), 0);
    char ledger[700];
    snprintf(ledger, sizeof ledger, "%s/ledger.tsv", w->state_dir);
    char *text = slurp(ledger, NULL);
    cr_assert_not_null(strstr(text, "incoming.csv\t"));
    cr_assert_null(strstr(text, "still-writing"));
    free(text);
    tk_signal(p, SIGTERM);
    cr_assert(tk_wait_exit(p, 15000));
    cr_assert_eq(tk_exit_code(p), 0);
    cr_assert(s_log_has(p, "stopping"));
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

/* ---- --wait ---- */

static void s_checkpoints_table(tk_world_t *w)
{
    char path[600];
    const char *src = getenv("EVPIPE_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/sql/003_checkpoints.sql", src ? src : INGEST_FIXTURES "/../../..");
    char *sql = slurp(path, NULL);
    tk_sql_exec(w->conn, sql);
    free(sql);
}

Test(ingest_process, wait_ends_once_the_checkpoints_reach_what_was_published)
{
    tk_world_t *w = tk_world_new("ingest_wait");
    s_checkpoints_table(w);
    s_bus_t *bus = s_bus_new(w);
    const char *args[] = {"--wait", "--wait-timeout", "60", fx("old_format.csv"), NULL};
    const char *env[] = {"HEARTBEAT_MS=100", NULL};
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    s_got_t g = {0};
    s_bus_drain(bus, &g, 8, 300, 20000);
    cr_assert_eq(g.n, 8);
    /* While it waits, it heartbeats. */
    size_t hb = g.heartbeats;
    int64_t end = tk_now_ms() + 10000;
    while (g.heartbeats == hb && tk_now_ms() < end)
        s_bus_drain(bus, &g, 0, 0, 100);
    cr_assert_gt(g.heartbeats, hb);
    cr_assert_not(tk_wait_exit(p, 0), "ingest --wait ended before anything was committed");
    /* Play the writer: commit every partition up to its last seq. */
    for (size_t i = 0; i < g.n; i++) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "INSERT INTO checkpoints (source, partition, seq) VALUES ('%s', %d, %lld) "
                 "ON CONFLICT (source, partition) DO UPDATE SET seq = GREATEST(checkpoints.seq, EXCLUDED.seq)",
                 g.ev[i].source, g.ev[i].partition, (long long)g.ev[i].seq);
        tk_sql_exec(w->conn, sql);
    }
    end = tk_now_ms() + 20000;
    while (!tk_wait_exit(p, 0) && tk_now_ms() < end)
        s_bus_drain(bus, &g, 0, 0, 100);
    cr_assert(tk_wait_exit(p, 0));
    if (tk_exit_code(p) != 0)
        s_dump_log(p);
    cr_assert_eq(tk_exit_code(p), 0);
    cr_assert(s_log_has(p, "committed: all 8 events"));
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, wait_timeout_exits_2_naming_what_is_missing)
{
    tk_world_t *w = tk_world_new("ingest_wait_timeout");
    s_checkpoints_table(w);
    tk_sql_exec(w->conn, "INSERT INTO checkpoints (source, partition, seq) VALUES "
                         "('" OLD_FORMAT_SOURCE "', 4, 3), ('" OLD_FORMAT_SOURCE "', 9, 1)");
    s_bus_t *bus = s_bus_new(w);
    const char *args[] = {"--wait", "--wait-timeout", "1", fx("old_format.csv"), NULL};
    s_got_t g = {0};
    tk_proc_t *p;
    cr_assert_eq(s_run(w, bus, &g, args, NULL, &p), 2);
    /* Partition 4 is committed; 9 is one short; 12, 6, 11 have nothing. */
    cr_assert(s_log_has(p, "4 of 8 events missing"));
    cr_assert(s_log_has(p, "partition=9 committed=1 published=2"));
    cr_assert_not(s_log_has(p, "partition=4 committed"));
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

/* ---- Volume ---- */

Test(ingest_process, replays_a_large_old_format_file_completely)
{
    /* EVPIPE_INGEST_ROWS sets the size (a release build measures speed). */
    const char *rows_env = getenv("EVPIPE_INGEST_ROWS");
    long rows = rows_env ? atol(rows_env) : 50000;
    tk_world_t *w = tk_world_new("ingest_volume");
    s_bus_t *bus = s_bus_new(w);
    char path[600];
    snprintf(path, sizeof path, "%s/big.csv", w->data_dir);
    FILE *f = fopen(path, "wb");
    fputs("user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,"
          "event_time\r\n",
          f);
    for (long i = 0; i < rows; i++)
        fprintf(f, "%ld,\"User, %ld\",user%ld@example.com,%s,%ld,Product %ld,Category %ld,%ld.%ld,"
                   "2024-11-%02ld %02ld:%02ld:%02ld.%06ld\r\n",
                i % 100000, i % 100000, i % 100000, i % 7 ? "view" : "purchase", i % 5000, i % 5000, i % 40,
                i % 1000, i % 10, 1 + i % 28, i % 24, i % 60, (i / 60) % 60, i % 1000000);
    fclose(f);
    const char *args[] = {path, NULL};
    s_got_t g = {0};
    tk_proc_t *p;
    int64_t t0 = tk_now_ms();
    int rc = s_run(w, bus, &g, args, NULL, &p);
    int64_t ms = tk_now_ms() - t0;
    if (rc != 0)
        s_dump_log(p);
    cr_assert_eq(rc, 0);
    cr_assert_eq(g.n, (size_t)rows);
    /* Several events per message, never more than PUBLISH_BATCH. */
    evp_config_t defaults;
    evp_config_defaults(&defaults);
    cr_assert_leq(g.most, (size_t)defaults.publish_batch);
    cr_assert_lt(g.messages * 4, g.n, "%zu messages for %zu events", g.messages, g.n);
    char *log = tk_read_file(p->log, NULL);
    char *line = strstr(log, "ingest: 1 file");
    cr_assert_not_null(line);
    char *nl = strchr(line, '\n');
    fprintf(stderr, "volume: %ld rows in %lld ms end to end; %.*s\n", rows, (long long)ms,
            (int)(nl ? nl - line : (long)strlen(line)), line);
    free(log);
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

/* ---- Metrics, /healthz and progress ---- */

/* "METRICS_PORT=<port>" in static storage (putenv keeps the pointer). */
static const char *s_metrics_env(int port)
{
    static char text[4][32];
    static int next;
    char *e = text[next++ % 4];
    snprintf(e, sizeof text[0], "METRICS_PORT=%d", port);
    return e;
}

/* Drains the bus until /healthz answers want (the stand-in bus subscribes
 * only while it is being read); the last status. */
static int s_wait_health(s_bus_t *bus, s_got_t *g, int port, int want, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    int status;
    do {
        if (bus)
            s_bus_drain(bus, g, 0, 0, 100);
        else
            tk_sleep_ms(100);
        status = tk_http_wait_status(port, "/healthz", want, 0);
    } while (status != want && tk_now_ms() < end);
    return status;
}

Test(ingest_process, watch_mode_counts_rows_rejects_and_files_and_answers_healthz)
{
    tk_world_t *w = tk_world_new("ingest_metrics");
    s_bus_t *bus = s_bus_new(w);
    int port = tk_free_port();
    const char *args[] = {"--watch", w->data_dir, NULL};
    const char *env[] = {"INGEST_MAX_LINE=256", "INGEST_SETTLE_MS=200", s_metrics_env(port), NULL};
    tk_proc_t *p = tk_start(w, "ingest", args, env);
    cr_assert(tk_wait_log(p, "metrics listening", 10000), "no metrics server");
    s_got_t g = {0};
    cr_assert_eq(s_wait_health(bus, &g, port, 200, 20000), 200, "watching, bound and subscribed: healthy");

    s_copy_in(w->data_dir, "bad_rows.csv", "bad.csv");
    int64_t end = tk_now_ms() + 30000;
    while (g.n < 4 && tk_now_ms() < end)
        s_bus_drain(bus, &g, 4, 0, 200);
    cr_assert(tk_wait_log(p, "ingest: 1 file, 12 rows read, 4 published, 8 rejected", 10000));
    tk_http_t r = tk_http_get(port, "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_rows_read_total"), 12, "%s", r.body);
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_rows_published_total"), 4);
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_files_ingested_total"), 1);
    const char *reasons[] = {"column_count", "bad_number",   "bad_price",    "bad_time",
                             "bad_event_type", "too_long", "bad_encoding", "line_too_long"};
    for (int i = 0; i < 8; i++) {
        char key[128];
        snprintf(key, sizeof key, "evpipe_ingest_rows_rejected_total{reason=\"%s\"}", reasons[i]);
        cr_assert_eq(tk_metric(r.body, key), 1, "%s", key);
    }
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_rows_rejected_total{reason=\"missing_field\"}"), 0);
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_repair_bound"), 1);
    cr_assert_eq(tk_metric(r.body, "evpipe_ingest_bus_connected"), 1);
    tk_http_free(&r);

    /* A second watcher cannot bind REPLAY_ENDPOINT: it says so on /healthz. */
    int port2 = tk_free_port();
    const char *env2[] = {s_metrics_env(port2), NULL};
    tk_proc_t *second = tk_start(w, "ingest", args, env2);
    cr_assert(tk_wait_log(second, "no repair server in this process", 10000));
    cr_assert_eq(s_wait_health(bus, &g, port2, 503, 10000), 503);
    r = tk_http_get(port2, "/healthz");
    cr_assert(strstr(r.body, "repair: REPLAY_ENDPOINT is not bound"), "%s", r.body);
    tk_http_free(&r);
    tk_signal(second, SIGTERM);
    cr_assert(tk_wait_exit(second, 15000));
    tk_proc_destroy(&second);

    /* The bus goes away: 503 until it is back. */
    s_bus_destroy(&bus);
    cr_assert_eq(s_wait_health(NULL, &g, port, 503, 20000), 503, "no bus: unhealthy");
    r = tk_http_get(port, "/healthz");
    cr_assert_str_eq(r.body, "bus: not connected\n");
    tk_http_free(&r);
    bus = s_bus_new(w);
    cr_assert_eq(s_wait_health(bus, &g, port, 200, 20000), 200, "the bus is back: healthy");

    tk_stop(&p, 15000);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}

Test(ingest_process, progress_draws_a_bar_when_asked_even_off_a_terminal)
{
    tk_world_t *w = tk_world_new("ingest_progress");
    s_bus_t *bus = s_bus_new(w);
    s_copy_in(w->data_dir, "old_format.csv", "old.csv");
    char path[600];
    snprintf(path, sizeof path, "%s/old.csv", w->data_dir);
    const char *args[] = {"--progress", path, NULL};
    s_got_t g = {0};
    tk_proc_t *p;
    cr_assert_eq(s_run(w, bus, &g, args, NULL, &p), 0);
    char *log = tk_read_file(p->log, NULL);
    /* The bar through the hash pass, at the first row (the header read),
     * the final numbers at the end and a new line; log lines erase the
     * bar's line first. */
    cr_assert(strstr(log, "\r\033[Kold.csv [") && strstr(log, "%  hashing  ETA"), "%s", log);
    cr_assert(strstr(log, "%  0 rows  0 rows/s  ETA --:--"), "%s", log);
    cr_assert(strstr(log, "] 100.0%  8 rows  "), "%s", log);
    cr_assert(strstr(log, "ETA 0:00\n"), "%s", log);
    cr_assert(strstr(log, "\r\033[K20"), "log lines start by erasing the bar: %s", log);
    free(log);
    tk_proc_destroy(&p);

    /* Without a terminal and without --progress: no bar at all. */
    const char *force[] = {"--force", path, NULL};
    cr_assert_eq(s_run(w, bus, &g, force, NULL, &p), 0);
    log = tk_read_file(p->log, NULL);
    cr_assert_null(strstr(log, "\033[K"), "%s", log);
    cr_assert_null(strstr(log, "] 100.0%"), "%s", log);
    free(log);
    tk_proc_destroy(&p);

    const char *both[] = {"--progress", "--no-progress", path, NULL};
    cr_assert_eq(s_run(w, bus, &g, both, NULL, &p), 1);
    cr_assert(s_log_has(p, "--progress and --no-progress contradict each other"));
    tk_proc_destroy(&p);
    free(g.ev);
    s_bus_destroy(&bus);
    tk_world_destroy(&w);
}
