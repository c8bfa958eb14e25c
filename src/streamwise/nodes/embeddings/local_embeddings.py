"""localEmbeddings: embeddings computed inside the server, by a model shipped in a Python package.

Streamwise's own node (Flowise has no equivalent): no server to run, no key, nothing downloaded. The
models and the worker thread they run on are in `local_runtime`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamwise.errors import ModelUnavailable, NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.embeddings.local_runtime import (
    ALIASES,
    LocalEmbeddingError,
    ModelInfo,
    resolve,
    shared_runtime,
)
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

LABEL = "Local Embeddings (embedded)"


class LocalEmbeddings:
    """One configured localEmbeddings node. Building it touches nothing: the runtime (and the model)
    are taken at the first embedding."""

    def __init__(self, services: NodeServices, model: ModelInfo, *, node_id: str = "localEmbeddings") -> None:
        self.services = services
        self.model = model
        self.node_id = node_id

    @property
    def key(self) -> str:
        return f"local:{self.model.name}"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self._embed(texts, query=False)

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed([text], query=True))[0]

    async def _embed(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        try:
            return await shared_runtime(self.services.cache).embed(self.model, texts, query=query)
        except LocalEmbeddingError as exc:
            needs = ", ".join(self.model.packages)
            raise ModelUnavailable(
                f"Node {self.node_id} ({LABEL}): the embedded model {self.model.name} could not run",
                detail=f"{exc} (it needs the packages {needs})",
            ) from None


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> LocalEmbeddings:
    name = inputs.text(inputs_, "model")
    model = resolve(name)
    if model is None:
        known = ", ".join(sorted({*ALIASES.values()}))
        raise NodeConfigError(
            f"Node {node_id}: unknown local embedding model {name!r} (known: {known})", node_id
        )
    return LocalEmbeddings(services, model, node_id=node_id)


SPEC = NodeSpec(
    name="localEmbeddings",
    label=LABEL,
    category="Embeddings",
    build=build,
    honoured=("model",),
)
