"""Indexing policies: the sink's ``indexing`` key, the policy it gives a container it creates, and
which of a document's fields a policy indexes (for ``cosmobac cosmos plan``'s RU estimate).

``indexing`` is one of:

* ``"default"``: Cosmos DB's default policy (every path indexed); the sink sets none;
* ``"recommended"``: only the paths queries filter on are indexed: the partition key path(s) and
  :data:`RECOMMENDED_FIELDS` (what ``cosmobac cosmos count|query`` filter and order by);
* a table ``{included = [...], excluded = [...]}`` of top-level field names (``"city"``,
  ``"/city"`` or ``"/city/?"``): with ``included``, only those fields (and the partition key) are
  indexed; with ``excluded`` only, every field but those is.

Guarantees: errors name the key (``indexing``, ``indexing.included``) and an unknown table key is
named with the accepted ones; the policy made is the service's JSON shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from cosmobac.values import choice, did_you_mean, text_list

__all__ = [
    "RECOMMENDED_FIELDS",
    "Indexing",
    "field_names",
    "indexed_fields",
    "parse_indexing",
    "policy_summary",
]

RECOMMENDED_FIELDS: Final = ("timestamp", "city", "sensor_id", "anomaly_flag")
"""Fields the recommended policy indexes (besides the partition key): what queries filter on."""

_FIELD = re.compile(r"^/?([A-Za-z_][A-Za-z0-9_]*)(/\?|/\*)?$")
_TABLE_KEYS: Final = ("included", "excluded")


def _field(key: str, value: str) -> str:
    match = _FIELD.match(value.strip())
    if match is None:
        raise ValueError(
            f"{key}: {value!r} is not a top-level field; write a name such as 'city' (or a path "
            "such as '/city' or '/city/?')"
        )
    return match[1]


def _fields(key: str, value: Any) -> tuple[str, ...]:
    """Top-level field names from a list (or comma-separated text) of names or paths."""
    return tuple(dict.fromkeys(_field(key, v) for v in text_list(key, value)))


def field_names(key: str, value: Any) -> tuple[str, ...]:
    """Top-level field names (``"city"``, ``"/city"`` or ``"/city/?"``), as a list or
    comma-separated text; errors name ``key``."""
    return _fields(key, value)


@attrs.frozen
class Indexing:
    """An indexing choice: ``mode`` is ``"default"``, ``"recommended"`` or ``"custom"``;
    ``included``/``excluded`` are field names (custom)."""

    mode: str = "default"
    included: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def policy(self, partition_key: Sequence[str]) -> dict[str, Any] | None:
        """The container's indexing policy in the service's JSON shape, or ``None`` for the
        default (the service's own)."""
        if self.mode == "default":
            return None
        if self.mode == "recommended":
            keep = _kept(partition_key, RECOMMENDED_FIELDS)
        elif self.included:
            keep = _kept(partition_key, self.included)
        else:
            return {
                "indexingMode": "consistent",
                "automatic": True,
                "includedPaths": [{"path": "/*"}],
                "excludedPaths": [{"path": f"/{f}/?"} for f in self.excluded]
                + [{"path": '/"_etag"/?'}],
            }
        return only(keep)

    def describe(self) -> str:
        if self.mode == "custom":
            parts = [f"included = {list(self.included)}"] if self.included else []
            parts += [f"excluded = {list(self.excluded)}"] if self.excluded else []
            return "{" + ", ".join(parts) + "}"
        return self.mode


def _kept(partition_key: Sequence[str], fields: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*(p.lstrip("/") for p in partition_key), *fields]))


def only(fields: Iterable[str]) -> dict[str, Any]:
    """A policy indexing only ``fields`` (top-level names): everything else excluded."""
    return {
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": f"/{f}/?"} for f in fields],
        "excludedPaths": [{"path": "/*"}],
    }


def parse_indexing(value: Any) -> Indexing:
    """The sink's ``indexing`` value: ``"default"``, ``"recommended"`` or a table
    ``{included = [...], excluded = [...]}``."""
    if value is None:
        return Indexing()
    if isinstance(value, Indexing):
        return value
    if isinstance(value, str):
        return Indexing(choice("indexing", value, ("default", "recommended")))
    if not isinstance(value, Mapping):
        raise TypeError(
            "indexing must be 'default', 'recommended' or a table {included = [...], "
            f"excluded = [...]}}, got {value!r} ({type(value).__name__})"
        )
    for key in value:
        if key not in _TABLE_KEYS:
            raise ValueError(
                f"indexing: unknown key {key!r}{did_you_mean(str(key), _TABLE_KEYS)} (accepted "
                "keys: included, excluded)"
            )
    included = _fields("indexing.included", value.get("included"))
    excluded = _fields("indexing.excluded", value.get("excluded"))
    if not included and not excluded:
        raise ValueError("indexing: give included = [...] or excluded = [...] field names")
    if included and excluded:
        raise ValueError(
            "indexing: give included (index only these) or excluded (index all but these), not both"
        )
    return Indexing("custom", included, excluded)


def _path_field(path: str) -> str | None:
    """The top-level field a policy path names (``"/city/?"`` → ``"city"``), ``"*"`` for the
    root wildcard, ``None`` for anything else (nested or system paths)."""
    if path.strip() in ("/*", "/"):
        return "*"
    match = _FIELD.match(path.strip())
    return match[1] if match else None


def indexed_fields(policy: Mapping[str, Any] | None, fields: Iterable[str]) -> set[str]:
    """Which of ``fields`` (a document's top-level names) ``policy`` indexes. ``None``, a policy
    without ``includedPaths`` (what the local test server returns for a container created without
    one) and one whose ``includedPaths`` hold ``/*`` index every field not excluded; mode
    ``"none"`` indexes nothing."""
    fields = set(fields)
    if policy is None:
        return fields
    if str(policy.get("indexingMode", "consistent")).lower() == "none":
        return set()
    included = [_path_field(str(p.get("path", ""))) for p in policy.get("includedPaths") or []]
    excluded = [_path_field(str(p.get("path", ""))) for p in policy.get("excludedPaths") or []]
    if not policy.get("includedPaths") or "*" in included:
        return {f for f in fields if f not in excluded}
    return {f for f in fields if f in included}


def policy_summary(policy: Mapping[str, Any] | None) -> str:
    """One line: ``"default (every path)"`` or ``"included /city/?, /timestamp/?; excluded /*"``."""
    if policy is None or (not policy.get("includedPaths") and not policy.get("excludedPaths")):
        return "default (every path indexed)"
    if str(policy.get("indexingMode", "consistent")).lower() == "none":
        return "none (no index)"
    inc = ", ".join(str(p.get("path")) for p in policy.get("includedPaths") or [])
    exc = ", ".join(str(p.get("path")) for p in policy.get("excludedPaths") or [])
    return f"included {inc or '-'}; excluded {exc or '-'}"
