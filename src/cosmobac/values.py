"""The one parser for configuration values: flags, whole and real numbers, fractions, durations,
sizes and choices, for pipeline files, sensors, transforms, detectors, sinks, stores and plugins.

Guarantees:

* every function takes the key first and names it in its error, shows the bad value and says what
  is accepted, so a user can find what to fix;
* text is accepted wherever a number, flag, duration or size is, because values expanded from
  ``${VAR}`` are always text;
* a value of the wrong type (a list where a number belongs, ``True`` where a count belongs) raises
  ``TypeError``; a value of the right type that is out of range or unreadable raises ``ValueError``;
* there is one yes/no vocabulary, :data:`YES` and :data:`NO`, any case.

:func:`data_flag` reads flags found in *data* (a column of a batch, a cell of an imported file): it
uses the same words, and also reads a missing value as false.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import numpy as np

__all__ = [
    "NO",
    "YES",
    "choice",
    "click_callback",
    "data_flag",
    "did_you_mean",
    "duration",
    "flag",
    "fraction",
    "integer",
    "listen_address",
    "parse_duration",
    "real",
    "redact_url",
    "size",
    "web_url",
]

YES: Final = frozenset({"true", "yes", "on", "1", "t", "y"})
"""Text read as true, in any case."""
NO: Final = frozenset({"false", "no", "off", "0", "f", "n"})
"""Text read as false, in any case."""
_WORDS: Final = "true/false, yes/no, on/off, 1/0, t/f or y/n"

_DURATION_UNITS: Final = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_EXAMPLES: Final = "'30s', '15m', '6h', '1h30m', '7d' or a number of seconds"

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)$", re.IGNORECASE)
_SIZE_POWERS: Final = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_SIZE_EXAMPLES: Final = "'64MB', '128MiB', '1GiB' or a number of bytes"


def _show(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _check_bounds(
    key: str,
    value: Any,
    number: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> None:
    """``ValueError`` naming ``key`` unless ``number`` is within the bounds (inclusive ``minimum``
    and ``maximum``, exclusive ``above``)."""
    if (
        (minimum is None or number >= minimum)
        and (maximum is None or number <= maximum)
        and (above is None or number > above)
    ):
        return
    if minimum is not None and maximum is not None and above is None:
        accepted = f"between {_show(minimum)} and {_show(maximum)}"
    else:
        parts = [f"> {_show(above)}"] if above is not None else []
        parts += [f"≥ {_show(minimum)}"] if minimum is not None else []
        parts += [f"≤ {_show(maximum)}"] if maximum is not None else []
        accepted = " and ".join(parts)
    raise ValueError(f"{key} must be {accepted}, got {value!r}")


def real(
    key: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    """A finite float from a number or numeric text, within the bounds given (``minimum`` and
    ``maximum`` inclusive, ``above`` exclusive)."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating | str
    ):
        raise TypeError(f"{key} must be a number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    _check_bounds(key, value, number, minimum=minimum, maximum=maximum, above=above)
    return number


def fraction(key: str, value: Any) -> float:
    """A number from 0 to 1 inclusive (a probability, a share)."""
    return real(key, value, minimum=0.0, maximum=1.0)


def integer(key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int from an integer or integer text, from ``minimum`` to ``maximum`` inclusive."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
        raise TypeError(f"{key} must be an integer, got {value!r} ({type(value).__name__})")
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
    else:
        number = int(value)
    _check_bounds(key, value, number, minimum=minimum, maximum=maximum)
    return number


def flag(key: str, value: Any) -> bool:
    """A bool from a bool or from text in :data:`YES` or :data:`NO` (any case)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if not isinstance(value, str):
        raise TypeError(f"{key} must be true or false, got {value!r} ({type(value).__name__})")
    text = value.strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValueError(f"{key} must be true or false, got {value!r} (accepted: {_WORDS})")


def data_flag(value: Any) -> bool:
    """A flag read from data, not configuration: :data:`YES`/:data:`NO` text, or a number or
    numeric text (true when not zero); a missing value (``None``, NaN, empty text) is false.
    Anything else raises ``ValueError``; the caller names the column."""
    if value is None:
        return False
    if isinstance(value, str | np.str_):
        text = value.strip().lower()
        if text in YES:
            return True
        if text in NO or not text:
            return False
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"{str(value)!r} is not a flag (accepted: {_WORDS}, or a number)"
            ) from None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return False
    if isinstance(value, int | float | np.bool_ | np.integer | np.floating):
        return bool(value)
    raise ValueError(f"{value!r} is not a flag (accepted: {_WORDS}, or a number)")


def _duration_text(seconds: float) -> str:
    """``seconds`` in the largest unit that divides it (``604800`` → ``"7d"``), as a user would
    write it."""
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"


def listen_address(key: str, value: Any, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``(host, port)`` from ``"host:port"``, ``"[v6 address]:port"``, ``":port"`` or a port
    alone (``default_host``, loopback unless given): the port from 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
        raise TypeError(
            f"{key} must be 'host:port' text or a port number, got {value!r} "
            f"({type(value).__name__})"
        )
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{key}: write an IPv6 address in brackets ('[::1]:9464'), got {value!r}")
    host = host.strip() or default_host
    if not port.strip().isdigit():
        raise ValueError(
            f"{key} must be 'host:port' (e.g. '127.0.0.1:9464') or a port, got {value!r}"
        )
    return host, integer(key, port, minimum=1, maximum=65535)


def duration(
    key: str,
    value: Any,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Seconds from a number of seconds or text such as ``"30s"``, ``"6h"``, ``"1h30m"``,
    ``"250ms"``, ``"7d"``, ``"2w"`` or ``"30"``; never negative, above zero if ``positive``, and
    at least ``minimum`` and at most ``maximum`` seconds when given."""
    if isinstance(value, bool) or not isinstance(
        value, int | float | np.integer | np.floating | str
    ):
        raise TypeError(
            f"{key} must be a duration such as {_DURATION_EXAMPLES}, got {value!r} "
            f"({type(value).__name__})"
        )
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)  # a bare number, as ${VAR} gives: seconds
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ValueError(
                    f"{key}: {value!r} is not a duration; write e.g. {_DURATION_EXAMPLES}"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{key} must be a finite duration of 0 or more, got {value!r}")
    if positive and seconds <= 0:
        raise ValueError(f"{key} must be longer than zero, got {value!r}")
    if minimum is not None and seconds < minimum:
        raise ValueError(
            f"{key} must be at least {_duration_text(minimum)} ({minimum:g} seconds), got {value!r}"
        )
    if maximum is not None and seconds > maximum:
        raise ValueError(
            f"{key} must be at most {_duration_text(maximum)} ({maximum:g} seconds), got {value!r}"
        )
    return seconds


def parse_duration(value: Any, *, key: str = "duration") -> float:
    """:func:`duration` with the value first (its older spelling, kept for callers)."""
    return duration(key, value)


def size(key: str, value: Any) -> int:
    """Bytes (above zero) from a whole number of bytes or text such as ``"64MB"``, ``"128MiB"``,
    ``"1GiB"``, ``"4096"``: ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024,
    ``KB``/``MB``/``GB``/``TB`` powers of 1000, any case. A fraction of a byte is dropped."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float | str):
        raise TypeError(
            f"{key} must be a size such as {_SIZE_EXAMPLES}, got {value!r} ({type(value).__name__})"
        )
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match is None:
            raise ValueError(f"{key}: {value!r} is not a size; write e.g. {_SIZE_EXAMPLES}")
        unit = match[2].lower().removesuffix("b")
        base = 1024 if unit.endswith("i") else 1000
        if unit == "i":
            raise ValueError(f"{key}: {value!r} is not a size; write e.g. {_SIZE_EXAMPLES}")
        number = float(match[1]) * base ** _SIZE_POWERS[unit.removesuffix("i")]
    else:
        number = float(value)
    if not math.isfinite(number) or int(number) < 1:
        raise ValueError(f"{key} must be a size of at least one byte, got {value!r}")
    return int(number)


def redact_url(url: str) -> str:
    """``url`` as it may be shown in logs, errors and reprs: its scheme and host (and port) only,
    ``"https://hooks.slack.com/…"``. A webhook's path and query often hold its token."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except (ValueError, TypeError, AttributeError):
        return "<a URL, hidden>"
    if not parts.scheme or not host:
        return "<a URL, hidden>"
    shown = f"[{host}]" if ":" in host else host
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{shown}{'' if port is None else f':{port}'}{rest}"


def web_url(key: str, value: Any) -> str:
    """An ``http://`` or ``https://`` URL with a host. The error never shows the value's path or
    query (they may hold a token): only what :func:`redact_url` shows."""
    if not isinstance(value, str):
        raise TypeError(f"{key} must be an http:// or https:// URL, got {type(value).__name__}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(
            f"{key} must be an http:// or https:// URL, got {redact_url(text)} (unreadable)"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{key} must be an http:// or https:// URL with a host, got {redact_url(text)}"
        )
    return text


def text_list(key: str, value: Any) -> tuple[str, ...]:
    """A list of text, or one text of comma-separated items (as ``${VAR}`` gives); items are
    stripped, empty ones dropped; ``None`` is the empty list."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} must be a list of text (or comma-separated text), got {value!r}")
    return tuple(item.strip() for item in value if item.strip())


def choice(key: str, value: Any, options: Iterable[str]) -> str:
    """The one of ``options`` that ``value`` names (any case, surrounding spaces ignored)."""
    options = tuple(options)
    accepted = ", ".join(repr(o) for o in options)
    if not isinstance(value, str):
        raise TypeError(f"{key} must be one of {accepted}; got {value!r} ({type(value).__name__})")
    found = {o.casefold(): o for o in options}.get(value.strip().casefold())
    if found is not None:
        return found
    raise ValueError(
        f"{key} must be one of {accepted}; got {value!r}{did_you_mean(value, options)}"
    )


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the options closest to ``word`` (ignoring case), or ``""``
    when none is close: a hint to end an error message with."""
    options = list(options)
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    if not close:
        folded = {o.casefold(): o for o in options}
        close = [folded[c] for c in difflib.get_close_matches(word.casefold(), list(folded), n=3)]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


_T = TypeVar("_T")


def click_callback(
    parse: Callable[..., _T], **options: Any
) -> Callable[[Any, Any, Any], _T | None]:
    """A click option callback that reads the option with ``parse(key, value, **options)`` (the key
    is the option's name, e.g. ``--timeout``), passes ``None`` through, and turns the parser's
    error into click's usage error (exit status 2), e.g.
    ``@click.option("--timeout", callback=click_callback(duration, positive=True))``."""

    def callback(ctx: Any, param: Any, value: Any) -> _T | None:
        import click

        if value is None:
            return None
        key = param.opts[0] if param is not None and param.opts else "value"
        try:
            return parse(key, value, **options)
        except (TypeError, ValueError) as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback
