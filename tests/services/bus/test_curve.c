/* The bus with CURVE on: clients whose public key is in CURVE_ALLOWED_DIR
 * publish and subscribe; a client with any other key can do neither, and
 * each refusal is counted (and logged). Real sockets on 127.0.0.1. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "evpipe/curve.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "testkit.h"

typedef struct {
    char dir[256];      /* keys live here */
    evp_config_t cfg;   /* the bus's settings */
    bus_t *bus;         /* the broker */
    pthread_t thread;   /* runs bus_run */
    void *ctx;          /* the clients' context */
} fixture_t;

static void *s_run(void *arg)
{
    bus_run(arg);
    return NULL;
}

static void s_keygen(const char *dir, const char *name)
{
    char why[256];
    cr_assert_eq(evp_curve_keygen(dir, name, why, sizeof why), 0, "%s", why);
}

static void s_setup(fixture_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/evpipe-curve-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    char allowed[300], cmd[1024];
    snprintf(allowed, sizeof allowed, "%s/allowed", f->dir);
    s_keygen(f->dir, "bus");
    s_keygen(f->dir, "friend");
    s_keygen(f->dir, "stranger");
    /* Only the friend's public key is allowed. */
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/friend.key %s/", allowed, f->dir, allowed);
    cr_assert_eq(system(cmd), 0);

    evp_config_defaults(&f->cfg);
    snprintf(f->cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    f->cfg.curve = 1;
    snprintf(f->cfg.curve_server_key, EVP_PATH_MAX, "%s/bus.key_secret", f->dir);
    snprintf(f->cfg.curve_allowed_dir, EVP_PATH_MAX, "%s", allowed);
    char why[512] = "";
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
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    cr_assert_eq(system(cmd), 0);
}

/* A client socket carrying `who`'s key. */
static void *s_client(fixture_t *f, int type, const char *who, const char *endpoint)
{
    evp_config_t c;
    evp_config_defaults(&c);
    c.curve = 1;
    snprintf(c.curve_client_key, EVP_PATH_MAX, "%s/%s.key_secret", f->dir, who);
    snprintf(c.curve_server_public_key, EVP_PATH_MAX, "%s/bus.key", f->dir);
    void *s = zmq_socket(f->ctx, type);
    int linger = 0, timeout = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char why[256];
    cr_assert_eq(evp_curve_client_apply(s, &c, why, sizeof why), 0, "%s", why);
    if (type == ZMQ_SUB) {
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "!welcome", 8);
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "p", 1);
    }
    cr_assert_eq(zmq_connect(s, endpoint), 0);
    return s;
}

static bool s_welcomed(void *sub)
{
    char buf[16];
    return zmq_recv(sub, buf, sizeof buf, 0) == 8 && memcmp(buf, "!welcome", 8) == 0;
}

/* True when the bus subscribed to this publisher (it was admitted). */
static bool s_subscribed_by_bus(void *pub)
{
    char buf[8];
    return zmq_recv(pub, buf, sizeof buf, 0) >= 1 && buf[0] == 1;
}

Test(bus_curve, an_allowed_key_publishes_and_subscribes)
{
    fixture_t f;
    s_setup(&f);
    void *sub = s_client(&f, ZMQ_SUB, "friend", f.cfg.bus_subscribe_endpoint);
    cr_assert(s_welcomed(sub), "the allowed subscriber was not admitted");
    void *pub = s_client(&f, ZMQ_XPUB, "friend", f.cfg.bus_publish_endpoint);
    cr_assert(s_subscribed_by_bus(pub), "the allowed publisher was not admitted");
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, 1, EV_MSG_EVENT);
    zmq_send(pub, topic, tlen, ZMQ_SNDMORE);
    zmq_send(pub, "body", 4, 0);
    char got[32];
    cr_assert_eq(zmq_recv(sub, got, sizeof got, 0), (int)tlen);
    cr_assert_eq(zmq_recv(sub, got, sizeof got, 0), 4);
    zmq_close(pub);
    zmq_close(sub);
    s_teardown(&f);
}

Test(bus_curve, an_unknown_key_can_neither_subscribe_nor_publish)
{
    fixture_t f;
    s_setup(&f);
    void *sub = s_client(&f, ZMQ_SUB, "stranger", f.cfg.bus_subscribe_endpoint);
    cr_assert_not(s_welcomed(sub), "the stranger was admitted as a subscriber");
    void *pub = s_client(&f, ZMQ_XPUB, "stranger", f.cfg.bus_publish_endpoint);
    cr_assert_not(s_subscribed_by_bus(pub), "the stranger was admitted as a publisher");
    /* A friend listening hears nothing the stranger sends. */
    void *friend_sub = s_client(&f, ZMQ_SUB, "friend", f.cfg.bus_subscribe_endpoint);
    cr_assert(s_welcomed(friend_sub));
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, 1, EV_MSG_EVENT);
    zmq_send(pub, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(pub, "body", 4, ZMQ_DONTWAIT);
    char got[32];
    cr_assert_lt(zmq_recv(friend_sub, got, sizeof got, 0), 0, "a stranger's message got through");
    bus_stats_t st;
    bus_stats(f.bus, &st);
    cr_assert_geq(st.curve_refused, 2, "refusals counted: %llu", (unsigned long long)st.curve_refused);
    zmq_close(pub);
    zmq_close(sub);
    zmq_close(friend_sub);
    s_teardown(&f);
}

Test(bus_curve, a_client_without_curve_is_not_admitted)
{
    fixture_t f;
    s_setup(&f);
    void *sub = zmq_socket(f.ctx, ZMQ_SUB);
    int linger = 0, timeout = 2000;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "!welcome", 8);
    zmq_connect(sub, f.cfg.bus_subscribe_endpoint);
    cr_assert_not(s_welcomed(sub), "a plain client was admitted");
    zmq_close(sub);
    s_teardown(&f);
}
