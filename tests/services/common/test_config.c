/* Unit tests of the settings table and its loader: defaults, environment,
 * flags, refusals that name the setting (and never show the password),
 * --help, positional arguments, and .env kept equal to the table. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evpipe/config.h"

/* ---- Fixture: a clean environment and a temporary working folder ---- */

static char s_dir[256]; /* the test's working folder */

static void s_unset_all(void)
{
    for (size_t i = 0; i < evp_settings_count; i++)
        unsetenv(evp_settings[i].env);
}

static void s_setup(void)
{
    s_unset_all();
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/evpipe-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    cr_assert_eq(chdir(s_dir), 0);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void s_teardown(void)
{
    if (chdir("/") == 0 && s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = s_setup, .fini = s_teardown);

/* ---- Programs as the services declare them ---- */

/* Where the loader writes the test program's own options. */
typedef struct {
    bool follow;       /* --follow */
    const char *count; /* --count N */
} s_ingest_args_t;

static s_ingest_args_t s_ingest_args;

static const evp_option_t s_ingest_options[] = {
    {"follow", NULL, offsetof(s_ingest_args_t, follow), "keep watching"},
    {"count", "N", offsetof(s_ingest_args_t, count), "stop after N files"},
    {NULL, NULL, 0, NULL},
};

static const evp_program_t s_writer = {"evpipe-writer", EVP_SVC_WRITER, "writes events", NULL, NULL, NULL};
static const evp_program_t s_generator = {"evpipe-generator", EVP_SVC_GENERATOR, "makes events", NULL, NULL, NULL};
static const evp_program_t s_bus = {"evpipe-bus", EVP_SVC_BUS, "the broker", NULL, NULL, NULL};
static const evp_program_t s_tap = {"evpipe-tap", EVP_SVC_TAP, "prints traffic", NULL, NULL, NULL};
static const evp_program_t s_ingest = {"evpipe-ingest", EVP_SVC_INGEST, "replays CSV files", "[FILE...]",
                                       s_ingest_options, &s_ingest_args};

/* ---- Running the loader with stdout and stderr captured ---- */

typedef struct {
    int rc;          /* what evp_config_load returned */
    evp_config_t cfg;/* what it filled */
    char *args[16];  /* positional arguments */
    int nargs;       /* how many */
    char *out;       /* what it printed on stdout */
    char *err;       /* ... and on stderr */
    char *argv[32];  /* writable copies of the arguments, as a real argv is */
} load_t;

static char *s_slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    char *s = calloc(1, (size_t)n + 1);
    rewind(f);
    if (n)
        cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* Loads with argv (NULL-terminated, without the program name). */
static void s_load(load_t *l, const evp_program_t *prog, const char *const *argv)
{
    memset(l, 0, sizeof *l);
    char *av[32];
    int ac = 0;
    av[ac++] = (char *)prog->program;
    for (; argv && argv[ac - 1]; ac++) {
        cr_assert_lt(ac, 31);
        av[ac] = l->argv[ac] = strdup(argv[ac - 1]);
    }
    av[ac] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    cr_assert(out && err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    l->rc = evp_config_load(&l->cfg, prog, ac, av, l->args, &l->nargs);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    fseek(out, 0, SEEK_END);
    fseek(err, 0, SEEK_END);
    l->out = s_slurp(out);
    l->err = s_slurp(err);
}

static void s_load_free(load_t *l)
{
    for (int i = 0; i < 32; i++)
        free(l->argv[i]);
    free(l->out);
    free(l->err);
}

/* Asserts that loading stopped with one line on stderr naming `name`. */
static void s_assert_refused(const load_t *l, const char *name, const char *what)
{
    cr_assert_eq(l->rc, -1, "%s was accepted", what);
    size_t n = strlen(l->err);
    cr_assert_gt(n, 0, "%s: nothing on stderr", what);
    cr_assert_eq(l->err[n - 1], '\n', "%s: the message ends its line", what);
    cr_assert_eq(strchr(l->err, '\n'), l->err + n - 1, "%s: one line, got: %s", what, l->err);
    cr_assert(strstr(l->err, name) != NULL, "%s: '%s' does not name %s", what, l->err, name);
    cr_assert_str_empty(l->out, "%s: nothing on stdout", what);
}

static const char *const s_no_args[] = {NULL};

/* ---- Defaults ---- */

Test(config, defaults_load)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    cr_assert_str_eq(cfg.postgres_host, "127.0.0.1");
    cr_assert_eq(cfg.postgres_port, 5433);
    cr_assert_str_eq(cfg.postgres_user, "evpipe");
    cr_assert_str_eq(cfg.postgres_password, "change-me");
    cr_assert_str_eq(cfg.postgres_db, "events");
    cr_assert_eq(cfg.postgres_connect_timeout, 5);
    cr_assert_str_eq(cfg.bus_publish_endpoint, "tcp://127.0.0.1:5555");
    cr_assert_str_eq(cfg.bus_subscribe_endpoint, "tcp://127.0.0.1:5556");
    cr_assert_str_eq(cfg.bus_tap_endpoint, "tcp://127.0.0.1:5557");
    cr_assert_str_eq(cfg.replay_endpoint, "tcp://127.0.0.1:5558");
    cr_assert_eq(cfg.partitions, 16);
    cr_assert_eq(cfg.heartbeat_ms, 1000);
    cr_assert_eq(cfg.bus_hwm, 1000);
    cr_assert_eq(cfg.tap_hwm, 1000);
    cr_assert_eq(cfg.max_message_bytes, 65536);
    cr_assert_str_eq(cfg.archive_dir, "./var/archive");
    cr_assert_eq(cfg.archive_rotate_seconds, 300);
    cr_assert_eq(cfg.archive_sync_ms, 1000);
    cr_assert_str_eq(cfg.event_types, "view,purchase");
    cr_assert_eq(cfg.min_events, 100);
    cr_assert_eq(cfg.max_events, 1000);
    cr_assert_float_eq(cfg.sleep_interval, 5.0, 1e-9);
    cr_assert_float_eq(cfg.generator_rate, 0.0, 1e-9, "empty rate: bursts");
    cr_assert_eq(cfg.generator_seed, 0);
    cr_assert_str_eq(cfg.state_dir, "./var/state");
    cr_assert_str_eq(cfg.ingest_watch_dir, "");
    cr_assert_eq(cfg.ingest_settle_ms, 2000);
    cr_assert_eq(cfg.ingest_max_line, 65536);
    cr_assert_eq(cfg.writer_batch_size, 20000);
    cr_assert_eq(cfg.writer_linger_ms, 1);
    cr_assert_eq(cfg.writer_holdback_max, 200000);
    cr_assert_eq(cfg.writer_repair_timeout_ms, 5000);
    cr_assert_eq(cfg.log_level, EVP_LOG_INFO);
    cr_assert_eq(cfg.metrics_port, 0);
}

Test(config, loading_with_nothing_set_gives_the_defaults_and_makes_the_folders)
{
    const evp_program_t *progs[] = {&s_writer, &s_generator, &s_bus, &s_tap, &s_ingest};
    evp_config_t defaults;
    evp_config_defaults(&defaults);
    for (size_t i = 0; i < 5; i++) {
        load_t l;
        s_load(&l, progs[i], s_no_args);
        cr_assert_eq(l.rc, 0, "%s: %s", progs[i]->program, l.err);
        cr_assert_str_empty(l.err, "%s", progs[i]->program);
        cr_assert_eq(l.nargs, 0);
        cr_assert_arr_eq(&l.cfg, &defaults, sizeof defaults, "%s", progs[i]->program);
        s_load_free(&l);
    }
    struct stat st;
    cr_assert(stat("var/archive", &st) == 0 && S_ISDIR(st.st_mode), "ARCHIVE_DIR was made");
    cr_assert(stat("var/state", &st) == 0 && S_ISDIR(st.st_mode), "STATE_DIR was made");
}

Test(config, a_folder_is_made_only_for_a_program_that_uses_it)
{
    load_t l;
    s_load(&l, &s_writer, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    struct stat st;
    cr_assert_neq(stat("var", &st), 0, "the writer has no folders to make");
    s_load_free(&l);
}

/* ---- Environment and flags ---- */

Test(config, environment_overrides_defaults)
{
    setenv("WRITER_BATCH_SIZE", "7", 1);
    setenv("POSTGRES_HOST", "db.example", 1);
    setenv("POSTGRES_PORT", "6543", 1);
    setenv("POSTGRES_PASSWORD", "s3cret", 1);
    setenv("PARTITIONS", "1024", 1);
    setenv("LOG_LEVEL", "debug", 1);
    setenv("REPLAY_ENDPOINT", "ipc:///run/evpipe-replay", 1);
    setenv("BUS_SUBSCRIBE_ENDPOINT", "tcp://[::1]:7000", 1);
    load_t l;
    s_load(&l, &s_writer, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.cfg.writer_batch_size, 7);
    cr_assert_str_eq(l.cfg.postgres_host, "db.example");
    cr_assert_eq(l.cfg.postgres_port, 6543);
    cr_assert_str_eq(l.cfg.postgres_password, "s3cret");
    cr_assert_eq(l.cfg.partitions, 1024);
    cr_assert_eq(l.cfg.log_level, EVP_LOG_DEBUG);
    cr_assert_str_eq(l.cfg.replay_endpoint, "ipc:///run/evpipe-replay");
    cr_assert_str_eq(l.cfg.bus_subscribe_endpoint, "tcp://[::1]:7000");
    cr_assert_eq(l.cfg.writer_linger_ms, 1, "what is not set keeps its default");
    s_load_free(&l);
}

Test(config, environment_sets_the_generator_rate_seed_and_types)
{
    setenv("GENERATOR_RATE", "max", 1);
    setenv("GENERATOR_SEED", "9007199254740993", 1);
    setenv("EVENT_TYPES", "purchase", 1);
    setenv("SLEEP_INTERVAL", "0.25", 1);
    setenv("ARCHIVE_DIR", "deep/er/archive", 1);
    load_t l;
    s_load(&l, &s_generator, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_lt(l.cfg.generator_rate, 0, "max: as fast as it can");
    cr_assert_eq(l.cfg.generator_seed, 9007199254740993LL);
    cr_assert_str_eq(l.cfg.event_types, "purchase");
    cr_assert_float_eq(l.cfg.sleep_interval, 0.25, 1e-9);
    struct stat st;
    cr_assert(stat("deep/er/archive", &st) == 0 && S_ISDIR(st.st_mode), "made with its parents");
    s_load_free(&l);

    setenv("GENERATOR_RATE", "250.5", 1);
    s_load(&l, &s_generator, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_float_eq(l.cfg.generator_rate, 250.5, 1e-9);
    s_load_free(&l);

    setenv("GENERATOR_RATE", "", 1);
    s_load(&l, &s_generator, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_float_eq(l.cfg.generator_rate, 0.0, 1e-9, "empty: bursts");
    s_load_free(&l);
}

Test(config, settings_of_other_programs_are_neither_read_nor_checked)
{
    setenv("WRITER_BATCH_SIZE", "abc", 1);
    setenv("EVENT_TYPES", "click", 1);
    load_t l;
    s_load(&l, &s_tap, s_no_args);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.cfg.writer_batch_size, 20000);
    s_load_free(&l);
}

Test(config, flags_override_environment)
{
    setenv("WRITER_BATCH_SIZE", "5", 1);
    load_t l;
    s_load(&l, &s_writer, (const char *const[]){"--batch-size", "7", NULL});
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.cfg.writer_batch_size, 7);
    s_load_free(&l);

    s_load(&l, &s_writer, (const char *const[]){"--batch-size=7", NULL});
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.cfg.writer_batch_size, 7);
    s_load_free(&l);

    s_load(&l, &s_writer, s_no_args);
    cr_assert_eq(l.cfg.writer_batch_size, 5, "the environment, without the flag");
    s_load_free(&l);
}

Test(config, the_last_flag_wins_and_values_may_hold_equals_signs)
{
    load_t l;
    s_load(&l, &s_writer,
           (const char *const[]){"--linger-ms", "1", "--linger-ms=2", "--postgres-password=a=b", "--log-level",
                                 "warn", NULL});
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.cfg.writer_linger_ms, 2);
    cr_assert_str_eq(l.cfg.postgres_password, "a=b");
    cr_assert_eq(l.cfg.log_level, EVP_LOG_WARN);
    s_load_free(&l);
}

Test(config, a_password_given_as_a_flag_is_wiped_from_argv)
{
    load_t l;
    s_load(&l, &s_writer, (const char *const[]){"--postgres-password", "hunter2", "--postgres-password=sesame", NULL});
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_str_eq(l.cfg.postgres_password, "sesame");
    cr_assert_str_eq(l.argv[2], "xxxxxxx", "argv still shows %s", l.argv[2]);
    cr_assert_null(strstr(l.argv[3], "sesame"), "argv still shows %s", l.argv[3]);
    s_load_free(&l);
}

/* ---- Refusals ---- */

typedef struct {
    const evp_program_t *prog;
    const char *env;
    const char *value;
} bad_env_t;

Test(config, bad_values_stop_with_one_line_naming_the_setting)
{
    const bad_env_t cases[] = {
        {&s_writer, "POSTGRES_PORT", "abc"},
        {&s_writer, "POSTGRES_PORT", "0"},
        {&s_writer, "POSTGRES_PORT", "70000"},
        {&s_writer, "PARTITIONS", "0"},
        {&s_writer, "PARTITIONS", "5000"},
        {&s_writer, "PARTITIONS", "-1"},
        {&s_writer, "WRITER_BATCH_SIZE", ""},
        {&s_writer, "WRITER_BATCH_SIZE", "12abc"},
        {&s_writer, "WRITER_BATCH_SIZE", "99999999999999999999"},
        {&s_writer, "POSTGRES_CONNECT_TIMEOUT", "0"},
        {&s_generator, "GENERATOR_RATE", "-1"},
        {&s_generator, "GENERATOR_RATE", "0"},
        {&s_generator, "GENERATOR_RATE", "fast"},
        {&s_generator, "GENERATOR_RATE", "nan"},
        {&s_generator, "SLEEP_INTERVAL", "-1"},
        {&s_generator, "SLEEP_INTERVAL", "inf"},
        {&s_generator, "EVENT_TYPES", "click"},
        {&s_generator, "EVENT_TYPES", "view,click"},
        {&s_generator, "EVENT_TYPES", "view,"},
        {&s_generator, "EVENT_TYPES", ""},
        {&s_generator, "GENERATOR_SEED", "-1"},
        {&s_tap, "LOG_LEVEL", "loud"},
        {&s_tap, "LOG_LEVEL", "INFO"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "tcp://127.0.0.1"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "tcp://127.0.0.1:"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "tcp://:5555"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "tcp://127.0.0.1:99999"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "127.0.0.1:5555"},
        {&s_generator, "BUS_PUBLISH_ENDPOINT", "ipc://"},
        {&s_bus, "TAP_HWM", "1"},
        {&s_ingest, "INGEST_MAX_LINE", "100"},
        {&s_ingest, "STATE_DIR", ""},
        {&s_tap, "METRICS_PORT", "65536"},
        {&s_tap, "METRICS_BIND", "localhost"},
        {&s_tap, "METRICS_BIND", "0.0.0.0:9100"},
        {&s_tap, "METRICS_BIND", ""},
        {&s_writer, "POSTGRES_SSLMODE", "verify"},
        {&s_writer, "POSTGRES_SSLMODE", "verify-full,disable"},
        {&s_writer, "POSTGRES_SSLMODE", ""},
        {&s_ingest, "POSTGRES_SSLMODE", "REQUIRE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_unset_all();
        setenv(cases[i].env, cases[i].value, 1);
        char what[128];
        snprintf(what, sizeof what, "%s=%s for %s", cases[i].env, cases[i].value, cases[i].prog->program);
        load_t l;
        s_load(&l, cases[i].prog, s_no_args);
        s_assert_refused(&l, cases[i].env, what);
        cr_assert(strncmp(l.err, cases[i].prog->program, strlen(cases[i].prog->program)) == 0,
                  "%s: the line starts with the program: %s", what, l.err);
        s_load_free(&l);
    }
}

Test(config, bad_flag_values_stop_naming_the_setting_and_the_flag)
{
    load_t l;
    s_load(&l, &s_writer, (const char *const[]){"--partitions", "5000", NULL});
    s_assert_refused(&l, "PARTITIONS", "--partitions 5000");
    cr_assert(strstr(l.err, "--partitions") != NULL, "%s", l.err);
    s_load_free(&l);

    s_load(&l, &s_writer, (const char *const[]){"--postgres-port=abc", NULL});
    s_assert_refused(&l, "POSTGRES_PORT", "--postgres-port=abc");
    s_load_free(&l);
}

Test(config, an_archive_dir_that_cannot_be_created_is_named)
{
    FILE *f = fopen("plain-file", "w");
    cr_assert_not_null(f);
    fclose(f);
    setenv("ARCHIVE_DIR", "plain-file/archive", 1);
    load_t l;
    s_load(&l, &s_generator, s_no_args);
    s_assert_refused(&l, "ARCHIVE_DIR", "ARCHIVE_DIR under a regular file");
    s_load_free(&l);

    setenv("ARCHIVE_DIR", "plain-file", 1);
    s_load(&l, &s_generator, s_no_args);
    s_assert_refused(&l, "ARCHIVE_DIR", "ARCHIVE_DIR that is a regular file");
    s_load_free(&l);
}

Test(config, min_events_above_max_events_is_refused)
{
    setenv("MIN_EVENTS", "500", 1);
    setenv("MAX_EVENTS", "400", 1);
    load_t l;
    s_load(&l, &s_generator, s_no_args);
    s_assert_refused(&l, "MIN_EVENTS", "MIN_EVENTS > MAX_EVENTS");
    cr_assert(strstr(l.err, "MAX_EVENTS") != NULL, "%s", l.err);
    s_load_free(&l);
}

Test(config, the_password_is_never_printed)
{
    /* The only way a password is refused: too long. */
    char secret[400];
    memset(secret, 'S', sizeof secret - 1);
    secret[sizeof secret - 1] = '\0';
    memcpy(secret, "TOPSECRET", 9);
    setenv("POSTGRES_PASSWORD", secret, 1);
    load_t l;
    s_load(&l, &s_writer, s_no_args);
    s_assert_refused(&l, "POSTGRES_PASSWORD", "a password of 399 characters");
    cr_assert_null(strstr(l.err, "TOPSECRET"), "the value was printed: %s", l.err);
    cr_assert_null(strstr(l.err, "SSSS"), "part of the value was printed: %s", l.err);
    s_load_free(&l);

    unsetenv("POSTGRES_PASSWORD");
    char flag[450];
    snprintf(flag, sizeof flag, "--postgres-password=%s", secret);
    s_load(&l, &s_writer, (const char *const[]){flag, NULL});
    s_assert_refused(&l, "POSTGRES_PASSWORD", "a password flag of 399 characters");
    cr_assert_null(strstr(l.err, "TOPSECRET"), "the value was printed: %s", l.err);
    s_load_free(&l);

    /* Nor when another setting is refused. */
    setenv("POSTGRES_PASSWORD", "TOPSECRET", 1);
    setenv("POSTGRES_PORT", "abc", 1);
    s_load(&l, &s_writer, s_no_args);
    s_assert_refused(&l, "POSTGRES_PORT", "a bad port");
    cr_assert_null(strstr(l.err, "TOPSECRET"));
    s_load_free(&l);
}

Test(config, set_reports_the_error_without_the_secret)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    const evp_setting_t *pw = evp_config_find("POSTGRES_PASSWORD");
    cr_assert_not_null(pw);
    cr_assert_eq(pw->type, EVP_SET_SECRET);
    char big[300], err[256] = "";
    memset(big, 'Q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(evp_config_set(&cfg, pw, big, err, sizeof err), -1);
    cr_assert(strstr(err, "POSTGRES_PASSWORD") != NULL, "%s", err);
    cr_assert_null(strstr(err, "QQQ"), "%s", err);
    cr_assert_str_eq(cfg.postgres_password, "change-me", "a refused value changes nothing");

    const evp_setting_t *port = evp_config_find("POSTGRES_PORT");
    cr_assert_eq(evp_config_set(&cfg, port, "12x", err, sizeof err), -1);
    cr_assert(strstr(err, "POSTGRES_PORT") && strstr(err, "12x"), "a value that is not secret is shown: %s", err);
    cr_assert_eq(evp_config_set(&cfg, port, "1", err, sizeof err), 0);
    cr_assert_eq(cfg.postgres_port, 1);
    cr_assert_null(evp_config_find("NO_SUCH_SETTING"));
}

Test(config, text_and_paths_fill_their_fields_and_one_character_more_is_refused)
{
    evp_config_t cfg;
    evp_config_defaults(&cfg);
    static const char *const names[] = {"POSTGRES_HOST", "INGEST_WATCH_DIR", "STATE_DIR", "POSTGRES_SSLROOTCERT"};
    char v[EVP_PATH_MAX + 2], err[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const evp_setting_t *s = evp_config_find(names[i]);
        cr_assert_not_null(s, "%s", names[i]);
        size_t room = evp_setting_text_max(s);
        cr_assert(room > 0 && room <= EVP_PATH_MAX, "%s", names[i]);
        memset(v, 'd', room - 1);
        v[room - 1] = '\0';
        cr_assert_eq(evp_config_set(&cfg, s, v, err, sizeof err), 0, "%s of %zu: %s", names[i], room - 1, err);
        cr_assert_eq(strlen((const char *)&cfg + s->offset), room - 1, "%s", names[i]);
        v[room - 1] = 'd', v[room] = '\0';
        cr_assert_eq(evp_config_set(&cfg, s, v, err, sizeof err), -1, "%s of %zu", names[i], room);
        cr_assert(strstr(err, names[i]) != NULL, "%s", err);
    }
    cr_assert_eq(evp_setting_text_max(evp_config_find("POSTGRES_PORT")), 0, "a number is not text");
}

/* ---- Options and arguments ---- */

Test(config, unknown_options_are_refused)
{
    static const char *const bad[][3] = {
        {"--no-such-thing", NULL, NULL},
        {"--no-such-thing=1", NULL, NULL},
        {"-x", NULL, NULL},
        {"--rate", "5", NULL}, /* the generator's, not the writer's */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load_t l;
        s_load(&l, &s_writer, bad[i]);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(bad[i][0], "="), bad[i][0]);
        s_assert_refused(&l, name, bad[i][0]);
        s_load_free(&l);
    }
}

Test(config, a_flag_without_its_value_is_refused)
{
    load_t l;
    s_load(&l, &s_writer, (const char *const[]){"--batch-size", NULL});
    s_assert_refused(&l, "--batch-size", "--batch-size at the end");
    s_load_free(&l);
    s_load(&l, &s_ingest, (const char *const[]){"--follow=yes", NULL});
    s_assert_refused(&l, "--follow", "a switch with a value");
    s_load_free(&l);
}

Test(config, positional_arguments_and_options_are_returned)
{
    s_ingest_args = (s_ingest_args_t){0};
    load_t l;
    s_load(&l, &s_ingest,
           (const char *const[]){"a.csv", "--count", "5", "b.csv", "--follow", "--settle-ms=10", "-", "--",
                                 "--c.csv", "-d", NULL});
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.nargs, 5);
    cr_assert_str_eq(l.args[0], "a.csv");
    cr_assert_str_eq(l.args[1], "b.csv");
    cr_assert_str_eq(l.args[2], "-", "a lone dash is an argument (standard input)");
    cr_assert_str_eq(l.args[3], "--c.csv", "after --, everything is an argument");
    cr_assert_str_eq(l.args[4], "-d");
    cr_assert_str_eq(s_ingest_args.count, "5", "written at the option's offset");
    cr_assert(s_ingest_args.follow, "a switch sets its bool");
    cr_assert_eq(l.cfg.ingest_settle_ms, 10);
    s_load_free(&l);
}

/* ---- Help ---- */

Test(config, help_lists_every_setting_of_the_program_with_its_default)
{
    const evp_program_t *progs[] = {&s_writer, &s_generator, &s_bus, &s_tap, &s_ingest};
    for (size_t p = 0; p < 5; p++) {
        load_t l;
        setenv("POSTGRES_PASSWORD", "env-secret", 1);
        s_load(&l, progs[p], (const char *const[]){"--help", NULL});
        cr_assert_eq(l.rc, 1, "%s --help: %s", progs[p]->program, l.err);
        cr_assert_str_empty(l.err);
        cr_assert(strstr(l.out, progs[p]->program) != NULL);
        cr_assert(strstr(l.out, progs[p]->summary) != NULL);
        for (size_t i = 0; i < evp_settings_count; i++) {
            const evp_setting_t *s = &evp_settings[i];
            /* The setting's line: "  ENV, --flag ... [default: X]". */
            char head[128];
            snprintf(head, sizeof head, "  %s, --%s ", s->env, s->flag);
            const char *line = strstr(l.out, head);
            if (!(s->services & progs[p]->service)) {
                cr_assert_null(line, "%s lists %s, not its setting", progs[p]->program, s->env);
                continue;
            }
            cr_assert_not_null(line, "%s --help does not list %s:\n%s", progs[p]->program, s->env, l.out);
            size_t len = strcspn(line, "\n");
            char want[300];
            snprintf(want, sizeof want, "[default: %s]",
                     s->type == EVP_SET_SECRET ? "(hidden)" : *s->def ? s->def : "empty");
            char *copy = strndup(line, len);
            cr_assert(strstr(copy, want) != NULL, "%s: '%s' lacks %s", progs[p]->program, copy, want);
            cr_assert(strstr(copy, s->help) != NULL, "%s: '%s' lacks its help", progs[p]->program, copy);
            free(copy);
        }
        cr_assert_null(strstr(l.out, "change-me"), "the default password is hidden");
        cr_assert_null(strstr(l.out, "env-secret"), "the password is hidden");
        s_load_free(&l);
    }
}

Test(config, help_lists_the_program_options_and_usage)
{
    load_t l;
    s_load(&l, &s_ingest, (const char *const[]){"--help", NULL});
    cr_assert_eq(l.rc, 1);
    cr_assert(strstr(l.out, "Usage: evpipe-ingest [OPTIONS] [FILE...]") != NULL, "%s", l.out);
    cr_assert(strstr(l.out, "--count N") != NULL, "%s", l.out);
    cr_assert(strstr(l.out, "stop after N files") != NULL);
    cr_assert(strstr(l.out, "--follow") != NULL);
    cr_assert(strstr(l.out, "--help") != NULL);
    s_load_free(&l);
}

/* ---- The table itself ---- */

Test(config, the_table_has_unique_names_valid_defaults_and_help)
{
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        cr_assert(s->env && *s->env && s->flag && *s->flag && s->help && *s->help && s->def, "row %zu", i);
        cr_assert_neq(s->services, 0, "%s is used by no program", s->env);
        cr_assert_str_neq(s->flag, "help", "%s takes --help", s->env);
        cr_assert_eq(evp_config_find(s->env), s);
        for (size_t j = i + 1; j < evp_settings_count; j++) {
            cr_assert_str_neq(s->env, evp_settings[j].env);
            cr_assert(strcmp(s->flag, evp_settings[j].flag) != 0, "--%s is used twice", s->flag);
        }
        evp_config_t cfg;
        char err[256];
        memset(&cfg, 0, sizeof cfg);
        cr_assert_eq(evp_config_set(&cfg, s, s->def, err, sizeof err), 0, "%s", err);
    }
}

/* ---- .env and the table ---- */

Test(config, dot_env_holds_every_setting_with_the_table_default)
{
    const char *src = getenv("EVPIPE_SOURCE_DIR");
    if (!src || !*src)
        src = EVPIPE_TEST_SOURCE_DIR;
    char path[1024];
    snprintf(path, sizeof path, "%s/.env", src);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s (EVPIPE_SOURCE_DIR names the repository)", path);
    int seen[128] = {0};
    cr_assert_lt(evp_settings_count, 128);
    char line[2048];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        cr_assert_not_null(eq, ".env line %d is not KEY=VALUE: %s", lineno, line);
        *eq = '\0';
        const char *key = line, *value = eq + 1;
        const evp_setting_t *s = evp_config_find(key);
        if (!s)
            continue; /* docker compose may read more than the services do */
        size_t idx = (size_t)(s - evp_settings);
        cr_assert_eq(seen[idx], 0, ".env sets %s twice (line %d)", key, lineno);
        seen[idx] = lineno;
        if (s->type == EVP_SET_SECRET && *s->def)
            cr_assert_str_not_empty(value, ".env line %d: %s must hold a value", lineno, key);
        else
            cr_assert_str_eq(value, s->def, ".env line %d: %s=%s, the table's default is '%s'", lineno, key, value,
                             s->def);
    }
    fclose(f);
    for (size_t i = 0; i < evp_settings_count; i++)
        cr_assert_neq(seen[i], 0, ".env does not hold %s (default '%s')", evp_settings[i].env,
                      evp_settings[i].def);
}
