-- The last committed seq of each (source, partition). A writer updates it in
-- the same transaction as the rows, so rows and checkpoint never disagree.
CREATE TABLE IF NOT EXISTS checkpoints (
    source VARCHAR(64) NOT NULL,
    partition INT NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);
