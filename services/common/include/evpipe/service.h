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

#endif
