-- Holes the archive could not fill (their file was deleted): recorded, never
-- silent. The writer moves its checkpoint past them.
CREATE TABLE IF NOT EXISTS gaps (
    gap_id BIGSERIAL PRIMARY KEY,
    source VARCHAR(64) NOT NULL,
    partition INT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (first_seq <= last_seq)
);
