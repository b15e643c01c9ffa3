/* Fuzz target "wire": any bytes as an event, heartbeat and repair body, and
 * as an event body of several events walked one by one. What decodes must
 * point into the message, survive re-encoding unchanged, and, once
 * validated, keep the limits and render and archive faithfully; the walk
 * must give back-to-back slices that decode alone to the same events. */
#include <stdbool.h>
#include <string.h>

#include "evpipe/wire.h"
#include "fuzz_check.h"
#include "fuzz_targets.h"

/* The input as a body of one event; true when it decodes. */
static bool s_event(ev_codec_t *codec, const uint8_t *data, size_t len)
{
    ev_event_t ev;
    ev_error_t err = {0};
    ev_reject_t rc = ev_codec_decode_event(codec, data, len, &ev, &err);
    if (rc != EV_OK) {
        fuzz_check_refusal(rc, &err);
        return false;
    }
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (ev_fields[i].kind != EV_KIND_STR)
            continue;
        const ev_str_t *s = (const ev_str_t *)((const char *)&ev + ev_fields[i].offset);
        FUZZ_CHECK(fuzz_within(s->ptr, s->len, data, len), "%s: text outside the message", ev_fields[i].name);
    }
    fuzz_check_json(&ev);

    /* Re-encoded and decoded again: the same event. */
    const void *out;
    size_t out_len;
    ev_codec_encode_event(codec, &ev, &out, &out_len);
    ev_event_t back;
    rc = ev_codec_decode_event(codec, out, out_len, &back, &err);
    FUZZ_CHECK(rc == EV_OK, "a re-encoded event is refused: %s", err.detail);
    FUZZ_CHECK(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE),
               "a re-encoded event decodes differently");

    rc = ev_event_validate(&ev, &err);
    if (rc != EV_OK) {
        fuzz_check_refusal(rc, &err);
        return true;
    }
    fuzz_check_valid_event(&ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY);
    fuzz_check_copy(&ev);
    /* A valid event from the bus can be archived and replayed from the archive. */
    fuzz_check_csv_round_trip(&ev, EV_CSV_ARCHIVE);
    return true;
}

/* The input as an event body of several events. Each step's slice starts
 * where the last ended and decodes alone as the step said (the same event,
 * or the same refusal); the walk ends at the last byte or at a broken value
 * that leaves the offset where it starts. True when the walk was exactly one
 * event, then the end: what a single-event decode accepts. */
static bool s_body(ev_codec_t *codec, const uint8_t *data, size_t len)
{
    size_t offset = 0, events = 0, steps = 0;
    for (;;) {
        size_t at = offset;
        ev_event_t ev;
        const void *raw = NULL;
        size_t rawlen = 0;
        ev_error_t err = {0};
        ev_next_t next = ev_codec_next_event(codec, data, len, &offset, &ev, &raw, &rawlen, &err);
        if (next == EV_NEXT_END) {
            FUZZ_CHECK(len > 0 && at == len, "the walk ended at byte %zu of %zu", at, len);
            return events == 1 && steps == 1;
        }
        if (next == EV_NEXT_BROKEN) {
            FUZZ_CHECK(offset == at, "a broken value moved the offset from %zu to %zu", at, offset);
            fuzz_check_refusal(err.code, &err);
            return false;
        }
        FUZZ_CHECK(next == EV_NEXT_EVENT || next == EV_NEXT_INVALID, "step %d", (int)next);
        FUZZ_CHECK(raw == data + at && rawlen > 0 && rawlen <= len - at && offset == at + rawlen,
                   "slice [%zu, +%zu) after byte %zu of %zu, offset %zu", (size_t)((const uint8_t *)raw - data),
                   rawlen, at, len, offset);
        steps++;
        ev_event_t alone;
        ev_error_t alone_err = {0};
        ev_reject_t rc = ev_codec_decode_event(codec, raw, rawlen, &alone, &alone_err);
        if (next == EV_NEXT_INVALID) {
            fuzz_check_refusal(err.code, &err);
            FUZZ_CHECK(rc == err.code, "a slice refused in the walk (%s) decodes alone as %s",
                       ev_reject_name(err.code), ev_reject_name(rc));
            continue;
        }
        events++;
        FUZZ_CHECK(rc == EV_OK, "a slice accepted in the walk is refused alone: %s", alone_err.detail);
        FUZZ_CHECK(ev_event_equal(&ev, &alone, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE),
                   "a slice decodes alone to another event");
        for (int i = 0; i < EV_FIELD_COUNT; i++) {
            if (ev_fields[i].kind != EV_KIND_STR)
                continue;
            const ev_str_t *s = (const ev_str_t *)((const char *)&ev + ev_fields[i].offset);
            FUZZ_CHECK(fuzz_within(s->ptr, s->len, raw, rawlen), "%s: text outside its event's slice",
                       ev_fields[i].name);
        }
    }
}

static void s_heartbeat(ev_codec_t *codec, const uint8_t *data, size_t len)
{
    ev_heartbeat_t hb;
    ev_error_t err = {0};
    ev_reject_t rc = ev_codec_decode_heartbeat(codec, data, len, &hb, &err);
    if (rc != EV_OK) {
        fuzz_check_refusal(rc, &err);
        return;
    }
    FUZZ_CHECK(fuzz_within(hb.source.ptr, hb.source.len, data, len), "source outside the message");
    FUZZ_CHECK(hb.partition >= 0 && hb.partition < EV_PARTITIONS_MAX, "partition %d", (int)hb.partition);
    FUZZ_CHECK(hb.seq >= 0, "seq %lld", (long long)hb.seq);
    const void *out;
    size_t out_len;
    ev_codec_encode_heartbeat(codec, &hb, &out, &out_len);
    ev_heartbeat_t back;
    rc = ev_codec_decode_heartbeat(codec, out, out_len, &back, &err);
    FUZZ_CHECK(rc == EV_OK, "a re-encoded heartbeat is refused: %s", err.detail);
    FUZZ_CHECK(back.source.len == hb.source.len &&
                   (hb.source.len == 0 || memcmp(back.source.ptr, hb.source.ptr, hb.source.len) == 0) &&
                   back.partition == hb.partition && back.seq == hb.seq && back.published_at == hb.published_at,
               "a re-encoded heartbeat decodes differently");
}

static void s_repair(ev_codec_t *codec, const uint8_t *data, size_t len)
{
    ev_repair_t r;
    ev_error_t err = {0};
    ev_reject_t rc = ev_codec_decode_repair(codec, data, len, &r, &err);
    if (rc != EV_OK) {
        fuzz_check_refusal(rc, &err);
        return;
    }
    FUZZ_CHECK(fuzz_within(r.source.ptr, r.source.len, data, len), "source outside the message");
    FUZZ_CHECK(r.partition >= 0 && r.partition < EV_PARTITIONS_MAX, "partition %d", (int)r.partition);
    FUZZ_CHECK(r.from >= 1 && r.from <= r.to, "range %lld..%lld", (long long)r.from, (long long)r.to);
    FUZZ_CHECK(r.sent >= 0, "sent %lld", (long long)r.sent);
    const void *out;
    size_t out_len;
    ev_codec_encode_repair(codec, &r, &out, &out_len);
    ev_repair_t back;
    rc = ev_codec_decode_repair(codec, out, out_len, &back, &err);
    FUZZ_CHECK(rc == EV_OK, "a re-encoded repair message is refused: %s", err.detail);
    FUZZ_CHECK(back.id == r.id && back.source.len == r.source.len &&
                   (r.source.len == 0 || memcmp(back.source.ptr, r.source.ptr, r.source.len) == 0) &&
                   back.partition == r.partition && back.from == r.from && back.to == r.to &&
                   back.sent == r.sent && back.found_source == r.found_source,
               "a re-encoded repair message decodes differently");
}

int fuzz_wire_run(const uint8_t *data, size_t len)
{
    /* One codec for all three, as a service reuses its codec message after message. */
    ev_codec_t *codec = ev_codec_new();
    FUZZ_CHECK(codec, "ev_codec_new failed");
    bool one = s_event(codec, data, len);
    bool walked_one = s_body(codec, data, len);
    FUZZ_CHECK(one == walked_one, "a single-event decode %s what the walk found to be %s",
               one ? "accepts" : "refuses", walked_one ? "one event" : "not one event");
    s_heartbeat(codec, data, len);
    s_repair(codec, data, len);
    ev_codec_destroy(&codec);
    FUZZ_CHECK(codec == NULL, "ev_codec_destroy left the pointer set");
    return 0;
}
