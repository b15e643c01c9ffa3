-- Each event is stored once because a writer moves its stream's checkpoint
-- by compare-and-set in the same transaction as the rows: a transaction
-- that finds a checkpoint moved by another stores nothing. The unique index
-- on (source, partition, seq) that stood behind it made every row cost
-- PostgreSQL about 30% more (docs/performance.md) and is no longer needed.
DROP INDEX IF EXISTS events_identity;
