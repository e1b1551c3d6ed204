"""Built-in sink ``jsonl``: one JSON document per line, exactly what a Cosmos sink would receive.

Guarantees:

* a returned ``write`` is durable: its lines are written and fsynced before it returns
  (``fsync = false`` skips the fsync, for tests and throwaway files);
* a batch is appended whole or not at all: when writing fails part-way (a full disk, a file-size
  limit), what was appended of it is cut off again before the error is raised, so the retried batch
  is appended cleanly. A tail torn by a crash (a last line without its newline) is cut back to the
  last complete line when the file is next opened, with a warning; it is never merged into a line.
  Its rows were not acknowledged, so they are written again;
* a row whose document cannot be a line of UTF-8 JSON (a value JSON cannot carry, text with a lone
  surrogate) is rejected with the reason (it goes to the dead letters) and the others are written;
  a full disk is an outage (retried), an unwritable path stops the sink (see
  :mod:`cosmobac.sinks._faults`).

Delivery is at-least-once: after a crash a batch may be written again; documents carry
deterministic ids, so a reader can keep the last line per ``id``.

It can be read back (:class:`~cosmobac.interfaces.ReadableSink`, for ``cosmobac verify``): ``spans``
and ``fetch`` read the whole file once each, keeping the last line per ``id``; a torn last line is
skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..batch import Batch, to_epoch_ms
from ..documents import to_documents
from ..hookspecs import Register, hookimpl
from ..interfaces import SensorSpan, WriteResult
from ..values import flag
from ._faults import json_lines, os_failure

log = logging.getLogger("cosmobac.sinks.jsonl")

_TAIL_BLOCK = 64 * 1024


def _path(value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise TypeError(f"path must be a file path, got {value!r}")
    return Path(value)


def cut_torn_tail(fd: int, path: Path) -> int:
    """Cut a file open as ``fd`` back to its last complete line (ending in ``\\n``); return how
    many bytes were cut."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep, end = 0, size
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    os.ftruncate(fd, keep)
    os.fsync(fd)
    log.warning(
        "%s: cut %d bytes of an incomplete last line (a write cut short by a crash or a full "
        "disk); its rows were not acknowledged and are written again",
        path,
        size - keep,
    )
    return size - keep


@attrs.define(eq=False)
class JsonlSink:
    """Append documents as JSON lines to ``path`` (created with its folder if missing).

    Keys: ``path`` (required), ``fsync`` (default true: each write is on disk before it is
    acknowledged).
    """

    path: Path = attrs.field(converter=_path)
    fsync: bool = attrs.field(default=True, converter=lambda v: flag("fsync", v))
    _fd: int | None = attrs.field(init=False, default=None, repr=False)

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise os_failure("jsonl", self.path, exc) from None
            try:
                cut_torn_tail(fd, self.path)
            except OSError as exc:
                os.close(fd)
                raise os_failure("jsonl", self.path, exc) from None
            self._fd = fd
        return self._fd

    def write(self, batch: Batch) -> WriteResult | None:
        rejected: dict[int, str] = {}
        lines: list[bytes] = []
        for position, line in json_lines(to_documents(batch)):
            if isinstance(line, bytes):
                lines.append(line)
            else:
                rejected[position] = line
        if lines:
            self._append(b"".join(lines))
        return WriteResult(rejected=rejected) if rejected else None

    def _append(self, data: bytes) -> None:
        fd = self._open()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            self._cut_back(fd, start)
            raise os_failure("jsonl", self.path, exc) from None

    def _cut_back(self, fd: int, start: int) -> None:
        """Remove what a failed write appended; if even that fails, close the file so that the
        next open cuts the torn tail."""
        try:
            os.ftruncate(fd, start)
        except OSError:
            log.warning("%s: could not cut back a failed write; done on the next open", self.path)
            self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    # -- reading back (ReadableSink) ------------------------------------------------------------
    def _documents(self) -> Iterator[dict[str, Any]]:
        """Every complete line of the file as a document (none when the file does not exist)."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_failure("jsonl", self.path, exc) from None
        with f:
            for line in f:
                if not line.endswith(b"\n"):  # a torn last line: never acknowledged
                    break
                if line.strip():
                    doc = json.loads(line)
                    if isinstance(doc, dict):
                        yield doc

    def spans(
        self,
        *,
        start: int | None = None,
        end: int | None = None,
        sensors: Iterable[str] | None = None,
    ) -> Mapping[str, SensorSpan]:
        """Per sensor, the documents of the file with ``start <= timestamp < end`` (one per
        ``id``): how many, the first and last timestamp (epoch ms)."""
        wanted = None if sensors is None else set(sensors)
        seen: dict[str, tuple[str, int]] = {}  # id -> (sensor, timestamp)
        for doc in self._documents():
            sensor, stamp = doc.get("sensor_id"), doc.get("timestamp")
            if not isinstance(sensor, str) or stamp is None:
                continue
            if wanted is not None and sensor not in wanted:
                continue
            ms = to_epoch_ms(stamp)
            if (start is not None and ms < start) or (end is not None and ms >= end):
                continue
            seen[str(doc.get("id"))] = (sensor, ms)
        tally: dict[str, list[int]] = {}
        for sensor, ms in seen.values():
            found = tally.get(sensor)
            if found is None:
                tally[sensor] = [1, ms, ms]
            else:
                found[0] += 1
                found[1] = min(found[1], ms)
                found[2] = max(found[2], ms)
        return {k: SensorSpan(*v) for k, v in sorted(tally.items())}

    def fetch(self, ids: Iterable[str]) -> Mapping[str, Mapping[str, Any]]:
        """The documents of the file with these ids (the last line of each)."""
        wanted = set(ids)
        found: dict[str, Mapping[str, Any]] = {}
        for doc in self._documents():
            key = doc.get("id")
            if key in wanted:
                found[str(key)] = doc
        return found


@hookimpl
def register_sinks(register: Register) -> None:
    register("jsonl", JsonlSink, checkpoint_keys=("path",))
