/* A small, fast, seedable random number generator for fake data:
 * xoshiro256** seeded through splitmix64. The same seed always gives the
 * same numbers on every platform (no rand(), no libc state). */
#ifndef GEN_RNG_H
#define GEN_RNG_H

#include <stdint.h>

/* The generator's state: a plain value, copied and kept by its owner. */
typedef struct {
    uint64_t s[4]; /* xoshiro256** state, never all zero */
} gen_rng_t;

/* Seeds the state from a 64-bit seed (any value, 0 included). */
void gen_rng_seed(gen_rng_t *rng, uint64_t seed);
/* The next 64 random bits. */
uint64_t gen_rng_next(gen_rng_t *rng);
/* A uniform integer in [0, n); n > 0. Unbiased. */
uint32_t gen_rng_below(gen_rng_t *rng, uint32_t n);
/* One step of splitmix64: a good 64-bit mix of x (also usable as a hash). */
uint64_t gen_rng_mix(uint64_t x);
/* A fresh non-zero seed from the operating system's entropy. */
uint64_t gen_rng_fresh_seed(void);

#endif
