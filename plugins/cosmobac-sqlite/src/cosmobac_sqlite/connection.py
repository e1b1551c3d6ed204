"""Opening a store file: this process's connection, its pragmas, WAL mode, schema creation and the
format check, and the transactions every store operation runs in.

Guarantees:

* every process (and every forked child) uses its own connection; a connection inherited across
  ``fork()`` is never used nor closed by the child;
* the file is in WAL mode (a file on which WAL cannot be enabled is refused) with the given
  ``busy_timeout`` and ``synchronous``;
* a missing file is created only when ``create`` is true, and atomically: the schema and its
  ``meta`` rows are written to a temporary file in the same directory, which is then linked into
  place, so the path never names a half-made store, even when several processes create it at once;
  with ``create`` false a missing file is a :class:`~cosmobac.errors.StoreError`;
* what is at the path is never initialised: a 0-byte file (e.g. a store truncated by accident), an
  SQLite file without tables, a file that is not a cosmobac store, or one with a newer schema is
  refused with a ``StoreError`` naming the file, and left as it is; so is creating a store where a
  ``-wal`` file of a vanished store is left (SQLite would read it into the new store);
* the file stays the one that was opened: every transaction first compares the path's device and
  inode with those of the file opened (one ``stat``), and a file deleted, moved away or replaced
  under a running process stops every later operation with a ``StoreError`` saying what happened,
  instead of writing on into a file no one can reach;
* an existing file is brought up to this code when opened (:mod:`cosmobac_sqlite.migrate`), in
  one write transaction, only when needed;
* SQLite errors inside :meth:`StoreConnection.transaction` become ``StoreError`` naming the file.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from cosmobac.errors import StoreError, StoreMissingError

from ._schema import FORMAT, SCHEMA, SCHEMA_VERSION, statements, view_statements
from .migrate import migrate

__all__ = ["MEMORY", "SYNCHRONOUS", "StoreConnection", "wall_clock_ms"]

SYNCHRONOUS: Final = ("normal", "full")
MEMORY: Final = ":memory:"

# Connections inherited across fork() are never used nor closed by the child (closing could touch
# the parent's locks or WAL); they are parked here so garbage collection does not close them either.
_ABANDONED: list[sqlite3.Connection] = []


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _create_schema(conn: sqlite3.Connection) -> None:
    """The schema and its ``meta`` rows, in one transaction, on a connection to a new database."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in [*statements(SCHEMA), *view_statements([])]:
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


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class StoreConnection:
    """The connection of this process to the store file at ``path`` (opened at once).

    ``busy_timeout`` is in seconds; ``synchronous`` one of :data:`SYNCHRONOUS`. ``create``: make
    the store when the file does not exist (else that is a :class:`StoreError`). ``on_reopen`` is
    called when a forked child opens its own connection (the store forgets what it cached).
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float,
        synchronous: str,
        create: bool = True,
        on_reopen: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.create = create
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self._on_reopen = on_reopen
        self._closed = False
        # the file as opened: checked against the path at every transaction (a later chdir
        # must not change which file that is)
        self._abspath = path if path == MEMORY else os.path.abspath(path)
        self._identity: tuple[int, int] | None = None
        self._lost: str | None = None
        self._conn: sqlite3.Connection | None = self._open()

    def fail(self, message: str) -> StoreError:
        return StoreError(f"store {self.path}: {message}")

    # -- opening ----------------------------------------------------------------------------------
    def _open(self, expected: tuple[int, int] | None = None) -> sqlite3.Connection:
        """A prepared connection; with ``expected`` (a forked child reopening), only to that file."""
        if self.path == MEMORY:
            conn = sqlite3.connect(
                MEMORY, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(conn, new=True)
            except BaseException:
                conn.close()
                raise
            return conn
        path = Path(self._abspath)
        if path.is_dir():
            raise self.fail("is a directory; give the path of a database file")
        if not os.path.lexists(path) and expected is None:
            if not self.create:
                raise StoreMissingError(
                    f"store {self.path}: does not exist; check the path, or create the store "
                    "first by collecting or importing into it (cosmobac collect, run or import)"
                )
            self._create_file(path)
        before = self._stat(expected)
        if before.st_size == 0:
            raise self.fail(
                "is an empty (0-byte) file, not a cosmobac store; it is not initialised, since a "
                "store truncated by accident would be silently replaced: restore it from a "
                "backup, or delete the file to start a new store"
            )
        try:  # mode=rw: SQLite never creates the file; only _create_file does
            conn = sqlite3.connect(
                path.as_uri() + "?mode=rw",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self.fail(f"cannot open it ({exc}); is the path readable and writable?") from exc
        try:
            self._prepare(conn, new=False)
            after = self._stat(None)
        except BaseException:
            conn.close()
            raise
        if _identity(after) != _identity(before):
            conn.close()
            raise self.fail("was replaced by another file while it was being opened; try again")
        self._identity = _identity(before)
        return conn

    def _stat(self, expected: tuple[int, int] | None) -> os.stat_result:
        """The file's status; with ``expected``, a lost-file error if it is another file now."""
        try:
            st = os.stat(self._abspath)
        except FileNotFoundError:
            if expected is None:
                raise self.fail("disappeared while it was being opened; try again") from None
            raise self._lose("was deleted or moved away while in use") from None
        except OSError as exc:
            raise self.fail(f"cannot check the file ({exc})") from exc
        if expected is not None and _identity(st) != expected:
            raise self._lose("was replaced by another file while in use")
        return st

    def _lose(self, what: str) -> StoreError:
        """The error for a file that is no longer the one opened; every later use repeats it."""
        self._lost = (
            f"the file {what}; stopped so that nothing more is written to a file no one can reach "
            "(rows stored before are in the moved file, if it was moved). Put the store back, or "
            "start a new one, and restart"
        )
        return self.fail(self._lost)

    def _create_file(self, path: Path) -> None:
        """A new store at ``path``, made in a temporary file and linked into place (atomic: the
        path never names a half-made store). Another process creating it first wins."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.fail(f"cannot create its directory: {exc}") from exc
        wal = Path(f"{path}-wal")
        with suppress(OSError):
            if wal.stat().st_size > 0:
                raise self.fail(
                    f"does not exist, but its write-ahead log {wal.name} is still there (a store "
                    "deleted or moved away while in use, or by a process that crashed); SQLite "
                    f"would read that log into a new store. Stop the processes using the old "
                    f"store, then move {wal.name} (and {path.name}-shm) away"
                )
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        try:
            conn = sqlite3.connect(temporary, isolation_level=None)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self.fail(
                        f"cannot use WAL mode (journal mode stays {mode!r}); put the store on a "
                        "local file system"
                    )
                _create_schema(conn)
            finally:
                conn.close()
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process created it meanwhile: that store is used
            except OSError:  # a file system without hard links
                if not os.path.lexists(path):
                    os.rename(temporary, path)
        except sqlite3.Error as exc:
            raise self.fail(f"cannot create it ({exc}); is the directory writable?") from exc
        except OSError as exc:
            raise self.fail(f"cannot create it ({exc}); is the directory writable?") from exc
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with suppress(OSError):
                    os.unlink(f"{temporary}{suffix}")

    def _prepare(self, conn: sqlite3.Connection, *, new: bool) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise self.fail(f"is not a cosmobac store: {exc}") from exc
        if tables:
            self._check_format(conn, tables)
        elif not new:
            raise self.fail(
                "is an SQLite database without tables, not a cosmobac store; delete it to start a "
                "new store at this path, or give another path"
            )
        try:
            if self.path != MEMORY:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self.fail(
                        f"cannot use WAL mode (journal mode stays {mode!r}); put the store on a "
                        "local file system"
                    )
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            if new:
                _create_schema(conn)
            else:
                migrate(conn, tables, wall_clock_ms())
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
            if self._lost is not None:
                raise self.fail(self._lost)
            self._conn = self._open(expected=self._identity)
        return self._conn

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Stop (a :class:`StoreError`) when the path no longer names the file that was opened:
        one ``stat``, at the start of every transaction.

        On the first such stop, the write-ahead log is checkpointed into the file that was opened
        (through the open connection, so into a moved file wherever it now is) and truncated:
        SQLite itself skips that on close once the file has moved, which would leave the last
        transactions only in a ``-wal`` file named after the old path."""
        if self._lost is not None:
            raise self.fail(self._lost)
        if self._identity is None:
            return
        try:
            self._stat(self._identity)
        except StoreError:
            if self._lost is None:
                raise
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error:
                busy = 1
            if busy:
                self._lost += (
                    f"; its last transactions may still be only in {self._abspath}-wal "
                    "(another process was reading): keep that file until every process using "
                    "this store has stopped"
                )
            raise self.fail(self._lost) from None

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction under the store's lock: ``BEGIN IMMEDIATE`` for writes (the write lock
        is taken at once, so no deadlock on upgrade), a deferred ``BEGIN`` for a consistent read
        snapshot. SQLite errors become :class:`StoreError` naming the file."""
        with self.lock:
            conn = self._connection()
            self._check_file(conn)
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
