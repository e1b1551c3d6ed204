"""Built-in sink ``stdout``: documents printed as JSON lines (or a short table) on standard output.

A row whose document cannot be printed as JSON (a value JSON cannot carry, text with a lone
surrogate) is rejected with the reason and the others are printed; text the terminal's encoding
cannot show is printed with ``\\u`` escapes (the same JSON). Standard output closed (a pipe whose
reader ended) stops the sink; another error writing it is an outage, retried.
"""

from __future__ import annotations

import errno
import sys

import attrs

from ..batch import Batch
from ..documents import to_documents
from ..errors import SinkError
from ..hookspecs import Register, hookimpl
from ..interfaces import WriteResult
from ._faults import json_lines


@attrs.define(eq=False)
class StdoutSink:
    """Print each document. Keys: ``format`` — ``"json"`` (default, one document a line) or
    ``"summary"`` (one line per batch: rows, sensors, time span)."""

    format: str = attrs.field(default="json", validator=attrs.validators.in_(("json", "summary")))

    def write(self, batch: Batch) -> WriteResult | None:
        out = sys.stdout
        rejected: dict[int, str] = {}
        if self.format == "summary":
            text = ""
            if len(batch):
                first, last = to_documents(batch.select([0, len(batch) - 1]))
                sensors = len(set(batch["sensor_id"].tolist()))
                text = (
                    f"{len(batch)} rows from {sensors} sensors, "
                    f"{first['timestamp']} .. {last['timestamp']}\n"
                )
        else:
            encoding = getattr(out, "encoding", None) or "utf-8"
            ascii_only = encoding.lower().replace("-", "").replace("_", "") != "utf8"
            parts = []
            for position, line in json_lines(to_documents(batch), ensure_ascii=ascii_only):
                if isinstance(line, bytes):
                    parts.append(line.decode("utf-8"))
                else:
                    rejected[position] = line
            text = "".join(parts)
        try:
            out.write(text)
            out.flush()
        except BrokenPipeError:
            raise SinkError(
                "stdout sink: standard output is closed (its reader ended)", transient=False
            ) from None
        except OSError as exc:
            raise SinkError(
                f"stdout sink: writing standard output failed: {exc.strerror or exc}"
                + (f" ({errno.errorcode.get(exc.errno, '')})" if exc.errno else ""),
                transient=True,
            ) from None
        return WriteResult(rejected=rejected) if rejected else None

    def close(self) -> None:
        pass


@hookimpl
def register_sinks(register: Register) -> None:
    register("stdout", StdoutSink, checkpoint_keys=())
