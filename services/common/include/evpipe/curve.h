/* CURVE on the bus, with roles: key files in CZMQ's zcert format whose
 * metadata names a role (publisher, writer, tap, repair; server for the
 * bus's and ingest's own pair) and, for publishers, the sources they may
 * publish; the server side (the bus, and ingest's repair endpoint) with a ZAP
 * handler that admits a key only on the endpoints its role may use (one ZAP
 * domain per endpoint) and logs every refusal (rate-limited); and the client
 * side (generator, ingest, writers, taps). Off unless CURVE=1.
 * docs/security.md has the table of who may do what. */
#ifndef EVPIPE_CURVE_H
#define EVPIPE_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "evpipe/config.h"

/* The ZAP domains of the endpoints (ZMQ_ZAP_DOMAIN of each server socket). */
#define EVP_CURVE_PUBLISH "publish"     /* BUS_PUBLISH_ENDPOINT: publishers */
#define EVP_CURVE_SUBSCRIBE "subscribe" /* BUS_SUBSCRIBE_ENDPOINT: writers */
#define EVP_CURVE_TAP "tap"             /* BUS_TAP_ENDPOINT: taps */
#define EVP_CURVE_REPAIR "repair"       /* REPLAY_ENDPOINT: writers and repair clients */

/* The message properties (zmq_msg_gets) of a message from an admitted
 * client: "User-Id" is its key's name; these two come from its key file. */
#define EVP_CURVE_PROP_ROLE "Role"
#define EVP_CURVE_PROP_SOURCES "Sources" /* publishers: the patterns, comma-separated */

/* Writes DIR/NAME.key (the public certificate with its metadata: name, role,
 * sources; hand it out, put it in allowed folders) and DIR/NAME.key_secret
 * (the same with the secret key, mode 0600), in CZMQ's zcert format. role is
 * publisher, writer, tap, repair or server; sources (publisher only, where it
 * is required) is a comma-separated list of source names, each exact or
 * ending in '*' (a prefix): "gen-0123456789abcdef-*,gen-0123456789abcdef".
 * NAME: letters, digits, '.', '_', '-'. Refuses to overwrite. Returns 0, or
 * -1 with why. */
int evp_curve_keygen(const char *dir, const char *role, const char *name, const char *sources, char *why,
                     size_t whylen);

/* Reads a key file (zcert): public (and secret, when secret is not NULL) as
 * 40-char Z85 text. Returns 0, or -1 with why. */
int evp_curve_read_key(const char *path, char public_z85[41], char secret_z85[41], char *why, size_t whylen);

/* True when patterns (as in evp_curve_keygen's sources) admit the source
 * name source[0..len). */
bool evp_curve_source_allowed(const char *patterns, const char *source, size_t len);
/* True when text is a valid list of source patterns. */
bool evp_curve_sources_valid(const char *patterns);

typedef struct evp_curve_server_t evp_curve_server_t;

/* Starts the ZAP handler in ctx (one per context) with the keys of
 * cfg->curve_allowed_dir (each with its role) and loads the server key
 * cfg->curve_server_key. NULL with why. */
evp_curve_server_t *evp_curve_server_new(void *ctx, const evp_config_t *cfg, char *why, size_t whylen);
void evp_curve_server_destroy(evp_curve_server_t **self_p);
/* Makes sock a CURVE server (before bind) for one endpoint: domain is one of
 * EVP_CURVE_PUBLISH, _SUBSCRIBE, _TAP, _REPAIR; only roles that may use it
 * are admitted. */
int evp_curve_server_apply(evp_curve_server_t *self, void *sock, const char *domain, char *why, size_t whylen);
/* Clients the handler refused so far (unknown keys and wrong roles). */
unsigned long evp_curve_server_refused(const evp_curve_server_t *self);

/* Makes sock a CURVE client of the bus (before connect) when cfg->curve is
 * on: its own key cfg->curve_client_key, the server's public key
 * cfg->curve_server_public_key. Returns 0 (also when off), or -1 with why. */
int evp_curve_client_apply(void *sock, const evp_config_t *cfg, char *why, size_t whylen);

#endif
