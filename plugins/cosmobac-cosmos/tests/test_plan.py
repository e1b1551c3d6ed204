"""``cosmobac cosmos plan``: the size→RU estimate, the cost arithmetic (hand-computed), the
partition check, the ranking of recommendations, the ``indexing`` sink key, the prices file, and
the command end to end on a simulated pipeline (text and ``--json``) against the local server."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from cosmobac.config import load_config
from cosmobac.errors import ConfigError
from cosmobac.testing import run_cosmobac
from cosmobac_cosmos.indexing import indexed_fields, parse_indexing
from cosmobac_cosmos.plan import (
    PlanInput,
    autoscale,
    cheapest,
    make_plan,
    provisioned,
    serverless,
    throughput_costs,
    write_ru,
)
from cosmobac_cosmos.prices import load_prices
from cosmobac_cosmos.sample import simulate

from .conftest import DATABASE, make_sink

PRICES = load_prices()
KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


# -- size → RU ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kb", "ru"),
    [(1, 4.95), (2, 6.29), (4, 6.67), (16, 9.52), (64, 22.67), (1024, 625.0), (2048, 1250.0)],
)
def test_write_ru_at_table_points(kb, ru):
    assert write_ru(kb * 1024) == pytest.approx(ru)


def test_write_ru_between_points_is_linear_and_small_documents_cost_1kb():
    assert write_ru(3 * 1024) == pytest.approx((6.29 + 6.67) / 2)  # halfway from 2 to 4 KB
    assert write_ru(12 * 1024) == pytest.approx(7.04 + (9.52 - 7.04) / 2)  # 8 → 16 KB
    assert write_ru(1.5 * 1024) == pytest.approx(4.95 + (6.29 - 4.95) / 2)
    assert write_ru(300) == write_ru(1) == pytest.approx(4.95)  # under 1 KB: the 1 KB charge


def test_write_ru_scales_the_index_share_with_indexed_fields():
    # INDEX_SHARE = 0.5: 4.95 × (0.5 + 0.5 × indexed / fields)
    assert write_ru(1024, 10, 10) == pytest.approx(4.95)
    assert write_ru(1024, 5, 10) == pytest.approx(4.95 * 0.75)
    assert write_ru(1024, 0, 10) == pytest.approx(4.95 * 0.5)


# -- cost arithmetic ----------------------------------------------------------------------------
def test_costs_hand_computed_for_1234_rus():
    # provisioned: 1234 → 1300 RU/s; 13 × 0.008 USD × 730 h = 75.92
    # autoscale: Tmax 2000 (1000 steps); billed max(1300, 200) = 1300; 13 × 0.012 × 730 = 113.88
    # serverless: 1234 × 3600 × 730 = 3,242,952,000 RU; × 0.25 / 1e6 = 810.738
    p, a, s = provisioned(1234, PRICES), autoscale(1234, PRICES), serverless(1234, PRICES)
    assert (p.rus, p.monthly) == (1300, pytest.approx(75.92))
    assert (a.rus, a.billed_rus, a.monthly) == (2000, 1300, pytest.approx(113.88))
    assert s.ru_per_month == pytest.approx(3_242_952_000)
    assert s.monthly == pytest.approx(810.738)
    assert not s.over_burst
    assert cheapest([p, a, s]).mode == "provisioned"


def test_costs_hand_computed_for_a_small_load():
    # 10 RU/s: provisioned at its minimum 400 → 4 × 0.008 × 730 = 23.36;
    # autoscale Tmax 1000, billed at least Tmax/10 = 100 → 1 × 0.012 × 730 = 8.76;
    # serverless 10 × 3600 × 730 = 26,280,000 RU → 6.57
    costs = throughput_costs(10, PRICES)
    assert [round(c.monthly, 2) for c in costs] == [23.36, 8.76, 6.57]
    assert cheapest(costs).mode == "serverless"


def test_serverless_over_its_burst_limit_is_flagged_and_never_cheapest():
    costs = throughput_costs(6000, PRICES)
    assert costs[2].over_burst
    assert cheapest(costs).mode == "provisioned"  # 6000 RU/s: 60 × 0.008 × 730 = 350.40
    assert costs[0].monthly == pytest.approx(350.40)


def plan_input(**kw):
    base = {
        "sizes": np.full(1000, 400),
        "fields": ("sensor_id", "city", "timestamp", "temperature", "humidity", "pressure"),
        "key_counts": {f"s-{i}": 1 for i in range(1000)},
        "span_s": 1.0,
        "partition_key": ("/sensor_id",),
        "policy": None,
        "policy_from": "default",
        "sensors": 1000,
    }
    base.update(kw)
    return PlanInput(**base)


def test_plan_load_and_storage_hand_computed():
    # 1000 documents of 400 B over 10 s: 100 docs/s × 4.95 RU = 495 RU/s
    # storage: 100 × 400 B × 3600 × 730 = 105.12 GB a month; TTL 1 day: 100 × 400 × 86400 B
    # = 3.456 GB → 0.864 USD a month
    plan = make_plan(plan_input(span_s=10.0, ttl_s=86400), PRICES)
    assert plan["load"]["documents_per_s"] == 100
    assert plan["load"]["ru_per_s"] == pytest.approx(495)
    assert plan["costs"]["provisioned"]["rus"] == 500
    assert plan["storage"]["gb_per_month"] == pytest.approx(105.12)
    assert plan["storage"]["gb_with_ttl"] == pytest.approx(3.456)
    assert plan["storage"]["monthly_cost_with_ttl"] == pytest.approx(0.86, abs=0.01)
    assert plan["storage"]["ttl_from"] == "sink"


# -- partitions ---------------------------------------------------------------------------------
def test_one_city_with_thousands_of_sensors_is_a_hot_partition_by_city():
    # 3000 sensors in one city, 3000 documents a second: 3000 × 4.95 = 14,850 RU/s on one value
    city = plan_input(
        key_counts={"London": 3000}, sizes=np.full(3000, 400), partition_key=("/city",)
    )
    plan = make_plan(city, PRICES)
    assert plan["partitions"]["hot"]
    assert plan["partitions"]["hottest_value"] == "London"
    assert plan["partitions"]["hottest_ru_per_s"] == pytest.approx(14850)
    assert any("hot partition" in n for n in plan["notes"])
    # by sensor: 3000 values of 4.95 RU/s each
    spread = plan_input(key_counts={f"s-{i}": 1 for i in range(3000)}, sizes=np.full(3000, 400))
    plan = make_plan(spread, PRICES)
    assert not plan["partitions"]["hot"]
    assert plan["partitions"]["distinct_values"] == 3000
    assert plan["partitions"]["hottest_ru_per_s"] == pytest.approx(4.95)


def test_hot_partition_found_from_a_simulated_fleet():
    config = load_config_text(
        """
        [sensor]
        plugin = "simulated"
        cities = ["London"]
        sensors_per_city = 2500
        rate_hz = 1
        [store]
        plugin = "memory"
        """
    )
    for key, hot in (("/city", True), ("/sensor_id", False)):
        sampled = simulate(config, (key,), span_s=4.0)
        data = plan_input(
            sizes=sampled.sizes,
            fields=sampled.fields,
            key_counts=sampled.key_counts,
            span_s=sampled.span_s,
            partition_key=(key,),
            sensors=sampled.sensors,
        )
        plan = make_plan(data, PRICES)
        assert plan["partitions"]["hot"] is hot, key
    assert sampled.sensors == 2500


def test_the_biggest_logical_partition_reaches_20gb_on_a_date():
    import datetime as dt

    # one key, 100 docs/s × 400 B = 40,000 B/s: 20e9 / 40,000 = 500,000 s ≈ 5.8 days
    data = plan_input(key_counts={"x": 1000}, span_s=10.0)
    plan = make_plan(data, PRICES, today=dt.date(2026, 1, 1))
    assert plan["partitions"]["reaches_20gb_on"] == "2026-01-06"
    with_ttl = make_plan(plan_input(key_counts={"x": 1000}, span_s=10.0, ttl_s=86400), PRICES)
    assert with_ttl["partitions"]["reaches_20gb_on"] is None


# -- recommendations ----------------------------------------------------------------------------
def test_recommendations_are_ranked_by_saving():
    plan = make_plan(plan_input(span_s=10.0), PRICES)
    recs = plan["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1))
    savings = [r["monthly_saving"] for r in recs]
    assert savings == sorted(savings, reverse=True)
    assert {r["kind"] for r in recs} >= {"indexing", "ttl", "throughput"}
    indexing = next(r for r in recs if r["kind"] == "indexing")
    # keeps the partition key and the default kept fields present: sensor_id, city, timestamp
    assert indexing["detail"]["indexed_fields"] == 3
    assert indexing["detail"]["ru_per_write"] == pytest.approx(4.95 * (0.5 + 0.5 * 3 / 6), abs=1e-3)
    # TTL month-12 saving: 105.12 GB × 12 × 0.25 − 100 × 400 × 30 d / 1e9 × 0.25
    ttl = next(r for r in recs if r["kind"] == "ttl")
    assert ttl["monthly_saving"] == pytest.approx(105.12 * 12 * 0.25 - 103.68 * 0.25, abs=0.01)


def test_no_indexing_or_ttl_advice_when_already_taken():
    policy = parse_indexing("recommended").policy(("/sensor_id",))
    plan = make_plan(plan_input(policy=policy, ttl_s=86400, mode="provisioned"), PRICES)
    assert {r["kind"] for r in plan["recommendations"]} <= {"throughput", "aggregation"}


# -- the sink's indexing key --------------------------------------------------------------------
def test_indexing_policies():
    assert parse_indexing("default").policy(("/sensor_id",)) is None
    recommended = parse_indexing("Recommended").policy(("/city",))
    paths = [p["path"] for p in recommended["includedPaths"]]
    assert paths == ["/city/?", "/timestamp/?", "/sensor_id/?", "/anomaly_flag/?"]
    assert recommended["excludedPaths"] == [{"path": "/*"}]
    custom = parse_indexing({"included": ["timestamp", "/device/?"]}).policy(("/sensor_id",))
    assert [p["path"] for p in custom["includedPaths"]] == [
        "/sensor_id/?",
        "/timestamp/?",
        "/device/?",
    ]
    excluded = parse_indexing({"excluded": "humidity, pressure"}).policy(("/sensor_id",))
    assert {"path": "/humidity/?"} in excluded["excludedPaths"]
    fields = {"sensor_id", "humidity", "pressure", "city"}
    assert indexed_fields(excluded, fields) == {"sensor_id", "city"}
    assert indexed_fields(recommended, fields) == {"sensor_id", "city"}
    assert indexed_fields({"indexingMode": "consistent"}, fields) == fields  # local server


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"include": ["city"]}, "unknown key 'include'; did you mean 'included'"),
        ("fast", "indexing must be one of 'default', 'recommended'"),
        ({"included": ["a/b"]}, "indexing.included: 'a/b' is not a top-level field"),
        ({"included": ["a"], "excluded": ["b"]}, "not both"),
        (3, "indexing must be"),
    ],
)
def test_bad_indexing_names_the_key(tmp_path, value, message):
    text = {
        dict: lambda v: "{" + ", ".join(f"{k} = {json.dumps(x)}" for k, x in v.items()) + "}",
        str: json.dumps,
        int: str,
    }[type(value)](value)
    path = tmp_path / "p.toml"
    path.write_text(sink_toml("http://127.0.0.1:1/", "c", f"indexing = {text}"))
    with pytest.raises(ConfigError, match="indexing") as caught:
        load_config(path).sinks[0].build()
    assert message in str(caught.value)


def test_indexing_needs_create_if_missing_and_excludes_indexing_policy(tmp_path):
    with pytest.raises(ValueError, match="create_if_missing"):
        make_sink("http://127.0.0.1:1/", "c", create_if_missing=False, indexing="recommended")
    with pytest.raises(ValueError, match="not both"):
        make_sink("http://127.0.0.1:1/", "c", indexing="recommended", indexing_policy={})


# -- the prices file ----------------------------------------------------------------------------
def test_default_prices_cite_their_source_and_date():
    assert PRICES.source["url"].startswith("https://azure.microsoft.com/")
    assert PRICES.source["as_of"]
    assert PRICES.provisioned_per_100_rus_hour == 0.008


def test_a_prices_file_overrides_some_keys(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text("[provisioned]\nper_100_rus_hour = 0.016\n")
    prices = load_prices(path)
    assert prices.provisioned_per_100_rus_hour == 0.016
    assert prices.storage_per_gb_month == 0.25
    assert provisioned(400, prices).monthly == pytest.approx(46.72)  # 4 × 0.016 × 730


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[provisioned]\nper_100_ru_hour = 1\n", "unknown key 'per_100_ru_hour'; did you mean"),
        ("[provisioned]\nper_100_rus_hour = -1\n", "[provisioned] per_100_rus_hour must be > 0"),
        ("[storage]\nper_gb_month = 'cheap'\n", "[storage] per_gb_month must be a number"),
        ("[provisoned]\nstep_rus = 100\n", "unknown table [provisoned]; did you mean"),
        ("[serverless]\nburst_rus = 1.5\n", "[serverless] burst_rus must be an integer"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_prices_file_names_the_key(tmp_path, text, message):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


# -- end to end ---------------------------------------------------------------------------------
def load_config_text(text):
    import tomllib

    from cosmobac.config import parse_config

    return parse_config(tomllib.loads(textwrap.dedent(text)))


def sink_toml(endpoint, container, extra="", sensor=""):
    return textwrap.dedent(
        f"""
        [sensor]
        plugin = "simulated"
        cities = 3
        sensors_per_city = 4
        seed = 0
        rate_hz = 0.2
        {sensor}
        [store]
        plugin = "memory"
        [[sinks]]
        plugin = "cosmos"
        endpoint = "{endpoint}"
        database = "{DATABASE}"
        container = "{container}"
        key = "{KEY}"
        connection_timeout = 2
        read_timeout = 5
        """
    ) + "\n".join(line.strip() for line in extra.splitlines())


def test_plan_command_on_the_local_server(tmp_path, cosmos_server, container_name):
    # the sink creates its container with the recommended policy; the plan then reads it there
    extra = 'create_if_missing = true\nindexing = "recommended"\ndefault_ttl = 604800'
    path = tmp_path / "fleet.toml"
    path.write_text(sink_toml(cosmos_server.endpoint, container_name, extra))
    sink = make_sink(cosmos_server.endpoint, container_name, indexing="recommended")
    sink.connect()
    sink.close()

    out = run_cosmobac("cosmos", "plan", path, "--json", "--measure", "--span", "2h", timeout=180)
    plan = json.loads(out.stdout)
    assert plan["indexing"]["from"] == "container"
    included = [p["path"] for p in plan["indexing"]["policy"]["includedPaths"]]
    assert included == ["/sensor_id/?", "/timestamp/?", "/city/?", "/anomaly_flag/?"]
    assert plan["documents"]["indexed_fields"] == 4 < plan["documents"]["fields"]
    # 12 sensors at 0.2 Hz: 2.4 documents a second
    assert plan["sample"] == {
        "source": "simulated",
        "documents": 17280,
        "span_s": 7200.0,
        "sensors": 12,
        "nodes": 1,
    }
    assert plan["load"]["documents_per_s"] == pytest.approx(2.4)
    assert plan["ru_per_write"]["measured"] is None  # the flat 1 RU is ignored ...
    assert any("flat 1 RU" in n for n in plan["notes"])  # ... and said so
    assert plan["storage"]["ttl_from"] == "sink"
    assert {r["kind"] for r in plan["recommendations"]} == {"aggregation", "throughput"}
    assert plan["partitions"]["distinct_values"] == 12

    text = run_cosmobac("cosmos", "plan", path, "--span", "2h", "--nodes", "10").stdout
    assert "indexing (container): included /sensor_id/?, /timestamp/?" in text
    assert "24.00 documents/s" in text
    assert "recommendations (by estimated monthly saving):" in text
    assert "as of 2026-12-05" in text


def test_plan_command_offline_with_prices_and_errors(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(sink_toml("http://127.0.0.1:1/", "c", "partition_key = '/city'"))
    prices = tmp_path / "prices.toml"
    prices.write_text("[provisioned]\nper_100_rus_hour = 0.016\n")
    out = run_cosmobac(
        "cosmos", "plan", path, "--json", "--offline", "--span", "1h", "--prices", prices
    )
    plan = json.loads(out.stdout)
    assert plan["indexing"]["from"] == "default"
    assert plan["costs"]["provisioned"]["monthly"] == pytest.approx(46.72)
    assert plan["partitions"]["distinct_values"] == 3
    assert plan["prices"]["files"][-1] == str(prices)

    prices.write_text("[provisioned]\nper_100_rus_hours = 1\n")
    bad = run_cosmobac("cosmos", "plan", path, "--offline", "--prices", prices, check=False)
    assert bad.returncode != 0
    assert "unknown key 'per_100_rus_hours'" in bad.stderr
    bad = run_cosmobac("cosmos", "plan", path, "--offline", "--span", "soon", check=False)
    assert bad.returncode == 2
    assert "--span" in bad.stderr


def test_plan_from_the_store_and_with_kept_fields(tmp_path):
    path = tmp_path / "fleet.toml"
    text = sink_toml("http://127.0.0.1:1/", "c").replace(
        'plugin = "memory"', f'plugin = "sqlite"\npath = "{tmp_path / "edge.db"}"'
    )
    path.write_text(text)
    run_cosmobac("collect", path, "--duration", "1h")
    out = run_cosmobac(
        "cosmos", "plan", path, "--json", "--offline", "--from-store", "--keep", "/city,timestamp"
    )
    plan = json.loads(out.stdout)
    # 12 sensors × 0.2 Hz for an hour: 8,640 stored rows, 2.4 a second
    assert plan["sample"]["source"] == "store"
    assert plan["sample"]["documents"] == 8640
    # the span is read from the timestamps (sensors start at different phases): within 1%
    assert plan["load"]["documents_per_s"] == pytest.approx(2.4, rel=1e-2)
    indexing = next(r for r in plan["recommendations"] if r["kind"] == "indexing")
    assert "indexing = { included = [" in indexing["action"]
    assert indexing["detail"]["indexed_fields"] == 3  # the partition key, city, timestamp


def test_nodes_multiply_the_load_not_the_hottest_partition():
    one = make_plan(plan_input(span_s=10.0), PRICES)
    ten = make_plan(plan_input(span_s=10.0, nodes=10), PRICES)
    assert ten["load"]["ru_per_s"] == pytest.approx(10 * one["load"]["ru_per_s"])
    assert ten["partitions"]["distinct_values"] == 10 * one["partitions"]["distinct_values"]
    assert ten["partitions"]["hottest_ru_per_s"] == one["partitions"]["hottest_ru_per_s"]
