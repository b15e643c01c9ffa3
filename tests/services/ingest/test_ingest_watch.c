/* Unit tests of folder watching: a file is taken only once it is complete
 * (a *.csv name, not hidden or temporary, unchanged for the settle time),
 * once per version. Time is given to the scan, so nothing here sleeps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_watch.h"
#include "support.h"

#define SETTLE 2000

static char *s_dir;
static ingest_watch_t *s_watch;

static void s_setup(void)
{
    s_dir = tmp_dir();
    char why[256];
    s_watch = ingest_watch_new(s_dir, SETTLE, why, sizeof why);
    cr_assert_not_null(s_watch, "%s", why);
}

static void s_teardown(void)
{
    ingest_watch_destroy(&s_watch);
    rm_rf(s_dir);
    free(s_dir);
}

static void s_write(const char *name, const char *text, int64_t mtime_s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    spit(path, text, strlen(text));
    set_mtime(path, mtime_s);
}

static void s_append(const char *name, const char *text, int64_t mtime_s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "ab");
    fputs(text, f);
    fclose(f);
    set_mtime(path, mtime_s);
}

/* The name of the next ready file, or "" when none. */
static const char *s_next(void)
{
    const char *p = ingest_watch_next(s_watch);
    if (!p)
        return "";
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

TestSuite(ingest_watch, .init = s_setup, .fini = s_teardown);

Test(ingest_watch, a_settled_file_is_taken_once)
{
    s_write("a.csv", "header\n", 1000);
    cr_assert_eq(ingest_watch_scan(s_watch, 0), 0);
    cr_assert_str_eq(s_next(), "");
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE - 1), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE), 1);
    cr_assert_str_eq(s_next(), "a.csv");
    cr_assert_str_eq(s_next(), "");
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE * 5), 0);
    cr_assert_str_eq(s_next(), "");
}

Test(ingest_watch, a_file_still_growing_is_not_taken)
{
    s_write("growing.csv", "header\n", 1000);
    ingest_watch_scan(s_watch, 0);
    s_append("growing.csv", "row 1\n", 1001);
    cr_assert_eq(ingest_watch_scan(s_watch, 1500), 0);
    s_append("growing.csv", "row 2\n", 1002);
    cr_assert_eq(ingest_watch_scan(s_watch, 3000), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, 3000 + SETTLE - 1), 0);
    cr_assert_str_eq(s_next(), "");
    /* It stopped changing: taken one settle time after the last change. */
    cr_assert_eq(ingest_watch_scan(s_watch, 3000 + SETTLE), 1);
    cr_assert_str_eq(s_next(), "growing.csv");
}

Test(ingest_watch, a_growing_file_with_the_same_mtime_is_not_taken)
{
    s_write("same-second.csv", "header\n", 1000);
    ingest_watch_scan(s_watch, 0);
    s_append("same-second.csv", "row 1\n", 1000); /* size changes, mtime does not */
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE * 2), 1);
}

Test(ingest_watch, temporary_and_hidden_names_are_not_taken)
{
    s_write("a.csv.tmp", "x\n", 1000);
    s_write("b.csv.part", "x\n", 1000);
    s_write(".c.csv", "x\n", 1000);
    s_write("d.txt", "x\n", 1000);
    s_write("e.tmp", "x\n", 1000);
    ingest_watch_scan(s_watch, 0);
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE * 10), 0);
    cr_assert_str_eq(s_next(), "");
    cr_assert_not(ingest_watch_wanted("a.csv.tmp"));
    cr_assert_not(ingest_watch_wanted(".hidden.csv"));
    cr_assert_not(ingest_watch_wanted(".csv"));
    cr_assert(ingest_watch_wanted("x.csv"));
}

Test(ingest_watch, a_renamed_file_is_taken_and_a_changed_one_again)
{
    s_write("r.csv.tmp", "header\n", 1000);
    ingest_watch_scan(s_watch, 0);
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/r.csv.tmp", s_dir);
    snprintf(to, sizeof to, "%s/r.csv", s_dir);
    cr_assert_eq(rename(from, to), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, 100), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, 100 + SETTLE), 1);
    cr_assert_str_eq(s_next(), "r.csv");
    s_append("r.csv", "row\n", 1005);
    cr_assert_eq(ingest_watch_scan(s_watch, 10000), 0);
    cr_assert_eq(ingest_watch_scan(s_watch, 10000 + SETTLE), 1);
    cr_assert_str_eq(s_next(), "r.csv");
}

Test(ingest_watch, files_present_at_start_are_taken_in_name_order)
{
    s_write("2.csv", "x\n", 1000);
    s_write("1.csv", "x\n", 1000);
    s_write("3.csv", "x\n", 1000);
    ingest_watch_scan(s_watch, 0);
    cr_assert_eq(ingest_watch_scan(s_watch, SETTLE), 3);
    cr_assert_str_eq(s_next(), "1.csv");
    cr_assert_str_eq(s_next(), "2.csv");
    cr_assert_str_eq(s_next(), "3.csv");
    cr_assert_str_eq(s_next(), "");
}

Test(ingest_watch, poll_finds_a_new_file_without_waiting_for_the_rescan)
{
    ingest_watch_destroy(&s_watch);
    char why[256];
    s_watch = ingest_watch_new(s_dir, 0, why, sizeof why);
    cr_assert_not_null(s_watch);
    ingest_watch_poll(s_watch, 0); /* the first look */
    s_write("new.csv", "x\n", 1000);
    /* Bounded: inotify answers at once; the rescan within a second. */
    int ready = 0;
    for (int i = 0; i < 30 && !ready; i++)
        ready = ingest_watch_poll(s_watch, 100);
    cr_assert_eq(ready, 1);
    cr_assert_str_eq(s_next(), "new.csv");
}

Test(ingest_watch, a_missing_folder_is_refused)
{
    char why[256];
    char path[600];
    snprintf(path, sizeof path, "%s/not-there", s_dir);
    cr_assert_null(ingest_watch_new(path, SETTLE, why, sizeof why));
    cr_assert_not_null(strstr(why, "INGEST_WATCH_DIR"));
}
