"""The required fault scenarios, each asserting what the container finally holds:

* a 429 storm (every retry-after honoured, nothing lost);
* 5xx before and after the write, dropped connections before and after it, delays (exactly once);
* poison rows (a > 2 MB document, a non-finite value JSON cannot carry, a bad id) dead-lettered
  while the rest arrives; top-level NaN/Inf arrive as null;
* a wrong key (the proxy answers 401 as real Cosmos DB does): a clear error, nothing acknowledged;
* the server frozen (SIGSTOP) for 30 s mid-run, then resumed: nothing lost, bounded waits;
* the forwarder SIGKILLed at 10+ random points and restarted: every reading exactly once.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from cosmobac import Batch
from cosmobac.config import RunConfig
from cosmobac.documents import document_ids
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.plugins import Plugins
from cosmobac.testing import run_cosmobac
from cosmobac_cosmos.emulator import LOCAL_KEY
from cosmobac_sqlite import SQLiteStore

from .conftest import DATABASE, contents, delivered_ids, ids, make_sink
from .faultproxy import Rules, is_batch

FAST = RunConfig(batch_size=1000, backoff=0.05, max_backoff=0.5, max_attempts=50)


def fleet(store: SQLiteStore, *, minutes: float, cities: int = 3, per_city: int = 4) -> int:
    sensor = Plugins(entry_points=False).create(
        "sensor", "simulated", cities=cities, sensors_per_city=per_city, seed=5, rate_hz=1.0
    )
    return store.append(sensor.read(int(sensor.start) + int(minutes * 60_000)))


def stored_ids(path) -> dict[int, str]:
    with SQLiteStore(path) as store:
        batch = store.read("__all__", 10**9)
    return dict(zip(batch["seq"].tolist(), document_ids(batch).tolist(), strict=True))


def assert_exactly_once(server, container: str, expected: set[str]) -> None:
    found = ids(server, container)
    duplicates = len(found) - len(set(found))
    lost = expected - set(found)
    extra = set(found) - expected
    assert (len(lost), duplicates, len(extra)) == (0, 0, 0), (
        f"{len(lost)} readings lost, {duplicates} duplicated, {len(extra)} unexpected"
    )


def test_a_429_storm_is_ridden_out_honouring_every_retry_after(
    cosmos_server, proxy, container_name, tmp_path
):
    proxy.rules = Rules(throttle=0.5, retry_after_ms=(20, 150))
    with SQLiteStore(tmp_path / "edge.db") as store:
        fleet(store, minutes=8)
        sink = make_sink(proxy.endpoint, container_name, max_concurrency=8)
        with sink:
            report = Pipeline(store=store, lanes=[Lane("cosmos", sink)], run=FAST).forward()
            totals = sink.totals()
        assert report.ok and store.stats().pending["cosmos"] == 0
    throttled = proxy.count("throttle")
    print(f"\n429 storm: {throttled} answers 429 of {len(proxy.events)} requests, {totals}")
    assert throttled > 20
    assert totals["throttled"] == throttled  # every 429 seen by the sink, none hidden in the SDK
    assert report.lanes[0].stats["throttled"] == throttled  # and reported per run
    assert proxy.retry_after_violations() == []
    assert_exactly_once(
        cosmos_server, container_name, set(stored_ids(tmp_path / "edge.db").values())
    )


def test_errors_drops_and_delays_before_and_after_writes_lose_and_duplicate_nothing(
    cosmos_server, proxy, container_name, tmp_path
):
    proxy.rules = Rules(
        error_before=0.08,
        error_after=0.08,
        drop_before=0.05,
        drop_after=0.05,
        delay=0.1,
        delay_s=(0.01, 0.1),
    )
    with SQLiteStore(tmp_path / "edge.db") as store:
        fleet(store, minutes=5)
        with make_sink(proxy.endpoint, container_name, retry_backoff=0.02) as sink:
            report = Pipeline(store=store, lanes=[Lane("cosmos", sink)], run=FAST).forward()
            totals = sink.totals()
        assert report.ok and store.stats().pending["cosmos"] == 0
    faults = {
        f: proxy.count(f)
        for f in ("error_before", "error_after", "drop_before", "drop_after", "delay")
    }
    print(f"\nfaults injected: {faults} of {len(proxy.events)} requests; sink: {totals}")
    for fault, count in faults.items():
        assert count > 0, fault
    # answers lost after the write happened come back as conflicts, settled by upserts
    assert totals["conflicts"] > 0 and totals["errors"] > 0
    assert_exactly_once(
        cosmos_server, container_name, set(stored_ids(tmp_path / "edge.db").values())
    )


class Poison:
    """A transform that spoils three rows: one over 2 MB, one holding a non-finite number inside
    a list (JSON cannot carry it), one with an id Cosmos DB forbids — and sets top-level NaN and
    Inf on two others (those become null and arrive)."""

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch)
        note = np.full(n, None, dtype=object)
        samples = np.full(n, None, dtype=object)
        doc_ids = document_ids(batch).astype(object)
        temperature = batch["temperature"].copy()
        for i, seq in enumerate(batch["seq"].tolist()):
            if seq == 10:
                note[i] = "x" * (2 * 1024 * 1024 + 1)
            elif seq == 20:
                samples[i] = [1.0, float("inf")]
            elif seq == 30:
                doc_ids[i] = "bad/id#30"
            elif seq == 40:
                temperature[i] = np.nan
            elif seq == 50:
                temperature[i] = np.inf
        return batch.with_columns(note=note, samples=samples, id=doc_ids, temperature=temperature)


def test_poison_rows_are_dead_lettered_with_reasons_and_the_rest_arrives(
    cosmos_server, container_name, tmp_path
):
    with SQLiteStore(tmp_path / "edge.db") as store:
        rows = fleet(store, minutes=1)
        with make_sink(cosmos_server.endpoint, container_name) as sink:
            lane = Lane("cosmos", sink, [Poison()])
            report = Pipeline(store=store, lanes=[lane], run=RunConfig(batch_size=200)).forward()
        assert report.ok
        letters = {d.seq: d.reason for d in store.dead_letters("cosmos")}
        expected = set(stored_ids(tmp_path / "edge.db").values())
    assert sorted(letters) == [10, 20, 30]
    assert "2 MB" in letters[10]
    assert "non-finite" in letters[20] and "samples" in letters[20]
    assert "bad/id#30" in letters[30] and "cannot contain" in letters[30]
    docs = {d["id"]: d for d in contents(cosmos_server, container_name)}
    assert len(docs) == rows - 3
    by_seq = stored_ids(tmp_path / "edge.db")
    assert set(docs) == expected - {by_seq[10], by_seq[20], by_seq[30]}
    # a missing metric is left out of the document, never 0.0
    assert "temperature" not in docs[by_seq[40]] and "temperature" not in docs[by_seq[50]]


def test_a_wrong_key_stops_with_a_clear_error_and_nothing_acknowledged(
    cosmos_server, proxy, container_name, tmp_path, caplog
):
    wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
    proxy.rules = Rules(status=401)
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "edge.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "cosmos"
            endpoint = "{proxy.endpoint}"
            database = "{DATABASE}"
            container = "{container_name}"
            key = "${{COSMOS_KEY}}"
            """
        )
    )
    with SQLiteStore(tmp_path / "edge.db") as store:
        rows = fleet(store, minutes=1)
    result = run_cosmobac(
        "-vv", "forward", config, env={"COSMOS_KEY": wrong_key}, check=False, timeout=120
    )
    assert result.returncode == 1
    assert "authentication failed (HTTP 401)" in result.stderr and "`key`" in result.stderr
    assert wrong_key not in result.stderr + result.stdout
    assert "0 rows acknowledged" in result.stdout
    with SQLiteStore(tmp_path / "edge.db") as store:
        [(consumer, pending)] = store.stats().pending.items()  # the file's sink, unnamed
        assert consumer.startswith("cosmos-") and pending == rows  # nothing acknowledged
    # in-process too: the error, the logs and the repr never show the key
    sink = make_sink(proxy.endpoint, container_name, key=wrong_key)
    with SQLiteStore(tmp_path / "edge.db") as store:
        report = Pipeline(store=store, lanes=[Lane("cosmos", sink)], run=FAST).forward()
        assert store.stats().pending["cosmos"] == rows
    assert report.lanes[0].error is not None and "401" in report.lanes[0].error
    assert report.lanes[0].failures == 0  # permanent: not retried
    assert wrong_key not in report.lanes[0].error + caplog.text + repr(sink)
    assert proxy.count("status") <= 12  # two clients, each asked a few times: no retry storm
    # and the container holds nothing: it was never even created
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    with pytest.raises(CosmosResourceNotFoundError):
        ids(cosmos_server, container_name)


class Recording:
    """A sink wrapper that times each write and runs a hook before one of them."""

    def __init__(self, sink, before) -> None:
        self.sink, self.before, self.calls, self.durations = sink, before, 0, []

    def write(self, batch):
        self.calls += 1
        self.before(self.calls)
        began = time.monotonic()
        try:
            return self.sink.write(batch)
        finally:
            self.durations.append(time.monotonic() - began)

    def close(self):
        self.sink.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.mark.slow
def test_the_server_frozen_for_30_s_mid_run_loses_nothing_and_waits_are_bounded(
    cosmos_server, container_name, tmp_path
):
    freeze_s = 30.0
    resumed = threading.Event()
    frozen_at: list[float] = []

    def resume() -> None:
        os.kill(cosmos_server.pid, signal.SIGCONT)
        resumed.set()

    timer = threading.Timer(freeze_s, resume)

    def before(call: int) -> None:
        if call == 3:  # two batches in: freeze the server
            os.kill(cosmos_server.pid, signal.SIGSTOP)
            frozen_at.append(time.monotonic())
            timer.start()

    try:
        with SQLiteStore(tmp_path / "edge.db") as store:
            fleet(store, minutes=5)
            sink = make_sink(
                cosmos_server.endpoint,
                container_name,
                connection_timeout=2,
                read_timeout=2,
                write_timeout=6,
                retry_backoff=0.2,
                retry_backoff_max=2,
            )
            sink.connect()
            recording = Recording(sink, before)
            run = RunConfig(batch_size=500, backoff=0.2, max_backoff=2.0, max_attempts=1000)
            began = time.monotonic()
            with recording:
                report = Pipeline(store=store, lanes=[Lane("cosmos", recording)], run=run).forward()
            finished = time.monotonic()
            assert report.ok and store.stats().pending["cosmos"] == 0
    finally:
        timer.cancel()
        if not resumed.is_set():
            os.kill(cosmos_server.pid, signal.SIGCONT)
    print(
        f"\nfrozen 30 s: {report.lanes[0].failures} failed writes retried, longest write "
        f"{max(recording.durations):.1f} s, done {finished - (frozen_at[0] + freeze_s):.1f} s "
        "after the server came back"
    )
    assert frozen_at and resumed.is_set()
    assert report.lanes[0].failures >= 2  # writes failed while frozen and were retried
    # bounded waits: no write blocked for the freeze, each gave up within its write_timeout
    # plus one read_timeout (and slack for a noisy machine)
    assert max(recording.durations) < 6 + 2 + 8
    # resumed promptly: done well within a minute of the server coming back
    assert finished - (frozen_at[0] + freeze_s) < 60
    assert finished - began >= freeze_s
    assert_exactly_once(
        cosmos_server, container_name, set(stored_ids(tmp_path / "edge.db").values())
    )


@pytest.mark.slow
def test_the_forwarder_sigkilled_at_random_points_and_restarted_delivers_exactly_once(
    cosmos_server, proxy, container_name, tmp_path
):
    # slow the batches down so that kills land mid-write (upserts after a replay go unslowed)
    proxy.rules = Rules(delay=1.0, delay_s=(0.04, 0.12), applies=is_batch)
    config = tmp_path / "edge.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [store]
            plugin = "sqlite"
            path = "{tmp_path / "edge.db"}"
            [[sinks]]
            plugin = "cosmos"
            name = "cosmos"  # the checkpoint the test reads
            endpoint = "{proxy.endpoint}"
            database = "{DATABASE}"
            container = "{container_name}"
            key = "{LOCAL_KEY}"
            create_if_missing = true
            max_concurrency = 3
            [run]
            batch_size = 400
            interval = "100ms"
            """
        )
    )
    sensor = Plugins(entry_points=False).create(
        "sensor", "simulated", cities=3, sensors_per_city=4, seed=5, rate_hz=1.0
    )
    minutes = 20
    with SQLiteStore(tmp_path / "edge.db") as store:
        rows = store.append(sensor.read(int(sensor.start) + minutes * 60_000))
    expected = stored_ids(tmp_path / "edge.db")
    rng = random.Random(11)
    kills = mid_run = 0
    progress = []
    log = open(tmp_path / "forwarders.log", "w")  # noqa: SIM115 - closed below
    try:
        while mid_run < 12 and kills < 40:
            forwarder = subprocess.Popen(
                [sys.executable, "-m", "cosmobac", "forward", str(config), "--follow"],
                stdout=log,
                stderr=log,
            )
            time.sleep(rng.uniform(1.2, 2.8))
            forwarder.send_signal(signal.SIGKILL)
            forwarder.wait()
            kills += 1
            with SQLiteStore(tmp_path / "edge.db") as store:
                checkpoint = store.checkpoint("cosmos")
            mid_run += checkpoint < max(expected)  # killed while rows were still pending
            have = set(delivered_ids(cosmos_server, container_name))
            progress.append((checkpoint, len(have)))
            missing = [s for s, doc in expected.items() if s <= checkpoint and doc not in have]
            assert not missing, (
                f"kill {kills}: checkpoint {checkpoint} passed rows not in Cosmos DB"
            )
            if checkpoint >= max(expected):
                # a fast forwarder drained the backlog: collect 5 more minutes, so the next kills
                # still land while rows are pending, however fast this machine is
                minutes += 5
                with SQLiteStore(tmp_path / "edge.db") as store:
                    rows += store.append(sensor.read(int(sensor.start) + minutes * 60_000))
                expected = stored_ids(tmp_path / "edge.db")
    finally:
        log.close()
    assert mid_run >= 12, f"only {mid_run} of {kills} kills came while rows were pending"
    proxy.rules = Rules()  # the rest at full speed
    run_cosmobac("forward", config, timeout=180)
    with SQLiteStore(tmp_path / "edge.db") as store:
        assert store.checkpoint("cosmos") == max(expected)
    found = ids(cosmos_server, container_name)
    counts = collections.Counter(found)
    lost = set(expected.values()) - set(found)
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\nSIGKILL test: {kills} kills survived ({mid_run} mid-run), {rows} readings, "
        f"{len(lost)} lost, {duplicates} duplicates; (checkpoint, documents) after each kill: "
        f"{progress}"
    )
    assert (len(lost), duplicates, len(found)) == (0, 0, rows)
