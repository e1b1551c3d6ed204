"""Shared settings. Fixtures such as ``cosmobac_plugins`` come from ``cosmobac.testing``, which
cosmobac installs as a pytest plugin (entry point ``pytest11``).

Test modules that use plugin distributions (mostly the SQLite store) say so with
``pytestmark = pytest.mark.needs_plugins``. ``nox -s core_alone`` (cosmobac with no plugin installed,
``COSMOBAC_CORE_ALONE=1``) does not even import them; every other session runs them.
"""

from __future__ import annotations

import os
from pathlib import Path

from cosmobac.testing import use_hypothesis_profile

use_hypothesis_profile()

NEEDS_PLUGINS = "pytestmark = pytest.mark.needs_plugins"
CORE_ALONE = bool(os.environ.get("COSMOBAC_CORE_ALONE"))


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if CORE_ALONE and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return NEEDS_PLUGINS in collection_path.read_text(encoding="utf-8") or None
    return None
