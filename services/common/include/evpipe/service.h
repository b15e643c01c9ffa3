/* The start every evpipe main() shares: settings (defaults, environment,
 * flags), logging named after the service, and signal handling. */
#ifndef EVPIPE_SERVICE_H
#define EVPIPE_SERVICE_H

#include "evpipe/config.h"

/* The exit code of a service that refuses to run against this deployment:
 * a setting that must agree across services (docs/operations.md) differs
 * from the one the database records, or the database's schema is newer
 * than the writer. Restarting does not help; the message says what differs. */
#define EVP_EXIT_REFUSED 3

/* Loads cfg for prog, leaves positional arguments in args[0..*nargs) (args
 * has room for argc entries), starts logging as prog->program without its
 * "evpipe-" prefix and installs the signal handlers. Returns -1 to go on, or
 * the exit code main() returns at once: 0 after --help, 1 after a bad setting
 * or more than max_args arguments (one line on stderr says which). */
int evp_service_start(const evp_program_t *prog, int argc, char **argv, evp_config_t *cfg, char **args, int *nargs,
                      int max_args);

/* What a service does once it has started: cfg is loaded, prog->values holds
 * its options, args[0..nargs) its positional arguments. Returns the exit code. */
typedef int (*evp_service_run_fn)(const evp_program_t *prog, const evp_config_t *cfg, char **args, int nargs);

/* The whole of a service's main(): evp_service_start (with max_args as
 * there), then run. Returns the exit code main() returns. */
int evp_service_main(const evp_program_t *prog, int argc, char **argv, int max_args, evp_service_run_fn run);

/* Says on stderr that prog cannot run, and why ("evpipe-tap: why").
 * Returns 1, the exit code for it. */
int evp_service_fail(const evp_program_t *prog, const char *why);

#endif
