"""An edge node as it really runs: a collect process and a forward process sharing one SQLite file,
the forwarder killed with SIGKILL at several points and restarted.

Shown: every stored row reaches the sink at least once, and after every kill the checkpoint has
not passed a row the sink does not hold.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.needs_plugins  # the sqlite store

pytestmark = pytest.mark.slow


def config(tmp_path, *, speed: str) -> str:
    path = tmp_path / "edge.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 3
            sensors_per_city = 4
            seed = 11
            rate_hz = 1.0
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "jsonl"
            path = "{tmp_path / "out.jsonl"}"
            [run]
            duration = "40m"
            speed = {speed}
            step = "1m"
            batch_size = 500
            interval = "50ms"
            """
        )
    )
    return str(path)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def delivered_ids(tmp_path) -> list[str]:
    path = tmp_path / "out.jsonl"
    if not path.exists():
        return []
    ids = []
    for line in path.read_text().splitlines():
        # a line torn by SIGKILL mid-write is skipped: its rows were not acknowledged
        with contextlib.suppress(json.JSONDecodeError):
            ids.append(json.loads(line)["id"])
    return ids


def stored(tmp_path) -> tuple[dict[int, str], int]:
    """seq → document id for every stored row, and the jsonl consumer's checkpoint."""
    from cosmobac.documents import document_id

    con = sqlite3.connect(tmp_path / "edge.db")
    try:
        rows = con.execute("SELECT seq, sensor_id, timestamp FROM readings").fetchall()
    finally:
        con.close()
    from cosmobac.config import default_consumer
    from cosmobac.plugins import get_plugins

    # the file's jsonl sink has no name: its consumer is jsonl-<hash of its path>
    consumer = default_consumer("jsonl", {"path": str(tmp_path / "out.jsonl")}, ("path",))
    store = get_plugins().create("store", "sqlite", path=str(tmp_path / "edge.db"))
    try:
        assert consumer in store.stats().pending or not (tmp_path / "out.jsonl").exists()
        checkpoint = store.checkpoint(consumer)
    finally:
        store.close()
    return {seq: document_id(s, t) for seq, s, t in rows}, checkpoint


def wait_for_store(tmp_path, timeout: float = 60.0) -> None:
    """Until the collector has created the store and stored a first batch (process start-up
    takes a while on a busy machine)."""
    deadline = time.monotonic() + timeout
    path = tmp_path / "edge.db"
    while time.monotonic() < deadline:
        if path.exists():
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if con.execute("SELECT 1 FROM readings LIMIT 1").fetchone():
                    return
            except sqlite3.OperationalError:
                pass  # schema not created yet
            finally:
                con.close()
        time.sleep(0.05)
    raise AssertionError(f"the collector did not store anything within {timeout} s")


def test_collector_and_killed_forwarder_lose_nothing(tmp_path):
    rng = random.Random(5)
    cfg = config(tmp_path, speed="240.0")  # 40 min of sensor time in about 10 s
    collector = start("collect", cfg)
    wait_for_store(tmp_path)
    kills = 0
    try:
        while collector.poll() is None or kills < 6:
            forwarder = start("forward", cfg, "--follow")
            time.sleep(rng.uniform(0.3, 1.2))
            forwarder.send_signal(signal.SIGKILL)
            forwarder.wait()
            kills += 1
            rows, checkpoint = stored(tmp_path)
            have = set(delivered_ids(tmp_path))
            missing = [seq for seq, doc in rows.items() if seq <= checkpoint and doc not in have]
            assert not missing, f"checkpoint {checkpoint} passed rows the sink never got"
            if kills > 40:
                break
    finally:
        if collector.poll() is None:
            collector.kill()
    assert collector.wait() == 0, collector.stderr.read() if collector.stderr else ""
    final = start("forward", cfg)
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""

    rows, checkpoint = stored(tmp_path)
    ids = delivered_ids(tmp_path)
    assert len(rows) == 3 * 4 * 40 * 60
    assert set(rows.values()) <= set(ids)  # every stored row reached the sink
    assert checkpoint == max(rows)
    assert kills >= 6


def test_sigterm_finishes_the_batch_and_loses_nothing(tmp_path):
    cfg = config(tmp_path, speed='"max"')
    assert start("collect", cfg).wait(timeout=120) == 0
    forwarder = start("forward", cfg, "--follow")
    deadline = time.monotonic() + 60  # a loaded machine may take long to start it
    while not delivered_ids(tmp_path):  # delivering: its signal handlers are in place
        assert forwarder.poll() is None, forwarder.communicate()
        assert time.monotonic() < deadline, "the forwarder delivered nothing in 60 s"
        time.sleep(0.05)
    forwarder.send_signal(signal.SIGTERM)
    assert forwarder.wait(timeout=60) == 0
    rows, checkpoint = stored(tmp_path)
    ids = delivered_ids(tmp_path)
    assert len(ids) == len(set(ids))  # a graceful stop writes nothing twice
    assert {rows[s] for s in rows if s <= checkpoint} <= set(ids)
    assert checkpoint > 0
