"""Import the edge databases of the original "Cosmos with Bacalhau" system into a store.

The original sensors wrote SQLite files with a table ``sensor_readings`` whose columns changed over
time (see ``docs``/the design notes). This module reads whatever columns a file has and appends the
readings to a cosmobac store through ``store.append``, so importing a file twice adds nothing.

Guarantees:

* timestamps are interpreted per value by their SQLite storage class, never by guessing from the
  column: a REAL or INTEGER is Unix epoch **seconds** (kept to the millisecond); TEXT holding a
  decimal number (``'1740823203.5'``) is epoch seconds too, if at least 100000000 (1973): a
  smaller one (``'2024'``, ``'20250301'``: a year, a basic ISO date) is skipped, not dated 1970;
  other TEXT is ISO-8601, with ``Z`` or an offset honoured, and zone-less text read in
  ``assume_timezone`` (an IANA name); ISO text is never read as a number;
* every row read is imported, already stored, or skipped and counted by its reason (a timestamp or
  ``sensor_id`` missing or unparsable, values the store refuses), per file in ``problems`` and in
  total in ``ImportReport.skipped``; a skipped row never stops the import;
* a ``sensor_readings`` that is a view (read through, with a warning giving the row count), or that
  yields no rows, is reported;
* a missing or unparsable metric is NaN, never 0.0 (unparsable ones are counted in the report);
* ``location`` becomes ``city``; columns that are not core fields (``status_code``,
  ``serial_number``, …, ``original_timezone``) travel as extra columns; the original per-file ``id``
  and the old uploader's ``synced`` flag are bookkeeping of the old system and are left out;
* original files are opened read-only and never modified; a file without a ``sensor_readings``
  table, or that is not SQLite at all, is reported, not a crash.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import numpy as np

from .batch import Batch, to_epoch_ms
from .interfaces import FileStore, Store
from .schema import CORE_FIELDS, Kind
from .values import data_flag

__all__ = ["ImportProblem", "ImportReport", "import_original"]

TABLE: Final = "sensor_readings"
_DROPPED: Final = frozenset({"id", "synced"})
_RENAMED: Final = {"location": "city"}
_MAX_EPOCH_S: Final = 253_402_300_800  # 10000-01-01: beyond it no date type can hold the time
_MIN_TEXT_EPOCH_S: Final = 100_000_000  # 1973-03-03: smaller numbers in text are not seconds
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@attrs.frozen
class ImportProblem:
    """Something in one file that was not imported as is: a skipped file, skipped rows (``rows``
    counts them) or values read as missing."""

    path: Path
    message: str
    rows: int = 0

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@attrs.frozen
class ImportReport:
    """What :func:`import_original` did.

    ``files`` are the files whose readings were imported; ``rows_read`` counts rows read from them,
    ``rows_added`` those new to the store (re-importing adds 0), ``rows_skipped`` rows left out;
    ``skipped`` counts those by reason over every file (per file, with an example row, in
    ``problems``). Every row read is added, already stored or skipped.
    """

    files: tuple[Path, ...]
    rows_read: int
    rows_added: int
    rows_skipped: int
    problems: tuple[ImportProblem, ...]
    skipped: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def rows_already_stored(self) -> int:
        """Rows read that the store already held (same ``sensor_id`` and ``timestamp``)."""
        return self.rows_read - self.rows_added - self.rows_skipped

    @property
    def ok(self) -> bool:
        """True when every file was read and no row was skipped."""
        return not self.problems


# -- timestamps -----------------------------------------------------------------------------------
def _zone(name: str) -> dt.tzinfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"assume_timezone must be an IANA time zone name, got {name!r}")
    if name.strip().upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"assume_timezone: unknown time zone {name!r}; use an IANA name such as 'UTC' or "
            "'Europe/Berlin' (on systems without a zone database, `pip install tzdata`)"
        ) from None


def _timestamp_ms(kind: str, value: Any, zone: dt.tzinfo) -> int | str:
    """Epoch ms for one stored timestamp, or the reason it cannot be read."""
    if kind in ("real", "integer"):
        seconds = float(value)
        if not math.isfinite(seconds) or abs(seconds) > _MAX_EPOCH_S:
            return "timestamp is not a plausible number of epoch seconds"
        return round(seconds * 1000)
    if kind == "text":
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if _NUMBER.fullmatch(text):
            if float(text) < _MIN_TEXT_EPOCH_S:  # e.g. '2024' (a year), '20250301' (ISO basic)
                return "timestamp text is a number too small for epoch seconds (before 1973)"
            return _timestamp_ms("real", text, zone)
        if parsed is None:
            return "timestamp text is neither epoch seconds nor ISO-8601"
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=zone)
        try:
            return to_epoch_ms(parsed)
        except (OverflowError, ValueError):
            return "timestamp is out of range"
    if kind == "null":
        return "missing timestamp"
    return f"timestamp stored as {kind}"


# -- values ---------------------------------------------------------------------------------------
_PLAIN_NUMBERS: Final = frozenset({float, int, type(None)})


def _floats(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """float64 for stored values (None/unparsable/non-finite → NaN) and how many were unparsable."""
    if {type(v) for v in values} <= _PLAIN_NUMBERS:
        out = np.array(values, dtype=np.float64)
        out[~np.isfinite(out)] = np.nan
        return out, 0
    out = np.empty(len(values), dtype=np.float64)
    bad = 0
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
            continue
        try:
            number = float(v.strip()) if isinstance(v, str) else float(v)
        except (TypeError, ValueError):
            bad += 1
            number = math.nan
        out[i] = number if math.isfinite(number) else math.nan
    return out, bad


def _strings(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or isinstance(v, str):
            out[i] = v
        elif isinstance(v, bytes):
            out[i] = v.decode("utf-8", "replace")
        else:
            out[i] = str(v)
    return out


def _flags(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Flags, and how many values were not flags (read as false, like a missing flag)."""
    out = np.zeros(len(values), dtype=np.bool_)
    bad = 0
    for i, value in enumerate(values):
        try:
            out[i] = data_flag(value)
        except ValueError:
            bad += 1
    return out, bad


def _affinity(declared: str) -> Kind:
    """The kind an extra column travels as, from its declared SQLite type (affinity rules)."""
    upper = declared.upper()
    if "INT" in upper:
        return Kind.INT
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")) or not upper:
        return Kind.STR
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return Kind.FLOAT
    return Kind.STR  # NUMERIC/BLOB/dates: keep the text as written


def _extra(values: Sequence[Any], kind: Kind) -> tuple[np.ndarray, int]:
    if kind is Kind.FLOAT:
        return _floats(values)
    if kind is Kind.INT:
        if all(type(v) is int for v in values):
            return np.array(values, dtype=np.int64), 0
        return _floats(values)  # gaps or text: float64 with NaN
    return _strings(values), 0


# -- files ----------------------------------------------------------------------------------------
def _candidates(paths: Iterable[str | os.PathLike[str]], skip: Path | None) -> Iterator[Path]:
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        found = sorted(p for p in path.rglob("*.db") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            resolved = file.resolve()
            if resolved in seen or (skip is not None and resolved == skip):
                continue
            seen.add(resolved)
            yield file


def _open_readonly(path: Path) -> sqlite3.Connection:
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


@attrs.define
class _FileResult:
    rows_read: int = 0
    rows_added: int = 0
    view: bool = False
    skipped: Counter[str] = attrs.field(factory=Counter)
    examples: dict[str, str] = attrs.field(factory=dict)
    unparsable_values: Counter[str] = attrs.field(factory=Counter)


def _has_rowid(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute(f"SELECT rowid FROM {TABLE} LIMIT 0")
    except sqlite3.OperationalError:  # a WITHOUT ROWID table
        return False
    return True


def _import_file(
    path: Path, store: Store, zone: dt.tzinfo, batch_size: int, result: _FileResult
) -> None:
    conn = _open_readonly(path)
    try:
        found = conn.execute(
            "SELECT type FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? "
            "COLLATE NOCASE",
            (TABLE,),
        ).fetchone()
        info = conn.execute(f"PRAGMA table_info({TABLE})").fetchall() if found else []
        if not info:
            raise LookupError(f"no {TABLE!r} table")
        result.view = found[0] == "view"
        declared = {row[1]: str(row[2] or "") for row in info}
        if "timestamp" not in declared or "sensor_id" not in declared:
            raise LookupError(f"table {TABLE!r} has no 'timestamp' or 'sensor_id' column")
        # source column → target field
        targets: dict[str, str] = {}
        for column in declared:
            if column in _DROPPED or column == "timestamp":
                continue
            target = _RENAMED.get(column, column)
            if target in targets.values() or (target != column and target in declared):
                target = column  # e.g. both 'location' and 'city': 'location' stays an extra
            targets[column] = target
        sources = list(targets)
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in sources)
        # a table's rows are named by rowid; a view's (which has none) by their position
        keyed = not result.view and _has_rowid(conn)
        label = "row id" if keyed else "row"
        sql = (
            f'SELECT {"rowid" if keyed else "NULL"}, typeof("timestamp"), "timestamp", {select} '
            f"FROM {TABLE}{' ORDER BY rowid' if keyed else ''}"
        )
        cursor = conn.execute(sql)
        while rows := cursor.fetchmany(batch_size):
            if not keyed:
                rows = [(result.rows_read + i + 1, *row[1:]) for i, row in enumerate(rows)]
            result.rows_read += len(rows)
            batch = _to_batch(rows, sources, targets, declared, zone, result, label)
            if not len(batch):
                continue
            try:
                result.rows_added += store.append(batch)
            except ValueError as exc:  # the store cannot hold these values: count, go on
                reason = f"the store refused them: {exc}"
                result.skipped[reason] += len(batch)
                result.examples.setdefault(reason, f"{label} {rows[0][0]}")
    finally:
        conn.close()


def _to_batch(
    rows: list[tuple[Any, ...]],
    sources: list[str],
    targets: dict[str, str],
    declared: dict[str, str],
    zone: dt.tzinfo,
    result: _FileResult,
    label: str,
) -> Batch:
    stamps = np.zeros(len(rows), dtype=np.int64)
    keep = np.ones(len(rows), dtype=np.bool_)
    sensor_index = sources.index("sensor_id") + 3
    for i, row in enumerate(rows):
        ms = _timestamp_ms(row[1], row[2], zone)
        reason = None
        if isinstance(ms, str):
            reason = ms
        elif row[sensor_index] is None or str(row[sensor_index]).strip() == "":
            reason = "missing sensor_id"
        else:
            stamps[i] = ms
        if reason is not None:
            keep[i] = False
            result.skipped[reason] += 1
            result.examples.setdefault(reason, f"{label} {row[0]}, timestamp {row[2]!r}")
    if not keep.all():
        rows = [row for row, k in zip(rows, keep.tolist(), strict=True) if k]
        stamps = stamps[keep]
    columns: dict[str, Any] = {"timestamp": stamps}
    transposed = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(sources) + 3)]
    for offset, source in enumerate(sources, start=3):
        target = targets[source]
        values = transposed[offset]
        kind = CORE_FIELDS.get(target) or _affinity(declared[source])
        if kind is Kind.FLOAT:
            array, bad = _floats(values)
        elif kind is Kind.BOOL:
            array, bad = _flags(values)
        elif kind is Kind.STR:
            array, bad = _strings(values), 0
        else:
            array, bad = _extra(values, kind)
        if bad:
            result.unparsable_values[source] += bad
        columns[target] = array
    return Batch.from_columns(columns)


def import_original(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    store: Store,
    *,
    assume_timezone: str = "UTC",
    batch_size: int = 50_000,
) -> ImportReport:
    """Import original edge databases (files, or directories searched recursively for ``*.db``)
    into ``store``; returns an :class:`ImportReport`.

    ``assume_timezone`` (an IANA name) is the zone of ISO timestamps written without one.
    Readings go through ``store.append`` in batches of ``batch_size`` rows, so a re-import adds
    nothing and an interrupted import can simply be run again.
    """
    zone = _zone(assume_timezone)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    skip = Path(store.path).resolve() if isinstance(store, FileStore) else None

    files: list[Path] = []
    problems: list[ImportProblem] = []
    skipped: Counter[str] = Counter()
    rows_read = rows_added = rows_skipped = 0
    for path in _candidates(paths, skip):
        if not path.exists():
            problems.append(ImportProblem(path, "no such file or directory"))
            continue
        result = _FileResult()
        try:
            _import_file(path, store, zone, batch_size, result)
        except LookupError as exc:
            problems.append(ImportProblem(path, f"skipped: {exc.args[0]}"))
        except sqlite3.DatabaseError as exc:
            where = f" after {result.rows_read} rows" if result.rows_read else ""
            problems.append(
                ImportProblem(path, f"skipped{where}: not a readable SQLite database ({exc})")
            )
        else:
            files.append(path)
            if result.view:
                problems.append(
                    ImportProblem(
                        path,
                        f"{TABLE!r} is a view, not a table: {result.rows_read} row(s) read "
                        "through it; check that it selects the readings you mean to import",
                    )
                )
            if not result.rows_read:
                problems.append(ImportProblem(path, f"{TABLE!r} yields no rows: nothing imported"))
        rows_read += result.rows_read
        rows_added += result.rows_added
        rows_skipped += sum(result.skipped.values())
        skipped.update(result.skipped)
        for reason, count in sorted(result.skipped.items()):
            problems.append(
                ImportProblem(
                    path,
                    f"{count} row(s) skipped: {reason} (first: {result.examples[reason]})",
                    rows=count,
                )
            )
        for column, count in sorted(result.unparsable_values.items()):
            problems.append(
                ImportProblem(path, f"{count} unparsable value(s) in {column!r} read as missing")
            )
    return ImportReport(
        files=tuple(files),
        rows_read=rows_read,
        rows_added=rows_added,
        rows_skipped=rows_skipped,
        problems=tuple(problems),
        skipped=dict(sorted(skipped.items())),
    )
