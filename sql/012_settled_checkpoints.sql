-- A writer forgets a source once everything it saw or was told of is
-- committed and nothing was heard of it for WRITER_STREAM_IDLE_MS; it then
-- marks the source's checkpoint settled. A writer taking a partition loads
-- (and looks past, for events nobody announced) only the sources not marked
-- so, however old: a commit clears the mark. Sources finished long ago are
-- read again only when they come back.
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS settled BOOLEAN NOT NULL DEFAULT false;
