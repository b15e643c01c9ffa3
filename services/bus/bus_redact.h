/* What the tap endpoint carries instead of personal data: with TAP_REDACT=1
 * (the default) the bus replaces each event's user_name and user_email, in
 * the copy for taps only, by "redacted-" and the 16 hex digits of a keyed
 * hash of the value: SipHash-2-4 (libsodium's crypto_shorthash), a PRF made
 * for short inputs (keyed BLAKE2b cost about 0.3 us more per value). Equal
 * values stay equal, so one can still follow a user; without the key the
 * values cannot be recovered or guessed from a list. The key is derived from
 * TAP_REDACT_KEY, or random for each run of the bus when that is empty.
 * Writers always get the events as published. */
#ifndef EVPIPE_BUS_REDACT_H
#define EVPIPE_BUS_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bus_redact_t bus_redact_t;

/* key: any text (hashed into the key), or "" for a random key. NULL when
 * libsodium cannot start or memory runs out. */
bus_redact_t *bus_redact_new(const char *key);
void bus_redact_destroy(bus_redact_t **self_p);

/* Rewrites body with the two fields replaced. Returns the new body (valid
 * until the next call) and its length in *out_len; body itself when nothing
 * was replaced (a heartbeat); NULL when the body cannot be read, or a
 * user_name or user_email in it is not text (then it must not reach taps). */
const uint8_t *bus_redact_body(bus_redact_t *self, const uint8_t *body, size_t len, size_t *out_len);

/* The replacement text of a value (tests): "redacted-" and 16 hex digits. */
#define BUS_REDACT_TEXT_LEN 25
void bus_redact_text(bus_redact_t *self, const uint8_t *value, size_t len, char out[BUS_REDACT_TEXT_LEN + 1]);

#endif
