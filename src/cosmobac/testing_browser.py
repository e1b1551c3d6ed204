"""Headless Chromium for tests that look at a page as a person would (re-exported by
:mod:`cosmobac.testing`).

:func:`headless_chromium` starts Debian's ``chromium`` through its ``chromedriver`` (selenium; both
found at fixed paths, so Selenium Manager never downloads anything) and yields a :class:`Browser`.
The browser reaches loopback only: every host name but ``localhost`` resolves to nothing and every
other address goes to a proxy that does not exist, so a page that asks for something on the
internet gets an error instead of an answer. Each URL the page requested is kept
(:meth:`Browser.requests`), so a test can assert ``browser.requests_off_loopback() == []``;
the console's errors are kept too (:meth:`Browser.console_errors`). Screenshots go to the
artefacts folder given. The driver and every Chromium process are ended when the ``with`` block
ends, whether the test passed or not.

Needs ``selenium`` (``cosmobac[test]``) and ``apt-get install chromium chromium-driver``.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "INSTALL_CHROMIUM",
    "Browser",
    "BrowserUnavailable",
    "chromium_paths",
    "headless_chromium",
    "is_loopback_url",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_CHROMIUM = "apt-get install -y --no-install-recommends chromium chromium-driver"

# Schemes that never reach a network: chrome:// are Chromium's own pages (its new tab page loads
# before the first get()), chrome-error:// the page it shows for a failed load.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about", "javascript", "chrome", "chrome-error"})
# Chromium asks every server for /favicon.ico by itself and logs a 404 as a console error.
_FAVICON_MISSING = re.compile(r"/favicon\.ico - Failed to load resource: the server responded")
_NAMED_LOOPBACK = frozenset({"localhost"})

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--dns-prefetch-disable",
    "--metrics-recording-only",
    "--password-store=basic",
    # loopback only: names other than localhost do not resolve ...
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    # ... and addresses go through a proxy that is not there (loopback bypasses proxies) ...
    "--proxy-server=http://127.0.0.1:9",
    # ... which WebRTC's UDP would not use
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)


class BrowserUnavailable(RuntimeError):
    """Chromium, its driver or selenium is not installed; the message says how to install it."""


def chromium_paths(
    chromium: str | os.PathLike[str] | None = None,
    chromedriver: str | os.PathLike[str] | None = None,
) -> tuple[str, str]:
    """The paths of ``chromium`` and ``chromedriver``: those given, else ``$COSMOBAC_CHROMIUM``
    and ``$COSMOBAC_CHROMEDRIVER``, else Debian's (``/usr/bin``), else those names on ``PATH``;
    :class:`BrowserUnavailable`, with the install command, if one is missing."""
    found = []
    for given, default, variable in (
        (chromium, CHROMIUM, "COSMOBAC_CHROMIUM"),
        (chromedriver, CHROMEDRIVER, "COSMOBAC_CHROMEDRIVER"),
    ):
        name = Path(default).name
        given = given or os.environ.get(variable) or None
        path = str(given) if given else (default if Path(default).is_file() else shutil.which(name))
        if not path or not Path(path).is_file():
            raise BrowserUnavailable(f"{given or name} is not installed: {INSTALL_CHROMIUM}")
        found.append(path)
    return found[0], found[1]


def is_loopback_url(url: str) -> bool:
    """Whether loading ``url`` stays on this machine: a loopback host (``localhost``, 127.0.0.0/8,
    ``::1``), ``file:`` without a host, or a scheme that is no request at all (``data:``,
    ``blob:``, ``about:``, ``javascript:``, Chromium's own ``chrome:`` and ``chrome-error:``)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return True
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme == "file":
        return host in ("", *_NAMED_LOOPBACK)
    if host in _NAMED_LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Browser:
    """A headless Chromium page (made by :func:`headless_chromium`).

    ``driver`` is the selenium ``WebDriver``, for anything the helpers do not cover;
    ``artifacts`` the folder screenshots go to."""

    def __init__(self, driver: Any, artifacts: Path) -> None:
        self.driver = driver
        self.artifacts = artifacts
        self._requests: list[str] = []
        self._failed: dict[str, str] = {}
        self._console: list[dict[str, Any]] = []
        self._ids: dict[str, str] = {}
        self.screenshots: list[Path] = []
        """The screenshots written, in order."""

    # -- pages -----------------------------------------------------------------------------
    def get(self, url: str) -> None:
        """Load ``url`` and wait until its document is loaded."""
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body: ``return ...``) in the page and return its value."""
        return self.driver.execute_script(script, *args)

    def wait_for_js(
        self, script: str, *args: Any, timeout: float = 10.0, interval: float = 0.1
    ) -> Any:
        """Run ``script`` until it returns something truthy and return that; ``TimeoutError``
        after ``timeout`` seconds, naming the script, its last value and the console errors."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"after {timeout:g} s, {script!r} still returns {value!r}; "
                    f"console errors: {self.console_errors()}"
                )
            time.sleep(interval)

    def texts(self, css: str) -> list[str]:
        """The visible text of each element ``css`` selects, in document order."""
        return [str(t) for t in self.js(_TEXTS, css)]

    def table(self, css: str = "table") -> list[dict[str, str]]:
        """The first table ``css`` selects as one dict per body row, keyed by the header cells."""
        rows = self.js(_TABLE, css)
        if rows is None:
            raise LookupError(f"no element matches {css!r}")
        return [{str(k): str(v) for k, v in row.items()} for row in rows]

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Write the viewport (or, with ``full_page``, the whole page, however long) as
        ``<artifacts>/<name>.png`` and return the path."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "screenshot"
        path = self.artifacts / (safe if safe.endswith(".png") else f"{safe}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "scale": 1}
                    | {k: size[k] for k in ("width", "height")},
                },
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        elif not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"chromium could not write the screenshot {path}")
        self.screenshots.append(path)
        return path

    # -- what the page did -------------------------------------------------------------------
    def _drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                self._ids[params["requestId"]] = url
                self._requests.append(url)
            elif method == "Network.webSocketCreated":
                self._requests.append(params["url"])
            elif method == "Network.loadingFailed":
                url = self._ids.get(params["requestId"])
                if url is not None:  # not Chromium's own start-up navigation (never logged sent)
                    self._failed[url] = params.get("errorText", "")
        for entry in self.driver.get_log("browser"):
            self._console.append(entry)

    def requests(self) -> list[str]:
        """Every URL the browser requested so far (the page, its resources, its fetches, its
        event streams and web sockets), in order, repeats included. Requests of web workers are
        not seen here (they are blocked all the same)."""
        self._drain()
        return list(self._requests)

    def requests_off_loopback(self) -> list[str]:
        """The requested URLs that would leave this machine (see :func:`is_loopback_url`); they
        were blocked, but a page that asks for them is wrong."""
        return [url for url in self.requests() if not is_loopback_url(url)]

    def failed_requests(self) -> dict[str, str]:
        """``URL → Chromium's error`` for each request the page made that failed (blocked ones
        included); Chromium's own start-up navigation, which the blocking proxy fails before any
        page loads, is not one of them."""
        self._drain()
        return dict(self._failed)

    def console(self) -> list[dict[str, Any]]:
        """Every console entry so far: ``level`` (``SEVERE``, ``WARNING``, ``INFO``), ``message``,
        ``source`` and ``timestamp``."""
        self._drain()
        return list(self._console)

    def console_errors(self) -> list[str]:
        """The messages of the ``SEVERE`` console entries: uncaught exceptions,
        ``console.error`` calls and resources that failed to load (but not a missing
        ``/favicon.ico``, which Chromium asks for by itself)."""
        return [
            e["message"]
            for e in self.console()
            if e.get("level") == "SEVERE" and not _FAVICON_MISSING.search(e["message"])
        ]


_TEXTS = """
return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim());
"""
_TABLE = """
const table = document.querySelector(arguments[0]);
if (!table) return null;
const heads = Array.from(table.querySelectorAll('thead th'), th => th.innerText.trim());
return Array.from(table.querySelectorAll('tbody tr'), tr => {
  const row = {};
  Array.from(tr.cells).forEach((td, i) => { row[heads[i] ?? String(i)] = td.innerText.trim(); });
  return row;
});
"""


def _processes_using(marker: str) -> list[int]:
    """The ids of processes whose command line names ``marker`` (our user-data-dir)."""
    found: list[int] = []
    if not Path("/proc").is_dir():  # not Linux: driver.quit() is all there is
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _end(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)


@contextlib.contextmanager
def headless_chromium(
    artifacts: str | os.PathLike[str],
    *,
    width: int = 1400,
    height: int = 1000,
    chromium: str | os.PathLike[str] | None = None,
    chromedriver: str | os.PathLike[str] | None = None,
    extra_flags: tuple[str, ...] = (),
    page_load_timeout: float = 30.0,
) -> Iterator[Browser]:
    """Start headless Chromium (``width`` × ``height``, a fresh profile in a temporary folder,
    loopback only) and yield a :class:`Browser` whose screenshots go to ``artifacts``.

    ``chromium`` and ``chromedriver`` default to Debian's (:func:`chromium_paths`);
    :class:`BrowserUnavailable` if they or selenium are missing. On leaving the block the
    driver quits and any Chromium process of this profile that is left is killed."""
    chromium, chromedriver = chromium_paths(chromium, chromedriver)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserUnavailable(
            "selenium is not installed: pip install 'cosmobac[test]'"
        ) from None
    folder = Path(artifacts)  # made by the first screenshot
    with tempfile.TemporaryDirectory(prefix="cosmobac-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        for flag in extra_flags:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True})
        # a driver path given: selenium skips Selenium Manager (no download, no lookup)
        service = Service(executable_path=chromedriver)
        driver = None
        try:
            driver = webdriver.Chrome(service=service, options=options)
            driver.set_page_load_timeout(page_load_timeout)
            yield Browser(driver, folder)
        finally:
            try:
                if driver is not None:
                    driver.quit()
            finally:
                with contextlib.suppress(Exception):
                    service.stop()
                _end(_processes_using(profile))
