/* evpipe-bus: reads settings, runs the broker until SIGTERM/SIGINT. */
#include <stdio.h>

#include "bus.h"
#include "evpipe/curve.h"
#include "evpipe/service.h"

int main(int argc, char **argv)
{
    evp_option_t options[] = {
        {"keygen", "NAME", "write a CURVE key pair NAME.key and NAME.key_secret into --keys-dir, and exit", NULL},
        {"keys-dir", "DIR", "where --keygen writes (default ./var/keys)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const evp_program_t prog = {
        .program = "evpipe-bus",
        .service = EVP_SVC_BUS,
        .summary = "The evpipe bus: publishers connect to BUS_PUBLISH_ENDPOINT, writers subscribe on\n"
                   "BUS_SUBSCRIBE_ENDPOINT (lossless), debug taps on BUS_TAP_ENDPOINT (lossy).",
        .options = options,
    };
    evp_config_t cfg;
    char *args[argc];
    int nargs = 0;
    int rc = evp_service_start(&prog, argc, argv, &cfg, args, &nargs, 0);
    if (rc >= 0)
        return rc;
    char why[EVP_WHY_MAX] = "";
    if (options[0].value) {
        const char *dir = options[1].value ? options[1].value : "./var/keys";
        if (evp_curve_keygen(dir, options[0].value, why, sizeof why) != 0) {
            fprintf(stderr, "evpipe-bus: --keygen %s: %s\n", options[0].value, why);
            return 1;
        }
        printf("wrote %s/%s.key (public) and %s/%s.key_secret (keep it secret)\n", dir, options[0].value, dir,
               options[0].value);
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
