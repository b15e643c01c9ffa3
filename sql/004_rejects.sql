-- Every event a writer refused, with its identity, the reason and the event
-- as it arrived (the msgpack body), so nothing vanishes. A rejected event
-- still advances the checkpoint: it has been dealt with.
CREATE TABLE IF NOT EXISTS rejects (
    reject_id BIGSERIAL PRIMARY KEY,
    source VARCHAR(64),
    partition INT,
    seq BIGINT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BYTEA NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rejects_identity ON rejects (source, partition, seq);
