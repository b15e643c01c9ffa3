#!/usr/bin/env python3
"""Helper of scripts/chaos: the seeded fault schedule, old-format CSV files,
the forged bus peer, the "is this archive file committed" test, and the
checker that compares what was archived and ingested with what PostgreSQL
holds. Run by scripts/chaos; each subcommand is described by --help."""

import argparse
import csv
import json
import os
import random
import sys
import time

# The event's payload columns in the old generator's order (docs/protocol.md,
# proto/include/evpipe/event_fields.def), and the identity columns archive
# files add. The header of every file read is mapped by name, not position.
PAYLOAD = ["user_id", "user_name", "user_email", "event_type", "product_id", "product_name",
           "product_category", "product_price", "event_time"]
IDENTITY = ["source", "partition", "seq"]
TYPED = ["user_id::int", "user_name", "user_email", "event_type", "product_id::int", "product_name",
         "product_category", "product_price::numeric(10,2)", "event_time::timestamp"]

# ---- The schedule ----

# kind: (weight, what it does). Replays are actions, not faults.
KINDS = {
    "kill9": 6.0,          # kill -9 a service, restart it after a pause
    "stop": 3.0,           # SIGSTOP a service, SIGCONT it after a pause
    "pg-restart": 2.0,     # pg_ctl restart -m immediate | fast
    "scale": 2.0,          # writers to 1..3
    "delete-archive": 2.0,  # delete a closed archive file (committed ones, or any)
    "forge-heartbeat": 0.5,  # an outside peer announces seq 2^62 for a real source
    "forge-events": 0.5,   # an outside peer sends a far-seq event and one of its own source
    "bus-restart-replay": 1.0,  # kill -9 and restart the bus while a replay runs
    "partitions-mismatch": 1.0,  # a generator or writer with another PARTITIONS
    "replay": 3.0,         # a one-shot replay of an archive copy or an old-format file (maybe from elsewhere)
}
TARGETS = ["bus", "ingest", "generator", "writer", "writer", "replay"]


def cmd_schedule(a):
    """Prints the configuration and the fault plan a seed makes."""
    rng = random.Random(a.seed)
    # Variants of a kind come from a stream of their own, so that adding one
    # leaves the rest of every seed's schedule as it was.
    variants = random.Random(f"{a.seed}/variants")
    exclude = set(filter(None, (a.exclude or "").split(",")))
    kinds = [k for k in KINDS if k not in exclude]
    weights = [KINDS[k] for k in kinds]
    rate = rng.choice([300, 500, 800, 1000, 1500, 2000])
    writers = rng.randint(1, 3)
    rotate = rng.choice([5, 8, 12])
    olds = rng.randint(3, 5)
    print(f"config rate={rate} writers={writers} rotate={rotate} oldfiles={olds}")
    end = a.minutes * 60 - 5
    t = rng.uniform(6, 10)
    while t < end and kinds:
        kind = rng.choices(kinds, weights)[0]
        if kind == "kill9":
            arg = f"{rng.choice(TARGETS)}#{rng.randrange(3)}:{rng.uniform(0.2, 3):.1f}"
        elif kind == "stop":
            arg = f"{rng.choice(TARGETS)}#{rng.randrange(3)}:{rng.uniform(0.5, 8):.1f}"
        elif kind == "pg-restart":
            arg = rng.choice(["immediate", "fast"])
        elif kind == "scale":
            arg = str(rng.randint(1, 3))
        elif kind == "delete-archive":
            arg = f"{rng.choices(['committed', 'any', 'all-restart'], [5, 1, 1.5])[0]}:{rng.random():.3f}"
        elif kind in ("forge-heartbeat", "forge-events"):
            arg = "-"
        elif kind == "bus-restart-replay":
            arg = f"{rng.choice(['archive', 'old'])}:{rng.randrange(1000)}:{rng.uniform(0.3, 2):.1f}"
        elif kind == "partitions-mismatch":
            arg = f"{rng.choice(['generator', 'writer'])}:{rng.choice([8, 32])}"
        else:  # replay; old-elsewhere: from another working directory (another STATE_DIR)
            what = rng.choice(['archive', 'old', 'old'])
            if what == "old" and variants.random() < 0.4:
                what = "old-elsewhere"
            arg = f"{what}:{rng.randrange(1000)}"
        print(f"fault {t:.1f} {kind} {arg}")
        t += rng.uniform(3, 9)


# ---- Old-format files ----

FIRST = ["Anna", "José", "O'Brien", "Zoë", "Li", "Mary \"Mo\"", "Smith, John", "Ivan", "Ngozi", "Élodie"]
LAST = ["Müller", "Ivanova", "Smith", "García", "Kowalski", "Nguyen", "Okafor", "Rossi"]
PRODUCTS = [("Laptop, 15 inch", "Electronics"), ("Coffee Mug", "Kitchen"), ("USB-C Cable 2m", "Electronics"),
            ("Wireless Mouse", "Electronics"), ("Chef's Knife", "Kitchen"), ("Novel \"Dune\"", "Books"),
            ("Yoga Mat", "Sports"), ("Desk Lamp", "Home")]


def cmd_oldfile(a):
    """Writes one file in the old generator's format (nine columns, no identity)."""
    rng = random.Random(f"{a.seed}/{a.index}")
    crlf = rng.random() < 0.5
    base = 1700000000 + rng.randrange(10**7)
    with open(a.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n" if crlf else "\n")
        w.writerow(PAYLOAD)
        for i in range(a.rows):
            uid = rng.randrange(1, 20000)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            product, category = rng.choice(PRODUCTS)
            cents = rng.randrange(1, 10**6)
            price = rng.choice([f"{cents / 100:.2f}", f"{cents // 10 / 10:.1f}", str(cents // 100)])
            t = base + i * 0.37 + rng.random() / 10
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
            if rng.random() < 0.7:
                stamp += f".{int((t % 1) * 1e6):06d}"
            if rng.random() < 0.1:
                stamp = stamp.replace(" ", "T")
            w.writerow([uid, name, f"user{uid}.{i}@example.com", rng.choice(["view", "view", "purchase"]),
                        rng.randrange(1, 500), product, category, price, stamp])


# ---- Archive files ----

def read_rows(path):
    """The rows of a CSV file as dicts by header name (a torn last line is skipped)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        data = f.read()
    if not data.endswith("\n"):
        data = data[:data.rfind("\n") + 1]
    return list(csv.DictReader(data.splitlines(keepends=True)))


def file_heads(path):
    heads = {}
    for r in read_rows(path):
        try:
            key = (r["source"], int(r["partition"]))
            heads[key] = max(heads.get(key, 0), int(r["seq"]))
        except (KeyError, TypeError, ValueError):
            continue
    return heads


def connect(a):
    import psycopg2
    return psycopg2.connect(host="127.0.0.1", port=a.pgport, user=a.pguser, dbname=a.pgdb,
                            connect_timeout=5)


def cmd_committed(a):
    """Prints yes when every (source, partition) max seq of FILE is at or below its checkpoint."""
    heads = file_heads(a.file)
    with connect(a) as db, db.cursor() as c:
        c.execute("SELECT source, partition, seq FROM checkpoints")
        cp = {(s, p): q for s, p, q in c.fetchall()}
    ok = bool(heads) and all(cp.get(k, 0) >= v for k, v in heads.items())
    print("yes" if ok else "no")


def cmd_last_source(a):
    """Prints the source of the last row of the newest archive file."""
    names = sorted(n for n in os.listdir(a.dir) if n.endswith(".csv") and not n.startswith("."))
    for n in reversed(names):
        rows = read_rows(os.path.join(a.dir, n))
        if rows and rows[-1].get("source"):
            print(rows[-1]["source"])
            return
    sys.exit("no archived event yet")


# ---- The forged peer ----

def partition_of(user_id, partitions):
    """docs/protocol.md: the partition of a user."""
    m = 0xFFFFFFFF
    h = user_id & m
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    h ^= h >> 16
    return h % partitions


def s_peer(endpoint, timeout):
    """An XPUB connected to the bus's publish side, once the bus has subscribed."""
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.LINGER, 3000)
    s.setsockopt(zmq.XPUB_NODROP, 1)
    s.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    s.connect(endpoint)
    if not s.poll(int(timeout * 1000), zmq.POLLIN):
        sys.exit(f"the bus did not subscribe within {timeout} s")
    s.recv()  # the subscription (\x01 + prefix)
    return ctx, s


def s_send(s, topic, body):
    import msgpack
    s.send_multipart([topic.encode(), msgpack.packb(body, use_bin_type=True)])


def cmd_forge_heartbeat(a):
    ctx, s = s_peer(a.endpoint, a.timeout)
    now = int(time.time() * 1e6)
    for p in range(a.partitions):
        s_send(s, f"p{p:04d}/hb", {"v": 1, "source": a.source, "partition": p, "seq": a.seq,
                                  "published_at": now})
    time.sleep(0.5)
    s.close()
    ctx.term()
    print(f"sent {a.partitions} heartbeats source={a.source} seq={a.seq}")


def cmd_forge_events(a):
    ctx, s = s_peer(a.endpoint, a.timeout)
    now = int(time.time() * 1e6)
    out = []
    for source, seq, uid in ((a.real_source, a.far_seq, 4242), (a.own_source, 1, 4343)):
        p = partition_of(uid, a.partitions)
        ev = {"v": 1, "user_id": uid, "user_name": "Forged Peer", "user_email": "forged@example.com",
              "event_type": "view", "product_id": 7, "product_name": "Forgery", "product_category": "Chaos",
              "product_price": 1234, "event_time": now, "source": source, "partition": p, "seq": seq,
              "published_at": now}
        s_send(s, f"p{p:04d}/ev", ev)
        out.append({"source": source, "partition": p, "seq": seq,
                    "kind": "far-seq" if source == a.real_source else "own-source"})
    time.sleep(0.5)
    s.close()
    ctx.term()
    with open(a.record, "a") as f:
        for o in out:
            f.write(json.dumps(o) + "\n")
    print("sent " + ", ".join(f"{o['source']}/{o['partition']}/{o['seq']}" for o in out))


# ---- The checker ----

SCHEMA = "chaos_check"


def s_load(c, table, path, extra):
    """COPYs a CSV file into TABLE (text columns), mapping its header by name."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader([f.readline()]), [])
    cols = [h for h in header if h in PAYLOAD + IDENTITY]
    if len(cols) != len(header):
        raise SystemExit(f"{path}: unexpected header {header}")
    # A torn last line (a killed generator never restarted) is cut off.
    with open(path, "rb") as f:
        data = f.read()
    if not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    import io
    c.copy_expert(f"COPY {SCHEMA}.{table} ({','.join(cols)}) FROM STDIN WITH (FORMAT csv, HEADER true)",
                  io.BytesIO(data))
    sets = ", ".join(f"{k} = %s" for k in extra)
    c.execute(f"UPDATE {SCHEMA}.{table} SET {sets} WHERE file IS NULL", list(extra.values()))


def cmd_load(a):
    """Loads every archived and old-format event into the checker's schema."""
    deleted = {}
    if a.deleted and os.path.exists(a.deleted):
        for line in open(a.deleted):
            f = line.rstrip("\n").split("\t")
            if len(f) >= 3:
                deleted[f[1]] = f[2] == "yes"
    with connect(a) as db, db.cursor() as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        text = ", ".join(f"{k} text" for k in PAYLOAD + IDENTITY)
        c.execute(f"CREATE TABLE {SCHEMA}.arch (file text, lost boolean, {text})")
        c.execute(f"CREATE TABLE {SCHEMA}.old (file text, {', '.join(f'{k} text' for k in PAYLOAD)})")
        c.execute(f"CREATE TABLE {SCHEMA}.forged (source text, partition int, seq bigint, kind text)")
        n = 0
        for d in a.archive:
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if name.endswith(".csv") and not name.startswith("."):
                    # A saved copy of a deleted file: lost when it was deleted before its commit.
                    lost = (name in deleted) and not deleted[name] and d == a.saved
                    s_load(c, "arch", os.path.join(d, name), {"file": name, "lost": lost})
                    n += 1
        for path in a.old:
            s_load(c, "old", path, {"file": os.path.basename(path)})
        if a.forged and os.path.exists(a.forged):
            for line in open(a.forged):
                o = json.loads(line)
                c.execute(f"INSERT INTO {SCHEMA}.forged VALUES (%s, %s, %s, %s)",
                          (o["source"], o["partition"], o["seq"], o["kind"]))
        c.execute(f"""
            CREATE TABLE {SCHEMA}.exp AS
            SELECT DISTINCT {', '.join(f'{t} AS {k}' for t, k in zip(TYPED, PAYLOAD))},
                   source, partition::int AS partition, seq::bigint AS seq, bool_or(lost) OVER w AS lost
            FROM {SCHEMA}.arch WINDOW w AS (PARTITION BY source, partition, seq);
            CREATE INDEX ON {SCHEMA}.exp (source, partition, seq);
            CREATE TABLE {SCHEMA}.heads AS
            SELECT source, partition, max(seq) AS head FROM {SCHEMA}.exp GROUP BY 1, 2;
            CREATE TABLE {SCHEMA}.oldexp AS
            SELECT {', '.join(f'{t} AS {k}' for t, k in zip(TYPED, PAYLOAD))} FROM {SCHEMA}.old;
            ANALYZE {SCHEMA}.exp""")
        c.execute(f"SELECT count(*), count(DISTINCT source) FROM {SCHEMA}.exp")
        rows, sources = c.fetchone()
        c.execute(f"SELECT count(*) FROM {SCHEMA}.oldexp")
        print(f"loaded {n} archive files: {rows} events of {sources} sources; "
              f"{c.fetchone()[0]} old-format rows of {len(a.old)} files")


def cmd_converged(a):
    """Exit 0 when every archived stream's checkpoint is at or past its archive head; prints the lag."""
    with connect(a) as db, db.cursor() as c:
        c.execute(f"""SELECT count(*), coalesce(sum(h.head - coalesce(k.seq, 0)), 0)
                      FROM {SCHEMA}.heads h LEFT JOIN checkpoints k USING (source, partition)
                      WHERE coalesce(k.seq, 0) < h.head AND h.partition < %s""", (a.partitions,))
        streams, lag = c.fetchone()
        c.execute("SELECT coalesce(sum(seq), 0), count(*) FROM checkpoints")
        total = c.fetchone()
    print(f"behind={streams} lag={lag} checkpoints={total[0]}/{total[1]}")
    sys.exit(0 if streams == 0 else 1)


def s_examples(c, sql, n=3):
    c.execute(sql + f" LIMIT {n}")
    return "; ".join(" ".join(str(x) for x in r) for r in c.fetchall())


def cmd_check(a):
    """Compares the tables with what was archived and ingested; prints findings and the verdict."""
    S = SCHEMA
    pay = ", ".join(PAYLOAD)
    fail = []
    notes = []

    def finding(label, count, examples="", fatal=True):
        line = f"  {label}: {count}" + (f"  e.g. {examples}" if examples and count else "")
        print(line)
        if count and fatal:
            fail.append(f"{label} {count}")

    def rows_finding(label, sql):
        """A finding of the rows sql returns, a few of them as examples."""
        c.execute(f"SELECT count(*) FROM ({sql}) q")
        finding(label, c.fetchone()[0], s_examples(c, sql))

    with connect(a) as db, db.cursor() as c:
        if a.plant:
            # Self-test: one archived row removed, one duplicated, one gap and one reject nobody explains.
            c.execute(f"""DELETE FROM events WHERE event_id = (SELECT min(event_id) FROM events e
                          WHERE EXISTS (SELECT 1 FROM {S}.heads h WHERE h.source = e.source))""")
            c.execute(f"""INSERT INTO events ({pay}, source, partition, seq)
                          SELECT {pay}, source, partition, seq FROM events
                          WHERE event_id = (SELECT max(event_id) FROM events)""")
            c.execute("INSERT INTO gaps (source, partition, first_seq, last_seq) VALUES ('planted', 0, 1, 1)")
            c.execute("INSERT INTO rejects (source, partition, seq, reason, detail, raw) "
                      "VALUES ('planted', 0, 1, 'planted', 'self-test', '\\x00')")
            print("self-test: planted 1 missing row, 1 duplicate, 1 gap, 1 reject")
        c.execute(f"""DROP TABLE IF EXISTS {S}.got;
            CREATE TABLE {S}.got AS SELECT {pay}, source, partition, seq FROM events;
            CREATE INDEX ON {S}.got (source, partition, seq); ANALYZE {S}.got""")
        c.execute(f"SELECT count(*) FROM {S}.got")
        total = c.fetchone()[0]
        c.execute(f"SELECT count(*) FROM {S}.exp")
        expected = c.fetchone()[0]
        print(f"checker: events table {total} rows; archived events {expected}")

        # Archived identities used by two different events (a seq reused).
        reused = f"SELECT source, partition, seq FROM {S}.exp GROUP BY 1, 2, 3 HAVING count(*) > 1"
        rows_finding("archived identities reused by different events", reused)

        # Archived events not stored (lost = their file was deleted before its commit: allowed).
        c.execute(f"""SET work_mem = '256MB';
            CREATE TEMP TABLE miss AS
            SELECT source, partition, seq, {pay} FROM {S}.exp WHERE NOT lost
            EXCEPT SELECT source, partition, seq, {pay} FROM {S}.got;
            CREATE TEMP TABLE gp AS SELECT source, partition, first_seq, last_seq FROM gaps;
            CREATE INDEX ON gp (source, partition, first_seq)""")
        missing = "SELECT source, partition, seq FROM miss"
        c.execute("SELECT count(*) FROM miss")
        n = c.fetchone()[0]
        finding("archived events missing from events", n, s_examples(c, missing + " ORDER BY 1, 2, 3"))
        if n:
            c.execute(f"""SELECT m.source, count(*), count(g.user_id) FROM miss m
                          LEFT JOIN {S}.got g USING (source, partition, seq) GROUP BY 1 ORDER BY 2 DESC LIMIT 5""")
            for src, k, other in c.fetchall():
                print(f"    {src}: {k} missing ({other} of them: identity stored with another payload)")
            c.execute("""SELECT count(*) FROM miss m WHERE m.seq <= (SELECT x.last_seq FROM gp x
                           WHERE x.source = m.source AND x.partition = m.partition AND x.first_seq <= m.seq
                           ORDER BY x.first_seq DESC LIMIT 1)""")
            print(f"    of which inside recorded gaps: {c.fetchone()[0]}")

        # Nothing twice, per identity.
        dup = f"""SELECT source, partition, seq, count(*) FROM {S}.got WHERE source IS NOT NULL
                  GROUP BY 1, 2, 3 HAVING count(*) > 1"""
        c.execute(f"SELECT count(*), coalesce(sum(n - 1), 0) FROM ({dup}) d(s, p, q, n)")
        ids, extra = c.fetchone()
        finding("identities stored more than once", ids, s_examples(c, dup))
        if ids:
            print(f"    extra rows: {extra}")

        # Rows of archived sources whose identity was never archived.
        stray = f"""SELECT source, partition, seq FROM {S}.got WHERE source IN (SELECT source FROM {S}.heads)
                    EXCEPT ALL SELECT source, partition, seq FROM {S}.exp"""
        rows_finding("rows of archived sources never archived", stray)

        # Old-format files: the nine columns as a multiset, over rows of sources
        # that are neither archived nor forged.
        oldrows = f"""SELECT {pay} FROM {S}.got WHERE source IS NULL OR (source NOT IN (SELECT source FROM {S}.heads)
                      AND source NOT IN (SELECT source FROM {S}.forged))"""
        c.execute(f"""WITH e AS (SELECT {pay}, count(*) n FROM {S}.oldexp GROUP BY {pay}),
                           g AS (SELECT {pay}, count(*) n FROM ({oldrows}) o GROUP BY {pay})
                      SELECT coalesce(sum(greatest(coalesce(e.n, 0) - coalesce(g.n, 0), 0)), 0),
                             coalesce(sum(greatest(coalesce(g.n, 0) - coalesce(e.n, 0), 0)), 0)
                      FROM e FULL JOIN g USING ({pay})""")
        omiss, oextra = c.fetchone()
        finding("old-format rows missing", omiss)
        finding("old-format rows stored too often or never ingested", oextra)

        # Forged events: the far seq of a real source must never be stored.
        c.execute(f"""SELECT count(*) FROM {S}.forged f JOIN {S}.got g USING (source, partition, seq)
                      WHERE f.kind = 'far-seq'""")
        finding("forged far-seq events stored", c.fetchone()[0])
        c.execute(f"""SELECT count(*) FROM {S}.forged f JOIN {S}.got g USING (source, partition, seq)
                      WHERE f.kind = 'own-source'""")
        finding("forged events of the peer's own source stored (allowed)", c.fetchone()[0], fatal=False)

        # Gaps: only inside files deleted before their events were committed.
        c.execute(f"""CREATE TEMP TABLE lost AS SELECT DISTINCT source, partition, seq FROM {S}.exp WHERE lost;
                      CREATE INDEX ON lost (source, partition, seq)""")
        unexplained = """SELECT x.source, x.partition, x.first_seq, x.last_seq FROM gp x
            WHERE (SELECT count(*) FROM lost e WHERE e.source = x.source
                   AND e.partition = x.partition AND e.seq BETWEEN x.first_seq AND x.last_seq)
                  < x.last_seq - x.first_seq + 1"""
        c.execute(f"SELECT count(*), coalesce(sum(last_seq - first_seq + 1), 0) FROM ({unexplained}) u")
        k, seqs = c.fetchone()
        finding("unexplained gap rows", k, s_examples(c, unexplained + " ORDER BY 1, 2, 3"))
        if k:
            print(f"    seqs in them: {seqs}")
            c.execute(f"""SELECT count(*) FROM gp x JOIN {S}.heads h USING (source, partition)
                          WHERE x.last_seq > h.head""")
            print(f"    gap rows beyond the archive head: {c.fetchone()[0]}")
            c.execute(f"""SELECT count(*) FROM gaps x
                          WHERE x.source NOT IN (SELECT source FROM {S}.heads)""")
            print(f"    gap rows of sources not archived (old-format or forged): {c.fetchone()[0]}")
        c.execute("SELECT count(*) FROM gaps")
        print(f"  gap rows in all: {c.fetchone()[0]}")

        # Rejects: every one explained by a forged event.
        rej = f"""SELECT r.source, r.partition, r.seq, r.reason FROM rejects r
                  WHERE NOT EXISTS (SELECT 1 FROM {S}.forged f WHERE f.source = r.source
                  AND (r.seq IS NULL OR (f.partition = r.partition AND f.seq = r.seq)))"""
        rows_finding("unexplained rejects", rej)

        # Checkpoints and recorded heads never past the archive.
        past = f"""SELECT k.source, k.partition, k.seq, h.head FROM checkpoints k
                   JOIN {S}.heads h USING (source, partition) WHERE k.seq > h.head"""
        rows_finding("checkpoints past the archive head", past)
        behind = f"""SELECT h.source, h.partition, coalesce(k.seq, 0), h.head FROM {S}.heads h
                     LEFT JOIN checkpoints k USING (source, partition) WHERE coalesce(k.seq, 0) < h.head"""
        rows_finding("streams whose checkpoint is below the archive head", behind)
        heads = f"""SELECT p.source, p.partition, p.seq, h.head FROM publisher_heads p
                    JOIN {S}.heads h USING (source, partition) WHERE p.seq > h.head"""
        rows_finding("publisher_heads past the archive head", heads)

    for r in a.fail or []:
        print(f"  {r}")
        fail.append(r)
    for r in notes:
        print(f"  note: {r}")
    print("verdict=" + ("clean" if not fail else "FAIL: " + "; ".join(fail)))
    sys.exit(1 if fail else 0)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def db(sp):
        sp.add_argument("--pgport", type=int, required=True)
        sp.add_argument("--pguser", default="evpipe")
        sp.add_argument("--pgdb", default="events")

    sp = sub.add_parser("schedule", help="the configuration and fault plan of a seed")
    sp.add_argument("--seed", type=int, required=True)
    sp.add_argument("--minutes", type=float, required=True)
    sp.add_argument("--exclude", help="fault kinds left out, comma-separated")
    sp.set_defaults(f=cmd_schedule)
    sp = sub.add_parser("oldfile", help="an old-format CSV file")
    sp.add_argument("--seed", type=int, required=True)
    sp.add_argument("--index", type=int, required=True)
    sp.add_argument("--rows", type=int, required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(f=cmd_oldfile)
    sp = sub.add_parser("committed", help="yes when every event of an archive file is committed")
    db(sp)
    sp.add_argument("file")
    sp.set_defaults(f=cmd_committed)
    sp = sub.add_parser("last-source", help="the source of the newest archived event")
    sp.add_argument("dir")
    sp.set_defaults(f=cmd_last_source)
    sp = sub.add_parser("forge-heartbeat", help="heartbeats announcing SEQ on every partition")
    sp.add_argument("--endpoint", required=True)
    sp.add_argument("--source", required=True)
    sp.add_argument("--partitions", type=int, required=True)
    sp.add_argument("--seq", type=int, default=2**62)
    sp.add_argument("--timeout", type=float, default=10)
    sp.set_defaults(f=cmd_forge_heartbeat)
    sp = sub.add_parser("forge-events", help="a far-seq event of a real source and one of its own")
    sp.add_argument("--endpoint", required=True)
    sp.add_argument("--real-source", required=True)
    sp.add_argument("--own-source", required=True)
    sp.add_argument("--far-seq", type=int, default=2**40)
    sp.add_argument("--partitions", type=int, required=True)
    sp.add_argument("--record", required=True)
    sp.add_argument("--timeout", type=float, default=10)
    sp.set_defaults(f=cmd_forge_events)
    sp = sub.add_parser("load", help="load the archive and old-format files for the checker")
    db(sp)
    sp.add_argument("--archive", action="append", default=[], help="a folder of archive files")
    sp.add_argument("--saved", help="the folder (one of --archive) of copies of deleted files")
    sp.add_argument("--deleted", help="TSV: time, file, committed yes|no")
    sp.add_argument("--old", action="append", default=[], help="an old-format file ingested")
    sp.add_argument("--forged", help="JSON lines of the forged events")
    sp.set_defaults(f=cmd_load)
    sp = sub.add_parser("converged", help="exit 0 when checkpoints reach the archive heads")
    db(sp)
    sp.add_argument("--partitions", type=int, default=16, help="streams of partitions beyond are not waited for")
    sp.set_defaults(f=cmd_converged)
    sp = sub.add_parser("check", help="the checker")
    db(sp)
    sp.add_argument("--plant", action="store_true", help="self-test: plant discrepancies first")
    sp.add_argument("--fail", action="append", help="a failure the harness saw itself")
    sp.set_defaults(f=cmd_check)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
