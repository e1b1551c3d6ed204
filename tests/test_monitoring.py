"""Metrics and health of the long-running commands, scraped from real ``cosmobac`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from cosmobac.cli import main

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pipeline_files import JSONL, free_port, pipeline, webhook  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

pytestmark = pytest.mark.needs_plugins  # the sqlite store

WAIT_S = 90.0


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cosmobac", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def until(proc: subprocess.Popen[str], port: int, path: str, done) -> tuple[int, str]:
    """GET ``path`` until ``done(status, body)``; fail with the process's output otherwise."""
    deadline = time.monotonic() + WAIT_S
    last: tuple[int, str] | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process ended ({proc.returncode}): {proc.stderr.read()}")
        try:
            last = get(port, path)
        except OSError:  # not listening yet
            time.sleep(0.1)
            continue
        if done(*last):
            return last
        time.sleep(0.1)
    pytest.fail(f"{path} never got there; last answer {last}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    return out, err


def test_forward_follow_serves_what_it_delivered(tmp_path):
    out = tmp_path / "out.jsonl"
    config = pipeline(tmp_path, JSONL.format(out=out))
    main_rc = subprocess.run(
        [sys.executable, "-m", "cosmobac", "collect", config], capture_output=True, text=True
    )
    assert main_rc.returncode == 0, main_rc.stderr
    port = free_port()
    proc = start("forward", config, "--follow", "--metrics-port", str(port))
    try:
        stored_rows = 2 * 2 * 3600 // 20  # 2 sensors at 0.05 Hz for 2 h
        _, text = until(
            proc,
            port,
            "/metrics",
            lambda _s, t: (
                samples(t).get(("cosmobac_sink_rows_acked_total", (("sink", "archive"),)))
                == stored_rows
            ),
        )
        assert get(port, "/healthz")[0] == 200
        status, body = get(port, "/readyz")
        assert (status, json.loads(body)) == (200, {"ready": True})
    finally:
        stop(proc)
    values = samples(text)
    sink = (("sink", "archive"),)
    assert values[("cosmobac_sink_backlog_rows", sink)] == 0
    assert values[("cosmobac_sink_rows_dead_lettered_total", sink)] == 0
    assert values[("cosmobac_sink_write_failures_total", sink)] == 0
    assert values[("cosmobac_sink_write_seconds_count", sink)] == -(
        -stored_rows // 50
    )  # batches of 50
    assert values[("cosmobac_sink_write_seconds_sum", sink)] > 0
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == stored_rows
    by_type: dict[str, int] = {}
    for doc in docs:
        if doc.get("z_detected"):
            kind = doc.get("anomaly_type") or "none"
            by_type[kind] = by_type.get(kind, 0) + 1
    assert sum(by_type.values()) > 0
    counted = {
        dict(labels)["type"]: value
        for (name, labels), value in values.items()
        if name == "cosmobac_anomalies_total" and dict(labels)["detector"] == "z"
    }
    assert counted == by_type
    assert values[("cosmobac_sink_up", sink)] == 1
    assert values[("cosmobac_sink_throttled_requests_total", sink)] == 0
    import cosmobac

    assert values[("cosmobac_build_info", (("version", cosmobac.__version__),))] == 1
    assert values[("cosmobac_process_start_time_seconds", ())] > 1.6e9


def test_run_counts_rows_collected_and_stored(tmp_path):
    config = pipeline(
        tmp_path, JSONL.format(out=tmp_path / "out.jsonl"), 'speed = 3600.0\nstep = "1m"'
    )
    port = free_port()
    proc = start("run", config, "--metrics-port", str(port))
    try:
        _, text = until(
            proc,
            port,
            "/metrics",
            lambda _s, t: (
                samples(t).get(("cosmobac_rows_stored_total", ()), 0) > 0
                and samples(t).get(("cosmobac_sink_rows_acked_total", (("sink", "archive"),)), 0)
                > 0
            ),
        )
    finally:
        stop(proc)
    values = samples(text)
    assert (
        values[("cosmobac_rows_collected_total", ())] >= values[("cosmobac_rows_stored_total", ())]
    )


def test_readyz_is_503_for_a_sink_that_failed_permanently(tmp_path):
    receiver = Receiver()
    receiver.status = 401
    # a second, healthy sink keeps the forwarder running (it ends when every sink has given up)
    sinks = webhook(receiver.url) + "\n" + JSONL.format(out=tmp_path / "out.jsonl")
    config = pipeline(tmp_path, sinks)
    subprocess.run([sys.executable, "-m", "cosmobac", "collect", config], check=True)
    port = free_port()
    proc = start("forward", config, "--follow", "--metrics-port", str(port))
    try:
        _status, body = until(proc, port, "/readyz", lambda s, _b: s == 503)
        assert get(port, "/healthz")[0] == 200
        _, text = get(port, "/metrics")
    finally:
        stop(proc)
        receiver.close()
    reason = json.loads(body)
    assert reason["ready"] is False
    [why] = reason["reasons"]
    assert why["sink"] == "hook" and why["reason"] == "sink failed permanently"
    assert "401" in why["error"]
    values = samples(text)
    assert values[("cosmobac_sink_write_failures_total", (("sink", "hook"),))] == 1
    assert values[("cosmobac_sink_up", (("sink", "hook"),))] == 0
    assert values[("cosmobac_sink_up", (("sink", "archive"),))] == 1
    assert values[("cosmobac_sink_backlog_rows", (("sink", "hook"),))] == 2 * 2 * 3600 // 20


def test_readyz_is_503_for_a_backlog_older_than_max_backlog_age(tmp_path):
    """The backlog's age is how long its oldest row has waited in the store: the simulated
    readings, timestamped long ago, were collected just now and only become too old once they
    have waited ``max_backlog_age``."""
    receiver = Receiver()
    receiver.status = 503  # transient: retried for ever, the rows stay pending
    config = pipeline(tmp_path, webhook(receiver.url), '[monitoring]\nmax_backlog_age = "3s"')
    subprocess.run([sys.executable, "-m", "cosmobac", "collect", config], check=True)
    port = free_port()
    proc = start("forward", config, "--follow", "--metrics-port", str(port))
    try:
        _status, body = until(proc, port, "/readyz", lambda s, _b: s == 503)
        _, text = until(
            proc,
            port,
            "/metrics",
            lambda _s, t: (
                samples(t).get(("cosmobac_sink_write_failures_total", (("sink", "hook"),)), 0) > 0
            ),
        )
    finally:
        stop(proc)
        receiver.close()
    [why] = json.loads(body)["reasons"]
    assert why["sink"] == "hook" and why["reason"] == "backlog too old"
    assert 3 < why["oldest_pending_age_s"] < 600 and why["max_backlog_age_s"] == 3
    age = samples(text)[("cosmobac_sink_oldest_pending_age_seconds", (("sink", "hook"),))]
    assert 3 < age < 600  # not judged by the readings' timestamps


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('listen = "localhost:http"', "listen"),
        ('listen = "127.0.0.1:70000"', "listen"),
        ('max_backlog_age = "soon"', "max_backlog_age"),
        ('max_backlog_age = "0s"', "max_backlog_age"),
        ("listne = 9464", "listne"),
    ],
)
def test_bad_monitoring_values_exit_2_naming_the_key(tmp_path, capsys, table, key):
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"), f"[monitoring]\n{table}")
    with pytest.raises(SystemExit) as exit_:
        main(["collect", config])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "[monitoring]" in err and key in err


def test_metrics_port_needs_follow_for_forward(tmp_path, capsys):
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"))
    with pytest.raises(SystemExit) as exit_:
        main(["forward", config, "--metrics-port", "9464"])
    assert exit_.value.code == 2
    assert "--metrics-port needs --follow" in capsys.readouterr().err


def test_monitoring_without_prometheus_client_names_the_extra(monkeypatch):
    from cosmobac.errors import ConfigError
    from cosmobac.monitoring import Monitor

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigError, match=r"cosmobac\[monitoring\]"):
        Monitor(store=lambda: None, consumers=list)


def test_forward_follow_reports_what_each_sink_did_on_stderr(tmp_path):
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"))
    subprocess.run([sys.executable, "-m", "cosmobac", "collect", config], check=True)
    proc = start("forward", config, "--follow", "--report-every", "0.2s")
    try:
        time.sleep(3.0)
    finally:
        _out, err = stop(proc)
    lines = [line for line in err.splitlines() if "archive:" in line and "acknowledged" in line]
    assert lines, err
    acked = sum(int(line.split("archive: ")[1].split()[0].replace(",", "")) for line in lines)
    assert acked == 2 * 2 * 3600 // 20  # every row reported once, then quiet while idle
    assert lines[-1].endswith("0 pending")


def test_report_every_must_be_a_positive_duration(tmp_path, capsys):
    config = pipeline(tmp_path, JSONL.format(out=tmp_path / "out.jsonl"))
    with pytest.raises(SystemExit) as exit_:
        main(["forward", config, "--follow", "--report-every", "0s"])
    assert exit_.value.code == 2
    assert "--report-every" in capsys.readouterr().err
