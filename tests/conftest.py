"""Shared settings. Fixtures such as ``cosmobac_plugins`` come from ``cosmobac.testing``, which
cosmobac installs as a pytest plugin (entry point ``pytest11``)."""

from __future__ import annotations

from cosmobac.testing import use_hypothesis_profile

use_hypothesis_profile()
