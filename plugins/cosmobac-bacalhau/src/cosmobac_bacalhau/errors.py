"""The exceptions of :mod:`cosmobac_bacalhau`. Every message says what was wrong and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cosmobac.errors import CosmobacError

if TYPE_CHECKING:
    from .problems import Problem

__all__ = [
    "BacalhauAPIError",
    "BacalhauAuthError",
    "BacalhauConnectionError",
    "BacalhauError",
    "BacalhauNotFound",
    "BacalhauVersionError",
    "JobSpecError",
    "WaitTimeout",
]


class BacalhauError(CosmobacError):
    """Base class of the errors talking to Bacalhau or building its jobs."""


class JobSpecError(BacalhauError, ValueError):
    """A job spec has problems: :attr:`problems` lists every one, each naming its field path."""

    def __init__(self, problems: Sequence[Problem], *, source: str = "job") -> None:
        self.problems = list(problems)
        self.source = source
        errors = [p for p in self.problems if p.severity == "error"]
        lines = "\n".join(f"  - {p}" for p in errors or self.problems)
        count = len(errors) or len(self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}:\n{lines}")


class BacalhauConnectionError(BacalhauError):
    """The orchestrator could not be reached (refused, timed out, TLS failure)."""


class BacalhauVersionError(BacalhauError):
    """The orchestrator is older than cosmobac's jobs need (v1.7)."""


class BacalhauAPIError(BacalhauError):
    """The orchestrator answered with an error body.

    ``status`` is the HTTP status (branch on it, not on ``code``: Bacalhau reports some request
    validation failures as ``Status: 400`` with ``Code: "InternalError"``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        body: Any = None,
    ) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.hint = hint
        self.request_id = request_id
        self.method = method
        self.path = path
        self.body = body
        where = f"{method} {path}: " if method else ""
        extra = f" ({code})" if code else ""
        text = f"{where}HTTP {status}{extra}: {message}"
        if hint:
            text += f". Hint: {hint}"
        if request_id:
            text += f" [request {request_id}]"
        super().__init__(text)


class BacalhauAuthError(BacalhauAPIError):
    """401 (missing or wrong credentials) or 403 (the principal lacks the capability)."""


class BacalhauNotFound(BacalhauAPIError):
    """404: no such job, node or route (an unknown route may mean an older server)."""


class WaitTimeout(BacalhauError):
    """A job did not reach the awaited state in time; ``last`` is the last state seen."""

    def __init__(self, message: str, *, last: Any = None) -> None:
        super().__init__(message)
        self.last = last
