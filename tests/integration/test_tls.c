/* PostgreSQL over TLS: a private cluster with a certificate signed by a CA
 * made for the test and pg_hba.conf admitting TCP clients only over TLS
 * (hostssl). With POSTGRES_SSLMODE=verify-full and POSTGRES_SSLROOTCERT the
 * services' connection (evp_pg_connect) is encrypted and checks the server;
 * a server signed by another CA is refused; sslmode=disable is refused by the
 * server; a running writer's connections are all encrypted (pg_stat_ssl). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evpipe/config.h"
#include "evpipe/pg.h"
#include "testkit.h"

typedef struct {
    tk_cluster_t *cluster; /* the TLS-only cluster */
    char certs[300];       /* ca.crt, other-ca.crt, server.* */
} tls_t;

static void s_sh(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

/* A CA, another CA, and a server certificate for 127.0.0.1 signed by the first. */
static void s_make_certs(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && exec >certs.log 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
             "-subj /CN=evpipe-test-ca -keyout ca.key -out ca.crt && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
             "-subj /CN=evpipe-test-ca -keyout other-ca.key -out other-ca.crt && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 "
             "-keyout server.key -out server.csr && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' >server.ext && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile server.ext -out server.crt",
             dir);
    s_sh(cmd);
}

static void s_setup(tls_t *t)
{
    t->cluster = tk_cluster_new();
    tk_cluster_stop(t->cluster);
    const char *data = tk_cluster_data_dir(t->cluster);
    snprintf(t->certs, sizeof t->certs, "%s/../certs", data);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && chmod 755 '%s'", t->certs, t->certs);
    s_sh(cmd);
    s_make_certs(t->certs);
    /* The key belongs to the cluster's owner, readable by it alone. */
    snprintf(cmd, sizeof cmd,
             "cp '%s/server.crt' '%s/server.key' '%s/' && chmod 600 '%s/server.key' && "
             "{ [ \"$(id -u)\" -ne 0 ] || chown postgres: '%s/server.crt' '%s/server.key'; } && "
             "printf \"ssl = on\\nssl_cert_file = 'server.crt'\\nssl_key_file = 'server.key'\\n\" >>'%s/postgresql.conf' && "
             "printf 'local all all trust\\nhostssl all all 127.0.0.1/32 trust\\n' >'%s/pg_hba.conf'",
             t->certs, t->certs, data, data, data, data, data, data);
    s_sh(cmd);
    tk_cluster_start(t->cluster);
}

static void s_teardown(tls_t *t)
{
    tk_cluster_destroy(&t->cluster);
}

static void s_config(evp_config_t *cfg, const tls_t *t, const char *sslmode, const char *ca)
{
    evp_config_defaults(cfg);
    snprintf(cfg->postgres_host, EVP_TEXT_MAX, "127.0.0.1");
    cfg->postgres_port = atoi(tk_cluster_port(t->cluster));
    snprintf(cfg->postgres_user, EVP_TEXT_MAX, "postgres");
    snprintf(cfg->postgres_db, EVP_TEXT_MAX, "postgres");
    snprintf(cfg->postgres_sslmode, EVP_TEXT_MAX, "%s", sslmode);
    snprintf(cfg->postgres_sslrootcert, EVP_TEXT_MAX, "%.200s%s%.40s", ca ? t->certs : "", ca ? "/" : "", ca ? ca : "");
}

/* evp_pg_connect with sslmode and the CA file ca of the test's (NULL: none). */
static PGconn *s_connect(const tls_t *t, const char *sslmode, const char *ca, char *why, size_t whylen)
{
    evp_config_t cfg;
    s_config(&cfg, t, sslmode, ca);
    why[0] = '\0';
    return evp_pg_connect(&cfg, "evpipe-tls-test", why, whylen);
}

Test(tls, verify_full_with_the_right_ca_connects_encrypted, .timeout = 120)
{
    tls_t t;
    s_setup(&t);
    char why[512];
    PGconn *c = s_connect(&t, "verify-full", "ca.crt", why, sizeof why);
    cr_assert_not_null(c, "verify-full refused: %s", why);
    cr_assert(PQsslInUse(c));
    cr_assert_eq(tk_sql_int(c, "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"), 1,
                 "the server does not see this connection as encrypted");
    PQfinish(c);
    s_teardown(&t);
}

Test(tls, a_server_signed_by_another_ca_is_refused, .timeout = 120)
{
    tls_t t;
    s_setup(&t);
    char why[512];
    PGconn *c = s_connect(&t, "verify-full", "other-ca.crt", why, sizeof why);
    cr_assert_null(c, "a server the CA did not sign was accepted");
    cr_assert(strstr(why, "certificate verify failed") != NULL, "%s", why);
    /* verify-ca checks the chain too. */
    c = s_connect(&t, "verify-ca", "other-ca.crt", why, sizeof why);
    cr_assert_null(c, "verify-ca accepted a server the CA did not sign");
    s_teardown(&t);
}

Test(tls, nothing_connects_in_plaintext, .timeout = 120)
{
    tls_t t;
    s_setup(&t);
    char why[512];
    PGconn *c = s_connect(&t, "disable", NULL, why, sizeof why);
    cr_assert_null(c, "a plaintext connection was admitted");
    cr_assert(strstr(why, "no encryption") != NULL, "%s", why);
    /* allow tries plaintext first, then TLS: it ends encrypted or not at all. */
    c = s_connect(&t, "allow", NULL, why, sizeof why);
    cr_assert_not_null(c, "%s", why);
    cr_assert(PQsslInUse(c));
    PQfinish(c);
    s_teardown(&t);
}

/* The writer as a process: with verify-full each of its connections is
 * encrypted; with the wrong CA it connects to nothing and says why. */
Test(tls, the_writer_connects_only_over_verified_tls, .timeout = 180)
{
    tls_t t;
    s_setup(&t);
    tk_world_t *w = tk_world_new_on("tls_writer", tk_cluster_port(t.cluster));
    char ca[400], other[400];
    snprintf(ca, sizeof ca, "POSTGRES_SSLROOTCERT=%s/ca.crt", t.certs);
    snprintf(other, sizeof other, "POSTGRES_SSLROOTCERT=%s/other-ca.crt", t.certs);
    const char *bad_env[] = {"POSTGRES_SSLMODE=verify-full", other, NULL};
    tk_proc_t *p = tk_start(w, "writer", NULL, bad_env);
    cr_assert(tk_wait_log(p, "certificate verify failed", 30000), "the writer did not say why it cannot connect");
    tk_signal(p, SIGTERM);
    tk_wait_exit(p, 20000);
    tk_proc_destroy(&p);

    const char *env[] = {"POSTGRES_SSLMODE=verify-full", ca, NULL};
    p = tk_start(w, "writer", NULL, env);
    const char *writers = "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                          "WHERE a.datname = current_database() AND a.application_name LIKE 'evpipe-writer%' "
                          "AND s.ssl";
    cr_assert_geq(tk_wait_sql_int(w->conn, writers, 1, 30000), 1, "no encrypted writer connection");
    cr_assert_eq(tk_sql_int(w->conn, "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                                     "WHERE a.datname = current_database() AND a.backend_type = 'client backend' "
                                     "AND NOT s.ssl"),
                 0, "a connection in plaintext");
    tk_signal(p, SIGTERM);
    cr_assert(tk_wait_exit(p, 30000));
    cr_assert_eq(tk_exit_code(p), 0);
    tk_proc_destroy(&p);
    tk_world_destroy(&w);
    s_teardown(&t);
}
