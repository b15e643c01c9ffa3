/* Unit tests of the bus protocol: topic frames, and the msgpack event,
 * heartbeat and repair bodies, including every way a body can be wrong. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/wire.h"

/* ---- Helpers ---- */

static ev_str_t s_str(const char *s)
{
    return (ev_str_t){s, (uint32_t)strlen(s)};
}

/* Text with everything CSV, COPY and JSON must escape, and non-ASCII. */
#define NASTY "a \"quoted\", comma\nnew line\r\ttab \\ back é 漢字 😀"

static ev_event_t s_event(void)
{
    ev_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.user_id = INT32_MIN;
    ev.user_name = s_str("Zoë " NASTY);
    ev.user_email = s_str("zoe+\"x\"@example.com,\\");
    ev.event_type = s_str("purchase");
    ev.product_id = INT32_MAX;
    ev.product_name = s_str("漢字 😀\t\"name\"");
    ev.product_category = s_str("cat,\r\n\\");
    ev.product_price = -9999999999LL;
    ev.event_time = -62135596800LL * 1000000;
    ev.source = s_str("gen-0123456789abcdef");
    ev.partition = 1023;
    ev.seq = INT64_MAX;
    ev.published_at = 253402300799LL * 1000000 + 999999;
    return ev;
}

/* A private copy of an encoded body, exactly len bytes (so the sanitizer
 * sees any read past its end). */
static void *s_copy(const void *data, size_t len)
{
    void *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    if (len)
        memcpy(p, data, len);
    return p;
}

/* How a test body differs from a good event body. */
typedef enum {
    BAD_NONE,
    BAD_NIL,
    BAD_STR,
    BAD_INT,
    BAD_FLOAT,
    BAD_ARRAY,
    BAD_BOOL,
    BAD_BIN,
} bad_t;

typedef struct {
    const char *skip;    /* a field left out */
    const char *bad_key; /* a field whose value has the wrong type */
    bad_t bad;           /* ... this type */
    int version;         /* 0: no "v"; -1: "v" as a string; else its value */
    bool extra;          /* add unknown keys */
    bool reverse;        /* write the keys in reverse order */
} body_t;

static void s_pack_key(msgpack_packer *pk, const char *key)
{
    msgpack_pack_str(pk, strlen(key));
    msgpack_pack_str_body(pk, key, strlen(key));
}

static void s_pack_bad(msgpack_packer *pk, bad_t bad)
{
    switch (bad) {
    case BAD_NIL: msgpack_pack_nil(pk); break;
    case BAD_STR: s_pack_key(pk, "12"); break;
    case BAD_INT: msgpack_pack_int(pk, 12); break;
    case BAD_FLOAT: msgpack_pack_double(pk, 12.5); break;
    case BAD_ARRAY: msgpack_pack_array(pk, 1); msgpack_pack_int(pk, 12); break;
    case BAD_BOOL: msgpack_pack_true(pk); break;
    case BAD_BIN: msgpack_pack_bin(pk, 2); msgpack_pack_bin_body(pk, "12", 2); break;
    case BAD_NONE: break;
    }
}

static void s_pack_field(msgpack_packer *pk, const ev_event_t *ev, int i, const body_t *how)
{
    const ev_field_t *f = &ev_fields[i];
    s_pack_key(pk, f->name);
    if (how->bad_key && strcmp(how->bad_key, f->name) == 0) {
        s_pack_bad(pk, how->bad);
        return;
    }
    const char *p = (const char *)ev + f->offset;
    switch (f->kind) {
    case EV_KIND_I32: msgpack_pack_int32(pk, *(const int32_t *)p); break;
    case EV_KIND_I64:
    case EV_KIND_PRICE:
    case EV_KIND_TIME: msgpack_pack_int64(pk, *(const int64_t *)p); break;
    case EV_KIND_STR: {
        const ev_str_t *s = (const ev_str_t *)p;
        msgpack_pack_str(pk, s->len);
        msgpack_pack_str_body(pk, s->ptr, s->len);
        break;
    }
    }
}

/* Builds an event body by hand, as another publisher might. */
static void s_body(msgpack_sbuffer *sb, const ev_event_t *ev, const body_t *how)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = EV_FIELD_COUNT - (how->skip != NULL) + (how->version != 0) + (how->extra ? 3 : 0);
    msgpack_pack_map(&pk, n);
    if (how->extra) {
        s_pack_key(&pk, "zz_later");
        msgpack_pack_map(&pk, 1);
        s_pack_key(&pk, "nested");
        msgpack_pack_array(&pk, 0);
        s_pack_key(&pk, "user_idx");
        s_pack_key(&pk, "not a field");
    }
    if (how->version == -1) {
        s_pack_key(&pk, "v");
        s_pack_key(&pk, "1");
    } else if (how->version) {
        s_pack_key(&pk, "v");
        msgpack_pack_int(&pk, how->version);
    }
    for (int k = 0; k < EV_FIELD_COUNT; k++) {
        int i = how->reverse ? EV_FIELD_COUNT - 1 - k : k;
        if (how->skip && strcmp(how->skip, ev_fields[i].name) == 0)
            continue;
        s_pack_field(&pk, ev, i, how);
    }
    if (how->extra) {
        s_pack_key(&pk, "published_by");
        msgpack_pack_double(&pk, 1.5);
    }
}

static ev_reject_t s_decode_body(const body_t *how, ev_event_t *out, ev_error_t *err)
{
    ev_event_t ev = s_event();
    msgpack_sbuffer sb;
    s_body(&sb, &ev, how);
    ev_codec_t *codec = ev_codec_new();
    cr_assert_not_null(codec);
    void *copy = s_copy(sb.data, sb.size);
    ev_reject_t rc = ev_codec_decode_event(codec, copy, sb.size, out, err);
    if (rc == EV_OK)
        cr_assert(ev_event_equal(out, &ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    free(copy);
    ev_codec_destroy(&codec);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static bool s_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- Codec lifecycle ---- */

Test(wire_codec, destroy_accepts_null_and_nulls_the_pointer)
{
    ev_codec_t *codec = ev_codec_new();
    cr_assert_not_null(codec);
    ev_codec_destroy(&codec);
    cr_assert_null(codec);
    ev_codec_destroy(&codec);
    ev_codec_destroy(NULL);
}

/* ---- Event bodies ---- */

Test(wire_event, round_trips_every_field)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    cr_assert_gt(len, 0);
    void *copy = s_copy(data, len);
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    /* Each field, spelled out, so a failure says which. */
    cr_assert_eq(back.user_id, INT32_MIN);
    cr_assert_eq(back.product_id, INT32_MAX);
    cr_assert_eq(back.product_price, -9999999999LL);
    cr_assert_eq(back.event_time, -62135596800LL * 1000000);
    cr_assert_eq(back.partition, 1023);
    cr_assert_eq(back.seq, INT64_MAX);
    cr_assert_eq(back.published_at, 253402300799LL * 1000000 + 999999);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (ev_fields[i].kind != EV_KIND_STR)
            continue;
        const ev_str_t *a = (const ev_str_t *)((const char *)&ev + ev_fields[i].offset);
        const ev_str_t *b = (const ev_str_t *)((const char *)&back + ev_fields[i].offset);
        cr_assert_eq(a->len, b->len, "%s", ev_fields[i].name);
        cr_assert_arr_eq(a->ptr, b->ptr, a->len, "%s", ev_fields[i].name);
        /* Decoded text points into the message it came from. */
        cr_assert(b->ptr >= (const char *)copy && b->ptr + b->len <= (const char *)copy + len, "%s",
                  ev_fields[i].name);
    }
    free(copy);
    ev_codec_destroy(&codec);
}

Test(wire_event, round_trips_empty_text_and_zero_values)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev, back;
    memset(&ev, 0, sizeof ev);
    ev.user_name = (ev_str_t){NULL, 0};
    ev.event_type = s_str("view");
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    void *copy = s_copy(data, len);
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    cr_assert_eq(back.user_name.len, 0);
    free(copy);
    ev_codec_destroy(&codec);
}

Test(wire_event, encoding_is_deterministic_and_reuses_the_codec)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event();
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    void *first = s_copy(data, len);
    size_t first_len = len;
    for (int i = 0; i < 3; i++) {
        ev_codec_encode_event(codec, &ev, &data, &len);
        cr_assert_eq(len, first_len);
        cr_assert_arr_eq(data, first, len);
    }
    free(first);
    ev_codec_destroy(&codec);
}

Test(wire_event, carries_protocol_version_1_under_v)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event();
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(data, len, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(obj.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(obj.via.map.size, EV_FIELD_COUNT + 1);
    bool found = false;
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        msgpack_object *k = &obj.via.map.ptr[i].key, *v = &obj.via.map.ptr[i].val;
        cr_assert_eq(k->type, MSGPACK_OBJECT_STR, "every key is a string");
        if (k->via.str.size == 1 && k->via.str.ptr[0] == 'v') {
            found = true;
            cr_assert_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            cr_assert_eq(v->via.u64, EV_PROTOCOL_VERSION);
        }
        if (k->via.str.size == strlen("product_price") && memcmp(k->via.str.ptr, "product_price", 13) == 0)
            cr_assert_eq(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER, "the price is an integer of cents, never a float");
    }
    cr_assert(found);
    msgpack_zone_destroy(&zone);
    ev_codec_destroy(&codec);
}

Test(wire_event, accepts_keys_in_any_order)
{
    ev_event_t back;
    ev_error_t err = {0};
    cr_assert_eq(s_decode_body(&(body_t){.version = 1, .reverse = true}, &back, &err), EV_OK, "%s", err.detail);
}

Test(wire_event, ignores_unknown_extra_keys)
{
    ev_event_t back;
    ev_error_t err = {0};
    cr_assert_eq(s_decode_body(&(body_t){.version = 1, .extra = true}, &back, &err), EV_OK, "%s", err.detail);
}

Test(wire_event, refuses_each_missing_field_naming_it)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        ev_reject_t rc = s_decode_body(&(body_t){.version = 1, .skip = ev_fields[i].name}, &back, &err);
        cr_assert_eq(rc, EV_REJECT_MISSING, "without %s: %s", ev_fields[i].name, ev_reject_name(rc));
        cr_assert_eq(err.code, EV_REJECT_MISSING);
        cr_assert(s_starts_with(err.detail, ev_fields[i].name), "detail '%s' does not name %s", err.detail,
                  ev_fields[i].name);
    }
}

Test(wire_event, refuses_each_field_of_the_wrong_type_naming_it)
{
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        bool text = ev_fields[i].kind == EV_KIND_STR;
        const bad_t bads[] = {BAD_NIL, text ? BAD_INT : BAD_STR, BAD_FLOAT, BAD_ARRAY, BAD_BOOL, BAD_BIN};
        for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
            ev_event_t back;
            ev_error_t err = {0};
            body_t how = {.version = 1, .bad_key = ev_fields[i].name, .bad = bads[b]};
            ev_reject_t rc = s_decode_body(&how, &back, &err);
            cr_assert_eq(rc, EV_REJECT_DECODE, "%s as bad type %d: %s", ev_fields[i].name, (int)bads[b],
                         ev_reject_name(rc));
            cr_assert(s_starts_with(err.detail, ev_fields[i].name), "detail '%s' does not name %s", err.detail,
                      ev_fields[i].name);
        }
    }
}

Test(wire_event, refuses_a_32_bit_field_out_of_range)
{
    ev_event_t ev = s_event(), back;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, EV_FIELD_COUNT + 1);
    s_pack_key(&pk, "v");
    msgpack_pack_int(&pk, 1);
    body_t how = {0};
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        if (i == EV_F_product_id) {
            s_pack_key(&pk, "product_id");
            msgpack_pack_int64(&pk, (int64_t)INT32_MAX + 1);
        } else {
            s_pack_field(&pk, &ev, i, &how);
        }
    }
    ev_codec_t *codec = ev_codec_new();
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, sb.data, sb.size, &back, &err), EV_REJECT_NUMBER);
    cr_assert(s_starts_with(err.detail, "product_id"), "%s", err.detail);
    ev_codec_destroy(&codec);
    msgpack_sbuffer_destroy(&sb);
}

Test(wire_event, refuses_a_missing_version)
{
    ev_event_t back;
    ev_error_t err = {0};
    cr_assert_eq(s_decode_body(&(body_t){.version = 0}, &back, &err), EV_REJECT_DECODE);
    cr_assert(s_starts_with(err.detail, "v:"), "%s", err.detail);
}

Test(wire_event, refuses_a_wrong_version)
{
    const int versions[] = {2, 0x7f, -1 /* as the string "1" */, -5};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        cr_assert_eq(s_decode_body(&(body_t){.version = versions[i]}, &back, &err), EV_REJECT_DECODE, "v %d",
                     versions[i]);
        cr_assert(s_starts_with(err.detail, "v:"), "%s", err.detail);
    }
}

Test(wire_event, refuses_every_truncation)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    void *whole = s_copy(data, len);
    for (size_t cut = 0; cut < len; cut++) {
        void *part = s_copy(whole, cut);
        ev_error_t err = {0};
        ev_reject_t rc = ev_codec_decode_event(codec, part, cut, &back, &err);
        cr_assert_eq(rc, EV_REJECT_DECODE, "%zu of %zu bytes: %s", cut, len, ev_reject_name(rc));
        cr_assert(err.detail[0] != '\0');
        free(part);
    }
    free(whole);
    ev_codec_destroy(&codec);
}

Test(wire_event, refuses_trailing_bytes)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    char *more = malloc(len + 1);
    memcpy(more, data, len);
    more[len] = '\0';
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, more, len + 1, &back, &err), EV_REJECT_DECODE);
    free(more);
    ev_codec_destroy(&codec);
}

Test(wire_event, refuses_garbage_bytes)
{
    ev_codec_t *codec = ev_codec_new();
    static const struct {
        const char *bytes;
        size_t len;
    } fixed[] = {{"\xc1", 1}, {"hello, world", 12}, {"\xff\xff\xff\xff", 4}, {"\xdf\xff\xff\xff\xff", 5},
                 {"\x81\xa1v\x01", 4} /* {"v":1} and nothing else */};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        void *p = s_copy(fixed[i].bytes, fixed[i].len);
        ev_reject_t rc = ev_codec_decode_event(codec, p, fixed[i].len, &back, &err);
        cr_assert(rc == EV_REJECT_DECODE || rc == EV_REJECT_MISSING, "case %zu: %s", i, ev_reject_name(rc));
        free(p);
    }
    /* Random bytes, from a fixed seed so a failure repeats. */
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        unsigned char buf[96];
        size_t n = 1 + round % sizeof buf;
        for (size_t k = 0; k < n; k++) {
            x = x * 1103515245u + 12345u;
            buf[k] = (unsigned char)(x >> 16);
        }
        if (round % 3 == 0)
            buf[0] = 0x8e; /* a fixmap of 14 entries, so the decoder goes deeper */
        void *p = s_copy(buf, n);
        ev_event_t back;
        ev_error_t err = {0};
        ev_reject_t rc = ev_codec_decode_event(codec, p, n, &back, &err);
        cr_assert_neq(rc, EV_OK, "round %d", round);
        free(p);
    }
    ev_codec_destroy(&codec);
}

Test(wire_event, refuses_lengths_beyond_the_message_without_allocating_them)
{
    /* Each claims more entries or bytes than the message holds; the decoder
     * must refuse them before the unpacker allocates room for the claim. */
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\xdf\xff\xff\xff\xff", 5},                         /* map32 of 4G entries */
        {"\xdd\xff\xff\xff\xff", 5},                         /* array32 of 4G */
        {"\xde\xff\xff", 3},                                 /* map16 of 65535 */
        {"\x81\xa1v\xdd\x10\x00\x00\x00", 8},               /* {"v": array of 256M} */
        {"\x82\xa1v\x01\xa1x\xdf\x7f\xff\xff\xff", 10},     /* an unknown key holding a huge map */
        {"\x81\xa1v\xdb\xff\xff\xff\xff", 8},               /* str32 of 4 GiB */
        {"\x81\xa1v\xc6\xff\xff\xff\xf0", 8},               /* bin32 */
        {"\x81\xa1v\xc9\xff\xff\xff\xf0\x01", 9},           /* ext32 */
        {"\x81\xa1v\xcb\x00", 5},                            /* a float64 cut short */
        {"\x81\xa1v\xc1", 4},                                /* a byte msgpack never uses */
    };
    ev_codec_t *codec = ev_codec_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *p = s_copy(cases[i].bytes, cases[i].len);
        ev_event_t ev;
        ev_heartbeat_t hb;
        ev_repair_t r;
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_event(codec, p, cases[i].len, &ev, &err), EV_REJECT_DECODE, "case %zu", i);
        cr_assert_eq(ev_codec_decode_heartbeat(codec, p, cases[i].len, &hb, &err), EV_REJECT_DECODE, "case %zu", i);
        cr_assert_eq(ev_codec_decode_repair(codec, p, cases[i].len, &r, &err), EV_REJECT_DECODE, "case %zu", i);
        free(p);
    }
    ev_codec_destroy(&codec);
}

Test(wire_event, accepts_every_msgpack_type_under_an_unknown_key)
{
    /* The size check must know every msgpack type, or it would refuse a
     * later version's extra keys. */
    ev_event_t ev = s_event(), back;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    static const char big[70000] = {0};
    msgpack_pack_map(&pk, EV_FIELD_COUNT + 1 + 2);
    s_pack_key(&pk, "v");
    msgpack_pack_int(&pk, 1);
    s_pack_key(&pk, "x_every_type");
    msgpack_pack_array(&pk, 37);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_uint8(&pk, 200);
    msgpack_pack_uint16(&pk, 60000);
    msgpack_pack_uint32(&pk, 4000000000u);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_int8(&pk, -100);
    msgpack_pack_int16(&pk, -30000);
    msgpack_pack_int32(&pk, INT32_MIN);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_int(&pk, -1);
    msgpack_pack_int(&pk, 5);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "abc", 3);
    msgpack_pack_str(&pk, 40);
    msgpack_pack_str_body(&pk, big, 40);
    msgpack_pack_str(&pk, 300);
    msgpack_pack_str_body(&pk, big, 300);
    msgpack_pack_str(&pk, 70000);
    msgpack_pack_str_body(&pk, big, 70000);
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "abc", 3);
    msgpack_pack_bin(&pk, 300);
    msgpack_pack_bin_body(&pk, big, 300);
    msgpack_pack_bin(&pk, 70000);
    msgpack_pack_bin_body(&pk, big, 70000);
    const size_t ext_sizes[] = {1, 2, 4, 8, 16, 3, 300, 70000};
    for (size_t i = 0; i < 8; i++) {
        msgpack_pack_ext(&pk, ext_sizes[i], 7);
        msgpack_pack_ext_body(&pk, big, ext_sizes[i]);
    }
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&pk, i);
    msgpack_pack_map(&pk, 17);
    for (int i = 0; i < 17; i++) {
        msgpack_pack_int(&pk, i);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_array(&pk, 70000);
    for (int i = 0; i < 70000; i++)
        msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 70000);
    for (int i = 0; i < 70000; i++) {
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_array(&pk, 0);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    s_pack_key(&pk, "x_last");
    msgpack_pack_nil(&pk);
    body_t how = {0};
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        s_pack_field(&pk, &ev, i, &how);
    ev_codec_t *codec = ev_codec_new();
    ev_error_t err = {0};
    void *copy = s_copy(sb.data, sb.size);
    cr_assert_eq(ev_codec_decode_event(codec, copy, sb.size, &back, &err), EV_OK, "%s", err.detail);
    cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    free(copy);
    ev_codec_destroy(&codec);
    msgpack_sbuffer_destroy(&sb);
}

Test(wire_event, refuses_a_body_that_is_not_a_map)
{
    ev_codec_t *codec = ev_codec_new();
    msgpack_sbuffer sb;
    msgpack_packer pk;
    for (int kind = 0; kind < 5; kind++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (kind) {
        case 0: msgpack_pack_array(&pk, 2); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 2); break;
        case 1: msgpack_pack_int(&pk, 1); break;
        case 2: s_pack_key(&pk, "v"); break;
        case 3: msgpack_pack_nil(&pk); break;
        case 4: msgpack_pack_double(&pk, 1.0); break;
        }
        ev_event_t back;
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_event(codec, sb.data, sb.size, &back, &err), EV_REJECT_DECODE, "kind %d",
                     kind);
        cr_assert(s_starts_with(err.detail, "body:"), "%s", err.detail);
        msgpack_sbuffer_destroy(&sb);
    }
    ev_codec_destroy(&codec);
}

Test(wire_event, refuses_a_key_that_is_not_a_string)
{
    ev_event_t ev = s_event(), back;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, EV_FIELD_COUNT + 2);
    s_pack_key(&pk, "v");
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_int(&pk, 7);
    body_t how = {0};
    for (int i = 0; i < EV_FIELD_COUNT; i++)
        s_pack_field(&pk, &ev, i, &how);
    ev_codec_t *codec = ev_codec_new();
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, sb.data, sb.size, &back, &err), EV_REJECT_DECODE);
    ev_codec_destroy(&codec);
    msgpack_sbuffer_destroy(&sb);
}

Test(wire_event, decodes_after_a_refusal_on_the_same_codec)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    const void *data;
    size_t len;
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, "\xc1", 1, &back, &err), EV_REJECT_DECODE);
    ev_codec_encode_event(codec, &ev, &data, &len);
    void *copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_event(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    free(copy);
    ev_codec_destroy(&codec);
}

/* ---- Heartbeats ---- */

Test(wire_heartbeat, round_trips)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {s_str("gen-0123456789abcdef"), 1023, INT64_MAX, 1706702400000001LL}, back;
    const void *data;
    size_t len;
    ev_codec_encode_heartbeat(codec, &hb, &data, &len);
    void *copy = s_copy(data, len);
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_heartbeat(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(back.source.len, hb.source.len);
    cr_assert_arr_eq(back.source.ptr, hb.source.ptr, hb.source.len);
    cr_assert_eq(back.partition, 1023);
    cr_assert_eq(back.seq, INT64_MAX);
    cr_assert_eq(back.published_at, 1706702400000001LL);
    free(copy);
    hb.seq = 0;
    hb.partition = 0;
    ev_codec_encode_heartbeat(codec, &hb, &data, &len);
    copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_heartbeat(codec, copy, len, &back, &err), EV_OK, "a seq of 0: nothing yet");
    cr_assert_eq(back.seq, 0);
    free(copy);
    ev_codec_destroy(&codec);
}

Test(wire_heartbeat, refuses_a_missing_field_naming_it)
{
    static const char *const keys[] = {"source", "partition", "seq", "published_at"};
    for (size_t skip = 0; skip < 4; skip++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        s_pack_key(&pk, "v");
        msgpack_pack_int(&pk, 1);
        for (size_t k = 0; k < 4; k++) {
            if (k == skip)
                continue;
            s_pack_key(&pk, keys[k]);
            if (k == 0)
                s_pack_key(&pk, "gen-x");
            else
                msgpack_pack_int(&pk, 3);
        }
        ev_codec_t *codec = ev_codec_new();
        ev_heartbeat_t back;
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_heartbeat(codec, sb.data, sb.size, &back, &err), EV_REJECT_MISSING);
        cr_assert(strstr(err.detail, keys[skip]) != NULL, "detail '%s' does not name %s", err.detail, keys[skip]);
        ev_codec_destroy(&codec);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(wire_heartbeat, refuses_bad_values)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {s_str("gen-x"), EV_PARTITIONS_MAX, 5, 1}, back;
    const void *data;
    size_t len;
    ev_error_t err = {0};
    ev_codec_encode_heartbeat(codec, &hb, &data, &len);
    void *copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_heartbeat(codec, copy, len, &back, &err), EV_REJECT_NUMBER);
    cr_assert(s_starts_with(err.detail, "partition"), "%s", err.detail);
    free(copy);
    hb.partition = 1;
    hb.seq = -1;
    ev_codec_encode_heartbeat(codec, &hb, &data, &len);
    copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_heartbeat(codec, copy, len, &back, &err), EV_REJECT_NUMBER);
    cr_assert(s_starts_with(err.detail, "seq"), "%s", err.detail);
    free(copy);
    cr_assert_eq(ev_codec_decode_heartbeat(codec, "\x93\x01\x02\x03", 4, &back, &err), EV_REJECT_DECODE);
    cr_assert_eq(ev_codec_decode_heartbeat(codec, "\x81\xa1v\x02", 4, &back, &err), EV_REJECT_DECODE,
                 "version 2");
    ev_codec_destroy(&codec);
}

Test(wire_heartbeat, is_not_mistaken_for_an_event)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {s_str("gen-x"), 1, 5, 1};
    ev_event_t ev;
    const void *data;
    size_t len;
    ev_error_t err = {0};
    ev_codec_encode_heartbeat(codec, &hb, &data, &len);
    void *copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_event(codec, copy, len, &ev, &err), EV_REJECT_MISSING);
    free(copy);
    ev_codec_destroy(&codec);
}

/* ---- Repair ---- */

Test(wire_repair, request_and_end_round_trip)
{
    ev_codec_t *codec = ev_codec_new();
    ev_repair_t r = {UINT64_MAX, s_str("file-0123456789abcdef0123456789abcdef"), 15, 3, INT64_MAX, 0, false};
    ev_repair_t back;
    const void *data;
    size_t len;
    ev_error_t err = {0};
    ev_codec_encode_repair(codec, &r, &data, &len);
    void *copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_repair(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(back.id, UINT64_MAX);
    cr_assert_eq(back.source.len, r.source.len);
    cr_assert_arr_eq(back.source.ptr, r.source.ptr, r.source.len);
    cr_assert_eq(back.partition, 15);
    cr_assert_eq(back.from, 3);
    cr_assert_eq(back.to, INT64_MAX);
    cr_assert_eq(back.sent, 0);
    cr_assert_not(back.found_source);
    free(copy);

    r.id = 7, r.from = 10, r.to = 10, r.sent = 1, r.found_source = true;
    ev_codec_encode_repair(codec, &r, &data, &len);
    copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_repair(codec, copy, len, &back, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(back.id, 7);
    cr_assert_eq(back.from, 10);
    cr_assert_eq(back.to, 10);
    cr_assert_eq(back.sent, 1);
    cr_assert(back.found_source);
    free(copy);
    ev_codec_destroy(&codec);
}

Test(wire_repair, refuses_a_range_that_runs_backwards_or_starts_at_0)
{
    ev_codec_t *codec = ev_codec_new();
    ev_repair_t r = {1, s_str("gen-x"), 0, 5, 4, 0, false}, back;
    const void *data;
    size_t len;
    ev_error_t err = {0};
    ev_codec_encode_repair(codec, &r, &data, &len);
    void *copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_repair(codec, copy, len, &back, &err), EV_REJECT_NUMBER);
    free(copy);
    r.from = 0;
    ev_codec_encode_repair(codec, &r, &data, &len);
    copy = s_copy(data, len);
    cr_assert_eq(ev_codec_decode_repair(codec, copy, len, &back, &err), EV_REJECT_NUMBER);
    cr_assert(s_starts_with(err.detail, "from"), "%s", err.detail);
    free(copy);
    ev_codec_destroy(&codec);
}

Test(wire_repair, refuses_a_missing_field_naming_it)
{
    static const char *const keys[] = {"id", "source", "partition", "from", "to"};
    for (size_t skip = 0; skip < 5; skip++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        s_pack_key(&pk, "v");
        msgpack_pack_int(&pk, 1);
        for (size_t k = 0; k < 5; k++) {
            if (k == skip)
                continue;
            s_pack_key(&pk, keys[k]);
            if (k == 1)
                s_pack_key(&pk, "gen-x");
            else
                msgpack_pack_int(&pk, 3);
        }
        ev_codec_t *codec = ev_codec_new();
        ev_repair_t back;
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_repair(codec, sb.data, sb.size, &back, &err), EV_REJECT_MISSING);
        cr_assert(s_starts_with(err.detail, keys[skip]), "detail '%s' does not name %s", err.detail, keys[skip]);
        ev_codec_destroy(&codec);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- Topics ---- */

Test(wire_topic, formats_events_heartbeats_and_prefixes)
{
    char t[EV_TOPIC_MAX];
    cr_assert_eq(ev_topic_format(t, 7, EV_MSG_EVENT), 8);
    cr_assert_str_eq(t, "p0007/ev");
    cr_assert_eq(ev_topic_format(t, 7, EV_MSG_HEARTBEAT), 8);
    cr_assert_str_eq(t, "p0007/hb");
    cr_assert_eq(ev_topic_prefix(t, 7), 6);
    cr_assert_str_eq(t, "p0007/");
    ev_topic_format(t, 0, EV_MSG_EVENT);
    cr_assert_str_eq(t, "p0000/ev");
    ev_topic_format(t, 1023, EV_MSG_HEARTBEAT);
    cr_assert_str_eq(t, "p1023/hb");
}

Test(wire_topic, parses_what_it_formats)
{
    const uint32_t parts[] = {0, 7, 15, 999, EV_PARTITIONS_MAX - 1};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        for (int k = 0; k < 2; k++) {
            char t[EV_TOPIC_MAX], prefix[EV_TOPIC_MAX];
            ev_msg_kind_t kind = k ? EV_MSG_HEARTBEAT : EV_MSG_EVENT, got_kind = (ev_msg_kind_t)-1;
            uint32_t got = 99999;
            size_t n = ev_topic_format(t, parts[i], kind);
            cr_assert(ev_topic_parse(t, n, &got, &got_kind), "%s", t);
            cr_assert_eq(got, parts[i]);
            cr_assert_eq(got_kind, kind);
            size_t pn = ev_topic_prefix(prefix, parts[i]);
            cr_assert(pn < n && memcmp(t, prefix, pn) == 0, "the prefix %s subscribes to %s", prefix, t);
        }
    }
}

Test(wire_topic, refuses_bad_topics)
{
    static const char *const bad[] = {"",          "p",         "p0007",     "p0007/",    "p0007/e",
                                      "p007/ev",   "p00007/ev", "p0007/xx",  "p0007/EV",  "q0007/ev",
                                      "P0007/ev",  "p0007-ev",  "p0007/ev/", "p00a7/ev",  "p-007/ev",
                                      "p 007/ev",  "!welcome",  "p0007/evx", "p1024/ev",  "p9999/hb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t p = 0;
        ev_msg_kind_t k = EV_MSG_EVENT;
        cr_assert_not(ev_topic_parse(bad[i], strlen(bad[i]), &p, &k), "'%s' was accepted", bad[i]);
    }
    uint32_t p = 0;
    ev_msg_kind_t k = EV_MSG_EVENT;
    cr_assert_not(ev_topic_parse("p0007/ev\0", 9, &p, &k), "a trailing NUL is not part of a topic");
}
