"""``cosmobac bacalhau``: render, validate and submit Bacalhau jobs, follow them to their results,
and run WASM jobs locally. The plugin adds the group through ``register_commands`` (see
``cosmobac_bacalhau/__init__.py``).

Exit status: 0 success; 1 a job failed (on any node), a spec has errors, an API error, or
(``fleet-status``) a node is unhealthy;
2 a usage error; 3 ``wait`` timed out; ``run-local`` exits with the module's exit code (0 when its
entry point returned, which Bacalhau records as -1 and calls Completed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cosmobac.values import click_callback, duration

if TYPE_CHECKING:
    from .client import BacalhauClient, JobOutcome
    from .model import Job

__all__ = ["bacalhau_group"]

FLOWS = ("pipeline", "upload", "switch", "wasm")


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{item!r} is not LEFT=RIGHT", ctx=ctx, param=param)
        pairs[key] = value
    return pairs


class _Context:
    """The group's settings; the client is made on first use."""

    def __init__(self, api: str | None, namespace: str, allow_old: bool) -> None:
        self.api = api
        self.namespace = namespace
        self.allow_old = allow_old
        self._client: BacalhauClient | None = None

    def client(self) -> BacalhauClient:
        if self._client is None:
            from .client import BacalhauClient

            kwargs: dict[str, Any] = {"namespace": self.namespace, "allow_old": self.allow_old}
            if self.api:
                url = self.api if "://" in self.api else f"http://{self.api}"
                kwargs["base_url"] = url
            self._client = BacalhauClient.from_env(**kwargs)
            click.get_current_context().call_on_close(self._client.close)
        return self._client


pass_settings = click.make_pass_decorator(_Context)


@click.group(name="bacalhau")
@click.option(
    "--api",
    metavar="URL",
    help="The orchestrator (default: $BACALHAU_API_HOST and $BACALHAU_API_PORT, else "
    "127.0.0.1:1234). Credentials: $BACALHAU_API_KEY, or $BACALHAU_API_USERNAME and "
    "$BACALHAU_API_PASSWORD.",
)
@click.option("--namespace", default="default", show_default=True, help="Job namespace.")
@click.option(
    "--allow-old", is_flag=True, help="Go on (with a warning) with an orchestrator below v1.7."
)
@click.pass_context
def bacalhau_group(ctx: click.Context, api: str | None, namespace: str, allow_old: bool) -> None:
    """Bacalhau jobs for a cosmobac fleet: render, validate, submit, follow, run WASM locally."""
    ctx.obj = _Context(api, namespace, allow_old)


# -- reading specs ----------------------------------------------------------------------------------
def _text(spec: str) -> tuple[str, str | None]:
    """The text of a spec file (``-``: standard input) and its format by file name."""
    if spec == "-":
        return sys.stdin.read(), None
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {spec}: {exc.strerror}", param_hint="SPEC") from None
    suffix = path.suffix.lower()
    return text, "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None


def _read(spec: str) -> tuple[Job, Any]:
    """A spec file, judged; its warnings are printed, its errors end the command."""
    from .errors import JobSpecError
    from .model import parse_text
    from .validate import judge_spec

    text, fmt = _text(spec)
    source = "<stdin>" if spec == "-" else spec
    report = judge_spec(parse_text(text, format=fmt, source=source), source=source)
    for problem in report.warnings:
        click.echo(str(problem), err=True)
    if report.errors:
        raise JobSpecError(report.errors, source=source)
    return report.job, report


def _echo_job(job: Job, fmt: str, body: bool, force: bool, output: str | None) -> None:
    from .model import dumps_json, dumps_yaml

    if fmt == "yaml":
        if body:
            raise click.UsageError("--body is JSON only (the PUT request body)")
        text = dumps_yaml(job)
    else:
        text = dumps_json(job, body=body, force=force)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _selector(select: Sequence[str]) -> str | None:
    return ", ".join(select) if select else None


def _image(image: str | None) -> str:
    import os

    image = image or os.environ.get("COSMOBAC_IMAGE")
    if not image:
        raise click.UsageError(
            "give the cosmobac container image with --image (or $COSMOBAC_IMAGE), e.g. "
            "registry.example.com/cosmobac:0.1.0, built from the repository's Dockerfile"
        )
    return image


def _build(flow: str, options: dict[str, Any]) -> Job:
    from . import builders

    common = {
        "selector": _selector(options["select"]),
        "cities": list(options["city"]) or None,
        "name": options["name"],
    }
    if options["data_dir"]:
        common["data_dir"] = options["data_dir"]
    if flow == "wasm":
        if not options["kernel"] or not options["columns"]:
            raise click.UsageError("--flow wasm needs --kernel and --columns")
        data: str | bytes = options["data"] or builders.DEFAULT_DATA_DIR + "/export"
        if options["data_file"]:
            data = Path(options["data_file"]).read_bytes()
        common.pop("data_dir", None)
        return builders.wasm_job(
            kernel=options["kernel"],
            columns=[c.strip() for c in options["columns"].split(",") if c.strip()],
            params=[float(p) for p in options["params"].split(",")] if options["params"] else (),
            outputs=[c.strip() for c in options["outputs"].split(",")]
            if options["outputs"]
            else (),
            group_by=options["group_by"],
            module=options["module"],
            data=data,
            job_type=options["job_type"] or "ops",
            **common,
        )
    image = _image(options["image"])
    if flow == "upload":
        cosmos = None
        if options["cosmos_endpoint"]:
            cosmos = {
                "endpoint": options["cosmos_endpoint"],
                "database": options["cosmos_database"] or "telemetry",
                "container": options["cosmos_container"] or "readings",
                "partition_key": options["partition_key"],
            }
        return builders.upload_job(
            options["config"],
            image=image,
            cosmos=cosmos,
            secrets=list(options["secret"]) or ["COSMOS_KEY"],
            host_env=list(options["host_env"]),
            **common,
        )
    if not options["config"]:
        raise click.UsageError(f"--flow {flow} needs --config PIPELINE.toml")
    if flow == "switch":
        return builders.switch_job(
            options["config"], image=image, wait=int(options["wait"]), **common
        )
    if options["job_type"] == "batch":
        raise click.UsageError("--flow pipeline runs as --type daemon or --type ops")
    return builders.pipeline_job(
        options["config"],
        image=image,
        stage=options["stage"],
        job_type=options["job_type"] or "daemon",
        secrets=list(options["secret"]),
        host_env=list(options["host_env"]),
        **common,
    )


# -- render, validate -------------------------------------------------------------------------------
@bacalhau_group.command(name="render")
@click.argument("spec", required=False)
@click.option("--flow", type=click.Choice(FLOWS), help="Build the job of a cosmobac flow.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Pipeline file.")
@click.option("--image", help="cosmobac container image (default $COSMOBAC_IMAGE).")
@click.option(
    "--stage",
    type=click.Choice(["forward", "collect", "run"]),
    default="forward",
    show_default=True,
    help="pipeline: what runs on the nodes.",
)
@click.option(
    "--type",
    "job_type",
    type=click.Choice(["daemon", "ops", "batch"]),
    help="pipeline: daemon (default) or ops; wasm: ops (default) or batch.",
)
@click.option("--select", multiple=True, metavar="EXPR", help="Node labels, e.g. 'region=eu'.")
@click.option("--city", multiple=True, help="Only nodes labelled city=NAME (repeatable).")
@click.option("--data-dir", help="The node folder of the store (default /var/lib/cosmobac).")
@click.option("--secret", multiple=True, metavar="NAME", help="Take $NAME from the node.")
@click.option("--host-env", multiple=True, metavar="NAME", help="Take $NAME from the node.")
@click.option("--name", help="Job name (default: stable for daemons, unique otherwise).")
@click.option("--wait", default=60, show_default=True, help="switch: seconds to wait per node.")
@click.option("--module", default="builtin", show_default=True, help="wasm: the .wasm file.")
@click.option("--kernel", help="wasm: kernel name (see `cosmobac wasm kernels`).")
@click.option("--columns", help="wasm: comma-separated columns.")
@click.option("--params", help="wasm: comma-separated kernel parameters.")
@click.option("--outputs", help="wasm: comma-separated output columns.")
@click.option("--group-by", help="wasm: column keying the windows.")
@click.option("--data", help="wasm: node folder holding readings.csv.")
@click.option(
    "--data-file", type=click.Path(exists=True, dir_okay=False), help="wasm: ship this CSV inline."
)
@click.option("--cosmos-endpoint", help="upload: Cosmos DB endpoint (instead of --config).")
@click.option("--cosmos-database", help="upload: database (default telemetry).")
@click.option("--cosmos-container", help="upload: container (default readings).")
@click.option("--partition-key", default="/sensor_id", show_default=True, help="upload.")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json")
@click.option("--body", is_flag=True, help="JSON: print the PUT body {Job, Force}.")
@click.option("--force", is_flag=True, help="With --body: Force = true.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def render_command(
    spec: str | None,
    flow: str | None,
    fmt: str,
    body: bool,
    force: bool,
    output: str | None,
    **options: Any,
) -> None:
    """Print a job spec in Bacalhau's wire format: SPEC (a JSON or YAML file, '-' for standard
    input) normalised, or the job of a cosmobac --flow built from the options."""
    if (spec is None) == (flow is None):
        raise click.UsageError("give a SPEC file or --flow (one of them)")
    if spec is not None:
        job, _ = _read(spec)
    else:
        assert flow is not None
        job = _build(flow, options)
    _echo_job(job, fmt, body, force, output)


@bacalhau_group.command(name="validate")
@click.argument("specs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per line.")
@click.option("--engine", "engines", multiple=True, help="Another engine type the cluster runs.")
@click.option("--quiet", "-q", is_flag=True, help="Only the verdicts and the errors.")
def validate_command(
    specs: tuple[str, ...], as_json: bool, engines: tuple[str, ...], quiet: bool
) -> None:
    """Judge job specs by Bacalhau's rules: accepted, normalised or rejected, with every problem
    and its field path. Exits 1 when one is rejected."""
    from .errors import JobSpecError
    from .model import parse_text
    from .validate import ENGINES, judge_spec

    rejected = 0
    for spec in specs:
        text, fmt = _text(spec)
        try:
            report = judge_spec(
                parse_text(text, format=fmt, source=spec),
                source=spec,
                engines=(*ENGINES, *engines),
            )
            verdict, problems = report.verdict, list(report.problems)
        except JobSpecError as exc:
            verdict, problems = "rejected", exc.problems
        rejected += verdict == "rejected"
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "source": spec,
                        "verdict": verdict,
                        "problems": [p.as_json() for p in problems],
                    }
                )
            )
            continue
        click.echo(f"{spec}: {verdict}")
        for problem in problems:
            if quiet and problem.severity != "error":
                continue
            click.echo(f"  {problem}")
    if rejected:
        sys.exit(1)


# -- talking to the orchestrator --------------------------------------------------------------------
def _echo_outcome(outcome: JobOutcome, as_json: bool = False) -> None:
    if as_json:
        import attrs

        data = attrs.asdict(outcome, recurse=True)
        data["ok"] = outcome.ok
        data["failed"] = [n.node_id for n in outcome.failed]
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(outcome.summary())


@bacalhau_group.command(name="submit")
@click.argument("spec")
@click.option("--force", is_flag=True, help="Rerun an unchanged job under its name (v1.8+).")
@click.option("--wait", "wait_", is_flag=True, help="Follow the job until it ends (or runs).")
@click.option(
    "--timeout",
    default="10m",
    show_default=True,
    callback=click_callback(duration, positive=True),
    help="With --wait: how long.",
)
@click.option("--results", type=click.Path(file_okay=False), help="With --wait: fetch results.")
@pass_settings
def submit_command(
    settings: _Context, spec: str, force: bool, wait_: bool, timeout: float, results: str | None
) -> None:
    """Submit SPEC (a JSON or YAML job file, '-' for standard input); print the job ID."""
    job, _ = _read(spec)
    client = settings.client()
    submitted = client.submit(job, force=force)
    click.echo(submitted.job_id)
    if not wait_:
        return
    _follow(client, submitted.job_id, timeout, None, results)


def _follow(
    client: BacalhauClient, job_id: str, timeout: float, until: str | None, results: str | None
) -> None:
    from .errors import WaitTimeout

    try:
        client.wait(job_id, timeout=timeout, until=until, on_change=_show_progress)  # type: ignore[arg-type]
    except WaitTimeout as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(3)
    outcome = client.outcome(job_id)
    _echo_outcome(outcome)
    if results and outcome.type in ("batch", "ops"):
        _download(client, outcome, results)
    if not outcome.ok:
        sys.exit(1)


def _show_progress(info: Any) -> None:
    """The job's state and its executions', on standard error, each time they change."""
    states = ", ".join(f"{e.node_id}: {e.state}" for e in info.executions)
    click.echo(f"{info.state}" + (f" ({states})" if states else ""), err=True)


def _download(client: BacalhauClient, outcome: JobOutcome, folder: str) -> None:
    for item in client.download_results(outcome, folder):
        if item.path is not None:
            code = "" if item.exit_code is None else f" (exit code {item.exit_code})"
            click.echo(f"{item.node_id}: {item.path}{code}")
        else:
            click.echo(f"{item.node_id}: not fetched: {item.error}", err=True)


@bacalhau_group.command(name="status")
@click.argument("job_id", metavar="JOB")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--history", is_flag=True, help="Also print the job's history.")
@pass_settings
def status_command(settings: _Context, job_id: str, as_json: bool, history: bool) -> None:
    """A job's state and every node's execution (state, exit code, reason). Exits 1 when a node
    failed."""
    client = settings.client()
    outcome = client.outcome(job_id)
    _echo_outcome(outcome, as_json)
    if history:
        for event in client.history(outcome.job_id):
            where = f" {event.execution_id}" if event.execution_id else ""
            click.echo(f"{event.time} {event.type}{where}: {event.message}")
    if outcome.failed or outcome.state == "Failed":
        sys.exit(1)


@bacalhau_group.command(name="wait")
@click.argument("job_id", metavar="JOB")
@click.option(
    "--timeout", default="10m", show_default=True, callback=click_callback(duration, positive=True)
)
@click.option(
    "--until",
    type=click.Choice(["terminal", "running"]),
    help="Default: terminal for batch and ops jobs, running for daemon and service jobs.",
)
@click.option("--results", type=click.Path(file_okay=False), help="Then fetch the results here.")
@pass_settings
def wait_command(
    settings: _Context, job_id: str, timeout: float, until: str | None, results: str | None
) -> None:
    """Wait for a job to end (or, for daemons, to run on its nodes), polling with backoff.
    Exits 0 when every node succeeded, 1 when one failed, 3 on timeout."""
    _follow(settings.client(), job_id, timeout, until, results)


@bacalhau_group.command(name="results")
@click.argument("job_id", metavar="JOB")
@click.option(
    "-o",
    "--output",
    default="results",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for one sub-folder per node.",
)
@pass_settings
def results_command(settings: _Context, job_id: str, output: str) -> None:
    """Fetch every completed node's published result (stdout, stderr, exitCode, outputs);
    failed nodes are listed with their reason. Exits 1 when a node failed or exited non-zero, or
    when the job is a daemon or service job (Bacalhau keeps no results for those)."""
    from .client import RESULT_JOB_TYPES, no_results_reason

    client = settings.client()
    outcome = client.outcome(job_id)
    if outcome.type not in RESULT_JOB_TYPES:
        raise click.ClickException(no_results_reason(outcome))
    _download(client, outcome, output)
    for node in outcome.failed:
        click.echo(f"{node.node_id}: failed: {node.reason}", err=True)
    if outcome.state == "Failed" and not outcome.nodes:
        click.echo(f"{outcome.job_id}: failed: {outcome.message or 'no node ran it'}", err=True)
    if outcome.failed or outcome.state == "Failed":
        sys.exit(1)


@bacalhau_group.command(name="stop")
@click.argument("job_id", metavar="JOB")
@click.option("--reason", default="stopped with cosmobac", show_default=True)
@pass_settings
def stop_command(settings: _Context, job_id: str, reason: str) -> None:
    """Stop a job on every node."""
    evaluation = settings.client().stop(job_id, reason)
    click.echo(f"stopping {job_id} (evaluation {evaluation})")


@bacalhau_group.command(name="nodes")
@click.option("--select", metavar="EXPR", help="Only nodes whose labels match.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_settings
def nodes_command(settings: _Context, select: str | None, as_json: bool) -> None:
    """The cluster's nodes: ID, type, connection, labels, engines."""
    nodes = settings.client().nodes(labels=select)
    if as_json:
        import attrs

        click.echo(
            json.dumps(
                [attrs.asdict(n, filter=lambda a, v: a.name != "raw") for n in nodes], indent=2
            )
        )
        return
    rows = [("NODE", "TYPE", "CONNECTION", "LABELS", "ENGINES")]
    for node in nodes:
        labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
        rows.append((node.id, node.type, node.connection, labels, ",".join(node.engines)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- the fleet view ---------------------------------------------------------------------------------
@bacalhau_group.command(name="fleet-status")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="Ship this pipeline file and read the nodes' stores by it (default: each node's live "
    "pipeline file, see --node-config).",
)
@click.option(
    "--node-config",
    metavar="PATH",
    help="The pipeline file on the nodes, as the container sees it (default "
    "/data/config/pipeline.toml, the forwarder daemon's live file).",
)
@click.option("--image", help="cosmobac container image (default $COSMOBAC_IMAGE).")
@click.option("--select", multiple=True, metavar="EXPR", help="Node labels, e.g. 'region=eu'.")
@click.option("--city", multiple=True, help="Only nodes labelled city=NAME (repeatable).")
@click.option("--data-dir", help="The node folder of the store (default /var/lib/cosmobac).")
@click.option("--secret", multiple=True, metavar="NAME", help="Take $NAME from the node.")
@click.option("--host-env", multiple=True, metavar="NAME", help="Take $NAME from the node.")
@click.option("--name", help="Job name (default: unique).")
@click.option("--json", "as_json", is_flag=True, help="Print {node ID: status or error} as JSON.")
@click.option(
    "--timeout",
    default="2m",
    show_default=True,
    callback=click_callback(duration, positive=True),
    help="How long to wait for the nodes' answers.",
)
@pass_settings
def fleet_status_command(
    settings: _Context,
    config: str | None,
    node_config: str | None,
    image: str | None,
    select: tuple[str, ...],
    city: tuple[str, ...],
    data_dir: str | None,
    secret: tuple[str, ...],
    host_env: tuple[str, ...],
    name: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Run `cosmobac status --json` once on every matching node (an ops job) and print one
    table per node: backlog, oldest pending row, rows/s, dead letters and last error per sink.
    A node whose execution failed, that printed no status or did not answer is unhealthy.
    Exits 1 when a node is unhealthy (or none answered), 0 otherwise."""
    from . import builders
    from .fleet import fleet_status

    if config and node_config:
        raise click.UsageError("give --config (shipped) or --node-config (on the node), not both")
    options: dict[str, Any] = {
        "image": _image(image),
        "selector": _selector(select),
        "cities": list(city) or None,
        "secrets": list(secret),
        "host_env": list(host_env),
        "name": name,
        "namespace": settings.namespace,
        "execution_timeout": max(1, int(timeout)),
    }
    if data_dir:
        options["data_dir"] = data_dir
    if node_config:
        options["node_config"] = node_config
    job = builders.status_job(config, **options)

    report = fleet_status(settings.client(), job, timeout=timeout, on_change=_show_progress)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, default=str))
    else:
        click.echo(report.text(), nl=False)
    if not report.healthy:
        sys.exit(1)


# -- local runs -------------------------------------------------------------------------------------
@bacalhau_group.command(name="run-local")
@click.argument("spec")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Result folder (new or empty; default ./<job name>-local).",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    callback=_pairs,
    metavar="TARGET=PATH",
    help="Give the input mounted at TARGET from a local file or folder.",
)
@click.option(
    "--map",
    "path_map",
    multiple=True,
    callback=_pairs,
    metavar="NODE_PATH=PATH",
    help="Where a local source's node folder is on this machine.",
)
@click.option(
    "--timeout",
    callback=click_callback(duration, positive=True),
    help="Time limit (default: the job's).",
)
def run_local_command(
    spec: str,
    output: str | None,
    inputs: dict[str, str],
    path_map: dict[str, str],
    timeout: float | None,
) -> None:
    """Run a WASM job SPEC here as a Bacalhau node would, in the WASM plugin's sandbox; print
    its stdout and stderr and exit with its exit code. Docker jobs are explained instead."""
    from .local import LocalRunError, run_local

    job, _ = _read(spec)
    folder = output or f"{job.name or 'job'}-local".replace("/", "_")
    if job.tasks and job.task.engine.type == "docker":
        from .local import explain_docker

        click.echo("docker tasks are not run locally; this is what a Bacalhau node would do:")
        click.echo(explain_docker(job, inputs_dir=Path(folder) / "inputs"))
        return
    try:
        result = run_local(
            job, result_dir=folder, inputs=inputs, path_map=path_map, timeout=timeout
        )
    except LocalRunError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_file(result.stdout, err=False)
    _echo_file(result.stderr, err=True)
    from cosmobac_wasm.commands import report_run  # run_local needs the plugin: it is there

    report_run(result)


def _echo_file(path: Path, *, err: bool) -> None:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 16):
            click.echo(chunk, nl=False, err=err)
