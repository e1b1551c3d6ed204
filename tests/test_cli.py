"""The command line end to end, on real SQLite files and real JSON-lines output."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from cosmobac.cli import cli
from cosmobac.config import default_consumer
from cosmobac.testing import run_cosmobac as cosmobac

pytestmark = pytest.mark.needs_plugins  # the sqlite store


def pipeline_file(tmp_path, extra_run=""):
    path = tmp_path / "pipeline.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            cities = 2
            sensors_per_city = 2
            seed = 3
            rate_hz = 0.1
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "jsonl"
            path = "${{OUT_DIR}}/out.jsonl"
            [run]
            duration = "1h"
            {extra_run}
            """
        )
    )
    return path


def read_docs(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_collects_forwards_and_reports(tmp_path):
    config = pipeline_file(tmp_path)
    out = cosmobac("run", str(config), env={"OUT_DIR": str(tmp_path)})
    assert "collected 1440 new rows" in out.stdout  # 4 sensors x 360 readings in 1 h at 0.1 Hz
    consumer = default_consumer("jsonl", {"path": f"{tmp_path}/out.jsonl"}, ("path",))
    assert f"{consumer}: new checkpoint, starting from the first stored row" in out.stdout
    assert f"{consumer}: 1440 rows acknowledged" in out.stdout
    docs = read_docs(tmp_path / "out.jsonl")
    assert len(docs) == 1440 and len({d["id"] for d in docs}) == 1440
    assert all(d["timestamp"].endswith("Z") for d in docs)


def test_collect_then_forward_then_status(tmp_path):
    config = pipeline_file(tmp_path)
    env = {"OUT_DIR": str(tmp_path), "COLUMNS": "200"}  # the status table on one line per sink
    assert (
        "collected 720 new rows"
        in cosmobac("collect", str(config), "--duration", "30m", env=env).stdout
    )
    again = cosmobac("collect", str(config), "--duration", "40m", env=env).stdout
    assert "collected 240 new rows (240 read)" in again  # resumes after what the store holds
    consumer = default_consumer("jsonl", {"path": f"{tmp_path}/out.jsonl"}, ("path",))
    status = json.loads(cosmobac("status", str(config), "--json", env=env).stdout)
    # the consumer has not read yet: its oldest pending row is the oldest stored one, its age
    # how long that row waited since collected (not how old the simulated reading is)
    age = status["sinks"][0].pop("oldest_pending_age_s")
    assert 0 <= age < 600 and age == pytest.approx(status["oldest_stored_age_s"], abs=1)
    assert status["oldest_pending_age_s"] == {} and status["pending"] == {}
    assert status["oldest_stored_timestamp"] < time.time() - 86400
    assert status["sinks"] == [
        {
            "plugin": "jsonl",
            "consumer": consumer,
            "resuming": False,
            "after_row": 0,
            "pending": 960,
            "dead_letters": 0,
            "rows_per_second": None,  # no forwarder has run
            "last_error": None,
            "last_error_at": None,
            "stopped": False,
            "state": None,  # no forwarder has reported on it
        }
    ]
    assert status["healthy"] is True and status["problems"] == []
    assert status["forwarder"] == {
        "running": False,
        "pid": None,
        "started": None,
        "last_seen": None,
    }
    forwarded = cosmobac("forward", str(config), env=env).stdout
    assert f"{consumer}: new checkpoint, starting from the first stored row" in forwarded
    assert f"{consumer}: 960 rows acknowledged" in forwarded
    status = json.loads(cosmobac("status", str(config), "--json", env=env).stdout)
    assert status["rows"] == 960 and status["pending"] == {consumer: 0}
    assert status["dead_letters"] == {consumer: 0} and status["file_size"] > 0
    assert status["sinks"][0]["resuming"] and status["sinks"][0]["after_row"] == 960
    text = cosmobac("status", str(config), env=env).stdout
    assert "rows stored: 960" in text and "forwarder: not running (last seen" in text
    rows = [line for line in text.splitlines() if line.startswith(f"│ {consumer} ")]
    assert len(rows) == 1, text
    [row] = rows
    assert [cell.strip() for cell in row.strip("│").split("│")][2:5] == ["0", "none", "0"]
    assert f"checkpoints of the file's sinks:\n  {consumer}: resuming after row 960 (0" in text
    again = cosmobac("forward", str(config), env=env).stdout  # nothing new: says why it sends none
    assert f"{consumer}: resuming after row 960 (0 pending)" in again
    assert f"{consumer}: 0 rows acknowledged" in again
    # rows collected now: the backlog's age is how long they waited in the store, not how old
    # the simulated readings are (their timestamp is reported beside it)
    cosmobac("collect", str(config), "--duration", "1h", env=env)
    status = json.loads(cosmobac("status", str(config), "--json", env=env).stdout)
    assert 0 <= status["oldest_pending_age_s"][consumer] < 600
    assert status["oldest_pending_timestamp"][consumer] < time.time() - 86400
    text = cosmobac("status", str(config), env=env).stdout
    [row] = [line for line in text.splitlines() if line.startswith(f"│ {consumer} ")]
    assert re.fullmatch(r"\d+ s old", [c.strip() for c in row.strip("│").split("│")][3]), row


def test_config_errors_exit_2_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\nplugin = "sqlite"\npaht = "x.db"\n')
    result = cosmobac("status", str(bad), check=False)
    assert result.returncode == 2
    assert "bad.toml: [store] (plugin 'sqlite'): unknown key 'paht'" in result.stderr
    assert "accepted keys: plugin, path" in result.stderr
    assert "Traceback" not in result.stderr


def test_unset_variable_exits_2_naming_it(tmp_path):
    config = pipeline_file(tmp_path)
    import os

    env = {k: v for k, v in os.environ.items() if k != "OUT_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "cosmobac", "run", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2 and "'OUT_DIR' is not set" in result.stderr


def test_wrong_sensor_value_names_key_and_plugin(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        textwrap.dedent(
            f"""
            [sensor]
            plugin = "simulated"
            sensors_per_city = 0
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "x.db"}"
            [run]
            duration = "1m"
            """
        )
    )
    result = cosmobac("collect", str(bad), check=False)
    assert result.returncode == 2
    assert "[sensor] (plugin 'simulated')" in result.stderr and "sensors_per_city" in result.stderr


def test_demo_runs_with_no_configuration(tmp_path):
    result = cosmobac("demo", "--dir", str(tmp_path / "demo"), "--duration", "2h")
    assert "rows per city:" in result.stdout and "anomalies by type:" in result.stdout
    docs = read_docs(tmp_path / "demo" / "documents.jsonl")
    assert len(docs) == 3 * 4 * 2 * 3600 // 5
    assert (tmp_path / "demo" / "pipeline.toml").exists()
    # the pipeline it wrote runs again and adds nothing new
    again = cosmobac("run", str(tmp_path / "demo" / "pipeline.toml"))
    assert "collected 0 new rows" in again.stdout


def original_db(path):
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp, "
        "sensor_id TEXT, temperature REAL, humidity REAL, pressure REAL, vibration REAL, "
        "voltage REAL, status_code INTEGER, anomaly_flag INTEGER, anomaly_type TEXT, "
        "firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT, latitude REAL, "
        "longitude REAL)"
    )
    con.executemany(
        "INSERT INTO sensor_readings (timestamp, sensor_id, temperature, location) VALUES (?,?,?,?)",
        [("2025-03-01T10:00:00.000", "s1", 20.5, "Berlin"), (1740823200.5, "s1", None, "Berlin")],
    )
    con.commit()
    con.close()


def test_import_is_idempotent_and_honours_the_assumed_zone(tmp_path):
    original_db(tmp_path / "sensor_data.db")
    store = tmp_path / "store.db"
    args = ["import", str(tmp_path / "sensor_data.db"), "--into", str(store)]
    first = cosmobac(*args, "--assume-timezone", "Europe/Berlin")
    assert "2 new rows" in first.stdout
    assert "0 new rows" in cosmobac(*args, "--assume-timezone", "Europe/Berlin").stdout
    con = sqlite3.connect(store)
    rows = sorted(con.execute("SELECT timestamp, temperature FROM readings").fetchall())
    assert rows == [(1740819600000, 20.5), (1740823200500, None)]  # 10:00 Berlin = 09:00Z


def test_version_and_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ["run", "collect", "forward", "status", "import", "plugins", "demo"]:
        assert command in result.output


@pytest.mark.parametrize("command", ["run", "collect", "forward", "status"])
def test_missing_config_file_is_a_clear_error(tmp_path, command):
    result = cosmobac(command, str(tmp_path / "nope.toml"), check=False)
    assert result.returncode == 2 and "cannot read the pipeline file" in result.stderr


def test_dead_letters_are_listed_and_replayed(tmp_path):
    config = pipeline_file(tmp_path)
    env = {"OUT_DIR": str(tmp_path)}
    cosmobac("collect", str(config), "--duration", "1m", env=env)
    from cosmobac.plugins import get_plugins

    store = get_plugins().create("store", "sqlite", path=str(tmp_path / "edge.db"))
    try:
        rows = store.read("jsonl", 2)
        store.dead_letter("jsonl", rows, "document too large")
        store.ack("jsonl", store.read("jsonl", 1000))
    finally:
        store.close()
    listed = cosmobac("dead-letters", "list", str(config), env=env).stdout.splitlines()
    assert len(listed) == 2 and all(line.endswith(": document too large") for line in listed)
    as_json = [
        json.loads(line)
        for line in cosmobac(
            "dead-letters", "list", str(config), "--json", env=env
        ).stdout.splitlines()
    ]
    assert {r["consumer"] for r in as_json} == {"jsonl"} and not any(r["replayed"] for r in as_json)
    first = str(as_json[0]["seq"])
    replayed = cosmobac(
        "dead-letters", "replay", str(config), "--sink", "jsonl", "--seq", first, env=env
    )
    assert replayed.stdout.startswith("1 dead letters of jsonl")
    cosmobac("forward", str(config), env=env)
    docs = read_docs(tmp_path / "out.jsonl")
    assert [d["id"] for d in docs] == [as_json[0]["document_id"]]  # only the replayed row


def test_dead_letters_sink_option_takes_the_plugin_when_one_sink_has_it(tmp_path):
    from cosmobac.config import load_config
    from cosmobac.plugins import get_plugins

    config = pipeline_file(tmp_path)
    env = {"OUT_DIR": str(tmp_path)}
    cosmobac("collect", str(config), "--duration", "1m", env=env)
    consumer = load_config(config, env={"OUT_DIR": str(tmp_path)}).sinks[0].consumer()
    assert consumer.startswith("jsonl-")  # the default: plugin and a hash of where it writes
    store = get_plugins().create("store", "sqlite", path=str(tmp_path / "edge.db"))
    try:
        store.dead_letter(consumer, store.read(consumer, 3), "document too large")
    finally:
        store.close()
    by_plugin = cosmobac("dead-letters", "list", str(config), "--sink", "jsonl", env=env)
    by_name = cosmobac("dead-letters", "list", str(config), "--sink", consumer, env=env)
    assert by_plugin.stdout == by_name.stdout and len(by_plugin.stdout.splitlines()) == 3
    replayed = cosmobac("dead-letters", "replay", str(config), "--sink", "jsonl", env=env)
    assert replayed.stdout.startswith(f"3 dead letters of {consumer}")
    other = cosmobac("dead-letters", "list", str(config), "--sink", "gone", env=env)
    assert other.stdout.strip() == "no dead letters"  # a name the file does not know, as given


def test_import_with_an_unknown_zone_is_refused_before_anything_is_written(tmp_path):
    original_db(tmp_path / "sensor_data.db")
    store = tmp_path / "store.db"
    result = cosmobac(
        "import", str(tmp_path / "sensor_data.db"), "--into", str(store),
        "--assume-timezone", "Mars/Base", check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "'Mars/Base' is not a known time zone" in result.stderr
    assert not store.exists() and "Traceback" not in result.stderr


def test_forward_follow_says_where_each_sink_starts_before_following(tmp_path):
    import os
    import signal
    import time

    config = pipeline_file(tmp_path)
    env = {"OUT_DIR": str(tmp_path)}
    cosmobac("collect", str(config), "--duration", "10m", env=env)
    consumer = default_consumer("jsonl", {"path": f"{tmp_path}/out.jsonl"}, ("path",))
    follower = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "forward", str(config), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    try:
        first = follower.stdout.readline()
        out = tmp_path / "out.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            not out.exists() or len(out.read_text().splitlines()) < 240
        ):
            time.sleep(0.1)
    finally:
        follower.send_signal(signal.SIGTERM)
        rest, _ = follower.communicate(timeout=60)
    assert (
        first == f"{consumer}: new checkpoint, starting from the first stored row (240 pending)\n"
    )
    assert f"{consumer}: 240 rows acknowledged" in rest


def test_status_gives_ages_in_units_people_read():
    from cosmobac.monitoring.status import age_text_of

    assert age_text_of(45) == "45 s old"
    assert age_text_of(119) == "119 s old"
    assert age_text_of(12 * 60) == "12 min old"
    assert age_text_of(5 * 3600) == "5 h old"
    assert age_text_of(28_685_091) == "332 d old"  # was "oldest 28685091 s old"
    assert age_text_of(-3 * 3600) == "3 h ahead of this clock"  # a reading from the future


def test_a_signal_arriving_inside_stop_wait_does_not_deadlock():
    """The handler runs in the main thread between two of its steps, possibly inside
    ``stop.wait()`` while it holds the event's lock: it must not take that lock itself."""
    import os
    import signal
    import threading

    from cosmobac.cli import graceful_stop

    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with graceful_stop(stop):
        # hold the event's own lock, as Event.wait does between waking and returning
        with stop._cond:  # the lock an interrupted wait() would hold
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, in this thread
            assert not stop.is_set()  # it only handed the signal on
        assert stop.wait(10), "the signal never set stop"
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
