/* Fuzz target "csv": a file for the streaming reader, cut into reads of a
 * size byte 0 chooses, with a small record limit so records go over it. The
 * first record is the header, the rest rows; every row that parses must keep
 * the limits, render as COPY and JSON, and read back equal from the CSV the
 * archive writer makes of it. */
#include <string.h>
#include <unistd.h>

#include "evpipe/csv.h"
#include "fuzz_check.h"
#include "fuzz_targets.h"

#define RAW_KEEP 1024 /* bytes of a too-long record the reader keeps (csv.c) */

/* Byte 0: the low four bits pick the record limit, the high four the read size. */
static const size_t s_limits[16] = {1, 2, 8, 16, 32, 64, 100, 128, 200, 256, 300, 512, 1000, 1024, 1500, 4096};
static const size_t s_chunks[16] = {0, 1, 2, 3, 5, 7, 13, 16, 31, 64, 100, 255, 256, 1000, 1024, 4096};

static void s_check_record(const ev_csv_record_t *rec, size_t max_record)
{
    if (rec->too_long) {
        size_t keep = max_record + 1 < RAW_KEEP ? max_record + 1 : RAW_KEEP;
        FUZZ_CHECK(rec->nfields == 0 && rec->fields == NULL, "a too-long record with %zu fields", rec->nfields);
        FUZZ_CHECK(rec->raw_len == keep && rec->raw, "a too-long record keeps %zu bytes, not %zu", rec->raw_len,
                   keep);
        return;
    }
    FUZZ_CHECK(rec->raw && rec->raw_len >= 1, "an empty record returned");
    FUZZ_CHECK(rec->raw_len <= max_record, "a %zu-byte record under a %zu-byte limit", rec->raw_len, max_record);
    size_t commas = 0;
    for (size_t i = 0; i < rec->raw_len; i++)
        commas += rec->raw[i] == ',';
    FUZZ_CHECK(rec->nfields >= 1 && rec->nfields <= commas + 1, "%zu fields from %zu commas", rec->nfields,
               commas);
    size_t total = 0;
    for (size_t f = 0; f < rec->nfields; f++) {
        FUZZ_CHECK(rec->fields[f].len == 0 || rec->fields[f].ptr, "field %zu: text at NULL", f);
        total += rec->fields[f].len;
    }
    FUZZ_CHECK(total <= rec->raw_len, "fields hold %zu bytes of a %zu-byte record", total, rec->raw_len);
    if (!memchr(rec->raw, '"', rec->raw_len)) {
        /* Without quotes the fields are the record cut at its commas. */
        FUZZ_CHECK(!rec->bad_quote && rec->nfields == commas + 1, "%zu fields from %zu commas, no quotes",
                   rec->nfields, commas);
        const char *p = rec->raw;
        for (size_t f = 0; f < rec->nfields; f++) {
            FUZZ_CHECK(rec->fields[f].ptr == p || rec->fields[f].len == 0, "field %zu is not where it stands", f);
            FUZZ_CHECK(rec->fields[f].len == 0 || memcmp(rec->fields[f].ptr, p, rec->fields[f].len) == 0,
                       "field %zu differs", f);
            p += rec->fields[f].len;
            FUZZ_CHECK(f + 1 == rec->nfields ? p == rec->raw + rec->raw_len : *p == ',',
                       "field %zu does not end at a comma", f);
            p++;
        }
    }
}

static size_t s_count_lf(const uint8_t *p, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += p[i] == '\n';
    return count;
}

/* Checks where the record stands in the file: after blank lines ("\n",
 * "\r\n", or "\r" at the end), its raw text is the file's bytes there, on
 * the line it says, and the reader's offset is just past its line end. */
static void s_check_place(const uint8_t *file, size_t file_len, size_t *pos, uint64_t *lines,
                          const ev_csv_record_t *rec, uint64_t offset, size_t max_record)
{
    size_t start = *pos;
    for (;;) {
        if (start < file_len && file[start] == '\n')
            start++;
        else if (start < file_len && file[start] == '\r' && (start + 1 == file_len || file[start + 1] == '\n'))
            start += start + 1 == file_len ? 1 : 2;
        else
            break;
    }
    *lines += s_count_lf(file + *pos, start - *pos);
    FUZZ_CHECK(start < file_len, "a record after the last bytes (offset %zu of %zu)", start, file_len);
    FUZZ_CHECK(rec->line == *lines + 1, "the record at byte %zu says line %llu, it is on line %llu", start,
               (unsigned long long)rec->line, (unsigned long long)*lines + 1);
    FUZZ_CHECK(rec->raw_len <= file_len - start && memcmp(rec->raw, file + start, rec->raw_len) == 0,
               "the record at byte %zu is not the file's bytes there", start);
    FUZZ_CHECK(offset > start && offset <= file_len, "offset %llu after a record at %zu (file of %zu bytes)",
               (unsigned long long)offset, start, file_len);
    if (rec->too_long) {
        FUZZ_CHECK(offset - start > max_record, "a too-long record of %llu bytes",
                   (unsigned long long)(offset - start));
    } else {
        /* Between the record and the offset: its line end, nothing else. */
        const uint8_t *tail = file + start + rec->raw_len;
        size_t n = (size_t)offset - start - rec->raw_len;
        bool eof = offset == file_len;
        FUZZ_CHECK((n == 0 && eof) || (n == 1 && (tail[0] == '\n' || (eof && tail[0] == '\r'))) ||
                       (n == 2 && tail[0] == '\r' && tail[1] == '\n'),
                   "%zu bytes between the record at %zu and the offset %llu", n, start, (unsigned long long)offset);
    }
    *lines += s_count_lf(file + start, (size_t)offset - start);
    *pos = (size_t)offset;
}

static void s_check_map(const ev_csv_map_t *map, const ev_csv_record_t *header)
{
    FUZZ_CHECK(map->ncols == header->nfields, "the map has %zu columns, the header %zu", map->ncols,
               header->nfields);
    size_t mapped = 0;
    for (int i = 0; i < EV_FIELD_COUNT; i++) {
        int c = map->column_of[i];
        bool carried = ev_fields[i].where & EV_WHERE_PAYLOAD ||
                       (map->layout == EV_CSV_ARCHIVE && ev_fields[i].where & EV_WHERE_IDENTITY);
        FUZZ_CHECK(carried == (c >= 0), "%s: column %d in layout %d", ev_fields[i].name, c, (int)map->layout);
        if (c < 0)
            continue;
        FUZZ_CHECK((size_t)c < map->ncols, "%s: column %d of %zu", ev_fields[i].name, c, map->ncols);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(map->column_of[j] != c, "column %d holds %s and %s", c, ev_fields[j].name,
                       ev_fields[i].name);
        mapped++;
    }
    FUZZ_CHECK(mapped + map->ignored == map->ncols, "%zu mapped + %zu ignored != %zu columns", mapped,
               map->ignored, map->ncols);
}

static void s_check_row(const ev_csv_map_t *map, const ev_csv_record_t *rec)
{
    ev_event_t ev;
    ev_error_t err = {0};
    ev_reject_t rc = ev_csv_parse_row(map, rec, &ev, &err);
    if (rc != EV_OK) {
        fuzz_check_refusal(rc, &err);
        FUZZ_CHECK(!rec->too_long || rc == EV_REJECT_LINE_TOO_LONG, "a too-long record refused as %s",
                   ev_reject_name(rc));
        return;
    }
    FUZZ_CHECK(!rec->too_long && !rec->bad_quote, "a malformed record parsed");
    if (map->layout == EV_CSV_ARCHIVE) {
        fuzz_check_valid_event(&ev, EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY);
    } else {
        fuzz_check_valid_event(&ev, EV_WHERE_PAYLOAD);
        FUZZ_CHECK(ev.source.len == 0 && ev.partition == 0 && ev.seq == 0, "an old-format row has an identity");
    }
    fuzz_check_json(&ev);
    fuzz_check_copy(&ev);
    fuzz_check_csv_round_trip(&ev, map->layout);
}

int fuzz_csv_run(const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    size_t max_record = s_limits[data[0] & 0x0f], chunk = s_chunks[data[0] >> 4];
    const uint8_t *file = data + 1;
    size_t file_len = len - 1;
    int fd = fuzz_fd_from_bytes(file, file_len, chunk);
    ev_csv_reader_t *r = ev_csv_reader_new(fd, max_record);
    FUZZ_CHECK(r, "ev_csv_reader_new failed");
    ev_csv_record_t rec;
    ev_csv_map_t map;
    bool header_read = false, mapped = false;
    size_t pos = 0;      /* file bytes the records so far took */
    uint64_t lines = 0;  /* line ends in file[0..pos) */
    int rc;
    while ((rc = ev_csv_reader_next(r, &rec)) == 1) {
        s_check_place(file, file_len, &pos, &lines, &rec, ev_csv_reader_offset(r), max_record);
        s_check_record(&rec, max_record);
        if (!header_read) {
            header_read = true;
            ev_error_t err = {0};
            ev_reject_t mrc = ev_csv_map_header(&map, &rec, &err);
            if (mrc == EV_OK)
                s_check_map(&map, &rec), mapped = true;
            else
                fuzz_check_refusal(mrc, &err);
        } else if (mapped) {
            s_check_row(&map, &rec);
        }
    }
    FUZZ_CHECK(rc == 0, "ev_csv_reader_next returned %d", rc);
    FUZZ_CHECK(ev_csv_reader_offset(r) == file_len, "stopped at %llu of %zu bytes",
               (unsigned long long)ev_csv_reader_offset(r), file_len);
    FUZZ_CHECK(ev_csv_reader_next(r, &rec) == 0, "a record after the end of the file");
    ev_csv_reader_destroy(&r);
    FUZZ_CHECK(r == NULL, "ev_csv_reader_destroy left the pointer set");
    close(fd);
    return 0;
}
