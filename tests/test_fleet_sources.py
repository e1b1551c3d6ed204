"""The ``register_fleet_sources`` hook: plugins offer fleet views a way to ask every node."""

from __future__ import annotations

import pytest

from cosmobac import hookimpl
from cosmobac.config import ComponentConfig
from cosmobac.errors import ConfigError, PluginError
from cosmobac.interfaces import FleetNode, FleetSource
from cosmobac.testing import fresh_plugins


class TwoNodes:
    """A fleet of two: one healthy, one with a stopped sink."""

    def __init__(self, *, region: str = "eu") -> None:
        self.region = region

    def poll(self) -> list[FleetNode]:
        return [
            FleetNode(f"{self.region}-1", {"rows": 10, "healthy": True}),
            FleetNode(f"{self.region}-2", {"rows": 5}, ("hook: sink failed permanently",)),
        ]


class FleetPlugin:
    @hookimpl
    def register_fleet_sources(self, register):
        register("two", TwoNodes, description="two nodes in a test")


def test_register_fleet_sources_makes_a_source_a_fleet_view_can_poll():
    with fresh_plugins(FleetPlugin()):
        source = ComponentConfig.from_table(
            "fleet", {"plugin": "two", "region": "us"}, where="--fleet"
        ).build()
        assert isinstance(source, FleetSource)
        one, two = source.poll()
    assert (one.node_id, one.healthy) == ("us-1", True)
    assert (two.node_id, two.healthy, two.problems) == (
        "us-2",
        False,
        ("hook: sink failed permanently",),
    )


def test_register_fleet_sources_unknown_names_and_keys_are_named():
    with fresh_plugins(FleetPlugin()) as plugins:
        with pytest.raises(PluginError, match=r"no fleet named 'tree'.*available: two"):
            plugins.get("fleet", "tree")
        with pytest.raises(ConfigError, match=r"--fleet \(plugin 'two'\): .*zone"):
            ComponentConfig.from_table(
                "fleet", {"plugin": "two", "zone": "x"}, where="--fleet"
            ).build()


def test_register_fleet_sources_bacalhau_is_named_when_missing():
    with fresh_plugins() as plugins, pytest.raises(PluginError, match="cosmobac-bacalhau"):
        plugins.get("fleet", "bacalhau")
