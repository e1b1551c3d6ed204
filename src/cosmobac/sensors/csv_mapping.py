"""How the ``csv`` sensor turns a CSV line into a reading: its column mapping and time parsing.

:class:`ColumnMapping` holds the keys (checked when the sensor is built); :meth:`ColumnMapping.layout`
resolves them against one file's header; a :class:`Rows` collects parsed lines into a
:class:`~cosmobac.batch.Batch`, refusing a line (with a reason naming the column and value) rather
than storing a wrong reading.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs
import numpy as np

from ..batch import Batch
from ..schema import CORE_FIELDS, IDENTITY, STORE_SEQ, Kind
from ..values import NO, YES, flag, text_list

__all__ = ["EPOCH_UNITS", "ColumnMapping", "Layout", "Rows", "TimeParser", "snake_case"]

EPOCH_UNITS: Final[dict[str, Decimal]] = {
    "s": Decimal(1000),
    "ms": Decimal(1),
    "us": Decimal("0.001"),
    "ns": Decimal("0.000001"),
}
"""Epoch units ``timestamp_format`` accepts → milliseconds per unit."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS: Final = dt.timedelta(milliseconds=1)
_FIELD_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT_TEXT: Final = re.compile(r"^[+-]?\d+$")
_INT64: Final = (-(2**63), 2**63 - 1)
_ZONE_DIRECTIVES: Final = ("%z", "%Z", "%:z")


def snake_case(name: str) -> str:
    """A header name as a field name: lower case, runs of other characters than letters and
    digits as ``_`` (``"Wind Speed (m/s)"`` → ``"wind_speed_m_s"``); a leading digit gets ``_``."""
    text = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    return f"_{text}" if text[:1].isdigit() else text


@attrs.frozen
class TimeParser:
    """Reads one timestamp cell as epoch milliseconds (UTC): ISO-8601 text (``form="iso"``), an
    epoch number in ``form`` ``s``/``ms``/``us``/``ns``, or text in a strftime ``form`` (holding
    ``%``). ``zone`` is the zone of zone-less text (None: such text is refused)."""

    form: str = "iso"
    zone: dt.tzinfo | None = None

    @classmethod
    def from_keys(cls, timestamp_format: Any, timezone: Any) -> TimeParser:
        if not isinstance(timestamp_format, str) or not timestamp_format.strip():
            raise ValueError(
                f"timestamp_format must be 'iso', an epoch unit ('s', 'ms', 'us', 'ns') or a "
                f"strftime format such as '%Y-%m-%d %H:%M:%S', got {timestamp_format!r}"
            )
        form = timestamp_format.strip() if "%" not in timestamp_format else timestamp_format
        if "%" not in form:
            form = form.lower()
            if form not in ("iso", *EPOCH_UNITS):
                raise ValueError(
                    f"timestamp_format must be 'iso', an epoch unit ('s', 'ms', 'us', 'ns') or a "
                    f"strftime format holding '%' (e.g. '%d/%m/%Y %H:%M'), got {timestamp_format!r}"
                )
        zone: dt.tzinfo | None = None
        if timezone is not None:
            if form in EPOCH_UNITS:
                raise ValueError(
                    f"timezone does not apply to epoch timestamps (timestamp_format = {form!r} is "
                    "UTC by definition): remove timezone"
                )
            if not isinstance(timezone, str) or not timezone.strip():
                raise TypeError(f"timezone must be a zone name such as 'UTC', got {timezone!r}")
            name = timezone.strip()
            try:
                zone = dt.UTC if name.upper() in ("UTC", "Z") else zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timezone {timezone!r} is not a known zone; give an IANA name such as "
                    "'UTC', 'Europe/Paris' or 'America/New_York'"
                ) from None
        elif "%" in form and not any(d in form for d in _ZONE_DIRECTIVES):
            raise ValueError(
                f"timestamp_format {form!r} reads times without a zone: add timezone = 'UTC' (or "
                "the zone the file was written in, e.g. 'Europe/Paris'), or %z to the format"
            )
        if "%" in form:
            try:
                dt.datetime.now().strftime(form)
            except ValueError as exc:
                raise ValueError(
                    f"timestamp_format {form!r} is not a strftime format: {exc}"
                ) from None
        return cls(form, zone)

    def __call__(self, text: str) -> int:
        """Epoch milliseconds; ``ValueError`` saying what is wrong with ``text``."""
        text = text.strip()
        if not text:
            raise ValueError("is empty")
        unit = EPOCH_UNITS.get(self.form)
        if unit is not None:
            if _INT_TEXT.match(text) and unit == 1:
                value = int(text)
            else:
                try:
                    number = Decimal(text)
                except InvalidOperation:
                    raise ValueError(f"is not a number of {self.form} since 1970") from None
                if not number.is_finite():
                    raise ValueError(f"is not a number of {self.form} since 1970") from None
                value = math.floor(number * unit)
            if not _INT64[0] <= value <= _INT64[1]:
                raise ValueError("is out of range")
            return value
        try:
            if self.form == "iso":
                try:
                    moment = dt.datetime.fromisoformat(text)
                except ValueError:  # older spellings of UTC, as cosmobac.batch accepts them
                    moment = dt.datetime.fromisoformat(
                        text.replace("Z", "+00:00").replace("z", "+00:00")
                    )
            else:
                moment = dt.datetime.strptime(text, self.form)
        except ValueError:
            shown = "ISO-8601" if self.form == "iso" else f"in the format {self.form!r}"
            raise ValueError(f"is not {shown}") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            if self.zone is None:
                raise ValueError("has no time zone (add one, or set the key timezone)")
            moment = moment.replace(tzinfo=self.zone)
        return (moment - _EPOCH) // _ONE_MS


def _field_kind(field: str) -> Kind:
    """How a mapped column is read: a core field by its kind, anything else as a number."""
    return CORE_FIELDS.get(field, Kind.FLOAT)


@attrs.frozen
class Layout:
    """A :class:`ColumnMapping` resolved against one file's column names: which cell feeds what."""

    width: int
    time_index: int
    sensor_index: int | None
    fields: tuple[tuple[int, str, Kind], ...]  # (cell index, field, kind), mapped then kept


@attrs.frozen
class ColumnMapping:
    """The columns keys of a ``csv`` sensor, checked. See :class:`~.csv_files.CsvFiles`."""

    time: TimeParser
    timestamp_column: str = "timestamp"
    sensor_id_column: str | None = "sensor_id"
    sensor_id: str | None = None
    columns: Mapping[str, str] | None = None  # CSV name → field; None: core-named columns
    keep_unmapped: bool = False
    column_names: tuple[str, ...] | None = None

    @classmethod
    def from_keys(
        cls,
        *,
        timestamp_column: Any,
        timestamp_format: Any,
        timezone: Any,
        sensor_id_column: Any,
        sensor_id: Any,
        columns: Any,
        keep_unmapped: Any,
        column_names: Any,
        header: bool,
    ) -> ColumnMapping:
        time = TimeParser.from_keys(timestamp_format, timezone)
        if not isinstance(timestamp_column, str) or not timestamp_column:
            raise TypeError(f"timestamp_column must be a column name, got {timestamp_column!r}")
        if sensor_id is not None:
            if sensor_id_column is not None:
                raise ValueError(
                    "give sensor_id (one id for every row) or sensor_id_column (a column holding "
                    "it), not both"
                )
            if not isinstance(sensor_id, str | int) or isinstance(sensor_id, bool):
                raise TypeError(f"sensor_id must be text, got {sensor_id!r}")
            sensor_id = str(sensor_id).strip()
            if not sensor_id:
                raise ValueError("sensor_id must not be empty")
        elif sensor_id_column is None:
            sensor_id_column = "sensor_id"
        if sensor_id_column is not None and (
            not isinstance(sensor_id_column, str) or not sensor_id_column
        ):
            raise TypeError(f"sensor_id_column must be a column name, got {sensor_id_column!r}")
        mapped = _parse_columns(columns)
        names = None if column_names is None else text_list("column_names", column_names)
        if names is not None:
            if not names:
                raise ValueError("column_names must name at least one column")
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"column_names names {duplicated[0]!r} twice")
        elif not header:
            raise ValueError(
                "header = false needs column_names, the names of the columns in file order "
                '(e.g. column_names = ["time", "device", "temp_c"])'
            )
        mapping = cls(
            time,
            timestamp_column,
            sensor_id_column,
            sensor_id,
            mapped,
            flag("keep_unmapped", keep_unmapped),
            names,
        )
        if names is not None:
            mapping.layout(names)  # the names are known now: check them now
        return mapping

    def layout(self, header: Sequence[str]) -> Layout:
        """Where each output field comes from in a file whose columns are ``header``;
        ``ValueError`` naming the key to fix when a column the keys name is not there."""
        names = [name.strip() for name in self.column_names or header]
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in index:
                raise ValueError(f"the header names column {name!r} twice")
            index[name] = i
        shown = ", ".join(repr(n) for n in names)

        def find(name: str, key: str) -> int:
            if name not in index:
                raise ValueError(
                    f"{key}: {name!r} is not a column of the file (its columns: {shown}); fix "
                    f"{key}{'' if self.column_names or key == 'columns' else ' or set column_names'}"
                )
            return index[name]

        time_index = find(self.timestamp_column, "timestamp_column")
        sensor_index = (
            None
            if self.sensor_id_column is None
            else find(self.sensor_id_column, "sensor_id_column")
        )
        used = {time_index, sensor_index}
        fields: list[tuple[int, str, Kind]] = []
        if self.columns is None:
            mapped = {
                n: n
                for n in names
                if n in CORE_FIELDS and n not in IDENTITY and index[n] not in used
            }
        else:
            mapped = dict(self.columns)
        for name, field in mapped.items():
            i = find(name, "columns")
            used.add(i)
            fields.append((i, field, _field_kind(field)))
        if self.keep_unmapped:
            taken = {f for _, f, _ in fields} | set(IDENTITY) | {STORE_SEQ}
            for i, name in enumerate(names):
                if i in used:
                    continue
                field = snake_case(name)
                if not field or field in taken:
                    raise ValueError(
                        f"keep_unmapped: column {name!r} would be kept as {field!r}, which is "
                        "empty or already a field; map it in columns to a name of its own"
                    )
                taken.add(field)
                fields.append((i, field, Kind.STR))
        return Layout(len(names), time_index, sensor_index, tuple(fields))

    def output_fields(self) -> list[tuple[str, Kind]]:
        """The fields every batch has, even an empty one: identity, then the mapped fields."""
        mapped = list(self.columns.values()) if self.columns is not None else []
        return [("timestamp", Kind.TIMESTAMP), ("sensor_id", Kind.STR)] + [
            (f, _field_kind(f)) for f in mapped
        ]


def _parse_columns(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(
            "columns must be a table of CSV column → field name, e.g. [sensor.columns] "
            f'temp_c = "temperature"; got {value!r}'
        )
    out: dict[str, str] = {}
    for name, field in value.items():
        if not isinstance(field, str) or not _FIELD_NAME.match(field):
            raise ValueError(
                f"columns.{name}: the field name must be letters, digits and _ (e.g. "
                f"'temperature'), got {field!r}"
            )
        if field in IDENTITY or field == STORE_SEQ:
            raise ValueError(
                f"columns.{name} = {field!r}: {field} is not a metric; "
                + (
                    "set timestamp_column instead"
                    if field == "timestamp"
                    else "set sensor_id_column instead"
                    if field == "sensor_id"
                    else "the store adds it"
                )
            )
        if field in out.values():
            raise ValueError(f"columns: two columns map to the field {field!r}")
        out[str(name)] = field
    return out


class Rows:
    """Parsed lines of one file, column by column, turned into one :class:`Batch`."""

    def __init__(self, mapping: ColumnMapping, layout: Layout) -> None:
        self._mapping = mapping
        self._layout = layout
        self._time: list[int] = []
        self._sensor: list[str] = []
        self._values: list[list[Any]] = [[] for _ in layout.fields]

    def __len__(self) -> int:
        return len(self._time)

    def add(self, cells: Sequence[str]) -> str | None:
        """Adds one line's cells; returns why it was refused instead (nothing added then)."""
        layout = self._layout
        if len(cells) != layout.width:
            return f"has {len(cells)} fields, the header has {layout.width}"
        cell = cells[layout.time_index]
        try:
            stamp = self._mapping.time(cell)
        except ValueError as exc:
            return f"timestamp column {self._mapping.timestamp_column!r}: {cell!r} {exc}"
        if layout.sensor_index is None:
            sensor = self._mapping.sensor_id or ""
        else:
            sensor = cells[layout.sensor_index].strip()
            if not sensor:
                return f"sensor id column {self._mapping.sensor_id_column!r} is empty"
        try:
            values = [_READERS[kind](cells[i]) for i, _, kind in layout.fields]
        except ValueError:
            for i, field, kind in layout.fields:  # which one: for the reason
                try:
                    _READERS[kind](cells[i])
                except ValueError as exc:
                    return f"column {field!r} (CSV column {i + 1}): {cells[i].strip()!r} {exc}"
            raise  # pragma: no cover - one of them failed above
        self._time.append(stamp)
        self._sensor.append(sensor)
        for column, value in zip(self._values, values, strict=True):
            column.append(value)
        return None

    def batch(self) -> Batch:
        columns: dict[str, Any] = {
            "timestamp": np.array(self._time, dtype=np.int64),
            "sensor_id": np.array(self._sensor, dtype=object),
        }
        for (_, field, kind), values in zip(self._layout.fields, self._values, strict=True):
            columns[field] = _array(values, kind)
        return Batch.from_columns(columns)


def empty_batch(mapping: ColumnMapping) -> Batch:
    """A batch with no rows and the fields every batch of ``mapping`` has."""
    return Batch.from_columns({f: _array([], k) for f, k in mapping.output_fields()})


def _array(values: list[Any], kind: Kind) -> np.ndarray:
    if kind is Kind.FLOAT:
        return np.array(values, dtype=np.float64)
    if kind is Kind.BOOL:
        return np.array(values, dtype=np.bool_)
    if kind is Kind.TIMESTAMP:
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=object)


def _number(text: str) -> float:
    """A metric cell: a finite number, NaN when empty (``float`` ignores surrounding spaces)."""
    try:
        number = float(text)
    except ValueError:
        if not text.strip():
            return math.nan
        raise ValueError("is not a number") from None
    if math.isinf(number):
        raise ValueError("is not a finite number")
    return number


def _flag(text: str) -> bool:
    """A flag cell: yes/no words or a number (not zero: true); empty is false."""
    low = text.strip().lower()
    if not low or low in NO:
        return False
    if low in YES:
        return True
    try:
        return float(low) != 0
    except ValueError:
        raise ValueError("is not a flag (true/false, yes/no, 1/0)") from None


def _text(text: str) -> str | None:
    return text.strip() or None


_READERS: Final[dict[Kind, Callable[[str], Any]]] = {
    Kind.FLOAT: _number,
    Kind.BOOL: _flag,
    Kind.STR: _text,
    Kind.INT: _text,
    Kind.TIMESTAMP: _text,
}
