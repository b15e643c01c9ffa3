/* The bus, driven through its API with real sockets on 127.0.0.1: it relays
 * in order from publishers to writers, filters by partition, drops malformed
 * messages, and drops for a tap that does not read instead of waiting; its
 * counters are metrics, served with /healthz on METRICS_PORT. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "bus_redact.h"
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

/* Settings with endpoints on free ports (s_start starts the bus). */
static void s_configure(fixture_t *f, int tap_hwm, int metrics_port)
{
    evp_config_defaults(&f->cfg);
    f->cfg.metrics_port = metrics_port;
    snprintf(f->cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f->cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    f->cfg.tap_hwm = tap_hwm;
    f->cfg.log_level = EVP_LOG_WARN;
    /* These tests send bodies that are not events; redaction has its own. */
    f->cfg.tap_redact = 0;
}

static void s_start(fixture_t *f)
{
    char why[256] = "";
    f->bus = bus_new(&f->cfg, why, sizeof why);
    cr_assert_not_null(f->bus, "%s", why);
    pthread_create(&f->thread, NULL, s_run, f->bus);
    f->ctx = zmq_ctx_new();
}

static void s_setup_with(fixture_t *f, int tap_hwm, int metrics_port)
{
    s_configure(f, tap_hwm, metrics_port);
    s_start(f);
}

static void s_setup(fixture_t *f, int tap_hwm)
{
    s_setup_with(f, tap_hwm, 0);
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
    tk_bus_send(pub, partition, EV_MSG_EVENT, &n, sizeof n);
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
    /* In order within each partition (the bus keeps no order across them). */
    uint32_t partition, n, last[4] = {0};
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(s_recv(all, &partition, &n), 0, "message %d missing", i);
        cr_assert_eq(partition, n % 4);
        cr_assert_eq(n, last[partition] ? last[partition] + 4 : (partition ? partition : 4), "out of order");
        last[partition] = n;
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

/* Waits (bounded) until the tap side has `want` subscriptions; st: the last stats read. */
static void s_wait_tap_topics(fixture_t *f, int64_t want, bus_stats_t *st)
{
    for (int64_t end = tk_now_ms() + 10000; tk_now_ms() < end; tk_sleep_ms(10)) {
        bus_stats(f->bus, st);
        if (st->tap_topics == want)
            return;
    }
}

/* A tap written as any ZeroMQ user would write one: a SUB that subscribes
 * to "p" and knows nothing of "!welcome". It gets every message, and once it
 * has gone the bus stops copying. */
Test(bus, a_plain_subscriber_on_the_tap_endpoint_gets_the_messages)
{
    fixture_t f;
    s_setup(&f, 1000);
    void *writer = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 100000);
    void *tap = zmq_socket(f.ctx, ZMQ_SUB);
    int linger = 0, timeout = 10000;
    zmq_setsockopt(tap, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(tap, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(tap, ZMQ_SUBSCRIBE, "p", 1);
    cr_assert_eq(zmq_connect(tap, f.cfg.bus_tap_endpoint), 0);
    /* Attached once the bus has seen its subscription. */
    bus_stats_t st;
    s_wait_tap_topics(&f, 1, &st);
    cr_assert_eq(st.tap_topics, 1, "the bus did not see the tap's subscription");
    cr_assert_eq(st.tap_subscriptions, 0, "a subscriber without !welcome counted as one with it");
    void *pub = s_publisher(&f);
    enum { N = 500 };
    for (uint32_t i = 1; i <= N; i++)
        s_send(pub, i % 16, i);
    uint32_t partition, n;
    for (uint32_t i = 1; i <= N; i++) {
        cr_assert_eq(s_recv(tap, &partition, &n), 0, "the tap did not get message %u", i);
        cr_assert_eq(n, i);
        cr_assert_eq(s_recv(writer, &partition, &n), 0, "the writer did not get message %u", i);
    }
    zmq_close(tap);
    s_wait_tap_topics(&f, 0, &st);
    cr_assert_eq(st.tap_topics, 0, "the tap's subscription outlived it");
    uint64_t sent = st.tap_sent;
    cr_assert_eq(sent, N);
    s_send(pub, 1, N + 1);
    cr_assert_eq(s_recv(writer, &partition, &n), 0);
    bus_stats(f.bus, &st);
    cr_assert_eq(st.tap_sent, sent, "copied for a tap that had gone");
    zmq_close(pub);
    zmq_close(writer);
    s_teardown(&f);
}

/* ---- Personal data and the tap ---- */

/* Publishes one event body with these name and email; returns it decoded
 * as the writer and the tap got it. */
static void s_event_through(fixture_t *f, void *pub, void *writer, void *tap, ev_codec_t *codec, const char *name,
                            const char *email, char *w_name, char *t_name, char *t_email)
{
    ev_event_t ev = tk_event("gen-0123456789abcdef", 1, 1);
    ev.user_name = (ev_str_t){name, (uint32_t)strlen(name)};
    ev.user_email = (ev_str_t){email, (uint32_t)strlen(email)};
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    tk_bus_send(pub, 1, EV_MSG_EVENT, data, len);
    char topic[EV_TOPIC_MAX]; /* the frame each subscriber receives first */
    size_t tlen = ev_topic_format(topic, 1, EV_MSG_EVENT);
    char body[4096];
    void *subs[] = {writer, tap};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(zmq_recv(subs[i], body, sizeof body, 0), (int)tlen);
        int n = zmq_recv(subs[i], body, sizeof body, 0);
        cr_assert_gt(n, 0);
        ev_event_t got;
        cr_assert_eq(ev_codec_decode_event(codec, body, (size_t)n, &got, NULL), EV_OK);
        cr_assert_eq(got.seq, 1);
        cr_assert_eq(got.product_price, ev.product_price, "a field beside the two changed");
        cr_assert_eq(got.source.len, ev.source.len);
        snprintf(i == 0 ? w_name : t_name, 64, "%.*s", (int)got.user_name.len, got.user_name.ptr);
        if (i == 1)
            snprintf(t_email, 64, "%.*s", (int)got.user_email.len, got.user_email.ptr);
    }
}

static void s_redaction_case(int redact, const char *key, bool check_key)
{
    fixture_t f;
    evp_config_defaults(&f.cfg);
    f.cfg.tap_redact = redact;
    snprintf(f.cfg.tap_redact_key, EVP_TEXT_MAX, "%s", key);
    snprintf(f.cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f.cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(f.cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    char why[256] = "";
    f.bus = bus_new(&f.cfg, why, sizeof why);
    cr_assert_not_null(f.bus, "%s", why);
    pthread_create(&f.thread, NULL, s_run, f.bus);
    f.ctx = zmq_ctx_new();
    void *writer = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 1000);
    void *tap = s_subscriber(&f, f.cfg.bus_tap_endpoint, "p", 1000);
    void *pub = s_publisher(&f);
    ev_codec_t *codec = ev_codec_new();
    char w1[64], t1[64], e1[64], w2[64], t2[64], e2[64];
    s_event_through(&f, pub, writer, tap, codec, "Ann O'Neil", "ann@example.com", w1, t1, e1);
    ev_codec_set_form(codec, EV_FORM_MAP); /* the first event was an array: redaction reads both forms */
    s_event_through(&f, pub, writer, tap, codec, "Ann O'Neil", "ann.other@example.com", w2, t2, e2);
    cr_assert_str_eq(w1, "Ann O'Neil", "the writer did not get the name as published");
    if (!redact) {
        cr_assert_str_eq(t1, "Ann O'Neil");
        cr_assert_str_eq(e1, "ann@example.com");
    } else {
        cr_assert(strncmp(t1, "redacted-", 9) == 0 && strlen(t1) == 25, "the tap got \"%s\"", t1);
        cr_assert(strncmp(e1, "redacted-", 9) == 0, "the tap got \"%s\"", e1);
        cr_assert_str_eq(t1, t2, "equal names are not equal once redacted");
        cr_assert_str_neq(e1, e2, "different emails are equal once redacted");
        if (check_key) {
            bus_redact_t *r = bus_redact_new(key);
            char want[BUS_REDACT_TEXT_LEN + 1];
            bus_redact_text(r, (const uint8_t *)"Ann O'Neil", 10, want);
            cr_assert_str_eq(t1, want, "TAP_REDACT_KEY does not give the same hash in another run");
            bus_redact_destroy(&r);
        }
        /* A body that cannot be read for redaction reaches writers, not taps. */
        char topic[EV_TOPIC_MAX];
        size_t tlen = ev_topic_format(topic, 2, EV_MSG_EVENT);
        zmq_send(pub, topic, tlen, ZMQ_SNDMORE);
        zmq_send(pub, "\xc1", 1, 0);
        uint32_t partition;
        char body[16];
        cr_assert_eq(zmq_recv(writer, body, sizeof body, 0), (int)tlen);
        cr_assert_eq(zmq_recv(writer, body, sizeof body, 0), 1);
        int timeout = 500;
        zmq_setsockopt(tap, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        cr_assert_lt(zmq_recv(tap, body, sizeof body, 0), 0, "an unreadable body reached the tap");
        (void)partition;
    }
    ev_codec_destroy(&codec);
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}

Test(bus_tap, names_and_emails_reach_taps_as_a_keyed_hash_by_default)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cr_assert_eq(cfg.tap_redact, 1, "redaction is not the default");
    s_redaction_case(1, "", false);
}

Test(bus_tap, a_redaction_key_gives_the_same_hash_in_every_run)
{
    s_redaction_case(1, "a key kept in a secret store", true);
}

Test(bus_tap, tap_redact_0_passes_names_and_emails_as_published)
{
    s_redaction_case(0, "", false);
}

/* body with the str value (header byte head, then text) at its first place
 * written as a bin8 of the same bytes; its new length. */
static size_t s_as_bin(const void *body, size_t len, uint8_t head, const char *text, uint8_t *out)
{
    size_t n = strlen(text);
    const uint8_t *b = body;
    for (size_t i = 0; i + 1 + n <= len; i++) {
        if (b[i] != head || memcmp(b + i + 1, text, n) != 0)
            continue;
        memcpy(out, b, i);
        out[i] = 0xc4, out[i + 1] = (uint8_t)n; /* bin8 */
        memcpy(out + i + 2, text, n);
        memcpy(out + i + 2 + n, b + i + 1 + n, len - i - 1 - n);
        return len + 1;
    }
    cr_assert_fail("\"%s\" is not in the body", text);
    return 0;
}

Test(bus_tap, a_name_or_email_that_is_not_text_never_reaches_taps_as_it_was)
{
    /* A publisher that sends the name as bytes (msgpack bin) rather than
     * text: the writer refuses that event, but the tap's copy must not
     * carry the name as published, in either form. */
    bus_redact_t *r = bus_redact_new("k");
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = tk_event("gen-1", 0, 1);
    ev.user_name = (ev_str_t){"Ann O'Neil", 10};
    ev.user_email = (ev_str_t){"ann@example.com", 15};
    for (int form = EV_FORM_ARRAY; form <= EV_FORM_MAP; form++) {
        ev_codec_set_form(codec, (ev_form_t)form);
        const void *data;
        size_t len;
        ev_codec_encode_event(codec, &ev, &data, &len);
        size_t out_len;
        cr_assert_not_null(bus_redact_body(r, data, len, &out_len), "form %d: the event as published", form);
        uint8_t body[512];
        cr_assert_lt(len + 1, sizeof body);
        for (int field = 0; field < 2; field++) {
            const char *text = field ? "ann@example.com" : "Ann O'Neil";
            size_t n = s_as_bin(data, len, (uint8_t)(0xa0 | strlen(text)), text, body);
            const uint8_t *out = bus_redact_body(r, body, n, &out_len);
            cr_assert(out == NULL || !memmem(out, out_len, text, strlen(text)),
                      "form %d: %s reached the tap as published", form, field ? "user_email" : "user_name");
        }
    }
    ev_codec_destroy(&codec);
    bus_redact_destroy(&r);
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
    /* In order within each partition (the bus keeps order per partition
     * only: one that waits for its subscriber does not hold the others). */
    uint32_t partition, n, last[16] = {0};
    for (uint32_t i = 1; i <= N; i++) {
        cr_assert_eq(s_recv(writer, &partition, &n), 0, "writer lost message %u", i);
        cr_assert_eq(partition, n % 16);
        cr_assert_gt(n, last[partition], "partition %u out of order", partition);
        last[partition] = n;
    }
    for (uint32_t p = 0; p < 16; p++)
        cr_assert_eq(last[p], N - (N - p) % 16, "partition %u ended at %u", p, last[p]);
    /* The bus counts a delivery just after handing it over: wait (bounded). */
    bus_stats_t st;
    for (int64_t end = tk_now_ms() + 10000; tk_now_ms() < end; tk_sleep_ms(10)) {
        bus_stats(f.bus, &st);
        if (st.delivered == N)
            break;
    }
    cr_assert_eq(st.delivered, N);
    cr_assert_gt(st.tap_dropped, 0, "the bus never dropped for the tap");
    cr_assert_eq(st.tap_sent + st.tap_dropped, N);
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}

/* GET path on 127.0.0.1:port (HTTP/1.0); the status, and the body in body. */
static int s_http_get(int port, const char *path, char *body, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char reply[16384];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof reply - 1 && (r = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)r;
    close(fd);
    reply[got] = '\0';
    int status = 0;
    cr_assert_eq(sscanf(reply, "HTTP/1.%*d %d", &status), 1, "bad reply: %s", reply);
    const char *b = strstr(reply, "\r\n\r\n");
    snprintf(body, len, "%s", b ? b + 4 : "");
    return status;
}

Test(bus, exports_its_counters_as_metrics_that_bus_stats_reads)
{
    fixture_t f;
    s_setup(&f, 1000);
    void *sub = s_subscriber(&f, f.cfg.bus_subscribe_endpoint, "p", 1000);
    void *pub = s_publisher(&f);
    zmq_send(pub, "p0001/ev", 8, 0);
    for (uint32_t i = 1; i <= 10; i++)
        s_send(pub, 1, i);
    uint32_t partition, n;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(s_recv(sub, &partition, &n), 0);
    /* The bus counts a delivery just after handing it over: wait (bounded). */
    bus_stats_t st;
    for (int64_t end = tk_now_ms() + 10000; tk_now_ms() < end; tk_sleep_ms(10)) {
        bus_stats(f.bus, &st);
        if (st.delivered == 10 && st.subscriptions == 1)
            break;
    }
    cr_assert_eq(st.delivered, 10);
    cr_assert_eq(st.messages_in, 10);
    cr_assert_eq(st.malformed, 1);
    cr_assert_eq(st.subscriptions, 1);
    ev_buf_t text;
    ev_buf_init(&text);
    evp_metrics_render(bus_metrics(f.bus), &text);
    cr_assert(strstr(text.data, "\nevpipe_bus_messages_in_total 10\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "\nevpipe_bus_delivered_total 10\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "\nevpipe_bus_malformed_total 1\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "\nevpipe_bus_writer_subscribers 1\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "\nevpipe_bus_tap_dropped_total 0\n") != NULL, "%s", text.data);
    cr_assert(strstr(text.data, "\nevpipe_bus_tap_subscribers 0\n") != NULL, "%s", text.data);
    ev_buf_free(&text);
    zmq_close(pub);
    zmq_close(sub);
    s_teardown(&f);
}

Test(bus, serves_metrics_and_is_healthy_only_while_its_loop_runs)
{
    fixture_t f;
    int port = tk_free_port();
    s_setup_with(&f, 1000, port);
    char body[16384];
    /* The loop thread may not have turned yet: wait for it (bounded). */
    int status = 0;
    for (int64_t end = tk_now_ms() + 10000; tk_now_ms() < end; tk_sleep_ms(20))
        if ((status = s_http_get(port, "/healthz", body, sizeof body)) == 200)
            break;
    cr_assert_eq(status, 200, "%s", body);
    cr_assert_str_eq(body, "ok\nwriters=0 taps=0\n");
    cr_assert_eq(s_http_get(port, "/metrics", body, sizeof body), 200);
    cr_assert(strstr(body, "# TYPE evpipe_bus_tap_dropped_total counter\n") != NULL, "%s", body);
    /* Stopped loop, server still up: unhealthy, with the reason. */
    evp_request_stop();
    pthread_join(f.thread, NULL);
    cr_assert_eq(s_http_get(port, "/healthz", body, sizeof body), 503);
    cr_assert_str_eq(body, "bus loop is not running\n");
    char detail[128];
    cr_assert_not(bus_healthy(f.bus, detail, sizeof detail));
    bus_destroy(&f.bus);
    zmq_ctx_term(f.ctx);
}

Test(bus, a_metrics_port_in_use_fails_naming_the_setting)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    snprintf(cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", tk_free_port());
    cfg.metrics_port = ntohs(a.sin_port);
    char why[256] = "";
    bus_t *bus = bus_new(&cfg, why, sizeof why);
    cr_assert_null(bus);
    cr_assert(strncmp(why, "METRICS_PORT", 12) == 0 && strstr(why, "already in use"), "%s", why);
    close(fd);
}

/* ---- Isolation: a subscriber that does not read holds back only its partitions ---- */

/* Message bodies big enough that a few thousand fill any socket buffers. */
#define S_BODY 4096

/* A bus whose writer side disconnects a subscriber after stall_ms without reading. */
static void s_setup_stall(fixture_t *f, int stall_ms)
{
    s_configure(f, 1000, 0);
    f->cfg.bus_stall_timeout_ms = stall_ms;
    f->cfg.tcp_keepalive_s = 1; /* short: keepalive must not cut a subscriber that pushes back */
    s_start(f);
}

/* A subscriber with a small queue of its own (it fills quickly). */
static void *s_small_subscriber(fixture_t *f, const char *prefix)
{
    return s_subscriber(f, f->cfg.bus_subscribe_endpoint, prefix, 100);
}

/* Receives [topic, body of S_BODY whose first 4 bytes are n]; false when
 * nothing came (flags: ZMQ_DONTWAIT, or 0 for up to the socket's timeout). */
static bool s_recv_big(void *sub, int flags, uint32_t *partition, uint32_t *n)
{
    char topic[32];
    int tl = zmq_recv(sub, topic, sizeof topic, flags);
    if (tl < 0)
        return false;
    ev_msg_kind_t kind;
    cr_assert(ev_topic_parse(topic, (size_t)tl, partition, &kind));
    char body[S_BODY];
    cr_assert_eq(zmq_recv(sub, body, sizeof body, 0), S_BODY);
    memcpy(n, body, sizeof *n);
    return true;
}

/* What a reader has received: per partition, the last n, and how many. */
typedef struct {
    uint32_t last[16];  /* last n per partition (n grows within a partition) */
    uint32_t count;     /* messages received */
} s_seen_t;

static void s_take(s_seen_t *seen, uint32_t partition, uint32_t n)
{
    cr_assert_lt(partition, 16);
    cr_assert_gt(n, seen->last[partition], "partition %u: %u after %u", partition, n, seen->last[partition]);
    seen->last[partition] = n;
    seen->count++;
}

/* Everything sub has waiting. */
static void s_drain(void *sub, s_seen_t *seen)
{
    uint32_t p, n;
    while (s_recv_big(sub, ZMQ_DONTWAIT, &p, &n))
        s_take(seen, p, n);
}

/* Sends N messages of S_BODY bytes, n = 1..N, to partition 1 when n is even
 * and 2 when odd, never waiting more than 20 s in all for the bus to take them;
 * reader (may be NULL) is drained meanwhile. */
static void s_publish_big(void *pub, uint32_t N, void *reader, s_seen_t *seen)
{
    char body[S_BODY];
    memset(body, 'x', sizeof body);
    int64_t end = tk_now_ms() + 20000;
    for (uint32_t i = 1; i <= N; i++) {
        char topic[EV_TOPIC_MAX];
        size_t tlen = ev_topic_format(topic, 1 + i % 2, EV_MSG_EVENT);
        memcpy(body, &i, sizeof i);
        while (zmq_send(pub, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            cr_assert_eq(errno, EAGAIN);
            cr_assert_lt(tk_now_ms(), end, "the bus stopped taking messages at %u of %u", i, N);
            if (reader)
                s_drain(reader, seen);
            tk_sleep_ms(1);
        }
        cr_assert_eq(zmq_send(pub, body, sizeof body, 0), (int)sizeof body);
        if (reader && i % 64 == 0)
            s_drain(reader, seen);
    }
}

/* Drains reader until it has want messages (20 s at most). */
static void s_drain_until(void *reader, s_seen_t *seen, uint32_t want)
{
    for (int64_t end = tk_now_ms() + 20000; seen->count < want && tk_now_ms() < end;) {
        uint32_t p, n;
        if (s_recv_big(reader, ZMQ_DONTWAIT, &p, &n))
            s_take(seen, p, n);
        else
            tk_sleep_ms(1);
    }
}

static bus_stats_t s_stats_when(fixture_t *f, bool (*ok)(const bus_stats_t *), int timeout_ms)
{
    bus_stats_t st;
    for (int64_t end = tk_now_ms() + timeout_ms;; tk_sleep_ms(20)) {
        bus_stats(f->bus, &st);
        if (ok(&st) || tk_now_ms() >= end)
            return st;
    }
}

static bool s_one_disconnected(const bus_stats_t *st)
{
    return st->stalled_disconnects >= 1;
}

Test(bus, a_subscriber_that_stops_reading_holds_back_only_its_own_partitions, .timeout = 120)
{
    fixture_t f;
    s_setup_stall(&f, 600000); /* not disconnected during this test */
    void *stopped = s_small_subscriber(&f, "p0001/");
    void *reader = s_small_subscriber(&f, "p0002/");
    void *pub = s_publisher(&f);
    /* 20,000 x 4 KiB: 40 MB for the stopped subscriber, far beyond what its
     * queues and the kernel's buffers take. */
    enum { N = 20000 };
    s_seen_t seen = {0};
    s_publish_big(pub, N, reader, &seen);
    s_drain_until(reader, &seen, N / 2);
    cr_assert_eq(seen.count, N / 2, "the reading subscriber got %u of %u while the other read nothing", seen.count,
                 N / 2);
    cr_assert_eq(seen.last[2], N - 1);
    bus_stats_t st;
    bus_stats(f.bus, &st);
    cr_assert_gt(st.held_messages, 0, "nothing was held for the stopped subscriber");
    cr_assert_eq(st.stalled_disconnects, 0);
    /* Pushing back (a zero window) for longer than TCP keepalive and its
     * user timeout take (TCP_KEEPALIVE_S=1: 4 s) must not end the
     * connection: that would drop what waits on it. */
    tk_sleep_ms(6000);
    /* It reads again: every one of its messages, in order, nothing dropped. */
    s_seen_t late = {0};
    int timeout = 10000;
    zmq_setsockopt(stopped, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    for (uint32_t i = 0; i < N / 2; i++) {
        uint32_t p, n;
        cr_assert(s_recv_big(stopped, 0, &p, &n), "the stopped subscriber lost messages: %u of %u", i, N / 2);
        s_take(&late, p, n);
    }
    cr_assert_eq(late.last[1], N);
    zmq_close(pub);
    zmq_close(reader);
    zmq_close(stopped);
    s_teardown(&f);
}

Test(bus, a_subscriber_that_reads_nothing_is_disconnected_within_the_stall_timeout, .timeout = 120)
{
    fixture_t f;
    s_setup_stall(&f, 1000);
    /* Subscribes to every partition and never reads. */
    void *stalled = s_small_subscriber(&f, "p");
    void *reader = s_small_subscriber(&f, "p0001/");
    zmq_setsockopt(reader, ZMQ_SUBSCRIBE, "p0002/", 6);
    tk_sleep_ms(200); /* the second subscription reaches the bus */
    void *pub = s_publisher(&f);
    enum { N = 20000 };
    s_seen_t seen = {0};
    int64_t start = tk_now_ms();
    s_publish_big(pub, N, reader, &seen);
    s_drain_until(reader, &seen, N);
    int64_t took = tk_now_ms() - start;
    cr_assert_eq(seen.count, N, "the reading subscriber got %u of %u", seen.count, N);
    bus_stats_t st = s_stats_when(&f, s_one_disconnected, 10000);
    cr_assert_eq(st.stalled_disconnects, 1, "the subscriber that read nothing was not disconnected");
    cr_assert_eq(st.held_messages, 0);
    /* Generous: the stall timeout, the checks' period, a loaded machine. */
    cr_assert_lt(took, 15000, "the reading subscriber waited %lld ms for its messages", (long long)took);
    fprintf(stderr, "bus: %u messages of 4 KiB to a reader past a stalled subscriber in %lld ms (stall timeout %d ms)\n",
            N, (long long)took, f.cfg.bus_stall_timeout_ms);
    zmq_close(pub);
    zmq_close(reader);
    zmq_close(stalled);
    s_teardown(&f);
}

/* s_publish_big on a thread of its own (the socket is its alone until joined). */
typedef struct {
    void *pub;  /* the publisher */
    uint32_t n; /* messages */
} s_publishing_t;

static void *s_publish_thread(void *arg)
{
    s_publishing_t *job = arg;
    s_publish_big(job->pub, job->n, NULL, NULL);
    return NULL;
}

Test(bus, a_subscriber_that_reads_slowly_is_never_disconnected_and_loses_nothing, .timeout = 120)
{
    fixture_t f;
    s_setup_stall(&f, 1000);
    void *slow = s_small_subscriber(&f, "p");
    void *pub = s_publisher(&f);
    /* 12 MB, read at about 1 message (4 KiB) a millisecond: well over the
     * stall timeout of pushing back, but never a second without reading. */
    enum { N = 3000 };
    s_publishing_t job = {pub, N};
    pthread_t publisher;
    pthread_create(&publisher, NULL, s_publish_thread, &job);
    s_seen_t seen = {0};
    int timeout = 10000;
    zmq_setsockopt(slow, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    int64_t start = tk_now_ms();
    for (uint32_t i = 0; i < N; i++) {
        uint32_t p, n;
        cr_assert(s_recv_big(slow, 0, &p, &n), "the slow subscriber lost messages: %u of %u", i, N);
        s_take(&seen, p, n);
        tk_sleep_ms(1);
    }
    pthread_join(publisher, NULL);
    cr_assert_gt(tk_now_ms() - start, 2 * f.cfg.bus_stall_timeout_ms, "not slow enough to mean anything");
    cr_assert_eq(seen.last[1], N);
    cr_assert_eq(seen.last[2], N - 1);
    bus_stats_t st;
    bus_stats(f.bus, &st);
    cr_assert_eq(st.stalled_disconnects, 0, "a subscriber that reads was disconnected");
    zmq_close(pub);
    zmq_close(slow);
    s_teardown(&f);
}
