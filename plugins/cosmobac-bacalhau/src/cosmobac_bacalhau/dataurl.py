"""RFC 2397 ``data:`` URLs, the payload of Bacalhau's ``inline`` input sources.

Bacalhau extracts a payload whose media type is ``application/gzip`` as a tar.gz into a folder;
any other media type gives a single file."""

from __future__ import annotations

import base64
import binascii
import urllib.parse

__all__ = ["decode", "encode"]


def encode(payload: bytes, media_type: str = "application/octet-stream") -> str:
    """``data:<media type>;base64,<payload>``."""
    return f"data:{media_type};base64,{base64.b64encode(payload).decode('ascii')}"


def decode(url: str) -> tuple[str, bytes]:
    """``(media type, payload)`` of a data URL; ``ValueError`` saying what is wrong."""
    if not isinstance(url, str) or not url[:5].lower() == "data:":
        raise ValueError("not a data: URL (RFC 2397), e.g. data:text/plain;base64,aGk=")
    header, sep, body = url[5:].partition(",")
    if not sep:
        raise ValueError("a data: URL needs a comma between its media type and its data")
    parts = [p.strip() for p in header.split(";")]
    is_base64 = len(parts) > 1 and parts[-1].lower() == "base64"
    if is_base64:
        parts = parts[:-1]
    media_type = parts[0].lower() if parts and parts[0] else "text/plain"
    if is_base64:
        try:
            payload = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the base64 data does not decode: {exc}") from None
    else:
        payload = urllib.parse.unquote_to_bytes(body)
    return media_type, payload
