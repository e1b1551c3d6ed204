"""How many requests the ``cosmos`` sink keeps in flight: additive increase, multiplicative
decrease (AIMD), adapting to what the server sustains."""

from __future__ import annotations

import math

import attrs

__all__ = ["Limiter"]


@attrs.define(eq=False)
class Limiter:
    """AIMD concurrency. A success adds ``1/limit`` (one more request in flight per round of
    successes); congestion — HTTP 429, a timeout, or a response slower than ``tolerance`` times the
    lowest latency seen lately (requests queueing somewhere) or than the configured target —
    multiplies the limit by ``factor``, at most once per round trip."""

    maximum: int
    limit: float
    tolerance: float = 3.0
    # the lowest latency seen lately per kind of request (batches and single upserts differ):
    # the unloaded round trip
    base: dict[str, float] = attrs.field(factory=dict)
    latency: float = 0.05  # smoothed latency of recent requests
    _last_decrease: float = -math.inf

    @property
    def allowed(self) -> int:
        return max(1, min(self.maximum, int(self.limit)))

    def observe(self, latency: float, now: float, target: float, kind: str = "create") -> None:
        """A successful request of ``kind`` that took ``latency`` seconds."""
        # the minimum drifts up slowly, so that an old one is forgotten
        base = self.base[kind] = min(self.base.get(kind, math.inf) * 1.01, latency)
        self.latency = 0.8 * self.latency + 0.2 * latency
        if latency > target or (latency > self.tolerance * base and latency > 0.002):
            self.congestion(now, factor=0.75)
        else:
            self.limit = min(float(self.maximum), self.limit + 1.0 / max(self.limit, 1.0))

    def congestion(self, now: float, factor: float = 0.5) -> bool:
        if now - self._last_decrease < max(0.01, self.latency):
            return False
        self._last_decrease = now
        self.limit = max(1.0, self.limit * factor)
        return True
