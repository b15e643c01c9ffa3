-- The latest seq each publisher announced per partition (from heartbeats),
-- so lag (published minus committed) can be read in SQL.
CREATE TABLE IF NOT EXISTS publisher_heads (
    source VARCHAR(64) NOT NULL,
    partition INT NOT NULL,
    seq BIGINT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);
CREATE OR REPLACE VIEW pipeline_lag AS
SELECT h.source, h.partition, h.seq AS published_seq, COALESCE(c.seq, 0) AS committed_seq,
       h.seq - COALESCE(c.seq, 0) AS lag, h.seen_at, c.updated_at AS committed_at
FROM publisher_heads h
LEFT JOIN checkpoints c USING (source, partition);
