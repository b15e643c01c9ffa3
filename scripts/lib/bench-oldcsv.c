/* scripts/bench's input: writes N rows in the old generator's CSV format
 * (header, nine columns, CRLF, prices like "120.0", times with and without
 * fractional seconds, some non-ASCII names), about 117 bytes a row, the same
 * bytes for the same N and seed on any machine. Compiled on the fly by
 * scripts/bench; not part of the services.
 *
 *   bench-oldcsv ROWS [SEED [START [SPAN]]] > file.csv
 *
 * Without START the times run through March 2024 (days past the 28th wrap
 * to the 1st). With START (seconds since the epoch, UTC) they run on from
 * START, about 1.3 s apart, in order; with SPAN (seconds) too they are
 * spread at random over [START, START + SPAN), in no order (a backfill).
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define S_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const s_first[] = {
    "James",   "Mary",    "Robert",   "Patricia", "John",    "Jennifer", "Michael", "Linda",  "David",
    "Barbara", "William", "Elizabeth", "Richard", "Susan",   "Thomas",   "Jessica", "Daniel", "Sarah",
    "Matthew", "Karen",   "Christopher", "Nancy", "Anthony", "Margaret", "José",    "Zoë",    "Chloé",
    "Björn",   "Søren",   "Łukasz",
};
static const char *const s_last[] = {
    "Smith",  "Johnson", "Williams", "Brown",  "Jones",   "Garcia",  "Miller",   "Davis",  "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor",  "Moore",  "Jackson",
    "Martin", "Lee",     "Thompson", "White",  "O'Brien", "García",  "Müller",   "Núñez",  "Østergaard",
};
static const char *const s_domains[] = {"example.com", "example.org", "example.net", "mail.example.com"};
static const char *const s_adjectives[] = {"Ergonomic", "Handcrafted", "Rustic", "Sleek",  "Practical",
                                           "Refined",   "Licensed",    "Generic", "Awesome", "Gorgeous"};
static const char *const s_materials[] = {"Steel", "Wooden", "Cotton", "Granite", "Plastic",
                                          "Rubber", "Bronze", "Frozen", "Soft",    "Concrete"};
static const char *const s_things[] = {"Chair", "Keyboard", "Shoes", "Table", "Gloves", "Lamp",
                                       "Pants", "Towels",   "Bike",  "Shirt", "Hat",    "Computer"};
static const char *const s_categories[] = {"Electronics", "Books",  "Clothing", "Home & Kitchen",
                                           "Sports",      "Beauty", "Toys",     "Garden"};

/* xorshift64*: the same numbers everywhere. */
static uint64_t s_state;

static uint64_t s_next(void)
{
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t s_below(uint64_t n)
{
    return (s_next() >> 11) % n;
}

static char s_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The e-mail part of a name: ASCII letters only, lower case. */
static void s_put_ascii(const char *s)
{
    for (; *s; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
            putchar(s_lower(*s));
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s ROWS [SEED [START [SPAN]]] > file.csv\n", argv[0]);
        return 2;
    }
    long long rows = atoll(argv[1]);
    s_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 20240327ULL;
    if (s_state == 0)
        s_state = 1;
    long long start = argc > 3 ? atoll(argv[3]) : -1;
    long long span = argc > 4 ? atoll(argv[4]) : 0;
    static char out[1 << 20];
    setvbuf(stdout, out, _IOFBF, sizeof out);
    fputs("user_id,user_name,user_email,event_type,product_id,product_name,product_category,product_price,"
          "event_time\r\n",
          stdout);
    /* 2024-03-01 00:00:00 plus a growing offset, like a generator running for a month. */
    int64_t t = 0;
    for (long long i = 0; i < rows; i++) {
        uint64_t user = 1 + s_below(10000);
        const char *first = s_first[(user * 7) % S_COUNT(s_first)];
        const char *last = s_last[(user * 13) % S_COUNT(s_last)];
        const char *type = s_below(100) < 85 ? "view" : "purchase";
        uint64_t product = 1 + s_below(200);
        uint64_t cents = 99 + (product * 7919) % 99900;
        t += (int64_t)s_below(2600000); /* microseconds: about 1 M rows over a month */
        int64_t at = span > 0 ? (int64_t)s_below((uint64_t)span * 1000000) : t;
        int64_t secs = at / 1000000, us = at % 1000000;
        int day = 1 + (int)(secs / 86400), hh = (int)(secs / 3600 % 24), mm = (int)(secs / 60 % 60),
            ss = (int)(secs % 60);
        if (day > 28)
            day = 1 + (day - 1) % 28;
        printf("%" PRIu64 ",%s %s,", user, first, last);
        s_put_ascii(first);
        putchar('.');
        s_put_ascii(last);
        printf("%" PRIu64 "@%s,%s,%" PRIu64 ",%s %s %s,%s,", user, s_domains[user % S_COUNT(s_domains)], type,
               product, s_adjectives[product % S_COUNT(s_adjectives)],
               s_materials[(product / 10) % S_COUNT(s_materials)], s_things[(product / 3) % S_COUNT(s_things)],
               s_categories[product % S_COUNT(s_categories)]);
        /* Prices as the old generator wrote them: "120.0", "19.99", "5". */
        if (cents % 100 == 0)
            printf("%" PRIu64 ".0,", cents / 100);
        else
            printf("%" PRIu64 ".%02" PRIu64 ",", cents / 100, cents % 100);
        if (start >= 0) {
            time_t when = (time_t)(start + secs);
            struct tm tm;
            gmtime_r(&when, &tm);
            printf("%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec);
        } else {
            printf("2024-03-%02d %02d:%02d:%02d", day, hh, mm, ss);
        }
        if (i % 4 != 0)
            printf(".%06d", (int)us);
        fputs("\r\n", stdout);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
