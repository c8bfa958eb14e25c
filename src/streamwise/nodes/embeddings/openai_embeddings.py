"""openAIEmbeddings: any OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, llama.cpp, LM Studio, ...).

The request goes through the shared `openai` client of chatOpenAI (one per base URL, key and headers)
and its raw `post`, as the chat node does: the SDK builds the request, authenticates and raises its
errors, and the body is parsed here. Large inputs go out in batches of `batchSize` texts, a few at a
time, and the vectors are put back in the order of the texts.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import numpy as np
import openai

from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.embeddings.batches import Vector, embed_in_batches
from streamwise.nodes.model_hosts import check_model_host
from streamwise.nodes.models.chat_openai import (
    BODY_ERRORS,
    KEY_INPUT,
    ClientConfig,
    _describe,
    api_key_of,
    base_options,
    base_url_of,
    sdk_error,
    shared_client,
)
from streamwise.nodes.models.errors import ModelError, ModelFailures
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

LABEL = "OpenAI Embedding"
DEFAULT_MODEL = "text-embedding-ada-002"  # Flowise's default (and LangChain's)
DEFAULT_BATCH_SIZE = 512  # LangChain's default; OpenAI accepts up to 2048 inputs per request
_EMBEDDINGS = "/embeddings"
# Bodies larger than this are parsed in a worker thread: 512 vectors of 1536 floats are ~10 MB of
# JSON, tens of milliseconds of parsing that would stall every stream on the event loop.
_PARSE_INLINE_LIMIT = 32 * 1024


class OpenAIEmbeddings:
    """One configured openAIEmbeddings node. Building it touches nothing; the client is taken at the
    first request."""

    def __init__(
        self,
        services: NodeServices,
        config: ClientConfig,
        *,
        model: str,
        dimensions: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        strip_new_lines: bool = True,
        encoding_format: str | None = None,
        deadline: float = 120.0,
        node_id: str = "openAIEmbeddings",
    ) -> None:
        self.services = services
        self.config = config
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.strip_new_lines = strip_new_lines
        self.encoding_format = encoding_format
        self.deadline = deadline  # seconds for each request, from sending it to its last byte
        self.failures = ModelFailures(
            node_id, LABEL, f"OpenAI-compatible server at {config.base_url}", secrets=(config.api_key,)
        )

    @property
    def key(self) -> str:
        return f"openai:{self.model}" + (f":{self.dimensions}" if self.dimensions else "")

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.strip_new_lines:
            texts = [text.replace("\n", " ") for text in texts]
        return await embed_in_batches(texts, self.batch_size, self._embed_batch)

    async def embed_query(self, text: str) -> list[float]:
        if self.strip_new_lines:
            text = text.replace("\n", " ")
        return (await self._embed_batch([text]))[0]

    async def _embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        body: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        if self.encoding_format:
            body["encoding_format"] = self.encoding_format
        try:
            client = await shared_client(self.services, self.config)
            async with asyncio.timeout(self.deadline):
                response = await client.post(_EMBEDDINGS, cast_to=httpx2.Response, body=body, stream=True)
                try:
                    raw = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            raise self.failures.first_byte_timeout(self.deadline) from None
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        except BODY_ERRORS as exc:
            if isinstance(exc, httpx2.TimeoutException):
                raise self.failures.first_byte_timeout(self.deadline) from None
            raise self.failures.broke_off(_describe(exc)) from None
        if len(raw) > _PARSE_INLINE_LIMIT:
            return await asyncio.to_thread(self._vectors, raw, len(texts))
        return self._vectors(raw, len(texts))

    def _vectors(self, raw: bytes, expected: int) -> list[Vector]:
        """The vectors of an embeddings answer, in the order of the inputs (items carry an index)."""
        try:
            data = json.loads(raw)["data"]
            items = sorted(data, key=lambda item: item["index"])
            vectors = [_vector(item["embedding"]) for item in items]
        except (ValueError, LookupError, TypeError):
            raise self.failures.malformed("a body that is not an embeddings answer") from None
        if len(vectors) != expected or [item["index"] for item in items] != list(range(expected)):
            raise self.failures.malformed(f"{len(vectors)} vectors for {expected} inputs")
        if vectors and any(len(vector) != len(vectors[0]) for vector in vectors):
            raise self.failures.malformed("vectors of different lengths in one answer")
        return vectors

    def _error(self, exc: openai.OpenAIError) -> ModelError:
        return sdk_error(self.failures, self.deadline, exc)


def _vector(value: object) -> Vector:
    """One embedding: a JSON list of numbers, or base64 of little-endian float32 (`encoding_format`)."""
    if isinstance(value, str):
        decoded: Vector = np.frombuffer(base64.b64decode(value), dtype="<f4").tolist()
        return decoded
    if isinstance(value, list):
        return value
    raise TypeError("not an embedding")


def _positive(inputs_: Mapping[str, Any], key: str, node_id: str) -> int | None:
    value = inputs.integer(inputs_, key, node_id)
    if value is not None and value < 1:
        raise NodeConfigError(f"Node {node_id}: input {key!r} must be a positive whole number", node_id)
    return value


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> OpenAIEmbeddings:
    model = inputs.text(inputs_, "modelName", DEFAULT_MODEL) or DEFAULT_MODEL
    base_url = base_url_of(inputs_, services)
    check_model_host(node_id, LABEL, base_url, services.model_allowed_hosts)
    api_key = api_key_of(inputs_, services)
    timeout_ms = inputs.number(inputs_, "timeout", node_id)
    if timeout_ms is not None and timeout_ms <= 0:
        raise NodeConfigError(
            f"Node {node_id}: input 'timeout' must be a positive number of milliseconds", node_id
        )
    timeout = timeout_ms / 1000 if timeout_ms is not None else None
    encoding_format = inputs.text(inputs_, "encodingFormat")
    if encoding_format not in (None, "float", "base64"):
        raise NodeConfigError(f"Node {node_id}: input 'encodingFormat' must be float or base64", node_id)
    headers = tuple(sorted(base_options(inputs_, node_id, LABEL).items()))
    return OpenAIEmbeddings(
        services,
        ClientConfig(base_url.rstrip("/"), api_key, timeout, headers),
        model=model,
        dimensions=_positive(inputs_, "dimensions", node_id),
        batch_size=_positive(inputs_, "batchSize", node_id) or DEFAULT_BATCH_SIZE,
        strip_new_lines=inputs.flag(inputs_, "stripNewLines", True),
        encoding_format=encoding_format,
        # The node's own timeout wins over the server-wide model deadline.
        deadline=timeout if timeout is not None else services.model_timeout_seconds,
        node_id=node_id,
    )


SPEC = NodeSpec(
    name="openAIEmbeddings",
    label=LABEL,
    category="Embeddings",
    build=build,
    honoured=(
        "modelName",
        "basepath",
        "basePath",
        "batchSize",
        "stripNewLines",
        "timeout",
        "dimensions",
        "baseOptions",
        "encodingFormat",
        KEY_INPUT,
    ),
    # The key is the credential's: no request may send another one.
    protected=frozenset({KEY_INPUT}),
    ignored=("credential", "credentialId"),
)
