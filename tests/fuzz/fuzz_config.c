/* Fuzz target "config": the settings parser. The input, split on NUL bytes,
 * gives values to evp_config_set for every setting and an argv to
 * evp_config_load. Nothing here may touch the file system: directory
 * settings go through evp_config_set only (which must not create them; each
 * is checked), and evp_config_load runs as a program that has no directory
 * setting, with no setting in its environment. Path settings, like
 * directories, are only stored. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evpipe/config.h"
#include "fuzz_check.h"
#include "fuzz_targets.h"

#define MAX_PIECES 64     /* argv entries from one input, at most */
#define MAX_SET_PIECES 16 /* pieces given to every setting, at most */

/* Where the loader writes the options. */
typedef struct {
    const char *count; /* --count N */
    bool follow;       /* --follow */
} s_args_t;

static s_args_t s_args;

static const evp_option_t s_options[] = {
    {"count", "N", offsetof(s_args_t, count), "a valued option"},
    {"follow", NULL, offsetof(s_args_t, follow), "a switch"},
    {NULL, NULL, 0, NULL},
};

static const evp_program_t s_program = {
    .program = "evpipe-fuzz",
    /* Bus, writer and tap have no directory setting: loading creates nothing. */
    .service = EVP_SVC_BUS | EVP_SVC_WRITER | EVP_SVC_TAP,
    .summary = "the settings fuzz target",
    .usage = "[FILE...]",
    .options = s_options,
    .values = &s_args,
};

static FILE *s_devnull; /* where the loader's messages go */

static void s_init(void)
{
    if (s_devnull)
        return;
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        FUZZ_CHECK(s->type != EVP_SET_DIR || !(s->services & s_program.service),
                   "%s: a directory setting of the loaded program (evp_config_load would create it)", s->env);
        unsetenv(s->env);
    }
    s_devnull = fopen("/dev/null", "w");
    FUZZ_CHECK(s_devnull, "/dev/null: %s", strerror(errno));
}

/* Bytes a setting occupies in evp_config_t. */
static size_t s_size(const evp_setting_t *s)
{
    size_t text = evp_setting_text_max(s);
    if (text)
        return text;
    switch (s->type) {
    case EVP_SET_INT:
        return s->max > INT32_MAX ? sizeof(int64_t) : sizeof(int);
    case EVP_SET_PORT:
        return sizeof(int);
    case EVP_SET_SECONDS:
    case EVP_SET_RATE:
        return sizeof(double);
    case EVP_SET_LEVEL:
        return sizeof(evp_log_level_t);
    default:
        break;
    }
    return 0;
}

/* Checks a setting's stored value is one the table allows. */
static void s_check_value(const evp_config_t *cfg, const evp_setting_t *s)
{
    const char *p = (const char *)cfg + s->offset;
    size_t text = evp_setting_text_max(s);
    if (text) {
        bool is_path = s->type == EVP_SET_DIR || s->type == EVP_SET_PATH;
        FUZZ_CHECK(memchr(p, '\0', text) && (*p || !is_path), "%s: empty path or not terminated", s->env);
        return;
    }
    switch (s->type) {
    case EVP_SET_INT: {
        int64_t x = s->max > INT32_MAX ? *(const int64_t *)p : *(const int *)p;
        FUZZ_CHECK(x >= s->min && x <= s->max, "%s: %lld outside %lld..%lld", s->env, (long long)x,
                   (long long)s->min, (long long)s->max);
        break;
    }
    case EVP_SET_PORT:
        FUZZ_CHECK(*(const int *)p >= 1 && *(const int *)p <= 65535, "%s: port %d", s->env, *(const int *)p);
        break;
    case EVP_SET_SECONDS:
    case EVP_SET_RATE: {
        double d = *(const double *)p;
        FUZZ_CHECK(isfinite(d) && (d >= 0 || (s->type == EVP_SET_RATE && d == -1)), "%s: %g", s->env, d);
        break;
    }
    case EVP_SET_LEVEL:
        FUZZ_CHECK(*(const evp_log_level_t *)p <= EVP_LOG_ERROR, "%s: level %d", s->env,
                   (int)*(const evp_log_level_t *)p);
        break;
    default:
        break;
    }
}

static void s_set(evp_config_t *cfg, const evp_setting_t *s, const char *v)
{
    char *p = (char *)cfg + s->offset;
    size_t size = s_size(s);
    char before[EVP_PATH_MAX];
    memcpy(before, p, size);
    struct stat st;
    bool is_path = s->type == EVP_SET_DIR || s->type == EVP_SET_PATH;
    bool existed = is_path && *v && stat(v, &st) == 0;
    char err[512];
    err[0] = '\0';
    int rc = evp_config_set(cfg, s, v, err, sizeof err);
    if (is_path)
        FUZZ_CHECK(existed || stat(v, &st) != 0, "%s=%s: evp_config_set made the path", s->env, v);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "%s: returned %d", s->env, rc);
        FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof err), "%s: refused without a reason", s->env);
        FUZZ_CHECK(memcmp(before, p, size) == 0, "%s: a refused value changed the setting", s->env);
        if (s->type == EVP_SET_SECRET && strlen(v) >= 8)
            FUZZ_CHECK(!strstr(err, v), "%s: a refusal shows the secret", s->env);
        return;
    }
    s_check_value(cfg, s);
    if (evp_setting_text_max(s)) {
        FUZZ_CHECK(strcmp(p, v) == 0, "%s: stored text differs from the value", s->env);
        return;
    }
    switch (s->type) {
    case EVP_SET_INT:
    case EVP_SET_PORT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        int64_t got = s->type == EVP_SET_INT && s->max > INT32_MAX ? *(const int64_t *)p : *(const int *)p;
        FUZZ_CHECK(*v && !*end && !errno && x == got, "%s=%s: stored %lld", s->env, v, (long long)got);
        break;
    }
    default:
        break;
    }
}

int fuzz_config_run(const uint8_t *data, size_t len)
{
    s_init();
    /* The pieces: a NUL-terminated copy, split on the NUL bytes. */
    char *copy = malloc(len + 1);
    FUZZ_CHECK(copy, "out of memory");
    memcpy(copy, data, len);
    copy[len] = '\0';
    char *argv[MAX_PIECES + 1];
    int argc = 0;
    argv[argc++] = "evpipe-fuzz";
    for (char *p = copy; p <= copy + len && argc < MAX_PIECES; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;

    /* Every piece as the value of every setting. */
    evp_config_t *cfg = malloc(sizeof *cfg);
    FUZZ_CHECK(cfg, "out of memory");
    evp_config_defaults(cfg);
    for (int a = 1; a < argc && a <= MAX_SET_PIECES; a++)
        for (size_t i = 0; i < evp_settings_count; i++)
            s_set(cfg, &evp_settings[i], argv[a]);

    /* The pieces as a command line. */
    s_args = (s_args_t){0};
    char *args[MAX_PIECES + 1];
    int nargs = -1;
    FILE *out = stdout, *errf = stderr;
    stdout = s_devnull, stderr = s_devnull;
    int rc = evp_config_load(cfg, &s_program, argc, argv, args, &nargs);
    stdout = out, stderr = errf;
    FUZZ_CHECK(rc >= -1 && rc <= 1, "evp_config_load returned %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(nargs >= 0 && nargs < argc, "%d arguments from argc %d", nargs, argc);
        for (int k = 0; k < nargs; k++) {
            bool from_argv = false;
            for (int a = 1; a < argc; a++)
                from_argv |= args[k] == argv[a];
            FUZZ_CHECK(from_argv, "argument %d is not an argv entry", k);
        }
        for (size_t i = 0; i < evp_settings_count; i++)
            s_check_value(cfg, &evp_settings[i]);
        FUZZ_CHECK(cfg->min_events <= cfg->max_events, "MIN_EVENTS %d > MAX_EVENTS %d", cfg->min_events,
                   cfg->max_events);
        bool inside = !s_args.count;
        for (int a = 1; a < argc && !inside; a++)
            inside = s_args.count >= argv[a] && s_args.count <= argv[a] + strlen(argv[a]);
        FUZZ_CHECK(inside, "--count: value points outside argv");
    }
    free(cfg);
    free(copy);
    return 0;
}
