"""``[run] min_interval``: a following forwarder adapts its poll interval to the backlog."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.config import RunConfig
from cosmobac.pacing import next_poll_interval
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.testing import ListSink, MemoryStore


@pytest.mark.parametrize(
    ("rows", "current", "expected"),
    [
        (0, 1.0, 2.0),  # idle: double
        (0, 3.0, 4.0),  # ... never above the maximum
        (10, 1.0, 0.5),  # some rows piled up: halve
        (10, 0.15, 0.1),  # ... never below the minimum
        (100, 4.0, 0.1),  # a full batch: the minimum at once
        (5000, 2.0, 0.1),
    ],
)
def test_next_poll_interval(rows, current, expected):
    assert next_poll_interval(rows, 100, current, 0.1, 4.0) == expected


def test_next_poll_interval_is_deterministic_over_a_trace():
    interval, seen = 4.0, []
    for rows in [0, 0, 300, 0, 20, 20, 0, 0, 0, 0, 0, 0]:
        interval = next_poll_interval(rows, 100, interval, 0.25, 4.0)
        seen.append(interval)
    assert seen == [4.0, 4.0, 0.25, 0.5, 0.25, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_min_interval_is_checked():
    assert RunConfig().min_interval is None
    assert RunConfig.from_table({"min_interval": "50ms"}).min_interval == 0.05
    with pytest.raises(ValueError, match="must not exceed interval"):
        RunConfig(interval=1.0, min_interval=2.0)
    with pytest.raises(ValueError, match="min_interval"):
        RunConfig.from_table({"min_interval": "0s"})


def _rows(start: int, n: int) -> Batch:
    return Batch.from_columns(
        timestamp=np.arange(start, start + n, dtype=np.int64),
        sensor_id=["s"] * n,
        temperature=np.zeros(n),
    )


def test_a_following_lane_polls_faster_while_rows_arrive_and_slower_when_idle():
    store, sink = MemoryStore(), ListSink()
    run = RunConfig(interval=0.4, min_interval=0.025, jitter=0.0, batch_size=50)
    pipeline = Pipeline(store=store, lanes=[Lane("out", sink)], run=run)
    state = pipeline._lane_state(pipeline.lanes[0])
    thread = threading.Thread(target=pipeline.forward, kwargs={"follow": True}, daemon=True)
    thread.start()
    try:
        seen = set()
        start = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and 0.025 not in seen:
            store.append(_rows(start, 60))  # more than a batch piles up between polls
            start += 60
            time.sleep(0.05)
            seen.add(state.poll)
        assert 0.025 in seen
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and state.poll != 0.4:
            time.sleep(0.05)
        assert state.poll == 0.4  # idle: back to run.interval
    finally:
        pipeline.stop.set()
        thread.join(5)


@pytest.mark.slow
@pytest.mark.needs_plugins  # the sqlite store
def test_a_forwarder_process_adapts_its_poll_interval(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 2
            sensors_per_city = 5
            seed = 3
            rate_hz = 1.0
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "jsonl"
            path = "{tmp_path / "out.jsonl"}"
            [run]
            duration = "4m"
            speed = 60
            batch_size = 200
            interval = "1s"
            min_interval = "50ms"
            jitter = 0
            """
        )
    )

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cosmobac", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    collector = start("collect", str(config))
    assert collector.wait(60) == 0, collector.stderr.read() if collector.stderr else ""
    forwarder = start("-vv", "forward", str(config), "--follow")
    try:
        time.sleep(6)  # the stored backlog, then idle: back to 1s
    finally:
        forwarder.send_signal(signal.SIGTERM)
        _, err = forwarder.communicate(timeout=30)
    changes = re.findall(r"poll interval (\S+)s -> (\S+)s \((\d+) rows", err)
    assert changes, err
    assert changes[0] == ("1", "0.05", "2400")  # the stored backlog: a full batch and more
    assert [c[1] for c in changes[1:]] == ["0.1", "0.2", "0.4", "0.8", "1"]  # idle
