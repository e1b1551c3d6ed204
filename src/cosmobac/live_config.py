"""The live config switch: a running forwarder picks up a new pipeline file; writing one
atomically.

Guarantees:

* :func:`write_atomic` replaces a file in one step: a reader sees the old content or the new,
  never a part (temporary file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the
  folder);
* :func:`forward_following` (``cosmobac forward CONFIG --follow``) watches CONFIG every second
  (its inode, modification time and size, then the SHA-256 of its content). A new file is read
  and checked; a bad one is logged and ignored, and the running pipeline keeps going. A good one
  ends the current round after the batch in hand, exactly as a stop does (nothing read is lost,
  nothing unwritten is acknowledged); then the new pipeline is built and forwarding goes on with
  its sinks and transforms from the same store checkpoints. If the new pipeline cannot be built
  (a sink refuses its settings), the old one resumes;
* the outcome of each change is written next to the file, in ``.<name>.status.json``:
  ``{"sha256", "state": "applied" | "rejected", "message", "time", "pid"}``, so whoever wrote the
  file can tell whether the forwarder took it (:func:`install` with ``wait``);
* :func:`install_seed` installs a job's shipped config as the live file only when that shipped
  config is new, so a restarted daemon keeps a config switched since.

``python -m cosmobac.live_config install NEW LIVE [--wait SECONDS]`` is the script a Bacalhau switch
job runs on each node (see docs/bacalhau.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from .config import PipelineConfig, parse_config
from .errors import ConfigError
from .files import write_atomic
from .pipeline import ForwardReport, LaneReport, Pipeline, Progress
from .plugins import Plugins

__all__ = [
    "ConfigWatcher",
    "InstallResult",
    "forward_following",
    "install",
    "install_seed",
    "read_status",
    "status_path",
    "write_atomic",
]

log = logging.getLogger("cosmobac.live_config")

POLL_INTERVAL: Final = 1.0


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def status_path(config: str | os.PathLike[str]) -> Path:
    """Where the outcome of the last change of ``config`` is recorded."""
    path = Path(config)
    return path.with_name(f".{path.name}.status.json")


def _seed_marker(config: str | os.PathLike[str]) -> Path:
    path = Path(config)
    return path.with_name(f".{path.name}.seed")


def read_status(config: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recorded outcome of the last change of ``config``, or None."""
    try:
        data = json.loads(status_path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_status(config: str | os.PathLike[str], state: str, sha256: str, message: str) -> None:
    record = {
        "sha256": sha256,
        "state": state,
        "message": message,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
    }
    try:
        write_atomic(status_path(config), json.dumps(record) + "\n")
    except OSError as exc:  # a read-only folder must not stop forwarding
        log.warning("cannot record the reload status next to %s: %s", config, exc)


def install_seed(seed: str | os.PathLike[str], config: str | os.PathLike[str]) -> bool:
    """Install ``seed`` as ``config`` when ``config`` is missing or ``seed`` differs from the seed
    installed last time; return whether it was installed. A config switched since the last seed
    (by :func:`install`) is kept while the seed stays the same."""
    try:
        data = Path(seed).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{seed}: cannot read the seed pipeline file: {exc.strerror}") from exc
    sha = digest(data)
    marker = _seed_marker(config)
    try:
        previous = marker.read_text(encoding="utf-8").strip()
    except OSError:
        previous = None
    if Path(config).exists() and previous == sha:
        return False
    try:
        write_atomic(config, data)
        write_atomic(marker, sha + "\n")
    except OSError as exc:
        raise ConfigError(
            f"{config}: cannot install the pipeline file there: {exc.strerror} (is the folder "
            "writable by this user? the cosmobac image runs as uid 10001)"
        ) from exc
    log.info("installed %s as %s", seed, config)
    return True


# -- watching ---------------------------------------------------------------------------------------
def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class ConfigWatcher:
    """Notices new content in a file: cheap ``stat`` checks, then a hash of the content, so a
    touch or a rewrite with the same bytes is not a change. Content that was rejected is not
    offered again."""

    def __init__(self, path: str | os.PathLike[str], current: bytes) -> None:
        self.path = Path(path)
        self.current = digest(current)
        self._signature = _signature(self.path)
        self._rejected: set[str] = set()

    def poll(self) -> bytes | None:
        """The file's new content, or None when it did not change (or cannot be read now)."""
        signature = _signature(self.path)
        if signature is None or signature == self._signature:
            return None
        self._signature = signature
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        sha = digest(data)
        if sha == self.current or sha in self._rejected:
            return None
        return data

    def accept(self, data: bytes) -> None:
        self.current = digest(data)

    def reject(self, data: bytes) -> None:
        self._rejected.add(digest(data))


def parse_pipeline(data: bytes, source: str, plugins: Plugins | None = None) -> PipelineConfig:
    """Check pipeline file content (``ConfigError`` naming what is wrong)."""
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    config = parse_config(table, source=source, plugins=plugins)
    if config.store is None:
        raise ConfigError(f'{source}: missing [store] section (e.g. plugin = "sqlite")')
    if not config.sinks:
        raise ConfigError(f"{source}: no [[sinks]] table, needed to forward")
    return config


@attrs.define
class _Pending:
    data: bytes
    config: PipelineConfig


class _Reloader:
    def __init__(
        self,
        path: Path,
        stop: threading.Event,
        plugins: Plugins | None,
        progress: Progress | None,
        interval: float,
        on_pipeline: Callable[[Pipeline], None] | None = None,
    ) -> None:
        self.on_pipeline = on_pipeline
        self.path = path
        self.stop = stop
        self.plugins = plugins
        self.progress = progress
        self.interval = interval
        self.lock = threading.Lock()
        self.pending: _Pending | None = None
        self.done = threading.Event()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the pipeline file: {exc.strerror}") from exc
        self.config = parse_pipeline(data, str(path), plugins)
        self.current = self._build(self.config)
        self.watcher = ConfigWatcher(path, data)
        write_status(path, "applied", digest(data), "running")

    def _build(self, config: PipelineConfig) -> Pipeline:
        pipeline = Pipeline.from_config(
            config,
            plugins=self.plugins,
            need_sinks=True,
            progress=self.progress,
            create_store=False,  # forwarding never creates a store
        )
        if self.on_pipeline is not None:
            self.on_pipeline(pipeline)
        return pipeline

    def watch(self) -> None:
        """The watcher thread: hands stops on, checks new content, asks for a swap."""
        while not self.done.is_set():
            if self.stop.is_set():
                with self.lock:
                    self.current.stop.set()
            elif self.pending is None:
                self._check()
            self.done.wait(self.interval if not self.stop.is_set() else 0.05)

    def _check(self) -> None:
        data = self.watcher.poll()
        if data is None:
            return
        sha = digest(data)
        try:
            config = parse_pipeline(data, str(self.path), self.plugins)
        except ConfigError as exc:
            self._reject(data, f"the new pipeline file is not used: {exc}")
            return
        with self.lock:
            self.pending = _Pending(data, config)
            self.current.stop.set()  # ends the round after the batch in hand
        log.info(
            "new pipeline file %s (sha256 %s): switching after the current batch",
            self.path,
            sha[:12],
        )

    def _reject(self, data: bytes, message: str) -> None:
        self.watcher.reject(data)
        log.error("%s; the running pipeline keeps going", message)
        write_status(self.path, "rejected", digest(data), message)

    def swap(self) -> str | None:
        """Build the pending pipeline and make it current (``"swapped"``); ``None`` when nothing
        is pending. A pipeline that cannot be built is rejected and the old one resumes
        (``"resumed"``)."""
        with self.lock:
            pending, self.pending = self.pending, None
        if pending is None:
            return None
        try:
            new = self._build(pending.config)
        except Exception as exc:
            self._reject(
                pending.data, f"the new pipeline cannot start: {type(exc).__name__}: {exc}"
            )
            with self.lock:
                self.current.stop.clear()
            return "resumed"
        with self.lock:
            old, self.current = self.current, new
        old.close()
        self.watcher.accept(pending.data)
        write_status(self.path, "applied", digest(pending.data), "running")
        lanes = ", ".join(lane.consumer for lane in new.lanes)
        log.warning("switched to the new pipeline file %s (sinks: %s)", self.path, lanes)
        before, self.config = self.config, pending.config
        if (before.monitoring, before.alerts) != (pending.config.monitoring, pending.config.alerts):
            log.warning(
                "%s: the new [monitoring] and [[alerts]] take effect when the forwarder restarts "
                "(the metrics server, max_backlog_age and alerts keep their old settings; the "
                "new sinks are watched at once)",
                self.path,
            )
        return "swapped"


def _merge(totals: dict[str, LaneReport], report: ForwardReport) -> None:
    for lane in report.lanes:
        total = totals.setdefault(lane.consumer, LaneReport(lane.consumer))
        total.written += lane.written
        total.acked += lane.acked
        total.dead_lettered += lane.dead_lettered
        total.retried += lane.retried
        total.failures += lane.failures
        total.error = lane.error
        for key, value in lane.stats.items():
            total.stats[key] = total.stats.get(key, 0.0) + value


def forward_following(
    config: str | os.PathLike[str],
    *,
    stop: threading.Event,
    plugins: Plugins | None = None,
    progress: Progress | None = None,
    interval: float = POLL_INTERVAL,
    on_pipeline: Callable[[Pipeline], None] | None = None,
) -> ForwardReport:
    """``forward --follow`` that switches to a new pipeline file between batches (see the module
    docstring), until ``stop`` is set or every sink has given up. The report sums each sink's
    counts over every pipeline it was part of; a sink's ``error`` is its latest. ``on_pipeline``
    is called with each pipeline built (the first, and each switched to) before it runs."""
    reloader = _Reloader(Path(config), stop, plugins, progress, interval, on_pipeline)
    thread = threading.Thread(target=reloader.watch, name="cosmobac-reload", daemon=True)
    thread.start()
    totals: dict[str, LaneReport] = {}
    report = ForwardReport(())
    try:
        while not stop.is_set():
            report = reloader.current.forward(follow=True)  # totals over this pipeline's life
            if stop.is_set():
                break
            outcome = reloader.swap()
            if outcome is None:
                break  # every sink gave up
            if outcome == "swapped":
                _merge(totals, report)
                report = ForwardReport(())
    finally:
        reloader.done.set()
        thread.join(timeout=5)
        reloader.current.close()
    _merge(totals, report)
    return ForwardReport(tuple(totals.values()))


# -- installing a new file (the switch job's script) --------------------------------------------------
@attrs.frozen
class InstallResult:
    """What :func:`install` saw: ``state`` is ``applied``, ``rejected``, ``written`` (no wait)
    or ``timeout`` (no running forwarder took it in time)."""

    state: str
    sha256: str
    message: str = ""

    @property
    def exit_code(self) -> int:
        return {"applied": 0, "written": 0, "rejected": 3, "timeout": 4}.get(self.state, 1)


def install(
    new: str | os.PathLike[str],
    config: str | os.PathLike[str],
    *,
    wait: float = 0.0,
    poll: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> InstallResult:
    """Write ``new``'s content atomically as ``config``; with ``wait`` seconds, wait until the
    running forwarder reports it applied or rejected. The content must be TOML (checked before
    anything is written); the full check needs the forwarder's environment and plugins, so it is
    the forwarder's."""
    data = Path(new).read_bytes()
    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{new}: not a valid pipeline file (TOML): {exc}") from None
    sha = digest(data)
    write_atomic(config, data)
    if wait <= 0:
        return InstallResult("written", sha)
    deadline = time.monotonic() + wait
    while True:
        status = read_status(config)
        if (
            status
            and status.get("sha256") == sha
            and status.get("state") in ("applied", "rejected")
        ):
            return InstallResult(str(status["state"]), sha, str(status.get("message", "")))
        if time.monotonic() >= deadline:
            return InstallResult(
                "timeout",
                sha,
                f"no running forwarder took {config} within {wait:g} s (is `cosmobac forward "
                f"{config} --follow` running on this node?)",
            )
        sleep(poll)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cosmobac.live_config install NEW CONFIG [--wait SECONDS]``: exit 0 when written
    (and, with --wait, applied), 3 when the forwarder rejected it, 4 when none took it in time,
    2 for a bad file."""
    parser = argparse.ArgumentParser(prog="python -m cosmobac.live_config")
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("install", help="write NEW as CONFIG atomically")
    put.add_argument("new")
    put.add_argument("config")
    put.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a forwarder")
    args = parser.parse_args(argv)
    try:
        result = install(args.new, args.config, wait=args.wait)
    except (ConfigError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"config": args.config, **attrs.asdict(result)}))
    if result.message and result.state != "applied":
        print(result.message, file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover - exercised in a subprocess by the tests
    sys.exit(main())
