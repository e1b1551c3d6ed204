"""The job model: exact wire format, reading back in any key case, JSON and YAML round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from bacalhau_support import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st

from cosmobac_bacalhau.errors import JobSpecError
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
    decode_job,
    dumps_json,
    dumps_yaml,
    loads_job,
    read_job_file,
    submit_body,
    wire_fields,
)

# -- strategies -------------------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
whole = st.integers(min_value=-(2**53), max_value=2**53)
json_values = st.recursive(
    st.none() | st.booleans() | whole | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
str_maps = st.dictionaries(names, text, max_size=3)
specs = st.builds(SpecConfig, text, st.dictionaries(names, json_values, max_size=3))
tasks = st.builds(
    Task,
    name=text,
    engine=specs,
    publisher=st.none() | specs,
    env=str_maps,
    meta=str_maps,
    input_sources=st.lists(
        st.builds(InputSource, source=specs, alias=text, target=text), max_size=2
    ),
    result_paths=st.lists(st.builds(ResultPath, text, text), max_size=2),
    resources=st.builds(Resources, cpu=text, memory=text, disk=text, gpu=text),
    network=st.builds(
        Network,
        type=text,
        domains=st.lists(text, max_size=2),
        ports=st.lists(
            st.builds(Port, name=text, static=whole, target=whole, host_network=text), max_size=2
        ),
    ),
    timeouts=st.builds(Timeouts, execution_timeout=whole, queue_timeout=whole, total_timeout=whole),
)
jobs = st.builds(
    Job,
    id=text,
    name=text,
    namespace=text,
    type=text,
    priority=whole,
    count=st.none() | whole,
    constraints=st.lists(st.builds(Constraint, text, text, st.lists(text, max_size=2)), max_size=2),
    meta=str_maps,
    labels=str_maps,
    tasks=st.lists(tasks, max_size=2),
    state=st.none() | st.builds(JobState, state_type=text, message=text, details=str_maps),
    version=whole,
    revision=whole,
    create_time=whole,
    modify_time=whole,
)


def lower_keys(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """The wire form with every field key in lower case (free-form maps untouched)."""
    schema = wire_fields(cls)
    out = {}
    for key, value in data.items():
        _, nested = schema[key]
        if nested is not None and isinstance(value, dict):
            value = lower_keys(nested, value)
        elif nested is not None and isinstance(value, list):
            value = [lower_keys(nested, item) for item in value]
        out[key.lower()] = value
    return out


# -- round trips ------------------------------------------------------------------------------------
@given(jobs)
def test_wire_form_reads_back_equal(job):
    decoded, problems = decode_job(job.to_wire())
    assert decoded == job
    assert problems == []


@given(jobs)
def test_json_text_round_trip(job):
    decoded, problems = loads_job(dumps_json(job), format="json")
    assert decoded == job
    assert problems == []


@given(jobs)
def test_yaml_text_round_trip(job):
    decoded, problems = loads_job(dumps_yaml(job), format="yaml")
    assert decoded == job
    assert problems == []


@given(jobs)
def test_lower_case_keys_read_the_same(job):
    decoded, problems = decode_job(lower_keys(Job, job.to_wire()))
    assert decoded == job
    assert {p.code for p in problems} <= {"key-case"}
    assert all(p.severity == "info" for p in problems)


@given(jobs, st.booleans())
def test_put_body_holds_the_job_without_read_only_fields(job, force):
    body = json.loads(dumps_json(job, body=True, force=force))
    assert body["Force"] is force
    decoded, _ = loads_job(json.dumps(body))
    assert decoded == job.evolve(state=None, version=0, revision=0, create_time=0, modify_time=0)


# -- the exact wire format --------------------------------------------------------------------------
def test_wire_keys_are_bacalhaus_own():
    job = Job(
        name="n",
        type="batch",
        count=0,
        tasks=[
            Task(
                name="main",
                engine=SpecConfig("docker", {"Image": "busybox:1.37.0"}),
                publisher=SpecConfig("local"),
                input_sources=[
                    InputSource(source=SpecConfig("inline", {"URL": "data:,x"}), target="/in")
                ],
                result_paths=[ResultPath("outputs", "/outputs")],
                resources=Resources(cpu="250m", memory="128Mb"),
                network=Network(type="None"),
                timeouts=Timeouts(execution_timeout=300, queue_timeout=60),
            )
        ],
    )
    assert job.to_wire() == {
        "Name": "n",
        "Type": "batch",
        "Count": 0,  # an explicit 0 is kept: it means "no executions"
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.37.0"}},
                "Publisher": {"Type": "local"},
                "InputSources": [
                    {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": "/in"}
                ],
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Resources": {"CPU": "250m", "Memory": "128Mb"},  # not "ResourcesConfig"
                "Network": {"Type": "None"},
                "Timeouts": {"ExecutionTimeout": 300, "QueueTimeout": 60},
            }
        ],
    }
    assert "Count" not in Job(type="batch").to_wire()  # absent: the server uses 1


def test_submit_body_drops_read_only_fields_and_carries_force():
    job = Job(type="batch", state=JobState(state_type="Running"), version=3, create_time=9)
    assert submit_body(job, force=True) == {"Job": {"Type": "batch"}, "Force": True}


# -- reading --------------------------------------------------------------------------------------
def test_every_undecodable_value_is_reported_with_its_path():
    data = {
        "Type": "batch",
        "Count": "1",
        "Priority": 1.5,
        "Tasks": [
            {
                "Name": 5,
                "Env": {"A": True},
                "InputSources": {"Target": "/x"},
                "Engine": {"Type": "docker", "Params": ["x"]},
            }
        ],
        "Constraints": [{"Key": "city", "Operator": "in", "Values": "lisbon"}],
    }
    _, problems = decode_job(data)
    paths = {p.path for p in problems if p.severity == "error"}
    assert paths == {
        "Count",
        "Priority",
        "Tasks[0].Name",
        "Tasks[0].Env['A']",
        "Tasks[0].InputSources",
        "Tasks[0].Engine.Params",
        "Constraints[0].Values",
    }
    with pytest.raises(JobSpecError) as raised:
        Job.from_wire(data)
    assert len(raised.value.problems) == 7
    assert "quote it in YAML" in str(raised.value)


def test_unknown_keys_are_warnings_with_a_suggestion():
    _, problems = decode_job(
        {
            "Type": "batch",
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "noop"},
                    "ResourcesConfig": {"CPU": "1"},
                    "Timeout": {},
                    "Publsher": {},
                }
            ],
        }
    )
    found = {p.path: p.message for p in problems}
    assert "did you mean Resources" in found["Tasks[0].ResourcesConfig"]
    assert "did you mean Timeouts" in found["Tasks[0].Timeout"]
    assert "did you mean Publisher" in found["Tasks[0].Publsher"]
    assert all(p.severity == "warning" and p.code == "unknown-key" for p in problems)


def test_a_key_given_twice_in_two_cases_keeps_the_last_and_warns():
    job, problems = decode_job({"Type": "batch", "type": "ops"})
    assert job.type == "ops"
    assert [p.code for p in problems if p.severity == "warning"] == ["duplicate-key"]


def test_states_read_as_strings_or_integers():
    assert decode_job({"State": {"StateType": "Completed"}})[0].state.state_type == "Completed"
    assert decode_job({"State": {"StateType": 5}})[0].state.state_type == "Failed"


@pytest.mark.parametrize(
    ("number", "name"),
    # the order of Go's JobStateType constants (pkg/models/job.go): Queued comes before Running
    [
        (0, "Undefined"),
        (1, "Pending"),
        (2, "Queued"),
        (3, "Running"),
        (4, "Completed"),
        (5, "Failed"),
        (6, "Stopped"),
    ],
)
def test_job_states_given_as_integers_decode_in_gos_order(number, name):
    assert decode_job({"State": {"StateType": number}})[0].state.state_type == name


def test_an_unknown_job_state_number_is_named_as_such():
    assert decode_job({"State": {"StateType": 9}})[0].state.state_type == "JobStateType(9)"


def test_a_put_body_reads_as_its_job():
    job, problems = loads_job('{"Job": {"Type": "ops", "Tasks": []}, "Force": true}')
    assert job == Job(type="ops")
    assert problems == []


def test_yaml_dates_stay_text_as_json_would_carry_them():
    job, problems = loads_job(
        "Type: batch\nMeta: {day: 2025-01-02}\nTasks:\n- Name: main\n  Engine:\n    Type: noop\n"
        "    Params: {Since: 2025-01-02}\n"
    )
    assert job.meta == {"day": "2025-01-02"}
    assert job.task.engine.params == {"Since": "2025-01-02"}
    assert problems == []


def test_empty_and_unreadable_texts():
    job, problems = loads_job("")
    assert job == Job() and [p.code for p in problems] == ["empty"]
    with pytest.raises(JobSpecError, match="not valid JSON"):
        loads_job("{", format="json")
    with pytest.raises(JobSpecError, match="not valid YAML or JSON"):
        loads_job("a: [", format="yaml")


@pytest.mark.parametrize(
    "path", sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.json")]), ids=lambda p: p.name
)
def test_bacalhaus_example_specs_are_read(path):
    job, problems = read_job_file(path)
    assert [p for p in problems if p.severity == "error"] == [] or path.name == "empty.yaml"
    if path.name == "docker-hello.yaml":  # lower-case keys, read as the server reads them
        assert job.name == "A Simple Docker Job"
        assert job.task.engine.params["Image"] == "busybox:1.37.0"
        assert {p.code for p in problems} == {"key-case"}
        assert '"Tasks"' in dumps_json(job)  # rendered in the canonical spelling


def test_job_helpers():
    job = Job(type="batch", tasks=[Task(name="a")])
    assert job.with_task(name="b").task.name == "b"
    assert job.evolve(name="x").name == "x"
    with pytest.raises(ValueError, match="no task"):
        _ = Job().task


def test_every_lazy_export_of_the_package_resolves_to_its_submodule():
    import importlib

    import cosmobac_bacalhau as package

    assert set(package.__all__) == {*package._WHERE, "register_commands", "register_fleet_sources"}
    for name in package._WHERE:
        module = importlib.import_module(f"cosmobac_bacalhau.{package._WHERE[name]}")
        assert getattr(package, name) is getattr(module, name), name
        listed = getattr(module, "__all__", None)
        assert listed is None or name in listed, f"{name} is not in {module.__name__}.__all__"


def test_loading_the_plugin_imports_no_submodule():
    """pluggy reads every name dir() lists when it registers the plugin: that must not import the
    client (httpx) or the rest, or every run of the command line would pay for them."""
    code = (
        "import sys; from cosmobac.plugins import Plugins; "
        "plugins = Plugins(allow={'bacalhau'}); plugins.manager; "
        "assert plugins.manager.has_plugin('bacalhau'); "
        "print(sorted(m for m in sys.modules if m.startswith('cosmobac_bacalhau')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['cosmobac_bacalhau']"
