"""Benchmark: how long the dashboard's page takes to show a big store in a real browser.

Give a pipeline file whose store is already filled, or ``--build DIR`` to make one there first:
1 day × 100 sensors at 1 Hz (``cities = 10``, ``sensors_per_city = 10``, ``cosmobac collect
--duration 24h``: 8.64 million rows, about 1.5 GB; it takes a few minutes). Headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, through :func:`cosmobac.testing.headless_chromium`)
is started first; then the script starts ``cosmobac dashboard FILE`` on a free loopback port, opens
the page as soon as the server answers, and times, from starting the command:

* ``first charts drawn``: the first city's charts all have points and uPlot drew them (the page
  shows what the dashboard has read so far);
* ``health numbers shown``: the health table has every sink's backlog and the rows stored;
* ``caught up``: ``/api/sensors`` says every stored row has been read;
* ``full day shown``: the page says so too (``#loading[data-caught-up=true]``,
  ``window.cosmobacDashboard.ready``) and every chart spans the store's whole span;

then: another city's charts drawn, a drag across a quarter of the first chart until the zoomed
span is drawn (about 6 h of one sensor, read from the store), and the page loaded again with the
server's cache warm, until it is ready. A screenshot of the full page goes to ``--screenshot``
(default ``build/test-artifacts/dashboard-day.png``). The dashboard process's peak memory (VmHWM)
is read from /proc where there is one.

Run: ``python benchmarks/dashboard_browser_load.py FILE`` or
``python benchmarks/dashboard_browser_load.py --build /tmp/dashbench``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from cosmobac.testing import headless_chromium

DAY = """\
[sensor]
plugin = "simulated"
cities = 10
sensors_per_city = 10
seed = 3
start = "2026-06-01T00:00:00Z"
rate_hz = 1.0

[store]
plugin = "sqlite"
path = "day.db"

[[transforms]]
plugin = "zscore"

[[sinks]]
plugin = "jsonl"
path = "out.jsonl"

[run]
speed = "max"
"""

CHARTS_DRAWN = """
const charts = document.querySelectorAll('#charts .chart');
if (!charts.length) return false;
for (const el of charts) {
  const canvas = el.querySelector('canvas');
  if (!(Number(el.dataset.points) > 1) || !canvas || !canvas.width) return false;
}
return charts.length;
"""

HEALTH_SHOWN = """
const rows = document.getElementById('store-rows').dataset.rows;
const cells = document.querySelectorAll('#health-table tbody td[data-field=pending]');
return rows !== '' && cells.length > 0 && [...cells].every(c => c.dataset.value !== '')
  && Number(rows);
"""

FULL_DAY = """
const d = window.cosmobacDashboard;
if (!d || !d.ready) return false;
if (document.getElementById('loading').dataset.caughtUp !== 'true') return false;
const charts = document.querySelectorAll('#charts .chart');
if (!charts.length) return false;
for (const el of charts) {
  if (Number(el.dataset.end) - Number(el.dataset.start) < arguments[0]) return false;
}
return charts.length;
"""


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=600) as response:
        return json.loads(response.read())


def build(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "day.toml"
    if not config.exists():
        config.write_text(DAY)
    if not (folder / "day.db").exists():
        print(f"collecting 1 day × 100 sensors into {folder / 'day.db'} (a few minutes)")
        subprocess.run(
            [sys.executable, "-m", "cosmobac", "collect", config.name, "--duration", "24h"],
            cwd=folder,
            check=True,
        )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?")
    parser.add_argument("--build", type=Path, help="make (or reuse) the 1-day store in this folder")
    parser.add_argument("--screenshot", type=Path, default=Path("build/test-artifacts"))
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    if args.build:
        config = build(args.build)
    elif args.config:
        config = Path(args.config)
    else:
        parser.error("give a pipeline file or --build DIR")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with headless_chromium(args.screenshot) as browser:
        browser.get("about:blank")  # the browser is up before the clock starts
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cosmobac", "dashboard", config.name, "--port", str(port)],
            cwd=config.parent,
            stdout=subprocess.DEVNULL,
        )
        try:
            run(browser, base, t0, proc.pid, args.timeout)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def run(browser: Any, base: str, t0: float, pid: int, timeout: float) -> None:
    def since() -> float:
        return time.perf_counter() - t0

    while True:
        try:
            get(base, "/api/nodes")
            break
        except OSError:
            time.sleep(0.05)
    print(f"server answering: {since():.1f} s")
    browser.get(base + "/")
    print(f"page loaded (html, scripts): {since():.1f} s")
    seen: dict[str, float] = {}
    caught: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < 4:
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:g} s only {sorted(seen)}")
        if "charts" not in seen and browser.js(CHARTS_DRAWN):
            seen["charts"] = since()
            read = browser.js("return document.getElementById('loading').dataset.rowsRead")
            print(f"first charts drawn: {seen['charts']:.1f} s ({int(read):,} rows read then)")
        if "health" not in seen and browser.js(HEALTH_SHOWN):
            seen["health"] = since()
            print(f"health numbers shown: {seen['health']:.1f} s")
        if "caught" not in seen:
            info = get(base, "/api/sensors")
            if info["caught_up"]:
                seen["caught"] = since()
                caught.update(info)
                print(
                    f"caught up (/api/sensors): {seen['caught']:.1f} s "
                    f"({info['rows_read']:,} rows read)"
                )
        if "caught" in seen and "full" not in seen:
            span = caught["end"] - caught["start"] - 60_000  # the charts' first and last points
            if browser.js(FULL_DAY, span):
                seen["full"] = since()
                print(f"full span shown on the page: {seen['full']:.1f} s")
        time.sleep(0.1)
    shot = browser.screenshot("dashboard-day", full_page=True)
    print(f"screenshot: {shot}")
    # another city: its charts drawn
    cities = list(caught["cities"])
    t = time.perf_counter()
    browser.js(
        "const s = document.getElementById('city-select');"
        "s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        cities[-1],
    )
    browser.wait_for_js(
        "const c = [...document.querySelectorAll('#charts .chart')];"
        " return c.length === arguments[1].length"
        " && c.every((e, i) => e.dataset.sensor === arguments[1][i]"
        " && Number(e.dataset.points) > 1)",
        cities[-1],
        caught["cities"][cities[-1]],
        timeout=120,
    )
    print(f"another city's charts drawn: {time.perf_counter() - t:.2f} s")
    # a drag across a quarter of the first chart (of a day: about 6 h, read from the store)
    zoomed = drag(browser, timeout)
    print(
        f"drag-zoom drawn: {zoomed['took']:.2f} s ({zoomed['rows']:,} rows of "
        f"{(zoomed['end'] - zoomed['start']) / 3600_000:.1f} h, source {zoomed['source']})"
    )
    t = time.perf_counter()
    browser.get(base + "/")
    browser.wait_for_js(
        "return window.cosmobacDashboard && window.cosmobacDashboard.ready", timeout=120
    )
    print(f"reload with the cache warm, until ready: {time.perf_counter() - t:.2f} s")
    errors = browser.console_errors()
    off = browser.requests_off_loopback()
    print(f"console errors: {len(errors)}; requests off loopback: {len(off)}")
    for line in errors + off:
        print(f"  {line}")
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        peak = next(
            (line for line in status.read_text().splitlines() if line.startswith("VmHWM")), ""
        )
        print(f"dashboard process peak memory: {peak.split(':')[1].strip()}")


def drag(browser: Any, timeout: float) -> dict[str, Any]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    over = browser.driver.find_element(By.CSS_SELECTOR, "#charts .chart .u-over")
    chart, start = browser.js(
        "const e = document.querySelector('#charts .chart'); return [e.id, e.dataset.start]"
    )
    width = over.size["width"]
    t = time.perf_counter()
    (
        ActionChains(browser.driver)
        .move_to_element_with_offset(over, -width // 8, 0)
        .click_and_hold()
        .move_by_offset(width // 4, 0)
        .release()
        .perform()
    )
    found = browser.wait_for_js(
        "const e = document.getElementById(arguments[0]);"
        " return e.dataset.zoomed === 'true' && e.dataset.start !== arguments[1]"
        " && {rows: Number(e.dataset.rows), start: Number(e.dataset.start),"
        "     end: Number(e.dataset.end), source: e.dataset.source}",
        chart,
        start,
        timeout=timeout,
        interval=0.02,
    )
    return {**found, "took": time.perf_counter() - t}


if __name__ == "__main__":
    main()
