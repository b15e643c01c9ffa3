-- Settings every service of one deployment must agree on (PARTITIONS: it
-- decides which topic, and so which writer, an event goes to). The first
-- service that finds the table records its value; a writer, generator or
-- ingest started with another value refuses to start, naming both
-- (services/common/src/deploy.c, docs/operations.md). To change one on
-- purpose: stop every service, delete its row, start them with the new value.
CREATE TABLE IF NOT EXISTS deployment_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    recorded_by TEXT NOT NULL
);
