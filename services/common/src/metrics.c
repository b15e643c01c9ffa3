/* Metrics registry, Prometheus text rendering, and what /metrics and
 * /healthz answer (see metrics.h; the HTTP server is evpipe/http.h). Values are C11 atomics updated with relaxed
 * order; doubles live in 64-bit atomics as their bit patterns. */
#include "evpipe/metrics.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evpipe/http.h"
#include "evpipe/log.h"

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

/* What every metric has; the first member of each metric struct. */
typedef struct s_family_t {
    struct s_family_t *next; /* the next metric, in registration order */
    s_kind_t kind;           /* which struct this is */
    char *name;              /* full exported name: evpipe_<service>_<name> */
    char *help;              /* help text, as given */
} s_family_t;

struct evp_counter_t {
    s_family_t family;       /* must stay first */
    char *label;             /* label name, NULL when there is none */
    char **values;           /* label values (nseries), NULL without a label */
    size_t nseries;          /* 1 without a label */
    _Atomic uint64_t *cells; /* one count per series */
};

struct evp_gauge_t {
    s_family_t family;      /* must stay first */
    bool is_double;         /* bits holds a double (else an int64) */
    _Atomic uint64_t bits;  /* the value: int64 or double bit pattern */
};

struct evp_histogram_t {
    s_family_t family;        /* must stay first */
    double *bounds;           /* upper bounds, strictly increasing (nbounds) */
    size_t nbounds;           /* finite buckets; counts has one more (+Inf) */
    _Atomic uint64_t *counts; /* per bucket, not cumulative (nbounds + 1) */
    _Atomic uint64_t sum;     /* sum of values, as double bits */
};

struct evp_metrics_t {
    char *prefix;               /* "evpipe_<service>_" */
    pthread_mutex_t lock;       /* guards the list (registration, rendering) */
    s_family_t *head;           /* metrics in registration order */
    s_family_t **tail;          /* where the next one is linked */
    _Atomic int64_t beat_ns;    /* CLOCK_MONOTONIC of the last loop turn; 0: never */
    evp_http_t *http;           /* the /metrics and /healthz server, NULL when not serving */
    evp_health_fn health;       /* /healthz callback, may be NULL */
    void *health_arg;           /* its argument */
};

/* ---- Small helpers ---- */

static uint64_t s_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double s_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* A lock-free double addition on a bit-pattern atomic. */
static void s_add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, s_bits(s_double(old) + delta), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* Registration errors are programming errors: say which and stop. */
static _Noreturn void s_die(const char *name, const char *why)
{
    evp_error("invalid metric definition", "metric=%s error=\"%s\"", name ? name : "(null)", why);
    abort();
}

static void *s_alloc(size_t n, const char *name)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        s_die(name, "out of memory");
    return p;
}

static char *s_strdup(const char *s, const char *name)
{
    char *p = strdup(s);
    if (!p)
        s_die(name, "out of memory");
    return p;
}

/* [a-zA-Z_][a-zA-Z0-9_]* (Prometheus names without the colon, which is for rules). */
static bool s_valid_name(const char *s)
{
    if (!s || !*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Checks the name, fills the common part and links the metric (under the lock). */
static void s_register(evp_metrics_t *m, s_family_t *f, s_kind_t kind, const char *name, const char *help)
{
    if (!s_valid_name(name))
        s_die(name, "a metric name must match [a-zA-Z_][a-zA-Z0-9_]*");
    if (kind == S_COUNTER && !s_ends_with(name, "_total"))
        s_die(name, "a counter's name must end in _total");
    size_t len = strlen(m->prefix) + strlen(name) + 1;
    f->name = s_alloc(len, name);
    snprintf(f->name, len, "%s%s", m->prefix, name);
    f->help = s_strdup(help ? help : "", name);
    f->kind = kind;
    pthread_mutex_lock(&m->lock);
    for (s_family_t *o = m->head; o; o = o->next)
        if (strcmp(o->name, f->name) == 0) {
            pthread_mutex_unlock(&m->lock);
            s_die(name, "registered twice");
        }
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->lock);
}

/* ---- Registry ---- */

evp_metrics_t *evp_metrics_new(const char *service)
{
    if (service && *service && !s_valid_name(service))
        s_die(service, "a service name must match [a-zA-Z_][a-zA-Z0-9_]*");
    evp_metrics_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    size_t len = strlen("evpipe_") + (service ? strlen(service) + 1 : 0) + 1;
    self->prefix = malloc(len);
    if (!self->prefix) {
        free(self);
        return NULL;
    }
    snprintf(self->prefix, len, "evpipe_%s%s", service && *service ? service : "",
             service && *service ? "_" : "");
    pthread_mutex_init(&self->lock, NULL);
    self->tail = &self->head;
    atomic_init(&self->beat_ns, 0);
    return self;
}

static void s_family_free(s_family_t *f)
{
    switch (f->kind) {
    case S_COUNTER: {
        evp_counter_t *c = (evp_counter_t *)f;
        if (c->values)
            for (size_t i = 0; i < c->nseries; i++)
                free(c->values[i]);
        free(c->values);
        free(c->label);
        free((void *)c->cells);
        break;
    }
    case S_HISTOGRAM: {
        evp_histogram_t *h = (evp_histogram_t *)f;
        free(h->bounds);
        free((void *)h->counts);
        break;
    }
    case S_GAUGE:
        break;
    }
    free(f->name);
    free(f->help);
    free(f);
}

void evp_metrics_destroy(evp_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evp_metrics_t *self = *self_p;
    evp_http_destroy(&self->http); /* first: its thread reads the registry */
    for (s_family_t *f = self->head, *next; f; f = next) {
        next = f->next;
        s_family_free(f);
    }
    pthread_mutex_destroy(&self->lock);
    free(self->prefix);
    free(self);
    *self_p = NULL;
}

/* ---- Counters ---- */

evp_counter_t *evp_counter_new_labeled(evp_metrics_t *m, const char *name, const char *help, const char *label,
                                       const char *const *values, size_t nvalues)
{
    if (!m)
        return NULL;
    evp_counter_t *c = s_alloc(sizeof *c, name);
    if (label) {
        if (!s_valid_name(label) || strncmp(label, "__", 2) == 0)
            s_die(name, "a label name must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __");
        if (!values || nvalues == 0)
            s_die(name, "a labeled counter needs at least one label value");
        c->label = s_strdup(label, name);
        c->values = s_alloc(nvalues * sizeof *c->values, name);
        for (size_t i = 0; i < nvalues; i++) {
            if (!values[i])
                s_die(name, "a label value is NULL");
            for (size_t j = 0; j < i; j++)
                if (strcmp(values[i], values[j]) == 0)
                    s_die(name, "a label value appears twice");
            c->values[i] = s_strdup(values[i], name);
        }
        c->nseries = nvalues;
    } else {
        c->nseries = 1;
    }
    c->cells = s_alloc(c->nseries * sizeof *c->cells, name);
    for (size_t i = 0; i < c->nseries; i++)
        atomic_init(&c->cells[i], 0);
    s_register(m, &c->family, S_COUNTER, name, help);
    return c;
}

evp_counter_t *evp_counter_new(evp_metrics_t *m, const char *name, const char *help)
{
    return evp_counter_new_labeled(m, name, help, NULL, NULL, 0);
}

void evp_counter_add(evp_counter_t *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->cells[0], n, memory_order_relaxed);
}

void evp_counter_add_at(evp_counter_t *c, size_t index, uint64_t n)
{
    if (!c)
        return;
    assert(index < c->nseries);
    if (index < c->nseries)
        atomic_fetch_add_explicit(&c->cells[index], n, memory_order_relaxed);
}

int evp_counter_index(const evp_counter_t *c, const char *value)
{
    if (!c || !c->values || !value)
        return -1;
    for (size_t i = 0; i < c->nseries; i++)
        if (strcmp(c->values[i], value) == 0)
            return (int)i;
    return -1;
}

uint64_t evp_counter_value(const evp_counter_t *c)
{
    if (!c)
        return 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < c->nseries; i++)
        sum += atomic_load_explicit(&c->cells[i], memory_order_relaxed);
    return sum;
}

uint64_t evp_counter_value_at(const evp_counter_t *c, size_t index)
{
    if (!c || index >= c->nseries)
        return 0;
    return atomic_load_explicit(&c->cells[index], memory_order_relaxed);
}

/* ---- Gauges ---- */

static evp_gauge_t *s_gauge_new(evp_metrics_t *m, const char *name, const char *help, bool is_double)
{
    if (!m)
        return NULL;
    evp_gauge_t *g = s_alloc(sizeof *g, name);
    g->is_double = is_double;
    atomic_init(&g->bits, is_double ? s_bits(0.0) : 0);
    s_register(m, &g->family, S_GAUGE, name, help);
    return g;
}

evp_gauge_t *evp_gauge_new(evp_metrics_t *m, const char *name, const char *help)
{
    return s_gauge_new(m, name, help, false);
}

evp_gauge_t *evp_gauge_new_double(evp_metrics_t *m, const char *name, const char *help)
{
    return s_gauge_new(m, name, help, true);
}

/* The nearest int64 of v, saturating; NaN gives 0. */
static int64_t s_round(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)llround(v);
}

void evp_gauge_set(evp_gauge_t *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->bits, g->is_double ? s_bits((double)v) : (uint64_t)v, memory_order_relaxed);
}

void evp_gauge_add(evp_gauge_t *g, int64_t delta)
{
    if (!g)
        return;
    if (g->is_double)
        s_add_double(&g->bits, (double)delta);
    else
        atomic_fetch_add_explicit(&g->bits, (uint64_t)delta, memory_order_relaxed);
}

void evp_gauge_set_double(evp_gauge_t *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, g->is_double ? s_bits(v) : (uint64_t)s_round(v), memory_order_relaxed);
}

void evp_gauge_add_double(evp_gauge_t *g, double delta)
{
    if (!g)
        return;
    if (g->is_double)
        s_add_double(&g->bits, delta);
    else
        atomic_fetch_add_explicit(&g->bits, (uint64_t)s_round(delta), memory_order_relaxed);
}

int64_t evp_gauge_value(const evp_gauge_t *g)
{
    if (!g)
        return 0;
    uint64_t b = atomic_load_explicit(&g->bits, memory_order_relaxed);
    return g->is_double ? s_round(s_double(b)) : (int64_t)b;
}

double evp_gauge_value_double(const evp_gauge_t *g)
{
    if (!g)
        return 0;
    uint64_t b = atomic_load_explicit(&g->bits, memory_order_relaxed);
    return g->is_double ? s_double(b) : (double)(int64_t)b;
}

/* ---- Histograms ---- */

evp_histogram_t *evp_histogram_new(evp_metrics_t *m, const char *name, const char *help, const double *bounds,
                                   size_t nbounds)
{
    if (!m)
        return NULL;
    if (!bounds || nbounds == 0)
        s_die(name, "a histogram needs at least one bucket bound");
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]))
            s_die(name, "bucket bounds must be finite (+Inf is added)");
        if (i > 0 && !(bounds[i] > bounds[i - 1]))
            s_die(name, "bucket bounds must be strictly increasing");
    }
    evp_histogram_t *h = s_alloc(sizeof *h, name);
    h->bounds = s_alloc(nbounds * sizeof *h->bounds, name);
    memcpy(h->bounds, bounds, nbounds * sizeof *h->bounds);
    h->nbounds = nbounds;
    h->counts = s_alloc((nbounds + 1) * sizeof *h->counts, name);
    for (size_t i = 0; i <= nbounds; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum, s_bits(0.0));
    s_register(m, &h->family, S_HISTOGRAM, name, help);
    return h;
}

void evp_histogram_observe(evp_histogram_t *h, double v)
{
    if (!h || isnan(v))
        return;
    /* The first bound >= v (binary search); nbounds when none: +Inf. */
    size_t lo = 0, hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    s_add_double(&h->sum, v);
}

/* Reads the bucket counts into out (nbounds + 1); returns their total, which
 * is the count: buckets and count always agree, even mid-update. */
static uint64_t s_snapshot(const evp_histogram_t *h, uint64_t *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        out[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        total += out[i];
    }
    return total;
}

uint64_t evp_histogram_count(const evp_histogram_t *h)
{
    if (!h)
        return 0;
    uint64_t total = 0;
    for (size_t i = 0; i <= h->nbounds; i++)
        total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return total;
}

double evp_histogram_sum(const evp_histogram_t *h)
{
    return h ? s_double(atomic_load_explicit(&h->sum, memory_order_relaxed)) : 0;
}

double evp_histogram_quantile(const evp_histogram_t *h, double q)
{
    if (!h || isnan(q))
        return 0;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    uint64_t counts[h->nbounds + 1];
    uint64_t total = s_snapshot(h, counts);
    if (total == 0)
        return 0;
    double rank = q * (double)total;
    uint64_t below = 0; /* values in the buckets before b */
    size_t b = 0;
    /* The first non-empty bucket whose cumulative count reaches rank. */
    for (; b <= h->nbounds; b++) {
        if (counts[b] > 0 && (double)(below + counts[b]) >= rank)
            break;
        below += counts[b];
    }
    if (b >= h->nbounds) /* the +Inf bucket (or rounding past the end) */
        return h->bounds[h->nbounds - 1];
    double upper = h->bounds[b];
    double lower = b > 0 ? h->bounds[b - 1] : (upper > 0 ? 0 : upper);
    double within = (rank - (double)below) / (double)counts[b];
    if (within < 0)
        within = 0;
    return lower + (upper - lower) * within;
}

void evp_buckets_exponential(double *out, size_t n, double start, double factor)
{
    double v = start;
    for (size_t i = 0; i < n; i++, v *= factor)
        out[i] = v;
}

/* ---- Liveness ---- */

void evp_metrics_beat(evp_metrics_t *self)
{
    if (self)
        atomic_store_explicit(&self->beat_ns, zclock_usecs() * 1000, memory_order_relaxed);
}

bool evp_metrics_loop_ok(evp_metrics_t *self, double max_age_s, char *detail, size_t len)
{
    int64_t beat = self ? atomic_load_explicit(&self->beat_ns, memory_order_relaxed) : 0;
    if (beat == 0) {
        snprintf(detail, len, "main loop has not started");
        return false;
    }
    double age = (double)(zclock_usecs() * 1000 - beat) / 1e9;
    if (age > max_age_s) {
        snprintf(detail, len, "main loop has not turned for %.1f s", age);
        return false;
    }
    return true;
}

/* ---- Rendering (text exposition format 0.0.4) ---- */

/* A sample value: shortest text that reads back as the same double, or
 * +Inf, -Inf, NaN as Prometheus spells them. */
static void s_put_double(ev_buf_t *out, double v)
{
    if (isnan(v)) {
        ev_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        ev_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char text[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v)
            break;
    }
    ev_buf_puts(out, text);
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void s_put_escaped(ev_buf_t *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            ev_buf_puts(out, "\\\\");
        else if (*s == '\n')
            ev_buf_puts(out, "\\n");
        else if (*s == '"' && quote)
            ev_buf_puts(out, "\\\"");
        else
            ev_buf_putc(out, *s);
    }
}

static void s_put_header(ev_buf_t *out, const s_family_t *f, const char *type)
{
    ev_buf_printf(out, "# HELP %s ", f->name);
    s_put_escaped(out, f->help, false);
    ev_buf_printf(out, "\n# TYPE %s %s\n", f->name, type);
}

static void s_render_counter(ev_buf_t *out, const evp_counter_t *c)
{
    s_put_header(out, &c->family, "counter");
    for (size_t i = 0; i < c->nseries; i++) {
        ev_buf_puts(out, c->family.name);
        if (c->label) {
            ev_buf_printf(out, "{%s=\"", c->label);
            s_put_escaped(out, c->values[i], true);
            ev_buf_puts(out, "\"}");
        }
        ev_buf_printf(out, " %llu\n",
                      (unsigned long long)atomic_load_explicit(&c->cells[i], memory_order_relaxed));
    }
}

static void s_render_gauge(ev_buf_t *out, const evp_gauge_t *g)
{
    s_put_header(out, &g->family, "gauge");
    ev_buf_printf(out, "%s ", g->family.name);
    uint64_t b = atomic_load_explicit(&g->bits, memory_order_relaxed);
    if (g->is_double)
        s_put_double(out, s_double(b));
    else
        ev_buf_put_i64(out, (int64_t)b);
    ev_buf_putc(out, '\n');
}

static void s_render_histogram(ev_buf_t *out, const evp_histogram_t *h)
{
    s_put_header(out, &h->family, "histogram");
    uint64_t counts[h->nbounds + 1];
    uint64_t total = s_snapshot(h, counts);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h->nbounds; i++) {
        cumulative += counts[i];
        ev_buf_printf(out, "%s_bucket{le=\"", h->family.name);
        s_put_double(out, h->bounds[i]);
        ev_buf_printf(out, "\"} %llu\n", (unsigned long long)cumulative);
    }
    ev_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", h->family.name, (unsigned long long)total);
    ev_buf_printf(out, "%s_sum ", h->family.name);
    s_put_double(out, evp_histogram_sum(h));
    ev_buf_printf(out, "\n%s_count %llu\n", h->family.name, (unsigned long long)total);
}

void evp_metrics_render(evp_metrics_t *self, ev_buf_t *out)
{
    pthread_mutex_lock(&self->lock);
    for (const s_family_t *f = self->head; f; f = f->next) {
        switch (f->kind) {
        case S_COUNTER:
            s_render_counter(out, (const evp_counter_t *)f);
            break;
        case S_GAUGE:
            s_render_gauge(out, (const evp_gauge_t *)f);
            break;
        case S_HISTOGRAM:
            s_render_histogram(out, (const evp_histogram_t *)f);
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

/* ---- /metrics and /healthz (served by evpipe/http.h) ---- */

static unsigned s_handle(void *arg, const char *path, ev_buf_t *body, const char **content_type)
{
    evp_metrics_t *self = arg;
    if (strcmp(path, "/metrics") == 0) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        evp_metrics_render(self, body);
        return 200;
    }
    if (strcmp(path, "/healthz") != 0)
        return 0;
    char detail[512] = "";
    bool ok = self->health ? self->health(self->health_arg, detail, sizeof detail) : true;
    if (ok)
        ev_buf_puts(body, "ok\n");
    ev_buf_puts(body, detail[0] || ok ? detail : "unhealthy");
    if (body->len > 0 && body->data[body->len - 1] != '\n')
        ev_buf_putc(body, '\n');
    return ok ? 200 : 503;
}

int evp_metrics_serve(evp_metrics_t *self, int port, evp_health_fn fn, void *arg, char *why, size_t whylen)
{
    if (self->http) {
        snprintf(why, whylen, "METRICS_PORT %d: the HTTP server is already running", port);
        return -1;
    }
    self->health = fn;
    self->health_arg = arg;
    if (port == 0)
        return 0;
    self->http = evp_http_new(port, "METRICS_PORT", s_handle, self, why, whylen);
    if (!self->http)
        return -1;
    evp_info("metrics listening", "address=%s port=%d paths=/metrics,/healthz", evp_http_bind(), port);
    return 0;
}
