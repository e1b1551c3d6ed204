"""One finding about a job spec: where (the field path), what, how bad, and when Bacalhau would
notice it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import attrs

__all__ = ["STAGES", "Collector", "Problem", "errors", "format_problems"]

Severity = Literal["error", "warning", "info"]
Stage = Literal["decode", "submit", "schedule", "execute", "client"]

STAGES: Final[dict[str, str]] = {
    "decode": "the server cannot decode it",
    "submit": "refused at submission (HTTP 400)",
    "schedule": "accepted, then fails when scheduled",
    "execute": "accepted, then the execution fails on the node",
    "client": "cosmobac's own rule",
}


@attrs.frozen
class Problem:
    """A finding. ``path`` names the field in wire spelling (``Tasks[0].Engine.Params.Image``);
    ``code`` names the rule (stable, for tests and tools); ``stage`` says when Bacalhau itself
    would notice: at submission, at scheduling, or only when the execution starts on a node
    (which is why cosmobac checks those rules before submitting)."""

    path: str
    message: str
    severity: Severity = "error"
    code: str = ""
    stage: Stage = "client"

    def __str__(self) -> str:
        where = self.path or "job"
        when = f" [{STAGES[self.stage]}]" if self.severity == "error" else ""
        return f"{self.severity}: {where}: {self.message}{when}"

    def as_json(self) -> dict[str, str]:
        return {
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
            "code": self.code,
            "stage": self.stage,
        }


@attrs.define
class Collector:
    """Gathers the problems of one spec, in the order the rules find them."""

    problems: list[Problem] = attrs.field(factory=list)

    def error(self, path: str, message: str, code: str, stage: Stage = "submit") -> None:
        self.problems.append(Problem(path, message, "error", code, stage))

    def warn(self, path: str, message: str, code: str, stage: Stage = "client") -> None:
        self.problems.append(Problem(path, message, "warning", code, stage))

    def info(self, path: str, message: str, code: str) -> None:
        self.problems.append(Problem(path, message, "info", code, "client"))


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems of severity ``error``."""
    return [p for p in problems if p.severity == "error"]


def format_problems(problems: Iterable[Problem]) -> str:
    """One line per problem, errors first."""
    order = {"error": 0, "warning": 1, "info": 2}
    return "\n".join(str(p) for p in sorted(problems, key=lambda p: order[p.severity]))
