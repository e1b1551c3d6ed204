"""``cosmobac wasm run``: Bacalhau's WASM semantics, and the shipped module's ``_start`` giving
exactly what the transform gives."""

from __future__ import annotations

import csv
import math

import click
import numpy as np
import pytest
from click.testing import CliRunner
from wasm_helpers import (
    ARGV_ENV_COMMAND,
    EXIT_COMMAND,
    MKDIR_COMMAND,
    RETURN_COMMAND,
    write_wat,
)

from cosmobac import Batch
from cosmobac.cli import cli
from cosmobac.plugins import Plugins
from cosmobac_wasm import WasmError, builtin_module_path, run_module, wasm_transform


def command_line() -> click.Group:
    group = click.Group(name="cosmobac", commands=dict(cli.commands))
    Plugins().add_commands(group)
    return group


def test_register_commands_wasm_adds_the_wasm_group():
    group = command_line()
    assert set(group.commands["wasm"].commands) == {"run", "kernels", "path"}  # type: ignore[attr-defined]
    result = CliRunner().invoke(group, ["wasm", "path"])
    assert result.output.strip() == str(builtin_module_path())
    result = CliRunner().invoke(group, ["wasm", "kernels"])
    assert "moving_average: grouped kernel" in result.output
    assert "calibrate: map kernel" in result.output
    assert "cosmobac_chain" not in result.output  # the chain runner is no kernel


def invoke(*args: str):
    return CliRunner().invoke(command_line(), ["wasm", "run", *args])


# -- the shipped module as a Bacalhau job ---------------------------------------------------------
def readings(n: int = 60) -> Batch:
    rng = np.random.default_rng(5)
    temperature = rng.normal(20, 6, n)
    temperature[3:n:14] = np.nan
    temperature[25:26] = np.inf
    return Batch.from_columns(
        sensor_id=[f"s{i % 4}" for i in range(n)],
        timestamp=np.arange(n) * 1000,
        city=['São Paulo, "SP"' if i % 5 == 0 else "Lisbon" for i in range(n)],
        temperature=temperature,
        pressure=rng.normal(101325, 300, n),
    )


def write_csv(batch: Batch, path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(batch.columns)
        for row in batch.rows():
            writer.writerow(
                [
                    ""
                    if isinstance(v, float) and math.isnan(v)
                    else repr(v)
                    if isinstance(v, float)
                    else v
                    for v in row.values()
                ]
            )


def read_csv(path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def numbers(rows: list[list[str]], index: int) -> np.ndarray:
    return np.array([float(r[index]) if r[index] else np.nan for r in rows])


@pytest.mark.parametrize(
    ("kernel", "params"),
    [
        ("calibrate", [1.02, -0.3]),
        ("celsius_to_fahrenheit", []),
        ("valid_range", [10, 25]),
        ("moving_average", [4]),
        ("zscore", [6]),
        ("zscore_flag", [6, 1.5]),
    ],
)
def test_the_shipped_job_gives_what_the_transform_gives(tmp_path, kernel, params):
    batch = readings()
    (tmp_path / "in").mkdir()
    write_csv(batch, tmp_path / "in" / "readings.csv")
    env = {"KERNEL": kernel, "COLUMNS": "temperature", "OUTPUTS": "result"}
    if params:
        env["PARAMS"] = ",".join(str(p) for p in params)
    result = run_module(
        "builtin",
        input_dir=tmp_path / "in",
        output_dir=tmp_path / "out",
        env=env,
        stdout=tmp_path / "stdout",
        stderr=tmp_path / "stderr",
    )
    assert result.ok, (tmp_path / "stderr").read_text()
    assert [p.name for p in result.outputs] == ["readings.csv"]
    header, rows = read_csv(tmp_path / "out" / "readings.csv")
    assert header == [*batch.columns, "result"]
    assert [r[2] for r in rows] == batch["city"].tolist()  # other columns travel unchanged
    expected = wasm_transform(
        kernel=kernel, columns={"temperature": {"output": "result"}}, params=params
    )(batch)["result"]
    got = numbers(rows, header.index("result"))
    assert np.array_equal(got, expected, equal_nan=True)  # bit for bit, through text


def test_the_shipped_job_takes_paths_as_arguments_and_params_per_column(tmp_path):
    batch = readings(10)
    (tmp_path / "in").mkdir()
    write_csv(batch, tmp_path / "in" / "data.csv")
    result = invoke(
        "builtin", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
        "--env", "KERNEL=calibrate", "--env", "COLUMNS=temperature,pressure",
        "--env", "PARAMS=1,0", "--env", "PARAMS_PRESSURE=0.01,0",
        "--", "/inputs/data.csv", "/outputs/calibrated.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _header, rows = read_csv(tmp_path / "out" / "calibrated.csv")
    assert np.array_equal(numbers(rows, 3), batch["temperature"], equal_nan=True)
    assert np.array_equal(numbers(rows, 4), batch["pressure"] * 0.01)


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({}, 2, "set KERNEL"),
        ({"KERNEL": "nope", "COLUMNS": "temperature"}, 2, "unknown KERNEL nope"),
        (
            {"KERNEL": "calibrate", "COLUMNS": "temperature"},
            2,
            "calibrate takes PARAMS=GAIN,OFFSET",
        ),
        (
            {"KERNEL": "calibrate", "COLUMNS": "temperature", "PARAMS": "1,x"},
            2,
            "x is not a number",
        ),
        ({"KERNEL": "calibrate", "COLUMNS": "wind", "PARAMS": "1,0"}, 5, "no column wind"),
        ({"KERNEL": "calibrate", "COLUMNS": "city", "PARAMS": "1,0"}, 5, "is not a number"),
        (
            {"KERNEL": "moving_average", "COLUMNS": "temperature", "PARAMS": "0"},
            7,
            "invalid parameters",
        ),
        (
            {
                "KERNEL": "calibrate",
                "COLUMNS": "temperature",
                "PARAMS": "1,0",
                "INPUT": "/inputs/../x.csv",
            },
            3,
            "cannot open input",
        ),
        (
            {
                "KERNEL": "calibrate",
                "COLUMNS": "temperature",
                "PARAMS": "1,0",
                "OUTPUT": "/elsewhere/x.csv",
            },
            4,
            "cannot create output",
        ),
    ],
)
def test_the_shipped_job_reports_problems_with_an_exit_code(tmp_path, env, code, message):
    (tmp_path / "in").mkdir()
    write_csv(readings(5), tmp_path / "in" / "readings.csv")
    result = run_module(
        "builtin",
        input_dir=tmp_path / "in",
        output_dir=tmp_path / "out",
        env=env,
        stdout=tmp_path / "stdout",
        stderr=tmp_path / "stderr",
    )
    assert result.exit_code == code and not result.ok
    assert message in (tmp_path / "stderr").read_text()


# -- Bacalhau's semantics -------------------------------------------------------------------------
def run_wat(tmp_path, text, **options):
    return run_module(
        write_wat(tmp_path, "job", text),
        stdout=tmp_path / "stdout",
        stderr=tmp_path / "stderr",
        **options,
    )


def test_argv0_is_empty_and_the_environment_is_a_jobs(tmp_path):
    result = run_wat(tmp_path, ARGV_ENV_COMMAND, args=["a", "b c"], env={"MODE": "fast"})
    assert result.ok
    assert (tmp_path / "stdout").read_bytes() == b"\0a\0b c\0"
    environment = dict(
        item.split("=", 1) for item in (tmp_path / "stderr").read_text().split("\0") if item
    )
    assert environment["MODE"] == "fast"
    assert environment["BACALHAU_PARTITION_INDEX"] == "0"
    assert environment["BACALHAU_PARTITION_COUNT"] == "1"
    assert environment["BACALHAU_JOB_TYPE"] == "batch"
    assert {"BACALHAU_EXECUTION_ID", "BACALHAU_JOB_ID"} <= set(environment)
    assert "PATH" not in environment and "HOME" not in environment  # nothing inherited


def test_exit_codes_are_reported_and_checked(tmp_path):
    result = run_wat(tmp_path, EXIT_COMMAND)
    assert result.exit_code == 3 and not result.ok and result.error is None
    returned = run_wat(tmp_path, RETURN_COMMAND)
    assert returned.exit_code == -1 and not returned.ok
    assert "without calling proc_exit" in (returned.error or "")
    module = write_wat(tmp_path, "exit3", EXIT_COMMAND)
    cli_result = invoke(str(module))
    assert cli_result.exit_code == 3
    assert "exit code: 3" in cli_result.output


def test_outputs_must_be_files_directly_in_the_output_folder(tmp_path):
    (tmp_path / "in").mkdir()
    result = run_wat(
        tmp_path, MKDIR_COMMAND, input_dir=tmp_path / "in", output_dir=tmp_path / "out"
    )
    assert (tmp_path / "out" / "sub").is_dir()
    assert not result.ok and "only files directly in an output folder" in (result.error or "")


def test_the_output_folder_must_start_empty(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.csv").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        run_wat(tmp_path, EXIT_COMMAND, output_dir=tmp_path / "out")
    result = invoke("builtin", "--output", str(tmp_path / "out"))
    assert result.exit_code == 2 and "not empty" in result.output


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("mode=fast", "upper case"),
        ("BACALHAU_JOB_ID=x", "reserved"),
        ("EMPTY=", "must not be empty"),
        ("NOEQUALS", "is not NAME=VALUE"),
    ],
)
def test_environment_names_follow_bacalhaus_rules(pair, message):
    result = invoke("builtin", "--env", pair)
    assert result.exit_code == 2 and message in result.output


def test_a_module_without_start_is_refused(tmp_path):
    module = write_wat(tmp_path, "lib", '(module (memory (export "memory") 1))')
    with pytest.raises(WasmError, match="missing export.*'_start'"):
        run_module(module, stdout=tmp_path / "o", stderr=tmp_path / "e")
    result = invoke(str(tmp_path / "missing.wasm"))
    assert result.exit_code == 2 and "no module file" in result.output


def test_stdout_and_stderr_can_be_kept_in_files(tmp_path):
    module = write_wat(tmp_path, "talk", ARGV_ENV_COMMAND)
    result = invoke(
        str(module), "--stdout", str(tmp_path / "out.txt"), "--stderr", str(tmp_path / "err.txt"),
        "--", "hello",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.txt").read_bytes() == b"\0hello\0"
    assert b"BACALHAU_EXECUTION_ID=" in (tmp_path / "err.txt").read_bytes()
