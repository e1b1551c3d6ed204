"""What ``cosmobac status`` shows: one read of a pipeline file's store and health, in three forms.

:func:`read_status` reads the store's stats once, where each ``[[sinks]]`` table of the file
stands, and the health file a forwarder records (:func:`~cosmobac.monitoring.read_health`), and
returns a :class:`Status` record. :meth:`Status.to_json` is the stable ``--json`` form (other tools,
such as ``cosmobac bacalhau fleet-status``, read it); :meth:`Status.__rich_console__` is the view for
people, a header and a table per sink, which ``--watch`` redraws.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from ..assembly import Checkpoint, checkpoints, sink_consumers
from ..config import PipelineConfig, load_config
from ..errors import CosmobacError, StoreMissingError
from ..interfaces import StoreStats
from ..pipeline import Pipeline
from .health import Health, Problem, SinkHealth, problems, read_health

__all__ = [
    "STALE_AFTER_S",
    "ForwarderState",
    "SinkStatus",
    "Status",
    "age_text_of",
    "ago_text_of",
    "read_status",
    "watch_view",
]

STALE_AFTER_S: Final = 10.0
"""A health file that says "running" but was not rewritten for this long (a forwarder rewrites
it every 2 s), from a process no longer alive on this machine, is a forwarder that died."""

NONE: Final = "—"
ERROR_WIDTH: Final = 60


def age_text_of(seconds: float) -> str:
    """An age for people: ``"45 s old"``, ``"12 min old"``, ``"5 h old"``, ``"338 d old"``; a
    timestamp ahead of this clock (simulated or skewed) reads ``"3 h ahead of this clock"``."""
    if seconds < 0:
        return f"{span_text(-seconds)} ahead of this clock"
    return f"{span_text(seconds)} old"


def ago_text_of(seconds: float) -> str:
    """How long ago, for people: ``"45 s ago"``, ``"3 min ago"``; a time ahead of this clock reads
    ``"3 h ahead of this clock"``."""
    if seconds < 0:
        return f"{span_text(-seconds)} ahead of this clock"
    return f"{span_text(seconds)} ago"


def span_text(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _clock_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (true when it cannot be told)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32" or pid <= 0:
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


@attrs.frozen
class ForwarderState:
    """The forwarder (``cosmobac run`` or ``forward``) of a pipeline file, as its health file
    tells: ``health`` is ``None`` when none has run. ``died``: the file says running, but it is
    stale (older than :data:`STALE_AFTER_S`) and its process is gone."""

    health: Health | None
    now: float
    died: bool = False

    @classmethod
    def of(cls, health: Health | None, now: float) -> ForwarderState:
        died = (
            health is not None
            and health.running
            and now - health.time > STALE_AFTER_S
            and not pid_alive(health.pid)
        )
        return cls(health, now, died)

    @property
    def running(self) -> bool:
        return self.health is not None and self.health.running and not self.died

    def to_json(self) -> dict[str, Any]:
        h = self.health
        return {
            "running": self.running,
            "pid": None if h is None else h.pid,
            "started": None if h is None else _iso(h.started),
            "last_seen": None if h is None else _iso(h.time),
        }

    def describe(self) -> str:
        """One line for people: running since when and which pid; or not running, died, or none
        has run."""
        h = self.health
        if h is None:
            return "no forwarder has run"
        seen = ago_text_of(self.now - h.time)
        if self.died:
            return f"died: pid {h.pid} is gone (last seen {seen}, started {_clock_text(h.started)})"
        if not h.running:
            return f"not running (last seen {seen})"
        text = f"running since {_clock_text(h.started)}, pid {h.pid}"
        if self.now - h.time > STALE_AFTER_S:
            text += f"; last seen {seen}"
        return text


@attrs.frozen
class SinkStatus:
    """One sink (by consumer name): what the store says and, when a forwarder recorded it, what
    the forwarder saw (``health``, else ``None``). ``plugin`` is ``None`` for a consumer the store
    knows that is not a sink of the file (one since removed or renamed)."""

    consumer: str
    plugin: str | None
    checkpoint: Checkpoint | None
    pending: int
    oldest_pending_age_s: float | None
    dead_letters: int
    health: SinkHealth | None
    forwarder_running: bool

    @property
    def last_error(self) -> str | None:
        return None if self.health is None else self.health.last_error

    @property
    def rows_per_second(self) -> float | None:
        """Rows acknowledged per second over the last minute; 0 while no forwarder runs."""
        if self.health is None:
            return None
        return self.health.rows_per_second if self.forwarder_running else 0.0

    @property
    def state(self) -> str | None:
        """``"stopped"`` (failed permanently, not written since), ``"retrying"`` (its last write
        failed), ``"ok"``; ``None`` with no health."""
        h = self.health
        if h is None:
            return None
        if h.stopped:
            return "stopped"
        if h.last_error_at is not None and (
            h.last_write_at is None or h.last_error_at > h.last_write_at
        ):
            return "retrying"
        return "ok"

    def to_json(self) -> dict[str, Any]:
        point = self.checkpoint
        h = self.health
        return {
            "plugin": self.plugin,
            "consumer": self.consumer,
            "resuming": None if point is None else point.resumed,
            "after_row": None if point is None else point.settled,
            "pending": self.pending,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "dead_letters": self.dead_letters,
            "rows_per_second": self.rows_per_second,
            "last_error": self.last_error,
            "last_error_at": None if h is None else _iso(h.last_error_at),
            "stopped": False if h is None else h.stopped,
            "state": self.state,
        }


@attrs.frozen
class Status:
    """One look at a pipeline file: the store's ``stats`` (``None`` while the store does not
    exist yet), each sink, the forwarder, and the :func:`~cosmobac.monitoring.problems` found."""

    config: str
    time: float
    stats: StoreStats | None
    sinks: tuple[SinkStatus, ...]  # the file's sinks, then other consumers the store knows
    forwarder: ForwarderState
    problems: tuple[Problem, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form (documented in the CLI reference; a stable interface)."""
        stats = self.stats
        return {
            "rows": None if stats is None else stats.rows,
            "pending": {} if stats is None else dict(stats.pending),
            "oldest_pending_age_s": {} if stats is None else dict(stats.oldest_pending_age_s),
            "oldest_pending_timestamp": (
                {} if stats is None else dict(stats.oldest_pending_timestamp)
            ),
            "oldest_stored_age_s": None if stats is None else stats.oldest_stored_age_s,
            "oldest_stored_timestamp": None if stats is None else stats.oldest_stored_timestamp,
            "dead_letters": {} if stats is None else dict(stats.dead_letters),
            "file_size": None if stats is None else stats.file_size,
            "healthy": self.healthy,
            "problems": [p.to_json() for p in self.problems],
            "forwarder": self.forwarder.to_json(),
            "sinks": [s.to_json() for s in self.sinks if s.plugin is not None],
        }

    def __rich_console__(self, console: Any, options: Any) -> Any:
        """The view for people: the store's rows and size, the forwarder, a table of the sinks
        (the last error shortened to fit the width), problems, and the file's checkpoints."""
        from rich import box
        from rich.measure import Measurement
        from rich.table import Table
        from rich.text import Text

        if self.stats is None:
            yield Text(f"waiting for the store of {self.config} (it does not exist yet)")
        else:
            yield Text(f"rows stored: {self.stats.rows}")
            if self.stats.file_size is not None:
                yield Text(f"file size: {self.stats.file_size / 1e6:.1f} MB")
        forwarder = self.forwarder
        style = "red" if forwarder.died else ("green" if forwarder.running else "yellow")
        yield Text.assemble("forwarder: ", (forwarder.describe(), style))
        if self.stats is not None and self.sinks:

            def table_of(error_width: int, compact: bool = False) -> Table:
                table = (
                    Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
                    if compact
                    else Table()
                )
                for name, right in (
                    ("sink", False),
                    ("rows/s\n(1 min)", True),
                    ("backlog", True),
                    ("oldest\npending", False),
                    ("dead\nletters", True),
                    ("last error", False),
                    ("when", False),
                    ("state", False),
                ):
                    table.add_column(name, justify="right" if right else "left", no_wrap=True)
                for sink in self.sinks:
                    table.add_row(*self._cells(sink, error_width))
                return table

            def excess(table: Table) -> int:
                wide = options.update_width(100_000)
                return int(Measurement.get(console, wide, table).maximum - options.max_width)

            table = table_of(ERROR_WIDTH)
            over = excess(table)
            if over > 0:  # shorten the last errors first, then drop the borders
                longest = max(len(_shorten(s.last_error or "")) for s in self.sinks)
                width = max(16, longest - over)
                table = table_of(width)
                over = excess(table)
                if over > 0:
                    table = table_of(width, compact=True)
                    over = excess(table)
                    if over > 0:
                        table = table_of(max(12, width - over), compact=True)
            yield table
        elif self.stats is not None:
            yield Text("no sinks: the file has no [[sinks]] and no consumer has read the store")
        if self.problems:
            yield Text("not healthy:", style="bold red")
            for problem in self.problems:
                yield Text(f"  {_problem_text(problem)}", style="red")
        else:
            yield Text("healthy", style="green")
        points = [s.checkpoint for s in self.sinks if s.checkpoint is not None]
        if points:
            yield Text("checkpoints of the file's sinks:")
            for point in points:
                yield Text(f"  {point.describe()}")

    def _cells(self, sink: SinkStatus, error_width: int) -> list[Any]:
        from rich.text import Text

        h = sink.health
        rate = sink.rows_per_second
        age = sink.oldest_pending_age_s
        name = sink.consumer if sink.plugin is not None else f"{sink.consumer} (not in file)"
        error, when = NONE, NONE
        if h is not None and h.last_error is not None:
            error = _shorten(h.last_error, error_width)
            if h.last_error_at is not None:
                when = ago_text_of(self.time - h.last_error_at)
        state = sink.state
        styles = {"ok": "green", "retrying": "yellow", "stopped": "bold red"}
        return [
            name,
            NONE if rate is None else _rate_text(rate),
            str(sink.pending),
            "none" if not sink.pending else NONE if age is None else _age_cell(age),
            str(sink.dead_letters),
            error,
            when,
            Text(state or NONE, style=styles.get(state or "", "")),
        ]


def _age_cell(seconds: float) -> str:
    return f"{span_text(-seconds)} ahead" if seconds < 0 else f"{span_text(seconds)} old"


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.2f}" if rate < 10 else f"{rate:.1f}"


def _shorten(text: str, width: int = ERROR_WIDTH) -> str:
    """One line of at most ``width`` characters, cut in the middle: an error's start names what
    failed, its end usually says how (``… last: HTTP 503``)."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    head = (width - 1) // 3
    return line[:head] + "…" + line[len(line) - (width - 1 - head) :]


def _problem_text(problem: Problem) -> str:
    if problem.error is not None:
        return f"{problem.sink}: {problem.reason}: {_shorten(problem.error, 80)}"
    if problem.oldest_pending_age_s is not None and problem.max_backlog_age_s is not None:
        return (
            f"{problem.sink}: {problem.reason}: oldest pending "
            f"{age_text_of(problem.oldest_pending_age_s)}, more than "
            f"{span_text(problem.max_backlog_age_s)}"
        )
    return f"{problem.sink}: {problem.reason}"


def read_status(
    config: str | os.PathLike[str] | PipelineConfig,
    *,
    missing_store_ok: bool = False,
    now: float | None = None,
) -> Status:
    """Read a pipeline file's store (its stats once; the store is never created), where each of
    its sinks stands, and the health file its forwarder records. A store that does not exist is
    a :class:`~cosmobac.errors.StoreMissingError`, or with ``missing_store_ok`` a status whose
    ``stats`` is ``None``."""
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    path = str(cfg.source) if isinstance(config, PipelineConfig) else os.fspath(config)
    stats: StoreStats | None
    points: list[Checkpoint] = []
    consumers: list[str] = []
    try:
        with Pipeline.from_config(cfg, create_store=False) as pipeline:
            stats = pipeline.store.stats()
            if cfg.sinks:
                consumers = sink_consumers(cfg.sinks, pipeline.store, stats=stats)
            points = checkpoints(pipeline.store, consumers, stats=stats)
    except StoreMissingError:
        if not missing_store_ok:
            raise
        stats = None
    health = read_health(path, cfg.monitoring.health_file)
    now = time.time() if now is None else now
    forwarder = ForwarderState.of(health, now)
    sinks = _sinks(cfg, consumers, points, stats, health, forwarder.running)
    stopped = (
        {}
        if health is None
        else {s.consumer: s.last_error or "" for s in health.sinks if s.stopped}
    )
    found = problems(
        stopped=stopped,
        stats=stats,
        consumers=consumers,
        max_backlog_age=cfg.monitoring.max_backlog_age,
    )
    return Status(path, now, stats, sinks, forwarder, tuple(found))


def _sinks(
    cfg: PipelineConfig,
    consumers: list[str],
    points: list[Checkpoint],
    stats: StoreStats | None,
    health: Health | None,
    running: bool,
) -> tuple[SinkStatus, ...]:
    pending: Mapping[str, int] = {} if stats is None else stats.pending
    dead: Mapping[str, int] = {} if stats is None else stats.dead_letters
    out = [
        SinkStatus(
            consumer=point.consumer,
            plugin=sink.plugin,
            checkpoint=point,
            pending=point.pending,
            # a sink that never read the store: the oldest stored row's age
            oldest_pending_age_s=None if stats is None else stats.backlog_of(point.consumer)[1],
            dead_letters=int(dead.get(point.consumer, 0)),
            health=None if health is None else health.sink(point.consumer),
            forwarder_running=running,
        )
        for sink, point in zip(cfg.sinks if points else (), points, strict=True)
    ]
    for consumer in sorted(set(pending) - set(consumers)):
        out.append(
            SinkStatus(
                consumer=consumer,
                plugin=None,
                checkpoint=None,
                pending=int(pending[consumer]),
                oldest_pending_age_s=None if stats is None else stats.backlog_of(consumer)[1],
                dead_letters=int(dead.get(consumer, 0)),
                health=None if health is None else health.sink(consumer),
                forwarder_running=running,
            )
        )
    return tuple(out)


def watch_view(config: str | os.PathLike[str], interval: float, *, fail: bool = True) -> Any:
    """One frame of ``cosmobac status --watch``: a title line (the file, the time, how often it
    redraws) and the :class:`Status` of ``config`` read now, or "waiting for the store" while it
    does not exist. An error reading it is raised with ``fail``; else it is shown in the frame
    (a pipeline file caught mid-edit), so the watch goes on."""
    from rich.console import Group
    from rich.text import Text

    stamp = time.strftime("%H:%M:%S")
    title = Text(
        f"cosmobac status {os.fspath(config)} · {stamp} · every {interval:g} s, Ctrl-C to stop",
        style="bold",
    )
    try:
        found: Any = read_status(config, missing_store_ok=True)
    except CosmobacError as exc:
        if fail:
            raise
        found = Text(f"cannot read the status: {exc}", style="red")
    return Group(title, found)
