"""``cosmobac cosmos check|count|query|plan|scale`` and ``cosmobac emulator start|stop|status``."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import numpy as np

from cosmobac.errors import CosmobacError
from cosmobac.values import click_callback, duration

__all__ = ["cosmos", "emulator"]


def _sink(config: str, name: str | None) -> Any:
    """The cosmos sink a pipeline file configures (``--sink`` chooses among several)."""
    from cosmobac.config import load_config

    return _sink_of(load_config(config), config, name)


def _sink_of(loaded: Any, config: str, name: str | None) -> Any:
    return _sink_config(loaded, config, name).build()


def _sink_config(loaded: Any, config: str, name: str | None) -> Any:
    """The ``[[sinks]]`` table of the cosmos sink (``name`` chooses among several)."""
    sinks = [c for c in loaded.sinks if c.plugin == "cosmos"]
    names = [c.consumer() for c in sinks]  # its name, or its default consumer name
    if name is not None:
        sinks = [c for c in sinks if name in (c.consumer(), c.name or c.plugin)]
    if not sinks:
        which = f" named {name!r}" if name else ""
        raise click.ClickException(
            f'{config}: no [[sinks]] table with plugin = "cosmos"{which}'
            + (f" (cosmos sinks: {', '.join(names)})" if names else "")
        )
    if len(sinks) > 1:
        raise click.ClickException(
            f"{config}: {len(sinks)} cosmos sinks; choose one with --sink ({', '.join(names)})"
        )
    return sinks[0]


def _field_names(key: str, value: Any) -> tuple[str, ...]:
    from .indexing import field_names

    return field_names(key, value)


config_argument = click.argument("config", type=click.Path(dir_okay=False))
sink_option = click.option(
    "--sink",
    "sink_name",
    help="Which cosmos sink of the file (its name or consumer name), if it has several.",
)


def _filters(function: Any) -> Any:
    for option in reversed(
        [
            click.option("--city", help="Only this city."),
            click.option("--sensor", help="Only this sensor id."),
            click.option(
                "--since", help="From this time on: ISO-8601 with a zone, a date (UTC) or epoch ms."
            ),
            click.option("--until", help="Before this time (same forms as --since)."),
            click.option("--anomalies", is_flag=True, help="Only readings labelled anomalous."),
        ]
    ):
        function = option(function)
    return function


def _make_filters(**kw: Any) -> Any:
    from .tools import Filters

    filters = Filters(
        city=kw["city"],
        sensor=kw["sensor"],
        since=kw["since"],
        until=kw["until"],
        anomalies=kw["anomalies"],
    )
    try:
        filters.where()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return filters


@contextlib.contextmanager
def _querying(sink: Any) -> Iterator[None]:
    """Around a query: closes ``sink`` after it, and makes a failure other than cosmobac's own
    errors a ``query failed`` message (redacted)."""
    try:
        yield
    except CosmobacError:
        raise
    except Exception as exc:
        from ._errors import classify

        raise click.ClickException(sink._redact(f"query failed: {classify(exc).message}")) from None
    finally:
        sink.close()


@click.group()
def cosmos() -> None:
    """Check and query the Cosmos DB container a pipeline's cosmos sink writes to."""


@cosmos.command()
@config_argument
@sink_option
@click.option("--no-write", is_flag=True, help="Skip the test write (and delete).")
def check(config: str, sink_name: str | None, no_write: bool) -> None:
    """Reachability, credentials, database and container, partition key, one test write."""
    from .tools import check as run_check

    sink = _sink(config, sink_name)
    try:
        results = run_check(sink, write=not no_write)
    finally:
        sink.close()
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    for result in results:
        click.echo(f"{marks[result.ok]} {result.what}: {result.detail}")
    if any(r.ok is False for r in results):
        sys.exit(1)


@cosmos.command()
@config_argument
@sink_option
@_filters
@click.option(
    "--by",
    type=click.Choice(["city", "sensor_id"]),
    help="Count per value of this field: GROUP BY, or a tally of a projection on a server "
    "without GROUP BY.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"count": N} (with --by: also "by", "counts" and "method").',
)
def count(
    config: str, sink_name: str | None, as_json: bool, by: str | None, **filters: Any
) -> None:
    """How many documents the container holds (with filters), or per city or sensor (--by)."""
    from .tools import count as run_count
    from .tools import count_by

    chosen = _make_filters(**filters)
    sink = _sink(config, sink_name)
    if by is None:
        with _querying(sink):
            n = run_count(sink, chosen)
        click.echo(json.dumps({"count": n}) if as_json else str(n))
        return
    with _querying(sink):
        grouped = count_by(sink, by, chosen)
    counts = sorted(grouped.counts.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    total = sum(grouped.counts.values())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "count": total,
                    "by": by,
                    "counts": {("null" if k is None else str(k)): n for k, n in counts},
                    "method": grouped.method,
                }
            )
        )
        return
    width = max([len(by), *(len(str(k)) for k, _ in counts)])
    for value, n in counts:
        click.echo(f"{'(none)' if value is None else value!s:<{width}}  {n}")
    click.echo(f"{'total':<{width}}  {total}")
    if grouped.method == "tally":
        click.echo("(counted here from a projection: the server does not run GROUP BY)", err=True)


@cosmos.command()
@config_argument
@sink_option
@_filters
@click.option(
    "--limit", type=int, default=20, show_default=True, help="At most this many (0: all)."
)
@click.option("--newest-first", is_flag=True, help="Newest readings first.")
@click.option("--raw", is_flag=True, help="Keep Cosmos DB's system properties (_rid, _ts, ...).")
def query(
    config: str, sink_name: str | None, limit: int, newest_first: bool, raw: bool, **filters: Any
) -> None:
    """Matching documents as JSON lines, ordered by time."""
    from .tools import query as run_query

    if limit < 0:
        raise click.BadParameter("--limit must be 0 (all) or more")
    chosen = _make_filters(**filters)
    sink = _sink(config, sink_name)
    with _querying(sink):
        for doc in run_query(sink, chosen, limit=limit or None, newest_first=newest_first, raw=raw):
            click.echo(json.dumps(doc, ensure_ascii=False))


@cosmos.command()
@config_argument
@sink_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (stable fields).")
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Edge nodes running this pipeline (each with its own sensors).",
)
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(dir_okay=False),
    help="A TOML file of prices over the built-in ones (which cite their source and date).",
)
@click.option("--from-store", is_flag=True, help="Sample the pipeline's store, not a simulation.")
@click.option(
    "--span",
    callback=click_callback(duration, positive=True),
    help="Sensor time to simulate (default: enough for about 60,000 readings, 3m to 1d).",
)
@click.option(
    "--keep",
    callback=click_callback(_field_names),
    help="Fields the recommended indexing policy keeps (comma-separated; default: "
    "timestamp,city,sensor_id,anomaly_flag; the partition key is always kept).",
)
@click.option("--offline", is_flag=True, help="Do not read the container (its indexing policy).")
@click.option(
    "--measure",
    is_flag=True,
    help="Write (then delete) a few sample documents and use their measured request charge.",
)
def plan(
    config: str,
    sink_name: str | None,
    as_json: bool,
    nodes: int,
    prices_file: str | None,
    from_store: bool,
    span: float | None,
    keep: tuple[str, ...] | None,
    offline: bool,
    measure: bool,
) -> None:
    """Pre-flight cost plan: document sizes, RU per write, RU/s, monthly cost per throughput
    mode, storage, partitions and ranked savings, from documents the pipeline really makes."""
    from cosmobac.config import load_config

    from .indexing import RECOMMENDED_FIELDS
    from .plan import AggregateInput, PlanInput, make_plan, render_text
    from .prices import load_prices
    from .sample import AGGREGATE_WINDOW_S, simulate
    from .sample import from_store as sample_store

    prices = load_prices(prices_file)
    loaded = load_config(config)
    sink = _sink_of(loaded, config, sink_name)
    try:
        key = sink.partition_key
        sampled = sample_store(loaded, key) if from_store else simulate(loaded, key, span_s=span)
        notes = list(sampled.notes)
        policy = sink.creation_policy()
        policy_from = "sink" if policy is not None else "default"
        measured = None
        if not offline:
            policy, policy_from, measured = _container_facts(
                sink, policy, policy_from, sampled.examples if measure else (), notes
            )
        agg = None
        if sampled.aggregate_sizes is not None and not len(sampled.aggregate_sizes):
            notes.append(
                f"no {AGGREGATE_WINDOW_S:g}-s aggregate window closed within the sample: edge "
                "aggregation not estimated (give a longer --span)"
            )
        if sampled.aggregate_sizes is not None and len(sampled.aggregate_sizes):
            agg = AggregateInput(
                window_s=AGGREGATE_WINDOW_S,
                # each sensor sends one document per window
                documents_per_s=sampled.sensors / AGGREGATE_WINDOW_S,
                median_bytes=float(np.median(sampled.aggregate_sizes)),
                fields=sampled.aggregate_fields,
            )
        mode = (
            "provisioned"
            if sink.throughput is not None
            else "autoscale"
            if sink.autoscale_max_throughput is not None
            else None
        )
        data = PlanInput(
            sizes=sampled.sizes,
            fields=sampled.fields,
            key_counts=sampled.key_counts,
            span_s=sampled.span_s,
            partition_key=key,
            policy=policy,
            policy_from=policy_from,
            nodes=nodes,
            sensors=sampled.sensors,
            ttl_s=sink.default_ttl if (sink.default_ttl or 0) > 0 else None,
            mode=mode,
            configured_rus=sink.throughput or sink.autoscale_max_throughput,
            keep_fields=RECOMMENDED_FIELDS if keep is None else keep,
            measured_ru=measured,
            aggregate=agg,
            source=sampled.source,
            notes=tuple(notes),
        )
        result = make_plan(data, prices)
    finally:
        sink.close()
    click.echo(json.dumps(result, default=str) if as_json else render_text(result))


def _container_facts(
    sink: Any, policy: Any, policy_from: str, examples: Any, notes: list[str]
) -> tuple[Any, str, float | None]:
    """The container's indexing policy (when it exists) and the measured charge of sample
    writes (``examples``); a container that cannot be read leaves the sink's policy, noted."""
    from ._errors import classify
    from .live import container_client, measure_writes, read_properties

    measured = None
    try:
        with container_client(sink) as container:
            properties = read_properties(container, sink.read_timeout)
            policy, policy_from = properties.get("indexingPolicy"), "container"
            if examples:
                measured, note = measure_writes(container, sink, examples)
                notes.append(note)
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        reason = "it does not exist yet" if status == 404 else classify(exc).message
        notes.append(
            sink._redact(
                f"container not read ({reason}); the estimate uses the {policy_from} "
                "indexing policy"
            )
        )
    return policy, policy_from, measured


@cosmos.command()
@config_argument
@sink_option
@click.option(
    "--min",
    "minimum",
    type=click.IntRange(min=100),
    default=400,
    show_default=True,
    help="Least RU/s (autoscale: least maximum; never below 1000 there).",
)
@click.option(
    "--max",
    "maximum",
    type=click.IntRange(min=100),
    required=True,
    help="Most RU/s (autoscale: most maximum).",
)
@click.option(
    "--factor",
    type=click.FloatRange(min=1.0, min_open=True),
    default=1.5,
    show_default=True,
    help="A raise multiplies by this, a lower divides by it (one step at least).",
)
@click.option(
    "--up-backlog-age",
    callback=click_callback(duration, positive=True),
    default="1m",
    show_default=True,
    help="Pressure: the oldest pending row has waited longer than this.",
)
@click.option(
    "--up-throttle-rate",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Pressure: more 429s per second than this.",
)
@click.option(
    "--up-ticks",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Raise after this many pressured ticks in a row.",
)
@click.option(
    "--down-backlog-age",
    callback=click_callback(duration),
    default="5s",
    show_default=True,
    help="Calm: the oldest pending row has waited no longer than this...",
)
@click.option(
    "--down-throttle-rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="... and no more 429s per second than this.",
)
@click.option(
    "--down-ticks",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Lower after this many calm ticks in a row.",
)
@click.option(
    "--cooldown",
    callback=click_callback(duration),
    default="5m",
    show_default=True,
    help="No change within this long of the last one.",
)
@click.option(
    "--every",
    callback=click_callback(duration, positive=True),
    default="30s",
    show_default=True,
    help="Time between ticks.",
)
@click.option("--once", is_flag=True, help="One tick, then exit (from cron or a timer).")
@click.option("--dry-run", is_flag=True, help="Decide and log, change nothing.")
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve the scaler's Prometheus metrics on 127.0.0.1:PORT (needs cosmobac[monitoring]).",
)
def scale(
    config: str,
    sink_name: str | None,
    every: float,
    once: bool,
    dry_run: bool,
    metrics_port: int | None,
    **thresholds: Any,
) -> None:
    """Raise or lower the container's throughput (or autoscale maximum) from the sink's backlog
    age and 429 rate, within bounds, with hysteresis and a cooldown. Runs beside the forwarder
    of CONFIG on the same node; one line per decision."""
    import threading

    from cosmobac.config import load_config
    from cosmobac.pipeline import build_store

    from . import scaling
    from .live import container_client
    from .offers import NoOffer
    from .scaler import ScalerSettings

    try:
        settings = ScalerSettings(**thresholds)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    loaded = load_config(config)
    chosen = _sink_config(loaded, config, sink_name)
    sink, consumer = chosen.build(), chosen.consumer()
    store = build_store(loaded, create=False)
    metrics = None
    stop = threading.Event()
    try:
        if metrics_port is not None:
            metrics = scaling.ScalerMetrics(metrics_port, consumer)
        with container_client(sink) as container, _stopped_by_signals(stop):
            scaling.run(
                config=config,
                container=container,
                consumer=consumer,
                backlog_age=lambda: store.stats().backlog_of(consumer)[1],
                settings=settings,
                every=every,
                once=once,
                dry_run=dry_run,
                timeout=sink.read_timeout,
                echo=lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}"),
                metrics=metrics,
                stop=stop,
                health=loaded.monitoring.health_file,
            )
    except NoOffer as exc:
        raise click.ClickException(f"{sink.container}: {exc}") from None
    finally:
        if metrics is not None:
            metrics.close()
        store.close()
        sink.close()


@contextlib.contextmanager
def _stopped_by_signals(stop: Any) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the scaler ends after its tick)."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.group()
def emulator() -> None:
    """A local Cosmos DB-compatible server for development (Node.js; data in memory only)."""


@emulator.command()
@click.option("--port", type=int, default=8081, show_default=True, help="0 takes a free port.")
@click.option("--json", "as_json", is_flag=True, help="Print the server as JSON.")
def start(port: int, as_json: bool) -> None:
    """Start the server on 127.0.0.1 in the background (installs it with npm on first use)."""
    from .emulator import LOCAL_KEY, start_background

    server, started = start_background(port=port, echo=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({**server.as_json(), "started": started, "key": LOCAL_KEY}))
        return
    click.echo(
        f"{'started' if started else 'already running'}: {server.endpoint} (pid {server.pid})"
    )
    click.echo(
        "any key works, e.g. in a pipeline file:\n"
        "  [[sinks]]\n"
        '  plugin = "cosmos"\n'
        f'  endpoint = "{server.endpoint}"\n'
        '  database = "telemetry"\n'
        '  container = "readings"\n'
        f'  key = "{LOCAL_KEY}"\n'
        "  create_if_missing = true\n"
        "data lives in memory: `cosmobac emulator stop` (or a restart) empties it"
    )


@emulator.command()
def stop() -> None:
    """Stop the background server."""
    from .emulator import stop_background

    server = stop_background()
    click.echo("not running" if server is None else f"stopped {server.endpoint} (pid {server.pid})")


@emulator.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Whether the background server runs, and where."""
    from .emulator import background_status, reachable

    server = background_status()
    if as_json:
        data: dict[str, Any] = {"running": server is not None}
        if server is not None:
            data.update(server.as_json(), reachable=reachable(server.endpoint))
        click.echo(json.dumps(data))
    elif server is None:
        click.echo("not running (start it with `cosmobac emulator start`)")
    else:
        state = "answering" if reachable(server.endpoint) else "NOT answering"
        click.echo(f"running: {server.endpoint} (pid {server.pid}), {state}")
    if server is None:
        sys.exit(3)
