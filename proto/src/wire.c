/* The bus protocol: topics and msgpack bodies (see docs/protocol.md). */
#include "evpipe/wire.h"

#include "be.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ev_codec_t {
    ev_form_t form;      /* the form events are encoded in */
    msgpack_sbuffer out; /* what the last encode wrote */
    msgpack_packer pk;   /* packs into out */
    msgpack_zone zone;   /* decode scratch, cleared before each decode */
};

/* ---- Packing helpers ---- */

static void s_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, key, n);
}

static void s_str(msgpack_packer *pk, ev_str_t s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.ptr ? s.ptr : "", s.len);
}

static void s_begin(ev_codec_t *self, size_t entries)
{
    msgpack_sbuffer_clear(&self->out);
    msgpack_pack_map(&self->pk, entries + 1);
    s_key(&self->pk, "v");
    msgpack_pack_int(&self->pk, EV_PROTOCOL_VERSION);
}

static void s_done(ev_codec_t *self, const void **data, size_t *len)
{
    *data = self->out.data;
    *len = self->out.size;
}

ev_codec_t *ev_codec_new(void)
{
    ev_codec_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    msgpack_sbuffer_init(&self->out);
    msgpack_packer_init(&self->pk, &self->out, msgpack_sbuffer_write);
    if (!msgpack_zone_init(&self->zone, 2048)) {
        free(self);
        return NULL;
    }
    self->form = EV_FORM_ARRAY;
    return self;
}

void ev_codec_set_form(ev_codec_t *self, ev_form_t form)
{
    self->form = form;
}

ev_form_t ev_form_named(const char *name)
{
    return strcmp(name, "map") == 0 ? EV_FORM_MAP : EV_FORM_ARRAY;
}

void ev_codec_destroy(ev_codec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ev_codec_t *self = *self_p;
    msgpack_sbuffer_destroy(&self->out);
    msgpack_zone_destroy(&self->zone);
    free(self);
    *self_p = NULL;
}

/* ---- Topics ---- */

size_t ev_topic_format(char buf[EV_TOPIC_MAX], uint32_t partition, ev_msg_kind_t kind)
{
    return (size_t)snprintf(buf, EV_TOPIC_MAX, "p%04u/%s", partition % 10000,
                            kind == EV_MSG_HEARTBEAT ? "hb" : "ev");
}

size_t ev_topic_prefix(char buf[EV_TOPIC_MAX], uint32_t partition)
{
    return (size_t)snprintf(buf, EV_TOPIC_MAX, "p%04u/", partition % 10000);
}

bool ev_topic_parse(const void *topic, size_t len, uint32_t *partition, ev_msg_kind_t *kind)
{
    const char *t = topic;
    if (len != 8 || t[0] != 'p' || t[5] != '/')
        return false;
    uint32_t p = 0;
    for (int i = 1; i <= 4; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        p = p * 10 + (uint32_t)(t[i] - '0');
    }
    if (p >= EV_PARTITIONS_MAX)
        return false;
    if (memcmp(t + 6, "ev", 2) == 0)
        *kind = EV_MSG_EVENT;
    else if (memcmp(t + 6, "hb", 2) == 0)
        *kind = EV_MSG_HEARTBEAT;
    else
        return false;
    *partition = p;
    return true;
}

/* An integer in its shortest msgpack form, chosen as msgpack-c's
 * msgpack_pack_int64 chooses it (the bytes must not change). */
static unsigned char *s_put_int(unsigned char *p, int64_t d)
{
    if (d < -(1LL << 5)) {
        if (d < -(1LL << 15)) {
            if (d < -(1LL << 31)) {
                *p++ = 0xd3;
                return ev_be64_put(p, (uint64_t)d);
            }
            *p++ = 0xd2;
            return ev_be32_put(p, (uint32_t)d);
        }
        if (d < -(1LL << 7)) {
            *p++ = 0xd1;
            return ev_be16_put(p, (uint16_t)d);
        }
        *p++ = 0xd0;
        *p++ = (unsigned char)d;
        return p;
    }
    if (d < (1LL << 7)) {
        *p++ = (unsigned char)d;
        return p;
    }
    if (d < (1LL << 16)) {
        if (d < (1LL << 8)) {
            *p++ = 0xcc;
            *p++ = (unsigned char)d;
            return p;
        }
        *p++ = 0xcd;
        return ev_be16_put(p, (uint16_t)d);
    }
    if (d < (1LL << 32)) {
        *p++ = 0xce;
        return ev_be32_put(p, (uint32_t)d);
    }
    *p++ = 0xcf;
    return ev_be64_put(p, (uint64_t)d);
}

/* A string's header (fixstr, str8, str16, str32, as msgpack-c) and bytes. */
static unsigned char *s_put_str(unsigned char *p, ev_str_t s)
{
    size_t n = s.len;
    if (n < 32) {
        *p++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *p++ = 0xd9;
        *p++ = (unsigned char)n;
    } else if (n < 65536) {
        *p++ = 0xda;
        p = ev_be16_put(p, (uint16_t)n);
    } else {
        *p++ = 0xdb;
        p = ev_be32_put(p, (uint32_t)n);
    }
    if (n)
        memcpy(p, s.ptr, n);
    return p + n;
}

/* An event is written in one layout of each form, which s_decode_event_fast
 * reads back: an array (a fixarray of the version and each field's value in
 * field order) or a map (a fixmap, "v" first, then each field's key as a
 * fixstr in field order, each followed by its value); each value in its
 * shortest form, all as msgpack-c packs them (a test compares the bytes). */
#define EV_FIELD(name, kind, max, sql, where) _Static_assert(sizeof #name - 1 < 32, #name ": name too long");
#include "evpipe/event_fields.def"
#undef EV_FIELD
_Static_assert(EV_FIELD_COUNT + 1 <= 15, "the event (its fields and v) is a fixmap or fixarray");
_Static_assert(EV_PROTOCOL_VERSION <= 0x7f, "the version is a positive fixint");

/* Writes the event straight into out, made from the field list: its size is
 * bounded beforehand (a string's header takes at most 5 bytes, an integer at
 * most 9), so one reservation serves the whole event. Aborts when memory
 * runs out, as msgpack-c's sbuffer does. */
void ev_codec_encode_event(ev_codec_t *self, const ev_event_t *ev, const void **data, size_t *len)
{
    const bool map = self->form == EV_FORM_MAP;
    size_t need = 4;
#define S_NEED_I32(name) 9
#define S_NEED_I64(name) 9
#define S_NEED_PRICE(name) 9
#define S_NEED_TIME(name) 9
#define S_NEED_STR(name) (5 + (size_t)ev->name.len)
#define EV_FIELD(name, kind, max, sql, where) need += (map ? sizeof #name : 0) + S_NEED_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
#undef S_NEED_I32
#undef S_NEED_I64
#undef S_NEED_PRICE
#undef S_NEED_TIME
#undef S_NEED_STR
    msgpack_sbuffer *out = &self->out;
    if (out->alloc < need) {
        char *grown = realloc(out->data, need);
        if (!grown)
            abort();
        out->data = grown;
        out->alloc = need;
    }
    unsigned char *start = (unsigned char *)out->data, *p = start;
    if (map) {
        *p++ = (unsigned char)(0x80 | (EV_FIELD_COUNT + 1));
        *p++ = 0xa1;
        *p++ = 'v';
    } else {
        *p++ = (unsigned char)(0x90 | (EV_FIELD_COUNT + 1));
    }
    *p++ = EV_PROTOCOL_VERSION;
#define S_PUT_I32(name) p = s_put_int(p, ev->name)
#define S_PUT_I64(name) p = s_put_int(p, ev->name)
#define S_PUT_PRICE(name) p = s_put_int(p, ev->name)
#define S_PUT_TIME(name) p = s_put_int(p, ev->name)
#define S_PUT_STR(name) p = s_put_str(p, ev->name)
#define EV_FIELD(name, kind, max, sql, where)                                                                   \
    if (map) {                                                                                                  \
        *p++ = (unsigned char)(0xa0 | (sizeof #name - 1));                                                      \
        memcpy(p, #name, sizeof #name - 1);                                                                     \
        p += sizeof #name - 1;                                                                                  \
    }                                                                                                           \
    S_PUT_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
#undef S_PUT_I32
#undef S_PUT_I64
#undef S_PUT_PRICE
#undef S_PUT_TIME
#undef S_PUT_STR
    out->size = (size_t)(p - start);
    *data = out->data;
    *len = out->size;
}

/* ---- Unpacking helpers ---- */

/* The size in bytes of the first msgpack value in data: walks it without
 * allocating and checks that every length and element count fits in the len
 * bytes that are there; 0 when one does not (or a byte msgpack never uses
 * comes). msgpack's unpacker allocates a container's elements from the count
 * in its header, so five bytes claiming a map of 4 billion entries would
 * otherwise ask for hundreds of GiB before finding the data missing. */
static size_t s_value_size(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1; /* values still to read; each takes at least one byte */
    while (pending) {
        if (pos >= len || pending > len - pos)
            return 0;
        unsigned c = p[pos++];
        pending--;
        uint64_t skip = 0, items = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        } else if (c <= 0x8f) {
            items = 2 * (uint64_t)(c & 0x0f);
        } else if (c <= 0x9f) {
            items = c & 0x0f;
        } else if (c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            /* Fixed-size bodies, or a 1/2/4-byte big-endian length. */
            static const unsigned char fixed[] = {
                [0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2, [0xce - 0xc4] = 4,
                [0xcf - 0xc4] = 8, [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2, [0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8,
                [0xd4 - 0xc4] = 2, [0xd5 - 0xc4] = 3, [0xd6 - 0xc4] = 5, [0xd7 - 0xc4] = 9, [0xd8 - 0xc4] = 17,
            };
            int nlen = 0;
            uint64_t extra = 0;
            switch (c) {
            case 0xc4: case 0xd9: nlen = 1; break;       /* bin8, str8 */
            case 0xc5: case 0xda: nlen = 2; break;       /* bin16, str16 */
            case 0xc6: case 0xdb: nlen = 4; break;       /* bin32, str32 */
            case 0xc7: nlen = 1, extra = 1; break;       /* ext8: length, then type */
            case 0xc8: nlen = 2, extra = 1; break;
            case 0xc9: nlen = 4, extra = 1; break;
            case 0xdc: case 0xde: nlen = 2; break;       /* array16, map16 */
            case 0xdd: case 0xdf: nlen = 4; break;       /* array32, map32 */
            default:
                if (c == 0xc1 || c > 0xd8)
                    return 0; /* never used */
                skip = fixed[c - 0xc4];
            }
            if (nlen) {
                if (len - pos < (size_t)nlen)
                    return 0;
                uint64_t n = 0;
                for (int i = 0; i < nlen; i++)
                    n = n << 8 | p[pos++];
                if (c == 0xdc || c == 0xdd)
                    items = n;
                else if (c == 0xde || c == 0xdf)
                    items = 2 * n;
                else
                    skip = n + extra;
            }
        }
        if (skip > len - pos)
            return 0;
        pos += (size_t)skip;
        pending += items;
    }
    return pos;
}

/* Unpacks the map of exactly len bytes, whose sizes s_value_size has
 * checked; checks the protocol version. */
static ev_reject_t s_unpack_sized(ev_codec_t *self, const void *data, size_t len, msgpack_object *obj,
                                  ev_error_t *err)
{
    msgpack_zone_clear(&self->zone);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(data, len, &off, &self->zone, obj);
    if (r != MSGPACK_UNPACK_SUCCESS)
        return ev_error_set(err, EV_REJECT_DECODE, "body: not one msgpack value (%zu bytes, code %d)", len,
                            (int)r);
    if (obj->type != MSGPACK_OBJECT_MAP)
        return ev_error_set(err, EV_REJECT_DECODE, "body: a msgpack map was expected (type %d)", (int)obj->type);
    bool has_v = false;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object_kv *kv = &obj->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 1 && kv->key.via.str.ptr[0] == 'v') {
            if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return ev_error_set(err, EV_REJECT_DECODE,
                                    "v: the protocol version is not a positive integer (msgpack type %d)",
                                    (int)kv->val.type);
            if (kv->val.via.u64 != EV_PROTOCOL_VERSION)
                return ev_error_set(err, EV_REJECT_DECODE, "v: protocol version %llu is not %d",
                                    (unsigned long long)kv->val.via.u64, EV_PROTOCOL_VERSION);
            has_v = true;
        }
    }
    if (!has_v)
        return ev_error_set(err, EV_REJECT_DECODE, "v: the protocol version is missing");
    return EV_OK;
}

/* Unpacks data as one map and nothing after it; checks the protocol version. */
static ev_reject_t s_unpack_map(ev_codec_t *self, const void *data, size_t len, msgpack_object *obj,
                                ev_error_t *err)
{
    size_t size = s_value_size(data, len);
    if (!size)
        return ev_error_set(err, EV_REJECT_DECODE, "body: truncated, or a length beyond its %zu bytes", len);
    if (size != len)
        return ev_error_set(err, EV_REJECT_DECODE, "body: %zu bytes after its msgpack value of %zu", len - size,
                            size);
    return s_unpack_sized(self, data, len, obj, err);
}

static bool s_key_is(const msgpack_object *key, const char *name)
{
    size_t n = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == n && memcmp(key->via.str.ptr, name, n) == 0;
}

static ev_reject_t s_get_str(const msgpack_object *v, ev_str_t *out, const char *name, ev_error_t *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return ev_error_set(err, EV_REJECT_DECODE, "%s: a string was expected (msgpack type %d)", name,
                            (int)v->type);
    out->ptr = v->via.str.ptr;
    out->len = v->via.str.size;
    return EV_OK;
}

/* ---- Events: decoded in one pass ----
 *
 * An event map is read in place, once: each key and value where it lies,
 * integers and text straight into the event (text points into the body),
 * without the msgpack_object tree of the other messages. Values of keys an
 * event does not have are stepped over with s_value_size. What is refused,
 * and with which message, is what the tree-walking decoder refused: the
 * protocol version first, then the first bad field in map order, then the
 * missing ones. */

/* One msgpack value's head, as msgpack_unpack would classify it. */
typedef struct {
    int type;        /* MSGPACK_OBJECT_* */
    uint64_t u;      /* POSITIVE_INTEGER */
    int64_t i;       /* NEGATIVE_INTEGER */
    const char *ptr; /* STR: its bytes */
    uint32_t size;   /* STR: its length; MAP: its entries; ARRAY: its elements */
} s_head_t;

/* The integer at p (any msgpack integer form, p < end) as msgpack-c
 * classifies it: a negative one in *i (*neg true), else in *u; *next past
 * it. False when p holds no integer or its bytes are cut short. */
static inline bool s_int_at(const unsigned char *p, const unsigned char *end, const unsigned char **next, bool *neg,
                            uint64_t *u, int64_t *i)
{
    unsigned c = *p++;
    if (c <= 0x7f) {
        *neg = false, *u = c;
    } else if (c >= 0xe0) {
        *neg = true, *i = (int8_t)c;
    } else if (c >= 0xcc && c <= 0xd3) {
        int n = 1 << ((c - 0xcc) & 3);
        if (end - p < n)
            return false;
        uint64_t raw = ev_be_get(p, n);
        p += n;
        int64_t v = n == 1 ? (int8_t)raw : n == 2 ? (int16_t)raw : n == 4 ? (int32_t)raw : (int64_t)raw;
        if (c <= 0xcf || v >= 0)
            *neg = false, *u = c <= 0xcf ? raw : (uint64_t)v;
        else
            *neg = true, *i = v;
    } else {
        return false;
    }
    *next = p;
    return true;
}

/* The string at p (fixstr, str8, str16 or str32, p < end): its bytes and
 * length, *next past it. False when p holds no string or it is cut short. */
static inline bool s_str_at(const unsigned char *p, const unsigned char *end, const unsigned char **next,
                            const char **ptr, uint32_t *size)
{
    unsigned c = *p++;
    uint64_t n;
    if (c >= 0xa0 && c <= 0xbf) {
        n = c & 0x1f;
    } else if (c >= 0xd9 && c <= 0xdb) {
        int w = 1 << (c - 0xd9);
        if (end - p < w)
            return false;
        n = ev_be_get(p, w);
        p += w;
    } else {
        return false;
    }
    if (n > (uint64_t)(end - p))
        return false;
    *ptr = (const char *)p, *size = (uint32_t)n;
    *next = p + n;
    return true;
}

/* Reads the value at *pos: its head into h, and moves *pos past it (past a
 * map's or an array's head only when head_only and the value is one). False
 * when it is truncated or malformed. */
static bool s_read(const unsigned char *p, size_t len, size_t *pos, bool head_only, s_head_t *h)
{
    size_t at = *pos;
    if (at >= len)
        return false;
    *h = (s_head_t){.type = -1}; /* every member set: the callers read only those of the type */
    unsigned c = p[at];
    size_t left = len - at - 1;
    const unsigned char *q = p + at + 1;
    const unsigned char *next;
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)) {
        bool neg;
        if (!s_int_at(p + at, p + len, &next, &neg, &h->u, &h->i))
            return false;
        h->type = neg ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        *pos = (size_t)(next - p);
        return true;
    } else if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)) {
        if (!s_str_at(p + at, p + len, &next, &h->ptr, &h->size))
            return false;
        h->type = MSGPACK_OBJECT_STR;
        *pos = (size_t)(next - p);
        return true;
    } else if (head_only && ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf))) {
        bool map = c <= 0x8f || c >= 0xde;
        uint64_t entries = c & 0x0f;
        int n = 0;
        if (c >= 0xdc) {
            n = c == 0xdc || c == 0xde ? 2 : 4;
            if (left < (size_t)n)
                return false;
            entries = ev_be_get(q, n);
        }
        if (entries > left - (size_t)n)
            return false; /* each entry or element takes a byte at least */
        h->type = map ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY, h->size = (uint32_t)entries;
        *pos = at + 1 + (size_t)n;
        return true;
    }
    /* Anything else is only stepped over; its type is named in refusals. */
    size_t size = s_value_size(p + at, len - at);
    if (!size)
        return false;
    if (c == 0xc0)
        h->type = MSGPACK_OBJECT_NIL;
    else if (c == 0xc2 || c == 0xc3)
        h->type = MSGPACK_OBJECT_BOOLEAN;
    else if (c >= 0xc4 && c <= 0xc6)
        h->type = MSGPACK_OBJECT_BIN;
    else if (c == 0xca)
        h->type = MSGPACK_OBJECT_FLOAT32;
    else if (c == 0xcb)
        h->type = MSGPACK_OBJECT_FLOAT64;
    else if ((c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd)
        h->type = MSGPACK_OBJECT_ARRAY;
    else if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf)
        h->type = MSGPACK_OBJECT_MAP;
    else
        h->type = MSGPACK_OBJECT_EXT;
    *pos = at + size;
    return true;
}

/* An integer within [min, max], or the refusal naming the field. */
static ev_reject_t s_head_int(const s_head_t *h, int64_t min, int64_t max, int64_t *out, const char *name,
                              ev_error_t *err)
{
    int64_t x;
    if (h->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (h->u > (uint64_t)INT64_MAX)
            return ev_error_set(err, EV_REJECT_NUMBER, "%s: integer out of range", name);
        x = (int64_t)h->u;
    } else if (h->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        x = h->i;
    } else {
        return ev_error_set(err, EV_REJECT_DECODE, "%s: an integer was expected (msgpack type %d)", name, h->type);
    }
    if (x < min || x > max)
        return ev_error_set(err, EV_REJECT_NUMBER, "%s: %lld is out of range", name, (long long)x);
    *out = x;
    return EV_OK;
}

/* The same for a value of an unpacked message (heartbeats, repair messages). */
static ev_reject_t s_get_int(const msgpack_object *v, int64_t min, int64_t max, int64_t *out, const char *name,
                             ev_error_t *err)
{
    s_head_t h = {.type = (int)v->type};
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        h.u = v->via.u64;
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        h.i = v->via.i64;
    return s_head_int(&h, min, max, out, name, err);
}

/* One field's value into the event. */
static ev_reject_t s_head_field(const s_head_t *h, int idx, ev_event_t *ev, ev_error_t *err)
{
    const ev_field_t *f = &ev_fields[idx];
    char *p = (char *)ev + f->offset;
    int64_t x = 0; /* read only when s_head_int set it (rc EV_OK); 0 for -Wmaybe-uninitialized */
    ev_reject_t rc = EV_OK;
    switch (f->kind) {
    case EV_KIND_I32:
        if (!(rc = s_head_int(h, INT32_MIN, INT32_MAX, &x, f->name, err)))
            *(int32_t *)p = (int32_t)x;
        break;
    case EV_KIND_I64:
    case EV_KIND_PRICE:
    case EV_KIND_TIME:
        rc = s_head_int(h, INT64_MIN, INT64_MAX, (int64_t *)p, f->name, err);
        break;
    case EV_KIND_STR:
        if (h->type != MSGPACK_OBJECT_STR)
            return ev_error_set(err, EV_REJECT_DECODE, "%s: a string was expected (msgpack type %d)", f->name,
                                h->type);
        ((ev_str_t *)p)->ptr = h->ptr;
        ((ev_str_t *)p)->len = h->size;
        break;
    }
    return rc;
}

/* ---- Events in the layouts our encoders write ----
 *
 * Nearly every event on the bus comes from ev_codec_encode_event: an array's
 * head and the version, then each field's value in field order; or a map's
 * head and "v" first, then each field's key as a fixstr, in field order, each
 * followed by its value; each value in one of the integer or string forms.
 * Those layouts are checked and read here in one straight pass, made from the
 * field list, with each key compared at a length known when compiling. Any
 * other byte (another order, a key as str8, an array head of another form, a
 * value out of range or of another type, a key or an element more or less)
 * returns false, and the general loops below decode the event from the
 * start: the fast path accepts only events those loops accept, and reads
 * them to the same event. */

/* An integer in any msgpack integer form, within int64. */
static inline bool s_fast_int(const unsigned char **at, const unsigned char *end, int64_t *out)
{
    bool neg;
    uint64_t u;
    int64_t i;
    if (*at >= end || !s_int_at(*at, end, at, &neg, &u, &i) || (!neg && u > (uint64_t)INT64_MAX))
        return false;
    *out = neg ? i : (int64_t)u;
    return true;
}

/* A string in any msgpack string form. */
static inline bool s_fast_str(const unsigned char **at, const unsigned char *end, ev_str_t *out)
{
    return *at < end && s_str_at(*at, end, at, &out->ptr, &out->len);
}

/* Whether a's first n bytes are b's; inlined with n known when compiling,
 * it is a few word compares (a libc memcmp call costs more than the key). */
__attribute__((always_inline)) static inline bool s_same(const unsigned char *a, const char *b, size_t n)
{
    uint64_t x, y;
    for (; n >= 8; n -= 8, a += 8, b += 8) {
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        if (x != y)
            return false;
    }
    if (n >= 4) {
        uint32_t u, v;
        memcpy(&u, a, 4), memcpy(&v, b, 4);
        if (u != v)
            return false;
        n -= 4, a += 4, b += 4;
    }
    for (; n; n--)
        if (*a++ != (unsigned char)*b++)
            return false;
    return true;
}

/* Whether *at starts with the fixstr key k (n bytes, no NUL), n known when
 * compiling; moves past it. */
#define S_FAST_KEY(k, n)                                                                                        \
    do {                                                                                                        \
        if ((size_t)(end - p) <= (n) || p[0] != (0xa0 | (n)) || !s_same(p + 1, k, n))                               \
            return false;                                                                                       \
        p += 1 + (n);                                                                                           \
    } while (0)

#define S_FAST_VALUE_I32(name)                                                                                  \
    do {                                                                                                        \
        int64_t x;                                                                                              \
        if (!s_fast_int(&p, end, &x) || x < INT32_MIN || x > INT32_MAX)                                         \
            return false;                                                                                       \
        ev->name = (int32_t)x;                                                                                  \
    } while (0)
#define S_FAST_VALUE_I64(name)                                                                                  \
    do {                                                                                                        \
        if (!s_fast_int(&p, end, &ev->name))                                                                    \
            return false;                                                                                       \
    } while (0)
#define S_FAST_VALUE_PRICE S_FAST_VALUE_I64
#define S_FAST_VALUE_TIME S_FAST_VALUE_I64
#define S_FAST_VALUE_STR(name)                                                                                  \
    do {                                                                                                        \
        if (!s_fast_str(&p, end, &ev->name))                                                                    \
            return false;                                                                                       \
    } while (0)


/* The event at the start of data, if it is in one of our encoders'
 * layouts: true, with *size its length in bytes. */
static bool s_decode_event_fast(const unsigned char *data, size_t len, size_t *size, ev_event_t *ev)
{
    const unsigned char *p = data, *end = data + len;
    if (len >= 2 && p[0] == (0x90 | (EV_FIELD_COUNT + 1)) && p[1] == EV_PROTOCOL_VERSION) {
        p += 2;
#define EV_FIELD(name, kind, max, sql, where) S_FAST_VALUE_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
    } else if (len >= 4 && p[0] == (0x80 | (EV_FIELD_COUNT + 1)) && p[1] == 0xa1 && p[2] == 'v' &&
               p[3] == EV_PROTOCOL_VERSION) {
        p += 4;
#define EV_FIELD(name, kind, max, sql, where)                                                                   \
    S_FAST_KEY(#name, sizeof #name - 1);                                                                        \
    S_FAST_VALUE_##kind(name);
#include "evpipe/event_fields.def"
#undef EV_FIELD
    } else {
        return false;
    }
    *size = (size_t)(p - data);
    return true;
}

#undef S_FAST_KEY
#undef S_FAST_VALUE_I32
#undef S_FAST_VALUE_I64
#undef S_FAST_VALUE_PRICE
#undef S_FAST_VALUE_TIME
#undef S_FAST_VALUE_STR

/* Whether the value h is this protocol version; sets err when not. */
static void s_check_version(const s_head_t *h, ev_error_t *err)
{
    if (h->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        ev_error_set(err, EV_REJECT_DECODE, "v: the protocol version is not a positive integer (msgpack type %d)",
                     h->type);
    else if (h->u != EV_PROTOCOL_VERSION)
        ev_error_set(err, EV_REJECT_DECODE, "v: protocol version %llu is not %d", (unsigned long long)h->u,
                     EV_PROTOCOL_VERSION);
}

/* The verdict on an event both general loops read: the version's refusal
 * (or its absence) first, then the first field's refusal in the order read,
 * then the first field not in seen (bit i: field i read). */
static ev_reject_t s_verdict(const ev_error_t *verr, bool has_v, const ev_error_t *ferr, uint32_t seen,
                             ev_error_t *err)
{
    if (verr->code) {
        *err = *verr;
        return err->code;
    }
    if (!has_v)
        return ev_error_set(err, EV_REJECT_DECODE, "v: the protocol version is missing");
    if (ferr->code) {
        *err = *ferr;
        return err->code;
    }
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        if (!(seen & (1u << i)))
            return ev_error_set(err, EV_REJECT_MISSING, "%s: missing from the message", ev_fields[i].name);
    return EV_OK;
}

/* The rest of an event array of n elements whose head ends at pos: the
 * version, then the fields in field order; elements past the last field (a
 * later version's) are stepped over. As the map loop: *size is 0 when the
 * array is truncated or malformed. */
static ev_reject_t s_decode_array(const unsigned char *data, size_t len, size_t pos, uint32_t n, size_t *size,
                                  ev_event_t *ev, ev_error_t *err)
{
    memset(ev, 0, sizeof *ev);
    ev_error_t verr = {0}, ferr = {0};
    for (uint32_t i = 0; i < n; i++) {
        s_head_t v;
        if (!s_read(data, len, &pos, false, &v))
            return EV_REJECT_DECODE;
        if (i == 0)
            s_check_version(&v, &verr);
        else if (i <= EV_FIELD_COUNT && !ferr.code)
            s_head_field(&v, (int)i - 1, ev, &ferr);
    }
    *size = pos;
    uint32_t fields = n > EV_FIELD_COUNT ? EV_FIELD_COUNT : n > 0 ? n - 1 : 0; /* the fields it holds */
    return s_verdict(&verr, n > 0, &ferr, (uint32_t)((1ull << fields) - 1), err);
}

/* Decodes the event (an array or a map) at the start of data (len bytes
 * there, maybe more after it). *size: the event's length in bytes, 0 when it
 * is truncated or malformed (nothing else is then known). */
static ev_reject_t s_decode_event_once(const unsigned char *data, size_t len, size_t *size, ev_event_t *ev,
                                       ev_error_t *err)
{
    if (s_decode_event_fast(data, len, size, ev))
        return EV_OK;
    *size = 0;
    size_t pos = 0;
    s_head_t top;
    if (!s_read(data, len, &pos, true, &top))
        return EV_REJECT_DECODE;
    if (top.type == MSGPACK_OBJECT_ARRAY)
        return s_decode_array(data, len, pos, top.size, size, ev, err);
    if (top.type != MSGPACK_OBJECT_MAP) {
        *size = pos;
        return ev_error_set(err, EV_REJECT_DECODE, "body: a msgpack array or map was expected (type %d)",
                            top.type);
    }
    memset(ev, 0, sizeof *ev);
    ev_error_t verr = {0}, ferr = {0};
    bool has_v = false;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < top.size; i++) {
        s_head_t k, v;
        if (!s_read(data, len, &pos, false, &k) || !s_read(data, len, &pos, false, &v))
            return EV_REJECT_DECODE;
        if (k.type != MSGPACK_OBJECT_STR) {
            if (!ferr.code)
                ev_error_set(&ferr, EV_REJECT_DECODE, "body: a map key is not a string");
            continue;
        }
        if (k.size == 1 && k.ptr[0] == 'v') {
            if (!verr.code)
                s_check_version(&v, &verr);
            has_v = true;
            continue;
        }
        int idx = ev_field_index(k.ptr, k.size);
        if (idx < 0)
            continue; /* a key of a later version */
        if (ferr.code)
            continue; /* past the first refusal */
        if (s_head_field(&v, idx, ev, &ferr) == EV_OK)
            seen |= 1u << idx;
    }
    *size = pos;
    return s_verdict(&verr, has_v, &ferr, seen, err);
}

ev_next_t ev_codec_next_event(ev_codec_t *self, const void *body, size_t len, size_t *offset, ev_event_t *ev,
                              const void **raw, size_t *rawlen, ev_error_t *err)
{
    (void)self; /* events need no scratch: s_decode_event_once reads them in place */
    size_t at = *offset;
    if (len == 0) {
        ev_error_set(err, EV_REJECT_DECODE, "body: empty (a body holds at least one event)");
        return EV_NEXT_BROKEN;
    }
    if (at >= len)
        return EV_NEXT_END;
    const unsigned char *p = (const unsigned char *)body + at;
    size_t size;
    ev_reject_t rc = s_decode_event_once(p, len - at, &size, ev, err);
    if (!size) {
        if (at == 0)
            ev_error_set(err, EV_REJECT_DECODE, "body: truncated, or a length beyond its %zu bytes", len);
        else
            ev_error_set(err, EV_REJECT_DECODE,
                         "body: the value at byte %zu is truncated, or claims a length beyond the body's %zu bytes",
                         at, len);
        return EV_NEXT_BROKEN;
    }
    *raw = p;
    *rawlen = size;
    *offset = at + size;
    return rc == EV_OK ? EV_NEXT_EVENT : EV_NEXT_INVALID;
}

ev_reject_t ev_codec_decode_event(ev_codec_t *self, const void *data, size_t len, ev_event_t *ev,
                                  ev_error_t *err)
{
    size_t offset = 0, rawlen;
    const void *raw;
    switch (ev_codec_next_event(self, data, len, &offset, ev, &raw, &rawlen, err)) {
    case EV_NEXT_EVENT:
        if (offset == len)
            return EV_OK;
        return ev_error_set(err, EV_REJECT_DECODE, "body: %zu bytes after the event's %zu", len - offset, offset);
    case EV_NEXT_INVALID:
    case EV_NEXT_BROKEN:
        return err->code;
    case EV_NEXT_END:
        break;
    }
    return ev_error_set(err, EV_REJECT_DECODE, "body: no event");
}

/* ---- Control messages: heartbeat, repair (msg_fields.def) ---- */

typedef enum { S_MT_STR, S_MT_I32, S_MT_I64, S_MT_U64, S_MT_BOOL } s_mtype_t;

/* One key of a control message, from msg_fields.def. */
typedef struct {
    const char *key;  /* msgpack key, also the struct member */
    size_t offset;    /* of the member */
    s_mtype_t type;   /* its type */
    bool required;    /* a message without it is refused */
    int64_t min, max; /* integers: the range allowed */
} s_mfield_t;

static const s_mfield_t s_heartbeat_fields[] = {
#define EV_HEARTBEAT_FIELD(key, type, required, min, max, doc) \
    {#key, offsetof(ev_heartbeat_t, key), S_MT_##type, required, min, max},
#include "evpipe/msg_fields.def"
};
static const s_mfield_t s_repair_fields[] = {
#define EV_REPAIR_FIELD(key, type, required, min, max, doc) \
    {#key, offsetof(ev_repair_t, key), S_MT_##type, required, min, max},
#include "evpipe/msg_fields.def"
};
#define S_COUNT(a) (sizeof(a) / sizeof(a)[0])
_Static_assert(S_COUNT(s_heartbeat_fields) <= 32 && S_COUNT(s_repair_fields) <= 32,
               "a control message has at most 32 keys (the decoder's seen mask)");

/* True when an optional key holds 0 or false: it is left out (absent
 * means just that), so a receiver that checks its range never sees it. */
static bool s_left_out(const s_mfield_t *f, const char *p)
{
    if (f->required)
        return false;
    switch (f->type) {
    case S_MT_I32:
        return *(const int32_t *)p == 0;
    case S_MT_I64:
        return *(const int64_t *)p == 0;
    case S_MT_U64:
        return *(const uint64_t *)p == 0;
    case S_MT_BOOL:
        return !*(const bool *)p;
    case S_MT_STR:
        return ((const ev_str_t *)p)->len == 0;
    }
    return false;
}

/* Packs the keys of a control message; optional ones only when set. */
static void s_encode_msg(ev_codec_t *self, const s_mfield_t *fields, size_t n, const void *msg, const void **data,
                         size_t *len)
{
    size_t keys = 0;
    for (size_t i = 0; i < n; i++)
        keys += !s_left_out(&fields[i], (const char *)msg + fields[i].offset);
    s_begin(self, keys);
    for (size_t i = 0; i < n; i++) {
        const s_mfield_t *f = &fields[i];
        const char *p = (const char *)msg + f->offset;
        if (s_left_out(f, p))
            continue;
        s_key(&self->pk, f->key);
        switch (f->type) {
        case S_MT_STR:
            s_str(&self->pk, *(const ev_str_t *)p);
            break;
        case S_MT_I32:
            msgpack_pack_int32(&self->pk, *(const int32_t *)p);
            break;
        case S_MT_I64:
            msgpack_pack_int64(&self->pk, *(const int64_t *)p);
            break;
        case S_MT_U64:
            msgpack_pack_uint64(&self->pk, *(const uint64_t *)p);
            break;
        case S_MT_BOOL:
            if (*(const bool *)p)
                msgpack_pack_true(&self->pk);
            else
                msgpack_pack_false(&self->pk);
            break;
        }
    }
    s_done(self, data, len);
}

/* Decodes one value into the member f describes. */
static ev_reject_t s_decode_value(const s_mfield_t *f, const msgpack_object *v, char *p, ev_error_t *err)
{
    int64_t x = 0; /* read only when s_get_int set it; 0 for -Wmaybe-uninitialized */
    ev_reject_t rc;
    switch (f->type) {
    case S_MT_STR:
        return s_get_str(v, (ev_str_t *)p, f->key, err);
    case S_MT_I32:
        if ((rc = s_get_int(v, f->min, f->max, &x, f->key, err)))
            return rc;
        *(int32_t *)p = (int32_t)x;
        return EV_OK;
    case S_MT_I64:
        return s_get_int(v, f->min, f->max, (int64_t *)p, f->key, err);
    case S_MT_U64:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return ev_error_set(err, EV_REJECT_DECODE, "%s: an unsigned integer was expected", f->key);
        *(uint64_t *)p = v->via.u64;
        return EV_OK;
    case S_MT_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return ev_error_set(err, EV_REJECT_DECODE, "%s: true or false was expected (msgpack type %d)", f->key,
                                (int)v->type);
        *(bool *)p = v->via.boolean;
        return EV_OK;
    }
    return ev_error_set(err, EV_REJECT_DECODE, "%s: unknown type", f->key);
}

/* Decodes a control message of exactly len bytes into msg (size bytes,
 * zeroed first): known keys are checked and stored, unknown keys ignored,
 * required keys must be there. what names the message in errors. */
static ev_reject_t s_decode_msg(ev_codec_t *self, const void *data, size_t len, const s_mfield_t *fields, size_t n,
                                void *msg, size_t size, const char *what, ev_error_t *err)
{
    msgpack_object obj;
    ev_reject_t rc = s_unpack_map(self, data, len, &obj, err);
    if (rc)
        return rc;
    memset(msg, 0, size);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        const msgpack_object *k = &obj.via.map.ptr[i].key, *v = &obj.via.map.ptr[i].val;
        for (size_t f = 0; f < n; f++) {
            if (!s_key_is(k, fields[f].key))
                continue;
            if ((rc = s_decode_value(&fields[f], v, (char *)msg + fields[f].offset, err)))
                return rc;
            seen |= 1u << f;
            break;
        }
    }
    for (size_t f = 0; f < n; f++)
        if (fields[f].required && !(seen & (1u << f)))
            return ev_error_set(err, EV_REJECT_MISSING, "%s: missing from the %s", fields[f].key, what);
    return EV_OK;
}

void ev_codec_encode_heartbeat(ev_codec_t *self, const ev_heartbeat_t *hb, const void **data, size_t *len)
{
    s_encode_msg(self, s_heartbeat_fields, S_COUNT(s_heartbeat_fields), hb, data, len);
}

ev_reject_t ev_codec_decode_heartbeat(ev_codec_t *self, const void *data, size_t len, ev_heartbeat_t *hb,
                                      ev_error_t *err)
{
    return s_decode_msg(self, data, len, s_heartbeat_fields, S_COUNT(s_heartbeat_fields), hb, sizeof *hb,
                        "heartbeat", err);
}

void ev_codec_encode_repair(ev_codec_t *self, const ev_repair_t *r, const void **data, size_t *len)
{
    s_encode_msg(self, s_repair_fields, S_COUNT(s_repair_fields), r, data, len);
}

ev_reject_t ev_codec_decode_repair(ev_codec_t *self, const void *data, size_t len, ev_repair_t *r,
                                   ev_error_t *err)
{
    ev_reject_t rc = s_decode_msg(self, data, len, s_repair_fields, S_COUNT(s_repair_fields), r, sizeof *r,
                                  "repair message", err);
    if (rc)
        return rc;
    if (r->from > r->to)
        return ev_error_set(err, EV_REJECT_NUMBER, "repair: from %lld is after to %lld", (long long)r->from,
                            (long long)r->to);
    return EV_OK;
}
