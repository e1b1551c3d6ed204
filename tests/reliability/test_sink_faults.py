"""Issue 19, items 2, 3 and 7 (timeouts) for the built-in sinks, each reproduced for real:

* content errors (a 300-character city for ``parquet``, text UTF-8 cannot encode for ``jsonl`` and
  ``stdout``, documents a webhook refuses for their content or size) dead-letter exactly the rows
  concerned, with the reason, and a following forwarder delivers the rows behind them;
* a full disk (``RLIMIT_FSIZE`` in a subprocess: ``EFBIG``; a small ``tmpfs`` where this machine
  lets the tests mount one: ``ENOSPC``) is an outage: retried, no torn line in ``jsonl``, no partial
  file under a final name in ``parquet``, and the retried batch is appended cleanly;
* a torn tail left by a crash is cut back when the ``jsonl`` file is next opened;
* ``cosmobac evaluate --documents`` names the file and line of a bad line instead of a traceback;
* a webhook endpoint that accepts connections and never answers costs one ``read_timeout`` per
  attempt, and a forwarder gives up on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.config import RunConfig
from cosmobac.errors import SinkError
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.sinks.jsonl import JsonlSink
from cosmobac.sinks.stdout import StdoutSink
from cosmobac.sinks.webhook import WebhookSink
from cosmobac.testing import MemoryStore, run_cosmobac, silent_server

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LONG_CITY = "Llanfair" * 40  # 320 characters: a folder name no common file system takes
FAST = RunConfig(batch_size=4, backoff=0.01, max_backoff=0.05, max_attempts=3, interval=0.02)


def readings(n: int, **columns: object) -> Batch:
    return Batch.from_columns(
        timestamp=T0 + 1000 * np.arange(n, dtype=np.int64),
        sensor_id=np.array([f"s-{i % 3}" for i in range(n)], dtype=object),
        city=np.array(["London"] * n, dtype=object),
        temperature=np.arange(n, dtype=float),
        **columns,  # type: ignore[arg-type]
    )


def follow_until_settled(store: MemoryStore, lane: Lane, rows: int, timeout: float = 30) -> None:
    """Run ``forward(follow=True)`` until every row is acknowledged or dead-lettered."""
    pipeline = Pipeline(store=store, lanes=[lane], run=FAST)
    thread = threading.Thread(target=pipeline.forward, kwargs={"follow": True}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if store.stats().pending.get(lane.consumer) == 0:
                break
            time.sleep(0.02)
    finally:
        pipeline.stop.set()
        thread.join(timeout)
    assert not thread.is_alive()
    assert store.stats().pending[lane.consumer] == 0, "rows still pending: the stream stalled"


def letters(store: MemoryStore, consumer: str) -> dict[int, str]:
    return {d.seq: d.reason for d in store.dead_letters(consumer)}


# -- content errors: exactly the rows concerned are dead-lettered, the stream goes on ------------


@pytest.mark.parametrize("where", ["checked up front", "refused by the file system"])
def test_parquet_a_city_too_long_for_a_folder_name_dead_letters_its_rows_only(
    tmp_path, monkeypatch, where
):
    pytest.importorskip("pyarrow")
    from cosmobac.sinks.parquet import ParquetSink

    if where == "refused by the file system":  # skip the up-front check: the OS says ENAMETOOLONG
        monkeypatch.setattr(ParquetSink, "_name_max", lambda self: 10**6)
    cities = np.array(["London"] * 12, dtype=object)
    cities[[1, 6]] = LONG_CITY
    store = MemoryStore()
    store.append(readings(12).with_columns(city=cities))
    sink = ParquetSink(path=tmp_path / "archive", fsync=False)
    follow_until_settled(store, Lane("archive", sink), 12)
    dead = letters(store, "archive")
    assert sorted(dead) == [2, 7]  # seq is 1-based: exactly rows 1 and 6
    assert all("Llanfair" in reason for reason in dead.values())
    if where == "checked up front":
        assert "too long for a partition folder name" in dead[2]
    else:
        assert "File name too long" in dead[2]
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "archive", partitioning="hive").to_table()
    assert table.num_rows == 10  # the rows behind the poison ones were delivered
    assert not list((tmp_path / "archive").rglob("*.tmp"))


@pytest.mark.parametrize("sink_name", ["jsonl", "stdout", "parquet"])
def test_text_utf8_cannot_encode_dead_letters_that_row_only(tmp_path, capsys, sink_name):
    notes = np.array(["ok"] * 10, dtype=object)
    notes[3] = "half a surrogate pair: \ud800"  # what a badly decoded import can leave
    store = MemoryStore()
    store.append(readings(10, note=notes))
    if sink_name == "jsonl":
        sink = JsonlSink(path=tmp_path / "out.jsonl", fsync=False)
    elif sink_name == "stdout":
        sink = StdoutSink()
    else:
        pytest.importorskip("pyarrow")
        from cosmobac.sinks.parquet import ParquetSink

        sink = ParquetSink(path=tmp_path / "archive", fsync=False)
    follow_until_settled(store, Lane(sink_name, sink), 10)
    sink.close()
    dead = letters(store, sink_name)
    assert list(dead) == [4]
    assert "\\ud800" in dead[4] and "UTF-8" in dead[4]
    if sink_name == "parquet":
        import pyarrow.dataset as ds

        assert ds.dataset(tmp_path / "archive", partitioning="hive").count_rows() == 9
        return
    text = (
        (tmp_path / "out.jsonl").read_text(encoding="utf-8")
        if sink_name == "jsonl"
        else capsys.readouterr().out
    )
    docs = [json.loads(line) for line in text.splitlines()]
    assert len(docs) == 9 and all(d["note"] == "ok" for d in docs)


def test_jsonl_and_stdout_reject_a_value_json_cannot_carry(tmp_path, capsys):
    extra = np.empty(6, dtype=object)
    extra[:] = [[1.0, 2.0]] * 6
    extra[2] = [1.0, float("nan")]  # NaN inside a list: not JSON
    extra[4] = b"\x00\x01"  # bytes: not JSON
    batch = readings(6, samples=extra)
    for sink in (JsonlSink(path=tmp_path / "out.jsonl", fsync=False), StdoutSink()):
        result = sink.write(batch)
        sink.close()
        assert result is not None and result.retry == ()
        assert sorted(result.rejected) == [2, 4]
        assert "field 'samples'" in result.rejected[2] and "NaN" in result.rejected[2]
        assert "bytes" in result.rejected[4]
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    printed = capsys.readouterr().out.splitlines()
    assert len(written) == len(printed) == 4


class RefusingReceiver:
    """A webhook receiver that answers 422 to a request holding a document whose ``note`` is
    ``"poison"`` and 413 to a body over ``max_body`` bytes; it records what it accepted."""

    def __init__(self, max_body: int) -> None:
        self.accepted: list[dict] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests += 1
                docs = json.loads(body)["documents"]
                if len(body) > max_body:
                    status, text = 413, b"payload too large"
                elif any(d.get("note") == "poison" for d in docs):
                    status, text = 422, b"note must not be poison"
                else:
                    status, text = 200, b""
                    receiver.accepted.extend(docs)
                self.send_response(status)
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_refused_documents_are_found_and_only_they_are_dead_lettered():
    notes = np.array(["fine"] * 16, dtype=object)
    notes[5] = "poison"
    notes[11] = "x" * 20_000  # alone over the receiver's size limit
    store = MemoryStore()
    store.append(readings(16, note=notes, detected=np.ones(16, dtype=bool)))
    receiver = RefusingReceiver(max_body=10_000)
    try:
        sink = WebhookSink(url=receiver.url, max_rows=8)
        follow_until_settled(store, Lane("alerts", sink), 16)
        sink.close()
    finally:
        receiver.close()
    dead = letters(store, "alerts")
    assert sorted(dead) == [6, 12]
    assert "HTTP 422" in dead[6] and "poison" in dead[6]
    assert "HTTP 413" in dead[12]
    assert sorted(d["timestamp"] for d in receiver.accepted) == sorted(
        d["timestamp"] for i, d in enumerate(_documents(store)) if i not in (5, 11)
    )
    assert receiver.requests < 30  # halving finds two bad documents among 16 in a few requests


def _documents(store: MemoryStore) -> list[dict]:
    from cosmobac.documents import to_documents

    return list(to_documents(store.read("__everything__", 100)))


# -- a torn tail and a full disk -----------------------------------------------------------------


def test_jsonl_cuts_a_torn_tail_on_open_and_appends_the_retried_batch_cleanly(tmp_path, caplog):
    path = tmp_path / "out.jsonl"
    first = JsonlSink(path=path, fsync=False)
    first.write(readings(3))
    first.close()
    whole = path.read_bytes()
    with open(path, "ab") as f:  # what a crash in the middle of a write leaves
        f.write(b'{"id":"s-0@2026-01-01T00:00:03.000Z","timestamp":"2026-01-0')
    again = JsonlSink(path=path, fsync=False)
    again.write(readings(5).select(slice(3, 5)))
    again.close()
    assert path.read_bytes().startswith(whole)
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [d["temperature"] for d in docs] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert "cut 59 bytes of an incomplete last line" in caplog.text


def test_jsonl_a_file_of_only_a_fragment_is_cut_to_empty(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id":"frag')
    sink = JsonlSink(path=path, fsync=False)
    sink.write(readings(1))
    sink.close()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    json.loads(path.read_text(encoding="utf-8"))


DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    from cosmobac import Batch
    from cosmobac.config import RunConfig
    from cosmobac.pipeline import Lane, Pipeline
    from cosmobac.testing import MemoryStore

    kind, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG
    n = 400
    store = MemoryStore()
    store.append(Batch.from_columns(
        timestamp=1_767_225_600_000 + 1000 * np.arange(n, dtype=np.int64),
        sensor_id=np.array([f"s-{i % 3}" for i in range(n)], dtype=object),
        city=np.array(["London", "Paris"] * (n // 2), dtype=object),
        temperature=np.arange(n, dtype=float),
    ))
    if kind == "jsonl":
        from cosmobac.sinks.jsonl import JsonlSink
        sink = JsonlSink(path=target)
    else:
        from cosmobac.sinks.parquet import ParquetSink
        sink = ParquetSink(path=target, compression="none")
    run = RunConfig(batch_size=100, backoff=0.01, max_backoff=0.02, max_attempts=3)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    full = Pipeline(store=store, lanes=[Lane(kind, sink)], run=run).forward()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk has room again
    after = Pipeline(store=store, lanes=[Lane(kind, sink)], run=run).forward()
    sink.close()
    print(json.dumps({
        "full_error": full.lanes[0].error, "full_acked": full.lanes[0].acked,
        "full_failures": full.lanes[0].failures, "after_error": after.lanes[0].error,
        "pending": store.stats().pending[kind], "dead": len(store.dead_letters(kind)),
    }))
    """
)


def run_disk_full(kind: str, target: Path, limit: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, kind, str(target), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def check_jsonl_after_disk_full(path: Path, outcome: dict, errno_name: str) -> None:
    assert outcome["full_error"] is not None and errno_name in outcome["full_error"]
    assert outcome["full_failures"] == 3  # retried as an outage, then given up (not following)
    assert 0 < outcome["full_acked"] < 400  # some batches fit before the disk filled
    assert outcome["after_error"] is None and outcome["pending"] == 0 and outcome["dead"] == 0
    lines = path.read_bytes().split(b"\n")
    assert lines.pop() == b""  # ends with a newline: no torn tail
    docs = [json.loads(line) for line in lines]  # every line is one whole document
    assert sorted(d["temperature"] for d in docs) == list(range(400))  # each row exactly once


def test_jsonl_disk_full_file_size_limit_is_retried_with_no_torn_line(tmp_path):
    path = tmp_path / "out.jsonl"
    outcome = run_disk_full("jsonl", path, limit=30_000)  # ~2.6 batches of 100 rows fit
    check_jsonl_after_disk_full(path, outcome, "EFBIG")


@pytest.fixture
def small_filesystem(tmp_path) -> Iterator[Path]:
    """A 16 kB tmpfs where this machine lets the tests mount one (root, not in a container that
    forbids it); skipped otherwise — the file-size limit test covers the same path with EFBIG."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_jsonl_disk_really_full_is_retried_with_no_torn_line(small_filesystem):
    path = small_filesystem / "out.jsonl"
    # the limit is the file system's size, not a file-size limit: pass one far above it
    outcome = run_disk_full("jsonl", path, limit=1 << 40)
    assert outcome["full_error"] is not None and "ENOSPC" in outcome["full_error"]
    assert 0 < outcome["full_acked"] < 400
    assert outcome["pending"] > 0  # the disk never got room: the rest stays pending, none lost
    lines = path.read_bytes().split(b"\n")
    assert lines.pop() == b""
    docs = [json.loads(line) for line in lines]
    assert len(docs) == outcome["full_acked"]


def test_parquet_disk_full_is_retried_and_leaves_no_partial_file(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    archive = tmp_path / "archive"
    outcome = run_disk_full("parquet", archive, limit=1_500)  # no file of a batch fits
    assert outcome["full_error"] is not None and "EFBIG" in outcome["full_error"]
    assert outcome["full_failures"] == 3
    assert outcome["after_error"] is None and outcome["pending"] == 0 and outcome["dead"] == 0
    assert not list(archive.rglob("*.tmp"))  # no temporary file left behind
    for file in archive.rglob("*.parquet"):
        pq.read_metadata(file)  # every file under a final name is complete
    table = ds.dataset(archive, partitioning="hive").to_table()
    assert sorted(table["temperature"].to_pylist()) == list(range(400))


# -- evaluate --documents ----------------------------------------------------------------------


def labelled_documents(path: Path, n: int = 40) -> None:
    sink = JsonlSink(path=path, fsync=False)
    flags = np.arange(n) % 10 == 0
    sink.write(
        readings(n, anomaly_flag=flags, zscore_detected=flags, zscore_score=flags.astype(float))
    )
    sink.close()


def test_evaluate_documents_names_the_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    labelled_documents(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = '{"id": "broken", "timestamp": \n'
    path.write_text("".join(lines), encoding="utf-8")
    result = run_cosmobac("evaluate", "--documents", path, check=False, timeout=120)
    assert result.returncode == 2
    assert f"{path}:7: not JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_documents_skips_a_torn_last_line_with_a_warning(tmp_path):
    path = tmp_path / "docs.jsonl"
    labelled_documents(path)
    with open(path, "ab") as f:
        f.write(b'{"id":"s-1@2026-01-01T00:00:40.000Z","timest')
    result = run_cosmobac("evaluate", "--documents", path, "--json", check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped line 41, an incomplete last line" in result.stderr
    assert "Traceback" not in result.stderr


# -- an endpoint that accepts connections and never answers --------------------------------------


@pytest.mark.slow  # a real process or a hung endpoint: seconds of waiting
def test_webhook_hung_endpoint_costs_one_read_timeout_by_default():
    sink = WebhookSink(url="http://127.0.0.1:1/")
    assert (sink.connect_timeout, sink.read_timeout) == (5.0, 5.0)
    with silent_server() as (url, accepted):
        sink = WebhookSink(url=url + "hook")
        began = time.monotonic()
        with pytest.raises(SinkError, match="did not answer: ReadTimeout after 5 s") as info:
            sink.write(readings(3, detected=np.ones(3, dtype=bool)))
        took = time.monotonic() - began
        sink.close()
    assert info.value.transient
    assert len(accepted) == 1  # no retry inside the write: it would wait another timeout
    assert 4.5 <= took < 10  # one read_timeout, well within twice it (was ~55 s)


@pytest.mark.slow  # a real process or a hung endpoint: seconds of waiting
def test_webhook_hung_endpoint_a_forwarder_gives_up_within_its_attempts():
    store = MemoryStore()
    store.append(readings(8, detected=np.ones(8, dtype=bool)))
    with silent_server() as (url, accepted):
        sink = WebhookSink(url=url + "hook", read_timeout="0.5s")
        run = RunConfig(batch_size=8, backoff=0.01, max_backoff=0.05, max_attempts=4)
        began = time.monotonic()
        report = Pipeline(store=store, lanes=[Lane("alerts", sink)], run=run).forward()
        took = time.monotonic() - began
        sink.close()
    lane = report.lanes[0]
    assert lane.error is not None and "gave up after 4 failed attempts" in lane.error
    assert "did not answer" in lane.error
    assert len(accepted) == 4 and lane.acked == 0
    assert store.stats().pending["alerts"] == 8  # nothing lost: the rows wait for the endpoint
    assert took < 4 * 0.5 * 2 + 2
