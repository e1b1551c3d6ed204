"""The ``cosmos`` sink passes cosmobac's conformance kit (``cosmobac.testing.check_sink``) against
the real local server, reading back what each sink wrote from its own container: a batch written
twice is held once (upserts by deterministic id), missing values are absent or null."""

from __future__ import annotations

import itertools

from cosmobac.interfaces import Sink
from cosmobac.testing import check_sink

from .conftest import contents, make_sink


def test_the_cosmos_sink_passes_the_sink_checks(cosmos_server, container_name):
    names = (f"{container_name}-{i}" for i in itertools.count())
    made: dict[int, str] = {}

    def factory() -> Sink:
        name = next(names)
        sink = make_sink(cosmos_server.endpoint, name)
        made[id(sink)] = name
        return sink

    ran = check_sink(factory, read_back=lambda sink: contents(cosmos_server, made[id(sink)]))
    assert "read_back holds every row written" in ran
    assert "the same batch written twice is held once" in ran
    assert "spans and fetch read back what was written (ReadableSink)" in ran
