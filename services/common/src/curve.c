/* CURVE keys with roles, the ZAP handler and socket set-up (see curve.h). */
#include "evpipe/curve.h"

#include <ctype.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "evpipe/fsutil.h"
#include "evpipe/log.h"

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MAX_ALLOWED 4096

/* ---- Roles ---- */

typedef enum { S_PUBLISHER, S_WRITER, S_TAP, S_REPAIR, S_SERVER, S_ROLES } s_role_t;

static const char *const s_role_names[S_ROLES] = {"publisher", "writer", "tap", "repair", "server"};

/* The endpoints (ZAP domains) each role may use, comma-separated. */
static const char *const s_role_domains[S_ROLES] = {
    [S_PUBLISHER] = EVP_CURVE_PUBLISH,
    [S_WRITER] = EVP_CURVE_SUBSCRIBE "," EVP_CURVE_REPAIR,
    [S_TAP] = EVP_CURVE_TAP,
    [S_REPAIR] = EVP_CURVE_REPAIR,
    [S_SERVER] = "",
};

static int s_role(const char *name)
{
    for (int i = 0; name && i < S_ROLES; i++)
        if (strcmp(name, s_role_names[i]) == 0)
            return i;
    return -1;
}

/* True when word is one of the comma-separated items of list. */
static bool s_in_list(const char *list, const char *word, size_t n)
{
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, word, n) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

/* ---- Source patterns ---- */

bool evp_curve_source_allowed(const char *patterns, const char *source, size_t len)
{
    for (const char *p = patterns; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t plen = comma ? (size_t)(comma - p) : strlen(p);
        if (plen > 0 && p[plen - 1] == '*') {
            if (len >= plen - 1 && memcmp(p, source, plen - 1) == 0)
                return true;
        } else if (plen == len && memcmp(p, source, len) == 0) {
            return true;
        }
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

bool evp_curve_sources_valid(const char *patterns)
{
    if (!patterns || !*patterns || strlen(patterns) > 1000)
        return false;
    for (const char *p = patterns; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > 65)
            return false;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || (c == '*' && i + 1 != len))
                return false;
        }
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return false;
    }
    return true;
}

/* ---- Keys ---- */

static bool s_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
            return false;
    return true;
}

int evp_curve_keygen(const char *dir, const char *role, const char *name, const char *sources, char *why,
                     size_t whylen)
{
    int r = s_role(role);
    if (r < 0)
        return WHY("role \"%s\": one of publisher, writer, tap, repair, server was expected", role ? role : "");
    if (!name || !s_valid_name(name))
        return WHY("name \"%s\": 1 to 64 letters, digits, '.', '_' or '-' were expected", name ? name : "");
    if (r == S_PUBLISHER && !evp_curve_sources_valid(sources))
        return WHY("a publisher key needs --sources: source names, each exact or ending in '*', comma-separated "
                   "(for example gen-0123456789abcdef-*)");
    if (r != S_PUBLISHER && sources)
        return WHY("--sources is for publisher keys only");
    if (evp_mkdirs(dir, why, whylen) != 0)
        return -1;
    char path[1200], secret[1220];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(secret, sizeof secret, "%s_secret", path);
    struct stat st;
    if (stat(path, &st) == 0 || stat(secret, &st) == 0)
        return WHY("%s or its _secret exists already: remove both first to replace the key", path);
    zcert_t *cert = zcert_new();
    if (!cert)
        return WHY("cannot make a key pair: %s (is libzmq built with CURVE?)", zmq_strerror(errno));
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "role", "%s", role);
    if (sources)
        zcert_set_meta(cert, "sources", "%s", sources);
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    zcert_destroy(&cert);
    if (rc != 0 || chmod(secret, 0600) != 0 || chmod(path, 0644) != 0)
        return WHY("%s: cannot write the key files: %s", path, strerror(errno));
    return 0;
}

/* Loads a zcert file; NULL with why. */
static zcert_t *s_load(const char *path, char *why, size_t whylen)
{
    if (access(path, R_OK) != 0) {
        snprintf(why, whylen, "%.400s: %s", path, strerror(errno));
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert)
        snprintf(why, whylen, "%.400s: not a key file in zcert format (made by evpipe-bus --keygen ROLE NAME)", path);
    return cert;
}

int evp_curve_read_key(const char *path, char public_z85[41], char secret_z85[41], char *why, size_t whylen)
{
    zcert_t *cert = s_load(path, why, whylen);
    if (!cert)
        return -1;
    memcpy(public_z85, zcert_public_txt(cert), 41);
    int rc = 0;
    if (secret_z85) {
        static const uint8_t zero[32];
        if (memcmp(zcert_secret_key(cert), zero, 32) == 0)
            rc = WHY("%s: no secret key (is it the .key_secret file?)", path);
        else
            memcpy(secret_z85, zcert_secret_txt(cert), 41);
    }
    zcert_destroy(&cert);
    return rc;
}

/* ---- Server: the ZAP handler ---- */

/* One allowed client key. */
typedef struct {
    uint8_t key[32];    /* its public key */
    s_role_t role;      /* what it may do */
    char name[65];      /* its name (User-Id of its messages) */
    char sources[1001]; /* publishers: the source patterns */
} s_allowed_t;

struct evp_curve_server_t {
    void *ctx;                 /* the context the handler serves */
    pthread_t thread;          /* runs s_handler */
    atomic_bool stop;          /* asks the thread to end */
    atomic_ulong refused;      /* clients refused */
    char public_z85[41];       /* the server's key pair */
    char secret_z85[41];
    s_allowed_t *allowed;      /* allowed client keys */
    size_t nallowed;           /* how many */
    void *zap;                 /* REP on ZAP_ENDPOINT, owned by the thread */
    evp_log_limit_t log_limit; /* refusals logged, at most so many */
};

/* Reads one allowed key file into e; false (and a warning) when unusable. */
static bool s_load_allowed_key(const char *path, s_allowed_t *e)
{
    char err[512];
    zcert_t *cert = s_load(path, err, sizeof err);
    const char *role = cert ? zcert_meta(cert, "role") : NULL;
    const char *name = cert ? zcert_meta(cert, "name") : NULL;
    const char *sources = cert ? zcert_meta(cert, "sources") : NULL;
    int r = s_role(role);
    if (cert && r < 0)
        snprintf(err, sizeof err, "no role in its metadata (one of publisher, writer, tap, repair)");
    else if (cert && r == S_PUBLISHER && !evp_curve_sources_valid(sources))
        snprintf(err, sizeof err, "a publisher key without valid sources in its metadata");
    bool ok = cert && r >= 0 && (r != S_PUBLISHER || evp_curve_sources_valid(sources));
    if (ok) {
        memcpy(e->key, zcert_public_key(cert), 32);
        e->role = (s_role_t)r;
        const char *base = strrchr(path, '/');
        snprintf(e->name, sizeof e->name, "%.64s", name && s_valid_name(name) ? name : base ? base + 1 : path);
        snprintf(e->sources, sizeof e->sources, "%s", r == S_PUBLISHER ? sources : "");
    } else {
        evp_warn("ignored an allowed-key file", "file=\"%s\" reason=\"%s\"", path, err);
    }
    zcert_destroy(&cert);
    return ok;
}

static int s_load_allowed(evp_curve_server_t *self, const char *dir, char *why, size_t whylen)
{
    DIR *d = opendir(dir);
    if (!d)
        return WHY("CURVE_ALLOWED_DIR=%s: %s", dir, strerror(errno));
    self->allowed = calloc(MAX_ALLOWED, sizeof *self->allowed);
    if (!self->allowed) {
        closedir(d);
        return WHY("out of memory");
    }
    size_t per_role[S_ROLES] = {0};
    struct dirent *e;
    while ((e = readdir(d)) && self->nallowed < MAX_ALLOWED) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".key") != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (s_load_allowed_key(path, &self->allowed[self->nallowed]))
            per_role[self->allowed[self->nallowed++].role]++;
    }
    closedir(d);
    evp_info("CURVE on", "allowed_keys=%zu publishers=%zu writers=%zu taps=%zu repair_clients=%zu dir=\"%s\"",
             self->nallowed, per_role[S_PUBLISHER], per_role[S_WRITER], per_role[S_TAP], per_role[S_REPAIR], dir);
    return 0;
}

static const s_allowed_t *s_find(const evp_curve_server_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->nallowed; i++)
        if (memcmp(self->allowed[i].key, key, 32) == 0)
            return &self->allowed[i];
    return NULL;
}

/* Appends one ZMTP metadata property (name length, name, 4-byte length, value). */
static size_t s_put_property(uint8_t *out, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    out[0] = (uint8_t)n;
    memcpy(out + 1, name, n);
    out[1 + n] = (uint8_t)(v >> 24);
    out[2 + n] = (uint8_t)(v >> 16);
    out[3 + n] = (uint8_t)(v >> 8);
    out[4 + n] = (uint8_t)v;
    memcpy(out + 5 + n, value, v);
    return 5 + n + v;
}

/* Whom a ZAP request (RFC 27: version, request id, domain, address,
 * identity, mechanism, client key) admits: the key's entry, or NULL with
 * the reason. */
static const s_allowed_t *s_decide(const evp_curve_server_t *self, zmq_msg_t *f, int n, const char **reason)
{
    if (n != 7 || zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5) != 0 ||
        zmq_msg_size(&f[6]) != 32) {
        *reason = "not a CURVE client";
        return NULL;
    }
    const s_allowed_t *e = s_find(self, zmq_msg_data(&f[6]));
    if (!e) {
        *reason = "key not allowed";
        return NULL;
    }
    if (!s_in_list(s_role_domains[e->role], zmq_msg_data(&f[2]), zmq_msg_size(&f[2]))) {
        *reason = "role may not use this endpoint";
        return NULL;
    }
    *reason = "OK";
    return e;
}

/* Answers one ZAP request. */
static void s_answer(evp_curve_server_t *self, zmq_msg_t *f, int n)
{
    const char *reason;
    const s_allowed_t *e = s_decide(self, f, n, &reason);
    char address[64] = "?", key[41] = "?", domain[32] = "?";
    if (n >= 4) {
        evp_log_text(domain, sizeof domain, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
        evp_log_text(address, sizeof address, zmq_msg_data(&f[3]), zmq_msg_size(&f[3]));
    }
    if (n == 7 && zmq_msg_size(&f[6]) == 32)
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
    uint64_t held = 0;
    if (!e) {
        atomic_fetch_add(&self->refused, 1);
        const s_allowed_t *known = n == 7 && zmq_msg_size(&f[6]) == 32 ? s_find(self, zmq_msg_data(&f[6])) : NULL;
        if (evp_log_allow(&self->log_limit, &held))
            evp_warn("refused a client", "reason=\"%s\" endpoint=%s address=%s key=%s name=%s role=%s "
                     "refusals_not_logged=%llu",
                     reason, domain, address, key, known ? known->name : "-",
                     known ? s_role_names[known->role] : "-", (unsigned long long)held);
    } else {
        evp_debug("admitted a client", "endpoint=%s address=%s name=%s role=%s", domain, address, e->name,
                  s_role_names[e->role]);
    }
    zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(self->zap, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0, ZMQ_SNDMORE);
    zmq_send(self->zap, e ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(self->zap, reason, strlen(reason), ZMQ_SNDMORE);
    zmq_send(self->zap, e ? e->name : "", e ? strlen(e->name) : 0, ZMQ_SNDMORE); /* user id */
    uint8_t meta[1200];
    size_t len = 0;
    if (e) {
        len += s_put_property(meta + len, EVP_CURVE_PROP_ROLE, s_role_names[e->role]);
        if (e->role == S_PUBLISHER)
            len += s_put_property(meta + len, EVP_CURVE_PROP_SOURCES, e->sources);
    }
    zmq_send(self->zap, meta, len, 0);
}

/* Answers ZAP requests until asked to stop. */
static void *s_handler(void *arg)
{
    evp_curve_server_t *self = arg;
    zmq_pollitem_t item = {self->zap, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&self->stop)) {
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        zmq_msg_t f[7];
        int n = 0;
        int more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->zap, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 7)
                f[n++] = m;
            else
                zmq_msg_close(&m);
        }
        s_answer(self, f, n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
    return NULL;
}

evp_curve_server_t *evp_curve_server_new(void *ctx, const evp_config_t *cfg, char *why, size_t whylen)
{
    evp_curve_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    self->ctx = ctx;
    self->log_limit = (evp_log_limit_t){.burst = 20, .window_ms = 10000};
    if (evp_curve_read_key(cfg->curve_server_key, self->public_z85, self->secret_z85, why, whylen) != 0 ||
        s_load_allowed(self, cfg->curve_allowed_dir, why, whylen) != 0) {
        char tmp[EVP_WHY_MAX];
        snprintf(tmp, sizeof tmp, "%s", why);
        snprintf(why, whylen, "CURVE: %s", tmp);
        evp_curve_server_destroy(&self);
        return NULL;
    }
    self->zap = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (!self->zap || zmq_bind(self->zap, ZAP_ENDPOINT) != 0) {
        snprintf(why, whylen, "CURVE: cannot start the authentication handler: %s", zmq_strerror(errno));
        if (self->zap)
            zmq_close(self->zap);
        self->zap = NULL;
        evp_curve_server_destroy(&self);
        return NULL;
    }
    pthread_create(&self->thread, NULL, s_handler, self);
    return self;
}

void evp_curve_server_destroy(evp_curve_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    evp_curve_server_t *self = *self_p;
    if (self->zap) {
        atomic_store(&self->stop, true);
        pthread_join(self->thread, NULL);
        zmq_close(self->zap);
    }
    free(self->allowed);
    memset(self->secret_z85, 0, sizeof self->secret_z85);
    free(self);
    *self_p = NULL;
}

int evp_curve_server_apply(evp_curve_server_t *self, void *sock, const char *domain, char *why, size_t whylen)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret_z85, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0)
        return WHY("CURVE: cannot set up the server socket: %s", zmq_strerror(errno));
    return 0;
}

unsigned long evp_curve_server_refused(const evp_curve_server_t *self)
{
    return atomic_load(&self->refused);
}

/* ---- Client ---- */

int evp_curve_client_apply(void *sock, const evp_config_t *cfg, char *why, size_t whylen)
{
    if (!cfg->curve)
        return 0;
    char pub[41], sec[41], server[41];
    if (evp_curve_read_key(cfg->curve_client_key, pub, sec, why, whylen) != 0)
        return -1;
    if (evp_curve_read_key(cfg->curve_server_public_key, server, NULL, why, whylen) != 0)
        return -1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40) != 0) {
        memset(sec, 0, sizeof sec);
        return WHY("CURVE: cannot set up the client socket: %s", zmq_strerror(errno));
    }
    memset(sec, 0, sizeof sec);
    return 0;
}
