/* evpipe-bus: reads settings, runs the broker until SIGTERM/SIGINT; or, with
 * --keygen ROLE NAME, writes a CURVE key pair and exits. */
#include <stddef.h>
#include <stdio.h>

#include "bus.h"
#include "evpipe/curve.h"
#include "evpipe/service.h"

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    const char *keygen;   /* --keygen ROLE */
    const char *sources;  /* --sources LIST */
    const char *keys_dir; /* --keys-dir DIR */
} s_args_t;

static const evp_option_t s_options[] = {
    {"keygen", "ROLE", offsetof(s_args_t, keygen),
     "with NAME after it: write a CURVE key pair NAME.key and NAME.key_secret for ROLE "
     "(publisher, writer, tap, repair, server) into --keys-dir, and exit"},
    {"sources", "LIST", offsetof(s_args_t, sources),
     "publisher keys: the sources it may publish, comma-separated, each exact or ending in * "
     "(gen-0123456789abcdef-*)"},
    {"keys-dir", "DIR", offsetof(s_args_t, keys_dir), "where --keygen writes (default ./var/keys)"},
    {NULL, NULL, 0, NULL},
};

static s_args_t s_args; /* written by the loader, from s_options */

static const evp_program_t s_program = {
    .program = "evpipe-bus",
    .service = EVP_SVC_BUS,
    .summary = "The evpipe bus: publishers connect to BUS_PUBLISH_ENDPOINT, writers subscribe on\n"
               "BUS_SUBSCRIBE_ENDPOINT (lossless), debug taps on BUS_TAP_ENDPOINT (lossy).",
    .usage = "[--keygen ROLE NAME]",
    .options = s_options,
    .values = &s_args,
};

/* --keygen ROLE NAME [--sources ...] [--keys-dir DIR]. */
static int s_keygen(const char *role, const char *name, const char *sources, const char *dir)
{
    char why[EVP_WHY_MAX] = "";
    if (!name) {
        fprintf(stderr, "evpipe-bus: --keygen %s: give the key's NAME after the role (see --help)\n", role);
        return 1;
    }
    if (evp_curve_keygen(dir, role, name, sources, why, sizeof why) != 0) {
        fprintf(stderr, "evpipe-bus: --keygen %s %s: %s\n", role, name, why);
        return 1;
    }
    printf("wrote %s/%s.key (public: role %s%s%s; copy it into CURVE_ALLOWED_DIR) and %s/%s.key_secret "
           "(keep it secret)\n",
           dir, name, role, sources ? ", sources " : "", sources ? sources : "", dir, name);
    return 0;
}

static int s_run(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs)
{
    if (nargs > 0 && !s_args.keygen) {
        fprintf(stderr, "evpipe-bus: %s: unexpected argument (see --help)\n", args[0]);
        return 1;
    }
    if (s_args.keygen)
        return s_keygen(s_args.keygen, nargs ? args[0] : NULL, s_args.sources,
                        s_args.keys_dir ? s_args.keys_dir : "./var/keys");
    char why[EVP_WHY_MAX] = "";
    bus_t *bus = bus_new(cfg, why, sizeof why);
    if (!bus)
        return evp_service_fail(prog, why);
    int rc = bus_run(bus);
    bus_destroy(&bus);
    return rc;
}

int main(int argc, char **argv)
{
    return evp_service_main(&s_program, argc, argv, 1, s_run);
}
