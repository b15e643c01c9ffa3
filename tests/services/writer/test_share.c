/* Unit tests of writer_share without a database: the writer's name, and
 * that what cannot be taken, given up or left is neither counted as owned
 * nor asked of the writer (no subscription, commit or forgetting). The
 * taking and giving up themselves are checked against PostgreSQL in
 * test_core.c and the integration tests. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "evpipe/config.h"
#include "evpipe/log.h"
#include "evpipe/wire.h"
#include "testkit.h"
#include "writer_share.h"

#define PARTITIONS 4

static evp_config_t cfg;
static writer_db_t *db;
static writer_streams_t *streams;
static writer_stats_t stats;
static writer_share_t *share;
static int calls; /* hooks called */

static void s_subscribe(void *arg, int32_t partition, bool on)
{
    (void)arg, (void)partition, (void)on;
    calls++;
}

static bool s_commit(void *arg, int64_t now_ms)
{
    (void)arg, (void)now_ms;
    calls++;
    return true;
}

static void s_forget(void *arg, const int32_t *partitions, size_t n)
{
    (void)arg, (void)partitions, (void)n;
    calls++;
}

static size_t s_taken(void *arg, const int32_t *partitions, size_t n, int64_t now_ms)
{
    (void)arg, (void)partitions, (void)n, (void)now_ms;
    calls++;
    return 0;
}

static const writer_share_hooks_t hooks = {s_subscribe, s_commit, s_forget, s_taken, NULL};

static void setup(void)
{
    evp_log_init("writer", EVP_LOG_ERROR);
    evp_config_defaults(&cfg);
    cfg.partitions = PARTITIONS;
    /* Nothing listens there: every connection attempt fails at once. */
    snprintf(cfg.postgres_host, sizeof cfg.postgres_host, "127.0.0.1");
    cfg.postgres_port = tk_free_port();
    db = writer_db_new(&cfg, NULL);
    streams = writer_streams_new(16, 1024 * 1024, 4);
    cr_assert(db && streams);
    share = writer_share_new(&cfg, db, streams, &stats, &hooks);
    cr_assert_not_null(share);
    calls = 0;
}

static void teardown(void)
{
    writer_share_destroy(&share);
    cr_assert_null(share);
    writer_share_destroy(&share); /* NULL is accepted */
    writer_streams_destroy(&streams);
    writer_db_destroy(&db);
}

TestSuite(writer_share, .init = setup, .fini = teardown, .timeout = 30);

Test(writer_share, names_the_writer_uniquely_in_printable_bytes_under_the_prefix)
{
    writer_share_t *other = writer_share_new(&cfg, db, streams, &stats, &hooks);
    cr_assert_not_null(other);
    const char *name = writer_share_name(share);
    cr_assert_eq(strncmp(name, WRITER_DB_MEMBER_PREFIX, strlen(WRITER_DB_MEMBER_PREFIX)), 0, "%s", name);
    cr_assert_lt(strlen(name), WRITER_DB_NAME_MAX);
    for (const char *c = name; *c; c++)
        cr_assert(isprint((unsigned char)*c) && *c != '"' && *c != '\\', "%s", name);
    cr_assert_str_neq(name, writer_share_name(other));
    writer_share_destroy(&other);
}

Test(writer_share, owns_nothing_before_taking)
{
    cr_assert_eq(writer_share_owned_count(share), 0);
    cr_assert_eq(writer_share_members(share), 0);
    for (int32_t p = -1; p <= EV_PARTITIONS_MAX; p++)
        cr_assert_not(writer_share_owns(share, p), "partition %d", (int)p);
}

Test(writer_share, refuses_partitions_outside_partitions_without_asking_anyone)
{
    cr_assert_eq(writer_share_take(share, -1), -1);
    cr_assert_eq(writer_share_take(share, PARTITIONS), -1);
    cr_assert_eq(writer_share_release(share, -1), -1);
    cr_assert_eq(writer_share_release(share, PARTITIONS), -1);
    cr_assert_eq(writer_share_owned_count(share), 0);
    cr_assert_eq(calls, 0);
}

Test(writer_share, a_take_without_postgresql_owns_and_subscribes_nothing)
{
    cr_assert_eq(writer_share_take(share, 1), -1);
    cr_assert_not(writer_share_owns(share, 1));
    cr_assert_eq(writer_share_owned_count(share), 0);
    cr_assert_eq(calls, 0);
    /* Giving up what is not owned needs nothing either. */
    cr_assert_eq(writer_share_release(share, 1), 0);
    cr_assert_eq(calls, 0);
}

Test(writer_share, shares_nothing_before_it_starts)
{
    cr_assert(writer_share_joined(share));
    writer_share_check_notify(share);
    cr_assert_not(writer_share_due(share, INT64_MAX));
    writer_share_leave(share); /* not sharing: nothing to give up, nobody told */
    cr_assert_eq(calls, 0);
    cr_assert_eq(writer_share_owned_count(share), 0);
}

Test(writer_share, a_start_without_postgresql_keeps_sharing_and_owns_nothing)
{
    cr_assert_not(writer_share_start(share, 0));
    cr_assert_eq(writer_share_owned_count(share), 0);
    /* It shares: the next look is due after a second. */
    cr_assert_not(writer_share_due(share, 999));
    cr_assert(writer_share_due(share, 1000));
    cr_assert_not(writer_share_due(share, 1001));
    cr_assert_eq(calls, 0);
}
