"""Benchmark: the whole ``cosmobac collect`` process against a raw ``executemany``, the store's
bytes per reading, and collect's peak memory against run length.

Measures, interleaved over several repetitions (medians reported, the machine may be noisy):

* ``collect``: a child process running the real CLI, ``python -m cosmobac collect PIPELINE
  --duration D``, on a pipeline file with the built-in ``simulated`` sensor (100 sensors at 1 Hz,
  ``speed = "max"``) and the ``sqlite`` store: wall time from start to exit, interpreter start-up,
  imports, simulation and storing included;
* ``raw``: the limit, ``sqlite3.executemany`` of the same readings (every core field, already
  Python tuples, made outside the timing) into a plain table with one column per field and no
  index, one transaction per 20 000 rows, WAL and ``synchronous = NORMAL`` as the store uses.

Prints readings/s of each and the ratio collect/raw (target >= 0.9); the store's size per reading
(file and WAL after a checkpoint, target <= 80 bytes); with ``--memory``, the peak RSS of a 6 h
and a 24 h collect (``wait4`` of the child; target: within 10 %). Exit status 1 when a target is
missed.

Run: ``python benchmarks/collect.py [--hours H] [--repeat R] [--memory]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cosmobac.plugins import Plugins
from cosmobac.schema import CORE_FIELDS, Kind

CITIES, PER_CITY = 10, 10
CHUNK = 20_000
PIPELINE = """\
[sensor]
plugin = "simulated"
cities = {cities}
sensors_per_city = {per_city}
seed = 7

[store]
plugin = "sqlite"
path = "{path}"

[run]
speed = "max"
"""


def collect(directory: Path, hours: float, tag: str) -> tuple[float, int, int, int]:
    """One ``cosmobac collect`` process: its wall time (s), peak RSS (KiB), readings stored (from
    the store) and the store's size in bytes (WAL checkpointed)."""
    store = directory / f"collect-{tag}.db"
    config = directory / f"collect-{tag}.toml"
    config.write_text(PIPELINE.format(cities=CITIES, per_city=PER_CITY, path=store))
    command = [sys.executable, "-m", "cosmobac", "collect", str(config), "--duration", f"{hours}h"]
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"cosmobac collect failed with status {proc.returncode}")
    conn = sqlite3.connect(store)
    readings = int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = sum(
        os.path.getsize(f"{store}{s}") for s in ("", "-wal") if os.path.exists(f"{store}{s}")
    )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    return elapsed, int(usage.ru_maxrss), readings, size


def raw(directory: Path, hours: float, tag: str) -> tuple[float, int]:
    """The same readings by ``executemany`` into a plain table: seconds inside executemany and
    commit (the readings are made outside the timing), and how many."""
    fleet = Plugins(entry_points=False).create(
        "sensor", "simulated", cities=CITIES, sensors_per_city=PER_CITY, seed=7
    )
    types = {Kind.STR: "TEXT", Kind.FLOAT: "REAL"}
    columns = ", ".join(f'"{n}" {types.get(k, "INTEGER")}' for n, k in CORE_FIELDS.items())
    path = directory / f"raw-{tag}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"CREATE TABLE readings ({columns})")
    sql = f"INSERT INTO readings VALUES ({', '.join('?' * len(CORE_FIELDS))})"
    start = int(fleet.start)
    end = start + int(hours * 3_600_000)
    step = CHUNK // (CITIES * PER_CITY) * 1000
    elapsed = 0.0
    total = 0
    until = start
    while until < end:
        until = min(end, until + step)
        batch = fleet.read(until)
        rows = list(zip(*(batch[n].tolist() for n in CORE_FIELDS), strict=True))
        began = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - began
        total += len(rows)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return elapsed, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="sensor time per collect")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repetitions")
    parser.add_argument(
        "--memory", action="store_true", help="also compare peak RSS of 6 h and 24 h collects"
    )
    args = parser.parse_args(argv)
    collect_rates: list[float] = []
    raw_rates: list[float] = []
    sizes: list[float] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="cosmobac-bench-") as tmp:
        directory = Path(tmp)
        for rep in range(args.repeat):
            order = ("collect", "raw") if rep % 2 == 0 else ("raw", "collect")
            for what in order:
                if what == "collect":
                    seconds, _, readings, size = collect(directory, args.hours, str(rep))
                    collect_rates.append(readings / seconds)
                    sizes.append(size / readings)
                else:
                    seconds, readings = raw(directory, args.hours, str(rep))
                    raw_rates.append(readings / seconds)
        ratio = statistics.median(collect_rates) / statistics.median(raw_rates)
        per_reading = statistics.median(sizes)
        print(f"readings per run: {readings:,} ({args.hours:g} h of {CITIES * PER_CITY} sensors)")
        print(f"collect process (CLI)  : {statistics.median(collect_rates):12,.0f} readings/s")
        print(f"raw executemany limit  : {statistics.median(raw_rates):12,.0f} readings/s")
        print(f"ratio collect/raw      : {ratio:.2f} (target >= 0.9)")
        print(f"store bytes per reading: {per_reading:.1f} (target <= 80)")
        ok = ratio >= 0.9 and per_reading <= 80
        if args.memory:
            peaks: dict[float, list[int]] = {6.0: [], 24.0: []}
            for rep in range(2):
                for hours in (6.0, 24.0) if rep % 2 == 0 else (24.0, 6.0):
                    _, peak, readings, size = collect(directory, hours, f"mem-{hours}-{rep}")
                    peaks[hours].append(peak)
                    print(
                        f"collect {hours:4g} h: {readings:,} readings, peak RSS {peak / 1024:.1f} "
                        f"MiB, {size / readings:.1f} bytes per reading"
                    )
            growth = statistics.median(peaks[24.0]) / statistics.median(peaks[6.0])
            print(f"peak RSS 24 h / 6 h    : {growth:.3f} (target <= 1.10)")
            ok = ok and growth <= 1.10
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
