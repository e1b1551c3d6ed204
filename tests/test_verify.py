"""``cosmobac verify`` with the ``jsonl`` sink: equal → 0; a deleted document, a changed field and an
extra document → 1 with the right message; pending rows reported apart; a transform that drops
rows gives a hint; a sink that cannot be read back is skipped (2 when nothing can be checked)."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from cosmobac.cli import cli
from cosmobac.verify import compare_documents, verify

pytestmark = pytest.mark.needs_plugins  # the pipelines use the sqlite store


def pipeline(tmp_path, *, transforms="", sinks=None):
    path = tmp_path / "p.toml"
    sink = (
        sinks or f'[[sinks]]\nplugin = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\nfsync = false\n'
    )
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = ["London", "Tokyo"]
            sensors_per_city = 2
            seed = 3
            rate_hz = 0.1
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            """
        )
        + transforms
        + sink
        + '[run]\nduration = "10m"\n'
    )
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


@pytest.fixture
def forwarded(tmp_path):
    config = pipeline(tmp_path)
    assert invoke("collect", config).exit_code == 0
    assert invoke("forward", config).exit_code == 0
    return config, tmp_path / "out.jsonl"


def test_equal_store_and_sink_exit_0(forwarded):
    config, _ = forwarded
    result = invoke("verify", config)
    assert result.exit_code == 0, result.output
    assert "240 forwarded (expected in the sink), 240 found; missing 0, extra 0" in result.output
    assert "sample: 100 documents compared field by field: 0 missing, 0 different" in result.output
    assert "equal" in result.output
    data = json.loads(invoke("verify", config, "--json").output)
    assert data["ok"] is True
    (sink,) = data["sinks"]
    assert (sink["expected"], sink["found"], sink["missing"], sink["extra"]) == (240, 240, 0, 0)
    assert len(sink["sensors"]) == 4 and all(s["ok"] for s in sink["sensors"])


def test_a_deleted_document_is_missing(forwarded):
    config, out = forwarded
    docs = lines(out)
    gone = docs.pop(10)
    rewrite(out, docs)
    result = invoke("verify", config, "--sample", "1000")
    assert result.exit_code == 1
    assert "missing 1" in result.output
    assert f"missing: {gone['id']}" in result.output
    data = json.loads(invoke("verify", config, "--json", "--sample", "1000").output)
    (sink,) = data["sinks"]
    assert sink["missing"] == 1 and sink["sample"]["missing"] == [gone["id"]]
    (bad,) = [s for s in sink["sensors"] if not s["ok"]]
    assert bad["sensor_id"] == gone["sensor_id"] and bad["problem"] == "missing 1"


def test_a_changed_field_is_different(forwarded):
    config, out = forwarded
    docs = lines(out)
    docs[3]["humidity"] += 0.5
    docs[4]["city"] = "Paris"
    rewrite(out, docs)
    result = invoke("verify", config, "--sample", "1000")
    assert result.exit_code == 1
    assert f"different: {docs[3]['id']}: humidity:" in result.output
    assert f"different: {docs[4]['id']}: city: stored London, sink Paris" in result.output or (
        f"different: {docs[4]['id']}: city: stored Tokyo, sink Paris" in result.output
    )
    assert "missing 0, extra 0" in result.output


def test_an_extra_document_is_extra(forwarded):
    config, out = forwarded
    docs = lines(out)
    extra = dict(docs[20])
    extra["timestamp"] = extra["timestamp"].replace("Z", "").rstrip("0123456789") + "999Z"
    extra["id"] = f"{extra['sensor_id']}@{extra['timestamp']}"
    rewrite(out, [*docs, extra])
    result = invoke("verify", config)
    assert result.exit_code == 1
    assert "extra 1" in result.output
    assert "hint: extra documents" in result.output


def test_float_round_trips_and_extra_fields_are_not_differences():
    stored = {"id": "a", "temperature": 0.1 + 0.2, "city": "X", "humidity": None}
    found = {"id": "a", "temperature": 0.30000000000000004, "city": "X", "score": 3, "_ts": 1}
    assert compare_documents(stored, found) == []
    assert compare_documents({"id": "a", "t": 1.0}, {"id": "a", "t": 1.001})
    assert compare_documents({"id": "a", "t": 1.0}, {"id": "a"})[0].found == "<absent>"


def test_pending_rows_are_reported_not_expected(tmp_path):
    config = pipeline(tmp_path)
    assert invoke("collect", config).exit_code == 0
    assert invoke("forward", config).exit_code == 0
    invoke("collect", config, "--duration", "20m")  # 10 more minutes of readings, not forwarded
    result = verify(config, sample=10, seed=1)
    (sink,) = result.sinks
    assert result.ok
    assert sink.expected == 240 and sink.pending == 240 and sink.found == 240
    assert "not yet forwarded: 240" in invoke("verify", config).output


def test_rows_a_transform_drops_are_missing_with_a_hint(tmp_path):
    transforms = '[[transforms]]\nplugin = "filter_sensors"\ncities = ["London"]\n'
    config = pipeline(tmp_path, transforms=transforms)
    assert invoke("collect", config).exit_code == 0
    assert invoke("forward", config).exit_code == 0
    result = invoke("verify", config)
    assert result.exit_code == 1
    assert "missing 60" in result.output  # each Tokyo sensor
    assert "hint: this sink's lane has transforms (FilterSensors" in result.output


def test_a_sink_that_cannot_be_read_back_is_skipped(tmp_path):
    sinks = '[[sinks]]\nplugin = "stdout"\nformat = "summary"\n'
    config = pipeline(tmp_path, sinks=sinks)
    assert invoke("collect", config).exit_code == 0
    result = invoke("verify", config)
    assert result.exit_code == 2
    assert "cannot be read back (it is not a ReadableSink)" in result.output
