/* The writer's latency histogram (see writer_stats.h). Values below 4 us have
 * a bucket each; above, each power of two is cut into 4 equal buckets, so a
 * bucket's upper bound is at most 25% above its lower bound. */
#include "writer_stats.h"

#include <string.h>

int writer_latency_bucket(int64_t us)
{
    if (us < 4)
        return us < 0 ? 0 : (int)us;
    int e = 63 - __builtin_clzll((unsigned long long)us); /* floor(log2(us)), >= 2 */
    int b = 4 * (e - 1) + (int)((us >> (e - 2)) & 3);
    return b < WRITER_LATENCY_BUCKETS ? b : WRITER_LATENCY_BUCKETS - 1;
}

int64_t writer_latency_bucket_upper(int bucket)
{
    if (bucket < 4)
        return bucket;
    int e = bucket / 4 + 1, sub = bucket % 4;
    return ((int64_t)(4 + sub + 1) << (e - 2)) - 1;
}

void writer_latency_add(writer_latency_t *h, int64_t us)
{
    h->buckets[writer_latency_bucket(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

void writer_latency_reset(writer_latency_t *h)
{
    memset(h, 0, sizeof *h);
}

int64_t writer_latency_percentile(const writer_latency_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p > 100)
        p = 100;
    /* The rank of the value wanted, 1-based, rounded up. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (int b = 0; b < WRITER_LATENCY_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            int64_t up = writer_latency_bucket_upper(b);
            return up < h->max_us ? up : h->max_us;
        }
    }
    return h->max_us;
}
