"""Documents for ``cosmobac cosmos plan``: the pipeline's own sensor and transforms run over a
short span of simulated time (or a sample of its store), each batch turned into documents exactly
as the cosmos sink does (:func:`cosmobac.documents.to_documents`) and measured: JSON bytes as the
SDK sends them, fields, partition key values, sensors. A 1-minute ``aggregate`` window is run over
the same batches when the pipeline has no ``aggregate`` transform (what edge aggregation would
send instead)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import attrs
import numpy as np

from cosmobac.batch import Batch
from cosmobac.config import ComponentConfig, PipelineConfig
from cosmobac.documents import to_documents
from cosmobac.errors import ConfigError
from cosmobac.interfaces import Closeable, FixedStartSensor, ScannableStore
from cosmobac.pipeline import Pipeline, build_store

__all__ = ["AGGREGATE_WINDOW_S", "Sampled", "from_store", "simulate"]

TARGET_READINGS: Final = 60_000
"""About how many sensor readings a simulated span holds."""
MIN_SPAN_S: Final = 180.0
MAX_SPAN_S: Final = 86_400.0
AGGREGATE_WINDOW_S: Final = 60.0
STORE_SAMPLE: Final = 50_000
EXAMPLES: Final = 10


def _size(doc: dict[str, Any]) -> int:
    # as azure-cosmos serialises a body
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@attrs.define(eq=False)
class _Measured:
    partition_key: tuple[str, ...]
    sizes: list[int] = attrs.field(factory=list)
    fields: dict[str, None] = attrs.field(factory=dict)
    keys: Counter[Any] = attrs.field(factory=Counter)
    sensors: set[str] = attrs.field(factory=set)
    examples: list[dict[str, Any]] = attrs.field(factory=list)

    def add(self, batch: Batch) -> None:
        paths = [p.lstrip("/") for p in self.partition_key]
        for doc in to_documents(batch):
            if len(self.examples) < EXAMPLES:
                self.examples.append(doc)
            self.sizes.append(_size(doc))
            for name in doc:
                if name != "id":
                    self.fields.setdefault(name)
            values = tuple(doc.get(p) for p in paths)
            self.keys[values[0] if len(values) == 1 else values] += 1
            sensor = doc.get("sensor_id")
            if isinstance(sensor, str):
                self.sensors.add(sensor)


@attrs.define(eq=False)
class _Capture:
    """A sink that measures the documents it would write (and feeds an aggregate window)."""

    measured: _Measured
    aggregate: Any = None
    aggregated: _Measured | None = None

    def write(self, batch: Batch) -> None:
        self.measured.add(batch)
        if self.aggregate is not None and self.aggregated is not None:
            self.aggregated.add(self.aggregate(batch))

    def close(self) -> None:
        pass


@attrs.frozen
class Sampled:
    """What the sample showed."""

    sizes: np.ndarray
    fields: tuple[str, ...]
    key_counts: dict[Any, int]
    sensors: int
    span_s: float
    source: str
    aggregate_sizes: np.ndarray | None
    aggregate_fields: tuple[str, ...]
    examples: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()


def _aggregate(config: PipelineConfig) -> Any:
    """A 1-minute ``aggregate`` transform, unless the pipeline already aggregates."""
    if any(t.plugin == "aggregate" for t in config.transforms):
        return None
    table = {"plugin": "aggregate", "window": f"{AGGREGATE_WINDOW_S:g}s"}
    try:
        return ComponentConfig.from_table("transform", table, where="plan").build()
    except ConfigError:  # no aggregate transform installed
        return None


def _close(components: Sequence[Any]) -> None:
    for component in components:
        if isinstance(component, Closeable):
            component.close()


def _result(capture: _Capture, span_s: float, source: str, notes: list[str]) -> Sampled:
    agg = capture.aggregated
    return Sampled(
        sizes=np.asarray(capture.measured.sizes, dtype=np.int64),
        fields=tuple(capture.measured.fields),
        key_counts=dict(capture.measured.keys),
        sensors=len(capture.measured.sensors),
        span_s=span_s,
        source=source,
        aggregate_sizes=None if agg is None else np.asarray(agg.sizes, dtype=np.int64),
        aggregate_fields=() if agg is None else tuple(agg.fields),
        examples=tuple(capture.measured.examples),
        notes=tuple(notes),
    )


def _readings_per_s(config: PipelineConfig) -> float:
    sensor = config.sensor.build() if config.sensor is not None else None
    try:
        start = sensor.start if isinstance(sensor, FixedStartSensor) else None
        start = int(time.time() * 1000) if start is None else int(start)
        return len(sensor.read(start + 60_000)) / 60.0 if sensor is not None else 0.0
    finally:
        _close([sensor])


def simulate(
    config: PipelineConfig, partition_key: tuple[str, ...], *, span_s: float | None = None
) -> Sampled:
    """Run the pipeline's sensor and transforms over ``span_s`` seconds of sensor time (by default
    enough for about :data:`TARGET_READINGS` readings, 3 minutes to a day) into a memory store,
    and measure the documents the sink would get."""
    if config.sensor is None:
        raise ConfigError(
            f"{config.source}: no [sensor] section to simulate; give --from-store to sample the "
            "store instead"
        )
    notes: list[str] = []
    if span_s is None:
        rate = _readings_per_s(config)
        span_s = MAX_SPAN_S if rate <= 0 else TARGET_READINGS / rate
        span_s = float(round(min(MAX_SPAN_S, max(MIN_SPAN_S, span_s))))
    capture = _Capture(_Measured(partition_key))
    aggregate = _aggregate(config)
    if aggregate is not None:
        capture.aggregate, capture.aggregated = aggregate, _Measured(partition_key)
    sensor = config.sensor.build()
    transforms = [t.build() for t in config.transforms]
    try:
        with Pipeline(
            store={"plugin": "memory"},
            sensor=sensor,
            sinks=[capture],
            transforms=transforms,
            run={"duration": span_s, "speed": "max"},
        ) as pipeline:
            pipeline.run()
    finally:
        _close([*transforms, sensor, aggregate])
    return _result(capture, span_s, "simulated", notes)


def from_store(
    config: PipelineConfig, partition_key: tuple[str, ...], *, limit: int = STORE_SAMPLE
) -> Sampled:
    """The first ``limit`` rows of the pipeline's store through its transforms; the span is
    the time their timestamps cover."""
    store = build_store(config, create=False)
    transforms = [t.build() for t in config.transforms]
    aggregate = _aggregate(config)
    try:
        if not isinstance(store, ScannableStore):
            raise ConfigError(
                f"{config.source}: the store ({type(store).__name__}) cannot be read without a "
                "consumer; plan from a simulated span instead (leave out --from-store)"
            )
        batch = store.scan(limit=limit)
        if not len(batch):
            raise ConfigError(f"{config.source}: the store holds no readings to sample")
        ts = batch["timestamp"].astype(np.int64)
        sensors = max(1, len(set(batch["sensor_id"].tolist())))
        # the span the rows cover, plus one reading interval (n readings span n-1 intervals)
        span_s = (int(ts.max()) - int(ts.min())) / 1000.0
        span_s += span_s / max(1, len(batch) / sensors - 1) if span_s else 1.0
        capture = _Capture(_Measured(partition_key))
        if aggregate is not None:
            capture.aggregate, capture.aggregated = aggregate, _Measured(partition_key)
        for transform in transforms:
            batch = transform(batch)
        capture.write(batch)
    finally:
        _close([*transforms, aggregate])
        store.close()
    return _result(capture, span_s, "store", [])
