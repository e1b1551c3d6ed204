"""``cosmobac verify`` and ``cosmobac cosmos count --by`` against the real local server: equal → 0;
a deleted document, a changed field and an extra document → 1 with the right message; counts per
city and per sensor (a tally: the server refuses GROUP BY) equal the store's."""

from __future__ import annotations

import json
import sqlite3

import pytest

from cosmobac.testing import run_cosmobac
from cosmobac_cosmos.emulator import LOCAL_KEY
from cosmobac_cosmos.readback import grouped_counts

from .conftest import _container
from .test_commands import pipeline_file


def cosmobac(*args, check=True):
    return run_cosmobac(*map(str, args), env={"COSMOS_KEY": LOCAL_KEY}, check=check, timeout=180)


@pytest.fixture
def forwarded(cosmos_server, container_name, tmp_path):
    config = pipeline_file(
        tmp_path,
        cosmos_server.endpoint,
        container_name,
        extra='name = "cloud"',
        duration="10m",
        sensors_per_city=2,
        seed=5,
    )
    cosmobac("run", config)
    client, container = _container(cosmos_server, container_name)
    with client:
        yield config, container, tmp_path / "edge.db"


def docs_of(container):
    return list(
        container.query_items(
            "SELECT * FROM c", enable_cross_partition_query=True, max_item_count=5000
        )
    )


def verified(config, *extra):
    done = cosmobac("verify", config, "--json", *extra, check=False)
    return done.returncode, json.loads(done.stdout)


def test_equal_exits_0_and_counts_per_city_match_the_store(forwarded):
    config, _, db = forwarded
    code, data = verified(config)
    assert code == 0, data
    (sink,) = data["sinks"]
    assert sink["sink"] == "cloud" and sink["expected"] == sink["found"] == 720
    assert sink["sample"]["size"] == 100 and not sink["sample"]["different"]
    text = cosmobac("verify", config).stdout
    assert "720 forwarded (expected in the sink), 720 found; missing 0, extra 0" in text

    con = sqlite3.connect(db)
    per_city = dict(con.execute("SELECT city, COUNT(*) FROM readings GROUP BY city"))
    con.close()
    counted = json.loads(cosmobac("cosmos", "count", config, "--by", "city", "--json").stdout)
    assert counted == {
        "count": 720,
        "by": "city",
        "counts": per_city,
        "method": "tally",  # the local server refuses GROUP BY: detected, counted here
    }
    shown = cosmobac("cosmos", "count", config, "--by", "city")
    for city, n in per_city.items():
        assert f"{city:<6}  {n}" in shown.stdout
    assert "total   720" in shown.stdout
    assert "does not run GROUP BY" in shown.stderr
    by_sensor = json.loads(
        cosmobac("cosmos", "count", config, "--by", "sensor_id", "--city", "Tokyo", "--json").stdout
    )
    assert by_sensor["counts"] == {"tokyo-001": 120, "tokyo-002": 120}


def test_a_deleted_document_is_missing(forwarded):
    config, container, _ = forwarded
    doc = docs_of(container)[17]
    container.delete_item(doc["id"], partition_key=doc["sensor_id"])
    code, data = verified(config, "--sample", "1000")
    assert code == 1
    (sink,) = data["sinks"]
    assert sink["missing"] == 1 and sink["sample"]["missing"] == [doc["id"]]
    (bad,) = [s for s in sink["sensors"] if not s["ok"]]
    assert (bad["sensor_id"], bad["problem"]) == (doc["sensor_id"], "missing 1")
    text = cosmobac("verify", config, "--sample", "1000", check=False)
    assert text.returncode == 1 and f"missing: {doc['id']}" in text.stdout


def test_a_changed_field_is_different(forwarded):
    config, container, _ = forwarded
    doc = docs_of(container)[3]
    doc["temperature"] = doc["temperature"] + 1.5
    container.upsert_item(doc)
    code, data = verified(config, "--sample", "1000")
    assert code == 1
    (sink,) = data["sinks"]
    (diff,) = sink["sample"]["different"]
    assert (diff["id"], diff["field"], diff["found"]) == (
        doc["id"],
        "temperature",
        doc["temperature"],
    )
    assert sink["missing"] == sink["extra"] == 0
    text = cosmobac("verify", config, "--sample", "1000", check=False).stdout
    assert f"different: {doc['id']}: temperature: stored" in text


def test_an_extra_document_is_extra(forwarded):
    config, container, _ = forwarded
    doc = {k: v for k, v in docs_of(container)[5].items() if not k.startswith("_")}
    doc["timestamp"] = doc["timestamp"][:-4] + "999Z"  # a reading the store never had
    doc["id"] = f"{doc['sensor_id']}@{doc['timestamp']}"
    container.create_item(doc)
    code, data = verified(config)
    assert code == 1
    (sink,) = data["sinks"]
    assert sink["extra"] == 1 and sink["missing"] == 0
    assert any(h.startswith("extra documents") for h in sink["hints"])


def test_grouped_counts_falls_back_to_a_tally_only_on_a_refused_group_by(forwarded):
    _, container, _ = forwarded
    grouped = grouped_counts(container, "city")
    assert grouped.method == "tally" and grouped.reason  # the server's own words, kept
    assert sum(grouped.counts.values()) == 720
    with pytest.raises(ValueError, match="cannot group by"):
        grouped_counts(container, "temperature")
