/* Unit tests of the event as CSV: the archive writer, the streaming record
 * reader (quotes, line ends, BOM, blank lines, line numbers, record limits),
 * header mapping, and every reason ev_csv_parse_row refuses a row. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evpipe/csv.h"
#include "proto_test.h"

/* ---- Helpers ---- */

#define NASTY "say \"hi\", then\nnew line\r\nCRLF\ttab \\back\\ é 漢字 😀"
#define OLD_HEADER "user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,event_time"
#define ARCHIVE_HEADER OLD_HEADER ",source,partition,seq"
#define WHERE_CSV (EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY)

/* Event number i of a reproducible series, with awkward text in every text field. */
static ev_event_t s_event(int i, char *scratch, size_t cap)
{
    static const char *const texts[] = {
        "plain", NASTY, "\"", ",", "\n", "\r", "\r\n", "", "\"\"", "a,\"b\",c", "trailing space ", " leading",
        "é", "漢字", "😀😀", "tab\there", "back\\slash", "\\N", "\\.", "'single'",
    };
    size_t nt = sizeof texts / sizeof texts[0];
    ev_event_t ev;
    memset(&ev, 0, sizeof ev);
    int n = snprintf(scratch, cap, "user %d %s", i, texts[(size_t)i % nt]);
    ev.user_id = i * 7919 - 1000;
    ev.user_name = (ev_str_t){scratch, (uint32_t)n};
    ev.user_email = pt_str(texts[(size_t)(i + 1) % nt]);
    ev.event_type = pt_str(i % 3 ? "view" : "purchase");
    ev.product_id = i % 1000;
    ev.product_name = pt_str(texts[(size_t)(i + 2) % nt]);
    ev.product_category = pt_str(texts[(size_t)(i + 3) % nt]);
    ev.product_price = (i % 2 ? 1 : -1) * (int64_t)i * 1234567 % EV_PRICE_MAX_CENTS;
    ev.event_time = 1706702400000000LL + (int64_t)i * 1000001;
    ev.source = pt_str(i % 5 ? "gen-0123456789abcdef" : "file-0123456789abcdef0123456789abcdef");
    ev.partition = i % 16;
    ev.seq = i + 1;
    return ev;
}

/* A temporary file holding data, positioned at its start. */
static FILE *s_file(const void *data, size_t len)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fflush(f), 0);
    cr_assert_eq(lseek(fileno(f), 0, SEEK_SET), 0);
    return f;
}

static FILE *s_file_str(const char *text)
{
    return s_file(text, strlen(text));
}

/* A reader on a file, with the header read and mapped. */
typedef struct {
    FILE *f;               /* the file */
    ev_csv_reader_t *r;    /* reading it */
    ev_csv_map_t map;      /* from its header */
    ev_csv_record_t rec;   /* the last record read */
} csv_t;

static void s_open(csv_t *c, FILE *f, size_t max_record)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->r = ev_csv_reader_new(fileno(f), max_record);
    cr_assert_not_null(c->r);
}

static void s_open_mapped(csv_t *c, FILE *f, size_t max_record)
{
    s_open(c, f, max_record);
    cr_assert_eq(ev_csv_reader_next(c->r, &c->rec), 1, "no header");
    ev_error_t err = {0};
    cr_assert_eq(ev_csv_map_header(&c->map, &c->rec, &err), EV_OK, "header refused: %s", err.detail);
}

static void s_close(csv_t *c)
{
    ev_csv_reader_destroy(&c->r);
    cr_assert_null(c->r);
    fclose(c->f);
}

/* Reads the next record and parses it. */
static ev_reject_t s_next_row(csv_t *c, ev_event_t *ev, ev_error_t *err)
{
    cr_assert_eq(ev_csv_reader_next(c->r, &c->rec), 1, "a record was expected");
    return ev_csv_parse_row(&c->map, &c->rec, ev, err);
}

/* Parses the one row of an old-generator file made of the header and row. */
static ev_reject_t s_parse_old(const char *row, size_t row_len, ev_error_t *err)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_puts(&b, OLD_HEADER "\n");
    ev_buf_append(&b, row, row_len);
    ev_buf_putc(&b, '\n');
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 0);
    ev_event_t ev;
    ev_reject_t rc = s_next_row(&c, &ev, err);
    cr_assert_eq(err->code, rc);
    s_close(&c);
    ev_buf_free(&b);
    return rc;
}

/* A good old-generator row with column `field` replaced by `value` (as it
 * stands in the file, quotes and all). */
static char *s_old_row(int field, const char *value)
{
    static const char *const good[] = {"42", "Zoë", "zoe@example.com", "view", "7",
                                       "Tea", "Food", "12.50", "2024-01-31 12:00:00"};
    ev_buf_t b;
    ev_buf_init(&b);
    for (int i = 0; i < 9; i++) {
        if (i)
            ev_buf_putc(&b, ',');
        ev_buf_puts(&b, i == field ? value : good[i]);
    }
    return b.data;
}

static void s_refused(int field, const char *value, ev_reject_t want)
{
    char *row = s_old_row(field, value);
    ev_error_t err = {0};
    ev_reject_t rc = s_parse_old(row, strlen(row), &err);
    cr_assert_eq(rc, want, "%s='%s': %s (%s), %s expected", ev_fields[field].name, value, ev_reject_name(rc),
                 err.detail, ev_reject_name(want));
    cr_assert(strncmp(err.detail, ev_fields[field].name, strlen(ev_fields[field].name)) == 0,
              "detail '%s' does not name %s", err.detail, ev_fields[field].name);
    free(row);
}

static char *s_repeat(const char *ch, size_t n)
{
    size_t k = strlen(ch);
    char *s = malloc(k * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * k, ch, k);
    s[k * n] = '\0';
    return s;
}

/* ---- Writing ---- */

Test(csv_write, headers_follow_the_field_list)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_ARCHIVE);
    cr_assert_str_eq(b.data, ARCHIVE_HEADER "\n");
    ev_buf_reset(&b);
    ev_csv_header(&b, EV_CSV_OLD);
    cr_assert_str_eq(b.data, OLD_HEADER "\n");
    ev_buf_free(&b);
}

Test(csv_write, quotes_only_fields_that_need_it)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},          {"", ""},
        {"a,b", "\"a,b\""},          {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"two\nlines", "\"two\nlines\""}, {"cr\r", "\"cr\r\""},
        {"tab\tback\\", "tab\tback\\"}, {"漢字 😀", "漢字 😀"},
        {"\"", "\"\"\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ev_buf_t b;
        ev_buf_init(&b);
        ev_csv_append_field(&b, cases[i].in, strlen(cases[i].in));
        cr_assert_str_eq(b.data, cases[i].out);
        cr_assert_eq(b.len, strlen(cases[i].out));
        ev_buf_free(&b);
    }
}

Test(csv_write, writes_an_archive_row)
{
    ev_event_t ev = pt_event();
    ev.user_name = pt_str("Zoë");
    ev.published_at = 99; /* on the wire only: never in a file */
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_append_row(&b, &ev, EV_CSV_ARCHIVE);
    cr_assert_str_eq(b.data, "42,Zoë,zoe@example.com,purchase,7,\"Tea, green\",Food,12.50,"
                             "2024-01-31 12:00:00.000001,gen-0123456789abcdef,3,1\n");
    ev_buf_reset(&b);
    ev_csv_append_row(&b, &ev, EV_CSV_OLD);
    cr_assert_str_eq(b.data, "42,Zoë,zoe@example.com,purchase,7,\"Tea, green\",Food,12.50,"
                             "2024-01-31 12:00:00.000001\n");
    ev_buf_free(&b);
}

/* ---- Round trips ---- */

Test(csv_round_trip, archive_rows_keep_every_field)
{
    enum { N = 200 };
    static char names[N][128];
    ev_event_t evs[N];
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_ARCHIVE);
    for (int i = 0; i < N; i++) {
        evs[i] = s_event(i, names[i], sizeof names[i]);
        ev_error_t err = {0};
        cr_assert_eq(ev_event_validate(&evs[i], &err), EV_OK, "event %d: %s", i, err.detail);
        ev_csv_append_row(&b, &evs[i], EV_CSV_ARCHIVE);
    }
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 0);
    cr_assert_eq(c.map.layout, EV_CSV_ARCHIVE);
    cr_assert_eq(c.map.ncols, 12);
    cr_assert_eq(c.map.ignored, 0);
    uint64_t line = 2;
    for (int i = 0; i < N; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        cr_assert_eq(s_next_row(&c, &back, &err), EV_OK, "row %d: %s", i, err.detail);
        cr_assert(ev_event_equal(&evs[i], &back, WHERE_CSV), "row %d differs", i);
        cr_assert_eq(c.rec.line, line, "row %d", i);
        /* The next record starts after every line end this one holds. */
        for (size_t k = 0; k < c.rec.raw_len; k++)
            line += c.rec.raw[k] == '\n';
        line++;
    }
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0, "end of file");
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0, "end of file, again");
    cr_assert_eq(ev_csv_reader_offset(c.r), b.len);
    s_close(&c);
    ev_buf_free(&b);
}

Test(csv_round_trip, old_layout_rows_keep_the_payload_and_no_identity)
{
    enum { N = 40 };
    static char names[N][128];
    ev_event_t evs[N];
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_OLD);
    for (int i = 0; i < N; i++) {
        evs[i] = s_event(i, names[i], sizeof names[i]);
        ev_csv_append_row(&b, &evs[i], EV_CSV_OLD);
    }
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 0);
    cr_assert_eq(c.map.layout, EV_CSV_OLD);
    cr_assert_eq(c.map.column_of[EV_F_source], -1);
    for (int i = 0; i < N; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        cr_assert_eq(s_next_row(&c, &back, &err), EV_OK, "row %d: %s", i, err.detail);
        cr_assert(ev_event_equal(&evs[i], &back, EV_WHERE_PAYLOAD), "row %d differs", i);
        cr_assert_eq(back.source.len, 0);
        cr_assert_eq(back.partition, 0);
        cr_assert_eq(back.seq, 0);
    }
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    s_close(&c);
    ev_buf_free(&b);
}

Test(csv_round_trip, records_straddling_read_boundaries_survive)
{
    /* A few MiB, so records cross the reader's 256 KiB reads many times. */
    enum { N = 20000 };
    char name[128];
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_ARCHIVE);
    for (int i = 0; i < N; i++) {
        ev_event_t ev = s_event(i, name, sizeof name);
        ev_csv_append_row(&b, &ev, EV_CSV_ARCHIVE);
    }
    cr_assert_gt(b.len, 4 * 256 * 1024);
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 4096);
    for (int i = 0; i < N; i++) {
        ev_event_t back;
        ev_error_t err = {0};
        cr_assert_eq(s_next_row(&c, &back, &err), EV_OK, "row %d: %s", i, err.detail);
        ev_event_t want = s_event(i, name, sizeof name);
        cr_assert(ev_event_equal(&want, &back, WHERE_CSV), "row %d differs", i);
    }
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    cr_assert_eq(ev_csv_reader_offset(c.r), b.len);
    s_close(&c);
    ev_buf_free(&b);
}

/* ---- The old generator's files ---- */

Test(csv_old_files, read_crlf_short_prices_and_every_time_form)
{
    const char *file = OLD_HEADER "\r\n"
                       "1,Ann,ann@example.com,view,10,Tea,Food,120.0,2024-01-31 12:00:00\r\n"
                       "2,\"Bob, Jr.\",bob@example.com,purchase,11,\"Cup \"\"XL\"\"\",Home,5,2024-01-31 12:00:00.5\r\n"
                       "3,Cé,c@example.com,view,12,漢字,Books,19.99,2024-01-31T12:00:00.123456\r\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    cr_assert_eq(c.map.layout, EV_CSV_OLD);
    ev_event_t ev;
    ev_error_t err = {0};
    int64_t noon = 1706702400LL * 1000000;

    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(c.rec.line, 2);
    cr_assert_eq(ev.user_id, 1);
    cr_assert_eq(ev.product_price, 12000);
    cr_assert_eq(ev.event_time, noon);
    cr_assert_eq(ev.event_time, noon);
    cr_assert_eq(ev.user_name.len, 3);
    cr_assert_eq(c.rec.raw[c.rec.raw_len - 1], '0', "the CR is not part of the record");

    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(c.rec.line, 3);
    cr_assert_eq(ev.user_name.len, strlen("Bob, Jr."));
    cr_assert_arr_eq(ev.user_name.ptr, "Bob, Jr.", ev.user_name.len);
    cr_assert_arr_eq(ev.product_name.ptr, "Cup \"XL\"", ev.product_name.len);
    cr_assert_eq(ev.product_price, 500);
    cr_assert_eq(ev.event_time, noon + 500000);
    cr_assert_arr_eq(ev.event_type.ptr, "purchase", 8);

    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(c.rec.line, 4);
    cr_assert_eq(ev.product_price, 1999);
    cr_assert_eq(ev.event_time, noon + 123456);
    cr_assert_arr_eq(ev.product_name.ptr, "漢字", ev.product_name.len);

    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    s_close(&c);
}

Test(csv_old_files, any_column_order_named_by_the_header_works)
{
    const char *file = "event_time,product_price,seq,product_category,partition,product_name,product_id,"
                       "event_type,source,user_email,user_name,user_id\n"
                       "2024-01-31 12:00:00,1.50,9,Food,4,Tea,7,view,gen-x,a@b.c,Ann,42\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    cr_assert_eq(c.map.layout, EV_CSV_ARCHIVE);
    cr_assert_eq(c.map.column_of[EV_F_user_id], 11);
    cr_assert_eq(c.map.column_of[EV_F_event_time], 0);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev.user_id, 42);
    cr_assert_eq(ev.product_id, 7);
    cr_assert_eq(ev.product_price, 150);
    cr_assert_eq(ev.seq, 9);
    cr_assert_eq(ev.partition, 4);
    cr_assert_arr_eq(ev.source.ptr, "gen-x", 5);
    cr_assert_arr_eq(ev.user_name.ptr, "Ann", 3);
    cr_assert_arr_eq(ev.product_category.ptr, "Food", 4);
    s_close(&c);
}

Test(csv_old_files, extra_unknown_columns_are_ignored)
{
    const char *file = "id,user_id,user_name,user_email,event_type,note,product_id,product_name,"
                       "product_category,product_price,event_time,published_at\n"
                       "1,42,Ann,a@b.c,view,\"x, y\",7,Tea,Food,1.50,2024-01-31 12:00:00,whatever\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    cr_assert_eq(c.map.layout, EV_CSV_OLD);
    cr_assert_eq(c.map.ignored, 3, "id, note and published_at (not a file column) are ignored");
    cr_assert_eq(c.map.column_of[EV_F_published_at], -1);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev.user_id, 42);
    cr_assert_eq(ev.product_id, 7);
    cr_assert_eq(ev.published_at, 0);
    s_close(&c);
}

Test(csv_old_files, a_missing_column_is_named)
{
    for (int missing = 0; missing < EV_FIELD_COUNT; missing++) {
        if (!(ev_fields[missing].where & EV_WHERE_PAYLOAD))
            continue;
        ev_buf_t b;
        ev_buf_init(&b);
        for (int i = 0; i < EV_FIELD_COUNT; i++) {
            if (i == missing || !(ev_fields[i].where & EV_WHERE_PAYLOAD))
                continue;
            if (b.len)
                ev_buf_putc(&b, ',');
            ev_buf_puts(&b, ev_fields[i].name);
        }
        ev_buf_putc(&b, '\n');
        csv_t c;
        s_open(&c, s_file(b.data, b.len), 0);
        cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
        ev_error_t err = {0};
        cr_assert_eq(ev_csv_map_header(&c.map, &c.rec, &err), EV_REJECT_MISSING, "without %s",
                     ev_fields[missing].name);
        cr_assert(strstr(err.detail, ev_fields[missing].name) != NULL, "detail '%s' does not name %s",
                  err.detail, ev_fields[missing].name);
        s_close(&c);
        ev_buf_free(&b);
    }
}

Test(csv_old_files, a_column_named_twice_or_a_partial_identity_is_refused)
{
    const char *twice = OLD_HEADER ",user_id\n";
    csv_t c;
    s_open(&c, s_file_str(twice), 0);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    ev_error_t err = {0};
    cr_assert_eq(ev_csv_map_header(&c.map, &c.rec, &err), EV_REJECT_COLUMNS);
    cr_assert(strstr(err.detail, "user_id") != NULL, "%s", err.detail);
    s_close(&c);

    const char *partial = OLD_HEADER ",source,seq\n";
    s_open(&c, s_file_str(partial), 0);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(ev_csv_map_header(&c.map, &c.rec, &err), EV_REJECT_MISSING);
    s_close(&c);
}

Test(csv_old_files, a_utf8_bom_before_the_header_is_skipped)
{
    const char *file = "\xEF\xBB\xBF" OLD_HEADER "\r\n"
                       "42,Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\r\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    cr_assert_eq(c.map.column_of[EV_F_user_id], 0);
    cr_assert_eq(c.map.ignored, 0);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev.user_id, 42);
    s_close(&c);
}

Test(csv_old_files, header_names_with_spaces_around_them_match)
{
    const char *file = "user_id, user_name ,user_email,event_type,product_id,product_name,product_category,"
                       "product_price,event_time \n42,Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    cr_assert_eq(c.map.column_of[EV_F_user_name], 1);
    cr_assert_eq(c.map.column_of[EV_F_event_time], 8);
    s_close(&c);
}

/* ---- The reader ---- */

Test(csv_reader, blank_lines_are_skipped_and_line_numbers_stay_right)
{
    const char *file = "\n"
                       "a,b\n"
                       "\r\n"
                       "\n"
                       "c,d\r\n"
                       "\n"
                       "e,f\n"
                       "\n"
                       "\r\n";
    csv_t c;
    s_open(&c, s_file_str(file), 0);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(c.rec.line, 2);
    cr_assert_eq(c.rec.nfields, 2);
    cr_assert_arr_eq(c.rec.fields[0].ptr, "a", 1);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(c.rec.line, 5);
    cr_assert_eq(c.rec.fields[1].len, 1, "the CR is not part of the last field");
    cr_assert_arr_eq(c.rec.fields[1].ptr, "d", 1);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(c.rec.line, 7);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    s_close(&c);
}

Test(csv_reader, line_numbers_count_the_newlines_inside_a_record)
{
    const char *file = "h1,h2\n"
                       "1,\"two\nthree\r\nfour\"\n"
                       "2,x\n"
                       "3,\"\n\n\"\r\n"
                       "4,y";
    csv_t c;
    s_open(&c, s_file_str(file), 0);
    uint64_t want[] = {1, 2, 5, 6, 9};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
        cr_assert_eq(c.rec.line, want[i], "record %zu", i);
        cr_assert_eq(c.rec.nfields, 2);
        cr_assert_not(c.rec.bad_quote);
    }
    cr_assert_eq(c.rec.fields[1].len, 1, "the last record needs no line end");
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    cr_assert_eq(ev_csv_reader_offset(c.r), strlen(file));
    s_close(&c);
}

Test(csv_reader, quoted_fields_keep_crlf_and_empty_fields_count)
{
    const char *file = "\"a\r\nb\",,\"\",\"\"\"\"\r\n";
    csv_t c;
    s_open(&c, s_file_str(file), 0);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(c.rec.nfields, 4);
    cr_assert_eq(c.rec.fields[0].len, 4);
    cr_assert_arr_eq(c.rec.fields[0].ptr, "a\r\nb", 4);
    cr_assert_eq(c.rec.fields[1].len, 0);
    cr_assert_eq(c.rec.fields[2].len, 0);
    cr_assert_eq(c.rec.fields[3].len, 1);
    cr_assert_eq(c.rec.fields[3].ptr[0], '"');
    s_close(&c);
}

Test(csv_reader, an_unclosed_quote_at_end_of_file_is_a_bad_quote)
{
    const char *file = OLD_HEADER "\n"
                       "42,\"Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n"
                       "43,Bob,b@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_REJECT_COLUMNS);
    cr_assert(c.rec.bad_quote);
    cr_assert_eq(c.rec.line, 2);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0, "the open quote ran to the end of the file");
    s_close(&c);
}

Test(csv_reader, text_after_a_closing_quote_is_a_bad_quote)
{
    const char *file = "\"ab\"c,d\nx,y\n";
    csv_t c;
    s_open(&c, s_file_str(file), 0);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert(c.rec.bad_quote);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_not(c.rec.bad_quote);
    cr_assert_eq(c.rec.line, 2);
    s_close(&c);
}

Test(csv_reader, a_record_over_the_limit_is_too_long_and_reading_goes_on)
{
    char *big = s_repeat("x", 5000);
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_puts(&b, "a,b\n");
    ev_buf_printf(&b, "%s,\"q\nq\"\n", big); /* too long, with a newline inside quotes */
    ev_buf_puts(&b, "c,d\n");
    ev_buf_puts(&b, big);                   /* too long at the end, no line end */
    csv_t c;
    s_open(&c, s_file(b.data, b.len), 1000);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_not(c.rec.too_long);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert(c.rec.too_long);
    cr_assert_eq(c.rec.line, 2);
    cr_assert_eq(c.rec.nfields, 0);
    cr_assert_gt(c.rec.raw_len, 0);
    cr_assert_leq(c.rec.raw_len, 1024, "only the head is kept");
    cr_assert_eq(c.rec.raw[0], 'x');
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_not(c.rec.too_long);
    cr_assert_eq(c.rec.line, 4);
    cr_assert_eq(c.rec.nfields, 2);
    cr_assert_arr_eq(c.rec.fields[0].ptr, "c", 1);
    cr_assert_arr_eq(c.rec.fields[1].ptr, "d", 1);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert(c.rec.too_long);
    cr_assert_eq(c.rec.line, 5);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    cr_assert_eq(ev_csv_reader_offset(c.r), b.len);
    s_close(&c);
    ev_buf_free(&b);
    free(big);
}

Test(csv_reader, a_record_at_the_limit_is_whole)
{
    char *exact = s_repeat("y", 1000);
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_printf(&b, "%s\n%sy\nz\n", exact, exact);
    csv_t c;
    s_open(&c, s_file(b.data, b.len), 1000);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_not(c.rec.too_long, "max_record bytes fit");
    cr_assert_eq(c.rec.raw_len, 1000);
    cr_assert_eq(c.rec.fields[0].len, 1000);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert(c.rec.too_long, "one byte more does not");
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    cr_assert_eq(c.rec.line, 3);
    cr_assert_arr_eq(c.rec.fields[0].ptr, "z", 1);
    s_close(&c);
    ev_buf_free(&b);
    free(exact);
}

Test(csv_reader, a_too_long_record_spanning_several_reads_is_skipped_whole)
{
    /* Over 1 MiB in one record (with quoted newlines and commas), well past
     * several 256 KiB reads, then a good row. */
    enum { LINES = 60000 };
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_puts(&b, OLD_HEADER "\n");
    ev_buf_puts(&b, "1,\"");
    for (int i = 0; i < LINES; i++)
        ev_buf_puts(&b, "line, of \"\"text\"\"\n");
    ev_buf_puts(&b, "\",a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n");
    size_t long_end = b.len;
    ev_buf_puts(&b, "2,Bob,b@b.c,purchase,8,Cup,Home,2.50,2024-01-31 12:00:01\n");
    cr_assert_gt(long_end, 4 * 256 * 1024);
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 65536);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_REJECT_LINE_TOO_LONG);
    cr_assert_eq(c.rec.line, 2);
    cr_assert_leq(c.rec.raw_len, 1024);
    cr_assert_arr_eq(c.rec.raw, "1,\"line, of", 11, "the head of the record is kept for the reject file");
    cr_assert_eq(ev_csv_reader_offset(c.r), long_end);
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(c.rec.line, 2 + LINES + 1);
    cr_assert_eq(ev.user_id, 2);
    cr_assert_eq(ev.product_price, 250);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 0);
    s_close(&c);
    ev_buf_free(&b);
}

Test(csv_reader, reads_from_a_pipe_in_small_pieces)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        const char *text = OLD_HEADER "\n42,\"A\nB\",a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n";
        for (size_t i = 0; text[i]; i++) {
            if (write(fds[1], text + i, 1) != 1)
                _exit(1);
            if (i % 16 == 0)
                usleep(200);
        }
        _exit(0);
    }
    close(fds[1]);
    ev_csv_reader_t *r = ev_csv_reader_new(fds[0], 0);
    ev_csv_record_t rec;
    ev_csv_map_t map;
    ev_error_t err = {0};
    cr_assert_eq(ev_csv_reader_next(r, &rec), 1);
    cr_assert_eq(ev_csv_map_header(&map, &rec, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev_csv_reader_next(r, &rec), 1);
    ev_event_t ev;
    cr_assert_eq(ev_csv_parse_row(&map, &rec, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_arr_eq(ev.user_name.ptr, "A\nB", 3);
    cr_assert_eq(ev_csv_reader_next(r, &rec), 0);
    ev_csv_reader_destroy(&r);
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
}

/* ---- The reader against a reference ---- */

#define REF_RAW_KEEP 1024 /* bytes of a too-long record the reader keeps (csv.c) */

/* One record as the rules read it (see csv.h), found one byte at a time in
 * the whole text: what ev_csv_reader_next must return, however it scans. */
typedef struct {
    uint64_t line;   /* where it starts */
    bool too_long;   /* over the limit */
    bool bad_quote;  /* a quote out of place or never closed */
    size_t raw_at;   /* the record in the text */
    size_t raw_len;  /* (its head when too long) */
    size_t offset;   /* text consumed after it */
    ev_buf_t fields; /* the fields unquoted, each followed by a NUL */
    size_t nfields;  /* how many */
} ref_rec_t;

enum { REF_START, REF_PLAIN, REF_QUOTED, REF_QUOTE_IN_QUOTED };

/* The next record of t[*pos..n): false at the end. */
static bool s_ref_next(const char *t, size_t n, size_t max_record, size_t *pos, uint64_t *line, ref_rec_t *r)
{
    for (;;) {
        if (*pos >= n)
            return false;
        size_t i = *pos;
        int state = REF_START;
        uint64_t newlines = 0;
        for (; i < n; i++) {
            char c = t[i];
            if (c == '\n' && state != REF_QUOTED)
                break;
            newlines += c == '\n';
            if (state == REF_QUOTED)
                state = c == '"' ? REF_QUOTE_IN_QUOTED : REF_QUOTED;
            else if (state == REF_QUOTE_IN_QUOTED || state == REF_START)
                state = c == '"' ? REF_QUOTED : c == ',' ? REF_START : REF_PLAIN;
            else
                state = c == ',' ? REF_START : REF_PLAIN;
        }
        r->line = *line;
        *line += newlines + 1;
        r->raw_at = *pos;
        r->offset = i < n ? i + 1 : i;
        size_t len = i - *pos;
        *pos = r->offset;
        ev_buf_reset(&r->fields);
        r->nfields = 0;
        r->bad_quote = false;
        r->too_long = len > max_record;
        if (r->too_long) {
            r->raw_len = max_record + 1 < REF_RAW_KEEP ? max_record + 1 : REF_RAW_KEEP;
            return true;
        }
        if (len && t[r->raw_at + len - 1] == '\r' && state != REF_QUOTED)
            len--;
        if (len == 0 && i < n)
            continue; /* a blank line */
        if (len == 0)
            return false;
        r->raw_len = len;
        /* Fields: a quoted one runs to its closing quote ("" is one quote);
         * anything after that up to the comma is kept but is a bad quote. */
        const char *f = t + r->raw_at, *end = f + len;
        for (;;) {
            if (f < end && *f == '"') {
                bool closed = false;
                for (f++; f < end; f++) {
                    if (*f == '"' && f + 1 < end && f[1] == '"') {
                        ev_buf_putc(&r->fields, '"');
                        f++;
                    } else if (*f == '"') {
                        closed = true;
                        f++;
                        break;
                    } else {
                        ev_buf_putc(&r->fields, *f);
                    }
                }
                if (!closed || (f < end && *f != ','))
                    r->bad_quote = true;
            }
            for (; f < end && *f != ','; f++)
                ev_buf_putc(&r->fields, *f);
            ev_buf_append(&r->fields, "", 1);
            r->nfields++;
            if (f == end)
                break;
            f++;
        }
        r->bad_quote |= state == REF_QUOTED;
        return true;
    }
}

/* Reads text with max_record and checks every record, and the end, against
 * the reference. */
static void s_compare_with_reference(const char *text, size_t n, size_t max_record, const char *what)
{
    csv_t c;
    s_open(&c, s_file(text, n), max_record);
    ref_rec_t ref = {0};
    ev_buf_init(&ref.fields);
    size_t pos = 0;
    uint64_t line = 1;
    for (int k = 0;; k++) {
        bool more = s_ref_next(text, n, max_record, &pos, &line, &ref);
        int rc = ev_csv_reader_next(c.r, &c.rec);
        cr_assert_eq(rc, more ? 1 : 0, "%s, limit %zu, record %d: returned %d", what, max_record, k, rc);
        if (!more)
            break;
        const ev_csv_record_t *rec = &c.rec;
        cr_assert_eq(rec->line, ref.line, "%s, limit %zu, record %d: line %llu, not %llu", what, max_record, k,
                     (unsigned long long)rec->line, (unsigned long long)ref.line);
        cr_assert_eq(rec->too_long, ref.too_long, "%s, limit %zu, line %llu: too_long", what, max_record,
                     (unsigned long long)ref.line);
        cr_assert_eq(rec->raw_len, ref.raw_len, "%s, limit %zu, line %llu: raw_len %zu, not %zu", what,
                     max_record, (unsigned long long)ref.line, rec->raw_len, ref.raw_len);
        cr_assert_arr_eq(rec->raw, text + ref.raw_at, ref.raw_len, "%s, limit %zu, line %llu: raw", what,
                         max_record, (unsigned long long)ref.line);
        cr_assert_eq(ev_csv_reader_offset(c.r), ref.offset, "%s, limit %zu, line %llu: offset", what, max_record,
                     (unsigned long long)ref.line);
        if (ref.too_long)
            continue;
        cr_assert_eq(rec->bad_quote, ref.bad_quote, "%s, limit %zu, line %llu: bad_quote", what, max_record,
                     (unsigned long long)ref.line);
        cr_assert_eq(rec->nfields, ref.nfields, "%s, limit %zu, line %llu: %zu fields, not %zu", what,
                     max_record, (unsigned long long)ref.line, rec->nfields, ref.nfields);
        const char *want = ref.fields.data;
        for (size_t f = 0; f < ref.nfields; f++) {
            size_t wl = strlen(want);
            cr_assert(rec->fields[f].len == wl && memcmp(rec->fields[f].ptr, want, wl) == 0,
                      "%s, limit %zu, line %llu, field %zu: [%.*s], not [%s]", what, max_record,
                      (unsigned long long)ref.line, f, (int)rec->fields[f].len, rec->fields[f].ptr, want);
            want += wl + 1;
        }
    }
    ev_buf_free(&ref.fields);
    s_close(&c);
}

/* A reproducible text of n bytes: mostly letters and commas, with quotes,
 * CRs, newlines and a character of two bytes as often as `odd` (1 in odd). */
static char *s_random_csv(size_t n, unsigned seed, unsigned odd)
{
    static const char rare[] = {'"', '\r', '\n', '\n', ',', '\xC3'};
    char *t = malloc(n + 1);
    cr_assert_not_null(t);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        if (x % odd == 0) {
            t[i] = rare[(x >> 8) % sizeof rare];
            if (t[i] == '\xC3' && i + 1 < n)
                t[++i] = '\xA9';
        } else if (x % 97 == 1) {
            t[i] = '\n'; /* lines of about a hundred bytes */
        } else {
            t[i] = (x >> 8) % 6 == 0 ? ',' : (char)('a' + (x >> 12) % 26);
        }
    }
    t[n] = '\0';
    return t;
}

Test(csv_reader, agrees_with_a_byte_by_byte_reference_on_random_text)
{
    /* Every limit around the reader's 32-byte blocks, texts plain and
     * full of quotes, ending with and without a newline. */
    static const size_t limits[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 65536};
    static const unsigned odds[] = {3, 11, 50, 1000000};
    for (size_t o = 0; o < sizeof odds / sizeof odds[0]; o++)
        for (unsigned seed = 1; seed <= 4; seed++) {
            size_t n = 3000 + seed * 37;
            char *t = s_random_csv(n, seed + 100 * (unsigned)o, odds[o]);
            char what[64];
            snprintf(what, sizeof what, "1 in %u odd, seed %u", odds[o], seed);
            for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
                s_compare_with_reference(t, n, limits[l], what);
                t[n - 1] = '\n';
                s_compare_with_reference(t, n, limits[l], what);
            }
            free(t);
        }
}

Test(csv_reader, agrees_with_the_reference_across_read_boundaries)
{
    /* Over 256 KiB a read: records cut by the end of the buffer, and the
     * bytes past the data after the buffer moved. */
    size_t n = 700 * 1000;
    for (unsigned seed = 1; seed <= 2; seed++) {
        char *t = s_random_csv(n, seed, seed == 1 ? 1000000 : 40);
        s_compare_with_reference(t, n, 65536, "a long text");
        s_compare_with_reference(t, n, 50, "a long text");
        free(t);
    }
}

Test(csv_reader, fields_of_every_length_around_the_blocks_are_cut_right)
{
    /* Lines of one to 100 bytes with commas at every place, CRLF or LF. */
    ev_buf_t b;
    ev_buf_init(&b);
    for (size_t len = 1; len <= 100; len++)
        for (size_t comma = 0; comma < len; comma += 7) {
            for (size_t i = 0; i < len; i++)
                ev_buf_putc(&b, i == comma || i == len - comma - 1 ? ',' : (char)('a' + i % 26));
            ev_buf_puts(&b, len % 2 ? "\r\n" : "\n");
        }
    s_compare_with_reference(b.data, b.len, 65536, "every length");
    s_compare_with_reference(b.data, b.len, 40, "every length");
    ev_buf_free(&b);
}

Test(csv_reader, a_read_error_is_reported)
{
    ev_csv_reader_t *r = ev_csv_reader_new(-1, 0);
    ev_csv_record_t rec;
    cr_assert_eq(ev_csv_reader_next(r, &rec), -1);
    ev_csv_reader_destroy(&r);
    ev_csv_reader_destroy(&r);
    ev_csv_reader_destroy(NULL);
}

Test(csv_reader, a_too_long_header_is_refused)
{
    char *big = s_repeat("h", 2000);
    csv_t c;
    s_open(&c, s_file_str(big), 1000);
    cr_assert_eq(ev_csv_reader_next(c.r, &c.rec), 1);
    ev_error_t err = {0};
    cr_assert_eq(ev_csv_map_header(&c.map, &c.rec, &err), EV_REJECT_COLUMNS);
    cr_assert(strstr(err.detail, "header") != NULL);
    s_close(&c);
    free(big);
}

/* ---- Each reason a row is refused ---- */

Test(csv_parse_row, a_good_old_row_is_accepted)
{
    char *row = s_old_row(-1, NULL);
    ev_error_t err = {0};
    cr_assert_eq(s_parse_old(row, strlen(row), &err), EV_OK, "%s", err.detail);
    free(row);
}

Test(csv_parse_row, refuses_a_wrong_column_count_as_column_count)
{
    ev_error_t err = {0};
    const char *fewer = "42,Ann,a@b.c,view,7,Tea,Food,1.50";
    cr_assert_eq(s_parse_old(fewer, strlen(fewer), &err), EV_REJECT_COLUMNS);
    cr_assert_str_eq(ev_reject_name(err.code), "column_count");
    cr_assert(strstr(err.detail, "8") && strstr(err.detail, "9"), "%s", err.detail);
    const char *more = "42,Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00,";
    cr_assert_eq(s_parse_old(more, strlen(more), &err), EV_REJECT_COLUMNS);
    const char *one = "just one";
    cr_assert_eq(s_parse_old(one, strlen(one), &err), EV_REJECT_COLUMNS);
}

Test(csv_parse_row, refuses_non_integers_and_overflow_as_bad_number)
{
    s_refused(EV_F_user_id, "abc", EV_REJECT_NUMBER);
    s_refused(EV_F_user_id, "2147483648", EV_REJECT_NUMBER);
    s_refused(EV_F_user_id, "", EV_REJECT_NUMBER);
    s_refused(EV_F_user_id, "4.0", EV_REJECT_NUMBER);
    s_refused(EV_F_product_id, "-2147483649", EV_REJECT_NUMBER);
    s_refused(EV_F_product_id, "7 ", EV_REJECT_NUMBER);
}

Test(csv_parse_row, refuses_inexact_or_oversized_prices_as_bad_price)
{
    s_refused(EV_F_product_price, "12.345", EV_REJECT_PRICE);
    s_refused(EV_F_product_price, "1e5", EV_REJECT_PRICE);
    s_refused(EV_F_product_price, "", EV_REJECT_PRICE);
    s_refused(EV_F_product_price, "\"\"", EV_REJECT_PRICE);
    s_refused(EV_F_product_price, "123456789.00", EV_REJECT_PRICE);
    s_refused(EV_F_product_price, "$1.50", EV_REJECT_PRICE);
}

Test(csv_parse_row, refuses_impossible_times_as_bad_time)
{
    s_refused(EV_F_event_time, "2024-13-01 00:00:00", EV_REJECT_TIME);
    s_refused(EV_F_event_time, "2024-02-30 00:00:00", EV_REJECT_TIME);
    s_refused(EV_F_event_time, "garbage", EV_REJECT_TIME);
    s_refused(EV_F_event_time, "", EV_REJECT_TIME);
    s_refused(EV_F_event_time, "2024-01-31 12:00:00.1234567", EV_REJECT_TIME);
}

Test(csv_parse_row, refuses_unknown_event_types_as_bad_event_type)
{
    s_refused(EV_F_event_type, "click", EV_REJECT_EVENT_TYPE);
    s_refused(EV_F_event_type, "", EV_REJECT_EVENT_TYPE);
    s_refused(EV_F_event_type, "VIEW", EV_REJECT_EVENT_TYPE);
}

Test(csv_parse_row, too_long_counts_characters_not_bytes)
{
    char *s = s_repeat("a", 256);
    s_refused(EV_F_user_name, s, EV_REJECT_TOO_LONG);
    free(s);
    s = s_repeat("é", 256);
    s_refused(EV_F_user_name, s, EV_REJECT_TOO_LONG);
    free(s);
    s = s_repeat("漢", 151);
    s_refused(EV_F_product_name, s, EV_REJECT_TOO_LONG);
    free(s);

    ev_error_t err = {0};
    const char *wide[] = {"é", "漢", "😀"};
    for (size_t i = 0; i < 3; i++) {
        s = s_repeat(wide[i], 255);
        char *row = s_old_row(EV_F_user_name, s);
        cr_assert_eq(s_parse_old(row, strlen(row), &err), EV_OK, "255 × %s: %s", wide[i], err.detail);
        free(row);
        free(s);
    }
}

Test(csv_parse_row, refuses_invalid_utf8_and_nul_bytes_as_bad_encoding)
{
    s_refused(EV_F_user_name, "Ann\xC3\x28", EV_REJECT_ENCODING);
    s_refused(EV_F_product_category, "\xFF\xFE", EV_REJECT_ENCODING);
    s_refused(EV_F_user_email, "\xED\xA0\x80@x", EV_REJECT_ENCODING);
    /* A NUL byte inside a field. */
    static const char row[] = "42,A\0nn,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00";
    ev_error_t err = {0};
    cr_assert_eq(s_parse_old(row, sizeof row - 1, &err), EV_REJECT_ENCODING);
    cr_assert_str_eq(ev_reject_name(err.code), "bad_encoding");
    cr_assert(strncmp(err.detail, "user_name", 9) == 0, "%s", err.detail);
}

Test(csv_parse_row, refuses_an_over_long_record_as_line_too_long)
{
    char *big = s_repeat("n", 3000);
    char *row = s_old_row(EV_F_user_name, big);
    ev_buf_t b;
    ev_buf_init(&b);
    ev_buf_printf(&b, OLD_HEADER "\n%s\n", row);
    csv_t c;
    s_open_mapped(&c, s_file(b.data, b.len), 1000);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_REJECT_LINE_TOO_LONG);
    cr_assert_str_eq(ev_reject_name(err.code), "line_too_long");
    s_close(&c);
    ev_buf_free(&b);
    free(row);
    free(big);
}

Test(csv_parse_row, archive_rows_check_the_identity)
{
    static const struct {
        const char *tail;
        ev_reject_t want;
        const char *field;
    } cases[] = {
        {"gen-x,3,1", EV_OK, NULL},
        {"gen-x,3,0", EV_REJECT_IDENTITY, "seq"},
        {",3,1", EV_REJECT_IDENTITY, "source"},
        {"gen-x,-1,1", EV_REJECT_IDENTITY, "partition"},
        {"gen-x,3,x", EV_REJECT_NUMBER, "seq"},
        {"gen-x,3,9223372036854775808", EV_REJECT_NUMBER, "seq"},
        {"gen-x,,1", EV_REJECT_NUMBER, "partition"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ev_buf_t b;
        ev_buf_init(&b);
        ev_buf_printf(&b, ARCHIVE_HEADER "\n42,Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00,%s\n",
                      cases[i].tail);
        csv_t c;
        s_open_mapped(&c, s_file(b.data, b.len), 0);
        ev_event_t ev;
        ev_error_t err = {0};
        cr_assert_eq(s_next_row(&c, &ev, &err), cases[i].want, "%s: %s", cases[i].tail, err.detail);
        if (cases[i].field)
            cr_assert(strncmp(err.detail, cases[i].field, strlen(cases[i].field)) == 0, "%s: %s", cases[i].tail,
                      err.detail);
        s_close(&c);
        ev_buf_free(&b);
    }
}

Test(csv_parse_row, a_refused_row_does_not_stop_the_next_one)
{
    const char *file = OLD_HEADER "\n"
                       "abc,Ann,a@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n"
                       "42,Ann,a@b.c,click,7,Tea,Food,1.50,2024-01-31 12:00:00\n"
                       "43,Bob,b@b.c,view,7,Tea,Food,1.50,2024-01-31 12:00:00\n";
    csv_t c;
    s_open_mapped(&c, s_file_str(file), 0);
    ev_event_t ev;
    ev_error_t err = {0};
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_REJECT_NUMBER);
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_REJECT_EVENT_TYPE);
    cr_assert_eq(s_next_row(&c, &ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev.user_id, 43);
    cr_assert_eq(c.rec.line, 4);
    s_close(&c);
}

Test(csv_parse_row, every_column_is_read_into_its_field_and_named_when_refused)
{
    /* The archive layout, columns in reverse order: each field's value
     * lands in that field, and a bad number in any column is refused
     * naming it; with two bad ones, the first in the field list. */
    static const char *const cols[] = {"seq", "partition", "source", "event_time", "product_price",
                                       "product_category", "product_name", "product_id", "event_type",
                                       "user_email", "user_name", "user_id"};
    static const char *const vals[] = {"9", "3", "gen-1", "2024-01-31 12:00:00.5", "12.50", "Food", "Tea",
                                       "7", "view", "a@b.c", "Ann", "42"};
    enum { N = sizeof cols / sizeof cols[0] };
    for (int bad = -1; bad < N; bad++) {
        ev_buf_t b;
        ev_buf_init(&b);
        for (int i = 0; i < N; i++)
            ev_buf_printf(&b, "%s%s", i ? "," : "", cols[i]);
        ev_buf_putc(&b, '\n');
        for (int i = 0; i < N; i++)
            ev_buf_printf(&b, "%s%s", i ? "," : "", i == bad || (bad >= 0 && i == 0) ? "x" : vals[i]);
        ev_buf_putc(&b, '\n');
        csv_t c;
        s_open_mapped(&c, s_file(b.data, b.len), 0);
        ev_event_t ev;
        ev_error_t err = {0};
        ev_reject_t rc = s_next_row(&c, &ev, &err);
        if (bad < 0) {
            cr_assert_eq(rc, EV_OK, "%s", err.detail);
            cr_assert(ev.seq == 9 && ev.partition == 3 && ev.user_id == 42 && ev.product_id == 7);
            cr_assert(ev.product_price == 1250 && ev.event_time == 1706702400500000LL);
            cr_assert(ev.source.len == 5 && memcmp(ev.source.ptr, "gen-1", 5) == 0);
            cr_assert(ev.user_name.len == 3 && memcmp(ev.user_name.ptr, "Ann", 3) == 0);
            cr_assert(ev.user_email.len == 5 && memcmp(ev.user_email.ptr, "a@b.c", 5) == 0);
            cr_assert(ev.event_type.len == 4 && memcmp(ev.event_type.ptr, "view", 4) == 0);
            cr_assert(ev.product_name.len == 3 && memcmp(ev.product_name.ptr, "Tea", 3) == 0);
            cr_assert(ev.product_category.len == 4 && memcmp(ev.product_category.ptr, "Food", 4) == 0);
        } else {
            /* seq (column 0) is bad too, and comes last in the field list:
             * the other column is named, unless it holds text. */
            int f = ev_field_index(cols[bad], strlen(cols[bad]));
            bool text = ev_fields[f].kind == EV_KIND_STR;
            const char *named = text ? "seq" : cols[bad];
            char want[64];
            snprintf(want, sizeof want, "%s: 'x'", named);
            cr_assert_eq(strncmp(err.detail, want, strlen(want)), 0, "column %s: '%s'", cols[bad], err.detail);
            cr_assert_eq(rc, ev_fields[ev_field_index(named, strlen(named))].kind == EV_KIND_PRICE   ? EV_REJECT_PRICE
                             : ev_fields[ev_field_index(named, strlen(named))].kind == EV_KIND_TIME ? EV_REJECT_TIME
                                                                                                   : EV_REJECT_NUMBER);
        }
        s_close(&c);
        ev_buf_free(&b);
    }
}
