"""The scaler's decisions on deterministic workload traces (no server, no clock)."""

from __future__ import annotations

import pytest

from cosmobac_cosmos.scaler import REASONS, Scaler, ScalerSettings, Tick, replay

SETTINGS = ScalerSettings(
    minimum=400,
    maximum=1200,
    factor=1.5,
    up_backlog_age=60,
    up_throttle_rate=1.0,
    up_ticks=3,
    down_backlog_age=5,
    down_throttle_rate=0.0,
    down_ticks=4,
    cooldown=60,
)

# (time s, oldest pending age s or None, 429s per second): one tick every 15 s
TRACE = [
    (0, 10, 0.0),  # between the thresholds
    (15, 70, 0.0),  # the backlog ages: pressure 1
    (30, 80, 0.0),
    (45, 90, 0.0),  # pressure 3: raise
    (60, 100, 2.0),  # throttled: pressure 1 at 600
    (75, 100, 3.0),
    (90, 100, 3.0),  # pressure 3, but 45 s since the last change
    (105, 100, 2.0),  # cooldown over: raise
    (120, 70, 0.0),
    (135, 70, 0.0),
    (150, 70, 0.0),  # pressure 3, cooldown
    (165, 70, 0.0),  # raise, clipped to the maximum
    (180, 90, 0.0),
    (195, 90, 0.0),
    (210, 90, 0.0),  # at the maximum
    (225, 30, 0.5),  # in the hysteresis band: nothing counts
    *[(240 + 15 * i, None, 0.0) for i in range(16)],  # idle from 240 s to 465 s
]

EXPECTED = [
    (0, "keep", 400, 400, "steady"),
    (15, "keep", 400, 400, "pending"),
    (30, "keep", 400, 400, "pending"),
    (45, "raise", 400, 600, "backlog_age"),
    (60, "keep", 600, 600, "pending"),
    (75, "keep", 600, 600, "pending"),
    (90, "keep", 600, 600, "cooldown"),
    (105, "raise", 600, 900, "throttling"),
    (120, "keep", 900, 900, "pending"),
    (135, "keep", 900, 900, "pending"),
    (150, "keep", 900, 900, "cooldown"),
    (165, "raise", 900, 1200, "backlog_age"),
    (180, "keep", 1200, 1200, "pending"),
    (195, "keep", 1200, 1200, "pending"),
    (210, "keep", 1200, 1200, "at_maximum"),
    (225, "keep", 1200, 1200, "steady"),
    (240, "keep", 1200, 1200, "pending"),
    (255, "keep", 1200, 1200, "pending"),
    (270, "keep", 1200, 1200, "pending"),
    (285, "lower", 1200, 800, "idle"),
    (300, "keep", 800, 800, "pending"),
    (315, "keep", 800, 800, "pending"),
    (330, "keep", 800, 800, "pending"),
    (345, "lower", 800, 500, "idle"),
    (360, "keep", 500, 500, "pending"),
    (375, "keep", 500, 500, "pending"),
    (390, "keep", 500, 500, "pending"),
    (405, "lower", 500, 400, "idle"),
    (420, "keep", 400, 400, "pending"),
    (435, "keep", 400, 400, "pending"),
    (450, "keep", 400, 400, "pending"),
    (465, "keep", 400, 400, "at_minimum"),
]


def decisions(scaler: Scaler, trace, start: int) -> list[tuple]:
    return [(d.time, d.action, d.current, d.target, d.reason) for d in replay(scaler, trace, start)]


def test_workload_trace_gives_exactly_these_decisions():
    assert decisions(Scaler(SETTINGS), TRACE, 400) == EXPECTED


def test_the_same_trace_gives_the_same_decisions_again():
    assert decisions(Scaler(SETTINGS), TRACE, 400) == decisions(Scaler(SETTINGS), TRACE, 400)


def test_every_reason_is_declared():
    assert {row[4] for row in EXPECTED} <= set(REASONS)


def test_a_load_that_flaps_across_the_thresholds_changes_nothing():
    flapping = [(15 * i, 90 if i % 2 else 0, 0.0) for i in range(40)]
    assert {d.action for d in replay(Scaler(SETTINGS), flapping, 800)} == {"keep"}


def test_an_old_backlog_the_sink_is_not_delivering_raises_nothing():
    # (time, backlog age, 429s/s, delivering): a forwarder down for a minute, then back
    trace = [(15 * i, 90 + 15 * i, None, i >= 4) for i in range(7)]
    got = [(d.action, d.target, d.reason) for d in replay(Scaler(SETTINGS), trace, 400)]
    assert got == [
        *[("keep", 400, "not_delivering")] * 4,
        ("keep", 400, "pending"),
        ("keep", 400, "pending"),
        ("raise", 600, "backlog_age"),
    ]
    # 429s do count: something is writing, and being throttled
    throttled = [(15 * i, 90, 5.0, False) for i in range(3)]
    assert list(replay(Scaler(SETTINGS), throttled, 400))[-1].reason == "throttling"


def test_throttling_alone_raises():
    trace = [(15 * i, None, 5.0) for i in range(3)]
    last = list(replay(Scaler(SETTINGS), trace, 400))[-1]
    assert (last.action, last.target, last.reason) == ("raise", 600, "throttling")


def test_a_value_outside_the_bounds_is_brought_inside_at_once():
    scaler = Scaler(SETTINGS)
    above = scaler.decide(Tick(0, 90, 5.0, 5000))
    assert (above.action, above.target, above.reason) == ("lower", 1200, "above_maximum")
    below = scaler.decide(Tick(0, None, 0.0, 100))
    assert (below.action, below.target, below.reason) == ("raise", 400, "below_minimum")


def test_a_change_that_was_not_applied_does_not_start_the_cooldown():
    scaler = Scaler(attrs_evolve(SETTINGS, up_ticks=1))
    first = scaler.decide(Tick(0, 90, 0.0, 400))
    assert first.action == "raise"  # ... but applying it failed: applied() not called
    again = scaler.decide(Tick(15, 90, 0.0, 400))
    assert (again.action, again.target) == ("raise", 600)


def test_autoscale_moves_the_maximum_in_steps_of_1000_within_its_floor():
    settings = attrs_evolve(SETTINGS, minimum=400, maximum=10000, up_ticks=1, down_ticks=1)
    scaler = Scaler(settings, autoscale=True)
    assert settings.bounds(autoscale=True) == (1000, 10000)
    trace = [(0, 90, 0.0), (100, 90, 0.0), (400, None, 0.0), (500, None, 0.0), (600, None, 0.0)]
    got = [(d.action, d.current, d.target) for d in replay(scaler, trace, 4000)]
    assert got == [
        ("raise", 4000, 6000),
        ("raise", 6000, 9000),
        ("lower", 9000, 6000),
        ("lower", 6000, 4000),
        ("lower", 4000, 2000),
    ]
    assert "autoscale max" in scaler.decide(Tick(700, 90, 0, 2000)).line()


def test_the_decision_line():
    scaler = Scaler(attrs_evolve(SETTINGS, up_ticks=1))
    assert scaler.decide(Tick(0, 90, 0.0, 400)).line() == "raise 400 → 600 RU/s (backlog_age)"
    assert scaler.decide(Tick(0, 10, 0.0, 400)).line() == "keep 400 RU/s (steady)"


@pytest.mark.parametrize(
    "change",
    [
        {"minimum": 0},
        {"minimum": 800, "maximum": 400},
        {"factor": 1.0},
        {"up_ticks": 0},
        {"down_backlog_age": 120},
        {"down_throttle_rate": 2.0},
        {"cooldown": -1},
    ],
)
def test_settings_that_cannot_work_are_refused(change):
    with pytest.raises(ValueError):
        attrs_evolve(SETTINGS, **change)


def attrs_evolve(settings: ScalerSettings, **change) -> ScalerSettings:
    import attrs

    return attrs.evolve(settings, **change)
