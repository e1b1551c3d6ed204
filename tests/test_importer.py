"""Import of the original system's edge databases (table ``sensor_readings``) of both generations:
REAL epoch seconds, and ISO-8601 text with ``Z``, with an offset, or zone-less."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosmobac.importer import ImportProblem, ImportReport, import_original
from cosmobac.schema import CORE_FIELDS, STORE_SEQ
from cosmobac_sqlite import SQLiteStore

pytestmark = pytest.mark.needs_plugins  # the sqlite store

OLD_COLUMNS = (
    "id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL, sensor_id TEXT, temperature REAL, "
    "humidity REAL, pressure REAL, vibration REAL, voltage REAL, status_code INTEGER, "
    "anomaly_flag INTEGER, anomaly_type TEXT, firmware_version TEXT, model TEXT, "
    "manufacturer TEXT, location TEXT, latitude REAL, longitude REAL, synced INTEGER"
)
NEW_COLUMNS = (
    "id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT, sensor_id TEXT, temperature REAL, "
    "humidity REAL, pressure REAL, vibration REAL, voltage REAL, status_code INTEGER, "
    "anomaly_flag INTEGER, anomaly_type TEXT, firmware_version TEXT, model TEXT, "
    "manufacturer TEXT, location TEXT, latitude REAL, longitude REAL, serial_number TEXT, "
    "manufacture_date TEXT, deployment_type TEXT, installation_date TEXT, height_meters REAL, "
    "orientation_degrees REAL, instance_id TEXT, sensor_type TEXT, original_timezone TEXT"
)


def ms(text: str) -> int:
    """Epoch ms of an ISO text carrying its zone."""
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    return round(parsed.timestamp() * 1000)


def make_db(path: Path, columns: str, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE sensor_readings ({columns})")
    for row in rows:
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        con.execute(f"INSERT INTO sensor_readings ({names}) VALUES ({marks})", list(row.values()))
    con.commit()
    con.close()
    return path


def base(sensor: str = "lisbon-001", **values: Any) -> dict[str, Any]:
    row = {
        "sensor_id": sensor,
        "temperature": 21.5,
        "humidity": 55.0,
        "pressure": 1013.2,
        "vibration": 0.12,
        "voltage": 12.01,
        "status_code": 0,
        "anomaly_flag": 0,
        "anomaly_type": None,
        "firmware_version": "1.4.2",
        "model": "EnviroNode 100",
        "manufacturer": "Acme Instruments",
        "location": "Lisbon",
        "latitude": 38.72,
        "longitude": -9.14,
    }
    row.update(values)
    return row


def old_generation(path: Path) -> Path:
    return make_db(
        path,
        OLD_COLUMNS,
        [
            base(timestamp=1710072000.123, synced=1),
            base(timestamp=1710072001.5, temperature=None, synced=0, status_code=None),
            base(timestamp=1710072002, anomaly_flag=1, anomaly_type="spike", temperature=80.0),
            base(timestamp=1710072003.999, humidity="n/a"),  # text in a REAL column
        ],
    )


def new_generation(path: Path) -> Path:
    extra = {
        "serial_number": "SN-1",
        "manufacture_date": "2023-01-02",
        "deployment_type": "outdoor",
        "installation_date": "2023-02-03",
        "height_meters": 2.5,
        "orientation_degrees": 90.0,
        "instance_id": "i-1",
        "sensor_type": "environmental",
    }
    return make_db(
        path,
        NEW_COLUMNS,
        [
            base(
                "berlin-001", timestamp="2024-03-10T12:00:00.123Z", original_timezone="UTC", **extra
            ),
            base("berlin-001", timestamp="2024-03-10T14:00:01.456+02:00", **extra),
            base("berlin-001", timestamp="2024-03-10T13:00:02.789", **extra),  # zone-less, winter
            base("berlin-001", timestamp="2024-07-01 14:00:03.000", **extra),  # zone-less, summer
            base("berlin-001", timestamp="yesterday at noon", **extra),
            base("berlin-001", timestamp=None, **extra),
            base(None, timestamp="2024-03-10T12:00:09Z", **extra),
            base("berlin-001", timestamp="2024-03-10T12:00:10.5Z", vibration=None, **extra),
        ],
    )


def stored(store: SQLiteStore, consumer: str = "check") -> dict[str, np.ndarray]:
    batch = store.read(consumer, 10_000)
    return batch.sort("sensor_id", "timestamp").to_dict()


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "store" / "cosmobac.db") as s:
        yield s


def test_epoch_seconds_generation(tmp_path, store):
    source = old_generation(tmp_path / "old" / "sensor_data.db")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    report = import_original([source], store)
    assert isinstance(report, ImportReport)
    assert report.files == (source,)
    assert (report.rows_read, report.rows_added, report.rows_skipped) == (4, 4, 0)
    cols = stored(store)
    assert cols["timestamp"].tolist() == [
        1710072000123,
        1710072001500,
        1710072002000,
        1710072003999,
    ]
    temperature = cols["temperature"]
    assert np.isnan(temperature[1]) and temperature[2] == 80.0  # missing is NaN, never 0.0
    assert np.isnan(cols["humidity"][3])
    assert cols["city"].tolist() == ["Lisbon"] * 4  # location becomes city
    assert cols["anomaly_flag"].tolist() == [False, False, True, False]
    assert cols["anomaly_type"].tolist() == [None, None, "spike", None]
    assert "synced" not in cols and "id" not in cols and "location" not in cols
    np.testing.assert_array_equal(cols["status_code"], [0, np.nan, 0, 0])  # travels as an extra
    assert [str(p) for p in report.problems] == [
        f"{source}: 1 unparsable value(s) in 'humidity' read as missing"
    ]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # original left untouched


def test_iso_text_generation_with_zones(tmp_path, store):
    source = new_generation(tmp_path / "new.db")
    report = import_original(source, store, assume_timezone="Europe/Berlin", batch_size=3)
    assert (report.rows_read, report.rows_added, report.rows_skipped) == (8, 5, 3)
    cols = stored(store)
    assert cols["timestamp"].tolist() == [
        ms("2024-03-10T12:00:00.123+00:00"),
        ms("2024-03-10T12:00:01.456+00:00"),  # +02:00 honoured
        ms("2024-03-10T12:00:02.789+00:00"),  # zone-less in Berlin winter time (UTC+1)
        ms("2024-03-10T12:00:10.500+00:00"),
        ms("2024-07-01T12:00:03.000+00:00"),  # zone-less in Berlin summer time (UTC+2)
    ]
    assert cols["timestamp"][0] == 1710072000123
    assert np.isnan(cols["vibration"][3]) and cols["vibration"][0] == 0.12
    assert cols["city"].tolist() == ["Lisbon"] * 5
    assert cols["serial_number"].tolist() == ["SN-1"] * 5
    assert cols["height_meters"].tolist() == [2.5] * 5
    assert cols["original_timezone"].tolist() == ["UTC", None, None, None, None]
    reasons = sorted(str(p) for p in report.problems)
    assert reasons == [
        f"{source}: 1 row(s) skipped: missing sensor_id (first: row id 7, timestamp "
        "'2024-03-10T12:00:09Z')",
        f"{source}: 1 row(s) skipped: missing timestamp (first: row id 6, timestamp None)",
        f"{source}: 1 row(s) skipped: timestamp text is neither epoch seconds nor ISO-8601 "
        "(first: row id 5, "
        "timestamp "
        "'yesterday at noon')",
    ]
    assert all(p.rows == 1 for p in report.problems)


def test_zone_less_text_defaults_to_utc(tmp_path, store):
    source = make_db(
        tmp_path / "a.db",
        NEW_COLUMNS,
        [base(timestamp="2024-03-10T12:00:00.250"), base(timestamp="2024-03-10T12:00:01")],
    )
    import_original([source], store)
    assert stored(store)["timestamp"].tolist() == [1710072000250, 1710072001000]


def test_timestamp_type_is_decided_per_value(tmp_path, store):
    """One column holding REAL seconds, INTEGER seconds, ISO text and seconds written as text:
    each value is read by its own storage class. ISO text is never read as a number (the original
    system dated such rows 1970); text holding a number is epoch seconds, as the import how-to
    says, unless it is too small to be (a year, a basic ISO date), which is skipped."""
    source = make_db(
        tmp_path / "mixed.db",
        "id INTEGER PRIMARY KEY, timestamp, sensor_id TEXT, temperature REAL",
        [
            {"timestamp": 1710072000.5, "sensor_id": "a", "temperature": 1.0},
            {"timestamp": 1710072001, "sensor_id": "a", "temperature": 2.0},
            {"timestamp": "2024-03-10T12:00:02Z", "sensor_id": "a", "temperature": 3.0},
            {"timestamp": " 2024-03-10 13:00:03.25+01:00 ", "sensor_id": "a", "temperature": 4.0},
            {"timestamp": " 1710072004.25 ", "sensor_id": "a", "temperature": 5.0},
            {"timestamp": "1740823203", "sensor_id": "a", "temperature": 6.0},
            {"timestamp": "2024", "sensor_id": "a", "temperature": 7.0},
            {"timestamp": "20250301", "sensor_id": "a", "temperature": 8.0},
            {"timestamp": "noon", "sensor_id": "a", "temperature": 9.0},
            {"timestamp": b"\x00\x01", "sensor_id": "a", "temperature": 10.0},
            {"timestamp": 1e300, "sensor_id": "a", "temperature": 11.0},
            {"timestamp": "1e300", "sensor_id": "a", "temperature": 12.0},
        ],
    )
    report = import_original([source], store)
    cols = stored(store)
    assert cols["timestamp"].tolist() == [
        1710072000500,
        1710072001000,
        1710072002000,
        1710072003250,
        1710072004250,
        1740823203000,
    ]
    assert cols["temperature"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert report.rows_skipped == 6
    assert report.skipped == {
        "timestamp is not a plausible number of epoch seconds": 2,
        "timestamp stored as blob": 1,
        "timestamp text is a number too small for epoch seconds (before 1973)": 2,
        "timestamp text is neither epoch seconds nor ISO-8601": 1,
    }
    assert {p.message.split(" (first")[0] for p in report.problems} == {
        f"{n} row(s) skipped: {reason}" for reason, n in report.skipped.items()
    }


def test_reimport_adds_nothing(tmp_path, store):
    old = old_generation(tmp_path / "old.db")
    new = new_generation(tmp_path / "new.db")
    first = import_original([old, new], store, assume_timezone="Europe/Berlin")
    assert first.rows_added == 9
    again = import_original([old, new], store, assume_timezone="Europe/Berlin")
    assert again.rows_read == first.rows_read and again.rows_added == 0
    assert store.stats().rows == 9


def test_directories_are_searched_recursively(tmp_path, store):
    data = tmp_path / "data"
    old_generation(data / "lisbon" / "sensor-1" / "sensor_data.db")
    new_generation(data / "berlin" / "sensor-2" / "sensor_data.db")
    make_db(
        data / "berlin" / "sensor-3" / "sensor_data.db",
        OLD_COLUMNS,
        [base("berlin-003", timestamp=1710072000.0)],
    )
    unrelated = data / "other.db"
    con = sqlite3.connect(unrelated)
    con.execute("CREATE TABLE something (x)")
    con.commit()
    con.close()
    garbage = data / "lisbon" / "broken.db"
    garbage.write_bytes(b"this is not a database" * 100)
    (data / "notes.txt").write_text("ignored: not a .db file")
    with SQLiteStore(data / "store.db") as inside:  # the store itself may live in the tree
        report = import_original([data], inside)
        assert inside.stats().rows == 10
    assert sorted(p.relative_to(data).as_posix() for p in report.files) == [
        "berlin/sensor-2/sensor_data.db",
        "berlin/sensor-3/sensor_data.db",
        "lisbon/sensor-1/sensor_data.db",
    ]
    assert report.rows_added == 10
    messages = {p.path.name: p.message for p in report.problems if "skipped:" in p.message}
    assert messages["other.db"] == "skipped: no 'sensor_readings' table"
    assert messages["broken.db"].startswith("skipped: not a readable SQLite database")
    assert "store.db" not in messages
    assert all(isinstance(p, ImportProblem) for p in report.problems)
    assert not report.ok


def test_batch_columns_are_canonical(tmp_path, store):
    import_original([old_generation(tmp_path / "o.db")], store)
    batch = store.read("x", 100)
    assert batch.columns[: len(CORE_FIELDS)] == tuple(CORE_FIELDS)
    assert batch.columns[-1] == STORE_SEQ


def test_bad_arguments(tmp_path, store):
    with pytest.raises(ValueError, match="Mars/Olympus"):
        import_original([tmp_path], store, assume_timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="batch_size"):
        import_original([tmp_path], store, batch_size=0)
    report = import_original([tmp_path / "missing.db"], store)
    assert report.files == () and "no such file" in str(report.problems[0])
    assert import_original([], store) == ImportReport((), 0, 0, 0, ())


def test_anomaly_flags_read_with_the_one_vocabulary(tmp_path, store):
    flags = [1, 0, "yes", "F", " True ", "2.0", None, "", "sometimes", b"\x01"]
    rows = [base(timestamp=1710072000 + i, anomaly_flag=f) for i, f in enumerate(flags)]
    source = make_db(tmp_path / "flags.db", OLD_COLUMNS, rows)
    report = import_original(source, store)
    assert report.rows_added == len(flags)
    read = stored(store)["anomaly_flag"].tolist()
    assert read == [True, False, True, False, True, True, False, False, False, False]
    assert [str(p) for p in report.problems] == [
        f"{source}: 2 unparsable value(s) in 'anomaly_flag' read as missing"
    ]
