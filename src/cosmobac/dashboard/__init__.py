"""``cosmobac dashboard``: a live web page for a node (one pipeline file) or a fleet (several).

* :mod:`.app`: the Starlette application, the page and the JSON API (``/api/health``,
  ``/api/series``, ``/api/anomalies``, ``/api/sensors``, ``/api/nodes``);
* :mod:`.cache`: what it keeps of a store (a per-sensor bucket summary, every label and
  detection), read with ``scan`` and never as a consumer;
* :mod:`.health`: ``cosmobac status``'s figures, with request units and throttled requests per
  second;
* :mod:`.commands`: the command;
* ``static/``: ``index.html``, ``dashboard.js``, ``charts.js`` (the charts, reusable:
  ``cosmobacCharts.render(element, series)``), ``dashboard.css`` and uPlot 1.6.32 (MIT, vendored).

Needs ``cosmobac[dashboard]`` (Starlette, uvicorn, tsdownsample); nothing here imports them until
the application is made.
"""

from __future__ import annotations

__all__ = ["EXTRA_MESSAGE", "require_extra"]

EXTRA_MESSAGE = (
    "the dashboard needs starlette, uvicorn and tsdownsample, optional dependencies: "
    "pip install 'cosmobac[dashboard]'"
)


def require_extra() -> None:
    """Raise :class:`~cosmobac.errors.CosmobacError` naming the ``dashboard`` extra when one of
    its packages is missing."""
    from ..errors import CosmobacError

    try:
        import starlette  # noqa: F401
        import tsdownsample  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CosmobacError(f"{EXTRA_MESSAGE} ({exc})") from exc
