"""Points per second of the new detectors (context, entropy, ensemble, and ewma with the anomaly
likelihood stage) on a single series and on a fleet of sensors, against a plain numpy pass over
the same data in the same run (a rolling z-score by cumulative sums), so the ratio travels
between machines.

    python benchmarks/detectors_new.py [--points 1000000] [--batch 100000] [--repeat 3]
        [--sensors 100] [--fleet-rows 3000] [--fleet-batches 50 100 200]

A point is a row × a column; one column here. Rows go through in batches with state carried
over. The fleet: ``--sensors`` sensors, ``--fleet-rows`` rows each, in batches of
``--fleet-batches`` rows per sensor (all sensors in every batch, as the forwarder reads them;
50 rows per sensor is ``benchmarks/detectors.py``'s 5000-row batch, 200 the pipeline's default
``batch_size`` of 20000). Repetitions are interleaved and medians reported; the last column
compares a detector's rate on the fleet with its rate on the single series of the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from cosmobac.batch import Batch
from cosmobac.detectors import EWMA, Context, Ensemble, RelativeEntropy


def series(n: int) -> Batch:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.2, n)
    values[rng.integers(0, n, n // 1000)] += 5
    return Batch.from_columns(
        timestamp=t * 1000, sensor_id=np.full(n, "s-1", dtype=object), value=values
    )


def fleet(sensors: int, rows: int) -> tuple[Batch, np.ndarray]:
    """``rows`` readings of each of ``sensors`` sensors, interleaved in time order (each sensor
    its own phase, level and noise), and the values as (sensors, rows)."""
    rng = np.random.default_rng(1)
    t = np.arange(rows)
    phase = rng.uniform(0, 288, sensors)[:, None]
    values = np.sin(2 * np.pi * (t + phase) / 288) * rng.uniform(1, 5, (sensors, 1))
    values += rng.uniform(-10, 10, (sensors, 1)) + rng.normal(0, 0.2, (sensors, rows))
    spikes = rng.random((sensors, rows)) < 0.001
    values[spikes] += 5
    ids = np.array([f"s-{i}" for i in range(sensors)], dtype=object)
    batch = Batch.from_columns(
        timestamp=np.repeat(t * 1000, sensors),
        sensor_id=np.tile(ids, rows),
        value=values.T.reshape(-1),
    )
    return batch, values


def numpy_pass(values: np.ndarray, window: int = 60) -> np.ndarray:
    """Rolling z-score along the last axis (1-D or 2-D)."""
    zero = np.zeros((*values.shape[:-1], 1))
    c1 = np.concatenate((zero, np.cumsum(values, axis=-1)), axis=-1)
    c2 = np.concatenate((zero, np.cumsum(values * values, axis=-1)), axis=-1)
    mean = (c1[..., window:] - c1[..., :-window]) / window
    var = (c2[..., window:] - c2[..., :-window]) / window - mean * mean
    return np.abs(values[..., window - 1 :] - mean) / np.sqrt(np.maximum(var, 1e-12))


MAKERS: dict[str, Callable[[], Callable[[Batch], Batch]]] = {
    "context": lambda: Context(columns=["value"]),
    "entropy": lambda: RelativeEntropy(columns=["value"]),
    "ewma + likelihood": lambda: EWMA(columns=["value"], likelihood=True),
    "context + likelihood": lambda: Context(columns=["value"], likelihood=True),
    "ensemble (context, ewma)": lambda: Ensemble(columns=["value"]),
}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--fleet-rows", type=int, default=3000)
    parser.add_argument("--fleet-batches", type=int, nargs="*", default=[50, 100, 200])
    parser.add_argument("--detectors", nargs="*", default=list(MAKERS), choices=list(MAKERS))
    args = parser.parse_args()
    one = series(args.points)
    many, grid = fleet(args.sensors, args.fleet_rows)
    fleet_points = args.sensors * args.fleet_rows
    cuts: dict[object, list[Batch]] = {
        "one": [one.select(slice(i, i + args.batch)) for i in range(0, len(one), args.batch)]
    }
    for rows in args.fleet_batches:
        step = rows * args.sensors
        cuts[rows] = [many.select(slice(i, i + step)) for i in range(0, len(many), step)]
    points: dict[object, int] = {key: args.points if key == "one" else fleet_points for key in cuts}
    # the limit: the numpy pass over the same values, in one piece
    limits = {"one": lambda: numpy_pass(one["value"]), "fleet": lambda: numpy_pass(grid)}
    times: dict[tuple[str, object], list[float]] = {}
    for _ in range(args.repeat):  # interleaved: every measurement once per round
        for name, fn in limits.items():
            times.setdefault(("numpy", name), []).append(timed(fn))
        for label in args.detectors:
            for key, batches in cuts.items():

                def run(batches: list[Batch] = batches, make=MAKERS[label]) -> None:
                    detector = make()
                    for batch in batches:
                        detector(batch)

                times.setdefault((label, key), []).append(timed(run))
    rate = {
        key: points[key[1]] / statistics.median(t) for key, t in times.items() if key[0] != "numpy"
    }
    base_one = args.points / statistics.median(times[("numpy", "one")])
    base_fleet = fleet_points / statistics.median(times[("numpy", "fleet")])
    print(
        f"one series: {args.points} points in batches of {args.batch}; fleet: {args.sensors} "
        f"sensors × {args.fleet_rows} rows in batches of {args.fleet_batches} rows per sensor; "
        f"medians of {args.repeat} interleaved runs (M points/s, ratio to the numpy pass)"
    )
    header = f"{'detector':26s} {'one series':>18s}"
    for rows in args.fleet_batches:
        header += f" {f'fleet, {rows}/sensor':>22s} {'vs one':>7s}"
    print(header)
    line = f"{'numpy rolling z-score':26s} {base_one / 1e6:8.2f} M  (1.000)"
    for _ in args.fleet_batches:
        line += f" {base_fleet / 1e6:12.2f} M  (1.000) {'':>7s}"
    print(line)
    for label in args.detectors:
        single = rate[(label, "one")]
        line = f"{label:26s} {single / 1e6:8.2f} M  ({single / base_one:.3f})"
        for rows in args.fleet_batches:
            r = rate[(label, rows)]
            line += f" {r / 1e6:12.2f} M  ({r / base_fleet:.3f}) {r / single:7.2f}"
        print(line)


if __name__ == "__main__":
    main()
