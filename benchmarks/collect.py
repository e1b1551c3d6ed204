"""Benchmark: collecting readings into the SQLite store, against raw ``sqlite3.executemany``.

Measures, interleaved over several repetitions (medians reported, the machine may be noisy):

* ``store``: ``SQLiteStore.append(batch)`` for simulated batches (one transaction per batch);
* ``raw``: the limit, ``sqlite3.executemany`` of the same rows, already as Python tuples, into a
  table with the same schema and indexes (copied from a store file), one transaction per batch,
  same pragmas (WAL, ``synchronous=NORMAL``);
* ``collect``: the whole collect path the issue asks about, simulate → append.

Prints readings/s of each and two ratios against the raw limit: collect/raw (simulate → SQLite,
the headline; target ≥ 0.7) and store/raw (the store's own overhead).

Run: ``python benchmarks/collect.py [--rows N] [--batches K] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cosmobac.batch import Batch
from cosmobac.plugins import Plugins
from cosmobac.schema import CORE_FIELDS
from cosmobac.sensors.simulated import SimulatedFleet
from cosmobac_sqlite import SQLiteStore

CITIES = 10


def make_fleet(rows_per_batch: int) -> tuple[SimulatedFleet, int, int]:
    """The built-in ``simulated`` sensor (100 sensors at 1 Hz), its start (epoch ms) and the ms
    of sensor time that gives about ``rows_per_batch`` readings.

    The fleet is sized so a run covers whole generation blocks (4096 readings per sensor), as a
    long collect does; a wide fleet read for a few seconds would mostly measure blocks generated
    and never used."""
    plugins = Plugins(entry_points=False)
    sensors_per_city = 10
    fleet = plugins.create(
        "sensor", "simulated", cities=CITIES, sensors_per_city=sensors_per_city, seed=7
    )
    assert isinstance(fleet, SimulatedFleet)
    step_ms = max(1, rows_per_batch // (CITIES * sensors_per_city)) * 1000
    return fleet, int(fleet.start), step_ms


def simulate(rows_per_batch: int, batches: int) -> tuple[list[Batch], float]:
    fleet, start, step = make_fleet(rows_per_batch)
    began = time.perf_counter()
    out = [fleet.read(start + step * (i + 1)) for i in range(batches)]
    return out, time.perf_counter() - began


def run_store(directory: Path, batches: list[Batch], tag: str) -> float:
    with SQLiteStore(directory / f"store-{tag}.db") as store:
        began = time.perf_counter()
        for batch in batches:
            store.append(batch)
        return time.perf_counter() - began


def run_collect(directory: Path, rows_per_batch: int, count: int, tag: str) -> float:
    fleet, start, step = make_fleet(rows_per_batch)
    with SQLiteStore(directory / f"collect-{tag}.db") as store:
        began = time.perf_counter()
        for i in range(count):
            store.append(fleet.read(start + step * (i + 1)))
        return time.perf_counter() - began


def raw_schema(directory: Path) -> list[str]:
    """The CREATE statements of the store's ``readings`` table and its indexes."""
    with SQLiteStore(directory / "schema.db"):
        pass
    conn = sqlite3.connect(directory / "schema.db")
    statements = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'readings' AND sql IS NOT NULL "
            "ORDER BY type DESC"  # the table before its indexes
        )
    ]
    conn.close()
    return statements


def run_raw(directory: Path, schema: list[str], rows: list[list[tuple]], tag: str) -> float:
    conn = sqlite3.connect(directory / f"raw-{tag}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    for statement in schema:
        conn.execute(statement)
    names = ", ".join(f'"{n}"' for n in CORE_FIELDS)
    marks = ", ".join("?" * len(CORE_FIELDS))
    sql = f"INSERT INTO readings ({names}) VALUES ({marks})"
    began = time.perf_counter()
    for chunk in rows:
        conn.execute("BEGIN")
        conn.executemany(sql, chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="readings per batch")
    parser.add_argument("--batches", type=int, default=20, help="batches per repetition")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repetitions")
    args = parser.parse_args(argv)

    batches, simulate_s = simulate(args.rows, args.batches)
    total = sum(len(b) for b in batches)
    rows = [list(zip(*(b[n].tolist() for n in CORE_FIELDS), strict=True)) for b in batches]
    store_s: list[float] = []
    raw_s: list[float] = []
    collect_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cosmobac-bench-") as tmp:
        directory = Path(tmp)
        schema = raw_schema(directory)
        for rep in range(args.repeat):
            order = ("store", "raw", "collect") if rep % 2 == 0 else ("raw", "store", "collect")
            for what in order:
                tag = f"{what}-{rep}"
                if what == "store":
                    store_s.append(run_store(directory, batches, tag))
                elif what == "raw":
                    raw_s.append(run_raw(directory, schema, rows, tag))
                else:
                    collect_s.append(run_collect(directory, args.rows, args.batches, tag))

    store_rate = total / statistics.median(store_s)
    raw_rate = total / statistics.median(raw_s)
    collect_rate = total / statistics.median(collect_s)
    ratio = collect_rate / raw_rate
    print(f"readings: {total} in {args.batches} batches, {args.repeat} repetitions (medians)")
    print(f"simulate (once)       : {total / simulate_s:12,.0f} readings/s")
    print(f"store.append          : {store_rate:12,.0f} readings/s")
    print(f"raw executemany limit : {raw_rate:12,.0f} readings/s")
    print(f"collect (sim + append): {collect_rate:12,.0f} readings/s")
    print(f"ratio collect/raw     : {ratio:.2f} (target >= 0.7)")
    print(f"ratio store/raw       : {store_rate / raw_rate:.2f}")
    return 0 if ratio >= 0.7 else 1


if __name__ == "__main__":
    sys.exit(main())
