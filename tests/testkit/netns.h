/* Test kit: a network namespace joined to this host by a veth pair, to run
 * a service as if on another host and cut it off (root and ip(8) needed);
 * and a TCP relay, so that a service in it reaches PostgreSQL, which
 * listens on 127.0.0.1 only. The test makes and removes both. */
#ifndef EVPIPE_TESTKIT_NETNS_H
#define EVPIPE_TESTKIT_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tk_netns_t tk_netns_t;

/* A new namespace with a veth pair, this host's side addressed
 * tk_netns_host_ip (services bind there), the other tk_netns_peer_ip. NULL
 * with why when it cannot be made (not root, no ip(8)): skip the test. */
tk_netns_t *tk_netns_new(char *why, size_t whylen);
/* Removes the namespace and its veth pair. Accepts NULL. */
void tk_netns_destroy(tk_netns_t **self_p);
/* The namespace's name: "TK_NETNS=<name>" in tk_start's extra_env starts
 * the service inside it. */
const char *tk_netns_name(const tk_netns_t *self);
const char *tk_netns_host_ip(const tk_netns_t *self);
/* Cuts the link (nothing passes either way, no reset is sent) or heals it. */
void tk_netns_cut(tk_netns_t *self, bool cut);

/* In a child about to exec: enters the namespace named by TK_NETNS, if
 * set (tk_start calls it). Exits 126 when it cannot. */
void tk_netns_enter_from_env(void);

/* Whether process pid runs in another network namespace than this one. */
bool tk_netns_holds(const tk_netns_t *self, pid_t pid);

/* Relays TCP connections to ip:port to 127.0.0.1:to_port, in a child
 * process (kill and reap it at the end). */
pid_t tk_relay_start(const char *ip, int port, int to_port);

#endif
