/* Fake shop data: users, catalogue and events (see gen_fake.h). The tables
 * below are the whole data set: users and products are fixed, only the
 * choice of user, product and event type depends on the seed. */
#include "gen_fake.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evpipe/buf.h"

/* ---- Names ---- */

/* A name as shown and as it goes into an e-mail address (ASCII). */
typedef struct {
    const char *shown; /* UTF-8, as the user writes it */
    const char *ascii; /* lower-case ASCII for the e-mail address */
} s_name_t;

static const s_name_t s_first[] = {
    {"James", "james"},     {"Mary", "mary"},       {"Robert", "robert"},   {"Patricia", "patricia"},
    {"John", "john"},       {"Jennifer", "jennifer"}, {"Michael", "michael"}, {"Linda", "linda"},
    {"David", "david"},     {"Elizabeth", "elizabeth"}, {"William", "william"}, {"Barbara", "barbara"},
    {"Richard", "richard"}, {"Susan", "susan"},     {"Thomas", "thomas"},   {"Jessica", "jessica"},
    {"Daniel", "daniel"},   {"Sarah", "sarah"},     {"Matthew", "matthew"}, {"Karen", "karen"},
    {"Anthony", "anthony"}, {"Emily", "emily"},     {"Mark", "mark"},       {"Olivia", "olivia"},
    {"Steven", "steven"},   {"Emma", "emma"},       {"Andrew", "andrew"},   {"Sophia", "sophia"},
    {"Kevin", "kevin"},     {"Hannah", "hannah"},   {"Brian", "brian"},     {"Grace", "grace"},
    {"Lucas", "lucas"},     {"Amelia", "amelia"},   {"Noah", "noah"},       {"Mia", "mia"},
    {"Liam", "liam"},       {"Ava", "ava"},         {"Ethan", "ethan"},     {"Isabella", "isabella"},
    {"José", "jose"},       {"Zoë", "zoe"},         {"Chloé", "chloe"},     {"Björn", "bjorn"},
    {"Søren", "soren"},     {"Łukasz", "lukasz"},
};

static const s_name_t s_last[] = {
    {"Smith", "smith"},       {"Johnson", "johnson"},   {"Williams", "williams"}, {"Brown", "brown"},
    {"Jones", "jones"},       {"Miller", "miller"},     {"Davis", "davis"},       {"Wilson", "wilson"},
    {"Anderson", "anderson"}, {"Taylor", "taylor"},     {"Thomas", "thomas"},     {"Moore", "moore"},
    {"Martin", "martin"},     {"Jackson", "jackson"},   {"Thompson", "thompson"}, {"White", "white"},
    {"Harris", "harris"},     {"Clark", "clark"},       {"Lewis", "lewis"},       {"Robinson", "robinson"},
    {"Walker", "walker"},     {"Young", "young"},       {"Allen", "allen"},       {"King", "king"},
    {"Wright", "wright"},     {"Scott", "scott"},       {"Hill", "hill"},         {"Green", "green"},
    {"Adams", "adams"},       {"Baker", "baker"},       {"Nelson", "nelson"},     {"Carter", "carter"},
    {"Mitchell", "mitchell"}, {"Roberts", "roberts"},   {"Turner", "turner"},     {"Phillips", "phillips"},
    {"Campbell", "campbell"}, {"Parker", "parker"},     {"Evans", "evans"},       {"O'Brien", "obrien"},
    {"García", "garcia"},     {"Müller", "muller"},     {"Núñez", "nunez"},       {"Østergaard", "ostergaard"},
    {"Kowalczyk", "kowalczyk"}, {"Dvořák", "dvorak"},
};

#define S_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Catalogue ---- */

/* How a variant and an item make a product name. */
typedef enum {
    S_VARIANT_FIRST, /* "Auralis Wireless Earbuds" */
    S_VARIANT_PAREN, /* "The Silent Harbor (Hardcover)" */
    S_VARIANT_DASH,  /* "Linen Shirt - Navy" */
} s_style_t;

typedef struct {
    const char *name;   /* the item */
    int64_t base_cents; /* its price with a 100% variant */
} s_item_t;

typedef struct {
    const char *name; /* brand, edition or colour */
    int percent;      /* of the base price */
} s_variant_t;

#define S_ITEMS 8
#define S_VARIANTS 3

typedef struct {
    const char *category;                /* product_category */
    s_style_t style;                     /* how names are made */
    s_item_t items[S_ITEMS];             /* what is sold */
    s_variant_t variants[S_VARIANTS];    /* each item comes in each variant */
} s_category_t;

static const s_category_t s_catalogue[] = {
    {"Electronics", S_VARIANT_FIRST,
     {{"Wireless Earbuds", 4999}, {"Noise-Cancelling Headphones", 17999}, {"Bluetooth Speaker", 5999},
      {"USB-C Charger 65W", 2999}, {"Smartwatch", 19999}, {"4K Action Camera", 24999},
      {"Mechanical Keyboard", 8999}, {"Portable SSD 1TB", 9999}},
     {{"Auralis", 100}, {"Voltra", 90}, {"Nexon", 125}}},
    {"Books", S_VARIANT_PAREN,
     {{"The Silent Harbor", 1499}, {"A Short History of Maps", 1899}, {"Cooking with Cast Iron", 2499},
      {"The Last Lighthouse Keeper", 1299}, {"Midnight in Lisbon", 1399}, {"Practical Home Repairs", 3499},
      {"Gardens of the North", 2799}, {"The Patient Investor", 1999}},
     {{"Paperback", 100}, {"Hardcover", 180}, {"Large Print", 130}}},
    {"Home & Kitchen", S_VARIANT_FIRST,
     {{"Cast Iron Skillet 12-inch", 3999}, {"Chef's Knife 8-inch", 4999}, {"Stainless Steel Cookware Set", 14999},
      {"French Press 1L", 2999}, {"Electric Kettle", 3499}, {"Bamboo Cutting Board", 1999},
      {"Non-Stick Frying Pan", 2999}, {"Stand Mixer", 24999}},
     {{"HearthWare", 100}, {"Casa Nova", 115}, {"Kitchenly", 85}}},
    {"Sports & Outdoors", S_VARIANT_FIRST,
     {{"Yoga Mat", 2999}, {"Adjustable Dumbbells", 19999}, {"Running Shoes", 8999},
      {"Insulated Water Bottle 750ml", 2499}, {"Camping Tent 2-Person", 12999}, {"Cycling Helmet", 5999},
      {"Resistance Bands Set", 1999}, {"Hiking Backpack 40L", 8999}},
     {{"Trailhead", 100}, {"Peakform", 120}, {"Stridex", 90}}},
    {"Toys & Games", S_VARIANT_FIRST,
     {{"Building Blocks Set 500 pcs", 3999}, {"Remote Control Car", 4999}, {"Wooden Train Set", 5999},
      {"Strategy Board Game", 3499}, {"1000-Piece Jigsaw Puzzle", 1999}, {"Plush Teddy Bear", 2499},
      {"Science Experiment Kit", 2999}, {"Family Card Game", 1499}},
     {{"Brickory", 100}, {"Playwise", 90}, {"Tinker & Co.", 115}}},
    {"Beauty", S_VARIANT_FIRST,
     {{"Hydrating Face Cream 50ml", 2499}, {"Vitamin C Serum 30ml", 2999}, {"Matte Lipstick", 1799},
      {"Volumizing Mascara", 1499}, {"Gentle Foaming Cleanser", 1299}, {"Argan Oil Shampoo", 1599},
      {"SPF 50 Sunscreen", 1899}, {"Eau de Parfum 50ml", 6999}},
     {{"Lumière", 130}, {"Velvet & Co.", 100}, {"PureLeaf", 85}}},
    {"Clothing", S_VARIANT_DASH,
     {{"Men's Crew Neck T-Shirt", 1999}, {"Women's Slim Fit Jeans", 5999}, {"Hooded Sweatshirt", 4499},
      {"Merino Wool Sweater", 8999}, {"Rain Jacket", 9999}, {"Chino Trousers", 4999}, {"Linen Shirt", 3999},
      {"Wool Beanie", 1999}},
     {{"Navy", 100}, {"Black", 100}, {"Heather Grey", 105}}},
    {"Grocery", S_VARIANT_FIRST,
     {{"Organic Coffee Beans 1kg", 2499}, {"Extra Virgin Olive Oil 1L", 1299}, {"Dark Chocolate 85% 100g", 349},
      {"Basmati Rice 2kg", 799}, {"Wildflower Honey 500g", 999}, {"Green Tea 50 Bags", 599},
      {"Whole Wheat Pasta 500g", 249}, {"Mixed Nuts 400g", 899}},
     {{"Green Valley", 100}, {"Harvest Table", 90}, {"Dolce Vita", 125}}},
    {"Garden", S_VARIANT_FIRST,
     {{"Garden Hose 25m", 3999}, {"Pruning Shears", 2499}, {"Raised Garden Bed", 8999},
      {"Solar Path Lights 8-Pack", 3499}, {"Cordless Leaf Blower", 12999}, {"Ceramic Plant Pot", 1999},
      {"Seed Starter Kit", 1499}, {"Compost Bin 300L", 6999}},
     {{"Verdant", 100}, {"RootRight", 90}, {"Bloomfield", 120}}},
    {"Pet Supplies", S_VARIANT_FIRST,
     {{"Dry Dog Food 12kg", 5499}, {"Cat Scratching Post", 3999}, {"Orthopedic Dog Bed", 7999},
      {"Stainless Steel Pet Bowl", 1299}, {"Cat Litter 10L", 1499}, {"Retractable Dog Leash", 2499},
      {"Aquarium Starter Kit", 8999}, {"Bird Feeder", 1999}},
     {{"Happy Paws", 100}, {"Whisker & Tail", 110}, {"Barkley", 90}}},
};

#define S_PRODUCTS (S_COUNT(s_catalogue) * S_ITEMS * S_VARIANTS)

/* Relative weights of the known event types: shoppers look far more often
 * than they buy. A type not listed here gets S_OTHER_WEIGHT. */
static const struct {
    const char *type; /* an event type of event_types.def */
    unsigned weight;  /* relative frequency */
} s_type_weights[] = {{"view", 85}, {"purchase", 15}};
#define S_OTHER_WEIGHT 10
#define S_TYPES_MAX 16

/* ---- The object ---- */

struct gen_fake_t {
    char *text;                             /* every name, e-mail and product name, one block */
    ev_str_t user_name[GEN_FAKE_USERS + 1]; /* by user_id; [0] unused */
    ev_str_t user_email[GEN_FAKE_USERS + 1]; /* by user_id; [0] unused */
    gen_product_t products[S_PRODUCTS];     /* the catalogue, id = index + 1 */
    ev_str_t types[S_TYPES_MAX];            /* EVENT_TYPES, in order */
    unsigned type_cut[S_TYPES_MAX];         /* cumulative per mille: type i if draw < type_cut[i] */
    size_t ntypes;                          /* entries in types */
};

/* A price that looks like a shop's: the base scaled by the variant, rounded
 * to whole units and ending in .99. */
static int64_t s_price(int64_t base_cents, int percent)
{
    int64_t raw = base_cents * percent / 100;
    int64_t price = (raw + 50) / 100 * 100 - 1;
    return price > 0 ? price : 99;
}

/* Appends the text to the block; returns its offset (pointers are fixed up
 * once the block stops moving). */
static uint32_t s_put(ev_buf_t *b, const char *s, size_t len)
{
    uint32_t off = (uint32_t)b->len;
    ev_buf_append(b, s, len);
    return off;
}

static int s_parse_types(gen_fake_t *self, const char *event_types, char *why, size_t whylen)
{
    unsigned weights[S_TYPES_MAX], total = 0;
    const char *p = event_types;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        /* Point at the static name in ev_event_types: nothing to own. */
        const char *known = NULL;
        for (size_t i = 0; ev_event_types[i]; i++)
            if (strlen(ev_event_types[i]) == n && memcmp(ev_event_types[i], p, n) == 0)
                known = ev_event_types[i];
        if (!known) {
            snprintf(why, whylen, "EVENT_TYPES=%s: %.*s is not an event type", event_types, (int)n, p);
            return -1;
        }
        bool dup = false;
        for (size_t i = 0; i < self->ntypes; i++)
            dup |= self->types[i].ptr == known;
        if (!dup && self->ntypes < S_TYPES_MAX) {
            unsigned w = S_OTHER_WEIGHT;
            for (size_t i = 0; i < S_COUNT(s_type_weights); i++)
                if (strcmp(s_type_weights[i].type, known) == 0)
                    w = s_type_weights[i].weight;
            self->types[self->ntypes] = (ev_str_t){known, (uint32_t)n};
            weights[self->ntypes++] = w;
            total += w;
        }
        p += n + (comma != NULL);
    }
    if (!self->ntypes) {
        snprintf(why, whylen, "EVENT_TYPES is empty");
        return -1;
    }
    unsigned acc = 0;
    for (size_t i = 0; i < self->ntypes; i++) {
        acc += weights[i];
        self->type_cut[i] = (unsigned)((uint64_t)acc * 1000 / total);
    }
    self->type_cut[self->ntypes - 1] = 1000;
    return 0;
}

gen_fake_t *gen_fake_new(const char *event_types, char *why, size_t whylen)
{
    gen_fake_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (s_parse_types(self, event_types, why, whylen) != 0) {
        gen_fake_destroy(&self);
        return NULL;
    }
    ev_buf_t b;
    ev_buf_init(&b);
    uint32_t name_off[GEN_FAKE_USERS + 1], email_off[GEN_FAKE_USERS + 1];
    uint32_t pname_off[S_PRODUCTS], pcat_off[S_COUNT(s_catalogue)];

    /* Users: the name depends only on user_id, and the id in the address
     * makes every address unique. */
    char tmp[256];
    for (int32_t id = 1; id <= GEN_FAKE_USERS; id++) {
        uint64_t h = gen_rng_mix((uint64_t)id * 0x2545f4914f6cdd1dULL);
        const s_name_t *first = &s_first[h % S_COUNT(s_first)];
        const s_name_t *last = &s_last[(h >> 20) % S_COUNT(s_last)];
        int n = snprintf(tmp, sizeof tmp, "%s %s", first->shown, last->shown);
        name_off[id] = s_put(&b, tmp, (size_t)n);
        switch ((h >> 40) % 4) {
        case 0:
        case 1:
            n = snprintf(tmp, sizeof tmp, "%s.%s%d@example.com", first->ascii, last->ascii, id);
            break;
        case 2:
            n = snprintf(tmp, sizeof tmp, "%s%s%d@example.com", first->ascii, last->ascii, id);
            break;
        default:
            n = snprintf(tmp, sizeof tmp, "%c.%s%d@example.com", first->ascii[0], last->ascii, id);
            break;
        }
        email_off[id] = s_put(&b, tmp, (size_t)n);
    }

    /* Products: every item in every variant of every category. */
    size_t k = 0;
    for (size_t c = 0; c < S_COUNT(s_catalogue); c++) {
        const s_category_t *cat = &s_catalogue[c];
        pcat_off[c] = s_put(&b, cat->category, strlen(cat->category));
        for (size_t i = 0; i < S_ITEMS; i++)
            for (size_t v = 0; v < S_VARIANTS; v++, k++) {
                const s_item_t *it = &cat->items[i];
                const s_variant_t *va = &cat->variants[v];
                int n = cat->style == S_VARIANT_FIRST   ? snprintf(tmp, sizeof tmp, "%s %s", va->name, it->name)
                        : cat->style == S_VARIANT_PAREN ? snprintf(tmp, sizeof tmp, "%s (%s)", it->name, va->name)
                                                        : snprintf(tmp, sizeof tmp, "%s - %s", it->name, va->name);
                pname_off[k] = s_put(&b, tmp, (size_t)n);
                self->products[k].id = (int32_t)(k + 1);
                self->products[k].price_cents = s_price(it->base_cents, va->percent);
                self->products[k].category.len = (uint32_t)strlen(cat->category);
                self->products[k].name.len = (uint32_t)n;
            }
    }
    assert(k == S_PRODUCTS);

    /* The block stops moving here: turn offsets into views. */
    self->text = b.data;
    for (int32_t id = 1; id <= GEN_FAKE_USERS; id++) {
        uint32_t nend = email_off[id], eend = id < GEN_FAKE_USERS ? name_off[id + 1] : pcat_off[0];
        self->user_name[id] = (ev_str_t){self->text + name_off[id], nend - name_off[id]};
        self->user_email[id] = (ev_str_t){self->text + email_off[id], eend - email_off[id]};
    }
    for (size_t p = 0; p < S_PRODUCTS; p++) {
        size_t c = p / (S_ITEMS * S_VARIANTS);
        self->products[p].name.ptr = self->text + pname_off[p];
        self->products[p].category.ptr = self->text + pcat_off[c];
    }
    return self;
}

void gen_fake_destroy(gen_fake_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->text);
    free(*self_p);
    *self_p = NULL;
}

/* ---- Events ---- */

void gen_fake_next(const gen_fake_t *self, gen_rng_t *rng, int64_t now_us, ev_event_t *ev)
{
    int32_t user = (int32_t)gen_rng_below(rng, GEN_FAKE_USERS) + 1;
    const gen_product_t *p = &self->products[gen_rng_below(rng, S_PRODUCTS)];
    unsigned draw = gen_rng_below(rng, 1000);
    size_t t = 0;
    while (draw >= self->type_cut[t])
        t++;
    ev->user_id = user;
    ev->user_name = self->user_name[user];
    ev->user_email = self->user_email[user];
    ev->event_type = self->types[t];
    ev->product_id = p->id;
    ev->product_name = p->name;
    ev->product_category = p->category;
    ev->product_price = p->price_cents;
    ev->event_time = now_us;
}

void gen_fake_user(const gen_fake_t *self, int32_t user_id, ev_str_t *name, ev_str_t *email)
{
    assert(user_id >= 1 && user_id <= GEN_FAKE_USERS);
    *name = self->user_name[user_id];
    *email = self->user_email[user_id];
}

size_t gen_fake_product_count(const gen_fake_t *self)
{
    (void)self;
    return S_PRODUCTS;
}

const gen_product_t *gen_fake_product(const gen_fake_t *self, size_t i)
{
    assert(i < S_PRODUCTS);
    return &self->products[i];
}

size_t gen_fake_category_count(const gen_fake_t *self)
{
    (void)self;
    return S_COUNT(s_catalogue);
}

size_t gen_fake_type_count(const gen_fake_t *self)
{
    return self->ntypes;
}

ev_str_t gen_fake_type(const gen_fake_t *self, size_t i, unsigned *per_mille)
{
    assert(i < self->ntypes);
    if (per_mille)
        *per_mille = self->type_cut[i] - (i ? self->type_cut[i - 1] : 0);
    return self->types[i];
}
