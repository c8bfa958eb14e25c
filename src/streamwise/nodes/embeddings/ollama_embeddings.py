"""ollamaEmbedding: an Ollama server's embeddings, over `/api/embed` (many texts per request).

Ollama servers from before `/api/embed` (0.3) answer it with 404; for those the node falls back to the
older `/api/embeddings`, one text per request, and remembers that per base URL. The HTTP client is the
one chatOllama shares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from streamwise.nodes import inputs
from streamwise.nodes.embeddings.batches import Vector, embed_in_batches
from streamwise.nodes.model_hosts import check_model_host
from streamwise.nodes.models.chat_ollama import DEFAULT_BASE_URL, _error_text, shared_http
from streamwise.nodes.models.errors import ModelFailures, tidy
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

LABEL = "Ollama Embeddings"
DEFAULT_MODEL = "mxbai-embed-large"  # LangChain's default, which Flowise leaves in place
# Texts per /api/embed request: Ollama embeds a request's inputs in one pass, and a bounded request
# keeps each one well within the deadline and lets the batches of a large ingest overlap.
DEFAULT_BATCH_SIZE = 64
_LEGACY = "ollamaEmbedding.legacy"  # services.cache key: base URLs known to lack /api/embed

# Flowise input → Ollama option.
_OPTIONS = {"numGpu": "num_gpu", "numThread": "num_thread"}


class _NoEmbedEndpoint(Exception):
    """The server answered 404 for /api/embed: it may predate it."""


class OllamaEmbeddings:
    """One configured ollamaEmbedding node. Building it touches nothing."""

    def __init__(
        self,
        services: NodeServices,
        *,
        base_url: str,
        model: str,
        options: Mapping[str, Any],
        batch_size: int = DEFAULT_BATCH_SIZE,
        deadline: float = 120.0,
        node_id: str = "ollamaEmbedding",
    ) -> None:
        self.services = services
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.options = dict(options)
        self.batch_size = batch_size
        self.deadline = deadline
        # httpx's read timeout is "the first byte, then each silence": for an embeddings answer, which
        # comes whole once computed, that is the time the server takes.
        self._timeout = httpx.Timeout(connect=10.0, read=deadline, write=30.0, pool=30.0)
        self.failures = ModelFailures(node_id, LABEL, f"Ollama server at {self.base_url}")

    @property
    def key(self) -> str:
        return f"ollama:{self.model}"

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._legacy():
            return await embed_in_batches(texts, 1, self._embed_legacy)
        try:
            return await embed_in_batches(texts, self.batch_size, self._embed)
        except _NoEmbedEndpoint:
            pass
        # A 404 is also how a current Ollama says it does not have the model: the old endpoint then
        # fails the same way, and only a server where it works is remembered as an old one.
        vectors = await embed_in_batches(texts, 1, self._embed_legacy)
        self._remember_legacy()
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    def _legacy(self) -> bool:
        known = self.services.cache.get(_LEGACY)
        return isinstance(known, set) and self.base_url in known

    def _remember_legacy(self) -> None:
        known = self.services.cache.get(_LEGACY)
        if not isinstance(known, set):
            known = set()
            self.services.cache[_LEGACY] = known
        known.add(self.base_url)

    async def _embed(self, texts: Sequence[str]) -> list[Vector]:
        body: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.options:
            body["options"] = self.options
        answer = await self._post("/api/embed", body, fallback=True)
        vectors = answer.get("embeddings") if isinstance(answer, dict) else None
        if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
            raise self.failures.malformed("a body that is not an embeddings answer")
        if len(vectors) != len(texts):
            raise self.failures.malformed(f"{len(vectors)} vectors for {len(texts)} inputs")
        return vectors

    async def _embed_legacy(self, texts: Sequence[str]) -> list[Vector]:
        body: dict[str, Any] = {"model": self.model, "prompt": texts[0]}
        if self.options:
            body["options"] = self.options
        answer = await self._post("/api/embeddings", body, fallback=False)
        vector = answer.get("embedding") if isinstance(answer, dict) else None
        if not isinstance(vector, list):
            raise self.failures.malformed("a body that is not an embeddings answer")
        return [vector]

    async def _post(self, path: str, body: Mapping[str, Any], *, fallback: bool) -> Any:
        failures = self.failures
        try:
            response = await shared_http(self.services).post(
                self.base_url + path, json=body, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise failures.first_byte_timeout(self.deadline) from None
        except httpx.ConnectError as exc:
            raise failures.unreachable(tidy(str(exc)) or "connection failed") from None
        except httpx.RequestError as exc:
            raise failures.broke_off(tidy(str(exc)) or type(exc).__name__) from None
        if response.status_code == 404 and fallback:
            raise _NoEmbedEndpoint
        if response.status_code >= 400:
            raise failures.status(
                response.status_code, _error_text(response.content), response.headers.get("retry-after")
            )
        try:
            return json.loads(response.content)
        except ValueError:
            raise failures.malformed("a body that is not JSON") from None


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> OllamaEmbeddings:
    options: dict[str, Any] = {}
    for flowise_name, option in _OPTIONS.items():
        value = inputs.integer(inputs_, flowise_name, node_id)
        if value is not None:
            options[option] = value
    # Flowise sends use_mmap true unless the node says otherwise.
    options["use_mmap"] = inputs.flag(inputs_, "useMMap", True)
    base_url = inputs.text(inputs_, "baseUrl", DEFAULT_BASE_URL) or DEFAULT_BASE_URL
    check_model_host(node_id, LABEL, base_url, services.model_allowed_hosts)
    return OllamaEmbeddings(
        services,
        base_url=base_url,
        model=inputs.text(inputs_, "modelName", DEFAULT_MODEL) or DEFAULT_MODEL,
        options=options,
        deadline=services.model_timeout_seconds,
        node_id=node_id,
    )


SPEC = NodeSpec(
    name="ollamaEmbedding",
    label=LABEL,
    category="Embeddings",
    build=build,
    honoured=("baseUrl", "modelName", "numGpu", "numThread", "useMMap"),
    ignored=("credential",),
)
