"""Every backend, opened the same way for the contract suite: a store, and a way to reopen it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamwise.vectors.chroma import ChromaBackend, ChromaConnection, parse_url
from streamwise.vectors.errors import StoreUnavailable
from streamwise.vectors.faiss_folder import FaissFolderBackend
from streamwise.vectors.memory import MemoryBackend
from streamwise.vectors.scope import Backend, Scope, ScopedStore
from streamwise.vectors.sqlite import FILE_NAME, SqliteVectorDatabase
from tests.vectors.chroma_server import chroma_server

BACKENDS = ("memory", "embedded", "faiss", "chroma")
SCOPE = Scope("Node test_0 (Test)", "test:embeddings")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma")) as url:
        yield url


@dataclass
class Opened:
    """One backend under test. `reopen` closes it and opens the same data again."""

    kind: str
    make: Callable[[], tuple[Backend, Callable[[], object]]]
    backend: Backend = field(init=False)
    closers: list[Callable[[], object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backend = self._open()

    def _open(self) -> Backend:
        backend, closer = self.make()
        self.closers.append(closer)
        return backend

    @property
    def persistent(self) -> bool:
        return self.kind != "memory"

    def store(self, scope: Scope = SCOPE) -> ScopedStore:
        return ScopedStore(self.backend, scope)

    async def reopen(self) -> ScopedStore:
        await self.close()
        self.backend = self._open()
        return self.store()

    async def close(self) -> None:
        closers, self.closers = self.closers, []
        for closer in closers:
            result = closer()
            if hasattr(result, "__await__"):
                await result


def _maker(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], tuple[Backend, Callable[[], object]]]:
    if kind == "memory":
        memory = MemoryBackend()
        return lambda: (memory, memory.close)
    if kind == "embedded":

        def embedded() -> tuple[Backend, Callable[[], object]]:
            database = SqliteVectorDatabase(tmp_path / "vectors" / FILE_NAME)
            return database.namespace("flow/node"), database.close

        return embedded
    if kind == "faiss":

        def folder() -> tuple[Backend, Callable[[], object]]:
            backend = FaissFolderBackend(tmp_path / "faiss" / "docs")
            return backend, backend.close

        return folder
    address = parse_url(request.getfixturevalue("chroma_url"))
    assert address is not None
    name = f"contract-{uuid.uuid4().hex[:12]}"

    def chroma() -> tuple[Backend, Callable[[], object]]:
        connection = ChromaConnection(address, timeout=20)
        backend = ChromaBackend(connection, name)

        async def close() -> None:
            await backend.close()
            await connection.aclose()

        return backend, close

    return chroma


@pytest.fixture(params=BACKENDS)
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    kind = str(request.param)
    backend = Opened(kind, _maker(kind, tmp_path, request))
    yield backend
    if kind == "chroma":
        assert isinstance(backend.backend, ChromaBackend)
        chroma = backend.backend
        with contextlib.suppress(StoreUnavailable):  # never created: nothing to delete
            await chroma.connection.call(SCOPE, lambda client: client.delete_collection(chroma.name))
    await backend.close()
