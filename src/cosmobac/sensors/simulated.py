"""Built-in sensor ``simulated``: a deterministic fleet of simulated environmental sensors.

Its keys are read and checked in :mod:`cosmobac.sensors.fleet_config`.

Guarantees:

* the readings are a pure function of the configuration (seed included): two fleets with the same
  configuration return identical batches, and how sensor time is cut into ``read`` calls changes
  nothing (``read(t2)`` equals ``read(t1)`` followed by ``read(t2)``, anomaly events spanning the
  cut included);
* a sensor's readings depend only on the seed, its ``sensor_id`` and the value settings, not on
  which other sensors are in the fleet; anomalies are laid over the normal readings, so changing
  the anomaly settings (or turning them off) leaves the rows that stay normal unchanged;
* every anomalous row carries its ground truth (``anomaly_flag`` true and ``anomaly_type``), every
  normal row ``anomaly_flag`` false and ``anomaly_type`` ``None``; a missing value is NaN, never 0.0;
* generation is vectorised with numpy (fixed blocks of sensor time per sensor, each drawn from its
  own counter-based random stream), so large spans of sensor time are cheap;
* memory is the batch a read returns plus a few hundred bytes per sensor (where its current
  block's random stream stands, and its events), not a block of values per sensor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Final

import attrs
import numpy as np

from ..batch import Batch, read_only
from ..hookspecs import Register, hookimpl
from ..schema import CORE_FIELDS, METRICS, Kind
from .fleet_config import (
    ANOMALY_TYPES,
    DEFAULT_START,
    AnomalyConfig,
    City,
    MetricSpec,
    check_memory,
    load_cities,
    parse_anomalies,
    parse_cities,
    parse_memory_limit,
    parse_metrics,
    parse_rate,
    parse_seed,
    parse_sensors_per_city,
    parse_start,
)

__all__ = [
    "ANOMALY_TYPES",
    "DEFAULT_START",
    "AnomalyConfig",
    "City",
    "MetricSpec",
    "SensorInfo",
    "SimulatedFleet",
    "load_cities",
]

_SPIKE, _DIP, _DRIFT, _PATTERN, _STUCK, _DROPOUT, _NOISE = range(1, 8)
_TYPE_NAMES: Final = np.array([None, *ANOMALY_TYPES], dtype=object)

_BLOCK: Final = 4096
"""Readings per generated block and random stream. Part of the data's definition: changing it
changes every reading for a seed."""

_BLOCK_BYTES: Final = len(METRICS) * _BLOCK * 8  # one block's standard normal draws

_CACHE_BYTES: Final = 64 * 1024 * 1024
"""Memory for keeping whole blocks of draws (160 KB per sensor) for the first sensors of a fleet,
as far as the fleet's ``memory_limit`` leaves room, so their reads take them instead of drawing
again: the speed of the old per-sensor cache for small fleets, bounded memory for large ones."""

_MS_PER_DAY: Final = 86_400_000
_MS_PER_HOUR: Final = 3_600_000
_PEAK_HOUR: Final = 15.0  # local solar time of the daily maximum
_OFFSET_FRACTION: Final = 0.2  # per-sensor calibration offset: N(0, 0.2·std)
_GPS_JITTER_DEG: Final = 0.02  # sensor position: city centre + N(0, 0.02°) (≈ 2 km)

# Identity distributions: (value, weight). Each sensor draws one of each from its own stream.
FIRMWARE_VERSIONS: Final = (("1.3.9", 0.15), ("1.4.2", 0.40), ("1.5.0", 0.35), ("2.0.0-beta", 0.10))
MODELS: Final = (("EnviroNode 100", 0.40), ("EnviroNode 200", 0.35), ("TerraSense X1", 0.25))
MANUFACTURERS: Final = (
    ("Acme Instruments", 0.40),
    ("Nordlys Sensing", 0.35),
    ("Kestrel Labs", 0.25),
)


def _stable_key(text: str) -> int:
    """A 64-bit key for ``text``, the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# -- identity -------------------------------------------------------------------------------------
@attrs.frozen
class SensorInfo:
    """One simulated sensor's identity, as carried on its readings, and its generation settings."""

    sensor_id: str
    city: str
    country: str
    latitude: float
    longitude: float
    firmware_version: str
    model: str
    manufacturer: str
    phase_ms: int  # offset of its readings within one period
    anomaly_probability: float  # chance per reading that an event starts (multipliers applied)


def _pick(rng: np.random.Generator, choices: Sequence[tuple[str, float]]) -> str:
    weights = np.array([w for _, w in choices])
    index = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))
    return choices[min(index, len(choices) - 1)][0]


class _Event:
    """One anomaly event of one sensor: ``length`` readings from absolute reading ``begin``."""

    __slots__ = ("amplitude", "begin", "code", "factor", "length", "metric", "onset", "period")

    def __init__(
        self,
        code: int,
        begin: int,
        length: int,
        metric: int,
        factor: float,
        amplitude: float,
        period: float,
        onset: np.ndarray | None,
    ) -> None:
        self.code = code
        self.begin = begin
        self.length = length
        self.metric = metric
        self.factor = factor
        self.amplitude = amplitude
        self.period = period
        self.onset = onset


class _Segment:
    """The part ``[lo, hi)`` (absolute readings) of one event that falls in one block; for a noise
    event, where the block's random stream stands for its next noise value (reading ``noise_at``).
    """

    __slots__ = ("event", "hi", "lo", "noise_at", "noise_state")

    def __init__(self, event: _Event, lo: int, hi: int, noise_state: int) -> None:
        self.event = event
        self.lo = lo
        self.hi = hi
        self.noise_state = noise_state
        self.noise_at = lo


class _Plan:
    """What reading the rest of one block takes, without its values: the block's random stream
    (its PCG64 increment, and the state at which each metric's row of normal draws reaches reading
    ``at``) and the event segments in the block. A few hundred bytes instead of the block's 160 KB.
    """

    __slots__ = ("at", "block", "cache", "inc", "rows", "segments")

    def __init__(self, block: int, inc: int, rows: list[int], at: int) -> None:
        self.block = block
        self.inc = inc
        self.rows = rows
        self.at = at
        self.segments: list[_Segment] = []
        self.cache: np.ndarray | None = None  # the block's draws (5 × B), for a cached sensor


class _SensorState:
    """Where one sensor's generation stands: the next reading to return, the plan of the last block
    made, and what carries into the next block (an event still running, the first reading free for
    a new one)."""

    __slots__ = ("busy_until", "carry", "next_block", "next_index", "plan")

    def __init__(self) -> None:
        self.next_index = 0  # next reading (absolute index) read() returns
        self.next_block = 0  # next block to plan
        self.plan: _Plan | None = None  # of block ``next_block - 1``
        self.busy_until = 0  # first reading at which a new event may begin
        self.carry: _Event | None = None  # event running past the end of the last block made


def _empty_batch() -> Batch:
    dtypes = {
        Kind.TIMESTAMP: np.int64,
        Kind.FLOAT: np.float64,
        Kind.BOOL: np.bool_,
        Kind.STR: object,
    }
    return Batch(
        columns={
            name: read_only(np.empty(0, dtype=dtypes.get(kind, np.int64)))
            for name, kind in CORE_FIELDS.items()
        }
    )


# -- the fleet ------------------------------------------------------------------------------------
@attrs.define(eq=False, kw_only=True)
class SimulatedFleet:
    """A deterministic fleet of simulated sensors in real cities (five metrics, labelled anomalies).

    Readings are a pure function of the configuration: the same keys give the same batches, however
    sensor time is cut into ``read`` calls. Numbers may also be given as text (e.g. from
    ``${VAR}`` expansion).

    Keys:

    * ``cities`` (default ``3``): a count, taking the first N of the bundled city list (London,
      New York, Tokyo, Sydney, São Paulo, …), or a list of city names, matched ignoring case and
      accents (``["london", "Sao Paulo"]``). An unknown name is an error listing close matches.
    * ``sensors_per_city`` (default ``4``): sensors in each city, ids ``<city-slug>-001``, ….
    * ``seed`` (default ``0``): a non-negative integer; every random draw derives from it.
    * ``start`` (default ``"2026-01-01T00:00:00Z"``): when sensor time begins, as epoch
      milliseconds or ISO-8601 text with ``Z`` or an offset. No reading is earlier; each sensor's
      first reading comes within one period after it, at the sensor's own phase offset.
    * ``rate_hz`` (default ``1.0``): readings per second per sensor, > 0 and ≤ 1000. Reading ``k``
      of a sensor is at ``start + phase + floor(k · period)`` with the period in whole
      microseconds, so ``(sensor_id, timestamp)`` is unique.
    * ``metrics``: a table per metric (``temperature`` °C, ``humidity`` %, ``pressure`` hPa,
      ``vibration`` mm/s, ``voltage`` V) with any of ``mean``, ``std``, ``min``, ``max``,
      ``daily_amplitude``, overriding the defaults (temperature 20 ± 2 in [-40, 60], amplitude 5;
      humidity 55 ± 5 in [0, 100], amplitude -8; pressure 1013 ± 2 in [950, 1060], amplitude 1;
      vibration 2 ± 0.2 in [0, 50], amplitude 0.5; voltage 12 ± 0.05 in [10, 14], amplitude 0.1).
      A normal reading is ``mean + offset + daily_amplitude · cos(2π (h − 15) / 24) + std · z``,
      clipped to ``[min, max]``: ``h`` is local solar time (UTC hour + longitude / 15), so the
      cycle peaks mid-afternoon; ``offset`` is a fixed calibration error per sensor and metric,
      drawn from ``N(0, 0.2·std)``; ``z`` is standard Gaussian noise.
    * ``anomalies``: a table with

      - ``probability`` (default ``0.002``): chance per reading that an anomaly event starts,
        before multipliers (≈ 3 % of rows anomalous at 0.2 readings/s, ≈ 12 % at 1/s). ``0``
        turns anomalies off.
      - ``weights``: relative frequency per type (defaults spike 0.3, dip 0.15, drift 0.1,
        pattern 0.1, stuck 0.1, dropout 0.1, noise 0.15).
      - ``durations``: per type, seconds or text such as ``"5m"`` (defaults spike and dip 0,
        drift ``5m``, pattern ``2m``, stuck ``1m``, dropout ``30s``, noise ``1m``). An event lasts
        ``max(1, round(duration · rate_hz))`` readings, so 0 means one reading.
      - ``firmware_multipliers``: probability factor per firmware version (defaults ``1.3.9``
        ×1.5, ``1.4.2`` ×1, ``1.5.0`` ×0.8, ``2.0.0-beta`` ×2.5).
      - ``manufacturer_multipliers``: probability factor per manufacturer (defaults
        ``Acme Instruments`` ×1, ``Nordlys Sensing`` ×0.7, ``Kestrel Labs`` ×1.4).
      - ``model_weights``: per model, per-type weight factors (defaults ``EnviroNode 100``
        dropout ×2, stuck ×1.5; ``EnviroNode 200`` none; ``TerraSense X1`` noise ×1.5, drift ×2,
        dropout ×0.5).

      A sensor's event probability is ``probability × firmware × manufacturer`` (at most 1); the
      type is drawn by ``weights × model factors``. Entries not given keep their defaults.
    * ``memory_limit`` (default: this machine's memory, lowered by a cgroup limit or
      ``ulimit -v``): a size (``"2GiB"``). A fleet that could not fit (8 KiB per sensor and one
      second of its readings, at least one per sensor, at 256 bytes each) is refused before it is
      built, with an error naming ``cities``, ``sensors_per_city``, ``rate_hz`` and
      ``memory_limit`` and saying what would fit. Memory is the batch a read returns plus a few
      hundred bytes per sensor; whole blocks of draws are kept for the first sensors only, in
      at most 64 MiB (and the room ``memory_limit`` leaves).

    Identity: each sensor has a ``sensor_id`` unique in the fleet, its ``city``, a position within
    a few kilometres of the city centre (``N(0, 0.02°)`` jitter), and a ``firmware_version``,
    ``model`` and ``manufacturer`` drawn by weight (firmware 1.3.9 15 %, 1.4.2 40 %, 1.5.0 35 %,
    2.0.0-beta 10 %; models EnviroNode 100 40 %, EnviroNode 200 35 %, TerraSense X1 25 %;
    manufacturers Acme Instruments 40 %, Nordlys Sensing 35 %, Kestrel Labs 25 %). It depends only
    on the seed and the sensor id. See :attr:`sensors`.

    Anomalies (``σ*`` is a metric's spread ``sqrt(std² + amplitude²/2)``; ``f`` uniform in
    [1.5, 3]). Every row of an event is labelled; events of one sensor never overlap and are
    separated by at least one normal reading. Spike, dip, drift, pattern and noise change one
    metric, chosen uniformly per event (which one is not recorded); stuck and dropout affect all
    five. Anomalous values are not clipped, so they may leave ``[min, max]``.

    - ``spike``: the value rises by ``max((f − 1)·|value|, 3f·σ*)`` (×f for values far from 0);
    - ``dip``: the value falls by ``max((1 − 1/f)·|value|, 3f·σ*)`` (÷f for values far from 0);
    - ``drift``: an offset of random sign growing linearly to 6–10 σ* over the event;
    - ``pattern``: a sinusoid of 4–8 σ* added, with 2–6 periods in the event;
    - ``stuck``: all five metrics frozen at their values of the event's first reading;
    - ``dropout``: all five metrics missing (NaN);
    - ``noise``: extra Gaussian noise with standard deviation 3–6 σ*.

    Attributes besides the keys: :attr:`start` (epoch ms, where sensor time begins) and
    :attr:`sensors` (a tuple of :class:`SensorInfo`, in fleet order: city by city).
    """

    cities: tuple[City, ...] = attrs.field(default=3, converter=parse_cities)
    sensors_per_city: int = attrs.field(default=4, converter=parse_sensors_per_city)
    seed: int = attrs.field(default=0, converter=parse_seed)
    start: int = attrs.field(default=DEFAULT_START, converter=parse_start)  # type: ignore[assignment]
    rate_hz: float = attrs.field(default=1.0, converter=parse_rate)
    metrics: dict[str, MetricSpec] = attrs.field(default=None, converter=parse_metrics)
    anomalies: AnomalyConfig = attrs.field(default=None, converter=parse_anomalies)
    memory_limit: int | None = attrs.field(default=None, converter=parse_memory_limit)

    sensors: tuple[SensorInfo, ...] = attrs.field(init=False, repr=False)
    _period_us: int = attrs.field(init=False, repr=False)
    _keys: list[int] = attrs.field(init=False, repr=False)
    _states: list[_SensorState] = attrs.field(init=False, repr=False)
    _scratch: np.random.Generator = attrs.field(init=False, repr=False)  # draws from a plan
    _cached: int = attrs.field(init=False, repr=False)  # sensors (by index) whose blocks are kept
    _phases: np.ndarray = attrs.field(init=False, repr=False)  # phase_ms per sensor
    _longitudes: np.ndarray = attrs.field(init=False, repr=False)
    _rank: np.ndarray = attrs.field(init=False, repr=False)  # fleet order → sorted-id order
    _by_rank: np.ndarray = attrs.field(init=False, repr=False)  # sorted-id order → fleet order
    _columns: dict[str, np.ndarray] = attrs.field(init=False, repr=False)  # per-sensor, by rank
    _offsets: np.ndarray = attrs.field(init=False, repr=False)  # (sensors, 5)
    _type_cum: np.ndarray = attrs.field(init=False, repr=False)  # (sensors, 7) cumulative weights
    _lengths: np.ndarray = attrs.field(init=False, repr=False)  # readings per event, by code
    _mean: np.ndarray = attrs.field(init=False, repr=False)
    _std: np.ndarray = attrs.field(init=False, repr=False)
    _amp: np.ndarray = attrs.field(init=False, repr=False)
    _lo: np.ndarray = attrs.field(init=False, repr=False)
    _hi: np.ndarray = attrs.field(init=False, repr=False)
    _spread: np.ndarray = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        room = check_memory(
            len(self.cities), self.sensors_per_city, self.rate_hz, self.memory_limit
        )
        self._cached = (_CACHE_BYTES if room is None else min(_CACHE_BYTES, room)) // _BLOCK_BYTES
        self._period_us = round(1e6 / self.rate_hz)
        self._scratch = np.random.Generator(np.random.PCG64(0))
        specs = [self.metrics[m] for m in METRICS]
        self._mean = np.array([s.mean for s in specs])
        self._std = np.array([s.std for s in specs])
        self._amp = np.array([s.daily_amplitude for s in specs])
        self._lo = np.array([s.min for s in specs])
        self._hi = np.array([s.max for s in specs])
        self._spread = np.array([s.spread for s in specs])
        anomalies = self.anomalies
        self._lengths = np.array(
            [0] + [max(1, round(anomalies.durations[t] * self.rate_hz)) for t in ANOMALY_TYPES],
            dtype=np.int64,
        )
        width = max(3, len(str(self.sensors_per_city)))
        sensors: list[SensorInfo] = []
        keys: list[int] = []
        offsets: list[np.ndarray] = []
        type_cum: list[np.ndarray] = []
        base_weights = np.array([anomalies.weights[t] for t in ANOMALY_TYPES])
        for city in self.cities:
            for number in range(1, self.sensors_per_city + 1):
                sensor_id = f"{city.slug}-{number:0{width}d}"
                key = _stable_key(sensor_id)
                rng = np.random.default_rng([self.seed, 1, key])
                firmware = _pick(rng, FIRMWARE_VERSIONS)
                model = _pick(rng, MODELS)
                manufacturer = _pick(rng, MANUFACTURERS)
                jitter = rng.normal(0.0, _GPS_JITTER_DEG, 2)
                phase_ms = int(rng.random() * self._period_us) // 1000
                offsets.append(rng.normal(0.0, 1.0, len(METRICS)) * _OFFSET_FRACTION * self._std)
                probability = min(
                    1.0,
                    anomalies.probability
                    * anomalies.firmware_multipliers[firmware]
                    * anomalies.manufacturer_multipliers[manufacturer],
                )
                model_factor = np.array([anomalies.model_weights[model][t] for t in ANOMALY_TYPES])
                weights = base_weights * model_factor
                if not weights.sum() > 0:
                    probability = 0.0
                type_cum.append(np.cumsum(weights))
                keys.append(key)
                sensors.append(
                    SensorInfo(
                        sensor_id=sensor_id,
                        city=city.name,
                        country=city.country,
                        latitude=round(city.latitude + float(jitter[0]), 6),
                        longitude=round(city.longitude + float(jitter[1]), 6),
                        firmware_version=firmware,
                        model=model,
                        manufacturer=manufacturer,
                        phase_ms=phase_ms,
                        anomaly_probability=probability,
                    )
                )
        self.sensors = tuple(sensors)
        self._keys = keys
        self._offsets = np.array(offsets)
        self._type_cum = np.array(type_cum)
        self._states = [_SensorState() for _ in sensors]
        self._phases = np.array([s.phase_ms for s in sensors], dtype=np.int64)
        self._longitudes = np.array([s.longitude for s in sensors], dtype=np.float64)
        ids = [s.sensor_id for s in sensors]
        self._by_rank = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.intp)
        self._rank = np.empty_like(self._by_rank)
        self._rank[self._by_rank] = np.arange(len(ids))
        ordered = [sensors[i] for i in self._by_rank]

        def obj(values: list[str]) -> np.ndarray:
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out

        self._columns = {
            "sensor_id": obj([s.sensor_id for s in ordered]),
            "city": obj([s.city for s in ordered]),
            "latitude": np.array([s.latitude for s in ordered], dtype=np.float64),
            "longitude": np.array([s.longitude for s in ordered], dtype=np.float64),
            "firmware_version": obj([s.firmware_version for s in ordered]),
            "model": obj([s.model for s in ordered]),
            "manufacturer": obj([s.manufacturer for s in ordered]),
        }

    # -- time ---------------------------------------------------------------------------------
    def _count_before(self, index: int, until: int) -> int:
        """How many readings of sensor ``index`` have a timestamp < ``until``."""
        elapsed = until - self.start - self.sensors[index].phase_ms
        if elapsed <= 0:
            return 0
        # reading k is at start + phase + (k·p) // 1000, which is < until iff k·p < 1000·elapsed
        return (elapsed * 1000 + self._period_us - 1) // self._period_us

    def _timestamps(self, index: int, first: int, stop: int) -> np.ndarray:
        k = np.arange(first, stop, dtype=np.int64)
        return self.start + self.sensors[index].phase_ms + (k * self._period_us) // 1000

    # -- generation ---------------------------------------------------------------------------
    # Block ``b`` of a sensor (readings b·B … b·B + B − 1, B = _BLOCK) is defined by one random
    # stream drawn in a fixed order: B standard normal draws per metric row, then the event
    # candidates and their parameters, then the noise of the block's noise events, in event order.
    # A block is planned once, in order (an event may run on into the next block, and a new one
    # may only begin once the previous one is over): its draws are made whole, and only its plan is
    # kept (the stream's state where each row's draws stand, and the events). A read takes the
    # draws it needs from the plan's states, turns them into values for all its sensors at once
    # (element by element, so any cut of time gives the same numbers) and lays the events over
    # them. Memory is a few hundred bytes per sensor, not the block's 160 KB.

    def _transform(self, z: np.ndarray, ts: np.ndarray, lon: Any, base: np.ndarray) -> None:
        """Turn standard normal draws ``z`` (5 × n) into normal values, in place: the readings are
        at ``ts``, their sensors at longitude ``lon`` and their metrics centred on ``base``
        (5 × n or 5 × 1: mean + the sensor's offset)."""
        hours = (ts % _MS_PER_DAY) * (1.0 / _MS_PER_HOUR) + lon / 15.0
        cycle = np.cos((hours - _PEAK_HOUR) * (2.0 * math.pi / 24.0))
        z *= self._std[:, None]
        z += base
        z += self._amp[:, None] * cycle
        np.clip(z, self._lo[:, None], self._hi[:, None], out=z)

    def _plan(self, index: int, block: int, keep: int) -> np.ndarray:
        """Plan block ``block`` of sensor ``index`` and return its standard normal draws (5 × B).
        The plan keeps the rows' draws standing at column ``keep`` (the first a later read may
        need) and every event segment in the block."""
        state = self._states[index]
        info = self.sensors[index]
        rng = np.random.default_rng([self.seed, 2, self._keys[index], block])
        bits = rng.bit_generator
        first = block * _BLOCK
        z = np.empty((len(METRICS), _BLOCK))
        rows: list[int] = []
        if index < self._cached:
            rng.standard_normal(out=z)
        else:
            for m in range(len(METRICS)):  # the same draws as one standard_normal((5, B))
                rng.standard_normal(out=z[m, :keep])
                rows.append(bits.state["state"]["state"])
                rng.standard_normal(out=z[m, keep:])
        plan = _Plan(block, bits.state["state"]["inc"], rows, keep)
        if index < self._cached:
            plan.cache = z

        # candidate event starts, then the events that may begin (no overlap, one normal reading
        # between events); parameters are drawn for every candidate so the stream stays fixed
        candidates = np.flatnonzero(rng.random(_BLOCK) < info.anomaly_probability)
        n = len(candidates)
        cum = self._type_cum[index]
        types = np.searchsorted(cum, rng.random(n) * cum[-1], side="right") + 1
        metric = rng.integers(0, len(METRICS), n)
        factor = rng.uniform(1.5, 3.0, n)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        scale = rng.random(n)
        cycles = rng.uniform(2.0, 6.0, n)

        events: list[_Event] = [] if state.carry is None else [state.carry]
        busy = state.busy_until
        for c in range(n):
            begin = first + int(candidates[c])
            if begin < busy:
                continue
            code = int(min(types[c], len(ANOMALY_TYPES)))
            length = int(self._lengths[code])
            m = int(metric[c])
            amplitude = 0.0
            period = 0.0
            onset = None
            if code == _DRIFT:
                amplitude = sign[c] * (6.0 + 4.0 * scale[c]) * self._spread[m]
            elif code == _PATTERN:
                amplitude = (4.0 + 4.0 * scale[c]) * self._spread[m]
                period = max(length / cycles[c], min(4.0, length / 1.5))
            elif code == _NOISE:
                amplitude = (3.0 + 3.0 * scale[c]) * self._spread[m]
            elif code == _STUCK:  # the normal values of the event's first reading
                column = begin - first
                onset = z[:, column : column + 1].copy()
                base = (self._mean + self._offsets[index])[:, None]
                self._transform(
                    onset, self._timestamps(index, begin, begin + 1), info.longitude, base
                )
                onset = onset[:, 0]
            events.append(
                _Event(code, begin, length, m, float(factor[c]), amplitude, period, onset)
            )
            busy = begin + length + 1
        state.busy_until = busy

        stop = first + _BLOCK
        state.carry = None
        for event in events:
            lo = max(event.begin, first)
            hi = min(event.begin + event.length, stop)
            at = 0
            if event.code == _NOISE:  # its draws come from the block's stream, after the rest
                at = bits.state["state"]["state"]
                rng.standard_normal(hi - lo)
            plan.segments.append(_Segment(event, lo, hi, at))
            if event.begin + event.length > stop:
                state.carry = event
        state.plan = plan
        state.next_block = block + 1
        return z

    def _draw(self, inc: int, at: int, skip: int, out: np.ndarray) -> int:
        """Fill ``out`` with standard normal draws from a block's stream (PCG64 increment ``inc``)
        standing at state ``at``, after passing ``skip`` draws; return the state after them."""
        bits = self._scratch.bit_generator
        bits.state = {
            "bit_generator": "PCG64",
            "state": {"state": at, "inc": inc},
            "has_uint32": 0,
            "uinteger": 0,
        }
        if skip:
            self._scratch.standard_normal(skip)
        self._scratch.standard_normal(out=out)
        state: int = bits.state["state"]["state"]
        return state

    def _fill(self, index: int, block: int, lo: int, hi: int, out: np.ndarray) -> _Plan:
        """Write the standard normal draws of readings ``[lo, hi)`` of sensor ``index``, all in
        block ``block``, into ``out`` (5 × n); return the block's plan."""
        state = self._states[index]
        first = block * _BLOCK
        plan = state.plan
        if plan is None or plan.block != block:
            # reads only move forward, so ``block`` is the planned one or one not yet planned
            assert block >= state.next_block
            while state.next_block < block:  # blocks passed by a seek still shape the events
                self._plan(index, state.next_block, _BLOCK)
            out[:] = self._plan(index, block, hi - first)[:, lo - first : hi - first]
            plan = state.plan
            assert plan is not None
            return plan
        skip = lo - (first + plan.at)
        assert skip >= 0, "reads only move forward"
        if plan.cache is not None:
            out[:] = plan.cache[:, lo - first : hi - first]
            plan.at = hi - first
            return plan
        for m in range(len(METRICS)):
            plan.rows[m] = self._draw(plan.inc, plan.rows[m], skip, out[m])
        plan.at = hi - first
        return plan

    def _overlay(
        self, plan: _Plan, values: np.ndarray, codes: np.ndarray, lo: int, hi: int
    ) -> None:
        """Lay the events of ``plan`` over readings ``[lo, hi)`` (``values`` 5 × n, ``codes``),
        in the order the block's stream draws them; forget the events that end by ``hi``.

        The segments are in time order and never overlap, so they end in time order too."""
        done = 0
        for segment in plan.segments:
            if segment.lo >= hi:
                break
            if segment.hi <= hi:
                done += 1
            a, b = max(lo, segment.lo), min(hi, segment.hi)
            if a >= b:
                continue
            event = segment.event
            rows = slice(a - lo, b - lo)
            codes[rows] = event.code
            m = event.metric
            code = event.code
            if code == _DROPOUT:
                values[:, rows] = np.nan
            elif code == _STUCK:
                assert event.onset is not None
                values[:, rows] = event.onset[:, None]
            elif code in (_SPIKE, _DIP):
                v = values[m, rows]
                f = event.factor
                if code == _SPIKE:
                    values[m, rows] = v + np.maximum(
                        (f - 1.0) * np.abs(v), 3.0 * f * self._spread[m]
                    )
                else:
                    values[m, rows] = v - np.maximum(
                        (1.0 - 1.0 / f) * np.abs(v), 3.0 * f * self._spread[m]
                    )
            elif code == _NOISE:
                noise = np.empty(b - a)
                segment.noise_state = self._draw(
                    plan.inc, segment.noise_state, a - segment.noise_at, noise
                )
                segment.noise_at = b
                values[m, rows] += event.amplitude * noise
            else:
                j = np.arange(a - event.begin, b - event.begin, dtype=np.float64)
                if code == _DRIFT:
                    values[m, rows] += event.amplitude * (j + 1.0) / event.length
                else:  # pattern
                    values[m, rows] += event.amplitude * np.cos(2.0 * math.pi * j / event.period)
        del plan.segments[:done]

    # -- reading ------------------------------------------------------------------------------
    def seek(self, until: int) -> None:
        """Count readings with ``timestamp < until`` as already returned, so a restarted collector
        resumes after what its store holds. What later reads return is unchanged by seeking."""
        if isinstance(until, bool) or not isinstance(until, int | np.integer):
            raise TypeError(f"until must be epoch milliseconds (int), got {until!r}")
        for index, state in enumerate(self._states):
            state.next_index = max(state.next_index, self._count_before(index, int(until)))

    def read(self, until: int) -> Batch:
        """Readings with ``timestamp < until`` (epoch ms UTC) not returned before, ordered by
        timestamp then ``sensor_id``. An empty batch (with every column) when there are none."""
        if isinstance(until, bool) or not isinstance(until, int | np.integer):
            raise TypeError(f"until must be epoch milliseconds (int), got {until!r}")
        until = int(until)
        spans: list[tuple[int, int, int, int]] = []  # (rank, index, first, stop), in rank order
        total = 0
        for rank, index in enumerate(self._by_rank.tolist()):
            first, stop = self._states[index].next_index, self._count_before(index, until)
            if stop > first:
                spans.append((rank, index, first, stop))
                total += stop - first
        if not spans:
            return _empty_batch()
        ranks, indices, firsts, stops = (
            np.array(c, dtype=np.int64) for c in zip(*spans, strict=True)
        )
        counts = stops - firsts
        values = np.empty((len(METRICS), total))
        codes = np.zeros(total, dtype=np.int8)
        overlays: list[tuple[_Plan, int, int, int]] = []
        at = 0
        for _, index, first, stop in spans:
            for block in range(first // _BLOCK, (stop - 1) // _BLOCK + 1):
                lo = max(first, block * _BLOCK)
                hi = min(stop, block * _BLOCK + _BLOCK)
                out = values[:, at : at + hi - lo]
                plan = self._fill(index, block, lo, hi, out)
                if plan.segments and plan.segments[0].lo < hi:
                    overlays.append((plan, lo, hi, at))
                at += hi - lo
            self._states[index].next_index = stop
        # timestamps and normal values of every row at once; then the events, sensor by sensor
        k = np.arange(total, dtype=np.int64) - np.repeat(
            np.cumsum(counts) - counts - firsts, counts
        )
        ts = self.start + np.repeat(self._phases[indices], counts) + (k * self._period_us) // 1000
        base = np.repeat((self._mean + self._offsets[indices]).T, counts, axis=1)
        self._transform(values, ts, np.repeat(self._longitudes[indices], counts), base)
        for plan, lo, hi, at in overlays:
            n = hi - lo
            self._overlay(plan, values[:, at : at + n], codes[at : at + n], lo, hi)
        row_ranks = np.repeat(ranks, counts)
        if len(spans) > 1:
            # rows are in sensor_id order, each sensor's by time: a stable sort gives time, then id
            order = np.argsort(ts, kind="stable")
            ts, row_ranks, codes = ts[order], row_ranks[order], codes[order]
            values = values[:, order]
        columns: dict[str, np.ndarray] = {"timestamp": ts}
        columns["sensor_id"] = self._columns["sensor_id"][row_ranks]
        columns["city"] = self._columns["city"][row_ranks]
        for i, name in enumerate(METRICS):
            columns[name] = values[i]
        for name in ("latitude", "longitude", "firmware_version", "model", "manufacturer"):
            columns[name] = self._columns[name][row_ranks]
        columns["anomaly_flag"] = codes != 0
        columns["anomaly_type"] = _TYPE_NAMES[codes]
        # the metric columns view ``values``, built here and dropped: no copy needed
        return Batch(columns={name: read_only(columns[name], private=True) for name in CORE_FIELDS})


@hookimpl
def register_sensors(register: Register) -> None:
    register("simulated", SimulatedFleet)
