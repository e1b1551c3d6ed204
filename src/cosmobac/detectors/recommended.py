"""The recommended detector set (``cosmobac/data/recommended-detectors.toml``): one detector
chain that catches every anomaly type the simulated fleet injects with few false alarms.

Its figures on the simulated fleet are in ``docs/detectors.md`` ("The recommended detector
set") and a test asserts them on a seed not used to choose it."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from ..interfaces import Transform
from ..plugins import Plugins, get_plugins

__all__ = ["RESOURCE", "recommended_detectors", "recommended_transforms"]

RESOURCE = "recommended-detectors.toml"
"""The file's name in the package :mod:`cosmobac.data`."""


def recommended_transforms() -> list[dict[str, Any]]:
    """The set's ``[[transforms]]`` entries (each a new dict with ``plugin`` and its options),
    in chain order."""
    text = resources.files("cosmobac.data").joinpath(RESOURCE).read_text(encoding="utf-8")
    return [dict(entry) for entry in tomllib.loads(text)["transforms"]]


def recommended_detectors(plugins: Plugins | None = None) -> list[Transform]:
    """New, cold instances of the set's detectors, in chain order."""
    plugins = plugins or get_plugins()
    out: list[Transform] = []
    for entry in recommended_transforms():
        options = dict(entry)
        name = options.pop("plugin")
        out.append(plugins.create("transform", name, **options))
    return out
