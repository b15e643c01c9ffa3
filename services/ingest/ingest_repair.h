/* The repair server: a ROUTER bound on REPLAY_ENDPOINT answering writers'
 * ["REPAIR", body] requests with ["EVENT", event]... then ["END", body]
 * (docs/protocol.md). It runs in a thread of its own with its own ZeroMQ
 * context and socket, so a repair never waits for file work and file work
 * never waits for a repair; it reads the archive folder through an index
 * (ingest_archive) and file- sources from the files the ledger names. */
#ifndef INGEST_REPAIR_H
#define INGEST_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evpipe/config.h"
#include "ingest_ledger.h"
#include "ingest_metrics.h"

typedef struct ingest_repair_t ingest_repair_t;

/* Binds and starts serving. warm: index the archive folder at once (a
 * long-running ingest) rather than at the first request. Requests answered
 * and events sent are counted in metrics (NULL: none). NULL with why when
 * REPLAY_ENDPOINT cannot be bound (for instance another ingest already
 * serves it). The ledger and metrics must outlive the server. */
ingest_repair_t *ingest_repair_new(const evp_config_t *cfg, ingest_ledger_t *ledger, bool warm,
                                   ingest_metrics_t *metrics, char *why, size_t whylen);
/* Stops the thread (a repair being sent is cut short) and unbinds. */
void ingest_repair_destroy(ingest_repair_t **self_p);

/* Requests answered so far. */
uint64_t ingest_repair_requests(const ingest_repair_t *self);

#endif
