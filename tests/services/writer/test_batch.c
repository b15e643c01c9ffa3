/* Unit tests of batch building: COPY rows, one checkpoint per stream,
 * rejects with their reasons, gaps, heads, and dropping what another writer
 * already committed. No database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/copy.h"
#include "evpipe/wire.h"
#include "writer_batch.h"
#include "writer_stream.h"

static writer_streams_t *ss;
static writer_batch_t *b;
static ev_codec_t *codec;

static void setup(void)
{
    ss = writer_streams_new(1000, SIZE_MAX, 1000);
    b = writer_batch_new(100);
    codec = ev_codec_new();
    cr_assert(ss && b && codec);
}

static void teardown(void)
{
    writer_batch_destroy(&b);
    cr_assert_null(b);
    writer_streams_destroy(&ss);
    ev_codec_destroy(&codec);
}

TestSuite(writer_batch, .init = setup, .fini = teardown);

static ev_str_t S(const char *s)
{
    return (ev_str_t){s, (uint32_t)strlen(s)};
}

static ev_event_t s_event(const char *source, int32_t partition, int64_t seq)
{
    ev_event_t ev = {
        .user_id = 7,
        .user_name = S("Ann\tTab"),
        .user_email = S("ann@example.com"),
        .event_type = S("purchase"),
        .product_id = 12,
        .product_name = S("Lamp"),
        .product_category = S("Home"),
        .product_price = 1250,
        .event_time = 1700000000000000,
        .source = S(source),
        .partition = partition,
        .seq = seq,
        .published_at = 1700000000000001,
    };
    return ev;
}

static writer_stream_t *s_stream(const char *source, int32_t partition)
{
    return writer_streams_get(ss, source, strlen(source), partition, true);
}

/* Adds ev to the batch for its stream, as taken from topic partition tp. */
static ev_reject_t s_add(const ev_event_t *ev, int32_t tp, ev_error_t *err)
{
    const void *raw;
    size_t len;
    ev_codec_encode_event(codec, ev, &raw, &len);
    writer_stream_t *s = s_stream(ev->source.ptr, ev->partition);
    return writer_batch_add_event(b, s, ev, raw, len, tp, false, 1000, err);
}

Test(writer_batch, a_valid_event_becomes_its_copy_row_and_moves_the_checkpoint)
{
    cr_assert(writer_batch_empty(b));
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev_error_t err;
    cr_assert_eq(s_add(&ev, 2, &err), EV_OK);
    ev_buf_t want;
    ev_buf_init(&want);
    ev_copy_append_row_binary(&want, &ev);
    cr_assert_eq(b->copy.len, want.len);
    cr_assert(memcmp(b->copy.data, want.data, want.len) == 0, "the row in COPY's binary format");
    cr_assert_eq(b->nrows, 1);
    cr_assert_eq(b->rows[0].seq, 1);
    cr_assert_eq(b->rows[0].off, 0);
    cr_assert_eq(b->rows[0].len, want.len);
    cr_assert_eq(b->rows[0].published_at, ev.published_at);
    cr_assert_eq(b->first_ms, 1000, "the linger clock starts with the first row");
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 2)->id), 1);
    cr_assert_not(writer_batch_empty(b));
    ev_buf_free(&want);
}

Test(writer_batch, keeps_one_checkpoint_per_stream_at_its_highest_seq)
{
    ev_error_t err;
    for (int64_t seq = 1; seq <= 5; seq++) {
        ev_event_t a = s_event("gen-a", 2, seq), c = s_event("gen-c", 2, seq + 10), d = s_event("gen-a", 3, seq);
        s_add(&a, 2, &err);
        s_add(&c, 2, &err);
        s_add(&d, 3, &err);
    }
    cr_assert_eq(b->nrows, 15);
    cr_assert_eq(b->nckpts, 3);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 2)->id), 5);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-c", 2)->id), 15);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 3)->id), 5);
    writer_batch_checkpoint(b, s_stream("gen-a", 2), 3);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 2)->id), 5, "a checkpoint never goes back");
    /* Rows are binary COPY rows, one after another, each starting with its
     * field count (12: payload and identity). */
    size_t off = 0;
    for (size_t i = 0; i < b->nrows; i++) {
        cr_assert_eq(b->rows[i].off, off);
        cr_assert_eq(b->copy.data[off], 0);
        cr_assert_eq(b->copy.data[off + 1], 12);
        off += b->rows[i].len;
    }
    cr_assert_eq(off, b->copy.len);
}

/* Adds a refused event and checks its reject line. */
static void s_check_reject(ev_event_t *ev, int32_t tp, ev_reject_t want)
{
    ev_error_t err;
    size_t rows = b->nrows, n = b->nrejects;
    cr_assert_eq(s_add(ev, tp, &err), want, "reason %s expected, got %s (%s)", ev_reject_name(want),
                 ev_reject_name(err.code), err.detail);
    cr_assert_eq(b->nrows, rows, "a refused event is not a row");
    cr_assert_eq(b->nrejects, n + 1);
    const writer_reject_t *r = &b->rejects[n];
    cr_assert_eq(r->reason, want);
    cr_assert_eq(r->seq, ev->seq);
    char line[4096];
    snprintf(line, sizeof line, "%.*s", (int)r->len, b->reject_copy.data + r->off);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "gen-a\t%d\t%lld\t%s\t", (int)ev->partition, (long long)ev->seq,
             ev_reject_name(want));
    cr_assert(strncmp(line, prefix, strlen(prefix)) == 0, "reject line: %s", line);
    /* The body as it came, hex for bytea. */
    const void *raw;
    size_t len;
    ev_codec_encode_event(codec, ev, &raw, &len);
    char hex[8];
    snprintf(hex, sizeof hex, "\\\\x%02x", ((const unsigned char *)raw)[0]);
    cr_assert(strstr(line, hex) != NULL, "raw starts with %s: %s", hex, line);
    cr_assert_eq(line[strlen(line) - 1], '\n');
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", ev->partition)->id), ev->seq,
                 "a refused event still takes its seq");
}

Test(writer_batch, refuses_text_that_is_not_utf8)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.user_name = S("bad \xff byte");
    s_check_reject(&ev, 2, EV_REJECT_ENCODING);
}

Test(writer_batch, refuses_text_with_a_nul_byte)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.product_name = (ev_str_t){"a\0b", 3};
    s_check_reject(&ev, 2, EV_REJECT_ENCODING);
}

Test(writer_batch, refuses_text_over_its_limit)
{
    char name[300];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.user_email = S(name);
    s_check_reject(&ev, 2, EV_REJECT_TOO_LONG);
}

Test(writer_batch, refuses_an_unknown_event_type)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.event_type = S("click");
    s_check_reject(&ev, 2, EV_REJECT_EVENT_TYPE);
}

Test(writer_batch, refuses_a_price_numeric_10_2_cannot_hold)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.product_price = EV_PRICE_MAX_CENTS + 1;
    s_check_reject(&ev, 2, EV_REJECT_PRICE);
}

Test(writer_batch, refuses_a_time_outside_the_years_the_table_holds)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    ev.event_time = -200000000000000000LL;
    s_check_reject(&ev, 2, EV_REJECT_TIME);
}

Test(writer_batch, refuses_an_event_whose_body_and_topic_disagree_on_the_partition)
{
    ev_event_t ev = s_event("gen-a", 2, 1);
    s_check_reject(&ev, 5, EV_REJECT_IDENTITY);
    ev_event_t from_repair = s_event("gen-a", 2, 2);
    ev_error_t err;
    cr_assert_eq(s_add(&from_repair, -1, &err), EV_OK, "a repair answer has no topic to compare");
}

Test(writer_batch, a_reject_without_usable_identity_keeps_a_null_source)
{
    char source[100];
    memset(source, 's', sizeof source - 1);
    source[sizeof source - 1] = '\0';
    ev_event_t ev = s_event(source, 2, 0);
    writer_batch_add_reject(b, NULL, &ev, "\x81\x01", 2, EV_REJECT_IDENTITY, "seq: 0 \xff", 5);
    cr_assert_eq(b->nrejects, 1);
    cr_assert_eq(b->rejects[0].stream, -1);
    cr_assert_str_eq(b->reject_copy.data, "\\N\t2\t0\tbad_identity\tseq: 0 ?\t\\\\x8101\n",
                     "source too long for its column: NULL; detail made valid text");
    cr_assert_eq(b->nckpts, 0, "no checkpoint moves");
    cr_assert_eq(b->first_ms, 5);
}

Test(writer_batch, gaps_and_heads_are_kept_and_move_the_checkpoint)
{
    writer_stream_t *s = s_stream("gen-a", 1);
    writer_batch_add_gap(b, s, 4, 9, 10);
    cr_assert_eq(b->ngaps, 1);
    cr_assert_eq(b->gaps[0].first, 4);
    cr_assert_eq(b->gaps[0].last, 9);
    cr_assert_eq(writer_batch_checkpoint_of(b, s->id), 9);
    writer_batch_add_head(b, s, 12, 11);
    writer_batch_add_head(b, s, 13, 12);
    cr_assert_eq(b->nheads, 1, "one head per stream per batch");
    cr_assert_eq(b->heads[0].seq, 13);
    cr_assert_eq(b->first_ms, 10);
}

Test(writer_batch, drops_what_another_writer_committed)
{
    ev_error_t err;
    for (int64_t seq = 1; seq <= 6; seq++) {
        ev_event_t a = s_event("gen-a", 2, seq), c = s_event("gen-c", 2, seq);
        s_add(&a, 2, &err);
        s_add(&c, 2, &err);
    }
    ev_event_t bad = s_event("gen-a", 2, 7);
    bad.event_type = S("click");
    s_add(&bad, 2, &err);
    writer_batch_add_gap(b, s_stream("gen-c", 2), 7, 10, 0);
    uint32_t a = s_stream("gen-a", 2)->id, c = s_stream("gen-c", 2)->id;
    int64_t upto[2];
    upto[a] = 4;
    upto[c] = 8;
    cr_assert_eq(writer_batch_drop_upto(b, upto, 2), 10);
    cr_assert_eq(b->nrows, 2);
    cr_assert_eq(b->rows[0].seq, 5);
    cr_assert_eq(b->rows[1].seq, 6);
    ev_buf_t want;
    ev_buf_init(&want);
    ev_event_t e5 = s_event("gen-a", 2, 5), e6 = s_event("gen-a", 2, 6);
    ev_copy_append_row_binary(&want, &e5);
    ev_copy_append_row_binary(&want, &e6);
    cr_assert(b->copy.len == want.len && memcmp(b->copy.data, want.data, want.len) == 0,
              "the COPY rows hold only what is left");
    ev_buf_free(&want);
    cr_assert_eq(b->nrejects, 1, "the reject of seq 7 stays");
    cr_assert_eq(b->ngaps, 1);
    cr_assert_eq(b->gaps[0].first, 9, "a gap partly committed is trimmed");
    cr_assert_eq(b->gaps[0].last, 10);
}

Test(writer_batch, a_row_refused_by_the_database_becomes_a_reject_and_can_be_undone)
{
    ev_error_t err;
    ev_event_t e1 = s_event("gen-a", 2, 1), e2 = s_event("gen-a", 2, 2);
    s_add(&e1, 2, &err);
    s_add(&e2, 2, &err);
    writer_stream_t *s = s_stream("gen-a", 2);
    writer_batch_refuse_row(b, s, 1, "date/time field value out of range (SQLSTATE 22008)");
    cr_assert(b->rows[1].refused);
    cr_assert_eq(b->refused, 1);
    cr_assert_eq(b->nrejects, 1);
    cr_assert_eq(b->rejects[0].reason, EV_REJECT_DATABASE);
    cr_assert(strstr(b->reject_copy.data, "\tdatabase\tdate/time field value out of range") != NULL);
    writer_batch_unrefuse(b, 0);
    cr_assert_not(b->rows[1].refused);
    cr_assert_eq(b->refused, 0);
    cr_assert_eq(b->nrejects, 0);
    cr_assert_eq(b->reject_copy.len, 0);
    writer_batch_refuse_row(b, s, 0, NULL);
    cr_assert_eq(b->nrejects, 0, "a row already in the table is skipped, not rejected");
    cr_assert_eq(b->refused, 1);
}

Test(writer_batch, reset_empties_it_for_the_next_batch)
{
    ev_error_t err;
    ev_event_t e1 = s_event("gen-a", 2, 1);
    s_add(&e1, 2, &err);
    writer_batch_add_head(b, s_stream("gen-a", 2), 3, 0);
    writer_batch_reset(b);
    cr_assert(writer_batch_empty(b));
    cr_assert_eq(b->copy.len, 0);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 2)->id), -1);
    ev_event_t e2 = s_event("gen-a", 2, 2);
    s_add(&e2, 2, &err);
    cr_assert_eq(b->nckpts, 1);
    cr_assert_eq(writer_batch_checkpoint_of(b, s_stream("gen-a", 2)->id), 2);
}

Test(writer_batch, dropping_streams_removes_everything_they_put_in)
{
    ev_error_t err;
    for (int64_t seq = 1; seq <= 3; seq++) {
        ev_event_t a = s_event("gen-a", 2, seq), c = s_event("gen-c", 5, seq);
        s_add(&a, 2, &err);
        s_add(&c, 5, &err);
    }
    ev_event_t bad = s_event("gen-c", 5, 4);
    bad.event_type = S("click");
    s_add(&bad, 5, &err);
    writer_stream_t *a = s_stream("gen-a", 2), *c = s_stream("gen-c", 5);
    writer_batch_add_gap(b, c, 5, 6, 0);
    writer_batch_add_head(b, c, 9, 0);
    writer_batch_add_head(b, a, 3, 0);
    bool drop[2] = {false, false};
    drop[c->id] = true;
    cr_assert_eq(writer_batch_drop_streams(b, drop, 2), 3);
    cr_assert_eq(b->nrows, 3);
    for (size_t i = 0; i < b->nrows; i++)
        cr_assert_eq(b->rows[i].stream, a->id);
    cr_assert_eq(b->nrejects, 0);
    cr_assert_eq(b->ngaps, 0);
    cr_assert_eq(b->nckpts, 1, "no checkpoint of a dropped stream is written");
    cr_assert_eq(writer_batch_checkpoint_of(b, a->id), 3);
    cr_assert_eq(writer_batch_checkpoint_of(b, c->id), -1);
    cr_assert_eq(b->nheads, 1);
    cr_assert_eq(b->heads[0].stream, a->id);
    /* The batch goes on as usual. */
    ev_event_t a4 = s_event("gen-a", 2, 4);
    s_add(&a4, 2, &err);
    cr_assert_eq(writer_batch_checkpoint_of(b, a->id), 4);
    cr_assert_eq(b->nckpts, 1);

    drop[c->id] = false;
    drop[a->id] = true;
    writer_batch_drop_streams(b, drop, 2);
    cr_assert(writer_batch_empty(b), "nothing left");
}

Test(writer_batch, dropping_what_is_committed_drops_a_checkpoint_that_would_move_back)
{
    for (int64_t seq = 1; seq <= 5; seq++) {
        ev_event_t ev = s_event("gen-back", 2, seq);
        cr_assert_eq(s_add(&ev, 2, NULL), EV_OK);
    }
    writer_stream_t *s = s_stream("gen-back", 2);
    uint32_t n = writer_streams_id_limit(ss);
    int64_t *upto = calloc(n, sizeof *upto);
    cr_assert_not_null(upto);
    for (uint32_t i = 0; i < n; i++)
        upto[i] = -1;
    upto[s->id] = 3;
    cr_assert_eq(writer_batch_drop_upto(b, upto, n), 3);
    cr_assert_eq(writer_batch_checkpoint_of(b, s->id), 5, "5 is still ahead of 3");
    upto[s->id] = 7;
    cr_assert_eq(writer_batch_drop_upto(b, upto, n), 2);
    cr_assert_eq(writer_batch_checkpoint_of(b, s->id), -1, "the committed 7 must not go back to 5");
    cr_assert(writer_batch_empty(b));
    free(upto);
}
