"""Composing a Pipeline in code from plugin names and tables, failing fast on what cannot work,
and the consumer names sinks keep their checkpoints under (with the migration of older stores)."""

from __future__ import annotations

import json
import logging
import time

import pytest

import cosmobac
from cosmobac import ConfigError, Lane, MemoryStore, Pipeline, RunConfig, hookimpl
from cosmobac.config import default_consumer, parse_config
from cosmobac.errors import PluginError
from cosmobac.testing import ListSink, fresh_plugins

SENSOR = {"plugin": "simulated", "cities": 1, "sensors_per_city": 2, "rate_hz": "0.1"}


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_pipeline_composed_from_plugin_names_and_tables_runs_and_closes_what_it_made(tmp_path):
    out = tmp_path / "out.jsonl"
    with Pipeline(
        store="memory",
        sensor=SENSOR,
        sinks=[{"plugin": "jsonl", "path": str(out)}],
        transforms=["validate", {"plugin": "zscore", "window": "30"}],
        run={"duration": "1h", "speed": "max"},
    ) as pipeline:
        assert isinstance(pipeline.store, MemoryStore)
        assert pipeline.run_config.duration == 3600.0 and pipeline.run_config.speed is None
        [lane] = pipeline.lanes
        assert lane.consumer == default_consumer("jsonl", {"path": str(out)}, ("path",))
        collected, forwarded = pipeline.run()
    assert collected.rows_added == 2 * 360 and forwarded.ok
    docs = lines(out)
    assert len(docs) == 720 and "zscore_score" in docs[0]


def test_components_made_from_names_are_closed_with_the_pipeline_and_objects_are_not():
    made: list[ListSink] = []

    class Sinks:
        @hookimpl
        def register_sinks(self, register):
            register("kept", lambda: made.append(ListSink()) or made[-1])

    mine = ListSink()
    with fresh_plugins(Sinks()), Pipeline(store="memory", sinks=["kept", mine]) as pipeline:
        assert [lane.sink for lane in pipeline.lanes] == [made[0], mine]
        assert pipeline.lanes[1].consumer == "listsink"
    assert made[0].closed and not mine.closed


def test_tables_are_built_once_per_sink_so_stateful_transforms_never_share_state():
    a, b = ListSink(), ListSink()
    pipeline = Pipeline(store="memory", lanes=[Lane("a", a), Lane("b", b)])
    assert [lane.consumer for lane in pipeline.lanes] == ["a", "b"]
    two = Pipeline(store="memory", sinks=["stdout", {"plugin": "stdout", "name": "again"}],
                   transforms=[{"plugin": "ewma"}])  # fmt: skip
    first, second = (lane.transforms[0] for lane in two.lanes)
    assert first is not second
    assert [lane.consumer for lane in two.lanes] == [default_consumer("stdout", {}, ()), "again"]
    with pytest.raises(ValueError, match="stateful transform a EWMA would be shared by 2 sinks"):
        Pipeline(store="memory", sinks=[a, b], transforms=[cosmobac.get_plugins().create(
            "transform", "ewma")])  # fmt: skip


def test_run_values_are_read_by_the_one_parser_in_python_as_in_a_file():
    assert RunConfig(duration="1h", speed="max").duration == 3600.0
    assert Pipeline(store="memory", run={"duration": "90m", "batch_size": "500"}).run_config == (
        RunConfig(duration=5400, batch_size=500)
    )
    with pytest.raises(ValueError, match="duration"):
        Pipeline(store="memory", run={"duration": "soon"})
    with pytest.raises(ValueError, match="unknown key 'durration'"):
        Pipeline(store="memory", run={"durration": "1h"})


def test_sinks_that_are_not_sinks_fail_at_once_naming_the_component():
    started = time.monotonic()
    with pytest.raises(
        TypeError, match=r"sink of lane 'x' \(builtin_function_or_method\) is not a Sink"
    ):
        Pipeline(store="memory", lanes=[Lane("x", print)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"sink sinks\[1\] \(builtin_function_or_method\).*write"):
        Pipeline(store="memory", sinks=["stdout", print])
    with pytest.raises(TypeError, match=r"the store \(dict_keys\) is not a Store"):
        Pipeline(store={}.keys())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a Lane"):
        Pipeline(store="memory", lanes=[ListSink()])  # type: ignore[list-item]
    assert time.monotonic() - started < 5  # no retrying, no backoff


def test_plugin_names_and_tables_are_checked_like_a_file_s():
    with pytest.raises(ConfigError, match="no store named 'nosuch'.*available: memory"):
        Pipeline(store="nosuch")
    with pytest.raises(ConfigError, match="unknown key 'paht'; accepted keys: plugin, path"):
        Pipeline(store="memory", sinks=[{"plugin": "jsonl", "paht": "x"}])
    with pytest.raises(ConfigError, match="missing key 'plugin'"):
        Pipeline(store={"path": "edge.db"})
    with pytest.raises(TypeError, match=r"""a table \{"plugin": 'sqlite'"""):
        Pipeline(store=("sqlite", {"path": "edge.db"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transforms= applies to the sinks="):
        Pipeline(store="memory", transforms=["validate"])


def test_a_failing_construction_closes_what_it_had_made(tmp_path):
    made = []

    class Tracking(MemoryStore):
        def close(self):
            made.append("closed")

    class Stores:
        @hookimpl
        def register_stores(self, register):
            register("tracking", Tracking)

    with fresh_plugins(Stores()), pytest.raises(ConfigError, match="unknown key"):
        Pipeline(store="tracking", sinks=[{"plugin": "jsonl", "nope": 1}])
    assert made == ["closed"]


def test_two_lanes_sharing_a_consumer_are_refused_naming_both():
    with pytest.raises(ValueError, match="'out': a ListSink and a JsonlSink"):
        from cosmobac.sinks.jsonl import JsonlSink

        Pipeline(store="memory", lanes=[Lane("out", ListSink()), Lane("out", JsonlSink("x"))])


# -- consumer names -------------------------------------------------------------------------------
def test_default_consumer_names_are_stable_and_never_depend_on_credentials():
    name = default_consumer("cosmos", {"endpoint": "https://a/", "key": "s3cret"},
                            ("endpoint", "database", "container"))  # fmt: skip
    assert name == default_consumer("cosmos", {"endpoint": "https://a/", "key": "other"},
                                    ("endpoint", "database", "container"))  # fmt: skip
    assert name != default_consumer("cosmos", {"endpoint": "https://b/"}, ("endpoint",))
    parts = name.split("-")
    assert parts[0] == "cosmos" and len(parts[1]) == 8 and "s3cret" not in name
    # without checkpoint_keys: every key but credentials
    plain = default_consumer("acme", {"path": "a", "token": "t1", "api_key": "k"})
    assert plain == default_consumer("acme", {"path": "a", "token": "t2", "headers": {"x": "y"}})
    assert plain != default_consumer("acme", {"path": "b", "token": "t1"})
    # the same settings give the same name, however written down
    assert default_consumer("x", {"a": 1, "b": 2}) == default_consumer("x", {"b": 2, "a": 1})


def test_a_second_pipeline_on_the_same_store_with_another_path_sends_everything(tmp_path):
    store = MemoryStore()
    with Pipeline(store=store, sensor=SENSOR, run={"duration": "30m"}) as collecting:
        collecting.collect()
    first = Pipeline(store=store, sinks=[{"plugin": "jsonl", "path": str(tmp_path / "a.jsonl")}])
    assert first.forward().lanes[0].acked == 360
    second = Pipeline(store=store, sinks=[{"plugin": "jsonl", "path": str(tmp_path / "b.jsonl")}])
    [where] = second.checkpoints()
    assert not where.resumed and where.pending == 360
    assert second.forward().lanes[0].acked == 360
    assert len(lines(tmp_path / "b.jsonl")) == 360
    again = Pipeline(store=store, sinks=[{"plugin": "jsonl", "path": str(tmp_path / "a.jsonl")}])
    [where] = again.checkpoints()
    assert where.resumed and where.settled == 360 and where.pending == 0
    assert where.describe().endswith(": resuming after row 360 (0 pending)")
    for p in (first, second, again):
        p.close()


def test_two_sinks_of_one_file_share_a_checkpoint_only_if_named_alike(tmp_path):
    same = {"plugin": "jsonl", "path": str(tmp_path / "a.jsonl")}
    with pytest.raises(
        ConfigError, match=r"#2 and .*#1: both sinks .* \(they are the same sink twice\)"
    ):
        parse_config({"store": {"plugin": "memory"}, "sinks": [same, same]})
    other = {**same, "path": str(tmp_path / "b.jsonl")}
    config = parse_config({"store": {"plugin": "memory"}, "sinks": [same, other]})
    with Pipeline.from_config(config, need_sinks=True) as pipeline:
        assert len({lane.consumer for lane in pipeline.lanes}) == 2
    with pytest.raises(ConfigError, match="#2 and .*#1: both sinks .* 'out'"):
        parse_config({"sinks": [{**same, "name": "out"}, {**other, "name": "out"}]})


def _legacy_store(rows_acked: int) -> MemoryStore:
    """A store as an earlier cosmobac left it: the jsonl sink's checkpoint kept as 'jsonl'."""
    store = MemoryStore()
    store.append(cosmobac.simulate(cities=1, sensors_per_city=1, duration="10m"))
    store.ack("jsonl", store.read("jsonl", rows_acked))
    return store


def test_a_store_from_an_earlier_version_keeps_its_plugin_named_checkpoint(tmp_path, caplog):
    store = _legacy_store(500)
    sink = {"plugin": "jsonl", "path": str(tmp_path / "a.jsonl")}
    factory_store = lambda: store  # noqa: E731

    class Stores:
        @hookimpl
        def register_stores(self, register):
            register("legacy", factory_store)

    with fresh_plugins(Stores()) as plugins:
        config = parse_config({"store": {"plugin": "legacy"}, "sinks": [sink]}, plugins=plugins)
        with caplog.at_level(logging.WARNING, logger="cosmobac.pipeline"):
            pipeline = Pipeline.from_config(config, plugins=plugins, need_sinks=True)
        assert [lane.consumer for lane in pipeline.lanes] == ["jsonl"]
        assert "keeping the checkpoint 'jsonl' an earlier cosmobac made" in caplog.text
        [where] = pipeline.checkpoints()
        assert where.resumed and where.settled == 500 and where.pending == 100
        assert pipeline.forward().lanes[0].acked == 100  # only what the old checkpoint had not sent
        # two unnamed jsonl sinks: which owns the old checkpoint is for the user to say
        two = parse_config(
            {"store": {"plugin": "legacy"},
             "sinks": [sink, {**sink, "path": str(tmp_path / "b.jsonl")}]},
            plugins=plugins,
        )  # fmt: skip
        with pytest.raises(
            ConfigError, match=r"#1 and .*#2: the store holds the checkpoint 'jsonl'"
        ):
            Pipeline.from_config(two, plugins=plugins, need_sinks=True)
        pipeline.close()


def test_once_the_new_default_checkpoint_exists_it_is_used(tmp_path):
    store = _legacy_store(600)
    sink = {"plugin": "jsonl", "path": str(tmp_path / "a.jsonl")}
    default = default_consumer("jsonl", {"path": sink["path"]}, ("path",))
    store.read(default, 1)  # the new consumer is known to the store
    pipeline = Pipeline(store=store, sinks=[sink])
    assert [lane.consumer for lane in pipeline.lanes] == [default]
    assert pipeline.forward().lanes[0].acked == 600


def test_register_sinks_checkpoint_keys_must_be_keys_the_factory_takes():
    class Bad:
        @hookimpl
        def register_sinks(self, register):
            register("bad", ListSink, checkpoint_keys=("pathh",))

    with (
        fresh_plugins(Bad()) as plugins,
        pytest.raises(PluginError, match="checkpoint key 'pathh'"),
    ):
        plugins.components()
    with fresh_plugins() as plugins:
        assert plugins.get("sink", "jsonl").checkpoint_keys == ("path",)
        assert plugins.get("sink", "webhook").checkpoint_keys == ("url",)


def test_errors_about_tables_never_show_their_values():
    table = {"plugin": "webhook", "url": "http://h/", "headers": {"Authorization": "s3cret"}}
    with pytest.raises(ConfigError) as info:
        Pipeline(store="memory", sinks=[{**table, "bogus": 1}])
    assert "sinks[0]" in str(info.value) and "s3cret" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        Pipeline(store="memory", sinks=[table, table])
    assert "sinks[1] and sinks[0]" in str(info.value) and "s3cret" not in str(info.value)
