/* Helpers shared by the ingest tests (see support.h). */
#include "support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

const char *fx(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", INGEST_FIXTURES, name);
    return p;
}

char *tmp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *p;
    cr_assert(asprintf(&p, "%s/evpipe-ingest-test-XXXXXX", base && *base ? base : "/tmp") > 0);
    cr_assert_not_null(mkdtemp(p), "mkdtemp: %s", strerror(errno));
    return p;
}

void rm_rf(const char *dir)
{
    if (!dir || getenv("EVPIPE_TEST_KEEP"))
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

char *test_dir;

void test_dir_new(void)
{
    test_dir = tmp_dir();
}

void test_dir_remove(void)
{
    rm_rf(test_dir);
    free(test_dir);
    test_dir = NULL;
}

char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    if (len)
        *len = got;
    return buf;
}

void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = slurp(from, &len);
    spit(to, data, len);
    free(data);
}

void set_mtime(const char *path, int64_t secs)
{
    struct timeval tv[2] = {{(time_t)secs, 0}, {(time_t)secs, 0}};
    cr_assert_eq(utimes(path, tv), 0, "utimes %s: %s", path, strerror(errno));
}

size_t read_rows(const char *path, int partitions, size_t max_line, trow_t *rows, size_t max)
{
    ingest_reader_opts_t o = {.partitions = partitions, .max_line = max_line};
    bool refused;
    char why[256];
    ingest_reader_t *r = ingest_reader_open(path, &o, NULL, &refused, why, sizeof why);
    cr_assert_not_null(r, "%s: %s", path, why);
    size_t n = 0;
    ingest_row_t row;
    int rc;
    while ((rc = ingest_reader_next(r, &row, why, sizeof why)) > 0 && n < max) {
        trow_t *t = &rows[n++];
        memset(t, 0, sizeof *t);
        t->code = row.code;
        t->line = row.line;
        if (row.code != EV_OK)
            continue;
        snprintf(t->source, sizeof t->source, "%.*s", (int)row.ev.source.len, row.ev.source.ptr);
        t->partition = row.ev.partition;
        t->seq = row.ev.seq;
        t->user_id = row.ev.user_id;
        t->product_id = row.ev.product_id;
        t->price = row.ev.product_price;
        t->time = row.ev.event_time;
        snprintf(t->product_name, sizeof t->product_name, "%.*s", (int)row.ev.product_name.len,
                 row.ev.product_name.ptr);
    }
    cr_assert_geq(rc, 0, "%s: %s", path, why);
    ingest_reader_destroy(&r);
    return n;
}
