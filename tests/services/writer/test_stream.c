/* Unit tests of the per-(source, partition) ordering state: duplicates,
 * order, holding back behind holes, the holdback bound, repair ranges and
 * gaps. No sockets, no database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer_stream.h"

static writer_streams_t *ss;

static void setup(void)
{
    ss = writer_streams_new(100, 1 << 20, 100);
    cr_assert_not_null(ss);
}

static void teardown(void)
{
    writer_streams_destroy(&ss);
    cr_assert_null(ss);
}

TestSuite(writer_stream, .init = setup, .fini = teardown);

static writer_stream_t *s_stream(const char *source, int32_t partition)
{
    writer_stream_t *s = writer_streams_get(ss, source, strlen(source), partition, true);
    cr_assert_not_null(s);
    return s;
}

/* The END of request id as a repair service answers it: whether it knows
 * the source, the archive's head, and how far the answer went (0: all). */
static writer_end_t s_end_to(writer_stream_t *s, uint64_t id, bool found, int64_t head, int64_t to)
{
    ev_repair_t end = {.id = id,
                       .source = {s->source, s->source_len},
                       .partition = s->partition,
                       .from = s->repair_from,
                       .to = to ? to : s->repair_to,
                       .found_source = found,
                       .head = head};
    return writer_stream_repair_end(s, &end, 0);
}

static writer_end_t s_end(writer_stream_t *s, uint64_t id, bool found, int64_t head)
{
    return s_end_to(s, id, found, head, 0);
}

/* Asks for what s misses, as request id sent at time 0. */
static void s_ask(writer_stream_t *s, uint64_t id)
{
    int64_t from, to;
    cr_assert(writer_stream_missing(s, &from, &to), "nothing missing");
    writer_stream_repair_sent(s, id, from, to, 0);
}

static writer_offer_t s_offer(writer_stream_t *s, int64_t seq)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "body-%lld", (long long)seq);
    return writer_stream_offer(ss, s, seq, raw, (size_t)n, 3, false);
}

/* Pops every ready event; returns how many, their seqs in out. */
static int s_pop_all(writer_stream_t *s, int64_t *out, int max)
{
    int n = 0;
    writer_held_t h;
    while (writer_stream_pop_ready(ss, s, &h)) {
        char want[32];
        int len = snprintf(want, sizeof want, "body-%lld", (long long)h.seq);
        cr_assert_eq(h.len, (uint32_t)len);
        cr_assert(memcmp(h.raw, want, (size_t)len) == 0, "a held event keeps its body");
        cr_assert_eq(h.topic_partition, 3);
        if (n < max)
            out[n] = h.seq;
        n++;
        free(h.raw);
    }
    return n;
}

Test(writer_stream, finds_the_same_stream_by_source_and_partition)
{
    writer_stream_t *a = s_stream("gen-1", 0);
    writer_stream_t *b = s_stream("gen-1", 1);
    writer_stream_t *c = s_stream("gen-2", 0);
    cr_assert_neq(a, b);
    cr_assert_neq(a, c);
    cr_assert_eq(s_stream("gen-1", 0), a);
    cr_assert_eq(writer_streams_get(ss, "gen-1", 5, 1, false), b);
    cr_assert_null(writer_streams_get(ss, "gen-3", 5, 0, false));
    cr_assert_eq(writer_streams_by_id(ss, a->id), a);
    cr_assert_str_eq(c->source, "gen-2");
    cr_assert_eq(a->accepted, 0);
}

Test(writer_stream, keeps_many_streams_apart)
{
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "src-%d", i);
        s_stream(name, i % 7)->accepted = i;
    }
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "src-%d", i);
        writer_stream_t *s = writer_streams_get(ss, name, strlen(name), i % 7, false);
        cr_assert_not_null(s);
        cr_assert_eq(s->accepted, i);
    }
}

Test(writer_stream, takes_the_next_seq_and_skips_duplicates)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    cr_assert_eq(s_offer(s, 1), WRITER_OFFER_TAKE);
    cr_assert_eq(s_offer(s, 2), WRITER_OFFER_TAKE);
    cr_assert_eq(s->accepted, 2);
    cr_assert_eq(s_offer(s, 2), WRITER_OFFER_DUPLICATE);
    cr_assert_eq(s_offer(s, 1), WRITER_OFFER_DUPLICATE);
    cr_assert_eq(s->accepted, 2);
    cr_assert_eq(writer_streams_held(ss), 0);
}

Test(writer_stream, starts_after_its_checkpoint)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 41);
    cr_assert_eq(s->committed, 41);
    cr_assert_eq(s_offer(s, 41), WRITER_OFFER_DUPLICATE);
    cr_assert_eq(s_offer(s, 42), WRITER_OFFER_TAKE);
}

Test(writer_stream, holds_events_after_a_hole_and_releases_them_in_order_when_it_fills)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    cr_assert_eq(s_offer(s, 1), WRITER_OFFER_TAKE);
    cr_assert_eq(s_offer(s, 5), WRITER_OFFER_HELD);
    cr_assert_eq(s_offer(s, 3), WRITER_OFFER_HELD);
    cr_assert_eq(s_offer(s, 4), WRITER_OFFER_HELD);
    cr_assert_eq(s_offer(s, 4), WRITER_OFFER_DUPLICATE, "a seq already held is a duplicate");
    cr_assert_eq(writer_streams_held(ss), 3);
    cr_assert_eq(writer_stream_first_held(s), 3);
    int64_t seqs[8];
    cr_assert_eq(s_pop_all(s, seqs, 8), 0, "nothing is released while 2 is missing");
    cr_assert_eq(s_offer(s, 2), WRITER_OFFER_TAKE);
    cr_assert_eq(s_pop_all(s, seqs, 8), 3);
    cr_assert_eq(seqs[0], 3);
    cr_assert_eq(seqs[1], 4);
    cr_assert_eq(seqs[2], 5);
    cr_assert_eq(s->accepted, 5);
    cr_assert_eq(writer_streams_held(ss), 0);
}

Test(writer_stream, releases_only_up_to_the_next_hole)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 3);
    s_offer(s, 4);
    s_offer(s, 7);
    cr_assert_eq(s_offer(s, 1), WRITER_OFFER_TAKE);
    cr_assert_eq(s_offer(s, 2), WRITER_OFFER_TAKE);
    int64_t seqs[8];
    cr_assert_eq(s_pop_all(s, seqs, 8), 2);
    cr_assert_eq(s->accepted, 4);
    cr_assert_eq(writer_stream_first_held(s), 7);
    int64_t from, to;
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 5);
    cr_assert_eq(to, 6);
}

Test(writer_stream, reports_full_at_the_holdback_bound)
{
    writer_stream_t *a = s_stream("gen-1", 3), *b = s_stream("gen-2", 3);
    for (int64_t seq = 10; seq < 60; seq++) {
        cr_assert_not(writer_streams_full(ss));
        s_offer(a, seq);
        s_offer(b, seq);
    }
    cr_assert_eq(writer_streams_held(ss), 100);
    cr_assert(writer_streams_full(ss), "100 held across two streams reach the bound of 100");
    writer_stream_advance(ss, a, 59);
    cr_assert_eq(writer_streams_held(ss), 50, "held events at or below a new checkpoint go");
    cr_assert_not(writer_streams_full(ss));
}

Test(writer_stream, dropping_a_partition_forgets_its_streams_and_what_they_hold)
{
    writer_stream_t *a = s_stream("gen-1", 3);
    writer_stream_t *b = s_stream("gen-1", 4);
    uint32_t bid = b->id;
    s_offer(a, 5);
    s_offer(b, 5);
    cr_assert_eq(writer_streams_held(ss), 2);
    writer_streams_drop_partition(ss, 3);
    cr_assert_eq(writer_streams_held(ss), 1);
    cr_assert_null(writer_streams_get(ss, "gen-1", 5, 3, false));
    cr_assert_eq(writer_streams_get(ss, "gen-1", 5, 4, false), writer_streams_by_id(ss, bid));
}

Test(writer_stream, a_heartbeat_above_what_was_seen_asks_for_the_tail)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 2);
    int64_t from, to;
    cr_assert_not(writer_stream_missing(s, &from, &to));
    cr_assert(writer_stream_heartbeat(s, 2, false, 1000, 1000));
    cr_assert_not(writer_stream_missing(s, &from, &to), "the head is what was seen: nothing missing");
    writer_stream_heartbeat(s, 9, false, 1100, 1000);
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 3);
    cr_assert_eq(to, 9);
    bool resend;
    cr_assert(writer_stream_repair_due(s, 1100, 5000, &resend));
    cr_assert_not(resend);
}

Test(writer_stream, records_a_publishers_head_at_most_once_per_interval)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    cr_assert(writer_stream_heartbeat(s, 5, false, 0, 1000));
    cr_assert_not(writer_stream_heartbeat(s, 6, false, 500, 1000));
    cr_assert_eq(s->head_seq, 6);
    cr_assert(writer_stream_heartbeat(s, 7, false, 1000, 1000));
}

Test(writer_stream, the_missing_range_stops_before_the_first_held_event_and_is_bounded)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 10);
    int64_t from, to;
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 2);
    cr_assert_eq(to, 9);

    writer_stream_t *t = s_stream("gen-2", 3);
    s_offer(t, 3 * (int64_t)WRITER_REPAIR_RANGE_MAX);
    cr_assert(writer_stream_missing(t, &from, &to));
    cr_assert_eq(from, 1);
    cr_assert_eq(to, WRITER_REPAIR_RANGE_MAX, "one request asks for at most WRITER_REPAIR_RANGE_MAX seqs");
}

Test(writer_stream, asks_once_then_again_only_after_the_timeout)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 5);
    bool resend;
    cr_assert(writer_stream_repair_due(s, 1000, 5000, &resend));
    writer_stream_repair_sent(s, 7, 2, 4, 1000);
    cr_assert_not(writer_stream_repair_due(s, 3000, 5000, &resend), "one request in flight per stream");
    writer_stream_repair_progress(s, 4000);
    cr_assert_not(writer_stream_repair_due(s, 8000, 5000, &resend), "an answer in progress keeps it alive");
    cr_assert(writer_stream_repair_due(s, 9000, 5000, &resend));
    cr_assert(resend, "unanswered: sent again");
}

Test(writer_stream, an_end_with_a_missing_range_makes_a_gap_and_releases_held_events)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 6);
    s_offer(s, 7);
    writer_stream_repair_sent(s, 42, 2, 5, 0);
    /* The repair service finds 2 and 3 only. */
    cr_assert_eq(writer_stream_offer(ss, s, 2, "body-2", 6, -1, true), WRITER_OFFER_TAKE);
    cr_assert_eq(writer_stream_offer(ss, s, 3, "body-3", 6, -1, true), WRITER_OFFER_TAKE);
    int64_t first, last;
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "no gap before END");
    cr_assert_eq(s_end(s, 41, true, 7), WRITER_END_STALE, "an END of another request is ignored");
    cr_assert_eq(s_end(s, 42, true, 7), WRITER_END_SETTLED);
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 4);
    cr_assert_eq(last, 5);
    cr_assert_eq(s->accepted, 5);
    cr_assert_not(writer_stream_next_gap(s, &first, &last));
    int64_t seqs[4];
    cr_assert_eq(s_pop_all(s, seqs, 4), 2);
    cr_assert_eq(seqs[0], 6);
    cr_assert_eq(seqs[1], 7);
    cr_assert_eq(s->accepted, 7);
    int64_t from, to;
    cr_assert_not(writer_stream_missing(s, &from, &to));
}

Test(writer_stream, gaps_stop_at_held_events_inside_the_range)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 4);
    s_offer(s, 8);
    writer_stream_repair_sent(s, 1, 2, 3, 0);
    /* A later request covered 2..10, with 4 and 8 held; nothing came. */
    writer_stream_repair_sent(s, 2, 2, 10, 0);
    cr_assert_eq(s_end(s, 2, true, 10), WRITER_END_SETTLED);
    int64_t first, last, seqs[4];
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 2);
    cr_assert_eq(last, 3);
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "4 is held: pop it first");
    cr_assert_eq(s_pop_all(s, seqs, 4), 1);
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 5);
    cr_assert_eq(last, 7);
    cr_assert_eq(s_pop_all(s, seqs, 4), 1);
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 9);
    cr_assert_eq(last, 10);
    cr_assert_eq(s->accepted, 10);
}

Test(writer_stream, a_repair_answer_already_taken_is_a_duplicate)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 2);
    cr_assert_eq(writer_stream_offer(ss, s, 2, "x", 1, -1, true), WRITER_OFFER_DUPLICATE);
}

/* ---- Probes: events nobody announced ---- */

Test(writer_stream, a_head_read_from_the_database_is_a_hole_to_repair)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    writer_stream_learn_head(s, 30);
    int64_t from, to;
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 11);
    cr_assert_eq(to, 30);
    bool resend;
    cr_assert(writer_stream_repair_due(s, 0, 5000, &resend));
    writer_stream_repair_sent(s, 1, from, to, 0);
    cr_assert_not(s->repair_probe, "a known hole is not a probe");
}

Test(writer_stream, a_planned_probe_asks_past_the_highest_known_seq_when_its_time_comes)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    writer_stream_probe_at(s, 5000);
    int64_t from, to;
    cr_assert_not(writer_stream_probe_due(s, 4999));
    cr_assert_not(writer_stream_missing(s, &from, &to), "nothing to ask before its time");
    cr_assert(writer_stream_probe_due(s, 5000));
    cr_assert_not(writer_stream_probe_due(s, 6000), "started once");
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 11);
    cr_assert_eq(to, 10 + WRITER_REPAIR_RANGE_MAX);
    writer_stream_repair_sent(s, 4, from, to, 5000);
    cr_assert(s->repair_probe);
}

Test(writer_stream, a_heartbeat_cancels_a_planned_probe)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    writer_stream_probe_at(s, 5000);
    writer_stream_heartbeat(s, 12, false, 100, 1000);
    cr_assert_not(writer_stream_probe_due(s, 6000), "the publisher is alive and tells its head");
    int64_t from, to;
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(to, 12, "only the announced hole");
}

/* Plans a probe due at 1 ms and sends its request as id: *from..*to is
 * the range asked. */
static void s_start_probe(writer_stream_t *s, uint64_t id, int64_t *from, int64_t *to)
{
    writer_stream_probe_at(s, 1);
    cr_assert(writer_stream_probe_due(s, 1));
    cr_assert(writer_stream_missing(s, from, to));
    writer_stream_repair_sent(s, id, *from, *to, 1);
}

Test(writer_stream, a_probe_makes_no_gaps_and_ends_when_its_answer_stops_short)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    int64_t from, to;
    s_start_probe(s, 9, &from, &to);
    for (int64_t seq = 11; seq <= 15; seq++)
        cr_assert_eq(s_offer(s, seq), WRITER_OFFER_TAKE);
    cr_assert_eq(s_end(s, 9, true, 15), WRITER_END_SETTLED);
    int64_t first, last;
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "what was not sent is not known to exist");
    cr_assert_not(writer_stream_missing(s, &from, &to), "the probe is over");
    bool resend;
    cr_assert_not(writer_stream_repair_due(s, 100000, 5000, &resend));
}

Test(writer_stream, a_probe_whose_answer_reaches_its_end_goes_on)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    int64_t from, to;
    s_start_probe(s, 2, &from, &to);
    cr_assert_eq(from, 1);
    writer_stream_advance(ss, s, to); /* as if every event of the range came */
    cr_assert_eq(s_end(s, 2, true, to + 5), WRITER_END_SETTLED);
    cr_assert(writer_stream_missing(s, &from, &to), "there may be more");
    cr_assert_eq(from, WRITER_REPAIR_RANGE_MAX + 1);
}

Test(writer_stream, a_hole_found_while_probing_is_repaired_as_usual)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    int64_t from, to;
    s_start_probe(s, 3, &from, &to);
    /* The answer skips 12..13 (a deleted archive file) and stops at 20. */
    cr_assert_eq(s_offer(s, 11), WRITER_OFFER_TAKE);
    for (int64_t seq = 14; seq <= 20; seq++)
        cr_assert_eq(s_offer(s, seq), WRITER_OFFER_HELD);
    cr_assert_eq(s_end(s, 3, true, 20), WRITER_END_SETTLED);
    int64_t first, last;
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "a probe itself records nothing");
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 12);
    cr_assert_eq(to, 13, "the known hole is asked for");
    writer_stream_repair_sent(s, 4, from, to, 2);
    cr_assert_not(s->repair_probe);
    cr_assert_eq(s_end(s, 4, true, 20), WRITER_END_SETTLED, "the archive held 20: 12..13 existed");
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 12);
    cr_assert_eq(last, 13);
}

/* ---- Evidence: what may become a gap ---- */

/* One forged heartbeat announcing 2^62 used to make gaps of about 10^11
 * events and move the checkpoint past every real event to come. */
Test(writer_stream, a_forged_head_far_beyond_the_archive_makes_no_gap_and_moves_nothing)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    writer_stream_heartbeat(s, (int64_t)1 << 62, false, 0, 1000);
    cr_assert_eq(writer_stream_head(s), 10, "an unproven head is never recorded");
    int64_t from, to, first, last;
    s_ask(s, 1);
    /* The archive knows the source and holds nothing above 10. */
    cr_assert_eq(s_end(s, 1, true, 10), WRITER_END_WAIT);
    cr_assert_eq(s->waiting, WRITER_WAIT_BEYOND);
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "no gap beyond the archive's head");
    cr_assert_eq(s->accepted, 10);
    cr_assert_eq(writer_stream_head(s), 10);
    /* The real events go on being taken. */
    cr_assert_eq(s_offer(s, 11), WRITER_OFFER_TAKE);
    cr_assert_eq(s->accepted, 11);
    /* Asked again after a backoff that grows to WRITER_RETRY_MAX_MS. */
    bool resend;
    cr_assert_not(writer_stream_repair_due(s, WRITER_RETRY_FIRST_MS - 1, 5000, &resend));
    cr_assert(writer_stream_repair_due(s, WRITER_RETRY_FIRST_MS, 5000, &resend));
    int64_t now = WRITER_RETRY_FIRST_MS;
    for (int i = 0; i < 12; i++) {
        writer_stream_missing(s, &from, &to);
        writer_stream_repair_sent(s, 2 + (uint64_t)i, from, to, now);
        ev_repair_t end = {.id = 2 + (uint64_t)i, .source = {s->source, s->source_len}, .partition = 3,
                           .from = from, .to = to, .found_source = true, .head = 11};
        cr_assert_eq(writer_stream_repair_end(s, &end, now), WRITER_END_WAIT);
        now = s->retry_at_ms;
    }
    cr_assert_eq(s->backoff_ms, WRITER_RETRY_MAX_MS);
    cr_assert_eq(s->accepted, 11, "nothing moved");
}

Test(writer_stream, the_seqs_below_the_archives_head_that_it_cannot_send_are_gaps)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 10);
    writer_stream_heartbeat(s, 40, false, 0, 1000);
    int64_t first, last;
    s_ask(s, 1);
    /* The archive held up to 30 (a deleted file had 11..30), nothing above. */
    cr_assert_eq(s_end(s, 1, true, 30), WRITER_END_WAIT, "31..40 are not known to exist");
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 11);
    cr_assert_eq(last, 30);
    cr_assert_not(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(writer_stream_head(s), 30, "the head recorded is what the archive proved");
}

/* A one-shot ingest run with another STATE_DIR: the repair service does
 * not know its file- source. That was a gap of every missing event. */
Test(writer_stream, a_source_the_repair_service_does_not_know_is_no_answer_yet)
{
    writer_stream_t *s = s_stream("file-1", 3);
    s_offer(s, 1);
    s_offer(s, 6);
    s_offer(s, 7);
    int64_t first, last, seqs[4];
    s_ask(s, 1);
    cr_assert_eq(s_end(s, 1, false, 0), WRITER_END_WAIT);
    cr_assert_eq(s->waiting, WRITER_WAIT_UNKNOWN);
    cr_assert_not(writer_stream_next_gap(s, &first, &last), "never a gap");
    cr_assert_eq(writer_stream_held_count(s), 2, "held events wait");
    bool resend;
    cr_assert_not(writer_stream_repair_due(s, 100, 5000, &resend), "backing off");
    /* The events come again (the file replayed): the hole fills. */
    cr_assert_eq(s_offer(s, 2), WRITER_OFFER_TAKE);
    for (int64_t seq = 3; seq <= 5; seq++)
        cr_assert_eq(s_offer(s, seq), WRITER_OFFER_TAKE);
    cr_assert_eq(s_pop_all(s, seqs, 4), 2);
    cr_assert_eq(s->accepted, 7);
}

Test(writer_stream, a_best_effort_source_loses_only_what_a_later_event_proves_was_sent)
{
    writer_stream_t *s = s_stream("py-1", 3);
    writer_stream_heartbeat(s, 100, true, 0, 1000);
    s_offer(s, 1);
    s_offer(s, 5);
    int64_t from, to, first, last, seqs[4];
    writer_stream_missing(s, &from, &to);
    cr_assert_eq(to, 4);
    writer_stream_repair_sent(s, 1, from, to, 0);
    cr_assert_eq(s_end(s, 1, false, 0), WRITER_END_SETTLED);
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 2);
    cr_assert_eq(last, 4);
    cr_assert_eq(s_pop_all(s, seqs, 4), 1);
    /* 6..100 are only claimed by heartbeats: asked for, never a gap. */
    cr_assert(writer_stream_missing(s, &from, &to));
    writer_stream_repair_sent(s, 2, from, to, 0);
    cr_assert_eq(s_end(s, 2, false, 0), WRITER_END_WAIT);
    cr_assert_not(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(s->accepted, 5);
}

Test(writer_stream, an_answer_cut_short_by_the_server_makes_gaps_only_in_what_it_covered)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    writer_stream_advance(ss, s, 1);
    writer_stream_heartbeat(s, 1000, false, 0, 1000);
    int64_t from, to, first, last;
    s_ask(s, 1);
    cr_assert_eq(s_end_to(s, 1, true, 5000, 10), WRITER_END_SETTLED);
    cr_assert(writer_stream_next_gap(s, &first, &last));
    cr_assert_eq(first, 2);
    cr_assert_eq(last, 10);
    cr_assert_not(writer_stream_next_gap(s, &first, &last));
    cr_assert(writer_stream_missing(s, &from, &to));
    cr_assert_eq(from, 11, "the rest is asked for next");
}

Test(writer_stream, a_refused_request_is_asked_again_after_a_backoff)
{
    writer_stream_t *s = s_stream("gen-1", 3);
    s_offer(s, 1);
    s_offer(s, 3);
    int64_t from, to, first, last;
    writer_stream_missing(s, &from, &to);
    writer_stream_repair_sent(s, 1, from, to, 0);
    ev_repair_t end = {.id = 1, .source = {s->source, s->source_len}, .partition = 3, .from = from, .to = to,
                       .refused = true};
    cr_assert_eq(writer_stream_repair_end(s, &end, 0), WRITER_END_WAIT);
    cr_assert_eq(s->waiting, WRITER_WAIT_REFUSED);
    cr_assert_not(writer_stream_next_gap(s, &first, &last));
    bool resend;
    cr_assert_not(writer_stream_repair_due(s, 1, 5000, &resend));
    cr_assert(writer_stream_repair_due(s, WRITER_RETRY_FIRST_MS, 5000, &resend));
}

Test(writer_stream, a_full_holdback_frees_only_events_waiting_on_unproven_claims)
{
    writer_stream_t *known = s_stream("gen-1", 3), *unknown = s_stream("file-x", 3),
                    *forged = s_stream("gen-2", 4);
    s_offer(known, 1);
    for (int64_t seq = 3; seq <= 40; seq++)
        s_offer(known, seq);
    for (int64_t seq = 2; seq <= 31; seq++)
        s_offer(unknown, seq);
    writer_stream_advance(ss, forged, 5);
    for (int64_t seq = 7; seq <= 10; seq++)
        s_offer(forged, seq);
    for (int64_t seq = 1000; seq < 1028; seq++)
        s_offer(forged, seq);
    cr_assert(writer_streams_full(ss));
    s_ask(unknown, 1);
    cr_assert_eq(s_end(unknown, 1, false, 0), WRITER_END_WAIT);
    s_ask(forged, 2);
    cr_assert_eq(s_end(forged, 2, true, 10), WRITER_END_SETTLED, "6 existed, a gap; 7..10 held");
    cr_assert_eq(writer_streams_evict_unproven(ss), 30, "only the unknown source's, so far");
    /* The forged stream: 6 was lost, 7..10 are taken, then 11..999 are
     * asked for and the archive has nothing above 10. */
    int64_t from, to, first, last, seqs[8];
    cr_assert(writer_stream_next_gap(forged, &first, &last));
    cr_assert_eq(first, 6);
    cr_assert_eq(s_pop_all(forged, seqs, 8), 4);
    writer_stream_missing(forged, &from, &to);
    cr_assert_eq(to, 999);
    writer_stream_repair_sent(forged, 3, from, to, 0);
    cr_assert_eq(s_end(forged, 3, true, 10), WRITER_END_WAIT);
    cr_assert_eq(writer_streams_evict_unproven(ss), 28, "the events claimed above the archive's head");
    cr_assert_eq(writer_stream_held_count(forged), 0);
    cr_assert_eq(writer_stream_held_count(known), 38, "a stream with a live repair keeps all");
    cr_assert_not(writer_streams_full(ss));
}

/* WRITER_HOLDBACK_MAX counted events: each keeps its body (up to 64 KiB),
 * so 200,000 held events could take about 12.8 GB. */
Test(writer_stream, the_holdback_is_bounded_in_bytes_too)
{
    writer_streams_t *small = writer_streams_new(1000000, 64 * 1024, 8);
    writer_stream_t *s = writer_streams_get(small, "gen-1", 5, 3, true);
    static char body[16 * 1024];
    writer_stream_offer(small, s, 1, body, sizeof body, 3, false);
    for (int64_t seq = 3; seq <= 5; seq++) {
        writer_stream_offer(small, s, seq, body, sizeof body, 3, false);
        cr_assert_not(writer_streams_full(small), "%zu bytes held", writer_streams_held_bytes(small));
    }
    writer_stream_offer(small, s, 6, body, sizeof body, 3, false);
    cr_assert_eq(writer_streams_held_bytes(small), 4 * sizeof body);
    cr_assert(writer_streams_full(small), "64 KiB of bodies held: full, though 4 events are far below the count");
    /* Taking the hole frees them. */
    writer_stream_offer(small, s, 2, body, sizeof body, 3, false);
    writer_held_t h;
    while (writer_stream_pop_ready(small, s, &h))
        free(h.raw);
    cr_assert_eq(writer_streams_held_bytes(small), 0);
    cr_assert_not(writer_streams_full(small));
    writer_streams_destroy(&small);
}

/* A new stream was made for every (source, partition) seen, never freed
 * while the partition was owned: any peer could make a writer grow. */
Test(writer_stream, a_partition_takes_at_most_sources_max_sources)
{
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "src-%d", i);
        cr_assert_not_null(writer_streams_get(ss, name, strlen(name), 3, true));
    }
    cr_assert_null(writer_streams_get(ss, "src-x", 5, 3, true), "the 101st source of partition 3 is refused");
    cr_assert_not_null(writer_streams_get(ss, "src-0", 5, 3, true), "the known ones are still found");
    cr_assert_not_null(writer_streams_get(ss, "src-x", 5, 4, true), "another partition has room");
    writer_streams_drop_partition(ss, 3);
    cr_assert_not_null(writer_streams_get(ss, "src-x", 5, 3, true), "room again once the partition is given up");
}

Test(writer_stream, only_a_settled_source_quiet_for_the_idle_time_is_forgotten)
{
    /* Everything committed and nothing heard since 1000: forgotten at 1500
     * with 500 ms of idle time, not at 1499. */
    writer_stream_t *done = s_stream("file-done", 3);
    cr_assert_eq(s_offer(done, 1), WRITER_OFFER_TAKE);
    writer_stream_advance(ss, done, 1);
    writer_stream_heard(done, 1000);
    /* Each of these has something left to do. */
    writer_stream_t *taken = s_stream("file-taken", 3); /* taken, not committed */
    s_offer(taken, 1);
    writer_stream_t *held = s_stream("file-held", 3); /* an event behind a hole */
    s_offer(held, 2);
    writer_stream_t *asked = s_stream("file-asked", 3); /* a repair in flight */
    s_offer(asked, 3);
    s_ask(asked, 7);
    writer_stream_t *announced = s_stream("file-announced", 3); /* a head past its checkpoint */
    writer_stream_learn_head(announced, 9);
    writer_stream_t *probed = s_stream("file-probed", 3); /* a probe planned */
    writer_stream_probe_at(probed, 2000);
    writer_stream_t *const busy[] = {taken, held, asked, announced, probed};
    for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++) {
        cr_assert_not(writer_stream_settled(busy[i]), "%s", busy[i]->source);
        writer_stream_heard(busy[i], 0);
    }
    cr_assert(writer_stream_settled(done));

    uint32_t ids[8];
    cr_assert_eq(writer_streams_idle(ss, 1499, 500, ids, 8), 0, "heard 499 ms ago");
    cr_assert_eq(writer_streams_idle(ss, 1500, 500, ids, 8), 1);
    cr_assert_eq(ids[0], done->id);
    writer_streams_forget(ss, ids, 1);
    cr_assert_null(writer_streams_get(ss, "file-done", 9, 3, false));
    for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++)
        cr_assert_not_null(writer_streams_get(ss, busy[i]->source, busy[i]->source_len, 3, false));
    cr_assert_eq(writer_streams_held(ss), 2, "what the others hold stays");
}

Test(writer_stream, forgotten_sources_leave_room_and_their_ids_to_new_ones)
{
    char name[16];
    uint32_t ids[100];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "src-%d", i);
        ids[i] = s_stream(name, 3)->id;
    }
    cr_assert(writer_streams_crowded(ss, 3));
    cr_assert_null(writer_streams_get(ss, "src-x", 5, 3, true), "the 101st source of partition 3 is refused");
    uint32_t idle[128];
    cr_assert_eq(writer_streams_idle(ss, 10, 10, idle, 60), 60, "at most as many as asked");
    cr_assert_eq(writer_streams_idle(ss, 10, 10, idle, 128), 100, "none took anything: all settled");
    writer_streams_forget(ss, idle, 100);
    cr_assert_not(writer_streams_crowded(ss, 3));
    uint32_t limit = writer_streams_id_limit(ss);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "new-%d", i);
        writer_stream_t *s = s_stream(name, 3);
        cr_assert_eq(s->accepted, 0, "a new stream starts empty");
        cr_assert_eq(writer_streams_by_id(ss, s->id), s);
    }
    cr_assert_eq(writer_streams_id_limit(ss), limit, "the ids of the forgotten were given out again");
    for (int i = 0; i < 100; i++)
        cr_assert_not_null(writer_streams_by_id(ss, ids[i]));
    cr_assert_null(writer_streams_get(ss, "src-0", 5, 3, false), "the forgotten are not found");
    /* One forgotten between others: the next new stream takes its id. */
    writer_stream_t *mid = writer_streams_get(ss, "new-50", 6, 3, false);
    uint32_t freed = mid->id;
    writer_streams_forget(ss, &freed, 1);
    cr_assert_eq(s_stream("newer", 4)->id, freed);
    cr_assert_eq(writer_streams_id_limit(ss), limit);
    cr_assert_not_null(writer_streams_get(ss, "new-49", 6, 3, false), "the others are still found");
}
