"""cosmobac-sqlite: the durable SQLite outbox store, registered as the store plugin ``sqlite``.

Use it through cosmobac's plugin registry (``[store] plugin = "sqlite"``, ``path = "outbox.db"``) or
directly::

    from cosmobac_sqlite import SQLiteStore

    with SQLiteStore("outbox.db", retention="7d") as store:
        store.append(batch)
        rows = store.read("cosmos", limit=5000)
        ...
        store.ack("cosmos", rows)
"""

from __future__ import annotations

from cosmobac.hookspecs import Register, hookimpl

from .store import DeadLetter, SQLiteStore

__all__ = ["DeadLetter", "SQLiteStore", "register_stores"]


@hookimpl
def register_stores(register: Register) -> None:
    register("sqlite", SQLiteStore)
