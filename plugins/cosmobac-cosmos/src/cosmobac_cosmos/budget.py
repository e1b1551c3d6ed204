"""A request-unit budget for the ``cosmos`` sink (key ``max_ru_per_second``): a token bucket fed
by the charges the server reports, so a forwarder sharing a container never takes more than its
share of the container's throughput.

How it works:

* The bucket holds at most :attr:`RequestBudget.capacity` RU — one second of budget
  (:data:`CAPACITY_S`): after an idle spell the sink may spend one second's worth at once, no more.
  It refills continuously at ``rate`` RU per second and starts full.
* A request's charge is known only when it answers (``x-ms-request-charge``), so before sending,
  :meth:`RequestBudget.acquire` *reserves* an estimate — the average charge per document of the
  recent answers (an exponentially weighted mean) times the documents in the request — and
  :meth:`RequestBudget.settle` replaces the reservation by the actual charge when the answer
  comes. The balance may go negative (the estimate was low, or a request is large); nothing more
  is sent until it has refilled to zero. Over any span *T* the charges spent are therefore at most
  ``rate × T + capacity`` plus the estimate's error on the requests in flight.
* Reserving the estimate (rather than only waiting for a non-negative balance) keeps concurrent
  requests from all starting on the same balance: once the bucket is spent, requests go out one at
  a time at the budget's pace. Until the first successful answer gives an estimate, only one
  request is in flight (a server that reports no charge gives an estimate of 0: no limit).
* A request that got no answer (a timeout, a dropped connection) keeps its reservation: it may have
  been written and charged. An answered failure (HTTP 429, 5xx, ...) is settled with the charge it
  reports (0 for a 429).

All methods are thread-safe (a lock), and time comes from an injectable ``clock``
(:func:`time.monotonic` by default) so tests can drive the bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Final

import attrs

__all__ = ["CAPACITY_S", "RequestBudget"]

CAPACITY_S: Final = 1.0
"""The bucket holds this many seconds of budget: the most the sink spends at once after a pause."""

_UNKNOWN_POLL_S: Final = 0.01  # how soon to look again while the first estimate is awaited
_SMOOTHING: Final = 0.2  # weight of the newest answer in the charge-per-document estimate


@attrs.define(eq=False)
class RequestBudget:
    """A token bucket of request units refilled at ``rate`` RU per second."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    capacity: float = attrs.field(
        default=attrs.Factory(lambda self: self.rate * CAPACITY_S, takes_self=True)
    )
    balance: float = attrs.field(init=False)
    per_document: float | None = attrs.field(init=False, default=None)
    outstanding: int = attrs.field(init=False, default=0)
    spent: float = attrs.field(init=False, default=0.0)
    _last: float = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"the rate must be a finite number > 0, got {self.rate!r}")
        if not self.capacity > 0:
            raise ValueError(f"the capacity must be > 0, got {self.capacity!r}")
        self.balance = self.capacity
        self._last = self.clock()

    def _refill(self) -> float:
        now = self.clock()
        if now > self._last:
            self.balance = min(self.capacity, self.balance + (now - self._last) * self.rate)
            self._last = now
        return now

    def _delay(self) -> float:
        if self.per_document is None and self.outstanding:
            return _UNKNOWN_POLL_S
        return 0.0 if self.balance >= 0 else -self.balance / self.rate

    def delay(self) -> float:
        """Seconds to wait before a request may be sent (0: now)."""
        with self._lock:
            self._refill()
            return self._delay()

    def acquire(self, documents: int) -> float | None:
        """Reserve the estimated charge of a request of ``documents`` documents and return it, or
        ``None`` (nothing reserved) when the request must wait (:meth:`delay` says how long)."""
        with self._lock:
            self._refill()
            if self._delay() > 0:
                return None
            reserved = (self.per_document or 0.0) * max(documents, 1)
            self.balance -= reserved
            self.outstanding += 1
            return reserved

    def settle(self, reserved: float, charge: float | None, documents: int = 0) -> None:
        """A request that reserved ``reserved`` answered with ``charge`` RU (``None``: no answer,
        the reservation stands). A successful request's ``documents`` update the estimate."""
        with self._lock:
            self._refill()
            self.outstanding = max(0, self.outstanding - 1)
            spent = reserved if charge is None else max(0.0, charge)
            self.spent += spent
            self.balance = min(self.capacity, self.balance + reserved - spent)
            if charge is not None and documents > 0:  # a success (0: the server charges nothing)
                sample = max(0.0, charge) / documents
                estimate = self.per_document
                self.per_document = (
                    sample if estimate is None else estimate + _SMOOTHING * (sample - estimate)
                )
