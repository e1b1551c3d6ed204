"""The ``csv`` sensor following growing files: partial lines, new files, rotation, truncation,
restarts. No sleeping: ``wait`` is called with a zero timeout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmobac.batch import Batch
from cosmobac.sensors.csv_files import CsvFiles

HEADER = "time,device,temp_c\n"
T0 = 1767225600000


def line(i: int) -> str:
    return f"{T0 + i},d,{i}\n"


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(text)


def follower(tmp_path: Path, **keys) -> CsvFiles:
    keys.setdefault("path", str(tmp_path / "*.csv"))
    return CsvFiles(
        timestamp_column="time",
        timestamp_format="ms",
        sensor_id_column="device",
        columns={"temp_c": "temperature"},
        follow=True,
        **keys,
    )


def values(batch: Batch) -> list[int]:
    return [int(v) for v in batch["temperature"]]


def test_a_growing_file_is_read_as_it_grows_and_a_partial_line_waits(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0) + line(1))
    sensor = follower(tmp_path)
    assert values(sensor.read(0)) == [0, 1]
    assert values(sensor.read(0)) == []
    append(path, line(2) + "1767225603")  # the last line is still being written
    assert values(sensor.read(0)) == [2]
    assert values(sensor.read(0)) == []
    append(path, "003,d,3\r\n")
    assert values(sensor.read(0)) == [3]
    assert sensor.take_rejects() == [] and not sensor.finished
    sensor.close()


def test_wait_counts_complete_lines_against_rows(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER)
    sensor = follower(tmp_path)
    sensor.read(0)
    assert sensor.wait(0, 1) is False
    append(path, line(0) + line(1) + f"{T0 + 9}")
    assert sensor.wait(0, 3) is False  # two complete lines wait, not three
    assert sensor.wait(0, 2) is True
    append(path, ",d,9\n")
    assert sensor.wait(0, 3) is True
    assert values(sensor.read(0)) == [0, 1, 9]
    assert sensor.wait(0, 1) is False
    sensor.close()


def test_wait_is_capped_by_max_rows_per_read(tmp_path):
    (tmp_path / "a.csv").write_text(HEADER + line(0) + line(1))
    sensor = follower(tmp_path, max_rows_per_read=2)
    assert sensor.wait(0, 1000) is True  # a read takes two lines at most: they wait
    sensor.close()


def test_new_files_matching_the_pattern_are_picked_up(tmp_path):
    sensor = follower(tmp_path)  # no file yet: fine when following
    assert values(sensor.read(0)) == [] and not sensor.finished
    (tmp_path / "b.csv").write_text(HEADER + line(1))
    (tmp_path / "b.txt").write_text(HEADER + line(9))
    assert sensor.wait(0, 1) is True
    assert values(sensor.read(0)) == [1]
    (tmp_path / "a.csv").write_text(HEADER + line(0))
    assert values(sensor.read(0)) == [0]
    assert sorted(json.loads(sensor.get_state())["files"]) == [
        str(tmp_path / "a.csv"),
        str(tmp_path / "b.csv"),
    ]
    sensor.close()


def test_a_rotated_file_is_read_to_its_end_and_the_new_one_from_its_start(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0))
    sensor = follower(tmp_path)
    assert values(sensor.read(0)) == [0]
    append(path, line(1) + line(2))
    os.rename(path, tmp_path / "a.csv.1")  # rotated away: no longer matches *.csv
    path.write_text(HEADER + line(3))
    assert sensor.wait(0, 1) is True
    assert values(sensor.read(0)) == [1, 2, 3]
    assert list(json.loads(sensor.get_state())["files"]) == [str(path)]
    append(path, line(4))
    assert values(sensor.read(0)) == [4]
    sensor.close()


def test_a_file_rotated_to_a_watched_name_is_not_read_twice(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0))
    (tmp_path / "a-1.csv").write_text(HEADER + line(10))
    sensor = follower(tmp_path)
    assert sorted(values(sensor.read(0))) == [0, 10]
    append(path, line(1))
    os.replace(path, tmp_path / "a-1.csv")  # a.csv becomes a-1.csv; the old a-1.csv is gone
    path.write_text(HEADER + line(2))
    assert sorted(values(sensor.read(0))) == [1, 2]
    assert values(sensor.read(0)) == []
    sensor.close()


def test_a_truncated_file_is_read_from_its_start(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0) + line(1) + line(2))
    sensor = follower(tmp_path)
    assert values(sensor.read(0)) == [0, 1, 2]
    with open(path, "r+") as stream:  # copytruncate: the same file, emptied and written again
        stream.truncate(0)
        stream.write(HEADER + line(3))
    assert sensor.wait(0, 1) is True
    assert values(sensor.read(0)) == [3]
    assert sensor.take_rejects() == []
    sensor.close()


def test_a_deleted_file_is_read_to_its_end_then_forgotten(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0))
    sensor = follower(tmp_path)
    assert values(sensor.read(0)) == [0]
    append(
        path, line(1) + f"{T0 + 12},d,12"
    )  # its last line will never be finished: it is read as it is
    path.unlink()
    assert values(sensor.read(0)) == [1, 12]
    assert json.loads(sensor.get_state())["files"] == {}
    sensor.close()


def test_a_new_file_whose_header_lacks_a_mapped_column_has_its_lines_rejected(tmp_path):
    sensor = follower(tmp_path)
    path = tmp_path / "a.csv"
    path.write_text("time,device,other\n" + line(0))
    assert values(sensor.read(0)) == []
    rejects = sensor.take_rejects()
    assert [r.origin for r in rejects] == [f"{path}:1", f"{path}:2"]
    assert all("columns: 'temp_c' is not a column" in r.reason for r in rejects)
    sensor.close()


def test_close_releases_the_files(tmp_path):
    for name in "abc":
        (tmp_path / f"{name}.csv").write_text(HEADER)
    before = len(os.listdir("/proc/self/fd"))
    sensor = follower(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == before + 3
    sensor.close()
    assert len(os.listdir("/proc/self/fd")) == before


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.booleans()), min_size=1, max_size=8
    ),
    cap=st.integers(1, 4),
)
def test_restarting_while_following_neither_repeats_nor_skips(tmp_path, steps, cap):
    """Each step appends some lines (maybe leaving the last one half written), reads, and maybe
    restarts the sensor from its state: every line is returned exactly once, in order."""
    for old in tmp_path.glob("*.csv"):
        old.unlink()
    path = tmp_path / "a.csv"
    path.write_text(HEADER)
    sensor = follower(tmp_path, max_rows_per_read=cap)
    written: list[int] = []
    got: list[int] = []
    rest = ""  # the end of a line the last step left half written
    for count, leave_partial, restart in steps:
        text, rest = rest, ""
        for _ in range(count):
            written.append(len(written))
            text += line(written[-1])
        if leave_partial:
            written.append(len(written))
            full = line(written[-1])
            text, rest = text + full[: len(full) // 2], full[len(full) // 2 :]
        append(path, text)
        got += values(sensor.read(0))
        if restart:
            state = sensor.get_state()
            sensor.close()
            sensor = follower(tmp_path, max_rows_per_read=cap)
            sensor.set_state(state)
    append(path, rest)
    for _ in range(len(written) + 1):
        got += values(sensor.read(0))
    assert got == written
    assert sensor.take_rejects() == []
    sensor.close()


def test_a_file_truncated_and_written_past_where_it_stood_is_read_from_its_start(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + line(0))
    sensor = follower(tmp_path)
    assert values(sensor.read(0)) == [0]
    with open(path, "r+") as stream:  # between two looks: shorter, then longer again
        stream.truncate(0)
        stream.write(HEADER + line(5) + line(6) + line(7))
    assert sensor.wait(0, 1) is True
    assert values(sensor.read(0)) == [5, 6, 7]
    sensor.close()
