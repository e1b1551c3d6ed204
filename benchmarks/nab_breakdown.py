"""NAB scores of detectors on a corpus, with a per-file breakdown: which files cost false alarms,
which windows are missed. A diagnosis aid (it scores with cosmobac's own NAB scorer, unchanged).

    python benchmarks/nab_breakdown.py ../shared/data/nab-dev/data \
        --labels ../shared/data/nab-dev/labels.json --detector context --files

    python benchmarks/nab_breakdown.py DATA --labels LABELS \
        --detector ewma --set ewma.novelty=100 --detector context

``--files`` prints, per file and for the standard profile at the corpus-wide threshold, the raw
score, windows hit and missed and the alarms outside windows, worst files first.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from cosmobac.evaluation.nab import IN_PROBATION, OUTSIDE, PROFILES, PreparedCorpus, read_corpus
from cosmobac.evaluation.runs import score_series


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(pairs: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        name, _, option = key.partition(".")
        out.setdefault(name, {})[option] = _value(value)
    return out


def per_file(prepared: PreparedCorpus, scores: list[np.ndarray], threshold: float) -> list[dict]:
    rows = []
    for one, span, score in zip(prepared.series, prepared.spans, scores, strict=True):
        s = np.nan_to_num(np.asarray(score, np.float64), nan=0.0)
        w = prepared.windows[span]
        weights = prepared.weights[span]
        alarm = (s >= threshold) & (w != IN_PROBATION)
        fp = alarm & (w == OUTSIDE)
        hit = [int(x) for x in np.unique(w[alarm & (w >= 0)])]
        scored = [int(x) for x in np.unique(w[w >= 0])]
        raw = float(weights[fp].sum())
        for x in scored:
            raw += float(weights[alarm & (w == x)].max()) if x in hit else -prepared.profile.fn
        rows.append(
            {
                "file": one.name,
                "raw": raw,
                "tp": len(hit),
                "fn": len(scored) - len(hit),
                "fp": int(fp.sum()),
                "fp_cost": float(weights[fp].sum()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--labels")
    parser.add_argument("--detector", action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--files", action="store_true")
    args = parser.parse_args()
    corpus = read_corpus(args.data, args.labels)
    settings = parse_settings(args.set)
    prepared = {p: PreparedCorpus.make(corpus, p) for p in PROFILES}
    for name in args.detector or ["context"]:
        scores = score_series(corpus, {name: settings.get(name, {})})[name]
        results = {p: prepared[p].score(scores) for p in PROFILES}
        std = results["standard"]
        print(
            f"{name:14s} "
            + " / ".join(f"{r.score:5.1f}" for r in results.values())
            + f"   TP/FN/FP {std.true_positives}/{std.false_negatives}/{std.false_positives}"
            + f"  threshold {std.threshold:.4g}"
        )
        if args.files:
            rows = per_file(prepared["standard"], scores, std.threshold)
            for row in sorted(rows, key=lambda r: r["raw"]):
                print(
                    f"  {row['raw']:7.2f}  tp {row['tp']} fn {row['fn']} fp {row['fp']:4d}"
                    f" ({row['fp_cost']:6.2f})  {row['file']}"
                )


if __name__ == "__main__":
    main()
