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
  own counter-based random stream), so large spans of sensor time are cheap.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final

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
    load_cities,
    parse_anomalies,
    parse_cities,
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


class _SensorState:
    """Where one sensor's generation stands: the next reading to return, the last block made, and
    what carries into the next block (an event still running, the first reading free for a new one).
    """

    __slots__ = ("block", "block_index", "busy_until", "carry", "next_block", "next_index")

    def __init__(self) -> None:
        self.next_index = 0  # next reading (absolute index) read() returns
        self.next_block = 0  # next block to generate
        self.block_index = -1  # index of the block kept in ``block``
        self.block: tuple[np.ndarray, np.ndarray] | None = None  # (values (5, B), codes (B,))
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

    sensors: tuple[SensorInfo, ...] = attrs.field(init=False, repr=False)
    _period_us: int = attrs.field(init=False, repr=False)
    _keys: list[int] = attrs.field(init=False, repr=False)
    _states: list[_SensorState] = attrs.field(init=False, repr=False)
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
        self._period_us = round(1e6 / self.rate_hz)
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
    def _block(self, index: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        state = self._states[index]
        if state.block_index == block and state.block is not None:
            return state.block
        # reads only move forward, so ``block`` is the kept one or one not yet made
        assert block >= state.next_block
        while state.next_block <= block:
            state.block = self._generate(index, state.next_block)
            state.block_index = state.next_block
            state.next_block += 1
        assert state.block is not None
        return state.block

    def _generate(self, index: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Values (5 × B) and anomaly codes (B) of block ``block`` of sensor ``index``.

        Blocks must be made in order: an event may run on from one block into the next, and a new
        event may only begin once the previous one is over."""
        state = self._states[index]
        info = self.sensors[index]
        rng = np.random.default_rng([self.seed, 2, self._keys[index], block])
        first = block * _BLOCK
        ts = self._timestamps(index, first, first + _BLOCK)
        hours = (ts % _MS_PER_DAY) * (1.0 / _MS_PER_HOUR) + info.longitude / 15.0
        cycle = np.cos((hours - _PEAK_HOUR) * (2.0 * math.pi / 24.0))
        values = rng.standard_normal((len(METRICS), _BLOCK))
        values *= self._std[:, None]
        values += (self._mean + self._offsets[index])[:, None]
        values += self._amp[:, None] * cycle
        np.clip(values, self._lo[:, None], self._hi[:, None], out=values)
        codes = np.zeros(_BLOCK, dtype=np.int8)

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
            elif code == _STUCK:
                onset = values[:, begin - first].copy()
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
            rows = slice(lo - first, hi - first)
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
            else:
                j = np.arange(lo - event.begin, hi - event.begin, dtype=np.float64)
                if code == _DRIFT:
                    values[m, rows] += event.amplitude * (j + 1.0) / event.length
                elif code == _PATTERN:
                    values[m, rows] += event.amplitude * np.cos(2.0 * math.pi * j / event.period)
                else:  # noise
                    values[m, rows] += rng.normal(0.0, event.amplitude, hi - lo)
            if event.begin + event.length > stop:
                state.carry = event
        return values, codes

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
        ts_parts: list[np.ndarray] = []
        value_parts: list[np.ndarray] = []
        code_parts: list[np.ndarray] = []
        rank_parts: list[np.ndarray] = []
        for rank, index in enumerate(self._by_rank.tolist()):
            state = self._states[index]
            first, stop = state.next_index, self._count_before(index, until)
            if stop <= first:
                continue
            ts_parts.append(self._timestamps(index, first, stop))
            rank_parts.append(np.full(stop - first, rank, dtype=np.intp))
            for block in range(first // _BLOCK, (stop - 1) // _BLOCK + 1):
                values, codes = self._block(index, block)
                base = block * _BLOCK
                rows = slice(max(first, base) - base, min(stop, base + _BLOCK) - base)
                value_parts.append(values[:, rows])
                code_parts.append(codes[rows])
            state.next_index = stop
        if not ts_parts:
            return _empty_batch()
        ts = np.concatenate(ts_parts)
        ranks = np.concatenate(rank_parts)
        values = np.concatenate(value_parts, axis=1)
        codes = np.concatenate(code_parts)
        if len(ts_parts) > 1:
            # parts are in sensor_id order, each sorted by time: a stable sort gives time, then id
            order = np.argsort(ts, kind="stable")
            ts, ranks, codes = ts[order], ranks[order], codes[order]
            values = values[:, order]
        columns: dict[str, np.ndarray] = {"timestamp": ts}
        columns["sensor_id"] = self._columns["sensor_id"][ranks]
        columns["city"] = self._columns["city"][ranks]
        for i, name in enumerate(METRICS):
            columns[name] = values[i]
        for name in ("latitude", "longitude", "firmware_version", "model", "manufacturer"):
            columns[name] = self._columns[name][ranks]
        columns["anomaly_flag"] = codes != 0
        columns["anomaly_type"] = _TYPE_NAMES[codes]
        # the metric columns view ``values``, built here and dropped: no copy needed
        return Batch(columns={name: read_only(columns[name], private=True) for name in CORE_FIELDS})


@hookimpl
def register_sensors(register: Register) -> None:
    register("simulated", SimulatedFleet)
