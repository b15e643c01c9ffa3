-- Which writer owns which partition, and how far each partition is behind.
-- A writer owns a partition while its connection holds the session advisory
-- lock (1702260855, partition): in pg_locks classid = 1702260855 ("evpw" in
-- ASCII), objid = the partition, objsubid = 2. Its application_name names it
-- (evpipe-writer/<host>/<pid>/<random>).
--
-- One row per partition that has an owner or data:
--   writer, writer_pid  the owner (NULL: nobody owns it now)
--   sources             (source, partition) streams known (checkpoints or heads)
--   committed_seq       sum over the streams of their checkpoint: events of the
--                       partition dealt with (stored, rejected or recorded as gaps)
--   published_seq       sum over the streams of the latest seq known published
--                       (the publisher's head, or the checkpoint when higher:
--                       heads are recorded about once a second)
--   lag                 published_seq - committed_seq: events published and not
--                       committed yet (as of the last recorded heads)
--   committed_at        the last checkpoint update
-- Two rows with the same partition would mean two owners; the locks are
-- exclusive, so that never happens.
CREATE OR REPLACE VIEW writer_assignments AS
WITH owners AS (
    SELECT l.objid::int AS partition, a.application_name AS writer, l.pid AS writer_pid
    FROM pg_locks l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.classid = 1702260855::oid AND l.objsubid = 2 AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
streams AS (
    SELECT partition, COALESCE(c.seq, 0) AS committed,
           GREATEST(COALESCE(h.seq, 0), COALESCE(c.seq, 0)) AS published, c.updated_at
    FROM checkpoints c
    FULL JOIN publisher_heads h USING (source, partition)
),
progress AS (
    SELECT partition, count(*) AS sources, sum(committed)::bigint AS committed_seq,
           sum(published)::bigint AS published_seq, max(updated_at) AS committed_at
    FROM streams
    GROUP BY partition
)
SELECT COALESCE(o.partition, p.partition) AS partition, o.writer, o.writer_pid,
       COALESCE(p.sources, 0) AS sources, COALESCE(p.committed_seq, 0) AS committed_seq,
       COALESCE(p.published_seq, 0) AS published_seq,
       COALESCE(p.published_seq, 0) - COALESCE(p.committed_seq, 0) AS lag, p.committed_at
FROM owners o
FULL JOIN progress p ON p.partition = o.partition
ORDER BY 1, 2;
