/* The bus's source check (see bus_auth.h). The scan reads only what it must:
 * it walks each msgpack map's keys, compares the key "source", and skips
 * every other value by its length, without unpacking anything. */
#include "bus_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/curve.h"
#include "evpipe/log.h"

/* Deeper nesting than this in an unknown key's value is refused. */
#define MAX_DEPTH 16
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

static uint32_t s_be(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The header of the value at p: its total size for a scalar (*count = 0), or
 * its header size and element count for a map or array (*count: values to
 * skip after it: 2 per map entry). 0 when the byte is never used or the
 * header runs past end. A switch, so the compiler makes it a jump table. */
static size_t s_head(const uint8_t *p, const uint8_t *end, uint64_t *count)
{
    size_t left = (size_t)(end - p);
    uint8_t b = p[0];
    *count = 0;
    if (b <= 0x7f || b >= 0xe0)
        return 1;
    if (b <= 0x8f) {
        *count = 2u * (b & 0x0f);
        return 1;
    }
    if (b <= 0x9f) {
        *count = b & 0x0f;
        return 1;
    }
    if (b <= 0xbf)
        return 1 + (size_t)(b & 0x1f);
    int lenbytes = 0, extra = 0, kind = 0; /* kind: 0 data, 1 array, 2 map */
    switch (b) {
    case 0xc0: case 0xc2: case 0xc3: return 1;
    case 0xcc: case 0xd0: return 2;
    case 0xcd: case 0xd1: case 0xd4: return 3;
    case 0xd5: return 4;
    case 0xca: case 0xce: case 0xd2: return 5;
    case 0xd6: return 6;
    case 0xcb: case 0xcf: case 0xd3: return 9;
    case 0xd7: return 10;
    case 0xd8: return 18;
    case 0xc4: case 0xd9: lenbytes = 1; break;
    case 0xc5: case 0xda: lenbytes = 2; break;
    case 0xc6: case 0xdb: lenbytes = 4; break;
    case 0xc7: lenbytes = 1, extra = 1; break;
    case 0xc8: lenbytes = 2, extra = 1; break;
    case 0xc9: lenbytes = 4, extra = 1; break;
    case 0xdc: lenbytes = 2, kind = 1; break;
    case 0xdd: lenbytes = 4, kind = 1; break;
    case 0xde: lenbytes = 2, kind = 2; break;
    case 0xdf: lenbytes = 4, kind = 2; break;
    default: return 0; /* 0xc1: never used */
    }
    if (left < 1u + (size_t)lenbytes)
        return 0;
    uint64_t n = s_be(p + 1, lenbytes);
    size_t head = 1 + (size_t)lenbytes + (size_t)extra;
    if (kind == 0)
        return head + (size_t)n;
    *count = kind == 2 ? 2 * n : n;
    return head;
}

/* Skips one value; NULL when it runs past end or nests too deep. Counts are
 * checked against the bytes left (every value takes at least one byte). */
static const uint8_t *s_skip(const uint8_t *p, const uint8_t *end, int depth)
{
    if (p >= end || depth > MAX_DEPTH)
        return NULL;
    uint64_t count;
    size_t head = s_head(p, end, &count);
    if (head == 0 || head > (size_t)(end - p))
        return NULL;
    p += head;
    if (count > (uint64_t)(end - p))
        return NULL;
    for (uint64_t i = 0; i < count && p; i++)
        p = s_skip(p, end, depth + 1);
    return p;
}

/* Skips one value, scalars without a call; NULL as s_skip. */
static inline const uint8_t *s_next(const uint8_t *p, const uint8_t *end)
{
    uint64_t count;
    size_t head = s_head(p, end, &count);
    if (count == 0)
        return head && head <= (size_t)(end - p) ? p + head : NULL;
    return s_skip(p, end, 1);
}

/* A str at p: its bytes in *s, *n; the end of the value, or NULL when p is no str. */
static const uint8_t *s_str(const uint8_t *p, const uint8_t *end, const uint8_t **s, size_t *n)
{
    uint8_t b = p[0];
    size_t head;
    if (b >= 0xa0 && b <= 0xbf) {
        head = 1;
        *n = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
        int lb = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        if ((size_t)(end - p) < 1u + (size_t)lb)
            return NULL;
        head = 1 + (size_t)lb;
        *n = s_be(p + 1, lb);
    } else {
        return NULL;
    }
    if (*n > (size_t)(end - p) - head)
        return NULL;
    *s = p + head;
    return p + head + *n;
}

int bus_auth_scan(const uint8_t *body, size_t len, bool (*fn)(void *arg, const char *source, size_t len),
                  void *arg)
{
    const uint8_t *p = body, *end = body + len;
    int maps = 0;
    if (len == 0)
        return -1;
    while (p < end) {
        uint64_t count;
        uint8_t b = p[0];
        size_t head = s_head(p, end, &count);
        bool is_map = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
        if (!is_map || head == 0 || head > (size_t)(end - p))
            return -1;
        p += head;
        if (count > (uint64_t)(end - p))
            return -1;
        bool has_source = false;
        for (uint64_t i = 0; i < count / 2; i++) {
            const uint8_t *k;
            size_t klen;
            const uint8_t *after = p < end ? s_str(p, end, &k, &klen) : NULL;
            bool is_source = after && klen == strlen(SOURCE_KEY) && memcmp(k, SOURCE_KEY, klen) == 0;
            p = after ? after : s_next(p, end);
            if (!p || p >= end)
                return -1;
            if (is_source) {
                const uint8_t *v;
                size_t vlen;
                const uint8_t *next = s_str(p, end, &v, &vlen);
                if (!next || !fn(arg, (const char *)v, vlen))
                    return -1;
                has_source = true;
                p = next;
            } else if (!(p = s_next(p, end))) {
                return -1;
            }
        }
        if (!has_source)
            return -1;
        maps++;
    }
    return maps;
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
