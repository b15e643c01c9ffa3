/* The fuzz targets: each runs one input (any bytes) through a decoder or
 * parser and abort()s when an invariant fails. libFuzzer drives them in the
 * EVPIPE_FUZZ build (fuzz_main_*.c); the regression test
 * (tests/proto/test_regressions.c) runs the saved inputs through the very same
 * functions in the normal build. */
#ifndef EVPIPE_FUZZ_TARGETS_H
#define EVPIPE_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* The msgpack bodies: every input goes through ev_codec_decode_event,
 * _heartbeat and _repair, and is walked as an event body of several events
 * (ev_codec_next_event); what decodes is checked, re-encoded and compared. */
int fuzz_wire_run(const uint8_t *data, size_t len);

/* A CSV file: byte 0 chooses the record limit and how the file is cut into
 * reads, the rest is the file. First record as the header, the rest as rows;
 * every row that parses is rendered (COPY, JSON, CSV) and read back. */
int fuzz_csv_run(const uint8_t *data, size_t len);

/* Settings: the input split on NUL bytes; each piece is given to
 * evp_config_set for every setting, and the pieces are an argv for
 * evp_config_load (a program with no directory settings). */
int fuzz_config_run(const uint8_t *data, size_t len);

/* A body reaching the bus: its source check's walk (bus_scan) against the
 * writer's decoder, and the tap's redaction (bus_redact). */
int fuzz_bus_run(const uint8_t *data, size_t len);

typedef struct {
    const char *name;                              /* the folder name under corpus/ and regressions/ */
    int (*run)(const uint8_t *data, size_t len);  /* the target */
} fuzz_target_t;

/* Every target, NULL-name-terminated. */
extern const fuzz_target_t fuzz_targets[];

/* Looks a target up by name; NULL when there is none. */
const fuzz_target_t *fuzz_target_find(const char *name);

#endif
