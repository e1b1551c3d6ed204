"""Fixtures for the Bacalhau wrappers' tests: the ``FakeOrchestrator`` test double, a client on
it, Bacalhau's own example specs, and the opt-in ``bacalhau_real`` marker for a real cluster
(see docs/bacalhau.md, "Checking against a real orchestrator"). Fixtures such as
``cosmobac_plugins`` and ``run_cosmobac`` come from ``cosmobac.testing`` (a pytest plugin that
cosmobac installs)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from bacalhau_support import fleet
from fake_orchestrator import FakeOrchestrator

from cosmobac.cli import main
from cosmobac_bacalhau.client import BacalhauClient

# the same profiles as cosmobac's own suite (its tests/conftest.py)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bacalhau_real: needs a real Bacalhau orchestrator (v1.7+); opt in with "
        "COSMOBAC_BACALHAU_REAL=1 and BACALHAU_API_HOST (see docs/bacalhau.md)",
    )


@pytest.fixture
def fake() -> Iterator[FakeOrchestrator]:
    with FakeOrchestrator(nodes=fleet()) as orchestrator:
        yield orchestrator


@pytest.fixture
def client(fake: FakeOrchestrator) -> Iterator[BacalhauClient]:
    sleeps: list[float] = []
    with BacalhauClient(fake.url, sleep=sleeps.append) as made:
        made.sleeps = sleeps  # type: ignore[attr-defined]
        yield made


@pytest.fixture(autouse=True, scope="session")
def private_wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled modules go to a cache folder of this session, not the user's."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("bacalhau-wasm-cache")
    folder.chmod(0o700)
    patch.setenv("COSMOBAC_WASM_CACHE", str(folder))
    yield
    patch.undo()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the ``cosmobac`` command line in this process: ``run(*args, stdin=None)`` returns
    ``(exit code, stdout, stderr)``."""

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
