"""Fixtures for the WebAssembly plugin's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cosmobac.testing import use_hypothesis_profile

use_hypothesis_profile()


@pytest.fixture(autouse=True, scope="session")
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled modules go to a cache folder of this test session, not the user's."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("wasm-cache")
    folder.chmod(0o700)
    patch.setenv("COSMOBAC_WASM_CACHE", str(folder))
    yield
    patch.undo()
