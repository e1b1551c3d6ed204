"""``cosmobac dashboard`` as a person sees it: a real ``cosmobac dashboard`` process serving a
store that a real ``cosmobac run`` is filling, loaded in headless Chromium (Debian's ``chromium``
and ``chromium-driver``, through :func:`cosmobac.testing.headless_chromium`).

The charts draw with data points, the health table's numbers are the store's
(``cosmobac status --json``), the detections table is the API's, the page grows by itself while
rows arrive, a drag across a chart zooms into that span, no request leaves loopback and the
console stays clean. Fleet mode lists every node with its store's numbers and opens one on a
click. Screenshots: ``build/test-artifacts/test_dashboard_browser-<test>/dashboard-node.png`` and
``.../dashboard-fleet.png`` (or under ``$COSMOBAC_TEST_ARTIFACTS``). No timing is asserted: waits
only have deadlines."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmobac.dashboard import require_extra
from cosmobac.testing import Browser
from test_dashboard import PIPELINE, Server, cli, max_seq

pytestmark = pytest.mark.needs_plugins

SPEED = 30.0  # sensor seconds per real second: 4 sensors at 1 Hz store 120 rows a second

READY = "return window.cosmobacDashboard && window.cosmobacDashboard.ready"

# per chart: what the page marked, what its uPlot instance holds, and how many of its canvas's
# pixels the line inked
CHARTS = """
const out = [];
for (const el of document.querySelectorAll('#charts .chart')) {
  const u = window.cosmobacDashboard.plot(el.dataset.sensor);
  const canvas = el.querySelector('canvas');
  let inked = 0;
  if (canvas && canvas.width && canvas.height) {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    // the line is #333; axes, grid, labels and rings are lighter or coloured: count its pixels
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] > 200 && pixels[i] < 70 && pixels[i + 1] < 70 && pixels[i + 2] < 70) inked++;
    }
  }
  out.push({sensor: el.dataset.sensor, points: Number(el.dataset.points),
            rows: Number(el.dataset.rows), start: Number(el.dataset.start),
            end: Number(el.dataset.end), zoomed: el.dataset.zoomed || '',
            detections: Number(el.dataset.detections), source: el.dataset.source,
            xmin: u ? u.scales.x.min * 1000 : null, xmax: u ? u.scales.x.max * 1000 : null,
            x: u ? u.data[0].length : -1, y: u ? u.data[1].length : -1,
            drawn: u ? u.data[1].filter(v => v !== null).length : -1,
            canvasWidth: canvas ? canvas.width : 0, boxWidth: el.clientWidth, inked});
}
return out;
"""

HEALTH = """
return Array.from(document.querySelectorAll('#health-table tbody tr'), tr => {
  const row = {sink: tr.dataset.consumer, rowState: tr.dataset.state};
  for (const td of tr.cells) row[td.dataset.field] = {text: td.innerText.trim(),
                                                     value: td.dataset.value};
  return row;
});
"""

FLEET = """
return Array.from(document.querySelectorAll('#fleet-table tbody tr'), tr => {
  const row = {nodeIndex: tr.dataset.node, rowHealthy: tr.dataset.healthy};
  for (const td of tr.cells) row[td.dataset.field] = {text: td.innerText.trim(),
                                                     value: td.dataset.value};
  return row;
});
"""


# WCAG's contrast ratio between an element's text colour and the background it is drawn on
CONTRAST_OF = """
function contrastOf(el) {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).slice(0, 3).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  let back = el;
  while (back && rgb(getComputedStyle(back).backgroundColor)[3] === 0) back = back.parentElement;
  const bg = back ? getComputedStyle(back).backgroundColor : 'rgb(255, 255, 255)';
  const [a, b] = [lum(getComputedStyle(el).color), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""
CONTRAST = CONTRAST_OF + "return contrastOf(document.querySelector(arguments[0]));"
# every visible piece of text whose contrast is under WCAG AA's 4.5:1, with its ratio
LOW_CONTRAST = (
    CONTRAST_OF
    + """
const low = [];
for (const el of document.querySelectorAll('body *')) {
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
  const ratio = contrastOf(el);
  if (ratio < 4.5) low.push(el.tagName + (el.id ? '#' + el.id : '') + ' "'
                             + el.textContent.trim().slice(0, 30) + '": ' + ratio.toFixed(2));
}
return low;
"""
)


# the page fits the window's width: no sideways scrolling, nothing sticking out on the right
NO_SIDEWAYS = """
const page = document.documentElement;
const out = [];
if (page.scrollWidth > page.clientWidth) out.push('page ' + page.scrollWidth + ' > ' + page.clientWidth);
for (const el of document.querySelectorAll('main > section:not([hidden]) > *')) {
  const r = el.getBoundingClientRect();
  if (r.right > page.clientWidth) out.push(el.tagName + '#' + el.id + ' right ' + r.right);
}
return out;
"""


def polls(browser: Browser) -> int:
    return int(browser.js("return window.cosmobacDashboard.polls"))


def next_poll(browser: Browser, timeout: float = 30.0) -> None:
    """Wait until the page has finished a whole poll that started after now."""
    seen = polls(browser)
    browser.wait_for_js(
        "return window.cosmobacDashboard.polls >= arguments[0]", seen + 2, timeout=timeout
    )


def store_rows(browser: Browser) -> int:
    return int(browser.js("return Number(document.getElementById('store-rows').dataset.rows)"))


def status_of(config: str, cwd: Path) -> dict[str, Any]:
    return dict(json.loads(cli("status", config, "--json", cwd=cwd)))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this test started (Ctrl-C first, so it shuts down as a person's would)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_clean(browser: Browser, base: str) -> None:
    assert browser.requests_off_loopback() == []
    asked = [u for u in browser.requests() if u.startswith(base)]
    assert len(asked) > 6 and f"{base}/static/dashboard.js" in asked
    assert browser.failed_requests() == {}
    assert browser.console_errors() == []
    assert browser.js("return window.cosmobacDashboard.errors") == []


@pytest.mark.slow
def test_node_page_of_a_running_pipeline(cosmobac_browser: Browser, tmp_path: Path) -> None:
    require_extra()
    config = tmp_path / "edge.toml"
    config.write_text(PIPELINE.format(name="edge"))
    cli("collect", "edge.toml", "--duration", "1h", cwd=tmp_path)  # an hour to start from
    # then a live pipeline: `cosmobac run` collects (at SPEED × real time) and forwards
    config.write_text(PIPELINE.format(name="edge").replace('speed = "max"', f"speed = {SPEED}"))
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "run", "edge.toml", "--duration", "3h"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(tmp_path, "edge.toml")
    browser = cosmobac_browser
    try:
        server.until(lambda: status_of("edge.toml", tmp_path)["forwarder"]["running"], "run")
        browser.get(server.base + "/")
        browser.wait_for_js(READY, timeout=120)
        assert browser.js("return window.cosmobacDashboard.mode") == "node"
        assert browser.texts("#title") == ["edge"]
        assert browser.js(CONTRAST, "#status-line") >= 4.5  # "updated ...": readable
        assert browser.js(LOW_CONTRAST) == []  # and every other text

        # every chart of the first city has points, and uPlot drew them
        charts = browser.wait_for_js(f"const c = (() => {{{CHARTS}}})(); return c.length && c")
        cities = server.get("/api/sensors")["cities"]
        city = browser.js("return document.getElementById('city-select').value")
        assert [c["sensor"] for c in charts] == cities[city]
        for c in charts:
            assert c["points"] > 1 and c["rows"] > 0, c
            assert c["x"] == c["y"] == c["points"] and c["drawn"] > 1, c
            assert c["canvasWidth"] > 0 and c["inked"] > c["canvasWidth"] // 2, c  # a line across

        # the page grows by itself while `run` stores rows (no reload)
        first_rows, first_update = (
            store_rows(browser),
            browser.js("return window.cosmobacDashboard.lastUpdate"),
        )
        first_chart_rows = charts[0]["rows"]
        browser.wait_for_js(
            "return Number(document.getElementById('store-rows').dataset.rows) > arguments[0]"
            " && Number(document.querySelector('#charts .chart').dataset.rows) > arguments[1]",
            first_rows,
            first_chart_rows,
            timeout=60,
        )
        assert browser.js("return window.cosmobacDashboard.lastUpdate") > first_update
        assert browser.js("return performance.getEntriesByType('navigation').length") == 1
        assert browser.js("return window.cosmobacDashboard.ready") is True
        # the forwarder of `run` shows as running, delivering rows
        browser.wait_for_js(
            "return document.getElementById('forwarder').dataset.running === 'true'"
            " && Number(document.querySelector('#health-table td[data-field=rows_per_second]')"
            ".dataset.value) > 0",
            timeout=30,
        )

        # drag across the first chart: that span is asked again and the chart shows only it
        sensor = charts[0]["sensor"]
        before = next(c for c in browser.js(CHARTS) if c["sensor"] == sensor)
        zoom(browser, sensor)
        browser.wait_for_js(
            "return document.getElementById('chart-' + arguments[0]).dataset.zoomed === 'true'",
            sensor,
        )
        after = browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})().find(c => c.sensor === arguments[0]);"
            " return c.end - c.start < arguments[1] && c",
            sensor,
            (before["end"] - before["start"]) / 2,
        )
        assert before["start"] <= after["start"] < after["end"] <= before["end"]
        assert after["x"] == after["points"] > 1 and after["inked"] > 0
        assert after["source"] == "rows"  # read again from the store, not the 1-min summary
        assert after["start"] <= after["xmin"] < after["xmax"] <= after["end"] + 1  # shows it
        asked = [u for u in browser.requests() if f"sensor={sensor}" in u and "start=" in u]
        assert asked, "the zoom asked the server for nothing"
        next_poll(browser)  # a zoomed chart keeps its span across polls
        kept = next(c for c in browser.js(CHARTS) if c["sensor"] == sensor)
        assert (kept["start"], kept["end"]) == (after["start"], after["end"])

        assert browser.js(NO_SIDEWAYS) == []
        shot = browser.screenshot("dashboard-node", full_page=True)  # while `run` runs
        assert shot.read_bytes().startswith(b"\x89PNG")
        print(f"screenshot: {shot}")

        # a double click zooms out again: the whole span, following new rows
        double_click(browser, sensor)
        browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})().find(c => c.sensor === arguments[0]);"
            " return c.zoomed === 'false' && c.end - c.start >= arguments[1] && c",
            sensor,
            before["end"] - before["start"],
        )

        # another city: its charts replace the first city's, and the address keeps the choice
        other = next(c for c in cities if c != city)
        choose(browser, "city-select", other)
        browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})();"
            " return c.length && c.map(x => x.sensor).join() === arguments[0]"
            " && c.every(x => x.points > 1 && x.inked > 0) && c",
            ",".join(cities[other]),
        )
        assert "city=" in browser.js("return location.search")
        # a quick change back and forth: only the last choice's charts (an answer for a choice
        # already left must not add its charts)
        browser.js(
            "const s = document.getElementById('city-select');"
            "for (const v of [arguments[0], arguments[1]]) {"
            "  s.value = v; s.dispatchEvent(new Event('change')); }",
            city,
            other,
        )
        next_poll(browser)
        shown = [c["sensor"] for c in browser.js(CHARTS)]
        assert shown == cities[other]
        # another metric: the same sensors, that metric's values
        choose(browser, "metric-select", "humidity")
        browser.wait_for_js(
            "const els = [...document.querySelectorAll('#charts .chart')];"
            " return els.length === arguments[0]"
            " && els.every(e => e.dataset.metric === 'humidity' && Number(e.dataset.points) > 1)",
            len(cities[other]),
        )

        # another window width (two columns of charts become one): the charts follow it
        for c in browser.js(CHARTS):
            assert abs(c["canvasWidth"] - c["boxWidth"]) <= 2, c
        two_columns = browser.js(CHARTS)[0]["canvasWidth"]
        browser.driver.set_window_size(900, 1000)
        one_column = browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})();"
            " return c.every(x => Math.abs(x.canvasWidth - x.boxWidth) <= 2"
            " && x.canvasWidth !== arguments[0]) && c[0].canvasWidth",
            two_columns,
        )
        assert one_column > two_columns
        browser.driver.set_window_size(600, 1000)  # narrow: wide tables scroll, not the page
        browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})();"
            " return c.every(x => Math.abs(x.canvasWidth - x.boxWidth) <= 2"
            " && x.canvasWidth < arguments[0])",
            one_column,
        )
        assert browser.js(NO_SIDEWAYS) == []
        browser.driver.set_window_size(1400, 1000)
        browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})(); return c[0].canvasWidth === arguments[0]",
            two_columns,
        )

        # a quiet moment: `run` stopped, the dashboard has read every stored row
        stop(run)
        top = max_seq(tmp_path / "edge.db")
        server.caught_up(last_seq=top)
        next_poll(browser)
        status = status_of("edge.toml", tmp_path)
        assert store_rows(browser) == status["rows"] > 4 * 3600
        health = browser.js(HEALTH)
        assert [h["sink"] for h in health] == [s["consumer"] for s in status["sinks"]]
        for shown, sink in zip(health, status["sinks"], strict=True):
            assert int(shown["pending"]["value"]) == sink["pending"]
            assert shown["pending"]["text"].replace(",", "") == str(sink["pending"])
            assert int(shown["dead_letters"]["value"]) == sink["dead_letters"]
            assert shown["dead_letters"]["text"].replace(",", "") == str(sink["dead_letters"])
            assert shown["consumer"]["text"] == f"{sink['consumer']} ({sink['plugin']})"
            assert shown["state"]["value"] == shown["rowState"] == (sink["state"] or "")
        running = browser.js("return document.getElementById('forwarder').dataset.running")
        assert running == str(status["forwarder"]["running"]).lower()
        healthy = browser.js("return document.getElementById('healthy').dataset.healthy")
        assert healthy == str(status["healthy"]).lower()

        # the detections table is the API's
        anomalies = server.get("/api/anomalies?limit=50")
        assert anomalies["total"] > 0, "no detection to compare"
        shown = browser.js(
            "return Array.from(document.querySelectorAll('#anomalies-table tbody tr'),"
            " tr => [tr.dataset.sensor, Number(tr.dataset.time)])"
        )
        assert shown == [[d["sensor_id"], d["time"]] for d in anomalies["latest"]]
        total = browser.js("return document.getElementById('anomaly-counts').dataset.total")
        assert int(total) == anomalies["total"]

        assert_clean(browser, server.base)
    finally:
        stop(run)
        log.close()
        server.stop()


def zoom(browser: Browser, sensor: str) -> None:
    """Drag across the middle third of the chart's plot, as a mouse would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    over = browser.driver.find_element(By.CSS_SELECTOR, f"#chart-{sensor} .u-over")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", over)
    width = over.size["width"]
    (
        ActionChains(browser.driver)
        .move_to_element_with_offset(over, -width // 6, 0)
        .click_and_hold()
        .move_by_offset(width // 3, 0)
        .release()
        .perform()
    )


def choose(browser: Browser, select: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.driver.find_element(By.ID, select)).select_by_value(value)


def double_click(browser: Browser, sensor: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    over = browser.driver.find_element(By.CSS_SELECTOR, f"#chart-{sensor} .u-over")
    ActionChains(browser.driver).double_click(over).perform()


@pytest.mark.slow
def test_fleet_page_lists_every_node_and_opens_one(
    cosmobac_browser: Browser, tmp_path: Path
) -> None:
    require_extra()
    (tmp_path / "edge.toml").write_text(PIPELINE.format(name="edge"))
    (tmp_path / "second.toml").write_text(
        PIPELINE.format(name="second").replace("cities = 2", "cities = 1")
    )
    cli("collect", "edge.toml", "--duration", "20m", cwd=tmp_path)
    cli("forward", "edge.toml", cwd=tmp_path)
    cli("collect", "second.toml", "--duration", "10m", cwd=tmp_path)  # never forwarded
    server = Server(tmp_path, "edge.toml", "second.toml")
    browser = cosmobac_browser
    try:
        browser.get(server.base + "/")
        browser.wait_for_js(READY, timeout=60)
        assert browser.js("return window.cosmobacDashboard.mode") == "fleet"
        assert browser.js("return document.getElementById('node').hidden") is True
        rows = browser.js(FLEET)
        assert [r["name"]["text"] for r in rows] == ["edge", "second"]
        assert [r["nodeIndex"] for r in rows] == ["0", "1"]
        assert browser.js(LOW_CONTRAST) == []
        assert browser.js(NO_SIDEWAYS) == []
        for row, config in zip(rows, ("edge.toml", "second.toml"), strict=True):
            status = status_of(config, tmp_path)
            assert int(row["rows"]["value"]) == status["rows"]
            assert row["rows"]["text"].replace(",", "") == str(status["rows"])
            pending = sum(s["pending"] for s in status["sinks"])
            assert int(row["pending"]["value"]) == pending
            assert row["pending"]["text"] == f"{pending:,}"  # as the rows stored: 1,200
            dead = sum(s["dead_letters"] for s in status["sinks"])
            assert int(row["dead_letters"]["value"]) == dead
            assert row["rowHealthy"] == row["healthy"]["value"] == str(status["healthy"]).lower()
            assert row["healthy"]["text"] == ("healthy" if status["healthy"] else "not healthy")
        assert int(rows[1]["pending"]["value"]) == 2 * 600
        shot = browser.screenshot("dashboard-fleet", full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")
        print(f"screenshot: {shot}")

        from selenium.webdriver.common.by import By

        browser.driver.find_element(By.CSS_SELECTOR, "#fleet-table tr[data-node='1']").click()
        browser.wait_for_js(
            "return location.search === '?node=1' && window.cosmobacDashboard.ready", timeout=60
        )
        assert browser.js("return window.cosmobacDashboard.node") == 1
        assert browser.texts("#title") == ["second (fleet node 1)"]
        assert store_rows(browser) == status_of("second.toml", tmp_path)["rows"]
        assert browser.js("return document.querySelectorAll('#charts .chart').length") == 2
        browser.screenshot("dashboard-fleet-node", full_page=True)
        browser.driver.find_element(By.ID, "home").click()  # the title leads back to the fleet
        browser.wait_for_js(
            "return location.search === '' && !document.getElementById('fleet').hidden"
            " && document.querySelectorAll('#fleet-table tbody tr').length === 2",
            timeout=30,
        )
        assert_clean(browser, server.base)
    finally:
        server.stop()


@pytest.mark.slow
def test_a_store_not_collected_yet_fills_the_page_when_rows_arrive(
    cosmobac_browser: Browser, tmp_path: Path
) -> None:
    require_extra()
    (tmp_path / "later.toml").write_text(PIPELINE.format(name="later"))
    server = Server(tmp_path, "later.toml")
    browser = cosmobac_browser
    try:
        browser.get(server.base + "/")
        browser.wait_for_js(READY, timeout=60)
        assert browser.texts("#store-rows") == ["no store yet:"]
        assert browser.js("return document.querySelectorAll('#charts .chart').length") == 0
        assert "does not exist" in browser.texts("#loading")[0]  # the store's, said on the page
        cli("collect", "later.toml", "--duration", "2m", cwd=tmp_path)
        charts = browser.wait_for_js(
            f"const c = (() => {{{CHARTS}}})();"
            " return c.length === 2 && c.every(x => x.rows === 120 && x.inked > 0) && c",
            timeout=60,
        )
        assert {c["sensor"] for c in charts} == {"london-001", "london-002"}
        assert store_rows(browser) == 4 * 120
        assert browser.js("return performance.getEntriesByType('navigation').length") == 1
        assert_clean(browser, server.base)

        # the server goes away: the page says so, and keeps what it showed
        server.stop()
        browser.wait_for_js(
            "return document.getElementById('status-line').dataset.state === 'error'",
            timeout=30,
        )
        assert browser.js("return window.cosmobacDashboard.errors.length") > 0
        assert browser.texts("#status-line")[0].startswith("cannot reach the dashboard's server")
        assert browser.js(CONTRAST, "#status-line") >= 4.5  # the error is readable
        assert len(browser.js(CHARTS)) == 2
        browser.screenshot("dashboard-server-gone")
    finally:
        server.stop()


@pytest.mark.slow
def test_a_sink_that_failed_shows_red_with_its_error(
    cosmobac_browser: Browser, tmp_path: Path
) -> None:
    from test_status import jsonl, pipeline, webhook
    from webhook_receiver import Receiver

    require_extra()
    receiver = Receiver()
    receiver.status = 401  # the webhook sink fails permanently; the jsonl sink keeps going
    config = pipeline(tmp_path, webhook(receiver.url) + "\n" + jsonl(tmp_path / "out.jsonl"))
    cli("collect", config, cwd=tmp_path)
    forward = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "forward", config, "--follow"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(tmp_path, config)
    browser = cosmobac_browser
    try:

        def settled() -> bool:
            sinks = status_of(config, tmp_path)["sinks"]
            return [s["state"] for s in sinks] == ["stopped", "ok"] and sinks[1]["pending"] == 0

        server.until(settled, "the webhook sink to stop and the jsonl sink to catch up")
        browser.get(server.base + "/")
        browser.wait_for_js(READY, timeout=60)
        next_poll(browser)
        status = status_of(config, tmp_path)
        assert status["healthy"] is False
        assert browser.texts("#healthy") == ["not healthy"]
        [problem] = status["problems"]
        assert browser.texts("#problems li") == [
            f"hook: sink failed permanently: {problem['error']}"
        ]
        assert "401" in problem["error"]
        health = {h["sink"]: h for h in browser.js(HEALTH)}
        assert list(health) == ["hook", "archive"]
        hook, archive = health["hook"], health["archive"]
        assert hook["rowState"] == hook["state"]["text"] == "stopped"
        assert "401" in hook["last_error"]["text"] and hook["last_error_at"]["text"].endswith("ago")
        assert int(hook["pending"]["value"]) == status["sinks"][0]["pending"] > 0
        assert archive["rowState"] == "ok" and int(archive["pending"]["value"]) == 0
        red = browser.js(
            "return getComputedStyle(document.querySelector("
            "'#health-table tr[data-consumer=hook] td[data-field=state]')).color"
        )
        assert red == "rgb(204, 0, 0)"  # #c00: a stopped sink stands out
        assert browser.js(LOW_CONTRAST) == []
        assert browser.js(NO_SIDEWAYS) == []
        browser.screenshot("dashboard-unhealthy", full_page=True)
        assert_clean(browser, server.base)
    finally:
        stop(forward)
        server.stop()
        receiver.close()


@contextlib.contextmanager
def serve_in_process(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, on a thread: yields its base URL."""
    import uvicorn

    from test_dashboard import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="test-dashboard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_fleet_source_page_lists_its_nodes_and_opens_one(cosmobac_browser: Browser) -> None:
    from cosmobac.dashboard.app import create_app
    from cosmobac.dashboard.fleet import RemoteFleet
    from test_dashboard_fleet_source import Source  # edge-a, edge-b (a stopped sink), edge-c

    require_extra()
    source = Source()  # edge-b: a stopped sink; edge-a: healthy; edge-c: did not answer
    app = create_app((), fleet=RemoteFleet(source, name="test", every=60.0))
    browser = cosmobac_browser
    with serve_in_process(app) as base:
        assert source.polled.wait(10)
        api = json.loads(urllib.request.urlopen(base + "/api/nodes", timeout=30).read())
        browser.get(base + "/")
        browser.wait_for_js(READY, timeout=30)
        rows = browser.js(FLEET)
        assert [r["name"]["text"] for r in rows] == [n["name"] for n in api["nodes"]]
        for row, node in zip(rows, api["nodes"], strict=True):
            assert row["rows"]["value"] == ("" if node["rows"] is None else str(node["rows"]))
            assert int(row["pending"]["value"]) == node["pending"]
            assert row["rowHealthy"] == str(node["healthy"]).lower()
        edge_b = next(r for r in rows if r["name"]["text"] == "edge-b")
        assert edge_b["problems"]["text"] == "hook: sink failed permanently: HTTP 401"
        assert (edge_b["rows"]["text"], edge_b["pending"]["text"]) == ("1,200", "43")
        edge_c = next(r for r in rows if r["name"]["text"] == "edge-c")  # did not answer
        unknown = [
            edge_c[k]["text"] for k in ("rows", "rows_per_second", "pending", "dead_letters")
        ]
        assert unknown == ["—"] * 4  # not "no store yet" nor zeros
        assert browser.js(LOW_CONTRAST) == [] and browser.js(NO_SIDEWAYS) == []
        browser.screenshot("dashboard-fleet-source", full_page=True)

        from selenium.webdriver.common.by import By

        browser.driver.find_element(
            By.CSS_SELECTOR, f"tr[data-node='{edge_b['nodeIndex']}']"
        ).click()
        browser.wait_for_js(
            "return location.search.startsWith('?node=') && window.cosmobacDashboard.ready",
            timeout=30,
        )
        assert browser.texts("#title")[0].startswith("edge-b")
        assert browser.js("return document.getElementById('remote-note').hidden") is False
        assert browser.js("return document.getElementById('node-data').hidden") is True
        health = {h["sink"]: h for h in browser.js(HEALTH)}
        assert list(health) == ["archive", "hook"]
        assert health["hook"]["rowState"] == "stopped" and health["hook"]["pending"]["text"] == "40"
        assert browser.texts("#healthy") == ["not healthy"]
        browser.screenshot("dashboard-fleet-source-node", full_page=True)
        assert_clean(browser, base)


class _Unreachable:
    def poll(self) -> list[Any]:
        raise ConnectionError("orchestrator unreachable")


def test_a_fleet_source_that_fails_is_said_on_the_page(cosmobac_browser: Browser) -> None:
    from cosmobac.dashboard.app import create_app
    from cosmobac.dashboard.fleet import RemoteFleet

    require_extra()
    app = create_app((), fleet=RemoteFleet(_Unreachable(), name="test", every=60.0))
    browser = cosmobac_browser
    with serve_in_process(app) as base:
        browser.get(base + "/")
        browser.wait_for_js(
            "return document.getElementById('status-line').dataset.state === 'error'", timeout=30
        )
        [said] = browser.texts("#status-line")
        assert said.startswith("fleet source test: ") and "orchestrator unreachable" in said
        assert browser.js(FLEET) == []
        assert browser.js(CONTRAST, "#status-line") >= 4.5
        assert_clean(browser, base)
