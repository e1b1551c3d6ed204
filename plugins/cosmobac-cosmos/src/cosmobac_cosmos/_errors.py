"""Sorting the Azure SDK's exceptions into what the sink does next, and keeping secrets out of text."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import attrs

__all__ = ["Action", "Failure", "Redactor", "classify", "retry_after_seconds"]


class Action(enum.Enum):
    THROTTLED = "throttled"  # 429: wait the server's retry-after, slow down, send again
    TRANSIENT = "transient"  # timeouts, dropped connections, 408/410/449/5xx: back off, send again
    CONTENT = "content"  # 400/413/...: the document(s) themselves were refused
    CONFLICT = "conflict"  # 409 on a create
    PERMANENT = "permanent"  # 401/403/404, TLS failures, no credential: stop, nothing acked
    SERIALIZE = "serialize"  # the SDK could not turn a document into JSON


@attrs.frozen
class Failure:
    action: Action
    message: str
    status: int | None = None
    sub_status: int | None = None
    retry_after: float | None = None  # seconds, for THROTTLED
    request_charge: float = 0.0
    operation_statuses: tuple[int, ...] | None = None  # a transactional batch's per-operation codes
    operation_messages: tuple[str | None, ...] = ()
    timeout: bool = False  # no answer within the sink's timeouts (TRANSIENT)


@attrs.define
class Redactor:
    """Removes the account key (and its URL-encoded forms) and authorization headers from text."""

    secrets: list[str] = attrs.field(factory=list, repr=False)

    def add(self, secret: str | None) -> None:
        if secret:
            for form in {secret, secret.strip(), quote(secret, safe=""), quote_plus(secret)}:
                if form and form not in self.secrets:
                    self.secrets.append(form)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _strip_auth_header(text)


_AUTH = re.compile(
    r"(type(?:=|%3d)(?:master|aad|resource)(?:&|%26)ver(?:=|%3d)1\.0(?:&|%26)sig(?:=|%3d))"
    r"[^\s'\",;}]+",
    re.IGNORECASE,
)


def _strip_auth_header(text: str) -> str:
    return _AUTH.sub(r"\1***", text)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return None if value is None else str(value)


def request_charge(headers: Mapping[str, Any] | None) -> float:
    value = _header(headers, "x-ms-request-charge")
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """The server's ``x-ms-retry-after-ms`` (or a standard ``Retry-After``) in seconds."""
    value = _header(headers, "x-ms-retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    if not text:
        text = type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message_of(exc: Any) -> str:
    message = getattr(exc, "http_error_message", None) or getattr(exc, "message", None)
    if not message:
        return _short(exc)
    text = str(message)
    try:  # the service answers {"code": ..., "message": ...}
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            text = str(body["message"])
    except ValueError:
        pass
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


_TRANSIENT_STATUS = frozenset({408, 410, 449, 500, 502, 503, 504})


def _is_tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return True
        if "WRONG_VERSION_NUMBER" in text:  # https:// to a plain-http server
            return True
        current = (
            current.__cause__ or current.__context__ or getattr(current, "inner_exception", None)
        )
    return False


def classify(exc: BaseException) -> Failure:
    """What an exception from the SDK means for the documents of the request that raised it."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.cosmos import exceptions as cosmos_exceptions

    if isinstance(exc, cosmos_exceptions.CosmosBatchOperationError):
        responses = list(exc.operation_responses or [])
        statuses = tuple(int(r.get("statusCode", 0) or 0) for r in responses)
        messages = tuple(_op_message(r) for r in responses)
        status = int(exc.status_code or 0)
        return Failure(
            Action.CONFLICT if 409 in statuses else Action.CONTENT,
            _message_of(exc),
            status=status,
            sub_status=exc.sub_status,
            request_charge=request_charge(exc.headers),
            operation_statuses=statuses,
            operation_messages=messages,
        )
    if isinstance(exc, ClientAuthenticationError):
        return Failure(
            Action.PERMANENT,
            f"could not get a Microsoft Entra ID token: {_short(exc, 900)}. Sign in with `az "
            "login`, run where a managed or workload identity is assigned, or set "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (see docs/cosmos.md)",
        )
    if isinstance(exc, cosmos_exceptions.CosmosHttpResponseError):
        status = int(exc.status_code or 0)
        sub = exc.sub_status
        charge = request_charge(exc.headers)
        message = _message_of(exc)
        if status == 429:
            return Failure(
                Action.THROTTLED,
                message,
                status=status,
                sub_status=sub,
                retry_after=retry_after_seconds(exc.headers),
                request_charge=charge,
            )
        if status == 409:
            return Failure(Action.CONFLICT, message, status=status, request_charge=charge)
        if status in _TRANSIENT_STATUS or status == 0:
            return Failure(Action.TRANSIENT, f"HTTP {status}: {message}", status=status)
        if status == 401:
            return Failure(
                Action.PERMANENT,
                "authentication failed (HTTP 401): the account key is wrong or was rotated, or "
                "the Entra ID token was refused; check `key` / `credential`",
                status=status,
            )
        if status == 403 and sub == 3:  # write forbidden during a regional failover
            return Failure(Action.TRANSIENT, f"HTTP 403.3: {message}", status=status)
        if status == 403:
            return Failure(
                Action.PERMANENT,
                f"forbidden (HTTP 403{'.' + str(sub) if sub else ''}): {message}. With Entra ID "
                "the identity needs a data-plane role such as 'Cosmos DB Built-in Data "
                "Contributor' on the account (see docs/cosmos.md); firewall rules also answer 403",
                status=status,
            )
        if status == 404 and sub == 1002:  # read session not available yet
            return Failure(Action.TRANSIENT, f"HTTP 404.1002: {message}", status=status)
        if status == 404:
            return Failure(
                Action.PERMANENT,
                f"not found (HTTP 404): {message}",
                status=status,
            )
        return Failure(Action.CONTENT, f"HTTP {status}: {message}", status=status)
    if isinstance(exc, ServiceRequestError | ServiceResponseError) and _is_tls_failure(exc):
        return Failure(
            Action.PERMANENT,
            f"TLS failure talking to the endpoint: {_short(exc)}. For a local emulator with a "
            "self-signed certificate set `tls_ca_file` to its certificate, or `verify_tls = false`",
        )
    if _is_timeout(exc):
        return Failure(Action.TRANSIENT, f"{type(exc).__name__}: {_short(exc)}", timeout=True)
    if isinstance(exc, ServiceRequestError | ServiceResponseError | HttpResponseError):
        return Failure(Action.TRANSIENT, f"{type(exc).__name__}: {_short(exc)}")
    if isinstance(exc, TypeError | ValueError) and _looks_like_json_error(exc):
        return Failure(Action.SERIALIZE, f"{type(exc).__name__}: {_short(exc)}")
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return Failure(Action.TRANSIENT, f"{type(exc).__name__}: {_short(exc)}")
    return Failure(Action.TRANSIENT, f"unexpected {type(exc).__name__}: {_short(exc)}")


def _is_timeout(exc: BaseException) -> bool:
    """A connect or read timeout (azure-core's, the SDK's absolute one, or the socket's)."""
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError
    from azure.cosmos.exceptions import CosmosClientTimeoutError

    return isinstance(
        exc,
        ServiceRequestTimeoutError
        | ServiceResponseTimeoutError
        | CosmosClientTimeoutError
        | TimeoutError,
    )


def _looks_like_json_error(exc: BaseException) -> bool:
    text = str(exc)
    return "JSON serializable" in text or "JSON compliant" in text or "Out of range float" in text


def _op_message(response: Mapping[str, Any]) -> str | None:
    body = response.get("resourceBody")
    if isinstance(body, Mapping) and body.get("message"):
        return str(body["message"])[:300]
    message = response.get("message")
    return str(message)[:300] if message else None


def statuses_text(statuses: Iterable[int]) -> str:
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n}x{status}" for status, n in sorted(counts.items()))
