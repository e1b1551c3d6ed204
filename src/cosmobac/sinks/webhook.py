"""Built-in sink ``webhook``: alerts. Posts detected anomalies as JSON to a URL, one attempt per
request (the forwarder retries a failed write with its backoff); optionally forwards the ordinary
rows too, always after the anomalies.

Each request's body is one JSON object::

    {"source": "cosmobac", "kind": "anomalies", "count": 2, "documents": [{...}, {...}]}

``kind`` is ``"anomalies"`` (rows whose ``detected`` column is true) or ``"readings"`` (the other
rows, with ``include = "all"``); ``documents`` are exactly what any other sink receives (see
:mod:`cosmobac.documents`), with deterministic ``id`` s, so a receiver can drop the duplicates that
at-least-once delivery brings after a retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
import numpy as np

from ..batch import Batch
from ..documents import to_documents
from ..errors import SinkError
from ..hookspecs import Register, hookimpl
from ..interfaces import WriteResult
from ..values import choice, duration, integer, redact_url, web_url
from ._faults import unencodable
from ._http import REJECT_STATUS, RETRY_STATUS, JsonPoster

__all__ = ["REJECT_STATUS", "RETRY_STATUS", "WebhookSink"]

log = logging.getLogger(__name__)


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


_warned_retries = False


def _deprecated(key: str, parse: Any) -> Any:
    """A converter for ``retries``, ``backoff`` and ``max_backoff``: still accepted (older
    pipeline files) and checked, but ignored, with one warning per process: each write makes one
    attempt and the forwarder retries (``[run] backoff``, ``max_backoff``, ``max_attempts``)."""

    def convert(value: Any) -> Any:
        global _warned_retries
        if value is None:
            return None
        parsed = parse(key, value)
        if not _warned_retries:
            _warned_retries = True
            log.warning(
                "webhook sink: %r is deprecated and ignored: each write makes one attempt and "
                "the forwarder retries a failed one ([run] backoff, max_backoff, max_attempts); "
                "remove the key",
                key,
            )
        return parsed

    return convert


def _deprecated_retries(value: Any) -> int | None:
    return _deprecated("retries", partial(integer, minimum=0))(value)


def _deprecated_backoff(value: Any) -> float | None:
    return _deprecated("backoff", duration)(value)


def _deprecated_max_backoff(value: Any) -> float | None:
    return _deprecated("max_backoff", duration)(value)


@attrs.define(eq=False, kw_only=True)
class WebhookSink:
    """POST detected anomalies as JSON to ``url``, anomalies first; one attempt per request.

    Keys:

    * ``url`` (required): ``http://`` or ``https://``. Shown in messages and logs as its scheme
      and host only (its path may hold a token).
    * ``include`` (default ``"anomalies"``): send only rows whose ``detected`` column is true
      (the other rows count as delivered: this sink is not meant to hold them), or ``"all"``: the
      anomalies first, then the ordinary rows.
    * ``headers`` (table): added to every request (e.g. ``Authorization``; use ``${VAR}`` for
      secrets).
    * ``max_rows`` (default 500): documents per request.
    * ``connect_timeout`` (default ``"5s"``): to open a connection.
    * ``read_timeout`` (default ``"5s"``): for the answer (and for each send of the body).
    * ``retries``, ``backoff``, ``max_backoff``: deprecated and ignored (a warning says so once).
      The sink no longer retries inside ``write``: the forwarder is the one retry policy
      (``[run] backoff``, ``max_backoff``, ``max_attempts``; full-jitter exponential backoff).

    Outcomes: 2xx means written. HTTP 408, 425, 429, 500, 502, 503, 504, a refused or dropped
    connection, or a timeout fail the write transiently (:class:`~cosmobac.errors.SinkError`), and
    the forwarder sends the rows again after its backoff. A ``Retry-After`` header is quoted in
    the error but does not set the wait: the forwarder's backoff does (set ``[run] backoff`` and
    ``max_backoff`` for a server that throttles). 400, 413 or 422 means the server refused those
    documents for their content (or size): a request of several documents is split in halves
    until the refused documents are found, and only those go to the dead letters, with the
    response as the reason. A document that cannot be sent as JSON at all is rejected the same way
    without a request. Any other status (401, 403, 404, …) stops the sink with a permanent error
    (fix the configuration). If the anomalies went through but ordinary rows did not, only those
    are retried.
    """

    url: str = attrs.field(converter=lambda v: web_url("url", v), repr=redact_url)
    include: str = attrs.field(
        default="anomalies", converter=lambda v: choice("include", v, ("anomalies", "all"))
    )
    headers: dict[str, str] = attrs.field(factory=dict, converter=_headers, repr=False)
    max_rows: int = attrs.field(default=500, converter=lambda v: integer("max_rows", v, minimum=1))
    connect_timeout: float = attrs.field(
        default=5.0, converter=lambda v: duration("connect_timeout", v, positive=True)
    )
    read_timeout: float = attrs.field(
        default=5.0, converter=lambda v: duration("read_timeout", v, positive=True)
    )
    retries: int | None = attrs.field(default=None, converter=_deprecated_retries)
    backoff: float | None = attrs.field(default=None, converter=_deprecated_backoff)
    max_backoff: float | None = attrs.field(default=None, converter=_deprecated_max_backoff)

    _poster: JsonPoster | None = attrs.field(init=False, default=None, repr=False)
    requests: int = attrs.field(init=False, default=0)  # HTTP requests made

    def _post(self, body: bytes) -> None:
        """Send one request; raise :class:`_Rejected` or :class:`SinkError`."""
        if self._poster is None:
            self._poster = JsonPoster(
                self.url,
                headers=self.headers,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            )
        self.requests += 1
        posted = self._poster.post(body)
        if posted.ok:
            return
        if posted.outcome == "rejected":
            raise _Rejected(f"webhook refused the documents: {posted.message}")
        raise SinkError(f"webhook {posted.message}", transient=posted.outcome == "transient")

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
            except SinkError as exc:
                if index == 0 or not exc.transient:
                    raise
                # what was sent stays sent: only the rest is retried
                pending = np.concatenate([c for _, c in plan[index:]])
                return WriteResult(retry=pending.tolist(), rejected=rejected)
        return WriteResult(rejected=rejected) if rejected else None

    def close(self) -> None:
        if self._poster is not None:
            self._poster.close()
            self._poster = None


@hookimpl
def register_sinks(register: Register) -> None:
    register("webhook", WebhookSink, checkpoint_keys=("url",))
