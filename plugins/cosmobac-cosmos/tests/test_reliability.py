"""Issue 19, item 7 for the ``cosmos`` sink: an endpoint that accepts connections and never answers
gives up within about one ``read_timeout`` per attempt, never the minutes the SDK's own retries
(its account-read health checks: 3 + 5 + 25 + 30 s with a 30 s read timeout) or ``write_timeout``
(60 s of retrying requests that time out) would cost; and a forwarder gives up on it after
``run.max_attempts`` with every row still pending."""

from __future__ import annotations

import time

import pytest

from cosmobac import Batch
from cosmobac.config import RunConfig
from cosmobac.errors import SinkError
from cosmobac.pipeline import Lane, Pipeline
from cosmobac.plugins import Plugins
from cosmobac.testing import MemoryStore, silent_server
from cosmobac_cosmos import CosmosSink
from cosmobac_cosmos.emulator import LOCAL_KEY

from .conftest import make_sink
from .faultproxy import Rules


def readings(n: int) -> Batch:
    sensor = Plugins(entry_points=False).create(
        "sensor", "simulated", cities=1, sensors_per_city=2, seed=3, rate_hz=1.0
    )
    return sensor.read(int(sensor.start) + n * 500)


def test_the_default_timeouts_are_short_and_documented():
    sink = CosmosSink(endpoint="https://x.example/", database="d", container="c", key=LOCAL_KEY)
    assert (sink.connection_timeout, sink.read_timeout, sink.write_timeout) == (5.0, 5.0, 60.0)


def test_connecting_to_a_hung_endpoint_gives_up_in_about_one_read_timeout():
    with silent_server() as (endpoint, accepted):
        sink = CosmosSink(endpoint=endpoint, database="d", container="c", key=LOCAL_KEY)
        began = time.monotonic()
        with pytest.raises(SinkError, match="CosmosClientTimeoutError") as info:
            sink.write(readings(4))
        took = time.monotonic() - began
        sink.close()
    assert info.value.transient
    # the SDK's first account read (3 s) and one retry cut short by the absolute timeout (5 s):
    # ~8 s, where the former defaults and the SDK's health-check retries took 63 s
    assert took < 2 * (5 + 3), f"took {took:.1f} s"
    assert len(accepted) <= 3


def test_writes_to_an_endpoint_that_stops_answering_end_at_the_first_timeout(proxy, container_name):
    sink = make_sink(proxy.endpoint, container_name, connection_timeout=1, read_timeout=1)
    sink.connect()
    proxy.rules = Rules(delay=1.0, delay_s=(4.0, 4.0))  # every document write hangs for 4 s
    began = time.monotonic()
    with pytest.raises(SinkError, match="no answer from .* within the timeouts") as info:
        sink.write(readings(40))
    took = time.monotonic() - began
    proxy.rules = Rules()
    sink.close()
    assert info.value.transient
    # one read_timeout (the requests in flight time out together), not write_timeout (60 s)
    assert took < 2 * 1 + 1, f"took {took:.1f} s"


def test_a_forwarder_gives_up_on_a_hung_endpoint_with_every_row_pending():
    store = MemoryStore()
    rows = store.append(readings(20))
    run = RunConfig(batch_size=100, backoff=0.01, max_backoff=0.05, max_attempts=3)
    with silent_server() as (endpoint, _):
        sink = CosmosSink(
            endpoint=endpoint, database="d", container="c", key=LOCAL_KEY, read_timeout=1
        )
        began = time.monotonic()
        report = Pipeline(store=store, lanes=[Lane("cosmos", sink)], run=run).forward()
        took = time.monotonic() - began
        sink.close()
    lane = report.lanes[0]
    assert lane.error is not None and "gave up after 3 failed attempts" in lane.error
    assert store.stats().pending["cosmos"] == rows and lane.acked == 0
    # each attempt: the 3 s account read, then one cut short at read_timeout (1 s)
    assert took < 3 * 2 * (3 + 1) + 2, f"took {took:.1f} s"
