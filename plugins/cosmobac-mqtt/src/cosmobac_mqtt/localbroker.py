"""A local Mosquitto broker on loopback, for tests, benchmarks and trying the sensor out.

:func:`start_broker` writes a ``mosquitto.conf`` in a folder, starts ``mosquitto -c`` on a free
loopback port and waits until it accepts connections. The configuration keeps every queued QoS 1
message of a disconnected persistent client (``max_queued_messages 0``: no limit), which the
``mqtt`` sensor's delivery guarantee needs (see docs/how-to/mqtt-input.md). Optional: a password
file (``users``) and a TLS listener (``tls``: CA, certificate and key files).

:func:`publish` sends JSON payloads at QoS 1 and waits for the broker's acknowledgements.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["LocalBroker", "free_port", "mosquitto_path", "publish", "start_broker"]


def mosquitto_path() -> str | None:
    """The ``mosquitto`` executable (Debian puts it in /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define(eq=False)
class LocalBroker:
    """A running Mosquitto: ``host``, ``port``, its folder (config, log) and process."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    config: Path

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (sessions are lost: persistence is off)."""
        self.stop()
        self.process = _launch(self.config, self.directory)
        _wait_ready(self)

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_broker(
    directory: str | Path,
    *,
    port: int | None = None,
    users: Mapping[str, str] | None = None,
    tls: tuple[str, str, str] | None = None,
    extra: Iterable[str] = (),
) -> LocalBroker:
    """Start ``mosquitto`` on 127.0.0.1 (``port``, or a free one). ``users`` (name → password)
    turns anonymous access off; ``tls`` = (CA file, certificate file, key file) makes the
    listener TLS-only. ``extra`` lines are appended to the configuration."""
    executable = mosquitto_path()
    if executable is None:
        raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        # started as root, mosquitto would switch to user 'mosquitto', who cannot read this folder
        f"user {getpass.getuser()}",
        "persistence false",
        "max_queued_messages 0",
        "max_inflight_messages 0",
        "max_keepalive 65535",
        f"log_dest file {folder / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if users:
        password_file = folder / "passwords"
        password_file.write_text("")
        for name, password in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(password_file), name, password],
                check=True,
                capture_output=True,
            )
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if tls is not None:
        ca, cert, key = tls
        lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
    lines += list(extra)
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    broker = LocalBroker("127.0.0.1", port, folder, _launch(config, folder), config)
    _wait_ready(broker)
    return broker


def _launch(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    executable = mosquitto_path()
    assert executable is not None
    with open(folder / "mosquitto.out", "ab") as out:
        return subprocess.Popen([executable, "-c", str(config)], stdout=out, stderr=out)


def _wait_ready(broker: LocalBroker, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            out = (broker.directory / "mosquitto.out").read_text(errors="replace")
            raise RuntimeError(
                f"mosquitto exited ({broker.process.returncode}): {out}{broker.log()}"
            )
        try:
            with socket.create_connection((broker.host, broker.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    broker.stop()
    raise RuntimeError(f"mosquitto did not listen on {broker.host}:{broker.port} in {timeout}s")


def publish(
    host: str,
    port: int,
    messages: Iterable[tuple[str, Any]],
    *,
    client_id: str = "",
    inflight: int = 1000,
    tls: tuple[str | Path, str | Path | None, str | Path | None] | None = None,
    **client_options: Any,
) -> int:
    """Publish ``(topic, payload)`` pairs at QoS 1 (a payload that is not bytes or text is sent
    as JSON) and wait until the broker acknowledged every one. Returns how many were sent.
    ``tls`` = (CA file, client certificate or None, its key or None) connects over TLS."""
    from paho.mqtt.client import Client, MQTTv311
    from paho.mqtt.enums import CallbackAPIVersion

    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv311)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    if "username" in client_options:
        client.username_pw_set(client_options["username"], client_options.get("password"))
    if tls is not None:
        ca, cert, key = (None if f is None else str(f) for f in tls)
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    client.connect(host, port)
    client.loop_start()
    sent = 0
    infos = []
    try:
        for topic, payload in messages:
            if not isinstance(payload, bytes | str):
                payload = json.dumps(payload)
            infos.append(client.publish(topic, payload, qos=1))
            sent += 1
        for info in infos:
            info.wait_for_publish(timeout=60)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge a message in 60 s")
    finally:
        client.disconnect()
        client.loop_stop()
    return sent
