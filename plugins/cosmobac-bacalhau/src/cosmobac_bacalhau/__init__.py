"""cosmobac-bacalhau: Bacalhau jobs for cosmobac fleets: the v1 job model (exact wire format, JSON
and YAML), the server's validation rules, builders for cosmobac's flows, a REST client and a local
WASM runner. As the cosmobac plugin ``bacalhau`` it adds the ``cosmobac bacalhau …`` commands
(``register_commands``).

Everything is importable from here; submodules load on first use, so loading the plugin and the
command line stay fast:

* :mod:`~cosmobac_bacalhau.model`: ``Job``, ``Task``, ``SpecConfig``, ``InputSource``,
  ``ResultPath``, ``Resources``, ``Network``, ``Timeouts``, ``Constraint``; ``loads_job``,
  ``read_job_file``, ``dumps_json``, ``dumps_yaml``;
* :mod:`~cosmobac_bacalhau.validate`: ``validate_job``, ``check_job``, ``normalise``,
  ``judge_spec`` (accepted / normalised / rejected);
* :mod:`~cosmobac_bacalhau.builders`: ``pipeline_job``, ``wasm_job``, ``upload_job``,
  ``switch_job``, ``status_job``;
* :mod:`~cosmobac_bacalhau.client`: ``BacalhauClient`` (the records it returns are in
  :mod:`~cosmobac_bacalhau.api_records`);
* :mod:`~cosmobac_bacalhau.fleet`: ``fleet_status`` (every node's ``cosmobac status``, judged:
  ``FleetStatus``, ``NodeStatus``);
* :mod:`~cosmobac_bacalhau.local`: ``run_local``, ``explain_docker``.

See docs/bacalhau.md.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from cosmobac.hookspecs import Register, hookimpl

_EXPORTS = {
    "model": (
        "Constraint",
        "InputSource",
        "Job",
        "JobState",
        "Network",
        "Port",
        "Resources",
        "ResultPath",
        "SpecConfig",
        "Task",
        "Timeouts",
        "decode_job",
        "dumps_json",
        "dumps_yaml",
        "loads_job",
        "read_job_file",
        "submit_body",
    ),
    "problems": ("Problem",),
    "validate": ("SpecReport", "check_job", "judge_spec", "normalise", "validate_job"),
    "selectors": ("format_constraint", "parse_selector"),
    "builders": (
        "cosmos_upload_config",
        "inline_file",
        "node_folder",
        "pipeline_job",
        "status_job",
        "switch_job",
        "unique_name",
        "upload_job",
        "wasm_job",
    ),
    "client": (
        "BacalhauClient",
        "Execution",
        "JobInfo",
        "JobOutcome",
        "Node",
        "NodeOutcome",
        "ServerVersion",
        "SubmitResult",
    ),
    "fleet": ("FleetStatus", "NodeStatus", "fleet_status"),
    "local": ("LocalRun", "LocalRunError", "explain_docker", "run_local"),
    "errors": (
        "BacalhauAPIError",
        "BacalhauAuthError",
        "BacalhauConnectionError",
        "BacalhauError",
        "BacalhauNotFound",
        "BacalhauVersionError",
        "JobSpecError",
        "WaitTimeout",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "register_commands", "register_fleet_sources"])


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the ``cosmobac bacalhau`` group."""
    from .commands import bacalhau_group

    cli.add_command(bacalhau_group)


@hookimpl
def register_fleet_sources(register: Register) -> None:
    """The ``bacalhau`` fleet source: every node's ``cosmobac status --json`` through an ops job
    (:class:`~cosmobac_bacalhau.fleet_source.BacalhauFleetSource`)."""

    from .fleet_source import BacalhauFleetSource

    register(
        "bacalhau",
        BacalhauFleetSource,
        description="every node's cosmobac status --json, through an ops job on an orchestrator",
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cosmobac_bacalhau' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # Only what is bound already: pluggy reads every name dir() gives when it registers the
    # plugin, and listing the lazy names would import every submodule (httpx among them) on each
    # run of the command line. ``__all__`` lists everything importable from here.
    return sorted(globals())
