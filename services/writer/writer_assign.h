/* Sharing the partitions out among the live writers: a pure function of the
 * writers' names, so every writer computes the same answer on its own.
 *
 * Fair: with P partitions and N writers, each writer gets P/N rounded down or
 * up. Stable: every (partition, writer) pair has a pseudo-random score (a
 * hash of both); the pairs are taken best score first, a partition going to
 * the first writer that still has room. A writer's place therefore depends
 * on its own scores rather than on where its name sorts, so when one writer
 * joins or leaves, mostly the partitions it takes or gives up move. */
#ifndef WRITER_ASSIGN_H
#define WRITER_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

/* owner[p] (p in [0, partitions)) = the index in names of the writer that
 * partition p goes to. names: n distinct names, in any order (the result
 * does not depend on it). 0, or -1 when n is 0, partitions < 1 or memory
 * runs out. */
int writer_assign(const char *const *names, size_t n, int32_t partitions, int32_t *owner);

#endif
