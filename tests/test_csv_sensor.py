"""The built-in ``csv`` sensor reading files once: mapping, time forms, rejects, limits, state."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.config import ComponentConfig
from cosmobac.errors import ConfigError
from cosmobac.interfaces import (
    Closeable,
    CommittingSensor,
    InputReject,
    LiveSensor,
    RejectingSensor,
    StatefulSensor,
)
from cosmobac.plugins import Plugins
from cosmobac.sensors.csv_files import CsvFiles

HEADER = "time,device,temp_c,hum\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read_all(sensor: CsvFiles) -> tuple[Batch, list[InputReject]]:
    """Everything a sensor that does not follow returns, read after read, until finished."""
    batches, rejects = [], []
    for _ in range(10_000):
        if sensor.finished:
            break
        assert sensor.wait(0, 1)
        batches.append(sensor.read(0))
        rejects += sensor.take_rejects()
    assert sensor.finished and not sensor.wait(0, 1)
    return Batch.concat(batches), rejects


def rows(batch: Batch) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in batch.rows()
    ]


def sensor(tmp_path: Path, **keys) -> CsvFiles:
    keys.setdefault("path", str(tmp_path / "*.csv"))
    keys.setdefault("timestamp_column", "time")
    keys.setdefault("sensor_id_column", "device")
    keys.setdefault("columns", {"temp_c": "temperature", "hum": "humidity"})
    return CsvFiles(**keys)


def test_register_sensors_adds_the_csv_sensor_with_its_capabilities(tmp_path):
    write(tmp_path / "a.csv", HEADER)
    component = Plugins().get("sensor", "csv")
    assert component.factory is CsvFiles
    made = sensor(tmp_path)
    for capability in (LiveSensor, StatefulSensor, RejectingSensor, Closeable):
        assert isinstance(made, capability)
    assert not isinstance(made, CommittingSensor)
    made.close()
    made.close()  # twice is fine


def test_mapped_columns_become_fields_and_the_rest_is_dropped(tmp_path):
    write(
        tmp_path / "a.csv",
        HEADER + "2026-01-01T00:00:00Z,dev-1,21.5,40\n2026-01-01T00:00:01Z,dev-2,,41.5\n",
    )
    batch, rejects = read_all(sensor(tmp_path, columns={"temp_c": "temperature"}))
    assert rejects == []
    assert batch.columns == ("timestamp", "sensor_id", "temperature")
    assert rows(batch) == [
        {"timestamp": 1767225600000, "sensor_id": "dev-1", "temperature": 21.5},
        {"timestamp": 1767225601000, "sensor_id": "dev-2", "temperature": None},  # empty: NaN
    ]
    assert batch["timestamp"].dtype == np.int64


def test_without_columns_the_core_named_columns_are_read_and_keep_unmapped_keeps_others(tmp_path):
    write(
        tmp_path / "a.csv",
        "timestamp,sensor_id,temperature,city,Wind Speed (m/s),anomaly_flag\n"
        "2026-01-01T00:00:00Z,s1,20,Oslo,3.5,yes\n",
    )
    batch, _ = read_all(CsvFiles(path=str(tmp_path / "a.csv")))
    assert rows(batch) == [
        {
            "timestamp": 1767225600000,
            "sensor_id": "s1",
            "temperature": 20.0,
            "city": "Oslo",
            "anomaly_flag": True,
        }
    ]
    kept, _ = read_all(CsvFiles(path=str(tmp_path / "a.csv"), keep_unmapped=True))
    assert rows(kept)[0]["wind_speed_m_s"] == "3.5"  # kept as text, under a snake_case name


def test_a_constant_sensor_id(tmp_path):
    write(tmp_path / "a.csv", "time,temp_c\n2026-01-01T00:00:00Z,1\n")
    batch, _ = read_all(
        CsvFiles(
            path=str(tmp_path / "a.csv"),
            timestamp_column="time",
            sensor_id="roof-1",
            columns={"temp_c": "temperature"},
        )
    )
    assert rows(batch) == [{"timestamp": 1767225600000, "sensor_id": "roof-1", "temperature": 1.0}]


JAN = 1767225600000  # 2026-01-01T00:00:00Z
JUL = 1782864000000  # 2026-07-01T00:00:00Z


@pytest.mark.parametrize(
    ("cell", "keys", "expected"),
    [
        ("2026-01-01T00:00:00Z", {}, JAN),
        ("2026-01-01T01:00:00.250+01:00", {}, JAN + 250),
        ("2026-01-01 00:00:00", {"timezone": "UTC"}, JAN),
        ("2026-07-01T02:00:00", {"timezone": "Europe/Paris"}, JUL),  # summer time: UTC+2
        (
            "01/01/2026 01:00",
            {"timestamp_format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"},
            JAN,
        ),
        (
            "2026-01-01 00:00:00 -0500",
            {"timestamp_format": "%Y-%m-%d %H:%M:%S %z"},
            JAN + 5 * 3600_000,
        ),
        ("1767225600", {"timestamp_format": "s"}, JAN),
        ("1767225600.0019", {"timestamp_format": "s"}, JAN + 1),
        ("1767225600123", {"timestamp_format": "ms"}, JAN + 123),
        ("1767225600123999", {"timestamp_format": "us"}, JAN + 123),
        ("1767225600123999999", {"timestamp_format": "ns"}, JAN + 123),
        ("-1000", {"timestamp_format": "ms"}, -1000),
    ],
)
def test_every_timestamp_form(tmp_path, cell, keys, expected):
    write(tmp_path / "a.csv", f'time,device,temp_c,hum\n"{cell}",d,1,2\n')
    batch, rejects = read_all(sensor(tmp_path, **keys))
    assert rejects == []
    assert batch["timestamp"].tolist() == [expected]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2026-01-01 00:00:00,d,1,2", "'2026-01-01 00:00:00' has no time zone"),
        ("yesterday,d,1,2", "timestamp column 'time': 'yesterday' is not ISO-8601"),
        (",d,1,2", "timestamp column 'time': '' is empty"),
        ("2026-01-01T00:00:00Z,,1,2", "sensor id column 'device' is empty"),
        (
            "2026-01-01T00:00:00Z,d,warm,2",
            "column 'temperature' (CSV column 3): 'warm' is not a number",
        ),
        ("2026-01-01T00:00:00Z,d,inf,2", "'inf' is not a finite number"),
        ("2026-01-01T00:00:00Z,d,1", "has 3 fields, the header has 4"),
        ('2026-01-01T00:00:00Z,d,"1,2', "not a CSV line"),
        ('2026-01-01T00:00:00Z,d,"1"x,2', "not a CSV line"),
    ],
)
def test_a_bad_line_is_rejected_with_its_file_line_and_reason(tmp_path, line, reason):
    path = write(
        tmp_path / "a.csv",
        f"{HEADER}2026-01-01T00:00:00Z,d,1,2\n\n{line}\n2026-01-01T00:00:05Z,d,3,4\n",
    )
    batch, rejects = read_all(sensor(tmp_path))
    assert batch["timestamp"].tolist() == [JAN, JAN + 5000]  # the lines around it are kept
    assert len(rejects) == 1
    assert rejects[0].origin == f"{path}:4"  # the empty line 3 counts
    assert reason in rejects[0].reason
    assert rejects[0].raw == line


def test_a_line_that_is_not_utf8_is_rejected(tmp_path):
    path = write(tmp_path / "a.csv", HEADER.encode() + b"2026-01-01T00:00:00Z,d\xff,1,2\n")
    batch, rejects = read_all(sensor(tmp_path))
    assert len(batch) == 0
    assert [r.origin for r in rejects] == [f"{path}:2"]
    assert "not UTF-8" in rejects[0].reason


def test_bom_crlf_and_a_last_line_without_newline(tmp_path):
    write(
        tmp_path / "a.csv",
        b"\xef\xbb\xbftime,device,temp_c,hum\r\n2026-01-01T00:00:00Z,d,1,2\r\n"
        b"2026-01-01T00:00:01Z,d,3,4",
    )
    made = sensor(tmp_path)
    batch, rejects = read_all(made)
    assert rejects == []
    assert rows(batch) == [
        {"timestamp": JAN, "sensor_id": "d", "temperature": 1.0, "humidity": 2.0},
        {"timestamp": JAN + 1000, "sensor_id": "d", "temperature": 3.0, "humidity": 4.0},
    ]
    entry = json.loads(made.get_state())["files"][str(tmp_path / "a.csv")]
    assert entry["offset"] == (tmp_path / "a.csv").stat().st_size and entry["line"] == 3


def test_no_header_with_column_names_and_other_delimiters(tmp_path):
    write(tmp_path / "a.csv", "2026-01-01T00:00:00Z;d;1;2\n")
    batch, _ = read_all(
        sensor(
            tmp_path, header=False, column_names=["time", "device", "temp_c", "hum"], delimiter=";"
        )
    )
    assert rows(batch) == [
        {"timestamp": JAN, "sensor_id": "d", "temperature": 1.0, "humidity": 2.0}
    ]
    write(tmp_path / "a.csv", "T\tD\tX\tY\n2026-01-01T00:00:00Z\td\t1\t2\n")
    renamed, _ = read_all(
        sensor(tmp_path, column_names="time,device,temp_c,hum", delimiter="tab")
    )  # the header line is skipped, the names replace it
    assert rows(renamed) == rows(batch)


def test_quoted_cells_may_hold_the_delimiter_and_quotes(tmp_path):
    write(tmp_path / "a.csv", 'time,device,temp_c,hum\n2026-01-01T00:00:00Z,"a,""b""",1,2\n')
    batch, _ = read_all(sensor(tmp_path))
    assert batch["sensor_id"].tolist() == ['a,"b"']


def test_reads_are_bounded_by_max_rows_per_read(tmp_path):
    lines = "".join(f"{JAN + i},d,{i},0\n" for i in range(25))
    write(tmp_path / "a.csv", "time,device,temp_c,hum\n" + lines)
    made = sensor(tmp_path, timestamp_format="ms", max_rows_per_read=10)
    sizes = []
    while not made.finished:
        sizes.append(len(made.read(0)))
    assert sizes == [9, 10, 6]  # the header line counts as one of the first read's ten
    assert len(made.read(0)) == 0 and made.take_rejects() == []


def test_globs_and_lists_of_paths_are_read_in_path_order(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "b.csv", HEADER + "2026-01-01T00:00:02Z,b,1,1\n")
    write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:01Z,a,1,1\n")
    write(tmp_path / "sub" / "c.csv", HEADER + "2026-01-01T00:00:03Z,c,1,1\n")
    write(tmp_path / "notes.txt", "not csv\n")
    batch, _ = read_all(sensor(tmp_path, path=str(tmp_path / "**" / "*.csv")))
    assert batch["sensor_id"].tolist() == ["a", "b", "c"]
    listed, _ = read_all(
        sensor(tmp_path, path=[str(tmp_path / "sub/c.csv"), str(tmp_path / "b.csv")])
    )
    assert listed["sensor_id"].tolist() == ["b", "c"]


def test_an_empty_read_has_the_identity_and_mapped_columns(tmp_path):
    write(tmp_path / "a.csv", HEADER)
    made = sensor(tmp_path)
    batch = made.read(0)
    assert len(batch) == 0 and batch.columns == (
        "timestamp",
        "sensor_id",
        "temperature",
        "humidity",
    )
    assert made.finished


# -- configuration errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"columns": {"temp": "temperature"}}, "columns: 'temp' is not a column of the file"),
        ({"timestamp_column": "when"}, "timestamp_column: 'when' is not a column"),
        ({"sensor_id_column": "dev"}, "sensor_id_column: 'dev' is not a column"),
        ({"timestamp_format": "hours"}, "timestamp_format must be 'iso', an epoch unit"),
        ({"timestamp_format": "%d/%m/%Y"}, "add timezone = 'UTC'"),
        ({"timestamp_format": "s", "timezone": "UTC"}, "timezone does not apply to epoch"),
        ({"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not a known zone"),
        ({"sensor_id": "x"}, "give sensor_id (one id for every row) or sensor_id_column"),
        ({"columns": {"time": "timestamp"}}, "set timestamp_column instead"),
        ({"columns": {"temp_c": "temperature", "hum": "temperature"}}, "two columns map to"),
        ({"columns": {"temp_c": "temp erature"}}, "letters, digits and _"),
        ({"header": False}, "header = false needs column_names"),
        ({"delimiter": ";;"}, "delimiter must be one character"),
        ({"max_rows_per_read": 0}, "max_rows_per_read must be ≥ 1"),
        ({"poll_interval": "0s"}, "poll_interval must be longer than zero"),
        ({"path": "{tmp}/*.tsv"}, "path: no file matches"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path, keys, message):
    write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:00Z,d,1,2\n")
    keys = {k: v.format(tmp=tmp_path) if k == "path" else v for k, v in keys.items()}
    with pytest.raises(ValueError, match=None) as caught:
        sensor(tmp_path, **keys)
    assert message in str(caught.value)


def test_a_pipeline_table_with_a_wrong_column_is_a_config_error(tmp_path):
    write(tmp_path / "a.csv", HEADER)
    table = {
        "plugin": "csv",
        "path": str(tmp_path / "a.csv"),
        "timestamp_column": "time",
        "sensor_id_column": "device",
        "columns": {"tc": "temperature"},
    }
    cfg = ComponentConfig.from_table("sensor", table, where="[sensor]", plugins=Plugins())
    with pytest.raises(ConfigError, match=r"\[sensor\] \(plugin 'csv'\).*columns: 'tc'"):
        cfg.build(Plugins())


# -- state ------------------------------------------------------------------------------------
def test_state_keeps_entries_of_files_it_does_not_watch(tmp_path):
    write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:00Z,d,1,2\n")
    first = sensor(tmp_path)
    read_all(first)
    state = json.loads(first.get_state())
    other = {"dev": 1, "ino": 2, "offset": 3, "line": 4, "header": None}
    state["files"]["/elsewhere/b.csv"] = other
    second = sensor(tmp_path)
    second.set_state(json.dumps(state))
    assert second.finished  # a.csv was read to its end
    assert json.loads(second.get_state())["files"]["/elsewhere/b.csv"] == other


def test_a_file_replaced_or_truncated_while_stopped_is_read_from_its_start(tmp_path):
    path = write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:00Z,d,1,2\n")
    first = sensor(tmp_path)
    read_all(first)
    state = first.get_state()
    os.replace(write(tmp_path / "new", HEADER + "2026-01-01T00:00:09Z,d,1,2\n"), path)
    replaced = sensor(tmp_path)
    replaced.set_state(state)
    assert read_all(replaced)[0]["timestamp"].tolist() == [JAN + 9000]
    state = replaced.get_state()
    with open(path, "r+b") as stream:
        stream.truncate(10)
    truncated = sensor(tmp_path)
    truncated.set_state(state)
    batch, rejects = read_all(truncated)
    assert len(batch) == 0 and [r.origin for r in rejects] == [f"{path}:1"]  # half a header


def test_a_file_renamed_while_stopped_resumes_under_its_new_name(tmp_path):
    path = write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:00Z,d,1,2\n")
    first = sensor(tmp_path)
    read_all(first)
    with open(path, "a") as stream:
        stream.write("2026-01-01T00:00:01Z,d,1,2\n")
    os.rename(path, tmp_path / "a-1.csv")
    second = sensor(tmp_path)
    second.set_state(first.get_state())
    assert read_all(second)[0]["timestamp"].tolist() == [JAN + 1000]
    assert list(json.loads(second.get_state())["files"]) == [str(tmp_path / "a-1.csv")]


def test_unreadable_state_is_refused(tmp_path):
    write(tmp_path / "a.csv", HEADER)
    with pytest.raises(ValueError, match="not one this version wrote"):
        sensor(tmp_path).set_state("{}")


# -- restart equivalence ----------------------------------------------------------------------
_CELLS = st.sampled_from(["1.5", "", "x", "-3", "2e3"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(_CELLS, min_size=0, max_size=30),
    cap=st.integers(1, 7),
    cut=st.integers(0, 12),
    split=st.integers(0, 30),
)
def test_a_restart_anywhere_reads_what_one_uninterrupted_read_does(
    tmp_path, cells, cap, cut, split
):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).unlink(missing_ok=True)
    lines = [f"{JAN + i},s{i % 3},{c},{i}\r\n" for i, c in enumerate(cells)]
    lines.insert(min(split, len(lines)), "\n")
    write(tmp_path / "a.csv", HEADER + "".join(lines[:split]))
    write(tmp_path / "b.csv", HEADER + "".join(lines[split:]))
    keys = {"timestamp_format": "ms", "max_rows_per_read": cap}
    whole, whole_rejects = read_all(sensor(tmp_path, **keys))

    first = sensor(tmp_path, **keys)
    batches, rejects = [], []
    for _ in range(cut):
        batches.append(first.read(0))
        rejects += first.take_rejects()
    second = sensor(tmp_path, **keys)
    second.set_state(first.get_state())
    rest, rest_rejects = read_all(second)
    assert Batch.concat([*batches, rest]).equals(whole)
    assert [(r.origin, r.reason) for r in rejects + rest_rejects] == [
        (r.origin, r.reason) for r in whole_rejects
    ]
    assert len(whole) + len(whole_rejects) == len(cells)


def test_a_file_rewritten_in_place_while_stopped_is_read_from_its_start(tmp_path):
    """Same inode, at least as long as before, other bytes (truncated and written again, or a new
    file that reused the inode): the digest of its first bytes tells it apart."""
    path = write(tmp_path / "a.csv", HEADER + "2026-01-01T00:00:00Z,d,1,2\n")
    first = sensor(tmp_path)
    read_all(first)
    with open(path, "r+b") as stream:
        stream.truncate(0)
        stream.write((HEADER + "2026-01-01T00:00:07Z,d,1,2\n" * 3).encode())
    second = sensor(tmp_path)
    second.set_state(first.get_state())
    assert read_all(second)[0]["timestamp"].tolist() == [JAN + 7000] * 3


def test_spaces_around_header_names_are_ignored(tmp_path):
    write(tmp_path / "a.csv", "time , device,temp_c, hum\n2026-01-01T00:00:00Z,d,1,2\n")
    batch, rejects = read_all(sensor(tmp_path))
    assert rejects == [] and batch["humidity"].tolist() == [2.0]
