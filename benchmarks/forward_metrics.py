"""Benchmark: what metrics cost the forward path (issue 12: within 5% of metrics off).

One SQLite store is filled once with simulated readings. Each repetition forwards every row to a
JSON-lines file through a z-score detector (so the anomaly counter has work too), twice, in
alternating order: observed as ``run`` and ``forward --follow --metrics-port`` observe it (a
:class:`cosmobac.monitoring.HealthTracker` and a :class:`cosmobac.monitoring.Monitor` sharing it,
in an :class:`~cosmobac.monitoring.ObserverGroup`: prometheus-client counters, the write-latency
histogram, anomaly counts per detector and type, rates and last errors per batch), and without
an observer. Each forward uses a consumer of its own, so both read the same rows from the same
store. Medians of rows/s are printed, and their ratio, metrics on / metrics off, measured in the
same run (target ≥ 0.95).

Run: ``python benchmarks/forward_metrics.py [--rows N] [--batch-size B] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cosmobac.config import RunConfig
from cosmobac.detectors import ZScore
from cosmobac.monitoring import HealthTracker, Monitor, ObserverGroup
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.sensors.simulated import SimulatedFleet
from cosmobac.sinks.jsonl import JsonlSink
from cosmobac_sqlite import SQLiteStore


def fill(store: SQLiteStore, rows: int) -> int:
    """Simulated readings of 100 sensors at 1 Hz, about ``rows`` of them."""
    fleet = SimulatedFleet(cities=10, sensors_per_city=10, rate_hz=1.0, seed=3)
    seconds = max(1, rows // 100)
    return store.append(fleet.read(fleet.start + seconds * 1000))


def forward(store: SQLiteStore, out: Path, consumer: str, batch: int, monitored: bool) -> float:
    """Rows/s of one forward of every stored row to ``out`` as ``consumer``."""
    sink = JsonlSink(path=out, fsync=False)
    lane = Lane(consumer, sink, [ZScore(columns=["temperature"])])
    observer = monitor = None
    if monitored:
        tracker = HealthTracker()
        monitor = Monitor(store=lambda: store, consumers=lambda: [consumer], health=tracker)
        observer = ObserverGroup(tracker, monitor)
    pipeline = Pipeline(
        store=store, lanes=[lane], run=RunConfig(batch_size=batch), observer=observer
    )
    began = time.perf_counter()
    report = pipeline.forward()
    took = time.perf_counter() - began
    sink.close()
    acked = report.lanes[0].acked
    if monitor is not None:
        text = monitor.metrics_text().decode()
        assert f'cosmobac_sink_rows_acked_total{{sink="{consumer}"}} {float(acked)}' in text
    return acked / took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = SQLiteStore(folder / "edge.db")
        rows = fill(store, args.rows)
        on: list[float] = []
        off: list[float] = []
        for i in range(args.repeat):
            order = [True, False] if i % 2 == 0 else [False, True]
            for monitored in order:
                name = f"{'on' if monitored else 'off'}-{i}"
                rate = forward(store, folder / f"{name}.jsonl", name, args.batch_size, monitored)
                (on if monitored else off).append(rate)
        store.close()
    on_rate, off_rate = statistics.median(on), statistics.median(off)
    ratio = on_rate / off_rate
    print(f"rows forwarded per run: {rows} (batches of {args.batch_size}, {args.repeat} runs each)")
    print(f"metrics off: {off_rate:12,.0f} rows/s")
    print(f"metrics on:  {on_rate:12,.0f} rows/s")
    print(f"metrics on / off: {ratio:.3f} (target ≥ 0.95)")
    return 0 if ratio >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
