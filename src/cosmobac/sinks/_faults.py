"""What the built-in sinks share about failures: which rows a format cannot hold (content: those
rows are rejected and dead-lettered) and which file-system errors are outages (retried).

The rule, for every built-in sink:

* a failure caused by a row's content — a value JSON or UTF-8 cannot carry, a name the file system
  refuses (too long, invalid), a document larger than the target takes — rejects exactly the rows
  concerned, with the reason; the rest of the batch is written and the stream continues;
* an outage — a full disk (``ENOSPC``), a quota (``EDQUOT``), a file-size limit (``EFBIG``), an I/O
  error, a timeout — raises a transient :class:`~cosmobac.errors.SinkError`: nothing of the batch
  counts as written and the forwarder retries it with backoff;
* a configuration problem — a path that cannot be written (permissions, a read-only file system,
  a file where a folder should be) — raises a permanent ``SinkError``: the sink stops, its rows
  stay pending until the configuration is fixed.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from ..errors import SinkError

__all__ = ["CONTENT_ERRNOS", "json_lines", "os_errno", "os_failure", "unencodable"]

#: errors a *name derived from the data* can cause (the parquet sink's partition folders)
CONTENT_ERRNOS: Final = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ})
#: errors of a configured path: retrying does not help, the configuration must change
CONFIG_ERRNOS: Final = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.ENOENT,
    }
)
_ERRNO_TEXT = re.compile(r"errno[ =:]*(\d+)", re.IGNORECASE)


def os_errno(exc: OSError) -> int | None:
    """The ``errno`` of ``exc``; pyarrow's I/O errors carry it only in their text
    (``"... Detail: [errno 28] No space left on device"``)."""
    if exc.errno is not None:
        return int(exc.errno)
    found = _ERRNO_TEXT.search(str(exc))
    return int(found.group(1)) if found else None


def os_failure(sink: str, path: os.PathLike[str] | str, exc: OSError) -> SinkError:
    """A ``SinkError`` for a file-system error writing ``path``: permanent for configuration
    problems (:data:`CONFIG_ERRNOS`), transient (an outage, retried) for everything else —
    notably a full disk, a quota or a file-size limit."""
    code = os_errno(exc)
    detail = exc.strerror or str(exc)
    if code is not None and code in CONFIG_ERRNOS:
        return SinkError(
            f"{sink} sink: cannot write {os.fspath(path)!r}: {detail} ({errno.errorcode[code]}); "
            "fix the path or its permissions",
            transient=False,
        )
    name = errno.errorcode.get(code, "") if code is not None else ""
    return SinkError(
        f"{sink} sink: writing {os.fspath(path)!r} failed: {detail}"
        + (f" ({name})" if name else "")
        + "; nothing of the batch is acknowledged, it is written again after a backoff",
        transient=True,
    )


def _dumps(doc: Any, ensure_ascii: bool) -> str:
    return json.dumps(doc, ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":"))


def unencodable(doc: Mapping[str, Any]) -> str | None:
    """Why ``doc`` cannot be written as UTF-8 JSON (naming the field), or ``None`` if it can."""
    try:
        _dumps(doc, False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        for name, value in doc.items():
            try:
                _dumps(value, False).encode("utf-8")
            except (TypeError, ValueError) as field_exc:
                return f"field {name!r} cannot be written as JSON: {_short(field_exc)}"
        return f"document cannot be written as JSON: {_short(exc)}"
    return None


def _short(exc: BaseException) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return f"text holds {exc.object[exc.start : exc.end]!r}, which UTF-8 cannot encode"
    if "Out of range float" in str(exc):
        return "it holds a non-finite number (NaN or infinity), which JSON cannot carry"
    return str(exc)[:200]


def json_lines(
    documents: Iterable[Mapping[str, Any]], *, ensure_ascii: bool = False
) -> Iterator[tuple[int, bytes | str]]:
    """Each document as one UTF-8 JSON line (bytes ending in ``\\n``), or, for a document that
    cannot be one, the reason (a ``str``), by position."""
    for position, doc in enumerate(documents):
        try:
            yield position, (_dumps(doc, ensure_ascii) + "\n").encode("utf-8")
        except (TypeError, ValueError):
            yield position, unencodable(doc) or "document cannot be written as JSON"
