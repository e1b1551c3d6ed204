"""Fixtures for the WebAssembly plugin's tests (skipped, with the reason, without the plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip(
    "cosmobac_wasm", reason="cosmobac-wasm is not installed: pip install -e plugins/cosmobac-wasm"
)


@pytest.fixture(autouse=True, scope="session")
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled modules go to a cache folder of this test session, not the user's."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("wasm-cache")
    folder.chmod(0o700)
    patch.setenv("COSMOBAC_WASM_CACHE", str(folder))
    yield
    patch.undo()
