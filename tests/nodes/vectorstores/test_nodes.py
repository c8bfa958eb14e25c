"""The four vector store nodes, built from Flowise inputs, as the chains and the upsert route use them."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamwise.api.errors import status_of
from streamwise.engine.ingest import Record
from streamwise.engine.ingest import upsert as upsert_documents
from streamwise.engine.retrieval import Document, Indexable, RetrievalContext, Retriever
from streamwise.errors import BadRequest, NodeConfigError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.vectorstores import (
    chroma_vector_store,
    embedded_vector_store,
    faiss_vector_store,
    memory_vector_store,
)
from streamwise.nodes.vectorstores.base import VectorStoreNode
from streamwise.vectors.errors import StoreTimeout, StoreUnavailable
from streamwise.vectors.scope import Scope
from streamwise.vectors.sqlite import SqliteNamespace
from tests.nodes.vectorstores.fakes import ListLoader, TableEmbeddings
from tests.support.server import free_port

KINDS = ("memory", "embedded", "faiss", "chroma")
SPECS: dict[str, NodeSpec] = {
    "memory": memory_vector_store.SPEC,
    "embedded": embedded_vector_store.SPEC,
    "faiss": faiss_vector_store.SPEC,
    "chroma": chroma_vector_store.SPEC,
}
FILTERS = {"memory": "metadataFilter", "embedded": "metadataFilter", "faiss": "metadataFilter"}
FLOW = RetrievalContext("flow-1")


def at(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees)), 0.0]


# Passages at known angles, and queries: "q8" points at 8°, and so on.
TABLE = {"a": at(0), "a-twin": at(1), "b": at(20), "c": at(45), "d": at(90)}
TABLE |= {"q0": at(0), "q8": at(8), "q50": at(50)}
GROUPS = {"a": "x", "a-twin": "x", "b": "y", "c": "x", "d": "y"}


@pytest.fixture
def embeddings() -> TableEmbeddings:
    return TableEmbeddings(TABLE)


@pytest.fixture
def make(
    request: pytest.FixtureRequest, services: NodeServices, embeddings: TableEmbeddings
) -> Callable[..., VectorStoreNode]:
    """Builds a node of the kind under test, as the engine would, from extra Flowise inputs."""
    collection = f"nodes-{uuid.uuid4().hex[:12]}"

    def build(kind: str, node_id: str = "store_0", **extra: Any) -> VectorStoreNode:
        inputs: dict[str, Any] = {"document": [], "embeddings": embeddings, "topK": "", **extra}
        if kind == "faiss":
            inputs.setdefault("basePath", "docs")
        if kind == "chroma":
            inputs.setdefault("chromaURL", request.getfixturevalue("chroma_url"))
            inputs.setdefault("collectionName", collection)
        node = SPECS[kind].build(node_id, inputs, services)
        assert isinstance(node, VectorStoreNode)
        return node

    return build


async def upsert(node: VectorStoreNode, names: list[str], context: RetrievalContext = FLOW) -> None:
    store = await node.open_store(context)
    vectors = await node.embeddings.embed_documents(names)
    await store.add(names, [Document(name, {"group": GROUPS.get(name, "z")}) for name in names], vectors)


def texts(documents: list[Document]) -> list[str]:
    return [document.page_content for document in documents]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_node_is_a_retriever_and_an_indexable(
    kind: str, make: Callable[..., VectorStoreNode]
) -> None:
    loader = ListLoader([Document("hello")])
    node = make(kind, document=[loader])

    assert isinstance(node, Retriever) and isinstance(node, Indexable)
    assert node.node_id == "store_0" and list(node.loaders) == [loader]
    await upsert(node, ["a", "b", "c", "d"])

    assert texts(await node.retrieve("q50", FLOW)) == ["c", "b", "d", "a"]  # topK "" is Flowise's 4
    assert texts(await make(kind, topK="2").retrieve("q50", FLOW)) == ["c", "b"]
    found = await node.retrieve("q0", FLOW)
    assert found[0] == Document("a", {"group": "x"})


@pytest.mark.parametrize("kind", KINDS)
async def test_mmr_prefers_diverse_passages(kind: str, make: Callable[..., VectorStoreNode]) -> None:
    await upsert(make(kind), ["a", "a-twin", "b", "c", "d"])

    similar = make(kind, topK=3)
    diverse = make(kind, topK=3, searchType="mmr", fetchK="5", **{"lambda": "0.5"})

    assert texts(await similar.retrieve("q8", FLOW)) == ["a-twin", "a", "b"]
    # After the twin (7° away), "a" is nearly a copy of it: 0.5 * (0.9903 - 0.9998) < 0, while "d"
    # scores 0.5 * (0.1392 - 0.0175) = 0.061, then "c" 0.5 * (0.7986 - 0.7193) = 0.040.
    assert texts(await diverse.retrieve("q8", FLOW)) == ["a-twin", "d", "c"]
    few = make(kind, topK=3, searchType="mmr", fetchK=2)
    assert texts(await few.retrieve("q8", FLOW)) == ["a-twin", "a"]  # MMR picks among fetchK only


@pytest.mark.parametrize("kind", KINDS)
async def test_filter_and_threshold(kind: str, make: Callable[..., VectorStoreNode]) -> None:
    await upsert(make(kind), ["a", "b", "c", "d"])
    filter_input = FILTERS.get(kind, "chromaMetadataFilter")

    grouped = make(kind, **{filter_input: '{"group": "y"}'})
    close = make(kind, scoreThreshold="0.9")
    both = make(kind, scoreThreshold=0.5, **{filter_input: {"group": "x"}})

    assert texts(await grouped.retrieve("q0", FLOW)) == ["b", "d"]
    assert texts(await close.retrieve("q0", FLOW)) == ["a", "b"]  # cos 20° = 0.94, cos 45° = 0.71
    assert texts(await both.retrieve("q0", FLOW)) == ["a", "c"]


@pytest.mark.parametrize("kind", ["memory", "embedded"])
async def test_each_chatflow_and_node_has_its_own_namespace(
    kind: str, make: Callable[..., VectorStoreNode]
) -> None:
    node = make(kind)
    await upsert(node, ["a", "b"])

    assert texts(await node.retrieve("q0", RetrievalContext("flow-2"))) == []
    assert texts(await make(kind, node_id="store_1").retrieve("q0", FLOW)) == []
    assert texts(await make(kind).retrieve("q0", FLOW)) == ["a", "b"]  # a rebuilt node finds them


async def test_embedded_entries_survive_a_server_restart(
    make: Callable[..., VectorStoreNode], services: NodeServices, embeddings: TableEmbeddings
) -> None:
    await upsert(make("embedded"), ["a", "b"])
    await services.aclose()

    again = NodeServices(env={}, data_dir=services.data_dir)
    node = embedded_vector_store.build("store_0", {"embeddings": embeddings}, again)
    try:
        assert texts(await node.retrieve("q0", FLOW)) == ["a", "b"]
    finally:
        await again.aclose()
    assert services.data_dir is not None and (services.data_dir / "vectors" / "vectors.sqlite3").exists()


async def test_faiss_nodes_naming_one_folder_share_it(make: Callable[..., VectorStoreNode]) -> None:
    await upsert(make("faiss", basePath="shared"), ["a", "b"])

    other = make("faiss", node_id="store_9", basePath="shared/")
    assert texts(await other.retrieve("q0", RetrievalContext("another-flow"))) == ["a", "b"]


async def test_another_embeddings_model_is_refused_by_name(
    make: Callable[..., VectorStoreNode], services: NodeServices
) -> None:
    await upsert(make("embedded"), ["a"])
    other = embedded_vector_store.build(
        "store_0", {"embeddings": TableEmbeddings(TABLE, name="other:model")}, services
    )
    wider = embedded_vector_store.build(
        "store_0", {"embeddings": TableEmbeddings({"q0": [1.0, 0, 0, 0]}, name="test:table")}, services
    )

    with pytest.raises(BadRequest, match=r"^Node store_0 \(Embedded Vector Store\): this store was filled"):
        await other.retrieve("q0", FLOW)
    with pytest.raises(BadRequest) as refused:
        await wider.retrieve("q0", FLOW)
    assert str(refused.value) == (
        "Node store_0 (Embedded Vector Store): this store holds 3-dimensional vectors; the query has 4"
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_building_touches_nothing(
    kind: str, make: Callable[..., VectorStoreNode], services: NodeServices, embeddings: TableEmbeddings
) -> None:
    node = make(kind, chromaURL="http://127.0.0.1:9") if kind == "chroma" else make(kind)

    assert embeddings.calls == 0 and services.cache == {}
    assert services.data_dir is not None and not services.data_dir.exists()
    assert isinstance(node, VectorStoreNode)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"topK": "0"}, "topK must be at least 1"),
        ({"topK": "2.5"}, "'topK' must be a whole number"),
        ({"fetchK": 0}, "fetchK must be at least 1"),
        ({"lambda": "1.5"}, "lambda must be between 0 and 1"),
        ({"scoreThreshold": "2"}, "scoreThreshold must be between -1 and 1"),
        ({"searchType": "fancy"}, "searchType must be 'similarity' or 'mmr'"),
        ({"metadataFilter": "{bad json"}, "metadataFilter is not valid JSON"),
        ({"metadataFilter": "[1]"}, "metadataFilter must be a JSON object"),
        ({"metadataFilter": {"a": {"$in": [1]}}}, "operators such as $in are not supported"),
        ({"document": ["not a loader"]}, "'document' must be document loader nodes"),
        ({"embeddings": ""}, "input 'embeddings' must be connected"),
        ({"embeddings": "text"}, "must be a Embeddings node"),
    ],
)
def test_unusable_inputs_are_refused_naming_the_node(
    inputs: dict[str, Any], message: str, services: NodeServices, embeddings: TableEmbeddings
) -> None:
    with pytest.raises(NodeConfigError, match=message.replace("$", r"\$")) as refused:
        memory_vector_store.build("store_3", {"embeddings": embeddings, **inputs}, services)
    assert str(refused.value).startswith("Node store_3: ")
    assert refused.value.node_id == "store_3"


@pytest.mark.parametrize(
    "base_path",
    [
        "/etc",
        "../outside",
        "docs/../../outside",
        "~/docs",
        "~",
        "",
        "  ",
        "C:\\Users\\User\\Desktop",
        "a\0b",
        ".",
    ],
)
def test_faiss_base_path_stays_inside_the_faiss_directory(
    base_path: str, services: NodeServices, embeddings: TableEmbeddings
) -> None:
    with pytest.raises(NodeConfigError) as refused:
        faiss_vector_store.build("faiss_0", {"embeddings": embeddings, "basePath": base_path}, services)

    if base_path.strip():
        assert str(refused.value) == (
            "Node faiss_0: basePath must name a folder inside the server's Faiss directory "
            "(faiss/ in the data directory)"
        )
    assert services.data_dir is not None and not services.data_dir.exists()


def test_a_symlink_out_of_the_faiss_directory_is_refused(
    services: NodeServices, embeddings: TableEmbeddings, tmp_path: Path
) -> None:
    assert services.data_dir is not None
    root = services.data_dir / "faiss"
    root.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(NodeConfigError, match="basePath must name a folder inside"):
        faiss_vector_store.build("faiss_0", {"embeddings": embeddings, "basePath": "link"}, services)
    inside = faiss_vector_store.build(
        "faiss_0", {"embeddings": embeddings, "basePath": str(root / "kept")}, services
    )
    assert inside.base_path == str(root / "kept")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"collectionName": "ab"}, "'collectionName' must be 3 to 512"),
        ({"collectionName": "-abc"}, "'collectionName' must be 3 to 512"),
        ({"collectionName": "abc", "chromaURL": "ftp://x"}, "'chromaURL' must be a URL"),
        ({"collectionName": "abc", "chromaURL": "http://x:8000/path"}, "'chromaURL' must be a URL"),
    ],
)
def test_chroma_inputs_are_checked(
    inputs: dict[str, Any], message: str, services: NodeServices, embeddings: TableEmbeddings
) -> None:
    with pytest.raises(NodeConfigError, match=message):
        chroma_vector_store.build("chroma_0", {"embeddings": embeddings, **inputs}, services)


def test_specs_for_the_catalog() -> None:
    assert [spec.name for spec in SPECS.values()] == [
        "memoryVectorStore",
        "embeddedVectorStore",
        "faiss",
        "chroma",
    ]
    assert {spec.category for spec in SPECS.values()} == {"Vector Stores"}
    assert SPECS["embedded"].label == "Embedded Vector Store (SQLite)"
    assert {"chromaURL", "collectionName", "basePath"} <= chroma_vector_store.SPEC.not_overridable
    assert "basePath" in faiss_vector_store.SPEC.not_overridable
    for spec in SPECS.values():
        assert not spec.answers
        assert {"document", "embeddings", "topK", "searchType", "fetchK", "lambda"} <= set(spec.honoured)


async def test_a_chroma_server_that_is_down_is_a_502_naming_the_node(
    services: NodeServices, embeddings: TableEmbeddings
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    node = chroma_vector_store.build(
        "chroma_0", {"embeddings": embeddings, "collectionName": "docs", "chromaURL": url}, services
    )

    with pytest.raises(StoreUnavailable) as failed:
        await node.retrieve("q0", FLOW)

    assert str(failed.value) == "Node chroma_0 (Chroma): could not reach the Chroma server"
    assert status_of(failed.value) == 502


async def test_a_silent_chroma_server_is_a_504_within_the_deadline(
    services: NodeServices, embeddings: TableEmbeddings
) -> None:
    services.model_timeout_seconds = 0.5
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        node = chroma_vector_store.build(
            "chroma_0", {"embeddings": embeddings, "collectionName": "docs", "chromaURL": url}, services
        )
        async with asyncio.timeout(30):
            with pytest.raises(StoreTimeout) as timed_out:
                await node.retrieve("q0", FLOW)

    assert str(timed_out.value) == "Node chroma_0 (Chroma): the Chroma server did not answer within 0.5 s"
    assert status_of(timed_out.value) == 504


async def test_closing_the_services_closes_the_backends(
    make: Callable[..., VectorStoreNode], services: NodeServices
) -> None:
    node = make("embedded")
    await upsert(node, ["a"])
    backend = node.backend(FLOW)
    assert isinstance(backend, SqliteNamespace)

    await services.aclose()

    assert services.cache == {}
    with pytest.raises(RuntimeError, match="closed"):
        await backend.count(Scope("test"))


@dataclass
class _Records:
    """A record keeper that remembers nothing: every chunk is new."""

    async def known(self, namespace: str, keys: Sequence[str]) -> set[str]:
        return set()

    async def listed(self, namespace: str, sources: Sequence[str] | None = None) -> list[Record]:
        return []

    async def commit(self, namespace: str, added: Sequence[Record], removed: Sequence[str]) -> None:
        return None


@pytest.mark.parametrize("kind", ["memory", "embedded", "faiss"])
async def test_the_upsert_engine_fills_a_node_from_its_loaders(
    kind: str, make: Callable[..., VectorStoreNode]
) -> None:
    loader = ListLoader([Document(name, {"source": f"{name}.txt"}) for name in ("a", "b", "c")])
    node = make(kind, document=[loader])

    result = await upsert_documents(node, FLOW, _Records())

    assert len(result.added) == 3
    assert texts(await node.retrieve("q0", FLOW)) == ["a", "b", "c"]
