/* Unit tests of ingest's progress text: percent, rate and time left from the
 * numbers, the terminal line at several widths, the log line's key=value
 * pairs, and durations. Pure functions: numbers in, text out. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ingest_progress.h"

static ingest_progress_view_t s_view(const char *name, uint64_t rows, uint64_t bytes, uint64_t size, double s)
{
    ingest_progress_view_t v = {.name = name, .rows = rows, .bytes = bytes, .size = size, .seconds = s};
    return v;
}

Test(ingest_progress, percent_rate_and_time_left_follow_from_the_numbers)
{
    ingest_progress_view_t v = s_view("f.csv", 1000, 250, 1000, 10);
    cr_assert_float_eq(ingest_progress_percent(&v), 25.0, 1e-9);
    cr_assert_float_eq(ingest_progress_rate(&v), 100.0, 1e-9);
    /* A quarter took 10 s: three quarters take 30 s more. */
    cr_assert_float_eq(ingest_progress_eta(&v), 30.0, 1e-9);
}

Test(ingest_progress, unknown_numbers_say_so_rather_than_guess)
{
    ingest_progress_view_t no_size = s_view("f.csv", 10, 100, 0, 1);
    cr_assert_eq(ingest_progress_percent(&no_size), -1);
    cr_assert_eq(ingest_progress_eta(&no_size), -1);
    ingest_progress_view_t no_time = s_view("f.csv", 0, 0, 1000, 0);
    cr_assert_eq(ingest_progress_rate(&no_time), 0);
    cr_assert_eq(ingest_progress_eta(&no_time), -1);
}

Test(ingest_progress, a_file_grown_past_its_size_stops_at_one_hundred_percent)
{
    ingest_progress_view_t v = s_view("f.csv", 10, 1200, 1000, 2);
    cr_assert_eq(ingest_progress_percent(&v), 100.0);
    cr_assert_eq(ingest_progress_eta(&v), 0);
}

Test(ingest_progress, durations_read_as_minutes_or_hours)
{
    char d[32];
    ingest_progress_format_duration(7.4, d, sizeof d);
    cr_assert_str_eq(d, "0:07");
    ingest_progress_format_duration(754, d, sizeof d);
    cr_assert_str_eq(d, "12:34");
    ingest_progress_format_duration(3723, d, sizeof d);
    cr_assert_str_eq(d, "1:02:03");
    ingest_progress_format_duration(-1, d, sizeof d);
    cr_assert_str_eq(d, "--:--");
}

Test(ingest_progress, the_terminal_line_has_name_bar_percent_rows_rate_and_time_left)
{
    ingest_progress_view_t v = s_view("big.csv", 1234567, 452, 1000, 4);
    char line[256];
    ingest_progress_format_line(&v, 100, line, sizeof line);
    /* 99 columns: name, " [", a bar of 40, "]", the numbers. */
    cr_assert_str_eq(line, "big.csv [==================>                     ]  45.2%  1,234,567 rows  308,642 rows/s"
                           "  ETA 0:05");
    cr_assert_eq(strlen(line), 99);
}

Test(ingest_progress, the_line_never_reaches_the_last_column)
{
    ingest_progress_view_t v = s_view("a_rather_long_file_name_from_the_old_generator_2024.csv", 99, 10, 1000, 1);
    char line[512];
    for (int width = 1; width <= 200; width++) {
        ingest_progress_format_line(&v, width, line, sizeof line);
        cr_assert_lt(strlen(line), (size_t)(width > 1 ? width : 2), "width %d: \"%s\"", width, line);
    }
}

Test(ingest_progress, a_long_name_is_cut_at_its_start_and_a_narrow_terminal_loses_the_bar_first)
{
    ingest_progress_view_t v = s_view("a_rather_long_file_name_from_the_old_generator_2024.csv", 99, 500, 1000, 1);
    char line[512];
    ingest_progress_format_line(&v, 200, line, sizeof line);
    cr_assert(strncmp(line, "..._name_from_the_old_generator_2024.csv [", 42) == 0, "%s", line);
    ingest_progress_format_line(&v, 88, line, sizeof line);
    cr_assert_str_eq(line, "..._name_from_the_old_generator_2024.csv  50.0%  99 rows  99 rows/s  ETA 0:01");
    ingest_progress_format_line(&v, 40, line, sizeof line);
    cr_assert_str_eq(line, " 50.0%  99 rows  99 rows/s  ETA 0:01");
}

Test(ingest_progress, control_characters_in_a_name_do_not_reach_the_terminal)
{
    ingest_progress_view_t v = s_view("evil\033[2J\r.csv", 1, 1, 2, 1);
    char line[256];
    ingest_progress_format_line(&v, 120, line, sizeof line);
    for (const char *c = line; *c; c++)
        cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f, "byte %02x in \"%s\"", *c, line);
    cr_assert(strncmp(line, "evil?[2J?.csv [", 15) == 0, "%s", line);
}

Test(ingest_progress, the_bar_is_full_at_the_end_and_empty_but_for_its_head_at_the_start)
{
    char line[256];
    ingest_progress_view_t done = s_view("f.csv", 10, 1000, 1000, 1);
    ingest_progress_format_line(&done, 80, line, sizeof line);
    cr_assert(strstr(line, "[=") && strstr(line, "=] 100.0%"), "%s", line);
    cr_assert_null(strchr(line, '>'), "%s", line);
    ingest_progress_view_t start = s_view("f.csv", 0, 0, 1000, 0);
    ingest_progress_format_line(&start, 80, line, sizeof line);
    cr_assert(strstr(line, "[> "), "%s", line);
    cr_assert(strstr(line, "0.0%  0 rows  0 rows/s  ETA --:--"), "%s", line);
}

Test(ingest_progress, the_hash_pass_shows_bytes_and_time_left_but_no_rows)
{
    ingest_progress_view_t v = s_view("old.csv", 0, 300, 1000, 3);
    v.hashing = true;
    char line[256];
    ingest_progress_format_line(&v, 80, line, sizeof line);
    cr_assert(strstr(line, " 30.0%  hashing  ETA 0:07"), "%s", line);
    cr_assert_null(strstr(line, "rows"), "%s", line);
    char kv[512];
    ingest_progress_format_kv(&v, kv, sizeof kv);
    cr_assert(strstr(kv, "phase=hashing"), "%s", kv);
}

Test(ingest_progress, the_log_line_carries_the_same_numbers_as_key_value_pairs)
{
    ingest_progress_view_t v = s_view("/data/big \"x\".csv", 1234567, 452, 1000, 4);
    char kv[512];
    ingest_progress_format_kv(&v, kv, sizeof kv);
    cr_assert_str_eq(kv, "file=\"/data/big \\\"x\\\".csv\" rows=1234567 rows_per_s=308642 bytes=452 size=1000 "
                         "percent=45.2 eta_s=5");
    ingest_progress_view_t unknown = s_view("f.csv", 0, 0, 0, 0);
    ingest_progress_format_kv(&unknown, kv, sizeof kv);
    cr_assert_str_eq(kv, "file=\"f.csv\" rows=0 rows_per_s=0 bytes=0 size=0 percent=-1.0 eta_s=-1");
}
