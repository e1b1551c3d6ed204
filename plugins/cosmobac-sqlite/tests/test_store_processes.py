"""The SQLite store shared by real processes: one writer and two readers (two consumers) on one
file; a reader killed with SIGKILL mid-loop and restarted; stores handed to forked and spawned
children."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac_sqlite import SQLiteStore

pytestmark = pytest.mark.slow

PROCS = Path(__file__).parent / "procs"
TIMEOUT = 60


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PROCS / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    return out


def expected_keys(batches: int, rows: int) -> set[tuple[str, int]]:
    return {(f"s-{k % 5}", b * rows + k) for b in range(batches) for k in range(rows)}


def delivered(out: Path) -> list[tuple[int, str, int]]:
    if not out.exists():
        return []
    rows = []
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:  # a line torn by SIGKILL mid-write is not a delivery
            rows.append((int(parts[0]), parts[1], int(parts[2])))
    return rows


def test_one_writer_two_readers_deliver_every_row(tmp_path):
    db, done = tmp_path / "edge.db", tmp_path / "done"
    batches, rows = 40, 250
    # all three start together: the file is created by whichever opens it first
    readers = {
        consumer: spawn("store_reader.py", db, consumer, tmp_path / f"{consumer}.out", done, limit)
        for consumer, limit in (("cosmos", 300), ("archive", 1000))
    }
    writer = spawn("store_writer.py", db, batches, rows, done, 0.005)
    finish(writer)
    outputs = {consumer: finish(proc) for consumer, proc in readers.items()}
    total = batches * rows
    want = expected_keys(batches, rows)
    for consumer in readers:
        got = delivered(tmp_path / f"{consumer}.out")
        assert {(s, t) for _, s, t in got} == want, consumer  # every row, at least once
        assert len(got) == total  # and, without crashes, exactly once
        assert outputs[consumer].strip() == f"done {total}"
    with SQLiteStore(db) as store:
        stats = store.stats()
        assert stats.rows == total
        assert stats.pending == {"archive": 0, "cosmos": 0}
        tail = store.read("late", total)
        assert len(tail) == total
        assert np.isnan(tail["temperature"][0]) and tail["temperature"][1] == 0.5
        assert np.isnan(tail["status_code"][0])  # extra column added mid-run
        assert tail["status_code"][-1] == (rows - 1) % 3


def test_reader_killed_mid_loop_continues_without_losing_rows(tmp_path):
    db, done, out = tmp_path / "edge.db", tmp_path / "done", tmp_path / "k.out"
    batches, rows = 30, 200
    total = batches * rows
    # The writer marks its own end; the readers only stop once the test creates ``done`` after
    # the kills, so a fast reader cannot finish before it is killed (on any machine load).
    writer = spawn("store_writer.py", db, batches, rows, tmp_path / "writer-done", 0.01)
    kills = 0
    for _ in range(3):
        start_seqs = len({seq for seq, _, _ in delivered(out)})
        if start_seqs + 600 > total:
            break  # too little left to interrupt meaningfully
        reader = spawn("store_reader.py", db, "k", out, done, 150, 0.01)
        deadline = time.monotonic() + TIMEOUT
        while len({seq for seq, _, _ in delivered(out)}) < start_seqs + 600:
            assert reader.poll() is None, "reader stopped before it was killed"
            assert time.monotonic() < deadline, "reader made no progress"
            time.sleep(0.01)
        reader.send_signal(signal.SIGKILL)
        reader.wait(timeout=TIMEOUT)
        assert reader.returncode == -signal.SIGKILL
        kills += 1
        # the checkpoint never passes a row the reader has not written out
        got = {seq for seq, _, _ in delivered(out)}
        with SQLiteStore(db) as store:
            checkpoint = store.checkpoint("k")
        assert all(seq in got for seq in range(1, checkpoint + 1))
    assert kills >= 1
    finish(writer)
    done.write_text("done\n")
    final = spawn("store_reader.py", db, "k", out, done, 150)
    assert finish(final).strip() == f"done {total}"
    got = delivered(out)
    assert {(s, t) for _, s, t in got} == expected_keys(batches, rows)
    with SQLiteStore(db) as store:
        assert store.stats().pending == {"k": 0}


def _append_in_child(store: SQLiteStore, start: int) -> None:
    store.append(
        Batch.from_columns(timestamp=start + np.arange(50), sensor_id="child", temperature=1.0)
    )
    batch = store.read("child", 100)
    store.ack("child", batch)
    store.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_store_handed_to_a_child_process_opens_its_own_connection(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    context = multiprocessing.get_context(method)
    with SQLiteStore(tmp_path / "shared.db", retention="1d") as store:
        store.append(Batch.from_columns(timestamp=np.arange(10), sensor_id="parent"))
        assert len(store.read("parent", 5)) == 5
        child = context.Process(target=_append_in_child, args=(store, 1000))
        child.start()
        child.join(TIMEOUT)
        assert child.exitcode == 0
        # the parent's connection still works after the child used (and closed) its own
        assert store.stats().rows == 60
        assert store.checkpoint("child") == 60
        store.ack("parent", store.read("parent", 100))
        assert store.checkpoint("parent") == 60
        assert os.getpid() == store._db.pid
