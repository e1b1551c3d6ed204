"""A container's throughput, read and replaced through the azure-cosmos SDK's offer calls.

``ContainerProxy.get_throughput`` queries the account's offers (``POST /offers``, the query
``SELECT * FROM root r WHERE r.resource=@link`` with the container's ``_self``) and
``replace_throughput`` sends the whole offer back (``PUT /offers/{offer _rid}``) with
``content.offerThroughput`` (manual) or ``content.offerAutopilotSettings.maxThroughput``
(autoscale) changed. Nothing here talks HTTP itself: what the SDK sends is what is tested (against
the loopback double in the plugin's ``tests/offers_double.py``) and what a real account sees.

A serverless account, or a container whose throughput is shared by its database, has no offer of
its own: reading raises :class:`NoOffer`.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["NoOffer", "Throughput", "read_throughput", "replace_throughput"]


class NoOffer(Exception):
    """The container has no dedicated throughput (serverless, or shared by its database)."""


@attrs.frozen
class Throughput:
    """A container's throughput: ``ru`` is the manual RU/s, or the autoscale maximum (Tmax)
    when ``autoscale``. ``pending`` is set when the service is still applying a change
    (``x-ms-offer-replace-pending``: a scale-up that needs new partitions takes minutes)."""

    ru: int
    autoscale: bool
    pending: bool = False

    def text(self) -> str:
        return f"{self.ru} RU/s" + (" autoscale max" if self.autoscale else "")


def _from_offer(offer: dict[str, Any], pending: bool = False) -> Throughput:
    content = offer.get("content") or {}
    autopilot = content.get("offerAutopilotSettings")
    if autopilot:
        return Throughput(int(autopilot["maxThroughput"]), True, pending)
    return Throughput(int(content["offerThroughput"]), False, pending)


def _pending(headers: Any) -> bool:
    return str((headers or {}).get("x-ms-offer-replace-pending", "")).lower() == "true"


def read_throughput(container: Any, timeout: float) -> Throughput:
    """The container's throughput (``container`` is the SDK's ``ContainerProxy``)."""
    try:
        properties = container.get_throughput(timeout=timeout)
    except Exception as exc:
        # No offer: the SDK turns the empty query result into a 404 (sub-status 10004), which
        # azure-cosmos 4.17.1 then "retries" by refreshing a container link it does not have
        # (AttributeError on None); older versions indexed the empty list (IndexError).
        if isinstance(exc, IndexError | AttributeError) or getattr(exc, "status_code", None) in (
            400,
            404,
        ):
            raise NoOffer(
                "the container has no throughput of its own (a serverless account, or "
                "throughput shared by its database): there is nothing to scale"
            ) from exc
        raise
    return _from_offer(properties.properties)


def replace_throughput(container: Any, target: Throughput, timeout: float) -> Throughput:
    """Set the container's manual RU/s or autoscale maximum to ``target.ru``; returns the
    throughput the service answered with."""
    from azure.cosmos import ThroughputProperties

    headers: dict[str, Any] = {}

    def hook(response_headers: Any, _: Any) -> None:
        headers.update(response_headers)

    value: Any = (
        ThroughputProperties(auto_scale_max_throughput=target.ru) if target.autoscale else target.ru
    )
    result = container.replace_throughput(value, response_hook=hook, timeout=timeout)
    return _from_offer(result.properties, _pending(headers))
