"""Node label selectors: text such as ``city in (lisbon, porto), region=eu`` to job constraints,
and the label syntax Bacalhau checks only when it schedules (Kubernetes rules).

Accepted forms, separated by commas (commas inside parentheses belong to a set):

========================  =======================================
``key``                   the node has the label (``exists``)
``!key``                  the node lacks it (``!``)
``key=value``             equal (also ``==``); ``key!=value``
``key in (a, b)``         one of; ``key notin (a, b)``
``key gt 4``, ``key>4``   whole-number comparison (``lt``, ``<``)
========================  =======================================
"""

from __future__ import annotations

import re
from typing import Final

from .model import Constraint

__all__ = [
    "OPERATORS",
    "format_constraint",
    "label_key_problem",
    "label_value_problem",
    "parse_selector",
]

OPERATORS: Final = ("=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")

_KEY = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
_FORMS: Final = (
    (re.compile(rf"^!\s*({_KEY})$"), lambda m: Constraint(m[1], "!", ())),
    (
        re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$", re.IGNORECASE),
        lambda m: Constraint(
            m[1], m[2].lower(), tuple(v.strip() for v in m[3].split(",") if v.strip())
        ),
    ),
    (
        re.compile(rf"^({_KEY})\s*(==|!=|=|>|<)\s*(.*)$"),
        lambda m: Constraint(m[1], {">": "gt", "<": "lt"}.get(m[2], m[2]), (m[3].strip(),)),
    ),
    (
        re.compile(rf"^({_KEY})\s+(gt|lt)\s+(\S.*)$", re.IGNORECASE),
        lambda m: Constraint(m[1], m[2].lower(), (m[3].strip(),)),
    ),
    (re.compile(rf"^({_KEY})$"), lambda m: Constraint(m[1], "exists", ())),
)


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_selector(text: str) -> tuple[Constraint, ...]:
    """Constraints from selector text; ``ValueError`` naming the part that is not understood.
    Label syntax is not checked here (see :func:`label_value_problem`): validation reports it
    with the field path."""
    constraints = []
    for part in _split(text):
        for pattern, build in _FORMS:
            match = pattern.match(part)
            if match:
                constraints.append(build(match))
                break
        else:
            raise ValueError(
                f"selector {part!r} is not understood; write key=value, key!=value, "
                "key in (a, b), key notin (a, b), key, !key, key gt N or key lt N"
            )
    return tuple(constraints)


def format_constraint(constraint: Constraint) -> str:
    """A constraint as selector text (the inverse of :func:`parse_selector`)."""
    key, op, values = constraint.key, constraint.operator, constraint.values
    if op == "exists":
        return key
    if op == "!":
        return f"!{key}"
    if op in ("in", "notin"):
        return f"{key} {op} ({', '.join(values)})"
    if op in ("gt", "lt"):
        return f"{key} {op} {values[0] if values else '?'}"
    return f"{key}{op}{values[0] if values else ''}"


_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (a Kubernetes qualified name), or None."""
    prefix, sep, name = key.rpartition("/")
    if sep and not prefix:
        return f"label key {key!r} has an empty prefix before '/'"
    if sep and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            f"label key prefix {prefix!r} must be a DNS subdomain (lower case letters, digits, "
            "'-' and '.', at most 253 characters)"
        )
    if not name:
        return "label key is empty"
    if len(name) > 63 or not _NAME.match(name):
        return (
            f"label key {key!r}: the name must be at most 63 characters of letters, digits, "
            "'-', '_' and '.', beginning and ending with a letter or digit"
        )
    return None


def suggest_value(value: str) -> str:
    """A valid label value close to ``value`` (``São Paulo`` → ``sao-paulo``)."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text.strip()).strip("-._").lower()
    return slug[:63].rstrip("-._")


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if len(value) <= 63 and _VALUE.match(value):
        return None
    suggestion = suggest_value(value)
    hint = f" (e.g. {suggestion!r})" if suggestion and suggestion != value else ""
    return (
        f"label value {value!r} must be at most 63 characters of letters, digits, '-', '_' "
        f"and '.', beginning and ending with a letter or digit{hint}; label the nodes with such "
        "a value too"
    )
