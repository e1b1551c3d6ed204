"""The ``cosmos`` sink: readings into an Azure Cosmos DB container, effectively once.

How a ``write(batch)`` goes:

1. Rows become documents (:func:`cosmobac.documents.to_documents`: deterministic ids, ISO
   timestamps, non-finite numbers as ``null``). Rows Cosmos DB would refuse for their content — a
   document over 2 MB, an invalid ``id``, a partition key value over 2 KB or missing, a value JSON
   cannot carry — are *rejected* with the reason (the forwarder dead-letters them) and never block
   the others.
2. The rest are grouped by partition key value into transactional batches of ``create`` operations
   (at most 100 operations and 2 MB each), sent by a pool of threads. How many requests are in flight
   adapts: one more per round of successes (additive increase), halved on HTTP 429, on a timeout and
   on a response slower than ``latency_target`` (multiplicative decrease).
3. A batch that reports a conflict (HTTP 409: the document exists — a replay after a crash, or a
   retry of a request whose answer was lost) has its rows settled with one ``upsert`` each, so the
   container ends with exactly one document per reading on real Cosmos DB (atomic batches) and on
   the local test server (non-atomic batches) alike.
4. HTTP 429 waits the server's ``x-ms-retry-after-ms`` before anything more is sent; timeouts,
   dropped connections and 408/410/449/5xx back off exponentially with full jitter. Rows still
   unsent when ``write_timeout`` runs out are handed back as ``retry`` (the forwarder backs off and
   sends them again); wrong credentials, a missing container or a partition key that does not
   match raise a permanent :class:`~cosmobac.errors.SinkError` (nothing is acknowledged).

Request charges (RU) are summed into the :class:`~cosmobac.interfaces.WriteResult` stats
(``request_charge``) and into :meth:`CosmosSink.totals`. With ``max_ru_per_second`` set, requests
are only sent while a token bucket fed by those charges allows (:mod:`cosmobac_cosmos.budget`);
the time spent waiting for it is the stat ``budget_wait_s``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from queue import Empty, SimpleQueue
from typing import Any

import attrs

from cosmobac.batch import Batch
from cosmobac.documents import to_documents
from cosmobac.errors import SinkError
from cosmobac.interfaces import SensorSpan, WriteResult

from . import _settings as s
from ._errors import Action, Failure, Redactor, classify, request_charge, statuses_text
from .batching import Work, plan_requests
from .budget import RequestBudget
from .concurrency import Limiter
from .connection import Connection, client_options, open_container, where
from .indexing import Indexing, parse_indexing
from .limits import (
    MAX_DOCUMENT_BYTES,
    id_problem,
)

__all__ = ["MAX_DOCUMENT_BYTES", "CosmosSink"]

log = logging.getLogger("cosmobac.cosmos")


def _credential_repr(value: Any) -> str:
    return repr(value) if value is None or isinstance(value, str) else f"<{type(value).__name__}>"


@attrs.define(eq=False)
class _Outcome:
    written: list[int] = attrs.field(factory=list)
    rejected: dict[int, str] = attrs.field(factory=dict)
    charge: float = 0.0
    requests: int = 0
    throttled: int = 0
    conflicts: int = 0
    errors: int = 0
    last_error: str | None = None
    permanent: str | None = None
    no_answer: bool = False  # a request timed out: send nothing more in this write
    budget_wait: float = 0.0  # seconds work waited for the request-unit budget


@attrs.define(eq=False, kw_only=True)
class CosmosSink:
    """Write readings to an Azure Cosmos DB container (plugin ``cosmos``).

    Keys: ``endpoint``, ``database``, ``container`` (required); ``partition_key`` (default
    ``"/sensor_id"``, or a hierarchical list such as ``["/city", "/sensor_id"]``); ``key`` or
    ``credential = "default"`` (Microsoft Entra ID); ``create_if_missing`` with ``throughput``,
    ``autoscale_max_throughput``, ``default_ttl``, ``indexing`` (``"default"``,
    ``"recommended"`` or ``{included = [...]}``/``{excluded = [...]}``) or ``indexing_policy``
    (the service's JSON); ``verify_tls``,
    ``tls_ca_file``; ``connection_timeout``, ``read_timeout``, ``write_timeout``,
    ``latency_target``, ``max_concurrency``, ``max_batch_operations``, ``retry_backoff``,
    ``retry_backoff_max``, ``max_ru_per_second``. See docs/reference/config-cosmos.md.
    """

    endpoint: str = attrs.field(validator=s.check_endpoint)
    database: str = attrs.field(validator=s.check_name)
    container: str = attrs.field(validator=s.check_name)
    partition_key: tuple[str, ...] = attrs.field(
        default=s.DEFAULT_PARTITION_KEY, converter=s.parse_partition_key
    )
    key: str | None = attrs.field(default=None, repr=False, validator=s.check_key)
    credential: Any = attrs.field(default=None, repr=_credential_repr, validator=s.check_credential)
    create_if_missing: bool = attrs.field(default=False, converter=s.create_if_missing)
    throughput: int | None = attrs.field(default=None, converter=s.throughput)
    autoscale_max_throughput: int | None = attrs.field(
        default=None, converter=s.autoscale_max_throughput
    )
    default_ttl: int | None = attrs.field(default=None, converter=s.ttl)
    indexing_policy: Mapping[str, Any] | None = attrs.field(
        default=None, validator=s.check_indexing_policy
    )
    indexing: Indexing = attrs.field(factory=Indexing, converter=parse_indexing)
    verify_tls: bool = attrs.field(default=True, converter=s.verify_tls)
    tls_ca_file: str | None = attrs.field(default=None, validator=s.check_optional_path)
    connection_timeout: float = attrs.field(default=5.0, converter=s.connection_timeout)
    read_timeout: float = attrs.field(default=5.0, converter=s.read_timeout)
    write_timeout: float = attrs.field(default=60.0, converter=s.write_timeout)
    latency_target: float = attrs.field(default=5.0, converter=s.latency_target)
    max_concurrency: int = attrs.field(default=8, converter=s.max_concurrency)
    max_batch_operations: int = attrs.field(
        default=s.MAX_BATCH_OPERATIONS,
        converter=s.max_batch_operations,
    )
    retry_backoff: float = attrs.field(default=0.1, converter=s.retry_backoff)
    retry_backoff_max: float = attrs.field(default=10.0, converter=s.retry_backoff_max)
    max_ru_per_second: float | None = attrs.field(default=None, converter=s.max_ru_per_second)

    _connection: Connection | None = attrs.field(init=False, default=None, repr=False)
    _container_proxy: Any = attrs.field(init=False, default=None, repr=False)
    _pool: cf.ThreadPoolExecutor | None = attrs.field(init=False, default=None, repr=False)
    _limiter: Limiter = attrs.field(init=False, repr=False)
    _redact: Redactor = attrs.field(init=False, factory=Redactor, repr=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    _rng: random.Random = attrs.field(init=False, factory=random.Random, repr=False)
    _throttle_until: float = attrs.field(init=False, default=0.0, repr=False)
    _totals: dict[str, float] = attrs.field(init=False, factory=dict, repr=False)
    _budget: RequestBudget | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.key is None and self.credential is None:
            raise ValueError(
                'give `key` (the account key, e.g. key = "${COSMOS_KEY}") or '
                'credential = "default" (Microsoft Entra ID)'
            )
        if self.key is not None and self.credential is not None:
            raise ValueError("give either `key` or `credential`, not both")
        if self.throughput is not None and self.autoscale_max_throughput is not None:
            raise ValueError("give either `throughput` (manual) or `autoscale_max_throughput`")
        if not self.create_if_missing:
            for name in (
                "throughput",
                "autoscale_max_throughput",
                "default_ttl",
                "indexing_policy",
            ):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} only applies when the sink creates the container; set "
                        "create_if_missing = true, or set it on the container in Azure"
                    )
            if self.indexing.mode != "default":
                raise ValueError(
                    "indexing only applies when the sink creates the container; set "
                    "create_if_missing = true, or set the policy on the container in Azure"
                )
        if self.indexing_policy is not None and self.indexing.mode != "default":
            raise ValueError(
                "give either `indexing` (default, recommended or {included/excluded}) or "
                "`indexing_policy` (the service's JSON), not both"
            )
        if self.tls_ca_file is not None and not self.verify_tls:
            raise ValueError("tls_ca_file needs verify_tls = true")
        if self.retry_backoff_max < self.retry_backoff:
            raise ValueError("retry_backoff_max must be at least retry_backoff")
        self._redact.add(self.key)
        if self.max_ru_per_second is not None:
            self._budget = RequestBudget(self.max_ru_per_second)
        self._limiter = Limiter(
            maximum=self.max_concurrency, limit=float(max(1, min(4, self.max_concurrency)))
        )
        self._totals = {
            "documents": 0.0,
            "request_charge": 0.0,
            "requests": 0.0,
            "throttled": 0.0,
            "conflicts": 0.0,
            "errors": 0.0,
            "rejected": 0.0,
        }

    def creation_policy(self) -> dict[str, Any] | None:
        """The indexing policy a container this sink creates gets (``None``: the service's
        default): ``indexing_policy`` as given, else the one ``indexing`` makes."""
        if self.indexing_policy is not None:
            return dict(self.indexing_policy)
        return self.indexing.policy(self.partition_key)

    # -- connection ---------------------------------------------------------------------------
    @property
    def container_client(self) -> Any:
        """The SDK's ``ContainerProxy`` (connects on first use)."""
        self.connect()
        return self._container_proxy

    @property
    def cosmos_client(self) -> Any:
        """The SDK's ``CosmosClient`` (connects on first use)."""
        self.connect()
        assert self._connection is not None
        return self._connection.client

    def connect(self) -> None:
        """Open the client, check (or create) database and container, and the partition key
        (:func:`cosmobac_cosmos.connection.open_container`).

        Raises :class:`SinkError`: permanent for wrong credentials, a missing container or a
        partition key that differs from the container's; transient when unreachable."""
        with self._lock:
            if self._container_proxy is not None:
                return
            try:
                self._connection = open_container(self)
            except SinkError:
                raise
            except Exception as exc:
                failure = classify(exc)
                raise SinkError(
                    self._redact(f"cosmos sink: cannot use {where(self)}: {failure.message}"),
                    transient=failure.action not in (Action.PERMANENT, Action.CONTENT),
                ) from None
            self._container_proxy = self._connection.container
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="cosmobac-cosmos"
                )
            log.info("cosmos sink connected to %s", where(self))

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``azure.cosmos.CosmosClient`` (timeouts, TLS, retries)."""
        return client_options(self)

    def _close_client(self) -> None:
        connection, self._connection, self._container_proxy = self._connection, None, None
        if connection is not None:
            connection.close(timeout=self.connection_timeout + 1)

    def close(self) -> None:
        """Finish: stop the worker threads and close the client. Logs the totals."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            self._close_client()
        if self._totals["documents"]:
            log.info(
                "cosmos sink: %d documents written, %.1f RU (%.2f RU per document)",
                self._totals["documents"],
                self._totals["request_charge"],
                self._totals["request_charge"] / self._totals["documents"],
            )

    def __enter__(self) -> CosmosSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def totals(self) -> dict[str, float]:
        """Counts over this sink's life: documents written, request charge (RU), requests,
        throttled requests, conflicts settled by upserts, transient errors, rejected rows, and
        ``request_charge_per_document``."""
        out = dict(self._totals)
        out["request_charge_per_document"] = (
            out["request_charge"] / out["documents"] if out["documents"] else 0.0
        )
        return out

    # -- reading back (ReadableSink) -------------------------------------------------------------
    def spans(
        self,
        *,
        start: int | None = None,
        end: int | None = None,
        sensors: Iterable[str] | None = None,
    ) -> Mapping[str, SensorSpan]:
        """Per sensor, the container's documents with ``start <= timestamp < end`` (epoch ms):
        how many, first and last timestamp. With ``sensors``, one COUNT/MIN/MAX query per sensor
        (single-partition when the container is partitioned by ``/sensor_id``); without, a GROUP
        BY, or a tally over a projection on a server that refuses GROUP BY
        (:mod:`cosmobac_cosmos.readback`)."""
        from .readback import sensor_spans

        return sensor_spans(
            self.container_client, self.partition_key, start=start, end=end, sensors=sensors
        )

    def fetch(self, ids: Iterable[str]) -> Mapping[str, Mapping[str, Any]]:
        """The container's documents with these ids (system properties such as ``_rid`` left
        out), by id: one query per 100 ids (``ARRAY_CONTAINS``)."""
        from .readback import fetch

        return fetch(self.container_client, ids)

    @property
    def concurrency(self) -> int:
        """Requests the sink currently allows in flight (adapts between 1 and max_concurrency)."""
        return self._limiter.allowed

    def _build(self, batch: Batch, item: Work, outcome: _Outcome) -> bool:
        """Build the documents of ``item``; rows with an invalid ``id`` are rejected. False when
        nothing is left to send."""
        docs = list(to_documents(batch.select(item.positions)))
        if "id" in batch.columns:
            keep = []
            for position, doc in zip(item.positions, docs, strict=True):
                problem = id_problem(doc.get("id"))
                if problem is None:
                    keep.append((position, doc))
                else:
                    outcome.rejected[position] = problem
            item.positions = [p for p, _ in keep]
            docs = [d for _, d in keep]
        item.docs = docs
        return bool(docs)

    # -- writing ------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult | None:
        """Write every row; see the module documentation for what happens on failures."""
        if not len(batch):
            return None
        self.connect()
        work, rejected = plan_requests(batch, self.partition_key, self.max_batch_operations)
        outcome = _Outcome(rejected=dict(rejected))
        deadline = time.monotonic() + self.write_timeout
        pending = self._run(batch, work, outcome, deadline)
        self._account(outcome)
        if outcome.permanent is not None:
            raise SinkError(self._redact(outcome.permanent), transient=False)
        retry = sorted(p for w in pending for p in w.positions)
        stats = {
            "request_charge": round(outcome.charge, 2),
            "requests": outcome.requests,
            "throttled": outcome.throttled,
            "conflicts": outcome.conflicts,
            "errors": outcome.errors,
        }
        if self._budget is not None:
            stats["budget_wait_s"] = round(outcome.budget_wait, 3)
        # rows that only waited for the budget (nothing sent) go back without an error
        budget_only = not outcome.requests and outcome.budget_wait > 0
        if retry and not outcome.written and not outcome.rejected and not budget_only:
            if outcome.no_answer:
                text = (
                    f"cosmos sink: no answer from {where(self)} within the timeouts "
                    f"(connection_timeout {self.connection_timeout:g} s, read_timeout "
                    f"{self.read_timeout:g} s): {outcome.last_error}"
                )
            else:
                text = (
                    f"cosmos sink: nothing written to {where(self)} in "
                    f"{self.write_timeout:g} s: {outcome.last_error or 'no answer'}"
                )
            raise SinkError(self._redact(text), transient=True)
        if retry:
            budget = None
            if self._budget is not None and outcome.budget_wait > 0:
                budget = f"waiting for max_ru_per_second = {self.max_ru_per_second:g}"
                per_document = self._budget.per_document
                if per_document:  # how many rows the budget lets through in one write
                    fits = self._budget.rate * self.write_timeout / per_document
                    budget += (
                        f"; at {per_document:.1f} RU per document it allows about {fits:,.0f} "
                        "rows per write_timeout: lower [run] batch_size to that or raise "
                        "write_timeout"
                    )
            log.warning(
                "cosmos sink: %d of %d rows not written (%s); the forwarder will send them again",
                len(retry),
                len(batch),
                self._redact(outcome.last_error or budget or "no answer"),
            )
        for position, reason in sorted(outcome.rejected.items())[:5]:
            log.warning("cosmos sink: row %d rejected: %s", position, reason)
        return WriteResult(retry=retry, rejected=outcome.rejected, stats=stats)

    def _account(self, outcome: _Outcome) -> None:
        totals = self._totals
        totals["documents"] += len(outcome.written)
        totals["request_charge"] += outcome.charge
        totals["requests"] += outcome.requests
        totals["throttled"] += outcome.throttled
        totals["conflicts"] += outcome.conflicts
        totals["errors"] += outcome.errors
        totals["rejected"] += len(outcome.rejected)

    def _run(
        self, batch: Batch, work: list[Work], outcome: _Outcome, deadline: float
    ) -> list[Work]:
        """Send every piece of work, adapting concurrency; returns what is left at the deadline.

        While the allowed number of requests is in flight, the next requests' documents are built,
        so building overlaps sending. Work to retry (after a failure) goes first once its backoff
        has passed; every step is O(1) in the batch's size, so large batches cost no more per row.
        """
        pool = self._pool
        assert pool is not None
        unbuilt: deque[Work] = deque(work)  # in plan order; documents not built yet
        ready: deque[Work] = deque()  # built, never sent
        later: list[Work] = []  # to send again, each once its `not_before` has passed
        inflight: dict[cf.Future[tuple[float, dict[str, Any]]], Work] = {}
        finished: SimpleQueue[cf.Future[tuple[float, dict[str, Any]]]] = SimpleQueue()
        limiter = self._limiter
        budget = self._budget
        budget_since: float | None = None  # when work started waiting for the budget

        def next_to_send(now: float) -> Work | None:
            for i, item in enumerate(later):
                if item.not_before <= now:
                    return later.pop(i)
            if ready:
                return ready.popleft()
            while unbuilt:
                item = unbuilt.popleft()
                if self._build(batch, item, outcome):
                    return item
            return None

        while True:
            now = time.monotonic()
            stopping = outcome.permanent is not None or outcome.no_answer or now >= deadline
            hold = self._throttle_until  # nothing is sent before (a 429, or the budget)
            if budget is not None:
                waiting = (
                    not stopping
                    and len(inflight) < limiter.allowed
                    and bool(ready or unbuilt or later)
                )
                wait = budget.delay() if waiting else 0.0
                if wait > 0 and budget_since is None:
                    budget_since = now
                elif wait <= 0 and budget_since is not None:
                    outcome.budget_wait += now - budget_since
                    budget_since = None
                hold = max(hold, now + wait)
            if not stopping and now >= hold:
                while len(inflight) < limiter.allowed:
                    if budget is not None and budget.delay() > 0:
                        break
                    item = next_to_send(now)
                    if item is None:
                        break
                    if budget is not None:
                        reserved = budget.acquire(len(item.positions))
                        if reserved is None:  # spent meanwhile (by another write of this sink)
                            later.insert(0, item)
                            break
                        item.reserved = reserved
                    future = pool.submit(self._execute, item)
                    inflight[future] = item
                    future.add_done_callback(finished.put)
            if not inflight:
                if stopping or not (later or ready or unbuilt):
                    if budget_since is not None:
                        outcome.budget_wait += now - budget_since
                    return [*later, *ready, *unbuilt]
                sendable = 0.0 if ready or unbuilt else min(w.not_before for w in later)
                wake = max(hold, sendable)
                time.sleep(max(0.0, min(wake, deadline) - now) + 0.001)
                continue
            timeout: float | None
            if unbuilt and not stopping:  # build ahead instead of waiting idle
                item = unbuilt.popleft()
                if self._build(batch, item, outcome):
                    ready.append(item)
                timeout = 0.0
            elif (later or ready) and not stopping:
                # wake for the first completion, or when queued work may be sent (a backoff or a
                # throttle ends) while there is room in flight
                sendable = 0.0 if ready else min(w.not_before for w in later)
                wake = max(hold, sendable)
                if len(inflight) >= limiter.allowed or wake <= now:
                    wake = deadline
                timeout = max(0.0, min(wake, deadline) - now) + 0.001
            else:
                timeout = None
            try:
                done = [finished.get(timeout=timeout) if timeout != 0.0 else finished.get_nowait()]
            except Empty:
                continue
            while True:
                try:
                    done.append(finished.get_nowait())
                except Empty:
                    break
            for future in done:
                item = inflight.pop(future)
                outcome.requests += 1
                error = future.exception()
                if error is None:
                    latency, headers = future.result()
                    charge = request_charge(headers)
                    outcome.charge += charge
                    if budget is not None:
                        budget.settle(item.reserved, charge, len(item.positions))
                    outcome.written.extend(item.positions)
                    limiter.observe(latency, time.monotonic(), self.latency_target, item.mode)
                else:
                    later.extend(self._failed(item, error, outcome))

    def _execute(self, item: Work) -> tuple[float, dict[str, Any]]:
        docs = item.built
        headers: dict[str, Any] = {}

        def hook(response_headers: Mapping[str, Any], _: Any) -> None:
            headers.update(response_headers)

        started = time.monotonic()
        container = self._container_proxy
        if item.mode == "create":
            container.execute_item_batch(
                [("create", (doc,)) for doc in docs],
                partition_key=item.partition_key,
                response_hook=hook,
            )
        else:
            container.upsert_item(docs[0], response_hook=hook)
        return time.monotonic() - started, headers

    def _failed(self, item: Work, error: BaseException, outcome: _Outcome) -> list[Work]:
        """What to send next after ``item`` failed with ``error``."""
        failure = classify(error)
        outcome.charge += failure.request_charge
        now = time.monotonic()
        action = failure.action
        if self._budget is not None:  # no answer: it may have been charged, the reservation stands
            lost = action is Action.TRANSIENT and (failure.timeout or failure.status in (None, 0))
            self._budget.settle(item.reserved, None if lost else failure.request_charge)
            item.reserved = 0.0
        if action is Action.PERMANENT:
            outcome.permanent = f"cosmos sink: {where(self)}: {failure.message}"
            return [item]
        if action is Action.THROTTLED:
            outcome.throttled += 1
            wait = failure.retry_after
            if wait is None:  # no retry-after: back off like any transient error
                wait = self._backoff(item.attempt)
                item.attempt += 1
            self._throttle_until = max(self._throttle_until, now + wait)
            item.not_before = now + wait
            self._limiter.congestion(now)
            return [item]
        if action is Action.TRANSIENT:
            outcome.errors += 1
            outcome.last_error = failure.message
            if failure.timeout:
                # no answer within the timeouts: another try in this write would most likely wait
                # as long again; the rows go back to the forwarder, which backs off
                outcome.no_answer = True
            if failure.status in (None, 0, 408, 503):  # timeouts, lost connections, overload
                self._limiter.congestion(now)
            item.not_before = now + self._backoff(item.attempt)
            item.attempt += 1
            log.debug("cosmos sink: transient failure (%s); backing off", failure.message)
            return [item]
        if action is Action.SERIALIZE:
            return self._split_unserialisable(item, outcome)
        if failure.operation_statuses is not None and item.mode == "create":
            return self._batch_failed(item, failure, outcome)
        if action is Action.CONFLICT and item.mode == "create":
            outcome.conflicts += len(item.positions)
            return self._as_upserts(item, range(len(item.positions)))
        # a content error for the whole request: isolate the document(s) it is about
        if len(item.positions) == 1:
            outcome.rejected[item.positions[0]] = (
                f"Cosmos DB refused the document: {failure.message}"
            )
            return []
        half = len(item.positions) // 2
        return [
            Work(item.mode, item.partition_key, item.positions[:half], item.built[:half]),
            Work(item.mode, item.partition_key, item.positions[half:], item.built[half:]),
        ]

    def _batch_failed(self, item: Work, failure: Failure, outcome: _Outcome) -> list[Work]:
        """A transactional batch answered per operation: settle each row by its status."""
        statuses = list(failure.operation_statuses or ())
        statuses += [424] * (len(item.positions) - len(statuses))
        messages = list(failure.operation_messages) + [None] * len(statuses)
        redo: list[int] = []
        conflict = 409 in statuses
        throttled = 429 in statuses
        transient = any(st in (408, 410, 449) or st >= 500 for st in statuses)
        for j, status in enumerate(statuses):
            if 200 <= status < 300:  # committed (the local server does not roll back)
                outcome.written.append(item.positions[j])
            elif status in (409, 424, 429, 408, 410, 449) or status >= 500:
                redo.append(j)
            else:
                reason = messages[j] or f"HTTP {status}"
                outcome.rejected[item.positions[j]] = (
                    f"Cosmos DB refused the document (HTTP {status}): {reason}"
                )
        log.debug("cosmos sink: batch of %d answered %s", len(statuses), statuses_text(statuses))
        if not redo:
            return []
        if conflict:
            outcome.conflicts += len(redo)
            return self._as_upserts(item, redo)
        now = time.monotonic()
        rest = Work(
            item.mode,
            item.partition_key,
            [item.positions[j] for j in redo],
            [item.built[j] for j in redo],
            attempt=item.attempt,
        )
        if throttled or transient:
            rest.not_before = now + self._backoff(item.attempt)
            rest.attempt += 1
        return [rest]

    def _as_upserts(self, item: Work, indexes: Sequence[int]) -> list[Work]:
        return [
            Work("upsert", item.partition_key, [item.positions[j]], [item.built[j]])
            for j in indexes
        ]

    def _split_unserialisable(self, item: Work, outcome: _Outcome) -> list[Work]:
        keep_positions: list[int] = []
        keep_docs: list[dict[str, Any]] = []
        for position, doc in zip(item.positions, item.built, strict=True):
            try:
                json.dumps(doc, allow_nan=False)
            except (TypeError, ValueError) as exc:
                outcome.rejected[position] = f"document cannot be sent as JSON: {exc}"
                continue
            keep_positions.append(position)
            keep_docs.append(doc)
        if not keep_positions:
            return []
        if len(keep_positions) == len(item.positions):  # not the documents: give up on it
            outcome.permanent = "cosmos sink: the SDK failed to serialise a request"
            return [item]
        return [Work(item.mode, item.partition_key, keep_positions, keep_docs)]

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)]."""
        return self._rng.uniform(
            0.0, min(self.retry_backoff_max, self.retry_backoff * 2.0 ** min(attempt, 30))
        )
