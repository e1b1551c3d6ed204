"""The names and value grammars of Bacalhau job specs: engine, source, publisher and network
types, the API's body limit, CPU and size quantities as the server parses them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from .model import SpecConfig

__all__ = [
    "CPU_QUANTITY",
    "ENGINES",
    "MAX_BODY",
    "NETWORK_TYPES",
    "PUBLISHERS",
    "SOURCES",
    "WASM_MEMORY_LIMIT",
    "canonical_name",
    "is_text_list",
    "params_by_name",
    "parse_bytes",
]

ENGINES: Final = ("docker", "wasm", "noop")
SOURCES: Final = (
    "inline",
    "urlDownload",
    "s3",
    "s3PreSigned",
    "ipfs",
    "local",
    "localDirectory",
    "noop",
    "s3managed",
)
PUBLISHERS: Final = ("local", "s3", "s3managed", "ipfs", "noop")
NETWORK_TYPES: Final = ("Default", "None", "Host", "Full", "HTTP", "Bridge")
MAX_BODY: Final = 10 * 1024 * 1024  # the API's request body limit
WASM_MEMORY_LIMIT: Final = 4 * 1024**3

CPU_QUANTITY: Final = re.compile(r"^(\d+(\.\d*)?|\.\d+)m?$")
_BYTES = re.compile(r"^(\d[\d,]*(\.\d*)?|\.\d+)([kmgtpezy]i?b?|b)?$")
_UNITS: Final = {
    "": 1,
    "b": 1,
    **{f"{u}{s}": 1000 ** (i + 1) for i, u in enumerate("kmgtpezy") for s in ("", "b")},
    **{f"{u}i{s}": 1024 ** (i + 1) for i, u in enumerate("kmgtpezy") for s in ("", "b")},
}


def canonical_name(value: str, choices: Iterable[str]) -> str | None:
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    return None


def parse_bytes(text: str) -> int:
    """Bytes in a go-humanize size as the server reads it (after lower-casing and removing
    spaces): ``"512Mb"`` is 512·10⁶, ``"1GiB"`` 2³⁰. ``ValueError`` when it is not a size."""
    value = text.lower().replace(" ", "").replace("\n", "")
    match = _BYTES.match(value)
    if not match:
        raise ValueError(text)
    number = float(match[1].replace(",", ""))
    return int(number * _UNITS[match[3] or ""])


def params_by_name(spec: SpecConfig) -> dict[str, tuple[str, Any]]:
    """Params keyed by lower-case name (engines decode them without regard to case)."""
    return {str(k).lower(): (str(k), v) for k, v in spec.params.items()}


def is_text_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
