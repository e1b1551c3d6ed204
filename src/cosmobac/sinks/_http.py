"""Posting JSON over HTTP, shared by the ``webhook`` sink and ``[[alerts]]``: one request per
call, a timeout, and the answer classified; never a retry (the caller's one retry policy retries).

A URL is shown only as :func:`~cosmobac.values.redact_url` shows it (scheme and host): in
messages, in reprs, and in httpx's own request log lines, which :class:`JsonPoster` rewrites.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ..values import redact_url

__all__ = ["REJECT_STATUS", "RETRY_STATUS", "JsonPoster", "Posted"]

RETRY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses worth sending again later: the server is busy, throttling, or failing for now."""
REJECT_STATUS: Final = frozenset({400, 413, 422})
"""Statuses that refuse the body itself (its content or size): sending it again cannot help."""

Outcome = Literal["ok", "transient", "rejected", "permanent"]


@attrs.frozen
class Posted:
    """What one POST came to: ``"ok"`` (2xx), ``"transient"`` (a status of
    :data:`RETRY_STATUS`, a timeout, a refused or dropped connection), ``"rejected"`` (a status
    of :data:`REJECT_STATUS`) or ``"permanent"`` (any other status: 401, 403, 404, …).
    ``message`` says what happened with the URL redacted; ``retry_after`` is the server's
    ``Retry-After`` header, if any."""

    outcome: Outcome
    message: str
    status: int | None = None
    retry_after: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class _Redact(logging.Filter):
    """Rewrites records of the ``httpx`` logger so that no registered URL appears whole."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self.lock:
            urls = dict(self.urls)
        if not urls:
            return True
        message = record.getMessage()
        changed = message
        for url, shown in urls.items():
            changed = changed.replace(url, shown)
        if changed != message:
            record.msg, record.args = changed, ()
        return True


_REDACT = _Redact()
logging.getLogger("httpx").addFilter(_REDACT)


def _scrub(text: str, url: str) -> str:
    return text.replace(url, redact_url(url)) if url else text


class JsonPoster:
    """POSTs JSON bodies to ``url`` with httpx, one request per :meth:`post`, and classifies the
    answer as a :class:`Posted`. ``headers`` go with every request. The client is made on first
    use and kept (connections are reused) until :meth:`close`."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.requests = 0
        self._client: Any = None
        forms = {url}
        try:
            import httpx

            forms.add(str(httpx.URL(url)))  # as httpx logs it (normalised)
        except Exception:  # an unusual URL: httpx refuses it when posting
            pass
        with _REDACT.lock:
            for form in forms:
                _REDACT.urls[form] = self.shown

    def __repr__(self) -> str:
        return f"JsonPoster({self.shown!r})"

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            timeout = httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                write=self.read_timeout,
                pool=self.connect_timeout,
            )
            self._client = httpx.Client(
                timeout=timeout, headers={"content-type": "application/json", **self.headers}
            )
        return self._client

    def post(self, body: bytes) -> Posted:
        """One POST of ``body`` (JSON bytes). Never raises for what the network or the server
        does: every failure is a :class:`Posted` whose ``message`` names the URL redacted."""
        import httpx

        client = self._http()
        self.requests += 1
        try:
            response = client.post(self.url, content=body)
        except httpx.TimeoutException as exc:
            limit = (
                self.connect_timeout
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                else self.read_timeout
            )
            return Posted(
                "transient",
                f"{self.shown} did not answer: {type(exc).__name__} after {limit:g} s",
                timed_out=True,
            )
        except httpx.HTTPError as exc:
            detail = _scrub(f"{type(exc).__name__}: {exc}", self.url)
            return Posted("transient", f"{self.shown} could not be reached: {detail}")
        status = response.status_code
        if 200 <= status < 300:
            return Posted("ok", f"{self.shown} answered HTTP {status}", status)
        text = _scrub(response.text[:200].strip(), self.url)
        answer = f"HTTP {status}" + (f": {text}" if text else "")
        retry_after = response.headers.get("retry-after")
        if status in RETRY_STATUS:
            after = f" (Retry-After: {retry_after})" if retry_after is not None else ""
            return Posted(
                "transient", f"{self.shown} answered {answer}{after}", status, retry_after
            )
        if status in REJECT_STATUS:
            return Posted("rejected", answer, status)
        return Posted("permanent", f"{self.shown} answered {answer}", status)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
