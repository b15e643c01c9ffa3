/* Unit tests of reading files as events: identities of old-format files
 * (content-based source, per-partition seqs that skip rejected rows), both
 * formats, any column order, refused headers, and the reject file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evpipe/config.h"
#include "evpipe/csv.h"
#include "ingest_reader.h"
#include "ingest_rejects.h"
#include "support.h"

/* `b2sum tests/fixtures/ingest/old_format.csv | cut -c1-32` */
#define OLD_FORMAT_SOURCE "file-bb2abb539c17ecb9911d2806c6be1a3e"
#define ARCHIVE_SOURCE "gen-00112233aabbccdd"

static int64_t s_utc_us(int y, int mo, int d, int h, int mi, int s, int us)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000000 + us;
}

TestSuite(ingest_reader, .init = test_dir_new, .fini = test_dir_remove);

Test(ingest_reader, old_file_source_is_file_and_blake2b_of_the_whole_content)
{
    trow_t rows[16];
    size_t n = read_rows(fx("old_format.csv"), 16, 65536, rows, 16);
    cr_assert_eq(n, 8);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(rows[i].source, OLD_FORMAT_SOURCE);
}

Test(ingest_reader, same_content_under_another_name_gives_the_same_identities)
{
    char path[600];
    snprintf(path, sizeof path, "%s/renamed-copy.csv", test_dir);
    copy_file(fx("old_format.csv"), path);
    trow_t a[16], b[16];
    size_t na = read_rows(fx("old_format.csv"), 16, 65536, a, 16);
    size_t nb = read_rows(path, 16, 65536, b, 16);
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++) {
        cr_assert_str_eq(a[i].source, b[i].source);
        cr_assert_eq(a[i].partition, b[i].partition);
        cr_assert_eq(a[i].seq, b[i].seq);
    }
}

Test(ingest_reader, one_changed_byte_gives_another_source)
{
    char path[600];
    snprintf(path, sizeof path, "%s/old.csv", test_dir);
    size_t len;
    char *data = slurp(fx("old_format.csv"), &len);
    char *price = strstr(data, "120.0");
    cr_assert_not_null(price);
    price[4] = '1'; /* 120.0 -> 120.1: still a good row */
    spit(path, data, len);
    trow_t a[16], b[16];
    read_rows(fx("old_format.csv"), 16, 65536, a, 16);
    size_t n = read_rows(path, 16, 65536, b, 16);
    cr_assert_eq(n, 8);
    cr_assert_str_neq(a[0].source, b[0].source);
    cr_assert_eq(strncmp(b[0].source, "file-", 5), 0);
    cr_assert_eq(strlen(b[0].source), INGEST_FILE_SOURCE_LEN);
    cr_assert_eq(b[0].price, 12010);
    free(data);
}

Test(ingest_reader, hash_source_matches_the_protocol_definition)
{
    char path[600];
    snprintf(path, sizeof path, "%s/abc.csv", test_dir);
    spit(path, "abc", 3);
    FILE *f = fopen(path, "rb");
    char source[INGEST_FILE_SOURCE_LEN + 1], why[128];
    uint64_t bytes = 0;
    cr_assert_eq(ingest_reader_hash_source(fileno(f), source, &bytes, why, sizeof why), 0);
    fclose(f);
    /* BLAKE2b-512("abc") starts ba80a53f981c4d0d6a2797b69f12f6e9 (RFC 7693). */
    cr_assert_str_eq(source, "file-ba80a53f981c4d0d6a2797b69f12f6e9");
    cr_assert_eq(bytes, 3);
}

Test(ingest_reader, old_file_source_is_unchanged_under_the_identity_settings)
{
    /* The sources files ingested before settings were named in them had:
     * a replay after an upgrade adds nothing. */
    trow_t rows[16];
    size_t n = read_rows(fx("old_format.csv"), INGEST_IDENTITY_PARTITIONS, INGEST_IDENTITY_MAX_LINE, rows, 16);
    cr_assert_eq(n, 8);
    cr_assert_str_eq(rows[0].source, OLD_FORMAT_SOURCE);
    cr_assert_eq(strlen(rows[0].source), INGEST_FILE_SOURCE_LEN);
    /* And those are the defaults of the settings (a new default must not
     * change identities silently: keep the constants, add a suffix rule). */
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cr_assert_eq(cfg.partitions, INGEST_IDENTITY_PARTITIONS);
    cr_assert_eq(cfg.ingest_max_line, INGEST_IDENTITY_MAX_LINE);
}

Test(ingest_reader, old_file_source_names_the_settings_its_identities_depend_on)
{
    static const struct {
        int partitions;
        size_t max_line;
        const char *suffix;
    } cases[] = {
        {32, 65536, "-p32"},
        {16, 4096, "-l4096"},
        {32, 4096, "-p32-l4096"},
        {1024, 16777216, "-p1024-l16777216"},
        {1, 256, "-p1-l256"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        trow_t rows[16];
        size_t n = read_rows(fx("old_format.csv"), cases[c].partitions, cases[c].max_line, rows, 16);
        cr_assert_eq(n, 8);
        char want[INGEST_SOURCE_MAX];
        snprintf(want, sizeof want, "%s%s", OLD_FORMAT_SOURCE, cases[c].suffix);
        for (size_t i = 0; i < n; i++)
            cr_assert_str_eq(rows[i].source, want, "PARTITIONS=%d INGEST_MAX_LINE=%zu", cases[c].partitions,
                             cases[c].max_line);
        cr_assert_leq(strlen(want), ev_fields[EV_F_source].max_chars, "within the source limit");
    }
}

Test(ingest_reader, a_known_source_of_other_settings_is_refused)
{
    /* The ledger's source says how the file was read: read with other
     * settings, its identities would differ, so the reader refuses. */
    ingest_reader_opts_t o = {.partitions = 16, .max_line = 65536};
    bool refused;
    char why[400];
    ingest_reader_t *r = ingest_reader_open(fx("old_format.csv"), &o, OLD_FORMAT_SOURCE "-p32", &refused, why,
                                            sizeof why);
    cr_assert_null(r);
    cr_assert_not(refused, "the header is fine");
    cr_assert(strstr(why, OLD_FORMAT_SOURCE "-p32") != NULL, "%s", why);
    o.partitions = 32;
    r = ingest_reader_open(fx("old_format.csv"), &o, OLD_FORMAT_SOURCE "-p32", &refused, why, sizeof why);
    cr_assert_not_null(r, "%s", why);
    cr_assert_str_eq(ingest_reader_source(r), OLD_FORMAT_SOURCE "-p32");
    ingest_reader_destroy(&r);
    r = ingest_reader_open(fx("old_format.csv"), &o, OLD_FORMAT_SOURCE, &refused, why, sizeof why);
    cr_assert_null(r, "a source without suffix was read with PARTITIONS=16");
}

Test(ingest_reader, old_rows_read_crlf_float_prices_iso_times_and_quoted_commas)
{
    trow_t r[16];
    size_t n = read_rows(fx("old_format.csv"), 16, 65536, r, 16);
    cr_assert_eq(n, 8);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(r[i].code, EV_OK, "row %zu: %d", i, r[i].code);
    cr_assert_eq(r[0].user_id, 101);
    cr_assert_str_eq(r[0].product_name, "Laptop, 15 inch");
    cr_assert_eq(r[0].price, 12000);
    cr_assert_eq(r[0].time, s_utc_us(2024, 11, 20, 10, 15, 30, 123456));
    cr_assert_eq(r[1].price, 850);
    cr_assert_eq(r[1].time, s_utc_us(2024, 11, 20, 10, 15, 31, 0));
    cr_assert_eq(r[2].time, s_utc_us(2024, 11, 20, 10, 16, 2, 500000));
    cr_assert_str_eq(r[3].product_name, "Desk \"Pro\"");
    cr_assert_eq(r[3].price, 34999);
    cr_assert_eq(r[5].price, 400);
    cr_assert_eq(r[7].time, s_utc_us(2024, 11, 21, 23, 59, 59, 999999));
    cr_assert_eq(r[0].line, 2);
    cr_assert_eq(r[7].line, 9);
}

Test(ingest_reader, seqs_count_per_partition_in_row_order)
{
    trow_t r[16];
    size_t n = read_rows(fx("old_format.csv"), 16, 65536, r, 16);
    /* users 101 102 101 103 104 102 105 106 -> partitions 4 9 4 4 12 9 6 11 */
    const int32_t part[] = {4, 9, 4, 4, 12, 9, 6, 11};
    const int64_t seq[] = {1, 1, 2, 3, 1, 2, 1, 1};
    cr_assert_eq(n, 8);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].partition, (int32_t)ev_partition_of(r[i].user_id, 16));
        cr_assert_eq(r[i].partition, part[i], "row %zu", i);
        cr_assert_eq(r[i].seq, seq[i], "row %zu", i);
    }
}

Test(ingest_reader, rejected_rows_take_no_seq)
{
    trow_t r[32];
    size_t n = read_rows(fx("bad_rows.csv"), 16, 256, r, 32);
    cr_assert_eq(n, 12);
    const ev_reject_t want[] = {EV_OK,           EV_REJECT_COLUMNS,    EV_REJECT_NUMBER,   EV_REJECT_PRICE,
                                EV_REJECT_TIME,  EV_REJECT_EVENT_TYPE, EV_REJECT_TOO_LONG, EV_REJECT_ENCODING,
                                EV_OK,           EV_REJECT_LINE_TOO_LONG, EV_OK,           EV_OK};
    const uint64_t lines[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].code, want[i], "row %zu: %s, want %s", i, ev_reject_name(r[i].code),
                     ev_reject_name(want[i]));
        cr_assert_eq(r[i].line, lines[i], "row %zu: line %llu", i, (unsigned long long)r[i].line);
    }
    /* User 301 (partition 2): good on lines 2 and 14, refused between. */
    cr_assert_eq(r[0].partition, 2);
    cr_assert_eq(r[0].seq, 1);
    cr_assert_eq(r[11].partition, 2);
    cr_assert_eq(r[11].seq, 2);
    cr_assert_eq(r[8].partition, 9);
    cr_assert_eq(r[8].seq, 1);
    cr_assert_str_eq(r[8].product_name, "Multi\nline name");
    cr_assert_eq(r[10].partition, 15);
    cr_assert_eq(r[10].seq, 1);
}

Test(ingest_reader, any_column_order_named_by_the_header_works)
{
    char path[600];
    snprintf(path, sizeof path, "%s/shuffled.csv", test_dir);
    const char *text =
        "event_time,product_price,user_id,product_category,event_type,user_email,product_id,user_name,product_name\r\n"
        "2024-11-20 10:15:30.123456,120.0,101,Electronics,view,john.smith@example.com,5001,\"Smith, John\","
        "\"Laptop, 15 inch\"\r\n"
        "2024-11-20 10:15:31,8.5,102,Kitchen,purchase,anna@example.com,5002,Anna,Coffee Mug\r\n"
        "2024-11-20T10:16:02.5,120.0,101,Electronics,purchase,john.smith@example.com,5001,\"Smith, John\","
        "\"Laptop, 15 inch\"\r\n";
    spit(path, text, strlen(text));
    trow_t a[16], b[16];
    read_rows(fx("old_format.csv"), 16, 65536, a, 16);
    size_t n = read_rows(path, 16, 65536, b, 16);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(b[i].code, EV_OK);
        cr_assert_eq(b[i].user_id, a[i].user_id);
        cr_assert_eq(b[i].product_id, a[i].product_id);
        cr_assert_eq(b[i].price, a[i].price);
        cr_assert_eq(b[i].time, a[i].time);
        cr_assert_str_eq(b[i].product_name, a[i].product_name);
        cr_assert_eq(b[i].partition, a[i].partition);
        cr_assert_eq(b[i].seq, a[i].seq);
    }
}

Test(ingest_reader, archive_rows_keep_the_identity_their_columns_carry)
{
    trow_t r[32];
    size_t n = read_rows(fx("archive_format.csv"), 16, 65536, r, 32);
    cr_assert_eq(n, 12);
    const int32_t part[] = {12, 3, 1, 2, 9, 12, 3, 1, 15, 1, 12, 2};
    const int64_t seq[] = {1, 1, 1, 1, 1, 2, 2, 2, 1, 3, 3, 2};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r[i].code, EV_OK);
        cr_assert_str_eq(r[i].source, ARCHIVE_SOURCE);
        cr_assert_eq(r[i].partition, part[i]);
        cr_assert_eq(r[i].seq, seq[i]);
    }
}

Test(ingest_reader, archive_partition_not_below_PARTITIONS_is_rejected)
{
    trow_t r[32];
    size_t n = read_rows(fx("archive_format.csv"), 4, 65536, r, 32);
    cr_assert_eq(n, 12);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(r[i].code, r[i].line == 3 || r[i].line == 4 || r[i].line == 5 || r[i].line == 8 ||
                                        r[i].line == 9 || r[i].line == 11 || r[i].line == 13
                                    ? EV_OK
                                    : EV_REJECT_IDENTITY,
                     "line %llu", (unsigned long long)r[i].line);
}

Test(ingest_reader, a_bad_header_refuses_the_whole_file)
{
    ingest_reader_opts_t o = {.partitions = 16, .max_line = 65536};
    bool refused = false;
    char why[256] = "";
    ingest_reader_t *r = ingest_reader_open(fx("bad_header.csv"), &o, NULL, &refused, why, sizeof why);
    cr_assert_null(r);
    cr_assert(refused);
    cr_assert_not_null(strstr(why, "product_price"), "%s", why);

    char path[600];
    snprintf(path, sizeof path, "%s/empty.csv", test_dir);
    spit(path, "", 0);
    r = ingest_reader_open(path, &o, NULL, &refused, why, sizeof why);
    cr_assert_null(r);
    cr_assert(refused);

    snprintf(path, sizeof path, "%s/missing.csv", test_dir);
    r = ingest_reader_open(path, &o, NULL, &refused, why, sizeof why);
    cr_assert_null(r);
    cr_assert_not(refused);
}

/* ---- The reject file ---- */

TestSuite(ingest_rejects, .init = test_dir_new, .fini = test_dir_remove);

Test(ingest_rejects, reject_file_lines_hold_file_line_reason_detail_and_raw_record)
{
    const char *file = fx("bad_rows.csv");
    ingest_reader_opts_t o = {.partitions = 16, .max_line = 256};
    bool refused;
    char why[256];
    ingest_reader_t *r = ingest_reader_open(file, &o, NULL, &refused, why, sizeof why);
    cr_assert_not_null(r);
    ingest_rejects_t *rj = ingest_rejects_new(test_dir, file);
    ingest_row_t row;
    while (ingest_reader_next(r, &row, why, sizeof why) > 0)
        if (row.code != EV_OK)
            cr_assert_eq(ingest_rejects_add(rj, row.line, ev_reject_name(row.code), row.err.detail, row.raw,
                                            row.raw_len, why, sizeof why),
                         0, "%s", why);
    cr_assert_eq(ingest_rejects_close(rj, why, sizeof why), 0, "%s", why);
    cr_assert_eq(ingest_rejects_count(rj), 8);
    char expect_path[700];
    snprintf(expect_path, sizeof expect_path, "%s/rejects/bad_rows.csv.rejects.csv", test_dir);
    cr_assert_str_eq(ingest_rejects_path(rj), expect_path);
    ingest_rejects_destroy(&rj);
    ingest_reader_destroy(&r);

    /* The original lines, to compare raw with. */
    size_t len;
    char *orig = slurp(file, &len);
    const char *orig_lines[16] = {0};
    size_t orig_len[16] = {0};
    int nl = 1;
    orig_lines[1] = orig;
    for (size_t i = 0; i < len && nl < 15; i++)
        if (orig[i] == '\n') {
            orig_len[nl] = (size_t)(orig + i - orig_lines[nl]);
            orig_lines[++nl] = orig + i + 1;
        }

    FILE *f = fopen(expect_path, "rb");
    cr_assert_not_null(f);
    ev_csv_reader_t *csv = ev_csv_reader_new(fileno(f), 1 << 20);
    ev_csv_record_t rec;
    cr_assert_eq(ev_csv_reader_next(csv, &rec), 1);
    cr_assert_eq(rec.raw_len, strlen("file,line,reason,detail,raw"));
    cr_assert_eq(memcmp(rec.raw, "file,line,reason,detail,raw", rec.raw_len), 0);
    const char *reasons[] = {"column_count", "bad_number",     "bad_price",    "bad_time",
                             "bad_event_type", "too_long",     "bad_encoding", "line_too_long"};
    const int lines[] = {3, 4, 5, 6, 7, 8, 9, 12};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(ev_csv_reader_next(csv, &rec), 1);
        cr_assert_eq(rec.nfields, 5, "reject %d has %zu fields", i, rec.nfields);
        cr_assert_eq(rec.fields[0].len, strlen(file));
        cr_assert_eq(memcmp(rec.fields[0].ptr, file, strlen(file)), 0);
        char num[16];
        snprintf(num, sizeof num, "%d", lines[i]);
        cr_assert_eq(rec.fields[1].len, strlen(num));
        cr_assert_eq(memcmp(rec.fields[1].ptr, num, strlen(num)), 0, "reject %d", i);
        cr_assert_eq(rec.fields[2].len, strlen(reasons[i]));
        cr_assert_eq(memcmp(rec.fields[2].ptr, reasons[i], strlen(reasons[i])), 0, "reject %d", i);
        cr_assert_gt(rec.fields[3].len, 0, "reject %d has no detail", i);
        const char *want = orig_lines[lines[i]];
        size_t want_len = orig_len[lines[i]];
        if (lines[i] == 12) {
            /* Too long: the head of the record is kept. */
            cr_assert_gt(rec.fields[4].len, 200);
            cr_assert_leq(rec.fields[4].len, want_len);
        } else {
            cr_assert_eq(rec.fields[4].len, want_len, "reject %d: raw %u bytes, line %zu", i, rec.fields[4].len,
                         want_len);
        }
        cr_assert_eq(memcmp(rec.fields[4].ptr, want, rec.fields[4].len), 0, "reject %d: raw differs", i);
    }
    cr_assert_eq(ev_csv_reader_next(csv, &rec), 0);
    ev_csv_reader_destroy(&csv);
    fclose(f);
    free(orig);
}
