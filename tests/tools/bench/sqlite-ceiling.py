#!/usr/bin/env python3
"""What SQLite alone costs for the ingest's writes on this machine: the ceiling any
SQLite writer can reach, with no broker, JSON or Rust in the way.

Per report: one history row (851-byte body, primary key terminal_id/seq) and one
upsert of the terminal's current state (a 1200-byte JSON text), in batches of one
transaction each, WAL with synchronous=FULL as fleetd runs. Terminals are chosen
at random among 20,000, as in `fleet-bench ingest --terminals 20000`.

    python3 tests/tools/bench/sqlite-ceiling.py                   # as fleetd is configured
    CHECKPOINT=16384 python3 tests/tools/bench/sqlite-ceiling.py  # the earlier checkpoint interval
    BATCH=2000 python3 tests/tools/bench/sqlite-ceiling.py

Prints reports/s (wall) and CPU microseconds per report.
"""

import os
import random
import resource
import sqlite3
import tempfile
import time

TERMINALS = 20_000
REPORTS = 200_000
BATCH = int(os.environ.get("BATCH", "1000"))
CHECKPOINT = int(os.environ.get("CHECKPOINT", "65536"))
SYNC = os.environ.get("SYNC", "FULL")
BODY = "x" * 851
STATE = "y" * 1200


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "ceiling.db"), isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={SYNC}",
            "cache_size=-65536",
            "temp_store=MEMORY",
            f"wal_autocheckpoint={CHECKPOINT}",
        ):
            db.execute(f"PRAGMA {pragma}")
        db.execute(
            "CREATE TABLE reports (terminal_id TEXT, seq INTEGER, tenant TEXT, clinic_code TEXT,"
            " observed_at TEXT, received_at TEXT, body TEXT, PRIMARY KEY (terminal_id, seq))"
        )
        db.execute(
            "CREATE TABLE terminals (terminal_id TEXT PRIMARY KEY, tenant TEXT, clinic_code TEXT,"
            " prefecture TEXT, last_seq INTEGER, last_observed_at TEXT, last_received_at TEXT,"
            " state TEXT)"
        )
        db.execute("CREATE INDEX terminals_by_clinic ON terminals (clinic_code, tenant)")
        ids = [f"5a1d7c3e-2f4b-4c8a-9e6d-{i:012d}" for i in range(TERMINALS)]
        seqs = [0] * TERMINALS
        rng = random.Random(1)
        started = time.monotonic()
        for _ in range(REPORTS // BATCH):
            history, latest = [], {}
            for _ in range(BATCH):
                i = rng.randrange(TERMINALS)
                seqs[i] += 1
                at = "2026-01-22T09:00:00+09:00"
                history.append((ids[i], seqs[i], "demo", "1312345678", at, at, BODY))
                latest[ids[i]] = (ids[i], "demo", "1312345678", "13", seqs[i], at, at, STATE)
            db.execute("BEGIN IMMEDIATE")
            for terminal in latest:
                db.execute("SELECT tenant, state FROM terminals WHERE terminal_id = ?", (terminal,)).fetchall()
            db.executemany("INSERT INTO reports VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", history)
            db.executemany(
                "INSERT INTO terminals VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (terminal_id) DO UPDATE SET"
                " last_seq = excluded.last_seq, last_observed_at = excluded.last_observed_at,"
                " last_received_at = excluded.last_received_at, state = excluded.state",
                list(latest.values()),
            )
            db.execute("COMMIT")
        wall = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"SQLite alone, batch {BATCH}, synchronous={SYNC}, wal_autocheckpoint={CHECKPOINT}: "
            f"{REPORTS / wall:,.0f} reports/s, {cpu / REPORTS * 1e6:.1f} us CPU per report "
            f"(Python's own share included)"
        )


if __name__ == "__main__":
    main()
