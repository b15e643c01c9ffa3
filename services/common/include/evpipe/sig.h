/* Signals: SIGINT and SIGTERM ask the service to stop (checked in its loop,
 * which then finishes its work cleanly); SIGPIPE is ignored. */
#ifndef EVPIPE_SIG_H
#define EVPIPE_SIG_H

#include <stdbool.h>

void evp_signals_install(void);
bool evp_stopping(void);
/* Asks the loop to stop, as a signal would (tests, fatal errors). */
void evp_request_stop(void);

#endif
