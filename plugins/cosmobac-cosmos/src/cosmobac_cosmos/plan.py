"""The arithmetic of ``cosmobac cosmos plan``: request units per write, throughput and cost per
mode, storage, partitions and ranked recommendations, from documents the pipeline really makes.

The model (see docs/how-to/cosmos-costs.md):

* **RU per write** is Microsoft's published write charge for the document's size
  (:data:`WRITE_RU_TABLE`, default indexing policy; interpolated linearly between table points;
  documents under 1 KB are charged as 1 KB), scaled for the indexing policy: a share
  :data:`INDEX_SHARE` of the charge is index maintenance, proportional to the share of the
  document's fields the policy indexes. ``INDEX_SHARE = 0.5`` is an assumption (Microsoft
  publishes that writes cost more with more indexed properties, not how much): verify it by
  measuring (``--measure`` against a real account reads ``x-ms-request-charge``).
* **Provisioned** throughput is the RU/s the load needs, rounded up to 100 RU/s steps, at least
  400 RU/s; **autoscale** has its maximum (Tmax) sized for the load in 1,000 RU/s steps and, for a
  steady load, is billed each hour for the RU/s used (at least Tmax/10, in 100 RU/s steps) at 1.5×
  the manual rate; **serverless** is billed per million RU consumed and is flagged when the load
  exceeds its burst limit. A month is ``[month] hours`` (730) hours.
* **Storage** grows by documents/s × bytes each second (JSON bytes as sent; the service's system
  properties and the index add to it); with a TTL it levels off at documents/s × bytes × TTL.
  1 GB is 10⁹ bytes.
* **Partitions**: a logical partition (one partition key value) takes the share of the writes its
  documents have; it is hot when its RU/s exceed the 10,000 RU/s of one physical partition, and
  cannot hold more than 20 GB. With ``nodes`` > 1 every node is assumed to write its own key
  values (distinct sensors).

Figures: ``/work/shared/notes/cosmos-cost.md`` (Microsoft, "Request units in Azure Cosmos DB" and
the Azure Cosmos DB pricing page), in the packaged ``prices.toml``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np

from .indexing import RECOMMENDED_FIELDS, indexed_fields, only, policy_summary
from .prices import Prices

__all__ = [
    "INDEX_SHARE",
    "PARTITION_MAX_BYTES",
    "PHYSICAL_PARTITION_RUS",
    "WRITE_RU_TABLE",
    "Costs",
    "PlanInput",
    "autoscale",
    "make_plan",
    "provisioned",
    "serverless",
    "write_ru",
]

WRITE_RU_TABLE: Final[tuple[tuple[int, float], ...]] = (
    (1, 4.95),
    (2, 6.29),
    (4, 6.67),
    (8, 7.04),
    (16, 9.52),
    (32, 11.23),
    (64, 22.67),
    (128, 48.19),
    (256, 98.29),
    (512, 184.57),
    (1024, 625.00),
    (2048, 1250.00),
)
"""(document size in KB, RU per write) with the default indexing policy: Microsoft, "Request
units in Azure Cosmos DB" (request unit consumption by item size), via the project's cost notes."""

INDEX_SHARE: Final = 0.5
"""Assumed share of a write's charge (default policy) that is index maintenance."""
PHYSICAL_PARTITION_RUS: Final = 10_000
PARTITION_MAX_BYTES: Final = 20 * 10**9
SUGGESTED_TTL_S: Final = 30 * 86400
GB: Final = 1e9

_KB = [kb for kb, _ in WRITE_RU_TABLE]
_RU = [ru for _, ru in WRITE_RU_TABLE]


def write_ru(size_bytes: float, indexed: int | None = None, fields: int | None = None) -> float:
    """RU of one write of a document of ``size_bytes`` (JSON), from :data:`WRITE_RU_TABLE`
    (linear between points, the 1 KB charge below 1 KB); with ``indexed`` of ``fields`` fields
    indexed, the index share (:data:`INDEX_SHARE`) scaled by ``indexed / fields``."""
    kb = max(1.0, size_bytes / 1024)
    if kb >= _KB[-1]:
        ru = _RU[-1] * kb / _KB[-1]
    else:
        i = bisect.bisect_right(_KB, kb) - 1
        k0, k1, r0, r1 = _KB[i], _KB[i + 1], _RU[i], _RU[i + 1]
        ru = r0 + (r1 - r0) * (kb - k0) / (k1 - k0)
    if indexed is not None and fields:
        ru *= (1 - INDEX_SHARE) + INDEX_SHARE * min(indexed, fields) / fields
    return ru


def _up(value: float, step: int) -> int:
    return int(math.ceil(value / step - 1e-9) * step)


@attrs.frozen
class Costs:
    """What one throughput mode costs a month for a steady load."""

    mode: str
    monthly: float
    rus: int  # provisioned RU/s; autoscale: its maximum; serverless: 0
    billed_rus: int  # RU/s billed each hour (serverless: 0)
    ru_per_month: float = 0.0  # serverless
    over_burst: bool = False  # serverless: the load exceeds the burst limit

    def as_json(self) -> dict[str, Any]:
        return {
            k: (round(v, 2) if isinstance(v, float) else v) for k, v in attrs.asdict(self).items()
        }


def provisioned(ru_s: float, prices: Prices) -> Costs:
    """Manual throughput: ``ru_s`` rounded up to the step, at least the minimum."""
    rus = max(prices.provisioned_minimum_rus, _up(ru_s, prices.provisioned_step_rus))
    monthly = rus / 100 * prices.provisioned_per_100_rus_hour * prices.hours_per_month
    return Costs("provisioned", monthly, rus, rus)


def autoscale(ru_s: float, prices: Prices) -> Costs:
    """Autoscale sized for a steady ``ru_s``: Tmax rounded up to its step (at least the minimum);
    each hour billed for the RU/s used, at least Tmax/10, in 100 RU/s steps."""
    tmax = max(prices.autoscale_minimum_max_rus, _up(ru_s, prices.autoscale_step_max_rus))
    billed = max(_up(ru_s, 100), _up(tmax / 10, 100))
    monthly = billed / 100 * prices.autoscale_per_100_rus_hour * prices.hours_per_month
    return Costs("autoscale", monthly, tmax, billed)


def serverless(ru_s: float, prices: Prices) -> Costs:
    """Serverless: per million RU consumed; ``over_burst`` past its RU/s limit."""
    per_month = ru_s * 3600 * prices.hours_per_month
    monthly = per_month / 1e6 * prices.serverless_per_million_ru
    return Costs("serverless", monthly, 0, 0, per_month, ru_s > prices.serverless_burst_rus)


def throughput_costs(ru_s: float, prices: Prices) -> list[Costs]:
    return [provisioned(ru_s, prices), autoscale(ru_s, prices), serverless(ru_s, prices)]


def cheapest(costs: Sequence[Costs]) -> Costs:
    """The cheapest mode that can carry the load (serverless over its burst limit cannot)."""
    usable = [c for c in costs if not c.over_burst]
    return min(usable, key=lambda c: c.monthly)


@attrs.frozen
class PlanInput:
    """What a plan is computed from: sampled documents' sizes, fields and partition key values,
    the span of sensor time they cover, and the sink's settings."""

    sizes: np.ndarray  # bytes of each sampled document's JSON
    fields: tuple[str, ...]  # top-level fields the documents carry (without id)
    key_counts: Mapping[Any, int]  # partition key value → sampled documents
    span_s: float  # sensor time the sample covers
    partition_key: tuple[str, ...]
    policy: Mapping[str, Any] | None  # indexing policy in force (None: default)
    policy_from: str  # "container", "sink" or "default"
    nodes: int = 1
    sensors: int = 0  # distinct sensor ids in the sample (one node)
    ttl_s: int | None = None  # the sink's default_ttl (> 0), if any
    mode: str | None = None  # the sink's throughput mode, if it sets one
    configured_rus: int | None = None
    keep_fields: tuple[str, ...] = RECOMMENDED_FIELDS
    measured_ru: float | None = None
    aggregate: AggregateInput | None = None  # a 1-min window's documents (no aggregate yet)
    source: str = "simulated"
    notes: tuple[str, ...] = ()


@attrs.frozen
class AggregateInput:
    """Documents an aggregation window would send instead: per second (whole fleet of one node)
    and their median size."""

    window_s: float
    documents_per_s: float
    median_bytes: float
    fields: tuple[str, ...] = ()


def _storage_month(
    docs_s: float, size: float, prices: Prices, ttl_s: int | None, months: int
) -> float:
    """Storage cost in month ``months`` (without TTL it grows; with one it levels off)."""
    per_s = docs_s * size
    if ttl_s is not None:
        held = per_s * min(ttl_s, months * prices.hours_per_month * 3600)
    else:
        held = per_s * months * prices.hours_per_month * 3600
    return held / GB * prices.storage_per_gb_month


def _total(ru_s: float, docs_s: float, size: float, prices: Prices, ttl_s: int | None) -> float:
    """Cheapest throughput plus storage in month 12: the basis savings are figured on."""
    return cheapest(throughput_costs(ru_s, prices)).monthly + _storage_month(
        docs_s, size, prices, ttl_s, 12
    )


def _stats(sizes: np.ndarray) -> dict[str, float]:
    if not len(sizes):
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "mean": 0.0}
    return {
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "p95": float(np.percentile(sizes, 95)),
        "max": int(sizes.max()),
        "mean": float(sizes.mean()),
    }


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def make_plan(data: PlanInput, prices: Prices, *, today: dt.date | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready mapping (its fields: docs/how-to/cosmos-costs.md)."""
    today = today or dt.datetime.now(dt.UTC).date()
    notes = list(data.notes)
    sizes = np.asarray(data.sizes, dtype=np.float64)
    size = _stats(sizes)
    count = len(sizes)
    fields = set(data.fields)
    indexed = indexed_fields(data.policy, fields)
    estimate = (
        float(np.mean([write_ru(s, len(indexed), len(fields)) for s in sizes])) if count else 0.0
    )
    ru_write = data.measured_ru if data.measured_ru is not None else estimate
    docs_node = count / data.span_s if data.span_s > 0 else 0.0
    docs_s = docs_node * data.nodes
    ru_s = docs_s * ru_write
    costs = throughput_costs(ru_s, prices)
    best = cheapest(costs)
    if costs[2].over_burst:
        notes.append(
            f"serverless cannot carry {ru_s:,.0f} RU/s (its burst limit is "
            f"{prices.serverless_burst_rus:,} RU/s per container)"
        )
    if data.configured_rus is not None and data.configured_rus < ru_s:
        notes.append(
            f"the sink's configured throughput ({data.configured_rus:,} RU/s) is below the "
            f"{ru_s:,.0f} RU/s the load needs: writes would be throttled (HTTP 429)"
        )

    mean_size = size["mean"]
    growth_gb = docs_s * mean_size * prices.hours_per_month * 3600 / GB
    ttl = data.ttl_s
    ttl_from = "sink" if ttl is not None else "suggested"
    ttl_used = ttl if ttl is not None else SUGGESTED_TTL_S
    held_gb = docs_s * mean_size * ttl_used / GB
    storage = {
        "gb_per_month": _r(growth_gb, 3),
        "monthly_cost_month_1": _r(_storage_month(docs_s, mean_size, prices, None, 1)),
        "monthly_cost_month_12": _r(_storage_month(docs_s, mean_size, prices, None, 12)),
        "ttl_s": ttl_used,
        "ttl_from": ttl_from,
        "gb_with_ttl": _r(held_gb, 3),
        "monthly_cost_with_ttl": _r(held_gb * prices.storage_per_gb_month),
    }

    # partitions: each node writes its own key values; the hottest is one node's hottest
    total_keyed = sum(data.key_counts.values())
    distinct = len(data.key_counts) * data.nodes
    hottest_key, hottest_n = (
        max(data.key_counts.items(), key=lambda kv: kv[1]) if data.key_counts else (None, 0)
    )
    share_node = hottest_n / total_keyed if total_keyed else 0.0
    hot_ru_s = ru_s / data.nodes * share_node if data.nodes else 0.0
    hot_bytes_s = docs_node * share_node * mean_size
    reaches: str | None = None
    if hot_bytes_s > 0:
        limit_s = PARTITION_MAX_BYTES / hot_bytes_s
        if ttl is None or ttl > limit_s:
            reaches = (today + dt.timedelta(seconds=limit_s)).isoformat()
    partitions = {
        "paths": list(data.partition_key),
        "distinct_values": distinct,
        "hottest_value": hottest_key,
        "hottest_share": _r(share_node / data.nodes if data.nodes else 0, 6),
        "hottest_ru_per_s": _r(hot_ru_s),
        "physical_partition_ru_per_s": PHYSICAL_PARTITION_RUS,
        "hot": hot_ru_s > PHYSICAL_PARTITION_RUS,
        "hottest_gb_per_month": _r(hot_bytes_s * prices.hours_per_month * 3600 / GB, 4),
        "reaches_20gb_on": reaches,
    }
    if partitions["hot"]:
        notes.append(
            f"hot partition: {paths_of(data.partition_key)} = {hottest_key!r} takes "
            f"{hot_ru_s:,.0f} RU/s, above the {PHYSICAL_PARTITION_RUS:,} RU/s one physical "
            "partition serves; choose a key with more values (e.g. /sensor_id, or a "
            "hierarchical key [/city, /sensor_id])"
        )

    recommendations = _recommend(data, prices, ru_s, docs_s, mean_size, ru_write, fields, indexed)
    return {
        "schema": 1,
        "sample": {
            "source": data.source,
            "documents": count,
            "span_s": _r(data.span_s, 3),
            "sensors": data.sensors,
            "nodes": data.nodes,
        },
        "documents": {
            "bytes": {k: _r(v, 1) for k, v in size.items()},
            "fields": len(fields),
            "indexed_fields": len(indexed),
        },
        "indexing": {
            "from": data.policy_from,
            "summary": policy_summary(data.policy),
            "policy": None if data.policy is None else dict(data.policy),
        },
        "ru_per_write": {
            "estimate": _r(estimate, 3),
            "measured": None if data.measured_ru is None else _r(data.measured_ru, 3),
            "used": _r(ru_write, 3),
            "index_share": INDEX_SHARE,
        },
        "load": {
            "documents_per_s": _r(docs_s, 4),
            "ru_per_s": _r(ru_s, 2),
            "ru_per_month": _r(ru_s * 3600 * prices.hours_per_month, 0),
        },
        "costs": {
            **{c.mode: c.as_json() for c in costs},
            "cheapest": best.mode,
        },
        "storage": storage,
        "partitions": partitions,
        "recommendations": recommendations,
        "prices": prices.as_json(),
        "notes": notes,
    }


def paths_of(paths: Sequence[str]) -> str:
    return paths[0] if len(paths) == 1 else "[" + ", ".join(paths) + "]"


def _recommend(
    data: PlanInput,
    prices: Prices,
    ru_s: float,
    docs_s: float,
    size: float,
    ru_write: float,
    fields: set[str],
    indexed: set[str],
) -> list[dict[str, Any]]:
    """Ranked by estimated monthly saving (cheapest throughput mode plus month-12 storage)."""
    found: list[dict[str, Any]] = []
    ttl = data.ttl_s
    base = _total(ru_s, docs_s, size, prices, ttl)
    sizes = np.asarray(data.sizes, dtype=np.float64)

    keep = list(dict.fromkeys([*(p.lstrip("/") for p in data.partition_key), *data.keep_fields]))
    kept = set(keep) & fields
    setting = (
        'indexing = "recommended"'
        if tuple(data.keep_fields) == RECOMMENDED_FIELDS
        else "indexing = { included = [" + ", ".join(f'"{f}"' for f in keep) + "] }"
    )
    if len(indexed - kept) > 0 and len(sizes):
        new_write = float(np.mean([write_ru(s, len(kept), len(fields)) for s in sizes]))
        if data.measured_ru is not None:  # scale the measured charge by the model's ratio
            old_write = float(np.mean([write_ru(s, len(indexed), len(fields)) for s in sizes]))
            new_write = data.measured_ru * new_write / old_write
        new = _total(docs_s * new_write, docs_s, size, prices, ttl)
        found.append(
            {
                "kind": "indexing",
                "action": f"index only {', '.join('/' + f for f in keep)} (sink: {setting})",
                "monthly_saving": _r(base - new),
                "detail": {
                    "ru_per_write": _r(new_write, 3),
                    "indexed_fields": len(kept),
                    "fields": len(fields),
                    "policy": only(keep),
                },
            }
        )
    if data.aggregate is not None and data.aggregate.documents_per_s > 0:
        agg = data.aggregate
        agg_docs = agg.documents_per_s * data.nodes
        agg_fields = set(agg.fields)
        agg_write = write_ru(
            agg.median_bytes, len(indexed_fields(data.policy, agg_fields)), len(agg_fields)
        )
        if data.measured_ru is not None:
            agg_write = data.measured_ru * agg_write / max(write_ru(size), 1e-9)
        new = _total(agg_docs * agg_write, agg_docs, agg.median_bytes, prices, ttl)
        found.append(
            {
                "kind": "aggregation",
                "action": f"aggregate at the edge in {agg.window_s:g}-s windows ([[transforms]] "
                f'plugin = "aggregate", window = "{agg.window_s:g}s") and send the windows',
                "monthly_saving": _r(base - new),
                "detail": {
                    "documents_per_s": _r(agg_docs, 4),
                    "median_bytes": _r(agg.median_bytes, 1),
                    "ru_per_s": _r(agg_docs * agg_write, 2),
                },
            }
        )
    if ttl is None:
        new = _total(ru_s, docs_s, size, prices, SUGGESTED_TTL_S)
        found.append(
            {
                "kind": "ttl",
                "action": f"expire documents after {SUGGESTED_TTL_S // 86400} days (sink: "
                f"default_ttl = {SUGGESTED_TTL_S}) or whatever the data must be kept for",
                "monthly_saving": _r(base - new),
                "detail": {"ttl_s": SUGGESTED_TTL_S},
            }
        )
    costs = throughput_costs(ru_s, prices)
    best = cheapest(costs)
    current = data.mode or "provisioned"
    now = next(c for c in costs if c.mode == current)
    if data.mode is None or best.mode != current:
        size_text = {
            "autoscale": f" (max {best.rus:,} RU/s)",
            "provisioned": f" ({best.rus:,} RU/s)",
        }.get(best.mode, "")
        if best.mode == current:
            action = f"{best.mode} throughput{size_text} is the cheapest mode for this load"
        else:
            action = f"use {best.mode} throughput{size_text} instead of {current}"
        if data.mode is None:
            action += " (the sink sets none; compared with provisioned)"
        found.append(
            {
                "kind": "throughput",
                "action": action,
                "monthly_saving": _r(max(0.0, now.monthly - best.monthly)),
                "detail": {"mode": best.mode, "compared_with": current},
            }
        )
    found.sort(key=lambda r: -r["monthly_saving"])
    return [{"rank": i + 1, **r} for i, r in enumerate(found)]


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def render_text(plan: Mapping[str, Any]) -> str:
    """The plan for people (the numbers of :func:`make_plan`)."""
    cur = plan["prices"]["source"].get("currency", "USD")
    s, d, load = plan["sample"], plan["documents"], plan["load"]
    b = d["bytes"]
    ru = plan["ru_per_write"]
    c = plan["costs"]
    st, pt = plan["storage"], plan["partitions"]
    lines = [
        f"sample: {s['documents']:,} documents from {s['span_s']:g} s of "
        f"{'simulated sensor time' if s['source'] == 'simulated' else 'stored readings'} "
        f"({s['sensors']:,} sensors per node, {s['nodes']:,} node{'s' if s['nodes'] != 1 else ''})",
        f"document size (bytes): min {b['min']:g}, median {b['median']:g}, p95 {b['p95']:g}, "
        f"max {b['max']:g}",
        f"indexing ({plan['indexing']['from']}): {plan['indexing']['summary']} "
        f"({d['indexed_fields']} of {d['fields']} fields indexed)",
        f"RU per write: {ru['used']:.2f}"
        + (
            " (measured)"
            if ru["measured"] is not None
            else " (estimated from the published size→RU table and the indexing policy)"
        ),
        f"load: {load['documents_per_s']:,.2f} documents/s, {load['ru_per_s']:,.1f} RU/s",
        "monthly cost (throughput):",
        f"  provisioned  {c['provisioned']['rus']:>8,} RU/s          "
        f"{_money(c['provisioned']['monthly'], cur)}",
        f"  autoscale    max {c['autoscale']['rus']:>6,} RU/s, billed {c['autoscale']['billed_rus']:,}"
        f"  {_money(c['autoscale']['monthly'], cur)}",
        f"  serverless   {c['serverless']['ru_per_month'] / 1e6:>8,.1f} M RU/month      "
        f"{_money(c['serverless']['monthly'], cur)}"
        + ("  (over the burst limit)" if c["serverless"]["over_burst"] else ""),
        f"  cheapest: {c['cheapest']}",
        f"storage: +{st['gb_per_month']:,.3f} GB/month ({_money(st['monthly_cost_month_12'], cur)} "
        f"a month after 12 months without TTL); with TTL {st['ttl_s']:,} s ({st['ttl_from']}): "
        f"{st['gb_with_ttl']:,.3f} GB, {_money(st['monthly_cost_with_ttl'], cur)} a month",
        f"partitions ({', '.join(pt['paths'])}): {pt['distinct_values']:,} values; hottest "
        f"{pt['hottest_value']!r} {pt['hottest_ru_per_s']:,.1f} RU/s of "
        f"{pt['physical_partition_ru_per_s']:,} per physical partition"
        + (" — HOT" if pt["hot"] else " (ok)")
        + f"; reaches 20 GB: {pt['reaches_20gb_on'] or 'never (TTL)'}",
        "recommendations (by estimated monthly saving):",
    ]
    for r in plan["recommendations"]:
        lines.append(f"  {r['rank']}. {r['action']}: saves {_money(r['monthly_saving'], cur)}")
    if not plan["recommendations"]:
        lines.append("  none")
    lines.extend(f"note: {n}" for n in plan["notes"])
    src = plan["prices"]["source"]
    lines.append(f"prices: {src.get('name')}, {src.get('url', '')} (as of {src.get('as_of')})")
    return "\n".join(lines)
