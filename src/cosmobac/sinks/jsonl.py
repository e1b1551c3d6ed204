"""Built-in sink ``jsonl``: one JSON document per line, exactly what a Cosmos sink would receive.

Each ``write`` appends and fsyncs before returning, so a returned write is durable. Delivery is
at-least-once: after a crash a batch may be written again; documents carry deterministic ids, so a
reader can keep the last line per ``id``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs

from ..batch import Batch
from ..documents import to_documents
from ..hookspecs import Register, hookimpl
from ..values import flag


def _path(value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise TypeError(f"path must be a file path, got {value!r}")
    return Path(value)


@attrs.define(eq=False)
class JsonlSink:
    """Append documents as JSON lines to ``path`` (created with its folder if missing).

    Keys: ``path`` (required), ``fsync`` (default true: each write is on disk before it is
    acknowledged).
    """

    path: Path = attrs.field(converter=_path)
    fsync: bool = attrs.field(default=True, converter=lambda v: flag("fsync", v))
    _file: object = attrs.field(init=False, default=None, repr=False)

    def write(self, batch: Batch) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        lines = "".join(
            json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
            for doc in to_documents(batch)
        )
        f = self._file
        f.write(lines)  # type: ignore[attr-defined]
        f.flush()  # type: ignore[attr-defined]
        if self.fsync:
            os.fsync(f.fileno())  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None


@hookimpl
def register_sinks(register: Register) -> None:
    register("jsonl", JsonlSink)
