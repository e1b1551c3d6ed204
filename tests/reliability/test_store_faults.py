"""The store file disappears or is empty under real ``cosmobac`` processes (issue 19, item 4).

Shown:

* ``cosmobac collect`` and ``cosmobac forward --follow`` running on one store notice when its file
  is moved away or deleted, and both stop with one line naming the store and what happened (exit
  1, no traceback), instead of writing on into a file no one can reach; a moved file keeps every
  row stored before, and every row the sink received;
* the commands that only read a store (``status``, ``forward``, ``dead-letters``, ``evaluate``,
  ``report``) never create one: a missing store is an error and no file appears;
* a 0-byte store file is refused by every command, collect included, and left as it is.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cosmobac.documents import document_id
from cosmobac.testing import run_cosmobac

pytestmark = [pytest.mark.needs_plugins, pytest.mark.slow]

LOST = "the file was deleted or moved away while in use"


def write_config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 2
            sensors_per_city = 3
            seed = 3
            [store]
            plugin = "sqlite"
            path = "{store}"
            [[sinks]]
            plugin = "jsonl"
            path = "{tmp_path / "out.jsonl"}"
            [run]
            duration = "24h"
            speed = 120.0
            batch_size = 200
            interval = "50ms"
            """
        )
    )
    return path


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet
    finally:
        con.close()


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def delivered(tmp_path: Path) -> list[str]:
    out = tmp_path / "out.jsonl"
    if not out.exists():
        return []
    return [json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()]


def stops_with_one_line(process: subprocess.Popen[str], store: Path) -> str:
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"{process.args[3]} kept running after the store file went") from None
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert lines[-1].startswith(f"Error: store {store}: {LOST}"), stderr
    return lines[-1]


@pytest.mark.parametrize("fault", ["moved", "deleted"])
def test_collect_and_forward_stop_when_the_store_file_goes(tmp_path, fault):
    store = tmp_path / "edge.db"
    config = write_config(tmp_path, store)
    collector = start("collect", config)
    forwarder = None
    try:
        wait_until(lambda: count(store, "SELECT count(*) FROM readings") > 0, "rows are stored")
        forwarder = start("forward", config, "--follow")
        wait_until(lambda: len(delivered(tmp_path)) > 0, "the sink has rows")
        before = count(store, "SELECT count(*) FROM readings")
        kept = tmp_path / "kept.db"
        if fault == "moved":
            store.rename(kept)
        else:
            store.unlink()
        stops_with_one_line(collector, store)
        stops_with_one_line(forwarder, store)
    finally:
        for process in (collector, forwarder):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert not store.exists()  # nothing made a new store at the path
    if fault == "moved":
        con = sqlite3.connect(f"file:{kept}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT sensor_id, timestamp FROM readings").fetchall()
        finally:
            con.close()
        assert len(rows) >= before  # nothing stored before the move is lost
        ids = {document_id(sensor, ts) for sensor, ts in rows}
        assert set(delivered(tmp_path)) <= ids  # and every row the sink got is in it
        status = run_cosmobac("status", config, check=False)
        assert status.returncode == 1
        assert "does not exist" in status.stderr


def test_commands_that_read_never_create_a_store(tmp_path):
    store = tmp_path / "data" / "edge.db"
    config = write_config(tmp_path, store)
    for args in (
        ("status", config),
        ("forward", config),
        ("dead-letters", "list", config),
        ("evaluate", config),
        ("report", config, "--out", tmp_path / "report.html"),
    ):
        result = run_cosmobac(*args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"Error: store {store}: does not exist; check the path, or create the store first by "
            "collecting or importing into it (cosmobac collect, run or import)"
        ], args
        assert not store.parent.exists(), args


def test_a_zero_byte_store_is_refused_by_every_command(tmp_path):
    store = tmp_path / "edge.db"
    store.write_bytes(b"")
    config = write_config(tmp_path, store)
    for args in (("status", config), ("forward", config), ("collect", config, "--duration", "1m")):
        result = run_cosmobac(*args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().startswith(
            f"Error: store {store}: is an empty (0-byte) file, not a cosmobac store"
        ), args
    assert store.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.db", "edge.toml"]


@pytest.mark.slow  # a real process or a hung endpoint: seconds of waiting
def test_a_following_forwarder_waits_for_the_store_to_be_created(tmp_path):
    """An edge node starts both processes at once: ``forward --follow`` may come first. It waits
    (one warning) without creating the store, then forwards what the collector stores."""
    store = tmp_path / "edge.db"
    config = write_config(tmp_path, store)
    forwarder = start("forward", config, "--follow")
    collector = None
    try:
        time.sleep(1.5)
        assert forwarder.poll() is None  # still waiting
        assert not store.exists()  # and it made nothing
        collector = start("collect", config, "--duration", "10m")
        wait_until(lambda: len(delivered(tmp_path)) > 0, "the sink has rows")
        assert collector.wait(timeout=60) == 0
        forwarder.terminate()
        _, stderr = forwarder.communicate(timeout=30)
    finally:
        for process in (collector, forwarder):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert forwarder.returncode == 0, stderr
    assert stderr.count("waiting for it to be created") == 1, stderr
    assert "Traceback" not in stderr
