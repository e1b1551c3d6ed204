"""Shared settings. Fixtures such as ``cosmobac_plugins`` come from ``cosmobac.testing``, which
cosmobac installs as a pytest plugin (entry point ``pytest11``)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
