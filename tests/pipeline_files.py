"""Pipeline files the monitoring, status and alerts tests run as real processes, and a free port."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

JSONL = '[[sinks]]\nplugin = "jsonl"\nname = "archive"\npath = "{out}"'


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook(url: str) -> str:
    """A webhook sink named ``hook`` that posts to ``url``."""
    return f'[[sinks]]\nplugin = "webhook"\nname = "hook"\nurl = "{url}"'


def pipeline(tmp_path: Path, sinks: str, extra: str = "") -> str:
    """``pipeline.toml`` in ``tmp_path``: 2 simulated sensors at 0.05 Hz for 2 h (720 rows), a
    sqlite store, a z-score detector named ``z`` (threshold 0.5: it flags most rows), ``sinks``,
    fast retries; ``extra`` goes after the ``[run]`` keys (more of them, or more tables)."""
    path = tmp_path / "pipeline.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 1
            sensors_per_city = 2
            seed = 5
            rate_hz = 0.05
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[transforms]]
            plugin = "zscore"
            name = "z"
            window = 4
            min_periods = 2
            threshold = 0.5
            """
        )
        + sinks
        + textwrap.dedent(
            """
            [run]
            duration = "2h"
            batch_size = 50
            interval = "50ms"
            backoff = "50ms"
            max_backoff = "100ms"
            """
        )
        + extra
        + "\n"
    )
    return str(path)
