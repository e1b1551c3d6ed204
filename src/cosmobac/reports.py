"""What the collect and forward loops report: per run, per sink, and as they go (``Progress``)."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["CollectReport", "ForwardReport", "LaneReport", "Progress"]

Progress = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: stage is ``"collect"`` (sensor ms) or ``"forward"`` (rows)."""


@attrs.frozen
class CollectReport:
    """What one collect run did."""

    rows_read: int
    rows_added: int
    start: int  # sensor time collected, epoch ms: [start, end)
    end: int


@attrs.define
class LaneReport:
    """What forwarding did for one sink."""

    consumer: str
    written: int = 0
    acked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    failures: int = 0
    error: str | None = None  # set when the lane gave up
    stats: dict[str, float] = attrs.field(factory=dict)  # summed numeric WriteResult.stats


@attrs.frozen
class ForwardReport:
    """What one forward run did, per sink."""

    lanes: tuple[LaneReport, ...]

    @property
    def ok(self) -> bool:
        """True when no sink gave up."""
        return all(lane.error is None for lane in self.lanes)
