/* evpipe-bus: reads settings, runs the broker until SIGTERM/SIGINT. */
#include <stddef.h>
#include <stdio.h>

#include "bus.h"
#include "evpipe/curve.h"
#include "evpipe/service.h"

/* The command line beyond the settings, as s_options writes it. */
typedef struct {
    const char *keygen;   /* --keygen NAME */
    const char *keys_dir; /* --keys-dir DIR */
} s_args_t;

static const evp_option_t s_options[] = {
    {"keygen", "NAME", offsetof(s_args_t, keygen),
     "write a CURVE key pair NAME.key and NAME.key_secret into --keys-dir, and exit"},
    {"keys-dir", "DIR", offsetof(s_args_t, keys_dir), "where --keygen writes (default ./var/keys)"},
    {NULL, NULL, 0, NULL},
};

int main(int argc, char **argv)
{
    s_args_t a = {0};
    const evp_program_t prog = {
        .program = "evpipe-bus",
        .service = EVP_SVC_BUS,
        .summary = "The evpipe bus: publishers connect to BUS_PUBLISH_ENDPOINT, writers subscribe on\n"
                   "BUS_SUBSCRIBE_ENDPOINT (lossless), debug taps on BUS_TAP_ENDPOINT (lossy).",
        .options = s_options,
        .values = &a,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    char why[EVP_WHY_MAX] = "";
    if (a.keygen) {
        const char *dir = a.keys_dir ? a.keys_dir : "./var/keys";
        if (evp_curve_keygen(dir, a.keygen, why, sizeof why) != 0) {
            fprintf(stderr, "evpipe-bus: --keygen %s: %s\n", a.keygen, why);
            return 1;
        }
        printf("wrote %s/%s.key (public) and %s/%s.key_secret (keep it secret)\n", dir, a.keygen, dir, a.keygen);
        return 0;
    }
    bus_t *bus = bus_new(&cfg, why, sizeof why);
    if (!bus) {
        fprintf(stderr, "evpipe-bus: %s\n", why);
        return 1;
    }
    rc = bus_run(bus);
    bus_destroy(&bus);
    return rc;
}
