/* Unit tests of the metrics registry: counter, gauge and histogram math,
 * quantile estimates, the exact Prometheus text (escaping included, read back
 * by a small parser), definitions that abort, and the HTTP endpoint on
 * 127.0.0.1 (/metrics, /healthz, 404, 405, a port in use) scraped with the
 * test kit's HTTP client while two threads update. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evpipe/config.h"
#include "evpipe/http.h"
#include "evpipe/metrics.h"
#include "testkit.h"

/* ---- A parser of the text format: every line checked, samples kept ---- */

typedef struct {
    char key[256]; /* name{label="value"} with the value unescaped */
    double value;  /* the sample value */
} sample_t;

typedef struct {
    sample_t items[256]; /* the samples in order */
    size_t n;            /* how many */
} samples_t;

static bool s_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

/* Parses text, failing the test on any line that is not valid 0.0.4, on a
 * sample before its # TYPE, or on a # TYPE without a # HELP just before. */
static void s_parse(const char *text, samples_t *out)
{
    out->n = 0;
    char family[128] = "", helped[128] = "";
    const char *line = text;
    cr_assert(*text == '\0' || text[strlen(text) - 1] == '\n', "the text must end with a newline");
    while (*line) {
        const char *eol = strchr(line, '\n');
        cr_assert_not_null(eol);
        char l[1024];
        size_t len = (size_t)(eol - line);
        cr_assert_lt(len, sizeof l);
        memcpy(l, line, len);
        l[len] = '\0';
        line = eol + 1;
        if (strncmp(l, "# HELP ", 7) == 0) {
            cr_assert_eq(sscanf(l + 7, "%127s", helped), 1);
            continue;
        }
        if (strncmp(l, "# TYPE ", 7) == 0) {
            char type[32];
            cr_assert_eq(sscanf(l + 7, "%127s %31s", family, type), 2, "bad TYPE line: %s", l);
            cr_assert_str_eq(family, helped, "TYPE without its HELP: %s", l);
            cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 || strcmp(type, "histogram") == 0,
                      "bad type: %s", l);
            continue;
        }
        cr_assert_neq(l[0], '#', "unexpected comment: %s", l);
        sample_t *s = &out->items[out->n++];
        cr_assert_lt(out->n, 256);
        size_t k = 0;
        const char *p = l;
        cr_assert(s_name_char(*p, true), "bad sample line: %s", l);
        while (s_name_char(*p, false))
            s->key[k++] = *p++;
        s->key[k] = '\0';
        cr_assert_eq(strncmp(s->key, family, strlen(family)), 0, "sample %s outside its family %s", s->key, family);
        if (*p == '{') {
            s->key[k++] = *p++;
            while (*p != '}') {
                while (s_name_char(*p, false))
                    s->key[k++] = *p++;
                cr_assert_eq(*p, '=', "bad labels: %s", l);
                s->key[k++] = *p++;
                cr_assert_eq(*p, '"', "bad labels: %s", l);
                s->key[k++] = *p++;
                while (*p != '"') {
                    cr_assert_neq(*p, '\0', "unterminated label value: %s", l);
                    if (*p == '\\') {
                        p++;
                        cr_assert(*p == '\\' || *p == '"' || *p == 'n', "bad escape: %s", l);
                        s->key[k++] = *p == 'n' ? '\n' : *p;
                        p++;
                    } else {
                        s->key[k++] = *p++;
                    }
                }
                s->key[k++] = *p++;
                if (*p == ',')
                    s->key[k++] = *p++;
            }
            s->key[k++] = *p++;
            s->key[k] = '\0';
        }
        cr_assert_eq(*p, ' ', "no value: %s", l);
        p++;
        char *end = NULL;
        s->value = strtod(p, &end);
        cr_assert(end != p && *end == '\0', "bad value: %s", l);
    }
}

/* The value of the sample with this key; fails the test when absent. */
static double s_value(const samples_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].key, key) == 0)
            return s->items[i].value;
    cr_assert_fail("no sample %s", key);
    return NAN;
}

static char *s_render(evp_metrics_t *m)
{
    ev_buf_t b;
    ev_buf_init(&b);
    evp_metrics_render(m, &b);
    if (!b.data)
        return strdup("");
    return b.data;
}

/* ---- Counters, gauges, histograms ---- */

Test(metrics_counter, adds_per_series_and_sums_all_series)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_counter_t *c = evp_counter_new(m, "events_total", "Events.");
    evp_counter_inc(c);
    evp_counter_add(c, 41);
    cr_assert_eq(evp_counter_value(c), 42);
    static const char *const reasons[] = {"price", "time", "missing"};
    evp_counter_t *r = evp_counter_new_labeled(m, "rejects_total", "Rejects.", "reason", reasons, 3);
    evp_counter_add_at(r, 1, 5);
    evp_counter_add_at(r, 2, 2);
    evp_counter_add_at(r, (size_t)evp_counter_index(r, "time"), 1);
    cr_assert_eq(evp_counter_value_at(r, 0), 0);
    cr_assert_eq(evp_counter_value_at(r, 1), 6);
    cr_assert_eq(evp_counter_value_at(r, 2), 2);
    cr_assert_eq(evp_counter_value_at(r, 3), 0, "out of range reads 0");
    cr_assert_eq(evp_counter_value(r), 8);
    cr_assert_eq(evp_counter_index(r, "nope"), -1);
    cr_assert_eq(evp_counter_index(c, "price"), -1);
    evp_metrics_destroy(&m);
    cr_assert_null(m);
    evp_metrics_destroy(&m);
}

Test(metrics_counter, null_handles_and_registries_do_nothing)
{
    cr_assert_null(evp_counter_new(NULL, "x_total", "x"));
    cr_assert_null(evp_gauge_new(NULL, "x", "x"));
    static const double b[] = {1};
    cr_assert_null(evp_histogram_new(NULL, "x", "x", b, 1));
    evp_counter_add(NULL, 1);
    evp_counter_add_at(NULL, 3, 1);
    evp_gauge_set(NULL, 1);
    evp_gauge_add_double(NULL, 1);
    evp_histogram_observe(NULL, 1);
    evp_metrics_beat(NULL);
    cr_assert_eq(evp_counter_value(NULL), 0);
    cr_assert_eq(evp_gauge_value(NULL), 0);
    cr_assert_eq(evp_histogram_count(NULL), 0);
    cr_assert_eq(evp_histogram_quantile(NULL, 0.5), 0);
}

Test(metrics_gauge, integer_and_double_gauges_set_add_and_convert)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_gauge_t *g = evp_gauge_new(m, "subscribers", "Subscribers.");
    evp_gauge_set(g, 5);
    evp_gauge_add(g, -7);
    cr_assert_eq(evp_gauge_value(g), -2);
    cr_assert_eq(evp_gauge_value_double(g), -2.0);
    evp_gauge_set_double(g, 2.6);
    cr_assert_eq(evp_gauge_value(g), 3, "an integer gauge rounds");
    evp_gauge_t *d = evp_gauge_new_double(m, "lag_seconds", "Lag.");
    evp_gauge_set_double(d, 0.25);
    evp_gauge_add_double(d, 0.5);
    evp_gauge_add(d, 1);
    cr_assert_eq(evp_gauge_value_double(d), 1.75);
    cr_assert_eq(evp_gauge_value(d), 2);
    evp_gauge_set(d, -4);
    cr_assert_eq(evp_gauge_value_double(d), -4.0);
    evp_metrics_destroy(&m);
}

Test(metrics_histogram, counts_a_value_equal_to_a_bound_in_that_bucket)
{
    evp_metrics_t *m = evp_metrics_new("t");
    static const double b[] = {1, 2, 4};
    evp_histogram_t *h = evp_histogram_new(m, "rows", "Rows.", b, 3);
    double values[] = {-3, 1, 1.0000001, 2, 4, 4.5, 1e300, NAN};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        evp_histogram_observe(h, values[i]);
    cr_assert_eq(evp_histogram_count(h), 7, "NaN is ignored");
    cr_assert_float_eq(evp_histogram_sum(h), -3 + 1 + 1.0000001 + 2 + 4 + 4.5 + 1e300, 1e285);
    char *text = s_render(m);
    samples_t s;
    s_parse(text, &s);
    cr_assert_eq(s_value(&s, "evpipe_t_rows_bucket{le=\"1\"}"), 2);
    cr_assert_eq(s_value(&s, "evpipe_t_rows_bucket{le=\"2\"}"), 4);
    cr_assert_eq(s_value(&s, "evpipe_t_rows_bucket{le=\"4\"}"), 5);
    cr_assert_eq(s_value(&s, "evpipe_t_rows_bucket{le=\"+Inf\"}"), 7);
    cr_assert_eq(s_value(&s, "evpipe_t_rows_count"), 7);
    free(text);
    evp_metrics_destroy(&m);
}

Test(metrics_histogram, quantiles_interpolate_linearly_within_buckets)
{
    evp_metrics_t *m = evp_metrics_new("t");
    static const double b[] = {1, 2, 4, 8};
    evp_histogram_t *h = evp_histogram_new(m, "seconds", "Seconds.", b, 4);
    cr_assert_eq(evp_histogram_quantile(h, 0.5), 0, "empty: 0");
    for (int i = 0; i < 4; i++)
        evp_histogram_observe(h, 0.5);
    for (int i = 0; i < 4; i++)
        evp_histogram_observe(h, 1.5);
    evp_histogram_observe(h, 3);
    evp_histogram_observe(h, 3);
    /* 10 values: 4 in (0,1], 4 in (1,2], 2 in (2,4]. */
    cr_assert_float_eq(evp_histogram_quantile(h, 0.5), 1.25, 1e-12);   /* rank 5: 1 + 1 * (5-4)/4 */
    cr_assert_float_eq(evp_histogram_quantile(h, 0.99), 3.9, 1e-12);   /* rank 9.9: 2 + 2 * 1.9/2 */
    cr_assert_float_eq(evp_histogram_quantile(h, 0.999), 3.99, 1e-12); /* rank 9.99 */
    cr_assert_float_eq(evp_histogram_quantile(h, 0.2), 0.5, 1e-12);    /* rank 2: 0 + 1 * 2/4 */
    cr_assert_float_eq(evp_histogram_quantile(h, 1), 4, 1e-12);
    cr_assert_float_eq(evp_histogram_quantile(h, 0), 0, 1e-12);
    cr_assert_float_eq(evp_histogram_quantile(h, 7), 4, 1e-12, "q is clamped to 1");
    /* One value beyond the last bound: the top quantile is the largest bound. */
    evp_histogram_observe(h, 100);
    cr_assert_float_eq(evp_histogram_quantile(h, 1), 8, 1e-12);
    cr_assert_float_eq(evp_histogram_quantile(h, 0.999), 8, 1e-12);
    evp_metrics_destroy(&m);
}

Test(metrics_histogram, quantile_of_a_first_bucket_with_a_negative_bound_is_that_bound)
{
    evp_metrics_t *m = evp_metrics_new("t");
    static const double b[] = {-1, 0, 1};
    evp_histogram_t *h = evp_histogram_new(m, "skew", "Skew.", b, 3);
    evp_histogram_observe(h, -5);
    cr_assert_eq(evp_histogram_quantile(h, 0.5), -1);
    evp_metrics_destroy(&m);
}

Test(metrics_histogram, exponential_buckets_multiply)
{
    double b[4];
    evp_buckets_exponential(b, 4, 0.001, 10);
    cr_assert_float_eq(b[0], 0.001, 1e-15);
    cr_assert_float_eq(b[3], 1, 1e-12);
}

/* ---- The text format ---- */

static evp_metrics_t *s_sample_registry(void)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_counter_add(evp_counter_new(m, "events_total", "Events seen."), 42);
    static const char *const reasons[] = {"price", "quote\"back\\slash\nnewline"};
    evp_counter_t *r = evp_counter_new_labeled(m, "rejects_total",
                                               "Rejected rows, by reason.\nSecond line with a \\ backslash.",
                                               "reason", reasons, 2);
    evp_counter_add_at(r, 0, 3);
    evp_gauge_t *g = evp_gauge_new(m, "subscribers", "Current subscribers.");
    evp_gauge_set(g, 5);
    evp_gauge_add(g, -7);
    evp_gauge_set_double(evp_gauge_new_double(m, "ratio", "A ratio."), 0.1);
    evp_gauge_set_double(evp_gauge_new_double(m, "big", "Large and tiny values."), 1e20);
    static const double b[] = {0.25, 0.5, 1, 2.5};
    evp_histogram_t *h = evp_histogram_new(m, "commit_seconds", "Commit time.", b, 4);
    evp_histogram_observe(h, 0.25);
    evp_histogram_observe(h, 0.125);
    evp_histogram_observe(h, 0.5);
    evp_histogram_observe(h, 3);
    return m;
}

static const char s_expected[] =
    "# HELP evpipe_t_events_total Events seen.\n"
    "# TYPE evpipe_t_events_total counter\n"
    "evpipe_t_events_total 42\n"
    "# HELP evpipe_t_rejects_total Rejected rows, by reason.\\nSecond line with a \\\\ backslash.\n"
    "# TYPE evpipe_t_rejects_total counter\n"
    "evpipe_t_rejects_total{reason=\"price\"} 3\n"
    "evpipe_t_rejects_total{reason=\"quote\\\"back\\\\slash\\nnewline\"} 0\n"
    "# HELP evpipe_t_subscribers Current subscribers.\n"
    "# TYPE evpipe_t_subscribers gauge\n"
    "evpipe_t_subscribers -2\n"
    "# HELP evpipe_t_ratio A ratio.\n"
    "# TYPE evpipe_t_ratio gauge\n"
    "evpipe_t_ratio 0.1\n"
    "# HELP evpipe_t_big Large and tiny values.\n"
    "# TYPE evpipe_t_big gauge\n"
    "evpipe_t_big 1e+20\n"
    "# HELP evpipe_t_commit_seconds Commit time.\n"
    "# TYPE evpipe_t_commit_seconds histogram\n"
    "evpipe_t_commit_seconds_bucket{le=\"0.25\"} 2\n"
    "evpipe_t_commit_seconds_bucket{le=\"0.5\"} 3\n"
    "evpipe_t_commit_seconds_bucket{le=\"1\"} 3\n"
    "evpipe_t_commit_seconds_bucket{le=\"2.5\"} 3\n"
    "evpipe_t_commit_seconds_bucket{le=\"+Inf\"} 4\n"
    "evpipe_t_commit_seconds_sum 3.875\n"
    "evpipe_t_commit_seconds_count 4\n";

Test(metrics_text, renders_the_exposition_format_exactly)
{
    evp_metrics_t *m = s_sample_registry();
    char *text = s_render(m);
    cr_assert_str_eq(text, s_expected);
    free(text);
    evp_metrics_destroy(&m);
}

Test(metrics_text, parses_back_to_the_values_with_labels_unescaped)
{
    evp_metrics_t *m = s_sample_registry();
    char *text = s_render(m);
    samples_t s;
    s_parse(text, &s);
    cr_assert_eq(s.n, 13);
    cr_assert_eq(s_value(&s, "evpipe_t_events_total"), 42);
    cr_assert_eq(s_value(&s, "evpipe_t_rejects_total{reason=\"price\"}"), 3);
    cr_assert_eq(s_value(&s, "evpipe_t_rejects_total{reason=\"quote\"back\\slash\nnewline\"}"), 0);
    cr_assert_eq(s_value(&s, "evpipe_t_subscribers"), -2);
    cr_assert_eq(s_value(&s, "evpipe_t_ratio"), 0.1);
    cr_assert_eq(s_value(&s, "evpipe_t_big"), 1e20);
    cr_assert_eq(s_value(&s, "evpipe_t_commit_seconds_bucket{le=\"0.25\"}"), 2);
    cr_assert_eq(s_value(&s, "evpipe_t_commit_seconds_bucket{le=\"+Inf\"}"), 4);
    cr_assert_eq(s_value(&s, "evpipe_t_commit_seconds_sum"), 3.875);
    cr_assert_eq(s_value(&s, "evpipe_t_commit_seconds_count"), 4);
    free(text);
    evp_metrics_destroy(&m);
}

Test(metrics_text, an_empty_service_name_gives_the_bare_prefix)
{
    evp_metrics_t *m = evp_metrics_new("");
    evp_counter_inc(evp_counter_new(m, "x_total", "X."));
    char *text = s_render(m);
    cr_assert_str_eq(text, "# HELP evpipe_x_total X.\n# TYPE evpipe_x_total counter\nevpipe_x_total 1\n");
    free(text);
    evp_metrics_destroy(&m);
}

/* ---- Definitions that are programming errors abort ---- */

Test(metrics_definition, a_counter_without_total_aborts, .signal = SIGABRT)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_counter_new(m, "events", "Events.");
}

Test(metrics_definition, a_name_registered_twice_aborts, .signal = SIGABRT)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_gauge_new(m, "x", "X.");
    evp_gauge_new_double(m, "x", "X again.");
}

Test(metrics_definition, a_bad_name_aborts, .signal = SIGABRT)
{
    evp_metrics_t *m = evp_metrics_new("t");
    evp_gauge_new(m, "bad-name", "X.");
}

Test(metrics_definition, buckets_not_increasing_abort, .signal = SIGABRT)
{
    evp_metrics_t *m = evp_metrics_new("t");
    static const double b[] = {1, 1};
    evp_histogram_new(m, "x", "X.", b, 2);
}

/* ---- Liveness ---- */

Test(metrics_liveness, the_loop_is_not_ok_before_it_beats_nor_when_it_is_too_old)
{
    evp_metrics_t *m = evp_metrics_new("t");
    char detail[128] = "";
    cr_assert_not(evp_metrics_loop_ok(m, 5, detail, sizeof detail));
    cr_assert_str_eq(detail, "main loop has not started");
    evp_metrics_beat(m);
    cr_assert(evp_metrics_loop_ok(m, 3600, detail, sizeof detail));
    cr_assert_not(evp_metrics_loop_ok(m, -1, detail, sizeof detail));
    cr_assert(strstr(detail, "main loop has not turned for") != NULL, "%s", detail);
    evp_metrics_destroy(&m);
}

/* ---- HTTP ---- */

typedef struct {
    bool healthy;      /* what the callback answers */
    atomic_int calls;  /* how often it was asked */
} health_t;

static bool s_health(void *arg, char *detail, size_t len)
{
    health_t *h = arg;
    atomic_fetch_add(&h->calls, 1);
    snprintf(detail, len, "%s", h->healthy ? "postgres: connected" : "postgres: connection lost");
    return h->healthy;
}

Test(metrics_http, serves_metrics_as_text_0_0_4)
{
    evp_metrics_t *m = s_sample_registry();
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    tk_http_t r = tk_http_request(port, "GET", "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.headers, "Content-Type: text/plain; version=0.0.4") != NULL, "%s", r.headers);
    cr_assert_str_eq(r.body, s_expected);
    tk_http_free(&r);
    evp_metrics_destroy(&m);
}

Test(metrics_http, healthz_is_200_with_ok_when_the_callback_says_healthy)
{
    evp_metrics_t *m = evp_metrics_new("t");
    health_t h = {.healthy = true};
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, s_health, &h, why, sizeof why), 0, "%s", why);
    tk_http_t r = tk_http_request(port, "GET", "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\npostgres: connected\n");
    tk_http_free(&r);
    h.healthy = false;
    r = tk_http_request(port, "GET", "/healthz");
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "postgres: connection lost\n");
    tk_http_free(&r);
    cr_assert_eq(atomic_load(&h.calls), 2);
    evp_metrics_destroy(&m);
}

/* True when a TCP connection to address:port is accepted. */
static bool s_connects(const char *address, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    cr_assert_eq(inet_pton(AF_INET, address, &a.sin_addr), 1);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* 127.0.0.2 is this host's loopback too, but not the address 127.0.0.1. */
Test(metrics_http, listens_on_127_0_0_1_only_unless_metrics_bind_says_otherwise)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cr_assert_str_eq(cfg.metrics_bind, "127.0.0.1");
    evp_metrics_t *m = evp_metrics_new("t");
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    cr_assert(s_connects("127.0.0.1", port));
    cr_assert_not(s_connects("127.0.0.2", port), "the default listens beyond 127.0.0.1");
    evp_metrics_destroy(&m);

    cr_assert_eq(evp_http_set_bind("0.0.0.0"), 0);
    m = evp_metrics_new("t");
    port = tk_free_port();
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    cr_assert(s_connects("127.0.0.2", port), "METRICS_BIND=0.0.0.0 does not listen on every interface");
    tk_http_t r = tk_http_get(port, "/healthz");
    cr_assert_eq(r.status, 200);
    tk_http_free(&r);
    evp_metrics_destroy(&m);

    cr_assert_eq(evp_http_set_bind("localhost"), -1, "a name is not an address");
    cr_assert_eq(evp_http_set_bind("127.0.0.2"), 0);
    m = evp_metrics_new("t");
    port = tk_free_port();
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    cr_assert(s_connects("127.0.0.2", port));
    cr_assert_not(s_connects("127.0.0.1", port), "METRICS_BIND=127.0.0.2 listens on 127.0.0.1");
    evp_metrics_destroy(&m);
}

Test(metrics_http, healthz_without_a_callback_is_ok)
{
    evp_metrics_t *m = evp_metrics_new("t");
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    tk_http_t r = tk_http_request(port, "GET", "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    tk_http_free(&r);
    evp_metrics_destroy(&m);
}

Test(metrics_http, other_paths_are_404_and_other_methods_405)
{
    evp_metrics_t *m = evp_metrics_new("t");
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    tk_http_t r = tk_http_request(port, "GET", "/");
    cr_assert_eq(r.status, 404);
    tk_http_free(&r);
    r = tk_http_request(port, "GET", "/metrics/x");
    cr_assert_eq(r.status, 404);
    tk_http_free(&r);
    r = tk_http_request(port, "POST", "/metrics");
    cr_assert_eq(r.status, 405);
    cr_assert(strstr(r.headers, "Allow: GET, HEAD") != NULL, "%s", r.headers);
    tk_http_free(&r);
    r = tk_http_request(port, "DELETE", "/healthz");
    cr_assert_eq(r.status, 405);
    tk_http_free(&r);
    evp_metrics_destroy(&m);
}

/* The listening socket's address in /proc/net/tcp: 0.0.0.0 is every interface. */
static bool s_listens_on_any(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return false;
    char line[512], want[32];
    snprintf(want, sizeof want, "00000000:%04X 00000000:0000 0A", port);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, want) != NULL;
    fclose(f);
    return found;
}

Test(metrics_http, with_metrics_bind_0_0_0_0_listens_on_every_interface)
{
    cr_assert_eq(evp_http_set_bind("0.0.0.0"), 0);
    evp_metrics_t *m = evp_metrics_new("t");
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    cr_assert(s_listens_on_any(port), "no listener on 0.0.0.0:%d", port);
    evp_metrics_destroy(&m);
    cr_assert_not(s_listens_on_any(port), "destroy stops the server");
}

Test(metrics_http, port_zero_starts_nothing)
{
    evp_metrics_t *m = evp_metrics_new("t");
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, 0, NULL, NULL, why, sizeof why), 0);
    cr_assert_str_eq(why, "");
    evp_metrics_destroy(&m);
}

Test(metrics_http, a_port_in_use_is_a_clear_error_naming_the_setting)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    int port = ntohs(a.sin_port);
    evp_metrics_t *m = evp_metrics_new("t");
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), -1);
    char want[128];
    snprintf(want, sizeof want, "METRICS_PORT %d: the port is already in use", port);
    cr_assert(strstr(why, want) == why, "%s", why);
    evp_metrics_destroy(&m);
    close(fd);
}

/* ---- Updates from two threads while scraping ---- */

#define UPDATES 200000

typedef struct {
    atomic_int done;             /* updaters finished */
    evp_counter_t *events;       /* +1 per update */
    evp_counter_t *by_parity;    /* +1 on series i % 2 */
    evp_gauge_t *level;          /* +1 per update */
    evp_gauge_t *seconds;        /* +0.5 per update */
    evp_histogram_t *values;     /* i % 4 per update */
} shared_t;

static void *s_updater(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < UPDATES; i++) {
        evp_counter_inc(s->events);
        evp_counter_add_at(s->by_parity, (size_t)(i % 2), 1);
        evp_gauge_add(s->level, 1);
        evp_gauge_add_double(s->seconds, 0.5);
        evp_histogram_observe(s->values, (double)(i % 4));
    }
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

/* Every scrape must be consistent in itself: cumulative buckets, +Inf equal
 * to _count; and counters never go back between scrapes. */
static void s_check_scrape(int port, double *last_events)
{
    tk_http_t r = tk_http_request(port, "GET", "/metrics");
    cr_assert_eq(r.status, 200);
    samples_t s;
    s_parse(r.body, &s);
    double events = s_value(&s, "evpipe_c_events_total");
    cr_assert_geq(events, *last_events);
    *last_events = events;
    double b0 = s_value(&s, "evpipe_c_values_bucket{le=\"0.5\"}");
    double b1 = s_value(&s, "evpipe_c_values_bucket{le=\"1.5\"}");
    double b2 = s_value(&s, "evpipe_c_values_bucket{le=\"2.5\"}");
    double inf = s_value(&s, "evpipe_c_values_bucket{le=\"+Inf\"}");
    cr_assert(b0 <= b1 && b1 <= b2 && b2 <= inf, "buckets not cumulative: %s", r.body);
    cr_assert_eq(inf, s_value(&s, "evpipe_c_values_count"));
    tk_http_free(&r);
}

Test(metrics_concurrency, two_updating_threads_give_exact_totals_while_scraped)
{
    evp_metrics_t *m = evp_metrics_new("c");
    static const char *const parity[] = {"even", "odd"};
    static const double b[] = {0.5, 1.5, 2.5};
    shared_t s = {
        .events = evp_counter_new(m, "events_total", "Updates."),
        .by_parity = evp_counter_new_labeled(m, "parity_total", "Updates by parity.", "parity", parity, 2),
        .level = evp_gauge_new(m, "level", "Level."),
        .seconds = evp_gauge_new_double(m, "seconds", "Seconds."),
        .values = evp_histogram_new(m, "values", "Values.", b, 3),
    };
    int port = tk_free_port();
    char why[256] = "";
    cr_assert_eq(evp_metrics_serve(m, port, NULL, NULL, why, sizeof why), 0, "%s", why);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, s_updater, &s);
    /* Scrape while they run (at most 1000 times). */
    double last = 0;
    int scrapes = 0;
    for (; scrapes < 1000 && atomic_load(&s.done) < 2; scrapes++)
        s_check_scrape(port, &last);
    cr_log_info("%d scrapes while updating, last saw %.0f events", scrapes, last);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    s_check_scrape(port, &last);

    tk_http_t r = tk_http_request(port, "GET", "/metrics");
    samples_t got;
    s_parse(r.body, &got);
    cr_assert_eq(s_value(&got, "evpipe_c_events_total"), 2.0 * UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_parity_total{parity=\"even\"}"), UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_parity_total{parity=\"odd\"}"), UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_level"), 2.0 * UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_seconds"), (double)UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_values_bucket{le=\"0.5\"}"), UPDATES / 2);
    cr_assert_eq(s_value(&got, "evpipe_c_values_bucket{le=\"1.5\"}"), UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_values_bucket{le=\"2.5\"}"), 3 * UPDATES / 2);
    cr_assert_eq(s_value(&got, "evpipe_c_values_count"), 2.0 * UPDATES);
    cr_assert_eq(s_value(&got, "evpipe_c_values_sum"), 3.0 * UPDATES); /* (0+1+2+3) * UPDATES/4 * 2 */
    tk_http_free(&r);
    cr_assert_eq(evp_counter_value(s.events), 2 * UPDATES);
    cr_assert_eq(evp_histogram_count(s.values), 2 * UPDATES);
    evp_metrics_destroy(&m);
}
