"""What Cosmos DB accepts: the size limits of an item, a transactional batch and a partition key
value, the rules for ids, and upper bounds on the JSON size of values (to plan requests without
serialising every document)."""

from __future__ import annotations

import json
import math
from typing import Any, Final

from cosmobac.documents import MAX_ID_LENGTH

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_DOCUMENT_BYTES",
    "MAX_PARTITION_KEY_BYTES",
    "NUMBER_BOUND",
    "id_problem",
    "json_value",
    "value_bound",
]

MAX_DOCUMENT_BYTES: Final = 2 * 1024 * 1024
"""Cosmos DB's largest item (2 MB of JSON)."""
MAX_BATCH_BYTES: Final = 2 * 1024 * 1024 - 64 * 1024
"""Largest transactional batch request body sent (the service limit is 2 MB; room for framing)."""
MAX_PARTITION_KEY_BYTES: Final = 2048
ID_FORBIDDEN: Final = frozenset("/\\?#")
NUMBER_BOUND: Final = 32  # characters of the longest JSON number Python writes, with slack


def value_bound(value: Any) -> tuple[int, str | None]:
    """An upper bound on the JSON size of ``value`` as the SDK writes it, and a problem if JSON
    cannot carry it."""
    if value is None:
        return 4, None
    if isinstance(value, str):
        return 6 * len(value) + 2, None
    if isinstance(value, bool):
        return 5, None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return 4, None  # cannot happen after to_documents; written as null
        return NUMBER_BOUND, None
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return 4, "holds a non-finite number (NaN or Infinity), which JSON cannot carry"
    except TypeError:
        return 4, f"a {type(value).__name__} cannot be written as JSON"
    return 6 * len(text) + 2, None


def json_value(value: Any) -> Any:
    """A value as documents carry it: non-finite floats are null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def id_problem(value: Any) -> str | None:
    """Why Cosmos DB would refuse ``value`` as an id, or None."""
    if not isinstance(value, str) or not value:
        return f"invalid id {value!r}: Cosmos DB ids are non-empty text"
    if len(value) > MAX_ID_LENGTH:
        return f"invalid id ({len(value)} characters): Cosmos DB allows at most {MAX_ID_LENGTH}"
    bad = sorted({c for c in value if c in ID_FORBIDDEN or ord(c) < 32 or ord(c) == 127})
    if bad:
        return f"invalid id {value[:80]!r}: Cosmos DB ids cannot contain {bad}"
    return None
