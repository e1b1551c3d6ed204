"""Checking the ``cosmos`` sink's configuration. Every error names the key and never shows a secret."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from cosmobac.values import duration, flag, integer, real

__all__ = [
    "DEFAULT_PARTITION_KEY",
    "MAX_BATCH_OPERATIONS",
    "is_loopback",
    "parse_partition_key",
]

DEFAULT_PARTITION_KEY: Final = "/sensor_id"
MAX_BATCH_OPERATIONS: Final = 100
_PATH = re.compile(r"^/[A-Za-z_][A-Za-z0-9_]*$")
_NAME_FORBIDDEN = re.compile(r"[/\\?#]")
_MAX_HIERARCHY: Final = 3


def parse_partition_key(value: Any) -> tuple[str, ...]:
    """The partition key paths: ``"/sensor_id"`` → ``("/sensor_id",)``; a list of up to three paths
    is a hierarchical key. Paths name top-level document fields (documents are flat)."""
    paths: list[Any]
    if isinstance(value, str):
        paths = [value]
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        paths = list(value)
    else:
        raise TypeError(
            f"partition_key must be a path such as '/sensor_id' or a list of paths such as "
            f"['/city', '/sensor_id'], got {type(value).__name__}"
        )
    if not 1 <= len(paths) <= _MAX_HIERARCHY:
        raise ValueError(
            f"partition_key must have 1 to {_MAX_HIERARCHY} paths (a hierarchical key has at most "
            f"{_MAX_HIERARCHY} levels), got {len(paths)}"
        )
    for path in paths:
        if not isinstance(path, str) or not _PATH.match(path):
            raise ValueError(
                f"partition_key: {path!r} is not a path to a top-level field; write e.g. "
                "'/sensor_id' or '/city'"
            )
    if len(set(paths)) != len(paths):
        raise ValueError(f"partition_key: paths repeat: {paths}")
    return tuple(paths)


def check_endpoint(_: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError("endpoint must be a URL such as https://ACCOUNT.documents.azure.com:443/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"endpoint must be an http:// or https:// URL with a host, such as "
            f"https://ACCOUNT.documents.azure.com:443/ or http://127.0.0.1:8081/; got {value!r}"
        )
    if parts.username or parts.password or parts.query:
        raise ValueError(
            "endpoint must not carry credentials or a query; use `key` or `credential`"
        )


def check_name(_: Any, attribute: Any, value: Any) -> None:
    key = attribute.name
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{key} must be a non-empty name, got {value!r}")
    if len(value) > 255 or _NAME_FORBIDDEN.search(value) or value != value.strip():
        raise ValueError(
            f"{key}: {value!r} is not a valid Cosmos DB name (at most 255 characters, none of "
            "/ \\ ? #, no leading or trailing spaces)"
        )


def check_key(_: Any, attribute: Any, value: Any) -> None:
    """An account key is base64 text. The message never includes the value."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise TypeError('key must be the account key as text (e.g. key = "${COSMOS_KEY}")')
    try:
        base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "key is not a Cosmos DB account key (base64 text expected); copy the primary or "
            'secondary key of the account, or use credential = "default" for Microsoft Entra ID'
        ) from None


def check_credential(_: Any, attribute: Any, value: Any) -> None:
    if value is None or value == "default":
        return
    if isinstance(value, str):
        raise ValueError(
            f'credential must be "default" (DefaultAzureCredential: environment, workload '
            f"identity, managed identity, Azure CLI, ...) or left out to use `key`; got {value!r}"
        )
    if not callable(getattr(value, "get_token", None)):
        raise TypeError(
            'credential must be "default" or an azure.core TokenCredential (an object with '
            f"get_token), got {type(value).__name__}"
        )


def ttl(value: Any) -> int | None:
    """``default_ttl``: seconds ≥ 1, or -1 (TTL on, no default expiry), or None."""
    if value is None:
        return None
    number = integer("default_ttl", value)
    if number < 1 and number != -1:
        raise ValueError(
            "default_ttl must be a number of seconds ≥ 1 (documents expire that long after their "
            f"last write), or -1 (TTL on, no default expiry); got {value!r}"
        )
    return number


def check_indexing_policy(_: Any, attribute: Any, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(
            "indexing_policy must be a table (the container's indexing policy as JSON, e.g. "
            f'{{indexingMode = "consistent", ...}}), got {type(value).__name__}'
        )


def check_optional_path(_: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{attribute.name} must be a file path, got {value!r}")


def is_loopback(endpoint: str) -> bool:
    """True for endpoints on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Named converters, one per key (attrs' type checking wants named functions).
def connection_timeout(value: Any) -> float:
    return duration("connection_timeout", value, positive=True)


def read_timeout(value: Any) -> float:
    return duration("read_timeout", value, positive=True)


def write_timeout(value: Any) -> float:
    return duration("write_timeout", value, positive=True)


def latency_target(value: Any) -> float:
    return duration("latency_target", value, positive=True)


def retry_backoff(value: Any) -> float:
    return duration("retry_backoff", value, positive=True)


def retry_backoff_max(value: Any) -> float:
    return duration("retry_backoff_max", value, positive=True)


def max_concurrency(value: Any) -> int:
    return integer("max_concurrency", value, minimum=1, maximum=64)


def max_batch_operations(value: Any) -> int:
    return integer("max_batch_operations", value, minimum=1, maximum=MAX_BATCH_OPERATIONS)


def throughput(value: Any) -> int | None:
    return None if value is None else integer("throughput", value, minimum=400)


def autoscale_max_throughput(value: Any) -> int | None:
    return None if value is None else integer("autoscale_max_throughput", value, minimum=1000)


def create_if_missing(value: Any) -> bool:
    return flag("create_if_missing", value)


def max_ru_per_second(value: Any) -> float | None:
    return None if value is None else real("max_ru_per_second", value, above=0)


def verify_tls(value: Any) -> bool:
    return flag("verify_tls", value)
