"""The ``simulated`` sensor's memory (issue 19, item 1): O(batch), not O(sensors × block).

* the readings for a seed are the ones the block-caching simulator produced (hashes recorded from
  it, at commit 0fdbede), read at once, in any cut of time, and after a seek;
* a fleet of 10,000 sensors collects into a SQLite store with a peak RSS under 500 MB (the
  block-caching simulator took 1.7 GB);
* a fleet too large for the memory it would need is refused before it is built, naming the keys
  and what would fit (exit 2 from the command line, no traceback).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.schema import CORE_FIELDS
from cosmobac.sensors import simulated
from cosmobac.sensors.fleet_config import READING_BYTES, SENSOR_BYTES
from cosmobac.sensors.simulated import ANOMALY_TYPES, SimulatedFleet
from cosmobac.testing import run_cosmobac as cosmobac

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS

# Every anomaly type, events long enough to run across generation blocks (4096 readings, 819.2 s
# at 5 Hz) and read calls; 15 000 readings per sensor, a bit under four blocks.
BUSY: dict[str, Any] = {
    "cities": 2,
    "sensors_per_city": 3,
    "rate_hz": 5.0,
    "seed": 23,
    "anomalies": {
        "probability": 0.001,
        "weights": dict.fromkeys(ANOMALY_TYPES, 1.0),
        "durations": {
            "spike": 0,
            "dip": "400ms",
            "drift": "8m",
            "pattern": "30s",
            "stuck": "3m",
            "dropout": "10s",
            "noise": "2m",
        },
    },
}
BUSY_SPAN_MS = 50 * MINUTE_MS

# (config, span of sensor time, rows, anomalous rows, sha256 of the columns): recorded from the
# simulator that cached a block per sensor, before it kept plans instead.
REFERENCES = [
    pytest.param(
        BUSY,
        BUSY_SPAN_MS,
        90_000,
        45_966,
        "32dd98ffdfbe263590e5d4b80e7bd3b9cf607a0ff3da42c139bf8dc33af28d12",
        id="busy",
    ),
    pytest.param(
        {"cities": 3, "sensors_per_city": 4},
        3 * HOUR_MS,
        129_600,
        14_946,
        "1a16fde4f75946e01dfab15c3d251f629791a6da5456953c89f7945c58c8d7fc",
        id="defaults",
    ),
    pytest.param(
        {"cities": ["Tokyo", "Lima"], "sensors_per_city": 2, "seed": 9, "rate_hz": 0.5},
        5 * HOUR_MS,
        36_000,
        4_164,
        "9d0b1ad94322ceab9ab8c8d231f5989783ec7caa93625f7a3ca6fe5e4c71ca28",
        id="slow-rate",
    ),
]
BUSY_DIGEST = "32dd98ffdfbe263590e5d4b80e7bd3b9cf607a0ff3da42c139bf8dc33af28d12"


@pytest.fixture(params=["kept", "drawn", "mixed"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way a read gets a block's draws: kept whole (small fleets), drawn again from the
    stream's saved states (large fleets), or kept for the first three sensors only."""
    budget = {"kept": 2**40, "drawn": 0, "mixed": 3 * simulated._BLOCK_BYTES}[request.param]
    monkeypatch.setattr(simulated, "_CACHE_BYTES", budget)
    return str(request.param)


def digest(batch: Batch) -> str:
    """sha256 of every core column: numbers by their bytes, text and labels by their ``repr``."""
    h = hashlib.sha256()
    for name in CORE_FIELDS:
        column = batch[name]
        h.update(name.encode())
        if column.dtype == object:
            h.update("\x1f".join(map(repr, column.tolist())).encode())
        else:
            h.update(np.ascontiguousarray(column).tobytes())
    return h.hexdigest()


# -- the same readings as before ------------------------------------------------------------------
@pytest.mark.parametrize(("config", "span", "rows", "anomalous", "expected"), REFERENCES)
def test_readings_for_a_seed_are_unchanged(
    config: dict[str, Any], span: int, rows: int, anomalous: int, expected: str, blocks: str
) -> None:
    fleet = SimulatedFleet(**config)
    batch = fleet.read(fleet.start + span)
    assert len(batch) == rows
    assert int(batch["anomaly_flag"].sum()) == anomalous
    assert digest(batch) == expected


@pytest.mark.parametrize("budget", [0, 3])  # blocks kept: none, or for the first three sensors
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cuts=st.lists(st.integers(1, BUSY_SPAN_MS), min_size=1, max_size=12))
def test_any_cut_of_time_gives_the_same_readings(
    monkeypatch: pytest.MonkeyPatch, budget: int, cuts: list[int]
) -> None:
    monkeypatch.setattr(simulated, "_CACHE_BYTES", budget * simulated._BLOCK_BYTES)
    fleet = SimulatedFleet(**BUSY)
    parts = [fleet.read(fleet.start + cut) for cut in sorted(cuts)]
    parts.append(fleet.read(fleet.start + BUSY_SPAN_MS))
    assert digest(Batch.concat(parts)) == BUSY_DIGEST


def test_small_steps_across_blocks_give_the_same_readings(blocks: str) -> None:
    fleet = SimulatedFleet(**BUSY)
    step = 9_973  # ms: about 50 readings per sensor, never a whole block, cuts fall anywhere
    parts = [fleet.read(fleet.start + t) for t in range(step, BUSY_SPAN_MS, step)]
    parts.append(fleet.read(fleet.start + BUSY_SPAN_MS))
    assert digest(Batch.concat(parts)) == BUSY_DIGEST


@pytest.mark.parametrize("resume_ms", [1, 7 * MINUTE_MS + 3, 14 * MINUTE_MS + 1, 40 * MINUTE_MS])
def test_seeking_then_reading_gives_the_rest_of_the_same_readings(
    resume_ms: int, blocks: str
) -> None:
    whole = SimulatedFleet(**BUSY).read(SimulatedFleet(**BUSY).start + BUSY_SPAN_MS)
    assert digest(whole) == BUSY_DIGEST
    fleet = SimulatedFleet(**BUSY)
    fleet.read(fleet.start + resume_ms // 3)  # a first part read, then a restart's seek
    fleet.seek(fleet.start + resume_ms)
    half = (BUSY_SPAN_MS - resume_ms) // 2
    rest = Batch.concat(
        [
            fleet.read(fleet.start + resume_ms + half),
            fleet.read(fleet.start + BUSY_SPAN_MS),
        ]
    )
    expected = whole.select(whole["timestamp"] >= fleet.start + resume_ms)
    assert rest.equals(expected)


# -- memory of a large fleet ----------------------------------------------------------------------
RSS_LIMIT_MB = 500

MEASURE = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "cosmobac", *sys.argv[1:]], capture_output=True,
                      text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("peak-rss-bytes", peak if sys.platform == "darwin" else peak * 1024)
sys.exit(done.returncode)
"""


def measured(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``cosmobac *args`` in a process of its own; what it did, and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, args)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("peak-rss-bytes ")
    return done, int(line.split()[1]) / 1e6


@pytest.mark.slow  # a real process or a hung endpoint: seconds of waiting
@pytest.mark.needs_plugins  # the sqlite store
def test_ten_thousand_sensors_collect_in_bounded_memory(tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 50
            sensors_per_city = 200
            seed = 1
            [store]
            plugin = "sqlite"
            path = "{(tmp_path / "edge.db").as_posix()}"
            [run]
            duration = "2m"
            """
        )
    )
    # at the default run.step (10 minutes), the collect loop shortens its steps to about one
    # run.batch_size of readings, so memory does not grow with fleet × step either
    done, peak_mb = measured("collect", config)
    # every sensor reads a first block (planned) and then draws from its plan
    assert "collected 1200000 new rows" in done.stdout
    print(f"10,000 sensors: peak RSS {peak_mb:.0f} MB")
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"


# -- a fleet too large is refused up front --------------------------------------------------------
def test_a_fleet_is_refused_exactly_when_it_would_not_fit() -> None:
    per_sensor = SENSOR_BYTES + READING_BYTES * 2  # at 2 Hz: one second is two readings
    fits = 3 * 40 * per_sensor
    fleet = SimulatedFleet(cities=3, sensors_per_city=40, rate_hz=2, memory_limit=fits)
    assert len(fleet.sensors) == 120
    with pytest.raises(ValueError, match="fleet too large") as error:
        SimulatedFleet(cities=3, sensors_per_city=40, rate_hz=2, memory_limit=fits - 1)
    message = str(error.value)
    for key in ("cities (3)", "sensors_per_city (40)", "rate_hz = 2", "memory_limit"):
        assert key in message
    assert "at most 119 sensors fit" in message and "sensors_per_city ≤ 39 with 3 cities" in message
    # at a lower rate the same fleet fits: the message says up to which rate
    assert "rate_hz = 1.99" in message


def test_memory_limit_is_a_size_naming_its_key() -> None:
    assert SimulatedFleet(cities=1, sensors_per_city=1, memory_limit="1MiB").memory_limit == 2**20
    with pytest.raises(ValueError, match="memory_limit"):
        SimulatedFleet(cities=1, sensors_per_city=1, memory_limit="lots")


def too_large(tmp_path: Path, sensor: str) -> Path:
    config = tmp_path / "big.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            {sensor}
            [store]
            plugin = "sqlite"
            path = "{(tmp_path / "big.db").as_posix()}"
            [run]
            duration = "1m"
            """
        )
    )
    return config


@pytest.mark.needs_plugins  # the sqlite store
def test_the_documented_largest_fleet_at_the_highest_rate_is_refused_with_exit_2(
    tmp_path: Path,
) -> None:
    # 68 cities × 99 999 sensors at 1000 Hz: about 1.7 TB for one second of readings alone
    config = too_large(tmp_path, "cities = 68\nsensors_per_city = 99999\nrate_hz = 1000")
    result = cosmobac("collect", config, check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    for key in ("cities (68)", "sensors_per_city (99,999)", "rate_hz = 1000", "memory_limit"):
        assert key in result.stderr
    assert "fleet too large" in result.stderr and "sensors fit at this rate" in result.stderr


@pytest.mark.needs_plugins  # the sqlite store
def test_a_fleet_over_its_memory_limit_is_refused_with_exit_2(tmp_path: Path) -> None:
    config = too_large(tmp_path, 'cities = 50\nsensors_per_city = 200\nmemory_limit = "10MB"')
    result = cosmobac("collect", config, check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    fit = 10_000_000 // (SENSOR_BYTES + READING_BYTES)
    assert f"at most {fit:,} sensors fit" in result.stderr
    assert "[sensor] (plugin 'simulated')" in result.stderr and "memory_limit" in result.stderr
