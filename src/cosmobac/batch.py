"""The unit that flows through a pipeline: an immutable, columnar batch of readings.

Guarantees:

* every column is a read-only numpy array of the same length; ``len(batch)`` is that length;
* core fields (:data:`cosmobac.schema.CORE_FIELDS`) always have their canonical dtype: ``timestamp``
  int64 epoch milliseconds UTC, metrics float64 (NaN when missing), strings as object arrays holding
  ``str`` or ``None``;
* no operation mutates a batch: each returns a new one (sharing arrays where it can).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from .schema import CORE_FIELDS, IDENTITY, Kind, kind_of
from .values import data_flag

__all__ = ["Batch", "Reading", "read_only", "require_identity", "to_epoch_ms"]

_MS_PER_S = 1000


def to_epoch_ms(value: Any) -> int:
    """Epoch milliseconds (UTC) for an int (already ms), an aware ``datetime``,
    a ``numpy.datetime64`` or an ISO-8601 string carrying ``Z`` or an offset.

    Raises ``ValueError`` for naive datetimes and zone-less strings: a reading's time must be
    unambiguous (see :mod:`cosmobac.importer` for assuming a zone explicitly).
    """
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be epoch milliseconds or a datetime, got {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ms]").astype(np.int64))
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {text!r} is not ISO-8601") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"timestamp {value.isoformat()!r} has no time zone; give it one (e.g. a trailing 'Z' "
                "for UTC) so it cannot be misread"
            )
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * _MS_PER_S + delta.microseconds // 1000
    raise ValueError(
        f"timestamp must be epoch milliseconds, a datetime or ISO text, got {type(value).__name__}"
    )


def read_only(array: np.ndarray, *, private: bool = False) -> np.ndarray:
    """``array``, marked read-only. A writable view (of data someone else may still write
    through another name) is copied first, unless ``private`` says the caller holds the only
    reference to the data it views (a scratch array it built and drops)."""
    if array.flags.writeable:
        if not private and (array.base is not None or not array.flags.owndata):
            array = array.copy()
        array.flags.writeable = False
    return array


def _coerce_str(values: Any, n: int | None) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    if array.ndim == 0:
        array = np.full(n or 0, array.item(), dtype=object)
    out = np.empty(array.shape[0], dtype=object)
    for i, item in enumerate(array):
        out[i] = None if item is None else str(item)
    return out


def _coerce(name: str, kind: Kind, values: Any, n: int | None) -> np.ndarray:
    """One column converted to the canonical dtype for ``kind``; scalars broadcast to ``n`` rows."""
    try:
        if kind is Kind.STR:
            return _coerce_str(values, n)
        array = np.asarray(values)
        if array.ndim == 0:
            array = np.full(n or 0, array.item())
        if kind is Kind.TIMESTAMP:
            if array.dtype.kind == "M":
                return array.astype("datetime64[ms]").astype(np.int64)
            if array.dtype.kind in "iu":
                return array.astype(np.int64)
            if array.dtype.kind == "O" or array.dtype.kind == "U" or array.size == 0:
                return np.fromiter(
                    (to_epoch_ms(v) for v in array), dtype=np.int64, count=array.size
                )
            raise ValueError(
                f"dtype {array.dtype} is not a timestamp (use int64 epoch milliseconds or "
                "datetime64)"
            )
        if kind is Kind.FLOAT:
            if array.dtype.kind == "O":
                array = np.array([np.nan if v is None else v for v in array], dtype=np.float64)
            return array.astype(np.float64)
        if kind is Kind.INT:
            return array.astype(np.int64)
        if kind is Kind.BOOL:
            if array.dtype.kind in "OUS":
                array = np.array([data_flag(v) for v in array], dtype=np.bool_)
            return array.astype(np.bool_)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r}: {exc}") from None
    raise AssertionError(kind)  # pragma: no cover


def _canonical(name: str, values: Any, n: int | None) -> np.ndarray:
    kind = CORE_FIELDS.get(name)
    if kind is not None:
        return _coerce(name, kind, values, n)
    array = np.asarray(values)
    if array.ndim == 0:
        array = np.full(n or 0, array.item())
    if array.dtype.kind in "US":
        return _coerce_str(array, n)
    if array.dtype.kind == "M":
        return _coerce(name, Kind.TIMESTAMP, array, n)
    return array


def _missing_like(array: np.ndarray, n: int) -> np.ndarray:
    """A column of ``n`` missing values of ``array``'s kind (NaN, None, False or 0)."""
    kind = kind_of(array.dtype.kind)
    if kind is Kind.FLOAT:
        return np.full(n, np.nan)
    if kind is Kind.STR:
        return np.full(n, None, dtype=object)
    return np.zeros(n, dtype=array.dtype)


@attrs.frozen(eq=False)
class Batch:
    """An immutable columnar batch: one read-only numpy array per field, all of one length.

    Build one with :meth:`from_columns` or :meth:`from_records`; never mutate the arrays (they are
    read-only). Compare batches with :meth:`equals`.
    """

    _columns: Mapping[str, np.ndarray] = attrs.field(alias="columns")

    def __attrs_post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self._columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different lengths: {lengths}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_columns(cls, columns: Mapping[str, Any] | None = None, /, **more: Any) -> Batch:
        """A batch from a mapping of column name to array-like (scalars broadcast).

        Core fields are converted to their canonical dtypes; a value that cannot be converted raises
        ``ValueError`` naming the column.
        """
        merged = {**(columns or {}), **more}
        lengths = [len(v) for v in merged.values() if np.ndim(v) > 0]
        n = max(lengths) if lengths else 0
        out = {name: read_only(_canonical(name, v, n)) for name, v in merged.items()}
        return cls(columns=out)

    @classmethod
    def from_records(cls, records: Iterable[Reading | Mapping[str, Any]]) -> Batch:
        """A batch from :class:`Reading` records or mappings (missing keys become missing values)."""
        rows = [r.as_dict() if isinstance(r, Reading) else dict(r) for r in records]
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        columns: dict[str, Any] = {}
        for name in names:
            values = [row.get(name) for row in rows]
            columns[name] = values if name in CORE_FIELDS else _infer_extra(values)
        return cls.from_columns(columns)

    @classmethod
    def empty(cls) -> Batch:
        """A batch with no rows and no columns."""
        return cls(columns={})

    @classmethod
    def concat(cls, batches: Sequence[Batch]) -> Batch:
        """Rows of ``batches`` in order. Columns missing from some batches are filled with missing
        values (NaN, ``None``, ``False``/0)."""
        batches = [b for b in batches if b.columns]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        names: dict[str, np.ndarray] = {}
        for b in batches:
            for name in b.columns:
                names.setdefault(name, b[name])
        out: dict[str, np.ndarray] = {}
        for name, example in names.items():
            parts = [b[name] if name in b else _missing_like(example, len(b)) for b in batches]
            out[name] = read_only(np.concatenate(parts))
        return cls(columns=out)

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        for column in self._columns.values():
            return len(column)
        return 0

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns are {list(self._columns)}") from None

    def get(self, name: str, default: np.ndarray | None = None) -> np.ndarray | None:
        """The column ``name``, or ``default`` when the batch has none."""
        return self._columns.get(name, default)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in order."""
        return tuple(self._columns)

    def to_dict(self) -> dict[str, np.ndarray]:
        """A new dict of the (read-only) column arrays."""
        return dict(self._columns)

    def __repr__(self) -> str:
        return f"Batch(rows={len(self)}, columns={list(self._columns)})"

    def _repr_html_(self) -> str:
        """What a notebook shows: shape, columns and dtypes, time span (UTC), sensors, first rows."""
        from .display import batch_html

        return batch_html(self)

    # -- derivation ---------------------------------------------------------------------------
    def with_columns(self, columns: Mapping[str, Any] | None = None, /, **more: Any) -> Batch:
        """A new batch with columns added or replaced (scalars broadcast to every row)."""
        merged = {**(columns or {}), **more}
        n = len(self)
        out = dict(self._columns)
        for name, values in merged.items():
            array = read_only(_canonical(name, values, n))
            if len(array) != n and self._columns:
                raise ValueError(f"column {name!r} has {len(array)} rows, the batch has {n}")
            out[name] = array
        return Batch(columns=out)

    def drop(self, *names: str) -> Batch:
        """A new batch without the named columns (names it lacks are ignored)."""
        return Batch(columns={k: v for k, v in self._columns.items() if k not in names})

    def select(self, rows: npt.ArrayLike | slice) -> Batch:
        """A new batch of the chosen rows: a boolean mask, integer positions or a slice."""
        if isinstance(rows, slice):
            return Batch(columns={k: v[rows] for k, v in self._columns.items()})
        index = np.asarray(rows)
        if index.dtype == np.bool_ and len(index) != len(self):
            raise ValueError(f"mask has {len(index)} entries, the batch has {len(self)} rows")
        return Batch(columns={k: read_only(v[index]) for k, v in self._columns.items()})

    def sort(self, *by: str) -> Batch:
        """A new batch ordered by the given columns (stable; first name is the primary key)."""
        keys = [self[name] for name in reversed(by)]
        if not keys:
            return self
        order = np.lexsort([k.astype(str) if k.dtype == object else k for k in keys])
        return self.select(order)

    def equals(self, other: Batch) -> bool:
        """Same columns in the same order with equal values (NaN equals NaN)."""
        if self.columns != other.columns or len(self) != len(other):
            return False
        for name in self.columns:
            a, b = self[name], other[name]
            if a.dtype.kind == "f" and b.dtype.kind == "f":
                if not np.array_equal(a, b, equal_nan=True):
                    return False
            elif a.dtype != b.dtype or not np.array_equal(a, b):
                return False
        return True

    # -- records ------------------------------------------------------------------------------
    def rows(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict of Python values (slow; for inspection and small batches)."""
        lists = {name: col.tolist() for name, col in self._columns.items()}
        for i in range(len(self)):
            yield {name: values[i] for name, values in lists.items()}

    def records(self) -> list[Reading]:
        """Each row as a :class:`Reading` (slow; for convenience and tests)."""
        return [Reading.from_dict(row) for row in self.rows()]

    # -- interop (pandas, Arrow; the code is in cosmobac.interop) -------------------------------
    def to_pandas(self) -> Any:
        """A pandas DataFrame of this batch (``timestamp`` as ``datetime64[ms, UTC]``); see
        :func:`cosmobac.interop.to_pandas`. Needs ``cosmobac[pandas]``."""
        from .interop import to_pandas

        return to_pandas(self)

    @classmethod
    def from_pandas(cls, df: Any) -> Batch:
        """A batch from a pandas DataFrame with a ``timestamp`` column or a ``DatetimeIndex``; see
        :func:`cosmobac.interop.from_pandas`. Needs ``cosmobac[pandas]``."""
        from .interop import from_pandas

        return from_pandas(df)

    def to_arrow(self) -> Any:
        """A pyarrow Table of this batch (polars reads it); see
        :func:`cosmobac.interop.to_arrow`. Needs ``cosmobac[arrow]``."""
        from .interop import to_arrow

        return to_arrow(self)

    @classmethod
    def from_arrow(cls, table: Any) -> Batch:
        """A batch from a pyarrow Table or RecordBatch, or a polars DataFrame; see
        :func:`cosmobac.interop.from_arrow`. Needs ``cosmobac[arrow]``."""
        from .interop import from_arrow

        return from_arrow(table)


def _infer_extra(values: list[Any]) -> np.ndarray:
    """An extra column from Python values: numbers become float64 (None → NaN) or int64; anything
    else an object array (None stays None)."""
    present = [v for v in values if v is not None]
    if (
        present
        and all(isinstance(v, bool | np.bool_) for v in present)
        and len(present) == len(values)
    ):
        return np.array(values, dtype=np.bool_)
    if present and all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
        for v in present
    ):
        if len(present) == len(values) and all(isinstance(v, int | np.integer) for v in values):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _timestamp_field(value: Any) -> int:
    return to_epoch_ms(value)


def _optional_float(value: Any) -> float:
    return np.nan if value is None else float(value)


def _same_float(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN: a missing value equals a missing value


_NAN_EQ = attrs.cmp_using(eq=_same_float)


@attrs.frozen
class Reading:
    """One reading, for convenience. Batches are the fast path; see :meth:`Batch.records`.

    ``timestamp`` is epoch milliseconds UTC (datetimes and ISO text are converted); metrics are
    floats, NaN when missing. Extra columns go in ``extra``.
    """

    timestamp: int = attrs.field(converter=_timestamp_field)
    sensor_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    city: str | None = None
    temperature: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    humidity: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    pressure: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    vibration: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    voltage: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    latitude: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    longitude: float = attrs.field(default=np.nan, converter=_optional_float, eq=_NAN_EQ)
    firmware_version: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    anomaly_flag: bool = False
    anomaly_type: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Reading:
        """A reading from a mapping of field name to value; unknown names go to ``extra``."""
        core = {k: v for k, v in row.items() if k in CORE_FIELDS}
        extra = {k: v for k, v in row.items() if k not in CORE_FIELDS}
        return cls(**core, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """Core fields and extras in one flat dict."""
        data = attrs.asdict(self, recurse=False)
        extra = data.pop("extra")
        return {**data, **extra}

    @property
    def time(self) -> dt.datetime:
        """The timestamp as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.timestamp / _MS_PER_S, tz=dt.UTC)


def require_identity(batch: object) -> Batch:
    """What a store's ``append`` checks first: ``batch`` is a :class:`Batch` (else ``TypeError``)
    and, unless it is empty, has the identity columns ``sensor_id`` and ``timestamp`` (else
    ``ValueError`` naming the missing ones). Rows without a ``sensor_id`` are the store's to refuse,
    on the values it reads anyway."""
    if not isinstance(batch, Batch):
        raise TypeError(f"append takes a Batch, got {type(batch).__name__}")
    missing = [name for name in IDENTITY if name not in batch] if len(batch) else []
    if missing:
        raise ValueError(
            f"batch lacks the identity column(s) {missing}: every reading needs 'sensor_id' "
            "and 'timestamp'"
        )
    return batch
