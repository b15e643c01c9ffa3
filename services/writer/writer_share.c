/* Sharing the partitions with the other writers (see writer_share.h). */
#include "writer_share.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "evpipe/log.h"
#include "evpipe/wire.h"
#include "writer_assign.h"
#include "writer_lease.h"

/* How often the live writers are looked at (a NOTIFY makes it at once). */
#define S_REBALANCE_MS 1000
/* After a reconnection, no new partition is taken for this long: the other
 * writers reconnect and take theirs back first. */
#define S_SETTLE_MS 2000
/* Live writers considered, at most. */
#define S_MEMBERS_MAX 1024

struct writer_share_t {
    const evp_config_t *cfg;       /* the writer's settings (PARTITIONS, WRITER_LEASE_MS) */
    writer_db_t *db;               /* the writer's PostgreSQL connection: locks, members, leases */
    writer_streams_t *streams;     /* the writer's streams: checkpoints of partitions taken go there */
    writer_stats_t *stats;         /* the writer's counters (leases_ended) */
    writer_share_hooks_t hooks;    /* what is asked of the writer */
    bool owned[EV_PARTITIONS_MAX]; /* partitions this writer owns (holds the lock of, subscribes to) */
    size_t nowned;                 /* how many */
    char name[WRITER_DB_NAME_MAX]; /* this writer among the writers: its connection's application_name */
    char (*members)[WRITER_DB_NAME_MAX]; /* live writers at the last look (S_MEMBERS_MAX) */
    const char **member_names;     /* pointers into members, for writer_assign */
    size_t nmembers;               /* how many */
    bool sharing;                  /* writer_share_start done, writer_share_leave not yet */
    uint64_t joined_session;       /* the writer_db session whose locks match owned[] (0: none) */
    uint64_t joins;                /* sessions joined */
    int64_t next_rebalance_ms;     /* next look at the live writers */
    int64_t take_after_ms;         /* no new partition is taken before this (after a reconnection) */
    bool rebalance_now;            /* look at the next turn (a notification came, this writer joined) */
};

/* evpipe-writer/<host>/<pid>/<random>: unique, at most 63 printable bytes. */
static void s_make_name(char *out, size_t outlen)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    char clean[29];
    size_t k = 0;
    for (size_t i = 0; host[i] && k < sizeof clean - 1; i++) {
        unsigned char c = (unsigned char)host[i];
        clean[k++] = isalnum(c) || c == '-' || c == '.' || c == '_' ? (char)c : '-';
    }
    clean[k] = '\0';
    uint32_t rnd;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)zclock_mono() * 2654435761u ^ (uint32_t)getpid();
    snprintf(out, outlen, "%s%s/%d/%08x", WRITER_DB_MEMBER_PREFIX, clean, (int)getpid(), (unsigned)rnd);
}

writer_share_t *writer_share_new(const evp_config_t *cfg, writer_db_t *db, writer_streams_t *streams,
                                 writer_stats_t *stats, const writer_share_hooks_t *hooks)
{
    assert(cfg && db && streams && stats && hooks);
    writer_share_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->db = db;
    self->streams = streams;
    self->stats = stats;
    self->hooks = *hooks;
    self->members = calloc(S_MEMBERS_MAX, sizeof *self->members);
    self->member_names = calloc(S_MEMBERS_MAX, sizeof *self->member_names);
    if (!self->members || !self->member_names) {
        writer_share_destroy(&self);
        return NULL;
    }
    s_make_name(self->name, sizeof self->name);
    return self;
}

void writer_share_destroy(writer_share_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    writer_share_t *self = *self_p;
    free(self->members);
    free(self->member_names);
    free(self);
    *self_p = NULL;
}

const char *writer_share_name(const writer_share_t *self)
{
    assert(self);
    return self->name;
}

bool writer_share_owns(const writer_share_t *self, int32_t partition)
{
    assert(self);
    return partition >= 0 && partition < EV_PARTITIONS_MAX && self->owned[partition];
}

size_t writer_share_owned_count(const writer_share_t *self)
{
    assert(self);
    return self->nowned;
}

size_t writer_share_members(const writer_share_t *self)
{
    assert(self);
    return self->nmembers;
}

/* ---- Owning, taking and giving up ---- */

/* Subscribes to the partition (on) or unsubscribes, and counts it owned or not. */
static void s_own(writer_share_t *self, int32_t p, bool on)
{
    self->hooks.subscribe(self->hooks.arg, p, on);
    if (self->owned[p] != on)
        self->nowned = on ? self->nowned + 1 : self->nowned - 1;
    self->owned[p] = on;
}

static void s_given_up(const writer_share_t *self, const int32_t *parts, size_t n, const char *reason)
{
    for (size_t i = 0; i < n; i++)
        evp_info("partition given up", "partition=%d owned=%zu reason=%s", (int)parts[i], self->nowned, reason);
}

/* Takes the locks of parts that are free, loads their checkpoints and the
 * publishers' heads, subscribes, and asks for what is missing. How many were
 * taken, or -1 when PostgreSQL failed (nothing taken). */
static int s_take_partitions(writer_share_t *self, const int32_t *parts, size_t n, int64_t now)
{
    bool got[EV_PARTITIONS_MAX];
    int32_t taken[EV_PARTITIONS_MAX];
    size_t k = 0;
    char why[EVP_WHY_MAX];
    if (writer_db_lock(self->db, now, parts, n, got, why, sizeof why) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (got[i])
            taken[k++] = parts[i];
    if (k == 0)
        return 0;
    /* A failure drops the connection, and the locks with it. */
    if (writer_db_load_checkpoints(self->db, taken, k, self->streams, now, why, sizeof why) != 0)
        return -1;
    for (size_t i = 0; i < k; i++)
        s_own(self, taken[i], true);
    size_t streams = self->hooks.taken(self->hooks.arg, taken, k, now);
    for (size_t i = 0; i < k; i++)
        evp_info("partition taken", "partition=%d owned=%zu", (int)taken[i], self->nowned);
    evp_debug("partitions taken", "count=%zu streams=%zu", k, streams);
    return (int)k;
}

/* Gives parts up: unsubscribes, commits the batch, forgets them, releases
 * their locks. 0, or -1 when the batch could not be committed (nothing
 * changed; tried again later). */
static int s_release_partitions(writer_share_t *self, const int32_t *parts, size_t n, int64_t now,
                                const char *reason)
{
    if (n == 0)
        return 0;
    /* The session first, so that a reconnection re-takes these locks too. */
    if (!writer_share_ready(self, now))
        return -1;
    for (size_t i = 0; i < n; i++)
        s_own(self, parts[i], false);
    if (!self->hooks.commit(self->hooks.arg, now)) {
        for (size_t i = 0; i < n; i++)
            s_own(self, parts[i], true);
        return -1;
    }
    self->hooks.forget(self->hooks.arg, parts, n);
    char why[EVP_WHY_MAX];
    /* A failure drops the connection: the locks are gone then too. */
    writer_db_unlock(self->db, now, parts, n, why, sizeof why);
    s_given_up(self, parts, n, reason);
    return 0;
}

int writer_share_take(writer_share_t *self, int32_t partition)
{
    assert(self);
    if (partition < 0 || partition >= self->cfg->partitions)
        return -1;
    if (self->owned[partition])
        return 0;
    int64_t now = zclock_mono();
    if (!writer_share_ready(self, now) || s_take_partitions(self, &partition, 1, now) < 0)
        return -1;
    return self->owned[partition] ? 0 : -1;
}

int writer_share_release(writer_share_t *self, int32_t partition)
{
    assert(self);
    if (partition < 0 || partition >= self->cfg->partitions)
        return -1;
    if (!self->owned[partition])
        return 0;
    return s_release_partitions(self, &partition, 1, zclock_mono(), "asked");
}

/* ---- Sessions ---- */

/* A new session: LISTEN, end the previous session if it lingers, take the
 * locks of the partitions owned again (forgetting those another writer took
 * meanwhile), reload their checkpoints, tell the others. */
static bool s_join(writer_share_t *self, int64_t now)
{
    char why[EVP_WHY_MAX];
    int ended = 0;
    if (writer_db_join(self->db, now, why, sizeof why) != 0 ||
        writer_lease_session(self->db, self->cfg->writer_lease_ms, now, why, sizeof why) != 0 ||
        writer_lease_renew(self->db, self->name, self->cfg->writer_lease_ms, now, &ended, why, sizeof why) != 0)
        return false;
    self->stats->leases_ended += (uint64_t)ended;
    int32_t mine[EV_PARTITIONS_MAX], kept[EV_PARTITIONS_MAX], lost[EV_PARTITIONS_MAX];
    size_t n = 0, nkept = 0, nlost = 0;
    for (int32_t p = 0; p < self->cfg->partitions; p++)
        if (self->owned[p])
            mine[n++] = p;
    if (n > 0) {
        bool got[EV_PARTITIONS_MAX];
        if (writer_db_lock(self->db, now, mine, n, got, why, sizeof why) != 0)
            return false;
        for (size_t i = 0; i < n; i++) {
            if (got[i])
                kept[nkept++] = mine[i];
            else
                lost[nlost++] = mine[i];
        }
        for (size_t i = 0; i < nlost; i++)
            s_own(self, lost[i], false);
        if (nlost > 0) {
            self->hooks.forget(self->hooks.arg, lost, nlost);
            s_given_up(self, lost, nlost, "taken_by_another_writer");
        }
        /* Another writer may have committed in them meanwhile. */
        if (nkept > 0 && writer_db_load_checkpoints(self->db, kept, nkept, self->streams, now, why, sizeof why) != 0)
            return false;
    }
    self->joined_session = writer_db_session(self->db);
    if (self->joins++ > 0) {
        self->take_after_ms = now + S_SETTLE_MS;
        evp_info("rejoined the writers after a reconnection", "kept=%zu lost=%zu", nkept, nlost);
    }
    writer_db_notify(self->db);
    self->rebalance_now = true;
    return true;
}

bool writer_share_ready(writer_share_t *self, int64_t now)
{
    assert(self);
    if (!writer_db_ensure(self->db, now))
        return false;
    if (!self->sharing || self->joined_session == writer_db_session(self->db))
        return true;
    return s_join(self, now);
}

bool writer_share_joined(const writer_share_t *self)
{
    assert(self);
    return !self->sharing || self->joined_session == writer_db_session(self->db);
}

/* ---- Looking at the other writers ---- */

bool writer_share_start(writer_share_t *self, int64_t now)
{
    assert(self);
    self->sharing = true;
    self->next_rebalance_ms = now + S_REBALANCE_MS;
    return writer_share_rebalance(self, now);
}

void writer_share_check_notify(writer_share_t *self)
{
    assert(self);
    if (self->sharing && writer_db_notified(self->db))
        self->rebalance_now = true;
}

bool writer_share_due(writer_share_t *self, int64_t now)
{
    assert(self);
    if (!self->sharing || (!self->rebalance_now && now < self->next_rebalance_ms))
        return false;
    self->rebalance_now = false;
    self->next_rebalance_ms = now + S_REBALANCE_MS;
    return true;
}

bool writer_share_rebalance(writer_share_t *self, int64_t now)
{
    assert(self);
    if (!writer_share_ready(self, now))
        return false;
    char why[EVP_WHY_MAX];
    size_t n = 0;
    int ended = 0;
    /* The lease first: a writer whose lease ran out is no member any more. */
    if (writer_lease_renew(self->db, self->name, self->cfg->writer_lease_ms, now, &ended, why, sizeof why) != 0)
        return false;
    if (ended > 0) {
        self->stats->leases_ended += (uint64_t)ended;
        writer_db_notify(self->db);
    }
    if (writer_db_members(self->db, now, self->members, S_MEMBERS_MAX, &n, why, sizeof why) != 0)
        return false;
    int32_t me = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(self->members[i], self->name) == 0)
            me = (int32_t)i;
    if (me < 0) {
        /* Its own connection is there; only a name PostgreSQL changed gets here. */
        if (n == S_MEMBERS_MAX)
            return false;
        snprintf(self->members[n], sizeof self->members[n], "%s", self->name);
        me = (int32_t)n++;
    }
    for (size_t i = 0; i < n; i++)
        self->member_names[i] = self->members[i];
    int32_t partitions = self->cfg->partitions;
    int32_t owner[EV_PARTITIONS_MAX];
    if (writer_assign(self->member_names, n, partitions, owner) != 0)
        return false;
    int32_t give[EV_PARTITIONS_MAX], want[EV_PARTITIONS_MAX];
    size_t ngive = 0, nwant = 0, share = 0;
    for (int32_t p = 0; p < partitions; p++) {
        share += owner[p] == me;
        if (self->owned[p] && owner[p] != me)
            give[ngive++] = p;
        else if (!self->owned[p] && owner[p] == me)
            want[nwant++] = p;
    }
    if (n != self->nmembers)
        evp_info("writers seen", "live=%zu share=%zu owned=%zu", n, share, self->nowned);
    self->nmembers = n;
    if (ngive > 0) {
        if (s_release_partitions(self, give, ngive, now, "rebalance") != 0)
            return false;
        writer_db_notify(self->db);
    }
    if (nwant > 0 && now >= self->take_after_ms && s_take_partitions(self, want, nwant, now) < 0)
        return false;
    return true;
}

void writer_share_leave(writer_share_t *self)
{
    assert(self);
    if (!self->sharing)
        return;
    self->sharing = false;
    int32_t mine[EV_PARTITIONS_MAX];
    size_t n = 0;
    for (int32_t p = 0; p < self->cfg->partitions; p++)
        if (self->owned[p]) {
            s_own(self, p, false);
            mine[n++] = p;
        }
    char why[EVP_WHY_MAX];
    writer_lease_release(self->db, self->name);
    if (writer_db_leave(self->db, zclock_mono(), why, sizeof why) != 0) {
        char reason[sizeof why];
        evp_warn("could not leave the writers cleanly; the locks go with the connection", "reason=\"%s\"",
                 evp_log_text(reason, sizeof reason, why, strlen(why)));
    }
    s_given_up(self, mine, n, "stopping");
}
