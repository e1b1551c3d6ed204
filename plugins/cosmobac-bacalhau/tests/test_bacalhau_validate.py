"""Bacalhau's rules, one test per rule (a valid job changed in one place must give exactly that
problem, at that field path), every problem at once, normalisation, and the verdicts on
Bacalhau's own example specs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from bacalhau_support import EXAMPLES

import cosmobac_bacalhau
from cosmobac_bacalhau import dataurl
from cosmobac_bacalhau.model import (
    Constraint,
    InputSource,
    Job,
    JobState,
    Network,
    Port,
    Resources,
    ResultPath,
    SpecConfig,
    Task,
    Timeouts,
    read_job_file,
)
from cosmobac_bacalhau.validate import (
    check_job,
    judge_spec,
    normalise,
    parse_bytes,
    validate_job,
)
from cosmobac_bacalhau.wasmbin import WasmFormatError, exported_functions


def wasm_module(exports: dict[str, tuple[int, int]]) -> bytes:
    """A minimal module exporting functions with ``(n i32 params, n i32 results)``."""

    def section(ident: int, body: bytes) -> bytes:
        return bytes([ident, len(body)]) + body

    types = b"".join(
        b"\x60" + bytes([p]) + b"\x7f" * p + bytes([r]) + b"\x7f" * r for p, r in exports.values()
    )
    names = list(exports)
    bodies = []
    for _p, r in exports.values():
        code = (b"\x41\x00" * r) + b"\x0b"  # i32.const 0 per result, end
        bodies.append(bytes([len(code) + 1, 0]) + code)
    export = b"".join(bytes([len(n)]) + n.encode() + bytes([0, i]) for i, n in enumerate(names))
    return (
        b"\0asm\x01\0\0\0"
        + section(1, bytes([len(names)]) + types)
        + section(3, bytes([len(names), *range(len(names))]))
        + section(7, bytes([len(names)]) + export)
        + section(10, bytes([len(names)]) + b"".join(bodies))
    )


START = wasm_module({"_start": (0, 0), "main": (2, 1)})


def docker_job() -> Job:
    return Job(
        name="check",
        type="batch",
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(
                    "docker",
                    {
                        "Image": "busybox:1.37.0",
                        "Entrypoint": ["/bin/sh"],
                        "Parameters": ["-c", "true"],
                    },
                ),
                publisher=SpecConfig("local"),
                result_paths=[ResultPath("outputs", "/outputs")],
            )
        ],
    )


def wasm_job() -> Job:
    return Job(
        name="check",
        type="ops",
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(
                    "wasm",
                    {
                        "EntryModule": "/app/m.wasm",
                        "Entrypoint": "_start",
                        "Parameters": ["/inputs/a.csv"],
                    },
                ),
                publisher=SpecConfig("local"),
                input_sources=[
                    InputSource(
                        source=SpecConfig("inline", {"URL": dataurl.encode(START)}),
                        target="/app/m.wasm",
                    ),
                    InputSource(
                        source=SpecConfig("local", {"SourcePath": "/var/lib/x"}), target="/inputs"
                    ),
                ],
                result_paths=[ResultPath("outputs", "/outputs")],
            )
        ],
    )


def task(change: dict, base: Callable[[], Job] = docker_job) -> Job:
    job = base()
    return job.with_task(**change)


def engine(params: dict, base: Callable[[], Job] = docker_job) -> Job:
    job = base()
    return job.with_task(
        engine=attrs.evolve(job.task.engine, params={**job.task.engine.params, **params})
    )


def without(key: str, base: Callable[[], Job] = wasm_job) -> Job:
    job = base()
    params = {k: v for k, v in job.task.engine.params.items() if k != key}
    return job.with_task(engine=attrs.evolve(job.task.engine, params=params))


def source(spec: SpecConfig, target: str = "/in") -> Job:
    job = docker_job()
    return job.with_task(input_sources=(InputSource(source=spec, target=target),))


def constraint(*args: object) -> Job:
    return docker_job().evolve(constraints=[Constraint(*args)])  # type: ignore[arg-type]


BIG = dataurl.encode(b"x" * (8 * 1024 * 1024))

# (id, job, code, path, severity, stage)
RULES = [
    ("type missing", docker_job().evolve(type=""), "job-type-missing", "Type", "error", "submit"),
    (
        "type invalid",
        docker_job().evolve(type="Batch"),
        "job-type-invalid",
        "Type",
        "error",
        "submit",
    ),
    ("name NUL", docker_job().evolve(name="a\0b"), "name-null", "Name", "error", "submit"),
    ("no name", docker_job().evolve(name=""), "name-missing", "Name", "info", "client"),
    ("count < 0", docker_job().evolve(count=-1), "count-negative", "Count", "error", "submit"),
    (
        "daemon count",
        docker_job().evolve(type="daemon", count=2).with_task(result_paths=(), publisher=None),
        "count-daemon",
        "Count",
        "error",
        "submit",
    ),
    ("batch count 0", docker_job().evolve(count=0), "count-zero", "Count", "warning", "client"),
    (
        "read-only",
        docker_job().evolve(state=JobState(state_type="Running")),
        "read-only",
        "State",
        "warning",
        "client",
    ),
    (
        "reserved meta",
        docker_job().evolve(meta={"bacalhau.org/x": "1"}),
        "meta-reserved",
        "Meta",
        "warning",
        "client",
    ),
    (
        "operator",
        constraint("city", "like", ("x",)),
        "constraint-operator",
        "Constraints[0].Operator",
        "error",
        "submit",
    ),
    (
        "in without values",
        constraint("city", "in", ()),
        "constraint-values",
        "Constraints[0].Values",
        "error",
        "submit",
    ),
    (
        "exists with a value",
        constraint("city", "exists", ("x",)),
        "constraint-values",
        "Constraints[0].Values",
        "error",
        "submit",
    ),
    (
        "= with two values",
        constraint("city", "=", ("a", "b")),
        "constraint-values",
        "Constraints[0].Values",
        "error",
        "submit",
    ),
    (
        "label key",
        constraint("bad key", "exists", ()),
        "constraint-key",
        "Constraints[0].Key",
        "error",
        "schedule",
    ),
    (
        "label value",
        constraint("city", "=", ("São Paulo",)),
        "constraint-value-syntax",
        "Constraints[0].Values[0]",
        "error",
        "schedule",
    ),
    (
        "gt integer",
        constraint("cores", "gt", ("2.5",)),
        "constraint-integer",
        "Constraints[0].Values[0]",
        "error",
        "schedule",
    ),
    ("no task", docker_job().evolve(tasks=()), "tasks-missing", "Tasks", "error", "submit"),
    (
        "two tasks",
        docker_job().evolve(tasks=docker_job().tasks * 2),
        "tasks-many",
        "Tasks",
        "error",
        "submit",
    ),
    (
        "body size",
        source(SpecConfig("inline", {"URL": BIG})).with_task(
            input_sources=(
                InputSource(source=SpecConfig("inline", {"URL": BIG}), target="/a"),
                InputSource(source=SpecConfig("inline", {"URL": BIG}), target="/b"),
            )
        ),
        "body-too-large",
        "",
        "error",
        "submit",
    ),
    ("task name NUL", task({"name": "a\0"}), "task-name-null", "Tasks[0].Name", "error", "submit"),
    (
        "task name blank",
        task({"name": " "}),
        "task-name-missing",
        "Tasks[0].Name",
        "error",
        "submit",
    ),
    (
        "engine type",
        task({"engine": SpecConfig("")}),
        "engine-type-missing",
        "Tasks[0].Engine.Type",
        "error",
        "submit",
    ),
    (
        "engine unknown",
        task({"engine": SpecConfig("flibble")}),
        "engine-type-unknown",
        "Tasks[0].Engine.Type",
        "error",
        "schedule",
    ),
    (
        "noop engine",
        task({"engine": SpecConfig("noop")}),
        "engine-noop",
        "Tasks[0].Engine.Type",
        "warning",
        "client",
    ),
    (
        "env lower case",
        task({"env": {"mode": "x"}}),
        "env-name",
        "Tasks[0].Env['mode']",
        "error",
        "submit",
    ),
    ("env empty name", task({"env": {"": "x"}}), "env-name", "Tasks[0].Env['']", "error", "submit"),
    (
        "env reserved",
        task({"env": {"BACALHAU_X": "1"}}),
        "env-reserved",
        "Tasks[0].Env['BACALHAU_X']",
        "error",
        "submit",
    ),
    (
        "env value",
        task({"env": {"MODE": ""}}),
        "env-value-empty",
        "Tasks[0].Env['MODE']",
        "error",
        "submit",
    ),
    (
        "env host ref",
        task({"env": {"MODE": "env:"}}),
        "env-host-ref",
        "Tasks[0].Env['MODE']",
        "error",
        "submit",
    ),
    (
        "env secret",
        task({"env": {"COSMOS_KEY": "abc"}}),
        "env-secret-literal",
        "Tasks[0].Env['COSMOS_KEY']",
        "warning",
        "client",
    ),
    (
        "timeout < 0",
        task({"timeouts": Timeouts(queue_timeout=-1)}),
        "timeout-negative",
        "Tasks[0].Timeouts.QueueTimeout",
        "error",
        "submit",
    ),
    (
        "timeout total",
        task({"timeouts": Timeouts(execution_timeout=60, queue_timeout=60, total_timeout=100)}),
        "timeout-total",
        "Tasks[0].Timeouts.TotalTimeout",
        "error",
        "submit",
    ),
    (
        "cpu",
        task({"resources": Resources(cpu="two")}),
        "resources-cpu",
        "Tasks[0].Resources.CPU",
        "error",
        "submit",
    ),
    (
        "cpu case",
        task({"resources": Resources(cpu="500M")}),
        "resources-cpu-case",
        "Tasks[0].Resources.CPU",
        "warning",
        "client",
    ),
    (
        "memory",
        task({"resources": Resources(memory="lots")}),
        "resources-memory",
        "Tasks[0].Resources.Memory",
        "error",
        "submit",
    ),
    (
        "disk",
        task({"resources": Resources(disk="1 parsec")}),
        "resources-disk",
        "Tasks[0].Resources.Disk",
        "error",
        "submit",
    ),
    (
        "gpu",
        task({"resources": Resources(gpu="1.5")}),
        "resources-gpu",
        "Tasks[0].Resources.GPU",
        "error",
        "submit",
    ),
    (
        "input target",
        source(SpecConfig("inline", {"URL": "data:,x"}), target=""),
        "input-target-missing",
        "Tasks[0].InputSources[0].Target",
        "error",
        "submit",
    ),
    (
        "input target twice",
        task(
            {
                "input_sources": [
                    InputSource(source=SpecConfig("inline", {"URL": "data:,x"}), target="/a"),
                    InputSource(source=SpecConfig("inline", {"URL": "data:,y"}), target="/a"),
                ]
            }
        ),
        "input-target-duplicate",
        "Tasks[0].InputSources[1].Target",
        "error",
        "submit",
    ),
    (
        "input alias twice",
        task(
            {
                "input_sources": [
                    InputSource(
                        source=SpecConfig("inline", {"URL": "data:,x"}), target="/a", alias="x"
                    ),
                    InputSource(
                        source=SpecConfig("inline", {"URL": "data:,y"}), target="/b", alias="x"
                    ),
                ]
            }
        ),
        "input-alias-duplicate",
        "Tasks[0].InputSources[1].Alias",
        "error",
        "submit",
    ),
    (
        "source type",
        source(SpecConfig("")),
        "input-source-type-missing",
        "Tasks[0].InputSources[0].Source.Type",
        "error",
        "submit",
    ),
    (
        "source unknown",
        source(SpecConfig("ftp")),
        "input-source-type-unknown",
        "Tasks[0].InputSources[0].Source.Type",
        "error",
        "schedule",
    ),
    (
        "inline URL",
        source(SpecConfig("inline", {"URL": "http://x/y"})),
        "inline-url",
        "Tasks[0].InputSources[0].Source.Params.URL",
        "error",
        "execute",
    ),
    (
        "url scheme",
        source(SpecConfig("urlDownload", {"URL": "ftp://h/f.csv"})),
        "url-download",
        "Tasks[0].InputSources[0].Source.Params.URL",
        "error",
        "execute",
    ),
    (
        "url file name",
        source(SpecConfig("urlDownload", {"URL": "https://h/"})),
        "url-download",
        "Tasks[0].InputSources[0].Source.Params.URL",
        "error",
        "execute",
    ),
    (
        "s3 bucket",
        source(SpecConfig("s3", {"Key": "k"})),
        "s3-bucket",
        "Tasks[0].InputSources[0].Source.Params.Bucket",
        "error",
        "execute",
    ),
    (
        "s3 presigned",
        source(SpecConfig("s3PreSigned", {"Bucket": "b"})),
        "s3-presigned-url",
        "Tasks[0].InputSources[0].Source.Params.PreSignedURL",
        "error",
        "execute",
    ),
    (
        "ipfs",
        source(SpecConfig("ipfs", {})),
        "ipfs-cid",
        "Tasks[0].InputSources[0].Source.Params.CID",
        "error",
        "execute",
    ),
    (
        "local path",
        source(SpecConfig("local", {"SourcePath": "data"})),
        "local-path",
        "Tasks[0].InputSources[0].Source.Params.SourcePath",
        "error",
        "execute",
    ),
    (
        "local create",
        source(SpecConfig("local", {"SourcePath": "/d", "CreateAs": "folder"})),
        "local-createas",
        "Tasks[0].InputSources[0].Source.Params.CreateAs",
        "error",
        "execute",
    ),
    (
        "local rw",
        source(SpecConfig("local", {"SourcePath": "/d", "ReadWrite": "yes"})),
        "local-readwrite",
        "Tasks[0].InputSources[0].Source.Params.ReadWrite",
        "error",
        "execute",
    ),
    (
        "localDirectory",
        source(SpecConfig("localDirectory", {"SourcePath": "/d"})),
        "local-deprecated",
        "Tasks[0].InputSources[0].Source.Type",
        "info",
        "client",
    ),
    (
        "result name",
        task({"result_paths": [ResultPath("", "/o")]}),
        "result-name-missing",
        "Tasks[0].ResultPaths[0].Name",
        "error",
        "submit",
    ),
    (
        "result name twice",
        task({"result_paths": [ResultPath("o", "/o"), ResultPath("o", "/p")]}),
        "result-name-duplicate",
        "Tasks[0].ResultPaths[1].Name",
        "error",
        "submit",
    ),
    (
        "result path",
        task({"result_paths": [ResultPath("o", "")]}),
        "result-path-missing",
        "Tasks[0].ResultPaths[0].Path",
        "error",
        "submit",
    ),
    (
        "result relative",
        task({"result_paths": [ResultPath("o", "o")]}),
        "result-path-relative",
        "Tasks[0].ResultPaths[0].Path",
        "error",
        "submit",
    ),
    (
        "result path twice",
        task({"result_paths": [ResultPath("o", "/o"), ResultPath("p", "/o")]}),
        "result-path-duplicate",
        "Tasks[0].ResultPaths[1].Path",
        "error",
        "submit",
    ),
    (
        "daemon results",
        docker_job().evolve(type="daemon"),
        "results-daemon",
        "Tasks[0].ResultPaths",
        "warning",
        "client",
    ),
    (
        "no publisher",
        task({"publisher": None}),
        "publisher-missing",
        "Tasks[0].Publisher",
        "error",
        "submit",
    ),
    (
        "no publisher on a daemon",
        docker_job().evolve(type="daemon").with_task(publisher=None),
        "publisher-missing",
        "Tasks[0].Publisher",
        "error",
        "submit",
    ),
    (
        "publisher unknown",
        task({"publisher": SpecConfig("ftp")}),
        "publisher-type-unknown",
        "Tasks[0].Publisher.Type",
        "error",
        "schedule",
    ),
    (
        "publisher s3",
        task({"publisher": SpecConfig("s3", {"Bucket": "b"})}),
        "publisher-s3",
        "Tasks[0].Publisher.Params.Key",
        "error",
        "execute",
    ),
    (
        "network type",
        task({"network": Network(type="Wifi")}),
        "network-type",
        "Tasks[0].Network.Type",
        "error",
        "submit",
    ),
    (
        "network domains",
        task({"network": Network(type="Full", domains=("a.org",))}),
        "network-domains",
        "Tasks[0].Network.Domains",
        "error",
        "submit",
    ),
    (
        "network ports",
        task({"network": Network(type="HTTP", ports=(Port(name="p"),))}),
        "network-ports",
        "Tasks[0].Network.Ports",
        "error",
        "submit",
    ),
    (
        "network domain",
        task({"network": Network(type="HTTP", domains=("example.org", "not a domain"))}),
        "network-domain",
        "Tasks[0].Network.Domains[1]",
        "error",
        "submit",
    ),
    (
        "port name missing",
        task({"network": Network(type="Bridge", ports=(Port(target=80),))}),
        "network-port-name",
        "Tasks[0].Network.Ports[0].Name",
        "error",
        "submit",
    ),
    (
        "port name syntax",
        task({"network": Network(type="Bridge", ports=(Port(name="web-ui", target=80),))}),
        "network-port-name",
        "Tasks[0].Network.Ports[0].Name",
        "error",
        "submit",
    ),
    (
        "port name twice",
        task(
            {
                "network": Network(
                    type="Bridge", ports=(Port(name="web", target=80), Port(name="web", target=81))
                )
            }
        ),
        "network-port-duplicate",
        "Tasks[0].Network.Ports[1].Name",
        "error",
        "submit",
    ),
    (
        "port out of range",
        task({"network": Network(type="Full", ports=(Port(name="web", static=70000),))}),
        "network-port-range",
        "Tasks[0].Network.Ports[0].Static",
        "error",
        "submit",
    ),
    (
        "target port on a host network",
        task({"network": Network(type="Host", ports=(Port(name="web", static=8080, target=80),))}),
        "network-port-host-target",
        "Tasks[0].Network.Ports[0].Target",
        "error",
        "submit",
    ),
    (
        "docker image",
        without("Image", docker_job),
        "docker-image",
        "Tasks[0].Engine.Params.Image",
        "error",
        "execute",
    ),
    (
        "docker latest",
        engine({"Image": "ubuntu:latest"}),
        "docker-latest",
        "Tasks[0].Engine.Params.Image",
        "warning",
        "client",
    ),
    (
        "docker list",
        engine({"Parameters": "-c true"}),
        "docker-list",
        "Tasks[0].Engine.Params.Parameters",
        "error",
        "execute",
    ),
    (
        "docker env",
        engine({"EnvironmentVariables": ["NOEQUALS"]}),
        "docker-env",
        "Tasks[0].Engine.Params.EnvironmentVariables[0]",
        "error",
        "execute",
    ),
    (
        "docker env reserved",
        engine({"EnvironmentVariables": ["BACALHAU_X=1"]}),
        "docker-env",
        "Tasks[0].Engine.Params.EnvironmentVariables[0]",
        "error",
        "execute",
    ),
    (
        "docker workdir",
        engine({"WorkingDirectory": "work"}),
        "docker-workdir",
        "Tasks[0].Engine.Params.WorkingDirectory",
        "error",
        "execute",
    ),
    (
        "unknown param",
        engine({"Imag": "x"}),
        "params-unknown",
        "Tasks[0].Engine.Params.Imag",
        "warning",
        "client",
    ),
    (
        "wasm legacy",
        engine({"EntryModule": {"Source": {"Type": "inline"}}}, wasm_job),
        "wasm-legacy",
        "Tasks[0].Engine.Params.EntryModule",
        "warning",
        "client",
    ),
    (
        "wasm entry module",
        without("EntryModule"),
        "wasm-entry-module-missing",
        "Tasks[0].Engine.Params.EntryModule",
        "error",
        "execute",
    ),
    (
        "wasm entry unresolved",
        engine({"EntryModule": "/nowhere.wasm"}, wasm_job),
        "wasm-entry-module-unresolved",
        "Tasks[0].Engine.Params.EntryModule",
        "error",
        "execute",
    ),
    (
        "wasm entry folder",
        wasm_job().with_task(
            input_sources=(
                InputSource(
                    source=SpecConfig("urlDownload", {"URL": "https://h/module.bin"}),
                    target="/app/m.wasm",
                ),
            )
        ),
        "wasm-entry-dir",
        "Tasks[0].Engine.Params.EntryModule",
        "warning",
        "client",
    ),
    (
        "wasm not a module",
        wasm_job().with_task(
            input_sources=(
                InputSource(
                    source=SpecConfig("inline", {"URL": dataurl.encode(b"text")}),
                    target="/app/m.wasm",
                ),
            )
        ),
        "wasm-module-invalid",
        "Tasks[0].Engine.Params.EntryModule",
        "error",
        "execute",
    ),
    (
        "wasm export",
        engine({"Entrypoint": "run"}, wasm_job),
        "wasm-entrypoint-export",
        "Tasks[0].Engine.Params.Entrypoint",
        "error",
        "execute",
    ),
    (
        "wasm signature",
        engine({"Entrypoint": "main"}, wasm_job),
        "wasm-entrypoint-signature",
        "Tasks[0].Engine.Params.Entrypoint",
        "error",
        "execute",
    ),
    (
        "wasm entrypoint",
        without("Entrypoint"),
        "wasm-entrypoint-missing",
        "Tasks[0].Engine.Params.Entrypoint",
        "error",
        "execute",
    ),
    (
        "wasm list",
        engine({"Parameters": "x"}, wasm_job),
        "wasm-list",
        "Tasks[0].Engine.Params.Parameters",
        "error",
        "execute",
    ),
    (
        "wasm import",
        engine({"ImportModules": ["/lib.wasm"]}, wasm_job),
        "wasm-import-module-unresolved",
        "Tasks[0].Engine.Params.ImportModules[0]",
        "error",
        "execute",
    ),
    (
        "wasm engine env",
        engine({"EnvironmentVariables": {"A": "1"}}, wasm_job),
        "wasm-env-params",
        "Tasks[0].Engine.Params.EnvironmentVariables",
        "warning",
        "client",
    ),
    (
        "wasm result name",
        task({"result_paths": [ResultPath("out", "/outputs")]}, wasm_job),
        "wasm-result-name",
        "Tasks[0].ResultPaths[0]",
        "warning",
        "client",
    ),
    (
        "wasm memory",
        task({"resources": Resources(memory="5GiB")}, wasm_job),
        "wasm-memory",
        "Tasks[0].Resources.Memory",
        "error",
        "execute",
    ),
]


@pytest.mark.parametrize("base", [docker_job, wasm_job])
def test_the_base_jobs_are_clean(base):
    assert validate_job(base()) == []


@pytest.mark.parametrize(
    ("job", "code", "path", "severity", "stage"),
    [r[1:] for r in RULES],
    ids=[r[0] for r in RULES],
)
def test_each_rule(job, code, path, severity, stage):
    problems = validate_job(job)
    found = [p for p in problems if p.code == code]
    assert found, f"no {code} in {[str(p) for p in problems]}"
    assert (found[0].path, found[0].severity, found[0].stage) == (path, severity, stage)
    others = [p for p in problems if p.code != code and p.severity == "error"]
    assert others == [], f"unexpected: {[str(p) for p in others]}"


def test_every_rule_has_a_test():
    package = Path(cosmobac_bacalhau.__file__).parent
    source = "".join((package / name).read_text() for name in ("validate.py", "engine_rules.py"))
    codes = set(re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)"', source))  # every rule code
    codes |= {f"resources-{name}" for name in ("memory", "disk")}  # made with an f-string
    codes -= {"key-case"}  # a decoding note, tested in test_model.py
    assert len(codes) > 70
    assert codes - {r[2] for r in RULES} == set()


def test_every_problem_is_reported_at_once():
    job = Job(
        type="nightly",
        count=-2,
        constraints=[Constraint("city", "=", ("São Paulo",))],
        tasks=[
            Task(
                name="",
                engine=SpecConfig("wasm", {"EntryModule": "/m.wasm"}),
                env={"mode": "fast"},
                result_paths=[ResultPath("out", "out")],
                timeouts=Timeouts(execution_timeout=-5),
            )
        ],
    )
    codes = {p.code for p in validate_job(job) if p.severity == "error"}
    assert codes >= {
        "job-type-invalid",
        "count-negative",
        "constraint-value-syntax",
        "task-name-missing",
        "env-name",
        "result-path-relative",
        "timeout-negative",
        "wasm-entry-module-unresolved",
        "wasm-entrypoint-missing",
    }


def test_a_label_value_gets_a_suggestion():
    problem = next(
        p
        for p in validate_job(constraint("city", "in", ("São Paulo",)))
        if p.code == "constraint-value-syntax"
    )
    assert "'sao-paulo'" in problem.message


def test_sizes_are_read_as_the_server_reads_them():
    assert parse_bytes("512Mb") == 512 * 10**6
    assert parse_bytes("1GiB") == 2**30
    assert parse_bytes(" 1 GB") == 10**9
    assert parse_bytes("2,048") == 2048
    with pytest.raises(ValueError):
        parse_bytes("1 parsec")


def test_the_wasm_reader_lists_exports_and_their_types():
    assert exported_functions(START) == {"_start": ((), ()), "main": (("i32", "i32"), ("i32",))}
    with pytest.raises(WasmFormatError):
        exported_functions(b"\0asm\x0d\0\x01\0")  # a component, not a core module
    with pytest.raises(WasmFormatError):
        exported_functions(START[:28])  # cut inside the export section


# -- normalisation ----------------------------------------------------------------------------------
def test_normalise_gives_canonical_spellings_and_drops_what_the_server_ignores():
    job = Job(
        id="j-1",
        type="batch",
        meta={"bacalhau.org/requester": "x", "team": "iot"},
        state=JobState(state_type="Completed"),
        version=4,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig("Docker", {"Image": "busybox:1.37.0"}),
                input_sources=[
                    InputSource(
                        source=SpecConfig("urldownload", {"URL": "https://h/a"}), target=" /in "
                    )
                ],
                network=Network(type="none"),
                resources=Resources(memory="1 GB"),
            )
        ],
    )
    normalised, notes = normalise(job)
    assert normalised.id == "" and normalised.state is None and normalised.version == 0
    assert normalised.meta == {"team": "iot"}
    assert normalised.namespace == "default" and normalised.count == 1
    task_ = normalised.task
    assert task_.engine.type == "docker"
    assert task_.input_sources[0].source.type == "urlDownload"
    assert task_.input_sources[0].target == "/in"
    assert task_.network.type == "None"
    assert task_.resources.memory == "1gb"
    assert len(notes) == 7 and all(n.code == "normalised" for n in notes)
    assert normalise(normalised)[1] == []  # idempotent


def test_the_pre_1_7_wasm_shape_is_converted_and_its_environment_kept():
    job = Job(
        type="batch",
        tasks=[
            Task(
                name="main",
                engine=SpecConfig(
                    "wasm",
                    {
                        "EntryModule": {
                            "Source": {"Params": {"URL": dataurl.encode(START)}},
                            "Target": "",
                        },
                        "EntryPoint": "_start",
                        "EnvironmentVariables": {"MODE": "fast"},
                        "ImportModules": [
                            {"Source": {"Type": "inline", "Params": {"URL": dataurl.encode(START)}}}
                        ],
                        "Parameters": None,
                    },
                ),
            )
        ],
    )
    normalised, notes = normalise(job)
    params = normalised.task.engine.params
    assert params == {
        "Entrypoint": "_start",
        "EntryModule": "/wasm/entry.wasm",
        "ImportModules": ["/wasm/imports/module_0.wasm"],
    }
    assert [s.target for s in normalised.task.input_sources] == [
        "/wasm/entry.wasm",
        "/wasm/imports/module_0.wasm",
    ]
    assert normalised.task.input_sources[0].source.type == "inline"
    assert normalised.task.env == {"MODE": "fast"}
    assert len(notes) == 5
    assert [p for p in validate_job(normalised) if p.severity == "error"] == []


def test_check_job_validates_the_normalised_form():
    problems = check_job(docker_job().with_task(engine=SpecConfig("DOCKER", {"Image": "a:1"})))
    assert [p.code for p in problems] == ["normalised"]


# -- Bacalhau's own examples -------------------------------------------------------------------------
VERDICTS = {
    "custom-task-type.yaml": ("rejected", {"engine-type-unknown"}),
    "docker-hello.yaml": ("normalised", {"key-case"}),
    "docker-output.json": ("accepted", {"docker-latest"}),
    "docker-output.yaml": ("accepted", set()),
    "docker-s3.yaml": ("accepted", set()),
    "docker.yaml": ("accepted", set()),
    "empty.yaml": ("rejected", {"empty"}),
    "nameless.yaml": ("accepted", {"name-missing", "engine-noop"}),
    "noop.yaml": ("accepted", {"engine-noop"}),
    "wasm.yaml": ("accepted", set()),
    "wasm_legacy.yaml": ("normalised", {"normalised"}),
}


@pytest.mark.parametrize(("name", "expected"), sorted(VERDICTS.items()))
def test_bacalhaus_examples_are_judged(name, expected):
    from cosmobac_bacalhau.model import parse_text

    path = EXAMPLES / name
    fmt = "json" if path.suffix == ".json" else "yaml"
    report = judge_spec(parse_text(path.read_text(), format=fmt), source=name)
    verdict, codes = expected
    assert report.verdict == verdict
    assert {p.code for p in report.problems} == codes
    assert report.as_json()["verdict"] == verdict


def test_every_example_is_judged():
    on_disk = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json")}
    assert on_disk == set(VERDICTS)


def test_the_legacy_example_becomes_the_current_example():
    legacy, _ = read_job_file(EXAMPLES / "wasm_legacy.yaml")
    current, _ = read_job_file(EXAMPLES / "wasm.yaml")
    normalised = normalise(legacy)[0].task
    assert normalised.engine.params["Entrypoint"] == current.task.engine.params["Entrypoint"]
    assert (
        normalised.input_sources[0].source.params["URL"]
        == current.task.input_sources[0].source.params["URL"]
    )
