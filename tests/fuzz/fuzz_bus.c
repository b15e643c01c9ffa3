/* Fuzz target "bus": any bytes as a message body reaching the bus from a
 * publisher. The bus's own walk (services/bus/bus_scan.h), as the source
 * check reads it, must never admit a body in which the writer's decoder
 * finds an event or heartbeat under a source the walk did not see; the
 * tap's redaction must keep every other field and the map boundaries, and
 * leave no user_name or user_email as it was (a body where one is not text
 * does not reach taps). */
#include <stdbool.h>
#include <string.h>

#include "bus_redact.h"
#include "bus_scan.h"
#include "evpipe/wire.h"
#include "fuzz_check.h"
#include "fuzz_targets.h"

#define MAX_SOURCES 64

/* The sources the walk saw, and the source check's rule: every map has a
 * str "source", every "source" is a str. */
typedef struct {
    const uint8_t *src[MAX_SOURCES];
    size_t len[MAX_SOURCES];
    int n;
    bool has_source;
} sources_t;

static bool s_source(void *arg, int map, int which, const uint8_t *value, const uint8_t *value_end)
{
    (void)map;
    sources_t *s = arg;
    if (which < 0) {
        bool ok = s->has_source;
        s->has_source = false;
        return ok;
    }
    const uint8_t *v;
    size_t n;
    if (!bus_scan_str(value, value_end, &v, &n))
        return false;
    if (s->n < MAX_SOURCES) {
        s->src[s->n] = v;
        s->len[s->n++] = n;
    }
    s->has_source = true;
    return true;
}

/* The walk of the source check over [p, p+len); its maps, or -1. */
static int s_scan(const uint8_t *p, size_t len, sources_t *s)
{
    static const bus_scan_key_t keys[] = {BUS_SCAN_KEY("source")};
    memset(s, 0, sizeof *s);
    return bus_scan_body(p, len, keys, 1, s_source, s);
}

static bool s_seen(const sources_t *s, const char *src, size_t len)
{
    for (int i = 0; i < s->n; i++)
        if (s->len[i] == len && memcmp(s->src[i], src, len) == 0)
            return true;
    return s->n >= MAX_SOURCES; /* more than we kept: cannot tell */
}

/* The writer's walk: every event it takes comes from a map the check read
 * alone to the same source. */
static void s_events(ev_codec_t *codec, const uint8_t *data, size_t len, int maps)
{
    size_t offset = 0;
    int steps = 0;
    for (;;) {
        ev_event_t ev;
        const void *raw = NULL;
        size_t rawlen = 0;
        ev_error_t err = {0};
        ev_next_t next = ev_codec_next_event(codec, data, len, &offset, &ev, &raw, &rawlen, &err);
        if (next == EV_NEXT_END || next == EV_NEXT_BROKEN)
            break;
        steps++;
        if (next != EV_NEXT_EVENT)
            continue;
        sources_t one;
        FUZZ_CHECK(s_scan(raw, rawlen, &one) == 1, "the writer takes an event from bytes the check did not read as one map");
        FUZZ_CHECK(s_seen(&one, ev.source.ptr, ev.source.len), "the writer takes an event under a source the check did not see");
    }
    FUZZ_CHECK(steps <= maps, "the writer found %d maps where the check found %d", steps, maps);
}

static void s_heartbeat(ev_codec_t *codec, const uint8_t *data, size_t len, const sources_t *s)
{
    ev_heartbeat_t hb;
    ev_error_t err = {0};
    if (ev_codec_decode_heartbeat(codec, data, len, &hb, &err) == EV_OK)
        FUZZ_CHECK(s_seen(s, hb.source.ptr, hb.source.len), "a heartbeat under a source the check did not see");
}

static bool s_text_only(void *arg, int map, int which, const uint8_t *value, const uint8_t *value_end)
{
    (void)arg, (void)map;
    const uint8_t *v;
    size_t n;
    return which < 0 || bus_scan_str(value, value_end, &v, &n);
}

/* Whether a user_name or user_email of the body is not text (redaction
 * then keeps the body from taps). */
static bool s_not_text(const uint8_t *data, size_t len)
{
    static const bus_scan_key_t keys[] = {BUS_SCAN_KEY("user_name"), BUS_SCAN_KEY("user_email")};
    return bus_scan_body(data, len, keys, 2, s_text_only, NULL) < 0;
}

/* What the tap gets: the same maps, the same events but for the two fields;
 * nothing when a user_name or user_email is not text. */
static void s_redaction(ev_codec_t *a, ev_codec_t *b, const uint8_t *data, size_t len, int maps)
{
    static bus_redact_t *redact;
    if (!redact)
        redact = bus_redact_new("fuzz");
    FUZZ_CHECK(redact != NULL, "no redaction");
    size_t out_len;
    const uint8_t *out = bus_redact_body(redact, data, len, &out_len);
    if (!out) {
        FUZZ_CHECK(s_not_text(data, len), "a body the check reads, names and e-mails all text, cannot be redacted");
        return; /* it does not reach taps */
    }
    sources_t s;
    FUZZ_CHECK(s_scan(out, out_len, &s) == maps, "redaction changed the maps");
    size_t off_a = 0, off_b = 0;
    for (;;) {
        ev_event_t ea, eb;
        const void *raw;
        size_t rawlen;
        ev_error_t err = {0};
        ev_next_t na = ev_codec_next_event(a, data, len, &off_a, &ea, &raw, &rawlen, &err);
        ev_next_t nb = ev_codec_next_event(b, out, out_len, &off_b, &eb, &raw, &rawlen, &err);
        if (na == EV_NEXT_END || na == EV_NEXT_BROKEN)
            break;
        if (na != EV_NEXT_EVENT || nb != EV_NEXT_EVENT)
            continue;
        FUZZ_CHECK(eb.user_name.len == BUS_REDACT_TEXT_LEN && memcmp(eb.user_name.ptr, "redacted-", 9) == 0,
                   "a user_name reached the tap unredacted");
        FUZZ_CHECK(eb.user_email.len == BUS_REDACT_TEXT_LEN && memcmp(eb.user_email.ptr, "redacted-", 9) == 0,
                   "a user_email reached the tap unredacted");
        eb.user_name = ea.user_name;
        eb.user_email = ea.user_email;
        FUZZ_CHECK(ev_event_equal(&ea, &eb, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE),
                   "redaction changed another field");
    }
}

int fuzz_bus_run(const uint8_t *data, size_t len)
{
    static ev_codec_t *codec, *other;
    if (!codec) {
        codec = ev_codec_new();
        other = ev_codec_new();
    }
    sources_t s;
    int maps = s_scan(data, len, &s);
    if (maps < 0)
        return 0; /* the bus drops it: nothing reaches writers or taps */
    s_events(codec, data, len, maps);
    s_heartbeat(codec, data, len, &s);
    s_redaction(codec, other, data, len, maps);
    return 0;
}
