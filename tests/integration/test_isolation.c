/* No stuck peer stops the pipeline: two writers share the partitions at
 * 5,000 events/s while one of them is frozen (SIGSTOP) or cut off from
 * the bus and PostgreSQL (a network namespace: another host); a peer
 * subscribes on the writer endpoint and never reads; a peer host vanishes.
 * The other writer goes on at full rate, the stuck one's lease runs out and
 * its partitions move, the bus disconnects whoever stopped reading, and at
 * the end the table equals the archive: nothing lost, nothing twice. The
 * figures measured are printed. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#include "netns.h"
#include "testkit.h"

#define RATE 5000
#define PARTITIONS 16
/* Short settings so that the tests take seconds, not minutes. */
#define LEASE_ENV "WRITER_LEASE_MS=3000"
#define STALL_ENV "BUS_STALL_TIMEOUT_MS=3000"
#define SETTLE_MS 60000
#define DRAIN_MS 180000

typedef struct {
    tk_world_t *w;
    tk_netns_t *ns;      /* the other host, when the test uses one */
    pid_t relay;         /* PostgreSQL for the other host */
    int relay_port;      /* where it listens (the namespace's side of this host) */
    int bus_metrics;     /* the bus's METRICS_PORT */
    char bus_metrics_env[32];
    tk_proc_t *bus;
    tk_proc_t *repair;   /* ingest --watch: answers repair requests */
    tk_proc_t *gen;
    tk_proc_t *writers[2];
    tk_proc_t *tap;      /* a tap on the other host */
} rig_t;

/* The test's rig: global, so that .fini tears it down even after a failed
 * assertion (no service, relay or namespace outlives a test). */
static rig_t s_rig;

static void s_show(const tk_proc_t *p)
{
    tk_show(p, 6000);
}

static void s_show_all(const rig_t *r)
{
    s_show(r->bus);
    s_show(r->repair);
    s_show(r->writers[0]);
    s_show(r->writers[1]);
}

/* Rewrites a tcp://127.0.0.1:port endpoint to the same port on ip. */
static void s_move_endpoint(char *ep, size_t len, const char *ip)
{
    const char *port = strrchr(ep, ':');
    char copy[16];
    snprintf(copy, sizeof copy, "%s", port ? port + 1 : "0");
    snprintf(ep, len, "tcp://%s:%s", ip, copy);
}

/* The bus and the repair service; with ns, every endpoint on the host's
 * side of the namespace's link, so that both hosts reach them. */
static void s_setup(rig_t *r, const char *name, bool with_ns)
{
    memset(r, 0, sizeof *r);
    r->relay = -1;
    if (with_ns) {
        char why[256];
        r->ns = tk_netns_new(why, sizeof why);
        if (!r->ns)
            cr_skip_test("needs a network namespace: %s", why);
    }
    r->w = tk_world_new(name);
    if (r->ns) {
        const char *ip = tk_netns_host_ip(r->ns);
        s_move_endpoint(r->w->pub_ep, sizeof r->w->pub_ep, ip);
        s_move_endpoint(r->w->sub_ep, sizeof r->w->sub_ep, ip);
        s_move_endpoint(r->w->tap_ep, sizeof r->w->tap_ep, ip);
        s_move_endpoint(r->w->replay_ep, sizeof r->w->replay_ep, ip);
        r->relay_port = tk_free_port();
        r->relay = tk_relay_start(ip, r->relay_port, atoi(r->w->pg_port));
    }
    r->bus_metrics = tk_free_port();
    snprintf(r->bus_metrics_env, sizeof r->bus_metrics_env, "METRICS_PORT=%d", r->bus_metrics);
    const char *bus_env[] = {STALL_ENV, "TCP_KEEPALIVE_S=2", r->bus_metrics_env, NULL};
    r->bus = tk_start(r->w, "bus", NULL, bus_env);
    cr_assert(tk_wait_log(r->bus, "bus ready", 15000), "the bus did not start");
    const char *watch[] = {"--watch", r->w->data_dir, NULL};
    r->repair = tk_start(r->w, "ingest", watch, NULL);
}

static void s_teardown(rig_t *r)
{
    if (!r->w)
        return;
    tk_proc_t **all[] = {&r->gen, &r->tap, &r->writers[0], &r->writers[1], &r->repair, &r->bus};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tk_signal(*all[i], SIGCONT);
        tk_signal(*all[i], SIGTERM);
        tk_wait_exit(*all[i], 20000);
        tk_proc_destroy(all[i]);
    }
    if (r->relay > 0) {
        kill(r->relay, SIGKILL);
        waitpid(r->relay, NULL, 0);
    }
    tk_netns_destroy(&r->ns);
    tk_world_destroy(&r->w);
    r->relay = -1;
}

static void s_fini(void)
{
    s_teardown(&s_rig);
}

/* Writer i, on the other host when elsewhere (PostgreSQL through the relay). */
static void s_writer(rig_t *r, int i, bool elsewhere)
{
    static char ns_env[64], host_env[64], port_env[32];
    const char *here[] = {LEASE_ENV, NULL};
    const char *there[] = {LEASE_ENV, ns_env, host_env, port_env, NULL};
    if (elsewhere) {
        snprintf(ns_env, sizeof ns_env, "TK_NETNS=%s", tk_netns_name(r->ns));
        snprintf(host_env, sizeof host_env, "POSTGRES_HOST=%s", tk_netns_host_ip(r->ns));
        snprintf(port_env, sizeof port_env, "POSTGRES_PORT=%d", r->relay_port);
    }
    r->writers[i] = tk_start(r->w, "writer", NULL, elsewhere ? there : here);
    if (!tk_wait_log(r->writers[i], "subscribed to the bus", 60000)) {
        s_show(r->writers[i]);
        cr_fatal("writer %d did not start", i);
    }
}

/* Waits until two writers own 8 partitions each. */
static void s_wait_shared(rig_t *r, const char *after)
{
    const char *sql = "SELECT count(*) FROM (SELECT writer_pid FROM writer_assignments WHERE writer_pid IS NOT NULL"
                      " GROUP BY writer_pid HAVING count(*) = 8) t";
    int64_t start = tk_now_ms();
    if (tk_wait_sql_int(r->w->conn, sql, 2, SETTLE_MS) != 2) {
        s_show_all(r);
        cr_fatal("the partitions were not shared out %d s after %s", SETTLE_MS / 1000, after);
    }
    fprintf(stderr, "isolation: shared out %lld ms after %s\n", (long long)(tk_now_ms() - start), after);
}

/* The rig with two writers on this host, sharing the partitions. */
static void s_two_writers(rig_t *r, const char *name)
{
    s_setup(r, name, false);
    s_writer(r, 0, false);
    s_writer(r, 1, false);
    s_wait_shared(r, "two writers started");
}

static void s_generator(rig_t *r)
{
    char rate[16];
    snprintf(rate, sizeof rate, "%d", RATE);
    const char *args[] = {"--rate", rate, NULL};
    r->gen = tk_start(r->w, "generator", args, NULL);
    cr_assert(tk_wait_log(r->gen, "generator started", 15000), "the generator did not start");
}

static int64_t s_committed(rig_t *r)
{
    return tk_sql_int(r->w->conn, "SELECT count(*) FROM events");
}

/* Stops the generator, waits until the table holds the archive, compares. */
static void s_check_table_equals_archive(rig_t *r)
{
    tk_signal(r->gen, SIGTERM);
    cr_assert(tk_wait_exit(r->gen, 30000) && tk_exit_code(r->gen) == 0, "the generator did not stop cleanly");
    size_t archived = 0, rows = 0;
    char *archive = tk_archive_as_copy(r->w->archive_dir, &archived);
    int64_t n = tk_wait_sql_int(r->w->conn, "SELECT count(*) FROM events", (int64_t)archived, DRAIN_MS);
    if (n != (int64_t)archived)
        s_show_all(r);
    cr_assert_eq(n, (int64_t)archived, "committed %lld of %zu archived events", (long long)n, archived);
    char *table = tk_events_as_copy(r->w->conn, &rows);
    cr_assert_eq(rows, archived, "rows with an identity");
    cr_assert(strcmp(table, archive) == 0, "the table differs from the archive");
    cr_assert_eq(tk_sql_int(r->w->conn, "SELECT count(*) FROM gaps"), 0, "gaps");
    free(table);
    free(archive);
}

static bool s_log_has(const tk_proc_t *p, const char *text)
{
    char *log = tk_read_file(p->log, NULL);
    bool has = strstr(log, text) != NULL;
    free(log);
    return has;
}

/* A stuck writer (stuck() starts it, unstuck() ends it) for ms: at least
 * min_committed events committed meanwhile; afterwards both share again and
 * the table equals the archive. */
static void s_stuck_writer(rig_t *r, void (*stuck)(rig_t *), void (*unstuck)(rig_t *), int ms,
                           int64_t min_committed, const char *what)
{
    s_wait_shared(r, "two writers started");
    s_generator(r);
    tk_sleep_ms(3000);
    int64_t before = s_committed(r), start = tk_now_ms();
    stuck(r);
    tk_sleep_ms(ms);
    int64_t during = s_committed(r) - before, took = tk_now_ms() - start;
    unstuck(r);
    fprintf(stderr, "isolation: %s for %lld ms at %d events/s: %lld events committed meanwhile (%.0f/s)\n", what,
            (long long)took, RATE, (long long)during, (double)during * 1000.0 / (double)took);
    if (during < min_committed)
        s_show_all(r);
    cr_assert_geq(during, min_committed, "%s: only %lld events committed in %d ms", what, (long long)during, ms);
    cr_assert(s_log_has(r->writers[0], "ended the session of a writer whose lease ran out"),
              "the other writer never ended the stuck writer's session");
    s_wait_shared(r, "the stuck writer came back");
    tk_sleep_ms(3000);
    s_check_table_equals_archive(r);
    cr_assert(s_log_has(r->writers[1], "rejoined the writers after a reconnection"),
              "the stuck writer did not rejoin");
}

static void s_freeze(rig_t *r)
{
    tk_signal(r->writers[1], SIGSTOP);
}

static void s_thaw(rig_t *r)
{
    tk_signal(r->writers[1], SIGCONT);
}

Test(isolation, a_writer_frozen_for_ten_seconds_loses_its_partitions_and_rejoins, .timeout = 400, .fini = s_fini)
{
    rig_t *const r = &s_rig;
    s_setup(r, "isolation_frozen", false);
    s_writer(r, 0, false);
    s_writer(r, 1, false);
    s_stuck_writer(r, s_freeze, s_thaw, 10000, 35000, "one writer frozen");
}

/* The other side of the lease: a busy writer is not a stuck one. The
 * generator makes a backlog faster than two writers can commit it, so
 * each reads the bus for seconds on end; both must renew their leases
 * meanwhile, or each ends the other's session in the middle of a batch. */
Test(isolation, writers_working_through_a_backlog_keep_their_leases, .timeout = 400, .fini = s_fini)
{
    rig_t *const r = &s_rig;
    s_two_writers(r, "isolation_backlog");
    const char *args[] = {"--rate", "max", "--count", "400000", NULL};
    r->gen = tk_start(r->w, "generator", args, NULL);
    cr_assert(tk_wait_log(r->gen, "generator started", 15000), "the generator did not start");
    cr_assert(tk_wait_exit(r->gen, 120000) && tk_exit_code(r->gen) == 0, "the generator did not finish");
    int64_t start = tk_now_ms();
    s_check_table_equals_archive(r);
    fprintf(stderr, "isolation: 400,000 events at full speed committed %lld ms after the generator finished\n",
            (long long)(tk_now_ms() - start));
    for (int i = 0; i < 2; i++) {
        bool ended = s_log_has(r->writers[i], "ended the session of a writer whose lease ran out"),
             lost = s_log_has(r->writers[i], "lost the PostgreSQL connection");
        if (ended || lost)
            s_show_all(r);
        cr_assert_not(ended, "writer %d ended a busy writer's session: its lease was not renewed", i);
        cr_assert_not(lost, "writer %d lost its connection while working through the backlog", i);
    }
}

static void s_cut(rig_t *r)
{
    tk_netns_cut(r->ns, true);
}

static void s_heal(rig_t *r)
{
    tk_netns_cut(r->ns, false);
}

Test(isolation, a_writer_on_a_host_cut_off_for_twenty_seconds_loses_its_partitions, .timeout = 400, .fini = s_fini)
{
    rig_t *const r = &s_rig;
    s_setup(r, "isolation_cut", true);
    s_writer(r, 0, false);
    s_writer(r, 1, true);
    s_stuck_writer(r, s_cut, s_heal, 20000, 60000, "one writer's host cut off");
}

static double s_bus_metric(rig_t *r, const char *name)
{
    return tk_scrape(r->bus_metrics, name);
}

Test(isolation, a_peer_that_subscribes_and_never_reads_is_disconnected_and_writers_go_on, .timeout = 300, .fini = s_fini)
{
    rig_t *const r = &s_rig;
    s_two_writers(r, "isolation_peer");
    s_generator(r);
    tk_sleep_ms(3000);
    /* Every partition, a small queue, never read, never back once cut off. */
    void *ctx = zmq_ctx_new();
    void *peer = zmq_socket(ctx, ZMQ_SUB);
    int hwm = 10, never = -1, linger = 0;
    zmq_setsockopt(peer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(peer, ZMQ_RECONNECT_IVL, &never, sizeof never);
    zmq_setsockopt(peer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(peer, ZMQ_SUBSCRIBE, "p", 1);
    cr_assert_eq(zmq_connect(peer, r->w->sub_ep), 0);
    int64_t before = s_committed(r), start = tk_now_ms(), cut_ms = -1;
    while (tk_now_ms() - start < 15000) {
        if (cut_ms < 0 && s_bus_metric(r, "evpipe_bus_stalled_disconnects_total") >= 1)
            cut_ms = tk_now_ms() - start;
        tk_sleep_ms(100);
    }
    int64_t during = s_committed(r) - before, took = tk_now_ms() - start;
    fprintf(stderr, "isolation: a peer that never reads: disconnected after %lld ms (stall timeout 3000 ms, its "
                    "buffers fill first); %lld events committed in %lld ms (%.0f/s at %d/s)\n",
            (long long)cut_ms, (long long)during, (long long)took, (double)during * 1000.0 / (double)took, RATE);
    cr_assert_geq(cut_ms, 0, "the peer was never disconnected");
    cr_assert_eq(s_bus_metric(r, "evpipe_bus_stalled_disconnects_total"), 1.0);
    /* Generous: the rate over 15 s with the peer stalling the first part. */
    cr_assert_geq(during, (int64_t)(0.7 * RATE * 15), "writers slowed down: %lld events in %lld ms",
                  (long long)during, (long long)took);
    zmq_close(peer);
    zmq_ctx_term(ctx);
    s_check_table_equals_archive(r);
}

Test(isolation, a_peer_whose_host_vanishes_is_noticed_by_tcp_keepalive, .timeout = 120, .fini = s_fini)
{
    rig_t *const r = &s_rig;
    s_setup(r, "isolation_keepalive", true);
    char ns_env[64];
    snprintf(ns_env, sizeof ns_env, "TK_NETNS=%s", tk_netns_name(r->ns));
    const char *env[] = {ns_env, NULL};
    r->tap = tk_start(r->w, "tap", NULL, env);
    int64_t end = tk_now_ms() + 20000;
    while (s_bus_metric(r, "evpipe_bus_tap_subscribers") != 1.0 && tk_now_ms() < end)
        tk_sleep_ms(100);
    cr_assert_eq(s_bus_metric(r, "evpipe_bus_tap_subscribers"), 1.0, "the tap on the other host never joined");
    cr_assert(tk_netns_holds(r->ns, r->tap->pid), "the tap does not run on the other host");
    /* Nothing on its way (the welcome acknowledged): keepalive's case.
     * Data on its way is the stall detector's (the cut writer above). */
    tk_sleep_ms(1000);
    /* Gone without a word: no FIN, no reset, nothing to send to it. */
    tk_netns_cut(r->ns, true);
    int64_t start = tk_now_ms();
    end = start + 30000;
    while (s_bus_metric(r, "evpipe_bus_tap_subscribers") != 0.0 && tk_now_ms() < end)
        tk_sleep_ms(100);
    double left = s_bus_metric(r, "evpipe_bus_tap_subscribers");
    fprintf(stderr, "isolation: a vanished peer noticed after %lld ms (TCP_KEEPALIVE_S=2)\n",
            (long long)(tk_now_ms() - start));
    cr_assert_eq(left, 0.0, "the bus still counts the vanished tap after 30 s");
}
