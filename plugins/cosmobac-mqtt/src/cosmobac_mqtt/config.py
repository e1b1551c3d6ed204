"""The ``mqtt`` sensor's keys, read with :mod:`cosmobac.values` into one frozen :class:`Settings`.

Guarantees:

* every key is checked when the sensor is built, with an error naming the key and what is
  accepted; nothing here touches the network;
* the TLS files are read here (an :class:`ssl.SSLContext` is built), so a missing or unreadable
  ``ca_file``, ``cert_file`` or ``key_file`` fails at once, naming the key;
* the password never appears in an error, a log line or a ``repr``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Final

import attrs

from cosmobac.values import choice, duration, flag, integer, text_list

from .payload import PayloadMapping

__all__ = ["DEFAULT_MAX_BUFFERED", "PROTOCOLS", "Settings", "topic_filter"]

PROTOCOLS: Final = ("5", "3.1.1")
DEFAULT_MAX_BUFFERED: Final = 20_000
MAX_RECEIVE_MAXIMUM: Final = 65_535  # MQTT 5's Receive Maximum is a two-byte integer


def topic_filter(key: str, value: Any) -> tuple[str, ...]:
    """One topic filter or a list of them; ``+`` and ``#`` wildcards where MQTT allows them."""
    topics = text_list(key, value)
    if not topics:
        raise ValueError(f"{key} must name at least one topic, e.g. 'sensors/#'")
    for topic in topics:
        levels = topic.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError(f"{key}: in {topic!r}, '#' must be a whole last level ('a/#')")
            if "+" in level and level != "+":
                raise ValueError(f"{key}: in {topic!r}, '+' must be a whole level ('a/+/b')")
    return topics


def _optional_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} must be text, got {type(value).__name__}")
    return value.strip() or None


def _secret(value: Any) -> str | None:
    """The password: text, never shown (an error names its type only)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"password must be text (e.g. '${{MQTT_PASSWORD}}'), got {type(value).__name__}"
        )
    return value


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"host must be the broker's host name or address, got {value!r}")
    text = value.strip()
    if "://" in text or "/" in text:
        raise ValueError(f"host must be a host name or address (no scheme or path), got {text!r}")
    return text


def _client_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "client_id must be non-empty text, stable across restarts: the broker keeps the "
            f"unacknowledged messages under it; got {value!r}"
        )
    text = value.strip()
    if len(text.encode()) > 65_535:
        raise ValueError("client_id is too long")
    return text


def _qos(value: Any) -> int:
    return integer("qos", value, minimum=0, maximum=1)


@attrs.frozen(eq=False, repr=False)
class Settings:
    """The checked keys of one ``mqtt`` sensor (see docs/reference/config-mqtt.md)."""

    host: str = attrs.field(converter=_host)
    topics: tuple[str, ...] = attrs.field(converter=lambda v: topic_filter("topics", v))
    client_id: str = attrs.field(converter=_client_id)
    port: int | None = attrs.field(
        default=None,
        converter=lambda v: None if v is None else integer("port", v, minimum=1, maximum=65535),
    )
    qos: int = attrs.field(default=1, converter=_qos)
    tls: bool = attrs.field(default=False, converter=lambda v: flag("tls", v))
    ca_file: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("ca_file", v)
    )
    cert_file: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("cert_file", v)
    )
    key_file: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("key_file", v)
    )
    insecure: bool = attrs.field(default=False, converter=lambda v: flag("insecure", v))
    username: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("username", v)
    )
    password: str | None = attrs.field(default=None, converter=_secret)
    keepalive: int = attrs.field(
        default=60,
        converter=lambda v: int(duration("keepalive", v, minimum=5, maximum=65535)),
    )
    protocol: str = attrs.field(
        default="5", converter=lambda v: choice("protocol", str(v), PROTOCOLS)
    )
    session_expiry: int = attrs.field(
        default=7 * 86400,
        converter=lambda v: int(duration("session_expiry", v, minimum=1, maximum=4294967294)),
    )
    max_buffered: int = attrs.field(
        default=DEFAULT_MAX_BUFFERED,
        converter=lambda v: integer("max_buffered", v, minimum=1, maximum=MAX_RECEIVE_MAXIMUM),
    )
    reconnect_max: float = attrs.field(
        default=30.0,
        converter=lambda v: duration("reconnect_max", v, minimum=1, maximum=3600),
    )
    mapping: PayloadMapping = attrs.field(factory=PayloadMapping)

    def __attrs_post_init__(self) -> None:
        if self.password is not None and self.username is None:
            raise ValueError("password is given without username; give both or neither")
        if not self.tls:
            given = [
                k for k in ("ca_file", "cert_file", "key_file") if getattr(self, k) is not None
            ]
            if given or self.insecure:
                names = ", ".join([*given, *(["insecure"] if self.insecure else [])])
                raise ValueError(f"{names} given without tls = true; set tls = true to use TLS")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError(
                "key_file is given without cert_file; a client key needs its certificate"
            )

    @property
    def broker_port(self) -> int:
        """``port``, or MQTT's default: 8883 with TLS, 1883 without."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (None without ``tls``); reads the files now, so a missing or bad one
        fails here with the key that names it."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"ca_file {self.ca_file!r} cannot be read as CA certificates: {exc}"
            ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"cert_file {self.cert_file!r}"
                    + (f" / key_file {self.key_file!r}" if self.key_file else "")
                    + f" cannot be read as a client certificate and key: {exc}"
                ) from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __repr__(self) -> str:
        login = "" if self.username is None else f", username={self.username!r}, password=<hidden>"
        tls = ", tls=True" if self.tls else ""
        return (
            f"Settings(host={self.host!r}, port={self.broker_port}, topics={list(self.topics)!r}, "
            f"client_id={self.client_id!r}, qos={self.qos}{tls}{login})"
        )


def settings_from_keys(keys: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from the keys of a ``[sensor]`` table (the payload keys included)."""
    keys = dict(keys)
    mapping = PayloadMapping(
        fields=keys.pop("fields", None),
        sensor_id_from_topic=keys.pop("sensor_id_from_topic", False),
        timestamp_unit=keys.pop("timestamp_unit", "ms"),
        keep_extra=keys.pop("keep_extra", False),
    )
    return Settings(mapping=mapping, **keys)
