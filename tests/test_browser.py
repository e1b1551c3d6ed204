"""The real-browser harness (``cosmobac.testing.headless_chromium`` and the ``cosmobac_browser``
fixture), proved on the HTML report: served over loopback HTTP and opened in Debian's headless
Chromium, its tables show the store's numbers, its image loads, its charts draw, the console stays
clean and no request leaves loopback; a page that reaches for the internet is caught and blocked.

Chromium and chromedriver come from Debian's ``chromium`` and ``chromium-driver``
(``.ci/debian-packages.txt``; nox installs them). Without them these tests skip locally and fail
under ``CI``. Screenshots are written to ``build/test-artifacts`` (or
``$COSMOBAC_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosmobac.evaluation.commands import report_command
from cosmobac.pipeline import Pipeline
from cosmobac.testing import (
    BrowserUnavailable,
    chromium_paths,
    headless_chromium,
    is_loopback_url,
    require_command,
    skip_or_fail,
)
from cosmobac.testing_browser import _processes_using

pytestmark = pytest.mark.needs_plugins  # the sqlite store


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real HTTP server on a free loopback port, serving ``folder``: yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-browser-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


IMAGES_LOADED = """
const images = Array.from(document.images);
return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0) && images.length;
"""
CHARTS_DRAWN = """
const charts = Array.from(document.querySelectorAll("div.chart"));
return window.cosmobacReport && charts.length > 0
  && charts.every(c => c.querySelector("canvas") && Number(c.dataset.points) > 0)
  && charts.length;
"""


@pytest.mark.slow
def test_the_report_in_a_real_browser_shows_the_stores_numbers(cosmobac_browser, tmp_path):
    store = tmp_path / "edge.db"
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
[sensor]
plugin = "simulated"
cities = 2
sensors_per_city = 2

[store]
plugin = "sqlite"
path = "{store}"

[[transforms]]
plugin = "zscore"

[run]
duration = "1h"
"""
    )
    with Pipeline.from_config(str(config), need_sensor=True) as pipeline:
        pipeline.collect()
    site = tmp_path / "site"
    result = CliRunner().invoke(
        report_command,
        [str(config), "--out", str(site / "report.html"), "--sensors", "2"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as con:
        per_city = con.execute(
            "SELECT city, COUNT(*), COUNT(DISTINCT sensor_id), SUM(anomaly_flag) "
            "FROM readings GROUP BY city ORDER BY city"
        ).fetchall()
        per_type = dict(
            con.execute(
                "SELECT anomaly_type, COUNT(*) FROM readings WHERE anomaly_flag "
                "GROUP BY anomaly_type"
            ).fetchall()
        )
    assert len(per_city) == 2 and per_type  # something to compare

    browser = cosmobac_browser
    with serve(site) as base:
        browser.get(base + "report.html")
        images = browser.wait_for_js(IMAGES_LOADED, timeout=20)
        charts = browser.wait_for_js(CHARTS_DRAWN, timeout=20)
        shot = browser.screenshot("report", full_page=True)

    assert images == 1  # the detector scores
    assert charts == 2 * 2 + 2 * 5  # each sensor of the two cities, then two sensors' metrics
    assert browser.texts("h2")[:2] == ["Rows per city", "Anomalies by type"]
    cities = browser.table("table")
    assert [
        (r["city"], int(r["rows"]), int(r["sensors"]), int(r["labelled anomalous rows"]))
        for r in cities
    ] == per_city
    types = browser.table("h2:nth-of-type(2) + table")
    assert {r["anomaly type"]: int(r["rows"]) for r in types} == per_type
    assert browser.console_errors() == []
    assert browser.requests_off_loopback() == []
    assert [url for url in browser.requests() if url.startswith("http")] == [base + "report.html"]
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {shot}")


GREEDY_PAGE = """<!DOCTYPE html>
<html><head><title>greedy</title><link rel="icon" href="data:,"></head>
<body><h1>a page that reaches for the internet</h1>
<img src="http://93.184.216.34/pixel.png" onerror="window.imageFailed = true">
<script>
window.outcome = null;
fetch("https://example.com/x.js")
  .then(r => { window.outcome = "fetched " + r.status; })
  .catch(e => { window.outcome = "blocked: " + e; });
</script></body></html>
"""


def test_the_guard_catches_a_page_that_reaches_off_loopback(cosmobac_browser, tmp_path):
    (tmp_path / "greedy.html").write_text(GREEDY_PAGE)
    browser = cosmobac_browser
    with serve(tmp_path) as base:
        browser.get(base + "greedy.html")
        outcome = browser.wait_for_js("return window.outcome", timeout=15)
        assert browser.wait_for_js("return window.imageFailed", timeout=15)
    assert outcome.startswith("blocked: TypeError"), outcome  # the fetch failed: no answer came
    # a host name does not resolve, an address goes nowhere: both are seen and blocked
    off = ["http://93.184.216.34/pixel.png", "https://example.com/x.js"]
    assert sorted(browser.requests_off_loopback()) == off
    failed = browser.failed_requests()
    assert sorted(failed) == off, failed  # the page's own failed requests, and nothing else
    assert all(any(url in e for e in browser.console_errors()) for url in off)
    assert browser.screenshot("greedy").is_file()


def test_the_browser_is_ended_even_when_the_test_fails(tmp_path, monkeypatch):
    chromium_paths_or_skip()
    # a driver path is given, so selenium never asks Selenium Manager (which would download one)
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_download(self, args):
        raise AssertionError(f"Selenium Manager was asked: {args}")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_download)
    profile = None
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        headless_chromium(tmp_path / "artifacts", width=800, height=600) as browser,
    ):
        profile = browser.driver.capabilities["chrome"]["userDataDir"]
        assert _processes_using(profile)  # chromium runs with the profile of its own
        browser.get("data:text/html,<title>t</title><p id=p>hello</p>")
        assert browser.texts("#p") == ["hello"]
        assert browser.js("return [window.innerWidth, window.innerHeight]")[0] == 800
        raise RuntimeError("the test failed")
    assert profile is not None
    assert _processes_using(profile) == []
    assert not Path(profile).exists()  # the temporary profile is gone too


def chromium_paths_or_skip() -> None:
    try:
        chromium_paths()
    except BrowserUnavailable as exc:
        skip_or_fail(str(exc))


INNER_TESTS = """
def test_looks(cosmobac_browser):
    cosmobac_browser.get("data:text/html,<h1>hello</h1>")
    cosmobac_browser.screenshot("hello")


def test_breaks(cosmobac_browser):
    cosmobac_browser.get("data:text/html,<h1>broken</h1>")
    assert False, "broken on purpose"
"""


def inner_pytest(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a new process on ``folder``'s tests (cosmobac.testing loads as a plugin)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**environ, **env},
        timeout=240,
    )


@pytest.mark.slow
def test_the_fixture_keeps_screenshots_and_never_skips_under_ci(tmp_path):
    chromium_paths_or_skip()
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    artifacts = tmp_path / "kept"
    done = inner_pytest(tmp_path, COSMOBAC_TEST_ARTIFACTS=str(artifacts))
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    hello = artifacts / "test_inner-test_looks" / "hello.png"
    failed = artifacts / "test_inner-test_breaks" / "failed.png"  # a failing test leaves one
    assert hello.is_file() and failed.is_file()
    summary = done.stdout.split("screenshots (cosmobac_browser)", 1)[1]
    assert str(hello) in summary and str(failed) in summary

    missing = {"COSMOBAC_CHROMIUM": str(tmp_path / "no-chromium")}
    done = inner_pytest(tmp_path, **missing)
    assert "2 skipped" in done.stdout, done.stdout
    assert "apt-get install -y --no-install-recommends chromium chromium-driver" in done.stdout
    done = inner_pytest(tmp_path, CI="1", **missing)
    assert done.returncode == 1 and "2 errors" in done.stdout, done.stdout
    assert "CI is set: a missing tool fails instead of skipping" in done.stdout


def test_wait_for_js_says_what_it_waited_for(cosmobac_browser):
    cosmobac_browser.get("data:text/html,<p>nothing ready</p>")
    with pytest.raises(TimeoutError, match=r"window\.ready.*still returns None"):
        cosmobac_browser.wait_for_js("return window.ready", timeout=0.3)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/a", True),
        ("http://127.1.2.3/", True),
        ("http://localhost:5/x", True),
        ("http://[::1]:8080/", True),
        ("data:text/html,hi", True),
        ("blob:http://127.0.0.1:1/uuid", True),
        ("about:blank", True),
        ("chrome://new-tab-page/", True),
        ("file:///tmp/report.html", True),
        ("https://example.com/x.js", False),
        ("http://93.184.216.34/", False),
        ("ws://10.0.0.1/socket", False),
        ("file://server/share/x", False),
        ("http://localhost.example.com/", False),
    ],
)
def test_is_loopback_url(url, loopback):
    assert is_loopback_url(url) is loopback


def test_missing_chromium_names_the_install_command():
    with pytest.raises(BrowserUnavailable, match="apt-get install .*chromium chromium-driver"):
        chromium_paths(chromium="/nowhere/chromium")


def test_a_missing_command_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        require_command("no-such-command-here", "no-such-package")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-command-here is not installed"):
        require_command("no-such-command-here", "no-such-package")


def test_ci_installs_chromium_and_its_driver():
    listing = Path(__file__).resolve().parents[1] / ".ci" / "debian-packages.txt"
    pairs = {
        tuple(line.split())
        for line in listing.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {("chromium", "chromium"), ("chromium-driver", "chromedriver")} <= pairs
