"""Points per second of the new detectors (context, entropy, ensemble, and ewma with the anomaly
likelihood stage) on a single series, against a plain numpy pass over the same data in the same
run (a rolling z-score by cumulative sums), so the ratio travels between machines.

    python benchmarks/detectors_new.py [--points 1000000] [--batch 100000] [--repeat 3]

A point is a row × a column; one column here. Rows go through in batches with state carried over.
"""

from __future__ import annotations

import argparse
import time

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


def numpy_pass(values: np.ndarray, window: int = 60) -> np.ndarray:
    c1 = np.concatenate(([0.0], np.cumsum(values)))
    c2 = np.concatenate(([0.0], np.cumsum(values * values)))
    mean = (c1[window:] - c1[:-window]) / window
    var = (c2[window:] - c2[:-window]) / window - mean * mean
    return np.abs(values[window - 1 :] - mean) / np.sqrt(np.maximum(var, 1e-12))


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batch = series(args.points)
    values = batch["value"]
    base = best_of(args.repeat, lambda: numpy_pass(values))
    base_rate = args.points / base
    print(f"{args.points} points on one series, batches of {args.batch}")
    print(f"{'numpy rolling z-score':28s} {base_rate / 1e6:8.2f} M points/s   ratio 1.00")
    makers = {
        "context": lambda: Context(columns=["value"]),
        "entropy": lambda: RelativeEntropy(columns=["value"]),
        "ewma + likelihood": lambda: EWMA(columns=["value"], likelihood=True),
        "context + likelihood": lambda: Context(columns=["value"], likelihood=True),
        "ensemble (context, ewma)": lambda: Ensemble(columns=["value"]),
    }
    for label, make in makers.items():

        def run(make=make) -> None:
            detector = make()
            for i in range(0, len(batch), args.batch):
                detector(batch.select(slice(i, i + args.batch)))

        elapsed = best_of(args.repeat, run)
        rate = args.points / elapsed
        print(f"{label:28s} {rate / 1e6:8.2f} M points/s   ratio {rate / base_rate:.3f}")


if __name__ == "__main__":
    main()
