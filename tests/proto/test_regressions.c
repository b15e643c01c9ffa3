/* The fuzz targets' saved inputs, run in the normal test build: every file in
 * tests/fuzz/regressions/<target>/ (inputs that once crashed or broke an
 * invariant) and every seed in tests/fuzz/corpus/<target>/ goes through the
 * same function libFuzzer drives (tests/fuzz/fuzz_targets.h), which aborts
 * on a failure. The source tree is found through EVPIPE_SOURCE_DIR. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../fuzz/fuzz_targets.h"
#include "evpipe/csv.h"
#include "evpipe/event.h"

/* ---- Helpers ---- */

/* tests/fuzz/<kind> in the source tree, in buf. */
static const char *s_fuzz_dir(char *buf, size_t cap, const char *kind)
{
    const char *src = getenv("EVPIPE_SOURCE_DIR");
    cr_assert(src && *src, "EVPIPE_SOURCE_DIR is not set (ctest sets it; set it to the source tree)");
    int n = snprintf(buf, cap, "%s/tests/fuzz/%s", src, kind);
    cr_assert(n > 0 && (size_t)n < cap);
    return buf;
}

static void *s_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    cr_assert_not_null(data);
    size_t got;
    while ((got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            data = realloc(data, cap);
            cr_assert_not_null(data);
        }
    }
    cr_assert(!ferror(f), "%s: read error", path);
    fclose(f);
    /* Exactly the input's size, as libFuzzer gives it: AddressSanitizer then
     * sees a read one byte past the end. */
    void *exact = malloc(n ? n : 1);
    cr_assert_not_null(exact);
    memcpy(exact, data, n);
    free(data);
    *len = n;
    return exact;
}

static int s_visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs every file of tests/fuzz/<kind>/<target> through the target; returns how many. */
static int s_run_folder(const char *kind, const char *target)
{
    const fuzz_target_t *t = fuzz_target_find(target);
    cr_assert_not_null(t, "no fuzz target named %s", target);
    char base[4096], dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/%s", s_fuzz_dir(base, sizeof base, kind), target);
    struct dirent **names;
    int n = scandir(dir, &names, s_visible, alphasort);
    if (n < 0) {
        cr_assert_eq(errno, ENOENT, "%s: %s", dir, strerror(errno));
        return 0; /* nothing saved for this target */
    }
    int ran = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len;
            void *data = s_read_file(path, &len);
            /* Named before the run, so a crash says which input it was. */
            cr_log_info("fuzz %s: %s/%s (%zu bytes)", target, kind, names[i]->d_name, len);
            fprintf(stderr, "fuzz %s: %s/%s\n", target, kind, names[i]->d_name);
            cr_assert_eq(t->run(data, len), 0, "%s", path);
            free(data);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

/* ---- Saved inputs ---- */

Test(fuzz_regressions, every_folder_names_a_fuzz_target)
{
    char base[4096];
    const char *kinds[] = {"regressions", "corpus"};
    for (size_t k = 0; k < 2; k++) {
        DIR *d = opendir(s_fuzz_dir(base, sizeof base, kinds[k]));
        cr_assert_not_null(d, "%s: %s", base, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                cr_expect_not_null(fuzz_target_find(e->d_name), "tests/fuzz/%s/%s: no fuzz target of that name",
                                   kinds[k], e->d_name);
        closedir(d);
    }
}

Test(fuzz_regressions, wire_inputs_that_once_failed_decode_cleanly)
{
    s_run_folder("regressions", "wire");
}

Test(fuzz_regressions, csv_inputs_that_once_failed_read_cleanly)
{
    s_run_folder("regressions", "csv");
}

Test(fuzz_regressions, config_inputs_that_once_failed_load_cleanly)
{
    s_run_folder("regressions", "config");
}

Test(fuzz_regressions, bus_bodies_that_once_failed_are_walked_cleanly)
{
    s_run_folder("regressions", "bus");
}

/* ---- What the fuzzers found, stated directly ---- */

static ev_event_t s_valid_event(void)
{
    ev_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.user_id = 1;
    ev.event_type = (ev_str_t){"view", 4};
    ev.event_time = 1706702400000000LL;
    ev.source = (ev_str_t){"gen-1", 5};
    ev.seq = 1;
    return ev;
}

/* Found by the wire target: a bus event dated after 9999 (or before year 1)
 * passed validation, but its archive row did not read back (ev_parse_time
 * takes years 1 to 9999) and COPY refuses years before 1 as written. */
Test(fuzz_regressions, validate_refuses_event_times_outside_years_1_to_9999)
{
    ev_event_t ev = s_valid_event();
    ev_error_t err;
    const int64_t first = -62135596800000000LL, after_last = 253402300800000000LL; /* 0001-01-01, 10000-01-01 */
    int64_t ok[] = {first, 0, after_last - 1};
    int64_t bad[] = {first - 1, after_last, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ev.event_time = ok[i];
        cr_expect_eq(ev_event_validate(&ev, &err), EV_OK, "%lld: %s", (long long)ok[i], err.detail);
        cr_expect_eq(ev_event_validate_payload(&ev, &err), EV_OK, "%lld: %s", (long long)ok[i], err.detail);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ev.event_time = bad[i];
        cr_expect_eq(ev_event_validate(&ev, &err), EV_REJECT_TIME, "%lld accepted", (long long)bad[i]);
        cr_expect(strstr(err.detail, "event_time") != NULL, "detail: %s", err.detail);
        cr_expect_eq(ev_event_validate_payload(&ev, &err), EV_REJECT_TIME, "%lld accepted", (long long)bad[i]);
    }
}

/* Found by the csv target (clang's UBSan): an old-format row has no identity,
 * so its source is (NULL, 0), and counting the characters of that text did
 * arithmetic on a NULL pointer, in ev_event_validate too. */
Test(fuzz_regressions, empty_text_at_null_counts_as_zero_characters)
{
    cr_assert_eq(ev_utf8_chars(NULL, 0), 0);
    ev_event_t ev = s_valid_event();
    ev.source = (ev_str_t){NULL, 0};
    ev_error_t err;
    cr_assert_eq(ev_event_validate_payload(&ev, &err), EV_OK, "%s", err.detail);
    cr_assert_eq(ev_event_validate(&ev, &err), EV_REJECT_IDENTITY, "%s", err.detail);
}

/* ---- Seed corpora (valid and invalid examples of each input) ---- */

Test(fuzz_regressions, wire_seeds_pass_the_wire_target)
{
    cr_assert_gt(s_run_folder("corpus", "wire"), 0, "no seeds in tests/fuzz/corpus/wire");
}

Test(fuzz_regressions, csv_seeds_pass_the_csv_target)
{
    cr_assert_gt(s_run_folder("corpus", "csv"), 0, "no seeds in tests/fuzz/corpus/csv");
}

Test(fuzz_regressions, config_seeds_pass_the_config_target)
{
    cr_assert_gt(s_run_folder("corpus", "config"), 0, "no seeds in tests/fuzz/corpus/config");
}

Test(fuzz_regressions, bus_seeds_pass_the_bus_target)
{
    cr_assert_gt(s_run_folder("corpus", "bus"), 0, "no seeds in tests/fuzz/corpus/bus");
}
