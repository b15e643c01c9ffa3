/* Fake but realistic shop data: 10000 users with fixed names and unique
 * e-mail addresses, a catalogue of products with fixed prices in cents, and
 * events drawn from them with a seedable generator (gen_rng). Everything is
 * built once at gen_fake_new; making an event allocates nothing. */
#ifndef GEN_FAKE_H
#define GEN_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "evpipe/event.h"
#include "gen_rng.h"

/* Users are numbered 1..GEN_FAKE_USERS. */
#define GEN_FAKE_USERS 10000

/* One product of the catalogue. */
typedef struct {
    int32_t id;          /* product_id, 1..gen_fake_product_count() */
    ev_str_t name;       /* e.g. "Auralis Wireless Earbuds" */
    ev_str_t category;   /* e.g. "Electronics" */
    int64_t price_cents; /* fixed, > 0 */
} gen_product_t;

typedef struct gen_fake_t gen_fake_t;

/* Builds users and catalogue. event_types is EVENT_TYPES ("view,purchase");
 * every name must be an allowed event type. NULL with why on failure. */
gen_fake_t *gen_fake_new(const char *event_types, char *why, size_t whylen);
void gen_fake_destroy(gen_fake_t **self_p);

/* Fills the payload of ev (user, product, event type) from rng and sets
 * event_time to now_us; the identity fields are left as they are. The text
 * points into self, valid until gen_fake_destroy. */
void gen_fake_next(const gen_fake_t *self, gen_rng_t *rng, int64_t now_us, ev_event_t *ev);

/* The name and e-mail of user_id (1..GEN_FAKE_USERS). */
void gen_fake_user(const gen_fake_t *self, int32_t user_id, ev_str_t *name, ev_str_t *email);

size_t gen_fake_product_count(const gen_fake_t *self);
/* Product i, 0 <= i < gen_fake_product_count(). */
const gen_product_t *gen_fake_product(const gen_fake_t *self, size_t i);

/* How many distinct categories the catalogue holds. */
size_t gen_fake_category_count(const gen_fake_t *self);

/* Per mille of events that get each type, in the order of EVENT_TYPES
 * (e.g. view 850, purchase 150); for logs and tests. */
size_t gen_fake_type_count(const gen_fake_t *self);
ev_str_t gen_fake_type(const gen_fake_t *self, size_t i, unsigned *per_mille);

#endif
