"""The ``cosmobac evaluate`` and ``cosmobac report`` commands (registered through
``register_commands``)."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import click

from ..hookspecs import hookimpl

__all__ = ["evaluate_command", "register_commands", "report_command"]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _settings(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``DETECTOR.KEY=VALUE`` options (values in TOML syntax) by detector."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise click.BadParameter(f"{pair!r}: write DETECTOR.KEY=VALUE, e.g. zscore.window=120")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # bare text
        out.setdefault(name.strip(), {})[key.strip()] = value
    return out


def _load_rows(config: str | None, documents: str | None) -> Any:
    from .runs import DocumentsError, read_documents, replay_store

    if documents:
        try:
            return read_documents(documents)
        except DocumentsError as exc:
            raise click.BadParameter(str(exc), param_hint="'--documents'") from None
    if config is None:
        raise click.UsageError("give a pipeline file (CONFIG), --documents FILE or --nab DIR")
    return replay_store(config)


@click.command(name="evaluate")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--documents",
    type=click.Path(exists=True, dir_okay=False),
    help="Score documents a sink wrote (JSON lines) instead of replaying the store.",
)
@click.option(
    "--nab",
    "nab_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Score detectors on a NAB corpus folder (CSV files timestamp,value).",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False),
    help="With --nab: the labels JSON (default: labels.json in the folder, or NAB's own).",
)
@click.option(
    "--raw-labels", is_flag=True, help="With --nab: labels are anomaly times, not windows."
)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="With --nab: a detector to score (repeatable; default: every built-in detector and "
    "ensemble).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="DETECTOR.KEY=VALUE",
    help="With --nab: a detector option, e.g. --set zscore.window=120 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate_command(
    config: str | None,
    documents: str | None,
    nab_dir: str | None,
    labels: str | None,
    raw_labels: bool,
    detectors: tuple[str, ...],
    settings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Score detectors against labels: a labelled run, or a NAB corpus.

    With CONFIG, every row of the pipeline's store goes through its [[transforms]] (detectors
    start cold) and the detections are compared with the simulator's labels: point-wise,
    point-adjusted and event-wise precision, recall and F1, detection delay and NAB scores per
    detector, and event recall and event F1 per detector and anomaly type."""
    if nab_dir is not None:
        _evaluate_nab(nab_dir, labels, raw_labels, detectors, _settings(settings), as_json)
        return
    from .metrics import evaluate

    rows = _load_rows(config, documents)
    try:
        result = evaluate(rows)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_json_safe(result.as_dict()), indent=2))
    else:
        click.echo(result.table())


def _evaluate_nab(
    nab_dir: str,
    labels: str | None,
    raw_labels: bool,
    detectors: tuple[str, ...],
    settings: dict[str, dict[str, Any]],
    as_json: bool,
) -> None:
    from ..detectors import DETECTORS
    from .metrics import text_table
    from .nab import PROFILES, read_corpus, score_corpus
    from .runs import score_series

    try:
        corpus = read_corpus(nab_dir, labels, raw=raw_labels)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    names = list(detectors) or [*DETECTORS, "ensemble"]
    unknown = set(settings) - set(names)
    if unknown:
        raise click.BadParameter(f"--set names detectors not scored: {', '.join(sorted(unknown))}")
    try:
        scores = score_series(corpus, {name: settings.get(name, {}) for name in names})
    except (TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    results = {
        name: {p: score_corpus(corpus, per_series, p) for p in PROFILES}
        for name, per_series in scores.items()
    }
    notes = {s.name: list(s.notes) for s in corpus if s.notes}
    if as_json:
        data = {
            "files": [s.name for s in corpus],
            "reader_notes": notes,
            "windows": sum(len(s.windows) for s in corpus),
            "detectors": {
                name: {p: r.as_dict() for p, r in by_profile.items()}
                for name, by_profile in results.items()
            },
        }
        click.echo(json.dumps(_json_safe(data), indent=2))
        return
    click.echo(
        f"NAB scores on {len(corpus)} file(s), {sum(len(s.windows) for s in corpus)} windows "
        "(0 = null detector, 100 = perfect)"
    )
    for name, found in notes.items():
        for note in found:
            click.echo(f"reader: {name}: {note}")
    rows = []
    for name, by_profile in results.items():
        row = {"detector": name}
        for profile, result in by_profile.items():
            row[profile] = f"{result.score:.1f}"
        standard = by_profile["standard"]
        row["threshold (standard)"] = f"{standard.threshold:.4g}"
        row["TP/FN/FP"] = (
            f"{standard.true_positives}/{standard.false_negatives}/{standard.false_positives}"
        )
        rows.append(row)
    click.echo(text_table(rows))


@click.command(name="report")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (one self-contained file).",
)
@click.option(
    "--documents",
    type=click.Path(exists=True, dir_okay=False),
    help="Report on documents a sink wrote (JSON lines) instead of replaying the store.",
)
@click.option(
    "--sensors",
    default=4,
    show_default=True,
    type=click.IntRange(0, 100),
    help="Sensors plotted one by one (those with the most labelled events).",
)
@click.option(
    "--points",
    default=2000,
    show_default=True,
    type=click.IntRange(100, 20_000),
    help="At most this many points per chart line (MinMaxLTTB; labels and detections all kept).",
)
@click.option("--title", default="cosmobac report", show_default=True)
def report_command(
    config: str | None, out: str, documents: str | None, sensors: int, points: int, title: str
) -> None:
    """Write an HTML report: rows per city, anomalies by type, detector scores, a fleet overview
    per city and per-sensor charts with labelled anomalies and detections, zoomable, in one
    self-contained file (needs cosmobac[report])."""
    from ..report import write_report

    rows = _load_rows(config, documents)
    path = write_report(rows, Path(out), title=title, sensors=sensors, points=points)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(evaluate_command)
    cli.add_command(report_command)
