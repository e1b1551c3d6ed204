"""cosmobac: edge-to-cloud IoT sensor pipelines.

Importing cosmobac loads no plugin; plugins load on first use (see :mod:`cosmobac.plugins`).
The names for composing a pipeline in a few lines (``Pipeline``, ``RunConfig``, ``Lane``,
``get_plugins``, ``MemoryStore``, ``simulate``, ``detect``) are imported on first use, so
``import cosmobac`` stays quick.
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from .batch import Batch, Reading
from .documents import document_id, to_documents
from .errors import ConfigError, CosmobacError, PluginError, SinkError, StoreError
from .hookspecs import hookimpl
from .interfaces import (
    Closeable,
    CommittingSensor,
    ConsumerAdminStore,
    DeadLetter,
    DeadLetterStore,
    FileStore,
    FixedStartSensor,
    InputReject,
    InputStore,
    LiveSensor,
    PrunableStore,
    ReadableSink,
    ReadAheadStore,
    RejectingSensor,
    ResumableStore,
    ScannableStore,
    SeekableSensor,
    Sensor,
    SensorRangeStore,
    SensorSpan,
    Sink,
    StatefulSensor,
    StatefulStore,
    StatefulTransform,
    Store,
    StoreStats,
    Transform,
    WriteResult,
)

if TYPE_CHECKING:
    from .api import detect, simulate
    from .config import RunConfig
    from .pipeline import Lane, Pipeline
    from .plugins import get_plugins
    from .stores.memory import MemoryStore

_LAZY = {
    "Pipeline": "pipeline",
    "Lane": "pipeline",
    "RunConfig": "config",
    "get_plugins": "plugins",
    "MemoryStore": "stores.memory",
    "simulate": "api",
    "detect": "api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cosmobac' has no attribute {name!r}")
    value = getattr(_import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:
    __version__ = _metadata.version("cosmobac")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Batch",
    "Closeable",
    "CommittingSensor",
    "ConfigError",
    "ConsumerAdminStore",
    "CosmobacError",
    "DeadLetter",
    "DeadLetterStore",
    "FileStore",
    "FixedStartSensor",
    "InputReject",
    "InputStore",
    "Lane",
    "LiveSensor",
    "MemoryStore",
    "Pipeline",
    "PluginError",
    "PrunableStore",
    "ReadAheadStore",
    "ReadableSink",
    "Reading",
    "RejectingSensor",
    "ResumableStore",
    "RunConfig",
    "ScannableStore",
    "SeekableSensor",
    "Sensor",
    "SensorRangeStore",
    "SensorSpan",
    "Sink",
    "SinkError",
    "StatefulSensor",
    "StatefulStore",
    "StatefulTransform",
    "Store",
    "StoreError",
    "StoreStats",
    "Transform",
    "WriteResult",
    "detect",
    "document_id",
    "get_plugins",
    "hookimpl",
    "simulate",
    "to_documents",
]
