"""Getting labelled, scored rows to evaluate: replaying a store through a pipeline's transforms,
reading documents a sink wrote, running detectors over NAB series."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..batch import Batch
from ..config import PipelineConfig, load_config
from ..errors import ConfigError
from ..interfaces import ConsumerAdminStore, ScannableStore, Store
from ..pipeline import build_store
from ..plugins import Plugins, get_plugins
from ..schema import STORE_SEQ
from .nab import NabSeries

__all__ = ["read_documents", "replay_store", "score_series"]

log = logging.getLogger("cosmobac.evaluation")

_MAX_ROWS = 2**31 - 1


def replay_store(
    config: str | os.PathLike[str] | PipelineConfig, *, plugins: Plugins | None = None
) -> Batch:
    """Every row of the pipeline's store, passed through fresh instances of its
    ``[[transforms]]`` (detectors start cold, as a forwarder reading from the first row would),
    in batches of ``run.batch_size``. ``aggregate`` transforms are left out (they turn rows into
    windows). The store is read with its ``scan()`` where it has one (nothing is written to it),
    else under a temporary consumer name, removed afterwards; nothing is acknowledged for any
    sink."""
    plugins = plugins or get_plugins()
    if not isinstance(config, PipelineConfig):
        config = load_config(config, plugins=plugins)
    if config.store is None:
        raise ConfigError(f'{config.source}: missing [store] section (e.g. plugin = "sqlite")')
    transforms = []
    for spec in config.transforms:
        if spec.plugin == "aggregate":
            log.info("%s: leaving out the aggregate transform to evaluate rows", spec.where)
            continue
        transforms.append(spec.build(plugins))
    store = build_store(config, plugins=plugins, create=False)  # evaluating never creates one
    try:
        rows = _all_rows(store)
    finally:
        store.close()
    if not len(rows):
        raise ConfigError(
            f"{config.source}: the store has no rows; collect some first (cosmobac collect)"
        )
    rows = rows.drop(STORE_SEQ)
    size = config.run.batch_size
    out = []
    for i in range(0, len(rows), size):
        part = rows.select(slice(i, i + size))
        for transform in transforms:
            part = transform(part)
        out.append(part)
    return Batch.concat(out)


def _all_rows(store: Store) -> Batch:
    """Every stored row: by ``scan()`` (a plain read) from a :class:`ScannableStore`, else, from
    a :class:`ConsumerAdminStore`, by reading as a temporary consumer that is removed afterwards.
    A store that is neither is refused: reading it would leave a consumer behind for good."""
    if isinstance(store, ScannableStore):
        return store.scan()
    if not isinstance(store, ConsumerAdminStore):
        raise ConfigError(
            f"this store ({type(store).__name__}) can be evaluated only if it can be scanned "
            "(ScannableStore) or can remove a temporary consumer (ConsumerAdminStore); it can "
            "do neither"
        )
    consumer = f"cosmobac-evaluate-{os.getpid()}-{time.time_ns()}"
    try:
        return store.read(consumer, _MAX_ROWS)
    finally:
        store.remove_consumer(consumer)


class DocumentsError(ValueError):
    """A documents file (JSON lines) holds a line that is not a document; the message names the
    file and the line number."""


def read_documents(path: str | os.PathLike[str]) -> Batch:
    """Documents a sink wrote as JSON lines (e.g. the ``jsonl`` sink), as one batch; when a
    document ``id`` appears more than once (a replay), the last one is kept.

    A last line without its newline that is not a complete document is what a write cut short
    (a crash, a full disk) leaves: it is skipped with a warning (its rows were not acknowledged;
    the sink writes them again and cuts the fragment when it next opens the file). Any other line
    that is not a JSON object — bad JSON, bytes that are not UTF-8, a value that is not an object,
    a document a batch cannot hold — raises :class:`DocumentsError` naming the file and line."""
    records: dict[Any, dict[str, Any]] = {}
    numbers: dict[Any, int] = {}
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as a complete file does
    for number, raw in enumerate(lines, start=1):
        doc = _document(path, number, raw)
        if doc is not None:
            key = doc.get("id", f"line {number}")
            records[key] = doc
            numbers[key] = number
    if torn.strip():
        number = len(lines) + 1
        try:
            doc = _document(path, number, torn)
        except DocumentsError as exc:
            log.warning(
                "%s: skipped line %d, an incomplete last line (a write cut short): %s",
                path,
                number,
                str(exc).split(": ", 2)[-1],
            )
        else:
            if doc is not None:
                records[doc.get("id", f"line {number}")] = doc
    if not records:
        raise DocumentsError(f"{path}: no documents")
    try:
        return Batch.from_records(records.values())
    except (TypeError, ValueError) as exc:
        # find the first document a batch refuses, to name its line
        for key, doc in records.items():
            try:
                Batch.from_records([doc])
            except (TypeError, ValueError) as one:
                raise DocumentsError(
                    f"{path}:{numbers.get(key, '?')}: not a reading: {one}"
                ) from None
        raise DocumentsError(f"{path}: the documents do not make one batch: {exc}") from None


def _document(path: str | os.PathLike[str], number: int, raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentsError(
            f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the line)"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentsError(f"{path}:{number}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DocumentsError(
            f"{path}:{number}: not a document (a JSON object), but a {type(doc).__name__}"
        )
    return doc


def score_series(
    series: Sequence[NabSeries],
    detectors: Mapping[str, Mapping[str, Any]],
    *,
    plugins: Plugins | None = None,
    chunk: int = 1000,
) -> dict[str, list[np.ndarray]]:
    """Run each detector (name → options) over each series' ``value`` column, ``chunk`` rows at a
    time (streaming: nothing looks ahead), and return its ``anomaly_score`` per series."""
    plugins = plugins or get_plugins()
    out: dict[str, list[np.ndarray]] = {}
    for name, options in detectors.items():
        scores = []
        for one in series:
            detector = plugins.create("transform", name, **{"columns": ["value"], **options})
            ids = np.full(len(one), Path(one.name).stem, dtype=object)
            batch = Batch.from_columns(timestamp=one.timestamps, sensor_id=ids, value=one.values)
            parts = [
                detector(batch.select(slice(i, i + chunk))) for i in range(0, len(batch), chunk)
            ]
            scores.append(Batch.concat(parts)["anomaly_score"])
        out[name] = scores
    return out
