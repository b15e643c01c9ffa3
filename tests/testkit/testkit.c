/* Test kit for the integration tests (see testkit.h). */
#include "testkit.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h> /* cr_fatal */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "evpipe/copy.h"
#include "netns.h"
#include "evpipe/csv.h"

int64_t tk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The first port the kernel hands out to outgoing connections: a port taken
 * below it cannot be taken meanwhile by a connection of any process. */
static int s_ephemeral_low(void)
{
    int low = 32768, high;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

/* Whether port can be bound on 127.0.0.1 now. */
static bool s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        cr_fatal("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int tk_free_port(void)
{
    /* Below the ephemeral range (where a port just released can go to the
     * next outgoing connection), from 10000 up, at random. */
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)tk_now_ms();
    int low = 10000, high = s_ephemeral_low();
    for (int i = 0; high > low && i < 1000; i++) {
        int port = low + (int)(rand_r(&seed) % (unsigned)(high - low));
        if (s_port_free(port))
            return port;
    }
    cr_fatal("no free port on 127.0.0.1 below %d", high);
    return -1;
}

static const char *s_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* ---- World ---- */

static PGconn *s_connect(const tk_world_t *w, const char *db)
{
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *vals[] = {w->pg_host, w->pg_port, w->pg_user, db, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK)
        cr_fatal("cannot connect to the test cluster (%s:%s, run through scripts/test): %s", w->pg_host,
                 w->pg_port, PQerrorMessage(c));
    return c;
}

tk_world_t *tk_world_new(const char *name)
{
    const char *port = getenv("EVPIPE_TEST_PGPORT");
    if (!port)
        cr_fatal("EVPIPE_TEST_PGPORT is not set: integration tests run through scripts/test, which starts "
                 "their PostgreSQL");
    return tk_world_new_on(name, port);
}

tk_world_t *tk_world_new_on(const char *name, const char *port)
{
    tk_world_t *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    snprintf(w->pg_host, sizeof w->pg_host, "%s", s_env("EVPIPE_TEST_PGHOST", "127.0.0.1"));
    snprintf(w->pg_port, sizeof w->pg_port, "%s", port);
    snprintf(w->pg_user, sizeof w->pg_user, "%s", s_env("EVPIPE_TEST_PGUSER", "postgres"));

    snprintf(w->db, sizeof w->db, "t_%.40s_%d", name, (int)getpid());
    for (char *p = w->db; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';

    snprintf(w->dir, sizeof w->dir, "%s/evpipe-test-XXXXXX", s_env("TMPDIR", "/tmp"));
    if (!mkdtemp(w->dir))
        cr_fatal("mkdtemp: %s", strerror(errno));
    snprintf(w->archive_dir, sizeof w->archive_dir, "%s/archive", w->dir);
    snprintf(w->state_dir, sizeof w->state_dir, "%s/state", w->dir);
    snprintf(w->data_dir, sizeof w->data_dir, "%s/data", w->dir);
    mkdir(w->data_dir, 0755);

    snprintf(w->pub_ep, sizeof w->pub_ep, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(w->sub_ep, sizeof w->sub_ep, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(w->tap_ep, sizeof w->tap_ep, "tcp://127.0.0.1:%d", tk_free_port());
    snprintf(w->replay_ep, sizeof w->replay_ep, "tcp://127.0.0.1:%d", tk_free_port());

    PGconn *admin = s_connect(w, "postgres");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", w->db);
    tk_sql_exec(admin, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", w->db);
    tk_sql_exec(admin, sql);
    PQfinish(admin);
    w->conn = s_connect(w, w->db);
    return w;
}

void tk_world_reconnect(tk_world_t *w)
{
    PQfinish(w->conn);
    w->conn = s_connect(w, w->db);
}

ev_event_t tk_event(const char *source, int32_t partition, int64_t seq)
{
    return (ev_event_t){
        .user_id = (int32_t)(seq * 100 + partition),
        .user_name = {"Some, One", 9},
        .user_email = {"one@example.com", 15},
        .event_type = {"view", 4},
        .product_id = 7,
        .product_name = {"Thing", 5},
        .product_category = {"Cat", 3},
        .product_price = 1234,
        .event_time = 1732240453000000 + seq,
        .source = {source, (uint32_t)strlen(source)},
        .partition = partition,
        .seq = seq,
    };
}

PGconn *tk_world_connect(tk_world_t *w)
{
    return s_connect(w, w->db);
}

void tk_world_destroy(tk_world_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tk_world_t *w = *self_p;
    PQfinish(w->conn);
    if (!getenv("EVPIPE_TEST_KEEP")) {
        PGconn *admin = s_connect(w, "postgres");
        char sql[256];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", w->db);
        tk_sql_exec(admin, sql);
        PQfinish(admin);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "testkit: could not remove %s\n", w->dir);
    }
    free(w);
    *self_p = NULL;
}

/* ---- Processes ---- */

/* ---- Cleaning up after a failed assertion ----
 * A failed cr_assert ends the test function at once, so its own teardown
 * never runs. Every process and cluster a test starts is also noted here and
 * stopped when the test's process exits. */

#define TK_MAX_CHILDREN 256
static pid_t s_children[TK_MAX_CHILDREN];
static char s_clusters[16][256];

static void s_cleanup_at_exit(void)
{
    for (int i = 0; i < TK_MAX_CHILDREN; i++)
        if (s_children[i] > 0) {
            kill(s_children[i], SIGCONT);
            kill(s_children[i], SIGKILL);
            waitpid(s_children[i], NULL, 0);
        }
    for (int i = 0; i < 16; i++)
        if (s_clusters[i][0]) {
            char cmd[12288];
            snprintf(cmd, sizeof cmd,
                     "bash -c 'source \"%s/scripts/lib/common.sh\" && evp_pg_stop %s/data' >/dev/null 2>&1; rm -rf '%s'",
                     s_env("EVPIPE_SOURCE_DIR", "."), s_clusters[i], s_clusters[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "testkit: could not remove %s\n", s_clusters[i]);
        }
}

static void s_track(pid_t pid, bool add)
{
    static bool registered;
    if (!registered) {
        atexit(s_cleanup_at_exit);
        registered = true;
    }
    for (int i = 0; i < TK_MAX_CHILDREN; i++)
        if (add ? s_children[i] == 0 : s_children[i] == pid) {
            s_children[i] = add ? pid : 0;
            return;
        }
}

static void s_track_cluster(const char *dir, bool add)
{
    s_track(0, false); /* registers the exit handler */
    for (int i = 0; i < 16; i++)
        if (add ? !s_clusters[i][0] : strcmp(s_clusters[i], dir) == 0) {
            snprintf(s_clusters[i], sizeof s_clusters[i], "%s", add ? dir : "");
            return;
        }
}

tk_proc_t *tk_start(tk_world_t *w, const char *service, const char *const *args, const char *const *extra_env)
{
    tk_proc_t *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    static int counter;
    snprintf(p->name, sizeof p->name, "%s", service);
    snprintf(p->log, sizeof p->log, "%s/%s-%d.log", w->dir, service, ++counter);
    char bin[512];
    snprintf(bin, sizeof bin, "%s/evpipe-%s", s_env("EVPIPE_BIN_DIR", "build/bin"), service);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        setenv("POSTGRES_HOST", w->pg_host, 1);
        setenv("POSTGRES_PORT", w->pg_port, 1);
        setenv("POSTGRES_USER", w->pg_user, 1);
        setenv("POSTGRES_DB", w->db, 1);
        setenv("POSTGRES_PASSWORD", "unused-by-trust-auth", 1);
        setenv("BUS_PUBLISH_ENDPOINT", w->pub_ep, 1);
        setenv("BUS_SUBSCRIBE_ENDPOINT", w->sub_ep, 1);
        setenv("BUS_TAP_ENDPOINT", w->tap_ep, 1);
        setenv("REPLAY_ENDPOINT", w->replay_ep, 1);
        setenv("ARCHIVE_DIR", w->archive_dir, 1);
        setenv("STATE_DIR", w->state_dir, 1);
        for (int i = 0; extra_env && extra_env[i]; i++)
            putenv((char *)extra_env[i]);
        tk_netns_enter_from_env();
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    s_track(pid, true);
    return p;
}

void tk_show(const tk_proc_t *p, size_t tail)
{
    if (!p)
        return;
    char *log = tk_read_file(p->log, NULL);
    size_t len = strlen(log);
    fprintf(stderr, "---- %s %d (last %zu bytes) ----\n%s\n", p->name, (int)p->pid, tail,
            len > tail ? log + len - tail : log);
    free(log);
}

void tk_signal(tk_proc_t *p, int sig)
{
    if (p && p->pid > 0)
        kill(p->pid, sig);
}

void tk_stop(tk_proc_t **p, int timeout_ms)
{
    tk_signal(*p, SIGTERM);
    cr_assert(tk_wait_exit(*p, timeout_ms), "%s did not stop in %d ms", (*p)->name, timeout_ms);
    cr_assert_eq(tk_exit_code(*p), 0, "%s exited with %d", (*p)->name, tk_exit_code(*p));
    tk_proc_destroy(p);
}

void tk_kill(tk_proc_t **p, int timeout_ms)
{
    tk_signal(*p, SIGKILL);
    cr_assert(tk_wait_exit(*p, timeout_ms), "%s did not die in %d ms", (*p)->name, timeout_ms);
    tk_proc_destroy(p);
}

bool tk_wait_exit(tk_proc_t *p, int timeout_ms)
{
    if (!p || p->pid == 0)
        return true;
    int64_t end = tk_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            s_track(p->pid, false);
            p->pid = 0;
            return true;
        }
        if (tk_now_ms() >= end)
            return false;
        tk_sleep_ms(20);
    }
}

int tk_exit_code(const tk_proc_t *p)
{
    if (p->pid != 0 || !WIFEXITED(p->status))
        return -1;
    return WEXITSTATUS(p->status);
}

int tk_finish(tk_proc_t *p, tk_proc_t **out)
{
    int rc = tk_exit_code(p);
    if (out)
        *out = p;
    else
        tk_proc_destroy(&p);
    return rc;
}

void tk_proc_destroy(tk_proc_t **pp)
{
    if (!pp || !*pp)
        return;
    tk_proc_t *p = *pp;
    if (p->pid > 0) {
        kill(p->pid, SIGCONT);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        s_track(p->pid, false);
    }
    free(p);
    *pp = NULL;
}

char *tk_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (len)
            *len = 0;
        return strdup("");
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    if (len)
        *len = got;
    return buf;
}

bool tk_wait_log(tk_proc_t *p, const char *text, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    for (;;) {
        char *log = tk_read_file(p->log, NULL);
        bool found = strstr(log, text) != NULL;
        free(log);
        if (found)
            return true;
        if (tk_now_ms() >= end)
            return false;
        tk_sleep_ms(50);
    }
}

/* ---- SQL ---- */

int64_t tk_sql_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        cr_fatal("query failed: %s: %s", sql, msg);
    }
    int64_t v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void tk_sql_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        cr_fatal("command failed: %s: %s", sql, msg);
    }
    PQclear(r);
}

int64_t tk_wait_sql_int(PGconn *c, const char *sql, int64_t want, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms, v;
    for (;;) {
        PGresult *r = PQexec(c, sql);
        v = (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
                ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                : -1;
        PQclear(r);
        if (v == want || tk_now_ms() >= end)
            return v;
        tk_sleep_ms(100);
    }
}

/* ---- Files ---- */

void tk_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- Comparing the table with files ---- */

/* SELECT list of the table columns for `where`, times as 6-digit text. */
static void s_select_list(ev_buf_t *b, unsigned where)
{
    bool first = true;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        const ev_field_t *f = &ev_fields[i];
        if (!(f->where & where))
            continue;
        if (!first)
            ev_buf_putc(b, ',');
        first = false;
        if (f->kind == EV_KIND_TIME)
            ev_buf_printf(b, "to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')", f->name);
        else
            ev_buf_puts(b, f->name);
    }
}

static char *s_copy_out(PGconn *c, const char *sql, size_t *rows)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT)
        cr_fatal("COPY out failed: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    ev_buf_t out;
    ev_buf_init(&out);
    ev_buf_reserve(&out, 1);
    size_t n = 0;
    char *line;
    int len;
    while ((len = PQgetCopyData(c, &line, 0)) > 0) {
        ev_buf_append(&out, line, (size_t)len);
        PQfreemem(line);
        n++;
    }
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        cr_fatal("COPY out did not end well: %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
    if (rows)
        *rows = n;
    return out.data;
}

char *tk_events_as_copy(PGconn *c, size_t *rows)
{
    ev_buf_t sql;
    ev_buf_init(&sql);
    ev_buf_puts(&sql, "COPY (SELECT ");
    s_select_list(&sql, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY);
    ev_buf_puts(&sql, " FROM events WHERE source IS NOT NULL ORDER BY source, partition, seq) TO STDOUT");
    char *out = s_copy_out(c, sql.data, rows);
    ev_buf_free(&sql);
    return out;
}

static int s_str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the lines of text (byte order, like the file side); frees text. */
static char *s_sort_lines(char *text)
{
    size_t n = 0, cap = 0;
    char **lines = NULL;
    for (char *p = text, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[n++] = p;
    }
    qsort(lines, n, sizeof *lines, s_str_cmp);
    ev_buf_t out;
    ev_buf_init(&out);
    ev_buf_reserve(&out, 1);
    for (size_t i = 0; i < n; i++) {
        ev_buf_puts(&out, lines[i]);
        ev_buf_putc(&out, '\n');
    }
    free(lines);
    free(text);
    return out.data;
}

char *tk_events_payload_lines(PGconn *c, const char *source, size_t *rows)
{
    ev_buf_t sql;
    ev_buf_init(&sql);
    ev_buf_puts(&sql, "COPY (SELECT ");
    s_select_list(&sql, EV_WHERE_PAYLOAD);
    ev_buf_puts(&sql, " FROM events");
    if (source) {
        /* The source comes from the test itself, never from input. */
        char *lit = PQescapeLiteral(c, source, strlen(source));
        ev_buf_printf(&sql, " WHERE source = %s", lit);
        PQfreemem(lit);
    }
    ev_buf_puts(&sql, ") TO STDOUT");
    char *out = s_copy_out(c, sql.data, rows);
    ev_buf_free(&sql);
    return s_sort_lines(out);
}

/* One parsed row: its identity (for sorting) and its line. */
typedef struct {
    char *key;  /* sort key */
    char *line; /* COPY text line */
} s_row_t;

static int s_row_cmp(const void *a, const void *b)
{
    return strcmp(((const s_row_t *)a)->key, ((const s_row_t *)b)->key);
}

static void s_read_csv(const char *path, bool payload_only, s_row_t **rows, size_t *n, size_t *cap)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    ev_csv_reader_t *rd = ev_csv_reader_new(fd, 1 << 20);
    ev_csv_record_t rec;
    ev_csv_map_t map;
    ev_error_t err;
    bool have_header = false;
    ev_buf_t line;
    ev_buf_init(&line);
    while (ev_csv_reader_next(rd, &rec) == 1) {
        if (!have_header) {
            cr_assert_eq(ev_csv_map_header(&map, &rec, &err), EV_OK, "%s: %s", path, err.detail);
            have_header = true;
            continue;
        }
        ev_event_t ev;
        if (ev_csv_parse_row(&map, &rec, &ev, &err) != EV_OK)
            continue;
        ev_buf_reset(&line);
        /* A COPY text row: of the payload only, or as ev_copy_append_row. */
        unsigned where = payload_only ? EV_WHERE_PAYLOAD : EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY;
        ev_format_row(&line, &ev, where, '\t', ev_copy_append_text);
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 1024;
            *rows = realloc(*rows, *cap * sizeof **rows);
        }
        char key[128];
        if (payload_only)
            (*rows)[*n].key = strdup(line.data);
        else {
            snprintf(key, sizeof key, "%.*s\x01%010d\x01%020lld", (int)ev.source.len, ev.source.ptr, ev.partition,
                     (long long)ev.seq);
            (*rows)[*n].key = strdup(key);
        }
        (*rows)[*n].line = strdup(line.data);
        (*n)++;
    }
    ev_buf_free(&line);
    ev_csv_reader_destroy(&rd);
    close(fd);
}

static char *s_csv_lines(const char *path, bool payload_only, size_t *count)
{
    s_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    struct stat st;
    cr_assert(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 4, ".csv") != 0)
                continue;
            char file[1024];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            s_read_csv(file, payload_only, &rows, &n, &cap);
        }
        closedir(d);
    } else {
        s_read_csv(path, payload_only, &rows, &n, &cap);
    }
    qsort(rows, n, sizeof *rows, s_row_cmp);
    ev_buf_t out;
    ev_buf_init(&out);
    ev_buf_reserve(&out, 1);
    for (size_t i = 0; i < n; i++) {
        ev_buf_puts(&out, rows[i].line);
        free(rows[i].key);
        free(rows[i].line);
    }
    free(rows);
    if (count)
        *count = n;
    return out.data;
}

char *tk_archive_as_copy(const char *path, size_t *rows)
{
    return s_csv_lines(path, false, rows);
}

char *tk_csv_payload_lines(const char *path, size_t *rows)
{
    return s_csv_lines(path, true, rows);
}

size_t tk_archive_file_rows(const char *path, tk_row_fn fn, void *arg)
{
    size_t len;
    char *text = tk_read_file(path, &len);
    size_t complete = len;
    while (complete > 0 && text[complete - 1] != '\n')
        complete--;
    free(text);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    ev_csv_reader_t *r = ev_csv_reader_new(fd, 0);
    ev_csv_record_t rec;
    ev_csv_map_t map;
    ev_error_t err;
    size_t rows = 0;
    if (ev_csv_reader_next(r, &rec) == 1 && ev_csv_reader_offset(r) <= complete) {
        cr_assert_eq(ev_csv_map_header(&map, &rec, &err), EV_OK, "%s: %s", path, err.detail);
        cr_assert_eq(map.layout, EV_CSV_ARCHIVE);
        while (ev_csv_reader_next(r, &rec) == 1 && ev_csv_reader_offset(r) <= complete) {
            ev_event_t ev;
            cr_assert_eq(ev_csv_parse_row(&map, &rec, &ev, &err), EV_OK, "%s line %llu: %s", path,
                         (unsigned long long)rec.line, err.detail);
            fn(&ev, arg);
            rows++;
        }
    }
    ev_csv_reader_destroy(&r);
    close(fd);
    return rows;
}

/* ---- A private PostgreSQL cluster ---- */

struct tk_cluster_t {
    char dir[256];  /* holds data/ */
    char port[16];  /* its port */
};

/* Runs a function of scripts/lib/common.sh; returns its exit status. */
static int s_pg_script(const tk_cluster_t *c, const char *call)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash -c 'source \"%s/scripts/lib/common.sh\" && %s' >>'%s/pg.log' 2>&1",
             s_env("EVPIPE_SOURCE_DIR", "."), call, c->dir);
    return system(cmd);
}

tk_cluster_t *tk_cluster_new(void)
{
    tk_cluster_t *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    snprintf(c->dir, sizeof c->dir, "%s/evpipe-cluster-XXXXXX", s_env("TMPDIR", "/tmp"));
    cr_assert_not_null(mkdtemp(c->dir));
    chmod(c->dir, 0777); /* the cluster's owner (postgres, when we are root) writes here */
    snprintf(c->port, sizeof c->port, "%d", tk_free_port());
    char call[512];
    snprintf(call, sizeof call, "evp_pg_start %s/data %s trust postgres", c->dir, c->port);
    s_track_cluster(c->dir, true);
    cr_assert_eq(s_pg_script(c, call), 0, "the private cluster did not start (see %s/pg.log)", c->dir);
    return c;
}

const char *tk_cluster_port(const tk_cluster_t *c)
{
    return c->port;
}

const char *tk_cluster_data_dir(const tk_cluster_t *c)
{
    static char data[300];
    snprintf(data, sizeof data, "%s/data", c->dir);
    return data;
}

void tk_cluster_stop(tk_cluster_t *c)
{
    char call[512];
    snprintf(call, sizeof call, "evp_pg_stop %s/data", c->dir);
    cr_assert_eq(s_pg_script(c, call), 0, "pg_ctl stop failed");
}

void tk_cluster_start(tk_cluster_t *c)
{
    char call[512];
    snprintf(call, sizeof call, "evp_pg_start %s/data %s trust postgres", c->dir, c->port);
    cr_assert_eq(s_pg_script(c, call), 0, "pg_ctl start failed");
}

void tk_cluster_destroy(tk_cluster_t **cp)
{
    if (!cp || !*cp)
        return;
    tk_cluster_t *c = *cp;
    char call[512];
    snprintf(call, sizeof call, "evp_pg_stop %s/data", c->dir);
    s_pg_script(c, call);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "testkit: could not remove %s\n", c->dir);
    s_track_cluster(c->dir, false);
    free(c);
    *cp = NULL;
}

/* ---- HTTP ---- */

tk_http_t tk_http_request(int port, const char *method, const char *path)
{
    tk_http_t r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        r.headers = strdup("");
        r.body = strdup("");
        return r;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", method,
                     path);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n, "send to 127.0.0.1:%d failed", port);
    /* HTTP/1.0: the server closes after its reply, so read to EOF. */
    size_t cap = 4096, len = 0;
    char *data = malloc(cap);
    cr_assert_not_null(data);
    for (;;) {
        if (cap - len < 2048) {
            data = realloc(data, cap *= 2);
            cr_assert_not_null(data);
        }
        ssize_t got = recv(fd, data + len, cap - len - 1, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    data[len] = '\0';
    char *end = strstr(data, "\r\n\r\n");
    cr_assert_not_null(end, "no complete HTTP reply from 127.0.0.1:%d: %s", port, data);
    *end = '\0';
    r.headers = strdup(data);
    r.body = strdup(end + 4);
    cr_assert_eq(sscanf(data, "HTTP/1.%*d %d", &r.status), 1, "bad status line: %s", data);
    free(data);
    return r;
}

tk_http_t tk_http_get(int port, const char *path)
{
    return tk_http_request(port, "GET", path);
}

void tk_http_free(tk_http_t *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int tk_http_wait_status(int port, const char *path, int want, int timeout_ms)
{
    int64_t end = tk_now_ms() + timeout_ms;
    for (;;) {
        tk_http_t r = tk_http_get(port, path);
        int status = r.status;
        tk_http_free(&r);
        if (status == want || tk_now_ms() >= end)
            return status;
        tk_sleep_ms(100);
    }
}

double tk_metric(const char *body, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = body; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (line[0] != '#' && strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtod(line + klen + 1, NULL);
        line = eol ? eol + 1 : NULL;
    }
    return NAN;
}

double tk_scrape(int port, const char *key)
{
    tk_http_t r = tk_http_get(port, "/metrics");
    double v = r.status == 200 ? tk_metric(r.body, key) : NAN;
    tk_http_free(&r);
    return v;
}

/* ---- A peer on the bus ---- */

void *tk_bus_publisher(void *ctx, const tk_world_t *w)
{
    void *pub = zmq_socket(ctx, ZMQ_XPUB);
    cr_assert_not_null(pub);
    int linger = 2000, timeout = 10000;
    zmq_setsockopt(pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert_eq(zmq_connect(pub, w->pub_ep), 0);
    char sub[8];
    cr_assert_geq(zmq_recv(pub, sub, sizeof sub, 0), 1, "the bus did not subscribe");
    return pub;
}

void *tk_bus_standin(void *ctx, const char *endpoint, int rcvhwm)
{
    void *xsub = zmq_socket(ctx, ZMQ_XSUB);
    cr_assert_not_null(xsub);
    int linger = 0;
    zmq_setsockopt(xsub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(xsub, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    cr_assert_eq(zmq_bind(xsub, endpoint), 0, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    cr_assert_eq(zmq_send(xsub, "\x01", 1, 0), 1);
    return xsub;
}

void tk_bus_send(void *pub, uint32_t partition, ev_msg_kind_t kind, const void *body, size_t len)
{
    char topic[EV_TOPIC_MAX];
    size_t tlen = ev_topic_format(topic, partition, kind);
    cr_assert_eq(zmq_send(pub, topic, tlen, ZMQ_SNDMORE), (int)tlen);
    cr_assert_eq(zmq_send(pub, body, len, 0), (int)len);
}
