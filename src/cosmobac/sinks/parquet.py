"""Built-in sink ``parquet``: an archive of forwarded readings as Parquet files, partitioned by city
and date, append-only.

Layout (Hive-style, so ``pyarrow.dataset.dataset(path, partitioning="hive")``, DuckDB, Spark and
pandas read it as one table with ``city`` and ``date`` columns)::

    PATH/city=London/date=2026-01-01/part-<first>-<last>-<digest>.parquet
    PATH/city=New%20York/date=2026-01-01/...          (city names percent-encoded)
    PATH/city=__HIVE_DEFAULT_PARTITION__/date=.../...  (readings without a city)

Guarantees:

* every ``write`` adds new files and never opens an existing one for writing: a file is written
  under a temporary name, flushed to disk, then linked to its final name, which fails rather than
  replace a file (so the archive never costs more than the rows written — the original rewrote
  the whole archive per batch);
* a returned ``write`` is durable: file and directory entries are fsynced (``fsync = false`` skips
  it, for tests and throwaway archives);
* rows the archive cannot hold are rejected with the reason (they go to the dead letters) and the
  rest is written: a city whose partition folder name the file system refuses (longer than its
  limit on a name, usually 255 bytes once percent-encoded: ``ENAMETOOLONG``; ``EINVAL``,
  ``EILSEQ``), text UTF-8 cannot encode (a lone surrogate). A full disk, a quota or a file-size
  limit is an outage: the write raises a transient error, the batch is retried, and no partial
  file is left under a final name (files are written under a hidden temporary name, which readers
  skip, and linked to their final name only once complete). A configured ``path`` that cannot be
  written stops the sink (see :mod:`cosmobac.sinks._faults`);
* a file's name is derived from its rows (store ``seq`` range and a digest of the document ids), so
  the replay of a batch after a crash finds its files already there and writes nothing twice.
  Delivery is at-least-once otherwise (a replay cut into other batches writes other files); rows
  carry their document ``id`` for deduplication;
* columns keep their types: ``timestamp`` is a UTC timestamp (ms), missing and non-finite numbers
  are null, text is text, other values (lists, mappings) are JSON text; the store's ``seq`` is
  left out, the document ``id`` comes first.

pyarrow is an optional dependency (``pip install pyarrow``): it is imported when the sink is made,
and its absence is a configuration error saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import attrs
import numpy as np

from ..batch import Batch
from ..documents import document_ids
from ..errors import ConfigError
from ..hookspecs import Register, hookimpl
from ..interfaces import WriteResult
from ..schema import STORE_SEQ
from ..values import choice, flag
from ._faults import CONTENT_ERRNOS, os_errno, os_failure

__all__ = ["ParquetSink"]

NULL_PARTITION: Final = "__HIVE_DEFAULT_PARTITION__"
COMPRESSIONS: Final = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(
            "the parquet sink needs pyarrow, which is not installed: pip install pyarrow"
        ) from None
    return pyarrow


def _directory(value: Any) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise TypeError(f"path must be a directory path, got {value!r}")
    return Path(value)


def _segment(value: Any) -> str:
    """A Hive partition value: percent-encoded (``/``, ``=``, ``%``, spaces ...), or the Hive
    null marker."""
    if value is None or (isinstance(value, float) and value != value):
        return NULL_PARTITION
    return quote(str(value), safe="")


@attrs.define(eq=False)
class ParquetSink:
    """Archive forwarded rows as append-only Parquet files under ``path``, partitioned by city and
    date (UTC).

    Keys: ``path`` (the archive directory, required), ``compression`` (``"zstd"`` default,
    ``"snappy"``, ``"gzip"``, ``"lz4"``, ``"brotli"`` or ``"none"``), ``fsync`` (default true: each
    write is on disk before it is acknowledged).
    """

    path: Path = attrs.field(converter=_directory)
    compression: str = attrs.field(
        default="zstd", converter=lambda v: choice("compression", v, COMPRESSIONS)
    )
    fsync: bool = attrs.field(default=True, converter=lambda v: flag("fsync", v))
    _pa: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self._pa = _pyarrow()

    def write(self, batch: Batch) -> WriteResult | None:
        if not len(batch):
            return None
        ids = batch["id"] if "id" in batch.columns else document_ids(batch)
        days = (batch["timestamp"] // 86_400_000).astype("datetime64[D]").astype(str)
        cities = batch.get("city")
        city_values = cities.tolist() if cities is not None else [None] * len(batch)
        rejected: dict[int, str] = {}
        limit = self._name_max()
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (city, day) in enumerate(zip(city_values, days.tolist(), strict=True)):
            segment, problem = _city_folder(city, limit)
            if problem is not None:
                rejected[i] = problem
            else:
                groups.setdefault((segment, day), []).append(i)
        created: set[Path] = set()
        if groups and not self.path.is_dir():
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise os_failure("parquet", self.path, exc) from None
            created.add(self.path)
        for (city, day), rows in sorted(groups.items()):
            directory = self.path / f"city={city}" / f"date={day}"
            try:
                if not directory.is_dir():
                    directory.mkdir(parents=True, exist_ok=True)
                    created.update([directory, directory.parent])
                part = batch.select(np.asarray(rows))
                rejected.update(self._write_rows(directory, part, ids[rows], rows))
            except OSError as exc:
                code = os_errno(exc)
                if code not in CONTENT_ERRNOS:
                    raise os_failure("parquet", directory, exc) from None
                # the configured path is writable (made above): the city's folder name is refused
                reason = (
                    f"city {_clip(city_values[rows[0]])}: the file system refused its partition "
                    f"folder {directory.parent.name[:60]!r}...: {exc.strerror or exc}"
                )
                rejected.update(dict.fromkeys(rows, reason))
        if self.fsync:
            for directory in sorted(created, key=lambda p: len(p.parts), reverse=True):
                _fsync_dir(directory.parent)
        return WriteResult(rejected=rejected) if rejected else None

    def _name_max(self) -> int:
        """The longest file name the archive's file system takes (bytes)."""
        probe = self.path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return int(os.pathconf(probe, "PC_NAME_MAX"))
        except (OSError, ValueError):
            return 255

    def _write_rows(
        self, directory: Path, rows: Batch, ids: np.ndarray, positions: list[int]
    ) -> dict[int, str]:
        """Write ``rows`` as one file; rows whose values Parquet cannot hold are left out and
        returned (batch position → reason)."""
        try:
            table = self._table(rows, ids)
        except (TypeError, ValueError, OverflowError, NotImplementedError):
            # find the rows at fault, one by one; the others are written together
            keep: list[int] = []
            rejected: dict[int, str] = {}
            for j, position in enumerate(positions):
                try:
                    self._table(rows.select([j]), ids[[j]])
                except (TypeError, ValueError, OverflowError, NotImplementedError) as exc:
                    rejected[position] = f"row cannot be written to Parquet: {_reason(exc)}"
                else:
                    keep.append(j)
            if keep:
                self._write_file(directory, rows.select(keep), ids[keep])
            return rejected
        self._write_file(directory, rows, ids, table=table)
        return {}

    def _write_file(
        self, directory: Path, rows: Batch, ids: np.ndarray, *, table: Any = None
    ) -> None:
        digest = hashlib.sha256("\n".join(ids.tolist()).encode()).hexdigest()[:16]
        seqs = rows.get(STORE_SEQ)
        span = f"{int(seqs.min())}-{int(seqs.max())}" if seqs is not None else "x"
        final = directory / f"part-{span}-{digest}.parquet"
        if final.exists():  # this exact set of rows was archived before (a replay)
            return
        pa = self._pa
        if table is None:
            table = self._table(rows, ids)
        temporary = directory / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            pa.parquet.write_table(
                table,
                temporary,
                compression=None if self.compression == "none" else self.compression,
            )
            if self.fsync:
                with open(temporary, "rb") as f:
                    os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another writer got there first
                os.link(temporary, final)  # fails if the name exists: never replaces a file
        finally:
            temporary.unlink(missing_ok=True)
        if self.fsync:
            _fsync_dir(directory)

    def _table(self, rows: Batch, ids: np.ndarray) -> Any:
        pa = self._pa
        arrays: dict[str, Any] = {"id": pa.array(ids.tolist(), type=pa.string())}
        for name in rows.columns:
            if name in (STORE_SEQ, "id"):
                continue
            column = rows[name]
            if name == "timestamp":
                arrays[name] = pa.array(column, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
            elif column.dtype.kind == "f":
                arrays[name] = pa.array(column, from_pandas=True)  # NaN → null
            elif column.dtype.kind == "O":
                arrays[name] = _object_array(pa, column)
            else:
                arrays[name] = pa.array(column)
        return pa.table(arrays)

    def close(self) -> None:
        pass


def _object_array(pa: Any, column: np.ndarray) -> Any:
    """Text stays text; anything else (lists, mappings, mixed kinds) is written as JSON text, so a
    column has the same type in every file of the archive."""
    values = [None if isinstance(v, float) and v != v else v for v in column.tolist()]
    return pa.array(
        [v if v is None or isinstance(v, str) else json.dumps(v, default=str) for v in values],
        type=pa.string(),
    )


def _city_folder(city: Any, limit: int) -> tuple[str, str | None]:
    """The partition folder value for ``city``, or why it cannot have one."""
    try:
        segment = _segment(city)
    except UnicodeEncodeError as exc:
        return "", f"city {_clip(city)}: {_reason(exc)}"
    size = len(f"city={segment}".encode())
    if size > limit:
        return "", (
            f"city {_clip(city)} is too long for a partition folder name: {size} bytes once "
            f"percent-encoded, the file system takes at most {limit}"
        )
    return segment, None


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}...' ({len(str(value))} characters)"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return f"text holds {exc.object[exc.start : exc.end]!r}, which UTF-8 cannot encode"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@hookimpl
def register_sinks(register: Register) -> None:
    register("parquet", ParquetSink, checkpoint_keys=("path",))
