"""Built-in sink ``webhook``: alerts. Posts detected anomalies as JSON to a URL, with retries and
backoff; optionally forwards the ordinary rows too, always after the anomalies.

Each request's body is one JSON object::

    {"source": "cosmobac", "kind": "anomalies", "count": 2, "documents": [{...}, {...}]}

``kind`` is ``"anomalies"`` (rows whose ``detected`` column is true) or ``"readings"`` (the other
rows, with ``include = "all"``); ``documents`` are exactly what any other sink receives (see
:mod:`cosmobac.documents`), with deterministic ``id`` s, so a receiver can drop the duplicates that
at-least-once delivery brings after a retry.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import numpy as np

from ..batch import Batch
from ..documents import to_documents
from ..errors import SinkError
from ..hookspecs import Register, hookimpl
from ..interfaces import WriteResult
from ..values import choice, duration, integer
from ._faults import unencodable

__all__ = ["WebhookSink"]

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REJECT_STATUS = frozenset({400, 413, 422})


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"url must be text, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// URL, got {value!r}")
    return value


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"headers must be a table of name = value, got {value!r}")
    out = {}
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError(f"headers must map text to text; got {name!r} = {text!r}")
        out[name] = text
    return out


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NoAnswer(Exception):
    """The endpoint did not answer in time (connect or read timeout)."""


@attrs.define(eq=False, kw_only=True)
class WebhookSink:
    """POST detected anomalies as JSON to ``url``, anomalies first, with retries and backoff.

    Keys:

    * ``url`` (required): ``http://`` or ``https://``.
    * ``include`` (default ``"anomalies"``): send only rows whose ``detected`` column is true
      (the other rows count as delivered: this sink is not meant to hold them), or ``"all"``: the
      anomalies first, then the ordinary rows.
    * ``headers`` (table): added to every request (e.g. ``Authorization``; use ``${VAR}`` for
      secrets).
    * ``max_rows`` (default 500): documents per request.
    * ``connect_timeout`` (default ``"5s"``): to open a connection.
    * ``read_timeout`` (default ``"5s"``): for the answer (and for each send of the body).
    * ``retries`` (default 4): further attempts after a failed one, within one ``write``. Refused
      or dropped connections and HTTP 408, 425, 429, 500, 502, 503, 504 are retried after a
      delay: the server's ``Retry-After`` (seconds) when it sends one, otherwise full-jitter
      exponential backoff, uniform in [0, min(``max_backoff``, ``backoff``·2ⁿ)]. A timeout is not
      retried within the write (an endpoint that does not answer would cost another timeout per
      retry): the write fails at once and the forwarder retries later, with its own backoff and
      ``run.max_attempts``.
    * ``backoff`` (default ``"0.5s"``), ``max_backoff`` (default ``"10s"``).

    Outcomes: 2xx means written. 400, 413 or 422 means the server refused those documents for
    their content (or size): a request of several documents is split in halves until the refused
    documents are found, and only those go to the dead letters, with the response as the reason.
    A document that cannot be sent as JSON at all is rejected the same way without a request. Any
    other status (401, 403, 404, …) stops the sink with a permanent error (fix the
    configuration). When retries run out, or on a timeout, the write fails (transiently) and the
    forwarder tries again later; if the anomalies went through but ordinary rows did not, only
    those are retried.
    """

    url: str = attrs.field(converter=_url)
    include: str = attrs.field(
        default="anomalies", converter=lambda v: choice("include", v, ("anomalies", "all"))
    )
    headers: dict[str, str] = attrs.field(factory=dict, converter=_headers)
    max_rows: int = attrs.field(default=500, converter=lambda v: integer("max_rows", v, minimum=1))
    connect_timeout: float = attrs.field(
        default=5.0, converter=lambda v: duration("connect_timeout", v, positive=True)
    )
    read_timeout: float = attrs.field(
        default=5.0, converter=lambda v: duration("read_timeout", v, positive=True)
    )
    retries: int = attrs.field(default=4, converter=lambda v: integer("retries", v, minimum=0))
    backoff: float = attrs.field(default=0.5, converter=lambda v: duration("backoff", v))
    max_backoff: float = attrs.field(default=10.0, converter=lambda v: duration("max_backoff", v))

    _client: Any = attrs.field(init=False, default=None, repr=False)
    _rng: random.Random = attrs.field(init=False, factory=random.Random, repr=False)
    requests: int = attrs.field(init=False, default=0)  # HTTP requests made, retries included

    # -- HTTP -----------------------------------------------------------------------------------
    def _http(self) -> Any:
        if self._client is None:
            try:
                import httpx
            except ImportError as exc:  # pragma: no cover - httpx is a dependency of cosmobac
                raise SinkError(
                    "the webhook sink needs httpx: pip install httpx", transient=False
                ) from exc
            timeout = httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                write=self.read_timeout,
                pool=self.connect_timeout,
            )
            self._client = httpx.Client(
                timeout=timeout,
                headers={"content-type": "application/json", **self.headers},
            )
        return self._client

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return self._rng.uniform(0.0, min(self.max_backoff, self.backoff * 2.0**attempt))

    def _post(self, body: bytes) -> None:
        """Send one request, retrying transient failures; raise :class:`_Rejected` or
        :class:`SinkError`."""
        import httpx

        client = self._http()
        last = "no attempt"
        for attempt in range(self.retries + 1):
            retry_after = None
            self.requests += 1
            try:
                response = client.post(self.url, content=body)
            except httpx.TimeoutException as exc:
                raise _NoAnswer(
                    f"webhook {self.url} did not answer: {type(exc).__name__} after "
                    f"{self._timeout_for(exc):g} s"
                ) from None
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                text = response.text[:200].strip()
                last = f"HTTP {status}" + (f": {text}" if text else "")
                if status in REJECT_STATUS:
                    raise _Rejected(f"webhook refused the documents: {last}")
                if status not in RETRY_STATUS:
                    raise SinkError(f"webhook {self.url} answered {last}", transient=False)
                retry_after = response.headers.get("retry-after")
            if attempt < self.retries:
                time.sleep(self._delay(attempt, retry_after))
        raise SinkError(
            f"webhook {self.url} failed {self.retries + 1} times; last: {last}", transient=True
        )

    def _timeout_for(self, exc: Exception) -> float:
        import httpx

        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return self.connect_timeout
        return self.read_timeout

    # -- the sink -------------------------------------------------------------------------------
    @staticmethod
    def _body(documents: list[dict[str, Any]], kind: str) -> bytes:
        payload = {
            "source": "cosmobac",
            "kind": kind,
            "count": len(documents),
            "documents": documents,
        }
        return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()

    def _send(
        self, documents: list[dict[str, Any]], positions: list[int], kind: str
    ) -> dict[int, str]:
        """Post ``documents`` (at batch ``positions``); return the rows refused for their content.
        A refused request of several documents is split in halves until the refused ones are
        found."""
        try:
            body = self._body(documents, kind)
        except (TypeError, ValueError):
            rejected = {}
            keep = []
            for doc, position in zip(documents, positions, strict=True):
                reason = unencodable(doc)
                if reason is None:
                    keep.append((doc, position))
                else:
                    rejected[position] = reason
            if keep:
                rejected.update(self._send([d for d, _ in keep], [p for _, p in keep], kind))
            return rejected
        try:
            self._post(body)
        except _Rejected as exc:
            if len(documents) == 1:
                return {positions[0]: exc.reason}
            half = len(documents) // 2
            return {
                **self._send(documents[:half], positions[:half], kind),
                **self._send(documents[half:], positions[half:], kind),
            }
        return {}

    def write(self, batch: Batch) -> WriteResult | None:
        detected = batch.get("detected")
        if detected is None or detected.dtype.kind != "b":
            detected = np.zeros(len(batch), dtype=bool)
        anomalies = np.flatnonzero(detected)
        if "anomaly_score" in batch and len(anomalies) > 1:  # the most anomalous first
            scores = np.nan_to_num(batch["anomaly_score"][anomalies], nan=0.0)
            anomalies = anomalies[np.argsort(-scores, kind="stable")]
        groups = [("anomalies", anomalies)]
        if self.include == "all":
            groups.append(("readings", np.flatnonzero(~detected)))
        plan = [
            (kind, positions[i : i + self.max_rows])
            for kind, positions in groups
            for i in range(0, len(positions), self.max_rows)
        ]
        rejected: dict[int, str] = {}
        for index, (kind, chunk) in enumerate(plan):
            try:
                documents = list(to_documents(batch.select(chunk)))
                rejected.update(self._send(documents, chunk.tolist(), kind))
            except (SinkError, _NoAnswer) as exc:
                error = exc if isinstance(exc, SinkError) else SinkError(str(exc), transient=True)
                if index == 0 or not error.transient:
                    raise error from None
                # what was sent stays sent: only the rest is retried
                pending = np.concatenate([c for _, c in plan[index:]])
                return WriteResult(retry=pending.tolist(), rejected=rejected)
        return WriteResult(rejected=rejected) if rejected else None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@hookimpl
def register_sinks(register: Register) -> None:
    register("webhook", WebhookSink, checkpoint_keys=("url",))
