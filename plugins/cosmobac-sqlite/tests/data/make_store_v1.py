"""Writes ``store_v1.sql`` and ``store_v1.json``: a store file of schema version 1 as
cosmobac-sqlite wrote it before the compact schema (run with that code: main at b0cf280), dumped as
SQL, and what that code read from it (``scan``, ``dead_letters``, checkpoints, states, stats).

The migration test builds the file from the SQL, opens it with the current code and compares what
it reads with the JSON. Kept for the record; re-running it with the current code writes a newer
schema, which is not what the test needs.

Run: ``python plugins/cosmobac-sqlite/tests/data/make_store_v1.py``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from cosmobac.batch import Batch
from cosmobac.interfaces import InputReject
from cosmobac_sqlite import SQLiteStore

HERE = Path(__file__).parent
T0 = 1_767_225_600_000


def batch(n: int, start: int, sensor: str, **columns: object) -> Batch:
    data: dict[str, object] = {
        "timestamp": np.arange(n, dtype=np.int64) * 1000 + start,
        "sensor_id": np.array([sensor] * n, dtype=object),
        "temperature": np.linspace(-5.25, 31.0, n) + 1 / 3,
    }
    for name, value in columns.items():
        data[name] = value if isinstance(value, np.ndarray) else np.array([value] * n, dtype=object)
    return Batch.from_columns(data)


def jsonable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v1.db"
        with SQLiteStore(path) as store:
            full = {
                "city": "Berlin",
                "latitude": np.full(4, 52.52),
                "longitude": np.full(4, 13.405),
                "firmware_version": "1.0.0",
                "model": "EnviroNode 200",
                "manufacturer": "Nordlys Sensing",
                "humidity": np.array([40.5, np.nan, 41.0, -0.0]),
                "pressure": np.array([1013.25, 1e300, np.nan, 5e-324]),
                "anomaly_flag": np.array([False, True, True, False]),
                "anomaly_type": np.array([None, "spike", None, None], dtype=object),
            }
            store.append(batch(4, T0, "berlin-001", **full))
            # the same sensor after a firmware update, and another with odd text and gaps
            store.append(batch(4, T0 + 4000, "berlin-001", **{**full, "firmware_version": "1.1"}))
            odd = {
                "city": np.array(["Zürich", "", None], dtype=object),
                "model": 'it\'s "quoted"; DROP TABLE x --',
                "anomaly_flag": np.array([True, False, True]),
                "anomaly_type": np.array(["drift", None, "drift"], dtype=object),
                "voltage": np.array([np.inf, -np.inf, 3.3]),
            }
            store.append(batch(3, T0 - 10**9, "sensor \u00e9\u4e2d\U0001f600", **odd))
            extras = {
                "status_code": np.arange(3, dtype=np.int64),
                "note": np.array(["a", None, "c"], dtype=object),
                "gain": np.array([0.5, np.nan, 2.0]),
                "ok": np.array([True, False, True]),
            }
            store.append(batch(3, T0 + 20_000, "berlin-002", **extras))
            store.append(batch(2, T0 + 30_000, "berlin-002"))  # seq 15-16
            store.read("cosmos", 100)
            store.ack("cosmos", [1, 2, 3, 5, 9], state={"etag": "x1"})
            store.dead_letter("cosmos", [4, 6], "too large")
            store.replay("cosmos", [6])
            store.read("csv", 100)
            store.ack("csv", range(1, 17))
            store.append_input(
                batch(1, T0 + 40_000, "mqtt-1"),
                sensor="mqtt",
                state='{"offset": 7}',
                rejects=[InputReject("topic/a:3", "bad json", "{x")],
            )
        with sqlite3.connect(path) as conn:  # retention pruned the newest row (seq 17)
            conn.execute("DELETE FROM readings WHERE seq = 17")
        with SQLiteStore(path, create=False) as store:
            rows = store.scan()
            expected = {
                "columns": list(rows.columns),
                "rows": [[jsonable(v) for v in row.values()] for row in rows.rows()],
                "dtypes": {name: str(rows[name].dtype) for name in rows.columns},
                "dead_letters": [
                    [
                        d.consumer,
                        d.seq,
                        d.reason,
                        d.replayed,
                        [jsonable(v) for v in d.reading.values()],
                    ]
                    for d in store.dead_letters()
                ],
                "checkpoints": {c: store.checkpoint(c) for c in store.consumers()},
                "states": {c: store.load_state(c) for c in store.consumers()},
                "read_cosmos": store.read("cosmos", 100)["seq"].tolist(),
                "last_timestamp": store.last_timestamp(),
                "pending": store.stats().pending,
            }
        with sqlite3.connect(path) as conn:
            # iterdump writes infinities as Inf, which SQLite does not parse: 9e999 it does
            script = "\n".join(conn.iterdump()).replace(",Inf,", ",9e999,")
            script = script.replace(",-Inf,", ",-9e999,")
    (HERE / "store_v1.sql").write_text(script + "\n", encoding="utf-8")
    (HERE / "store_v1.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
