/* Stand-ins for the bus and the repair service, events and row checks for
 * the writer's integration tests (see peers.h). */
#include "peers.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

#include "evpipe/copy.h"
#include "evpipe/wire.h"
#include "writer_migrate.h"

/* ---- Events ---- */

/* Text of the events made, reused in turn (a test uses an event right away). */
static char s_pool[1 << 20];
static size_t s_pool_used;

static ev_str_t s_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static ev_str_t s_text(const char *fmt, ...)
{
    if (s_pool_used > sizeof s_pool - 512)
        s_pool_used = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s_pool + s_pool_used, 512, fmt, ap);
    va_end(ap);
    ev_str_t s = {s_pool + s_pool_used, (uint32_t)n};
    s_pool_used += (size_t)n + 1;
    return s;
}

ev_event_t wt_event(const char *source, int32_t partition, int64_t seq)
{
    ev_event_t ev = {
        .user_id = (int32_t)(seq * 31 + partition),
        /* Text that needs escaping in COPY, and a character beyond ASCII. */
        .user_name = s_text("Zoë \\ Tab\t%lld", (long long)seq),
        .user_email = s_text("user%lld@example.com", (long long)seq),
        .event_type = s_text("%s", seq % 3 ? "view" : "purchase"),
        .product_id = (int32_t)(seq % 1000),
        .product_name = s_text("Product %lld", (long long)(seq % 97)),
        .product_category = s_text("%s", seq % 2 ? "Books" : "Home & Garden"),
        .product_price = (seq * 101) % 1000000,
        .event_time = 1700000000000000LL + seq * 1000001LL,
        .source = s_text("%s", source),
        .partition = partition,
        .seq = seq,
        .published_at = ev_now_us(),
    };
    return ev;
}

int32_t wt_user_in(int32_t p, int32_t partitions)
{
    for (int32_t u = 1;; u++)
        if ((int32_t)ev_partition_of(u, (uint32_t)partitions) == p)
            return u;
}

/* ---- The bus ---- */

struct wt_bus_t {
    void *ctx;          /* ZeroMQ context */
    void *xpub;         /* bound where the bus would be */
    ev_codec_t *codec;  /* encodes bodies */
    int subscriptions;  /* subscription messages seen */
};

wt_bus_t *wt_bus_new(const char *endpoint)
{
    wt_bus_t *self = calloc(1, sizeof *self);
    cr_assert_not_null(self);
    self->ctx = zmq_ctx_new();
    self->xpub = zmq_socket(self->ctx, ZMQ_XPUB);
    self->codec = ev_codec_new();
    int one = 1, hwm = 1000000, linger = 0;
    zmq_setsockopt(self->xpub, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    zmq_setsockopt(self->xpub, ZMQ_XPUB_NODROP, &one, sizeof one);
    zmq_setsockopt(self->xpub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->xpub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->xpub, ZMQ_XPUB_WELCOME_MSG, "!welcome", 8);
    cr_assert_eq(zmq_bind(self->xpub, endpoint), 0, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return self;
}

void wt_bus_destroy(wt_bus_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wt_bus_t *self = *self_p;
    zmq_close(self->xpub);
    zmq_ctx_term(self->ctx);
    ev_codec_destroy(&self->codec);
    free(self);
    *self_p = NULL;
}

bool wt_bus_wait_subscriptions(wt_bus_t *self, int count, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    for (;;) {
        /* Polled at least once, so a timeout of 0 still reads what is there. */
        int64_t left = end - tk_now_ms();
        zmq_pollitem_t item = {self->xpub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)(left <= 0 ? 0 : left < 100 ? left : 100)) > 0) {
            char buf[64];
            int n = zmq_recv(self->xpub, buf, sizeof buf, ZMQ_DONTWAIT);
            if (n > 0 && buf[0] == 1)
                self->subscriptions++;
            continue;
        }
        if (self->subscriptions >= count)
            return true;
        if (tk_now_ms() >= end)
            return false;
    }
}

void wt_bus_send_raw(wt_bus_t *self, int n, const void *const *data, const size_t *len)
{
    for (int i = 0; i < n; i++)
        cr_assert(zmq_send(self->xpub, data[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0, "send: %s",
                  zmq_strerror(zmq_errno()));
}

void wt_bus_publish_body(wt_bus_t *self, int32_t partition, const void *body, size_t len)
{
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, (uint32_t)partition, EV_MSG_EVENT);
    const void *parts[] = {topic, body};
    size_t lens[] = {tlen, len};
    wt_bus_send_raw(self, 2, parts, lens);
}

void wt_bus_publish(wt_bus_t *self, const ev_event_t *ev)
{
    const void *body;
    size_t len;
    ev_codec_encode_event(self->codec, ev, &body, &len);
    wt_bus_publish_body(self, ev->partition, body, len);
}

void wt_bus_body_add(wt_bus_t *self, ev_buf_t *body, const ev_event_t *ev)
{
    const void *map;
    size_t len;
    ev_codec_encode_event(self->codec, ev, &map, &len);
    ev_buf_append(body, map, len);
}

void wt_bus_publish_range(wt_bus_t *self, const char *source, int32_t partition, int64_t first, int64_t last)
{
    for (int64_t seq = first; seq <= last; seq++) {
        ev_event_t ev = wt_event(source, partition, seq);
        wt_bus_publish(self, &ev);
    }
}

void wt_bus_heartbeat(wt_bus_t *self, const char *source, int32_t partition, int64_t seq)
{
    ev_heartbeat_t hb = {.source = {source, (uint32_t)strlen(source)},
                         .partition = partition,
                         .seq = seq,
                         .published_at = ev_now_us()};
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, (uint32_t)partition, EV_MSG_HEARTBEAT);
    const void *body;
    size_t len;
    ev_codec_encode_heartbeat(self->codec, &hb, &body, &len);
    const void *parts[] = {topic, body};
    size_t lens[] = {tlen, len};
    wt_bus_send_raw(self, 2, parts, lens);
}

/* ---- The repair service ---- */

struct wt_router_t {
    void *ctx;             /* ZeroMQ context */
    void *router;          /* bound where ingest would be */
    ev_codec_t *codec;     /* decodes requests, encodes answers */
    char peer[256];        /* identity of the last asker */
    size_t peer_len;
    ev_repair_t last;      /* the last request (its source points into source) */
    char source[80];       /* its source */
};

wt_router_t *wt_router_new(const char *endpoint)
{
    wt_router_t *self = calloc(1, sizeof *self);
    cr_assert_not_null(self);
    self->ctx = zmq_ctx_new();
    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    self->codec = ev_codec_new();
    int linger = 0;
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_bind(self->router, endpoint), 0, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return self;
}

void wt_router_destroy(wt_router_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wt_router_t *self = *self_p;
    zmq_close(self->router);
    zmq_ctx_term(self->ctx);
    ev_codec_destroy(&self->codec);
    free(self);
    *self_p = NULL;
}

bool wt_router_recv(wt_router_t *self, wt_request_t *req, int timeout_ms)
{
    zmq_pollitem_t item = {self->router, 0, ZMQ_POLLIN, 0};
    int64_t end = tk_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - tk_now_ms();
        if (left <= 0)
            return false;
        if (zmq_poll(&item, 1, (long)(left < 100 ? left : 100)) > 0)
            break;
    }
    char kind[16], body[1024];
    int n = zmq_recv(self->router, self->peer, sizeof self->peer, 0);
    cr_assert(n > 0);
    self->peer_len = (size_t)n;
    n = zmq_recv(self->router, kind, sizeof kind, 0);
    cr_assert(n == 6 && memcmp(kind, "REPAIR", 6) == 0, "a REPAIR request was expected");
    int blen = zmq_recv(self->router, body, sizeof body, 0);
    cr_assert(blen > 0);
    ev_error_t err;
    cr_assert_eq(ev_codec_decode_repair(self->codec, body, (size_t)blen, &self->last, &err), EV_OK, "%s",
                 err.detail);
    snprintf(self->source, sizeof self->source, "%.*s", (int)self->last.source.len, self->last.source.ptr);
    self->last.source = (ev_str_t){self->source, (uint32_t)strlen(self->source)};
    req->from = self->last.from;
    req->to = self->last.to;
    req->partition = self->last.partition;
    snprintf(req->source, sizeof req->source, "%s", self->source);
    return true;
}

static void s_router_send(wt_router_t *self, const char *kind, const void *body, size_t len)
{
    cr_assert(zmq_send(self->router, self->peer, self->peer_len, ZMQ_SNDMORE) >= 0);
    cr_assert(zmq_send(self->router, kind, strlen(kind), ZMQ_SNDMORE) >= 0);
    cr_assert(zmq_send(self->router, body, len, 0) >= 0);
}

void wt_router_answer(wt_router_t *self, bool (*has)(int64_t seq))
{
    wt_router_answer_as(self, has, true, self->last.to);
}

void wt_router_answer_as(wt_router_t *self, bool (*has)(int64_t seq), bool found, int64_t head)
{
    ev_repair_t end = self->last;
    end.sent = 0;
    end.found_source = found;
    end.head = head;
    for (int64_t seq = end.from; found && seq <= end.to; seq++) {
        if (!has(seq))
            continue;
        ev_event_t ev = wt_event(self->source, end.partition, seq);
        const void *body;
        size_t len;
        ev_codec_encode_event(self->codec, &ev, &body, &len);
        s_router_send(self, "EVENT", body, len);
        end.sent++;
    }
    const void *body;
    size_t len;
    ev_codec_encode_repair(self->codec, &end, &body, &len);
    s_router_send(self, "END", body, len);
}

/* ---- Checks ---- */

char *wt_http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    cr_assert(write(fd, req, (size_t)n) == n);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    ssize_t got;
    while (len < cap - 1 && (got = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fd);
    return out;
}

void wt_begin_as_another_writer(PGconn *c, const char *source, int32_t partition, int64_t first, int64_t last)
{
    char sql[1200];
    snprintf(sql, sizeof sql, "COPY events (%s) FROM STDIN", ev_copy_columns());
    tk_sql_exec(c, "BEGIN");
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COPY_IN, "%s", PQerrorMessage(c));
    PQclear(r);
    ev_buf_t rows;
    ev_buf_init(&rows);
    for (int64_t seq = first; seq <= last; seq++) {
        ev_event_t ev = wt_event(source, partition, seq);
        ev_copy_append_row(&rows, &ev);
    }
    cr_assert_eq(PQputCopyData(c, rows.data, (int)rows.len), 1);
    cr_assert_eq(PQputCopyEnd(c, NULL), 1);
    ev_buf_free(&rows);
    r = PQgetResult(c);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    char values[3][64];
    snprintf(values[0], sizeof values[0], "%s", source);
    snprintf(values[1], sizeof values[1], "%d", (int)partition);
    snprintf(values[2], sizeof values[2], "%lld", (long long)last);
    const char *vals[] = {values[0], values[1], values[2]};
    r = PQexecParams(c, "INSERT INTO checkpoints (source, partition, seq) VALUES ($1, $2, $3)"
                        " ON CONFLICT (source, partition) DO UPDATE SET seq = GREATEST(checkpoints.seq, EXCLUDED.seq)",
                     3, NULL, vals, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
}

int64_t wt_rows(PGconn *c)
{
    return tk_sql_int(c, "SELECT count(*) FROM events");
}

/* Parses PostgreSQL's text of field f into ev. */
static void s_parse(ev_event_t *ev, int f, const char *v)
{
    const ev_field_t *fd = &ev_fields[f];
    char *p = (char *)ev + fd->offset;
    size_t len = strlen(v);
    ev_error_t err;
    ev_reject_t rc = EV_OK;
    switch (fd->kind) {
    case EV_KIND_I32:
        rc = ev_parse_i32(v, len, (int32_t *)p, fd->name, &err);
        break;
    case EV_KIND_I64:
        rc = ev_parse_i64(v, len, (int64_t *)p, fd->name, &err);
        break;
    case EV_KIND_PRICE:
        rc = ev_parse_price(v, len, (int64_t *)p, fd->name, &err);
        break;
    case EV_KIND_TIME:
        rc = ev_parse_time(v, len, (int64_t *)p, fd->name, &err);
        break;
    case EV_KIND_STR:
        *(ev_str_t *)p = (ev_str_t){v, (uint32_t)len};
        break;
    }
    cr_assert_eq(rc, EV_OK, "column %s: %s", fd->name, err.detail);
}

void wt_check_rows(PGconn *c, const char *source, int32_t partition, int64_t first, int64_t last,
                   bool (*want)(int64_t seq))
{
    char sql[1500], part[16];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM events WHERE source = $1 AND partition = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq",
             ev_copy_columns());
    char from[24], to[24];
    snprintf(part, sizeof part, "%d", (int)partition);
    snprintf(from, sizeof from, "%lld", (long long)first);
    snprintf(to, sizeof to, "%lld", (long long)last);
    const char *vals[] = {source, part, from, to};
    PGresult *r = PQexecParams(c, sql, 4, NULL, vals, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int row = 0;
    for (int64_t seq = first; seq <= last; seq++) {
        if (want && !want(seq))
            continue;
        cr_assert(row < PQntuples(r), "%s/%d: seq %lld is missing", source, (int)partition, (long long)seq);
        ev_event_t got = {0};
        int col = 0;
        for (int f = 0; f < EV_FIELD_COUNT; f++)
            if (ev_fields[f].where & (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY))
                s_parse(&got, f, PQgetvalue(r, row, col++));
        ev_event_t ev = wt_event(source, partition, seq);
        cr_assert(ev_event_equal(&got, &ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY),
                  "%s/%d: the row of seq %lld differs from the event (got seq %lld, user_name '%s')", source,
                  (int)partition, (long long)seq, (long long)got.seq, PQgetvalue(r, row, 1));
        row++;
    }
    cr_assert_eq(row, PQntuples(r), "%s/%d: %d rows expected, %d found", source, (int)partition, row,
                 PQntuples(r));
    PQclear(r);
}

char *wt_log(const tk_proc_t *p)
{
    return tk_read_file(p->log, NULL);
}

int wt_log_count(const tk_proc_t *p, const char *text)
{
    char *log = wt_log(p);
    int n = 0;
    for (const char *at = log; (at = strstr(at, text)) != NULL; at += strlen(text))
        n++;
    free(log);
    return n;
}

tk_world_t *wt_world_migrated(const char *name)
{
    tk_world_t *w = tk_world_new(name);
    int applied;
    bool lost;
    char why[512];
    cr_assert_eq(writer_migrate_apply(w->conn, &applied, &lost, why, sizeof why), 0, "%s", why);
    return w;
}
