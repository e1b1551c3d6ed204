"""The conformance checks for stores: the Store contract and every declared store capability."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import random
from collections.abc import Callable

from ..batch import Batch
from ..interfaces import (
    ConsumerAdminStore,
    DeadLetterStore,
    FileStore,
    InputReject,
    InputStore,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    ScannableStore,
    SensorRangeStore,
    StatefulStore,
    Store,
    StoreStats,
)
from ..schema import STORE_SEQ
from ._common import ALL_ROWS, Checker, Key, keys_of, same_value, sample_readings, seqs_of


# -- stores ---------------------------------------------------------------------------------------
def check_store(factory: Callable[[], Store], *, seed: int = 0) -> list[str]:
    """Check the :class:`~cosmobac.interfaces.Store` contract on stores made by ``factory`` (each
    call a new, empty store), then each optional capability the store has. Returns the names of the
    checks run; raises ``AssertionError`` naming the first broken guarantee.

    A store with retention (:class:`~cosmobac.interfaces.PrunableStore`) is best made with a
    retention of 0, so ``prune`` has rows it may delete: the check is that it deletes none a
    consumer still needs. ``seed`` varies the random sequence of operations compared with a model.
    """
    c = Checker("store", factory)
    _store_append(c)
    _store_append_atomic(c)
    _store_read(c)
    _store_ack(c)
    _store_state(c)
    _store_dead_letters(c)
    _store_model(c, seed)
    _store_backlog_age(c)
    _store_oldest_stored(c)
    _store_close_twice(c)
    probe = factory()
    try:
        capabilities = [
            (ReadAheadStore, _store_read_after),
            (ResumableStore, _store_last_timestamp),
            (PrunableStore, _store_prune),
            (ScannableStore, _store_scan),
            (SensorRangeStore, _store_scan_sensor),
            (ConsumerAdminStore, _store_remove_consumer),
            (InputStore, _store_inputs),
            (FileStore, _store_path),
        ]
        chosen = [check for protocol, check in capabilities if isinstance(probe, protocol)]
    finally:
        probe.close()
    for check in chosen:
        check(c)
    return c.ran


def _store_append(c: Checker) -> None:
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
        keys = keys_of(store.read("c", ALL_ROWS))
        expected = keys_of(sample_readings(16))
        c.expect(
            sorted(keys) == sorted(expected),
            g,
            f"read returned {len(keys)} rows ({len(set(keys))} distinct) for 16 readings",
        )


def _store_append_atomic(c: Checker) -> None:
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


def _store_read(c: Checker) -> None:
    g = "read returns the oldest unacknowledged rows first, with seq, at most limit"
    with c.fresh(Store, g) as store:
        first, second = sample_readings(9), sample_readings(6, offset=9)
        store.append(first)
        store.append(second)
        rows = store.read("c", ALL_ROWS)
        c.expect(STORE_SEQ in rows.columns, g, f"no {STORE_SEQ!r} column in {rows.columns}")
        c.expect(rows[STORE_SEQ].dtype.kind in "iu", g, f"seq has dtype {rows[STORE_SEQ].dtype}")
        seqs = seqs_of(rows)
        c.expect(seqs == sorted(set(seqs)), g, f"seq not strictly increasing: {seqs}")
        c.expect(
            keys_of(rows) == keys_of(first) + keys_of(second),
            g,
            "rows do not come back in the order they were appended",
        )
        head = store.read("c", 4)
        c.expect(
            seqs_of(head) == seqs[:4], g, f"read(limit=4) gave {seqs_of(head)}, not {seqs[:4]}"
        )
        again = store.read("c", ALL_ROWS)
        c.expect(seqs_of(again) == seqs, g, "a second read (nothing acknowledged) differs")
        expected = Batch.concat([first, second])
        for name in expected.columns:
            c.expect(name in rows.columns, g, f"column {name!r} appended but not read back")
            for i, (x, y) in enumerate(
                zip(expected[name].tolist(), rows[name].tolist(), strict=True)
            ):
                c.expect(same_value(x, y), g, f"column {name!r} row {i}: stored {x!r}, read {y!r}")


def _store_ack(c: Checker) -> None:
    g = "ack advances only the acknowledged rows, per consumer"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", ALL_ROWS)
        seqs = seqs_of(rows)
        store.ack("a", rows.select([1, 3]))  # out of order
        left = seqs_of(store.read("a", ALL_ROWS))
        want = [s for i, s in enumerate(seqs) if i not in (1, 3)]
        c.expect(left == want, g, f"after acking rows 1 and 3, read gives {left}, not {want}")
        other = seqs_of(store.read("b", ALL_ROWS))
        c.expect(other == seqs, g, f"consumer b sees {other} after a acked: not independent")
        store.ack("a", rows.select([0, 2]))
        store.ack("a", rows.select([0, 2]))  # again: harmless
        left = seqs_of(store.read("a", ALL_ROWS))
        c.expect(left == seqs[4:], g, f"after acking rows 0-3 (twice), read gives {left}")
        store.ack("a", rows)
        c.expect(not len(store.read("a", ALL_ROWS)), g, "rows remain after acking all of them")
        stats = store.stats()
        c.expect(
            stats.pending.get("a") == 0 and stats.pending.get("b") == 10,
            g,
            f"stats().pending is {dict(stats.pending)}, expected a: 0, b: 10",
        )


def _store_state(c: Checker) -> None:
    g = "ack takes state= (saved with the checkpoint; load_state returns it on a StatefulStore)"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(4))
        rows = store.read("a", ALL_ROWS)
        store.ack("a", rows.select([0]), state={"transform.0.Z": "s1", "other": "x"})
        store.ack("a", rows.select(slice(0, 0)), state={"transform.0.Z": "s2"})  # no rows
        store.ack("a", rows.select([1]))  # no state: the saved one stays
        left = seqs_of(store.read("a", ALL_ROWS))
        c.expect(left == seqs_of(rows)[2:], g, f"acks with state moved the checkpoint to {left}")
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


def _store_dead_letters(c: Checker) -> None:
    g = "dead-lettered rows do not block the rows behind them"
    with c.fresh(Store, g) as store:
        store.append(sample_readings(6))
        rows = store.read("a", ALL_ROWS)
        seqs = seqs_of(rows)
        store.dead_letter("a", rows.select([0]), "conformance: bad value")
        left = seqs_of(store.read("a", ALL_ROWS))
        c.expect(left == seqs[1:], g, f"after dead-lettering the first row, read gives {left}")
        stats = store.stats()
        c.expect(
            stats.dead_letters.get("a") == 1 and stats.pending.get("a") == 5,
            g,
            f"stats: dead_letters {dict(stats.dead_letters)}, pending {dict(stats.pending)}; "
            "expected a: 1 and a: 5",
        )
        store.ack("a", rows.select(slice(1, 6)))
        c.expect(not len(store.read("a", ALL_ROWS)), g, "rows remain after acking the others")
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
            and key == keys_of(rows)[0],
            g,
            f"listed {letter!r} (reading {key})",
        )
        c.expect(store.dead_letters("b") == [], g, "consumer b lists a's dead letters")
        c.expect(len(store.dead_letters()) == 1, g, "dead_letters() (all consumers) is not 1")
        replayed = store.replay("a")
        c.expect(replayed == 1, g, f"replay('a') returned {replayed!r}, not 1")
        back = seqs_of(store.read("a", ALL_ROWS))
        c.expect(back == [seqs[0]], g, f"after replay, read gives {back}, not {[seqs[0]]}")
        c.expect(store.dead_letters("a")[0].replayed, g, "a replayed letter is not replayed=True")
        c.expect(store.replay("a") == 0, g, "replaying again counts the replayed letter again")
        store.ack("a", rows.select([0]))
        c.expect(store.dead_letters("a") == [], g, "an acknowledged replay is still listed")
        c.expect(not len(store.read("a", ALL_ROWS)), g, "an acknowledged replay is read again")
        waiting = store.stats().dead_letters.get("a", 0)
        c.expect(waiting == 0, g, f"stats counts {waiting} dead letters after the replay is acked")
        c.ran.append(g)


def _store_model(c: Checker, seed: int) -> None:
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
                known = keys_of(fresh)
                if order and rng.random() < 0.5:  # some readings already stored
                    repeat = sample_readings(2, offset=rng.randrange(max(1, offset - count)))
                    fresh = Batch.concat([fresh, repeat])
                new = [k for k in known if k not in order]
                added = store.append(fresh)
                c.expect(added == len(new), g, f"step {step}: append returned {added}")
                order.extend(new)
                continue
            rows = store.read(consumer, ALL_ROWS)
            if not len(rows):
                continue
            chosen = sorted(rng.sample(range(len(rows)), rng.randint(1, len(rows))))
            part = rows.select(chosen)
            if op == "ack":
                store.ack(consumer, part)
                handled[consumer].update(keys_of(part))
                dead[consumer].difference_update(keys_of(part))
            elif op == "dead":
                store.dead_letter(consumer, part, f"conformance step {step}")
                handled[consumer].update(keys_of(part))
                dead[consumer].update(keys_of(part))
            elif isinstance(store, DeadLetterStore) and dead[consumer]:
                store.replay(consumer)
                handled[consumer].difference_update(dead[consumer])
                dead[consumer].clear()  # replayed: pending again until acked
            stats = store.stats()
            for name in "ab":
                got = store.read(name, ALL_ROWS)
                want = [k for k in order if k not in handled[name]]
                seqs = seqs_of(got)
                c.expect(seqs == sorted(seqs), g, f"step {step} ({op}): {name} read out of order")
                c.expect(
                    sorted(keys_of(got)) == sorted(want),
                    g,
                    f"step {step} ({op} by {consumer}): {name} reads {len(got)} rows, "
                    f"the model has {len(want)} pending",
                )
                _check_stats(c, g, stats, name, len(want), step)
            c.expect(stats.rows == len(order), g, f"stats().rows {stats.rows} != {len(order)}")


def _check_stats(c: Checker, g: str, stats: StoreStats, name: str, pending: int, step: int) -> None:
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


# a backfill (year 2000) and a sensor whose clock runs ahead (year 2100), in epoch ms
_LONG_AGO = 946_684_800_000
_FAR_AHEAD = 4_102_444_800_000
_JUST_APPENDED_S = 60.0  # generous: slow machines, and stores that round to coarse units


def _store_backlog_age(c: Checker) -> None:
    g = (
        "stats().oldest_pending_age_s is how long the next row has waited in the store, whatever "
        "its reading's timestamp"
    )
    with c.fresh(Store, g) as store:
        for start, what in ((_LONG_AGO, "in the year 2000"), (_FAR_AHEAD, "in the year 2100")):
            store.append(sample_readings(6, start=start))
            head = store.read("a", 1)
            stats = store.stats()
            age = stats.oldest_pending_age_s.get("a")
            c.expect(
                age is not None and 0 <= age < _JUST_APPENDED_S,
                g,
                f"rows appended just now with readings {what}: oldest_pending_age_s['a'] is "
                f"{age!r} (want ≥ 0 and < {_JUST_APPENDED_S:g} s)",
            )
            if "a" in stats.oldest_pending_timestamp:  # optional: a store may not report it
                got = stats.oldest_pending_timestamp["a"]
                want = int(head["timestamp"][0]) / 1000
                c.expect(
                    got is not None and abs(got - want) < 1e-3,
                    g,
                    f"oldest_pending_timestamp['a'] is {got!r}, the next row's reading is at {want}",
                )
            store.ack("a", store.read("a", ALL_ROWS))
            stats = store.stats()
            age = stats.oldest_pending_age_s.get("a")
            c.expect(age is None, g, f"nothing pending: oldest_pending_age_s['a'] is {age!r}")
            got = stats.oldest_pending_timestamp.get("a")
            c.expect(got is None, g, f"nothing pending: oldest_pending_timestamp['a'] is {got!r}")


def _store_oldest_stored(c: Checker) -> None:
    """``oldest_stored_age_s`` / ``oldest_stored_timestamp`` are optional (None: not reported);
    when a store fills them they describe the oldest row still stored, which is the oldest pending
    row of a consumer that has not read the store yet."""
    g = (
        "stats().oldest_stored_age_s is how long the oldest stored row has waited in the store "
        "(None when empty), as a consumer that has not read yet would see it"
    )
    with c.fresh(Store, g) as store:
        stats = store.stats()
        for field in ("oldest_stored_age_s", "oldest_stored_timestamp"):
            got = getattr(stats, field)
            c.expect(got is None, g, f"an empty store: {field} is {got!r}, want None")
        store.append(sample_readings(6, start=_LONG_AGO))
        before = store.stats()  # no consumer has read: every row is pending for any consumer
        age = before.oldest_stored_age_s
        c.expect(
            age is None or 0 <= age < _JUST_APPENDED_S,
            g,
            f"rows appended just now with readings in the year 2000: oldest_stored_age_s is "
            f"{age!r} (want ≥ 0 and < {_JUST_APPENDED_S:g} s, or None if not reported)",
        )
        head = store.read("a", 1)  # "a" registers: its next row is the oldest stored one
        want = int(head["timestamp"][0]) / 1000
        got = before.oldest_stored_timestamp
        c.expect(
            got is None or abs(got - want) < 1e-3,
            g,
            f"oldest_stored_timestamp is {got!r}, the oldest stored row's reading is at {want}",
        )
        stats = store.stats()
        stored, pending = stats.oldest_stored_age_s, stats.oldest_pending_age_s.get("a")
        c.expect(
            stored is None or (pending is not None and abs(stored - pending) < 1.0),
            g,
            f"a consumer that just read its first row has oldest_pending_age_s {pending!r}, "
            f"but oldest_stored_age_s is {stored!r}: they are the same row",
        )
        store.ack("a", store.read("a", ALL_ROWS))
        stats = store.stats()
        reported = before.oldest_stored_age_s is not None
        c.expect(
            not reported or stats.oldest_stored_age_s is not None,
            g,
            "every row acknowledged but still stored: oldest_stored_age_s is None (it is about "
            "the rows stored, not pending for anyone)",
        )


def _store_close_twice(c: Checker) -> None:
    g = "close can be called twice"
    with c.fresh(Store, g) as store:
        store.close()  # and again when the check ends


def _store_read_after(c: Checker) -> None:
    g = "read_after(consumer, limit, after) gives what read would, above seq after (ReadAheadStore)"
    with c.fresh(ReadAheadStore, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", ALL_ROWS)
        seqs = seqs_of(rows)
        got = seqs_of(store.read_after("a", 3, seqs[2]))
        c.expect(got == seqs[3:6], g, f"read_after(limit=3, after={seqs[2]}) gave {got}")
        got = seqs_of(store.read_after("a", ALL_ROWS, seqs[-1]))
        c.expect(got == [], g, f"read_after past the last row gave {got}")
        store.ack("a", rows.select([3, 4]))
        got = seqs_of(store.read_after("a", ALL_ROWS, seqs[1]))
        want = [seqs[2], *seqs[5:]]
        c.expect(got == want, g, f"read_after skips acked rows: gave {got}, not {want}")
        left = seqs_of(store.read("a", ALL_ROWS))
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
                got = seqs_of(future.result())
                c.expect(
                    got == sorted(got) and all(s > after for s in got) and len(got) <= 5,
                    g,
                    f"read_after from another thread gave {got} for after={after}",
                )


def _store_last_timestamp(c: Checker) -> None:
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


def _store_inputs(c: Checker) -> None:
    g = (
        "append_input stores rows, a sensor's state and its rejects together; load_sensor_state "
        "and input_rejects give them back (InputStore)"
    )
    with c.fresh(InputStore, g) as store:
        c.expect(store.load_sensor_state("s") is None, g, "a new store has a state for 's'")
        rows = sample_readings(6)
        bad = InputReject("feed.csv:3", "conformance: not a number", "x,y")
        new = store.append_input(rows.select(slice(0, 4)), sensor="s", state="at 4", rejects=[bad])
        c.expect(new == 4, g, f"append_input of 4 new rows returned {new}")
        new = store.append_input(rows, sensor="s", state="at 6")
        c.expect(new == 2, g, f"append_input of 2 new among 6 returned {new}")
        new = store.append_input(Batch.empty(), sensor="t", state="t0", rejects=[bad, bad])
        c.expect(new == 0, g, f"append_input of no rows returned {new}")
        got = (store.load_sensor_state("s"), store.load_sensor_state("t"))
        c.expect(got == ("at 6", "t0"), g, f"load_sensor_state gave {got}, not ('at 6', 't0')")
        store.append_input(rows.select(slice(0, 1)), sensor="s")  # no state: the saved one stays
        got_s = store.load_sensor_state("s")
        c.expect(got_s == "at 6", g, f"an append_input without state changed it to {got_s!r}")
        every = store.input_rejects()
        c.expect(
            [(r.sensor, r.origin, r.reason, r.raw) for r in every]
            == [("s", bad.origin, bad.reason, bad.raw)]
            + [("t", bad.origin, bad.reason, bad.raw)] * 2,
            g,
            f"input_rejects() gave {every}",
        )
        c.expect(len(store.input_rejects(sensor="t")) == 2, g, "input_rejects(sensor='t') ≠ 2")
        c.expect(len(store.input_rejects(limit=1)) == 1, g, "input_rejects(limit=1) ≠ 1 reject")
        c.expect(len(store.read("a", ALL_ROWS)) == 6, g, "the rows stored are not 6")
        broken = sample_readings(2, offset=6).with_columns(sensor_id=[None, None])
        with contextlib.suppress(ValueError, TypeError):
            store.append_input(broken, sensor="s", state="broken", rejects=[bad])
        got_s = store.load_sensor_state("s")
        c.expect(got_s == "at 6", g, f"a refused batch still saved its state ({got_s!r})")
        c.expect(len(store.input_rejects()) == 3, g, "a refused batch still recorded its rejects")


def _store_prune(c: Checker) -> None:
    g = "prune() never removes a row some consumer has not acknowledged (PrunableStore)"
    with c.fresh(PrunableStore, g) as store:
        store.append(sample_readings(10))
        rows = store.read("a", ALL_ROWS)
        store.read("b", ALL_ROWS)
        store.read("c", ALL_ROWS)  # registered, has acknowledged nothing
        store.ack("a", rows)
        store.ack("b", rows.select(slice(0, 4)))
        store.dead_letter("b", rows.select([4]), "conformance: kept while waiting")
        removed = store.prune()
        c.expect(removed == 0, g, f"it removed {removed} rows while consumer c had acked none")
        c.expect(len(store.read("c", ALL_ROWS)) == 10, g, "consumer c lost rows to prune")
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
        left = seqs_of(store.read("b", ALL_ROWS))
        c.expect(left == seqs_of(rows)[5:], g, f"consumer b's pending rows became {left}")
        if isinstance(store, DeadLetterStore):
            letters = store.dead_letters("b")
            c.expect(len(letters) == 1, g, "a waiting dead letter was pruned")
            store.replay("b")
            back = seqs_of(store.read("b", 1))
            c.expect(back == [seqs_of(rows)[4]], g, f"the replayed dead letter reads as {back}")


def _store_scan(c: Checker) -> None:
    g = "scan() reads every stored row in seq order, registering nothing (ScannableStore)"
    with c.fresh(ScannableStore, g) as store:
        store.append(sample_readings(8))
        everything = store.scan()
        seqs = seqs_of(everything)
        c.expect(
            keys_of(everything) == keys_of(sample_readings(8)) and seqs == sorted(set(seqs)),
            g,
            f"scan of 8 rows gave {len(everything)} rows, seq {seqs}",
        )
        c.expect(dict(store.stats().pending) == {}, g, "scan registered a consumer")
        rows = store.read("a", ALL_ROWS)
        store.ack("a", rows.select(slice(0, 3)))
        store.dead_letter("a", rows.select([3]), "conformance")
        c.expect(seqs_of(store.scan()) == seqs, g, "scan skips rows a consumer handled")
        got = seqs_of(store.scan(after=seqs[2], limit=3))
        c.expect(got == seqs[3:6], g, f"scan(after={seqs[2]}, limit=3) gave {got}")
        got = seqs_of(store.scan(limit=2))
        c.expect(got == seqs[:2], g, f"scan(limit=2) gave {got}")


def _store_scan_sensor(c: Checker) -> None:
    g = "scan_sensor() reads one sensor's span in timestamp order, registering nothing (SensorRangeStore)"
    with c.fresh(SensorRangeStore, g) as store:
        rows = sample_readings(8)
        store.append(rows)
        sensor = str(rows["sensor_id"][0])
        mine = sorted(
            int(t) for s, t in zip(rows["sensor_id"], rows["timestamp"], strict=True) if s == sensor
        )
        got = store.scan_sensor(sensor, mine[0], mine[-1] + 1)
        times = [int(t) for t in got["timestamp"]]
        c.expect(
            times == mine and set(got["sensor_id"].tolist()) <= {sensor},
            g,
            f"scan_sensor({sensor!r}) over every time gave timestamps {times}, expected {mine}",
        )
        if len(mine) > 1:
            got = store.scan_sensor(sensor, mine[0], mine[-1])
            c.expect(len(got) == len(mine) - 1, g, "the end of the span is not left out")
            got = store.scan_sensor(sensor, mine[0], mine[-1] + 1, limit=1)
            c.expect(
                [int(t) for t in got["timestamp"]] == mine[:1], g, f"limit=1 gave {len(got)} rows"
            )
        c.expect(
            len(store.scan_sensor("no-such-sensor", 0, 2**62)) == 0, g, "an unknown sensor has rows"
        )
        c.expect(dict(store.stats().pending) == {}, g, "scan_sensor registered a consumer")


def _store_remove_consumer(c: Checker) -> None:
    g = "remove_consumer forgets a consumer's checkpoint, dead letters and state (ConsumerAdminStore)"
    with c.fresh(ConsumerAdminStore, g) as store:
        store.append(sample_readings(5))
        rows = store.read("a", ALL_ROWS)
        store.read("b", ALL_ROWS)
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
        again = seqs_of(store.read("a", ALL_ROWS))
        c.expect(again == seqs_of(rows), g, f"read as the same name again gives {again}")


def _store_path(c: Checker) -> None:
    g = "path names the store's file (FileStore)"
    with c.fresh(FileStore, g) as store:
        c.expect(isinstance(store.path, str) and bool(store.path), g, f"path is {store.path!r}")
