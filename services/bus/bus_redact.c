/* Redaction of personal data in the tap copy (see bus_redact.h). The body is
 * copied as it is, except the two values, found with bus_scan. */
#include "bus_redact.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_scan.h"

struct bus_redact_t {
    uint8_t key[crypto_shorthash_KEYBYTES];   /* the hash key */
    uint8_t *out;                             /* the rewritten body */
    size_t cap;                               /* its capacity */
    size_t len;                               /* bytes in it */
    const uint8_t *copied;                    /* the input copied up to here */
    bool failed;                              /* out of memory */
};

bus_redact_t *bus_redact_new(const char *key)
{
    if (sodium_init() < 0)
        return NULL;
    bus_redact_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (key && *key)
        crypto_generichash(self->key, sizeof self->key, (const uint8_t *)key, strlen(key), NULL, 0);
    else
        randombytes_buf(self->key, sizeof self->key);
    return self;
}

void bus_redact_destroy(bus_redact_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_redact_t *self = *self_p;
    sodium_memzero(self->key, sizeof self->key);
    free(self->out);
    free(self);
    *self_p = NULL;
}

void bus_redact_text(bus_redact_t *self, const uint8_t *value, size_t len, char out[BUS_REDACT_TEXT_LEN + 1])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, value, len, self->key);
    /* By hand: snprintf per byte cost more than the hash. */
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "redacted-", 9);
    for (size_t i = 0; i < sizeof h; i++) {
        out[9 + 2 * i] = hex[h[i] >> 4];
        out[10 + 2 * i] = hex[h[i] & 15];
    }
    out[BUS_REDACT_TEXT_LEN] = '\0';
}

static void s_append(bus_redact_t *self, const void *data, size_t n)
{
    if (self->failed)
        return;
    if (self->len + n > self->cap) {
        size_t cap = self->cap ? self->cap : 4096;
        while (cap < self->len + n)
            cap *= 2;
        uint8_t *grown = realloc(self->out, cap);
        if (!grown) {
            self->failed = true;
            return;
        }
        self->out = grown;
        self->cap = cap;
    }
    memcpy(self->out + self->len, data, n);
    self->len += n;
}

/* A user_name or user_email value: copy up to it, then its replacement. */
static bool s_replace(void *arg, int map, int which, const uint8_t *value, const uint8_t *value_end)
{
    (void)map;
    bus_redact_t *self = arg;
    const uint8_t *s;
    size_t n;
    if (which < 0)
        return true; /* an event's end */
    /* Not text: the writer refuses the event, but the value may still be
     * the name as bytes (a bin) or hold it deeper; the body stays from
     * taps rather than reach them as published. */
    if (!bus_scan_str(value, value_end, &s, &n))
        return false;
    char text[BUS_REDACT_TEXT_LEN + 1];
    bus_redact_text(self, s, n, text);
    s_append(self, self->copied, (size_t)(value - self->copied));
    uint8_t head = (uint8_t)(0xa0 | BUS_REDACT_TEXT_LEN); /* fixstr: under 32 bytes */
    s_append(self, &head, 1);
    s_append(self, text, BUS_REDACT_TEXT_LEN);
    self->copied = value_end;
    return true;
}

const uint8_t *bus_redact_body(bus_redact_t *self, const uint8_t *body, size_t len, size_t *out_len)
{
    static const bus_scan_key_t keys[] = {BUS_SCAN_KEY("user_name"), BUS_SCAN_KEY("user_email")};
    self->len = 0;
    self->copied = body;
    self->failed = false;
    if (bus_scan_body(body, len, keys, 2, s_replace, self) < 0)
        return NULL;
    if (self->copied == body) {
        *out_len = len;
        return body;
    }
    s_append(self, self->copied, (size_t)(body + len - self->copied));
    if (self->failed)
        return NULL;
    *out_len = self->len;
    return self->out;
}
