/* Unit tests of the ledger of finished files: it survives a restart, decides
 * what is already ingested (same path, size and mtime), names the file of a
 * source, and reads lines another process appended. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_ledger.h"
#include "support.h"

static ingest_ledger_entry_t s_entry(const char *path, int64_t size, int64_t mtime_ns, const char *sources)
{
    ingest_ledger_entry_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.path, sizeof e.path, "%s", path);
    e.size = size;
    e.mtime_ns = mtime_ns;
    snprintf(e.sources, sizeof e.sources, "%s", sources);
    e.rows = 10;
    e.published = 9;
    e.rejected = 1;
    e.finished_us = 1732240453123456;
    return e;
}

TestSuite(ingest_ledger, .init = test_dir_new, .fini = test_dir_remove);

Test(ingest_ledger, entries_survive_a_restart)
{
    char why[256];
    ingest_ledger_t *l = ingest_ledger_new(test_dir, why, sizeof why);
    cr_assert_not_null(l, "%s", why);
    cr_assert_eq(ingest_ledger_count(l), 0);
    ingest_ledger_entry_t a =
        s_entry("/data/a.csv", 1000, 1732240453123456789, "file-0123456789abcdef0123456789abcdef");
    ingest_ledger_entry_t b = s_entry("/data/with\ttab\\and\nnewline.csv", 5, 1, "gen-1,gen-2");
    cr_assert_eq(ingest_ledger_append(l, &a, why, sizeof why), 0, "%s", why);
    cr_assert_eq(ingest_ledger_append(l, &b, why, sizeof why), 0, "%s", why);
    cr_assert_eq(ingest_ledger_count(l), 2);
    ingest_ledger_destroy(&l);
    cr_assert_null(l);

    l = ingest_ledger_new(test_dir, why, sizeof why);
    cr_assert_not_null(l, "%s", why);
    cr_assert_eq(ingest_ledger_count(l), 2);
    ingest_ledger_entry_t got;
    cr_assert(ingest_ledger_find_path(l, "/data/a.csv", &got));
    cr_assert_eq(got.size, 1000);
    cr_assert_eq(got.mtime_ns, 1732240453123456789);
    cr_assert_str_eq(got.sources, a.sources);
    cr_assert_eq(got.rows, 10);
    cr_assert_eq(got.published, 9);
    cr_assert_eq(got.rejected, 1);
    cr_assert_eq(got.finished_us, 1732240453123456);
    cr_assert(ingest_ledger_find_path(l, "/data/with\ttab\\and\nnewline.csv", &got));
    cr_assert_str_eq(got.sources, "gen-1,gen-2");
    ingest_ledger_destroy(&l);
}

Test(ingest_ledger, a_file_is_done_only_with_the_same_size_and_mtime)
{
    char why[256];
    ingest_ledger_t *l = ingest_ledger_new(test_dir, why, sizeof why);
    ingest_ledger_entry_t a = s_entry("/data/a.csv", 1000, 42, "file-x");
    cr_assert_not(ingest_ledger_done(l, "/data/a.csv", 1000, 42));
    cr_assert_eq(ingest_ledger_append(l, &a, why, sizeof why), 0);
    cr_assert(ingest_ledger_done(l, "/data/a.csv", 1000, 42));
    cr_assert_not(ingest_ledger_done(l, "/data/a.csv", 1001, 42));
    cr_assert_not(ingest_ledger_done(l, "/data/a.csv", 1000, 43));
    cr_assert_not(ingest_ledger_done(l, "/data/b.csv", 1000, 42));
    /* The file grew and was ingested again: the latest line counts. */
    a.size = 2000;
    cr_assert_eq(ingest_ledger_append(l, &a, why, sizeof why), 0);
    cr_assert(ingest_ledger_done(l, "/data/a.csv", 2000, 42));
    cr_assert_not(ingest_ledger_done(l, "/data/a.csv", 1000, 42));
    ingest_ledger_destroy(&l);
}

Test(ingest_ledger, finds_the_file_of_a_source_including_the_active_one)
{
    char why[256];
    ingest_ledger_t *l = ingest_ledger_new(test_dir, why, sizeof why);
    ingest_ledger_entry_t a = s_entry("/data/a.csv", 1, 1, "file-aaaa");
    ingest_ledger_entry_t b = s_entry("/data/b.csv", 1, 1, "gen-1,gen-22");
    ingest_ledger_append(l, &a, why, sizeof why);
    ingest_ledger_append(l, &b, why, sizeof why);
    ingest_ledger_entry_t out[4];
    cr_assert_eq(ingest_ledger_find_source(l, "file-aaaa", out, 4), 1);
    cr_assert_str_eq(out[0].path, "/data/a.csv");
    cr_assert_eq(ingest_ledger_find_source(l, "gen-22", out, 4), 1);
    cr_assert_eq(ingest_ledger_find_source(l, "gen-2", out, 4), 0);
    cr_assert_eq(ingest_ledger_find_source(l, "file-cccc", out, 4), 0);
    ingest_ledger_entry_t c = s_entry("/data/c.csv", 1, 1, "file-cccc");
    ingest_ledger_set_active(l, &c);
    cr_assert_eq(ingest_ledger_find_source(l, "file-cccc", out, 4), 1);
    cr_assert_str_eq(out[0].path, "/data/c.csv");
    ingest_ledger_set_active(l, NULL);
    cr_assert_eq(ingest_ledger_find_source(l, "file-cccc", out, 4), 0);
    ingest_ledger_destroy(&l);
}

Test(ingest_ledger, reads_lines_another_process_appended_and_ignores_broken_ones)
{
    char why[256];
    ingest_ledger_t *mine = ingest_ledger_new(test_dir, why, sizeof why);
    ingest_ledger_t *other = ingest_ledger_new(test_dir, why, sizeof why);
    ingest_ledger_entry_t a = s_entry("/data/a.csv", 7, 8, "file-aaaa");
    cr_assert_eq(ingest_ledger_append(other, &a, why, sizeof why), 0);
    cr_assert(ingest_ledger_done(mine, "/data/a.csv", 7, 8));
    /* A line cut short by a crash, then a good one. */
    char path[600];
    snprintf(path, sizeof path, "%s/ledger.tsv", test_dir);
    FILE *f = fopen(path, "ab");
    fputs("/data/broken.csv\t12\n", f);
    fclose(f);
    ingest_ledger_entry_t b = s_entry("/data/b.csv", 1, 2, "file-bbbb");
    cr_assert_eq(ingest_ledger_append(other, &b, why, sizeof why), 0);
    cr_assert(ingest_ledger_done(mine, "/data/b.csv", 1, 2));
    cr_assert_eq(ingest_ledger_count(mine), 2);
    ingest_ledger_destroy(&mine);
    ingest_ledger_destroy(&other);
    mine = ingest_ledger_new(test_dir, why, sizeof why);
    cr_assert_eq(ingest_ledger_count(mine), 2);
    ingest_ledger_destroy(&mine);
}

Test(ingest_ledger, sources_list_matches_whole_names_only)
{
    cr_assert(ingest_ledger_sources_have("gen-1,gen-22", "gen-1"));
    cr_assert(ingest_ledger_sources_have("gen-1,gen-22", "gen-22"));
    cr_assert_not(ingest_ledger_sources_have("gen-1,gen-22", "gen-2"));
    cr_assert_not(ingest_ledger_sources_have("", "gen-2"));
    cr_assert_not(ingest_ledger_sources_have("gen-1", ""));
}
