"""JSON payloads to readings: :class:`PayloadMapping`.

Guarantees:

* a payload is one JSON object or a JSON array of objects; each object is one reading;
* ``[sensor.fields]`` renames payload fields first (``{"temp" = "temperature"}``); then fields
  named like core fields (``sensor_id``, ``timestamp``, the metrics, ``city``, the metadata)
  are read as them, the targets of ``fields`` are kept whatever their name, and other fields are
  dropped unless ``keep_extra`` (then scalar ones become extra columns);
* ``sensor_id_from_topic`` takes the sensor id from a topic level instead (true: the last level;
  a number: that level, 0 the first, -1 the last);
* a numeric ``timestamp`` is epoch time in ``timestamp_unit`` (``ms`` by default; ``s``, ``us``,
  ``ns``, or ``auto``: by magnitude, see :func:`epoch_ms`); text is ISO-8601 with ``Z`` or an
  offset (zone-less text is refused), or digits read as a number;
* what cannot be read (not JSON, not an object, no sensor id or timestamp, a metric that is not a
  number, nested values where text belongs) becomes an :class:`~cosmobac.interfaces.InputReject`
  with origin ``"topic <topic>"``, the reason and the input; never an exception, never a row with a
  made-up value. One bad object in an array rejects that object only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np

from cosmobac.batch import Batch, to_epoch_ms
from cosmobac.interfaces import InputReject
from cosmobac.schema import CORE_FIELDS, IDENTITY, STORE_SEQ, Kind
from cosmobac.values import NO, YES, choice, data_flag, integer

__all__ = ["TIMESTAMP_UNITS", "PayloadMapping", "epoch_ms"]

TIMESTAMP_UNITS: Final = ("ms", "s", "us", "ns", "auto")
_PER_MS: Final = {"s": 1e-3, "ms": 1.0, "us": 1e3, "ns": 1e6}
# auto: below 1e11 seconds (until year 5138), below 1e14 ms, below 1e17 µs, else ns
_AUTO_LIMITS: Final = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_INT64_MAX: Final = 2**63 - 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING: Final = object()


def epoch_ms(value: Any, unit: str) -> int:
    """Epoch milliseconds from a payload's timestamp: a number in ``unit`` (``auto``: by its
    magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
    nanoseconds), digits text read as that number, or ISO-8601 text with a zone."""
    if value is _MISSING or value is None:
        raise ValueError("no timestamp")
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be a number or ISO text, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            return to_epoch_ms(text)  # ISO text, zone required; raises ValueError naming it
    if not isinstance(value, int | float):
        raise ValueError(f"timestamp must be a number or ISO text, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"timestamp must be finite, got {value!r}")
    if unit == "auto":
        unit = next((u for limit, u in _AUTO_LIMITS if abs(value) < limit), "ns")
    if unit == "ms" and isinstance(value, int):
        ms = value
    elif isinstance(value, int) and unit in ("us", "ns"):
        ms = value // int(_PER_MS[unit])
    else:
        ms = math.floor(value / _PER_MS[unit])
    if not -_INT64_MAX <= ms <= _INT64_MAX:
        raise ValueError(f"timestamp {value!r} is out of range")
    return int(ms)


def _topic_level(value: Any) -> int | None:
    """``sensor_id_from_topic``: false → None, true → -1 (the last level), a whole number (or
    digits, as ``${VAR}`` gives) → that level."""
    if value is None or value is False:
        return None
    if value is True:
        return -1
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        word = value.strip().lower()
        if word in YES | NO:  # a level written as digits is a level, not a flag
            return -1 if word in YES else None
    return integer("sensor_id_from_topic", value, minimum=-64, maximum=64)


def _fields(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(
            "fields must be a table of payload field = reading field, e.g. "
            '[sensor.fields] temp = "temperature"'
        )
    out = {k: v.strip() for k, v in value.items()}
    for source, target in out.items():
        if not target or target == STORE_SEQ or not _NAME.match(target):
            raise ValueError(f"fields: {source!r} = {target!r} names no usable field")
    targets = list(out.values())
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        raise ValueError(f"fields: several payload fields map to {', '.join(doubled)}")
    return out


def _flag(value: Any) -> bool:
    from cosmobac.values import flag

    return flag("keep_extra", value)


def _number(value: Any) -> float:
    """A metric: a number, numeric text, or null (NaN). Raises ValueError otherwise."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    return float(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


@attrs.frozen(eq=False)
class PayloadMapping:
    """How JSON payloads become readings (the payload keys of the ``mqtt`` sensor)."""

    fields: dict[str, str] = attrs.field(factory=dict, converter=_fields)
    sensor_id_from_topic: int | None = attrs.field(default=None, converter=_topic_level)
    timestamp_unit: str = attrs.field(
        default="ms", converter=lambda v: choice("timestamp_unit", v, TIMESTAMP_UNITS)
    )
    keep_extra: bool = attrs.field(default=False, converter=_flag)

    # -- one message --------------------------------------------------------------------------
    def decode(self, topic: str, payload: bytes) -> tuple[list[dict[str, Any]], list[InputReject]]:
        """The objects of one message, and a reject for each part that is not one."""
        origin = f"topic {topic}"
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            reason = (
                f"payload is not JSON: {exc}"
                if isinstance(exc, ValueError)
                else "payload nests too deep"
            )
            return [], [InputReject(origin=origin, reason=reason, raw=payload)]
        if isinstance(data, dict):
            return [data], []
        if isinstance(data, list):
            objects = [item for item in data if isinstance(item, dict)]
            if len(objects) == len(data):
                return objects, []
            rejects = [
                InputReject(
                    origin=origin,
                    reason=f"array item {i} is not a JSON object ({type(item).__name__})",
                    raw=json.dumps(item),
                )
                for i, item in enumerate(data)
                if not isinstance(item, dict)
            ]
            return objects, rejects
        return [], [
            InputReject(
                origin=origin,
                reason=f"payload must be a JSON object or an array of objects, got {type(data).__name__}",
                raw=payload,
            )
        ]

    def sensor_id_of(self, topic: str, obj: Mapping[str, Any]) -> str:
        if self.sensor_id_from_topic is not None:
            levels = topic.split("/")
            try:
                level = levels[self.sensor_id_from_topic]
            except IndexError:
                raise ValueError(
                    f"topic has no level {self.sensor_id_from_topic} to take the sensor id from"
                ) from None
            if not level:
                raise ValueError(f"topic level {self.sensor_id_from_topic} is empty")
            return level
        value = obj.get("sensor_id")
        if value is None:
            raise ValueError("no sensor_id")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"sensor_id must be text or a whole number, got {_shown(value)}")
        text = str(value)
        if not text.strip():
            raise ValueError("sensor_id is empty")
        return text

    # -- many objects -------------------------------------------------------------------------
    def to_batch(
        self, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[Batch, list[InputReject]]:
        """Readings from ``(topic, object)`` pairs, in order, and a reject for each object that
        cannot be one."""
        rejects: list[InputReject] = []
        kept: list[dict[str, Any]] = []
        origins: list[tuple[str, dict[str, Any]]] = []
        sensor_ids: list[str] = []
        stamps: list[int] = []
        fields, unit = self.fields, self.timestamp_unit
        for topic, original in items:
            obj = {fields.get(k, k): v for k, v in original.items()} if fields else original
            try:
                sensor_id = self.sensor_id_of(topic, obj)
                stamp = epoch_ms(obj.get("timestamp", _MISSING), unit)
            except ValueError as exc:
                rejects.append(_reject(topic, str(exc), original))
                continue
            kept.append(obj)
            origins.append((topic, original))
            sensor_ids.append(sensor_id)
            stamps.append(stamp)
        if not kept:
            return Batch.empty(), rejects
        columns: dict[str, Any] = {
            "timestamp": np.array(stamps, dtype=np.int64),
            "sensor_id": np.array(sensor_ids, dtype=object),
        }
        bad: dict[int, str] = {}
        for name in self._names(kept):
            values = [o.get(name) for o in kept]
            kind = CORE_FIELDS.get(name)
            if kind is None:
                columns[name] = _extra(values)
            else:
                columns[name] = _column(name, kind, values, bad)
        if bad:
            good = np.ones(len(kept), dtype=bool)
            for i, reason in sorted(bad.items()):
                good[i] = False
                rejects.append(_reject(origins[i][0], reason, origins[i][1]))
            columns = {name: np.asarray(col)[good] for name, col in columns.items()}
        return Batch.from_columns(columns), rejects

    def _names(self, objects: Sequence[Mapping[str, Any]]) -> list[str]:
        """The columns to build, core fields in canonical order, then extras as first seen."""
        seen: dict[str, None] = {}
        for obj in objects:
            seen.update(dict.fromkeys(obj))
        targets = set(self.fields.values())
        core = [n for n in CORE_FIELDS if n in seen and n not in IDENTITY]
        extra = [
            n
            for n in seen
            if n not in CORE_FIELDS
            and n != STORE_SEQ
            and (n in targets or (self.keep_extra and _NAME.match(n)))
        ]
        return core + extra


def _reject(topic: str, reason: str, obj: Any) -> InputReject:
    return InputReject(origin=f"topic {topic}", reason=reason, raw=json.dumps(obj, default=str))


def _column(name: str, kind: Kind, values: list[Any], bad: dict[int, str]) -> np.ndarray:
    """One core column; rows whose value cannot be read are named in ``bad``."""
    if kind is Kind.FLOAT:
        if not any(v.__class__ is bool for v in values):
            try:
                return np.array(values, dtype=np.float64)  # None → NaN, numeric text → number
            except (TypeError, ValueError):
                pass
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            try:
                out[i] = _number(v)
            except (TypeError, ValueError):
                bad.setdefault(i, f"{name} must be a number, got {_shown(v)}")
        return out
    if kind is Kind.BOOL:
        flags = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            try:
                flags[i] = data_flag(v) if v is not None else False
            except (TypeError, ValueError):
                bad.setdefault(i, f"{name} must be true or false, got {_shown(v)}")
        return flags
    texts = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        try:
            texts[i] = _text(v)
        except ValueError:
            bad.setdefault(i, f"{name} must be text, got {_shown(v)}")
    return texts


def _extra(values: list[Any]) -> np.ndarray:
    """An extra column: numbers (NaN when missing), flags, or else text (JSON for nested
    values, None when missing)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    if present and all(isinstance(v, bool) for v in present):
        return np.array([bool(v) for v in values], dtype=bool)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = None if v is None else v if isinstance(v, str) else json.dumps(v)
    return out
