/* Unit tests of the latency histogram. */
#include <criterion/criterion.h>

#include "writer_stats.h"

Test(writer_stats, buckets_grow_by_at_most_a_quarter)
{
    for (int b = 4; b < WRITER_LATENCY_BUCKETS - 1; b++) {
        int64_t lo = writer_latency_bucket_upper(b - 1) + 1, hi = writer_latency_bucket_upper(b);
        cr_assert_eq(writer_latency_bucket(lo), b);
        cr_assert_eq(writer_latency_bucket(hi), b);
        cr_assert(hi - lo + 1 <= lo / 4 + 1, "bucket %d: %lld..%lld", b, (long long)lo, (long long)hi);
    }
    cr_assert_eq(writer_latency_bucket(-5), 0, "a negative latency (clock skew) counts as 0");
    cr_assert_eq(writer_latency_bucket(INT64_MAX), WRITER_LATENCY_BUCKETS - 1);
}

Test(writer_stats, percentiles_come_from_the_buckets)
{
    writer_latency_t h = {0};
    cr_assert_eq(writer_latency_percentile(&h, 50), 0);
    for (int i = 0; i < 90; i++)
        writer_latency_add(&h, 1000);
    for (int i = 0; i < 10; i++)
        writer_latency_add(&h, 200000);
    int64_t p50 = writer_latency_percentile(&h, 50), p99 = writer_latency_percentile(&h, 99);
    cr_assert(p50 >= 1000 && p50 <= 1250, "p50 %lld", (long long)p50);
    cr_assert(p99 >= 200000 && p99 <= 250000, "p99 %lld", (long long)p99);
    cr_assert_eq(writer_latency_percentile(&h, 100), 200000, "the top is the largest value seen");
    writer_latency_reset(&h);
    cr_assert_eq(h.count, 0);
}
