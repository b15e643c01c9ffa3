/* The bus, driven through its API with real sockets on 127.0.0.1: it relays
 * in order from publishers to writers, filters by partition, drops malformed
 * messages, and drops for a tap that does not read instead of waiting. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "testkit.h"

typedef struct {
    evp_config_t cfg;  /* endpoints on free ports */
    bus_t *bus;        /* the broker under test */
    pthread_t thread;  /* runs bus_run */
    void *ctx;         /* the test's own sockets */
} fixture_t;

static void *s_run(void *arg)
{
    bus_run(arg);
    return NULL;
}

static void s_setup(fixture_t *f, int tap_hwm)
{
    evp_config_defaults(&f->cfg);
    snprintf(f->cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    f->cfg.tap_hwm = tap_hwm;
    f->cfg.log_level = EVP_LOG_WARN;
    char why[256] = "";
    f->bus = bus_new(&f->cfg, why, sizeof why);
    cr_assert_not_null(f->bus, "%s", why);
    pthread_create(&f->thread, NULL, s_run, f->bus);
    f->ctx = zmq_ctx_new();
}

static void s_teardown(fixture_t *f)
{
    evp_request_stop();
    pthread_join(f->thread, NULL);
    bus_destroy(&f->bus);
    zmq_ctx_term(f->ctx);
}

/* A subscriber that has seen the bus's welcome, so nothing sent later is missed. */
static void *s_subscriber(fixture_t *f, const char *endpoint, const char *prefix, int hwm)
{
    void *s = zmq_socket(f->ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "!welcome", 8);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    cr_assert_eq(zmq_connect(s, endpoint), 0);
    int timeout = 10000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char buf[16];
    int n = zmq_recv(s, buf, sizeof buf, 0);
    cr_assert_eq(n, 8, "no welcome from the bus");
    cr_assert(memcmp(buf, "!welcome", 8) == 0);
    return s;
}

/* A publisher that has seen the bus subscribe. */
static void *s_publisher(fixture_t *f)
{
    void *s = zmq_socket(f->ctx, ZMQ_XPUB);
    int linger = 2000, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
    cr_assert_eq(zmq_connect(s, f->cfg.bus_publish_endpoint), 0);
    int timeout = 10000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char sub[8];
    cr_assert_geq(zmq_recv(s, sub, sizeof sub, 0), 1, "the bus did not subscribe");
    cr_assert_eq(sub[0], 1);
    return s;
}

static void s_send(void *pub, uint32_t partition, uint32_t n)
{
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, partition, EV_MSG_EVENT);
    zmq_send(pub, topic, tlen, ZMQ_SNDMORE);
    zmq_send(pub, &n, sizeof n, 0);
}

static int s_recv(void *sub, uint32_t *partition, uint32_t *n)
{
    char topic[32];
    int tl = zmq_recv(sub, topic, sizeof topic, 0);
    if (tl < 0)
        return -1;
    ev_msg_kind_t kind;
    cr_assert(ev_topic_parse(topic, (size_t)tl, partition, &kind));
    int more;
    size_t len = sizeof more;
    zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &len);
    cr_assert(more, "a message of one frame");
    cr_assert_eq(zmq_recv(sub, n, sizeof *n, 0), (int)sizeof *n);
    return 0;
}

Test(bus, relays_every_message_in_order_to_the_partitions_subscribed)
{
    fixture_t f;
    s_setup(&f, 1000);
    void *writer3 = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p0003/", 100000);
    void *all = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 100000);
    void *pub = s_publisher(&f);
    for (uint32_t i = 1; i <= 5000; i++)
        s_send(pub, i % 4, i);
    uint32_t partition, n, expect = 1;
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(s_recv(all, &partition, &n), 0, "message %d missing", i);
        cr_assert_eq(n, expect, "out of order");
        cr_assert_eq(partition, expect % 4);
        expect++;
    }
    for (uint32_t i = 3; i <= 5000; i += 4) {
        cr_assert_eq(s_recv(writer3, &partition, &n), 0);
        cr_assert_eq(partition, 3);
        cr_assert_eq(n, i);
    }
    zmq_close(pub);
    zmq_close(writer3);
    zmq_close(all);
    s_teardown(&f);
}

Test(bus, drops_a_message_that_is_not_topic_and_body)
{
    fixture_t f;
    s_setup(&f, 1000);
    void *sub = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 1000);
    void *pub = s_publisher(&f);
    zmq_send(pub, "p0001/ev", 8, ZMQ_SNDMORE);
    zmq_send(pub, "a", 1, ZMQ_SNDMORE);
    zmq_send(pub, "b", 1, 0);
    s_send(pub, 2, 7);
    uint32_t partition, n;
    cr_assert_eq(s_recv(sub, &partition, &n), 0);
    cr_assert_eq(n, 7, "the three-frame message was relayed");
    bus_stats_t st;
    bus_stats(f.bus, &st);
    cr_assert_eq(st.malformed, 1);
    zmq_close(pub);
    zmq_close(sub);
    s_teardown(&f);
}

Test(bus, a_tap_that_does_not_read_loses_messages_but_the_writer_gets_all, .timeout = 120)
{
    fixture_t f;
    s_setup(&f, 10);
    void *writer = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 1000000);
    void *tap = s_subscriber(&f, f.cfg.bus_tap_endpoint, "p", 10);
    void *pub = s_publisher(&f);
    /* The tap reads nothing from here on. */
    enum { N = 100000 };
    for (uint32_t i = 1; i <= N; i++)
        s_send(pub, i % 16, i);
    uint32_t partition, n;
    for (uint32_t i = 1; i <= N; i++) {
        cr_assert_eq(s_recv(writer, &partition, &n), 0, "writer lost message %u", i);
        cr_assert_eq(n, i);
    }
    bus_stats_t st;
    bus_stats(f.bus, &st);
    cr_assert_eq(st.delivered, N);
    cr_assert_gt(st.tap_dropped, 0, "the bus never dropped for the tap");
    cr_assert_eq(st.tap_sent + st.tap_dropped, N);
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}
