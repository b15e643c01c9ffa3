/* CURVE keys, the ZAP handler and socket set-up (see curve.h). */
#include "evpipe/curve.h"

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

/* ---- Keys ---- */

int evp_curve_keygen(const char *dir, const char *name, char *why, size_t whylen)
{
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0)
        return WHY("cannot make a key pair: %s (is libzmq built with CURVE?)", zmq_strerror(errno));
    if (evp_mkdirs(dir, why, whylen) != 0)
        return -1;
    char path[1200], text[200];
    snprintf(path, sizeof path, "%s/%s.key_secret", dir, name);
    int n = snprintf(text, sizeof text, "# evpipe CURVE key pair: keep this file secret\npublic=%s\nsecret=%s\n",
                     pub, sec);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return WHY("%s: %s", path, strerror(errno));
    int rc = evp_write_all(fd, text, (size_t)n, why, whylen);
    close(fd);
    if (rc != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    n = snprintf(text, sizeof text, "# evpipe CURVE public key of %s\npublic=%s\n", name, pub);
    return evp_write_file_atomic(path, text, (size_t)n, why, whylen);
}

int evp_curve_read_key(const char *path, char public_z85[41], char secret_z85[41], char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return WHY("%s: %s", path, strerror(errno));
    char line[256];
    bool have_pub = false, have_sec = false;
    while (fgets(line, sizeof line, f)) {
        char key[41];
        if (sscanf(line, "public=%40s", key) == 1 && strlen(key) == 40) {
            memcpy(public_z85, key, 41);
            have_pub = true;
        } else if (secret_z85 && sscanf(line, "secret=%40s", key) == 1 && strlen(key) == 40) {
            memcpy(secret_z85, key, 41);
            have_sec = true;
        }
    }
    fclose(f);
    if (!have_pub)
        return WHY("%s: no public=<40 Z85 characters> line", path);
    if (secret_z85 && !have_sec)
        return WHY("%s: no secret=<40 Z85 characters> line (is it the .key_secret file?)", path);
    return 0;
}

/* ---- Server: the ZAP handler ---- */

struct evp_curve_server_t {
    void *ctx;                      /* the context the handler serves */
    pthread_t thread;               /* runs s_handler */
    atomic_bool stop;               /* asks the thread to end */
    atomic_ulong refused;           /* clients refused */
    char public_z85[41];            /* the server's key pair */
    char secret_z85[41];
    uint8_t (*allowed)[32];         /* allowed client public keys */
    size_t nallowed;                /* how many */
    void *zap;                      /* REP on ZAP_ENDPOINT, owned by the thread */
};

static int s_load_allowed(evp_curve_server_t *self, const char *dir, char *why, size_t whylen)
{
    DIR *d = opendir(dir);
    if (!d)
        return WHY("CURVE_ALLOWED_DIR=%s: %s", dir, strerror(errno));
    self->allowed = calloc(MAX_ALLOWED, sizeof *self->allowed);
    struct dirent *e;
    while ((e = readdir(d)) && self->nallowed < MAX_ALLOWED) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".key") != 0)
            continue;
        char path[1200], pub[41];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char err[EVP_WHY_MAX];
        if (evp_curve_read_key(path, pub, NULL, err, sizeof err) != 0 ||
            !zmq_z85_decode(self->allowed[self->nallowed], pub)) {
            evp_warn("ignored an allowed-key file", "file=\"%s\" reason=\"%s\"", path, err);
            continue;
        }
        self->nallowed++;
    }
    closedir(d);
    evp_info("CURVE on", "allowed_keys=%zu dir=\"%s\"", self->nallowed, dir);
    return 0;
}

static bool s_allowed(const evp_curve_server_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->nallowed; i++)
        if (memcmp(self->allowed[i], key, 32) == 0)
            return true;
    return false;
}

/* Answers ZAP requests (RFC 27): version, request id, domain, address,
 * identity, mechanism, then the client's public key for CURVE. */
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
        bool ok = n == 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
                  zmq_msg_size(&f[6]) == 32 && s_allowed(self, zmq_msg_data(&f[6]));
        char address[64] = "?", key[41] = "?";
        if (n >= 4)
            snprintf(address, sizeof address, "%.*s", (int)zmq_msg_size(&f[3]), (const char *)zmq_msg_data(&f[3]));
        if (n == 7 && zmq_msg_size(&f[6]) == 32)
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        if (!ok) {
            atomic_fetch_add(&self->refused, 1);
            evp_warn("refused a client: its key is not allowed", "address=%s key=%s", address, key);
        } else {
            evp_debug("admitted a client", "address=%s key=%s", address, key);
        }
        const char *status = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
        zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(self->zap, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0, ZMQ_SNDMORE);
        zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(self->zap, "", 0, ZMQ_SNDMORE); /* user id */
        zmq_send(self->zap, "", 0, 0);            /* metadata */
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

int evp_curve_server_apply(evp_curve_server_t *self, void *sock, char *why, size_t whylen)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret_z85, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "evpipe", 6) != 0)
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
