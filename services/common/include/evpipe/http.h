/* A small HTTP server for /metrics, /healthz and the like: its own thread
 * (libmicrohttpd), GET and HEAD only, one callback per server that says
 * what a path answers. Replies are never cached (Cache-Control: no-store);
 * other methods get 405, unknown paths 404. */
#ifndef EVPIPE_HTTP_H
#define EVPIPE_HTTP_H

#include <stddef.h>

#include "evpipe/buf.h"

typedef struct evp_http_t evp_http_t;

/* Answers path: writes the body, may set *content_type (text/plain by
 * default), returns the HTTP status, or 0 for 404. Runs on the server's
 * thread. */
typedef unsigned (*evp_http_fn)(void *arg, const char *path, ev_buf_t *body, const char **content_type);

/* Listens on METRICS_BIND (evp_http_set_bind) and port. NULL with why
 * naming setting and port (e.g. the port is already in use). */
evp_http_t *evp_http_new(int port, const char *setting, evp_http_fn fn, void *arg, char *why, size_t whylen);
/* Stops the server, waiting for a request in progress. */
void evp_http_destroy(evp_http_t **self_p);

/* Sets the address every later server of this process listens on (an IPv4
 * or IPv6 address: METRICS_BIND, set by evp_service_start; 127.0.0.1
 * unless set). Returns 0, or -1 (nothing changed) when it is not one. */
int evp_http_set_bind(const char *address);
/* That address. */
const char *evp_http_bind(void);

#endif
