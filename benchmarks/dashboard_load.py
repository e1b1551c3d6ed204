"""Benchmark: how long ``cosmobac dashboard`` takes to have a page's data for a big store.

Give a pipeline file whose store is already filled (e.g. 1 day × 100 sensors at 1 Hz:
``cities = 10``, ``sensors_per_city = 10``, ``cosmobac collect FILE --duration 24h``). The script
starts ``cosmobac dashboard FILE`` on a free loopback port and times, from the start of the
process:

* ``first chart data``: the first ``/api/series`` answer for the first city holding a series
  (the page shows what was read so far while the cache catches up);
* ``caught up``: ``/api/sensors`` says the cache has read every stored row;
* ``first full page data``: right after that, every request the page makes on load
  (``/api/health``, ``/api/sensors``, ``/api/series`` for the first city at 1,000 points, and
  ``/api/anomalies?limit=50``) answered, each timed too.

Then ``/api/series`` for every city (what switching city costs) and a zoom into 6 h of one
sensor. The process's peak memory (VmHWM) is read from /proc where there is one.

Run: ``python benchmarks/dashboard_load.py FILE [--points 1000]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=600) as response:
        return json.loads(response.read())


def timed(base: str, path: str) -> tuple[Any, float]:
    t = time.perf_counter()
    data = get(base, path)
    return data, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cosmobac", "dashboard", args.config, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                get(base, "/api/nodes")
                break
            except OSError:
                time.sleep(0.1)
        print(f"server answering: {time.perf_counter() - t0:.1f} s")
        first_chart = None
        while True:
            info = get(base, "/api/sensors")
            if first_chart is None and info["cities"]:
                city = next(iter(info["cities"]))
                q = urllib.parse.urlencode({"city": city, "points": args.points})
                data = get(base, f"/api/series?{q}")
                if data["series"]:
                    first_chart = time.perf_counter() - t0
                    print(
                        f"first chart data: {first_chart:.1f} s ({info['rows_read']:,} rows read)"
                    )
            if info["caught_up"]:
                break
            time.sleep(0.5)
        caught = time.perf_counter() - t0
        print(f"caught up: {caught:.1f} s ({info['rows_read']:,} rows)")
        city = next(iter(info["cities"]))
        q = urllib.parse.urlencode({"city": city, "points": args.points})
        for path in ("/api/health", "/api/sensors", f"/api/series?{q}", "/api/anomalies?limit=50"):
            data, took = timed(base, path)
            print(f"  {path}: {took:.2f} s")
        print(f"first full page data: {time.perf_counter() - t0:.1f} s")
        series = data if "series" in data else get(base, f"/api/series?{q}")
        t = time.perf_counter()
        for other in info["cities"]:
            get(
                base,
                "/api/series?" + urllib.parse.urlencode({"city": other, "points": args.points}),
            )
        print(f"series of every city ({len(info['cities'])}): {time.perf_counter() - t:.2f} s")
        sensor = info["cities"][city][0]
        start = info["start"]
        q = urllib.parse.urlencode(
            {"sensor": sensor, "start": start, "end": start + 6 * 3600_000, "points": args.points}
        )
        zoom, took = timed(base, f"/api/series?{q}")
        s = zoom["series"][0]
        print(f"zoom into 6 h of {sensor}: {took:.2f} s ({s['rows']:,} rows, {s['source']})")
        del series
        status = Path(f"/proc/{proc.pid}/status")
        if status.exists():
            peak = next(
                (line for line in status.read_text().splitlines() if line.startswith("VmHWM")), ""
            )
            print(f"dashboard process peak memory: {peak.split(':')[1].strip()}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
