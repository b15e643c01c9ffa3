/* Unit tests of the generator's archive: the CSV rows it writes, its file
 * names, torn lines cut off after a crash, the source id with a new epoch
 * each start, and the directory lock. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evpipe/buf.h"
#include "evpipe/csv.h"
#include "evpipe/event.h"
#include "gen_archive.h"
#include "gen_fake.h"
#include "gen_rng.h"
#include "testkit.h"

#define PARTS 16

static char s_dir[256];
static evp_config_t s_cfg;
static gen_fake_t *s_fakes;

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/evpipe-gen-archive-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    evp_config_defaults(&s_cfg);
    snprintf(s_cfg.archive_dir, sizeof s_cfg.archive_dir, "%s/archive", s_dir);
    char why[256];
    s_fakes = gen_fake_new("view,purchase", why, sizeof why);
    cr_assert_not_null(s_fakes);
}

static void s_teardown(void)
{
    gen_fake_destroy(&s_fakes);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
}

TestSuite(gen_archive, .init = s_setup, .fini = s_teardown);

static gen_archive_t *s_open(void)
{
    char why[600] = "";
    gen_archive_t *a = gen_archive_new(&s_cfg, why, sizeof why);
    cr_assert_not_null(a, "gen_archive_new: %s", why);
    return a;
}

/* What the generator carries from one write to the next. */
typedef struct {
    gen_rng_t rng;       /* its random numbers */
    char src[64];        /* its source */
    int64_t last[PARTS]; /* the last seq of each partition */
} s_feed_t;

/* A feed of source src (NULL: the archive a's), seeded with seed. */
static void s_feed_init(s_feed_t *f, uint64_t seed, gen_archive_t *a, const char *src)
{
    memset(f, 0, sizeof *f);
    gen_rng_seed(&f->rng, seed);
    ev_str_t own = src ? (ev_str_t){src, (uint32_t)strlen(src)} : gen_archive_source(a);
    snprintf(f->src, sizeof f->src, "%.*s", (int)own.len, own.ptr);
}

/* Makes n events of f as the generator does (the next seq of their
 * partition) and archives them with one write. */
static void s_write(gen_archive_t *a, s_feed_t *f, ev_event_t *out, size_t n)
{
    ev_buf_t rows;
    ev_buf_init(&rows);
    for (size_t i = 0; i < n; i++) {
        ev_event_t ev = {0};
        gen_fake_next(s_fakes, &f->rng, ev_now_us(), &ev);
        ev.source = (ev_str_t){f->src, (uint32_t)strlen(f->src)};
        ev.partition = (int32_t)ev_partition_of(ev.user_id, PARTS);
        ev.seq = ++f->last[ev.partition];
        ev_csv_append_row(&rows, &ev, EV_CSV_ARCHIVE);
        if (out)
            out[i] = ev;
    }
    char why[600] = "";
    cr_assert_eq(gen_archive_write(a, rows.data, rows.len, n, why, sizeof why), 0, "%s", why);
    ev_buf_free(&rows);
}

/* The archive file names in the directory, sorted; returns how many. */
static size_t s_files(char names[][GEN_ARCHIVE_NAME_MAX], size_t max)
{
    DIR *d = opendir(s_cfg.archive_dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (gen_archive_is_file_name(e->d_name) && n < max)
            memcpy(names[n++], e->d_name, strlen(e->d_name) + 1); /* 26 bytes, checked */
    closedir(d);
    qsort(names, n, GEN_ARCHIVE_NAME_MAX, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void s_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%.400s/%s", s_cfg.archive_dir, name);
}

/* The events a file must hold, in order, and how many were read. */
typedef struct {
    const ev_event_t *evs;
    size_t count, n;
} s_expect_t;

static void s_expect_row(const ev_event_t *ev, void *arg)
{
    s_expect_t *x = arg;
    cr_assert_lt(x->n, x->count);
    cr_assert(ev_event_equal(ev, &x->evs[x->n], EV_WHERE_PAYLOAD | EV_WHERE_IDENTITY), "row %zu differs", x->n);
    x->n++;
}

Test(gen_archive, rows_read_back_equal_the_events_written)
{
    gen_archive_t *a = s_open();
    s_feed_t f;
    s_feed_init(&f, 5, a, NULL);
    ev_event_t evs[700];
    s_write(a, &f, evs, 500);
    s_write(a, &f, evs + 500, 200);
    cr_assert_eq(gen_archive_rows(a), 700);
    cr_assert_eq(gen_archive_files_opened(a), 1);
    char path[600];
    snprintf(path, sizeof path, "%s", gen_archive_path(a));
    gen_archive_destroy(&a);
    cr_assert_null(a);

    s_expect_t want = {evs, 700, 0};
    cr_assert_eq(tk_archive_file_rows(path, s_expect_row, &want), 700);
}

Test(gen_archive, files_are_named_events_and_the_utc_second)
{
    char name[GEN_ARCHIVE_NAME_MAX];
    gen_archive_file_name(name, (time_t)1795312453); /* 2026-11-22 01:54:13 UTC */
    cr_assert_str_eq(name, "events_20261122_015413.csv");
    cr_assert(gen_archive_is_file_name(name));
    cr_assert_not(gen_archive_is_file_name("events_20261122_015413.csv.tmp"));
    cr_assert_not(gen_archive_is_file_name("events_2026112_0154133.csv"));
    cr_assert_not(gen_archive_is_file_name(".source-id"));

    time_t before = time(NULL);
    gen_archive_t *a = s_open();
    cr_assert_str_eq(gen_archive_path(a), "", "no file before the first write");
    s_feed_t f;
    s_feed_init(&f, 1, NULL, "gen-0000000000000001");
    s_write(a, &f, NULL, 10);
    time_t after = time(NULL);
    const char *base = strrchr(gen_archive_path(a), '/') + 1;
    cr_assert(gen_archive_is_file_name(base), "%s", base);
    char lo[GEN_ARCHIVE_NAME_MAX], hi[GEN_ARCHIVE_NAME_MAX];
    gen_archive_file_name(lo, before);
    gen_archive_file_name(hi, after);
    cr_assert(strcmp(base, lo) >= 0 && strcmp(base, hi) <= 0, "%s not within %s..%s", base, lo, hi);
    gen_archive_destroy(&a);
}

Test(gen_archive, each_start_opens_a_new_file_named_after_the_previous)
{
    s_feed_t f;
    s_feed_init(&f, 2, NULL, "gen-0000000000000002");
    for (int i = 0; i < 2; i++) {
        gen_archive_t *a = s_open();
        s_write(a, &f, NULL, 5);
        gen_archive_destroy(&a);
    }
    char names[8][GEN_ARCHIVE_NAME_MAX];
    cr_assert_eq(s_files(names, 8), 2, "a start in the same second waits for the next");
    cr_assert_lt(strcmp(names[0], names[1]), 0);
}

static void s_append_raw(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static off_t s_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_size;
}

Test(gen_archive, a_torn_last_line_is_cut_off_and_not_counted)
{
    gen_archive_t *a = s_open();
    s_feed_t f;
    s_feed_init(&f, 6, a, NULL);
    s_write(a, &f, NULL, 300);
    char path[600];
    snprintf(path, sizeof path, "%s", gen_archive_path(a));
    gen_archive_destroy(&a);
    off_t whole = s_size(path);

    /* A crash in the middle of a row: everything but the line end, with a
     * seq far above the others (it must not count). */
    ev_event_t ev = {0};
    gen_fake_next(s_fakes, &f.rng, ev_now_us(), &ev);
    ev.source = (ev_str_t){f.src, (uint32_t)strlen(f.src)};
    ev.partition = 0;
    ev.seq = 999999;
    ev_buf_t row;
    ev_buf_init(&row);
    ev_csv_append_row(&row, &ev, EV_CSV_ARCHIVE);
    row.data[--row.len] = '\0';
    s_append_raw(path, row.data);
    ev_buf_free(&row);
    cr_assert_gt(s_size(path), whole);

    a = s_open();
    cr_assert_eq(s_size(path), whole, "cut back to the last complete line");
    gen_archive_destroy(&a);
}

Test(gen_archive, a_file_cut_inside_its_header_is_removed)
{
    cr_assert_eq(mkdir(s_cfg.archive_dir, 0755), 0);
    char path[600];
    s_path(path, sizeof path, "events_20200101_000000.csv");
    tk_write_file(path, "user_id,user_na", 15);
    gen_archive_t *a = s_open();
    cr_assert_eq(access(path, F_OK), -1, "no complete line: removed");
    gen_archive_destroy(&a);
}

static void s_read_source(char *out, size_t len)
{
    char path[600];
    s_path(path, sizeof path, ".source-id");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(out, (int)len, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

/* The source of one start: "gen-" + 16 hex (.source-id) + "-" + 16 hex. */
static void s_source(gen_archive_t *a, char out[64])
{
    ev_str_t s = gen_archive_source(a);
    snprintf(out, 64, "%.*s", (int)s.len, s.ptr);
    cr_assert_eq(strlen(out), 37, "%s", out);
    cr_assert_eq(strncmp(out, "gen-", 4), 0, "%s", out);
    cr_assert_eq(strspn(out + 4, "0123456789abcdef"), 16, "%s", out);
    cr_assert_eq(out[20], '-', "%s", out);
    cr_assert_eq(strspn(out + 21, "0123456789abcdef"), 16, "%s", out);
}

Test(gen_archive, the_source_id_is_made_once_and_each_start_adds_a_new_epoch)
{
    gen_archive_t *a = s_open();
    char first[64];
    s_source(a, first);
    char stored[64];
    s_read_source(stored, sizeof stored);
    cr_assert_eq(strlen(stored), 20);
    cr_assert_eq(strncmp(stored, first, 20), 0, "%s is .source-id then the epoch", first);
    gen_archive_destroy(&a);

    a = s_open();
    char second[64];
    s_source(a, second);
    cr_assert_eq(strncmp(second, first, 20), 0, "the same generator after a restart");
    cr_assert_str_neq(second, first, "but a new source: its seqs start at 1 again");
    gen_archive_destroy(&a);

    /* Another directory: another generator, another id. */
    evp_config_t other = s_cfg;
    snprintf(other.archive_dir, sizeof other.archive_dir, "%s/archive2", s_dir);
    char why[600] = "";
    gen_archive_t *b = gen_archive_new(&other, why, sizeof why);
    cr_assert_not_null(b, "%s", why);
    char third[64];
    s_source(b, third);
    cr_assert_neq(strncmp(third, first, 20), 0);
    gen_archive_destroy(&b);
}

/* What a cron job keeping a week of CSV does, and a directory copied to a
 * second host: neither can make a start reuse a (source, partition, seq). */
Test(gen_archive, deleted_or_copied_archives_never_give_a_source_twice)
{
    char seen[40][64];
    for (int i = 0; i < 20; i++) {
        gen_archive_t *a = s_open();
        s_source(a, seen[i]);
        s_feed_t f;
        s_feed_init(&f, (uint64_t)i + 1, NULL, seen[i]);
        s_write(a, &f, NULL, 20);
        gen_archive_destroy(&a);
        /* Retention removes every archive file; .source-id stays. */
        char names[8][GEN_ARCHIVE_NAME_MAX];
        size_t n = s_files(names, 8);
        for (size_t k = 0; k < n; k++) {
            char path[600];
            s_path(path, sizeof path, names[k]);
            cr_assert_eq(unlink(path), 0);
        }
    }
    /* The directory copied elsewhere: the same .source-id, other epochs. */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s/copy'", s_cfg.archive_dir, s_dir);
    cr_assert_eq(system(cmd), 0);
    evp_config_t copy = s_cfg;
    snprintf(copy.archive_dir, sizeof copy.archive_dir, "%s/copy", s_dir);
    for (int i = 20; i < 40; i++) {
        char why[600] = "";
        gen_archive_t *a = gen_archive_new(i % 2 ? &copy : &s_cfg, why, sizeof why);
        cr_assert_not_null(a, "%s", why);
        s_source(a, seen[i]);
        gen_archive_destroy(&a);
    }
    for (int i = 0; i < 40; i++)
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(seen[i], seen[k], "starts %d and %d share a source", k, i);
}

Test(gen_archive, a_damaged_source_id_is_refused_not_replaced)
{
    cr_assert_eq(mkdir(s_cfg.archive_dir, 0755), 0);
    char path[600];
    s_path(path, sizeof path, ".source-id");
    tk_write_file(path, "gen-xyz\n", 8);
    char why[600] = "";
    gen_archive_t *a = gen_archive_new(&s_cfg, why, sizeof why);
    cr_assert_null(a);
    cr_assert_not_null(strstr(why, ".source-id"), "%s", why);
    cr_assert_not_null(strstr(why, "ARCHIVE_DIR="), "%s", why);
    char stored[64];
    s_read_source(stored, sizeof stored);
    cr_assert_str_eq(stored, "gen-xyz");
}

Test(gen_archive, a_second_open_of_a_locked_directory_fails_naming_archive_dir)
{
    gen_archive_t *a = s_open();
    char why[600] = "";
    gen_archive_t *b = gen_archive_new(&s_cfg, why, sizeof why);
    cr_assert_null(b);
    cr_assert_not_null(strstr(why, "ARCHIVE_DIR="), "%s", why);
    cr_assert_not_null(strstr(why, s_cfg.archive_dir), "%s", why);
    cr_assert_not_null(strstr(why, "in use"), "%s", why);
    cr_assert_null(strchr(why, '\n'), "one line");
    gen_archive_destroy(&a);
    /* Released with the archive. */
    b = gen_archive_new(&s_cfg, why, sizeof why);
    cr_assert_not_null(b, "%s", why);
    gen_archive_destroy(&b);
}

Test(gen_archive, a_new_file_is_opened_after_archive_rotate_seconds)
{
    s_cfg.archive_rotate_seconds = 1;
    gen_archive_t *a = s_open();
    s_feed_t f;
    s_feed_init(&f, 10, a, NULL);
    s_write(a, &f, NULL, 10);
    s_write(a, &f, NULL, 10);
    cr_assert_eq(gen_archive_files_opened(a), 1, "within the period: one file");
    usleep(1100 * 1000);
    s_write(a, &f, NULL, 10);
    cr_assert_eq(gen_archive_files_opened(a), 2, "after the period: a new file");
    gen_archive_destroy(&a);
    char names[8][GEN_ARCHIVE_NAME_MAX];
    cr_assert_eq(s_files(names, 8), 2);
}
