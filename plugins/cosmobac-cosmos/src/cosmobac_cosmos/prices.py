"""Prices for ``cosmobac cosmos plan``: the packaged defaults (``prices.toml``, which cites its
source and date) and a user's file over them.

Guarantees: a file may give any subset of the tables and keys (the rest keep the defaults); an
unknown table or key, a value that is not a number, or a number out of range is an error naming
the file, the table and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import attrs

from cosmobac.errors import ConfigError
from cosmobac.values import did_you_mean, integer, real

__all__ = ["DEFAULT_PRICES", "Prices", "load_prices"]

DEFAULT_PRICES: Final = "prices.toml"

_NUMBERS: Final[dict[str, dict[str, str]]] = {
    "provisioned": {"per_100_rus_hour": "real", "minimum_rus": "int", "step_rus": "int"},
    "autoscale": {"per_100_rus_hour": "real", "minimum_max_rus": "int", "step_max_rus": "int"},
    "serverless": {"per_million_ru": "real", "burst_rus": "int"},
    "storage": {"per_gb_month": "real"},
    "month": {"hours": "real"},
}
_SOURCE_KEYS: Final = ("name", "url", "as_of", "currency")


@attrs.frozen
class Prices:
    """The numbers a plan is priced with, and where they come from."""

    provisioned_per_100_rus_hour: float
    provisioned_minimum_rus: int
    provisioned_step_rus: int
    autoscale_per_100_rus_hour: float
    autoscale_minimum_max_rus: int
    autoscale_step_max_rus: int
    serverless_per_million_ru: float
    serverless_burst_rus: int
    storage_per_gb_month: float
    hours_per_month: float
    source: Mapping[str, str]
    files: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["source"] = dict(self.source)
        out["files"] = list(self.files)
        return out


def _read(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        text = resources.files("cosmobac_cosmos").joinpath(DEFAULT_PRICES).read_text("utf-8")
        return tomllib.loads(text), f"(built in) {DEFAULT_PRICES}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the prices file: {exc.strerror}") from None
    try:
        return tomllib.loads(text), str(path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(into: dict[str, dict[str, Any]], data: Mapping[str, Any], where: str) -> None:
    tables = [*_NUMBERS, "source"]
    for table, body in data.items():
        if table not in tables:
            raise ConfigError(
                f"{where}: unknown table [{table}]{did_you_mean(table, tables)} (accepted: "
                f"{', '.join(f'[{t}]' for t in tables)})"
            )
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: [{table}] must be a table")
        keys = list(_NUMBERS.get(table, {})) or list(_SOURCE_KEYS)
        for key, value in body.items():
            name = f"{where}: [{table}] {key}"
            if key not in keys:
                raise ConfigError(
                    f"{where}: [{table}]: unknown key {key!r}{did_you_mean(key, keys)} "
                    f"(accepted: {', '.join(keys)})"
                )
            try:
                if table == "source":
                    if not isinstance(value, str):
                        raise TypeError(f"{name} must be text, got {value!r}")
                elif _NUMBERS[table][key] == "int":
                    value = integer(name, value, minimum=1)
                else:
                    value = real(name, value, above=0.0)
            except (TypeError, ValueError) as exc:
                raise ConfigError(str(exc)) from None
            into.setdefault(table, {})[key] = value


def load_prices(path: str | Path | None = None) -> Prices:
    """The packaged defaults, with ``path``'s tables and keys over them."""
    merged: dict[str, dict[str, Any]] = {}
    data, where = _read(None)
    _merge(merged, data, where)
    files = [where]
    if path is not None:
        data, where = _read(Path(path))
        _merge(merged, data, where)
        files.append(where)
        if "source" not in data:  # prices changed without saying where from: say so
            merged["source"] = {**merged["source"], "name": f"{where} (over the defaults)"}
    p, a, s = merged["provisioned"], merged["autoscale"], merged["serverless"]
    return Prices(
        provisioned_per_100_rus_hour=p["per_100_rus_hour"],
        provisioned_minimum_rus=p["minimum_rus"],
        provisioned_step_rus=p["step_rus"],
        autoscale_per_100_rus_hour=a["per_100_rus_hour"],
        autoscale_minimum_max_rus=a["minimum_max_rus"],
        autoscale_step_max_rus=a["step_max_rus"],
        serverless_per_million_ru=s["per_million_ru"],
        serverless_burst_rus=s["burst_rus"],
        storage_per_gb_month=merged["storage"]["per_gb_month"],
        hours_per_month=merged["month"]["hours"],
        source=dict(merged["source"]),
        files=tuple(files),
    )
