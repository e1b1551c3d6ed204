"""The conformance kit: checks that a component keeps the contract of :mod:`cosmobac.interfaces`.

Public through :mod:`cosmobac.testing` (``check_store``, ``check_sink``, ``check_sensor``,
``check_transform``, ``sample_readings``), so a downstream plugin runs in its own test suite the
checks cosmobac's stores and sinks pass. Each ``check_*`` takes a factory (no arguments, a new
component each call), builds a fresh component for each group of checks, closes what it built, and
raises ``AssertionError`` naming the component and the broken guarantee. It returns the names of
the checks it ran: the optional ones run only for the capabilities ``isinstance`` finds.

The checks run in well under a second for an in-memory or SQLite store; a sink talking to a server
costs a few writes.
"""

from __future__ import annotations

from ._common import SAMPLE_START, sample_readings
from .components import check_sensor, check_sink, check_transform
from .stores import check_store

__all__ = [
    "SAMPLE_START",
    "check_sensor",
    "check_sink",
    "check_store",
    "check_transform",
    "sample_readings",
]
