"""The one parser of configuration values (``cosmobac.values``) and the read-only-array helper."""

from __future__ import annotations

import math
import re

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cosmobac.batch import read_only
from cosmobac.durations import parse_duration as old_parse_duration
from cosmobac.values import (
    NO,
    YES,
    choice,
    click_callback,
    data_flag,
    duration,
    flag,
    fraction,
    integer,
    parse_duration,
    real,
    size,
)

keys = st.from_regex(r"[a-z][a-z_.]{0,20}", fullmatch=True)
junk = st.text(min_size=1, max_size=12).filter(
    lambda t: not re.fullmatch(r"\s*[\d.a-zA-Z ]*\s*", t)
)


# -- flags ----------------------------------------------------------------------------------------
@given(st.sampled_from(sorted(YES | NO)), st.sampled_from([str.lower, str.upper, str.title]))
def test_flag_reads_every_word_in_any_case(word: str, case) -> None:
    assert flag("k", f" {case(word)} ") is (word in YES)


def test_one_vocabulary_for_config_and_data() -> None:
    assert not YES & NO
    for word in YES:
        assert flag("k", word) is True and data_flag(word) is True
    for word in NO:
        assert flag("k", word) is False and data_flag(word) is False


@given(keys, st.text(max_size=10).filter(lambda t: t.strip().lower() not in YES | NO))
def test_flag_error_names_key_value_and_the_words(key: str, text: str) -> None:
    with pytest.raises(ValueError) as info:
        flag(key, text)
    message = str(info.value)
    assert message.startswith(f"{key} must be true or false, got {text!r}")
    assert "yes/no" in message and "on/off" in message


@pytest.mark.parametrize("value", [1, 0, None, 1.0, [True]])
def test_flag_refuses_other_types(value) -> None:
    with pytest.raises(TypeError, match="^fsync must be true or false"):
        flag("fsync", value)


def test_data_flag_reads_missing_as_false_and_numbers_by_truth() -> None:
    assert [data_flag(v) for v in (None, math.nan, "", "  ", 0, 0.0, "0.0")] == [False] * 7
    assert [data_flag(v) for v in (1, 2, -1.5, "2", " 1e3 ", np.int64(3), np.bool_(True))] == [
        True
    ] * 7
    with pytest.raises(ValueError, match="'maybe' is not a flag"):
        data_flag("maybe")
    with pytest.raises(ValueError, match="is not a flag"):
        data_flag(b"1")


# -- numbers --------------------------------------------------------------------------------------
@given(keys, st.integers(-(10**18), 10**18))
def test_integer_round_trips_through_text(key: str, number: int) -> None:
    assert integer(key, number) == number
    assert integer(key, f" {number} ") == number
    assert integer(key, np.int64(number)) == number


@given(keys, st.floats(allow_nan=False, allow_infinity=False))
def test_real_round_trips_through_text(key: str, number: float) -> None:
    assert real(key, number) == number
    assert real(key, repr(number)) == number


@given(keys, st.integers(-100, 100), st.integers(-100, 100), st.integers(-200, 200))
def test_integer_bounds_are_inclusive_and_named(key: str, low: int, high: int, n: int) -> None:
    low, high = min(low, high), max(low, high)
    if low <= n <= high:
        assert integer(key, n, minimum=low, maximum=high) == n
    else:
        with pytest.raises(ValueError) as info:
            integer(key, n, minimum=low, maximum=high)
        assert str(info.value) == f"{key} must be between {low} and {high}, got {n!r}"


def test_bound_messages_say_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"^seed must be ≥ 0, got -1$"):
        integer("seed", -1, minimum=0)
    with pytest.raises(ValueError, match=r"^n must be ≤ 64, got '65'$"):
        integer("n", "65", maximum=64)
    with pytest.raises(ValueError, match=r"^rate_hz must be > 0 and ≤ 1000, got 0$"):
        real("rate_hz", 0, above=0, maximum=1000)
    with pytest.raises(ValueError, match=r"^p must be between 0 and 1, got 1.5$"):
        fraction("p", 1.5)
    assert fraction("p", "0.25") == 0.25


@given(keys, st.one_of(junk, st.sampled_from(["nan", "inf", "-inf", "1,5", ""])))
def test_number_errors_name_the_key_and_show_the_value(key: str, text: str) -> None:
    with pytest.raises(ValueError) as info:
        real(key, text)
    assert str(info.value).startswith(f"{key} must be a ")
    assert repr(text) in str(info.value)
    with pytest.raises(ValueError) as info:
        integer(key, text)
    assert str(info.value) == f"{key} must be an integer, got {text!r}"


@pytest.mark.parametrize("value", [True, None, [1], 2.5])
def test_integer_refuses_other_types(value) -> None:
    with pytest.raises(TypeError, match="^count must be an integer"):
        integer("count", value)


@pytest.mark.parametrize("value", [True, None, [1], {}])
def test_real_refuses_other_types(value) -> None:
    with pytest.raises(TypeError, match="^gain must be a number"):
        real("gain", value)


# -- durations ------------------------------------------------------------------------------------
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(list(_UNIT_SECONDS))),
        min_size=1,
        max_size=4,
    )
)
def test_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * _UNIT_SECONDS[unit] for n, unit in parts)
    assert duration("d", text) == pytest.approx(expected)
    assert duration("d", text.upper()) == pytest.approx(expected)


@given(st.floats(0, 1e9, allow_nan=False))
def test_duration_of_seconds_round_trips(seconds: float) -> None:
    assert duration("d", seconds) == seconds
    assert duration("d", repr(seconds)) == seconds
    assert parse_duration(seconds) == old_parse_duration(seconds) == seconds


@given(keys, junk)
def test_duration_errors_name_the_key_and_show_examples(key: str, text: str) -> None:
    with pytest.raises(ValueError) as info:
        duration(key, text)
    assert str(info.value).startswith(f"{key}: {text!r} is not a duration; write e.g. '30s'")


def test_duration_limits() -> None:
    assert duration("t", "1h30m") == 5400.0 and duration("t", "250 ms") == 0.25
    with pytest.raises(ValueError, match=r"^t must be a finite duration of 0 or more, got -3$"):
        duration("t", -3)
    with pytest.raises(ValueError, match=r"^timeout must be longer than zero, got '0s'$"):
        duration("timeout", "0s", positive=True)
    with pytest.raises(TypeError, match="^t must be a duration such as"):
        duration("t", True)
    with pytest.raises(ValueError, match="^retention: 'soon' is not a duration"):
        parse_duration("soon", key="retention")


# -- sizes ----------------------------------------------------------------------------------------
_UNIT_BYTES = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


@given(st.integers(1, 10**6), st.sampled_from(list(_UNIT_BYTES)), st.booleans())
def test_size_round_trips(number: int, unit: str, spaced: bool) -> None:
    text = f"{number}{' ' if spaced else ''}{unit}"
    assert size("memory", text) == number * _UNIT_BYTES[unit]
    assert size("memory", text.lower()) == number * _UNIT_BYTES[unit]
    assert size("memory", number * _UNIT_BYTES[unit]) == number * _UNIT_BYTES[unit]


def test_size_examples_and_errors() -> None:
    assert size("m", "64MB") == 64_000_000
    assert size("m", "1GiB") == 1 << 30
    assert size("m", "1.5KiB") == 1536
    with pytest.raises(ValueError, match=r"^memory_limit: 'lots' is not a size; write e.g. '64MB'"):
        size("memory_limit", "lots")
    with pytest.raises(ValueError, match="^m must be a size of at least one byte, got 0$"):
        size("m", 0)
    with pytest.raises(TypeError, match="^m must be a size such as"):
        size("m", [1])


@given(keys, junk)
def test_size_errors_name_the_key(key: str, text: str) -> None:
    with pytest.raises(ValueError) as info:
        size(key, text)
    assert str(info.value).startswith(f"{key}: {text!r} is not a size")


# -- choices --------------------------------------------------------------------------------------
@given(st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), min_size=1, max_size=5, unique=True))
def test_choice_returns_the_option_named_in_any_case(options: list[str]) -> None:
    for option in options:
        assert choice("k", option, options) == option
        assert choice("k", f" {option.upper()} ", options) == option


@given(keys, st.text(max_size=10).filter(lambda t: t.strip().casefold() not in {"all", "any"}))
def test_choice_errors_name_the_key_and_list_the_options(key: str, text: str) -> None:
    with pytest.raises(ValueError) as info:
        choice(key, text, ("all", "any"))
    assert str(info.value).startswith(f"{key} must be one of 'all', 'any'; got {text!r}")


def test_choice_suggests_a_close_option_and_refuses_other_types() -> None:
    with pytest.raises(ValueError, match=r"got 'ful'; did you mean 'full'\?$"):
        choice("synchronous", "ful", ("normal", "full"))
    with pytest.raises(TypeError, match="^synchronous must be one of 'normal', 'full'; got 1"):
        choice("synchronous", 1, ("normal", "full"))


# -- read-only arrays -----------------------------------------------------------------------------
def test_read_only_freezes_and_copies_views_of_shared_data() -> None:
    base = np.arange(6.0)
    own = read_only(np.arange(3.0))
    assert not own.flags.writeable
    view = read_only(base[2:])
    assert not view.flags.writeable and base.flags.writeable
    base[2] = 99.0
    assert view[0] == 2.0  # a copy: writing the base does not reach it
    private = read_only(base[2:], private=True)
    assert not private.flags.writeable and np.shares_memory(private, base)
    assert read_only(own) is own


def test_click_callback_parses_an_option_and_names_it_in_a_usage_error():
    @click.command()
    @click.option("--timeout", callback=click_callback(duration, positive=True))
    @click.option("--memory", callback=click_callback(size))
    def command(timeout, memory):
        click.echo(f"{timeout!r} {memory!r}")

    runner = CliRunner()
    assert (
        runner.invoke(command, ["--timeout", "1m30s", "--memory", "2KiB"]).output == "90.0 2048\n"
    )
    assert runner.invoke(command, []).output == "None None\n"  # unset options stay None
    bad = runner.invoke(command, ["--timeout", "soon"])
    assert bad.exit_code == 2
    assert (
        "Invalid value for '--timeout'" in bad.output
        and "--timeout: 'soon' is not a duration" in bad.output
    )
    zero = runner.invoke(command, ["--timeout", "0"])
    assert zero.exit_code == 2 and "--timeout" in zero.output


def test_a_duration_can_have_a_largest_value_named_in_its_unit():
    assert duration("run.interval", "7d", maximum=7 * 86400) == 7 * 86400
    with pytest.raises(ValueError, match=r"^run.interval must be at most 7d \(604800 seconds\)"):
        duration("run.interval", "8d", maximum=7 * 86400)
    with pytest.raises(ValueError, match=r"^x must be at most 90m \(5400 seconds\), got 5401$"):
        duration("x", 5401, maximum=5400)


def test_duration_minimum_names_the_key_and_the_bound_in_the_users_units():
    assert duration("step", "1ms", minimum=0.001) == 0.001
    with pytest.raises(ValueError, match=r"step must be at least 1ms \(0.001 seconds\), got 6e-05"):
        duration("step", 6e-05, minimum=0.001)
