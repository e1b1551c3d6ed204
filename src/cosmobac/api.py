"""Two one-call helpers behind ``cosmobac.simulate`` and ``cosmobac.detect``, for notebooks and
scripts that want readings or anomaly scores without composing a pipeline.

Both make their components through the plugin registry (the ``simulated`` sensor, the detector
transforms), so they take exactly the keys a pipeline file takes, parsed the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import Batch
from .config import MAX_SPAN
from .interfaces import FixedStartSensor, Sensor, Transform
from .plugins import get_plugins
from .schema import METRICS
from .values import duration as parse_duration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["detect", "simulate"]

SINGLE_SENSOR = "series"
"""The ``sensor_id`` :func:`detect` gives every row of a frame or series that has none."""

_ORDER = "__cosmobac_row__"  # where each row of a frame was, while its rows are sorted by time


def simulate(
    cities: int | list[str] = 3,
    sensors_per_city: int = 4,
    duration: float | str = "1h",
    seed: int = 0,
    **sensor_keys: Any,
) -> Batch:
    """``duration`` of readings (``"1h"``, ``"2d"`` or seconds) from the ``simulated`` sensor,
    from its ``start``, as one :class:`~cosmobac.batch.Batch`.

    ``cities``, ``sensors_per_city``, ``seed`` and ``sensor_keys`` (``rate_hz``, ``start``,
    ``metrics``, ``anomalies``, …) are the sensor's keys; the same keys give the same rows."""
    seconds = parse_duration("duration", duration, positive=True, minimum=0.001, maximum=MAX_SPAN)
    sensor: Sensor = get_plugins().create(
        "sensor",
        "simulated",
        cities=cities,
        sensors_per_city=sensors_per_city,
        seed=seed,
        **sensor_keys,
    )
    if not isinstance(sensor, FixedStartSensor) or sensor.start is None:  # pragma: no cover
        raise TypeError("the simulated sensor has no fixed start")
    return sensor.read(int(sensor.start) + round(seconds * 1000))


def detect(data: Any, detector: str | Transform, **params: Any) -> Any:
    """Run one detector over ``data`` and return it with the detector's columns added.

    ``detector`` is a registered detector's name (``"zscore"``, ``"ewma"``, …, with ``params`` as
    its keys) or a transform object (then ``params`` must be empty). ``data`` is:

    * a :class:`~cosmobac.batch.Batch`: a new batch is returned;
    * a pandas DataFrame with a datetime index or a ``timestamp`` column, and optionally a
      ``sensor_id`` column (without one, every row is one sensor's): the same frame (same index,
      same row order) with ``<name>_score``, ``<name>_detected``, ``anomaly_score``, ``detected``
      and ``detector`` added. Rows are scored in time order per sensor whatever the frame's order.
      When the frame has none of the five metric columns and ``columns`` is not given, its
      numeric columns are scored;
    * a pandas Series (one metric): a DataFrame holding the series (named after it, or
      ``value``) and those columns. ``result["detected"]`` is the boolean series ADTK's
      ``detect`` gives, ``result["anomaly_score"]`` the one its ``score`` gives.

    Times without a zone are fine here: they only order the rows and the frame keeps its own
    index. A detector keeps its state between rows of a call only: each call starts afresh.
    """
    if isinstance(detector, str):
        make = lambda columns: get_plugins().create(  # noqa: E731
            "transform", detector, **({"columns": columns} if columns else {}), **params
        )
    else:
        if params:
            raise TypeError(
                f"detect: params {sorted(params)} can only be given with a detector's name, "
                f"not with a {type(detector).__name__} object"
            )
        if not isinstance(detector, Transform):
            raise TypeError(
                f"detect: the detector must be a detector's name (e.g. 'zscore') or a "
                f"transform, got {type(detector).__name__}"
            )
        make = lambda columns: detector  # noqa: E731
    if isinstance(data, Batch):
        transform: Transform = make(None)
        return transform(data)
    pd = _pandas()
    if isinstance(data, pd.Series):
        name = str(data.name) if data.name is not None else "value"
        frame = data.to_frame(name)
        return _detect_frame(frame, make, default_columns=[name], user=params)
    if isinstance(data, pd.DataFrame):
        return _detect_frame(data, make, default_columns=None, user=params)
    raise TypeError(
        f"detect: data must be a cosmobac Batch, a pandas DataFrame or a pandas Series, "
        f"got {type(data).__name__}"
    )


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is there whenever a frame was passed
        raise TypeError("detect: data must be a cosmobac Batch (pandas is not installed)") from None
    return pd


def _detect_frame(
    frame: pd.DataFrame, make: Any, *, default_columns: list[str] | None, user: dict[str, Any]
) -> pd.DataFrame:
    batch = _frame_to_batch(frame)
    columns = default_columns
    if columns is None and "columns" not in user and not any(m in frame for m in METRICS):
        columns = [
            str(c)
            for c in frame.columns
            if c not in ("timestamp", "sensor_id") and frame[c].dtype.kind in "fiu"
        ]
        if not columns:
            raise ValueError(
                "detect: the frame has no numeric column to score (give columns=[...])"
            )
    if "columns" in user:
        columns = None  # the user's own columns go to the detector with the other params
    transform: Transform = make(columns)
    order = np.argsort(batch["timestamp"], kind="stable")
    scored = transform(batch.select(order))
    scored = scored.select(np.argsort(scored[_ORDER], kind="stable"))
    return _batch_to_frame(scored, frame, added=[c for c in scored.columns if c not in batch])


def _frame_to_batch(frame: pd.DataFrame) -> Batch:
    """The rows of ``frame`` as a batch: ``timestamp`` from the datetime index or the
    ``timestamp`` column (UTC, or zone-less taken as UTC), ``sensor_id`` from its column or
    :data:`SINGLE_SENSOR`, every other column as is, and the row's position in :data:`_ORDER`."""
    pd = _pandas()
    if "timestamp" in frame.columns:
        times = pd.to_datetime(frame["timestamp"])
    elif isinstance(frame.index, pd.DatetimeIndex):
        times = frame.index.to_series()
    else:
        raise ValueError(
            "detect: the frame needs a datetime index or a 'timestamp' column, got an index of "
            f"{type(frame.index).__name__}"
        )
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if times.isna().any():
        raise ValueError("detect: some rows have no timestamp")
    n = len(frame)
    columns: dict[str, Any] = {
        str(name): frame[name].to_numpy()
        for name in frame.columns
        if name not in ("timestamp", "sensor_id")
    }
    columns["timestamp"] = times.to_numpy(dtype="datetime64[ms]")
    columns["sensor_id"] = (
        frame["sensor_id"].to_numpy(dtype=object)
        if "sensor_id" in frame.columns
        else np.full(n, SINGLE_SENSOR, dtype=object)
    )
    columns[_ORDER] = np.arange(n, dtype=np.int64)
    return Batch.from_columns(columns)


def _batch_to_frame(batch: Batch, like: pd.DataFrame, *, added: list[str]) -> pd.DataFrame:
    """``like`` with the ``added`` columns of ``batch`` (rows in ``like``'s order) joined."""
    out = like.copy()
    for name in added:
        out[name] = batch[name]
    return out
