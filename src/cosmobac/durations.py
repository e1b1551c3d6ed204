"""Durations in configuration (``"6h"``, ``"1h30m"``, ``"250ms"``, ``"7d"``, or seconds): the
parser lives in :mod:`cosmobac.values`; ``parse_duration`` stays importable from here."""

from __future__ import annotations

from .values import parse_duration

__all__ = ["parse_duration"]
