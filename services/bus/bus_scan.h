/* Walking a bus body (one or more events, msgpack arrays or maps, back to
 * back) without unpacking it: every value is skipped by its length, counts
 * and lengths are checked against the bytes left, nesting is bounded. The
 * source check (bus_auth) and the tap's redaction (bus_redact) read bodies
 * this way. */
#ifndef EVPIPE_BUS_SCAN_H
#define EVPIPE_BUS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "evpipe/event.h"

/* A key to look for: its name and length. */
typedef struct {
    const char *name;
    size_t len;
} bus_scan_key_t;
#define BUS_SCAN_KEY(literal) {literal, sizeof literal - 1}

/* Called for each top-level value of a map whose key is the str keys[which],
 * or of an array whose position is the field keys[which] (element 0 is the
 * version, element i the field ev_fields[i - 1]), with the bytes of the value
 * [value, value_end); then once more at the end of each event with which -1
 * (value NULL). map counts the events from 0. Returning false stops the
 * walk. */
typedef bool (*bus_scan_fn)(void *arg, int map, int which, const uint8_t *value, const uint8_t *value_end);

/* ---- The walk: inline, so each caller gets one specialized to its callback
 * (a call through a pointer per key doubled the cost). ---- */

/* Deeper nesting than this in an unknown key's value is refused. */
#define BUS_SCAN_MAX_DEPTH 16

static inline uint32_t bus_scan_be_(const uint8_t *p, int n)
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
static inline size_t bus_scan_head_(const uint8_t *p, const uint8_t *end, uint64_t *count)
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
    uint64_t n = bus_scan_be_(p + 1, lenbytes);
    size_t head = 1 + (size_t)lenbytes + (size_t)extra;
    if (kind == 0)
        return head + (size_t)n;
    *count = kind == 2 ? 2 * n : n;
    return head;
}

/* Skips one value; NULL when it runs past end or nests too deep. Counts are
 * checked against the bytes left (every value takes at least one byte). */
static inline const uint8_t *bus_scan_skip_(const uint8_t *p, const uint8_t *end, int depth)
{
    if (p >= end || depth > BUS_SCAN_MAX_DEPTH)
        return NULL;
    uint64_t count;
    size_t head = bus_scan_head_(p, end, &count);
    if (head == 0 || head > (size_t)(end - p))
        return NULL;
    p += head;
    if (count > (uint64_t)(end - p))
        return NULL;
    for (uint64_t i = 0; i < count && p; i++)
        p = bus_scan_skip_(p, end, depth + 1);
    return p;
}

/* Skips one value, scalars without a call; NULL as s_skip. */
static inline const uint8_t *bus_scan_next_(const uint8_t *p, const uint8_t *end)
{
    if (p >= end)
        return NULL;
    uint64_t count;
    size_t head = bus_scan_head_(p, end, &count);
    if (count == 0)
        return head && head <= (size_t)(end - p) ? p + head : NULL;
    return bus_scan_skip_(p, end, 1);
}

/* A str at p: its bytes in *s, *n; the end of the value, or NULL when p is no str. */
static inline const uint8_t *bus_scan_str_(const uint8_t *p, const uint8_t *end, const uint8_t **s, size_t *n)
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
        *n = bus_scan_be_(p + 1, lb);
    } else {
        return NULL;
    }
    if (*n > (size_t)(end - p) - head)
        return NULL;
    *s = p + head;
    return p + head + *n;
}

/* True when [value, end) is exactly one str: its bytes in *s, *n. */
static inline bool bus_scan_str(const uint8_t *value, const uint8_t *end, const uint8_t **s, size_t *n)
{
    return value < end && bus_scan_str_(value, end, s, n) == end;
}

/* Which of keys [k, k + klen) is, or -1. */
static inline int bus_scan_which_(const bus_scan_key_t *keys, int nkeys, const uint8_t *k, size_t klen)
{
    for (int i = 0; i < nkeys; i++)
        if (keys[i].len == klen && memcmp(keys[i].name, k, klen) == 0)
            return i;
    return -1;
}

/* Walks body, comparing each top-level key of a map with the nkeys names of
 * keys, and taking each array element at the position of one of those fields
 * (the only calls are for those, so the walk stays cheap). Returns the number
 * of events; -1 when the body is empty, holds something other than arrays and
 * maps, a value runs past the end, or fn returned false. */
static inline int bus_scan_body(const uint8_t *body, size_t len, const bus_scan_key_t *keys, int nkeys,
                                bus_scan_fn fn, void *arg)
{
    const uint8_t *p = body, *end = body + len;
    int maps = 0;
    if (len == 0)
        return -1;
    /* Which key each array position is, -1 for none. */
    int at[EV_FIELD_COUNT + 1];
    at[0] = bus_scan_which_(keys, nkeys, (const uint8_t *)"v", 1);
    for (int f = 0; f < EV_FIELD_COUNT; f++)
        at[f + 1] = bus_scan_which_(keys, nkeys, (const uint8_t *)ev_fields[f].name, ev_fields[f].name_len);
    while (p < end) {
        uint64_t count;
        uint8_t b = p[0];
        size_t head = bus_scan_head_(p, end, &count);
        bool is_map = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
        bool is_array = (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
        if (!(is_map || is_array) || head == 0 || head > (size_t)(end - p))
            return -1;
        p += head;
        if (count > (uint64_t)(end - p))
            return -1;
        for (uint64_t i = 0; is_array && i < count; i++) {
            const uint8_t *value = p;
            if (!(p = bus_scan_next_(p, end)))
                return -1;
            int which = i <= EV_FIELD_COUNT ? at[i] : -1;
            if (which >= 0 && !fn(arg, maps, which, value, p))
                return -1;
        }
        for (uint64_t i = 0; is_map && i < count / 2; i++) {
            const uint8_t *k = NULL;
            size_t klen = 0;
            const uint8_t *after = p < end ? bus_scan_str_(p, end, &k, &klen) : NULL;
            p = after ? after : bus_scan_next_(p, end);
            if (!p || p >= end)
                return -1;
            const uint8_t *value = p;
            if (!(p = bus_scan_next_(p, end)))
                return -1;
            int which = after ? bus_scan_which_(keys, nkeys, k, klen) : -1;
            if (which >= 0 && !fn(arg, maps, which, value, p))
                return -1;
        }
        if (!fn(arg, maps, -1, NULL, NULL))
            return -1;
        maps++;
    }
    return maps;
}

#endif
