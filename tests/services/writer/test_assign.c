/* Unit tests of sharing partitions among writers: every writer gets its
 * share rounded down or up, the answer does not depend on the order the
 * names come in, and a writer joining or leaving moves few partitions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "writer_assign.h"

#define NAMES_MAX 16

static char names_buf[NAMES_MAX][64];
static const char *names[NAMES_MAX];

/* Writer names like the real ones, from a fixed seed (the same every run). */
static void s_names(uint32_t seed)
{
    for (int i = 0; i < NAMES_MAX; i++) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t pid = seed % 100000;
        seed = seed * 1664525u + 1013904223u;
        snprintf(names_buf[i], sizeof names_buf[i], "evpipe-writer/host%02d/%u/%08x", i, pid, seed);
        names[i] = names_buf[i];
    }
}

static void s_check_fair(const int32_t *owner, size_t n, int32_t partitions)
{
    int32_t count[NAMES_MAX] = {0};
    for (int32_t p = 0; p < partitions; p++) {
        cr_assert(owner[p] >= 0 && (size_t)owner[p] < n, "partition %d has no owner", (int)p);
        count[owner[p]]++;
    }
    int32_t lo = partitions / (int32_t)n, hi = lo + (partitions % (int32_t)n != 0);
    for (size_t w = 0; w < n; w++)
        cr_assert(count[w] == lo || count[w] == hi, "%d partitions, %zu writers: writer %zu owns %d", (int)partitions,
                  n, w, (int)count[w]);
}

static int32_t s_moved(const int32_t *before, const char *const *names_before, const int32_t *after,
                       const char *const *names_after, int32_t partitions)
{
    int32_t moved = 0;
    for (int32_t p = 0; p < partitions; p++)
        moved += strcmp(names_before[before[p]], names_after[after[p]]) != 0;
    return moved;
}

Test(writer_assign, every_writer_gets_its_share_rounded_down_or_up)
{
    int32_t owner[1024];
    for (uint32_t seed = 1; seed <= 5; seed++) {
        s_names(seed);
        for (size_t n = 1; n <= 12; n++) {
            for (int32_t partitions = 1; partitions <= 70; partitions++) {
                cr_assert_eq(writer_assign(names, n, partitions, owner), 0);
                s_check_fair(owner, n, partitions);
            }
            cr_assert_eq(writer_assign(names, n, 1024, owner), 0);
            s_check_fair(owner, n, 1024);
        }
    }
}

Test(writer_assign, one_writer_owns_every_partition)
{
    s_names(7);
    int32_t owner[16];
    cr_assert_eq(writer_assign(names, 1, 16, owner), 0);
    for (int p = 0; p < 16; p++)
        cr_assert_eq(owner[p], 0);
}

Test(writer_assign, refuses_no_writers_or_no_partitions)
{
    s_names(7);
    int32_t owner[4];
    cr_assert_eq(writer_assign(names, 0, 4, owner), -1);
    cr_assert_eq(writer_assign(names, 2, 0, owner), -1);
}

Test(writer_assign, the_answer_does_not_depend_on_the_order_of_the_names)
{
    s_names(11);
    const char *reversed[5];
    for (int i = 0; i < 5; i++)
        reversed[i] = names[4 - i];
    int32_t a[64], b[64];
    cr_assert_eq(writer_assign(names, 5, 64, a), 0);
    cr_assert_eq(writer_assign(reversed, 5, 64, b), 0);
    for (int p = 0; p < 64; p++)
        cr_assert_str_eq(names[a[p]], reversed[b[p]], "partition %d", p);
    /* And the same again: nothing random in it. */
    cr_assert_eq(writer_assign(names, 5, 64, b), 0);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
}

/* Over many sets of names, the partitions moved when one writer joins (or
 * leaves) are close to the fewest possible (the joiner's share); sharing by
 * partition % N in name order would move most of them. */
static void s_check_stable(int32_t partitions, double bound)
{
    int32_t before[1024], after[1024];
    long moved = 0, least = 0, moved_leaving = 0;
    for (uint32_t seed = 1; seed <= 100; seed++) {
        s_names(seed * 7919u);
        for (size_t n = 1; n < 8; n++) {
            cr_assert_eq(writer_assign(names, n, partitions, before), 0);
            cr_assert_eq(writer_assign(names, n + 1, partitions, after), 0);
            moved += s_moved(before, names, after, names, partitions);
            least += partitions / (int32_t)(n + 1);
            /* The first writer leaves the n + 1. */
            int32_t left[1024];
            cr_assert_eq(writer_assign(names + 1, n, partitions, left), 0);
            moved_leaving += s_moved(after, names, left, names + 1, partitions);
        }
    }
    cr_assert_leq((double)moved, bound * (double)least, "joining: %ld moved, %ld at least", moved, least);
    cr_assert_leq((double)moved_leaving, bound * (double)least, "leaving: %ld moved, %ld at least", moved_leaving,
                  least);
}

Test(writer_assign, a_writer_joining_or_leaving_moves_few_partitions)
{
    s_check_stable(16, 1.6);
    s_check_stable(64, 1.35);
    s_check_stable(1024, 1.15);
}
