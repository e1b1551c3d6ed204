"""The delivery guarantee end to end: ``cosmobac collect`` (a real process: mqtt sensor → sqlite
store) SIGKILLed and restarted at random points while a publisher sends 20 000 QoS 1 messages;
in the end every message is stored exactly once with its value.

Prints the figures (published, kills, stored, duplicates, redeliveries seen)."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cosmobac_mqtt.localbroker import LocalBroker, publish

T0 = 1_767_225_600_000
MESSAGES = 20_000
CHUNK = 500
KILLS = 4


def pipeline_file(folder: Path, broker: LocalBroker, client_id: str) -> Path:
    path = folder / "pipeline.toml"
    path.write_text(
        f"""
[sensor]
plugin = "mqtt"
host = "{broker.host}"
port = {broker.port}
topics = ["kill/#"]
client_id = "{client_id}"
max_buffered = 5000

[store]
plugin = "sqlite"
path = "{folder / "edge.db"}"

[run]
batch_size = 2000
flush_interval = "250ms"
"""
    )
    return path


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def collector(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cosmobac", "-v", "collect", str(config)],
            stdout=out,
            stderr=out,
            env=env,
        )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_collector_killed_at_random_points_loses_nothing(broker, tmp_path, client_id):
    config = pipeline_file(tmp_path, broker, client_id)
    db = tmp_path / "edge.db"
    log = tmp_path / "collector.log"
    rng = random.Random(int(os.environ.get("KILL_SEED", "15")))

    # the session must exist before the first message: one collector run that subscribes
    proc = collector(config, log)
    deadline = time.monotonic() + 30
    while "subscribed to" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "subscribed to" in log.read_text(), log.read_text()

    published: list[int] = []
    failure: list[BaseException] = []

    def publisher() -> None:
        try:
            for start in range(0, MESSAGES, CHUNK):
                chunk: list[tuple[str, Any]] = [
                    (f"kill/dev-{i % 50}",
                     {"sensor_id": f"dev-{i % 50}", "timestamp": T0 + i, "temperature": i * 0.5})
                    for i in range(start, start + CHUNK)
                ]  # fmt: skip
                published.append(publish(broker.host, broker.port, chunk))
                time.sleep(0.15)
        except BaseException as exc:  # reported by the test
            failure.append(exc)

    thread = threading.Thread(target=publisher, daemon=True)
    began = time.monotonic()
    thread.start()
    kills = 0
    while kills < KILLS:
        time.sleep(rng.uniform(0.3, 2.5))
        proc.kill()  # SIGKILL: no last store, no commit, no disconnect
        proc.wait()
        kills += 1
        proc = collector(config, log)
    thread.join(timeout=60)
    assert not failure, failure
    assert sum(published) == MESSAGES

    deadline = time.monotonic() + 40
    while stored(db) < MESSAGES and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    elapsed = time.monotonic() - began

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sensor_id, timestamp, temperature FROM readings").fetchall()
        input_rejects = conn.execute("SELECT count(*) FROM input_rejects").fetchone()[0]
    keys = [(s, t) for s, t, _ in rows]
    duplicates = len(keys) - len(set(keys))
    text = log.read_text()
    redelivered = sum(
        int(n) for n in re.findall(r"(\d+) of the \d+ messages read were redelivered", text)
    )
    print(
        f"\nkill test: published {sum(published)}, kills {kills}, stored {len(rows)}, "
        f"duplicates {duplicates}, redeliveries seen {redelivered}, rejects {input_rejects}, "
        f"{elapsed:.1f} s"
    )
    assert duplicates == 0
    assert input_rejects == 0
    expected = {(f"dev-{i % 50}", T0 + i): i * 0.5 for i in range(MESSAGES)}
    assert len(rows) == MESSAGES
    assert {(s, t): v for s, t, v in rows} == expected
