/* Helpers the proto unit tests share: a text view of a C string and one
 * valid event with every field set, which a test changes where it needs to. */
#ifndef EVPIPE_PROTO_TEST_H
#define EVPIPE_PROTO_TEST_H

#include "evpipe/event.h"

/* A view of s (not copied). */
ev_str_t pt_str(const char *s);

/* A valid event with every field set: user 42 "Zoë Ångström" buys "Tea,
 * green" (Food, 12.50) on 2024-01-31 12:00:00.000001, seq 1 of partition 3
 * of gen-0123456789abcdef. */
ev_event_t pt_event(void);

#endif
