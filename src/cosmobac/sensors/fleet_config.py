"""The simulated fleet's configuration: each key read and checked, with defaults.

Guarantees: every error names the key (``metrics.humidity.std``, ``anomalies.weights.dip``), an
unknown name lists the known ones and the closest matches, numbers may be given as text (from
``${VAR}``), and a user's ``metrics`` and ``anomalies`` tables are merged over the defaults entry by
entry. :class:`~cosmobac.sensors.simulated.SimulatedFleet` uses these parsers as its converters.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, Final

import attrs
import numpy as np

from ..batch import to_epoch_ms
from ..values import did_you_mean, duration, fraction, integer, real, size

__all__ = [
    "ANOMALY_TYPES",
    "DEFAULT_ANOMALIES",
    "DEFAULT_METRICS",
    "DEFAULT_START",
    "EARLIEST_START",
    "LATEST_START",
    "MAX_EVENT",
    "MAX_FACTOR",
    "MAX_MAGNITUDE",
    "MAX_RATE_HZ",
    "READING_BYTES",
    "SENSOR_BYTES",
    "AnomalyConfig",
    "City",
    "MetricSpec",
    "check_memory",
    "load_cities",
    "machine_memory",
    "parse_anomalies",
    "parse_cities",
    "parse_memory_limit",
    "parse_metrics",
    "parse_rate",
    "parse_seed",
    "parse_sensors_per_city",
    "parse_start",
]

ANOMALY_TYPES: Final = ("spike", "dip", "drift", "pattern", "stuck", "dropout", "noise")
"""Anomaly types the fleet injects, in the order of their internal codes (1, 2, …)."""

DEFAULT_START: Final = "2026-01-01T00:00:00Z"
"""Sensor time begins here unless ``start`` says otherwise, so runs are reproducible."""

MAX_RATE_HZ: Final = 1000.0  # timestamps are whole milliseconds

EARLIEST_START: Final = -62_135_596_800_000
"""``start``'s smallest value: 0001-01-01T00:00:00Z in epoch milliseconds."""
LATEST_START: Final = 253_402_300_799_999
"""``start``'s largest value: 9999-12-31T23:59:59.999Z (ISO-8601 text has four-digit years)."""
MAX_MAGNITUDE: Final = 1e12
"""The largest magnitude of a metric setting (``mean``, ``std``, ``min``, ``max``,
``daily_amplitude``): the simulator squares and sums them, which must stay finite."""
MAX_FACTOR: Final = 1e6
"""The largest anomaly weight or multiplier (they are relative: their sums must stay finite)."""
MAX_EVENT: Final = 7 * 86400.0
"""The longest anomaly event (``anomalies.durations``): 7d."""

DEFAULT_METRICS: Final[Mapping[str, Mapping[str, float]]] = {
    "temperature": {"mean": 20.0, "std": 2.0, "min": -40.0, "max": 60.0, "daily_amplitude": 5.0},
    "humidity": {"mean": 55.0, "std": 5.0, "min": 0.0, "max": 100.0, "daily_amplitude": -8.0},
    "pressure": {"mean": 1013.0, "std": 2.0, "min": 950.0, "max": 1060.0, "daily_amplitude": 1.0},
    "vibration": {"mean": 2.0, "std": 0.2, "min": 0.0, "max": 50.0, "daily_amplitude": 0.5},
    "voltage": {"mean": 12.0, "std": 0.05, "min": 10.0, "max": 14.0, "daily_amplitude": 0.1},
}
"""Default value settings per metric (°C, %, hPa, mm/s, V)."""

DEFAULT_ANOMALIES: Final[Mapping[str, Any]] = {
    "probability": 0.002,
    "weights": {
        "spike": 0.30,
        "dip": 0.15,
        "drift": 0.10,
        "pattern": 0.10,
        "stuck": 0.10,
        "dropout": 0.10,
        "noise": 0.15,
    },
    "durations": {
        "spike": 0.0,
        "dip": 0.0,
        "drift": 300.0,
        "pattern": 120.0,
        "stuck": 60.0,
        "dropout": 30.0,
        "noise": 60.0,
    },
    "firmware_multipliers": {"1.3.9": 1.5, "1.4.2": 1.0, "1.5.0": 0.8, "2.0.0-beta": 2.5},
    "manufacturer_multipliers": {
        "Acme Instruments": 1.0,
        "Nordlys Sensing": 0.7,
        "Kestrel Labs": 1.4,
    },
    "model_weights": {
        "EnviroNode 100": {"dropout": 2.0, "stuck": 1.5},
        "EnviroNode 200": {},
        "TerraSense X1": {"noise": 1.5, "drift": 2.0, "dropout": 0.5},
    },
}
"""Default anomaly settings; a user's ``anomalies`` table is merged over these, entry by entry."""


# -- validation helpers ---------------------------------------------------------------------------
def _unknown(key: str, what: str, name: str, choices: Iterable[str]) -> ValueError:
    choices = list(choices)
    shown = ", ".join(choices) if len(choices) <= 12 else ", ".join(choices[:12]) + ", …"
    return ValueError(
        f"{key}: unknown {what} {name!r}{did_you_mean(name, choices)} (known: {shown})"
    )


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{key} must be a table (a mapping), got {value!r} ({type(value).__name__})"
        )
    for name in value:
        if not isinstance(name, str):
            raise TypeError(f"{key}: keys must be text, got {name!r}")
    return value


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


# -- cities ---------------------------------------------------------------------------------------
@attrs.frozen
class City:
    """A city from the bundled list: name, country and the position of its centre (degrees)."""

    name: str
    country: str
    latitude: float
    longitude: float

    @property
    def slug(self) -> str:
        """The name in lower-case ASCII with dashes (``"São Paulo"`` → ``"sao-paulo"``)."""
        return _slug(self.name)


@cache
def load_cities() -> tuple[City, ...]:
    """Every city in the bundled ``cosmobac/data/cities.csv``, in file order."""
    text = resources.files("cosmobac.data").joinpath("cities.csv").read_text(encoding="utf-8")
    return tuple(
        City(
            name=row["name"].strip(),
            country=row["country"].strip(),
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
        )
        for row in csv.DictReader(io.StringIO(text))
    )


def parse_cities(value: Any) -> tuple[City, ...]:
    known = load_cities()
    if isinstance(value, bool):
        raise TypeError(f"cities must be a count or a list of city names, got {value!r}")
    if isinstance(value, int | np.integer) or (isinstance(value, str) and value.strip().isdigit()):
        return known[: integer("cities", value, minimum=1, maximum=len(known))]
    names: Sequence[Any]
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        names = list(value)
    else:
        raise TypeError(
            f"cities must be a count or a list of city names, got {value!r} "
            f"({type(value).__name__})"
        )
    if not names:
        raise ValueError("cities must name at least one city")
    by_key: dict[str, City] = {}
    for city in known:
        by_key.setdefault(city.name.casefold(), city)
        by_key.setdefault(city.slug, city)
    chosen: list[City] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"cities: each entry must be a city name, got {name!r}")
        found = by_key.get(name.strip().casefold()) or by_key.get(_slug(name))
        if found is None:
            raise _unknown("cities", "city", name, [c.name for c in known])
        if found in chosen:
            raise ValueError(f"cities lists {found.name!r} twice")
        chosen.append(found)
    return tuple(chosen)


# -- value settings -------------------------------------------------------------------------------
@attrs.frozen
class MetricSpec:
    """How one metric's normal readings are drawn.

    A reading is ``mean + sensor offset + daily_amplitude · cos(2π (h − 15) / 24) + std · N(0, 1)``
    clipped to ``[min, max]``, where ``h`` is the local solar hour (UTC hour + longitude / 15), so
    the cycle peaks at 15:00 (a negative amplitude puts the trough there, as for humidity).
    """

    mean: float
    std: float
    min: float
    max: float
    daily_amplitude: float

    @property
    def spread(self) -> float:
        """The metric's typical spread, ``sqrt(std² + amplitude²/2)`` (1.0 when both are 0):
        the unit anomaly magnitudes are measured in."""
        return math.sqrt(self.std**2 + self.daily_amplitude**2 / 2) or 1.0


def parse_metrics(value: Any) -> dict[str, MetricSpec]:
    given = {} if value is None else _table("metrics", value)
    for name in given:
        if name not in DEFAULT_METRICS:
            raise _unknown("metrics", "metric", name, DEFAULT_METRICS)
    specs: dict[str, MetricSpec] = {}
    fields = ("mean", "std", "min", "max", "daily_amplitude")
    for name, defaults in DEFAULT_METRICS.items():
        override = _table(f"metrics.{name}", given.get(name, {}))
        for field in override:
            if field not in fields:
                raise _unknown(f"metrics.{name}", "setting", field, fields)
        values = {
            f: real(
                f"metrics.{name}.{f}", override[f], minimum=-MAX_MAGNITUDE, maximum=MAX_MAGNITUDE
            )
            if f in override
            else defaults[f]
            for f in fields
        }
        spec = MetricSpec(**values)
        key = f"metrics.{name}"
        if spec.std < 0:
            raise ValueError(f"{key}.std must be ≥ 0, got {spec.std:g}")
        if not spec.min < spec.max:
            raise ValueError(f"{key}.min must be < max, got min={spec.min:g}, max={spec.max:g}")
        if not spec.min <= spec.mean <= spec.max:
            raise ValueError(
                f"{key}.mean must lie within [min, max] = [{spec.min:g}, {spec.max:g}], "
                f"got {spec.mean:g}"
            )
        specs[name] = spec
    return specs


# -- anomaly settings -----------------------------------------------------------------------------
@attrs.frozen
class AnomalyConfig:
    """Anomaly settings after merging the user's table over :data:`DEFAULT_ANOMALIES`.

    ``durations`` are in seconds; ``model_weights`` maps model → anomaly type → weight multiplier.
    """

    probability: float
    weights: Mapping[str, float]
    durations: Mapping[str, float]
    firmware_multipliers: Mapping[str, float]
    manufacturer_multipliers: Mapping[str, float]
    model_weights: Mapping[str, Mapping[str, float]]


def _factor(key: str, value: Any) -> float:
    return real(key, value, minimum=0, maximum=MAX_FACTOR)


def _event(key: str, value: Any) -> float:
    return duration(key, value, maximum=MAX_EVENT)


def _per_name(
    key: str, given: Any, defaults: Mapping[str, float], what: str, parse: Any = _factor
) -> dict[str, float]:
    table = _table(key, given)
    out = dict(defaults)
    for name, raw in table.items():
        if name not in defaults:
            raise _unknown(key, what, name, defaults)
        out[name] = parse(f"{key}.{name}", raw)
    return out


def parse_anomalies(value: Any) -> AnomalyConfig:
    given = {} if value is None else _table("anomalies", value)
    accepted = tuple(DEFAULT_ANOMALIES)
    for name in given:
        if name not in accepted:
            raise _unknown("anomalies", "setting", name, accepted)
    probability = fraction("anomalies.probability", given.get("probability", 0.002))
    weights = _per_name(
        "anomalies.weights", given.get("weights", {}), DEFAULT_ANOMALIES["weights"], "anomaly type"
    )
    if not any(w > 0 for w in weights.values()):
        raise ValueError("anomalies.weights must give at least one anomaly type a weight > 0")
    durations = _per_name(
        "anomalies.durations",
        given.get("durations", {}),
        DEFAULT_ANOMALIES["durations"],
        "anomaly type",
        parse=_event,
    )
    firmware = _per_name(
        "anomalies.firmware_multipliers",
        given.get("firmware_multipliers", {}),
        DEFAULT_ANOMALIES["firmware_multipliers"],
        "firmware version",
    )
    manufacturers = _per_name(
        "anomalies.manufacturer_multipliers",
        given.get("manufacturer_multipliers", {}),
        DEFAULT_ANOMALIES["manufacturer_multipliers"],
        "manufacturer",
    )
    model_table = _table("anomalies.model_weights", given.get("model_weights", {}))
    models: dict[str, dict[str, float]] = {}
    for model, defaults in DEFAULT_ANOMALIES["model_weights"].items():
        full = {t: float(defaults.get(t, 1.0)) for t in ANOMALY_TYPES}
        models[model] = full
    for model, raw in model_table.items():
        if model not in models:
            raise _unknown("anomalies.model_weights", "model", model, models)
        models[model] = _per_name(
            f"anomalies.model_weights.{model}", raw, models[model], "anomaly type"
        )
    return AnomalyConfig(
        probability=probability,
        weights=weights,
        durations=durations,
        firmware_multipliers=firmware,
        manufacturer_multipliers=manufacturers,
        model_weights=models,
    )


# -- scalar keys ----------------------------------------------------------------------------------
def parse_start(value: Any) -> int:
    """Epoch milliseconds from an integer (or integer text) or ISO-8601 text with a zone, from
    0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z (:data:`EARLIEST_START`,
    :data:`LATEST_START`)."""
    if isinstance(value, bool | float | np.floating):
        raise TypeError(
            f"start must be epoch milliseconds (an integer) or ISO-8601 text with a zone such as "
            f"'2026-01-01T00:00:00Z', got {value!r}"
        )
    if isinstance(value, int | np.integer) or (
        isinstance(value, str) and value.strip().lstrip("-").isdigit()
    ):
        ms = integer("start", value)
    else:
        try:
            ms = to_epoch_ms(value)
        except ValueError as exc:
            raise ValueError(
                f"start: {exc} (write e.g. '2026-01-01T00:00:00Z', years 0001 to 9999)"
            ) from None
    if not EARLIEST_START <= ms <= LATEST_START:
        raise ValueError(
            f"start must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z (epoch ms "
            f"{EARLIEST_START} to {LATEST_START}), got {value!r}"
        )
    return ms


def parse_rate(value: Any) -> float:
    rate = real("rate_hz", value, above=0, maximum=MAX_RATE_HZ)
    if rate < 1e-6:  # compared directly: 1e6 / rate overflows for a subnormal rate (1e-320)
        raise ValueError(f"rate_hz must be at least 1e-6 (one reading per 11.6 days), got {rate:g}")
    return rate


def parse_sensors_per_city(value: Any) -> int:
    return integer("sensors_per_city", value, minimum=1, maximum=99_999)


def parse_seed(value: Any) -> int:
    return integer("seed", value, minimum=0)


def parse_memory_limit(value: Any) -> int | None:
    """``None`` (the memory this machine or process may use, see :func:`machine_memory`) or a
    size such as ``"2GiB"``."""
    return None if value is None else size("memory_limit", value)


def _read_limit(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as file:
            text = file.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's physical memory, lowered by a cgroup
    memory limit or an address-space ``ulimit -v`` when there is one; ``None`` when unknown."""
    found: list[int] = []
    with contextlib.suppress(AttributeError, ValueError, OSError):  # sysconf is POSIX only
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_limit(path)
        if limit is not None:
            found.append(limit)
    try:
        import resource
    except ImportError:  # not on Windows
        pass
    else:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    found = [n for n in found if n > 0]
    return min(found) if found else None


SENSOR_BYTES: Final = 8 * 1024
"""Memory a simulated sensor needs between reads (its identity, where its random streams stand,
its pending events), with room for the allocator: measured at about 4.4 KB."""

READING_BYTES: Final = 256
"""Memory one reading takes while a read builds its batch (its columns, the sort): measured at
about 210 bytes."""


def _show_size(n: float) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} bytes"


def check_memory(
    cities: int, sensors_per_city: int, rate_hz: float, limit: int | None
) -> int | None:
    """Refuse a fleet that could not fit in memory, before it is built: ``ValueError`` naming the
    keys and what would fit. A fleet needs :data:`SENSOR_BYTES` per sensor and room for one second
    of readings (at least one per sensor) at :data:`READING_BYTES` each; ``limit`` is the
    ``memory_limit`` key, or this machine's memory (:func:`machine_memory`) when ``None``.

    Returns the bytes left over (``None`` when the machine's memory is unknown)."""
    what = "memory_limit"
    if limit is None:
        limit = machine_memory()
        if limit is None:
            return None
        what = "this machine's memory (memory_limit not set)"
    sensors = cities * sensors_per_city
    per_sensor = SENSOR_BYTES + READING_BYTES * max(1.0, rate_hz)
    need = sensors * per_sensor
    if need <= limit:
        return int(limit - need)
    fit = int(limit // per_sensor)
    if fit == 0:
        room = "not even one sensor fits at this rate"
    else:
        room = f"at most {fit:,} sensors fit at this rate"
        if fit >= cities:
            room += f" (sensors_per_city ≤ {fit // cities:,} with {cities} cities)"
        share = limit / sensors - SENSOR_BYTES
        if share >= READING_BYTES:
            top = math.floor(share / READING_BYTES * 100) / 100  # rounded down: it fits
            room += f", or this fleet up to rate_hz = {top:g}"
    raise ValueError(
        f"fleet too large for {what}, {_show_size(limit)}: cities ({cities}) × "
        f"sensors_per_city ({sensors_per_city:,}) = {sensors:,} sensors at rate_hz = {rate_hz:g} "
        f"need about {_show_size(need)} ({_show_size(SENSOR_BYTES)} per sensor and one second of "
        f"readings at {READING_BYTES} bytes each); {room}. Lower cities, sensors_per_city or "
        f"rate_hz, or raise memory_limit"
    )
