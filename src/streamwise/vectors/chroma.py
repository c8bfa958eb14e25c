"""A Chroma server over HTTP (Flowise's Chroma node), through the `chromadb` async client.

Embeddings always travel with the documents, never `query_texts`: server-side embedding would make
Chroma fetch a model. Collections Streamwise creates use cosine distance; ones made elsewhere (a
Flowise-made collection is L2) are scored by their own space, so scores are cosine similarities
either way (vectors go in unit length).

Chroma metadata holds only top-level scalars, and loaders' metadata nests (`loc.lines.from`): an
entry's top-level scalars are stored as they are, for filters, and the whole metadata as JSON under
`streamwise:metadata`, which is what reads back.

The client's HTTP calls have no deadline of their own, so every call here runs under one: a server
that is down or silent is a `StoreUnavailable` or `StoreTimeout` naming the node, never a hang.
Importing `chromadb` takes most of a second, so it happens in a worker thread at first use.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from streamwise.engine.retrieval import Document, Scored
from streamwise.errors import StreamwiseError
from streamwise.nodes.models.errors import tidy
from streamwise.vectors import checks
from streamwise.vectors.checks import Held
from streamwise.vectors.errors import StoreFailures, StoreUnavailable
from streamwise.vectors.scope import Scope

if TYPE_CHECKING:
    from chromadb.api import AsyncClientAPI
    from chromadb.api.models.AsyncCollection import AsyncCollection

logger = logging.getLogger("streamwise.vectors")

T = TypeVar("T")
DEFAULT_URL = "http://localhost:8000"  # Flowise's (LangChain's) default
METADATA_KEY = "streamwise:metadata"
EMBEDDINGS_KEY = "streamwise:embeddings"
# Modules the client imports the first time one is made: imported ahead, off the event loop.
_MODULES = ("chromadb", "chromadb.api.async_fastapi", "chromadb.telemetry.product.posthog")
# Similarity from Chroma's distance, for unit vectors, by the collection's space. "l2" is squared.
_SIMILARITY: dict[str, Callable[[float], float]] = {
    "cosine": lambda distance: 1.0 - distance,
    "ip": lambda distance: 1.0 - distance,
    "l2": lambda distance: 1.0 - distance / 2.0,
}


@dataclass(frozen=True, slots=True)
class ChromaAddress:
    url: str
    host: str
    port: int
    ssl: bool


def parse_url(url: str) -> ChromaAddress | None:
    """`http(s)://host[:port]`, as Flowise's chromaURL gives it; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    ssl = parts.scheme == "https"
    return ChromaAddress(url.strip().rstrip("/"), parts.hostname, port or (443 if ssl else 80), ssl)


def _import_client() -> None:
    for name in _MODULES:
        importlib.import_module(name)


class _Gone(StoreUnavailable):
    """The collection (or the database) went away under a call: deleted by someone else."""


class ChromaConnection:
    """One Chroma server: its client, made at the first call and shared by its collections."""

    def __init__(self, address: ChromaAddress, *, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._client: AsyncClientAPI | None = None
        self._making: asyncio.Future[AsyncClientAPI] | None = None

    def failures(self, scope: Scope) -> StoreFailures:
        return StoreFailures(scope.who, "Chroma server", f"Chroma server at {self.address.url}")

    async def call(self, scope: Scope, work: Callable[[AsyncClientAPI], Awaitable[T]]) -> T:
        """`work(client)` within the deadline, its failures worded for the chat."""
        failures = self.failures(scope)
        try:
            async with asyncio.timeout(self.timeout):
                client = await self._shared_client()
                return await work(client)
        except TimeoutError:
            raise failures.timeout(self.timeout) from None
        except StreamwiseError:
            raise
        except (httpx.TransportError, OSError) as exc:
            raise failures.unreachable(tidy(str(exc)) or type(exc).__name__) from None
        except Exception as exc:  # the client raises ChromaError subclasses, and bare Exceptions
            failure = failures.failed(f"{type(exc).__name__}: {tidy(str(exc))}")
            if type(exc).__name__ == "NotFoundError":  # chromadb.errors, not imported until used
                raise _Gone(failure.message, detail=failure.detail) from None
            raise failure from None

    async def _shared_client(self) -> AsyncClientAPI:
        if self._client is not None:
            return self._client
        making = self._making
        if making is None or (making.done() and (making.cancelled() or making.exception() is not None)):
            making = self._making = asyncio.ensure_future(self._new_client())
            # Its failure is seen by the callers still waiting, or by the next call: never "unretrieved".
            making.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: one caller's deadline or cancellation must not cancel the others' client.
        client = await asyncio.shield(making)
        self._client = client
        return client

    async def _new_client(self) -> AsyncClientAPI:
        # A deadline of its own: the shared making must end even if every caller gave up waiting.
        async with asyncio.timeout(self.timeout):
            await asyncio.to_thread(_import_client)
            import chromadb
            from chromadb.config import Settings

            return await chromadb.AsyncHttpClient(
                host=self.address.host,
                port=self.address.port,
                ssl=self.address.ssl,
                settings=Settings(anonymized_telemetry=False),
            )

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections to Chroma.

        The async client has no public close: its HTTP clients are kept per event loop by the
        client class (`AsyncFastAPI._clients`); this loop's is taken out and closed.
        """
        making, self._making = self._making, None
        if making is not None and not making.done():
            making.cancel()
        if self._client is None:
            return
        self._client = None
        try:
            from chromadb.api.async_fastapi import AsyncFastAPI

            clients: dict[int, httpx.AsyncClient] = getattr(AsyncFastAPI, "_clients", {})
            http = clients.pop(hash(asyncio.get_running_loop()), None)
            if http is not None:
                await http.aclose()
        except Exception as exc:  # closing must not hide what the caller is doing
            logger.warning("closing the Chroma client failed: %r", exc)


class ChromaBackend:
    """One Chroma collection: a `Backend`."""

    def __init__(self, connection: ChromaConnection, collection: str) -> None:
        self.connection = connection
        self.name = collection
        self._collection: AsyncCollection | None = None
        # Known once the collection holds vectors; forgotten after a delete or any failure.
        self._held: Held | None = None

    async def _call(self, scope: Scope, work: Callable[[AsyncClientAPI], Awaitable[T]]) -> T:
        cached = self._collection is not None
        try:
            return await self.connection.call(scope, work)
        except _Gone:
            self._collection, self._held = None, None
            if not cached:
                raise
        except BaseException:
            # The collection may have been deleted or refilled meanwhile: look again next time.
            self._collection, self._held = None, None
            raise
        # The collection known from an earlier call was deleted meanwhile: once more, afresh.
        return await self._call(scope, work)

    async def _held_by(self, collection: AsyncCollection) -> Held | None:
        if self._held is None:
            self._held = await _held(collection)
        return self._held

    async def add(
        self,
        scope: Scope,
        ids: Sequence[str],
        documents: Sequence[Document],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        batch = checks.batch(scope, ids, documents, vectors)
        if not batch.ids:
            return
        metadatas = [_to_chroma(document.metadata) for document in batch.documents]

        async def work(client: AsyncClientAPI) -> None:
            collection = await self._open(client, create=True, scope=scope)
            assert collection is not None
            held = await self._held_by(collection)
            checks.fits(scope, held, batch.dimension)
            if held is None and scope.embedding_key and _key_of(collection) != scope.embedding_key:
                await collection.modify(
                    metadata={**(collection.metadata or {}), EMBEDDINGS_KEY: scope.embedding_key}
                )
            # One request: Chroma applies it whole or not at all.
            await collection.upsert(
                ids=batch.ids,
                embeddings=batch.vectors,
                documents=[document.page_content for document in batch.documents],
                metadatas=cast(Any, metadatas),
            )

        await self._call(scope, work)

    async def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        if not ids:
            return

        async def work(client: AsyncClientAPI) -> None:
            collection = await self._open(client, create=False, scope=scope)
            if collection is not None:
                await collection.delete(ids=[str(entry_id) for entry_id in ids])
            self._held = None  # it may be empty now, and free to take another model's vectors

        await self._call(scope, work)

    async def search(
        self, scope: Scope, vector: Sequence[float], k: int, where: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        query = checks.unit_query(scope, vector)
        if k <= 0:
            return []

        async def work(client: AsyncClientAPI) -> list[Scored]:
            collection = await self._open(client, create=False, scope=scope)
            if collection is None:
                return []
            held = await self._held_by(collection)
            if held is None:
                return []
            checks.fits(scope, held, int(query.shape[0]), query=True)
            found = await collection.query(
                query_embeddings=[query.tolist()],
                n_results=k,
                where=cast(Any, _where(where)),
                include=cast(Any, ["documents", "metadatas", "distances", "embeddings"]),
            )
            return _scored(found, _space(collection))

        return await self._call(scope, work)

    async def count(self, scope: Scope) -> int:
        async def work(client: AsyncClientAPI) -> int:
            collection = await self._open(client, create=False, scope=scope)
            return 0 if collection is None else await collection.count()

        return await self._call(scope, work)

    async def close(self) -> None:
        self._collection = None

    async def _open(self, client: AsyncClientAPI, *, create: bool, scope: Scope) -> AsyncCollection | None:
        from chromadb.errors import NotFoundError

        if self._collection is not None:
            return self._collection
        if create:
            metadata = {EMBEDDINGS_KEY: scope.embedding_key} if scope.embedding_key else None
            self._collection = await client.get_or_create_collection(
                self.name,
                configuration=cast(Any, {"hnsw": {"space": "cosine"}}),
                metadata=metadata,
                embedding_function=None,
            )
        else:
            try:
                self._collection = await client.get_collection(self.name, embedding_function=None)
            except NotFoundError:
                return None  # nothing upserted yet: an empty store
        return self._collection


async def _held(collection: AsyncCollection) -> Held | None:
    """The collection's dimension (from one stored vector) and embeddings key, if it holds any."""
    peek = await collection.get(limit=1, include=cast(Any, ["embeddings"]))
    embeddings = peek.get("embeddings")
    if embeddings is None or len(embeddings) == 0:
        return None
    return Held(len(embeddings[0]), _key_of(collection))


def _key_of(collection: AsyncCollection) -> str | None:
    value = (collection.metadata or {}).get(EMBEDDINGS_KEY)
    return value if isinstance(value, str) else None


def _space(collection: AsyncCollection) -> str:
    # The raw JSON: the parsed `configuration` warns about collections made without an embedding function.
    configuration = collection.configuration_json or {}
    hnsw = configuration.get("hnsw") or {}
    space = hnsw.get("space") if isinstance(hnsw, Mapping) else None
    if not space:
        space = (collection.metadata or {}).get("hnsw:space")
    return space if isinstance(space, str) and space in _SIMILARITY else "l2"


def _to_chroma(metadata: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    flat: dict[str, str | int | float | bool] = {
        str(key): value
        for key, value in metadata.items()
        if isinstance(value, str | int | float | bool) and key != METADATA_KEY
    }
    flat[METADATA_KEY] = json.dumps(dict(metadata), default=str, ensure_ascii=False)
    return flat


def _from_chroma(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if not metadata:
        return {}
    whole = metadata.get(METADATA_KEY)
    if isinstance(whole, str):
        try:
            decoded = json.loads(whole)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return decoded
    return {key: value for key, value in metadata.items() if key != METADATA_KEY}


def _where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chroma's form of an equality filter: one key as it is, several under `$and`."""
    if not where:
        return None
    if len(where) == 1:
        return dict(where)
    return {"$and": [{key: value} for key, value in where.items()]}


def _scored(found: Mapping[str, Any], space: str) -> list[Scored]:
    similarity = _SIMILARITY[space]
    ids = (found.get("ids") or [[]])[0]
    texts = (found.get("documents") or [[]])[0]
    metadatas = (found.get("metadatas") or [[]])[0]
    distances = (found.get("distances") or [[]])[0]
    embeddings = found.get("embeddings")
    vectors = embeddings[0] if embeddings is not None and len(embeddings) else [None] * len(ids)
    return [
        Scored(
            Document(text or "", _from_chroma(metadata)),
            similarity(float(distance)),
            None if vector is None else [float(x) for x in vector],
        )
        for text, metadata, distance, vector in zip(texts, metadatas, distances, vectors, strict=True)
    ]
