"""The throughput scaler's decisions: pure and deterministic (no clock, no I/O).

Each tick gives the time, the age of the sink's oldest pending row, the 429 (throttled) responses
per second the forwarder saw, and the container's current throughput (RU/s, or the autoscale
maximum Tmax). :meth:`Scaler.decide` answers with a :class:`Decision`: keep, raise or lower, from
what to what, and why.

Rules (see docs/cosmos.md, "Automated scaling"):

* **pressure**: the backlog is older than ``up_backlog_age`` or 429s arrive faster than
  ``up_throttle_rate`` per second; **calm**: the backlog is no older than ``down_backlog_age``
  *and* 429s arrive no faster than ``down_throttle_rate``. Anything between is neither, and
  resets both counts (hysteresis: the thresholds differ, so a load near one of them does not flap);
* an old backlog while the sink is *not* delivering (no forwarder, or one that cannot reach the
  container) is no reason to pay for more throughput: ``not_delivering``, nothing counts;
* raise after ``up_ticks`` pressured ticks in a row, lower after ``down_ticks`` calm ticks in a row;
* a raise multiplies by ``factor`` and a lower divides by it, rounded to the mode's step (100 RU/s
  manual, 1,000 RU/s for an autoscale maximum) and moving by one step at least;
* never outside ``[minimum, maximum]``, and never below the service's floor (400 RU/s manual,
  1,000 RU/s autoscale maximum); a current value outside the bounds is brought inside at once;
* no change within ``cooldown`` seconds of the last one (counts keep running meanwhile); each
  change starts both counts again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal

import attrs

__all__ = [
    "AUTOSCALE_FLOOR",
    "AUTOSCALE_STEP",
    "MANUAL_FLOOR",
    "MANUAL_STEP",
    "REASONS",
    "Decision",
    "Scaler",
    "ScalerSettings",
    "Tick",
    "replay",
]

MANUAL_STEP: Final = 100
"""Manual (standard) throughput is set in steps of 100 RU/s."""
MANUAL_FLOOR: Final = 400
"""The least manual throughput of a dedicated container."""
AUTOSCALE_STEP: Final = 1000
"""An autoscale maximum (Tmax) is set in steps of 1,000 RU/s (it scales 0.1 × Tmax to Tmax)."""
AUTOSCALE_FLOOR: Final = 1000
"""The least autoscale maximum (which scales between 100 and 1,000 RU/s)."""

Action = Literal["keep", "raise", "lower"]

REASONS: Final = (
    "backlog_age",  # raise: the backlog stayed too old
    "throttling",  # raise: 429s stayed too frequent
    "idle",  # lower: backlog young and no (few) 429s
    "above_maximum",  # lower: the current value was above the bounds
    "below_minimum",  # raise: the current value was below the bounds
    "cooldown",  # keep: a change would be due, but the last was too recent
    "at_maximum",  # keep: pressured, but already at the maximum
    "at_minimum",  # keep: calm, but already at the minimum
    "pending",  # keep: pressured or calm, not yet for enough ticks in a row
    "not_delivering",  # keep: the backlog is old, but the sink is not delivering anything
    "steady",  # keep: neither pressured nor calm
)
"""Every ``Decision.reason``: the metric's ``reason`` label takes these values only."""


@attrs.frozen(kw_only=True)
class ScalerSettings:
    """The scaler's bounds and thresholds (times in seconds, rates in 429s per second)."""

    minimum: int = 400
    maximum: int = 4000
    factor: float = 1.5
    up_backlog_age: float = 60.0
    up_throttle_rate: float = 1.0
    up_ticks: int = 3
    down_backlog_age: float = 5.0
    down_throttle_rate: float = 0.0
    down_ticks: int = 10
    cooldown: float = 300.0

    def __attrs_post_init__(self) -> None:
        if self.minimum < 1 or self.maximum < self.minimum:
            raise ValueError(
                f"bounds: need 1 ≤ minimum ≤ maximum, got {self.minimum}–{self.maximum}"
            )
        if not self.factor > 1.0:
            raise ValueError(f"factor must be above 1, got {self.factor}")
        if self.up_ticks < 1 or self.down_ticks < 1:
            raise ValueError("up_ticks and down_ticks must be at least 1")
        if self.down_backlog_age > self.up_backlog_age:
            raise ValueError(
                f"down_backlog_age ({self.down_backlog_age:g}s) must not exceed up_backlog_age "
                f"({self.up_backlog_age:g}s)"
            )
        if self.down_throttle_rate > self.up_throttle_rate:
            raise ValueError(
                f"down_throttle_rate ({self.down_throttle_rate:g}/s) must not exceed "
                f"up_throttle_rate ({self.up_throttle_rate:g}/s)"
            )
        if self.cooldown < 0:
            raise ValueError("cooldown must not be negative")

    def bounds(self, autoscale: bool) -> tuple[int, int]:
        """``(low, high)`` for a mode: the bounds rounded inward to its step, and at least its
        floor (``high`` never below ``low``)."""
        step, floor = (
            (AUTOSCALE_STEP, AUTOSCALE_FLOOR) if autoscale else (MANUAL_STEP, MANUAL_FLOOR)
        )
        low = max(floor, _up(self.minimum, step))
        high = max(low, _down(self.maximum, step))
        return low, high


@attrs.frozen
class Tick:
    """What the scaler sees at ``time``: the oldest pending row's age (``None``: nothing
    pending), 429s per second (``None``: unknown, read as none), the current throughput, and
    whether the sink is delivering (a forwarder runs and acknowledged rows lately)."""

    time: float
    backlog_age: float | None
    throttle_rate: float | None
    current: int
    delivering: bool = True


@attrs.frozen
class Decision:
    """One decision: ``action`` ``current`` → ``target`` RU/s, and why (one of :data:`REASONS`)."""

    time: float
    action: Action
    current: int
    target: int
    reason: str
    autoscale: bool = False

    @property
    def changes(self) -> bool:
        return self.target != self.current

    def line(self) -> str:
        """The log line: ``raise 400 → 600 RU/s (backlog_age)``."""
        unit = "RU/s autoscale max" if self.autoscale else "RU/s"
        if self.changes:
            return f"{self.action} {self.current} → {self.target} {unit} ({self.reason})"
        return f"keep {self.current} {unit} ({self.reason})"


def _up(value: float, step: int) -> int:
    return math.ceil(value / step - 1e-9) * step


def _down(value: float, step: int) -> int:
    return math.floor(value / step + 1e-9) * step


class Scaler:
    """Decides tick by tick. Deterministic: the same ticks give the same decisions. Call
    :meth:`applied` once a change was made (a change that failed does not start the cooldown)."""

    def __init__(self, settings: ScalerSettings, *, autoscale: bool = False) -> None:
        self.settings = settings
        self.autoscale = autoscale
        self.hot = 0  # pressured ticks in a row
        self.cold = 0  # calm ticks in a row
        self.last_change: float | None = None

    def decide(self, tick: Tick) -> Decision:
        s = self.settings
        low, high = s.bounds(self.autoscale)
        step = AUTOSCALE_STEP if self.autoscale else MANUAL_STEP
        current = tick.current

        def decision(action: Action, target: int, reason: str) -> Decision:
            return Decision(tick.time, action, current, target, reason, self.autoscale)

        if current > high:
            return decision("lower", high, "above_maximum")
        if current < low:
            return decision("raise", low, "below_minimum")

        age = tick.backlog_age or 0.0
        rate = tick.throttle_rate or 0.0
        throttled = rate > s.up_throttle_rate
        old = age > s.up_backlog_age
        if old and not throttled and not tick.delivering:
            self.hot = self.cold = 0
            return decision("keep", current, "not_delivering")
        if throttled or old:
            self.hot, self.cold = self.hot + 1, 0
        elif age <= s.down_backlog_age and rate <= s.down_throttle_rate:
            self.hot, self.cold = 0, self.cold + 1
        else:
            self.hot = self.cold = 0
            return decision("keep", current, "steady")

        if self.hot:
            if self.hot < s.up_ticks:
                return decision("keep", current, "pending")
            if current >= high:
                return decision("keep", current, "at_maximum")
            target = min(high, max(current + step, _up(current * s.factor, step)))
            reason = "throttling" if throttled else "backlog_age"
            return self._change(decision("raise", target, reason))
        if self.cold < s.down_ticks:
            return decision("keep", current, "pending")
        if current <= low:
            return decision("keep", current, "at_minimum")
        target = max(low, min(current - step, _down(current / s.factor, step)))
        return self._change(decision("lower", target, "idle"))

    def _change(self, wanted: Decision) -> Decision:
        if self.last_change is not None and wanted.time - self.last_change < self.settings.cooldown:
            return attrs.evolve(wanted, action="keep", target=wanted.current, reason="cooldown")
        return wanted

    def applied(self, decision: Decision) -> None:
        """``decision``'s change was made: the cooldown starts and both counts start again."""
        if decision.changes:
            self.last_change = decision.time
            self.hot = self.cold = 0


def replay(scaler: Scaler, ticks: Iterable[tuple[Any, ...]], start: int) -> Iterator[Decision]:
    """Run ``scaler`` over a workload trace of ``(time, backlog_age, throttle_rate)`` (and
    optionally ``delivering``) from a container at ``start`` RU/s, applying every change as it is
    decided (the container then has the new throughput at the next tick)."""
    current = start
    for tick in ticks:
        time, age, rate = tick[:3]
        delivering = bool(tick[3]) if len(tick) > 3 else True
        decision = scaler.decide(Tick(time, age, rate, current, delivering))
        if decision.changes:
            scaler.applied(decision)
            current = decision.target
        yield decision
