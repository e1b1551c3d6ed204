"""``validate`` and ``convert``: invalid values become NaN with a reason (never 0.0); units."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.config import parse_config
from cosmobac.transforms.convert import Convert, convert_values
from cosmobac.transforms.validate import DEFAULT_RANGES, Validate


def batch(**columns):
    n = len(next(iter(columns.values())))
    return Batch.from_columns(
        timestamp=np.arange(n, dtype=np.int64), sensor_id=np.full(n, "s", dtype=object), **columns
    )


def test_out_of_range_and_non_finite_values_become_nan_with_reasons():
    out = Validate()(
        batch(
            temperature=[20.0, np.nan, 100.0],
            humidity=[50.0, 165.2, -1.0],
            pressure=[1013.0, np.inf, 1000.0],
        )
    )
    assert np.array_equal(out["temperature"], [20.0, np.nan, np.nan], equal_nan=True)
    assert np.array_equal(out["humidity"], [50.0, np.nan, np.nan], equal_nan=True)
    assert out["invalid_reason"].tolist() == [
        None,
        "humidity: 165.2 above max 100; pressure: not finite (inf)",
        "temperature: 100 above max 80; humidity: -1 below min 0",
    ]


def test_text_that_is_not_a_number_is_invalid_and_numbers_in_text_are_read():
    raw = np.array(["21.5", "warm", None, True], dtype=object)
    out = Validate(ranges={"extra_temp": {"min": -50, "max": 50}})(
        batch(temperature=np.zeros(4)).with_columns(extra_temp=raw)
    )
    assert np.array_equal(out["extra_temp"], [21.5, np.nan, np.nan, np.nan], equal_nan=True)
    assert out["invalid_reason"].tolist() == [
        None,
        "extra_temp: not a number ('warm')",
        None,  # None is missing, not invalid
        "extra_temp: not a number (True)",
    ]


def test_ranges_merge_over_the_defaults_and_can_be_turned_off():
    v = Validate(ranges={"humidity": {"max": 90}, "pressure": False, "co2": {"min": 0}})
    assert v.ranges["humidity"] == (None, 90.0)
    assert "pressure" not in v.ranges and v.ranges["co2"] == (0.0, None)
    assert v.ranges["temperature"] == DEFAULT_RANGES["temperature"]
    out = v(batch(pressure=[5000.0]))
    assert out["pressure"][0] == 5000.0 and out["invalid_reason"][0] is None


def test_existing_reasons_are_kept_and_a_custom_column_is_used():
    first = Validate(reason_column="why")(batch(humidity=[150.0]))
    second = Validate(
        reason_column="why", ranges={"humidity": {"max": 200}, "temperature": {"max": -100}}
    )(first.with_columns(temperature=[20.0]))
    assert second["why"][0] == "humidity: 150 above max 100; temperature: 20 above max -100"


@pytest.mark.parametrize(
    ("kwargs", "error", "key"),
    [
        ({"ranges": {"humidity": {"min": 10, "max": 5}}}, ValueError, "ranges.humidity"),
        ({"ranges": {"humidity": {"low": 1}}}, TypeError, "ranges.humidity"),
        ({"ranges": {"humidity": {"min": "cold"}}}, ValueError, "ranges.humidity.min"),
        ({"ranges": [1, 2]}, TypeError, "ranges"),
        ({"reason_column": "bad column"}, ValueError, "reason_column"),
    ],
)
def test_bad_settings_name_the_key(kwargs, error, key):
    with pytest.raises(error, match=key):
        Validate(**kwargs)


def test_validate_in_a_pipeline_file():
    config = parse_config(
        {"transforms": [{"plugin": "validate", "ranges": {"humidity": {"max": 95}}}]}
    )
    assert config.transforms[0].build().ranges["humidity"] == (None, 95.0)


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 80.0, -80.0, 100.0, 1100.0, 300.0]),
)


@given(
    temperature=st.lists(finite_or_not, min_size=1, max_size=30),
    data=st.data(),
)
def test_validate_properties(temperature, data):
    n = len(temperature)
    humidity = data.draw(st.lists(finite_or_not, min_size=n, max_size=n))
    rows = batch(temperature=temperature, humidity=humidity).with_columns(seq=np.arange(n))
    out = Validate()(rows)
    assert len(out) == n and out["seq"].tolist() == list(range(n))  # no row dropped
    reasons = out["invalid_reason"]
    for name, (lo, hi) in (("temperature", (-80, 80)), ("humidity", (0, 100))):
        before, after = rows[name], out[name]
        valid = np.isfinite(before) & (before >= lo) & (before <= hi)
        missing = np.isnan(before)
        # valid values pass unchanged; everything else is NaN — never replaced by another number
        assert np.array_equal(after[valid], before[valid])
        assert np.isnan(after[~valid]).all()
        for i in np.flatnonzero(~valid & ~missing):
            assert reasons[i] is not None and f"{name}:" in reasons[i]
        for i in np.flatnonzero(missing):
            assert reasons[i] is None or f"{name}:" not in reasons[i]  # missing is not invalid
    invalidated = np.zeros(n, dtype=bool)
    for name in ("temperature", "humidity"):
        invalidated |= ~np.isnan(rows[name]) & np.isnan(out[name])
    assert [r is not None for r in reasons] == invalidated.tolist()
    zeros_out = (out["temperature"] == 0.0).sum()
    assert zeros_out == (rows["temperature"] == 0.0).sum()  # no 0.0 appears from nowhere


# -- convert --------------------------------------------------------------------------------------
def test_convert_units_in_place_or_beside():
    rows = batch(temperature=[0.0, 100.0, np.nan], pressure=[1013.25, 1000.0, 950.0])
    out = Convert(units={"temperature": "degF", "pressure": "kPa"})(rows)
    assert np.allclose(out["temperature"], [32.0, 212.0, np.nan], equal_nan=True)
    assert np.allclose(out["pressure"], [101.325, 100.0, 95.0])
    beside = Convert(units={"temperature": "K"}, suffix="_k")(rows)
    assert beside["temperature"][0] == 0.0 and beside["temperature_k"][0] == pytest.approx(273.15)


def test_convert_from_declared_units_and_round_trips():
    rows = batch(temperature=[68.0])
    out = Convert(units={"temperature": "C"}, source_units={"temperature": "F"})(rows)
    assert out["temperature"][0] == pytest.approx(20.0)
    for unit in ("Pa", "bar", "psi", "inHg", "mmHg", "atm", "mbar"):
        assert convert_values(convert_values(1013.25, "hPa", unit), unit, "hPa") == pytest.approx(
            1013.25
        )
    assert convert_values(1.0, "atm", "psi") == pytest.approx(14.6959, rel=1e-4)
    assert math.isnan(convert_values(np.nan, "V", "mV"))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"units": {"temperature": "furlongs"}}, "units.temperature"),
        ({"units": {"temperature": "hPa"}}, "units.temperature"),
        ({"units": {"co2": "ppm"}}, "source_units.co2"),
        ({"units": {}}, "units"),
        (
            {"units": {"temperature": "F"}, "source_units": {"humidity": "%"}},
            "source_units.humidity",
        ),
        ({"units": {"temperature": "F"}, "suffix": "-f"}, "suffix"),
    ],
)
def test_convert_bad_settings_name_the_key(kwargs, key):
    with pytest.raises((ValueError, TypeError), match=key):
        Convert(**kwargs)
