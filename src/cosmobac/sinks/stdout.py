"""Built-in sink ``stdout``: documents printed as JSON lines (or a short table) on standard output."""

from __future__ import annotations

import json
import sys

import attrs

from ..batch import Batch
from ..documents import to_documents
from ..hookspecs import Register, hookimpl


@attrs.define(eq=False)
class StdoutSink:
    """Print each document. Keys: ``format`` — ``"json"`` (default, one document a line) or
    ``"summary"`` (one line per batch: rows, sensors, time span)."""

    format: str = attrs.field(default="json", validator=attrs.validators.in_(("json", "summary")))

    def write(self, batch: Batch) -> None:
        out = sys.stdout
        if self.format == "summary":
            if len(batch):
                first, last = to_documents(batch.select([0, len(batch) - 1]))
                sensors = len(set(batch["sensor_id"].tolist()))
                out.write(
                    f"{len(batch)} rows from {sensors} sensors, "
                    f"{first['timestamp']} .. {last['timestamp']}\n"
                )
        else:
            for doc in to_documents(batch):
                out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()

    def close(self) -> None:
        pass


@hookimpl
def register_sinks(register: Register) -> None:
    register("stdout", StdoutSink)
