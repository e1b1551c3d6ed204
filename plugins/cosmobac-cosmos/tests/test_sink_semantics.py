"""The write path against an in-memory stand-in with *real Cosmos DB's* transactional batch
semantics — atomic: one failing operation rolls the batch back, the others answer 424 — which the
local server does not have (it keeps the operations before the failure). Together with the server
tests this shows replays settle the same way on both."""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time

import numpy as np
import pytest
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

from cosmobac import Batch
from cosmobac.documents import document_ids
from cosmobac.errors import SinkError
from cosmobac_cosmos import CosmosSink
from cosmobac_cosmos.emulator import LOCAL_KEY


class AtomicContainer:
    """Transactional batches of creates as real Cosmos DB runs them, plus upserts; optional
    scripted failures."""

    def __init__(self, *, refuse: set[str] = frozenset(), too_large: int | None = None) -> None:
        self.items: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.requests = 0
        self.refuse = refuse  # ids answered 400 (content)
        self.too_large = too_large  # batches with more operations answer 413 as a whole

    def execute_item_batch(self, operations, partition_key, response_hook=None):
        with self.lock:
            self.requests += 1
            docs = [op[1][0] for op in operations]
            assert all(op[0] == "create" for op in operations)
            assert {d["sensor_id"] for d in docs} == {partition_key}
            if self.too_large is not None and len(docs) > self.too_large:
                raise CosmosHttpResponseError(status_code=413, message="Request size is too large")
            failing = next(
                (
                    (i, 409 if d["id"] in self.items else 400)
                    for i, d in enumerate(docs)
                    if d["id"] in self.items or d["id"] in self.refuse
                ),
                None,
            )
            if failing is not None:
                index, status = failing
                statuses = [424] * len(docs)
                statuses[index] = status
                raise CosmosBatchOperationError(
                    error_index=index,
                    headers={"x-ms-request-charge": "1.5"},
                    status_code=status,
                    message="batch failed",
                    operation_responses=[{"statusCode": s, "requestCharge": 0} for s in statuses],
                )
            for d in docs:
                self.items[d["id"]] = dict(d)
            if response_hook:
                response_hook({"x-ms-request-charge": str(5.0 * len(docs))}, [])

    def upsert_item(self, body, response_hook=None):
        with self.lock:
            self.requests += 1
            if body["id"] in self.refuse:
                raise CosmosHttpResponseError(status_code=400, message="bad document")
            self.items[body["id"]] = dict(body)
            if response_hook:
                response_hook({"x-ms-request-charge": "10"}, body)


def sink_on(container: AtomicContainer, **options) -> CosmosSink:
    sink = CosmosSink(
        endpoint="https://acct.documents.azure.com:443/",
        database="d",
        container="c",
        key=LOCAL_KEY,
        **options,
    )
    sink._container_proxy = container  # connected: skip the network
    sink._pool = cf.ThreadPoolExecutor(max_workers=sink.max_concurrency)
    return sink


def readings(n: int, sensors: int = 3, value: float = 0.0) -> Batch:
    return Batch.from_columns(
        timestamp=np.arange(n, dtype=np.int64) * 1000,
        sensor_id=[f"s{i % sensors}" for i in range(n)],
        temperature=np.full(n, value),
    )


def test_a_replay_on_atomic_batches_ends_with_exactly_one_document_per_reading():
    container = AtomicContainer()
    sink = sink_on(container)
    batch = readings(600)
    sink.write(batch.select(np.arange(0, 600, 2)))  # half of them, as before a crash
    result = sink.write(readings(600, value=1.5))  # the replay, with new values
    assert result is not None and result.complete
    assert result.stats["conflicts"] > 0
    assert sorted(container.items) == sorted(document_ids(batch).tolist())
    assert {d["temperature"] for d in container.items.values()} == {1.5}
    totals = sink.totals()
    assert totals["documents"] == 900 and totals["request_charge"] > 0
    sink.close()


def test_a_document_refused_in_a_batch_is_rejected_and_the_rest_written():
    batch = readings(250)
    bad = document_ids(batch)[7]
    container = AtomicContainer(refuse={bad})
    sink = sink_on(container)
    result = sink.write(batch)
    assert result is not None
    assert list(result.rejected) == [7] and "HTTP 400" in result.rejected[7]
    assert not result.retry
    assert len(container.items) == 249 and bad not in container.items
    sink.close()


def test_a_request_too_large_is_split_until_it_fits():
    container = AtomicContainer(too_large=30)
    sink = sink_on(container)
    result = sink.write(readings(300, sensors=1))
    assert result is not None and result.complete
    assert len(container.items) == 300
    sink.close()


def test_permanent_errors_raise_and_transient_ones_retry_within_write_timeout():
    class Failing(AtomicContainer):
        def __init__(self, status, times):
            super().__init__()
            self.status, self.times = status, times

        def execute_item_batch(self, operations, partition_key, response_hook=None):
            if self.times > 0:
                self.times -= 1
                raise CosmosHttpResponseError(status_code=self.status, message="boom")
            return super().execute_item_batch(operations, partition_key, response_hook)

    sink = sink_on(Failing(503, times=3), retry_backoff=0.001, retry_backoff_max=0.01)
    result = sink.write(readings(50))
    assert result is not None and result.complete and result.stats["errors"] == 3
    sink.close()

    sink = sink_on(Failing(403, times=100))
    with pytest.raises(SinkError) as info:
        sink.write(readings(50))
    assert not info.value.transient and "403" in str(info.value)
    sink.close()

    sink = sink_on(Failing(503, times=10**6), write_timeout=0.3, retry_backoff=0.01)
    with pytest.raises(SinkError) as info:  # nothing written at all: a transient error
        sink.write(readings(50))
    assert info.value.transient and "HTTP 503" in str(info.value)
    sink.close()


def test_rows_left_at_the_write_timeout_go_back_as_retry():
    class Slow(AtomicContainer):
        def execute_item_batch(self, operations, partition_key, response_hook=None):
            if partition_key != "s0":
                raise CosmosHttpResponseError(status_code=500, message="busy")
            return super().execute_item_batch(operations, partition_key, response_hook)

    container = Slow()
    sink = sink_on(container, write_timeout=0.3, retry_backoff=0.01, retry_backoff_max=0.05)
    batch = readings(30)
    result = sink.write(batch)
    assert result is not None
    assert sorted(result.retry) == [i for i in range(30) if i % 3 != 0]
    assert len(container.items) == 10
    sink.close()


def test_throttling_waits_the_retry_after_and_slows_down():
    class Throttling(AtomicContainer):
        def __init__(self):
            super().__init__()
            self.throttles = 0

        def execute_item_batch(self, operations, partition_key, response_hook=None):
            if self.throttles < 5:
                self.throttles += 1
                error = CosmosHttpResponseError(status_code=429, message="too many")
                error.headers = {"x-ms-retry-after-ms": "20"}
                raise error
            return super().execute_item_batch(operations, partition_key, response_hook)

    container = Throttling()
    sink = sink_on(container, max_concurrency=8)
    began = time.monotonic()
    result = sink.write(readings(900, sensors=9))
    assert result is not None and result.complete and result.stats["throttled"] == 5
    assert time.monotonic() - began >= 0.02  # the retry-after was waited
    assert math.isfinite(sink._limiter._last_decrease)  # concurrency was cut
    sink.close()
