"""Reading and replacing a container's throughput with the real SDK, against the offers double in
front of the local server (which has no offers of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cosmobac_cosmos.emulator import LOCAL_KEY, LocalServer
from cosmobac_cosmos.offers import NoOffer, Throughput, read_throughput, replace_throughput

from .conftest import DATABASE
from .offers_double import OffersDouble


@pytest.fixture
def double(cosmos_server: LocalServer) -> Iterator[OffersDouble]:
    with OffersDouble(cosmos_server.host, cosmos_server.port, pending_above=5000) as d:
        yield d


def _client(endpoint: str) -> Any:
    from azure.cosmos import CosmosClient

    return CosmosClient(
        endpoint,
        LOCAL_KEY,
        enable_endpoint_discovery=False,
        connection_timeout=5,
        read_timeout=10,
    )


def _created(double: OffersDouble, name: str, offer: Any) -> tuple[Any, Any]:
    from azure.cosmos import PartitionKey

    client = _client(double.endpoint)
    database = client.create_database_if_not_exists(DATABASE)
    container = database.create_container(
        id=name, partition_key=PartitionKey(path="/city"), offer_throughput=offer
    )
    return client, container


def test_manual_throughput_is_read_and_replaced_through_the_sdk(double, container_name):
    client, container = _created(double, container_name, 400)
    with client:
        assert read_throughput(container, 10) == Throughput(400, False)
        assert replace_throughput(container, Throughput(600, False), 10) == Throughput(600, False)
        assert read_throughput(container, 10) == Throughput(600, False)
    # the SDK's wire format: the offer queried by the container's _self, then PUT whole
    methods = [(m, p) for m, p, _ in double.offer_requests]
    offer = next(iter(double.offers.values()))
    assert ("POST", "/offers") in methods and ("PUT", f"/offers/{offer['_rid']}/") in methods
    put = next(b for m, _, b in double.offer_requests if m == "PUT")
    assert put["content"]["offerThroughput"] == 600 and put["offerVersion"] == "V2"
    query = next(b for m, _, b in double.offer_requests if m == "POST")
    assert query["parameters"][0]["value"] == offer["resource"]


def test_the_autoscale_maximum_is_replaced_and_a_pending_change_reported(double, container_name):
    from azure.cosmos import ThroughputProperties

    offer = ThroughputProperties(auto_scale_max_throughput=4000)
    client, container = _created(double, container_name, offer)
    with client:
        assert read_throughput(container, 10) == Throughput(4000, True)
        raised = replace_throughput(container, Throughput(6000, True), 10)
        assert raised == Throughput(6000, True, pending=True)  # above pending_above
        put = next(b for m, _, b in double.offer_requests if m == "PUT")
        assert put["content"]["offerAutopilotSettings"] == {"maxThroughput": 6000}


def test_a_value_the_service_refuses_raises(double, container_name):
    from azure.cosmos.exceptions import CosmosHttpResponseError

    client, container = _created(double, container_name, 400)
    with client, pytest.raises(CosmosHttpResponseError) as caught:
        replace_throughput(container, Throughput(450, False), 10)
    assert caught.value.status_code == 400


def test_a_container_without_an_offer_says_so(double, container_name):
    client, container = _created(double, container_name, None)
    with client, pytest.raises(NoOffer, match="nothing to scale"):
        read_throughput(container, 10)
