"""A cosmobac sink that appends documents to a CSV file."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import attrs

from cosmobac import Batch, hookimpl, to_documents

DEFAULT_COLUMNS = ("id", "timestamp", "sensor_id", "city", "temperature", "humidity",
                   "pressure", "vibration", "voltage")  # fmt: skip


def _path(value: Any) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise TypeError(f"path must be a file path, got {value!r}")
    return Path(value)


def _columns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"columns must be a list of field names, got {value!r}")
    return tuple(value)


@attrs.define(eq=False)
class CsvSink:
    """Append documents to ``path`` as CSV rows. Keys: ``path`` (required), ``columns`` (which
    document fields to write, in order; default: id, timestamp, sensor_id, city and the metrics)."""

    path: Path = attrs.field(converter=_path)
    columns: tuple[str, ...] = attrs.field(default=DEFAULT_COLUMNS, converter=_columns)

    def write(self, batch: Batch) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerows(to_documents(batch))  # missing values are empty cells, never 0.0
            f.flush()
            os.fsync(f.fileno())  # durable before cosmobac acknowledges the rows

    def close(self) -> None:
        pass


@hookimpl
def register_sinks(register):
    register("csv", CsvSink)
