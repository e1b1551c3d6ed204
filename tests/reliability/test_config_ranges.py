"""Every config value is range-checked when the file is loaded (issue 19, item 7): non-finite
speeds, overflowing times, durations and counts give a ``ConfigError`` naming the key (exit status
2 from the command line), never a traceback or a run that cannot end."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmobac.cli import main
from cosmobac.config import MAX_SPAN, RunConfig, parse_config
from cosmobac.errors import ConfigError
from cosmobac.pacing import backoff_delay
from cosmobac.sensors.fleet_config import ANOMALY_TYPES, DEFAULT_METRICS, LATEST_START
from cosmobac.testing import run_cosmobac

SENSOR = {"plugin": "simulated", "cities": 1, "sensors_per_city": 1}


def load(run: dict[str, Any] | None = None, **sensor: Any) -> Any:
    """Parse a pipeline mapping and build its sensor, as ``cosmobac run`` does."""
    data: dict[str, Any] = {"sensor": {**SENSOR, **sensor}}
    if run is not None:
        data["run"] = run
    cfg = parse_config(data, env={})
    assert cfg.sensor is not None
    return cfg, cfg.sensor.build()


# -- [run] ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("speed", math.nan, "finite number > 0"),
        ("speed", math.inf, "finite number > 0"),
        ("speed", -math.inf, "finite number > 0"),
        ("speed", "nan", "finite number > 0"),
        ("speed", "inf", "finite number > 0"),
        ("speed", 1e300, "≤ 1e+06"),
        ("speed", 0, "> 0"),
        ("duration", 1e300, "at most 36525d"),
        ("duration", "1e20", "at most 36525d"),
        ("duration", math.inf, "finite duration"),
        ("duration", "nan", "finite duration"),
        ("duration", -1, "finite duration of 0 or more"),
        ("step", 1e15, "at most 36525d"),
        ("step", "0s", "longer than zero"),
        ("interval", 1e300, "at most 7d"),
        ("interval", "8d", "at most 7d"),
        ("backoff", 10**30, "at most 7d"),
        ("max_backoff", "2w", "at most 7d"),
        ("batch_size", 10**20, "between 1 and 10000000"),
        ("batch_size", 2**63 - 1, "between 1 and 10000000"),
        ("max_attempts", 10**9, "between 1 and 10000"),
        ("max_attempts", -1, "between 1 and 10000"),
        ("jitter", math.nan, "finite number"),
        ("jitter", 1.5, "between 0 and 1"),
    ],
)
def test_out_of_range_run_values_name_the_key(key, value, words):
    with pytest.raises(ConfigError) as error:
        load({key: value})
    message = str(error.value)
    assert f"[run]: {key} " in message, message
    assert words in message, message


def test_a_bare_number_is_a_duration_in_seconds():
    """``duration = "30"`` (what ``${VAR}`` gives) is 30 seconds, as the config reference says."""
    cfg, _ = load({"duration": "30", "step": 30, "interval": "0.5", "backoff": "7d"})
    assert (cfg.run.duration, cfg.run.step, cfg.run.interval, cfg.run.backoff) == (
        30.0,
        30.0,
        0.5,
        7 * 86400.0,
    )


def test_run_config_made_in_python_is_checked_too():
    with pytest.raises(ValueError, match="speed must be 'max' or a finite number"):
        RunConfig(speed=math.nan)
    with pytest.raises(ValueError, match="batch_size must be between 1 and 10000000"):
        RunConfig(batch_size=0)
    assert RunConfig(speed="max", duration="1h").duration == 3600.0


# -- the simulated sensor ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("start", "99999-01-01T00:00:00Z", "start: timestamp '99999-01-01T00:00:00Z'"),
        ("start", 2**63, "start must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"),
        ("start", 2**63 - 1, "start must be from 0001-01-01T00:00:00Z"),
        ("start", "99999999999999999999", "start must be from 0001-01-01T00:00:00Z"),
        ("start", -(2**63), "start must be from 0001-01-01T00:00:00Z"),
        ("start", LATEST_START + 1, "start must be from"),
        ("start", "0001-01-01T00:00:00+01:00", "start must be from"),
        ("start", 1.5, "start must be epoch milliseconds"),
        ("rate_hz", math.inf, "rate_hz must be a finite number"),
        ("seed", -1, "seed must be ≥ 0"),
        ("sensors_per_city", 10**20, "sensors_per_city must be between 1 and 99999"),
        ("metrics", {"temperature": {"std": 1e308}}, "metrics.temperature.std must be between"),
        ("metrics", {"pressure": {"mean": "nan"}}, "metrics.pressure.mean must be a finite"),
        ("metrics", {"voltage": {"daily_amplitude": -1e300}}, "metrics.voltage.daily_amplitude"),
        ("metrics", {"humidity": {"std": -1}}, "metrics.humidity.std must be ≥ 0"),
        ("anomalies", {"durations": {"drift": 1e300}}, "anomalies.durations.drift must be at"),
        ("anomalies", {"durations": {"noise": "inf"}}, "anomalies.durations.noise must be a"),
        ("anomalies", {"weights": {"spike": 1e308}}, "anomalies.weights.spike must be between"),
        ("anomalies", {"weights": {"dip": -1}}, "anomalies.weights.dip must be between"),
        (
            "anomalies",
            {"firmware_multipliers": {"1.3.9": math.inf}},
            "anomalies.firmware_multipliers.1.3.9 must be a finite",
        ),
        (
            "anomalies",
            {"model_weights": {"TerraSense X1": {"noise": 1e307}}},
            "anomalies.model_weights.TerraSense X1.noise must be between",
        ),
        ("anomalies", {"probability": math.nan}, "anomalies.probability must be a finite"),
    ],
)
def test_out_of_range_sensor_values_name_the_key(key, value, words):
    with pytest.raises(ConfigError) as error:
        load(**{key: value})
    message = str(error.value)
    assert "[sensor] (plugin 'simulated')" in message and words in message, message


def test_the_widest_accepted_values_still_simulate():
    """The bounds are where the simulator still works: the extremes produce finite readings."""
    extreme = {
        name: {"mean": 0.0, "std": 1e12, "min": -1e12, "max": 1e12, "daily_amplitude": -1e12}
        for name in DEFAULT_METRICS
    }
    anomalies = {
        "probability": 1,
        "weights": dict.fromkeys(ANOMALY_TYPES, 1e6),
        "durations": dict.fromkeys(ANOMALY_TYPES, "7d"),
        "firmware_multipliers": {"1.3.9": 1e6},
    }
    for start in ("0001-01-01T00:00:00Z", LATEST_START - 60_000):
        _, sensor = load(start=start, rate_hz=1000, metrics=extreme, anomalies=anomalies)
        batch = sensor.read(sensor.start + 60_000)
        assert len(batch) > 0
        for name in DEFAULT_METRICS:
            values = batch[name]
            assert not (values[values == values] > 1e14).any(), name  # finite, no blow-up


# -- the command line: exit status 2 and one line naming the key ------------------------------------
@pytest.fixture
def pipeline(tmp_path):
    def write(sensor: str = "", run: str = 'duration = "1s"') -> str:
        path = tmp_path / "pipeline.toml"
        path.write_text(
            '[sensor]\nplugin = "simulated"\ncities = 1\nsensors_per_city = 1\n'
            f'{sensor}\n[store]\nplugin = "sqlite"\npath = "{tmp_path / "edge.db"}"\n'
            f'[[sinks]]\nplugin = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\n[run]\n{run}\n'
        )
        return str(path)

    return write


@pytest.mark.needs_plugins
@pytest.mark.parametrize(
    ("sensor", "run", "words"),
    [
        ("", "speed = nan", "[run]: speed must be 'max' or a finite number > 0"),
        ("", "speed = inf", "[run]: speed must be 'max' or a finite number > 0"),
        ("", 'speed = "nan"', "[run]: speed must be 'max' or a finite number > 0"),
        ("", "duration = 1e300", "[run]: duration must be at most 36525d"),
        ("", "batch_size = 99999999999999999999", "[run]: batch_size must be between"),
        ('start = "99999-01-01T00:00:00Z"', "", "start: timestamp '99999-01-01T00:00:00Z'"),
        ("start = 9223372036854775807", "", "start must be from 0001-01-01T00:00:00Z"),
        ("anomalies = {durations = {drift = 1e300}}", "", "anomalies.durations.drift"),
        ("metrics = {temperature = {std = 1e308}}", "", "metrics.temperature.std"),
    ],
    ids=[
        "speed-nan",
        "speed-inf",
        "speed-nan-text",
        "duration-huge",
        "batch-size-int64",
        "start-year-99999",
        "start-int64-max",
        "anomaly-duration-huge",
        "metric-std-huge",
    ],
)
def test_the_command_line_exits_2_naming_the_key(pipeline, capsys, sensor, run, words):
    with pytest.raises(SystemExit) as exited:
        main(["run", pipeline(sensor, run)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err


@pytest.mark.needs_plugins
def test_a_real_process_exits_2_for_a_nan_speed(pipeline):
    done = run_cosmobac("run", pipeline(run="speed = nan"), check=False, timeout=60)
    assert done.returncode == 2, done
    assert "speed must be 'max' or a finite number > 0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.needs_plugins
def test_duration_on_the_command_line_has_the_same_bound(pipeline, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", pipeline(), "--duration", "1e300"])
    assert exited.value.code == 2
    assert "--duration must be at most 36525d" in capsys.readouterr().err


def test_the_backoff_delay_stays_finite_after_any_number_of_failures():
    """With ``--follow`` a sink is retried for as long as the forwarder runs: the attempt count
    grows without end, and 2.0 ** 1024 overflows."""
    import random

    rng = random.Random(1)
    assert 0 <= backoff_delay(5000, 0.5, 30.0, rng) <= 30.0
    assert backoff_delay(10**9, 0.0, 30.0, rng) == 0.0


# -- the property: whatever a [run] or [sensor] table holds, only a ConfigError ---------------------
RUN_KEYS = [
    "duration",
    "speed",
    "step",
    "batch_size",
    "interval",
    "jitter",
    "max_attempts",
    "backoff",
    "max_backoff",
    "on_transform_error",
]
TEXTS = st.sampled_from(
    [
        "nan",
        "inf",
        "-inf",
        "1e400",
        "30",
        "-5s",
        "max",
        "1h",
        "100000d",
        "9223372036854775808",
        "99999-01-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "",
        " ",
        "1e-320",
        "stop",
    ]
)
# values that are right for some key, so that a table is often accepted up to its one bad value
GOOD = st.sampled_from(
    [1, 2, 0.5, 7, 1000, "1h", "30", "2026-01-01T00:00:00Z", 1767225600000, "max", "dead_letter"]
)
SCALARS = st.one_of(
    GOOD,
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, -(2**63), 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXTS,
    st.text(max_size=8),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=4), SCALARS, max_size=2),
)
PER_TYPE = st.dictionaries(st.sampled_from([*ANOMALY_TYPES, "unknown"]), VALUES, max_size=3)
METRICS = st.dictionaries(
    st.sampled_from([*DEFAULT_METRICS, "unknown"]),
    st.one_of(
        VALUES,
        st.dictionaries(
            st.sampled_from(["mean", "std", "min", "max", "daily_amplitude", "x"]),
            SCALARS,
            max_size=3,
        ),
    ),
    max_size=2,
)
ANOMALIES = st.dictionaries(
    st.sampled_from(
        [
            "probability",
            "weights",
            "durations",
            "firmware_multipliers",
            "manufacturer_multipliers",
            "model_weights",
        ]
    ),
    st.one_of(VALUES, PER_TYPE),
    max_size=3,
)
# a fleet's size is kept small (a valid 100 × 99999 fleet is a memory question, not a range one)
FLEET_SIZE = st.one_of(
    st.integers(1, 3),
    st.integers(max_value=0),
    st.integers(min_value=100_000),
    TEXTS,
    VALUES.filter(lambda v: not isinstance(v, int) or not 3 < v < 100_000),
)
SENSOR_KEYS = {
    "cities": FLEET_SIZE,
    "sensors_per_city": FLEET_SIZE,
    "seed": VALUES,
    "start": VALUES,
    "rate_hz": VALUES,
    "metrics": st.one_of(VALUES, METRICS),
    "anomalies": st.one_of(VALUES, ANOMALIES),
}
# one key at a time (each parser reached), or several (the fleet's keys are read in order)
SENSOR_TABLES = st.one_of(
    st.sampled_from(sorted(SENSOR_KEYS)).flatmap(
        lambda key: SENSOR_KEYS[key].map(lambda value: {key: value})
    ),
    st.fixed_dictionaries({}, optional=SENSOR_KEYS),
)
RUN_TABLES = st.dictionaries(st.sampled_from([*RUN_KEYS, "unknown"]), VALUES, max_size=4)


@settings(max_examples=300)
@given(run=RUN_TABLES)
def test_no_run_table_gives_anything_but_a_config_error(run):
    try:
        cfg, fleet = load(run)
    except ConfigError as exc:
        assert str(exc).startswith("<config>: [run]: "), exc
        return
    # accepted: in range, and the pipeline's arithmetic on the values cannot overflow
    end = fleet.start + int((cfg.run.duration or MAX_SPAN) * 1000)
    assert end < 2**63
    assert int(cfg.run.step * 1000) > 0
    assert cfg.run.speed is None or 0 < cfg.run.speed <= 1e6
    for pause in (cfg.run.interval, cfg.run.backoff, cfg.run.max_backoff):
        assert 0 <= pause <= 7 * 86400


@settings(max_examples=300)
@given(sensor=SENSOR_TABLES)
def test_no_sensor_table_gives_anything_but_a_config_error(sensor):
    try:
        _, fleet = load(**sensor)
    except ConfigError as exc:
        assert str(exc).startswith("<config>: [sensor] (plugin 'simulated'): "), exc
        return
    # accepted: sensor time stays a valid time, and a minute of it can be simulated
    assert -62_135_596_800_000 <= fleet.start <= LATEST_START
    assert fleet.start + int(MAX_SPAN * 1000) < 2**63
    fleet.read(fleet.start + 60_000)


def test_a_subnormal_rate_is_refused_naming_the_key():
    """1e-320 > 0, but 1e6 / 1e-320 overflows: hypothesis found it as an OverflowError."""
    with pytest.raises(ConfigError, match="rate_hz must be at least 1e-6"):
        load(rate_hz="1e-320")
