"""The ``bacalhau`` fleet source: what a fleet view (``cosmobac dashboard --fleet bacalhau``)
polls. Each :meth:`BacalhauFleetSource.poll` runs the status job (an ``ops`` job running
``cosmobac status --json`` on every matching node, :func:`~.builders.status_job`) and gathers the
answers with :func:`~.fleet.fleet_status`, the same path as ``cosmobac bacalhau fleet-status``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from cosmobac.interfaces import FleetNode
from cosmobac.values import duration, text_list

__all__ = ["BacalhauFleetSource"]


def _optional_text(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} must be text, got {value!r}")
    return value


@attrs.define
class BacalhauFleetSource:
    """Every node matching ``select`` (node label expressions, e.g. ``"region=eu"``) and
    ``city``, through the orchestrator at ``api`` (default: ``$BACALHAU_API_HOST`` and
    ``$BACALHAU_API_PORT``, as the bacalhau CLI reads them). ``image`` is the cosmobac container
    image (default ``$COSMOBAC_IMAGE``); ``node_config`` the pipeline file on the nodes (default
    the live one a forwarding daemon installs) and ``data_dir`` their data folder (default
    ``/var/lib/cosmobac``); ``timeout`` how long one poll waits for answers. Imports nothing heavy
    until it polls (it is made when the plugin registry is built)."""

    api: str | None = attrs.field(default=None, converter=lambda v: _optional_text("api", v))
    namespace: str = "default"
    select: tuple[str, ...] = attrs.field(default=(), converter=lambda v: text_list("select", v))
    city: tuple[str, ...] = attrs.field(default=(), converter=lambda v: text_list("city", v))
    image: str | None = attrs.field(default=None, converter=lambda v: _optional_text("image", v))
    node_config: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("node_config", v)
    )
    data_dir: str | None = attrs.field(
        default=None, converter=lambda v: _optional_text("data_dir", v)
    )
    timeout: float = attrs.field(
        default=60.0, converter=lambda v: duration("timeout", v, positive=True)
    )

    def __attrs_post_init__(self) -> None:
        self.image = self.image or os.environ.get("COSMOBAC_IMAGE")
        if not self.image:
            raise ValueError(
                "image: give the cosmobac container image the nodes run (or set $COSMOBAC_IMAGE)"
            )

    def _client(self) -> Any:
        from .client import BacalhauClient

        kwargs: dict[str, Any] = {"namespace": self.namespace}
        if self.api:
            kwargs["base_url"] = self.api if "://" in self.api else f"http://{self.api}"
        return BacalhauClient.from_env(**kwargs)

    def poll(self) -> Sequence[FleetNode]:
        """Run the status job once and return every node's answer (or why it gave none)."""
        from .builders import DEFAULT_DATA_DIR, LIVE_CONFIG, status_job
        from .fleet import fleet_status

        assert self.image is not None  # set in __attrs_post_init__
        job = status_job(
            image=self.image,
            node_config=self.node_config or LIVE_CONFIG,
            selector=", ".join(self.select) or None,
            cities=list(self.city) or None,
            data_dir=self.data_dir or DEFAULT_DATA_DIR,
            namespace=self.namespace,
            execution_timeout=max(1, int(self.timeout)),
        )
        client = self._client()
        try:
            report = fleet_status(client, job, timeout=self.timeout)
        finally:
            client.close()
        return [FleetNode(n.node_id, n.status, tuple(n.problems)) for n in report.nodes]
