"""The old name of :mod:`cosmobac_wasm.commands` (``cosmobac wasm run``), kept so that code
importing ``cosmobac_wasm.command`` (cosmobac's Bacalhau local runner) keeps working. New code
imports :mod:`cosmobac_wasm.commands`."""

from __future__ import annotations

from .commands import (
    Mount,
    RunResult,
    check_env,
    report_run,
    run_module,
    run_wasi,
    wasm_group,
)

__all__ = ["Mount", "RunResult", "check_env", "report_run", "run_module", "run_wasi", "wasm_group"]
