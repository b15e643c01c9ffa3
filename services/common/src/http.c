/* A small HTTP/1.x server on its own thread (libmicrohttpd): GET and HEAD
 * only, one callback decides what each path answers (see http.h). */
#include "evpipe/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evpipe/log.h"

struct evp_http_t {
    struct MHD_Daemon *daemon; /* the server */
    evp_http_fn fn;            /* what each path answers */
    void *arg;                 /* its argument */
};


/* Queues a reply; body is either static (persistent) or malloc'd (taken). */
static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, const char *content_type, char *body,
                               size_t len, bool take)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (take)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return s_reply(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text), false);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    evp_http_t *self = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
    ev_buf_t body;
    ev_buf_init(&body);
    const char *type = "text/plain; charset=utf-8";
    unsigned status = self->fn(self->arg, url, &body, &type);
    if (status == 0) {
        ev_buf_free(&body);
        return s_reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
    }
    return s_reply(conn, status, type, body.data, body.len, true);
}

/* libmicrohttpd's own complaints go to our log. */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '"')
            *p = ' ';
    evp_warn("metrics HTTP server", "error=\"%s\"", text);
}

/* The address every registry's server listens on (METRICS_BIND): one per
 * process, like the log level. */
static char s_bind[INET6_ADDRSTRLEN] = "127.0.0.1";

int evp_http_set_bind(const char *address)
{
    unsigned char probe[sizeof(struct in6_addr)];
    if (!address || strlen(address) >= sizeof s_bind ||
        (inet_pton(AF_INET, address, probe) != 1 && inet_pton(AF_INET6, address, probe) != 1))
        return -1;
    snprintf(s_bind, sizeof s_bind, "%s", address);
    return 0;
}

/* The socket address of METRICS_BIND and port; its length (0: not an address). */
static socklen_t s_bind_address(int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, s_bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return sizeof *v4;
    }
    if (inet_pton(AF_INET6, s_bind, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return sizeof *v6;
    }
    return 0;
}

/* Why the server did not start: try the bind ourselves to learn the errno. */
static void s_why_not(int port, const char *setting, char *why, size_t whylen)
{
    struct sockaddr_storage a;
    socklen_t alen = s_bind_address(port, &a);
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "%s %d: cannot create a socket: %s", setting, port, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, alen) != 0 || listen(fd, 1) != 0) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(why, whylen, "%s %d: the port is already in use (choose another or 0 for none)", setting,
                     port);
        else
            snprintf(why, whylen, "%s %d: cannot listen on METRICS_BIND=%s: %s", setting, port, s_bind,
                     strerror(e));
    } else {
        snprintf(why, whylen, "%s %d: cannot start the HTTP server (see the log)", setting, port);
    }
    close(fd);
}

const char *evp_http_bind(void)
{
    return s_bind;
}

evp_http_t *evp_http_new(int port, const char *setting, evp_http_fn fn, void *arg, char *why, size_t whylen)
{
    if (port <= 0 || port > 65535) {
        snprintf(why, whylen, "%s %d: not a TCP port (1..65535)", setting, port);
        return NULL;
    }
    /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: its "1" would set SO_REUSEPORT and
     * let two services share a port silently; the default (SO_REUSEADDR) is right. */
    struct sockaddr_storage addr;
    if (s_bind_address(port, &addr) == 0) {
        snprintf(why, whylen, "METRICS_BIND=%s: not an IPv4 or IPv6 address", s_bind);
        return NULL;
    }
    evp_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->fn = fn;
    self->arg = arg;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    self->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, s_handle, self, MHD_OPTION_EXTERNAL_LOGGER,
                                    s_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
                                    (unsigned int)64, MHD_OPTION_END);
    if (!self->daemon) {
        s_why_not(port, setting, why, whylen);
        free(self);
        return NULL;
    }
    return self;
}

void evp_http_destroy(evp_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->daemon)
        MHD_stop_daemon((*self_p)->daemon);
    free(*self_p);
    *self_p = NULL;
}
