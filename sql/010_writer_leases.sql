-- Writer leases: a writer renews its row about once a second (at each look
-- at the other writers). A writer whose row is older than its own lease_ms
-- (WRITER_LEASE_MS: frozen, stuck, or cut off from PostgreSQL) has lost its
-- partitions: the next writer that looks ends its backend with
-- pg_terminate_backend, which releases its advisory locks (and aborts any
-- transaction it had open), deletes the row, and the writers share its
-- partitions out. The woken writer finds its connection gone, reconnects,
-- reads the checkpoints back before its next commit and takes its share
-- again: the checkpoints' compare-and-set keeps it from storing anything
-- twice, whatever it still had in its batch.
--   name        the writer's application_name (evpipe-writer/<host>/<pid>/<random>)
--   backend_pid the backend that renewed it last (the one to end)
--   renewed_at  when (PostgreSQL's clock: one clock for every writer)
--   lease_ms    how long the lease lasts without renewal
CREATE TABLE IF NOT EXISTS writer_leases (
    name        text PRIMARY KEY,
    backend_pid integer NOT NULL,
    renewed_at  timestamptz NOT NULL,
    lease_ms    integer NOT NULL CHECK (lease_ms > 0)
);
