from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmobac.config import RunConfig, expand_env, load_config, parse_config
from cosmobac.errors import ConfigError

GOOD = """
[sensor]
plugin = "simulated"
cities = 2
sensors_per_city = 3
seed = 7
[store]
plugin = "sqlite"
path = "${DATA_DIR:-/tmp}/edge.db"
[[transforms]]
plugin = "calibrate"
columns = { temperature = { gain = 1.0, offset = 0.5 } }
[[sinks]]
plugin = "jsonl"
path = "${OUT}"
[run]
duration = "6h"
speed = "max"
"""


def write(tmp_path, text):
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(text))
    return path


def parse(text, env=None):
    import tomllib

    return parse_config(tomllib.loads(text), source="p.toml", env=env or {})


@pytest.mark.needs_plugins  # the sqlite store
def test_good_file_parses_with_env_expansion(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), env={"OUT": "/x/out.jsonl"})
    assert cfg.sensor is not None and cfg.sensor.options["cities"] == 2
    assert cfg.store is not None and cfg.store.options["path"] == "/tmp/edge.db"
    assert cfg.sinks[0].options["path"] == "/x/out.jsonl"
    assert cfg.transforms[0].plugin == "calibrate"
    assert cfg.run.duration == 6 * 3600 and cfg.run.speed is None


def test_unset_variable_names_file_key_and_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), env={})
    message = str(info.value)
    assert "pipeline.toml" in message and "'OUT'" in message and "[sinks]" in message


def test_unknown_plugin_key_names_file_plugin_key_and_accepted_keys(cosmobac_plugins):
    with pytest.raises(ConfigError) as info:
        parse('[[sinks]]\nplugin = "jsonl"\npth = "x"\n')
    message = str(info.value)
    assert "p.toml" in message and "'jsonl'" in message and "'pth'" in message
    assert "accepted keys: plugin, path, fsync" in message


def test_wrong_type_is_reported_when_building(cosmobac_plugins):
    cfg = parse('[[sinks]]\nplugin = "stdout"\nformat = "xml"\n')
    with pytest.raises(ConfigError) as info:
        cfg.sinks[0].build()
    message = str(info.value)
    assert "'format'" in message and "'stdout'" in message and "Accepted keys" in message


def test_unknown_section_and_run_key():
    with pytest.raises(ConfigError, match="unknown section 'sinkz'.*accepted sections"):
        parse('[sinkz]\nplugin = "x"\n')
    with pytest.raises(ConfigError, match=r"\[run\]: unknown key 'durtion'.*duration"):
        parse('[run]\ndurtion = "1h"\n')


def test_bad_run_values_name_the_key():
    with pytest.raises(ConfigError, match="duration"):
        parse('[run]\nduration = "six hours"\n')
    with pytest.raises(ConfigError, match="speed"):
        parse("[run]\nspeed = -1\n")
    with pytest.raises(ConfigError, match="batch_size"):
        parse("[run]\nbatch_size = 0\n")


def test_unknown_plugin_lists_what_is_available(cosmobac_plugins):
    with pytest.raises(ConfigError, match="no sink named 'cosmoss'.*jsonl"):
        parse('[[sinks]]\nplugin = "cosmoss"\n')


def test_missing_plugin_key_and_sinks_must_be_an_array():
    with pytest.raises(ConfigError, match="missing key 'plugin'"):
        parse('[store]\npath = "x"\n')
    with pytest.raises(ConfigError, match=r"write \[\[sinks\]\]"):
        parse('[sinks]\nplugin = "jsonl"\n')


def test_two_sinks_need_distinct_names(cosmobac_plugins):
    text = '[[sinks]]\nplugin = "stdout"\n[[sinks]]\nplugin = "stdout"\n'
    with pytest.raises(ConfigError, match="distinct name"):
        parse(text)
    cfg = parse(text + 'name = "second"\n')
    assert [s.name or s.plugin for s in cfg.sinks] == ["stdout", "second"]


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[run\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_run_defaults():
    run = RunConfig()
    assert run.speed is None and run.batch_size == 20000 and run.on_transform_error == "dead_letter"


names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
values = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=10)


@given(names, values, values)
def test_expansion_substitutes_defaults_and_escapes(name, value, default):
    env = {name: value}
    assert expand_env(f"a${{{name}}}b", env=env, where="w") == f"a{value}b"
    if "}" not in default:
        assert expand_env(f"${{{name}X:-{default}}}", env=env, where="w") == default
    assert expand_env(f"$${{{name}}}", env=env, where="w") == f"${{{name}}}"
    assert expand_env({"k": [f"${{{name}}}", 3]}, env=env, where="w") == {"k": [value, 3]}


def test_numbers_and_flags_may_come_from_variables_as_text(cosmobac_plugins):
    cfg = parse(
        '[[sinks]]\nplugin = "jsonl"\npath = "x"\nfsync = "${FSYNC}"\n'
        '[run]\nbatch_size = "${BATCH:-250}"\njitter = "0.3"\ninterval = "${WAIT}"\n',
        env={"FSYNC": "false", "BATCH": "", "WAIT": "2"},
    )
    assert (cfg.run.batch_size, cfg.run.jitter, cfg.run.interval) == (250, 0.3, 2.0)
    assert cfg.sinks[0].build().fsync is False


def test_flag_complaints_name_the_key(cosmobac_plugins):
    cfg = parse('[[sinks]]\nplugin = "jsonl"\npath = "x"\nfsync = "sometimes"\n')
    with pytest.raises(ConfigError) as info:
        cfg.sinks[0].build()
    assert "fsync must be true or false, got 'sometimes'" in str(info.value)


def test_attrs_validator_complaints_read_as_sentences(cosmobac_plugins):
    cfg = parse('[[sinks]]\nplugin = "stdout"\nformat = "xml"\n')
    with pytest.raises(ConfigError) as info:
        cfg.sinks[0].build()
    assert "'format' must be in ('json', 'summary') (got 'xml')" in str(info.value)
    assert "Attribute(" not in str(info.value)  # attrs' extra arguments are not shown
