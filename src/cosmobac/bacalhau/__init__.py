"""Bacalhau jobs for cosmobac fleets: the v1 job model (exact wire format, JSON and YAML), the
server's validation rules, builders for cosmobac's flows, a REST client and a local WASM runner.

Everything is importable from here; submodules load on first use, so ``import cosmobac`` and the
command line stay fast:

* :mod:`~cosmobac.bacalhau.model`: ``Job``, ``Task``, ``SpecConfig``, ``InputSource``,
  ``ResultPath``, ``Resources``, ``Network``, ``Timeouts``, ``Constraint``; ``loads_job``,
  ``read_job_file``, ``dumps_json``, ``dumps_yaml``;
* :mod:`~cosmobac.bacalhau.validate`: ``validate_job``, ``check_job``, ``normalise``,
  ``judge_spec`` (accepted / normalised / rejected);
* :mod:`~cosmobac.bacalhau.builders`: ``pipeline_job``, ``wasm_job``, ``upload_job``,
  ``switch_job``;
* :mod:`~cosmobac.bacalhau.client`: ``BacalhauClient``;
* :mod:`~cosmobac.bacalhau.local`: ``run_local``, ``explain_docker``.

See docs/bacalhau.md.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cosmobac.bacalhau' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
