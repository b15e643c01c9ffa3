/* xoshiro256** with splitmix64 seeding (see gen_rng.h). Both are public
 * domain algorithms by Blackman and Vigna. */
#include "gen_rng.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t gen_rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void gen_rng_seed(gen_rng_t *rng, uint64_t seed)
{
    /* Successive splitmix64 outputs: never all zero for any seed. */
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        rng->s[i] = gen_rng_mix(x);
        x += 0x9e3779b97f4a7c15ULL;
    }
}

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gen_rng_next(gen_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

uint32_t gen_rng_below(gen_rng_t *rng, uint32_t n)
{
    /* Lemire's multiply-and-reject: one multiplication, rare retries. */
    uint64_t m = (gen_rng_next(rng) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)-n % n;
        while (low < threshold) {
            m = (gen_rng_next(rng) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

uint64_t gen_rng_fresh_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        /* No entropy source: time and pid are enough for fake data. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = gen_rng_mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^ (uint64_t)getpid();
    }
    /* GENERATOR_SEED is at most INT64_MAX and 0 means "fresh": keep the
     * logged seed in that range so it can be given back to reproduce a run. */
    seed &= (uint64_t)INT64_MAX;
    return seed ? seed : 1;
}
