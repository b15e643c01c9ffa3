/* Unit tests of the bus protocol: topic frames, and the msgpack event,
 * heartbeat and repair bodies, including every way a body can be wrong, and
 * event bodies of several events walked one by one. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/wire.h"
#include "proto_test.h"

/* ---- Helpers ---- */

/* Text with everything CSV, COPY and JSON must escape, and non-ASCII. */
#define NASTY "a \"quoted\", comma\nnew line\r\ttab \\ back é 漢字 😀"

static ev_event_t s_event(void)
{
    ev_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.user_id = INT32_MIN;
    ev.user_name = pt_str("Zoë " NASTY);
    ev.user_email = pt_str("zoe+\"x\"@example.com,\\");
    ev.event_type = pt_str("purchase");
    ev.product_id = INT32_MAX;
    ev.product_name = pt_str("漢字 😀\t\"name\"");
    ev.product_category = pt_str("cat,\r\n\\");
    ev.product_price = -9999999999LL;
    ev.event_time = -62135596800LL * 1000000;
    ev.source = pt_str("gen-0123456789abcdef");
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

/* Field f's value of ev, as msgpack-c packs it. */
static void s_pack_value(msgpack_packer *pk, const ev_field_t *f, const ev_event_t *ev)
{
    const char *p = (const char *)ev + f->offset;
    if (f->kind == EV_KIND_STR) {
        const ev_str_t *v = (const ev_str_t *)p;
        msgpack_pack_str(pk, v->len);
        msgpack_pack_str_body(pk, v->len ? v->ptr : "", v->len);
    } else if (f->kind == EV_KIND_I32) {
        msgpack_pack_int32(pk, *(const int32_t *)p);
    } else {
        msgpack_pack_int64(pk, *(const int64_t *)p);
    }
}

/* Field i's value of ev, or the wrong one how asks for. */
static void s_pack_field_value(msgpack_packer *pk, const ev_event_t *ev, int i, const body_t *how)
{
    if (how->bad_key && strcmp(how->bad_key, ev_fields[i].name) == 0)
        s_pack_bad(pk, how->bad);
    else
        s_pack_value(pk, &ev_fields[i], ev);
}

/* Field i's key and value. */
static void s_pack_field(msgpack_packer *pk, const ev_event_t *ev, int i, const body_t *how)
{
    s_pack_key(pk, ev_fields[i].name);
    s_pack_field_value(pk, ev, i, how);
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

Test(wire_event, round_trips_every_field_in_either_form)
{
    for (int form = EV_FORM_ARRAY; form <= EV_FORM_MAP; form++) {
        ev_codec_t *codec = ev_codec_new();
        ev_codec_set_form(codec, (ev_form_t)form);
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
}

Test(wire_event, round_trips_empty_text_and_zero_values)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev, back;
    memset(&ev, 0, sizeof ev);
    ev.user_name = (ev_str_t){NULL, 0};
    ev.event_type = pt_str("view");
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

/* The event packed by msgpack-c's own packer, field by field, as an array
 * or a map: the bytes the encoder must give (taps and other publishers
 * compare them). */
static void s_pack_reference(msgpack_sbuffer *out, const ev_event_t *ev, ev_form_t form)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (form == EV_FORM_MAP) {
        msgpack_pack_map(&pk, EV_FIELD_COUNT + 1);
        s_pack_key(&pk, "v");
    } else {
        msgpack_pack_array(&pk, EV_FIELD_COUNT + 1);
    }
    msgpack_pack_int(&pk, EV_PROTOCOL_VERSION);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (form == EV_FORM_MAP)
            s_pack_key(&pk, f->name);
        s_pack_value(&pk, f, ev);
    }
}

Test(wire_event, bytes_are_msgpack_cs_for_every_integer_and_string_length_class)
{
    /* Each side of every boundary between msgpack's integer and string forms. */
    static const int64_t ints[] = {0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL,
                                   INT64_MAX, -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
                                   INT32_MIN + 1LL, INT32_MIN, INT32_MIN - 1LL, INT64_MIN, INT32_MAX};
    static const size_t lens[] = {0, 1, 31, 32, 33, 255, 256, 257, 65535, 65536, 70000};
    char *text = malloc(70000);
    cr_assert_not_null(text);
    memset(text, 'x', 70000);
    ev_codec_t *codec = ev_codec_new();
    msgpack_sbuffer want;
    msgpack_sbuffer_init(&want);
    size_t nints = sizeof ints / sizeof ints[0], nlens = sizeof lens / sizeof lens[0];
    for (size_t k = 0; k < 2 * (nints + nlens); k++) {
        ev_form_t form = k % 2 ? EV_FORM_MAP : EV_FORM_ARRAY;
        ev_codec_set_form(codec, form);
        ev_event_t ev = s_event();
        int64_t n = ints[k % nints];
        /* 32-bit fields take the values that fit; strings each length. */
        int32_t n32 = n >= INT32_MIN && n <= INT32_MAX ? (int32_t)n : (int32_t)(k * 7919);
        ev.user_id = n32;
        ev.product_id = n32 / -2;
        ev.partition = n32;
        ev.product_price = n;
        ev.event_time = n / -3;
        ev.seq = n;
        ev.published_at = n ^ 0x5555;
        ev_str_t t = {text, (uint32_t)lens[k % nlens]};
        ev.user_name = t;
        ev.product_category = (ev_str_t){text, (uint32_t)lens[(k + 3) % nlens]};
        ev.source = (ev_str_t){NULL, 0};
        const void *data;
        size_t len;
        ev_codec_encode_event(codec, &ev, &data, &len);
        msgpack_sbuffer_clear(&want);
        s_pack_reference(&want, &ev, form);
        cr_assert_eq(len, want.size, "case %zu: %zu bytes, msgpack-c packs %zu", k, len, want.size);
        cr_assert_arr_eq(data, want.data, len, "case %zu: the bytes differ from msgpack-c's", k);
    }
    msgpack_sbuffer_destroy(&want);
    ev_codec_destroy(&codec);
    free(text);
}

/* A key written by another encoder: as str8 instead of fixstr. */
static void s_pack_str8_key(msgpack_sbuffer *out, const char *key)
{
    unsigned char head[2] = {0xd9, (unsigned char)strlen(key)};
    msgpack_sbuffer_write(out, (const char *)head, 2);
    msgpack_sbuffer_write(out, key, strlen(key));
}

Test(wire_event, decodes_keys_in_other_forms_and_near_misses_of_the_expected_key)
{
    /* Fields in order (the decoder expects each next), but every other key
     * as str8, and before each field a key that differs from it by one
     * byte at its end, or is one byte longer or shorter. */
    ev_event_t ev = s_event(), back;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + 2 * EV_FIELD_COUNT);
    s_pack_key(&pk, "v");
    msgpack_pack_int(&pk, EV_PROTOCOL_VERSION);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        char near[64];
        snprintf(near, sizeof near, "%s", f->name);
        size_t n = strlen(near);
        if (i % 3 == 0)
            near[n - 1] ^= 1;
        else if (i % 3 == 1)
            near[n++] = 'x', near[n] = '\0';
        else
            near[--n] = '\0';
        msgpack_pack_str(&pk, n);
        msgpack_pack_str_body(&pk, near, n);
        msgpack_pack_nil(&pk);
        if (i % 2)
            s_pack_str8_key(&body, f->name);
        else
            s_pack_key(&pk, f->name);
        s_pack_value(&pk, f, &ev);
    }
    ev_codec_t *codec = ev_codec_new();
    void *copy = s_copy(body.data, body.size);
    ev_error_t err = {0};
    cr_assert_eq(ev_codec_decode_event(codec, copy, body.size, &back, &err), EV_OK, "%s", err.detail);
    cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    free(copy);
    msgpack_sbuffer_destroy(&body);
    ev_codec_destroy(&codec);
}

/* The event in data packed again by msgpack-c from its own reading, in a
 * way that makes the decoder take its general map loop: a map (form MAP)
 * with its entries in reverse order, so that "v" and the fields are no
 * longer where our encoders put them; an array (form ARRAY) as the map of
 * the same values, element 0 under "v", element i under the name of field
 * i - 1, elements past the fields under keys no version has, also in reverse
 * order. False when msgpack-c does not read data as exactly one value of
 * the form. */
static bool s_reference(const void *data, size_t len, msgpack_sbuffer *out, ev_form_t form)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
              u.data.type == (form == EV_FORM_MAP ? MSGPACK_OBJECT_MAP : MSGPACK_OBJECT_ARRAY);
    if (ok) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        uint32_t n = form == EV_FORM_MAP ? u.data.via.map.size : u.data.via.array.size;
        msgpack_pack_map(&pk, n);
        for (uint32_t i = n; i-- > 0;) {
            if (form == EV_FORM_MAP) {
                msgpack_pack_object(&pk, u.data.via.map.ptr[i].key);
                msgpack_pack_object(&pk, u.data.via.map.ptr[i].val);
                continue;
            }
            char extra[32];
            snprintf(extra, sizeof extra, "later_%u", i);
            s_pack_key(&pk, i == 0 ? "v" : i <= EV_FIELD_COUNT ? ev_fields[i - 1].name : extra);
            msgpack_pack_object(&pk, u.data.via.array.ptr[i]);
        }
    }
    msgpack_unpacked_destroy(&u);
    return ok;
}

/* Each byte of two events encoded in form set to every other value: the
 * result must be what the decoder reads from s_reference's packing of those
 * bytes (accepted or not, and the same event), which it reads with its
 * general loop; when s_reference finds no value of the form there, the bytes
 * must be refused. */
static void s_every_byte_changed(ev_form_t form)
{
    ev_codec_t *codec = ev_codec_new();
    ev_codec_set_form(codec, form);
    ev_event_t events[2] = {s_event(), pt_event()};
    msgpack_sbuffer ref;
    msgpack_sbuffer_init(&ref);
    size_t accepted = 0, refused = 0;
    for (int e = 0; e < 2; e++) {
        const void *data;
        size_t len;
        ev_codec_encode_event(codec, &events[e], &data, &len);
        unsigned char *orig = s_copy(data, len);
        for (size_t at = 0; at < len; at++) {
            for (unsigned c = 0; c < 256; c++) {
                /* array32 and map32 heads would make msgpack-c allocate their claimed count */
                if (c == orig[at] || c == 0xdd || c == 0xdf)
                    continue;
                unsigned char *m = s_copy(orig, len);
                m[at] = (unsigned char)c;
                ev_event_t got, want;
                ev_error_t err = {0}, werr = {0};
                ev_reject_t rc = ev_codec_decode_event(codec, m, len, &got, &err);
                msgpack_sbuffer_clear(&ref);
                if (!s_reference(m, len, &ref, form)) {
                    cr_assert_neq(rc, EV_OK, "byte %zu set to 0x%02x: accepted, the reference reads nothing", at, c);
                } else {
                    void *r = s_copy(ref.data, ref.size);
                    ev_reject_t wrc = ev_codec_decode_event(codec, r, ref.size, &want, &werr);
                    cr_assert_eq(rc == EV_OK, wrc == EV_OK, "byte %zu set to 0x%02x: %s here, %s by reference (%s%s)",
                                 at, c, ev_reject_name(rc), ev_reject_name(wrc), err.detail, werr.detail);
                    if (rc == EV_OK)
                        cr_assert(ev_event_equal(&got, &want, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE),
                                  "byte %zu set to 0x%02x: another event than the general loop reads", at, c);
                    free(r);
                }
                rc == EV_OK ? accepted++ : refused++;
                free(m);
            }
        }
        free(orig);
    }
    /* Both outcomes were reached many times (values changed; keys, heads broken). */
    cr_assert_gt(accepted, 1000);
    cr_assert_gt(refused, 1000);
    msgpack_sbuffer_destroy(&ref);
    ev_codec_destroy(&codec);
}

Test(wire_event, every_byte_changed_decodes_as_the_same_map_in_another_order)
{
    /* Our encoders' map layout is read by a fast path; the same map in any
     * other order by the general loop. */
    s_every_byte_changed(EV_FORM_MAP);
}

Test(wire_event, every_byte_changed_decodes_an_array_as_the_map_of_its_values)
{
    /* An array is the map of the same values under the field names, in
     * field order: this covers the array's fast path and its general loop. */
    s_every_byte_changed(EV_FORM_ARRAY);
}

Test(wire_event, an_array_holds_the_version_then_each_field_in_field_order)
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
    cr_assert_eq(obj.type, MSGPACK_OBJECT_ARRAY, "a new codec writes arrays");
    cr_assert_eq(obj.via.array.size, EV_FIELD_COUNT + 1);
    cr_assert_eq(obj.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(obj.via.array.ptr[0].via.u64, EV_PROTOCOL_VERSION);
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const msgpack_object *v = &obj.via.array.ptr[i + 1];
        const char *p = (const char *)&ev + ev_fields[i].offset;
        if (ev_fields[i].kind == EV_KIND_STR) {
            const ev_str_t *t = (const ev_str_t *)p;
            cr_assert_eq(v->type, MSGPACK_OBJECT_STR, "%s", ev_fields[i].name);
            cr_assert_eq(v->via.str.size, t->len, "%s", ev_fields[i].name);
            cr_assert_arr_eq(v->via.str.ptr, t->ptr, t->len, "%s", ev_fields[i].name);
        } else {
            int64_t want = ev_fields[i].kind == EV_KIND_I32 ? *(const int32_t *)p : *(const int64_t *)p;
            int64_t got = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : v->via.i64;
            cr_assert(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER,
                      "%s: an integer, never a float", ev_fields[i].name);
            cr_assert_eq(got, want, "%s", ev_fields[i].name);
        }
    }
    msgpack_zone_destroy(&zone);
    ev_codec_destroy(&codec);
}

/* ev as an array of its first n values (the version first, a field of the
 * wrong type if how says so), with extra elements after the last field. */
static void s_pack_array(msgpack_sbuffer *sb, const ev_event_t *ev, uint32_t n, uint32_t extra, const body_t *how)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n + extra);
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0)
            msgpack_pack_int(&pk, EV_PROTOCOL_VERSION);
        else
            s_pack_field_value(&pk, ev, (int)i - 1, how);
    }
    for (uint32_t i = 0; i < extra; i++) {
        msgpack_pack_map(&pk, 1);
        s_pack_key(&pk, "later");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_double(&pk, 0.5);
    }
}

Test(wire_event, an_array_cut_short_is_refused_naming_the_first_field_missing)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    for (uint32_t n = 0; n <= EV_FIELD_COUNT; n++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_pack_array(&sb, &ev, n, 0, &(body_t){0});
        ev_error_t err = {0};
        ev_reject_t rc = ev_codec_decode_event(codec, sb.data, sb.size, &back, &err);
        if (n == 0) {
            cr_assert_eq(rc, EV_REJECT_DECODE);
            cr_assert(s_starts_with(err.detail, "v:"), "%s", err.detail);
        } else {
            cr_assert_eq(rc, EV_REJECT_MISSING, "%u elements: %s", n, err.detail);
            cr_assert(s_starts_with(err.detail, ev_fields[n - 1].name), "%u elements: %s", n, err.detail);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    ev_codec_destroy(&codec);
}

Test(wire_event, an_array_with_elements_past_the_last_field_is_the_same_event)
{
    /* A later version may add fields at the end; this one steps over them,
     * whatever they hold, as it ignores a map's unknown keys. */
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    for (uint32_t extra = 1; extra <= 3; extra++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_pack_array(&sb, &ev, EV_FIELD_COUNT + 1, extra, &(body_t){0});
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_event(codec, sb.data, sb.size, &back, &err), EV_OK, "%s", err.detail);
        cr_assert(ev_event_equal(&ev, &back, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
        msgpack_sbuffer_destroy(&sb);
    }
    ev_codec_destroy(&codec);
}

Test(wire_event, an_array_refuses_a_wrong_version_and_a_field_of_the_wrong_type_naming_it)
{
    ev_codec_t *codec = ev_codec_new();
    ev_event_t ev = s_event(), back;
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    unsigned char *m = s_copy(data, len);
    ev_error_t err = {0};
    m[1] = 2; /* the version */
    cr_assert_eq(ev_codec_decode_event(codec, m, len, &back, &err), EV_REJECT_DECODE);
    cr_assert(s_starts_with(err.detail, "v: protocol version 2"), "%s", err.detail);
    m[1] = EV_PROTOCOL_VERSION;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        /* Field i as the other kind: a string for an integer, 12 for a string. */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        body_t how = {.bad_key = ev_fields[i].name, .bad = ev_fields[i].kind == EV_KIND_STR ? BAD_INT : BAD_STR};
        s_pack_array(&sb, &ev, EV_FIELD_COUNT + 1, 0, &how);
        cr_assert_eq(ev_codec_decode_event(codec, sb.data, sb.size, &back, &err), EV_REJECT_DECODE, "%s",
                     ev_fields[i].name);
        cr_assert(s_starts_with(err.detail, ev_fields[i].name), "%s", err.detail);
        msgpack_sbuffer_destroy(&sb);
    }
    free(m);
    ev_codec_destroy(&codec);
}

Test(wire_event, a_map_carries_protocol_version_1_under_v)
{
    ev_codec_t *codec = ev_codec_new();
    ev_codec_set_form(codec, EV_FORM_MAP);
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
    /* The version's absence is named before a field's refusal. */
    cr_assert_eq(s_decode_body(&(body_t){.version = 0, .bad_key = "user_id", .bad = BAD_STR}, &back, &err),
                 EV_REJECT_DECODE);
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

/* Bytes that claim more entries or bytes than a message of a few hundred
 * bytes holds; a decoder must refuse them before the unpacker allocates
 * room for the claim. */
typedef struct {
    const char *bytes;
    size_t len;
} s_bytes_t;

static const s_bytes_t s_claims[] = {
    {"\xdf\xff\xff\xff\xff", 5},                     /* map32 of 4G entries */
    {"\xdd\xff\xff\xff\xff", 5},                     /* array32 of 4G */
    {"\xde\xff\xff", 3},                             /* map16 of 65535 */
    {"\x81\xa1v\xdd\x10\x00\x00\x00", 8},           /* {"v": array of 256M} */
    {"\x82\xa1v\x01\xa1x\xdf\x7f\xff\xff\xff", 10}, /* an unknown key holding a huge map */
    {"\x81\xa1v\xdb\xff\xff\xff\xff", 8},           /* str32 of 4 GiB */
    {"\x81\xa1v\xc6\xff\xff\xff\xf0", 8},           /* bin32 */
    {"\x81\xa1v\xc9\xff\xff\xff\xf0\x01", 9},       /* ext32 */
};
#define S_CLAIMS (sizeof s_claims / sizeof s_claims[0])

Test(wire_event, refuses_lengths_beyond_the_message_without_allocating_them)
{
    static const s_bytes_t cut[] = {
        {"\x81\xa1v\xcb\x00", 5}, /* a float64 cut short */
        {"\x81\xa1v\xc1", 4},      /* a byte msgpack never uses */
    };
    ev_codec_t *codec = ev_codec_new();
    for (size_t i = 0; i < S_CLAIMS + 2; i++) {
        const s_bytes_t *c = i < S_CLAIMS ? &s_claims[i] : &cut[i - S_CLAIMS];
        void *p = s_copy(c->bytes, c->len);
        ev_event_t ev;
        ev_heartbeat_t hb;
        ev_repair_t r;
        ev_error_t err = {0};
        cr_assert_eq(ev_codec_decode_event(codec, p, c->len, &ev, &err), EV_REJECT_DECODE, "case %zu", i);
        cr_assert_eq(ev_codec_decode_heartbeat(codec, p, c->len, &hb, &err), EV_REJECT_DECODE, "case %zu", i);
        cr_assert_eq(ev_codec_decode_repair(codec, p, c->len, &r, &err), EV_REJECT_DECODE, "case %zu", i);
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

Test(wire_event, refuses_a_body_that_is_neither_an_array_nor_a_map)
{
    ev_codec_t *codec = ev_codec_new();
    msgpack_sbuffer sb;
    msgpack_packer pk;
    for (int kind = 0; kind < 5; kind++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (kind) {
        case 0: msgpack_pack_bin(&pk, 2); msgpack_pack_bin_body(&pk, "\x91\x01", 2); break;
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

/* ---- Bodies of several events ---- */

/* Event i of a test body: its own seq and text of its own length. */
static ev_event_t s_event_n(int i)
{
    static char names[64][40];
    ev_event_t ev = s_event();
    ev.partition = 7;
    ev.seq = 100 + i;
    snprintf(names[i % 64], sizeof names[0], "user %.*s", i % 30, "abcdefghijklmnopqrstuvwxyz0123");
    ev.user_name = pt_str(names[i % 64]);
    return ev;
}

/* Appends event i to body: every third as a map, the rest as arrays (a
 * body may hold both forms). */
static void s_append_event(ev_codec_t *codec, msgpack_sbuffer *body, int i)
{
    ev_event_t ev = s_event_n(i);
    ev_codec_set_form(codec, i % 3 == 1 ? EV_FORM_MAP : EV_FORM_ARRAY);
    const void *data;
    size_t len;
    ev_codec_encode_event(codec, &ev, &data, &len);
    msgpack_sbuffer_write(body, data, len);
}

/* A walk over a body: a private copy of it (so the sanitizer sees any read
 * past its end), the offset, and what the last step gave. */
typedef struct {
    ev_codec_t *codec;   /* encodes the test events, walks */
    msgpack_sbuffer sb;  /* the body being built */
    void *body;          /* the copy walked (s_walk_start) */
    size_t len, offset;  /* its bytes, where the walk is */
    ev_event_t ev;       /* the last event */
    const void *raw;     /* the last map's bytes */
    size_t rawlen;
    ev_error_t err;      /* the last refusal */
    size_t ends[64];     /* where map i of s_walk_events ends */
} s_walk_t;

/* A walk whose body holds events 0..n-1 so far. */
static void s_walk_events(s_walk_t *w, int n)
{
    memset(w, 0, sizeof *w);
    w->codec = ev_codec_new();
    msgpack_sbuffer_init(&w->sb);
    for (int i = 0; i < n; i++) {
        s_append_event(w->codec, &w->sb, i);
        w->ends[i] = w->sb.size;
    }
}

/* Walks the first len bytes of what was built (all: SIZE_MAX). */
static void s_walk_start(s_walk_t *w, size_t len)
{
    free(w->body);
    w->len = len < w->sb.size ? len : w->sb.size;
    w->body = s_copy(w->sb.data, w->len);
    w->offset = 0;
}

static ev_next_t s_step(s_walk_t *w)
{
    return ev_codec_next_event(w->codec, w->body, w->len, &w->offset, &w->ev, &w->raw, &w->rawlen, &w->err);
}

static void s_walk_end(s_walk_t *w)
{
    free(w->body);
    msgpack_sbuffer_destroy(&w->sb);
    ev_codec_destroy(&w->codec);
}

Test(wire_body, a_body_of_one_event_is_one_event_then_the_end)
{
    s_walk_t w;
    s_walk_events(&w, 1);
    s_walk_start(&w, SIZE_MAX);
    cr_assert_eq(s_step(&w), EV_NEXT_EVENT, "%s", w.err.detail);
    ev_event_t want = s_event_n(0);
    cr_assert(ev_event_equal(&want, &w.ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    cr_assert_eq(w.raw, w.body, "the event's bytes are the whole body");
    cr_assert_eq(w.rawlen, w.len);
    cr_assert_eq(w.offset, w.len);
    cr_assert_eq(s_step(&w), EV_NEXT_END);
    cr_assert_eq(w.offset, w.len, "the end leaves the offset alone");
    s_walk_end(&w);
}

Test(wire_body, a_body_of_many_events_gives_each_in_order_with_its_own_bytes)
{
    enum { N = 64 };
    s_walk_t w;
    s_walk_events(&w, N);
    s_walk_start(&w, SIZE_MAX);
    for (int i = 0; i < N; i++) {
        size_t start = i ? w.ends[i - 1] : 0;
        cr_assert_eq(s_step(&w), EV_NEXT_EVENT, "event %d: %s", i, w.err.detail);
        ev_event_t want = s_event_n(i), alone;
        cr_assert(ev_event_equal(&want, &w.ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE), "event %d", i);
        cr_assert_eq((const char *)w.raw, (const char *)w.body + start, "event %d starts where the last ended", i);
        cr_assert_eq(w.rawlen, w.ends[i] - start, "event %d: %zu bytes", i, w.rawlen);
        cr_assert_eq(w.offset, w.ends[i]);
        /* Text points into the event's own bytes. */
        cr_assert(w.ev.user_name.ptr >= (const char *)w.raw &&
                  w.ev.user_name.ptr + w.ev.user_name.len <= (const char *)w.raw + w.rawlen);
        /* Its bytes alone are a body of one event, the same event. */
        cr_assert_eq(ev_codec_decode_event(w.codec, w.raw, w.rawlen, &alone, &w.err), EV_OK, "event %d: %s", i,
                     w.err.detail);
        cr_assert(ev_event_equal(&want, &alone, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY | EV_WHERE_WIRE));
    }
    cr_assert_eq(s_step(&w), EV_NEXT_END);
    s_walk_end(&w);
}

Test(wire_body, a_map_that_is_not_an_event_is_lost_alone_and_the_walk_goes_on)
{
    s_walk_t w;
    s_walk_events(&w, 1);
    msgpack_sbuffer bad;
    ev_event_t ev = s_event_n(99);
    s_body(&bad, &ev, &(body_t){.version = 1, .skip = "seq"});
    msgpack_sbuffer_write(&w.sb, bad.data, bad.size);
    msgpack_sbuffer_destroy(&bad);
    size_t bad_end = w.sb.size;
    s_append_event(w.codec, &w.sb, 2);
    s_walk_start(&w, SIZE_MAX);
    cr_assert_eq(s_step(&w), EV_NEXT_EVENT);
    cr_assert_eq(w.ev.seq, 100);
    cr_assert_eq(s_step(&w), EV_NEXT_INVALID);
    cr_assert_eq(w.err.code, EV_REJECT_MISSING);
    cr_assert(s_starts_with(w.err.detail, "seq"), "%s", w.err.detail);
    cr_assert_eq((const char *)w.raw, (const char *)w.body + w.ends[0], "the bad map's own bytes");
    cr_assert_eq(w.rawlen, bad_end - w.ends[0]);
    cr_assert_eq(w.offset, bad_end);
    cr_assert_eq(s_step(&w), EV_NEXT_EVENT, "%s", w.err.detail);
    cr_assert_eq(w.ev.seq, 102, "the event after the bad map");
    cr_assert_eq(s_step(&w), EV_NEXT_END);
    /* A single-event decode refuses the whole body. */
    cr_assert_eq(ev_codec_decode_event(w.codec, w.body, w.len, &ev, &w.err), EV_REJECT_DECODE);
    cr_assert(s_starts_with(w.err.detail, "body:"), "%s", w.err.detail);
    s_walk_end(&w);
}

Test(wire_body, a_corrupt_map_in_the_middle_ends_the_walk_where_it_starts)
{
    /* Each corruption makes the second of three maps impossible to delimit:
     * the third cannot be found, and nothing is allocated for a claim. */
    static const s_bytes_t never = {"\xc1", 1}; /* a byte msgpack never uses */
    for (size_t k = 0; k <= S_CLAIMS; k++) {
        const s_bytes_t *bad = k < S_CLAIMS ? &s_claims[k] : &never;
        s_walk_t w;
        s_walk_events(&w, 1);
        msgpack_sbuffer_write(&w.sb, bad->bytes, bad->len);
        s_append_event(w.codec, &w.sb, 2);
        s_walk_start(&w, SIZE_MAX);
        cr_assert_eq(s_step(&w), EV_NEXT_EVENT, "case %zu", k);
        cr_assert_eq(s_step(&w), EV_NEXT_BROKEN, "case %zu", k);
        cr_assert_eq(w.err.code, EV_REJECT_DECODE);
        cr_assert_eq(w.offset, w.ends[0], "case %zu: the offset stays at the broken map", k);
        char at[64];
        snprintf(at, sizeof at, "at byte %zu", w.ends[0]);
        cr_assert(strstr(w.err.detail, at) != NULL, "case %zu: '%s' does not say where", k, w.err.detail);
        s_walk_end(&w);
    }
}

Test(wire_body, every_truncation_gives_the_whole_events_before_it_then_a_broken_rest)
{
    enum { N = 3 };
    s_walk_t w;
    s_walk_events(&w, N);
    size_t size = w.sb.size;
    for (size_t cut = 0; cut <= size; cut++) {
        s_walk_start(&w, cut);
        size_t whole = 0, expect = 0;
        ev_next_t next;
        while ((next = s_step(&w)) == EV_NEXT_EVENT)
            cr_assert_eq(w.ev.seq, 100 + (int64_t)whole++);
        while (expect < N && w.ends[expect] <= cut)
            expect++;
        cr_assert_eq(whole, expect, "cut at %zu: %zu whole events", cut, whole);
        bool at_boundary = expect > 0 && w.ends[expect - 1] == cut;
        cr_assert_eq(next, at_boundary ? EV_NEXT_END : EV_NEXT_BROKEN, "cut at %zu", cut);
    }
    s_walk_end(&w);
}

Test(wire_body, an_empty_body_is_broken_and_holds_no_event)
{
    s_walk_t w;
    s_walk_events(&w, 0);
    s_walk_start(&w, 0);
    cr_assert_eq(s_step(&w), EV_NEXT_BROKEN);
    cr_assert_eq(w.err.code, EV_REJECT_DECODE);
    cr_assert(s_starts_with(w.err.detail, "body: empty"), "%s", w.err.detail);
    s_walk_end(&w);
}

Test(wire_body, a_single_event_decode_refuses_a_body_of_two)
{
    s_walk_t w;
    s_walk_events(&w, 2);
    ev_event_t back;
    cr_assert_eq(ev_codec_decode_event(w.codec, w.sb.data, w.sb.size, &back, &w.err), EV_REJECT_DECODE);
    cr_assert(strstr(w.err.detail, "after the event") != NULL, "%s", w.err.detail);
    s_walk_end(&w);
}

/* ---- Heartbeats ---- */

Test(wire_heartbeat, round_trips)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {.source = pt_str("gen-0123456789abcdef"), .partition = 1023, .seq = INT64_MAX,
                         .published_at = 1706702400000001LL}, back;
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

/* Encodes hb and decodes it back into *back; the decode's result. */
static ev_reject_t s_heartbeat_round_trip(ev_codec_t *codec, const ev_heartbeat_t *hb, ev_heartbeat_t *back,
                                          bool *has_partitions)
{
    const void *data;
    size_t len;
    ev_codec_encode_heartbeat(codec, hb, &data, &len);
    *has_partitions = memmem(data, len, "partitions", 10) != NULL;
    void *copy = s_copy(data, len);
    ev_error_t err = {0};
    ev_reject_t rc = ev_codec_decode_heartbeat(codec, copy, len, back, &err);
    free(copy);
    return rc;
}

Test(wire_heartbeat, carries_the_publishers_partitions_when_it_says_them)
{
    ev_codec_t *codec = ev_codec_new();
    ev_heartbeat_t hb = {.source = pt_str("gen-0123456789abcdef"), .partition = 3, .seq = 42,
                         .published_at = 1706702400000001LL, .partitions = 32}, back;
    bool has;
    cr_assert_eq(s_heartbeat_round_trip(codec, &hb, &back, &has), EV_OK);
    cr_assert(has);
    cr_assert_eq(back.partitions, 32);
    /* Optional: a heartbeat without it (an older or foreign publisher) is
     * valid and says 0, and the key is left out when there is nothing to say. */
    hb.partitions = 0;
    cr_assert_eq(s_heartbeat_round_trip(codec, &hb, &back, &has), EV_OK);
    cr_assert_not(has);
    cr_assert_eq(back.partitions, 0);
    /* Out of range: refused like any bad number. */
    const int64_t bad[] = {0, -1, EV_PARTITIONS_MAX + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 6);
        s_pack_key(&pk, "v");
        msgpack_pack_int(&pk, 1);
        s_pack_key(&pk, "source");
        s_pack_key(&pk, "gen-x");
        const char *ints[] = {"partition", "seq", "published_at"};
        for (int k = 0; k < 3; k++) {
            s_pack_key(&pk, ints[k]);
            msgpack_pack_int(&pk, 1);
        }
        s_pack_key(&pk, "partitions");
        msgpack_pack_int64(&pk, bad[i]);
        ev_error_t err;
        cr_assert_eq(ev_codec_decode_heartbeat(codec, sb.data, sb.size, &back, &err), EV_REJECT_NUMBER,
                     "partitions %lld", (long long)bad[i]);
        msgpack_sbuffer_destroy(&sb);
    }
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
    ev_heartbeat_t hb = {.source = pt_str("gen-x"), .partition = EV_PARTITIONS_MAX, .seq = 5, .published_at = 1}, back;
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
    ev_heartbeat_t hb = {.source = pt_str("gen-x"), .partition = 1, .seq = 5, .published_at = 1};
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
    ev_repair_t r = {.id = UINT64_MAX, .source = pt_str("file-0123456789abcdef0123456789abcdef"), .partition = 15,
                     .from = 3, .to = INT64_MAX};
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
    ev_repair_t r = {.id = 1, .source = pt_str("gen-x"), .partition = 0, .from = 5, .to = 4}, back;
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
