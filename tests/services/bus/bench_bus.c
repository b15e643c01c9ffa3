/* A measurement, not a test: the bus's CPU per million events, with CURVE
 * off and on (on: roles and the publishers' source check). One publisher
 * sends EVENTS real events (64 to a message, one source, as the generator
 * does) to a bus in this process; one writer reads them all. Prints the bus
 * thread's CPU (the relay loop, the source check included), the whole
 * process's (ZeroMQ's I/O threads too: CURVE's encryption is there), and
 * the source scan alone over the same bodies. With "tap", a tap reads too
 * (TAP_REDACT=1: the bus redacts its copy; "tap-plain": TAP_REDACT=0).
 *   bench_bus [EVENTS] [curve|plain] [tap|tap-plain]   (default 1000000, CURVE off, no tap) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "bus_auth.h"
#include "evpipe/curve.h"
#include "evpipe/log.h"
#include "evpipe/sig.h"
#include "evpipe/wire.h"

#define BATCH 64
#define SOURCE "gen-0123456789abcdef-00000000000000a1"

static double s_secs(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double s_process_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void *s_run(void *arg)
{
    bus_run(arg);
    return NULL;
}

static int s_port(void)
{
    return 20000 + (int)(getpid() % 9000) + rand() % 1000;
}

/* One body of BATCH events; its bytes in body, length returned. */
static size_t s_body(ev_codec_t *codec, uint8_t *body, size_t cap, int64_t first)
{
    size_t n = 0;
    for (int i = 0; i < BATCH; i++) {
        ev_event_t ev = {
            .user_id = 42, .user_name = {"Some One", 8}, .user_email = {"one@example.com", 15},
            .event_type = {"view", 4}, .product_id = 7, .product_name = {"Thing", 5},
            .product_category = {"Cat", 3}, .product_price = 1234, .event_time = 1732240453000000,
            .source = {SOURCE, sizeof SOURCE - 1}, .partition = 1, .seq = first + i, .published_at = 1,
        };
        const void *data;
        size_t len;
        ev_codec_encode_event(codec, &ev, &data, &len);
        if (n + len > cap)
            break;
        memcpy(body + n, data, len);
        n += len;
    }
    return n;
}

static bool s_any(void *arg, const char *source, size_t len)
{
    (void)arg, (void)source, (void)len;
    return true;
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 1000000;
    bool curve = argc > 2 && strcmp(argv[2], "curve") == 0;
    bool tap = argc > 3 && strncmp(argv[3], "tap", 3) == 0, redact = !(argc > 3 && strcmp(argv[3], "tap-plain") == 0);
    long messages = events / BATCH;
    evp_log_init("bench", EVP_LOG_WARN);
    srand((unsigned)time(NULL));
    char dir[] = "/tmp/evpipe-bench-bus-XXXXXX", why[512] = "", path[300];
    if (!mkdtemp(dir))
        return 1;
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cfg.log_level = EVP_LOG_WARN;
    cfg.bus_hwm = 10000;
    cfg.tap_hwm = 10000;
    cfg.tap_redact = redact;
    snprintf(cfg.bus_publish_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", s_port());
    snprintf(cfg.bus_subscribe_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", s_port() + 1);
    snprintf(cfg.bus_tap_endpoint, EVP_TEXT_MAX, "tcp://127.0.0.1:%d", s_port() + 2);
    evp_config_t pub_cfg = cfg, sub_cfg = cfg, tap_cfg = cfg;
    if (curve) {
        snprintf(path, sizeof path, "%s/allowed", dir);
        if (evp_curve_keygen(dir, "server", "bus", NULL, why, sizeof why) ||
            evp_curve_keygen(path, "publisher", "gen", "gen-0123456789abcdef-*", why, sizeof why) ||
            evp_curve_keygen(path, "writer", "writer", NULL, why, sizeof why) ||
            evp_curve_keygen(path, "tap", "tap", NULL, why, sizeof why)) {
            fprintf(stderr, "bench_bus: %s\n", why);
            return 1;
        }
        cfg.curve = pub_cfg.curve = sub_cfg.curve = 1;
        snprintf(cfg.curve_server_key, EVP_PATH_MAX, "%s/bus.key_secret", dir);
        snprintf(cfg.curve_allowed_dir, EVP_PATH_MAX, "%s", path);
        snprintf(pub_cfg.curve_server_public_key, EVP_PATH_MAX, "%s/bus.key", dir);
        snprintf(sub_cfg.curve_server_public_key, EVP_PATH_MAX, "%s/bus.key", dir);
        snprintf(pub_cfg.curve_client_key, EVP_PATH_MAX, "%s/gen.key_secret", path);
        snprintf(sub_cfg.curve_client_key, EVP_PATH_MAX, "%s/writer.key_secret", path);
        tap_cfg.curve = 1;
        snprintf(tap_cfg.curve_server_public_key, EVP_PATH_MAX, "%s/bus.key", dir);
        snprintf(tap_cfg.curve_client_key, EVP_PATH_MAX, "%s/tap.key_secret", path);
    }
    bus_t *bus = bus_new(&cfg, why, sizeof why);
    if (!bus) {
        fprintf(stderr, "bench_bus: %s\n", why);
        return 1;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, s_run, bus);
    clockid_t bus_clock;
    pthread_getcpuclockid(thread, &bus_clock);

    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB), *pub = zmq_socket(ctx, ZMQ_XPUB);
    int hwm = 10000, one = 1, timeout = 10000;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(pub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (evp_curve_client_apply(sub, &sub_cfg, why, sizeof why) || evp_curve_client_apply(pub, &pub_cfg, why, sizeof why)) {
        fprintf(stderr, "bench_bus: %s\n", why);
        return 1;
    }
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "!welcome", 8);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "p", 1);
    zmq_connect(sub, cfg.bus_subscribe_endpoint);
    zmq_connect(pub, cfg.bus_publish_endpoint);
    void *taps = NULL;
    if (tap) {
        taps = zmq_socket(ctx, ZMQ_SUB);
        zmq_setsockopt(taps, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(taps, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        if (evp_curve_client_apply(taps, &tap_cfg, why, sizeof why)) {
            fprintf(stderr, "bench_bus: %s\n", why);
            return 1;
        }
        zmq_setsockopt(taps, ZMQ_SUBSCRIBE, "!welcome", 8);
        zmq_setsockopt(taps, ZMQ_SUBSCRIBE, "p", 1);
        zmq_connect(taps, cfg.bus_tap_endpoint);
    }
    char buf[65536];
    if (zmq_recv(sub, buf, sizeof buf, 0) != 8 || zmq_recv(pub, buf, sizeof buf, 0) < 1 ||
        (taps && zmq_recv(taps, buf, sizeof buf, 0) != 8)) {
        fprintf(stderr, "bench_bus: not admitted\n");
        return 1;
    }
    ev_codec_t *codec = ev_codec_new();
    static uint8_t body[65536];
    size_t blen = s_body(codec, body, sizeof body, 1);
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, 1, EV_MSG_EVENT);

    double bus0 = s_secs(bus_clock), proc0 = s_process_cpu(), wall0 = s_secs(CLOCK_MONOTONIC);
    long got = 0, tapped = 0;
    for (long m = 0; m < messages; m++) {
        zmq_send(pub, topic, tlen, ZMQ_SNDMORE);
        zmq_send(pub, body, blen, 0);
        while (zmq_recv(sub, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            got++;
        while (taps && zmq_recv(taps, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            tapped++;
    }
    while (got < 2 * messages && zmq_recv(sub, buf, sizeof buf, 0) >= 0)
        got++;
    double bus_cpu = s_secs(bus_clock) - bus0, proc_cpu = s_process_cpu() - proc0,
           wall = s_secs(CLOCK_MONOTONIC) - wall0;
    bus_stats_t st;
    bus_stats(bus, &st);

    /* The scan alone, on the same body. */
    double scan0 = s_secs(CLOCK_THREAD_CPUTIME_ID);
    long maps = 0;
    for (long m = 0; m < messages; m++)
        maps += bus_auth_scan(body, blen, s_any, NULL);
    double scan = s_secs(CLOCK_THREAD_CPUTIME_ID) - scan0;

    double per = 1e6 / (double)(messages * BATCH);
    printf("tap=%s tap_frames=%ld curve=%d events=%ld messages=%ld delivered=%llu refused=%llu wall_s=%.2f bus_thread_cpu_s_per_million=%.3f "
           "process_cpu_s_per_million=%.3f scan_cpu_s_per_million=%.4f\n",
           tap ? (redact ? "redacted" : "plain") : "none", tapped, curve, messages * BATCH, messages, (unsigned long long)st.delivered,
           (unsigned long long)st.source_refused, wall, bus_cpu * per, proc_cpu * per, scan * per * (maps ? 1 : 0));

    zmq_close(pub);
    zmq_close(sub);
    if (taps)
        zmq_close(taps);
    zmq_ctx_term(ctx);
    evp_request_stop();
    pthread_join(thread, NULL);
    bus_destroy(&bus);
    ev_codec_destroy(&codec);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    return system(path) == 0 && got == 2 * messages ? 0 : 1;
}
