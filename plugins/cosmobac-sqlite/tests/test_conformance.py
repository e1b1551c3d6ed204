"""The SQLite store passes cosmobac's conformance kit (``cosmobac.testing.check_store``), every
capability it declares included, on disk and in memory."""

from __future__ import annotations

import itertools

import pytest

from cosmobac.interfaces import (
    ConsumerAdminStore,
    DeadLetterStore,
    FileStore,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    ScannableStore,
    StatefulStore,
)
from cosmobac.testing import check_store
from cosmobac_sqlite import SQLiteStore

CAPABILITIES = (
    ReadAheadStore,
    StatefulStore,
    ResumableStore,
    PrunableStore,
    ScannableStore,
    DeadLetterStore,
    ConsumerAdminStore,
    FileStore,
)


def test_the_sqlite_store_declares_every_capability(tmp_path):
    with SQLiteStore(tmp_path / "store.db") as store:
        missing = [p.__name__ for p in CAPABILITIES if not isinstance(store, p)]
    assert missing == []


@pytest.mark.parametrize("seed", [0, 1])
def test_a_store_file_with_retention_zero_passes_every_check(tmp_path, seed):
    files = (tmp_path / f"store-{i}.db" for i in itertools.count())
    ran = check_store(lambda: SQLiteStore(next(files), retention=0), seed=seed)
    unchecked = [p.__name__ for p in CAPABILITIES if not any(p.__name__ in n for n in ran)]
    assert unchecked == []  # each declared capability was checked


def test_a_store_without_retention_and_in_memory_passes_too():
    assert check_store(lambda: SQLiteStore(":memory:"))
