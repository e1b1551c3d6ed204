"""The ``mqtt`` sensor: :class:`MqttSensor`, on paho-mqtt.

Guarantees:

* **nothing acknowledged before it is stored.** Messages are received at QoS 1 on a persistent
  session (MQTT 5 ``clean_start = false`` with a session expiry; MQTT 3.1.1 ``clean_session =
  false``) with paho's manual acknowledgement. ``read`` returns the readings of the messages
  received since the last ``read`` and remembers their packet ids; ``commit`` (called by the
  collector once that read's rows and rejects are stored) acknowledges exactly those, in the order
  received. A collector killed at any point leaves its unacknowledged messages with the broker,
  which sends them again to the same ``client_id``; the store keeps each reading once;
* a message received on an earlier connection is never acknowledged on a later one: the broker
  sends it again after a reconnect, and that copy is acknowledged once stored;
* **bounded memory.** At most ``max_buffered`` messages wait unread. With MQTT 5 it is sent to the
  broker as the session's Receive Maximum, so the broker stops sending while that many are
  unacknowledged; otherwise (MQTT 3.1.1, QoS 0) the network thread stops reading the socket until
  ``read`` makes room: nothing is dropped;
* **reconnects**, with paho's exponential delay (1 s doubling to ``reconnect_max``), each logged;
  a broker that is down at start is retried. What retrying cannot fix fails with a
  :class:`~cosmobac.errors.ConfigError` from ``wait``/``read`` naming the key to fix: an unknown
  host name, a TLS certificate the broker's does not verify against, a login the broker refuses,
  a subscription it refuses in its SUBACK, a ``client_id`` it refuses;
* the password never appears in logs, errors or the ``repr``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs

from cosmobac.batch import Batch
from cosmobac.errors import ConfigError
from cosmobac.interfaces import InputReject

from .config import Settings

__all__ = ["MqttSensor"]

log = logging.getLogger("cosmobac_mqtt")

_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
    "DECRYPT_ERROR",  # Mosquitto with OpenSSL 3: a certificate signed by a CA it doesn't trust
    "ACCESS_DENIED",
)
"""OpenSSL's names of the TLS alerts a broker sends when it refuses the client's certificate
(read by Python's ssl module in the error after the handshake)."""


class _PahoErrors(logging.Logger):
    """A private logger given to paho (not in the logging tree, level ERROR, so paho's per-packet
    debug lines cost one level check): its error lines go to the sensor's socket-error check."""

    def __init__(self, sensor: MqttSensor, client: Any) -> None:
        super().__init__("cosmobac_mqtt.paho", logging.ERROR)
        self.propagate = False
        self._sensor = sensor
        self._client = client

    def handle(self, record: logging.LogRecord) -> None:
        self._sensor._on_socket_error(self._client, record.getMessage())


_LOGIN_REFUSED = {
    "Bad user name or password",
    "Not authorized",
    "Bad authentication method",
    "Banned",
}
_CLIENT_ID_REFUSED = {"Client identifier not valid"}


@attrs.frozen
class _Message:
    mid: int
    qos: int
    generation: int
    topic: str
    dup: bool
    objects: list[dict[str, Any]]
    rejects: list[InputReject]


class MqttSensor:
    """Readings from JSON messages on MQTT topics, acknowledged to the broker only once stored.

    A :class:`~cosmobac.interfaces.LiveSensor`, :class:`~cosmobac.interfaces.CommittingSensor`,
    :class:`~cosmobac.interfaces.RejectingSensor` and :class:`~cosmobac.interfaces.Closeable`.
    It connects on the first ``wait`` or ``read`` (or :meth:`start`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ssl = settings.ssl_context()  # reads the TLS files now: a bad one fails at once
        self._cond = threading.Condition()
        self._buffer: list[_Message] = []
        self._rows = 0  # readings (JSON objects) waiting in _buffer
        self._pending: list[tuple[int, int, int]] = []  # (mid, qos, generation) read, not acked
        self._rejects: list[InputReject] = []
        self._generation = 0  # connections made; messages carry the one they came on
        self._fatal: ConfigError | None = None
        self._client: Any = None
        self._closed = False
        self._connected = False
        self._subscribed = False
        self.redelivered = 0  # messages the broker marked as sent before (DUP)
        self.received = 0
        self.acknowledged = 0

    def __repr__(self) -> str:
        s = self.settings
        login = "" if s.username is None else f", username={s.username!r}"
        return (
            f"MqttSensor(host={s.host!r}, port={s.broker_port}, topics={list(s.topics)!r}, "
            f"client_id={s.client_id!r}, qos={s.qos}{', tls' if s.tls else ''}{login})"
        )

    # -- LiveSensor ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Always false: a subscription runs until stopped."""
        return False

    @property
    def connected(self) -> bool:
        """Connected to the broker now."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Connected, and the broker granted the subscriptions: messages published from now on
        are kept for this session."""
        return self._connected and self._subscribed

    def wait(self, timeout: float, rows: int) -> bool:
        """Block until ``rows`` readings wait (or ``max_buffered`` messages, a full buffer),
        True; or ``timeout`` seconds passed, False."""
        self.start()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                self._raise_fatal()
                if self._rows >= rows or len(self._buffer) >= self.settings.max_buffered:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def read(self, until: int) -> Batch:
        """The readings of every message received since the last ``read`` (whatever their
        timestamps; ``until`` is not used), in the order received. Their rejects wait for
        :meth:`take_rejects`; their acknowledgements for :meth:`commit`."""
        self.start()
        with self._cond:
            self._raise_fatal()
            messages, self._buffer, self._rows = self._buffer, [], 0
            self._cond.notify_all()  # a network thread waiting for room may go on
        again = sum(m.dup for m in messages)
        if again:
            log.info(
                "%d of the %d messages read were redelivered (sent before, not acknowledged)",
                again,
                len(messages),
            )
        items = [(m.topic, obj) for m in messages for obj in m.objects]
        batch, rejects = self.settings.mapping.to_batch(items)
        with self._cond:
            self._rejects.extend(r for m in messages for r in m.rejects)
            self._rejects.extend(rejects)
            self._pending.extend((m.mid, m.qos, m.generation) for m in messages if m.qos > 0)
        return batch

    # -- RejectingSensor ----------------------------------------------------------------------
    def take_rejects(self) -> Sequence[InputReject]:
        """The payloads set aside since the last call (origin ``"topic <topic>"``)."""
        with self._cond:
            rejects, self._rejects = self._rejects, []
        return rejects

    # -- CommittingSensor ---------------------------------------------------------------------
    def commit(self) -> None:
        """Acknowledge to the broker every message the last ``read`` returned (rows and rejects
        alike), in the order received. Messages received on an earlier connection are left: the
        broker sends them again, and their copies are acknowledged."""
        with self._cond:
            pending, self._pending = self._pending, []
            generation = self._generation
            client = self._client
        if client is None:
            return
        for mid, qos, gen in pending:
            if gen == generation:
                client.ack(mid, qos)
                self.acknowledged += 1

    # -- Closeable ----------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect cleanly; what was not committed stays with the broker. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
            self._cond.notify_all()
        if client is not None:
            client.disconnect()
            client.loop_stop()
            log.info("disconnected from MQTT broker %s", self._where())

    def __enter__(self) -> MqttSensor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connecting ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (once) and start the network thread. A broker that cannot be reached is
        retried in the background; an unknown host or a TLS certificate that does not verify
        raises :class:`ConfigError` here."""
        with self._cond:
            if self._client is not None:
                return
            if self._closed:
                raise RuntimeError("the mqtt sensor is closed")
            self._raise_fatal()
            client = self._client = self._make_client()
        s = self.settings
        try:
            client.connect(s.host, s.broker_port, s.keepalive, **self._connect_args())
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_AGAIN,):  # the resolver is down, not the name wrong
                log.warning("cannot resolve MQTT host %r now (%s); retrying", s.host, exc)
                client.connect_async(s.host, s.broker_port, s.keepalive, **self._connect_args())
            else:
                self._fail(
                    f"host {s.host!r} is not a known host name ({exc.strerror}); check `host`"
                )
        except ssl.SSLCertVerificationError as exc:
            self._fail(
                f"the TLS certificate of MQTT broker {self._where()} does not verify: "
                f"{exc.verify_message}; check `ca_file` (or `insecure` for a test broker)"
            )
        except ssl.SSLError as exc:
            self._fail(
                f"TLS with MQTT broker {self._where()} failed: {exc.reason or exc}; "
                "check `tls`, `port`, `ca_file`, `cert_file` and `key_file`"
            )
        except OSError as exc:
            log.warning(
                "MQTT broker %s is not reachable (%s); retrying in the background",
                self._where(),
                exc.strerror or exc,
            )
            client.connect_async(s.host, s.broker_port, s.keepalive, **self._connect_args())
        client.loop_start()

    def _fail(self, message: str) -> None:
        with self._cond:
            self._fatal = ConfigError(message)
            client, self._client = self._client, None
            self._cond.notify_all()
        if client is not None:
            client.loop_stop()
        raise ConfigError(message)

    def _give_up(self, client: Any, message: str) -> None:
        """From paho's thread: a refusal retrying cannot fix. ``wait``/``read`` raise it as a
        ConfigError; the client disconnects (no reconnect loop against a refusing broker)."""
        with self._cond:
            self._fatal = ConfigError(message)
            self._cond.notify_all()
        log.error("%s", message)
        client.disconnect()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.broker_port}"

    def _make_client(self) -> Any:
        from paho.mqtt.client import Client, MQTTv5, MQTTv311
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        v5 = s.protocol == "5"
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=None if v5 else False,
            protocol=MQTTv5 if v5 else MQTTv311,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
            if s.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(s.reconnect_max)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.enable_logger(_PahoErrors(self, client))
        return client

    def _connect_args(self) -> dict[str, Any]:
        if self.settings.protocol != "5":
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry
        properties.ReceiveMaximum = self.settings.max_buffered
        return {"clean_start": False, "properties": properties}

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        s = self.settings
        if reason.is_failure:
            name = str(reason)
            if name in _LOGIN_REFUSED:
                who = "anonymous login" if s.username is None else f"login of user {s.username!r}"
                message = (
                    f"MQTT broker {self._where()} refused the {who} ({name}); "
                    "check `username` and `password`"
                )
            elif name in _CLIENT_ID_REFUSED:
                message = f"MQTT broker {self._where()} refused client_id {s.client_id!r}; check `client_id`"
            else:
                log.warning(
                    "MQTT broker %s refused the connection (%s); retrying", self._where(), name
                )
                return
            self._give_up(client, message)
            return
        with self._cond:
            first = self._generation == 0
            self._generation += 1
            self._connected = True
        session = bool(getattr(flags, "session_present", False))
        log.info(
            "connected to MQTT broker %s as %r (session %s)",
            self._where(),
            s.client_id,
            "resumed" if session else "new",
        )
        if not session and not first and s.qos > 0:
            log.warning(
                "MQTT broker %s kept no session for client_id %r: messages published while "
                "disconnected were not kept for it (check the broker's persistence and "
                "session expiry)",
                self._where(),
                s.client_id,
            )
        client.subscribe([(topic, s.qos) for topic in s.topics])

    def _on_socket_error(self, client: Any, text: str) -> None:
        """From paho's thread: a socket error it logged. A broker that refuses the TLS client
        certificate (none given, or one it does not trust) ends the handshake with an alert that
        paho only logs and then reconnects to forever: that is a refusal, raised as a
        ConfigError naming the keys to check."""
        alert = next((a for a in _CLIENT_CERT_ALERTS if a in text), None)
        if alert is None:
            return
        if self.settings.cert_file is None:
            advice = "it requires a client certificate: set `cert_file` and `key_file`"
        else:
            advice = "check `cert_file` and `key_file` (a certificate signed by a CA it trusts)"
        reason = alert.lower().replace("_", " ")
        self._give_up(
            client,
            f"MQTT broker {self._where()} refused the TLS client certificate ({reason}); " + advice,
        )

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        log.warning("cannot connect to MQTT broker %s; retrying", self._where())

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        with self._cond:
            self._connected = self._subscribed = False
            closing = self._closed or self._fatal is not None
        if not closing:
            log.warning(
                "disconnected from MQTT broker %s (%s); reconnecting", self._where(), reason
            )

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reasons: list[Any], properties: Any
    ) -> None:
        s = self.settings
        for topic, reason in zip(s.topics, reasons, strict=False):
            if reason.is_failure:
                message = (
                    f"MQTT broker {self._where()} refused the subscription to {topic!r} "
                    f"({reason}); check `topics` and the broker's access rules"
                )
                self._give_up(client, message)
                return
            log.info("subscribed to %r at QoS %d", topic, min(reason.value, 2))
            if reason.value < s.qos:
                log.warning(
                    "MQTT broker %s granted QoS %d for %r (asked %d): messages may be lost",
                    self._where(),
                    reason.value,
                    topic,
                    s.qos,
                )
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        objects, rejects = self.settings.mapping.decode(message.topic, message.payload)
        with self._cond:
            while len(self._buffer) >= self.settings.max_buffered and not self._closed:
                self._cond.wait(1.0)  # backpressure: stop reading the socket until read()
            self._buffer.append(
                _Message(
                    mid=message.mid,
                    qos=message.qos,
                    generation=self._generation,
                    topic=message.topic,
                    dup=bool(message.dup),
                    objects=objects,
                    rejects=rejects,
                )
            )
            self._rows += len(objects)
            self.received += 1
            if message.dup:
                self.redelivered += 1
            self._cond.notify_all()
