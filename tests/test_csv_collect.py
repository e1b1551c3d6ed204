"""The ``csv`` sensor through ``cosmobac collect`` into a real SQLite store: what is stored, the
state saved with it, the rejects ``cosmobac dead-letters inputs`` lists, and restarts (in the
same process, and as real processes stopped with SIGTERM and SIGKILL)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosmobac.cli import cli
from cosmobac.errors import ConfigError

pytestmark = pytest.mark.needs_plugins  # the sqlite store

HEADER = "time,device,temp_c\n"
T0 = 1767225600000


def line(i: int) -> str:
    """Line ``i`` of a feed; every seventh is malformed (a temperature that is not a number)."""
    return f"{T0 + i * 1000},dev-{i % 3},{'n/a' if i % 7 == 3 else i}\n"


def good(n: int) -> set[tuple[str, int]]:
    return {(f"dev-{i % 3}", T0 + i * 1000) for i in range(n) if i % 7 != 3}


def bad_lines(n: int) -> list[int]:
    """The file line numbers of the malformed lines among the first ``n`` (after the header)."""
    return [i + 2 for i in range(n) if i % 7 == 3]


def pipeline(tmp_path: Path, *, follow: bool) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f"""
[sensor]
plugin = "csv"
path = "{tmp_path / "in" / "*.csv"}"
timestamp_column = "time"
timestamp_format = "ms"
sensor_id_column = "device"
follow = {str(follow).lower()}
poll_interval = "50ms"
max_rows_per_read = 40

[sensor.columns]
temp_c = "temperature"

[store]
plugin = "sqlite"
path = "{tmp_path / "edge.db"}"

[run]
flush_interval = "100ms"
batch_size = 25
"""
    )
    return path


def stored(tmp_path: Path) -> list[tuple[str, int]]:
    con = sqlite3.connect(f"file:{tmp_path / 'edge.db'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT sensor_id, timestamp FROM readings ORDER BY seq").fetchall()
    finally:
        con.close()


def listed_rejects(config: Path) -> list[dict]:
    result = CliRunner().invoke(
        cli, ["dead-letters", "inputs", str(config), "--json", "--limit", "100000"]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(text) for text in result.output.splitlines()]


def test_collect_reads_the_files_once_and_a_second_collect_only_what_was_added(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    feed = folder / "a.csv"
    feed.write_text(HEADER + "".join(line(i) for i in range(100)))
    config = pipeline(tmp_path, follow=False)

    result = CliRunner().invoke(cli, ["collect", str(config)])
    assert result.exit_code == 0, result.output
    rows = stored(tmp_path)
    assert len(rows) == len(set(rows)) and set(rows) == good(100)
    rejects = listed_rejects(config)
    assert [r["origin"] for r in rejects] == [f"{feed}:{n}" for n in bad_lines(100)]
    assert {r["sensor"] for r in rejects} == {"csv"}
    assert all("'n/a' is not a number" in r["reason"] for r in rejects)
    text = CliRunner().invoke(cli, ["dead-letters", "inputs", str(config)]).output
    assert f"csv  {feed}:5: column 'temperature' (CSV column 3): 'n/a' is not a number" in text

    again = CliRunner().invoke(cli, ["collect", str(config)])
    assert again.exit_code == 0 and "collected 0 new rows (0 read)" in again.output
    with open(feed, "a") as stream:
        stream.write("".join(line(i) for i in range(100, 130)))
    (folder / "b.csv").write_text(HEADER + f"{T0},dev-9,1\n")
    third = CliRunner().invoke(cli, ["collect", str(config)])
    assert third.exit_code == 0, third.output
    assert set(stored(tmp_path)) == good(130) | {("dev-9", T0)}
    assert [r["origin"] for r in listed_rejects(config)] == [
        f"{feed}:{n}" for n in bad_lines(130)
    ]  # each once: the lines read before were not read again


def test_collect_refuses_a_mapping_the_header_does_not_fit(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("time,device,temperature\n")
    result = CliRunner().invoke(cli, ["collect", str(pipeline(tmp_path, follow=False))])
    assert isinstance(result.exception, ConfigError)
    assert "[sensor] (plugin 'csv')" in str(result.exception)
    assert "columns: 'temp_c' is not a column of the file" in str(result.exception)


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "collect", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass  # the store is not created yet
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_a_followed_file_stopped_and_killed_collectors_store_every_line_once(tmp_path):
    """A writer appends to a followed file (leaving half lines now and then) while the collector
    is stopped with SIGTERM, then killed with SIGKILL, then started again: every good line is
    stored, every bad one listed once with its line number, none twice."""
    folder = tmp_path / "in"
    folder.mkdir()
    feed = folder / "a.csv"
    feed.write_text(HEADER)
    config = pipeline(tmp_path, follow=True)
    written = 0

    def write(count: int, *, half: bool = False) -> None:
        nonlocal written
        with open(feed, "a") as stream:
            for _ in range(count):
                stream.write(line(written))
                stream.flush()
                written += 1
            if half:
                stream.write(line(written)[:5])  # the collector must wait for the rest

    def finish_half() -> None:
        nonlocal written
        with open(feed, "a") as stream:
            stream.write(line(written)[5:])
        written += 1

    collector = start(config)
    try:
        write(50, half=True)
        wait_until(lambda: len(stored(tmp_path)) >= len(good(50)))
        finish_half()
        write(30)
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=60) == 0, collector.stderr.read() if collector.stderr else ""
        write(40, half=True)  # while nothing collects

        collector = start(config)
        wait_until(lambda: len(stored(tmp_path)) >= len(good(written)))
        finish_half()
        for _ in range(20):  # kill it while it reads
            write(7)
            time.sleep(0.01)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=60)
        write(25)

        collector = start(config)
        wait_until(lambda: set(stored(tmp_path)) == good(written))
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=60) == 0, collector.stderr.read() if collector.stderr else ""
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
    rows = stored(tmp_path)
    assert len(rows) == len(set(rows)) and set(rows) == good(written)
    origins = [r["origin"] for r in listed_rejects(config)]
    assert origins == [f"{feed}:{n}" for n in bad_lines(written)]  # each once, in order
