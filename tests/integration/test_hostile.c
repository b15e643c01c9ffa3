/* Hostile input, end to end: text with quotes, commas, tabs, newlines,
 * backslashes, COPY's end marker and SQL is stored exactly; NUL bytes,
 * invalid UTF-8, over-long fields and 1 MB strings are refused with a reason
 * (reject file or rejects table) and nothing else is lost; the password
 * never shows in logs, --help or the process's command line; with CURVE on,
 * the pipeline runs and a client with an unknown key hears nothing. A peer
 * written from docs/protocol.md is stored exactly; a hole in its stream is
 * a gap only when it says it keeps no archive. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "evpipe/copy.h"
#include "evpipe/curve.h"
#include "evpipe/fsutil.h"
#include "evpipe/csv.h"
#include "evpipe/wire.h"
#include "testkit.h"

typedef struct {
    tk_world_t *w;
    tk_proc_t *bus, *writer, *repair;
} rig_t;

static void s_up(rig_t *r, const char *name)
{
    r->w = tk_world_new(name);
    r->bus = tk_start(r->w, "bus", NULL, NULL);
    cr_assert(tk_wait_log(r->bus, "bus ready", 10000));
    r->writer = tk_start(r->w, "writer", NULL, NULL);
    cr_assert(tk_wait_log(r->writer, "subscribed to the bus", 60000));
    const char *watch[] = {"--watch", r->w->data_dir, NULL};
    r->repair = tk_start(r->w, "ingest", watch, NULL);
}

static void s_down(rig_t *r)
{
    tk_proc_t *all[] = {r->repair, r->writer, r->bus};
    for (int i = 0; i < 3; i++) {
        tk_signal(all[i], SIGTERM);
        cr_assert(tk_wait_exit(all[i], 20000));
        cr_assert_eq(tk_exit_code(all[i]), 0, "%s did not exit cleanly", all[i]->name);
    }
    tk_proc_destroy(&r->repair);
    tk_proc_destroy(&r->writer);
    tk_proc_destroy(&r->bus);
    tk_world_destroy(&r->w);
}

/* Texts that must arrive byte for byte. */
static const char *const s_nasty[] = {
    "O'Brien, \"The Boss\"",
    "tab\there, newline\nthere, return\r, backslash \\ end",
    "\\.",
    "line one\n\\.\nline three",
    "'); DROP TABLE events; --",
    "漢字 Zoë 🚀 ñ",
    "\\N",
};
#define NASTY (sizeof s_nasty / sizeof s_nasty[0])

static ev_event_t s_event(const char *source, int32_t seq, const char *name, uint32_t name_len)
{
    ev_event_t ev = {0};
    ev.user_id = 7;
    ev.user_name = (ev_str_t){name, name_len};
    ev.user_email = (ev_str_t){"x@example.com", 13};
    ev.event_type = (ev_str_t){"view", 4};
    ev.product_id = 1;
    ev.product_name = (ev_str_t){name, name_len > 150 ? 150 : name_len};
    ev.product_category = (ev_str_t){"Books", 5};
    ev.product_price = 1999;
    ev.event_time = 1700000000123456LL;
    ev.source = (ev_str_t){source, (uint32_t)strlen(source)};
    ev.partition = (int32_t)ev_partition_of(ev.user_id, 16);
    ev.seq = seq;
    ev.published_at = ev_now_us();
    return ev;
}

/* A publisher connected to the bus, once the bus has subscribed. */
static void s_publish(void *pub, ev_codec_t *codec, const ev_event_t *ev)
{
    const void *body;
    size_t len;
    ev_codec_encode_event(codec, ev, &body, &len);
    tk_bus_send(pub, (uint32_t)ev->partition, EV_MSG_EVENT, body, len);
}

Test(hostile, text_on_the_bus_is_stored_exactly_or_rejected_with_a_reason, .timeout = 180)
{
    rig_t r;
    s_up(&r, "hostile_bus");
    void *ctx = zmq_ctx_new();
    ev_codec_t *codec = ev_codec_new();

    /* A 1 MB string: over MAX_MESSAGE_BYTES, so the bus drops the message
     * and that publisher's connection; nothing else is disturbed. */
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);
    memset(big, 'A', big_len);
    void *giant = tk_bus_publisher(ctx, r.w);
    ev_event_t ev = s_event("hostile-big", 1, big, (uint32_t)big_len);
    s_publish(giant, codec, &ev);
    tk_sleep_ms(300);

    void *pub = tk_bus_publisher(ctx, r.w);
    ev_buf_t want;
    ev_buf_init(&want);
    int seq = 0;
    for (size_t i = 0; i < NASTY; i++) {
        ev = s_event("hostile", ++seq, s_nasty[i], (uint32_t)strlen(s_nasty[i]));
        s_publish(pub, codec, &ev);
        ev_copy_append_row(&want, &ev);
    }
    ev = s_event("hostile", ++seq, "bad \xff\xfe utf-8", 13);
    s_publish(pub, codec, &ev);
    ev = s_event("hostile", ++seq, "nul\0byte", 8);
    s_publish(pub, codec, &ev);
    char long_name[300];
    memset(long_name, 'n', sizeof long_name);
    ev = s_event("hostile", ++seq, long_name, 256);
    s_publish(pub, codec, &ev);
    ev = s_event("hostile", ++seq, "after the bad ones", 18);
    s_publish(pub, codec, &ev);
    ev_copy_append_row(&want, &ev);

    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT seq FROM checkpoints WHERE source = 'hostile'", seq, 30000), seq,
                 "the writer did not take every seq");
    size_t rows = 0;
    char *got = tk_events_as_copy(r.w->conn, &rows);
    cr_assert_eq(rows, NASTY + 1, "rows: %zu", rows);
    cr_assert(strcmp(got, want.data) == 0, "stored text differs:\n%s\nwant:\n%s", got, want.data);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM rejects WHERE source = 'hostile'"), 3);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM rejects WHERE reason = 'bad_encoding'"), 2);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM rejects WHERE reason = 'too_long'"), 1);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM events WHERE source = 'hostile-big'"), 0);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM pg_tables WHERE tablename = 'events'"), 1);

    free(got);
    ev_buf_free(&want);
    free(big);
    zmq_close(giant);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    ev_codec_destroy(&codec);
    s_down(&r);
}

Test(hostile, a_csv_file_with_nasty_text_keeps_it_exact_and_rejects_what_cannot_be_stored, .timeout = 180)
{
    rig_t r;
    s_up(&r, "hostile_csv");
    ev_buf_t f;
    ev_buf_init(&f);
    ev_csv_header(&f, EV_CSV_OLD);
    for (size_t i = 0; i < NASTY; i++) {
        ev_event_t ev = s_event("x", 1, s_nasty[i], (uint32_t)strlen(s_nasty[i]));
        ev.user_id = (int32_t)(100 + i);
        ev_csv_append_row(&f, &ev, EV_CSV_OLD);
    }
    /* Line 2+NASTY: invalid UTF-8; then a NUL byte; then a 1 MB field. */
    ev_buf_puts(&f, "1,bad \xff name,a@example.com,view,1,Lamp,Home,1.00,2024-01-01 00:00:00\n");
    static const char nul_row[] = "2,nul\0name,a@example.com,view,1,Lamp,Home,1.00,2024-01-01 00:00:00\n";
    ev_buf_append(&f, nul_row, sizeof nul_row - 1);
    ev_buf_puts(&f, "3,");
    for (int i = 0; i < (1 << 20); i++)
        ev_buf_putc(&f, 'B');
    ev_buf_puts(&f, ",a@example.com,view,1,Lamp,Home,1.00,2024-01-01 00:00:00\n");
    ev_buf_puts(&f, "4,last good,a@example.com,view,1,Lamp,Home,1.00,2024-01-01 00:00:00\n");
    char path[512];
    snprintf(path, sizeof path, "%s/nasty.csv", r.w->dir);
    tk_write_file(path, f.data, f.len);

    const char *args[] = {path, "--wait", NULL};
    tk_proc_t *ing = tk_start(r.w, "ingest", args, NULL);
    cr_assert(tk_wait_exit(ing, 60000));
    cr_assert_eq(tk_exit_code(ing), 0);
    tk_proc_destroy(&ing);

    size_t want_rows = 0, rows = 0;
    char *want = tk_csv_payload_lines(path, &want_rows);
    char *got = tk_events_payload_lines(r.w->conn, NULL, &rows);
    cr_assert_eq(want_rows, NASTY + 1);
    cr_assert_eq(rows, NASTY + 1);
    cr_assert(strcmp(got, want) == 0, "stored text differs:\n%s\nwant:\n%s", got, want);

    char rejects_path[600];
    snprintf(rejects_path, sizeof rejects_path, "%s/rejects/nasty.csv.rejects.csv", r.w->state_dir);
    size_t rej_len = 0;
    char *rej = tk_read_file(rejects_path, &rej_len);
    /* The nasty rows span more than one line each where their text (twice:
     * user and product name) holds newlines. */
    size_t line = 2 + NASTY;
    for (size_t i = 0; i < NASTY; i++)
        for (const char *c = s_nasty[i]; *c; c++)
            line += (*c == '\n') * 2;
    static const char *const reasons[] = {"bad_encoding", "bad_encoding", "line_too_long"};
    for (int k = 0; k < 3; k++, line++) {
        char want_line[64];
        int n = snprintf(want_line, sizeof want_line, "nasty.csv,%zu,%s,", line, reasons[k]);
        cr_assert_not_null(memmem(rej, rej_len, want_line, (size_t)n), "no reject '%s' in:\n%.2000s", want_line, rej);
    }
    cr_assert_lt(rej_len, 100000, "the reject file holds the whole 1 MB line");
    free(rej);
    free(want);
    free(got);
    ev_buf_free(&f);
    s_down(&r);
}

Test(hostile, the_password_never_shows_in_logs_help_or_the_command_line, .timeout = 60)
{
    tk_world_t *w = tk_world_new("hostile_secret");
    /* Wrong host, so the writer logs connection failures. */
    const char *secret = "hunter2-s3cr3t";
    const char *env[] = {"POSTGRES_HOST=127.0.0.1", "POSTGRES_PORT=1", NULL};
    const char *args[] = {"--postgres-password", "hunter2-s3cr3t", NULL};
    tk_proc_t *p = tk_start(w, "writer", args, env);
    cr_assert(tk_wait_log(p, "PostgreSQL", 20000), "no connection failure logged");
    char path[64], cmdline[4096] = {0};
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p->pid);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(cmdline, 1, sizeof cmdline - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    cr_assert_null(strstr(cmdline, secret), "the password is in the command line: %s", cmdline);
    tk_signal(p, SIGTERM);
    tk_wait_exit(p, 20000);
    char *log = tk_read_file(p->log, NULL);
    cr_assert_null(strstr(log, secret), "the password is in the log");
    free(log);
    tk_proc_destroy(&p);

    const char *help[] = {"--help", NULL};
    const char *env_secret[] = {"POSTGRES_PASSWORD=hunter2-s3cr3t", NULL};
    p = tk_start(w, "writer", help, env_secret);
    cr_assert(tk_wait_exit(p, 10000));
    log = tk_read_file(p->log, NULL);
    cr_assert(strstr(log, "POSTGRES_PASSWORD") != NULL, "--help does not list the password setting");
    cr_assert_null(strstr(log, secret), "--help shows the password");
    cr_assert_null(strstr(log, "change-me"), "--help shows the default password");
    free(log);
    tk_proc_destroy(&p);
    tk_world_destroy(&w);
}

Test(hostile, a_closed_bus_carries_the_pipeline_and_shuts_out_an_unknown_tap, .timeout = 180)
{
    tk_world_t *w = tk_world_new("hostile_curve");
    char keys[400], allowed[420], why[256];
    snprintf(keys, sizeof keys, "%s/keys", w->dir);
    snprintf(allowed, sizeof allowed, "%s/allowed", keys);
    /* A key per role; the generator's is bound to the source id it will
     * find in its archive. */
    static const char *const roles[][3] = {
        {"server", "bus", NULL},           {"writer", "writer", NULL},
        {"publisher", "gen", "gen-0123456789abcdef*"}, {"publisher", "ingest", "file-*,gen-*"},
        {"tap", "stranger", NULL},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        cr_assert_eq(evp_curve_keygen(keys, roles[i][0], roles[i][1], roles[i][2], why, sizeof why), 0, "%s", why);
    cr_assert_eq(evp_mkdirs(allowed, why, sizeof why), 0, "%s", why);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s/writer.key' '%s/gen.key' '%s/ingest.key' '%s/' && mkdir -p '%s' && "
             "echo gen-0123456789abcdef >'%s/.source-id'",
             keys, keys, keys, allowed, w->archive_dir, w->archive_dir);
    cr_assert_eq(system(cmd), 0);

    static char e_server[600], e_allowed[600], e_public[600], e_writer[600], e_gen[600], e_ingest[600],
        e_stranger[600];
    snprintf(e_server, sizeof e_server, "CURVE_SERVER_KEY=%s/bus.key_secret", keys);
    snprintf(e_allowed, sizeof e_allowed, "CURVE_ALLOWED_DIR=%s", allowed);
    snprintf(e_public, sizeof e_public, "CURVE_SERVER_PUBLIC_KEY=%s/bus.key", keys);
    snprintf(e_writer, sizeof e_writer, "CURVE_CLIENT_KEY=%s/writer.key_secret", keys);
    snprintf(e_gen, sizeof e_gen, "CURVE_CLIENT_KEY=%s/gen.key_secret", keys);
    snprintf(e_ingest, sizeof e_ingest, "CURVE_CLIENT_KEY=%s/ingest.key_secret", keys);
    snprintf(e_stranger, sizeof e_stranger, "CURVE_CLIENT_KEY=%s/stranger.key_secret", keys);
    const char *env[] = {"CURVE=1", e_server, e_allowed, e_public, NULL};
    const char *writer_env[] = {"CURVE=1", e_public, e_writer, NULL};
    const char *gen_env[] = {"CURVE=1", e_public, e_gen, NULL};
    const char *ingest_env[] = {"CURVE=1", e_server, e_allowed, e_public, e_ingest, NULL};
    const char *stranger_env[] = {"CURVE=1", e_public, e_stranger, NULL};

    tk_proc_t *bus = tk_start(w, "bus", NULL, env);
    cr_assert(tk_wait_log(bus, "bus ready", 10000));
    tk_proc_t *writer = tk_start(w, "writer", NULL, writer_env);
    cr_assert(tk_wait_log(writer, "subscribed to the bus", 60000), "an allowed writer was not admitted");
    const char *watch[] = {"--watch", w->data_dir, NULL};
    tk_proc_t *repair = tk_start(w, "ingest", watch, ingest_env);
    const char *tap_args[] = {"--count", "1", "--seconds", "8", NULL};
    tk_proc_t *stranger = tk_start(w, "tap", tap_args, stranger_env);
    const char *gen_args[] = {"--count", "2000", "--rate", "2000", NULL};
    tk_proc_t *gen = tk_start(w, "generator", gen_args, gen_env);
    cr_assert(tk_wait_exit(gen, 60000) && tk_exit_code(gen) == 0, "the generator failed on a closed bus");
    cr_assert_eq(tk_wait_sql_int(w->conn, "SELECT count(*) FROM events", 2000, 60000), 2000);

    cr_assert(tk_wait_exit(stranger, 20000));
    char *out = tk_read_file(stranger->log, NULL);
    cr_assert_null(strstr(out, "\"event_type\""), "an unknown tap received events:\n%.500s", out);
    free(out);
    tk_signal(bus, SIGTERM);
    cr_assert(tk_wait_exit(bus, 20000));
    char *log = tk_read_file(bus->log, NULL);
    cr_assert_not_null(strstr(log, "refused a client"), "the refusal was not logged");
    free(log);

    tk_proc_t *all[] = {repair, writer};
    for (int i = 0; i < 2; i++) {
        tk_signal(all[i], SIGTERM);
        cr_assert(tk_wait_exit(all[i], 20000));
    }
    tk_proc_destroy(&stranger);
    tk_proc_destroy(&gen);
    tk_proc_destroy(&repair);
    tk_proc_destroy(&writer);
    tk_proc_destroy(&bus);
    tk_world_destroy(&w);
}

/* ---- A peer written from docs/protocol.md ---- */

/* Publishes seqs 1..to of source (user 7, so one partition), skipping
 * skip_from..skip_to, then a heartbeat announcing to. */
static void s_peer_stream(void *pub, ev_codec_t *codec, const char *source, int32_t to, int32_t skip_from,
                          int32_t skip_to, bool best_effort)
{
    int32_t partition = (int32_t)ev_partition_of(7, 16);
    for (int32_t seq = 1; seq <= to; seq++) {
        if (seq >= skip_from && seq <= skip_to)
            continue;
        ev_event_t ev = s_event(source, seq, "peer", 4);
        ev.partition = partition;
        s_publish(pub, codec, &ev);
    }
    ev_heartbeat_t hb = {.source = {source, (uint32_t)strlen(source)},
                         .partition = partition,
                         .seq = to,
                         .published_at = ev_now_us(),
                         .best_effort = best_effort};
    const void *body;
    size_t len;
    ev_codec_encode_heartbeat(codec, &hb, &body, &len);
    tk_bus_send(pub, (uint32_t)partition, EV_MSG_HEARTBEAT, body, len);
}

Test(hostile, a_peer_without_an_archive_says_so_and_only_its_proven_holes_are_gaps, .timeout = 180)
{
    rig_t r;
    s_up(&r, "hostile_peer");
    void *ctx = zmq_ctx_new();
    ev_codec_t *codec = ev_codec_new();
    void *pub = tk_bus_publisher(ctx, r.w);
    /* Nothing lost on the way: stored exactly. */
    s_peer_stream(pub, codec, "peer-whole", 300, 0, -1, true);
    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT count(*) FROM events WHERE source = 'peer-whole'", 300, 30000),
                 300);
    /* Best effort, 100..109 lost: those are gaps, the rest is stored. */
    s_peer_stream(pub, codec, "peer-lossy", 200, 100, 109, true);
    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT seq FROM checkpoints WHERE source = 'peer-lossy'", 200, 30000),
                 200);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM events WHERE source = 'peer-lossy'"), 190);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM gaps WHERE source = 'peer-lossy' AND first_seq = 100"
                                       " AND last_seq = 109"),
                 1);
    /* Said nothing (archived by default), and the repair service does not
     * know it: the hole waits, loudly, and is never recorded. */
    s_peer_stream(pub, codec, "peer-silent", 50, 20, 29, false);
    cr_assert(tk_wait_log(r.writer, "does not know this source: no answer yet", 30000));
    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT seq FROM checkpoints WHERE source = 'peer-silent'", 19, 30000),
                 19);
    tk_sleep_ms(1500);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM gaps WHERE source = 'peer-silent'"), 0);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT seq FROM checkpoints WHERE source = 'peer-silent'"), 19);
    /* It sends the hole again (as an archive would): everything is stored. */
    s_peer_stream(pub, codec, "peer-silent", 50, 0, -1, false);
    cr_assert_eq(tk_wait_sql_int(r.w->conn, "SELECT seq FROM checkpoints WHERE source = 'peer-silent'", 50, 30000),
                 50);
    cr_assert_eq(tk_sql_int(r.w->conn, "SELECT count(*) FROM events WHERE source = 'peer-silent'"), 50);
    zmq_close(pub);
    ev_codec_destroy(&codec);
    zmq_ctx_term(ctx);
    s_down(&r);
}
