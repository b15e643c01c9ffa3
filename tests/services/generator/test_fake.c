/* Unit tests of the generator's fake data: the catalogue, the users and the
 * events drawn from them with a seed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/event.h"
#include "gen_fake.h"
#include "gen_rng.h"
#include "generator.h"

static gen_fake_t *s_fake(const char *types)
{
    char why[256] = "";
    gen_fake_t *f = gen_fake_new(types, why, sizeof why);
    cr_assert_not_null(f, "gen_fake_new: %s", why);
    return f;
}

static bool s_str_eq(ev_str_t a, const char *b)
{
    return a.len == strlen(b) && memcmp(a.ptr, b, a.len) == 0;
}

static int s_cmp_str(const void *a, const void *b)
{
    const ev_str_t *x = a, *y = b;
    int c = memcmp(x->ptr, y->ptr, x->len < y->len ? x->len : y->len);
    return c ? c : (int)x->len - (int)y->len;
}

/* Fills identity fields as the generator does, so the event is complete. */
static void s_identify(ev_event_t *ev, int64_t seq)
{
    ev->source = (ev_str_t){"gen-0123456789abcdef", 20};
    ev->partition = (int32_t)ev_partition_of(ev->user_id, 16);
    ev->seq = seq;
}

Test(gen_fake, catalogue_has_at_least_200_products_in_at_least_8_categories)
{
    gen_fake_t *f = s_fake("view,purchase");
    size_t n = gen_fake_product_count(f);
    cr_assert_geq(n, 200);
    ev_str_t cats[64], names[1024];
    size_t ncats = 0;
    cr_assert_leq(n, 1024);
    for (size_t i = 0; i < n; i++) {
        const gen_product_t *p = gen_fake_product(f, i);
        cr_assert_eq(p->id, (int32_t)(i + 1), "ids are 1..n in order");
        cr_assert_gt(p->price_cents, 0, "%.*s has price %lld", (int)p->name.len, p->name.ptr,
                     (long long)p->price_cents);
        cr_assert_leq(p->price_cents, EV_PRICE_MAX_CENTS);
        cr_assert_gt(p->name.len, 3);
        names[i] = p->name;
        bool known = false;
        for (size_t c = 0; c < ncats; c++)
            known |= cats[c].ptr == p->category.ptr || s_cmp_str(&cats[c], &p->category) == 0;
        if (!known)
            cats[ncats++] = p->category;
    }
    cr_assert_geq(ncats, 8, "%zu categories", ncats);
    cr_assert_eq(gen_fake_category_count(f), ncats);
    qsort(names, n, sizeof names[0], s_cmp_str);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(s_cmp_str(&names[i - 1], &names[i]), 0, "product name %.*s twice", (int)names[i].len,
                      names[i].ptr);
    gen_fake_destroy(&f);
    cr_assert_null(f);
}

Test(gen_fake, prices_are_fixed_cents_and_the_same_in_every_instance)
{
    gen_fake_t *a = s_fake("view,purchase"), *b = s_fake("view");
    cr_assert_eq(gen_fake_product_count(a), gen_fake_product_count(b));
    for (size_t i = 0; i < gen_fake_product_count(a); i++) {
        const gen_product_t *x = gen_fake_product(a, i), *y = gen_fake_product(b, i);
        cr_assert_eq(x->price_cents, y->price_cents);
        cr_assert_eq(s_cmp_str(&x->name, &y->name), 0);
        cr_assert_eq(s_cmp_str(&x->category, &y->category), 0);
        cr_assert_eq(x->price_cents % 100, 99, "shop prices end in .99");
    }
    /* Pinned: a change of the catalogue is a visible decision. */
    const gen_product_t *first = gen_fake_product(a, 0);
    cr_assert(s_str_eq(first->name, "Auralis Wireless Earbuds"));
    cr_assert(s_str_eq(first->category, "Electronics"));
    cr_assert_eq(first->price_cents, 4999);
    gen_fake_destroy(&a);
    gen_fake_destroy(&b);
}

Test(gen_fake, emails_are_unique_over_all_users_and_names_are_fixed)
{
    gen_fake_t *a = s_fake("view,purchase"), *b = s_fake("purchase");
    ev_str_t *emails = calloc(GEN_FAKE_USERS, sizeof *emails);
    size_t non_ascii = 0;
    for (int32_t id = 1; id <= GEN_FAKE_USERS; id++) {
        ev_str_t name, email, name2, email2;
        gen_fake_user(a, id, &name, &email);
        gen_fake_user(b, id, &name2, &email2);
        cr_assert_eq(s_cmp_str(&name, &name2), 0, "user %d has one name", id);
        cr_assert_eq(s_cmp_str(&email, &email2), 0);
        cr_assert_geq(ev_utf8_chars(name.ptr, name.len), 3, "valid UTF-8 name for user %d", id);
        cr_assert_not_null(memchr(name.ptr, ' ', name.len), "first and last name");
        for (uint32_t k = 0; k < email.len; k++)
            cr_assert((unsigned char)email.ptr[k] < 0x80, "ASCII e-mail %.*s", (int)email.len, email.ptr);
        cr_assert(email.len > 12 && memcmp(email.ptr + email.len - 12, "@example.com", 12) == 0);
        for (uint32_t k = 0; k < name.len; k++)
            if ((unsigned char)name.ptr[k] >= 0x80) {
                non_ascii++;
                break;
            }
        emails[id - 1] = email;
    }
    qsort(emails, GEN_FAKE_USERS, sizeof *emails, s_cmp_str);
    for (size_t i = 1; i < GEN_FAKE_USERS; i++)
        cr_assert_neq(s_cmp_str(&emails[i - 1], &emails[i]), 0, "e-mail %.*s twice", (int)emails[i].len,
                      emails[i].ptr);
    cr_assert_gt(non_ascii, 0, "some names are not ASCII");
    cr_assert_lt(non_ascii, GEN_FAKE_USERS / 3, "but only a few: %zu", non_ascii);
    free(emails);
    gen_fake_destroy(&a);
    gen_fake_destroy(&b);
}

/* How many of n events made side by side from seeds s1 and s2 are equal. */
static int s_equal_events(uint64_t s1, uint64_t s2, int n)
{
    gen_fake_t *f = s_fake("view,purchase");
    gen_rng_t r1, r2;
    gen_rng_seed(&r1, s1);
    gen_rng_seed(&r2, s2);
    int same = 0;
    for (int i = 0; i < n; i++) {
        ev_event_t a = {0}, b = {0};
        gen_fake_next(f, &r1, 1700000000000000LL, &a);
        gen_fake_next(f, &r2, 1700000000000000LL, &b);
        same += ev_event_equal(&a, &b, EV_WHERE_PAYLOAD);
    }
    gen_fake_destroy(&f);
    return same;
}

Test(gen_fake, the_same_seed_gives_the_same_events)
{
    int same = s_equal_events(42, 42, 20000);
    cr_assert_eq(same, 20000, "%d of 20000 events equal", same);
}

Test(gen_fake, different_seeds_give_different_events)
{
    int same = s_equal_events(1, 2, 1000);
    cr_assert_lt(same, 10, "%d of 1000 events equal", same);
}

Test(gen_fake, every_event_is_valid_and_users_and_products_are_in_range)
{
    gen_fake_t *f = s_fake("view,purchase");
    gen_rng_t r;
    gen_rng_seed(&r, 7);
    int64_t now = ev_now_us();
    for (int i = 0; i < 100000; i++) {
        ev_event_t ev = {0};
        gen_fake_next(f, &r, now, &ev);
        s_identify(&ev, i + 1);
        ev_error_t err;
        cr_assert_eq(ev_event_validate(&ev, &err), EV_OK, "event %d: %s", i, err.detail);
        cr_assert(ev.user_id >= 1 && ev.user_id <= GEN_FAKE_USERS);
        cr_assert(ev.product_id >= 1 && (size_t)ev.product_id <= gen_fake_product_count(f));
        cr_assert_eq(ev.product_price, gen_fake_product(f, (size_t)ev.product_id - 1)->price_cents);
        cr_assert_eq(ev.event_time, now);
    }
    gen_fake_destroy(&f);
}

/* Counts the types of n events made with EVENT_TYPES=types. */
static void s_count_types(const char *types, size_t n, size_t *views, size_t *purchases)
{
    gen_fake_t *f = s_fake(types);
    gen_rng_t r;
    gen_rng_seed(&r, 99);
    *views = *purchases = 0;
    for (size_t i = 0; i < n; i++) {
        ev_event_t ev = {0};
        gen_fake_next(f, &r, 0, &ev);
        if (s_str_eq(ev.event_type, "view"))
            (*views)++;
        else if (s_str_eq(ev.event_type, "purchase"))
            (*purchases)++;
        else
            cr_assert_fail("unexpected type %.*s", (int)ev.event_type.len, ev.event_type.ptr);
    }
    gen_fake_destroy(&f);
}

Test(gen_fake, only_the_configured_event_types_appear)
{
    size_t v, p;
    s_count_types("view", 10000, &v, &p);
    cr_assert_eq(v, 10000);
    s_count_types("purchase", 10000, &v, &p);
    cr_assert_eq(p, 10000);
}

Test(gen_fake, views_are_far_more_frequent_than_purchases)
{
    size_t v, p;
    s_count_types("view,purchase", 100000, &v, &p);
    cr_assert_eq(v + p, 100000);
    /* 85/15 by design; wide bounds, the seed is fixed anyway. */
    cr_assert(v > 80000 && v < 90000, "views %zu purchases %zu", v, p);
    gen_fake_t *f = s_fake("purchase,view");
    unsigned pm;
    ev_str_t t = gen_fake_type(f, 1, &pm);
    cr_assert(s_str_eq(t, "view"));
    cr_assert_eq(pm, 850);
    gen_fake_destroy(&f);
}

Test(gen_fake, an_unknown_event_type_is_refused_with_its_name)
{
    char why[256] = "";
    gen_fake_t *f = gen_fake_new("view,refund", why, sizeof why);
    cr_assert_null(f);
    cr_assert_not_null(strstr(why, "refund"), "%s", why);
}

Test(gen_rng, below_is_in_range_and_reaches_every_value)
{
    gen_rng_t r;
    gen_rng_seed(&r, 0);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t x = gen_rng_below(&r, 7);
        cr_assert_lt(x, 7);
        seen[x]++;
    }
    for (int i = 0; i < 7; i++)
        cr_assert_gt(seen[i], 700, "value %d drawn %d times", i, seen[i]);
    cr_assert_neq(gen_rng_fresh_seed(), 0);
}

Test(generator, count_must_be_a_positive_integer)
{
    uint64_t n = 0;
    char why[256] = "";
    cr_assert_eq(generator_parse_count("500000", &n, why, sizeof why), 0);
    cr_assert_eq(n, 500000);
    const char *bad[] = {"", "0", "-5", "ten", "12x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(generator_parse_count(bad[i], &n, why, sizeof why), -1, "%s accepted", bad[i]);
        cr_assert_not_null(strstr(why, "--count"), "%s", why);
    }
}
