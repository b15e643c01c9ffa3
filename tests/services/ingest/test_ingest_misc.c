/* Unit tests of the small pieces around replay: the summary line, what a
 * folder argument names, the heads kept for --wait and how often it asks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "ingest_commit.h"
#include "ingest_heads.h"
#include "support.h"

Test(ingest_summary, names_files_rows_published_rejected_time_and_speed)
{
    ingest_summary_t s = {.files = 3, .rows = 120000, .published = 119998, .rejected = 2, .seconds = 1.9};
    char line[512];
    ingest_summary_format(&s, "/state/rejects", line, sizeof line);
    cr_assert_str_eq(line, "ingest: 3 files, 120000 rows read, 119998 published, 2 rejected (see /state/rejects), "
                           "1.9 s, 63158 rows/s");
    ingest_summary_t one = {.files = 1, .skipped = 2, .failed = 1, .stopped = true};
    ingest_summary_format(&one, "/r", line, sizeof line);
    cr_assert_str_eq(line, "ingest: 1 file, 0 rows read, 0 published, 0 rejected, 2 skipped (already ingested), "
                           "1 failed, interrupted, 0.0 s");
}

Test(ingest_expand, a_folder_means_its_csv_files_sorted_by_name)
{
    char *dir = tmp_dir();
    const char *names[] = {"b.csv", "a.csv", "c.txt", ".d.csv", "e.csv.tmp", "10.csv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        spit(path, "x\n", 2);
    }
    char **list = NULL;
    size_t count = 0, cap = 0;
    char why[256];
    cr_assert_eq(ingest_expand(dir, &list, &count, &cap, why, sizeof why), 3);
    const char *want[] = {"10.csv", "a.csv", "b.csv"};
    for (size_t i = 0; i < 3; i++) {
        const char *base = strrchr(list[i], '/') + 1;
        cr_assert_str_eq(base, want[i]);
    }
    /* A file is itself, whatever its name. */
    char file[600];
    snprintf(file, sizeof file, "%s/c.txt", dir);
    cr_assert_eq(ingest_expand(file, &list, &count, &cap, why, sizeof why), 1);
    cr_assert_str_eq(list[3], file);
    snprintf(file, sizeof file, "%s/missing.csv", dir);
    cr_assert_eq(ingest_expand(file, &list, &count, &cap, why, sizeof why), -1);
    cr_assert_eq(count, 4);
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
    rm_rf(dir);
    free(dir);
}

Test(ingest_heads, keep_the_highest_seq_per_source_and_partition)
{
    ingest_heads_t *h = ingest_heads_new(4);
    ev_str_t a = {"file-a", 6}, b = {"gen-b", 5};
    ingest_heads_note(h, a, 1, 5);
    ingest_heads_note(h, a, 1, 3);
    ingest_heads_note(h, b, 2, 7);
    ingest_heads_note(h, a, 3, 1);
    ingest_heads_note(h, a, 9, 100); /* partition out of range: ignored */
    cr_assert_eq(ingest_heads_count(h), 2);
    cr_assert_str_eq(ingest_heads_source(h, 0), "file-a");
    cr_assert_eq(ingest_heads_seq(h, 0, 1), 5);
    cr_assert_eq(ingest_heads_seq(h, 0, 3), 1);
    cr_assert_eq(ingest_heads_seq(h, 1, 2), 7);
    cr_assert_eq(ingest_heads_total(h), 13);
    char list[64];
    ingest_heads_list(h, list, sizeof list);
    cr_assert_str_eq(list, "file-a,gen-b");
    ingest_heads_list(h, list, 8);
    cr_assert_str_eq(list, "file-a");
    ingest_heads_t *all = ingest_heads_new(4);
    ingest_heads_merge(all, h);
    ingest_heads_remove(h, 0);
    cr_assert_eq(ingest_heads_count(h), 1);
    cr_assert_str_eq(ingest_heads_source(h, 0), "gen-b");
    cr_assert_eq(ingest_heads_total(all), 13);
    ingest_heads_destroy(&h);
    ingest_heads_destroy(&all);
    cr_assert_null(h);
}

Test(ingest_wait_pace, asks_every_100_ms_until_the_rate_says_the_end_is_near)
{
    ingest_commit_pace_t pace = {0};
    /* 1,000,000 missing, falling by 20,000 every 140 ms (a writer's batches). */
    cr_assert_eq(ingest_commit_pace(&pace, 5000, 1000000), INGEST_COMMIT_ASK_MS);
    cr_assert_eq(ingest_commit_pace(&pace, 5140, 980000), INGEST_COMMIT_ASK_MS, "7 s left");
    cr_assert_eq(ingest_commit_pace(&pace, 11720, 60000), INGEST_COMMIT_ASK_MS, "0.42 s left");
    cr_assert_eq(ingest_commit_pace(&pace, 11860, 40000), INGEST_COMMIT_ASK_MS, "0.28 s left");
    cr_assert_eq(ingest_commit_pace(&pace, 12000, 20000), INGEST_COMMIT_ASK_NEAR_MS, "0.14 s left");
    /* The last batch is late: the rate still says it is near. */
    cr_assert_eq(ingest_commit_pace(&pace, 12150, 20000), INGEST_COMMIT_ASK_NEAR_MS);
}

Test(ingest_wait_pace, asks_every_100_ms_when_nothing_moves_or_the_database_cannot_be_asked)
{
    ingest_commit_pace_t pace = {0};
    cr_assert_eq(ingest_commit_pace(&pace, 1000, -1), INGEST_COMMIT_ASK_MS, "unknown is not a start");
    cr_assert_eq(ingest_commit_pace(&pace, 1100, 50), INGEST_COMMIT_ASK_MS);
    cr_assert_eq(ingest_commit_pace(&pace, 1200, 50), INGEST_COMMIT_ASK_MS, "no progress: no rate");
    cr_assert_eq(ingest_commit_pace(&pace, 1300, -1), INGEST_COMMIT_ASK_MS);
    cr_assert_eq(ingest_commit_pace(&pace, 61300, 49), INGEST_COMMIT_ASK_MS, "one event a minute: far");
    /* More missing than at the start: measured again from here. */
    cr_assert_eq(ingest_commit_pace(&pace, 61400, 5000), INGEST_COMMIT_ASK_MS);
    cr_assert_eq(ingest_commit_pace(&pace, 61500, 4999), INGEST_COMMIT_ASK_MS);
    cr_assert_eq(ingest_commit_pace(&pace, 61600, 100), INGEST_COMMIT_ASK_NEAR_MS);
}
