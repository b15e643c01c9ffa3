/* CURVE on the bus: key pairs, the server side (the bus, and ingest's repair
 * endpoint) with a ZAP handler that admits only the public keys found in
 * CURVE_ALLOWED_DIR and logs every refusal, and the client side (generator,
 * ingest, writers, taps). Off unless CURVE=1. */
#ifndef EVPIPE_CURVE_H
#define EVPIPE_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "evpipe/config.h"

/* Writes DIR/NAME.key (public key, to hand out and to put in allowed
 * directories) and DIR/NAME.key_secret (public and secret, mode 0600).
 * Returns 0, or -1 with why. */
int evp_curve_keygen(const char *dir, const char *name, char *why, size_t whylen);

/* Reads a key file: public (and secret, when secret is not NULL) as 40-char
 * Z85 text. Returns 0, or -1 with why. */
int evp_curve_read_key(const char *path, char public_z85[41], char secret_z85[41], char *why, size_t whylen);

typedef struct evp_curve_server_t evp_curve_server_t;

/* Starts the ZAP handler in ctx (one per context) with the allowed keys of
 * cfg->curve_allowed_dir and loads the server key cfg->curve_server_key.
 * NULL with why. */
evp_curve_server_t *evp_curve_server_new(void *ctx, const evp_config_t *cfg, char *why, size_t whylen);
void evp_curve_server_destroy(evp_curve_server_t **self_p);
/* Makes sock a CURVE server (before bind). */
int evp_curve_server_apply(evp_curve_server_t *self, void *sock, char *why, size_t whylen);
/* Clients the handler refused so far. */
unsigned long evp_curve_server_refused(const evp_curve_server_t *self);

/* Makes sock a CURVE client of the bus (before connect) when cfg->curve is
 * on: its own key cfg->curve_client_key, the server's public key
 * cfg->curve_server_public_key. Returns 0 (also when off), or -1 with why. */
int evp_curve_client_apply(void *sock, const evp_config_t *cfg, char *why, size_t whylen);

#endif
