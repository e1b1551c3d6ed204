"""The static report at a day's scale, as a person would see it: a day of 3 cities × 4 sensors
(one reading every 10 s: 103,680 rows; at 1 Hz a day is a million rows, which the report would cut
to the same 2,000 points a line) written by ``write_report`` and opened from ``file://`` in
headless Chromium. Every chart draws, the file stays small, nothing is requested beyond the file,
the console stays clean, and a drag zooms a chart (a double click zooms back out). The screenshot
``report-1day.png`` is written as a test artefact."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cosmobac.detectors import Dropout, Stuck, ZScore
from cosmobac.report import MAX_POINTS, write_report
from cosmobac.sensors.simulated import SimulatedFleet

pytestmark = pytest.mark.slow

CHARTS_DRAWN = """
const charts = Array.from(document.querySelectorAll("div.chart"));
if (!window.cosmobacReport || !charts.length) return null;
return charts.map((c) => {
  const canvas = c.querySelector("canvas");
  if (!canvas || !canvas.width) return null;
  // something drawn inside the plot: count the pixels that are not blank
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
  return {points: Number(c.dataset.points), rows: Number(c.dataset.rows),
          labels: Number(c.dataset.labels), detections: Number(c.dataset.detections), inked};
});
"""
X_SCALE = """
const x = window.cosmobacReport.charts[arguments[0]].chart.plot.scales.x;
return [x.min, x.max];
"""
# Coloured pixels (a span's shade, a detection's ring) left of the plot, over the y axis: none,
# since charts.js clips them to the plot (a zoom leaves spans and rings outside the x range).
COLOURED_IN_GUTTER = """
const u = window.cosmobacReport.charts[arguments[0]].chart.plot;
const b = u.bbox;
const data = u.ctx.getImageData(0, b.top, Math.floor(b.left) - 1, b.height).data;
let coloured = 0;
for (let i = 0; i < data.length; i += 4) {
  const [r, g, bl, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
  if (a > 0 && Math.max(r, g, bl) - Math.min(r, g, bl) > 40) coloured++;
}
return coloured;
"""


@pytest.fixture(scope="module")
def day():
    fleet = SimulatedFleet(cities=3, sensors_per_city=4, seed=11, rate_hz=0.1)
    rows = fleet.read(fleet.start + 24 * 3_600_000)
    for transform in (ZScore(), Dropout(), Stuck()):
        rows = transform(rows)
    return rows


def test_a_day_of_twelve_sensors_from_file_url(cosmobac_browser, day, tmp_path):
    assert len(set(day["sensor_id"].tolist())) == 12 and len(day) == 12 * 8640
    path = write_report(day, tmp_path / "report-1day.html", title="A day of 12 sensors", sensors=12)
    size = path.stat().st_size
    print(f"report of {len(day)} rows, 12 sensors, 1 day: {size / 1e6:.2f} MB")
    assert size < 10_000_000
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)

    browser = cosmobac_browser
    browser.driver.set_window_size(1400, 1000)
    browser.get(path.as_uri())
    charts = browser.wait_for_js(CHARTS_DRAWN, timeout=60)
    assert len(charts) == 12 + 12 * 5  # the fleet overview, then every metric of every sensor
    assert all(c is not None for c in charts)
    for chart in charts:
        assert chart["rows"] == 8640 and 1000 < chart["points"] <= MAX_POINTS
        assert chart["inked"] > 2000  # axes, the line, spans and rings, not an empty canvas
    assert sum(c["labels"] for c in charts[:12]) > 0 and sum(c["detections"] for c in charts) > 0

    # drag across the first chart's plot: its x scale narrows; a double click restores it
    full = browser.js(X_SCALE, 0)
    over = browser.driver.find_element("css selector", "div.chart .u-over")
    from selenium.webdriver.common.action_chains import ActionChains

    width = over.size["width"]
    ActionChains(browser.driver).move_to_element_with_offset(
        over, -width // 2 + width // 3, 0
    ).click_and_hold().move_by_offset(width // 24, 0).release().perform()
    zoomed = browser.wait_for_js(
        f"const x = window.cosmobacReport.charts[0].chart.plot.scales.x;"
        f"return x.max - x.min < {(full[1] - full[0]) / 4} && [x.min, x.max];"
    )
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    hours = (zoomed[1] - zoomed[0]) / 3600
    assert 0.3 < hours < 3  # about an hour of the day
    shown = browser.js(
        "const u = window.cosmobacReport.charts[0].chart.plot;"
        "return u.data[0].filter((t) => t >= u.scales.x.min && t <= u.scales.x.max).length;"
    )
    assert shown > 40  # still a line, not a handful of dots
    # a detection just left of the zoomed range: its ring stays off the y axis
    edge = browser.js(
        "const r = window.cosmobacReport.charts[0];"
        "const t = window.cosmobacReport.series[0].detections[0].t / 1000;"
        "r.chart.plot.setScale('x', {min: t + 3, max: t + 3603}); return t;"
    )
    assert edge
    assert browser.js(COLOURED_IN_GUTTER, 0) == 0
    browser.screenshot("report-1day-zoomed")
    ActionChains(browser.driver).double_click(over).perform()
    browser.wait_for_js(
        f"const x = window.cosmobacReport.charts[0].chart.plot.scales.x;"
        f"return Math.abs((x.max - x.min) - {full[1] - full[0]}) < 1;"
    )

    shot = browser.screenshot("report-1day", full_page=True)
    assert browser.console_errors() == []
    assert browser.requests_off_loopback() == []
    loaded = [u for u in browser.requests() if not u.startswith(("chrome://", "data:"))]
    assert loaded == [path.as_uri()]  # the file itself, nothing else: no http at all
    assert shot.is_file() and shot.stat().st_size > 100_000
    assert np.isfinite(full).all()
    print(f"screenshot: {shot}")
