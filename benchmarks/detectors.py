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
arithmetic alone.

Prints points/s per detector, the ratio to the numpy pass, and checks the target: at least
5 M points/s on one core for ``zscore`` and ``ewma``. Repetitions are interleaved; medians are
reported.

Then the same on a *single series* (one sensor, one column, ``--series-length`` values in batches
of ``--series-batch`` rows): every detector must be vectorised along time, not only across
sensors. The numpy pass there is the same rolling z-score over that one series. Target: at least
1 M points/s for ``cusum``.

Run: ``python benchmarks/detectors.py [--sensors N] [--batch-size R] [--batches K] [--repeat R]
[--series-length N] [--series-batch R]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy's own loops are single-threaded

import numpy as np

from cosmobac.batch import Batch
from cosmobac.detectors import DETECTORS
from cosmobac.schema import METRICS
from cosmobac.sensors.simulated import SimulatedFleet

TARGET = 5e6
TARGETED = ("zscore", "ewma")
SINGLE_TARGET = 1e6
SINGLE_TARGETED = ("cusum",)
WINDOW = 60


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
    began = time.perf_counter()
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
    return time.perf_counter() - began, points


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
    detector = DETECTORS[name](**({"columns": list(columns)} if columns else {}))
    began = time.perf_counter()
    for batch in batches:
        detector(batch)
        if checkpoint:
            detector.get_state()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--detectors", nargs="*", default=list(DETECTORS))
    parser.add_argument("--series-length", type=int, default=1_000_000)
    parser.add_argument("--series-batch", type=int, default=100_000)
    args = parser.parse_args(argv)

    batches = make_batches(args.sensors, args.batch_size, args.batches)
    rows = sum(len(b) for b in batches)
    points = rows * len(METRICS)
    print(
        f"{rows} rows × {len(METRICS)} columns = {points} points; {args.sensors} sensors, "
        f"batches of {args.batch_size} rows; medians of {args.repeat} interleaved runs"
    )
    for name in args.detectors:  # warm up (imports, first allocations)
        run_detector(name, batches[:2], checkpoint=False)
    arrays = grouped(batches)
    limit_times: list[float] = []
    limit_points = 0
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeat):
        elapsed, limit_points = numpy_pass(arrays)
        limit_times.append(elapsed)
        for name in args.detectors:
            for checkpoint in (False, True):
                times.setdefault((name, checkpoint), []).append(
                    run_detector(name, batches, checkpoint)
                )
    limit = limit_points / statistics.median(limit_times)
    print(f"\n{'':18}{'points/s':>14}{'rows/s':>12}{'vs numpy':>10}{'+ checkpoint':>16}")
    print(
        f"{'numpy (limit)':18}{limit / 1e6:>12.1f} M{limit / len(METRICS) / 1e6:>10.2f} M{1:>10.2f}"
    )
    ok = True
    for name in args.detectors:
        rate = points / statistics.median(times[(name, False)])
        with_state = points / statistics.median(times[(name, True)])
        flag = ""
        if name in TARGETED:
            met = rate >= TARGET
            ok &= met
            flag = "  target ≥ 5 M: " + ("met" if met else "NOT met")
        print(
            f"{name:18}{rate / 1e6:>12.1f} M{rate / len(METRICS) / 1e6:>10.2f} M"
            f"{rate / limit:>10.2f}{with_state / 1e6:>14.1f} M{flag}"
        )
    ok &= single(args)
    return 0 if ok else 1


def single(args: argparse.Namespace) -> bool:
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
    print(f"\n{'':18}{'points/s':>14}{'vs numpy':>10}")
    print(f"{'numpy (limit)':18}{limit / 1e6:>12.1f} M{1:>10.2f}")
    ok = True
    for name in args.detectors:
        rate = points / statistics.median(times[name])
        flag = ""
        if name in SINGLE_TARGETED:
            met = rate >= SINGLE_TARGET
            ok &= met
            flag = "  target ≥ 1 M: " + ("met" if met else "NOT met")
        print(f"{name:18}{rate / 1e6:>12.2f} M{rate / limit:>10.3f}{flag}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
