"""How fast the loops go: the collect step at full speed, a following forwarder's poll interval,
and the one retry policy (full-jitter exponential backoff). Pure functions of their arguments."""

from __future__ import annotations

import random

__all__ = ["FIRST_STEP_MS", "backoff_delay", "next_poll_interval", "next_step"]

FIRST_STEP_MS = 1000
"""At full speed, collecting starts with a step of at most one second of sensor time."""


def next_step(span_ms: int, rows: int, target_rows: int, max_step_ms: int) -> int:
    """The next step of sensor time at full speed: about ``target_rows`` readings at the rate the
    last step of ``span_ms`` gave (``rows``), never above ``max_step_ms`` (``run.step``) and never
    more than 8 times the last, so a collect holds about one ``run.batch_size`` of readings in
    memory whatever the fleet's size and rate."""
    if rows <= 0:
        return min(max_step_ms, span_ms * 8)
    return max(1, min(max_step_ms, span_ms * 8, span_ms * target_rows // rows))


def next_poll_interval(
    backlog_rows: int, batch_size: int, current: float, minimum: float, maximum: float
) -> float:
    """A following lane's next poll interval (``[run] min_interval`` set), from the rows it read
    since it last caught up (``backlog_rows``: what piled up while it waited): none doubles the
    interval, a full batch or more drops it to ``minimum`` at once, anything between halves it;
    always within ``[minimum, maximum]``. A node whose rows arrive in bursts polls often while
    they arrive and backs off to ``maximum`` (``run.interval``) when idle."""
    if backlog_rows <= 0:
        wanted = current * 2.0
    elif backlog_rows >= batch_size:
        wanted = minimum
    else:
        wanted = current / 2.0
    return min(maximum, max(minimum, wanted))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base·2^attempt)]. The exponent
    stops at 1000 (2.0 ** 1024 overflows; a following forwarder counts attempts without end)."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(max(0, attempt), 1000)))
