"""cosmobac: edge-to-cloud IoT sensor pipelines.

Importing cosmobac loads no plugin; plugins load on first use (see :mod:`cosmobac.plugins`).
"""

from importlib import metadata as _metadata

from .batch import Batch, Reading
from .documents import document_id, to_documents
from .errors import ConfigError, CosmobacError, PluginError, SinkError, StoreError
from .hookspecs import hookimpl
from .interfaces import (
    Closeable,
    ConsumerAdminStore,
    DeadLetter,
    DeadLetterStore,
    FileStore,
    FixedStartSensor,
    PrunableStore,
    ReadAheadStore,
    ResumableStore,
    ScannableStore,
    SeekableSensor,
    Sensor,
    Sink,
    StatefulStore,
    StatefulTransform,
    Store,
    StoreStats,
    Transform,
    WriteResult,
)

try:
    __version__ = _metadata.version("cosmobac")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Batch",
    "Closeable",
    "ConfigError",
    "ConsumerAdminStore",
    "CosmobacError",
    "DeadLetter",
    "DeadLetterStore",
    "FileStore",
    "FixedStartSensor",
    "PluginError",
    "PrunableStore",
    "ReadAheadStore",
    "Reading",
    "ResumableStore",
    "ScannableStore",
    "SeekableSensor",
    "Sensor",
    "Sink",
    "SinkError",
    "StatefulStore",
    "StatefulTransform",
    "Store",
    "StoreError",
    "StoreStats",
    "Transform",
    "WriteResult",
    "document_id",
    "hookimpl",
    "to_documents",
]
