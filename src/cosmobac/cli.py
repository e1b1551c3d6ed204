"""The ``cosmobac`` command line. Plugins add commands through ``register_commands(cli)``."""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import click

from .config import MAX_SPAN, PipelineConfig, load_config
from .documents import document_id
from .errors import ConfigError, CosmobacError
from .interfaces import DeadLetterStore, InputStore, PipelineObserver, Store, StoreStats
from .pipeline import (
    Checkpoint,
    ForwardReport,
    Pipeline,
    checkpoints,
    sink_consumers,
    wait_for_store,
)
from .plugins import get_plugins, missing_provider
from .values import click_callback
from .values import duration as parse_duration

__all__ = ["cli", "main"]


class CosmobacGroup(click.Group):
    """The top-level group: a command that one of cosmobac's plugin distributions provides, asked
    for while that distribution is missing, fails with what to install."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name is not None and self.get_command(ctx, name) is None:
            hint = missing_provider("command", name)
            if hint is not None:
                ctx.fail(f"no command {name!r}: {hint}")
        return super().resolve_command(ctx, args)


@click.group(cls=CosmobacGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cosmobac")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Edge-to-cloud sensor pipelines: collect into a durable store, forward to sinks."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def graceful_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (the loops finish their batch); a second SIGINT interrupts.

    The handler takes no lock: it runs in the main thread between two of its steps, which may
    be inside ``stop.wait()`` holding the event's lock, so ``stop.set()`` there could wait for
    itself forever. It only puts the signal on a :class:`queue.SimpleQueue` (safe to call from
    a signal handler); a helper thread says so on stderr and sets ``stop``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:  # is_set reads a flag, takes no lock
            raise KeyboardInterrupt
        received.put(signum)

    def relay() -> None:
        for signum in iter(received.get, None):
            click.echo(
                f"\n{signal.Signals(signum).name}: finishing the current batch, then stopping",
                err=True,
            )
            stop.set()

    relay_thread = threading.Thread(target=relay, name="cosmobac-signals", daemon=True)
    relay_thread.start()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        received.put(None)
        relay_thread.join()


class _ProgressBar:
    """Click progress bars for collecting (sensor time) and forwarding (rows of the backlog),
    shown only on a terminal."""

    LABELS: ClassVar[dict[str, str]] = {
        "collect": "collecting sensor time",
        "forward": "forwarding rows",
    }

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if total is None or total <= 0 or not sys.stderr.isatty():
            return
        bar = self._bars.get(stage)
        if bar is None:
            bar = click.progressbar(
                length=total, label=self.LABELS.get(stage, stage), file=sys.stderr
            )
            self._bars[stage] = bar.__enter__()
            self._done[stage] = 0
        bar.update(done - self._done[stage])
        self._done[stage] = done

    def close(self) -> None:
        for bar in self._bars.values():
            bar.__exit__(None, None, None)
        self._bars.clear()


def _open(
    config: str | PipelineConfig,
    *,
    sensor: bool = False,
    sinks: bool = False,
    create: bool = False,
    **kw: Any,
) -> Pipeline:
    """The pipeline of a command. Only commands that write readings (``run``, ``collect``,
    ``import``) pass ``create=True``: the others never create a store that does not exist."""
    return Pipeline.from_config(
        config, need_sensor=sensor, need_sinks=sinks, create_store=create, **kw
    )


def _echo_checkpoints(pipeline: Pipeline) -> None:
    """Say per lane where it starts: a new checkpoint, or resuming after the rows it settled (so
    "0 rows acknowledged" is never a surprise)."""
    for checkpoint in pipeline.checkpoints():
        click.echo(checkpoint.describe())


def _file_checkpoints(config: str) -> tuple[StoreStats, list[Checkpoint]]:
    """The store's stats and where each ``[[sinks]]`` table of the file stands, building no sink."""
    cfg = load_config(config)
    with Pipeline.from_config(cfg, create_store=False) as pipeline:
        stats = pipeline.store.stats()
        consumers = sink_consumers(cfg.sinks, pipeline.store, stats=stats)
        return stats, checkpoints(pipeline.store, consumers, stats=stats)


def _echo_forward(report: ForwardReport) -> None:
    for lane in report.lanes:
        extra = "".join(
            f", {k} {v:g}" + (f" ({v / lane.written:.2f} per row)" if lane.written else "")
            for k, v in sorted(lane.stats.items())
        )
        line = (
            f"{lane.consumer}: {lane.acked} rows acknowledged, {lane.dead_lettered} dead-lettered, "
            f"{lane.retried} retried, {lane.failures} failed writes{extra}"
        )
        click.echo(line)
        if lane.error:
            click.echo(f"{lane.consumer}: stopped: {lane.error}", err=True)


config_argument = click.argument("config", type=click.Path(dir_okay=False))
metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve /metrics, /healthz and /readyz on 127.0.0.1:PORT while running (overrides "
    "[monitoring] listen; needs cosmobac[monitoring]).",
)


class _Watched:
    """What the monitor reads at scrape time: the running pipeline (it changes when a
    following forwarder switches to a new pipeline file) and the consumers whose backlog counts."""

    def __init__(self, consumers: list[str] | None = None) -> None:
        self.pipeline: Pipeline | None = None
        self.fixed = consumers  # collect: the file's sinks; else the running pipeline's lanes

    def store(self) -> Store | None:
        return None if self.pipeline is None else self.pipeline.store

    def consumers(self) -> list[str]:
        if self.fixed is not None:
            return self.fixed
        return [] if self.pipeline is None else [lane.consumer for lane in self.pipeline.lanes]


@contextlib.contextmanager
def _observing(
    config: str,
    cfg: PipelineConfig,
    port: int | None,
    watched: _Watched,
    *,
    metrics: bool = True,
    health: bool = True,
    progress_every: float | None = None,
) -> Iterator[Callable[[Pipeline], None]]:
    """While the block runs: a health tracker whose snapshot is recorded beside ``config``
    (``health``; for ``cosmobac status``), metrics served over HTTP when ``--metrics-port``
    or ``[monitoring] listen`` asks for them (``metrics``), and the ``[[alerts]]`` of ``cfg``
    judged and sent from background threads (with ``health``; stopped at the end, sending
    nothing more), and with ``progress_every`` a line on stderr per sink that moved, every so
    many seconds. Yields the function that attaches them to a pipeline (a following forwarder
    attaches each new one)."""
    from .monitoring import HealthRecorder, HealthTracker, ObserverGroup

    listen = ("127.0.0.1", port) if port is not None else cfg.monitoring.listen
    tracker = HealthTracker()
    observers: list[PipelineObserver] = [tracker] if health else []
    with contextlib.ExitStack() as stack:
        recorder = HealthRecorder(tracker, config, health_file=cfg.monitoring.health_file)
        if health:
            stack.enter_context(recorder.recording())
        if listen is not None and metrics:
            from .monitoring import Monitor, serve

            monitor = Monitor(
                store=watched.store,
                consumers=watched.consumers,
                max_backlog_age=cfg.monitoring.max_backlog_age,
                health=tracker,
            )
            host, bound = stack.enter_context(serve(monitor, *listen))
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"metrics on http://{shown}:{bound}/metrics", err=True)
            observers.append(monitor)
        if cfg.alerts and health:  # run and forward (collect watches no sink: health=False)
            from .monitoring.alerts import AlertEvaluator

            evaluator = AlertEvaluator(
                cfg.alerts,
                tracker,
                pipeline_file=config,
                store=watched.store,
                consumers=watched.consumers,
                backoff=cfg.run.backoff,
                max_backoff=cfg.run.max_backoff,
            )
            stack.enter_context(evaluator.running())
        if progress_every is not None and health:
            from .monitoring.progress import ProgressLog

            def stats() -> StoreStats | None:
                store = watched.store()
                return None if store is None else store.stats()

            echo = functools.partial(click.echo, err=True)
            log = ProgressLog(tracker, echo, stats=stats, interval=progress_every)
            stack.enter_context(log.running())
        observer = observers[0] if len(observers) == 1 else ObserverGroup(*observers)

        def attach(pipeline: Pipeline) -> None:
            watched.pipeline = pipeline
            if observers:
                pipeline.observer = observer
            if health:
                recorder.activate()

        yield attach


@cli.command()
@config_argument
@click.option(
    "--duration",
    callback=click_callback(parse_duration, maximum=MAX_SPAN),
    help="Sensor time to collect (overrides run.duration), e.g. 6h; wall-clock time for a live "
    "sensor (csv, mqtt, modbus), which otherwise runs until stopped.",
)
@metrics_port_option
def run(config: str, duration: float | None, metrics_port: int | None) -> None:
    """Collect and forward in one process."""
    bar = _ProgressBar()
    cfg = load_config(config)
    watched = _Watched()
    with (
        _observing(config, cfg, metrics_port, watched) as attach,
        _open(cfg, sensor=True, sinks=True, create=True, progress=bar) as pipeline,
    ):
        attach(pipeline)
        _echo_checkpoints(pipeline)
        with graceful_stop(pipeline.stop):
            collected, forwarded = pipeline.run(duration=duration)
        bar.close()
    click.echo(f"collected {collected.rows_added} new rows ({collected.rows_read} read)")
    _echo_forward(forwarded)
    if not forwarded.ok:
        sys.exit(1)


@cli.command()
@config_argument
@click.option(
    "--duration",
    callback=click_callback(parse_duration, maximum=MAX_SPAN),
    help="Sensor time to collect (overrides run.duration), e.g. 6h; wall-clock time for a live "
    "sensor (csv, mqtt, modbus), which otherwise runs until stopped.",
)
@metrics_port_option
def collect(config: str, duration: float | None, metrics_port: int | None) -> None:
    """Read the sensor into the store (no forwarding)."""
    bar = _ProgressBar()
    cfg = load_config(config)
    watched = _Watched(consumers=[])
    with (
        _observing(config, cfg, metrics_port, watched, health=False) as attach,
        _open(cfg, sensor=True, create=True, progress=bar) as pipeline,
    ):
        attach(pipeline)
        watched.fixed = sink_consumers(cfg.sinks, pipeline.store) if cfg.sinks else []
        with graceful_stop(pipeline.stop):
            report = pipeline.collect(duration=duration)
        bar.close()
    click.echo(f"collected {report.rows_added} new rows ({report.rows_read} read)")


@cli.command()
@config_argument
@click.option("--follow", is_flag=True, help="Keep forwarding new rows until stopped.")
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="With --follow: switch to a new CONFIG (written atomically) between batches.",
)
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False),
    help="Install this file as CONFIG first, unless CONFIG was installed from the same seed "
    "(a Bacalhau daemon's shipped config).",
)
@metrics_port_option
@click.option(
    "--report-every",
    default="1m",
    show_default=True,
    callback=click_callback(parse_duration, positive=True, maximum=MAX_SPAN),
    help="With --follow: print a line per sink that moved (rows acknowledged and their rate, "
    "dead letters, failed writes, pending) this often.",
)
def forward(
    config: str,
    follow: bool,
    reload: bool,
    seed: str | None,
    metrics_port: int | None,
    report_every: float,
) -> None:
    """Deliver pending rows from the store to every sink, acknowledging what they wrote. With
    --follow, [monitoring] listen or --metrics-port serve metrics and health."""
    if metrics_port is not None and not follow:
        raise click.UsageError("--metrics-port needs --follow (a one-off forward ends at once)")
    if seed is not None:
        from .live_config import install_seed

        install_seed(seed, config)
    if follow:  # started before the collector made the store: wait for it, never create it
        waiting = threading.Event()
        with graceful_stop(waiting):
            if not wait_for_store(config, stop=waiting):
                return
    cfg = load_config(config)
    watched = _Watched()
    if follow and reload:
        from .live_config import forward_following

        for checkpoint in _file_checkpoints(config)[1]:
            click.echo(checkpoint.describe())
        stop = threading.Event()
        with (
            _observing(config, cfg, metrics_port, watched, progress_every=report_every) as attach,
            graceful_stop(stop),
        ):
            report = forward_following(config, stop=stop, on_pipeline=attach)
        _echo_forward(report)
        if not report.ok:
            sys.exit(1)
        return
    bar = _ProgressBar()
    with (
        _observing(
            config,
            cfg,
            metrics_port,
            watched,
            metrics=follow,
            progress_every=report_every if follow else None,
        ) as attach,
        _open(cfg, sinks=True, progress=bar) as pipeline,
        graceful_stop(pipeline.stop),
    ):
        attach(pipeline)
        _echo_checkpoints(pipeline)
        report = pipeline.forward(follow=follow)
    bar.close()
    _echo_forward(report)
    if not report.ok:
        sys.exit(1)


@cli.command()
@config_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a stable interface).")
@click.option(
    "--check",
    is_flag=True,
    help="Exit with status 1 when not healthy (a sink stopped, or a "
    "backlog older than [monitoring] max_backlog_age).",
)
@click.option("--watch", is_flag=True, help="Redraw a live view until Ctrl-C.")
@click.option(
    "--interval",
    default="2s",
    show_default=True,
    callback=click_callback(parse_duration, positive=True, minimum=0.1),
    help="With --watch: how often to redraw, e.g. 5s.",
)
def status(config: str, as_json: bool, check: bool, watch: bool, interval: float) -> None:
    """Per sink: rows/s over the last minute, backlog, the oldest pending row's age, dead
    letters, last error and when, and state; the store's rows and size; whether a forwarder runs;
    and where each sink of the file stands. --watch redraws it live."""
    from .monitoring.status import read_status

    if watch:
        if as_json or check:
            raise click.UsageError("--watch shows a live view; it takes no --json or --check")
        _watch_status(config, interval)
        return
    found = read_status(config)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
    else:
        _console().print(found)
    if check and not found.healthy:
        sys.exit(1)


@cli.command()
@config_argument
@click.option("--sink", "sink_name", help="Only this sink: its consumer name, or its plugin.")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Stored rows compared field by field with the sink's documents.",
)
@click.option("--seed", type=int, help="Seed of the sample (default: a new one each run).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a stable interface).")
def verify(
    config: str, sink_name: str | None, sample: int, seed: int | None, as_json: bool
) -> None:
    """Compare the store with each sink that can be read back: counts and first/last reading
    per sensor, and a sample of documents field by field. Exit 1 on any difference, 2 when no
    sink can be read back."""
    from .verify import render
    from .verify import verify as run_verify

    result = run_verify(config, sink=sink_name, sample=sample, seed=seed)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        render(result, _console())
    if not result.checked:
        sys.exit(2)
    if not result.ok:
        sys.exit(1)


def _console() -> Any:
    """A rich console on standard output: colours only on a terminal; 120 columns when piped
    (unless COLUMNS says otherwise), so the table does not wrap in logs."""
    import os

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=120)
    return console


def _watch_status(config: str, interval: float) -> None:
    """``status --watch``: redraw until Ctrl-C (status 0), re-reading the store and health file;
    a store that does not exist yet shows "waiting for the store"."""

    from rich.live import Live

    from .monitoring.status import watch_view

    console = _console()

    def view(first: bool = False) -> Any:
        return watch_view(config, interval, fail=first)

    try:
        with Live(view(first=True), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(view(), refresh=True)
    except KeyboardInterrupt:
        pass


def _dead_letter_store(store: Store) -> DeadLetterStore:
    if not isinstance(store, DeadLetterStore):
        raise click.ClickException(
            f"this store ({type(store).__name__}) cannot list or replay dead letters (it is not "
            "a DeadLetterStore); the sqlite store can"
        )
    return store


def _sink_consumer(config: PipelineConfig, store: Store, sink: str) -> str:
    """The consumer name ``--sink`` means: a sink's consumer name (its ``name``, or its default
    such as ``jsonl-c329ad37``), or its plugin name when one sink of the file has that plugin. A
    name the file does not know (a sink since removed) is taken as given."""
    sinks = config.sinks
    consumers = sink_consumers(sinks, store) if sinks else []
    if sink in consumers:
        return sink
    matches = [c for cfg, c in zip(sinks, consumers, strict=True) if cfg.plugin == sink]
    if len(matches) > 1:
        raise click.BadParameter(
            f"{len(matches)} {sink} sinks in {config.source}; give one of {', '.join(matches)}",
            param_hint="--sink",
        )
    return matches[0] if matches else sink


@cli.group(name="dead-letters")
def dead_letters() -> None:
    """List or replay rows a sink rejected; list input a sensor could not read."""


@dead_letters.command(name="list")
@config_argument
@click.option(
    "--sink",
    "consumer",
    help="Only this sink's dead letters: its consumer name, or its plugin if only one sink has it.",
)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one per dead letter.")
def dead_letters_list(config: str, consumer: str | None, limit: int, as_json: bool) -> None:
    """Rows set aside per sink, oldest first, with the reason."""
    cfg = load_config(config)
    with _open(cfg) as pipeline:
        if consumer is not None:
            consumer = _sink_consumer(cfg, pipeline.store, consumer)
        letters = _dead_letter_store(pipeline.store).dead_letters(consumer, limit=limit)
    for letter in letters:
        if as_json:
            record = {
                "consumer": letter.consumer,
                "seq": letter.seq,
                "reason": letter.reason,
                "created_at": letter.created_at,
                "replayed": letter.replayed,
                "document_id": document_id(letter.sensor_id, letter.timestamp),
            }
            click.echo(json.dumps(record))
        else:
            state = " (replayed)" if letter.replayed else ""
            click.echo(
                f"{letter.consumer}  #{letter.seq}  "
                f"{document_id(letter.sensor_id, letter.timestamp)}{state}: {letter.reason}"
            )
    if not letters and not as_json:
        click.echo("no dead letters")


@dead_letters.command(name="inputs")
@config_argument
@click.option("--sensor", help="Only this sensor's rejects (its plugin name, e.g. csv or mqtt).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one per reject.")
def dead_letters_inputs(config: str, sensor: str | None, limit: int, as_json: bool) -> None:
    """Input a live sensor could not read (a malformed line or payload), oldest first: where it
    came from (file and line, topic, device), why, and the input itself."""
    cfg = load_config(config)
    with _open(cfg) as pipeline:
        store = pipeline.store
        if not isinstance(store, InputStore):
            raise click.ClickException(
                f"this store ({type(store).__name__}) does not keep input rejects (it is not an "
                "InputStore); the sqlite store does"
            )
        rejects = store.input_rejects(sensor=sensor, limit=limit)
    for reject in rejects:
        if as_json:
            click.echo(json.dumps(attrs.asdict(reject)))
        else:
            click.echo(f"{reject.sensor}  {reject.origin}: {reject.reason}  {reject.raw[:120]!r}")
    if not rejects and not as_json:
        click.echo("no input rejects")


@dead_letters.command(name="replay")
@config_argument
@click.option(
    "--sink",
    "consumer",
    required=True,
    help="The sink whose dead letters to replay: its consumer name, or its plugin if only one sink "
    "has it.",
)
@click.option("--seq", "seqs", type=int, multiple=True, help="Only these rows (repeatable).")
def dead_letters_replay(config: str, consumer: str, seqs: tuple[int, ...]) -> None:
    """Make dead letters deliverable again; the next `forward` sends them."""
    cfg = load_config(config)
    with _open(cfg) as pipeline:
        consumer = _sink_consumer(cfg, pipeline.store, consumer)
        count = _dead_letter_store(pipeline.store).replay(consumer, list(seqs) or None)
    click.echo(f"{count} dead letters of {consumer} will be sent again by the next forward")


@cli.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--into",
    "into",
    type=click.Path(dir_okay=False),
    help="SQLite store file (cosmobac-sqlite) to append to; created if missing.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False),
    help="Or: append to the [store] of this pipeline file, whatever its plugin.",
)
@click.option(
    "--assume-timezone",
    default="UTC",
    show_default=True,
    help="IANA zone for timestamps written without one.",
)
def import_(
    paths: tuple[str, ...], into: str | None, config: str | None, assume_timezone: str
) -> None:
    """Import original sensor-log-generator SQLite files (table sensor_readings)."""
    import zoneinfo

    from .importer import import_original

    if (into is None) == (config is None):
        raise click.UsageError("give one of --into STORE.db or --config PIPELINE.toml")
    try:
        zoneinfo.ZoneInfo(assume_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{assume_timezone!r} is not a known time zone; use an IANA name such as UTC or "
            "Europe/Berlin",
            param_hint="--assume-timezone",
        ) from None
    with contextlib.ExitStack() as stack:
        if config is not None:
            store = stack.enter_context(_open(config, create=True)).store
        else:
            store = get_plugins().create("store", "sqlite", path=into)
            stack.callback(store.close)
        report = import_original([Path(p) for p in paths], store, assume_timezone=assume_timezone)
    click.echo(
        f"{report.rows_added} new rows from {len(report.files)} files ({report.rows_read} read, "
        f"{report.rows_already_stored} already stored, {report.rows_skipped} skipped) "
        f"into {into or config}"
    )
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins(as_json: bool) -> None:
    """Installed plugins and the components they register."""
    components = get_plugins().components()
    if as_json:
        click.echo(json.dumps([c.as_json() for c in components], indent=2))
        return
    rows = [("NAME", "KIND", "PLUGIN", "DISTRIBUTION")] + [
        (c.name, c.kind, c.plugin, f"{c.distribution or '-'} {c.version or ''}".strip())
        for c in components
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@cli.command()
@click.option(
    "--dir",
    "directory",
    default="cosmobac-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write the store and output.",
)
@click.option("--duration", default="6h", show_default=True, help="Sensor time to simulate.")
@click.option("--cities", default=3, show_default=True, help="Number of cities.")
@click.option("--sensors-per-city", default=4, show_default=True)
@click.option("--seed", default=7, show_default=True)
def demo(directory: str, duration: str, cities: int, sensors_per_city: int, seed: int) -> None:
    """Simulate a small fleet at full speed into a local store, forward it, print a summary."""
    from .demo import run_demo

    run_demo(
        Path(directory),
        duration=duration,
        cities=cities,
        sensors_per_city=sensors_per_city,
        seed=seed,
        echo=click.echo,
    )


@cli.command()
@config_argument
@click.option("--cities", type=int, help="Nodes for the first N cities of the bundled list.")
@click.option("--city", "city_names", multiple=True, help="A node for this city (repeatable).")
@click.option(
    "--node",
    "node_names",
    multiple=True,
    help="A node of this name, for a sensor other than the simulated one (repeatable).",
)
@click.option(
    "--sensors-per-city", type=int, help="Sensors of each city node (with --cities/--city)."
)
@click.option(
    "--out", default="docker-compose.yml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--image", default="cosmobac:latest", show_default=True, help="The cosmobac image.")
@click.option(
    "--local-cosmos", is_flag=True, help="Add a local Cosmos DB-compatible server service."
)
@click.option(
    "--env-file",
    default=".env",
    show_default=True,
    help="The file the services read secrets and other variables from.",
)
def compose(
    config: str,
    out: str,
    city_names: tuple[str, ...],
    node_names: tuple[str, ...],
    **options: Any,
) -> None:
    """Write a Docker Compose file: per node (city or --node) a collector and a forwarder sharing
    a volume."""
    from .compose import summary, write_compose

    plan = write_compose(config, out, city_names=city_names, node_names=node_names, **options)
    for line in summary(plan, out):
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point: load plugin commands, run, and turn cosmobac errors into clear exits.
    ``kill -USR1 PID`` makes a running command print every thread's stack to stderr (to see
    where a process that does not stop is waiting)."""
    if hasattr(signal, "SIGUSR1"):
        # only where standard error is a real file (not when a caller captured it in memory)
        with contextlib.suppress(AttributeError, OSError, ValueError):
            faulthandler.register(signal.SIGUSR1, file=sys.stderr.fileno(), all_threads=True)
    try:
        get_plugins().add_commands(cli)
        cli.main(args=argv, prog_name="cosmobac", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except CosmobacError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
