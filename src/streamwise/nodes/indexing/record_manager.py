"""Flowise's record manager nodes (SQLite, Postgres, MySQL Record Manager): how upserts clean up.

Streamwise keeps upsert records itself, always, in its own database (see `engine/ingest.py`), so the
database settings of these nodes have no effect; what they decide is the cleanup mode, the metadata
key that names a chunk's source, and the namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.ingest import CLEANUP_MODES, Cleanup
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


@dataclass(frozen=True)
class RecordManager:
    cleanup: Cleanup = "none"
    source_key: str = "source"
    namespace: str | None = None  # None: the chatflow's (and the vector store node's)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> RecordManager:
    cleanup = read.text(inputs, "cleanup", "none") or "none"
    if cleanup not in CLEANUP_MODES:
        raise NodeConfigError(
            f"Node {node_id}: input 'cleanup' must be one of {', '.join(CLEANUP_MODES)}, got {cleanup!r}",
            node_id,
        )
    return RecordManager(
        cleanup=cleanup,
        source_key=read.text(inputs, "sourceIdKey", "source") or "source",
        namespace=read.text(inputs, "namespace"),
    )


_HONOURED = ("cleanup", "sourceIdKey", "namespace")
_DATABASE = ("tableName", "additionalConfig", "host", "port", "database", "credential")

SPECS = tuple(
    NodeSpec(
        name=name,
        label=label,
        category="Record Manager",
        build=build,
        honoured=_HONOURED,
        ignored=_DATABASE,
    )
    for name, label in (
        ("SQLiteRecordManager", "SQLite Record Manager"),
        ("postgresRecordManager", "Postgres Record Manager"),
        ("MySQLRecordManager", "MySQL Record Manager"),
    )
)
