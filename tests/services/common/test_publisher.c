/* The publisher against a real bus socket (an XSUB bound on 127.0.0.1 that
 * subscribes to everything, as the bus's publisher side does): a partition's
 * events go out together when PUBLISH_BATCH are there, before the next would
 * pass MAX_MESSAGE_BYTES, before a heartbeat, on a tick once the first has
 * waited the bound, on flush and on destroy; heads count only what left. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "evpipe/log.h"
#include "evpipe/publisher.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "testkit.h"

#define SOURCE "gen-00000000000000aa"
#define MSG_EVENTS_MAX 256

/* One message received: its topic and the events of its body. */
typedef struct {
    uint32_t partition;                 /* from the topic */
    ev_msg_kind_t kind;                 /* events or a heartbeat */
    size_t len;                         /* body bytes */
    size_t events;                      /* events in the body */
    int maps;                           /* how many of them are maps (the rest are arrays) */
    int64_t seq[MSG_EVENTS_MAX];        /* each event's seq (a heartbeat: [0] is its seq) */
    int64_t published_at[MSG_EVENTS_MAX]; /* each event's stamp */
} s_msg_t;

typedef struct {
    evp_config_t cfg;      /* the publisher's settings */
    void *ctx;             /* the test's ZeroMQ context */
    void *xsub;            /* the bus's publisher side */
    ev_codec_t *codec;     /* decodes what arrives */
    evp_publisher_t *pub;  /* under test */
} fixture_t;

/* Binds the bus socket, starts a publisher with PUBLISH_BATCH batch,
 * MAX_MESSAGE_BYTES max_bytes, HEARTBEAT_MS heartbeat_ms and PUBLISH_FORM
 * form, and waits until the bus has subscribed. */
static void s_up_as(fixture_t *f, int batch, int max_bytes, int heartbeat_ms, const char *form)
{
    evp_log_init("test", EVP_LOG_WARN);
    evp_config_defaults(&f->cfg);
    snprintf(f->cfg.publish_form, EVP_TEXT_MAX, "%s", form);
    f->cfg.publish_batch = batch;
    f->cfg.max_message_bytes = max_bytes;
    f->cfg.heartbeat_ms = heartbeat_ms;
    f->cfg.bus_hwm = 100;         /* a bus that does not read pushes back soon */
    snprintf(f->cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    f->ctx = zmq_ctx_new();
    f->xsub = tk_bus_standin(f->ctx, f->cfg.bus_publish_endpoint, 100);
    f->codec = ev_codec_new();
    char why[256] = "";
    f->pub = evp_publisher_new(&f->cfg, why, sizeof why);
    cr_assert_not_null(f->pub, "%s", why);
    /* The bus socket hands its subscription to a new peer only while it is
     * used: poll it between looks. */
    int64_t end = tk_now_ms() + 10000;
    while (evp_publisher_wait_bus(f->pub, 0) != 0) {
        cr_assert_lt(tk_now_ms(), end, "the bus socket never subscribed");
        zmq_pollitem_t item = {f->xsub, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 10);
    }
}

/* The same in the default form. */
static void s_up_beating(fixture_t *f, int batch, int max_bytes, int heartbeat_ms)
{
    s_up_as(f, batch, max_bytes, heartbeat_ms, "array");
}

/* The same with heartbeats only when a test asks. */
static void s_up(fixture_t *f, int batch, int max_bytes)
{
    s_up_beating(f, batch, max_bytes, 600000);
}

static void s_down(fixture_t *f)
{
    evp_publisher_destroy(&f->pub, 0);
    ev_codec_destroy(&f->codec);
    zmq_close(f->xsub);
    zmq_ctx_term(f->ctx);
}

/* A valid event of SOURCE with seq in partition p. */
static ev_event_t s_event(int32_t p, int64_t seq)
{
    return tk_event(SOURCE, p, seq);
}

static void s_send(fixture_t *f, int32_t p, int64_t seq)
{
    ev_event_t ev = s_event(p, seq);
    cr_assert_eq(evp_publisher_send(f->pub, &ev), 0);
}

/* Sends seqs first..last of partition p. */
static void s_send_range(fixture_t *f, int32_t p, int64_t first, int64_t last)
{
    for (int64_t seq = first; seq <= last; seq++)
        s_send(f, p, seq);
}

/* Receives one message within timeout_ms; false when none came. Every event
 * of a body is decoded and of the topic's partition. */
static bool s_recv(fixture_t *f, s_msg_t *m, int timeout_ms)
{
    zmq_pollitem_t item = {f->xsub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return false;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    cr_assert_geq(zmq_msg_recv(&topic, f->xsub, 0), 0);
    cr_assert(zmq_msg_more(&topic), "a message of one frame");
    cr_assert_geq(zmq_msg_recv(&body, f->xsub, 0), 0);
    cr_assert_not(zmq_msg_more(&body), "a message of more than two frames");
    memset(m, 0, sizeof *m);
    cr_assert(ev_topic_parse(zmq_msg_data(&topic), zmq_msg_size(&topic), &m->partition, &m->kind));
    m->len = zmq_msg_size(&body);
    ev_error_t err = {0};
    if (m->kind == EV_MSG_HEARTBEAT) {
        ev_heartbeat_t hb;
        cr_assert_eq(ev_codec_decode_heartbeat(f->codec, zmq_msg_data(&body), m->len, &hb, &err), EV_OK, "%s",
                     err.detail);
        m->seq[0] = hb.seq;
    } else {
        size_t offset = 0, rawlen;
        const void *raw;
        ev_event_t ev;
        ev_next_t next;
        while ((next = ev_codec_next_event(f->codec, zmq_msg_data(&body), m->len, &offset, &ev, &raw, &rawlen,
                                           &err)) == EV_NEXT_EVENT) {
            cr_assert_lt(m->events, MSG_EVENTS_MAX);
            cr_assert_eq((uint32_t)ev.partition, m->partition, "an event of another partition in the body");
            m->maps += *(const unsigned char *)raw >= 0x80 && *(const unsigned char *)raw <= 0x8f;
            m->seq[m->events] = ev.seq;
            m->published_at[m->events++] = ev.published_at;
        }
        cr_assert_eq(next, EV_NEXT_END, "%s", err.detail);
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    return true;
}

/* Receives one message of events of partition p holding seqs first.. in order. */
static void s_expect_events(fixture_t *f, uint32_t p, int64_t first, size_t events)
{
    s_msg_t m;
    cr_assert(s_recv(f, &m, 5000), "no message of %zu events from seq %lld", events, (long long)first);
    cr_assert_eq(m.kind, EV_MSG_EVENT);
    cr_assert_eq(m.partition, p);
    cr_assert_eq(m.events, events, "%zu events in the message, %zu expected", m.events, events);
    for (size_t i = 0; i < events; i++)
        cr_assert_eq(m.seq[i], first + (int64_t)i);
}

static void s_expect_nothing(fixture_t *f, int ms)
{
    s_msg_t m;
    cr_assert_not(s_recv(f, &m, ms), "a message of partition %u left early", m.partition);
}

static int64_t s_latest(fixture_t *f, int32_t p)
{
    return evp_publisher_latest(f->pub, (ev_str_t){SOURCE, (uint32_t)strlen(SOURCE)}, p);
}

Test(publisher, a_partition_s_events_leave_in_messages_of_publish_batch_events)
{
    fixture_t f;
    s_up(&f, 4, 65536);
    s_send_range(&f, 1, 1, 10);
    s_expect_events(&f, 1, 1, 4);
    s_expect_events(&f, 1, 5, 4);
    s_expect_nothing(&f, 100);
    cr_assert_eq(evp_publisher_pending(f.pub), 2);
    cr_assert_eq(evp_publisher_sent(f.pub), 8, "sent counts events, not messages");
    cr_assert_eq(s_latest(&f, 1), 8, "the heads count only what left");
    cr_assert_eq(evp_publisher_flush(f.pub), 0);
    s_expect_events(&f, 1, 9, 2);
    cr_assert_eq(evp_publisher_pending(f.pub), 0);
    cr_assert_eq(evp_publisher_sent(f.pub), 10);
    cr_assert_eq(s_latest(&f, 1), 10);
    cr_assert_eq(evp_publisher_flush(f.pub), 0, "nothing to flush is no failure");
    s_expect_nothing(&f, 50);
    s_down(&f);
}

Test(publisher, a_body_leaves_before_the_next_event_would_pass_max_message_bytes)
{
    fixture_t f;
    s_up(&f, 64, 1024);
    const void *data;
    size_t one;
    ev_event_t ev = s_event(2, 1);
    ev.published_at = ev_now_us(); /* as long as the stamps the publisher puts */
    ev_codec_encode_event(f.codec, &ev, &data, &one);
    size_t per = 1024 / one;
    cr_assert_geq(per, 2, "an event of %zu bytes: the test needs two in 1024", one);
    enum { N = 20 };
    s_send_range(&f, 2, 1, N);
    cr_assert_eq(evp_publisher_flush(f.pub), 0);
    int64_t next = 1;
    while (next <= N) {
        s_msg_t m;
        cr_assert(s_recv(&f, &m, 5000), "seq %lld never came", (long long)next);
        cr_assert_leq(m.len, 1024, "a body of %zu bytes", m.len);
        size_t want = (size_t)(N - next + 1) < per ? (size_t)(N - next + 1) : per;
        cr_assert_eq(m.events, want, "%zu events of %zu bytes, %zu fit", m.events, one, per);
        for (size_t i = 0; i < m.events; i++)
            cr_assert_eq(m.seq[i], next++);
    }
    s_down(&f);
}

Test(publisher, an_event_alone_over_max_message_bytes_leaves_alone_at_once)
{
    fixture_t f;
    s_up(&f, 64, 1024);
    s_send(&f, 0, 1);
    static char big[1100];
    memset(big, 'x', sizeof big);
    ev_event_t ev = s_event(0, 2);
    ev.user_name = (ev_str_t){big, sizeof big};
    cr_assert_eq(evp_publisher_send(f.pub, &ev), 0);
    s_expect_events(&f, 0, 1, 1);
    s_expect_events(&f, 0, 2, 1);
    cr_assert_eq(evp_publisher_pending(f.pub), 0);
    s_down(&f);
}

Test(publisher, pending_events_leave_before_a_heartbeat_of_their_partition)
{
    fixture_t f;
    s_up(&f, 64, 65536);
    s_send_range(&f, 3, 1, 3);
    s_send_range(&f, 5, 1, 2);
    evp_publisher_heartbeat_now(f.pub);
    size_t events[8] = {0};
    for (int i = 0; i < 4; i++) {
        s_msg_t m;
        cr_assert(s_recv(&f, &m, 5000), "message %d of 4 missing", i);
        cr_assert(m.partition == 3 || m.partition == 5);
        if (m.kind == EV_MSG_EVENT) {
            events[m.partition] += m.events;
            continue;
        }
        /* A heartbeat: every event it announces came before it. */
        cr_assert_eq((size_t)m.seq[0], events[m.partition], "partition %u: heartbeat says %lld, %zu events came",
                     m.partition, (long long)m.seq[0], events[m.partition]);
        cr_assert_gt(m.seq[0], 0);
    }
    cr_assert_eq(events[3], 3);
    cr_assert_eq(events[5], 2);
    s_down(&f);
}

Test(publisher, heartbeats_due_while_events_are_sent_go_between_whole_bodies)
{
    enum { N = 1024 };
    fixture_t f;
    s_up_beating(&f, 64, 65536, 10);
    for (int64_t seq = 1; seq <= N; seq++) {
        s_send(&f, 1, seq);
        if (seq % 32 == 0)
            tk_sleep_ms(2); /* heartbeats fall due, and a send makes them */
    }
    cr_assert_eq(evp_publisher_flush(f.pub), 0);
    int64_t next = 1;
    int heartbeats = 0;
    while (next <= N) {
        s_msg_t m;
        cr_assert(s_recv(&f, &m, 5000), "seq %lld never came", (long long)next); /* each body walks whole */
        if (m.kind == EV_MSG_HEARTBEAT) {
            cr_assert_lt(m.seq[0], next, "a heartbeat says %lld before it came", (long long)m.seq[0]);
            heartbeats++;
            continue;
        }
        for (size_t i = 0; i < m.events; i++)
            cr_assert_eq(m.seq[i], next++);
    }
    cr_assert_gt(heartbeats, 0, "no heartbeat fell due while sending");
    s_down(&f);
}

Test(publisher, a_tick_sends_a_body_once_its_first_event_has_waited_the_bound)
{
    fixture_t f;
    s_up(&f, 64, 65536);
    s_send_range(&f, 4, 1, 2);
    s_expect_nothing(&f, 100); /* no tick: the body waits for more */
    cr_assert_eq(evp_publisher_pending(f.pub), 2);
    tk_sleep_ms(5);
    evp_publisher_tick(f.pub);
    s_expect_events(&f, 4, 1, 2);
    cr_assert_eq(evp_publisher_pending(f.pub), 0);
    s_down(&f);
}

Test(publisher, destroy_sends_what_is_pending_then_the_last_heartbeats)
{
    fixture_t f;
    s_up(&f, 64, 65536);
    s_send_range(&f, 6, 1, 3);
    evp_publisher_destroy(&f.pub, 2000);
    s_expect_events(&f, 6, 1, 3);
    s_msg_t m;
    cr_assert(s_recv(&f, &m, 5000), "no last heartbeat");
    cr_assert_eq(m.kind, EV_MSG_HEARTBEAT);
    cr_assert_eq(m.partition, 6);
    cr_assert_eq(m.seq[0], 3);
    s_down(&f);
}

Test(publisher, events_leave_as_arrays_by_default_and_as_maps_with_publish_form_map)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cr_assert_str_eq(cfg.publish_form, "array", "arrays are not the default");
    const char *forms[] = {"array", "map"};
    for (int i = 0; i < 2; i++) {
        fixture_t f;
        s_up_as(&f, 8, 65536, 600000, forms[i]);
        s_send_range(&f, 3, 1, 8);
        s_msg_t m;
        cr_assert(s_recv(&f, &m, 5000), "%s: no message", forms[i]);
        cr_assert_eq(m.events, 8);
        cr_assert_eq(m.maps, i == 1 ? 8 : 0, "PUBLISH_FORM=%s: %d of %zu events were maps", forms[i], m.maps,
                     m.events);
        s_down(&f);
    }
}

Test(publisher, publish_batch_1_sends_each_event_alone)
{
    fixture_t f;
    s_up(&f, 1, 65536);
    s_send_range(&f, 7, 1, 5);
    cr_assert_eq(evp_publisher_pending(f.pub), 0, "nothing waits");
    for (int64_t seq = 1; seq <= 5; seq++)
        s_expect_events(&f, 7, seq, 1);
    s_down(&f);
}

Test(publisher, partitions_fill_their_own_bodies_in_order_and_stamp_each_event)
{
    enum { PARTS = 4, PER = 25 };
    fixture_t f;
    s_up(&f, 8, 65536);
    int64_t before[PARTS][PER + 1], after[PARTS][PER + 1];
    for (int64_t seq = 1; seq <= PER; seq++)
        for (int32_t p = 0; p < PARTS; p++) {
            before[p][seq] = ev_now_us();
            s_send(&f, p, seq);
            after[p][seq] = ev_now_us();
        }
    cr_assert_eq(evp_publisher_flush(f.pub), 0);
    int64_t next[PARTS] = {1, 1, 1, 1};
    size_t got = 0;
    while (got < PARTS * PER) {
        s_msg_t m;
        cr_assert(s_recv(&f, &m, 5000), "%zu of %d events came", got, PARTS * PER);
        cr_assert_eq(m.kind, EV_MSG_EVENT);
        cr_assert_lt(m.partition, PARTS);
        cr_assert_leq(m.events, 8);
        for (size_t i = 0; i < m.events; i++) {
            int64_t seq = next[m.partition]++;
            cr_assert_eq(m.seq[i], seq, "partition %u out of order", m.partition);
            cr_assert(m.published_at[i] >= before[m.partition][seq] && m.published_at[i] <= after[m.partition][seq],
                      "published_at is stamped when the event is given to the publisher");
        }
        got += m.events;
    }
    s_down(&f);
}

Test(publisher, a_send_refused_while_stopping_gives_its_body_up_and_moves_the_heads)
{
    fixture_t f;
    s_up(&f, 4, 65536);
    evp_request_stop(); /* a send that has to wait now gives up */
    int64_t seq = 0;
    int rc = 0;
    while (rc == 0 && seq < 2000000) {
        ev_event_t ev = s_event(1, ++seq);
        rc = evp_publisher_send(f.pub, &ev);
    }
    cr_assert_eq(rc, -1, "the bus socket, never read, never pushed back");
    cr_assert_eq(evp_publisher_unsent(f.pub), 4, "the refused body's events: %llu",
                 (unsigned long long)evp_publisher_unsent(f.pub));
    cr_assert_eq(evp_publisher_sent(f.pub) + evp_publisher_unsent(f.pub) + evp_publisher_pending(f.pub),
                 (uint64_t)seq);
    cr_assert_eq(s_latest(&f, 1), seq, "the last heartbeats announce the events that were not sent");
    s_down(&f);
}
