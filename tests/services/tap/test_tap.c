/* evpipe-tap on a real bus fed by the generator: one JSON object per line,
 * filters by partition and event type, --count, --stats, clear errors. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

typedef struct {
    tk_world_t *w;   /* endpoints and folders (the database is unused) */
    tk_proc_t *bus;  /* the bus */
    tk_proc_t *gen;  /* a steady generator */
} fixture_t;

static void s_setup(fixture_t *f, const char *name)
{
    f->w = tk_world_new(name);
    f->bus = tk_start(f->w, "bus", NULL, NULL);
    cr_assert(tk_wait_log(f->bus, "bus ready", 10000));
    const char *args[] = {"--rate", "2000", "--count", "200000", NULL};
    f->gen = tk_start(f->w, "generator", args, NULL);
}

static void s_teardown(fixture_t *f)
{
    tk_proc_destroy(&f->gen);
    tk_proc_destroy(&f->bus);
    tk_world_destroy(&f->w);
}

/* Runs the tap to its end; returns its output (malloc'd). */
static char *s_tap(fixture_t *f, const char *const *args, int *code)
{
    tk_proc_t *tap = tk_start(f->w, "tap", args, NULL);
    cr_assert(tk_wait_exit(tap, 60000), "the tap did not stop by itself");
    *code = tk_exit_code(tap);
    char *out = tk_read_file(tap->log, NULL);
    tk_proc_destroy(&tap);
    return out;
}

static int s_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

Test(tap, prints_count_events_as_json_lines_of_the_type_asked)
{
    fixture_t f;
    s_setup(&f, "tap_type");
    const char *args[] = {"--count", "25", "--event-type", "purchase", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0, "%s", out);
    cr_assert_eq(s_lines(out), 25, "%s", out);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert(line[0] == '{' && line[strlen(line) - 1] == '}', "not a JSON object: %s", line);
        cr_assert(strstr(line, "\"event_type\":\"purchase\"") != NULL, "%s", line);
        cr_assert(strstr(line, "\"product_price\":\"") != NULL, "the price is not an exact string: %s", line);
        cr_assert(strstr(line, "\"seq\":") != NULL);
    }
    free(out);
    s_teardown(&f);
}

Test(tap, prints_only_the_partitions_asked)
{
    fixture_t f;
    s_setup(&f, "tap_partition");
    const char *args[] = {"--count", "20", "--partition", "3,5", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0);
    cr_assert_eq(s_lines(out), 20);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        cr_assert(strstr(line, "\"partition\":3,") || strstr(line, "\"partition\":5,"), "%s", line);
    free(out);
    s_teardown(&f);
}

Test(tap, stats_prints_a_line_a_second_with_rates_and_lag)
{
    fixture_t f;
    s_setup(&f, "tap_stats");
    const char *args[] = {"--stats", "--seconds", "3.5", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 0);
    cr_assert_geq(s_lines(out), 2, "%s", out);
    cr_assert(strstr(out, "\"events_per_s\":") && strstr(out, "\"by_type\":{\"view\":") &&
                  strstr(out, "\"lag_ms_avg\":"),
              "%s", out);
    free(out);
    s_teardown(&f);
}

Test(tap, refuses_a_partition_outside_the_range_with_one_line)
{
    fixture_t f;
    s_setup(&f, "tap_bad");
    const char *args[] = {"--partition", "99", NULL};
    int code;
    char *out = s_tap(&f, args, &code);
    cr_assert_eq(code, 1);
    cr_assert(strstr(out, "--partition 99") != NULL, "%s", out);
    cr_assert_eq(s_lines(out), 1, "%s", out);
    free(out);
    s_teardown(&f);
}
