"""What a notebook shows for a batch and for store stats (``_repr_html_``)."""

from __future__ import annotations

import time

import numpy as np

from cosmobac.batch import Batch
from cosmobac.display import batch_html, format_utc, store_stats_html
from cosmobac.interfaces import StoreStats

DAY0 = 1_714_564_800_000  # 2024-05-01 12:00:00 UTC


def test_a_batch_shows_shape_columns_span_sensors_and_head():
    batch = Batch.from_columns(
        timestamp=[DAY0, DAY0 + 90_061_000, DAY0 + 1000],
        sensor_id=["a", "b", "a"],
        temperature=[20.5, np.nan, 21.0],
        note=["x", None, "y"],
    )
    text = batch._repr_html_()
    assert "3 rows × 4 columns" in text
    assert "2024-05-01 12:00:00.000 UTC → 2024-05-02 13:01:01.000 UTC (1 d 1 h 1 min 1 s)" in text
    assert "2 sensors" in text
    assert "temperature <span class='muted'>float64</span>" in text
    assert "note <span class='muted'>str</span>" in text
    assert text.count("<tr>") == 4  # the header and three rows
    assert "<td>2024-05-02 13:01:01.000 UTC</td>" in text  # timestamps in UTC, not epoch ms
    assert '<span class="muted">NaN</span>' in text and '<span class="muted">None</span>' in text
    assert "first" not in text  # every row is shown


def test_a_batch_escapes_names_and_values():
    batch = Batch.from_columns(
        timestamp=[DAY0], sensor_id=["<script>alert(1)</script>"], **{"a&b<": ["<i>x</i>"]}
    )
    text = batch._repr_html_()
    assert "<script>" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<th>a&amp;b&lt;</th>" in text and "&lt;i&gt;x&lt;/i&gt;" in text


def test_a_million_rows_show_only_the_head_and_fast():
    n = 1_000_000
    batch = Batch.from_columns(
        timestamp=DAY0 + np.arange(n, dtype=np.int64) * 100,
        sensor_id=np.array([f"s{i % 12}" for i in range(n)], dtype=object),
        temperature=np.full(n, 20.0),
    )
    start = time.perf_counter()
    text = batch._repr_html_()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    assert len(text) < 5000
    assert "1,000,000 rows × 3 columns" in text and "12 sensors" in text
    assert "first 5 of 1,000,000 rows" in text and text.count("<tr>") == 6
    assert "2024-05-02 15:46:39.900 UTC" in text  # the span's end
    assert batch_html(batch, head=2).count("<tr>") == 3


def test_an_empty_batch_and_one_sensor():
    assert "0 rows × 0 columns" in Batch.empty()._repr_html_()
    one = Batch.from_columns(timestamp=[DAY0], sensor_id=["a"])._repr_html_()
    assert "1 sensor<" in one and "(0 s)" in one


def test_format_utc_keeps_milliseconds():
    assert format_utc(DAY0 + 7) == "2024-05-01 12:00:00.007 UTC"


def test_store_stats_show_rows_size_and_each_consumer():
    stats = StoreStats(
        rows=12_345,
        pending={"cosmos<1>": 10, "jsonl": 0},
        oldest_pending_age_s={"cosmos<1>": 3725.0, "jsonl": None},
        dead_letters={"cosmos<1>": 2},
        file_size=3 * 1024 * 1024,
    )
    text = stats._repr_html_()
    assert text == store_stats_html(stats)
    assert "12,345 rows; 3.0 MiB on disk" in text
    assert "<td>cosmos&lt;1&gt;</td><td>10</td><td>1 h 2 min 5 s</td><td>2</td>" in text
    assert '<td>jsonl</td><td>0</td><td><span class="muted">None</span></td><td>0</td>' in text
    empty = StoreStats(rows=0, pending={}, oldest_pending_age_s={}, dead_letters={})._repr_html_()
    assert "no consumer has read yet" in empty and "on disk" not in empty
