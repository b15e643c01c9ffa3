/* The bus with CURVE on and roles: each endpoint admits only the roles that
 * may use it, a publisher's messages must carry sources its key names, and
 * every refusal is counted. Each boundary is tried with a real socket
 * speaking as the wrong role, on 127.0.0.1. Also the key files (zcert, as
 * CZMQ reads them), the source patterns and the body scan. */
#include <criterion/criterion.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "bus.h"
#include "bus_auth.h"
#include "evpipe/curve.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"
#include "testkit.h"

#define GEN "gen-0123456789abcdef"
#define FOREIGN "gen-fedcba9876543210"

typedef struct {
    char dir[256];      /* keys live here */
    evp_config_t cfg;   /* the bus's settings */
    bus_t *bus;         /* the broker */
    pthread_t thread;   /* runs bus_run */
    void *ctx;          /* the clients' context */
    ev_codec_t *codec;  /* encodes the test's messages */
} fixture_t;

static void *s_run(void *arg)
{
    bus_run(arg);
    return NULL;
}

static void s_keygen(const char *dir, const char *role, const char *name, const char *sources)
{
    char why[256];
    cr_assert_eq(evp_curve_keygen(dir, role, name, sources, why, sizeof why), 0, "%s", why);
}

static void s_setup(fixture_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/evpipe-curve-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    char allowed[300], cmd[2048];
    snprintf(allowed, sizeof allowed, "%s/allowed", f->dir);
    s_keygen(f->dir, "server", "bus", NULL);
    s_keygen(f->dir, "publisher", "gen", GEN "-*," GEN);
    s_keygen(f->dir, "writer", "writer", NULL);
    s_keygen(f->dir, "tap", "tap", NULL);
    s_keygen(f->dir, "repair", "repairer", NULL);
    s_keygen(f->dir, "publisher", "stranger", "*");
    /* Everyone's public key but the stranger's. */
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/gen.key %s/writer.key %s/tap.key %s/repairer.key %s/", allowed,
             f->dir, f->dir, f->dir, f->dir, allowed);
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
    f->codec = ev_codec_new();
}

static void s_teardown(fixture_t *f)
{
    evp_request_stop();
    pthread_join(f->thread, NULL);
    bus_destroy(&f->bus);
    zmq_ctx_term(f->ctx);
    ev_codec_destroy(&f->codec);
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

/* An admitted subscriber of `who` on endpoint. */
static void *s_subscriber(fixture_t *f, const char *who, const char *endpoint)
{
    void *sub = s_client(f, ZMQ_SUB, who, endpoint);
    cr_assert(s_welcomed(sub), "%s was not admitted on %s", who, endpoint);
    return sub;
}

/* A subscriber of `who` on endpoint gets no welcome: it was refused. */
static void s_assert_not_admitted(fixture_t *f, const char *who, const char *endpoint)
{
    void *sub = s_client(f, ZMQ_SUB, who, endpoint);
    cr_assert_not(s_welcomed(sub), "%s was admitted on %s", who, endpoint);
    zmq_close(sub);
}

/* An admitted writer, tap and publisher (the publisher with key "gen"). */
static void s_attach_all(fixture_t *f, void **writer, void **tap, void **pub)
{
    *writer = s_subscriber(f, "writer", f->cfg.bus_subscribe_endpoint);
    *tap = s_subscriber(f, "tap", f->cfg.bus_tap_endpoint);
    *pub = s_client(f, ZMQ_XPUB, "gen", f->cfg.bus_publish_endpoint);
    cr_assert(s_subscribed_by_bus(*pub), "the publisher was not admitted");
}

/* Sends topic and body (DONTWAIT: a refused sender must not block the test). */
static void s_send_raw(void *pub, ev_msg_kind_t kind, const void *body, size_t len)
{
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, 1, kind);
    zmq_send(pub, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(pub, body, len, ZMQ_DONTWAIT);
}

/* One event of source at seq. */
static void s_send_event(fixture_t *f, void *pub, const char *source, int64_t seq)
{
    ev_event_t ev = tk_event(source, 1, seq);
    const void *data;
    size_t len;
    ev_codec_encode_event(f->codec, &ev, &data, &len);
    s_send_raw(pub, EV_MSG_EVENT, data, len);
}

static void s_send_heartbeat(fixture_t *f, void *pub, const char *source, int64_t seq)
{
    ev_heartbeat_t hb = {.source = {source, (uint32_t)strlen(source)}, .partition = 1, .seq = seq,
                         .published_at = 1};
    const void *data;
    size_t len;
    ev_codec_encode_heartbeat(f->codec, &hb, &data, &len);
    s_send_raw(pub, EV_MSG_HEARTBEAT, data, len);
}

/* Receives one message; its seq (events) or the heartbeat's seq; -1 when none came. */
static int64_t s_recv_seq(fixture_t *f, void *sub)
{
    char topic[32];
    int tl = zmq_recv(sub, topic, sizeof topic, 0);
    if (tl < 0)
        return -1;
    char body[4096];
    int bl = zmq_recv(sub, body, sizeof body, 0);
    cr_assert_gt(bl, 0);
    uint32_t partition;
    ev_msg_kind_t kind;
    cr_assert(ev_topic_parse(topic, (size_t)tl, &partition, &kind));
    if (kind == EV_MSG_HEARTBEAT) {
        ev_heartbeat_t hb;
        cr_assert_eq(ev_codec_decode_heartbeat(f->codec, body, (size_t)bl, &hb, NULL), EV_OK);
        return hb.seq;
    }
    ev_event_t ev;
    cr_assert_eq(ev_codec_decode_event(f->codec, body, (size_t)bl, &ev, NULL), EV_OK);
    return ev.seq;
}

static bus_stats_t s_stats(fixture_t *f)
{
    bus_stats_t st;
    bus_stats(f->bus, &st);
    return st;
}

/* ---- Who may connect where ---- */

Test(bus_curve, a_publisher_reaches_writers_and_taps_under_its_own_sources)
{
    fixture_t f;
    s_setup(&f);
    void *writer = s_subscriber(&f, "writer", f.cfg.bus_subscribe_endpoint);
    void *tap = s_subscriber(&f, "tap", f.cfg.bus_tap_endpoint);
    void *pub = s_client(&f, ZMQ_XPUB, "gen", f.cfg.bus_publish_endpoint);
    cr_assert(s_subscribed_by_bus(pub), "the publisher was not admitted");
    s_send_event(&f, pub, GEN "-00000000000000a1", 1);
    s_send_heartbeat(&f, pub, GEN, 2);
    cr_assert_eq(s_recv_seq(&f, writer), 1);
    cr_assert_eq(s_recv_seq(&f, writer), 2);
    cr_assert_eq(s_recv_seq(&f, tap), 1);
    cr_assert_eq(s_stats(&f).source_refused, 0);
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}

Test(bus_curve, a_tap_key_cannot_publish)
{
    fixture_t f;
    s_setup(&f);
    void *writer = s_subscriber(&f, "writer", f.cfg.bus_subscribe_endpoint);
    void *pub = s_client(&f, ZMQ_XPUB, "tap", f.cfg.bus_publish_endpoint);
    cr_assert_not(s_subscribed_by_bus(pub), "a tap key was admitted as a publisher");
    s_send_event(&f, pub, GEN, 1);
    cr_assert_eq(s_recv_seq(&f, writer), -1, "a tap key's message got through");
    cr_assert_geq(s_stats(&f).curve_refused, 1);
    zmq_close(pub);
    zmq_close(writer);
    s_teardown(&f);
}

Test(bus_curve, a_writer_key_cannot_read_the_tap_endpoint_nor_a_tap_key_the_writer_endpoint)
{
    fixture_t f;
    s_setup(&f);
    s_assert_not_admitted(&f, "writer", f.cfg.bus_tap_endpoint);
    s_assert_not_admitted(&f, "tap", f.cfg.bus_subscribe_endpoint);
    s_assert_not_admitted(&f, "repairer", f.cfg.bus_subscribe_endpoint);
    s_assert_not_admitted(&f, "gen", f.cfg.bus_tap_endpoint);
    void *pub = s_client(&f, ZMQ_XPUB, "writer", f.cfg.bus_publish_endpoint);
    cr_assert_not(s_subscribed_by_bus(pub), "a writer key was admitted as a publisher");
    zmq_close(pub);
    cr_assert_geq(s_stats(&f).curve_refused, 5);
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
    void *writer = s_subscriber(&f, "writer", f.cfg.bus_subscribe_endpoint);
    s_send_event(&f, pub, GEN, 1);
    cr_assert_eq(s_recv_seq(&f, writer), -1, "a stranger's message got through");
    cr_assert_geq(s_stats(&f).curve_refused, 2);
    zmq_close(pub);
    zmq_close(sub);
    zmq_close(writer);
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

/* A tap that lets its queue fill while the bus keeps relaying: every copy it
 * finally reads is whole and redacted (the bus's copy of a received frame
 * must outlive the frame). */
Test(bus_curve, a_slow_tap_reads_whole_redacted_copies, .timeout = 60)
{
    fixture_t f;
    s_setup(&f);
    void *writer, *tap, *pub;
    s_attach_all(&f, &writer, &tap, &pub);
    /* In bursts, so frames arrive many to a read (they then share a buffer). */
    enum { N = 20000, BURST = 500 };
    for (int64_t seq = 1; seq <= N; seq += BURST) {
        for (int64_t i = seq; i < seq + BURST; i++)
            s_send_event(&f, pub, GEN "-00000000000000a1", i);
        for (int64_t i = seq; i < seq + BURST; i++)
            cr_assert_eq(s_recv_seq(&f, writer), i);
    }
    int got = 0;
    char topic[32], body[4096];
    int timeout = 500;
    zmq_setsockopt(tap, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (zmq_recv(tap, topic, sizeof topic, 0) > 0) {
        int n = zmq_recv(tap, body, sizeof body, 0);
        ev_event_t ev;
        cr_assert_eq(ev_codec_decode_event(f.codec, body, (size_t)n, &ev, NULL), EV_OK, "a broken copy");
        cr_assert(ev.user_name.len == 25 && memcmp(ev.user_name.ptr, "redacted-", 9) == 0);
        got++;
    }
    cr_assert_gt(got, 0, "the tap got nothing");
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}

/* The repair endpoint (ingest's ROUTER, domain "repair"): writers and repair
 * clients are admitted, taps and publishers are not. */
Test(bus_curve, the_repair_endpoint_admits_writers_and_repair_clients_only)
{
    fixture_t f;
    s_setup(&f);
    char why[512] = "";
    void *ctx = zmq_ctx_new();
    evp_curve_server_t *server = evp_curve_server_new(ctx, &f.cfg, why, sizeof why);
    cr_assert_not_null(server, "%s", why);
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0, timeout = 1500;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert_eq(evp_curve_server_apply(server, router, EVP_CURVE_REPAIR, why, sizeof why), 0, "%s", why);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tk_free_port());
    cr_assert_eq(zmq_bind(router, endpoint), 0);
    const struct {
        const char *who;
        bool admitted;
    } cases[] = {{"writer", true}, {"repairer", true}, {"tap", false}, {"gen", false}, {"stranger", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *dealer = s_client(&f, ZMQ_DEALER, cases[i].who, endpoint);
        zmq_send(dealer, "REPAIR", 6, ZMQ_DONTWAIT);
        char id[256], frame[16];
        bool got = zmq_recv(router, id, sizeof id, 0) > 0 && zmq_recv(router, frame, sizeof frame, 0) == 6;
        cr_assert_eq(got, cases[i].admitted, "%s: admitted=%d on the repair endpoint", cases[i].who, got);
        zmq_close(dealer);
    }
    cr_assert_eq(evp_curve_server_refused(server), 3);
    zmq_close(router);
    evp_curve_server_destroy(&server);
    zmq_ctx_term(ctx);
    s_teardown(&f);
}

/* ---- What a publisher may publish ---- */

Test(bus_curve, a_publisher_key_under_a_foreign_source_is_dropped_and_counted)
{
    fixture_t f;
    s_setup(&f);
    void *writer, *tap, *pub;
    s_attach_all(&f, &writer, &tap, &pub);
    /* A forged heartbeat and event for another generator's source; a source
     * that only starts like ours; a body whose second event is foreign; a body
     * that is not msgpack; then one of our own. */
    s_send_heartbeat(&f, pub, FOREIGN, (int64_t)1 << 62);
    s_send_event(&f, pub, FOREIGN "-0000000000000001", 1);
    s_send_event(&f, pub, GEN "0", 2);
    ev_event_t a = tk_event(GEN "-0000000000000001", 1, 3), b = tk_event(FOREIGN, 1, 4);
    const void *data;
    size_t len;
    ev_codec_encode_event(f.codec, &a, &data, &len);
    char mixed[2048];
    memcpy(mixed, data, len);
    size_t mixed_len = len;
    ev_codec_encode_event(f.codec, &b, &data, &len);
    memcpy(mixed + mixed_len, data, len);
    s_send_raw(pub, EV_MSG_EVENT, mixed, mixed_len + len);
    s_send_raw(pub, EV_MSG_EVENT, "\xc1junk", 5);
    s_send_event(&f, pub, GEN "-0000000000000001", 5);
    /* Messages keep their order: the first to arrive is the last sent. */
    cr_assert_eq(s_recv_seq(&f, writer), 5, "a refused message reached the writer");
    cr_assert_eq(s_recv_seq(&f, tap), 5, "a refused message reached the tap");
    bus_stats_t st = s_stats(&f);
    cr_assert_eq(st.source_refused, 5, "refused: %llu", (unsigned long long)st.source_refused);
    ev_buf_t text;
    ev_buf_init(&text);
    evp_metrics_render(bus_metrics(f.bus), &text);
    cr_assert(strstr(text.data, "evpipe_bus_source_refused_total{reason=\"foreign_source\"} 4\n"), "%s", text.data);
    cr_assert(strstr(text.data, "evpipe_bus_source_refused_total{reason=\"unreadable\"} 1\n"), "%s", text.data);
    ev_buf_free(&text);
    zmq_close(pub);
    zmq_close(tap);
    zmq_close(writer);
    s_teardown(&f);
}

/* ---- Key files, patterns, the scan ---- */

Test(bus_curve_keys, key_files_are_zcert_certificates_with_the_role_and_sources)
{
    char dir[] = "/tmp/evpipe-keys-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    s_keygen(dir, "publisher", "gen1", GEN "-*");
    char path[300], why[256];
    snprintf(path, sizeof path, "%s/gen1.key", dir);
    zcert_t *cert = zcert_load(path);
    cr_assert_not_null(cert, "CZMQ cannot read the key file");
    cr_assert_str_eq(zcert_meta(cert, "role"), "publisher");
    cr_assert_str_eq(zcert_meta(cert, "sources"), GEN "-*");
    cr_assert_str_eq(zcert_meta(cert, "name"), "gen1");
    zcert_destroy(&cert);
    char pub[41], sec[41];
    cr_assert_eq(evp_curve_read_key(path, pub, NULL, why, sizeof why), 0, "%s", why);
    snprintf(path, sizeof path, "%s/gen1.key_secret", dir);
    cr_assert_eq(evp_curve_read_key(path, pub, sec, why, sizeof why), 0, "%s", why);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the secret file is not private");
    /* Refused: a second key of that name, a publisher without sources,
     * sources for another role, an unknown role, a name with a slash. */
    cr_assert_eq(evp_curve_keygen(dir, "publisher", "gen1", GEN "-*", why, sizeof why), -1);
    cr_assert_eq(evp_curve_keygen(dir, "publisher", "gen2", NULL, why, sizeof why), -1);
    cr_assert(strstr(why, "--sources") != NULL, "%s", why);
    cr_assert_eq(evp_curve_keygen(dir, "tap", "tap1", "gen-*", why, sizeof why), -1);
    cr_assert_eq(evp_curve_keygen(dir, "admin", "x", NULL, why, sizeof why), -1);
    cr_assert_eq(evp_curve_keygen(dir, "tap", "../x", NULL, why, sizeof why), -1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(bus_curve_keys, source_patterns_are_exact_or_a_prefix_ending_in_a_star)
{
    const char *p = "gen-0123456789abcdef-*,file-*,gen-0123456789abcdef";
    cr_assert(evp_curve_source_allowed(p, "gen-0123456789abcdef-00000000000000ff", 37));
    cr_assert(evp_curve_source_allowed(p, "gen-0123456789abcdef", 20));
    cr_assert(evp_curve_source_allowed(p, "file-a1", 7));
    cr_assert_not(evp_curve_source_allowed(p, "gen-0123456789abcdef0", 21));
    cr_assert_not(evp_curve_source_allowed(p, "gen-fedcba9876543210", 20));
    cr_assert_not(evp_curve_source_allowed(p, "file", 4));
    cr_assert_not(evp_curve_source_allowed("", "x", 1));
    cr_assert_not(evp_curve_source_allowed(p, "gen-0123456789abcde", 19));
    cr_assert(evp_curve_sources_valid("gen-*"));
    cr_assert_not(evp_curve_sources_valid(""));
    cr_assert_not(evp_curve_sources_valid("a,,b"));
    cr_assert_not(evp_curve_sources_valid("a,"));
    cr_assert_not(evp_curve_sources_valid("g*n"));
    cr_assert_not(evp_curve_sources_valid("a b"));
}

static bool s_collect(void *arg, const char *source, size_t len)
{
    char *out = arg;
    strncat(out, source, len);
    strcat(out, ";");
    return true;
}

Test(bus_curve_keys, the_scan_finds_every_events_source_in_either_form_and_refuses_what_it_cannot_read)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t a = tk_event("s1", 1, 1), b = tk_event("s2", 1, 2);
    const void *data;
    size_t len;
    uint8_t body[4096];
    ev_codec_encode_event(codec, &a, &data, &len);
    memcpy(body, data, len);
    size_t n = len;
    ev_codec_set_form(codec, EV_FORM_MAP); /* a body may hold both forms */
    ev_codec_encode_event(codec, &b, &data, &len);
    memcpy(body + n, data, len);
    n += len;
    char got[64] = "";
    cr_assert_eq(bus_auth_scan(body, n, s_collect, got), 2);
    cr_assert_str_eq(got, "s1;s2;");
    /* Every cut short of the end is refused. */
    for (size_t cut = 0; cut < n; cut++) {
        if (cut == n - len)
            continue; /* exactly the first event */
        got[0] = '\0';
        cr_assert_eq(bus_auth_scan(body, cut, s_collect, got), -1, "cut at %zu", cut);
    }
    /* A map without source; a source that is not text; not a map; a map
     * nested in an unknown key is skipped; a second source key is checked too. */
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x81\xa1x\x01", 4, s_collect, got), -1);
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x81\xa6source\x01", 9, s_collect, got), -1);
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x92\x01\x02", 3, s_collect, got), -1);
    /* An array: its source is the element at the field's position, whatever
     * other element holds text; elements past the fields are stepped over. */
    uint8_t arr[1 + 2 * (EV_FIELD_COUNT + 2)];
    size_t k = 0;
    arr[k++] = (uint8_t)(0x90 | (EV_FIELD_COUNT + 2));
    for (int i = 0; i <= EV_FIELD_COUNT + 1; i++) {
        if (i > 0 && i - 1 == EV_F_source) {
            arr[k++] = 0xa1, arr[k++] = 'q';
        } else {
            arr[k++] = 0xa1, arr[k++] = 'x';
        }
    }
    got[0] = '\0';
    cr_assert_eq(bus_auth_scan(arr, k, s_collect, got), 1);
    cr_assert_str_eq(got, "q;");
    arr[0] = (uint8_t)(0x90 | (EV_F_source + 1)); /* cut before the source */
    cr_assert_eq(bus_auth_scan(arr, 1 + 2 * (EV_F_source + 1), s_collect, got), -1);
    got[0] = '\0';
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x82\xa1m\x81\xa6source\xa1z\xa6source\xa1y", 22, s_collect, got),
                 1);
    cr_assert_str_eq(got, "y;");
    got[0] = '\0';
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x82\xa6source\xa1y\xa6source\xa1z", 19, s_collect, got), 1);
    cr_assert_str_eq(got, "y;z;");
    /* A count of elements beyond the bytes present. */
    cr_assert_eq(bus_auth_scan((const uint8_t *)"\x81\xa1x\xdd\xff\xff\xff\xff", 8, s_collect, got), -1);
    ev_codec_destroy(&codec);
}
