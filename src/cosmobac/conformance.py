"""The conformance kit: checks that a component keeps the contract of :mod:`cosmobac.interfaces`.

Public through :mod:`cosmobac.testing` (``check_store``, ``check_sink``, ``check_sensor``,
``check_transform``, ``sample_readings``), so a downstream plugin runs in its own test suite the
checks cosmobac's stores and sinks pass. Each ``check_*`` takes a factory (no arguments, a new
component each call), builds a fresh component for each group of checks, closes what it built, and
raises ``AssertionError`` naming the component and the broken guarantee. It returns the names of
the checks it ran: the optional ones run only for the capabilities ``isinstance`` finds.

The checks run in well under a second for an in-memory or SQLite store; a sink talking to a server
costs a few writes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import random
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .batch import Batch
from .documents import document_id
from .interfaces import (
    Closeable,
    ConsumerAdminStore,
    DeadLetterStore,
    FileStore,
    FixedStartSensor,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    ScannableStore,
    SeekableSensor,
    Sensor,
    Sink,
    StatefulStore,
    StatefulTransform,
    Store,
    StoreStats,
    Transform,
    WriteResult,
    missing_members,
)
from .schema import STORE_SEQ

__all__ = ["check_sensor", "check_sink", "check_store", "check_transform", "sample_readings"]

SAMPLE_START = 1_700_000_000_000
"""Where :func:`sample_readings` begins (2023-11-14, epoch ms): old enough for any retention."""

_ALL = 1_000_000  # a read limit above anything the checks store

Key = tuple[str, int]
ReadBack = Callable[[Any], Iterable[Mapping[str, Any]]]


def sample_readings(
    rows: int = 12, *, start: int = SAMPLE_START, sensors: int = 3, offset: int = 0
) -> Batch:
    """``rows`` readings the checks use: ``sensors`` sensors in two cities, one reading a second
    each from ``start`` (the ``offset`` -th reading first), the five metrics (one temperature and one
    humidity missing: NaN), and two extra columns, ``score`` (float) and ``tag`` (text)."""
    index = np.arange(offset, offset + rows)
    sensor = index % sensors
    step = index // sensors
    temperature = 20.0 + 0.5 * step + sensor
    humidity = 40.0 + np.sin(index)
    if rows > 1:
        temperature[1] = np.nan
        humidity[rows // 2] = np.nan
    return Batch.from_columns(
        timestamp=start + step * 1000,
        sensor_id=[f"conformance-{s}" for s in sensor],
        city=["Lisbon" if s % 2 else "Porto" for s in sensor],
        temperature=temperature,
        humidity=humidity,
        pressure=1013.0 + np.cos(index),
        vibration=0.01 * (index % 7),
        voltage=np.full(rows, 3.3),
        score=index / 10.0,
        tag=[f"t{i % 4}" for i in index],
    )


# -- plumbing ---------------------------------------------------------------------------------------
class _Checker:
    def __init__(self, kind: str, factory: Callable[[], Any]) -> None:
        self.kind = kind
        self.factory = factory
        plain = isinstance(factory, type | types.FunctionType)
        self.name = factory.__qualname__ if plain else repr(factory)
        self.ran: list[str] = []

    def fail(self, guarantee: str, detail: str) -> AssertionError:
        return AssertionError(f"{self.kind} from {self.name}: {guarantee}: {detail}")

    def expect(self, ok: bool, guarantee: str, detail: str) -> None:
        if not ok:
            raise self.fail(guarantee, detail)

    @contextlib.contextmanager
    def fresh(self, protocol: Any, check: str) -> Iterator[Any]:
        """A new component from the factory, checked to be a ``protocol`` and closed after; a
        failure inside names ``check``. (``protocol`` is a Protocol class, which mypy does not let
        a ``type[T]`` parameter take.)"""
        component = self.factory()
        if not isinstance(component, protocol):
            raise self.fail(
                f"it is a {protocol.__name__}",
                f"{type(component).__name__} lacks {', '.join(missing_members(component, protocol))}",
            )
        try:
            yield component
        except AssertionError:
            raise
        except Exception as exc:
            raise self.fail(check, f"raised {type(exc).__name__}: {exc}") from exc
        finally:
            if isinstance(component, Closeable):
                try:
                    component.close()
                except Exception as exc:
                    raise self.fail(check, f"close raised {type(exc).__name__}: {exc}") from exc
        self.ran.append(check)


def _keys(batch: Batch) -> list[Key]:
    if not len(batch):
        return []
    return list(zip(batch["sensor_id"].tolist(), batch["timestamp"].tolist(), strict=True))


def _seqs(batch: Batch) -> list[int]:
    return batch[STORE_SEQ].tolist() if len(batch) else []


def _same(a: Any, b: Any) -> bool:
    """Values equal, NaN and None counting as the same missing value."""
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, float) or isinstance(b, float):
        return bool(math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12))
    return bool(a == b)


def _same_batches(a: Batch, b: Batch) -> str | None:
    """Why two batches differ, or None when they hold the same columns and values."""
    if set(a.columns) != set(b.columns):
        return f"columns {sorted(a.columns)} vs {sorted(b.columns)}"
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for name in a.columns:
        for i, (x, y) in enumerate(zip(a[name].tolist(), b[name].tolist(), strict=True)):
            if not _same(x, y):
                return f"column {name!r} row {i}: {x!r} vs {y!r}"
    return None


# -- stores ---------------------------------------------------------------------------------------
def check_store(factory: Callable[[], Store], *, seed: int = 0) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Store` contract on stores made by ``factory`` (each
    call a new, empty store), then each optional capability the store has. Returns the names of the
    checks run; raises ``AssertionError`` naming the first broken guarantee.

    A store with retention (:class:`~cosmobac.interfaces.PrunableStore`) is best made with a
    retention of 0, so ``prune`` has rows it may delete: the check is that it deletes none a
    consumer still needs. ``seed`` varies the random sequence of operations compared with a model.
    """
    c = _Checker("store", factory)
    _store_append(c)
    _store_append_atomic(c)
    _store_read(c)
    _store_ack(c)
    _store_state(c)
    _store_dead_letters(c)
    _store_model(c, seed)
    _store_close_twice(c)
    probe = factory()
    try:
        capabilities = [
            (ReadAheadStore, _store_read_after),
            (ResumableStore, _store_last_timestamp),
            (PrunableStore, _store_prune),
            (ScannableStore, _store_scan),
            (ConsumerAdminStore, _store_remove_consumer),
            (FileStore, _store_path),
        ]
        chosen = [check for protocol, check in capabilities if isinstance(probe, protocol)]
    finally:
        probe.close()
    for check in chosen:
        check(c)
    return c.ran


def _store_append(c: _Checker) -> None:
    g = "append stores each (sensor_id, timestamp) once and returns how many rows were new"
    with c.fresh(Store, g) as store:
        first = sample_readings(12)
        added = store.append(first)
        c.expect(added == 12, g, f"12 new rows, append returned {added!r}")
        again = store.append(first)
        c.expect(again == 0, g, f"the same 12 rows again, append returned {again!r}")
        overlap = Batch.concat([first.select(slice(6, 12)), sample_readings(4, offset=12)])
        overlap = Batch.concat([overlap, overlap.select([8])])  # a duplicate inside the batch too
        added = store.append(overlap)
        c.expect(added == 4, g, f"6 stored rows, 4 new and 1 repeated: append returned {added!r}")
        empty = store.append(first.select(slice(0, 0)))
        c.expect(empty == 0, g, f"an empty batch: append returned {empty!r}")
        rows = store.stats().rows
        c.expect(rows == 16, g, f"16 distinct readings appended, stats().rows is {rows}")
        keys = _keys(store.read("c", _ALL))
        expected = _keys(sample_readings(16))
        c.expect(
            sorted(keys) == sorted(expected),
            g,
            f"read returned {len(keys)} rows ({len(set(keys))} distinct) for 16 readings",
        )


def _store_append_atomic(c: _Checker) -> None:
    g = "append is all or nothing: a batch it refuses leaves no row behind"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(3))
        good = sample_readings(4, offset=3)
        broken = good.with_columns(sensor_id=[*good["sensor_id"].tolist()[:-1], None])
        for bad, what in [
            (good.drop("sensor_id"), "a batch without sensor_id"),
            (broken, "a batch whose last row has no sensor_id"),
        ]:
            try:
                store.append(bad)
            except Exception:
                pass
            else:
                raise c.fail(g, f"{what} was accepted; every reading needs a sensor_id")
            rows = store.stats().rows
            c.expect(rows == 3, g, f"after {what} was refused the store holds {rows} rows, not 3")


def _store_read(c: _Checker) -> None:
    g = "read returns the oldest unacknowledged rows first, with seq, at most limit"
    with c.fresh(Store, g) as store:
        first, second = sample_readings(9), sample_readings(6, offset=9)
        store.append(first)
        store.append(second)
        rows = store.read("c", _ALL)
        c.expect(STORE_SEQ in rows.columns, g, f"no {STORE_SEQ!r} column in {rows.columns}")
        c.expect(rows[STORE_SEQ].dtype.kind in "iu", g, f"seq has dtype {rows[STORE_SEQ].dtype}")
        seqs = _seqs(rows)
        c.expect(seqs == sorted(set(seqs)), g, f"seq not strictly increasing: {seqs}")
        c.expect(
            _keys(rows) == _keys(first) + _keys(second),
            g,
            "rows do not come back in the order they were appended",
        )
        head = store.read("c", 4)
        c.expect(_seqs(head) == seqs[:4], g, f"read(limit=4) gave {_seqs(head)}, not {seqs[:4]}")
        again = store.read("c", _ALL)
        c.expect(_seqs(again) == seqs, g, "a second read (nothing acknowledged) differs")
        expected = Batch.concat([first, second])
        for name in expected.columns:
            c.expect(name in rows.columns, g, f"column {name!r} appended but not read back")
            for i, (x, y) in enumerate(
                zip(expected[name].tolist(), rows[name].tolist(), strict=True)
            ):
                c.expect(_same(x, y), g, f"column {name!r} row {i}: stored {x!r}, read {y!r}")


def _store_ack(c: _Checker) -> None:
    g = "ack advances only the acknowledged rows, per consumer"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", _ALL)
        seqs = _seqs(rows)
        store.ack("a", rows.select([1, 3]))  # out of order
        left = _seqs(store.read("a", _ALL))
        want = [s for i, s in enumerate(seqs) if i not in (1, 3)]
        c.expect(left == want, g, f"after acking rows 1 and 3, read gives {left}, not {want}")
        other = _seqs(store.read("b", _ALL))
        c.expect(other == seqs, g, f"consumer b sees {other} after a acked: not independent")
        store.ack("a", rows.select([0, 2]))
        store.ack("a", rows.select([0, 2]))  # again: harmless
        left = _seqs(store.read("a", _ALL))
        c.expect(left == seqs[4:], g, f"after acking rows 0-3 (twice), read gives {left}")
        store.ack("a", rows)
        c.expect(not len(store.read("a", _ALL)), g, "rows remain after acking all of them")
        stats = store.stats()
        c.expect(
            stats.pending.get("a") == 0 and stats.pending.get("b") == 10,
            g,
            f"stats().pending is {dict(stats.pending)}, expected a: 0, b: 10",
        )


def _store_state(c: _Checker) -> None:
    g = "ack takes state= (saved with the checkpoint; load_state returns it on a StatefulStore)"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(4))
        rows = store.read("a", _ALL)
        store.ack("a", rows.select([0]), state={"transform.0.Z": "s1", "other": "x"})
        store.ack("a", rows.select(slice(0, 0)), state={"transform.0.Z": "s2"})  # no rows
        store.ack("a", rows.select([1]))  # no state: the saved one stays
        left = _seqs(store.read("a", _ALL))
        c.expect(left == _seqs(rows)[2:], g, f"acks with state moved the checkpoint to {left}")
        if isinstance(store, StatefulStore):
            saved = dict(store.load_state("a"))
            c.expect(
                saved == {"transform.0.Z": "s2"},
                g,
                f"load_state gives {saved}: the state of the last ack with one replaces the last",
            )
            none = dict(store.load_state("b"))
            c.expect(none == {}, g, f"load_state of a consumer that saved none gives {none}")
            c.ran.append("load_state gives the state of the last ack with one (StatefulStore)")


def _store_dead_letters(c: _Checker) -> None:
    g = "dead-lettered rows do not block the rows behind them"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(6))
        rows = store.read("a", _ALL)
        seqs = _seqs(rows)
        store.dead_letter("a", rows.select([0]), "conformance: bad value")
        left = _seqs(store.read("a", _ALL))
        c.expect(left == seqs[1:], g, f"after dead-lettering the first row, read gives {left}")
        stats = store.stats()
        c.expect(
            stats.dead_letters.get("a") == 1 and stats.pending.get("a") == 5,
            g,
            f"stats: dead_letters {dict(stats.dead_letters)}, pending {dict(stats.pending)}; "
            "expected a: 1 and a: 5",
        )
        store.ack("a", rows.select(slice(1, 6)))
        c.expect(not len(store.read("a", _ALL)), g, "rows remain after acking the others")
        if not isinstance(store, DeadLetterStore):
            return
        g = "dead letters are listed with their reason and can be replayed (DeadLetterStore)"
        letters = store.dead_letters("a")
        c.expect(len(letters) == 1, g, f"dead_letters('a') lists {len(letters)}, not 1")
        letter = letters[0]
        key = (letter.sensor_id, letter.timestamp)
        c.expect(
            letter.seq == seqs[0]
            and letter.consumer == "a"
            and letter.reason == "conformance: bad value"
            and not letter.replayed
            and key == _keys(rows)[0],
            g,
            f"listed {letter!r} (reading {key})",
        )
        c.expect(store.dead_letters("b") == [], g, "consumer b lists a's dead letters")
        c.expect(len(store.dead_letters()) == 1, g, "dead_letters() (all consumers) is not 1")
        replayed = store.replay("a")
        c.expect(replayed == 1, g, f"replay('a') returned {replayed!r}, not 1")
        back = _seqs(store.read("a", _ALL))
        c.expect(back == [seqs[0]], g, f"after replay, read gives {back}, not {[seqs[0]]}")
        c.expect(store.dead_letters("a")[0].replayed, g, "a replayed letter is not replayed=True")
        c.expect(store.replay("a") == 0, g, "replaying again counts the replayed letter again")
        store.ack("a", rows.select([0]))
        c.expect(store.dead_letters("a") == [], g, "an acknowledged replay is still listed")
        c.expect(not len(store.read("a", _ALL)), g, "an acknowledged replay is read again")
        waiting = store.stats().dead_letters.get("a", 0)
        c.expect(waiting == 0, g, f"stats counts {waiting} dead letters after the replay is acked")
        c.ran.append(g)


def _store_model(c: _Checker, seed: int) -> None:
    """Random appends, reads, acks, dead letters and replays, compared after each step with a
    model of what each consumer has pending; stats are checked against it too."""
    g = "reads and stats follow the acks and dead letters (compared with a model)"
    rng = random.Random(seed)
    with c.fresh(Store, g) as store:
        order: list[Key] = []  # stored readings, oldest first
        handled: dict[str, set[Key]] = {"a": set(), "b": set()}  # acked or waiting as dead
        dead: dict[str, set[Key]] = {"a": set(), "b": set()}
        offset = 0
        for step in range(30):
            op = rng.choice(["append", "ack", "ack", "dead", "replay"] if step else ["append"])
            consumer = rng.choice("ab")
            if op == "append":
                count = rng.randint(1, 6)
                fresh = sample_readings(count, offset=offset)
                offset += count
                known = _keys(fresh)
                if order and rng.random() < 0.5:  # some readings already stored
                    repeat = sample_readings(2, offset=rng.randrange(max(1, offset - count)))
                    fresh = Batch.concat([fresh, repeat])
                new = [k for k in known if k not in order]
                added = store.append(fresh)
                c.expect(added == len(new), g, f"step {step}: append returned {added}")
                order.extend(new)
                continue
            rows = store.read(consumer, _ALL)
            if not len(rows):
                continue
            chosen = sorted(rng.sample(range(len(rows)), rng.randint(1, len(rows))))
            part = rows.select(chosen)
            if op == "ack":
                store.ack(consumer, part)
                handled[consumer].update(_keys(part))
                dead[consumer].difference_update(_keys(part))
            elif op == "dead":
                store.dead_letter(consumer, part, f"conformance step {step}")
                handled[consumer].update(_keys(part))
                dead[consumer].update(_keys(part))
            elif isinstance(store, DeadLetterStore) and dead[consumer]:
                store.replay(consumer)
                handled[consumer].difference_update(dead[consumer])
                dead[consumer].clear()  # replayed: pending again until acked
            stats = store.stats()
            for name in "ab":
                got = store.read(name, _ALL)
                want = [k for k in order if k not in handled[name]]
                seqs = _seqs(got)
                c.expect(seqs == sorted(seqs), g, f"step {step} ({op}): {name} read out of order")
                c.expect(
                    sorted(_keys(got)) == sorted(want),
                    g,
                    f"step {step} ({op} by {consumer}): {name} reads {len(got)} rows, "
                    f"the model has {len(want)} pending",
                )
                _check_stats(c, g, stats, name, len(want), step)
            c.expect(stats.rows == len(order), g, f"stats().rows {stats.rows} != {len(order)}")


def _check_stats(
    c: _Checker, g: str, stats: StoreStats, name: str, pending: int, step: int
) -> None:
    if name not in stats.pending:
        return  # not registered yet (e.g. it has read nothing since the store was made)
    c.expect(
        stats.pending[name] == pending,
        g,
        f"step {step}: stats().pending[{name!r}] is {stats.pending[name]}, {pending} are pending",
    )
    age = stats.oldest_pending_age_s.get(name)
    c.expect(
        (age is None) == (pending == 0) and (age is None or age >= 0),
        g,
        f"step {step}: oldest_pending_age_s[{name!r}] is {age!r} with {pending} rows pending",
    )


def _store_close_twice(c: _Checker) -> None:
    g = "close can be called twice"
    with c.fresh(Store, g) as store:
        store.close()  # and again when the check ends


def _store_read_after(c: _Checker) -> None:
    g = "read_after(consumer, limit, after) gives what read would, above seq after (ReadAheadStore)"
    with c.fresh(ReadAheadStore, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", _ALL)
        seqs = _seqs(rows)
        got = _seqs(store.read_after("a", 3, seqs[2]))
        c.expect(got == seqs[3:6], g, f"read_after(limit=3, after={seqs[2]}) gave {got}")
        got = _seqs(store.read_after("a", _ALL, seqs[-1]))
        c.expect(got == [], g, f"read_after past the last row gave {got}")
        store.ack("a", rows.select([3, 4]))
        got = _seqs(store.read_after("a", _ALL, seqs[1]))
        want = [seqs[2], *seqs[5:]]
        c.expect(got == want, g, f"read_after skips acked rows: gave {got}, not {want}")
        left = _seqs(store.read("a", _ALL))
        want = [s for i, s in enumerate(seqs) if i not in (3, 4)]
        c.expect(left == want, g, "read_after leased rows: read no longer returns them")
        # the forwarder calls it from another thread while this one appends
        with cf.ThreadPoolExecutor(1) as pool:
            futures = []
            for i in range(10):
                futures.append(pool.submit(store.read_after, "a", 5, seqs[i % len(seqs)]))
                store.append(sample_readings(3, offset=10 + 3 * i))
            for i, future in enumerate(futures):
                after = seqs[i % len(seqs)]
                got = _seqs(future.result())
                c.expect(
                    got == sorted(got) and all(s > after for s in got) and len(got) <= 5,
                    g,
                    f"read_after from another thread gave {got} for after={after}",
                )


def _store_last_timestamp(c: _Checker) -> None:
    g = "last_timestamp() is the newest stored reading's timestamp (ResumableStore)"
    with c.fresh(ResumableStore, g) as store:
        c.expect(store.last_timestamp() is None, g, "an empty store does not give None")
        late = sample_readings(6, offset=6)
        store.append(late)
        newest = int(late["timestamp"].max())
        got = store.last_timestamp()
        c.expect(got == newest, g, f"gave {got!r}, the newest is {newest}")
        store.append(sample_readings(6))  # older readings, appended later
        got = store.last_timestamp()
        c.expect(got == newest, g, f"gave {got!r} after older rows came in, the newest is {newest}")


def _store_prune(c: _Checker) -> None:
    g = "prune() never removes a row some consumer has not acknowledged (PrunableStore)"
    with c.fresh(PrunableStore, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", _ALL)
        store.read("b", _ALL)
        store.read("c", _ALL)  # registered, has acknowledged nothing
        store.ack("a", rows)
        store.ack("b", rows.select(slice(0, 4)))
        store.dead_letter("b", rows.select([4]), "conformance: kept while waiting")
        removed = store.prune()
        c.expect(removed == 0, g, f"it removed {removed} rows while consumer c had acked none")
        c.expect(len(store.read("c", _ALL)) == 10, g, "consumer c lost rows to prune")
        store.ack("c", rows)
        before = store.stats().rows
        removed = store.prune()
        after = store.stats().rows
        c.expect(
            isinstance(removed, int) and 0 <= removed <= 4,
            g,
            f"it returned {removed!r}; only the 4 rows every consumer acknowledged may go",
        )
        c.expect(before - after == removed, g, f"it returned {removed}, rows went {before}→{after}")
        left = _seqs(store.read("b", _ALL))
        c.expect(left == _seqs(rows)[5:], g, f"consumer b's pending rows became {left}")
        if isinstance(store, DeadLetterStore):
            letters = store.dead_letters("b")
            c.expect(len(letters) == 1, g, "a waiting dead letter was pruned")
            store.replay("b")
            back = _seqs(store.read("b", 1))
            c.expect(back == [_seqs(rows)[4]], g, f"the replayed dead letter reads as {back}")


def _store_scan(c: _Checker) -> None:
    g = "scan() reads every stored row in seq order, registering nothing (ScannableStore)"
    with c.fresh(ScannableStore, g) as store:
        store.append(sample_readings(8))
        everything = store.scan()
        seqs = _seqs(everything)
        c.expect(
            _keys(everything) == _keys(sample_readings(8)) and seqs == sorted(set(seqs)),
            g,
            f"scan of 8 rows gave {len(everything)} rows, seq {seqs}",
        )
        c.expect(dict(store.stats().pending) == {}, g, "scan registered a consumer")
        rows = store.read("a", _ALL)
        store.ack("a", rows.select(slice(0, 3)))
        store.dead_letter("a", rows.select([3]), "conformance")
        c.expect(_seqs(store.scan()) == seqs, g, "scan skips rows a consumer handled")
        got = _seqs(store.scan(after=seqs[2], limit=3))
        c.expect(got == seqs[3:6], g, f"scan(after={seqs[2]}, limit=3) gave {got}")
        got = _seqs(store.scan(limit=2))
        c.expect(got == seqs[:2], g, f"scan(limit=2) gave {got}")


def _store_remove_consumer(c: _Checker) -> None:
    g = "remove_consumer forgets a consumer's checkpoint, dead letters and state (ConsumerAdminStore)"
    with c.fresh(ConsumerAdminStore, g) as store:
        store.append(sample_readings(5))
        rows = store.read("a", _ALL)
        store.read("b", _ALL)
        store.ack("a", rows.select([0, 1]), state={"k": "v"})
        store.dead_letter("a", rows.select([2]), "conformance")
        c.expect(store.remove_consumer("a") is True, g, "removing a known consumer: not True")
        c.expect(store.remove_consumer("a") is False, g, "removing it again: not False")
        c.expect(store.remove_consumer("never") is False, g, "removing an unknown one: not False")
        pending = dict(store.stats().pending)
        c.expect("a" not in pending and "b" in pending, g, f"stats().pending is {pending}")
        if isinstance(store, DeadLetterStore):
            c.expect(store.dead_letters("a") == [], g, "its dead letters are still listed")
        if isinstance(store, StatefulStore):
            c.expect(dict(store.load_state("a")) == {}, g, "its state is still loaded")
        again = _seqs(store.read("a", _ALL))
        c.expect(again == _seqs(rows), g, f"read as the same name again gives {again}")


def _store_path(c: _Checker) -> None:
    g = "path names the store's file (FileStore)"
    with c.fresh(FileStore, g) as store:
        c.expect(isinstance(store.path, str) and bool(store.path), g, f"path is {store.path!r}")


# -- sinks ----------------------------------------------------------------------------------------
def check_sink(
    factory: Callable[[], Sink],
    *,
    read_back: ReadBack | None = None,
    idempotent: bool = True,
) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Sink` contract on sinks made by ``factory``.

    Always: an empty batch is accepted; ``write`` returns ``None`` or a
    :class:`~cosmobac.interfaces.WriteResult` whose positions are rows of the batch given, none
    both retried and rejected, each rejection with a reason; a batch with the store's ``seq``
    column, one without it, and the same batch again are taken; ``close`` can be called twice.

    With ``read_back(sink)`` (what the sink's target now holds, as mappings with the document
    ``id`` — or ``sensor_id`` and an epoch-ms ``timestamp`` — and the columns): every row the sink
    said it wrote is there, values included, and a missing value reads back missing (never 0.0).
    With ``idempotent`` (the default) writing the same batch twice leaves each row once (upserts by
    document id); pass ``idempotent=False`` for an append-only target whose readers deduplicate by
    ``id`` (e.g. JSON lines)."""
    c = _Checker("sink", factory)
    g = "an empty batch is accepted"
    with c.fresh(Sink, g) as sink:
        empty = sample_readings(3).select(slice(0, 0))
        result = sink.write(empty)
        _check_result(c, g, result, 0)
        c.expect(result is None or result.complete, g, f"it answered {result!r}")
    g = "write answers None or a WriteResult with positions in the batch"
    with c.fresh(Sink, g) as sink:
        batch = sample_readings(12)
        batch = batch.with_columns({STORE_SEQ: np.arange(101, 101 + len(batch))})
        written = _write(c, g, sink, batch)
        plain = sample_readings(5, offset=12)  # no seq: what an aggregating transform gives
        written += _write(c, g, sink, plain)
        if read_back is not None:
            _check_read_back(c, sink, read_back, Batch.concat([batch, plain]), written, once=False)
            c.ran.append("read_back holds every row written")
    g = "writing the same batch twice"
    with c.fresh(Sink, g) as sink:
        batch = sample_readings(6, offset=20)
        written = _write(c, g, sink, batch)
        written = sorted(set(written) & set(_write(c, g, sink, batch)))
        if read_back is not None:
            _check_read_back(c, sink, read_back, batch, written, once=idempotent)
            if idempotent:
                c.ran.append("the same batch written twice is held once")
    g = "close can be called twice"
    with c.fresh(Sink, g) as sink:
        sink.close()
    return c.ran


def _write(c: _Checker, g: str, sink: Sink, batch: Batch) -> list[int]:
    """Write ``batch``; the positions the sink says it wrote."""
    result = sink.write(batch)
    _check_result(c, g, result, len(batch))
    if result is None:
        return list(range(len(batch)))
    skipped = set(result.retry) | set(result.rejected)
    return [i for i in range(len(batch)) if i not in skipped]


def _check_result(c: _Checker, g: str, result: object, rows: int) -> None:
    if result is None:
        return
    c.expect(isinstance(result, WriteResult), g, f"write returned {result!r}")
    assert isinstance(result, WriteResult)
    retry, rejected = list(result.retry), dict(result.rejected)
    outside = [p for p in [*retry, *rejected] if not 0 <= p < rows]
    c.expect(not outside, g, f"positions {outside} are outside a batch of {rows} rows")
    c.expect(len(set(retry)) == len(retry), g, f"retry names a row twice: {retry}")
    both = set(retry) & set(rejected)
    c.expect(not both, g, f"rows {sorted(both)} are both to retry and rejected")
    for position, reason in rejected.items():
        c.expect(
            isinstance(reason, str) and bool(reason.strip()),
            g,
            f"row {position} rejected without a reason ({reason!r})",
        )


def _document_key(doc: Mapping[str, Any]) -> str:
    if "id" in doc:
        return str(doc["id"])
    return document_id(str(doc["sensor_id"]), int(doc["timestamp"]))


def _check_read_back(
    c: _Checker,
    sink: Sink,
    read_back: ReadBack,
    batch: Batch,
    written: Sequence[int],
    *,
    once: bool,
) -> None:
    g = "what the sink wrote reads back, values and missing values included"
    docs: dict[str, list[Mapping[str, Any]]] = {}
    for doc in read_back(sink):
        docs.setdefault(_document_key(doc), []).append(doc)
    rows = list(batch.rows())
    for position in written:
        row = rows[position]
        key = document_id(str(row["sensor_id"]), int(row["timestamp"]))
        found = docs.get(key)
        c.expect(bool(found), g, f"row {position} ({key}) was written but does not read back")
        assert found is not None
        if once:
            c.expect(
                len(found) == 1,
                "writing the same batch twice leaves each row once",
                f"{key} reads back {len(found)} times",
            )
        doc = found[-1]
        for name in ("temperature", "humidity", "score", "tag"):
            value = row[name]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            got = doc.get(name)
            if missing:
                c.expect(
                    got is None or (isinstance(got, float) and math.isnan(got)),
                    g,
                    f"{key}: missing {name} reads back as {got!r}, not as missing",
                )
            elif name in doc:
                c.expect(_same(value, got), g, f"{key}: {name} {value!r} reads back as {got!r}")


# -- sensors ----------------------------------------------------------------------------------------
def check_sensor(
    factory: Callable[[], Sensor], *, span_ms: int = 60_000, deterministic: bool = True
) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Sensor` contract on sensors made by ``factory``.

    Reads over ``span_ms`` of sensor time from its ``start`` (a
    :class:`~cosmobac.interfaces.FixedStartSensor`) or from now: rows have ``sensor_id`` and
    ``timestamp``, lie below ``until``, and are never returned twice. With ``deterministic`` (a
    simulation with a seed) two sensors from the factory read the same rows. A
    :class:`~cosmobac.interfaces.SeekableSensor` returns nothing below the point it was sought to,
    and (when deterministic) the same rows from there on as one that was not."""
    c = _Checker("sensor", factory)

    def origin(sensor: Sensor) -> int:
        start = sensor.start if isinstance(sensor, FixedStartSensor) else None
        return int(time.time() * 1000) if start is None else int(start)

    g = "read(until) returns rows below until, each once"
    with c.fresh(Sensor, g) as sensor:
        t0 = origin(sensor)
        parts = []
        for until in (t0 + span_ms // 2, t0 + span_ms, t0 + span_ms):
            batch = sensor.read(until)
            c.expect(isinstance(batch, Batch), g, f"read returned {type(batch).__name__}")
            if len(batch):
                missing = [n for n in ("sensor_id", "timestamp") if n not in batch.columns]
                c.expect(not missing, g, f"rows lack {missing}")
                top = int(batch["timestamp"].max())
                c.expect(top < until, g, f"read({until}) returned a reading at {top}")
            parts.append(batch)
        c.expect(not len(parts[2]), g, f"reading to the same until again gave {len(parts[2])} rows")
        keys = _keys(parts[0]) + _keys(parts[1])
        c.expect(len(keys) == len(set(keys)), g, "a reading was returned twice")
        first = Batch.concat(parts)
    if deterministic:
        g = "two sensors from the factory read the same rows (deterministic)"
        with c.fresh(Sensor, g) as sensor:
            t0 = origin(sensor)
            second = Batch.concat([sensor.read(t0 + span_ms // 2), sensor.read(t0 + span_ms)])
            why = _same_batches(first, second)
            c.expect(why is None, g, f"they differ: {why}")
    probe = factory()
    if isinstance(probe, SeekableSensor):
        g = "seek(until) skips every reading below until (SeekableSensor)"
        with c.fresh(SeekableSensor, g) as sensor:
            t0 = origin(sensor)
            middle = t0 + span_ms // 2
            sensor.seek(middle)
            rest = sensor.read(t0 + span_ms)
            if len(rest):
                low = int(rest["timestamp"].min())
                c.expect(low >= middle, g, f"after seek({middle}) it returned a reading at {low}")
            if deterministic and len(first):
                want = first.select(first["timestamp"] >= middle)
                why = _same_batches(want, rest)
                c.expect(why is None, g, f"rows after seeking differ from an unsought run: {why}")
    if isinstance(probe, Closeable):
        probe.close()
    return c.ran


# -- transforms ---------------------------------------------------------------------------------------
def check_transform(factory: Callable[[], Transform], batch: Batch | None = None) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Transform` contract on transforms made by
    ``factory``, over ``batch`` (default: 240 :func:`sample_readings` with a ``seq`` column).

    A transform returns a :class:`~cosmobac.batch.Batch`, for an empty batch too; the ``seq`` values
    it keeps are rows of its input, each once. A
    :class:`~cosmobac.interfaces.StatefulTransform` gives state as text, and a transform given a
    saved state (a new one, or the same one rolled back) continues exactly as the one that saved
    it: that is what lets the forwarder restart warm and retry a batch."""
    c = _Checker("transform", factory)
    if batch is None:
        batch = sample_readings(240)
        batch = batch.with_columns({STORE_SEQ: np.arange(1, len(batch) + 1)})
    g = "a transform returns a batch whose seq values are rows of its input"
    with c.fresh(Transform, g) as transform:
        for part in (batch, batch.select(slice(0, 0))):
            out = transform(part)
            c.expect(isinstance(out, Batch), g, f"it returned {type(out).__name__}")
            if STORE_SEQ in out.columns and len(out):
                seqs = _seqs(out)
                outside = set(seqs) - set(_seqs(part))
                c.expect(not outside, g, f"seq values {sorted(outside)[:5]} are not in the input")
                c.expect(len(seqs) == len(set(seqs)), g, "a seq value appears twice")
    probe = factory()
    stateful = isinstance(probe, StatefulTransform)
    if isinstance(probe, Closeable):
        probe.close()
    if not stateful:
        return c.ran
    g = "a saved state continues exactly where it was saved (StatefulTransform)"
    half = len(batch) // 2
    head, tail = batch.select(slice(0, half)), batch.select(slice(half, len(batch)))
    with c.fresh(StatefulTransform, g) as first:
        first(head)
        saved = first.get_state()
        c.expect(isinstance(saved, str), g, f"get_state returned {type(saved).__name__}")
        went_on = first(tail)
        first.set_state(saved)
        rolled_back = first(tail)
        why = _same_batches(went_on, rolled_back)
        c.expect(why is None, g, f"rolled back to the saved state, the next batch differs: {why}")
        with c.fresh(StatefulTransform, g) as second:
            second.set_state(saved)
            why = _same_batches(went_on, second(tail))
            c.expect(why is None, g, f"a new transform given the state differs: {why}")
    return c.ran
