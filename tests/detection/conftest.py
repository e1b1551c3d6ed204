"""Fixtures for the detection tests (helpers are in ``detection_support``)."""

from __future__ import annotations

import pytest
from detection_support import fleet_rows

from cosmobac.batch import Batch


@pytest.fixture
def small_fleet() -> Batch:
    """2 cities × 2 sensors, 30 minutes at 1 Hz (seed 7)."""
    return fleet_rows()
