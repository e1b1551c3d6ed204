"""Opening a store file: this process's connection, its pragmas, WAL mode, schema creation and the
format check, and the transactions every store operation runs in.

Guarantees:

* every process (and every forked child) uses its own connection; a connection inherited across
  ``fork()`` is never used nor closed by the child;
* the file is in WAL mode (a file on which WAL cannot be enabled is refused) with the given
  ``busy_timeout`` and ``synchronous``;
* a new file gets the schema and its ``meta`` rows in one transaction, even when several processes
  open it at once; a file that is not a cosmobac store, or has a newer schema, is refused with a
  :class:`~cosmobac.errors.StoreError` naming the file;
* SQLite errors inside :meth:`StoreConnection.transaction` become ``StoreError`` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cosmobac.errors import StoreError

from ._schema import FORMAT, SCHEMA, SCHEMA_VERSION

__all__ = ["MEMORY", "SYNCHRONOUS", "StoreConnection", "wall_clock_ms"]

SYNCHRONOUS: Final = ("normal", "full")
MEMORY: Final = ":memory:"

# Connections inherited across fork() are never used nor closed by the child (closing could touch
# the parent's locks or WAL); they are parked here so garbage collection does not close them either.
_ABANDONED: list[sqlite3.Connection] = []


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class StoreConnection:
    """The connection of this process to the store file at ``path`` (opened at once).

    ``busy_timeout`` is in seconds; ``synchronous`` one of :data:`SYNCHRONOUS`. ``on_reopen`` is
    called when a forked child opens its own connection (the store forgets what it cached).
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float,
        synchronous: str,
        on_reopen: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self._on_reopen = on_reopen
        self._closed = False
        self._conn: sqlite3.Connection | None = self._open()

    def fail(self, message: str) -> StoreError:
        return StoreError(f"store {self.path}: {message}")

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path != MEMORY:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self.fail(f"cannot create its directory: {exc}") from exc
            if Path(path).is_dir():
                raise self.fail("is a directory; give the path of a database file")
        try:
            conn = sqlite3.connect(
                path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self.fail(f"cannot open it ({exc}); is the path writable?") from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise self.fail(f"is not a cosmobac store: {exc}") from exc
        if tables:
            self._check_format(conn, tables)
        try:
            if self.path != MEMORY:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self.fail(
                        f"cannot use WAL mode (journal mode stays {mode!r}); put the store on a "
                        "local file system"
                    )
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            if "meta" not in tables:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    created = conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE name = 'meta'"
                    ).fetchone()
                    if created is None:  # not created by another process meanwhile
                        for statement in SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.executemany(
                            "INSERT INTO meta (key, value) VALUES (?, ?)",
                            [
                                ("format", FORMAT),
                                ("schema_version", str(SCHEMA_VERSION)),
                                ("created_at", str(wall_clock_ms())),
                            ],
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self.fail(f"cannot prepare it ({exc}); is the path writable?") from exc

    def _check_format(self, conn: sqlite3.Connection, tables: set[str]) -> None:
        if "meta" not in tables:
            hint = (
                " (it looks like an original edge database: import it with `cosmobac import`)"
                if "sensor_readings" in tables
                else ""
            )
            raise self.fail(
                f"is not a cosmobac store: it has tables {sorted(tables)} and no 'meta' table{hint}"
            )
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:
            raise self.fail(
                f"is not a cosmobac store: its 'meta' table is unreadable ({exc})"
            ) from exc
        if meta.get("format") != FORMAT:
            raise self.fail(
                f"is not a cosmobac store: its meta format is {meta.get('format')!r}, "
                f"not {FORMAT!r}"
            )
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise self.fail(
                f"has an unreadable schema version {meta.get('schema_version')!r}"
            ) from None
        if version > SCHEMA_VERSION:
            raise self.fail(
                f"has schema version {version}, newer than this cosmobac-sqlite reads "
                f"({SCHEMA_VERSION}); upgrade cosmobac-sqlite"
            )
        if version < 1:
            raise self.fail(f"has an invalid schema version {version}")

    def _connection(self) -> sqlite3.Connection:
        if self._closed or self._conn is None:
            raise self.fail("is closed")
        if self.pid != os.getpid():  # forked: never use the parent's connection
            if self.path == MEMORY:
                raise self.fail("an in-memory store cannot be used from a forked process")
            _ABANDONED.append(self._conn)
            self._conn = None
            self._on_reopen()
            self.pid = os.getpid()
            self._conn = self._open()
        return self._conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction under the store's lock: ``BEGIN IMMEDIATE`` for writes (the write lock
        is taken at once, so no deadlock on upgrade), a deferred ``BEGIN`` for a consistent read
        snapshot. SQLite errors become :class:`StoreError` naming the file."""
        with self.lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise self.fail(
                        f"{exc} (waited {self.busy_timeout:g} s for another process; raise "
                        "'busy_timeout' or find the process holding a long transaction)"
                    ) from exc
                raise self.fail(str(exc)) from exc
            except sqlite3.Error as exc:
                raise self.fail(str(exc)) from exc

    def close(self) -> None:
        """Close the connection (idempotent). A forked child leaves its parent's connection alone."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                if self.pid == os.getpid():
                    conn.close()
                else:
                    _ABANDONED.append(conn)
