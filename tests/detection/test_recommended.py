"""The recommended detector set (``cosmobac/data/recommended-detectors.toml``): it loads, the docs
show it as shipped, and on a simulated run with a seed not used to choose it each anomaly type
reaches its event-F1 target (issue 16: ≥ 0.9 for spike, dip, stuck and dropout, ≥ 0.7 for
drift, pattern and noise)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from detection_support import every, fleet_rows, run

from cosmobac.detectors import Dropout, RobustZScore, Stuck
from cosmobac.detectors.recommended import recommended_detectors, recommended_transforms
from cosmobac.evaluation.metrics import evaluate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "detectors.md"

TARGETS = {
    "spike": 0.9,
    "dip": 0.9,
    "stuck": 0.9,
    "dropout": 0.9,
    "drift": 0.7,
    "pattern": 0.7,
    "noise": 0.7,
}

HELD_OUT_SEED = 9
"""Not one of the seeds the set was chosen on (1, 2, 3) nor those it was checked on (4, 5, 6)."""


def test_the_set_loads_as_a_chain_of_detectors():
    entries = recommended_transforms()
    assert [e["plugin"] for e in entries] == ["robust_zscore", "stuck", "dropout"]
    chain = recommended_detectors()
    assert [type(d) for d in chain] == [RobustZScore, Stuck, Dropout]
    assert chain[0].window == entries[0]["window"]
    assert recommended_transforms() is not recommended_transforms()  # new lists, safe to edit


def test_the_docs_show_the_set_as_shipped():
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The recommended detector set", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert tomllib.loads(block)["transforms"] == recommended_transforms()


def test_each_type_reaches_its_event_f1_target_on_a_held_out_seed():  # ~6 s
    rows = fleet_rows(3, 2, 180, seed=HELD_OUT_SEED)  # 6 sensors x 3 h at 1 Hz: 64 800 rows
    scored = run(recommended_detectors(), rows, every(5000, rows))
    result = evaluate(scored, profiles=())
    chain = result.detectors["all"]
    assert set(result.events_by_type) == set(TARGETS)
    assert min(result.events_by_type.values()) >= 5, result.events_by_type
    low = {
        kind: round(chain.by_type[kind].event_f1, 3)
        for kind, target in TARGETS.items()
        if not chain.by_type[kind].event_f1 >= target
    }
    assert not low, f"event F1 under target: {low}\n{result.table()}"
    assert chain.event.f1 >= 0.9
