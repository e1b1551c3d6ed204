"""Writer process for test_store_processes.py: appends batches to a SQLite store, then
creates DONE.

Usage: python store_writer.py DB BATCHES ROWS DONE [PAUSE_S]

Reading k of batch b has ``sensor_id`` ``s-{k % 5}`` and ``timestamp`` ``b * ROWS + k`` (epoch ms);
from the middle batch on, rows carry an extra column ``status_code`` (the table is altered while
readers run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from cosmobac import Batch
from cosmobac_sqlite import SQLiteStore


def main() -> None:
    db, batches, rows, done = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    k = np.arange(rows)
    with SQLiteStore(db) as store:
        for b in range(batches):
            columns = {
                "timestamp": b * rows + k,
                "sensor_id": np.array([f"s-{i % 5}" for i in range(rows)], dtype=object),
                "temperature": np.where(k % 7 == 0, np.nan, k * 0.5),
            }
            if b >= batches // 2:
                columns["status_code"] = k % 3
            store.append(Batch.from_columns(columns))
            if pause:
                time.sleep(pause)
    done.write_text("done\n")


if __name__ == "__main__":
    main()
