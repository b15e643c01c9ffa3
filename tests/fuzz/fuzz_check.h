/* What the fuzz targets share: the failure report, a file descriptor that
 * reads given bytes (whole, or cut into reads of a chosen size), and the
 * invariants every accepted event must keep (limits, COPY and JSON
 * renderings, the archive CSV round trip). */
#ifndef EVPIPE_FUZZ_CHECK_H
#define EVPIPE_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "evpipe/csv.h"
#include "evpipe/event.h"

/* Prints what failed to fd 2 and aborts (libFuzzer and Criterion see a crash). */
#define FUZZ_CHECK(cond, ...)                                  \
    do {                                                       \
        if (!(cond))                                           \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A descriptor whose reads return data[0..len) then end of file. chunk 0: a
 * memfd (one read takes everything); chunk > 0: a SOCK_SEQPACKET socket pair
 * whose reads return at most chunk bytes each (at most 64 reads; the last
 * takes the rest), so records straddle reads. The caller closes it. */
int fuzz_fd_from_bytes(const void *data, size_t len, size_t chunk);

/* True when [p, p+n) lies within [base, base+len) (n == 0: p may be anything). */
int fuzz_within(const void *p, size_t n, const void *base, size_t len);

/* Checks a refusal: a known code, the same in err, and a reason. */
void fuzz_check_refusal(ev_reject_t rc, const ev_error_t *err);

/* Checks what ev_event_validate promises of an event it accepted, for the
 * fields in `where` (EV_WHERE_PAYLOAD, optionally | EV_WHERE_IDENTITY). */
void fuzz_check_valid_event(const ev_event_t *ev, unsigned where);

/* Renders any event (text may be invalid) as JSON and checks it is one object
 * on one line, valid UTF-8 without raw control bytes. */
void fuzz_check_json(const ev_event_t *ev);

/* Renders a valid event as a COPY row and checks it: one line, one column per
 * field, each text column un-escaping to the event's text. */
void fuzz_check_copy(const ev_event_t *ev);

/* Writes the event as an archive/old CSV file (header and one row), reads it
 * back with the reader, and checks the row parses to an equal event. */
void fuzz_check_csv_round_trip(const ev_event_t *ev, ev_csv_layout_t layout);

#endif
