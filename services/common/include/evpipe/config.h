/* Settings of every evpipe service: one table (config.c) gives each setting
 * its environment name, flag, default (the same as .env), limits and help.
 * The same table loads the environment, applies flags and prints --help. */
#ifndef EVPIPE_CONFIG_H
#define EVPIPE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EVP_TEXT_MAX 256
#define EVP_PATH_MAX 1024
/* Bytes of every error buffer, char why[EVP_WHY_MAX]: what failed and why,
 * filled by functions taking (char *why, size_t whylen). One size, so a
 * reason handed up through several callers is not cut again on the way. */
#define EVP_WHY_MAX 1024

/* Which services use a setting. */
enum {
    EVP_SVC_BUS = 1 << 0,
    EVP_SVC_GENERATOR = 1 << 1,
    EVP_SVC_INGEST = 1 << 2,
    EVP_SVC_WRITER = 1 << 3,
    EVP_SVC_TAP = 1 << 4,
    EVP_SVC_ALL = 0x1f,
};

typedef enum { EVP_LOG_DEBUG, EVP_LOG_INFO, EVP_LOG_WARN, EVP_LOG_ERROR } evp_log_level_t;

typedef struct {
    /* PostgreSQL */
    char postgres_host[EVP_TEXT_MAX];
    int postgres_port;
    char postgres_user[EVP_TEXT_MAX];
    char postgres_password[EVP_TEXT_MAX];
    char postgres_db[EVP_TEXT_MAX];
    int postgres_connect_timeout;
    char postgres_sslmode[EVP_TEXT_MAX];     /* libpq's sslmode */
    char postgres_sslrootcert[EVP_TEXT_MAX]; /* libpq's sslrootcert; empty: libpq's default */
    /* Bus */
    char bus_publish_endpoint[EVP_TEXT_MAX];
    char bus_subscribe_endpoint[EVP_TEXT_MAX];
    char bus_tap_endpoint[EVP_TEXT_MAX];
    char replay_endpoint[EVP_TEXT_MAX];
    int bus_hwm;
    int tap_hwm;
    int tap_redact;                        /* 1: user_name, user_email hashed in the tap copy */
    char tap_redact_key[EVP_TEXT_MAX];     /* the hash key; empty: random per run */
    int max_message_bytes;
    int publish_batch; /* events a bus message carries at most */
    char publish_form[EVP_TEXT_MAX]; /* "array" or "map": the form of events on the bus (wire.h) */
    int heartbeat_ms;
    int partitions;
    int bus_stall_timeout_ms; /* a subscriber that has not read for this long is disconnected */
    int bus_hold_max_mb;      /* messages held for subscribers that push back, at most (MiB) */
    int tcp_keepalive_s;      /* idle seconds before a bus connection's peer is probed */
    /* Generator and archive */
    char archive_dir[EVP_PATH_MAX];
    int archive_rotate_seconds;
    int archive_sync_ms;
    char event_types[EVP_TEXT_MAX];
    int min_events;
    int max_events;
    double sleep_interval;
    double generator_rate; /* events/s; 0: bursts like the old generator; < 0: as fast as it can */
    int64_t generator_seed;
    /* Ingest */
    char state_dir[EVP_PATH_MAX];
    char ingest_watch_dir[EVP_PATH_MAX];
    int ingest_settle_ms;
    int ingest_max_line;
    int repair_max_ms;
    /* Writer */
    int writer_batch_size;
    int writer_linger_ms;
    int writer_batch_mb;
    int writer_holdback_max;
    int writer_holdback_mb;
    int writer_sources_max;
    int writer_stream_idle_ms; /* a finished source quiet this long is forgotten */
    int writer_repair_timeout_ms;
    int writer_lease_ms; /* a writer that has not renewed its lease for this long loses its partitions */
    /* Time partitions of events (docs/postgresql.md) */
    char events_partition_interval[EVP_TEXT_MAX]; /* "": not partitioned */
    int events_partition_premake;                 /* partitions ready ahead of the current one */
    char events_retention[EVP_TEXT_MAX];          /* "": keep every event */
    /* CURVE (docs/security.md) */
    int curve;                                  /* 1: the bus and repair endpoint require CURVE */
    char curve_server_key[EVP_PATH_MAX];        /* servers: their key pair (.key_secret) */
    char curve_allowed_dir[EVP_PATH_MAX];       /* servers: public keys (*.key) of allowed clients */
    char curve_server_public_key[EVP_PATH_MAX]; /* clients: the server's public key (.key) */
    char curve_client_key[EVP_PATH_MAX];        /* clients: their own key pair (.key_secret) */
    /* All */
    evp_log_level_t log_level;
    int metrics_port;
    char metrics_bind[EVP_TEXT_MAX]; /* the address /metrics and /healthz listen on */
} evp_config_t;

typedef enum {
    EVP_SET_TEXT,     /* any text */
    EVP_SET_SECRET,   /* text never printed or logged */
    EVP_SET_INT,      /* integer within [min, max] */
    EVP_SET_PORT,     /* TCP port 1..65535 */
    EVP_SET_ENDPOINT, /* tcp://host:port or ipc://path */
    EVP_SET_DIR,      /* a directory, created if missing */
    EVP_SET_PATH,     /* a file or directory path (checked where it is used) */
    EVP_SET_SECONDS,  /* a non-negative number of seconds */
    EVP_SET_RATE,     /* events/s, empty for bursts, or "max" */
    EVP_SET_TYPES,    /* comma-separated event types, each allowed */
    EVP_SET_LEVEL,    /* debug, info, warn or error */
    EVP_SET_ADDRESS,  /* an IPv4 or IPv6 address, as text */
    EVP_SET_CHOICE,   /* one of a list of words (config.c's s_choices), as text */
} evp_setting_type_t;

typedef struct {
    const char *env;     /* environment name, as in .env */
    const char *flag;    /* long flag without the dashes */
    evp_setting_type_t type;
    const char *def;     /* default, as text; equal to .env */
    size_t offset;       /* into evp_config_t */
    int64_t min, max;    /* EVP_SET_INT */
    unsigned services;   /* EVP_SVC_* that read it */
    const char *help;
} evp_setting_t;

extern const evp_setting_t evp_settings[];
extern const size_t evp_settings_count;

/* A command-line option of one service that is not a setting (--count N).
 * A program lists its options in a table, as the settings are listed: the
 * loader writes each option given into the program's own struct (values)
 * at offset, and --help prints the same table. */
typedef struct {
    const char *flag;   /* without the dashes */
    const char *arg;    /* the value's name in --help, or NULL for a switch */
    size_t offset;      /* into the program's struct: a bool, set true, for a switch; a const char *,
                           pointed at the value in argv, for the others */
    const char *help;
} evp_option_t;

typedef struct {
    const char *program;     /* "evpipe-writer" */
    unsigned service;        /* EVP_SVC_* */
    const char *summary;     /* one line on what the program does */
    const char *usage;       /* arguments after the options, or NULL */
    const evp_option_t *options; /* NULL-flag-terminated, or NULL */
    void *values;            /* the struct the options are written into (zeroed by the caller) */
} evp_program_t;

/* Fills cfg from defaults, then the environment, then argv. Positional
 * arguments are left in args[0..*nargs); args must have room for argc entries. Returns 0, 1 when --help was printed
 * (exit 0), or -1 after printing one line to stderr naming the setting. */
int evp_config_load(evp_config_t *cfg, const evp_program_t *prog, int argc, char **argv, char **args,
                    int *nargs);

/* Defaults only (tests). */
void evp_config_defaults(evp_config_t *cfg);

/* Sets one setting from text, as the environment would; err names it. */
int evp_config_set(evp_config_t *cfg, const evp_setting_t *s, const char *value, char *err, size_t errlen);

const evp_setting_t *evp_config_find(const char *env);

/* The room a setting stored as text has in evp_config_t, its NUL included
 * (EVP_TEXT_MAX, or EVP_PATH_MAX for a path); 0 for a setting stored as a
 * number. */
size_t evp_setting_text_max(const evp_setting_t *s);

void evp_config_help(FILE *out, const evp_program_t *prog);

#endif
