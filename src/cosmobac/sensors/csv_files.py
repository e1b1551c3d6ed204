"""Built-in sensor ``csv``: readings from CSV files, read once or followed as they grow.

Guarantees:

* a line is returned once, and none is skipped: where each file stands (byte offset, line number,
  the file's device and inode) is the sensor's state (:meth:`CsvFiles.get_state`), which the
  collector stores in the same transaction as the rows, and restores when it starts again;
* a line is read only once complete (ended by a newline), except the last line of a file that is
  not followed; ``\\r\\n`` endings and a UTF-8 byte-order mark at the start of a file are accepted;
* a line that cannot be read (wrong number of fields, bad quoting, not UTF-8, a timestamp, number
  or sensor id that cannot be read) is set aside as an :class:`~cosmobac.interfaces.InputReject`
  with its ``file:line`` and a reason naming the column and value; an empty metric cell is a
  missing value (NaN), not a reject;
* following (``follow = true``), new files matching the patterns are picked up; a file renamed
  away (rotation) is read to its end, and the new file at its name is read from its start; a
  file that shrank below the position reached, or whose first bytes changed (truncated, rewritten),
  is read again from its start. The same rules apply across restarts, by device and inode and a
  digest of the first bytes read (up to 1 KiB);
* a ``read`` returns at most ``max_rows_per_read`` lines' worth of readings, so a huge file is
  stored in several transactions.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import stat as stat_module
import time
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any, Final

import attrs

from ..batch import Batch
from ..hookspecs import Register, hookimpl
from ..interfaces import InputReject
from ..values import duration, flag, integer
from .csv_mapping import ColumnMapping, Layout, Rows, empty_batch

__all__ = ["CsvFiles"]

log = logging.getLogger("cosmobac.sensors.csv")

_BOM: Final = b"\xef\xbb\xbf"
_CHUNK: Final = 1 << 20
_STATE_VERSION: Final = 1
_HEAD: Final = 1024
"""Bytes at the start of a file whose digest tells it from another file that reused its inode, or
the same file rewritten in place."""


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@attrs.define(eq=False)
class _File:
    """Where one file stands: its name, identity, the bytes and lines consumed, its header."""

    path: str
    dev: int
    ino: int
    offset: int = 0  # bytes consumed: where the next unread line begins
    line: int = 0  # lines consumed (the next line's number is line + 1)
    header: tuple[str, ...] | None = None
    fd: int | None = None
    done: bool = False  # read to its end (not followed), or drained after rotation
    draining: bool = False  # renamed away or deleted: read it to its end, then forget it
    layout: Layout | None = None
    header_error: str | None = None
    scanned_to: int = 0  # wait(): newlines counted in [offset, scanned_to)
    scanned_lines: int = 0
    head: str = ""  # digest of the first head_len bytes (those read, up to _HEAD)
    head_len: int = 0

    def restart(self) -> None:
        """Read again from the start (the file was truncated or replaced)."""
        self.offset = self.line = 0
        self.header = self.layout = self.header_error = None
        self.scanned_to = self.scanned_lines = self.head_len = 0
        self.head = ""

    def rewritten(self) -> bool:
        """Whether the bytes this file began with when read are no longer there (rewritten in
        place, e.g. truncated and written again past where it stood)."""
        if not self.head_len or self.fd is None:
            return False
        return _digest(os.pread(self.fd, self.head_len, 0)) != self.head

    def entry(self) -> dict[str, Any]:
        return {
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.offset,
            "line": self.line,
            "header": None if self.header is None else list(self.header),
            "head": self.head,
            "head_len": self.head_len,
        }


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class CsvFiles:
    """Readings from CSV files: one path, a glob, or a list of them, read once or followed.

    Keys (see docs/reference/config.md, section ``csv``):

    * ``path``: a file, a glob (``"data/*.csv"``, ``**`` for any depth) or a list of them;
      relative to the working directory;
    * ``timestamp_column`` (default ``"timestamp"``) and ``timestamp_format``: ``"iso"``
      (default; ISO-8601 text), an epoch unit ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``, or a
      strftime format (``"%d/%m/%Y %H:%M:%S"``); ``timezone`` (an IANA name) is the zone of
      zone-less text, required for a strftime format without ``%z``;
    * ``sensor_id_column`` (default ``"sensor_id"``) or ``sensor_id``, one id for every row;
    * ``columns``: CSV column → field name (``temp_c = "temperature"``). Unset: the columns named
      like a core field (``temperature``, ``city``, …) are read under their names. Columns not
      mapped are dropped, unless ``keep_unmapped = true`` keeps them as text under their
      snake_case name;
    * ``delimiter`` (default ``","``, one character; ``"tab"`` for a tab), ``header`` (default
      true: the first non-empty line names the columns) and ``column_names`` (the names, in file
      order: required without a header, and replacing it with one);
    * ``follow`` (default false): keep reading the files as they grow, and new files matching;
      ``poll_interval`` (default ``"0.5s"``): how often they are looked at;
    * ``max_rows_per_read`` (default 50000): lines one ``read`` takes at most.
    """

    def __init__(
        self,
        *,
        path: str | Sequence[str],
        timestamp_column: str = "timestamp",
        timestamp_format: str = "iso",
        timezone: str | None = None,
        sensor_id_column: str | None = None,
        sensor_id: str | None = None,
        columns: dict[str, str] | None = None,
        keep_unmapped: bool = False,
        delimiter: str = ",",
        header: bool = True,
        column_names: Sequence[str] | None = None,
        follow: bool = False,
        poll_interval: float | str = 0.5,
        max_rows_per_read: int = 50_000,
    ) -> None:
        self._patterns = _patterns(path)
        self._follow = flag("follow", follow)
        self._header = flag("header", header)
        self._delimiter = _delimiter(delimiter)
        self._poll = duration("poll_interval", poll_interval, positive=True, maximum=3600)
        self._cap = integer("max_rows_per_read", max_rows_per_read, minimum=1)
        self._mapping = ColumnMapping.from_keys(
            timestamp_column=timestamp_column,
            timestamp_format=timestamp_format,
            timezone=timezone,
            sensor_id_column=sensor_id_column,
            sensor_id=sensor_id,
            columns=columns,
            keep_unmapped=keep_unmapped,
            column_names=column_names,
            header=self._header,
        )
        self._files: dict[str, _File] = {}
        self._foreign: dict[str, Any] = {}  # state entries of files this sensor does not watch
        self._rejects: list[InputReject] = []
        self._cursor = 0
        self._closed = False
        found = self._matching()
        if not found and not self._follow:
            raise ValueError(
                f"path: no file matches {', '.join(repr(p) for p in self._patterns)} (relative "
                f"to {os.getcwd()!r}); fix path, or set follow = true to wait for files"
            )
        for name, stat in found.items():
            self._files[name] = _File(name, *_identity(stat))
            if self._follow:
                self._open(self._files[name])
        for entry in self._files.values():
            self._check_header(entry)

    # -- the files ----------------------------------------------------------------------------
    def _matching(self) -> dict[str, os.stat_result]:
        """The regular files the patterns match now, by absolute path, in path order."""
        found: dict[str, os.stat_result] = {}
        for pattern in self._patterns:
            magic = glob.escape(pattern) != pattern
            names = glob.glob(pattern, recursive=True) if magic else [pattern]
            for name in names:
                try:
                    stat = os.stat(name)
                except OSError:
                    continue
                if stat_module.S_ISREG(stat.st_mode):
                    found.setdefault(os.path.abspath(name), stat)
        return dict(sorted(found.items()))

    def _owns(self, name: str) -> bool:
        """Whether a state entry for ``name`` (absolute) belongs to the files this sensor reads."""
        return any(fnmatchcase(name, os.path.abspath(p)) for p in self._patterns)

    def _open(self, entry: _File) -> bool:
        """Opens ``entry`` if not open; False when it is gone. A file at the path that is not the
        one recorded (replaced while closed) is read from its start."""
        if entry.fd is not None:
            return True
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            return False
        dev, ino = _identity(os.fstat(fd))
        if (dev, ino) != (entry.dev, entry.ino):
            entry.dev, entry.ino = dev, ino
            entry.restart()
        entry.fd = fd
        return True

    def _close_file(self, entry: _File) -> None:
        if entry.fd is not None:
            os.close(entry.fd)
            entry.fd = None

    def _check_header(self, entry: _File) -> None:
        """At start, a file whose header is complete must have the mapped columns (else the keys
        are wrong): ``ValueError`` naming the file and key."""
        if not self._header:
            return
        try:
            with open(entry.path, "rb") as stream:
                data = stream.read(64 * 1024)
        except OSError:
            return
        data = data.removeprefix(_BOM)
        for raw in data.split(b"\n")[:-1]:
            text = raw.rstrip(b"\r")
            if not text.strip():
                continue
            try:
                names = next(csv.reader([text.decode("utf-8")], delimiter=self._delimiter))
                self._mapping.layout(names)
            except (ValueError, csv.Error, StopIteration) as exc:
                self.close()
                raise ValueError(f"{entry.path}: {exc}") from None
            return

    def _refresh(self) -> bool:
        """Following: picks up new files, and notices files renamed away, deleted, replaced or
        truncated. True when something changed that a read should act on."""
        found = self._matching()
        by_identity = {_identity(s): n for n, s in found.items()}
        stable: dict[str, _File] = {}
        lost: list[_File] = []
        draining = [e for e in self._files.values() if e.draining]
        for name, entry in self._files.items():
            if entry.draining:
                continue
            stat = found.get(name)
            if stat is not None and _identity(stat) == (entry.dev, entry.ino):
                stable[name] = entry
                if stat.st_size < entry.offset or entry.rewritten():  # truncated in place
                    entry.restart()
                    lost.append(entry)  # not lost: only to say something changed
            else:
                lost.append(entry)
        changed = bool(lost)
        for entry in lost:
            if entry.path in stable:
                continue
            moved = by_identity.get((entry.dev, entry.ino))
            if moved is not None and moved not in stable:  # renamed to a watched name
                entry.path = moved
                stable[moved] = entry
            else:  # renamed away or deleted: read what is left, then forget it
                entry.draining = True
                draining.append(entry)
        for name, stat in found.items():
            if name not in stable:
                stable[name] = entry = _File(name, *_identity(stat))
                changed = self._open(entry) or changed
        self._files = dict(sorted(stable.items()))
        for entry in draining:
            self._files[f"{entry.path}\0{entry.dev}:{entry.ino}"] = entry
        return changed

    # -- the Sensor protocols -----------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the files are read to their ends and the sensor does not follow them."""
        return not self._follow and all(e.done for e in self._files.values())

    def wait(self, timeout: float, rows: int) -> bool:
        """True as soon as at least ``rows`` complete lines (or ``max_rows_per_read``) wait to
        be read, or, not following, while any is left; False after ``timeout`` seconds. Following,
        the files are looked at every ``poll_interval``."""
        if not self._follow:
            return not self.finished
        deadline = time.monotonic() + max(0.0, timeout)
        want = max(1, min(int(rows), self._cap))
        while True:
            if self._refresh() or self._waiting(want) >= want:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self._poll, left))

    def _waiting(self, enough: int) -> int:
        """Complete unread lines (counting stops at ``enough``)."""
        total = 0
        for entry in self._files.values():
            if entry.draining:
                return enough
            if entry.fd is None:
                continue
            if entry.scanned_to < entry.offset:  # truncated and read again
                entry.scanned_to, entry.scanned_lines = entry.offset, 0
            while total + entry.scanned_lines < enough:
                data = os.pread(entry.fd, _CHUNK, entry.scanned_to)
                end = data.rfind(b"\n") + 1
                if not end:
                    break
                entry.scanned_lines += data.count(b"\n", 0, end)
                entry.scanned_to += end
            total += entry.scanned_lines
            if total >= enough:
                break
        return total

    def read(self, until: int) -> Batch:
        """The readings of the lines completed since the last read (at most
        ``max_rows_per_read`` lines), whatever their timestamps: ``until`` is not used."""
        if self._closed:
            raise RuntimeError("this csv sensor is closed")
        if self._follow:
            self._refresh()
        batches: list[Batch] = []
        budget = self._cap
        entries = list(self._files.values())
        start = self._cursor % len(entries) if entries and self._follow else 0
        for entry in entries[start:] + entries[:start]:
            if budget <= 0:
                break
            if entry.done:
                continue
            if not self._open(entry):
                if self._follow and not entry.draining:
                    continue
                log.warning("csv: %s could not be opened; it is left out", entry.path)
                entry.done = True  # gone before it was read: nothing to read
                continue
            used, batch = self._read_file(entry, budget)
            budget -= used
            if batch is not None and len(batch):
                batches.append(batch)
            if entry.done:
                self._close_file(entry)
        if self._follow:
            self._cursor += 1
            for key in [k for k, e in self._files.items() if e.draining and e.done]:
                del self._files[key]
        if not batches:
            return empty_batch(self._mapping)
        return Batch.concat([empty_batch(self._mapping), *batches])

    def _read_file(self, entry: _File, budget: int) -> tuple[int, Batch | None]:
        """Reads up to ``budget`` complete lines of ``entry``; returns how many lines it took
        and the readings."""
        assert entry.fd is not None
        if os.fstat(entry.fd).st_size < entry.offset or entry.rewritten():  # truncated
            entry.restart()
        rows: Rows | None = None
        used = 0
        size = _CHUNK
        while used < budget:
            data = os.pread(entry.fd, size, entry.offset)
            at_end = len(data) < size
            if not data:
                entry.done = not self._follow or entry.draining
                break
            if entry.offset == 0 and data.startswith(_BOM):
                data = data[len(_BOM) :]
                entry.offset += len(_BOM)
            complete = data.rfind(b"\n") + 1
            if not complete:
                if not at_end:
                    size *= 2  # one line longer than the chunk
                    continue
                if self._follow and not entry.draining:
                    break  # a partial last line: wait until it is complete
                complete = len(data)  # the file is complete: so is its last line
            position = 0
            while position < complete and used < budget:
                newline = data.find(b"\n", position, complete)
                stop = complete if newline < 0 else newline + 1
                raw = data[position:stop]
                position = stop
                entry.line += 1
                text = raw.rstrip(b"\n").removesuffix(b"\r")
                if not text.strip():
                    continue  # an empty line
                used += 1
                rows = self._take_line(entry, text, rows)
            entry.offset += position
            size = _CHUNK
            if at_end and position == len(data):
                entry.done = not self._follow or entry.draining
                break
        entry.scanned_to, entry.scanned_lines = entry.offset, 0  # wait() counts afresh
        if min(entry.offset, _HEAD) > entry.head_len:
            entry.head_len = min(entry.offset, _HEAD)
            entry.head = _digest(os.pread(entry.fd, entry.head_len, 0))
        return used, None if rows is None else rows.batch()

    def _take_line(self, entry: _File, raw: bytes, rows: Rows | None) -> Rows | None:
        """One non-empty line: the header, a reading added to ``rows``, or a reject."""
        try:
            text = raw.decode("utf-8")
            if b'"' in raw or b"\r" in raw:
                cells = next(csv.reader([text], delimiter=self._delimiter, strict=True))
            else:  # nothing quoted: what the csv module would make of it, faster
                cells = text.split(self._delimiter)
        except UnicodeDecodeError as exc:
            self._reject(
                f"{entry.path}:{entry.line}",
                f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                raw,
            )
            return rows
        except csv.Error as exc:
            self._reject(f"{entry.path}:{entry.line}", f"not a CSV line: {exc}", raw)
            return rows
        if entry.header is None:
            if self._header:
                entry.header = tuple(cells)
                self._layout(entry)
                return rows
            entry.header = ()
            self._layout(entry)
        if entry.header_error is not None:
            self._reject(f"{entry.path}:{entry.line}", entry.header_error, raw)
            return rows
        assert entry.layout is not None
        if rows is None:
            rows = Rows(self._mapping, entry.layout)
        reason = rows.add(cells)
        if reason is not None:
            self._reject(f"{entry.path}:{entry.line}", reason, raw)
        return rows

    def _layout(self, entry: _File, *, report: bool = True) -> None:
        assert entry.header is not None
        try:
            entry.layout = self._mapping.layout(entry.header)
        except ValueError as exc:
            entry.header_error = f"the file's header does not fit the keys: {exc}"
            if report:
                origin = f"{entry.path}:{entry.line}"
                self._reject(origin, entry.header_error, ",".join(entry.header))

    def _reject(self, origin: str, reason: str, raw: bytes | str) -> None:
        self._rejects.append(InputReject(origin=origin, reason=reason, raw=raw))

    def take_rejects(self) -> list[InputReject]:
        """The lines set aside since the last call, in the order they were read."""
        rejects, self._rejects = self._rejects, []
        return rejects

    # -- state ----------------------------------------------------------------------------------
    def get_state(self) -> str:
        """JSON: per file (absolute path), its device, inode, byte offset, line number and
        header; entries ``set_state`` gave for files this sensor does not watch, unchanged."""
        files = dict(self._foreign)
        for entry in self._files.values():
            if not entry.draining:
                files[entry.path] = entry.entry()
        return json.dumps({"version": _STATE_VERSION, "files": files}, sort_keys=True)

    def set_state(self, state: str) -> None:
        """Resumes where ``state`` (a :meth:`get_state` text) says each file stands. A file whose
        device and inode differ from the recorded ones (replaced while stopped) is read from its
        start, unless the recorded file is now at another watched name (renamed): it resumes
        there. A file now smaller than its offset (truncated) is read from its start."""
        try:
            data = json.loads(state)
            files = data["files"]
            if data.get("version") != _STATE_VERSION or not isinstance(files, dict):
                raise ValueError
        except (ValueError, TypeError, KeyError):
            raise ValueError(
                f"csv sensor state is not one this version wrote: {state[:200]!r}"
            ) from None
        self._foreign = {n: e for n, e in files.items() if not self._owns(n)}
        by_identity = {(e.dev, e.ino): e for e in self._files.values() if not e.draining}
        for name, saved in files.items():
            if name in self._foreign:
                continue
            try:
                identity = (int(saved["dev"]), int(saved["ino"]))
                entry = by_identity.get(identity)
                if entry is None:
                    continue  # the file is gone, or replaced: what is at its name starts fresh
                head, head_len = str(saved.get("head", "")), int(saved.get("head_len", 0))
                try:
                    size = os.stat(entry.path).st_size
                    with open(entry.path, "rb") as stream:
                        begins = _digest(stream.read(head_len)) if head_len else ""
                except OSError:
                    continue
                if size < int(saved["offset"]) or begins != head:
                    continue  # truncated or rewritten while stopped (or another file): from its start
                header = saved.get("header")
                entry.offset, entry.line = int(saved["offset"]), int(saved["line"])
                entry.done = not self._follow and entry.offset == size
                entry.header = None if header is None else tuple(str(h) for h in header)
                entry.layout = entry.header_error = None
                entry.head, entry.head_len = head, head_len
                if entry.header is not None:
                    self._layout(entry, report=False)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"csv sensor state: the entry of {name!r} is unreadable") from None

    def close(self) -> None:
        """Closes the files held open (following). Safe to call more than once."""
        self._closed = True
        for entry in self._files.values():
            self._close_file(entry)

    def __repr__(self) -> str:
        mode = "following" if self._follow else "reading"
        return f"CsvFiles({mode} {len(self._files)} files of {list(self._patterns)})"


def _patterns(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str | os.PathLike) else value
    if not isinstance(items, list | tuple) or not items:
        raise TypeError(f"path must be a file, a glob or a list of them, got {value!r}")
    out = []
    for item in items:
        if not isinstance(item, str | os.PathLike) or not str(item).strip():
            raise TypeError(f"path must be a file, a glob or a list of them, got {value!r}")
        out.append(os.path.expanduser(str(item).strip()))
    return tuple(out)


def _delimiter(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "tab":
        return "\t"
    if not isinstance(value, str) or len(value) != 1 or value in '\r\n"':
        raise ValueError(
            f'delimiter must be one character such as ",", ";", "|" or "tab", got {value!r}'
        )
    return value


@hookimpl
def register_sensors(register: Register) -> None:
    register("csv", CsvFiles)
