"""What a following forwarder prints while it runs: one line per sink that did something.

Every ``interval`` seconds :class:`ProgressLog` compares the tracker's snapshot with the last one
and prints, for each sink whose figures moved, the rows acknowledged since (and their rate), the
rows dead-lettered and the failed writes since, what is still pending, and the last error when a
write failed in that span. A sink that stopped for good says so once. An idle forwarder prints
nothing, so a quiet log means nothing happened, not that nothing was reported.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..interfaces import StoreStats
from .health import HealthTracker, SinkHealth

__all__ = ["ProgressLog"]


class ProgressLog:
    """Lines for people about a running forwarder, from a :class:`HealthTracker`.

    ``echo`` prints one line; ``stats`` returns the store's figures (or ``None``) for the
    pending counts; ``clock`` gives the time of day shown at the start of each line."""

    def __init__(
        self,
        tracker: HealthTracker,
        echo: Callable[[str], Any],
        *,
        stats: Callable[[], StoreStats | None] = lambda: None,
        interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tracker = tracker
        self.echo = echo
        self.stats = stats
        self.interval = interval
        self.clock = clock
        self._last: dict[str, SinkHealth] = {}
        self._last_time = clock()

    def lines(self) -> list[str]:
        """The lines for what changed since the last call (and remember this snapshot)."""
        now = self.clock()
        span, self._last_time = max(now - self._last_time, 1e-9), now
        health = self.tracker.snapshot()
        moved: list[tuple[SinkHealth, SinkHealth | None]] = []
        for sink in health.sinks:
            before = self._last.get(sink.consumer)
            self._last[sink.consumer] = sink
            if before is None or _figures(sink) != _figures(before):
                moved.append((sink, before))
        if not moved:
            return []
        try:
            stats = self.stats()
        except Exception:  # a busy store: the line goes without the pending count
            stats = None
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        return [f"{stamp} {_line(sink, before, span, stats)}" for sink, before in moved]

    def report(self) -> None:
        for line in self.lines():
            self.echo(line)

    @contextlib.contextmanager
    def running(self) -> Iterator[ProgressLog]:
        """Report every ``interval`` seconds from a background thread while the block runs, and
        once more at its end."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval):
                self.report()

        thread = threading.Thread(target=loop, name="cosmobac-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            self.report()


def _figures(sink: SinkHealth) -> tuple[int, int, int, bool]:
    return (sink.acked, sink.dead_lettered, sink.failures, sink.stopped)


def _line(
    sink: SinkHealth, before: SinkHealth | None, span: float, stats: StoreStats | None
) -> str:
    acked = sink.acked - (before.acked if before else 0)
    dead = sink.dead_lettered - (before.dead_lettered if before else 0)
    failed = sink.failures - (before.failures if before else 0)
    parts = [f"{acked:,} rows acknowledged ({acked / span:,.1f}/s)"]
    if dead:
        parts.append(f"{dead:,} dead-lettered")
    if failed:
        parts.append(f"{failed:,} failed writes")
    if stats is not None and sink.consumer in stats.pending:
        parts.append(f"{stats.pending[sink.consumer]:,} pending")
    text = f"{sink.consumer}: " + ", ".join(parts)
    if sink.stopped and not (before and before.stopped):
        text += f"; stopped: {sink.last_error}"
    elif failed and sink.last_error:
        text += f"; last error: {sink.last_error}"
    return text
