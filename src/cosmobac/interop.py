"""Batches to and from pandas and Apache Arrow (and so polars), and a store read into a DataFrame.

pandas and pyarrow are optional: they are imported only when a function here is called, and a
missing one raises ``ImportError`` naming the extra to install (``cosmobac[pandas]``,
``cosmobac[arrow]``).

Guarantees:

* ``timestamp`` is ``datetime64[ms, UTC]`` in pandas and ``timestamp[ms, tz=UTC]`` in Arrow, and
  int64 epoch milliseconds again in the batch; naive (zone-less) times are refused with a
  ``ValueError``, as everywhere in cosmobac;
* missing stays missing: NaN in float columns and ``None`` in text columns in pandas; ``null`` in
  Arrow (a float NaN becomes ``null``, and ``null`` becomes NaN again in the batch);
* a batch round-trips exactly, through pandas and through Arrow: same columns in the same order,
  same dtypes, same values (extra columns included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import Batch
from .documents import missing_mask
from .interfaces import ScannableStore
from .schema import CORE_FIELDS, IDENTITY, Kind

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["from_arrow", "from_pandas", "read_dataframe", "to_arrow", "to_pandas"]

_TIMESTAMP = "timestamp"


def _pandas(what: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            f"{what} needs pandas, an optional dependency: pip install 'cosmobac[pandas]'"
        ) from None
    return pandas


def _pyarrow(what: str) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(
            f"{what} needs pyarrow, an optional dependency: pip install 'cosmobac[arrow]'"
        ) from None
    return pyarrow


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# -- pandas ------------------------------------------------------------------------------------
def to_pandas(batch: Batch) -> pd.DataFrame:
    """``batch`` as a new pandas DataFrame (its own, writable copy of the data): one column per
    batch column in the same order, ``timestamp`` as ``datetime64[ms, UTC]``, floats with NaN,
    text as ``object`` with ``None``, and a default ``RangeIndex``."""
    pd = _pandas("Batch.to_pandas")
    data: dict[str, Any] = {}
    for name in batch.columns:
        column = batch[name]
        if name == _TIMESTAMP:
            times = pd.DatetimeIndex(column.astype("datetime64[ms]")).tz_localize("UTC")
            data[name] = pd.Series(times, copy=True)
        else:
            data[name] = pd.Series(column, dtype=column.dtype, copy=True)
    return pd.DataFrame(data, index=pd.RangeIndex(len(batch)))


def _epoch_ms(pd: Any, values: Any) -> np.ndarray:
    """A pandas timestamp column or DatetimeIndex as what a batch's ``timestamp`` takes."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        times = pd.DatetimeIndex(values)
        if times.hasnans:
            raise ValueError("the timestamps have missing values (NaT)")
        naive = times.tz_convert("UTC").tz_localize(None)
        return np.asarray(naive.to_numpy().astype("datetime64[ms]").astype(np.int64))
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        raise ValueError(
            "the timestamps have no time zone; give them one so they cannot be misread, e.g. "
            "df['timestamp'].dt.tz_localize('UTC'), or df.tz_localize('UTC') for an index"
        )
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return np.asarray(values, dtype=np.int64)  # epoch milliseconds
    return np.asarray(values, dtype=object)  # aware datetimes or ISO text: the batch converts them


def _from_series(pd: Any, name: str, series: Any) -> Any:
    """One pandas column as what :meth:`Batch.from_columns` takes (missing → NaN or ``None``)."""
    dtype = series.dtype
    if name == _TIMESTAMP:
        return _epoch_ms(pd, series)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
        dtype, pd.DatetimeTZDtype
    ):
        has_na = bool(series.isna().any())
        kind = getattr(dtype, "kind", "O")
        if kind == "f" or (kind in "iu" and has_na):
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        if kind in "iub" and not has_na:
            return series.to_numpy(dtype=np.bool_ if kind == "b" else np.int64)
        values = series.astype(object).to_numpy()
    elif isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return _epoch_ms(pd, series)  # another time column: epoch milliseconds, as in a batch
    elif dtype.kind != "O":
        return series.to_numpy(copy=True)
    else:
        values = series.to_numpy(copy=True)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values


def from_pandas(df: pd.DataFrame) -> Batch:
    """A batch from a pandas DataFrame.

    The time comes from a ``timestamp`` column or, when there is none, from a ``DatetimeIndex``
    (whatever its name). Times must carry a zone (naive ones raise ``ValueError``); integer
    timestamps are epoch milliseconds; sub-millisecond parts are dropped. Other named index
    levels become columns (e.g. ``sensor_id`` after a ``groupby``); an unnamed index that is not
    the time is ignored. Missing values (NaN, ``None``, ``pd.NA``, ``NaT``) become NaN in float
    columns and ``None`` in text columns; nullable integer columns with missing values become
    float64 with NaN. Core fields get their canonical dtypes (see :class:`Batch`)."""
    pd = _pandas("Batch.from_pandas")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_pandas takes a pandas DataFrame, got {type(df).__name__}")
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"the DataFrame has duplicate column names: {names}")
    columns: dict[str, Any] = {}
    index = df.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    if _TIMESTAMP not in names and isinstance(index, pd.DatetimeIndex):
        columns[_TIMESTAMP] = _epoch_ms(pd, index)
    elif _TIMESTAMP not in names and _TIMESTAMP not in index.names:
        raise ValueError(
            "from_pandas needs the time: a 'timestamp' column or a DatetimeIndex; the DataFrame "
            f"has columns {names} and an index of {type(index).__name__}"
        )
    else:
        for level in levels:
            if level.name is not None:
                columns[str(level.name)] = _from_series(pd, str(level.name), level.to_series())
    for name, label in zip(names, df.columns, strict=True):
        if name in columns:
            raise ValueError(f"{name!r} is both an index level and a column of the DataFrame")
        columns[name] = _from_series(pd, name, df[label])
    return Batch.from_columns(columns)


# -- Arrow -------------------------------------------------------------------------------------
def to_arrow(batch: Batch) -> pa.Table:
    """``batch`` as a pyarrow Table: one column per batch column in the same order, ``timestamp``
    as ``timestamp[ms, tz=UTC]``, NaN and ``None`` as ``null``, text as ``string``. polars reads
    it with ``polars.from_arrow(table)``. Raises ``ValueError`` naming a column Arrow cannot hold
    (an extra column of mixed Python objects)."""
    pa = _pyarrow("Batch.to_arrow")
    arrays: dict[str, Any] = {}
    for name in batch.columns:
        column = batch[name]
        try:
            if name == _TIMESTAMP:
                arrays[name] = pa.array(column, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
            elif column.dtype.kind == "f":
                arrays[name] = pa.array(column, from_pandas=True)  # NaN → null
            elif column.dtype.kind == "O":
                values = column.tolist()
                if CORE_FIELDS.get(name) is Kind.STR or all(
                    v is None or isinstance(v, str) for v in values
                ):
                    arrays[name] = pa.array(values, type=pa.string())
                else:
                    arrays[name] = pa.array(values)
            else:
                arrays[name] = pa.array(column)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r} cannot be held by Arrow: {exc}") from None
    return pa.table(arrays) if arrays else pa.table({})


def _from_arrow_column(pa: Any, name: str, column: Any) -> Any:
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            raise ValueError(
                f"column {name!r}: the timestamps have no time zone; give them one so they "
                "cannot be misread (e.g. cast to timestamp('ms', tz='UTC'))"
            )
        ms = column.cast(pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64())
        if ms.null_count:
            raise ValueError(f"column {name!r} has missing times")
        return ms.to_numpy()
    if pa.types.is_floating(kind) or (pa.types.is_integer(kind) and column.null_count):
        return pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()
    if (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and not column.null_count:
        return column.to_numpy(zero_copy_only=False)
    return _object_array(column.to_pylist())


def from_arrow(table: Any) -> Batch:
    """A batch from a pyarrow ``Table`` or ``RecordBatch``, or any object that exports an Arrow
    stream (``__arrow_c_stream__``), such as a polars DataFrame.

    ``null`` becomes NaN in float columns and ``None`` in text columns; integer columns with nulls
    become float64 with NaN; timestamp columns become epoch milliseconds and must carry a zone
    (naive ones raise ``ValueError``). Core fields get their canonical dtypes."""
    pa = _pyarrow("Batch.from_arrow")
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    elif not isinstance(table, pa.Table):
        if not hasattr(table, "__arrow_c_stream__"):
            raise TypeError(
                "from_arrow takes a pyarrow Table or RecordBatch, or an object exporting an "
                f"Arrow stream (such as a polars DataFrame), got {type(table).__name__}"
            )
        table = pa.table(table)
    names = [str(n) for n in table.column_names]
    if len(set(names)) != len(names):
        raise ValueError(f"the table has duplicate column names: {names}")
    columns = {
        name: _from_arrow_column(pa, name, table.column(i).combine_chunks())
        for i, name in enumerate(names)
    }
    return Batch.from_columns(columns)


# -- stores ------------------------------------------------------------------------------------
def read_dataframe(
    store: object,
    *,
    after: int | None = None,
    limit: int | None = None,
    all_columns: bool = False,
) -> pd.DataFrame:
    """What ``store`` holds, as a pandas DataFrame, in one call (:func:`to_pandas` of the store's
    ``scan(after=..., limit=...)``, which registers no consumer and writes nothing). The store's
    ``seq`` column is kept.

    A store may return every core column for every row; unless ``all_columns`` is true, a core
    column other than the identity that is missing in every row (as for a sensor that never
    declared it) is left out, by the rule documents follow (:func:`cosmobac.documents.to_documents`).
    Raises ``TypeError`` for a store that cannot scan."""
    if not isinstance(store, ScannableStore):
        raise TypeError(
            f"read_dataframe needs a store that can scan (a ScannableStore with "
            f"scan(*, after=None, limit=None)); {type(store).__name__} cannot"
        )
    batch = store.scan(after=after, limit=limit)
    if not all_columns and len(batch):
        empty = [
            name
            for name in batch.columns
            if name in CORE_FIELDS
            and name not in IDENTITY
            and bool(missing_mask(batch, name).all())
        ]
        batch = batch.drop(*empty)
    return to_pandas(batch)
