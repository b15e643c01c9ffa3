/* Unit tests of the archive index that repairs read through: it finds the
 * files that can hold a range, returns exactly the range in seq order,
 * follows a growing file (complete lines only), reads only the blocks it
 * needs, and serves old-format files named by the ledger. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/csv.h"
#include "ingest_archive.h"
#include "ingest_reader.h"
#include "support.h"
#include "testkit.h"

#define SRC "gen-aaaaaaaaaaaaaaaa"

TestSuite(ingest_archive, .init = test_dir_new, .fini = test_dir_remove);

/* Appends archive rows of (source, partition) seqs [from, to]; user_id is
 * seq * 100 + partition so a row says who it is. */
static void s_rows(ev_buf_t *b, const char *source, int32_t partition, int64_t from, int64_t to)
{
    for (int64_t s = from; s <= to; s++) {
        ev_event_t ev = tk_event(source, partition, s);
        ev_csv_append_row(b, &ev, EV_CSV_ARCHIVE);
    }
}

static void s_file(const char *name, ev_buf_t *rows)
{
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_ARCHIVE);
    ev_buf_append(&b, rows->data, rows->len);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", test_dir, name);
    spit(path, b.data, b.len);
    ev_buf_free(&b);
    ev_buf_reset(rows);
}

/* Three files: p0 1-10 / 11-20 / 21-25, p1 1-5 / 6-8 / none. */
static void s_three_files(void)
{
    ev_buf_t r;
    ev_buf_init(&r);
    s_rows(&r, SRC, 0, 1, 5);
    s_rows(&r, SRC, 1, 1, 5);
    s_rows(&r, SRC, 0, 6, 10);
    s_file("archive-001.csv", &r);
    s_rows(&r, SRC, 0, 11, 20);
    s_rows(&r, SRC, 1, 6, 8);
    s_file("archive-002.csv", &r);
    s_rows(&r, SRC, 0, 21, 25);
    s_file("archive-003.csv", &r);
    ev_buf_free(&r);
}

static ingest_archive_t *s_index(size_t block_bytes)
{
    ingest_archive_opts_t o = {.dir = test_dir, .partitions = 16, .max_line = 65536, .block_bytes = block_bytes};
    ingest_archive_t *a = ingest_archive_new(&o);
    cr_assert_not_null(a);
    ingest_archive_refresh(a);
    return a;
}

typedef struct {
    int64_t seqs[4096];
    int32_t users[4096];
    size_t n;
} s_got_t;

static int s_collect(const ev_event_t *ev, void *arg)
{
    s_got_t *g = arg;
    if (g->n < 4096) {
        g->seqs[g->n] = ev->seq;
        g->users[g->n] = ev->user_id;
        g->n++;
    }
    return 0;
}

static const char *s_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

Test(ingest_archive, finds_the_files_that_can_hold_a_range)
{
    s_three_files();
    ingest_archive_t *a = s_index(0);
    cr_assert_eq(ingest_archive_file_count(a), 3);
    const char *paths[8];
    size_t n = ingest_archive_files_for(a, SRC, 0, 12, 22, paths, 8);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s_base(paths[0]), "archive-002.csv");
    cr_assert_str_eq(s_base(paths[1]), "archive-003.csv");
    n = ingest_archive_files_for(a, SRC, 1, 1, 3, paths, 8);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(s_base(paths[0]), "archive-001.csv");
    cr_assert_eq(ingest_archive_files_for(a, SRC, 0, 26, 30, paths, 8), 0);
    cr_assert_eq(ingest_archive_files_for(a, SRC, 2, 1, 30, paths, 8), 0);
    cr_assert_eq(ingest_archive_files_for(a, "gen-unknown", 0, 1, 30, paths, 8), 0);
    cr_assert(ingest_archive_knows(a, SRC));
    cr_assert_not(ingest_archive_knows(a, "gen-unknown"));
    ingest_archive_destroy(&a);
    cr_assert_null(a);
}

Test(ingest_archive, reads_exactly_the_range_in_seq_order)
{
    s_three_files();
    ingest_archive_t *a = s_index(0);
    s_got_t *g = calloc(1, sizeof *g);
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 8, 22, s_collect, g), 15);
    cr_assert_eq(g->n, 15);
    for (size_t i = 0; i < g->n; i++) {
        cr_assert_eq(g->seqs[i], 8 + (int64_t)i);
        cr_assert_eq(g->users[i], (int32_t)((8 + (int64_t)i) * 100));
    }
    g->n = 0;
    cr_assert_eq(ingest_archive_read(a, SRC, 1, 4, 100, s_collect, g), 5);
    cr_assert_eq(g->seqs[0], 4);
    cr_assert_eq(g->seqs[4], 8);
    g->n = 0;
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 30, 40, s_collect, g), 0);
    free(g);
    ingest_archive_destroy(&a);
}

/* Appends len bytes to path, gives it mtime_s and lets a see it. */
static void s_grow(ingest_archive_t *a, const char *path, const char *data, size_t len, int64_t mtime_s)
{
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    set_mtime(path, mtime_s);
    ingest_archive_refresh(a);
}

Test(ingest_archive, follows_a_growing_file_counting_complete_lines_only)
{
    s_three_files();
    ingest_archive_t *a = s_index(0);
    char path[600];
    snprintf(path, sizeof path, "%s/archive-003.csv", test_dir);
    ev_buf_t r;
    ev_buf_init(&r);
    s_rows(&r, SRC, 0, 26, 28);
    /* The last row is half written: no line end yet. */
    size_t cut = r.len - 10;
    s_grow(a, path, r.data, cut, 2000000000);
    s_got_t *g = calloc(1, sizeof *g);
    ingest_archive_read(a, SRC, 0, 25, 30, s_collect, g);
    cr_assert_eq(g->n, 3, "got %zu", g->n);
    cr_assert_eq(g->seqs[2], 27);
    /* The rest of the line arrives. */
    s_grow(a, path, r.data + cut, r.len - cut, 2000000001);
    g->n = 0;
    ingest_archive_read(a, SRC, 0, 25, 30, s_collect, g);
    cr_assert_eq(g->n, 4);
    cr_assert_eq(g->seqs[3], 28);
    cr_assert_eq(g->users[3], 2800);
    const char *paths[4];
    cr_assert_eq(ingest_archive_files_for(a, SRC, 0, 28, 28, paths, 4), 1);
    free(g);
    ev_buf_free(&r);
    ingest_archive_destroy(&a);
}

Test(ingest_archive, forgets_a_deleted_file)
{
    s_three_files();
    ingest_archive_t *a = s_index(0);
    char path[600];
    snprintf(path, sizeof path, "%s/archive-001.csv", test_dir);
    cr_assert_eq(unlink(path), 0);
    ingest_archive_refresh(a);
    cr_assert_eq(ingest_archive_file_count(a), 2);
    const char *paths[4];
    cr_assert_eq(ingest_archive_files_for(a, SRC, 1, 1, 5, paths, 4), 0);
    cr_assert(ingest_archive_knows(a, SRC));
    ingest_archive_destroy(&a);
}

Test(ingest_archive, reads_only_the_blocks_that_can_hold_the_range)
{
    ev_buf_t r;
    ev_buf_init(&r);
    for (int64_t s = 1; s <= 2000; s += 100) {
        s_rows(&r, SRC, 0, s, s + 99);
        s_rows(&r, SRC, 3, s, s + 99);
    }
    s_file("big.csv", &r);
    char path[600];
    snprintf(path, sizeof path, "%s/big.csv", test_dir);
    struct stat st;
    stat(path, &st);
    ingest_archive_t *a = s_index(1024);
    uint64_t before = ingest_archive_bytes_read(a);
    s_got_t *g = calloc(1, sizeof *g);
    cr_assert_eq(ingest_archive_read(a, SRC, 3, 1500, 1504, s_collect, g), 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(g->seqs[i], 1500 + (int64_t)i);
    uint64_t read = ingest_archive_bytes_read(a) - before;
    cr_assert_lt(read, (uint64_t)st.st_size / 10, "read %llu of %lld bytes", (unsigned long long)read,
                 (long long)st.st_size);
    /* The whole partition still comes back complete and in order. */
    g->n = 0;
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 1, 2000, s_collect, g), 2000);
    for (size_t i = 0; i < 2000; i++)
        cr_assert_eq(g->seqs[i], 1 + (int64_t)i);
    free(g);
    ev_buf_free(&r);
    ingest_archive_destroy(&a);
}

/* Reads an old-format file straight, as ingest would: the reference. */
static size_t s_reference(const char *path, int32_t partition, int64_t from, int64_t to, s_got_t *g)
{
    trow_t *rows = calloc(4096, sizeof *rows);
    size_t n = read_rows(path, 16, 65536, rows, 4096);
    g->n = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].code == EV_OK && rows[i].partition == partition && rows[i].seq >= from && rows[i].seq <= to) {
            g->seqs[g->n] = rows[i].seq;
            g->users[g->n] = rows[i].user_id;
            g->n++;
        }
    free(rows);
    return g->n;
}

Test(ingest_archive, serves_an_old_format_file_named_by_the_ledger)
{
    /* Many rows over few users, a rejected row now and then, tiny blocks:
     * the seqs of a partition must come out as ingest gave them. */
    char path[600];
    snprintf(path, sizeof path, "%s/old.csv", test_dir);
    ev_buf_t b;
    ev_buf_init(&b);
    ev_csv_header(&b, EV_CSV_OLD);
    for (int i = 0; i < 1500; i++) {
        if (i % 97 == 5)
            ev_buf_printf(&b, "%d,Bad,b@example.com,click,1,P,C,1.00,2024-01-01 00:00:00\r\n", i % 37);
        else
            ev_buf_printf(&b, "%d,\"User, %d\",u@example.com,view,%d,P,C,%d.0,2024-01-01 00:00:%02d\r\n", i % 37,
                          i, i, i % 50, i % 60);
    }
    spit(path, b.data, b.len);
    ev_buf_free(&b);
    struct stat st;
    stat(path, &st);
    char source[INGEST_FILE_SOURCE_LEN + 1], why[256];
    FILE *f = fopen(path, "rb");
    cr_assert_eq(ingest_reader_hash_source(fileno(f), source, NULL, why, sizeof why), 0);
    fclose(f);

    ingest_archive_opts_t o = {.partitions = 16, .max_line = 65536, .block_bytes = 2048};
    ingest_archive_t *a = ingest_archive_new(&o);
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    cr_assert_eq(ingest_archive_add(a, path, source, st.st_size, mtime, why, sizeof why), 0, "%s", why);
    cr_assert(ingest_archive_knows(a, source));
    s_got_t *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    for (int32_t p = 0; p < 16; p++) {
        int64_t from = 3 + p, to = 60 + p * 2;
        s_reference(path, p, from, to, want);
        got->n = 0;
        int64_t n = ingest_archive_read(a, source, p, from, to, s_collect, got);
        cr_assert_eq((size_t)n, want->n, "partition %d: %lld, want %zu", p, (long long)n, want->n);
        for (size_t i = 0; i < want->n; i++) {
            cr_assert_eq(got->seqs[i], want->seqs[i]);
            cr_assert_eq(got->users[i], want->users[i]);
        }
    }
    /* A file that changed since the ledger saw it is refused. */
    cr_assert_eq(ingest_archive_add(a, path, source, st.st_size + 1, mtime, why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "changed"));
    free(want);
    free(got);
    ingest_archive_destroy(&a);
}

Test(ingest_archive, ignores_a_file_without_a_whole_header_yet)
{
    char path[600];
    snprintf(path, sizeof path, "%s/starting.csv", test_dir);
    spit(path, "user_id,user_na", 15);
    ingest_archive_t *a = s_index(0);
    cr_assert_not(ingest_archive_knows(a, SRC));
    ev_buf_t r;
    ev_buf_init(&r);
    s_rows(&r, SRC, 5, 1, 3);
    s_file("starting.csv", &r);
    set_mtime(path, 2000000000);
    ingest_archive_refresh(a);
    cr_assert(ingest_archive_knows(a, SRC));
    ev_buf_free(&r);
    ingest_archive_destroy(&a);
}

static int s_cancel_calls;

/* Lets the folder scan start, then stops the first file part way. */
static bool s_cancel_once(void *arg)
{
    (void)arg;
    return s_cancel_calls++ == 1;
}

Test(ingest_archive, a_cancelled_refresh_goes_on_from_where_it_stopped)
{
    ev_buf_t r;
    ev_buf_init(&r);
    s_rows(&r, SRC, 0, 1, 10000);
    s_file("many.csv", &r);
    s_cancel_calls = 0;
    ingest_archive_opts_t o = {test_dir, 16, 65536, 4096, s_cancel_once, NULL};
    ingest_archive_t *a = ingest_archive_new(&o);
    ingest_archive_refresh(a);
    s_got_t *g = calloc(1, sizeof *g);
    /* The first look was cut short: the first rows are known already... */
    cr_assert(ingest_archive_knows(a, SRC));
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 9990, 10000, s_collect, g), 0);
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 1, 10, s_collect, g), 10);
    /* ...and the next refresh finishes the file. */
    g->n = 0;
    ingest_archive_refresh(a);
    cr_assert_eq(ingest_archive_read(a, SRC, 0, 9990, 10000, s_collect, g), 11);
    cr_assert_eq(g->seqs[10], 10000);
    free(g);
    ev_buf_free(&r);
    ingest_archive_destroy(&a);
}
