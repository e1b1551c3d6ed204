"""Benchmark: streaming detectors, points per second, against a plain numpy pass in the same run.

A *point* is one value of one series: a row × a column (``columns`` of the detector, the five
metrics by default). The data is a simulated fleet (``--sensors`` sensors at 1 Hz), cut into
batches of ``--batch-size`` rows as the forwarder reads them. For each detector, it measures
``detector(batch)`` over every batch, state carried from batch to batch (a new detector per
repetition), and ``+ checkpoint``: the same plus ``get_state()`` after each batch, as the
forwarder saves it with each acknowledgement.

The limit it is compared with, measured in the same run over the same values: ``numpy``, a plain
rolling z-score in numpy, batch by batch, with each batch's values already grouped by sensor into
one 2-D array (grouping not timed), no state carried between batches and no output columns: the
arithmetic alone. The machine may be shared and busy: the ratio to the numpy pass of the same run
travels better than the absolute rates.

Then the same on a *single series* (one sensor, one column, ``--series-length`` values in batches
of ``--series-batch`` rows): every detector must be vectorised along time, not only across
sensors. The numpy pass there is the same rolling z-score over that one series.

Besides the built-in detectors (``DETECTORS``) it measures ``ensemble`` (``context`` and ``ewma``)
and two detectors with the anomaly likelihood stage (``ewma+likelihood``, ``context+likelihood``).

Targets (issue 16), each marked ``met`` or ``NOT met``: at least 5 M points/s for ``zscore`` and
``ewma`` over 100 sensors; at least 1 M points/s on one series for ``cusum``, ``context``,
``entropy``, ``ensemble`` and the likelihood stage. Repetitions are interleaved; medians are
reported. The exit status is 0 only if every target measured is met. With ``--cpu`` every time
(the numpy pass's too) is the process's CPU time instead of the wall clock: on a shared, busy
machine it leaves out the time spent waiting for a core (rates are then per second of CPU).

Run: ``python benchmarks/detectors.py [--sensors N] [--batch-size R] [--batches K] [--repeat R]
[--series-length N] [--series-batch R] [--detectors NAME ...] [--no-checkpoint] [--cpu]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy's own loops are single-threaded

import numpy as np

from cosmobac.batch import Batch
from cosmobac.detectors import DETECTORS, Ensemble
from cosmobac.schema import METRICS
from cosmobac.sensors.simulated import SimulatedFleet

TARGET = 5e6
TARGETED = ("zscore", "ewma")
SINGLE_TARGET = 1e6
SINGLE_TARGETED = (
    "cusum",
    "context",
    "entropy",
    "ensemble",
    "ewma+likelihood",
    "context+likelihood",
)
WINDOW = 60
clock = time.perf_counter
"""The clock every time is read from (``--cpu``: ``time.process_time``)."""
MAKERS: dict[str, Any] = {
    **DETECTORS,
    "ensemble": Ensemble,
    "ewma+likelihood": lambda **kw: DETECTORS["ewma"](likelihood=True, **kw),
    "context+likelihood": lambda **kw: DETECTORS["context"](likelihood=True, **kw),
}
"""Every detector measured, by label: a callable taking ``columns=`` (or nothing)."""


def make_batches(sensors: int, batch_size: int, batches: int) -> list[Batch]:
    cities = max(1, min(10, sensors // 10 or 1))
    fleet = SimulatedFleet(cities=cities, sensors_per_city=max(1, sensors // cities), seed=7)
    seconds = -(-batch_size * batches // len(fleet.sensors)) + 1
    rows = fleet.read(fleet.start + seconds * 1000)
    return [rows.select(slice(i * batch_size, (i + 1) * batch_size)) for i in range(batches)]


def grouped(batches: list[Batch]) -> list[np.ndarray]:
    """Each batch's values as one (sensors × columns, rows per sensor) array: grouped in advance,
    so the numpy pass times arithmetic only."""
    out = []
    for batch in batches:
        ids = batch["sensor_id"].astype(str)
        order = np.argsort(ids, kind="stable")
        sensors = len(set(ids.tolist()))
        per = len(batch) // sensors
        values = np.stack([batch[m][order][: per * sensors] for m in METRICS])
        out.append(np.ascontiguousarray(values.reshape(len(METRICS) * sensors, per)))
    return out


def numpy_pass(arrays: list[np.ndarray]) -> tuple[float, int]:
    """The limit: a rolling z-score of every value in plain numpy, batch by batch, with no state
    carried between batches (each batch's first ``WINDOW`` values are not scored)."""
    w = WINDOW
    points = 0
    began = clock()
    for values in arrays:
        ok = np.isfinite(values)
        x = np.where(ok, values, 0.0)
        s = np.cumsum(x, axis=1)
        q = np.cumsum(x * x, axis=1)
        n = np.cumsum(ok, axis=1)
        sw, qw, nw = s[:, w:] - s[:, :-w], q[:, w:] - q[:, :-w], n[:, w:] - n[:, :-w]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sw / nw
            std = np.sqrt(np.maximum((qw - sw * mean) / (nw - 1), 0.0))
            z = np.abs(values[:, w:] - mean) / std
        z.sum()
        points += values.size
    return clock() - began, points


def single_series(length: int, batch_size: int) -> tuple[list[Batch], list[np.ndarray]]:
    """One sensor's temperature (a simulated sensor's, repeated to ``length`` values) in batches
    of ``batch_size`` rows, and the same values as (1, rows) arrays for the numpy pass."""
    fleet = SimulatedFleet(cities=1, sensors_per_city=1, seed=7)
    base = fleet.read(fleet.start + min(length, 86_400) * 1000)["temperature"]
    values = np.resize(base, length)
    batches, arrays = [], []
    for i in range(0, length, batch_size):
        part = values[i : i + batch_size]
        n = len(part)
        batches.append(
            Batch.from_columns(
                timestamp=fleet.start + 1000 * np.arange(i, i + n),
                sensor_id=np.full(n, "s-1", dtype=object),
                temperature=part,
            )
        )
        arrays.append(part[None, :].copy())
    return batches, arrays


def run_detector(
    name: str, batches: list[Batch], checkpoint: bool, columns: tuple[str, ...] | None = None
) -> float:
    detector = MAKERS[name](**({"columns": list(columns)} if columns else {}))
    began = clock()
    for batch in batches:
        detector(batch)
        if checkpoint:
            detector.get_state()
    return clock() - began


def verdict(rate: float, target: float) -> str:
    return f"target ≥ {target / 1e6:g} M: " + ("met" if rate >= target else "NOT met")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--detectors", nargs="*", default=list(MAKERS), choices=list(MAKERS))
    parser.add_argument("--series-length", type=int, default=1_000_000)
    parser.add_argument("--series-batch", type=int, default=100_000)
    parser.add_argument(
        "--no-checkpoint", action="store_true", help="skip the runs with get_state() per batch"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="time by the process's CPU time, not the wall clock"
    )
    args = parser.parse_args(argv)
    global clock
    clock = time.process_time if args.cpu else time.perf_counter

    batches = make_batches(args.sensors, args.batch_size, args.batches)
    rows = sum(len(b) for b in batches)
    points = rows * len(METRICS)
    print(
        f"{rows} rows × {len(METRICS)} columns = {points} points; {args.sensors} sensors, "
        f"batches of {args.batch_size} rows; medians of {args.repeat} interleaved runs; "
        + ("CPU time" if args.cpu else "wall-clock time")
    )
    for name in args.detectors:  # warm up (imports, first allocations)
        run_detector(name, batches[:2], checkpoint=False)
    arrays = grouped(batches)
    limit_times: list[float] = []
    limit_points = 0
    modes = (False,) if args.no_checkpoint else (False, True)
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeat):
        elapsed, limit_points = numpy_pass(arrays)
        limit_times.append(elapsed)
        for name in args.detectors:
            for checkpoint in modes:
                times.setdefault((name, checkpoint), []).append(
                    run_detector(name, batches, checkpoint)
                )
    limit = limit_points / statistics.median(limit_times)
    print(f"\n{'':20}{'points/s':>12}{'rows/s':>12}{'vs numpy':>10}{'+ checkpoint':>15}")
    print(
        f"{'numpy (limit)':20}{limit / 1e6:>10.2f} M{limit / len(METRICS) / 1e6:>10.2f} M{1:>10.3f}"
    )
    ok = True
    results: list[tuple[str, str, float, float, str]] = []
    for name in args.detectors:
        rate = points / statistics.median(times[(name, False)])
        with_state = (
            f"{points / statistics.median(times[(name, True)]) / 1e6:>13.2f} M"
            if not args.no_checkpoint
            else f"{'-':>15}"
        )
        flag = ""
        if name in TARGETED:
            ok &= rate >= TARGET
            flag = "  " + verdict(rate, TARGET)
        results.append((name, f"{args.sensors} sensors", rate, rate / limit, flag.strip()))
        print(
            f"{name:20}{rate / 1e6:>10.2f} M{rate / len(METRICS) / 1e6:>10.2f} M"
            f"{rate / limit:>10.3f}{with_state}{flag}"
        )
    single_ok, single_results = single(args)
    ok &= single_ok
    results += single_results
    print("\nsummary (points/s, ratio to the numpy pass of the same run, target)")
    for name, where, rate, ratio, flag in results:
        print(f"  {name:20}{where:>13}{rate / 1e6:>9.2f} M{ratio:>9.3f}  {flag}")
    return 0 if ok else 1


def single(args: argparse.Namespace) -> tuple[bool, list[tuple[str, str, float, float, str]]]:
    """Points/s on one series, against the numpy pass over that series."""
    batches, arrays = single_series(args.series_length, args.series_batch)
    points = args.series_length
    print(
        f"\none series: {points} values in batches of {args.series_batch} rows; medians of "
        f"{args.repeat} interleaved runs"
    )
    columns = ("temperature",)
    for name in args.detectors:
        run_detector(name, batches[:1], checkpoint=False, columns=columns)
    limit_times: list[float] = []
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        limit_times.append(numpy_pass(arrays)[0])
        for name in args.detectors:
            times.setdefault(name, []).append(run_detector(name, batches, False, columns))
    limit = points / statistics.median(limit_times)
    print(f"\n{'':20}{'points/s':>12}{'vs numpy':>10}")
    print(f"{'numpy (limit)':20}{limit / 1e6:>10.2f} M{1:>10.3f}")
    ok = True
    results = []
    for name in args.detectors:
        rate = points / statistics.median(times[name])
        flag = ""
        if name in SINGLE_TARGETED:
            ok &= rate >= SINGLE_TARGET
            flag = "  " + verdict(rate, SINGLE_TARGET)
        results.append((name, "one series", rate, rate / limit, flag.strip()))
        print(f"{name:20}{rate / 1e6:>10.2f} M{rate / limit:>10.3f}{flag}")
    return ok, results


if __name__ == "__main__":
    sys.exit(main())
