/* The bus's source check (see bus_auth.h). It reads only what it must: the
 * value of each map's key "source" (bus_scan skips the rest by length). */
#include "bus_auth.h"
#include "bus_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/curve.h"
#include "evpipe/log.h"

#define SOURCE_KEY "source"

static const char *const s_reasons[] = {"foreign_source", "unreadable"};
enum { S_FOREIGN, S_UNREADABLE };

struct bus_auth_t {
    evp_counter_t *refused;    /* messages dropped, by reason */
    evp_log_limit_t log_limit; /* refusals logged, at most so many */
    /* The last source admitted and the patterns that admitted it: a body's
     * events share a source, so most checks are one memcmp. */
    char patterns[1024];
    char source[256];
    size_t source_len;
};

bus_auth_t *bus_auth_new(evp_metrics_t *m)
{
    bus_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->refused = evp_counter_new_labeled(m, "source_refused_total",
                                            "Messages dropped because a publisher's key may not publish their "
                                            "source (foreign_source) or their sources could not be read (unreadable).",
                                            "reason", s_reasons, 2);
    self->log_limit = (evp_log_limit_t){.burst = 10, .window_ms = 10000};
    self->source_len = (size_t)-1; /* nothing cached */
    return self;
}

void bus_auth_destroy(bus_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

uint64_t bus_auth_refused(const bus_auth_t *self)
{
    return evp_counter_value(self->refused);
}

/* ---- The scan ---- */

typedef struct {
    bool (*fn)(void *arg, const char *source, size_t len); /* given each source */
    void *arg;
    bool has_source; /* the current map has one */
} s_scan_t;

static bool s_entry(void *arg, int map, int which, const uint8_t *value, const uint8_t *value_end)
{
    (void)map;
    s_scan_t *s = arg;
    if (which < 0) { /* the map's end */
        bool ok = s->has_source;
        s->has_source = false;
        return ok;
    }
    const uint8_t *v;
    size_t vlen;
    if (!bus_scan_str(value, value_end, &v, &vlen) || !s->fn(s->arg, (const char *)v, vlen))
        return false;
    s->has_source = true;
    return true;
}

int bus_auth_scan(const uint8_t *body, size_t len, bool (*fn)(void *arg, const char *source, size_t len),
                  void *arg)
{
    static const bus_scan_key_t keys[] = {BUS_SCAN_KEY(SOURCE_KEY)};
    s_scan_t s = {.fn = fn, .arg = arg};
    return bus_scan_body(body, len, keys, 1, s_entry, &s);
}

/* ---- The check ---- */

typedef struct {
    bus_auth_t *self;     /* the cache */
    const char *patterns; /* the sender's */
    const char *refused;  /* the first source refused */
    size_t refused_len;
} s_check_t;

static bool s_admit(void *arg, const char *source, size_t len)
{
    s_check_t *c = arg;
    bus_auth_t *self = c->self;
    if (len == self->source_len && memcmp(source, self->source, len) == 0)
        return true;
    if (!evp_curve_source_allowed(c->patterns, source, len)) {
        c->refused = source;
        c->refused_len = len;
        return false;
    }
    if (len <= sizeof self->source) {
        memcpy(self->source, source, len);
        self->source_len = len;
    }
    return true;
}

bool bus_auth_allows(bus_auth_t *self, zmq_msg_t *topic, zmq_msg_t *body)
{
    const char *patterns = zmq_msg_gets(body, EVP_CURVE_PROP_SOURCES);
    if (!patterns)
        patterns = "";
    /* Another sender's patterns: the cached source says nothing about it. */
    if (strcmp(patterns, self->patterns) != 0) {
        snprintf(self->patterns, sizeof self->patterns, "%s", patterns);
        self->source_len = (size_t)-1;
    }
    s_check_t c = {.self = self, .patterns = patterns};
    if (bus_auth_scan(zmq_msg_data(body), zmq_msg_size(body), s_admit, &c) >= 0)
        return true;
    int reason = c.refused ? S_FOREIGN : S_UNREADABLE;
    evp_counter_add_at(self->refused, (size_t)reason, 1);
    uint64_t held = 0;
    if (evp_log_allow(&self->log_limit, &held)) {
        const char *user = zmq_msg_gets(body, "User-Id");
        char who[80], source[80], t[32];
        evp_log_text(who, sizeof who, user ? user : "-", user ? strlen(user) : 1);
        evp_log_text(source, sizeof source, c.refused ? c.refused : "-", c.refused ? c.refused_len : 1);
        evp_log_text(t, sizeof t, zmq_msg_data(topic), zmq_msg_size(topic));
        evp_warn(reason == S_FOREIGN ? "dropped a message under a source its key may not publish"
                                     : "dropped a message whose sources cannot be read",
                 "key=\"%s\" source=\"%s\" topic=\"%s\" bytes=%zu refusals_not_logged=%llu", who, source, t,
                 zmq_msg_size(body), (unsigned long long)held);
    }
    return false;
}
