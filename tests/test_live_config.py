"""A following forwarder picks up a new pipeline file between batches: nothing read is lost,
nothing unwritten is acknowledged, a bad file is ignored; atomic writes, seeds, installs."""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cosmobac import Batch
from cosmobac.cli import cli
from cosmobac.errors import ConfigError
from cosmobac.live_config import (
    ConfigWatcher,
    forward_following,
    install,
    install_seed,
    main,
    read_status,
    status_path,
    write_atomic,
)
from cosmobac.plugins import get_plugins

pytestmark = pytest.mark.needs_plugins  # the sqlite store


DEADLINE = 60.0  # generous bound on waiting for the forwarder thread; never a timing assert


def pipeline(tmp_path: Path, out: str, *, name: str = "archive", extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [store]
        plugin = "sqlite"
        path = "{tmp_path / "edge.db"}"

        [[sinks]]
        plugin = "jsonl"
        name = "{name}"
        path = "{tmp_path / out}"
        {extra}

        [run]
        interval = "0.02s"
        batch_size = 7
        """
    )


def append(tmp_path: Path, first: int, count: int) -> None:
    store = get_plugins().create("store", "sqlite", path=str(tmp_path / "edge.db"))
    try:
        store.append(
            Batch.from_columns(
                sensor_id=[f"s{i % 3}" for i in range(first, first + count)],
                timestamp=[1_000 * i for i in range(first, first + count)],
                temperature=[float(i) for i in range(first, first + count)],
            )
        )
    finally:
        store.close()


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


class Forwarder:
    """forward_following in a thread, stopped like SIGTERM would."""

    def __init__(self, config: Path) -> None:
        self.stop = threading.Event()
        self.report = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)

    def _run(self, config: Path) -> None:
        try:
            self.report = forward_following(config, stop=self.stop, interval=0.02)
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def __enter__(self) -> Forwarder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(DEADLINE)

    def finish(self):
        self.stop.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error
        return self.report


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "config" / "pipeline.toml"
    write_atomic(path, pipeline(tmp_path, "one.jsonl"))
    append(tmp_path, 0, 20)
    yield path


def ids(path: Path) -> list[str]:
    return [doc["id"] for doc in lines(path)]


# -- switching ----------------------------------------------------------------------------------------
def test_a_new_file_switches_sinks_between_batches_losing_and_repeating_nothing(tmp_path, config):
    with Forwarder(config) as forwarder:
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 20, "the first 20 rows")
        result = install_new(config, pipeline(tmp_path, "two.jsonl"), tmp_path)
        assert result.state == "applied"
        append(tmp_path, 20, 30)  # same checkpoint name: the rest goes to the new file
        until(lambda: len(lines(tmp_path / "two.jsonl")) == 30, "the next 30 rows")
        report = forwarder.finish()
    together = ids(tmp_path / "one.jsonl") + ids(tmp_path / "two.jsonl")
    assert len(together) == len(set(together)) == 50
    assert report.lanes[0].consumer == "archive"
    assert report.lanes[0].acked == 50
    assert read_status(config)["state"] == "applied"


def install_new(config: Path, text: str, tmp_path: Path):
    new = tmp_path / "next.toml"
    new.write_text(text)
    return install(new, config, wait=DEADLINE)


def test_a_new_sink_name_starts_its_own_checkpoint(tmp_path, config):
    with Forwarder(config) as forwarder:
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 20, "the first rows")
        install_new(config, pipeline(tmp_path, "cloud.jsonl", name="cloud"), tmp_path)
        until(lambda: len(lines(tmp_path / "cloud.jsonl")) == 20, "the new sink's backlog")
        report = forwarder.finish()
    assert {lane.consumer: lane.acked for lane in report.lanes} == {"archive": 20, "cloud": 20}


def test_a_new_monitoring_section_is_said_to_need_a_restart(tmp_path, config, caplog):
    with Forwarder(config) as forwarder:
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 20, "the first rows")
        install_new(config, pipeline(tmp_path, "one.jsonl"), tmp_path)  # same sections
        assert "take effect when the forwarder restarts" not in caplog.text
        changed = pipeline(tmp_path, "one.jsonl") + '\n[monitoring]\nmax_backlog_age = "5m"\n'
        assert install_new(config, changed, tmp_path).state == "applied"
        forwarder.finish()
    assert "[monitoring] and [[alerts]] take effect when the forwarder restarts" in caplog.text


def test_a_bad_file_is_logged_and_ignored_and_the_old_pipeline_keeps_going(
    tmp_path, config, caplog
):
    with Forwarder(config) as forwarder:
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 20, "the first rows")
        # not TOML: the installer refuses it before writing anything ...
        with pytest.raises(ConfigError, match="not a valid pipeline file"):
            install_new(config, "[store\nplugin = ", tmp_path)
        write_atomic(config, "[store\nplugin = ")  # ... but someone writes it anyway
        until(lambda: (read_status(config) or {}).get("state") == "rejected", "the rejection")
        # TOML, but not a pipeline the forwarder accepts
        bad = pipeline(tmp_path, "x.jsonl", extra='colour = "red"')
        result = install_new(config, bad, tmp_path)
        assert result.state == "rejected"
        assert "unknown key 'colour'" in result.message
        append(tmp_path, 20, 5)
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 25, "rows through the old sink")
        forwarder.finish()
    assert not (tmp_path / "x.jsonl").exists()
    assert "the running pipeline keeps going" in caplog.text


def test_a_pipeline_that_cannot_start_is_rejected_and_the_old_one_resumes(tmp_path, config):
    with Forwarder(config) as forwarder:
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 20, "the first rows")
        broken = pipeline(tmp_path, "x.jsonl").replace(
            f'path = "{tmp_path / "x.jsonl"}"', "path = 5"
        )
        result = install_new(config, broken, tmp_path)
        assert result.state == "rejected"
        assert "cannot start" in result.message
        append(tmp_path, 20, 5)
        until(lambda: len(lines(tmp_path / "one.jsonl")) == 25, "rows through the old sink")
        report = forwarder.finish()
    assert report.lanes[0].acked == 25


def test_an_unreadable_file_at_start_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the pipeline file"):
        forward_following(tmp_path / "missing.toml", stop=threading.Event())


# -- the pieces ---------------------------------------------------------------------------------------
def test_write_atomic_replaces_in_one_step_and_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b.toml"
    write_atomic(target, "one")
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert oct(target.stat().st_mode & 0o777) == "0o600"

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "three")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.toml"]


def test_the_watcher_sees_content_not_touches(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("a = 1\n")
    watcher = ConfigWatcher(path, path.read_bytes())
    os.utime(path, ns=(1, 1))
    assert watcher.poll() is None  # touched, same content
    write_atomic(path, "a = 2\n")
    assert watcher.poll() == b"a = 2\n"
    watcher.reject(b"a = 2\n")
    write_atomic(path, "a = 2\n")
    assert watcher.poll() is None  # rejected content is not offered again
    write_atomic(path, "a = 3\n")
    data = watcher.poll()
    watcher.accept(data)
    assert watcher.current == __import__("hashlib").sha256(b"a = 3\n").hexdigest()


def test_a_seed_is_installed_once_and_a_switch_survives_restarts(tmp_path):
    seed, live = tmp_path / "seed.toml", tmp_path / "data" / "pipeline.toml"
    seed.write_text("a = 1\n")
    assert install_seed(seed, live) is True
    assert install_seed(seed, live) is False  # a restart with the same seed
    write_atomic(live, "a = 2\n")  # a switch
    assert install_seed(seed, live) is False
    assert live.read_text() == "a = 2\n"
    seed.write_text("a = 3\n")  # a new deployment
    assert install_seed(seed, live) is True
    assert live.read_text() == "a = 3\n"


def test_install_without_a_forwarder_times_out(tmp_path):
    new, live = tmp_path / "n.toml", tmp_path / "live.toml"
    new.write_text("[store]\n")
    result = install(new, live, wait=0.05, poll=0.01)
    assert (result.state, result.exit_code) == ("timeout", 4)
    assert live.read_text() == "[store]\n"
    assert install(new, live).state == "written"


def test_the_install_script(tmp_path, capsys):
    new, live = tmp_path / "n.toml", tmp_path / "live.toml"
    new.write_text("[store]\n")
    assert main(["install", str(new), str(live)]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "written"
    new.write_text("[store\n")
    assert main(["install", str(new), str(live)]) == 2
    assert "not a valid pipeline file" in capsys.readouterr().err
    status_path(live).write_text(json.dumps({"sha256": "x", "state": "applied"}))
    new.write_text("[run]\n")
    assert main(["install", str(new), str(live), "--wait", "0.05"]) == 4


def test_forward_seed_and_no_reload_options(tmp_path):
    seed = tmp_path / "seed.toml"
    seed.write_text(pipeline(tmp_path, "seeded.jsonl"))
    append(tmp_path, 0, 4)
    live = tmp_path / "live" / "pipeline.toml"
    result = CliRunner().invoke(cli, ["forward", str(live), "--seed", str(seed), "--no-reload"])
    assert result.exit_code == 0, result.output
    assert live.read_text() == seed.read_text()
    assert len(lines(tmp_path / "seeded.jsonl")) == 4


def test_a_seed_that_cannot_be_installed_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the seed"):
        install_seed(tmp_path / "missing.toml", tmp_path / "live.toml")
    seed = tmp_path / "seed.toml"
    seed.write_text("a = 1\n")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot install the pipeline file"):
        install_seed(seed, tmp_path / "file" / "live.toml")
