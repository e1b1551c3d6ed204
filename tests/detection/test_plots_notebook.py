"""Plots at a fleet's scale (a day of a dozen sensors) and in a notebook: downsampled lines,
detections on the metric that triggered them, UTC dates, and figures that display themselves."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from detection_support import fleet_rows, run
from matplotlib.dates import ConciseDateFormatter, num2date
from matplotlib.figure import Figure

from cosmobac.batch import Batch
from cosmobac.detectors import Dropout, ZScore
from cosmobac.evaluation.metrics import evaluate
from cosmobac.report import MAX_POINTS, figure_png, plot_city, plot_scores, plot_sensor

pytestmark = pytest.mark.needs_plugins


@pytest.fixture(scope="module")
def day():
    """One city of 12 sensors over 24 hours, a reading every 5 s (17,280 rows per sensor)."""
    rows = fleet_rows(1, 12, 24 * 60, seed=5, rate_hz=0.2)
    return run([ZScore(), Dropout()], rows, [len(rows) // 2])


def _points(figure: Figure) -> list[int]:
    return [len(line.get_xdata()) for ax in figure.axes for line in ax.get_lines()]


def test_a_day_of_a_dozen_sensors_is_downsampled(day, tmp_path):
    city = day["city"][0]
    assert len(set(day["sensor_id"].tolist())) == 12
    per_sensor = len(day) // 12
    assert per_sensor > 5 * MAX_POINTS
    figure = plot_city(day, city)
    lines = _points(figure)
    assert lines and max(lines) <= MAX_POINTS
    assert sum(lines) <= 12 * 2 * MAX_POINTS + 100  # series, detection marks and the count line
    sensor = day["sensor_id"][0]
    one = plot_sensor(day, sensor)
    assert max(_points(one)) <= MAX_POINTS and sum(_points(one)) <= 5 * 2 * MAX_POINTS
    path = tmp_path / "day-12-sensors.png"
    path.write_bytes(figure_png(figure, dpi=100))
    assert path.stat().st_size > 20_000


def test_downsampling_keeps_the_extremes(day):
    sensor = day["sensor_id"][3]
    rows = day.select(day["sensor_id"] == sensor)
    figure = plot_sensor(rows, sensor, columns=["temperature"])
    drawn = figure.axes[0].get_lines()[0].get_ydata()
    values = rows["temperature"]
    assert len(drawn) <= MAX_POINTS < len(values)
    assert np.nanmax(drawn) == np.nanmax(values) and np.nanmin(drawn) == np.nanmin(values)


def test_axes_show_utc_dates(day):
    figure = plot_sensor(day, day["sensor_id"][0], columns=["temperature", "humidity"])
    ax = figure.axes[-1]
    assert isinstance(ax.xaxis.get_major_formatter(), ConciseDateFormatter)
    assert ax.get_xlabel() == "time (UTC)"
    left = num2date(ax.get_xlim()[0], tz=dt.UTC)
    first = dt.datetime.fromtimestamp(int(day["timestamp"].min()) / 1000, tz=dt.UTC)
    assert abs((left - first).total_seconds()) < 6 * 3600


def test_a_detection_is_marked_on_the_metric_that_triggered_it():
    ts = 1_714_564_800_000 + np.arange(200, dtype=np.int64) * 1000
    temperature = np.full(200, 20.0) + np.sin(np.arange(200) / 5)
    humidity = np.full(200, 50.0) + np.cos(np.arange(200) / 7)
    temperature[100] = 80.0  # the spike that fired
    humidity[150] = np.nan  # a dropout that fired
    detected = np.zeros(200, dtype=bool)
    detected[[100, 150]] = True
    rows = Batch.from_columns(
        timestamp=ts,
        sensor_id="s1",
        temperature=temperature,
        humidity=humidity,
        detected=detected,
    )
    figure = plot_sensor(rows, "s1", columns=["temperature", "humidity"])
    temp_ax, hum_ax = figure.axes
    temp_marks = [ln for ln in temp_ax.get_lines() if ln.get_marker() == "x"]
    hum_marks = [ln for ln in hum_ax.get_lines() if ln.get_marker() in ("x", "|")]
    assert [list(ln.get_ydata()) for ln in temp_marks] == [[80.0]]
    assert len(hum_marks) == 1 and hum_marks[0].get_marker() == "|"  # missing: at the bottom
    # the city view marks on the plotted metric only the detections it triggered
    city = plot_city(rows.with_columns(city="X"), "X", column="humidity")
    assert not [ln for ln in city.axes[0].get_lines() if ln.get_marker() == "x"]
    city = plot_city(rows.with_columns(city="X"), "X", column="temperature")
    marks = [ln for ln in city.axes[0].get_lines() if ln.get_marker() == "x"]
    assert [list(ln.get_ydata()) for ln in marks] == [[80.0]]


def test_figures_display_themselves_in_a_notebook(day):
    evaluation = evaluate(day)
    for figure in (plot_sensor(day, day["sensor_id"][0]), plot_scores(evaluation)):
        assert isinstance(figure, Figure)
        png = figure._repr_png_()
        assert png.startswith(b"\x89PNG")


def test_heat_map_text_is_readable(day):
    figure = plot_scores(evaluate(day))
    texts = figure.axes[0].texts
    assert texts and all(t.get_fontsize() >= 9 for t in texts)
    for text in texts:  # dark cells get white text
        if text.get_text() != "n/a" and float(text.get_text()) > 0.6:
            assert text.get_color() == "white"


def test_an_evaluation_prints_short_and_shows_tables(day):
    evaluation = evaluate(day)
    short = repr(evaluation)
    assert short.startswith("Evaluation(rows=") and len(short) < 200
    assert "detectors=['zscore', 'dropout', 'all']" in short
    assert str(evaluation) == evaluation.table()
    text = evaluation._repr_html_()
    assert f"{evaluation.rows:,} rows from 12 sensors" in text
    assert "scores per detector" in text and "event recall by anomaly type" in text
    assert "event F1 by anomaly type" in text
    assert text.count("<table>") == 3 and "<td>zscore</td>" in text and "<th>PA-F1</th>" in text
    assert "<th>NAB standard</th>" in text
