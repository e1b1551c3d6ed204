"""Benchmark: MQTT messages into the SQLite store, against the broker's own delivery rate.

Measured in the same run, against one local Mosquitto (``mosquitto`` must be installed),
interleaved over several repetitions (medians reported). Each run first makes a persistent session
(subscribe at QoS 1, disconnect), then publishes N JSON readings, which the broker queues for the
session (a Python publisher is slower than either consumer, so it is kept out of the timing), then
reconnects and times how fast the queue is drained:

* ``broker``: the limit, a bare paho subscriber (QoS 1, MQTT 5, paho's automatic
  acknowledgements) counting the N messages: how fast the broker and paho deliver them;
* ``cosmobac``: the ``mqtt`` sensor and the ``sqlite`` store driven as the collect loop drives
  them (``wait`` for ``batch_size`` or ``flush_interval``, ``read``, ``take_rejects``,
  ``append_input`` in one transaction, ``commit`` = the acknowledgements), until the N readings
  are stored and acknowledged.

Each is timed from the reconnect to the Nth message counted (broker) or committed and
acknowledged (cosmobac). Prints messages/s of each and the ratio cosmobac/broker (target >= 0.5).

Run: ``python benchmarks/mqtt_ingest.py [--messages N] [--repeat R] [--batch-size B]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cosmobac_mqtt import mqtt
from cosmobac_mqtt.localbroker import LocalBroker, mosquitto_path, publish, start_broker
from cosmobac_sqlite import SQLiteStore

T0 = 1_767_225_600_000
TARGET = 0.5


def publish_all(host: str, port: int, count: int, topic: str, offset: int) -> None:
    """The publisher (its own process): ``count`` readings at QoS 1, in chunks."""
    chunk = 5000
    for start in range(0, count, chunk):
        publish(
            host,
            port,
            (
                (
                    f"{topic}/dev-{i % 100}",
                    {
                        "sensor_id": f"dev-{i % 100}",
                        "timestamp": T0 + offset + i,
                        "temperature": 20 + (i % 50) * 0.1,
                        "humidity": 40.5,
                    },
                )
                for i in range(start, min(count, start + chunk))
            ),
        )


def preload(broker: LocalBroker, count: int, topic: str) -> None:
    """Publish ``count`` readings (another process) and wait until the broker has them all."""
    proc = multiprocessing.get_context("spawn").Process(
        target=publish_all, args=(broker.host, broker.port, count, topic, 0)
    )
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"the publisher failed ({proc.exitcode})")


def bare_client(broker: LocalBroker, tag: str, on_message: Any = None) -> Any:
    """A paho MQTT 5 client with a persistent session (automatic acknowledgements)."""
    from paho.mqtt.client import Client, MQTTv5
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{tag}", protocol=MQTTv5)
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    return client


def run_broker(broker: LocalBroker, count: int, tag: str) -> float:
    subscribed = threading.Event()
    client = bare_client(broker, tag)
    client.on_subscribe = lambda *a: subscribed.set()
    client.loop_start()
    client.subscribe(f"{tag}/#", qos=1)
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    preload(broker, count, tag)

    done = threading.Event()
    received = 0

    def on_message(client: object, userdata: object, message: object) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    began = time.perf_counter()
    client = bare_client(broker, tag, on_message)
    client.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"bare subscriber got {received} of {count} messages")
    elapsed = time.perf_counter() - began
    client.disconnect()
    client.loop_stop()
    return elapsed


def run_cosmobac(
    broker: LocalBroker, directory: Path, count: int, batch_size: int, tag: str
) -> float:
    keys: dict[str, Any] = {"host": broker.host, "port": broker.port, "topics": f"{tag}/#",
                            "client_id": f"cb-{tag}"}  # fmt: skip
    with mqtt(**keys) as first:  # the session, then away while the broker queues
        first.start()
        deadline = time.monotonic() + 10
        while not first.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
    preload(broker, count, tag)

    store = SQLiteStore(directory / f"{tag}.db")
    began = time.perf_counter()
    sensor = mqtt(**keys)
    added = 0
    flush_at = time.monotonic() + 1.0
    while added < count:
        now = time.monotonic()
        if now < flush_at and not sensor.wait(min(0.2, flush_at - now), batch_size):
            continue
        batch = sensor.read(time.time_ns() // 1_000_000)
        rejects = sensor.take_rejects()
        added += store.append_input(batch, sensor="mqtt", rejects=rejects)
        sensor.commit()
        flush_at = time.monotonic() + 1.0
    elapsed = time.perf_counter() - began
    sensor.close()
    store.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--batch-size", type=int, default=5000, help="run.batch_size")
    args = parser.parse_args(argv)
    if mosquitto_path() is None:
        print("mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2

    broker_s: list[float] = []
    cosmobac_s: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="cosmobac-bench-") as tmp,
        start_broker(Path(tmp) / "broker") as broker,
    ):
        for rep in range(args.repeat):
            order = ("broker", "cosmobac") if rep % 2 == 0 else ("cosmobac", "broker")
            for what in order:
                tag = f"{what}{rep}"
                if what == "broker":
                    broker_s.append(run_broker(broker, args.messages, tag))
                else:
                    cosmobac_s.append(
                        run_cosmobac(broker, Path(tmp), args.messages, args.batch_size, tag)
                    )

    broker_rate = args.messages / statistics.median(broker_s)
    cosmobac_rate = args.messages / statistics.median(cosmobac_s)
    ratio = cosmobac_rate / broker_rate
    print(f"messages: {args.messages} per run, {args.repeat} repetitions (medians), QoS 1")
    print(f"bare paho subscriber (limit)      : {broker_rate:10,.0f} messages/s")
    print(f"mqtt sensor -> sqlite, committed  : {cosmobac_rate:10,.0f} messages/s")
    print(f"ratio cosmobac/broker             : {ratio:.2f} (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
