"""Reader process for test_store_processes.py: reads, "delivers" and acknowledges rows of
one consumer until the writer is done and nothing is pending.

Usage: python store_reader.py DB CONSUMER OUT DONE LIMIT [PAUSE_S]

Each delivered row is appended to OUT as ``seq sensor_id timestamp`` and flushed to the OS before
the ack, like a sink that writes durably and then acknowledges. Killed at any point, a restart
continues from the store's checkpoint: rows may be delivered twice, never lost.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cosmobac_sqlite import SQLiteStore


def main() -> None:
    db, consumer, out, done = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    limit = int(sys.argv[5])
    pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    with SQLiteStore(db) as store, out.open("a") as sink:
        while True:
            batch = store.read(consumer, limit)
            if not len(batch):
                if done.exists() and not len(store.read(consumer, limit)):
                    break
                time.sleep(0.005)
                continue
            lines = zip(
                batch["seq"].tolist(),
                batch["sensor_id"].tolist(),
                batch["timestamp"].tolist(),
                strict=True,
            )
            sink.write("".join(f"{q} {s} {t}\n" for q, s, t in lines))
            sink.flush()
            if pause:  # a sink slow to confirm: kills mostly land between write and ack
                time.sleep(pause)
            store.ack(consumer, batch)
        print(f"done {store.checkpoint(consumer)}", flush=True)


if __name__ == "__main__":
    main()
