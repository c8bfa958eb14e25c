"""The Chroma backend beyond the contract: a server that is down or silent, collections made elsewhere."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import chromadb
import numpy as np
import pytest
from chromadb.api import ClientAPI

from streamwise.engine.retrieval import Document
from streamwise.vectors.chroma import METADATA_KEY, ChromaAddress, ChromaBackend, ChromaConnection, parse_url
from streamwise.vectors.errors import StoreTimeout, StoreUnavailable
from streamwise.vectors.scope import Scope
from tests.support.server import free_port

SCOPE = Scope("Node chroma_0 (Chroma)", "test:embeddings")


@pytest.fixture
def address(chroma_url: str) -> ChromaAddress:
    found = parse_url(chroma_url)
    assert found is not None
    return found


@pytest.fixture
def raw(address: ChromaAddress) -> Iterator[ClientAPI]:
    """chromadb's own client, for what another program would do to the server."""
    client = chromadb.HttpClient(host=address.host, port=address.port)
    yield client
    client.close()  # type: ignore[attr-defined]  # on the client, not on its protocol


@pytest.fixture
async def backend(address: ChromaAddress, raw: ClientAPI) -> AsyncIterator[ChromaBackend]:
    connection = ChromaConnection(address, timeout=20)
    store = ChromaBackend(connection, f"chroma-{uuid.uuid4().hex[:12]}")
    yield store
    if store.name in [collection.name for collection in raw.list_collections()]:
        raw.delete_collection(store.name)
    await store.close()
    await connection.aclose()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:8000", ChromaAddress("http://localhost:8000", "localhost", 8000, False)),
        ("https://chroma.example/", ChromaAddress("https://chroma.example", "chroma.example", 443, True)),
        ("http://10.0.0.5", ChromaAddress("http://10.0.0.5", "10.0.0.5", 80, False)),
        ("ftp://x", None),
        ("localhost:8000", None),
        ("http://x:8000/api", None),
        ("http://user:pw@x:8000", None),
        ("http://x:99999", None),
        ("", None),
    ],
)
def test_parse_url(url: str, expected: ChromaAddress | None) -> None:
    assert parse_url(url) == expected


async def test_a_server_that_is_down_fails_at_once_naming_the_node() -> None:
    port = free_port()
    store = ChromaBackend(
        ChromaConnection(ChromaAddress(f"http://127.0.0.1:{port}", "127.0.0.1", port, False), timeout=20),
        "docs",
    )
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as failed:
        await store.search(SCOPE, [1.0, 0.0], 4)
    with pytest.raises(StoreUnavailable):
        await store.add(SCOPE, ["a"], [Document("a")], [[1.0, 0.0]])

    assert time.monotonic() - started < 15  # refused connections, not the 20 s deadline
    assert str(failed.value) == "Node chroma_0 (Chroma): could not reach the Chroma server"
    assert failed.value.detail is not None and f"127.0.0.1:{port}" in failed.value.detail
    assert str(port) not in str(failed.value)


async def test_a_silent_server_times_out_within_the_deadline(silent_port: int) -> None:
    address = ChromaAddress(f"http://127.0.0.1:{silent_port}", "127.0.0.1", silent_port, False)
    store = ChromaBackend(ChromaConnection(address, timeout=0.5), "docs")

    async with asyncio.timeout(30):
        with pytest.raises(StoreTimeout) as timed_out:
            await store.count(SCOPE)

    assert str(timed_out.value) == "Node chroma_0 (Chroma): the Chroma server did not answer within 0.5 s"
    assert isinstance(timed_out.value, StoreTimeout)


async def test_metadata_is_stored_flat_for_filters_and_whole_as_json(
    backend: ChromaBackend, raw: ClientAPI
) -> None:
    metadata = {"source": "a.pdf", "page": 3, "loc": {"lines": {"from": 1, "to": 9}}}

    await backend.add(SCOPE, ["a"], [Document("text", metadata)], [[1.0, 0.0]])

    stored = (raw.get_collection(backend.name).get(ids=["a"])["metadatas"] or [{}])[0]
    assert stored["source"] == "a.pdf" and stored["page"] == 3 and "loc" not in stored
    assert isinstance(stored[METADATA_KEY], str)
    (found,) = await backend.search(SCOPE, [1.0, 0.0], 1, {"page": 3})
    assert found.document == Document("text", metadata)


async def test_a_collection_made_elsewhere_with_l2_distance_is_scored_as_cosine(
    backend: ChromaBackend, raw: ClientAPI
) -> None:
    # As Flowise's Chroma node makes them: Chroma's default space (squared L2), plain metadata.
    collection = raw.create_collection(backend.name, embedding_function=None)
    collection.add(
        ids=["x", "y"],
        embeddings=np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32),
        documents=["x", "y"],
        metadatas=[{"n": 1}, {"n": 2}],
    )

    found = await backend.search(SCOPE, [1.0, 0.0], 2)

    assert [item.document for item in found] == [Document("x", {"n": 1}), Document("y", {"n": 2})]
    assert [item.score for item in found] == pytest.approx([1.0, 0.6], abs=1e-4)


async def test_a_collection_deleted_meanwhile_is_looked_up_again(
    backend: ChromaBackend, raw: ClientAPI
) -> None:
    await backend.add(SCOPE, ["a"], [Document("a")], [[1.0, 0.0]])
    raw.delete_collection(backend.name)

    assert await backend.search(SCOPE, [1.0, 0.0], 4) == []
    await backend.add(SCOPE, ["b"], [Document("b")], [[0.0, 1.0, 0.0]])
    assert await backend.count(SCOPE) == 1
