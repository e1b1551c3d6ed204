"""The old name of :mod:`cosmobac.live_config` (the live config switch), kept so that
``import cosmobac.reload`` and ``python -m cosmobac.reload install ...`` (the command Bacalhau
switch jobs already built run) keep working. New code imports :mod:`cosmobac.live_config`."""

from __future__ import annotations

import sys

from .live_config import (
    ConfigWatcher,
    InstallResult,
    forward_following,
    install,
    install_seed,
    main,
    read_status,
    status_path,
    write_atomic,
)

__all__ = [
    "ConfigWatcher",
    "InstallResult",
    "forward_following",
    "install",
    "install_seed",
    "main",
    "read_status",
    "status_path",
    "write_atomic",
]

if __name__ == "__main__":  # pragma: no cover - run by Bacalhau switch jobs
    sys.exit(main())
