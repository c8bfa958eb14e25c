"""An upsert of a whole chatflow: which vector store nodes to fill, from which files, how to clean up.

Shared by the upsert route and `streamwise ingest`. Uploaded files go to the document loaders that
take their type (a `.pdf` to a `pdfFile` node's file input), the graph is built with them, and each
vector store node found (or the one `stop_node_id` names) is upserted with the cleanup policy of its
record manager node, if one is connected.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Protocol, runtime_checkable

from streamwise.engine.build import build_nodes
from streamwise.engine.graph import FlowGraph, reference_target
from streamwise.engine.ingest import Cleanup, Progress, RecordKeeper, UpsertResult, upsert
from streamwise.engine.overrides import OverridePolicy
from streamwise.engine.ports import NodeCatalog
from streamwise.engine.retrieval import Indexable, RetrievalContext, UploadedFile
from streamwise.errors import BadRequest, NotFound


@runtime_checkable
class CleanupPolicy(Protocol):
    """What a record manager node decides (see nodes/indexing/record_manager.py)."""

    @property
    def cleanup(self) -> Cleanup: ...

    @property
    def source_key(self) -> str: ...

    @property
    def namespace(self) -> str | None: ...


@dataclass(frozen=True)
class UpsertTarget:
    node_id: str
    node: Indexable
    cleanup: Cleanup = "none"
    source_key: str = "source"
    namespace: str | None = None


def files_by_loader(graph: FlowGraph, catalog: NodeCatalog, files: Sequence[UploadedFile]) -> dict[str, Any]:
    """node id → {file input: [files]}: each file goes to every loader that takes its type."""
    inject: dict[str, dict[str, list[UploadedFile]]] = {}
    for file in files:
        suffix = PurePath(file.name).suffix.lower()
        taken = False
        for node_id, node in graph.nodes.items():
            accepts = catalog.file_input(node.name)
            if accepts is None or suffix not in accepts[1]:
                continue
            inject.setdefault(node_id, {}).setdefault(accepts[0], []).append(file)
            taken = True
        if not taken:
            kind = suffix or "extension-less"
            raise BadRequest(f"File {file.name!r}: no document loader in this chatflow takes {kind} files")
    return inject


def plan(
    graph: FlowGraph,
    catalog: NodeCatalog,
    *,
    override: Mapping[str, Any] | None = None,
    override_policy: OverridePolicy | None = None,
    inject: Mapping[str, Mapping[str, Any]] | None = None,
    files: Sequence[UploadedFile] = (),
    stop_node_id: str | None = None,
) -> list[UpsertTarget]:
    """Build the graph with the files in place; the vector store nodes to upsert into.

    `override` is applied as the chatflow's `override_policy` allows (a request's always comes with
    one; see `build.node_inputs` for None). Uploaded files are the server's own values, never gated.
    """
    if stop_node_id and stop_node_id not in graph.nodes:
        raise NotFound(f"This chatflow has no node {stop_node_id[:100]!r}")
    server_inputs = files_by_loader(graph, catalog, files)
    for node_id, values in (inject or {}).items():  # the nodes' credentials
        server_inputs.setdefault(node_id, {}).update(values)
    instances = build_nodes(graph, catalog, override, server_inputs, policy=override_policy)
    targets: list[UpsertTarget] = []
    for node_id, instance in instances.items():
        if not isinstance(instance, Indexable) or (stop_node_id and node_id != stop_node_id):
            continue
        policy = _record_manager(graph, instances, node_id)
        if policy is None:
            targets.append(UpsertTarget(node_id, instance))
        else:
            targets.append(
                UpsertTarget(node_id, instance, policy.cleanup, policy.source_key, policy.namespace)
            )
    if not targets:
        if stop_node_id:
            raise BadRequest(f"Node {stop_node_id} is not a vector store of this chatflow")
        raise BadRequest("This chatflow has no vector store to upsert into")
    return targets


def _record_manager(graph: FlowGraph, instances: Mapping[str, object], node_id: str) -> CleanupPolicy | None:
    raw = graph.nodes[node_id].inputs.get("recordManager")
    target = reference_target(raw[0] if isinstance(raw, list) and raw else raw)
    found = instances.get(target) if target else None
    return found if isinstance(found, CleanupPolicy) else None


# One upsert per store at a time; a lock lives while an upsert holds or waits for it.
_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def run(
    targets: Sequence[UpsertTarget],
    context: RetrievalContext,
    records: RecordKeeper,
    progress: Callable[[Progress], None] | None = None,
) -> UpsertResult:
    """Upsert into every target, one upsert per store at a time; Flowise's answer, summed. The
    caller closes the result's `added` once it has sent it."""
    total = UpsertResult()
    try:
        return await _run_into(total, targets, context, records, progress)
    except BaseException:
        total.added.close()
        raise


async def _run_into(
    total: UpsertResult,
    targets: Sequence[UpsertTarget],
    context: RetrievalContext,
    records: RecordKeeper,
    progress: Callable[[Progress], None] | None,
) -> UpsertResult:
    for target in targets:
        key = f"{context.chatflow_id}/{target.node_id}"
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = asyncio.Lock()
        async with lock:
            result = await upsert(
                target.node,
                context,
                records,
                cleanup=target.cleanup,
                source_key=target.source_key,
                progress=progress,
                namespace=target.namespace,
            )
        total.added.absorb(result.added)
        total.skipped += result.skipped
        total.deleted += result.deleted
    return total
