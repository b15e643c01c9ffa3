/* The start every evpipe main() shares (see service.h). */
#include "evpipe/service.h"

#include <stdio.h>
#include <string.h>

#include "evpipe/http.h"
#include "evpipe/log.h"
#include "evpipe/metrics.h"
#include "evpipe/sig.h"

int evp_service_start(const evp_program_t *prog, int argc, char **argv, evp_config_t *cfg, char **args, int *nargs,
                      int max_args)
{
    int rc = evp_config_load(cfg, prog, argc, argv, args, nargs);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    if (max_args >= 0 && *nargs > max_args) {
        fprintf(stderr, "%s: %s: unexpected argument (see --help)\n", prog->program, args[max_args]);
        return 1;
    }
    const char *name = prog->program;
    if (strncmp(name, "evpipe-", 7) == 0)
        name += 7;
    evp_log_init(name, cfg->log_level);
    if (evp_http_set_bind(cfg->metrics_bind) != 0) {
        fprintf(stderr, "%s: METRICS_BIND=%s: not an IPv4 or IPv6 address\n", prog->program, cfg->metrics_bind);
        return 1;
    }
    evp_signals_install();
    return -1;
}

int evp_service_main(const evp_program_t *prog, int argc, char **argv, int max_args, evp_service_run_fn run)
{
    evp_config_t cfg;
    char *args[argc + 1];
    int nargs = 0;
    int rc = evp_service_start(prog, argc, argv, &cfg, args, &nargs, max_args);
    if (rc >= 0)
        return rc;
    return run(prog, &cfg, args, nargs);
}

int evp_service_fail(const evp_program_t *prog, const char *why)
{
    fprintf(stderr, "%s: %s\n", prog->program, why);
    return 1;
}
