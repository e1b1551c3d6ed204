"""``cosmobac status``: real collectors and forwarders against a loopback webhook, the live view
under a pseudo-terminal, and the rendering and JSON contract on records made by hand."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rich.console import Console

from cosmobac.interfaces import StoreStats
from cosmobac.monitoring import Health, SinkHealth, health_path
from cosmobac.monitoring.health import Problem
from cosmobac.monitoring.status import (
    STALE_AFTER_S,
    ForwarderState,
    SinkStatus,
    Status,
    age_text_of,
    ago_text_of,
)
from cosmobac.pipeline import Checkpoint
from pipeline_files import pipeline, webhook
from webhook_receiver import Receiver

pytestmark = pytest.mark.needs_plugins  # the sqlite store

WAIT_S = 90.0
STORED = 2 * 2 * 3600 // 20  # 2 sensors at 0.05 Hz for 2 h
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def jsonl(path) -> str:
    return f'[[sinks]]\nplugin = "jsonl"\nname = "archive"\npath = "{path}"'


def cosmobac(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "cosmobac", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def status_json(config: str) -> dict[str, Any]:
    return json.loads(cosmobac("status", config, "--json").stdout)


def sink_of(data: dict[str, Any], consumer: str) -> dict[str, Any]:
    [sink] = [s for s in data["sinks"] if s["consumer"] == consumer]
    return sink


@contextlib.contextmanager
def forwarding(config: str, tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "forward.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "forward", config, "--follow"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=60)
        log.close()


def until(done: Callable[[], Any], what: str, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the forwarder ended ({proc.returncode}) before {what}")
        found = done()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"never saw {what}")


def table_row(text: str, consumer: str) -> list[str]:
    """The cells of ``consumer``'s row in a status table."""
    [row] = [line for line in text.splitlines() if line.startswith(f"│ {consumer} ")]
    return [cell.strip() for cell in row.strip().strip("│").split("│")]


# -- real processes ---------------------------------------------------------------------------


def test_a_sink_retrying_then_delivering(tmp_path):
    receiver = Receiver()
    receiver.status = 503  # transient: retried for ever
    config = pipeline(tmp_path, webhook(receiver.url))
    cosmobac("collect", config)
    try:
        with forwarding(config, tmp_path) as proc:
            until(
                lambda: sink_of(status_json(config), "hook")["last_error"],
                "the 503 recorded",
                proc,
            )
            text = cosmobac("status", config).stdout
            cells = table_row(text, "hook")
            assert cells[2] == str(STORED)  # backlog
            assert "503" in cells[5] and cells[6].endswith(" ago") and cells[7] == "retrying"
            assert "forwarder: running since" in text
            data = status_json(config)
            hook = sink_of(data, "hook")
            assert hook["pending"] == STORED and hook["stopped"] is False
            assert "503" in hook["last_error"] and hook["last_error_at"].endswith("+00:00")
            assert data["forwarder"]["running"] is True
            assert data["forwarder"]["pid"] == proc.pid
            assert data["healthy"] is True  # retrying is not a problem (no max_backlog_age)

            receiver.status = 200
            data = until(
                lambda: (
                    (d := status_json(config))
                    and sink_of(d, "hook")["pending"] == 0
                    and (sink_of(d, "hook")["rows_per_second"] or 0) > 0
                    and d
                ),
                "the backlog delivered",
                proc,
            )
            text = until(
                lambda: (t := cosmobac("status", config).stdout) and "│ ok" in t and t,
                "the sink ok again",
                proc,
            )
            cells = table_row(text, "hook")
            assert float(cells[1]) > 0 and cells[2] == "0" and cells[3] == "none"
            assert "503" in cells[5]  # the last error stays, with when
            assert cosmobac("status", config, "--check").returncode == 0
        assert len(receiver.posts) > 0
        stopped = status_json(config)
        assert stopped["forwarder"]["running"] is False
        assert sink_of(stopped, "hook")["rows_per_second"] == 0.0
        assert "forwarder: not running (last seen" in cosmobac("status", config).stdout
    finally:
        receiver.close()


def test_a_sink_that_failed_permanently_is_stopped_and_unhealthy(tmp_path):
    receiver = Receiver()
    receiver.status = 401
    # a second, healthy sink keeps the forwarder running
    config = pipeline(tmp_path, webhook(receiver.url) + "\n" + jsonl(tmp_path / "out.jsonl"))
    cosmobac("collect", config)
    try:
        with forwarding(config, tmp_path) as proc:
            data = until(
                lambda: (d := status_json(config)) and sink_of(d, "hook")["stopped"] and d,
                "the sink stopped",
                proc,
            )
            assert data["healthy"] is False
            [problem] = data["problems"]
            assert problem["sink"] == "hook" and problem["reason"] == "sink failed permanently"
            assert "401" in problem["error"]
            assert sink_of(data, "hook")["pending"] == STORED
            checked = cosmobac("status", config, "--check", check=False)
            assert checked.returncode == 1, checked.stderr
            assert table_row(checked.stdout, "hook")[7] == "stopped"
            assert "not healthy:" in checked.stdout
            assert "hook: sink failed permanently" in checked.stdout
            json_checked = cosmobac("status", config, "--json", "--check", check=False)
            assert json_checked.returncode == 1
            assert json.loads(json_checked.stdout)["healthy"] is False
            assert cosmobac("status", config, check=False).returncode == 0  # no --check
    finally:
        receiver.close()


def test_a_forwarder_killed_is_said_to_have_died(tmp_path):
    config = pipeline(tmp_path, jsonl(tmp_path / "out.jsonl"))
    cosmobac("collect", config)
    with forwarding(config, tmp_path) as proc:
        until(
            lambda: sink_of(status_json(config), "archive")["pending"] == 0, "the rows sent", proc
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)  # reaped: its pid is gone
    data = status_json(config)
    assert data["forwarder"]["pid"] == proc.pid
    text = until(
        lambda: (t := cosmobac("status", config).stdout) and "died" in t and t,
        f"the death noticed (after {STALE_AFTER_S} s)",
    )
    assert f"forwarder: died: pid {proc.pid} is gone (last seen" in text
    data = status_json(config)
    assert data["forwarder"]["running"] is False and data["forwarder"]["last_seen"]


def test_no_forwarder_has_run(tmp_path):
    config = pipeline(tmp_path, jsonl(tmp_path / "out.jsonl"))
    cosmobac("collect", config)
    assert not health_path(config).exists()
    text = cosmobac("status", config).stdout
    assert "forwarder: no forwarder has run" in text
    row = table_row(text, "archive")
    # the sink has not read: its oldest pending row is the oldest stored one, stored just now
    assert re.fullmatch(r"\d+ s old", row[3]), row
    assert row[:3] + row[4:] == ["archive", "—", str(STORED), "0", "—", "—", "—"]
    data = status_json(config)
    assert data["forwarder"] == {"running": False, "pid": None, "started": None, "last_seen": None}
    archive = sink_of(data, "archive")
    assert archive["rows_per_second"] is None
    assert archive["pending"] == data["rows"] == STORED and data["pending"] == {}
    assert 0 <= archive["oldest_pending_age_s"] < WAIT_S
    assert data["oldest_stored_age_s"] == pytest.approx(archive["oldest_pending_age_s"], abs=5)
    assert data["oldest_stored_timestamp"] is not None


# -- the live view, under a pseudo-terminal -----------------------------------------------------


class Terminal:
    """A command on a pseudo-terminal (140 x 40), its output gathered by a thread."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cosmobac", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color"},
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the other side closed
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode("utf-8", "replace"))

    def frames(self) -> list[str]:
        return self.text().split("cosmobac status ")[1:]

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        os.close(self.master)
        return code

    def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"status --watch ended ({self.proc.returncode}): {self.text()}")
            if done():
                return
            time.sleep(0.1)
        pytest.fail(f"never saw {what}; output: {self.text()[-3000:]}")


def backlogs(frames: list[str], consumer: str) -> list[int]:
    found = []
    for frame in frames:
        match = re.search(rf"│ {consumer}\s+│\s*\S+\s*│\s*(\d+)\s*│", frame)
        if match:
            found.append(int(match.group(1)))
    return found


def test_watch_redraws_while_a_forwarder_delivers(tmp_path):
    receiver = Receiver()
    receiver.status = 503
    config = pipeline(tmp_path, webhook(receiver.url))
    cosmobac("collect", config)
    try:
        with forwarding(config, tmp_path) as proc:
            until(lambda: sink_of(status_json(config), "hook")["last_error"], "a 503", proc)
            term = Terminal("status", config, "--watch", "--interval", "300ms")
            try:
                term.until(lambda: STORED in backlogs(term.frames(), "hook"), "the backlog")
                receiver.status = 200
                term.until(lambda: 0 in backlogs(term.frames(), "hook"), "the backlog sent")
                term.until(lambda: "│ ok" in term.frames()[-1], "the sink ok")
            finally:
                code = term.interrupt()
    finally:
        receiver.close()
    assert code == 0, term.text()[-3000:]
    frames = term.frames()
    assert len(frames) >= 2
    seen = backlogs(frames, "hook")
    assert seen[0] == STORED and seen[-1] == 0
    assert "Traceback" not in term.text()
    assert "every 0.3 s" in frames[-1]  # the title (a long tmp path may cut its end)


def test_watch_waits_for_the_store(tmp_path):
    config = pipeline(tmp_path, jsonl(tmp_path / "out.jsonl"))
    term = Terminal("status", config, "--watch", "--interval", "200ms")
    try:
        term.until(lambda: "waiting for the store" in term.text(), "the wait")
        cosmobac("collect", config)
        term.until(lambda: "rows stored: 720" in term.text(), "the store")
    finally:
        code = term.interrupt()
    assert code == 0 and "Traceback" not in term.text()


def test_watch_takes_no_json_or_check(tmp_path):
    config = pipeline(tmp_path, jsonl(tmp_path / "out.jsonl"))
    result = cosmobac("status", config, "--watch", "--json", check=False)
    assert result.returncode == 2 and "--watch" in result.stderr
    result = cosmobac("status", config, "--interval", "0s", check=False)
    assert result.returncode == 2 and "--interval" in result.stderr


# -- rendering and the JSON contract, on records made by hand ------------------------------------

NOW = 1_800_000_000.0


def made(
    *,
    health: Health | None,
    problems: tuple[Problem, ...] = (),
    now: float = NOW,
) -> Status:
    stats = StoreStats(
        rows=1000,
        pending={"hook": 400, "archive": 0, "old": 7},
        oldest_pending_age_s={"hook": 725.0, "archive": None, "old": -7200.0},
        dead_letters={"hook": 2, "archive": 0, "old": 0},
        file_size=2_500_000,
    )
    forwarder = ForwarderState.of(health, now)
    running = forwarder.running

    def sink(consumer: str, plugin: str | None, point: Checkpoint | None) -> SinkStatus:
        return SinkStatus(
            consumer=consumer,
            plugin=plugin,
            checkpoint=point,
            pending=stats.pending[consumer],
            oldest_pending_age_s=stats.oldest_pending_age_s[consumer],
            dead_letters=stats.dead_letters[consumer],
            health=None if health is None else health.sink(consumer),
            forwarder_running=running,
        )

    sinks = (
        sink("hook", "webhook", Checkpoint("hook", True, 600, 400)),
        sink("archive", "jsonl", Checkpoint("archive", True, 1000, 0)),
        sink("old", None, None),
    )
    return Status("edge.toml", now, stats, sinks, forwarder, problems)


def health(*, running: bool = True, time_: float = NOW - 1, pid: int | None = None) -> Health:
    return Health(
        time=time_,
        started=NOW - 3600,
        pid=os.getpid() if pid is None else pid,
        running=running,
        sinks=(
            SinkHealth(
                "hook",
                acked=600,
                rows_per_second=12.5,
                last_error="webhook: HTTP 503 from http://127.0.0.1:9/alerts: status 503 "
                "(the service is unavailable, try again later)",
                last_error_at=NOW - 180,
                last_write_at=NOW - 200,
            ),
            SinkHealth("archive", acked=1000, rows_per_second=250.0, last_write_at=NOW - 2),
        ),
    )


def rendered(status: Status) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(status)
    return console.export_text()


def test_the_view_shows_each_sink_and_the_forwarder():
    text = rendered(made(health=health()))
    assert "rows stored: 1000" in text and "file size: 2.5 MB" in text
    assert "forwarder: running since 2027-01-15 07:00:00 UTC, pid" in text
    hook = table_row(text, "hook")
    assert hook[:5] == ["hook", "12.5", "400", "12 min old", "2"]
    assert hook[5].startswith("webhook: ") and hook[5].endswith("…le, try again later)")
    assert hook[6:] == ["3 min ago", "retrying"]
    assert table_row(text, "archive") == ["archive", "250", "0", "none", "0", "—", "—", "ok"]
    old = table_row(text, "old (not in file)")
    assert old[:4] == ["old (not in file)", "—", "7", "2 h ahead"]
    assert old[5:] == ["—", "—", "—"]
    assert "\nhealthy\n" in text
    assert "checkpoints of the file's sinks:\n  hook: resuming after row 600 (400 pending)" in text


def test_the_view_of_problems_and_of_forwarders_gone():
    stopped = Problem("hook", "sink failed permanently", error="HTTP 401: unauthorized")
    aged = Problem("hook", "backlog too old", oldest_pending_age_s=725.0, max_backlog_age_s=600.0)
    text = rendered(made(health=health(running=False, time_=NOW - 300), problems=(stopped, aged)))
    assert "forwarder: not running (last seen 5 min ago)" in text
    assert table_row(text, "hook")[1] == "0.00"  # no forwarder runs: nothing is sent
    assert "not healthy:\n  hook: sink failed permanently: HTTP 401: unauthorized\n" in text
    assert "hook: backlog too old: oldest pending 12 min old, more than 10 min" in text

    gone = 2**22 + 12345  # above any pid_max default: no such process
    text = rendered(made(health=health(time_=NOW - STALE_AFTER_S - 5, pid=gone)))
    assert f"forwarder: died: pid {gone} is gone (last seen 15 s ago, started" in text
    late = rendered(made(health=health(time_=NOW - 60)))  # stale, but its process lives
    assert "forwarder: running since" in late and "; last seen 60 s ago" in late

    text = rendered(made(health=None))
    assert "forwarder: no forwarder has run" in text
    assert table_row(text, "hook")[1] == "—" and table_row(text, "hook")[7] == "—"


def test_the_json_contract():
    stopped = Problem("hook", "sink failed permanently", error="HTTP 401")
    data = made(health=health(), problems=(stopped,)).to_json()
    assert set(data) == {
        "rows",
        "pending",
        "oldest_pending_age_s",
        "oldest_pending_timestamp",
        "oldest_stored_age_s",
        "oldest_stored_timestamp",
        "dead_letters",
        "file_size",
        "healthy",
        "problems",
        "forwarder",
        "sinks",
    }
    assert data["healthy"] is False
    assert data["problems"] == [
        {"sink": "hook", "reason": "sink failed permanently", "error": "HTTP 401"}
    ]
    assert data["forwarder"] == {
        "running": True,
        "pid": os.getpid(),
        "started": "2027-01-15T07:00:00+00:00",
        "last_seen": "2027-01-15T07:59:59+00:00",
    }
    hook, archive = data["sinks"]  # the file's sinks only; "old" is in pending and the table
    assert hook == {
        "plugin": "webhook",
        "consumer": "hook",
        "resuming": True,
        "after_row": 600,
        "pending": 400,
        "oldest_pending_age_s": 725.0,
        "dead_letters": 2,
        "rows_per_second": 12.5,
        "last_error": health().sinks[0].last_error,
        "last_error_at": "2027-01-15T07:57:00+00:00",
        "stopped": False,
        "state": "retrying",
    }
    assert archive["rows_per_second"] == 250.0 and archive["last_error"] is None
    assert archive["oldest_pending_age_s"] is None
    assert data["pending"] == {"hook": 400, "archive": 0, "old": 7}
    json.dumps(data)  # all JSON

    none = made(health=None).to_json()
    assert none["healthy"] is True and none["problems"] == []
    assert none["forwarder"] == {"running": False, "pid": None, "started": None, "last_seen": None}
    assert all(s["rows_per_second"] is None and s["stopped"] is False for s in none["sinks"])


def test_ages_read_as_people_say_them():
    assert age_text_of(725) == "12 min old"
    assert ago_text_of(180) == "3 min ago"
    assert ago_text_of(5) == "5 s ago"
    assert ago_text_of(-3 * 3600) == "3 h ahead of this clock"


def test_read_status_reads_the_stores_stats_once(tmp_path, monkeypatch):
    from cosmobac.monitoring.status import read_status
    from cosmobac_sqlite.store import SQLiteStore

    config = pipeline(tmp_path, jsonl(tmp_path / "out.jsonl"))
    cosmobac("collect", config)
    calls = []
    stats = SQLiteStore.stats

    def counted(self):
        calls.append(1)
        return stats(self)

    monkeypatch.setattr(SQLiteStore, "stats", counted)
    found = read_status(config)
    assert len(calls) == 1
    assert found.stats is not None and found.stats.rows == STORED
    assert found.healthy and found.forwarder.health is None
    [sink] = found.sinks
    assert (sink.consumer, sink.pending, sink.state) == ("archive", STORED, None)


def test_a_narrow_terminal_shortens_the_errors_then_drops_the_borders():
    console = Console(record=True, width=100, color_system=None)
    console.print(made(health=health()))
    text = console.export_text()
    assert "│" not in text and all(len(line) <= 100 for line in text.splitlines())
    [row] = [line for line in text.splitlines() if line.startswith("hook ")]
    assert row.split()[1:5] == ["12.5", "400", "12", "min"] and row.rstrip().endswith("retrying")
