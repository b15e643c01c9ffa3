-- evpipe's additions to events: a 64-bit key (a 32-bit serial runs out after
-- 2^31 rows) and the event's identity (source, partition, seq), unique, so a
-- replayed or duplicated event can never be stored twice. Rows from before
-- evpipe keep NULL identities, which the unique index allows.
ALTER TABLE events ALTER COLUMN event_id TYPE BIGINT;
ALTER SEQUENCE events_event_id_seq AS BIGINT;
ALTER TABLE events ADD COLUMN IF NOT EXISTS source VARCHAR(64);
ALTER TABLE events ADD COLUMN IF NOT EXISTS partition INT;
ALTER TABLE events ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (source, partition, seq);
