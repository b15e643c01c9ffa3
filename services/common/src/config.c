/* The settings table and its loader (see config.h). */
#include "evpipe/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evpipe/event.h"
#include "evpipe/fsutil.h"
#include "evpipe/wire.h"

#define OFF(field) offsetof(evp_config_t, field)
#define B EVP_SVC_BUS
#define G EVP_SVC_GENERATOR
#define I EVP_SVC_INGEST
#define W EVP_SVC_WRITER
#define T EVP_SVC_TAP

/* ---- The table: one row per setting ---- */

const evp_setting_t evp_settings[] = {
    {"POSTGRES_HOST", "postgres-host", EVP_SET_TEXT, "127.0.0.1", OFF(postgres_host), 0, 0, G | I | W,
     "PostgreSQL host name or address"},
    {"POSTGRES_PORT", "postgres-port", EVP_SET_PORT, "5433", OFF(postgres_port), 0, 0, G | I | W,
     "PostgreSQL port"},
    {"POSTGRES_USER", "postgres-user", EVP_SET_TEXT, "evpipe", OFF(postgres_user), 0, 0, G | I | W,
     "PostgreSQL user"},
    {"POSTGRES_PASSWORD", "postgres-password", EVP_SET_SECRET, "change-me", OFF(postgres_password), 0, 0,
     G | I | W, "PostgreSQL password (never printed)"},
    {"POSTGRES_DB", "postgres-db", EVP_SET_TEXT, "events", OFF(postgres_db), 0, 0, G | I | W,
     "PostgreSQL database"},
    {"POSTGRES_CONNECT_TIMEOUT", "postgres-connect-timeout", EVP_SET_INT, "5", OFF(postgres_connect_timeout), 1,
     3600, G | I | W, "seconds to wait for a connection"},
    {"POSTGRES_SSLMODE", "postgres-sslmode", EVP_SET_CHOICE, "prefer", OFF(postgres_sslmode), 0, 0, G | I | W,
     "TLS to PostgreSQL, as libpq's sslmode (verify-full: encrypted, server certificate and name checked)"},
    {"POSTGRES_SSLROOTCERT", "postgres-sslrootcert", EVP_SET_TEXT, "", OFF(postgres_sslrootcert), 0, 0, G | I | W,
     "CA certificate(s) that sign PostgreSQL's certificate (libpq's sslrootcert); empty: libpq's default"},
    {"BUS_PUBLISH_ENDPOINT", "bus-publish-endpoint", EVP_SET_ENDPOINT, "tcp://127.0.0.1:5555",
     OFF(bus_publish_endpoint), 0, 0, B | G | I, "the bus side publishers connect to (XSUB)"},
    {"BUS_SUBSCRIBE_ENDPOINT", "bus-subscribe-endpoint", EVP_SET_ENDPOINT, "tcp://127.0.0.1:5556",
     OFF(bus_subscribe_endpoint), 0, 0, B | W, "the bus side writers subscribe to (XPUB, lossless)"},
    {"BUS_TAP_ENDPOINT", "bus-tap-endpoint", EVP_SET_ENDPOINT, "tcp://127.0.0.1:5557", OFF(bus_tap_endpoint), 0,
     0, B | T, "the bus side debug taps subscribe to (lossy: never slows writers)"},
    {"REPLAY_ENDPOINT", "replay-endpoint", EVP_SET_ENDPOINT, "tcp://127.0.0.1:5558", OFF(replay_endpoint), 0, 0,
     I | W, "where ingest answers repair requests from writers (ROUTER)"},
    {"BUS_HWM", "bus-hwm", EVP_SET_INT, "1000", OFF(bus_hwm), 100, 10000000, B | G | I | W,
     "high-water mark, in messages, of the lossless bus sockets"},
    {"TAP_HWM", "tap-hwm", EVP_SET_INT, "1000", OFF(tap_hwm), 10, 10000000, B | T,
     "high-water mark of the tap socket; beyond it taps lose messages"},
    {"TAP_REDACT", "tap-redact", EVP_SET_INT, "1", OFF(tap_redact), 0, 1, B,
     "1: taps get user_name and user_email as a keyed hash (equal values stay equal); 0: as published"},
    {"TAP_REDACT_KEY", "tap-redact-key", EVP_SET_SECRET, "", OFF(tap_redact_key), 0, 0, B,
     "the key of that hash (never printed); empty: a random key each time the bus starts"},
    {"MAX_MESSAGE_BYTES", "max-message-bytes", EVP_SET_INT, "65536", OFF(max_message_bytes), 1024, 16777216,
     EVP_SVC_ALL, "largest message a socket accepts (ZMQ_MAXMSGSIZE)"},
    {"BUS_STALL_TIMEOUT_MS", "stall-timeout-ms", EVP_SET_INT, "5000", OFF(bus_stall_timeout_ms), 100, 3600000, B,
     "a subscriber that has read nothing for this long while messages wait for it is disconnected"},
    {"BUS_HOLD_MAX_MB", "hold-max-mb", EVP_SET_INT, "256", OFF(bus_hold_max_mb), 1, 65536, B,
     "MiB of messages the bus holds for subscribers that push back; beyond it, publishers wait"},
    {"TCP_KEEPALIVE_S", "tcp-keepalive-s", EVP_SET_INT, "10", OFF(tcp_keepalive_s), 1, 7200, B | G | I | W | T,
     "a bus connection silent this long is probed; a peer gone is noticed 3 probes later"},
    {"PUBLISH_BATCH", "publish-batch", EVP_SET_INT, "256", OFF(publish_batch), 1, 65536, G | I,
     "events of one partition per bus message, at most; 1: one event a message"},
    {"PUBLISH_FORM", "publish-form", EVP_SET_CHOICE, "array", OFF(publish_form), 0, 0, G | I,
     "events on the bus as msgpack arrays (values in field order) or maps (keyed, twice the bytes; for receivers older than arrays)"},
    {"HEARTBEAT_MS", "heartbeat-ms", EVP_SET_INT, "1000", OFF(heartbeat_ms), 10, 600000, G | I,
     "how often publishers announce their latest seq per partition"},
    {"PARTITIONS", "partitions", EVP_SET_INT, "16", OFF(partitions), 1, EV_PARTITIONS_MAX, G | I | W | T,
     "partitions: user_id hashes to one, so a user's events stay in order"},
    {"ARCHIVE_DIR", "archive-dir", EVP_SET_DIR, "./var/archive", OFF(archive_dir), 0, 0, G | I,
     "where the generator archives every event as CSV (the write-ahead log)"},
    {"ARCHIVE_ROTATE_SECONDS", "archive-rotate-seconds", EVP_SET_INT, "300", OFF(archive_rotate_seconds), 1,
     86400, G, "a new archive file after this many seconds"},
    {"ARCHIVE_SYNC_MS", "archive-sync-ms", EVP_SET_INT, "1000", OFF(archive_sync_ms), 1, 600000, G,
     "the archive is synced to disk at least this often"},
    {"EVENT_TYPES", "event-types", EVP_SET_TYPES, "view,purchase", OFF(event_types), 0, 0, G,
     "event types the generator makes"},
    {"MIN_EVENTS", "min-events", EVP_SET_INT, "100", OFF(min_events), 1, 10000000, G,
     "fewest events in one burst (when GENERATOR_RATE is empty)"},
    {"MAX_EVENTS", "max-events", EVP_SET_INT, "1000", OFF(max_events), 1, 10000000, G,
     "most events in one burst (when GENERATOR_RATE is empty)"},
    {"SLEEP_INTERVAL", "sleep-interval", EVP_SET_SECONDS, "5", OFF(sleep_interval), 0, 0, G,
     "seconds between bursts (when GENERATOR_RATE is empty)"},
    {"GENERATOR_RATE", "rate", EVP_SET_RATE, "", OFF(generator_rate), 0, 0, G,
     "steady events/s, or max; empty: bursts like the old generator"},
    {"GENERATOR_SEED", "seed", EVP_SET_INT, "0", OFF(generator_seed), 0, INT64_MAX, G,
     "seed for reproducible events; 0: a new seed each run"},
    {"STATE_DIR", "state-dir", EVP_SET_DIR, "./var/state", OFF(state_dir), 0, 0, I,
     "ingest's ledger of finished files and its reject files"},
    {"INGEST_WATCH_DIR", "watch", EVP_SET_TEXT, "", OFF(ingest_watch_dir), 0, 0, I,
     "a folder to watch for new CSV files (empty: replay the arguments and exit)"},
    {"INGEST_SETTLE_MS", "settle-ms", EVP_SET_INT, "2000", OFF(ingest_settle_ms), 0, 3600000, I,
     "a watched file is read once it has not changed for this long"},
    {"REPAIR_MAX_MS", "repair-max-ms", EVP_SET_INT, "10000", OFF(repair_max_ms), 1, 600000, I,
     "one repair request is answered for this long at most; END says how far it got"},
    {"INGEST_MAX_LINE", "max-line", EVP_SET_INT, "65536", OFF(ingest_max_line), 256, 16777216, I,
     "longest CSV record in bytes; longer ones are rejected"},
    {"WRITER_BATCH_SIZE", "batch-size", EVP_SET_INT, "20000", OFF(writer_batch_size), 1, 1000000, W,
     "rows per COPY transaction at most"},
    {"WRITER_BATCH_MB", "batch-mb", EVP_SET_INT, "128", OFF(writer_batch_mb), 1, 65536, W,
     "megabytes a batch may hold (rows, their bodies, rejects) before it is committed"},
    {"WRITER_LINGER_MS", "linger-ms", EVP_SET_INT, "1", OFF(writer_linger_ms), 0, 60000, W,
     "a batch is committed at the latest this long after its first row"},
    {"WRITER_HOLDBACK_MAX", "holdback-max", EVP_SET_INT, "200000", OFF(writer_holdback_max), 100, 10000000, W,
     "events held back behind holes, at most"},
    {"WRITER_HOLDBACK_MB", "holdback-mb", EVP_SET_INT, "256", OFF(writer_holdback_mb), 1, 65536, W,
     "megabytes of event bodies held back behind holes, at most"},
    {"WRITER_SOURCES_MAX", "sources-max", EVP_SET_INT, "4096", OFF(writer_sources_max), 16, 1000000, W,
     "sources (streams) one partition may have in a writer at once; a new one beyond is refused"},
    {"WRITER_STREAM_IDLE_MS", "stream-idle-ms", EVP_SET_INT, "60000", OFF(writer_stream_idle_ms), 100, 86400000, W,
     "a source with everything committed and nothing heard for this long is forgotten (its checkpoint is read "
     "again when it comes back)"},
    {"WRITER_REPAIR_TIMEOUT_MS", "repair-timeout-ms", EVP_SET_INT, "5000", OFF(writer_repair_timeout_ms), 100,
     600000, W, "a repair request unanswered for this long is sent again"},
    {"WRITER_LEASE_MS", "lease-ms", EVP_SET_INT, "5000", OFF(writer_lease_ms), 2000, 600000, W,
     "a writer that has not renewed its lease for this long loses its partitions to the others"},
    {"EVENTS_PARTITION_INTERVAL", "partition-interval", EVP_SET_TEXT, "", OFF(events_partition_interval), 0, 0, W,
     "partition events by event_time in spans of this (1 day, 1 week, 1 month); empty: one plain table"},
    {"EVENTS_PARTITION_PREMAKE", "partition-premake", EVP_SET_INT, "4", OFF(events_partition_premake), 1, 1000, W,
     "partitions kept ready ahead of the current one"},
    {"EVENTS_RETENTION", "retention", EVP_SET_TEXT, "", OFF(events_retention), 0, 0, W,
     "partitions wholly older than this (90 days) are dropped; empty: keep every event"},
    {"CURVE", "curve", EVP_SET_INT, "0", OFF(curve), 0, 1, EVP_SVC_ALL,
     "1: the bus and the repair endpoint admit only CURVE clients with allowed keys"},
    {"CURVE_SERVER_KEY", "curve-server-key", EVP_SET_PATH, "./var/keys/bus.key_secret", OFF(curve_server_key), 0, 0,
     B | I, "the server key pair (made by evpipe-bus --keygen bus)"},
    {"CURVE_ALLOWED_DIR", "curve-allowed-dir", EVP_SET_PATH, "./var/keys/allowed", OFF(curve_allowed_dir), 0, 0,
     B | I, "folder of the public keys (*.key) of allowed clients"},
    {"CURVE_SERVER_PUBLIC_KEY", "curve-server-public-key", EVP_SET_PATH, "./var/keys/bus.key",
     OFF(curve_server_public_key), 0, 0, G | I | W | T, "the server's public key, for clients"},
    {"CURVE_CLIENT_KEY", "curve-client-key", EVP_SET_PATH, "./var/keys/client.key_secret", OFF(curve_client_key), 0,
     0, G | I | W | T, "this client's key pair"},
    {"LOG_LEVEL", "log-level", EVP_SET_LEVEL, "info", OFF(log_level), 0, 0, EVP_SVC_ALL,
     "debug, info, warn or error"},
    {"METRICS_PORT", "metrics-port", EVP_SET_INT, "0", OFF(metrics_port), 0, 65535, EVP_SVC_ALL,
     "HTTP port for /metrics and /healthz; 0: none"},
    {"METRICS_BIND", "metrics-bind", EVP_SET_ADDRESS, "127.0.0.1", OFF(metrics_bind), 0, 0, EVP_SVC_ALL,
     "address /metrics and /healthz listen on; 0.0.0.0: every interface (containers)"},
};
const size_t evp_settings_count = sizeof evp_settings / sizeof evp_settings[0];

/* ---- Parsing one value ---- */

static bool s_parse_int(const char *v, int64_t *out)
{
    if (!*v)
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return false;
    *out = x;
    return true;
}

static bool s_valid_endpoint(const char *v)
{
    if (strncmp(v, "ipc://", 6) == 0 || strncmp(v, "inproc://", 9) == 0)
        return v[strchr(v, ':') - v + 3] != '\0';
    if (strncmp(v, "tcp://", 6) != 0)
        return false;
    const char *colon = strrchr(v + 6, ':');
    if (!colon || colon == v + 6)
        return false;
    int64_t port;
    return s_parse_int(colon + 1, &port) && port >= 1 && port <= 65535;
}

static bool s_valid_types(const char *v)
{
    /* Every item must be a type, the last one too ("view," is refused). */
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        ev_str_t t = {p, (uint32_t)n};
        if (!ev_event_type_allowed(t))
            return false;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static bool s_valid_address(const char *v)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1;
}

/* The words an EVP_SET_CHOICE setting takes, comma-separated. */
static const char *s_choices(const evp_setting_t *s)
{
    if (strcmp(s->env, "POSTGRES_SSLMODE") == 0)
        return "disable,allow,prefer,require,verify-ca,verify-full";
    if (strcmp(s->env, "PUBLISH_FORM") == 0)
        return "array,map";
    return "";
}

/* v is one of the comma-separated words of choices. */
static bool s_valid_choice(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n && len == n && memcmp(p, v, n) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)

int evp_config_set(evp_config_t *cfg, const evp_setting_t *s, const char *v, char *err, size_t errlen)
{
    void *p = (char *)cfg + s->offset;
    int64_t x;
    /* The value is named in the message except for secrets. */
    const char *shown = s->type == EVP_SET_SECRET ? "(hidden)" : v;
    /* Settings held as text: the room evp_setting_text_max gives. */
    size_t room = evp_setting_text_max(s);
    if (room && strlen(v) >= room)
        return s->type == EVP_SET_PATH || s->type == EVP_SET_DIR
                   ? FAIL("%s=%s: an empty or too long path", s->env, shown)
                   : FAIL("%s: longer than %zu characters", s->env, room - 1);
    switch (s->type) {
    case EVP_SET_TEXT:
    case EVP_SET_SECRET:
    case EVP_SET_ENDPOINT:
    case EVP_SET_TYPES:
    case EVP_SET_ADDRESS:
    case EVP_SET_CHOICE:
        if (s->type == EVP_SET_ADDRESS && !s_valid_address(v))
            return FAIL("%s=%s: an IPv4 or IPv6 address was expected (0.0.0.0 for every interface)", s->env, shown);
        if (s->type == EVP_SET_CHOICE && !s_valid_choice(v, s_choices(s)))
            return FAIL("%s=%s: one of %s was expected", s->env, shown, s_choices(s));
        if (s->type == EVP_SET_ENDPOINT && !s_valid_endpoint(v))
            return FAIL("%s=%s: not an endpoint like tcp://host:port or ipc:///path", s->env, shown);
        if (s->type == EVP_SET_TYPES && !s_valid_types(v))
            return FAIL("%s=%s: a comma-separated list of view, purchase was expected", s->env, shown);
        strcpy(p, v);
        return 0;
    case EVP_SET_PATH:
    case EVP_SET_DIR:
        if (!*v)
            return FAIL("%s=%s: an empty or too long path", s->env, shown);
        strcpy(p, v);
        return 0;
    case EVP_SET_INT:
        if (!s_parse_int(v, &x) || x < s->min || x > s->max)
            return FAIL("%s=%s: an integer from %lld to %lld was expected", s->env, shown, (long long)s->min,
                        (long long)s->max);
        if (s->max > INT32_MAX)
            *(int64_t *)p = x;
        else
            *(int *)p = (int)x;
        return 0;
    case EVP_SET_PORT:
        if (!s_parse_int(v, &x) || x < 1 || x > 65535)
            return FAIL("%s=%s: a port number from 1 to 65535 was expected", s->env, shown);
        *(int *)p = (int)x;
        return 0;
    case EVP_SET_SECONDS:
    case EVP_SET_RATE: {
        if (s->type == EVP_SET_RATE && (!*v || strcmp(v, "max") == 0)) {
            *(double *)p = *v ? -1 : 0;
            return 0;
        }
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        bool ok = *v && !errno && !*end && isfinite(d) && d >= 0 && (s->type == EVP_SET_SECONDS || d > 0);
        if (!ok)
            return FAIL(s->type == EVP_SET_RATE ? "%s=%s: events per second (> 0), max, or empty was expected"
                                                : "%s=%s: a number of seconds (>= 0) was expected",
                        s->env, shown);
        *(double *)p = d;
        return 0;
    }
    case EVP_SET_LEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcmp(v, names[i]) == 0) {
                *(evp_log_level_t *)p = (evp_log_level_t)i;
                return 0;
            }
        return FAIL("%s=%s: one of debug, info, warn, error was expected", s->env, shown);
    }
    }
    return FAIL("%s: unknown setting type", s->env);
}

size_t evp_setting_text_max(const evp_setting_t *s)
{
    switch (s->type) {
    case EVP_SET_TEXT:
    case EVP_SET_SECRET:
    case EVP_SET_ENDPOINT:
    case EVP_SET_TYPES:
    case EVP_SET_ADDRESS:
    case EVP_SET_CHOICE:
        return EVP_TEXT_MAX;
    case EVP_SET_DIR:
    case EVP_SET_PATH:
        return EVP_PATH_MAX;
    case EVP_SET_INT:
    case EVP_SET_PORT:
    case EVP_SET_SECONDS:
    case EVP_SET_RATE:
    case EVP_SET_LEVEL:
        break;
    }
    return 0;
}

const evp_setting_t *evp_config_find(const char *env)
{
    for (size_t i = 0; i < evp_settings_count; i++)
        if (strcmp(evp_settings[i].env, env) == 0)
            return &evp_settings[i];
    return NULL;
}

void evp_config_defaults(evp_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char err[EVP_WHY_MAX];
    for (size_t i = 0; i < evp_settings_count; i++)
        if (evp_config_set(cfg, &evp_settings[i], evp_settings[i].def, err, sizeof err) != 0) {
            fprintf(stderr, "evpipe: built-in default is invalid: %s\n", err);
            abort();
        }
}

/* ---- Help ---- */

void evp_config_help(FILE *out, const evp_program_t *prog)
{
    fprintf(out, "Usage: %s [OPTIONS]%s%s\n%s\n", prog->program, prog->usage ? " " : "",
            prog->usage ? prog->usage : "", prog->summary);
    if (prog->options) {
        fprintf(out, "\nOptions:\n");
        for (const evp_option_t *o = prog->options; o->flag; o++) {
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
            fprintf(out, "  %-28s %s\n", left, o->help);
        }
        fprintf(out, "  %-28s %s\n", "--help", "print this help and exit");
    }
    fprintf(out, "\nSettings (environment variable, or the flag; flags win):\n");
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        if (!(s->services & prog->service))
            continue;
        char left[80];
        snprintf(left, sizeof left, "%s, --%s", s->env, s->flag);
        fprintf(out, "  %-46s %s [default: %s]\n", left, s->help,
                s->type == EVP_SET_SECRET ? "(hidden)" : *s->def ? s->def : "empty");
    }
}

/* ---- Loading ---- */

/* Creates the directories every DIR setting of this program names. */
static int s_make_dirs(evp_config_t *cfg, const evp_program_t *prog)
{
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        if (s->type != EVP_SET_DIR || !(s->services & prog->service))
            continue;
        const char *dir = (const char *)cfg + s->offset;
        char why[EVP_WHY_MAX];
        if (evp_mkdirs(dir, why, sizeof why) != 0) {
            fprintf(stderr, "%s: %s=%s: cannot be created: %s\n", prog->program, s->env, dir, why);
            return -1;
        }
    }
    return 0;
}

static const evp_setting_t *s_find_flag(const evp_program_t *prog, const char *flag, size_t len)
{
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        if ((s->services & prog->service) && strlen(s->flag) == len && strncmp(s->flag, flag, len) == 0)
            return s;
    }
    return NULL;
}

static const evp_option_t *s_find_option(const evp_program_t *prog, const char *flag, size_t len)
{
    for (const evp_option_t *o = prog->options; o && o->flag; o++)
        if (strlen(o->flag) == len && strncmp(o->flag, flag, len) == 0)
            return o;
    return NULL;
}

int evp_config_load(evp_config_t *cfg, const evp_program_t *prog, int argc, char **argv, char **args, int *nargs)
{
    char err[EVP_WHY_MAX];
    evp_config_defaults(cfg);
    for (size_t i = 0; i < evp_settings_count; i++) {
        const evp_setting_t *s = &evp_settings[i];
        const char *v = getenv(s->env);
        if (!v || !(s->services & prog->service))
            continue;
        if (evp_config_set(cfg, s, v, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog->program, err);
            return -1;
        }
    }
    *nargs = 0;
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (!only_args && strcmp(a, "--") == 0) {
                only_args = true;
                continue;
            }
            if (a[0] == '-' && a[1] != '\0' && !only_args) {
                fprintf(stderr, "%s: %s: unknown option (see --help)\n", prog->program, a);
                return -1;
            }
            args[(*nargs)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 4 && strncmp(name, "help", 4) == 0) {
            evp_config_help(stdout, prog);
            return 1;
        }
        const evp_setting_t *s = s_find_flag(prog, name, len);
        const evp_option_t *o = s ? NULL : s_find_option(prog, name, len);
        if (!s && !o) {
            fprintf(stderr, "%s: --%.*s: unknown option (see --help)\n", prog->program, (int)len, name);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (o && !o->arg) {
            if (value) {
                fprintf(stderr, "%s: --%s takes no value\n", prog->program, o->flag);
                return -1;
            }
            *(bool *)((char *)prog->values + o->offset) = true;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --%.*s needs a value\n", prog->program, (int)len, name);
                return -1;
            }
            value = argv[++i];
        }
        if (o) {
            *(const char **)((char *)prog->values + o->offset) = value;
        } else if (evp_config_set(cfg, s, value, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s (from --%s)\n", prog->program, err, s->flag);
            return -1;
        } else if (s->type == EVP_SET_SECRET) {
            /* Copied: now wipe it from argv, so ps and /proc/PID/cmdline
             * do not show it. */
            memset((char *)value, 'x', strlen(value));
        }
    }
    if (cfg->min_events > cfg->max_events) {
        fprintf(stderr, "%s: MIN_EVENTS=%d: larger than MAX_EVENTS=%d\n", prog->program, cfg->min_events,
                cfg->max_events);
        return -1;
    }
    return s_make_dirs(cfg, prog);
}
