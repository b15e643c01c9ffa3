/* Sharing the partitions out among the live writers (see writer_assign.h). */
#include "writer_assign.h"

#include <stdlib.h>
#include <string.h>

/* One (partition, writer) pair and its score. */
typedef struct {
    uint64_t score;    /* higher is taken first */
    int32_t rank;      /* the writer's place in name order: breaks ties */
    int32_t partition; /* the partition */
    int32_t writer;    /* index in names */
} s_pair_t;

/* A name and where it is in names, to find its rank. */
typedef struct {
    const char *name; /* the name */
    int32_t writer;   /* index in names */
} s_named_t;

static uint64_t s_mix(uint64_t x)
{
    /* splitmix64's finaliser. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t s_name_hash(const char *name)
{
    /* FNV-1a 64. */
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return s_mix(h);
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_named_t *)a)->name, ((const s_named_t *)b)->name);
}

static int s_by_score(const void *a, const void *b)
{
    const s_pair_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    /* Equal scores (rare): by name, then partition, so the order never
     * depends on the order of names. */
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

int writer_assign(const char *const *names, size_t n, int32_t partitions, int32_t *owner)
{
    if (n == 0 || partitions < 1 || n > (size_t)INT32_MAX)
        return -1;
    size_t npairs = n * (size_t)partitions;
    s_pair_t *pairs = malloc(npairs * sizeof *pairs);
    int32_t *count = calloc(n, sizeof *count);
    s_named_t *named = malloc(n * sizeof *named);
    if (!pairs || !count || !named) {
        free(pairs);
        free(count);
        free(named);
        return -1;
    }
    for (size_t w = 0; w < n; w++)
        named[w] = (s_named_t){names[w], (int32_t)w};
    qsort(named, n, sizeof *named, s_by_name);
    size_t k = 0;
    for (size_t r = 0; r < n; r++) {
        int32_t w = named[r].writer;
        uint64_t h = s_name_hash(names[w]);
        for (int32_t p = 0; p < partitions; p++)
            pairs[k++] = (s_pair_t){s_mix(h ^ s_mix((uint64_t)p + 0x9e3779b97f4a7c15ull)), (int32_t)r, p, w};
    }
    free(named);
    qsort(pairs, npairs, sizeof *pairs, s_by_score);

    /* Every writer gets `floor` partitions; `extra` of them one more. */
    int32_t floor_share = partitions / (int32_t)n;
    int32_t extra = partitions % (int32_t)n, extra_used = 0;
    for (int32_t p = 0; p < partitions; p++)
        owner[p] = -1;
    int32_t left = partitions;
    for (size_t i = 0; i < npairs && left > 0; i++) {
        const s_pair_t *pr = &pairs[i];
        if (owner[pr->partition] >= 0)
            continue;
        int32_t c = count[pr->writer];
        if (c < floor_share || (c == floor_share && extra_used < extra)) {
            if (c == floor_share)
                extra_used++;
            count[pr->writer]++;
            owner[pr->partition] = pr->writer;
            left--;
        }
    }
    free(pairs);
    free(count);
    return 0;
}
