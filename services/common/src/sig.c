/* Signals (see sig.h). */
#include "evpipe/sig.h"

#include <czmq.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

void evp_signals_install(void)
{
    /* CZMQ would install its own handler on first use; ours decides. */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool evp_stopping(void)
{
    return s_stop != 0;
}

void evp_request_stop(void)
{
    s_stop = 1;
}
