"""Helpers for testing pipelines and plugins, public for downstream packages.

* :class:`ListSensor` plays back batches you give it; :class:`QueueSensor` is a live sensor a test
  feeds from any thread (``put``, ``reject``, ``finish``) and that counts what was committed;
  :class:`ListSink` keeps what it is given and
  can be told to fail, ask for retries or reject rows; :class:`MemoryStore` is the built-in
  ``memory`` store (:mod:`cosmobac.stores.memory`, also ``cosmobac.MemoryStore``), re-exported
  here.
* :func:`fresh_plugins` gives a :class:`~cosmobac.plugins.Plugins` with built-ins only (and the
  plugins you pass), installed as the process-wide one for the duration of a ``with`` block.
* :func:`run_cosmobac` runs the ``cosmobac`` command line in a new Python process, to test a
  plugin's commands or an installed entry point end to end.
* With pytest, the ``cosmobac_plugins`` fixture does the same for one test (this module is a pytest
  plugin: the fixture is available wherever cosmobac is installed).
* The conformance kit — :func:`check_store`, :func:`check_sink`, :func:`check_sensor`,
  :func:`check_transform` (from :mod:`cosmobac.conformance`) — runs the checks of the component
  contract, and of each capability a component declares, against components a factory makes; they
  raise ``AssertionError`` naming the broken guarantee. :func:`sample_readings` is the data they
  use.
* :func:`silent_server` is a loopback endpoint that accepts connections and never answers, to test
  that a network sink's timeouts give up instead of hanging.
* :func:`require_command` skips a test when a command it needs is not installed, and fails it
  under CI (``CI`` set), so CI never skips silently; :func:`skip_or_fail` does the same for any
  missing tool.
* :func:`headless_chromium` (from :mod:`cosmobac.testing_browser`) starts Debian's Chromium,
  headless and loopback-only, and yields a :class:`Browser` that keeps every URL the page requested
  (:meth:`Browser.requests_off_loopback`), its console errors and its screenshots; with pytest, the
  ``cosmobac_browser`` fixture gives one per test, writing screenshots to
  ``$COSMOBAC_TEST_ARTIFACTS`` or ``<rootdir>/build/test-artifacts`` (their paths are printed at
  the end of the run).
* :func:`use_hypothesis_profile` loads the hypothesis settings cosmobac's own suites use (more
  examples under CI), for a plugin's ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
import numpy as np

from .batch import Batch
from .conformance import check_sensor, check_sink, check_store, check_transform, sample_readings
from .errors import SinkError
from .interfaces import InputReject, WriteResult
from .plugins import Plugins, set_plugins
from .stores.memory import MemoryStore
from .testing_browser import (
    Browser,
    BrowserUnavailable,
    chromium_paths,
    headless_chromium,
    is_loopback_url,
)

__all__ = [
    "Browser",
    "BrowserUnavailable",
    "ListSensor",
    "ListSink",
    "MemoryStore",
    "QueueSensor",
    "artifacts_dir",
    "check_sensor",
    "check_sink",
    "check_store",
    "check_transform",
    "chromium_paths",
    "fresh_plugins",
    "headless_chromium",
    "is_loopback_url",
    "require_command",
    "run_cosmobac",
    "sample_readings",
    "silent_server",
    "skip_or_fail",
    "use_hypothesis_profile",
]


@attrs.define(eq=False)
class ListSensor:
    """A sensor that returns rows of the given batches whose timestamp is below ``until``, each once."""

    batches: Sequence[Batch] = ()
    start: int | None = None
    _pending: Batch = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._pending = Batch.concat(list(self.batches))
        if self.start is None and len(self._pending):
            self.start = int(self._pending["timestamp"].min())

    def seek(self, until: int) -> None:
        """Drop rows before ``until`` as if they had been returned."""
        if len(self._pending):
            self._pending = self._pending.select(self._pending["timestamp"] >= until)

    def read(self, until: int) -> Batch:
        if not len(self._pending):
            return self._pending
        due = self._pending["timestamp"] < until
        out = self._pending.select(due)
        self._pending = self._pending.select(~due)
        return out


@attrs.define(eq=False)
class QueueSensor:
    """A live sensor (:class:`~cosmobac.interfaces.LiveSensor`, ``CommittingSensor``,
    ``RejectingSensor``) fed by a test from any thread: ``put(batch)`` queues readings,
    ``reject(origin, reason, raw)`` queues an :class:`~cosmobac.interfaces.InputReject`,
    ``finish()`` says nothing more will come. ``read`` returns everything queued; ``commit`` moves
    what the last ``read`` returned to ``committed`` (``commits`` counts the calls), so a test can
    check that the collector commits only what it stored."""

    committed: int = attrs.field(init=False, default=0)
    commits: int = attrs.field(init=False, default=0)
    _queue: list[Batch] = attrs.field(init=False, factory=list)
    _queued: int = attrs.field(init=False, default=0)
    _rejects: list[InputReject] = attrs.field(init=False, factory=list)
    _in_hand: int = attrs.field(init=False, default=0)
    _done: bool = attrs.field(init=False, default=False)
    _cond: threading.Condition = attrs.field(init=False, factory=threading.Condition)

    def put(self, batch: Batch) -> None:
        with self._cond:
            self._queue.append(batch)
            self._queued += len(batch)
            self._cond.notify_all()

    def reject(self, origin: str, reason: str, raw: str = "") -> None:
        with self._cond:
            self._rejects.append(InputReject(origin, reason, raw))

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._done and not self._queued

    def wait(self, timeout: float, rows: int) -> bool:
        with self._cond:
            # after finish() what is queued is all there will be: no reason to wait for more
            return self._cond.wait_for(
                lambda: self._queued >= rows or (self._done and self._queued > 0), timeout
            )

    def read(self, until: int) -> Batch:
        with self._cond:
            out = Batch.concat(self._queue) if self._queue else Batch.empty()
            self._queue, self._queued = [], 0
            self._in_hand += len(out)
            return out

    def take_rejects(self) -> list[InputReject]:
        with self._cond:
            taken, self._rejects = self._rejects, []
            return taken

    def commit(self) -> None:
        with self._cond:
            self.committed += self._in_hand
            self._in_hand = 0
            self.commits += 1


@attrs.define(eq=False)
class ListSink:
    """A sink that keeps every batch it wrote in :attr:`batches`.

    ``fail`` makes the next writes raise (a number of times, or a callable deciding per batch);
    ``respond`` may return a :class:`WriteResult` for a batch (retries, rejections) — rows named
    in it are not kept.
    """

    batches: list[Batch] = attrs.field(factory=list)
    fail: int = 0
    permanent: bool = False
    respond: Callable[[Batch], WriteResult | None] | None = None
    closed: bool = False
    calls: int = 0

    def write(self, batch: Batch) -> WriteResult | None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise SinkError("ListSink told to fail", transient=not self.permanent)
        result = self.respond(batch) if self.respond else None
        keep = np.ones(len(batch), dtype=bool)
        if result is not None:
            keep[list(result.retry)] = False
            keep[list(result.rejected)] = False
        self.batches.append(batch.select(keep))
        return result

    def close(self) -> None:
        self.closed = True

    @property
    def written(self) -> Batch:
        """Everything written, in order, as one batch."""
        return Batch.concat(self.batches)


@contextlib.contextmanager
def fresh_plugins(*plugins: Any, entry_points: bool = False) -> Iterator[Plugins]:
    """A new :class:`Plugins` (built-ins, plus ``plugins`` registered by hand; entry points only if
    asked) installed as the process-wide one inside the ``with`` block."""
    fresh = Plugins(entry_points=entry_points)
    for plugin in plugins:
        fresh.register(plugin)
    previous = set_plugins(fresh)
    try:
        yield fresh
    finally:
        set_plugins(previous)


def run_cosmobac(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cosmobac *args`` with this interpreter and return what it did (stdout and
    stderr as text).

    ``env`` is added to this process's environment; ``cwd`` and ``timeout`` (seconds) go to
    :func:`subprocess.run`. With ``check`` (the default), an exit code other than 0 raises
    ``AssertionError`` with the command's stderr; pass ``check=False`` to look at a failure."""
    result = subprocess.run(
        [sys.executable, "-m", "cosmobac", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, list[float]]]:
    """A loopback server that accepts connections and never answers, for as long as the ``with``
    block runs: yields its base URL (``http://127.0.0.1:PORT/``) and the list of
    ``time.monotonic()`` times at which it accepted connections (one per attempt a client made)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[float] = []
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            held.append(conn)

    thread = threading.Thread(target=serve, name="cosmobac-silent-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", accepted
    finally:
        listener.close()
        for conn in held:
            conn.close()
        thread.join(5)


def use_hypothesis_profile() -> str:
    """Register and load the hypothesis profile for this run and return its name: ``cosmobac-ci``
    (60 examples, when ``CI`` is set) or ``cosmobac-dev`` (30); neither has a deadline, since
    shared machines are noisy. Needs hypothesis installed."""
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "cosmobac-ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile("cosmobac-dev", max_examples=30, deadline=None)
    name = "cosmobac-ci" if os.environ.get("CI") else "cosmobac-dev"
    settings.load_profile(name)
    return name


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test because something it needs is missing, or fail it when ``CI`` is
    set: a CI run that lacks a tool is broken, not excused. Needs pytest."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing tool fails instead of skipping)")
    pytest.skip(reason)


def require_command(command: str, package: str | None = None, *, hint: str = "") -> str:
    """The path of ``command`` on ``PATH``; without it, :func:`skip_or_fail` with the
    ``apt-get install`` line of ``package`` (default: the command's name) and ``hint``."""
    path = shutil.which(command)
    if path is None:
        reason = f"{command} is not installed: apt-get install {package or command}"
        skip_or_fail(f"{reason} ({hint})" if hint else reason)
    return path


def artifacts_dir(rootdir: str | os.PathLike[str]) -> Path:
    """Where tests write files to keep (screenshots): ``$COSMOBAC_TEST_ARTIFACTS`` if set, else
    ``<rootdir>/build/test-artifacts``."""
    given = os.environ.get("COSMOBAC_TEST_ARTIFACTS")
    return Path(given) if given else Path(rootdir) / "build" / "test-artifacts"


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional outside test suites
    pass
else:
    _CALL_FAILED = pytest.StashKey[bool]()

    @pytest.fixture
    def cosmobac_plugins() -> Iterator[Plugins]:
        """A fresh plugin registry (built-ins only) for one test; register test plugins on it."""
        with fresh_plugins() as plugins:
            yield plugins

    @pytest.fixture
    def cosmobac_browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
        """Headless Chromium for one test (:func:`headless_chromium`); screenshots go to
        ``artifacts_dir(rootdir)/<test file>-<test name>/``, and a test that fails leaves
        ``failed.png`` there. Skips without chromium and chromedriver, fails under CI."""
        try:
            chromium_paths()
        except BrowserUnavailable as exc:
            skip_or_fail(f"{exc} (nox installs it from .ci/debian-packages.txt)")
        try:
            import selenium  # noqa: F401
        except ImportError:
            skip_or_fail("selenium is not installed: pip install 'cosmobac[test]'")
        node = f"{request.node.path.stem}-{request.node.name}"
        folder = artifacts_dir(request.config.rootpath) / re.sub(r"[^\w.-]+", "-", node).strip("-")
        with headless_chromium(folder) as browser:
            try:
                yield browser
            finally:
                if request.node.stash.get(_CALL_FAILED, False):
                    with contextlib.suppress(Exception):
                        browser.screenshot("failed")
                for path in browser.screenshots:
                    request.node.user_properties.append(("cosmobac_screenshot", str(path)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        report = yield
        if report.when == "call" and report.failed:  # type: ignore[attr-defined]
            item.stash[_CALL_FAILED] = True
        return report

    def pytest_terminal_summary(terminalreporter: Any) -> None:
        """List the screenshots the tests wrote (from every xdist worker too)."""
        paths: dict[str, None] = {}
        for reports in terminalreporter.stats.values():
            for report in reports:
                for key, value in getattr(report, "user_properties", ()):
                    if key == "cosmobac_screenshot":
                        paths[value] = None
        if paths:
            terminalreporter.write_sep("-", "screenshots (cosmobac_browser)")
            for path in paths:
                terminalreporter.write_line(path)
