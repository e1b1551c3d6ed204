"""The built-in ``simulated`` sensor: determinism, chunking, identity, statistics and labels."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch, to_epoch_ms
from cosmobac.plugins import Plugins
from cosmobac.schema import CORE_FIELDS, METRICS
from cosmobac.sensors.simulated import (
    ANOMALY_TYPES,
    DEFAULT_START,
    SimulatedFleet,
    load_cities,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Frequent events of every type, with durations long enough to span generation blocks (4096
# readings) and read calls.
BUSY: dict[str, Any] = {
    "cities": 2,
    "sensors_per_city": 2,
    "rate_hz": 5.0,
    "seed": 11,
    "anomalies": {
        "probability": 0.01,
        "weights": dict.fromkeys(ANOMALY_TYPES, 1.0),
        "durations": {
            "spike": 0,
            "dip": "400ms",
            "drift": "20m",
            "pattern": "30s",
            "stuck": "3m",
            "dropout": "10s",
            "noise": "1m",
        },
    },
}
BUSY_SPAN_MS = 45 * 60 * 1000  # 13 500 readings per sensor, a bit over three blocks


@cache
def busy_reference() -> Batch:
    fleet = SimulatedFleet(**BUSY)
    return fleet.read(fleet.start + BUSY_SPAN_MS)


def per_sensor(batch: Batch) -> dict[str, np.ndarray]:
    """Row positions of each sensor, in time order."""
    ids = batch["sensor_id"]
    return {sid: np.flatnonzero(ids == sid) for sid in np.unique(ids.astype(str))}


def runs(labels: np.ndarray) -> list[tuple[Any, int, int]]:
    """Maximal runs of equal labels: (label, first position, length)."""
    out = []
    begin = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[begin]:
            out.append((labels[begin], begin, i - begin))
            begin = i
    return out


# -- the plugin -----------------------------------------------------------------------------------
def test_registered_as_builtin_and_created_from_keyword_config() -> None:
    plugins = Plugins(entry_points=False)
    component = plugins.get("sensor", "simulated")
    assert component.factory is SimulatedFleet
    assert component.description
    assert component.accepted_keys() == [
        "cities",
        "sensors_per_city",
        "seed",
        "start",
        "rate_hz",
        "metrics",
        "anomalies",
        "memory_limit",
    ]
    fleet = plugins.create(
        "sensor",
        "simulated",
        cities=["Paris"],
        sensors_per_city=2,
        seed=3,
        anomalies={"probability": 0.01, "durations": {"drift": "2m"}},
        metrics={"temperature": {"mean": 10}},
    )
    batch = fleet.read(fleet.start + 10_000)
    assert len(batch) == 20
    assert set(batch["city"]) == {"Paris"}


def test_unknown_key_is_rejected_by_the_signature() -> None:
    with pytest.raises(TypeError, match="bogus"):
        SimulatedFleet(bogus=1)  # type: ignore[call-arg]


# -- determinism and chunking ---------------------------------------------------------------------
def test_same_config_gives_identical_batches_and_seeds_differ() -> None:
    a, b = SimulatedFleet(**BUSY), SimulatedFleet(**BUSY)
    until = a.start + 10 * 60 * 1000
    first, second = a.read(until), b.read(until)
    assert len(first) > 0 and first.equals(second)
    assert first.equals(busy_reference().select(busy_reference()["timestamp"] < until))
    other = SimulatedFleet(**{**BUSY, "seed": 12}).read(until)
    assert not np.array_equal(first["temperature"], other["temperature"], equal_nan=True)
    assert [s.model for s in a.sensors] == [s.model for s in b.sensors]


def test_numbers_as_text_mean_the_same() -> None:
    a = SimulatedFleet(seed=7, sensors_per_city=2, rate_hz=2, cities=2).read(1767225600000 + 60_000)
    b = SimulatedFleet(seed="7", sensors_per_city="2", rate_hz="2", cities="2").read(
        1767225600000 + 60_000
    )
    assert a.equals(b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-5_000, BUSY_SPAN_MS), max_size=8))
def test_reading_in_chunks_equals_reading_at_once(cuts: list[int]) -> None:
    fleet = SimulatedFleet(**BUSY)
    parts = [fleet.read(fleet.start + cut) for cut in cuts]
    parts.append(fleet.read(fleet.start + BUSY_SPAN_MS))
    assert Batch.concat(parts).equals(busy_reference())
    # each call returns exactly the rows after the latest ``until`` so far and before its own
    reached = fleet.start
    for cut, part in zip([*cuts, BUSY_SPAN_MS], parts, strict=True):
        until = fleet.start + cut
        if until <= reached:
            assert len(part) == 0
        else:
            stamps = busy_reference()["timestamp"]
            assert len(part) == np.count_nonzero((stamps >= reached) & (stamps < until))
            reached = until


def test_many_small_reads_equal_one_read() -> None:
    fleet = SimulatedFleet(**BUSY)
    step = 7_919  # ms; not a multiple of the period
    parts = [fleet.read(fleet.start + t) for t in range(0, BUSY_SPAN_MS, step)]
    parts.append(fleet.read(fleet.start + BUSY_SPAN_MS))
    assert Batch.concat(parts).equals(busy_reference())


def test_a_sensor_does_not_depend_on_the_rest_of_the_fleet() -> None:
    small = SimulatedFleet(cities=["London"], sensors_per_city=1, seed=5)
    large = SimulatedFleet(cities=["Tokyo", "London"], sensors_per_city=3, seed=5)
    until = small.start + HOUR_MS
    a = small.read(until)
    b = large.read(until)
    b = b.select(b["sensor_id"] == "london-001")
    assert a.equals(b)
    assert small.sensors[0] == large.sensors[3]


# -- shape of the output --------------------------------------------------------------------------
def test_columns_dtypes_and_order() -> None:
    batch = busy_reference()
    assert batch.columns == tuple(CORE_FIELDS)
    assert batch["timestamp"].dtype == np.int64
    for name in (*METRICS, "latitude", "longitude"):
        assert batch[name].dtype == np.float64
    for name in ("sensor_id", "city", "firmware_version", "model", "manufacturer", "anomaly_type"):
        assert batch[name].dtype == object
    assert batch["anomaly_flag"].dtype == np.bool_
    assert all(not column.flags.writeable for column in batch.to_dict().values())
    keys = list(zip(batch["timestamp"].tolist(), batch["sensor_id"].tolist(), strict=True))
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert all(isinstance(v, str) for v in batch["sensor_id"])


def test_empty_reads_have_every_column() -> None:
    fleet = SimulatedFleet()
    for until in (0, fleet.start):
        batch = fleet.read(until)
        assert len(batch) == 0
        assert batch.columns == tuple(CORE_FIELDS)
        assert batch["timestamp"].dtype == np.int64
        assert batch["temperature"].dtype == np.float64
        assert batch["anomaly_flag"].dtype == np.bool_
    with pytest.raises(TypeError, match="until"):
        fleet.read("soon")  # type: ignore[arg-type]


def test_start_and_rate() -> None:
    default = SimulatedFleet()
    assert default.start == to_epoch_ms(DEFAULT_START) == to_epoch_ms("2026-01-01T00:00:00Z")
    assert SimulatedFleet(start="2026-03-01T12:00:00+02:00").start == to_epoch_ms(
        "2026-03-01T10:00:00Z"
    )
    assert SimulatedFleet(start=1_700_000_000_000).start == 1_700_000_000_000
    fleet = SimulatedFleet(rate_hz=4.0, sensors_per_city=2)
    batch = fleet.read(fleet.start + 60_000)
    assert len(batch) == 3 * 2 * 4 * 60
    assert batch["timestamp"].min() >= fleet.start
    for sid, rows in per_sensor(batch).items():
        ts = batch["timestamp"][rows]
        assert ts[0] < fleet.start + 250, sid
        assert set(np.diff(ts).tolist()) == {250}
    phases = {s.phase_ms for s in fleet.sensors}
    assert len(phases) > 1


# -- identity -------------------------------------------------------------------------------------
def test_city_data_file() -> None:
    cities = load_cities()
    assert len(cities) >= 50
    assert len({c.name for c in cities}) == len(cities)
    assert len({c.slug for c in cities}) == len(cities)
    assert len({c.country for c in cities}) >= 30
    for city in cities:
        assert -90 <= city.latitude <= 90 and -180 <= city.longitude <= 180
    by_name = {c.name: c for c in cities}
    assert by_name["London"].latitude == pytest.approx(51.51, abs=0.05)
    assert by_name["Sydney"].longitude == pytest.approx(151.21, abs=0.05)
    assert by_name["São Paulo"].latitude < 0 and by_name["São Paulo"].slug == "sao-paulo"


def test_identity_per_sensor() -> None:
    fleet = SimulatedFleet(cities=5, sensors_per_city=6, seed=2)
    cities = load_cities()[:5]
    assert fleet.cities == cities
    assert len(fleet.sensors) == 30
    ids = [s.sensor_id for s in fleet.sensors]
    assert len(set(ids)) == 30
    assert ids[:2] == ["london-001", "london-002"]
    centre = {c.name: c for c in cities}
    for sensor in fleet.sensors:
        city = centre[sensor.city]
        assert sensor.sensor_id.startswith(city.slug + "-")
        assert abs(sensor.latitude - city.latitude) < 0.2
        assert abs(sensor.longitude - city.longitude) < 0.2
        assert (sensor.latitude, sensor.longitude) != (city.latitude, city.longitude)
    assert len({s.firmware_version for s in fleet.sensors}) > 1
    assert len({s.model for s in fleet.sensors}) > 1
    assert len({s.manufacturer for s in fleet.sensors}) > 1
    batch = fleet.read(fleet.start + 5_000)
    for sensor in fleet.sensors:
        rows = batch.select(batch["sensor_id"] == sensor.sensor_id)
        assert set(rows["city"]) == {sensor.city}
        assert set(rows["latitude"]) == {sensor.latitude}
        assert set(rows["longitude"]) == {sensor.longitude}
        assert set(rows["firmware_version"]) == {sensor.firmware_version}
        assert set(rows["model"]) == {sensor.model}
        assert set(rows["manufacturer"]) == {sensor.manufacturer}


def test_cities_by_name() -> None:
    fleet = SimulatedFleet(cities=["tokyo", "SAO PAULO", "Reykjavik"], sensors_per_city=1)
    assert [c.name for c in fleet.cities] == ["Tokyo", "São Paulo", "Reykjavík"]
    assert [s.sensor_id for s in fleet.sensors] == ["tokyo-001", "sao-paulo-001", "reykjavik-001"]
    assert SimulatedFleet(cities="Lima", sensors_per_city=1).sensors[0].city == "Lima"


def test_unknown_city_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"cities.*'Lodnon'.*did you mean 'London'"):
        SimulatedFleet(cities=["Lodnon"])


# -- statistics -----------------------------------------------------------------------------------
def test_normal_readings_follow_the_configured_distribution() -> None:
    metrics = {name: {"daily_amplitude": 0.0} for name in METRICS}
    metrics["temperature"] = {"mean": 12.0, "std": 3.0, "daily_amplitude": 0.0}
    fleet = SimulatedFleet(
        cities=4, sensors_per_city=5, rate_hz=0.5, metrics=metrics, anomalies={"probability": 0}
    )
    batch = fleet.read(fleet.start + 4 * HOUR_MS)
    assert not batch["anomaly_flag"].any()
    spec = fleet.metrics
    for name in METRICS:
        values = batch[name]
        assert np.isfinite(values).all()
        mean, std = spec[name].mean, spec[name].std
        # per-sensor calibration offsets are N(0, 0.2·std): the fleet mean is within a few tenths
        assert abs(values.mean() - mean) < 0.25 * std, name
        for rows in per_sensor(batch).values():
            assert values[rows].std() == pytest.approx(std, rel=0.06), name
    assert batch["temperature"].mean() == pytest.approx(12.0, abs=0.75)


def test_normal_readings_stay_within_min_and_max() -> None:
    metrics = {"temperature": {"mean": 20, "std": 5, "min": 17, "max": 24}}
    fleet = SimulatedFleet(metrics=metrics, anomalies={"probability": 0.01}, seed=4)
    batch = fleet.read(fleet.start + HOUR_MS)
    normal = batch.select(~batch["anomaly_flag"])
    temperature = normal["temperature"]
    assert temperature.min() == 17 and temperature.max() == 24  # clipping is active
    for name in METRICS:
        spec = fleet.metrics[name]
        assert (normal[name] >= spec.min).all() and (normal[name] <= spec.max).all()


def test_daily_cycle_peaks_in_the_afternoon() -> None:
    fleet = SimulatedFleet(
        cities=["Tokyo", "New York"], sensors_per_city=2, rate_hz=0.05, anomalies={"probability": 0}
    )
    batch = fleet.read(fleet.start + 2 * DAY_MS)
    longitude = batch["longitude"]
    local = ((batch["timestamp"] % DAY_MS) / HOUR_MS + longitude / 15) % 24
    afternoon = (local > 13) & (local < 17)
    night = (local > 1) & (local < 5)
    for city in ("Tokyo", "New York"):
        rows = batch["city"] == city
        temperature = batch["temperature"]
        humidity = batch["humidity"]
        warm = temperature[rows & afternoon].mean() - temperature[rows & night].mean()
        assert warm > 8  # amplitude 5: about 2·5·cos(30°) ≈ 8.7 between the two windows
        assert humidity[rows & afternoon].mean() < humidity[rows & night].mean() - 10


# -- labels ---------------------------------------------------------------------------------------
def test_every_type_appears_and_labels_are_consistent() -> None:
    batch = busy_reference()
    flag = batch["anomaly_flag"]
    kinds = batch["anomaly_type"]
    assert set(kinds[flag]) == set(ANOMALY_TYPES)
    assert all(k is None for k in kinds[~flag])
    assert 0.05 < flag.mean() < 0.95


def test_durations_are_honoured_and_events_never_touch() -> None:
    fleet = SimulatedFleet(**BUSY)
    lengths = {t: max(1, round(s * fleet.rate_hz)) for t, s in fleet.anomalies.durations.items()}
    assert lengths == {
        "spike": 1,
        "dip": 2,
        "drift": 6000,
        "pattern": 150,
        "stuck": 900,
        "dropout": 50,
        "noise": 300,
    }
    batch = busy_reference()
    checked = dict.fromkeys(ANOMALY_TYPES, 0)
    for rows in per_sensor(batch).values():
        labels = batch["anomaly_type"][rows]
        sensor_runs = runs(labels)
        for i, (kind, begin, length) in enumerate(sensor_runs):
            if kind is None:
                continue
            # events are separated by at least one normal reading
            if i + 1 < len(sensor_runs):
                assert sensor_runs[i + 1][0] is None
            if begin + length < len(labels):  # the last run may continue past the data
                assert length == lengths[kind], (kind, begin)
                checked[kind] += 1
    assert all(checked[t] > 0 for t in ANOMALY_TYPES if t != "drift")


@cache
def overlay() -> tuple[Batch, Batch, SimulatedFleet]:
    """The busy fleet and the same fleet without anomalies: normal values are identical."""
    fleet = SimulatedFleet(**BUSY)
    plain = SimulatedFleet(**{**BUSY, "anomalies": {**BUSY["anomalies"], "probability": 0}})
    until = fleet.start + BUSY_SPAN_MS
    return fleet.read(until), plain.read(until), fleet


def test_anomalies_overlay_the_normal_readings() -> None:
    busy, plain, _ = overlay()
    normal = ~busy["anomaly_flag"]
    assert not plain["anomaly_flag"].any()
    assert np.array_equal(busy["timestamp"], plain["timestamp"])
    for name in METRICS:
        assert np.array_equal(busy[name][normal], plain[name][normal])
        assert np.isfinite(plain[name]).all()


def _metrics(batch: Batch, rows: np.ndarray) -> np.ndarray:
    return np.stack([batch[name][rows] for name in METRICS])


def test_each_anomaly_type_changes_values_detectably() -> None:
    busy, plain, fleet = overlay()
    spread = np.array([fleet.metrics[m].spread for m in METRICS])[:, None]
    kinds = busy["anomaly_type"]
    a, b = _metrics(busy, np.arange(len(busy))), _metrics(plain, np.arange(len(plain)))
    delta = (a - b) / spread  # change in units of the metric's spread
    for kind in ("spike", "dip", "drift", "pattern", "noise"):
        rows = kinds == kind
        changed = delta[:, rows] != 0
        # one metric per event; a pattern or drift row may by chance be unchanged
        assert (changed.sum(axis=0) <= 1).all(), kind
    spike = delta[:, kinds == "spike"]
    assert (spike.max(axis=0) >= 4.5).all()
    dip = delta[:, kinds == "dip"]
    assert (dip.min(axis=0) <= -4.5).all()
    noise = delta[:, kinds == "noise"]
    assert np.abs(noise).max(axis=0).mean() > 2.0  # σ 3–6 spreads: |N| averages ≈ 0.8σ
    pattern = delta[:, kinds == "pattern"]
    assert np.abs(pattern).max(axis=0).max() >= 4.0
    # drift: the offset grows linearly, reaching 6–10 spreads at the event's end
    ids = busy["sensor_id"]
    for sid in np.unique(ids.astype(str)):
        rows = np.flatnonzero(ids == sid)
        for kind, begin, length in runs(kinds[rows]):
            if kind != "drift" or begin + length == len(rows):
                continue
            event = delta[:, rows[begin : begin + length]]
            metric = int(np.argmax(np.abs(event[:, -1])))
            offset = event[metric]
            assert 6.0 <= abs(offset[-1]) <= 10.0
            steps = np.diff(offset)
            assert np.allclose(steps, steps[0])


def test_dropout_is_missing_and_stuck_is_frozen() -> None:
    busy, plain, _ = overlay()
    kinds = busy["anomaly_type"]
    values = _metrics(busy, np.arange(len(busy)))
    dropout = kinds == "dropout"
    assert dropout.any()
    assert np.isnan(values[:, dropout]).all()
    assert not np.isnan(values[:, ~dropout]).any()
    ids = busy["sensor_id"]
    stuck_runs = 0
    for sid in np.unique(ids.astype(str)):
        rows = np.flatnonzero(ids == sid)
        for kind, begin, length in runs(kinds[rows]):
            if kind != "stuck":
                continue
            event = values[:, rows[begin : begin + length]]
            assert (event == event[:, :1]).all()
            # frozen at the value of the event's first reading
            onset = _metrics(plain, rows[begin : begin + 1])
            assert np.array_equal(event[:, :1], onset)
            stuck_runs += 1
    assert stuck_runs > 0


def test_firmware_multiplier_raises_the_anomaly_rate() -> None:
    versions = ("1.3.9", "1.4.2", "1.5.0", "2.0.0-beta")
    even = dict.fromkeys(versions, 1.0)
    base = {"cities": 6, "sensors_per_city": 5, "seed": 1, "rate_hz": 0.5}
    calm = SimulatedFleet(**base, anomalies={"firmware_multipliers": even})
    beta = SimulatedFleet(**base, anomalies={"firmware_multipliers": {**even, "2.0.0-beta": 10.0}})
    assert any(s.firmware_version == "2.0.0-beta" for s in beta.sensors)
    until = calm.start + 6 * HOUR_MS
    a, b = calm.read(until), beta.read(until)
    is_beta = np.isin(b["firmware_version"].astype(str), ["2.0.0-beta"])
    assert b["anomaly_flag"][is_beta].mean() > 3 * a["anomaly_flag"][is_beta].mean()
    # the other sensors are untouched
    assert a.select(~is_beta).equals(b.select(~is_beta))
    for sensor in beta.sensors:
        expected = 0.002 * (10.0 if sensor.firmware_version == "2.0.0-beta" else 1.0)
        multiplier = beta.anomalies.manufacturer_multipliers[sensor.manufacturer]
        assert sensor.anomaly_probability == pytest.approx(expected * multiplier)


def test_model_weights_steer_the_type() -> None:
    only_dropout = dict.fromkeys(ANOMALY_TYPES, 0.0) | {"dropout": 1.0}
    fleet = SimulatedFleet(
        sensors_per_city=6,
        anomalies={
            "probability": 0.01,
            "model_weights": {"EnviroNode 100": only_dropout, "EnviroNode 200": only_dropout},
            "weights": {"spike": 1.0, "dropout": 1.0},
        },
    )
    batch = fleet.read(fleet.start + HOUR_MS)
    models = batch["model"].astype(str)
    kinds = batch["anomaly_type"]
    flagged = batch["anomaly_flag"]
    enviro = np.char.startswith(models, "EnviroNode")
    assert set(kinds[flagged & enviro]) == {"dropout"}
    assert "spike" in set(kinds[flagged & ~enviro])


def test_default_demo_is_a_few_percent_anomalous() -> None:
    fleet = SimulatedFleet(rate_hz=0.2)
    batch = fleet.read(fleet.start + 6 * HOUR_MS)
    assert 0.01 < batch["anomaly_flag"].mean() < 0.08


# -- configuration errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            {"sensors_per_city": 0},
            ValueError,
            "sensors_per_city must be between 1 and 99999, got 0",
        ),
        ({"sensors_per_city": 2.5}, TypeError, "sensors_per_city must be an integer"),
        ({"cities": 0}, ValueError, "cities must be between 1 and"),
        ({"cities": ["London", "london"]}, ValueError, "cities lists 'London' twice"),
        ({"cities": []}, ValueError, "cities must name at least one city"),
        ({"cities": {"London": 1}}, TypeError, "cities must be a count or a list"),
        ({"seed": -1}, ValueError, "seed must be ≥ 0"),
        ({"seed": True}, TypeError, "seed must be an integer"),
        ({"rate_hz": 0}, ValueError, "rate_hz must be > 0"),
        ({"rate_hz": 2000}, ValueError, "rate_hz must be > 0 and ≤ 1000"),
        ({"rate_hz": "fast"}, ValueError, "rate_hz must be a number"),
        ({"start": "2026-01-01T00:00:00"}, ValueError, "start: .*no time zone"),
        ({"start": "yesterday"}, ValueError, "start: "),
        ({"start": 1.5}, TypeError, "start must be epoch milliseconds"),
        (
            {"metrics": {"temprature": {}}},
            ValueError,
            "metrics: unknown metric 'temprature'.*'temperature'",
        ),
        (
            {"metrics": {"humidity": {"sd": 1}}},
            ValueError,
            "metrics.humidity: unknown setting 'sd'.*'std'",
        ),
        ({"metrics": {"humidity": {"std": -1}}}, ValueError, r"metrics.humidity.std must be ≥ 0"),
        (
            {"metrics": {"voltage": {"min": 14, "max": 10}}},
            ValueError,
            "metrics.voltage.min must be < max",
        ),
        (
            {"metrics": {"voltage": {"mean": 20}}},
            ValueError,
            r"metrics.voltage.mean must lie within",
        ),
        (
            {"metrics": {"voltage": {"mean": "high"}}},
            ValueError,
            "metrics.voltage.mean must be a number",
        ),
        (
            {"metrics": {"voltage": {"mean": float("nan")}}},
            ValueError,
            "metrics.voltage.mean must be a finite",
        ),
        ({"metrics": [1]}, TypeError, "metrics must be a table"),
        ({"anomalies": {"probabilty": 0.1}}, ValueError, "anomalies: unknown setting 'probabilty'"),
        (
            {"anomalies": {"probability": 1.5}},
            ValueError,
            "anomalies.probability must be between 0 and 1",
        ),
        (
            {"anomalies": {"weights": {"spikes": 1}}},
            ValueError,
            "anomalies.weights: unknown anomaly type 'spikes'.*'spike'",
        ),
        (
            {"anomalies": {"weights": {"dip": -1}}},
            ValueError,
            "anomalies.weights.dip must be between 0 and 1e",
        ),
        (
            {"anomalies": {"weights": dict.fromkeys(ANOMALY_TYPES, 0)}},
            ValueError,
            "anomalies.weights must give at least one",
        ),
        ({"anomalies": {"durations": {"drift": "soon"}}}, ValueError, "anomalies.durations.drift"),
        ({"anomalies": {"durations": {"drift": -3}}}, ValueError, "anomalies.durations.drift"),
        (
            {"anomalies": {"firmware_multipliers": {"2.0.0beta": 2}}},
            ValueError,
            "anomalies.firmware_multipliers: unknown firmware version '2.0.0beta'.*'2.0.0-beta'",
        ),
        (
            {"anomalies": {"manufacturer_multipliers": {"Acme": 2}}},
            ValueError,
            "anomalies.manufacturer_multipliers: unknown manufacturer 'Acme'",
        ),
        (
            {"anomalies": {"model_weights": {"EnviroNode 300": {}}}},
            ValueError,
            "anomalies.model_weights: unknown model 'EnviroNode 300'",
        ),
        (
            {"anomalies": {"model_weights": {"TerraSense X1": {"stuk": 1}}}},
            ValueError,
            r"anomalies.model_weights.TerraSense X1: unknown anomaly type 'stuk'.*'stuck'",
        ),
        (
            {"anomalies": {"model_weights": {"TerraSense X1": 3}}},
            TypeError,
            "anomalies.model_weights.TerraSense X1 must be a table",
        ),
        ({"anomalies": "often"}, TypeError, "anomalies must be a table"),
    ],
)
def test_bad_config_names_the_key(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SimulatedFleet(**config)


def test_durations_accept_seconds_and_text() -> None:
    fleet = SimulatedFleet(
        anomalies={"durations": {"drift": "1h30m", "noise": 45, "stuck": "2.5s"}}
    )
    assert fleet.anomalies.durations["drift"] == 5400
    assert fleet.anomalies.durations["noise"] == 45
    assert fleet.anomalies.durations["stuck"] == 2.5
    assert fleet.anomalies.durations["spike"] == 0  # defaults kept
    assert math.isclose(fleet.anomalies.firmware_multipliers["2.0.0-beta"], 2.5)


def test_seek_skips_readings_without_changing_later_ones():
    fleet = SimulatedFleet(seed=3, cities=2, sensors_per_city=2)
    start = fleet.start
    whole = fleet.read(start + 3_000_000)
    resumed = SimulatedFleet(seed=3, cities=2, sensors_per_city=2)
    resumed.seek(start + 1_000_000)
    tail = resumed.read(start + 3_000_000)
    expected = whole.select(whole["timestamp"] >= start + 1_000_000)
    assert tail.equals(expected)
