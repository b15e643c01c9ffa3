-- Time partitions of events (opt-in, EVENTS_PARTITION_INTERVAL): the functions
-- that turn the plain table into one partitioned by event_time and keep its
-- partitions (made ahead, old ones dropped). This file only creates functions:
-- a database that does not partition is not changed. docs/postgresql.md.

-- The lower bound of the partition of length iv that holds t. Whole months
-- ('1 month', '3 months') start on the first of a month (counted from
-- 2000-01); fixed lengths ('1 day', '1 week', '6 hours') are counted from
-- Monday 2000-01-03 00:00, so weeks start on Mondays and days at midnight.
CREATE OR REPLACE FUNCTION evpipe_partition_floor(t timestamp, iv interval) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    months int := extract(year FROM iv)::int * 12 + extract(month FROM iv)::int;
    n int;
BEGIN
    IF months > 0 THEN
        IF iv <> make_interval(months => months) THEN
            RAISE EXCEPTION 'partition interval % mixes months with days or hours', iv;
        END IF;
        n := (extract(year FROM t)::int - 2000) * 12 + extract(month FROM t)::int - 1;
        n := n - (((n % months) + months) % months);
        RETURN timestamp '2000-01-01' + make_interval(months => n);
    END IF;
    IF iv < interval '1 minute' THEN
        RAISE EXCEPTION 'partition interval % is shorter than a minute', iv;
    END IF;
    RETURN date_bin(iv, t, timestamp '2000-01-03');
END $$;

-- The partitions of events with their bounds (NULL: MINVALUE/MAXVALUE), read
-- from the catalog rather than from names.
CREATE OR REPLACE FUNCTION evpipe_partitions()
RETURNS TABLE (name text, lower_bound timestamp, upper_bound timestamp, is_default boolean)
LANGUAGE sql STABLE SET datestyle = 'ISO, YMD' AS $$
    SELECT c.relname::text,
           substring(b FROM 'FROM \(''([^'']*)''\)')::timestamp,
           substring(b FROM 'TO \(''([^'']*)''\)')::timestamp,
           b = 'DEFAULT'
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL pg_get_expr(c.relpartbound, c.oid) AS b
    WHERE i.inhparent = to_regclass('events')
    ORDER BY 2 NULLS FIRST, 1
$$;

-- A new partition [lo, hi): a table like events with the seed's primary key,
-- the rows of that range the default partition holds moved into it, then
-- attached (which takes SHARE UPDATE EXCLUSIVE on events, so commits go on
-- meanwhile). The partitioned indexes (idx_event_time, idx_user_id) are
-- built on it as it is attached. Returns the rows moved.
CREATE OR REPLACE FUNCTION evpipe_partition_add(part text, lo timestamp, hi timestamp) RETURNS bigint
LANGUAGE plpgsql SET datestyle = 'ISO, YMD' AS $$
DECLARE
    moved bigint := 0;
    def text;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (event_id))',
                   part);
    SELECT name INTO def FROM evpipe_partitions() WHERE is_default;
    IF def IS NOT NULL THEN
        EXECUTE format('WITH m AS (DELETE FROM %I WHERE event_time >= %L AND event_time < %L RETURNING *) '
                       'INSERT INTO %I SELECT * FROM m', def, lo, hi, part);
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    RETURN moved;
END $$;

-- The name of the partition starting at lo: events_pYYYYMMDD, with the time
-- when it does not start at midnight.
CREATE OR REPLACE FUNCTION evpipe_partition_name(lo timestamp) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT 'events_p' || CASE WHEN lo::time = time '00:00' THEN to_char(lo, 'YYYYMMDD')
                              ELSE to_char(lo, 'YYYYMMDD"_"HH24MI') END
$$;

-- Turns the plain events table into one partitioned by range of event_time
-- with partitions of length iv, in one transaction under an ACCESS
-- EXCLUSIVE lock (no commit goes on meanwhile). Rows are not copied: the
-- old table becomes the partition events_legacy, from MINVALUE up to the end
-- of the current interval; its rows past that, or without an event_time,
-- move to the partitions that fit them or the default partition. Retention
-- drops events_legacy whole once that bound is old enough. With only_if_empty
-- a table that has rows is left alone. Returns what it did.
CREATE OR REPLACE FUNCTION evpipe_partition_events(iv interval, only_if_empty boolean DEFAULT false,
                                                   at timestamp DEFAULT (now() AT TIME ZONE 'UTC'))
RETURNS text
LANGUAGE plpgsql SET datestyle = 'ISO, YMD' AS $$
DECLARE
    rel regclass;
    seq text;
    bound timestamp;
    moved bigint;
    legacy boolean;
    idx record;
BEGIN
    -- One conversion at a time (writers starting together): the second finds
    -- the table partitioned once the first has committed.
    PERFORM pg_advisory_xact_lock(111559483256934);
    rel := to_regclass('events');
    IF rel IS NULL THEN
        RAISE EXCEPTION 'there is no events table';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) = 'p' THEN
        RETURN 'events is partitioned already';
    END IF;
    bound := evpipe_partition_floor(at, iv) + iv;
    LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
    legacy := EXISTS (SELECT 1 FROM events);
    IF legacy AND only_if_empty THEN
        RETURN 'events has rows: left as it is (evpipe-writer --partition-events converts it)';
    END IF;
    -- A view on events would follow the old table: the conversion is left to a person.
    IF EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
               WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = rel AND r.ev_class <> rel) THEN
        RAISE EXCEPTION 'views depend on events: drop them, partition, and create them again';
    END IF;
    seq := pg_get_serial_sequence('events', 'event_id');

    ALTER TABLE events RENAME TO events_legacy;
    -- The seed's index names go to the partitioned table; the old table keeps its
    -- indexes under new names and they become its partitions of the new ones.
    FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = rel LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.relname,
                       left('events_legacy_' || regexp_replace(idx.relname, '^(idx_|events_)', ''), 63));
    END LOOP;
    CREATE TABLE events (LIKE events_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        PARTITION BY RANGE (event_time);
    IF seq IS NOT NULL THEN
        EXECUTE format('ALTER SEQUENCE %s OWNED BY events.event_id', seq);
    END IF;
    CREATE TABLE events_default (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (event_id));
    ALTER TABLE events ATTACH PARTITION events_default DEFAULT;

    IF legacy THEN
        -- Rows the old table cannot keep as a range partition go through events.
        WITH m AS (DELETE FROM events_legacy WHERE event_time IS NULL OR event_time >= bound RETURNING *)
        INSERT INTO events SELECT * FROM m;
        GET DIAGNOSTICS moved = ROW_COUNT;
        -- With this constraint in place, attaching does not scan the table again.
        EXECUTE format('ALTER TABLE events_legacy ADD CONSTRAINT events_legacy_bound '
                       'CHECK (event_time IS NOT NULL AND event_time < %L)', bound);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                       bound);
        ALTER TABLE events_legacy DROP CONSTRAINT events_legacy_bound;
    ELSE
        DROP TABLE events_legacy;
    END IF;
    -- The seed's indexes, on every partition (the old table's are attached, not built again).
    CREATE INDEX idx_event_time ON events (event_time);
    CREATE INDEX idx_user_id ON events (user_id);
    IF legacy THEN
        RETURN format('events partitioned by %s; its rows before %s are the partition events_legacy, '
                      '%s rows moved', iv, bound, moved);
    END IF;
    RETURN format('events partitioned by %s', iv);
END $$;

-- Keeps the partitions of a partitioned events table: one for the current
-- interval and premake ahead; one for every interval (since the oldest
-- partition, or within retention) the default partition holds rows of,
-- which move into it; and drops every partition wholly older than
-- retention (NULL: keep all). Rows far outside (past retention or beyond
-- the partitions ahead) stay in the default partition: nothing is lost.
-- One caller at a time (the transaction advisory lock 111559483256934, the
-- migration lock's key + 1; others return at once); each step waits at most 2 s for its locks and is otherwise left for
-- the next call. Returns one line per thing done or left.
CREATE OR REPLACE FUNCTION evpipe_partition_maintain(iv interval, premake int, retention interval DEFAULT NULL,
                                                     at timestamp DEFAULT (now() AT TIME ZONE 'UTC'))
RETURNS SETOF text
LANGUAGE plpgsql SET datestyle = 'ISO, YMD' AS $$
DECLARE
    p record;
    lo timestamp;
    oldest timestamp;
    moved bigint;
    left_over bigint;
    def text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('events')) IS DISTINCT FROM 'p' THEN
        RETURN NEXT 'events is not partitioned';
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(111559483256934) THEN
        RETURN NEXT 'another session keeps the partitions now';
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '2s', true);
    IF NOT EXISTS (SELECT 1 FROM evpipe_partitions() WHERE is_default) THEN
        CREATE TABLE events_default (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (event_id));
        ALTER TABLE events ATTACH PARTITION events_default DEFAULT;
        RETURN NEXT 'created events_default';
    END IF;
    SELECT name INTO def FROM evpipe_partitions() WHERE is_default;

    -- Retention first: what it drops is not made again below.
    IF retention IS NOT NULL THEN
        FOR p IN SELECT * FROM evpipe_partitions()
                 WHERE NOT is_default AND upper_bound IS NOT NULL AND upper_bound <= at - retention LOOP
            BEGIN
                EXECUTE format('DROP TABLE %I', p.name);
                RETURN NEXT format('dropped %s (events before %s)', p.name, p.upper_bound);
            EXCEPTION WHEN lock_not_available THEN
                RETURN NEXT format('left %s for later: its lock was not had within 2 s', p.name);
            END;
        END LOOP;
    END IF;

    SELECT min(lower_bound) INTO oldest FROM evpipe_partitions() WHERE NOT is_default;
    IF retention IS NOT NULL THEN
        oldest := at - retention;
    END IF;
    FOR lo IN
        SELECT evpipe_partition_floor(at, iv) + iv * g FROM generate_series(0, premake) g
        UNION
        SELECT DISTINCT evpipe_partition_floor(event_time, iv) FROM events_default
        WHERE event_time >= oldest AND event_time < evpipe_partition_floor(at, iv) + iv * (premake + 1)
        ORDER BY 1
    LOOP
        IF lo + iv <= oldest OR EXISTS (SELECT 1 FROM evpipe_partitions()
                                        WHERE NOT is_default
                                          AND (lower_bound IS NULL OR lower_bound < lo + iv)
                                          AND (upper_bound IS NULL OR upper_bound > lo)) THEN
            CONTINUE;
        END IF;
        BEGIN
            moved := evpipe_partition_add(evpipe_partition_name(lo), lo, lo + iv);
            RETURN NEXT format('created %s (%s to %s)', evpipe_partition_name(lo), lo, lo + iv)
                        || CASE WHEN moved > 0 THEN format(', %s rows moved into it from %s', moved, def) ELSE '' END;
        EXCEPTION WHEN lock_not_available THEN
            RETURN NEXT format('left %s for later: its lock was not had within 2 s', evpipe_partition_name(lo));
        END;
    END LOOP;

    EXECUTE format('SELECT count(*) FROM %I', def) INTO left_over;
    IF left_over > 0 THEN
        RETURN NEXT format('%s rows are in %s (no partition of theirs: far past or future, or no event_time)',
                           left_over, def);
    END IF;
END $$;
