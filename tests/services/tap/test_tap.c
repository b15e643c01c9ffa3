/* evpipe-tap on a real bus fed by the generator: one JSON object per line,
 * filters by partition and event type, --count, --stats, clear errors; and
 * fed messages of several events, a line per event, counted per event. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "evpipe/log.h"
#include "evpipe/publisher.h"
#include "evpipe/wire.h"
#include "testkit.h"

typedef struct {
    tk_world_t *w;   /* endpoints and folders (the database is unused) */
    tk_proc_t *bus;  /* the bus */
    tk_proc_t *gen;  /* a steady generator */
} fixture_t;

/* A world with a bus and nothing publishing yet. */
static void s_setup_bus(fixture_t *f, const char *name)
{
    f->w = tk_world_new(name);
    f->bus = tk_start(f->w, "bus", NULL, NULL);
    f->gen = NULL;
    cr_assert(tk_wait_log(f->bus, "bus ready", 10000));
}

static void s_setup(fixture_t *f, const char *name)
{
    s_setup_bus(f, name);
    const char *args[] = {"--rate", "2000", "--count", "200000", NULL};
    f->gen = tk_start(f->w, "generator", args, NULL);
}

static void s_teardown(fixture_t *f)
{
    tk_proc_destroy(&f->gen);
    tk_proc_destroy(&f->bus);
    tk_world_destroy(&f->w);
}

/* ---- A publisher of messages of 5 events ---- */

#define BODY_EVENTS 5

/* A publisher on the world's bus whose messages carry BODY_EVENTS events. */
static evp_publisher_t *s_batch_publisher(fixture_t *f)
{
    evp_log_init("test", EVP_LOG_WARN);
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    snprintf(cfg.bus_publish_endpoint, sizeof cfg.bus_publish_endpoint, "%s", f->w->pub_ep);
    cfg.publish_batch = BODY_EVENTS;
    char why[256] = "";
    evp_publisher_t *pub = evp_publisher_new(&cfg, why, sizeof why);
    cr_assert_not_null(pub, "%s", why);
    cr_assert_eq(evp_publisher_wait_bus(pub, 10000), 0, "the bus did not subscribe");
    return pub;
}

/* Publishes one message: seqs after *seq in partition 3, purchases on even
 * seqs, views on odd ones. */
static void s_publish_body(evp_publisher_t *pub, int64_t *seq)
{
    for (int i = 0; i < BODY_EVENTS; i++) {
        ev_event_t ev = tk_event("gen-00000000000000aa", 3, ++*seq);
        ev.event_type = *seq % 2 ? (ev_str_t){"view", 4} : (ev_str_t){"purchase", 8};
        cr_assert_eq(evp_publisher_send(pub, &ev), 0);
    }
}

/* Runs the tap to its end, while pub (when not NULL) publishes a message of
 * BODY_EVENTS events every 20 ms; returns its output (malloc'd). */
static char *s_tap_fed(fixture_t *f, const char *const *args, evp_publisher_t *pub, int *code)
{
    tk_proc_t *tap = tk_start(f->w, "tap", args, NULL);
    int64_t seq = 0, end = tk_now_ms() + 60000;
    while (pub && !tk_wait_exit(tap, 0) && tk_now_ms() < end) {
        s_publish_body(pub, &seq);
        tk_sleep_ms(20);
    }
    cr_assert(tk_wait_exit(tap, pub ? 0 : 60000), "the tap did not stop by itself");
    *code = tk_exit_code(tap);
    char *out = tk_read_file(tap->log, NULL);
    tk_proc_destroy(&tap);
    return out;
}

/* Runs the tap to its end; returns its output (malloc'd). */
static char *s_tap(fixture_t *f, const char *const *args, int *code)
{
    return s_tap_fed(f, args, NULL, code);
}

/* The seq of each line of out, in order, into seqs; how many lines. */
static int s_seqs(const char *out, int64_t *seqs, int max)
{
    int n = 0;
    for (const char *p = out; n < max && (p = strstr(p, "\"seq\":")); p++)
        seqs[n++] = strtoll(p + 6, NULL, 10);
    return n;
}

static int s_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

Test(tap, prints_count_events_as_json_lines_of_the_type_asked)
{
    fixture_t f;
    s_setup(&f, "tap_type");
    const char *args[] = {"--count", "25", "--event-type", "purchase", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0, "%s", out);
    cr_assert_eq(s_lines(out), 25, "%s", out);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert(line[0] == '{' && line[strlen(line) - 1] == '}', "not a JSON object: %s", line);
        cr_assert(strstr(line, "\"event_type\":\"purchase\"") != NULL, "%s", line);
        cr_assert(strstr(line, "\"product_price\":\"") != NULL, "the price is not an exact string: %s", line);
        cr_assert(strstr(line, "\"seq\":") != NULL);
    }
    free(out);
    s_teardown(&f);
}

Test(tap, prints_only_the_partitions_asked)
{
    fixture_t f;
    s_setup(&f, "tap_partition");
    const char *args[] = {"--count", "20", "--partition", "3,5", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0);
    cr_assert_eq(s_lines(out), 20);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        cr_assert(strstr(line, "\"partition\":3,") || strstr(line, "\"partition\":5,"), "%s", line);
    free(out);
    s_teardown(&f);
}

Test(tap, stats_prints_a_line_a_second_with_rates_and_lag)
{
    fixture_t f;
    s_setup(&f, "tap_stats");
    const char *args[] = {"--stats", "--seconds", "3.5", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0);
    cr_assert_geq(s_lines(out), 2, "%s", out);
    cr_assert(strstr(out, "\"events_per_s\":") && strstr(out, "\"by_type\":{\"view\":") &&
                  strstr(out, "\"lag_ms_avg\":"),
              "%s", out);
    free(out);
    s_teardown(&f);
}

Test(tap, refuses_a_partition_outside_the_range_with_one_line)
{
    fixture_t f;
    s_setup(&f, "tap_bad");
    const char *args[] = {"--partition", "99", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 1);
    cr_assert(strstr(out, "--partition 99") != NULL, "%s", out);
    cr_assert_eq(s_lines(out), 1, "%s", out);
    free(out);
    s_teardown(&f);
}

Test(tap, prints_each_event_of_a_message_on_its_own_line_and_counts_events)
{
    fixture_t f;
    s_setup_bus(&f, "tap_batches");
    evp_publisher_t *pub = s_batch_publisher(&f);
    /* 7 events: one whole message and the first two of the next. */
    const char *args[] = {"--count", "7", NULL};
    int code;
    char *out = s_tap_fed(&f, args, pub, &code);
    cr_assert_eq(code, 0, "%s", out);
    cr_assert_eq(s_lines(out), 7, "%s", out);
    int64_t seqs[8];
    cr_assert_eq(s_seqs(out, seqs, 8), 7, "%s", out);
    cr_assert_eq(seqs[0] % BODY_EVENTS, 1, "the tap starts at a message's first event: %s", out);
    for (int i = 1; i < 7; i++)
        cr_assert_eq(seqs[i], seqs[i - 1] + 1, "every event of each message, in order: %s", out);
    free(out);

    /* The type filter looks at each event: every purchase of every message. */
    const char *purchases[] = {"--count", "5", "--event-type", "purchase", NULL};
    out = s_tap_fed(&f, purchases, pub, &code);
    cr_assert_eq(code, 0, "%s", out);
    cr_assert_eq(s_lines(out), 5, "%s", out);
    cr_assert_eq(s_seqs(out, seqs, 8), 5, "%s", out);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(seqs[i] % 2, 0, "only purchases: %s", out);
        if (i)
            cr_assert_eq(seqs[i], seqs[i - 1] + 2, "each purchase of each message: %s", out);
    }
    free(out);
    evp_publisher_destroy(&pub, 0);
    s_teardown(&f);
}

Test(tap, stats_of_events_published_at_either_end_of_int64_do_not_overflow)
{
    fixture_t f;
    s_setup_bus(&f, "tap_hostile_time");
    /* A peer that stamps published_at as it likes (the publisher module
     * stamps the time itself, so a raw socket). */
    void *ctx = zmq_ctx_new();
    void *pub = zmq_socket(ctx, ZMQ_XPUB);
    int linger = 0, timeout = 10000;
    zmq_setsockopt(pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert_eq(zmq_connect(pub, f.w->pub_ep), 0);
    char sub[8];
    cr_assert_geq(zmq_recv(pub, sub, sizeof sub, 0), 1, "the bus did not subscribe");
    ev_codec_t *codec = ev_codec_new();
    const char *args[] = {"--stats", "--seconds", "2.5", NULL};
    tk_proc_t *tap = tk_start(f.w, "tap", args, NULL);
    int64_t seq = 0, end = tk_now_ms() + 60000;
    while (!tk_wait_exit(tap, 0) && tk_now_ms() < end) {
        /* now - INT64_MIN and now - INT64_MAX overflow (UBSan aborts), and
         * so would a sum of such lags. */
        ev_event_t ev = tk_event("gen-00000000000000bb", 3, ++seq);
        ev.published_at = seq % 2 ? INT64_MIN : INT64_MAX;
        const void *body;
        size_t len;
        ev_codec_encode_event(codec, &ev, &body, &len);
        tk_bus_send(pub, 3, EV_MSG_EVENT, body, len);
        tk_sleep_ms(5);
    }
    cr_assert(tk_wait_exit(tap, 0), "the tap did not stop by itself");
    char *out = tk_read_file(tap->log, NULL);
    cr_assert_eq(tk_exit_code(tap), 0, "%s", out);
    cr_assert(strstr(out, "\"lag_ms_max\":") != NULL, "%s", out);
    cr_assert(strstr(out, "\"by_partition\":{\"3\":") != NULL, "no event was counted: %s", out);
    free(out);
    tk_proc_destroy(&tap);
    ev_codec_destroy(&codec);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    s_teardown(&f);
}
