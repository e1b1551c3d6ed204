"""Shared by the Bacalhau tests: where Bacalhau's example specs are, and the fake fleet."""

from __future__ import annotations

from pathlib import Path

from fake_orchestrator import FakeNode

EXAMPLES = Path(__file__).resolve().parent / "data" / "bacalhau-jobs"


def fleet() -> list[FakeNode]:
    """Three cities; Berlin's node fails every execution."""
    return [
        FakeNode("node-lisbon-1", {"city": "lisbon", "region": "eu"}),
        FakeNode("node-porto-1", {"city": "porto", "region": "eu"}),
        FakeNode("node-berlin-1", {"city": "berlin", "region": "eu"}, "fail:disk full"),
    ]
