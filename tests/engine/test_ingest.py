"""The upsert pipeline on its own: keys, duplicates within one upsert, undo on failure or cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from streamwise.engine.ingest import SPILL_BYTES, AddedDocs, Record, chunk_key, upsert
from streamwise.engine.retrieval import Document, RetrievalContext
from streamwise.nodes.services import NodeServices
from tests.support.fake_retrieval import FakeEmbeddings, FakeLoader, FakeVectorStore, store_for
from tests.support.waiting import until

CONTEXT = RetrievalContext("flow")


class Records:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Record]] = {}

    async def known(self, namespace: str, keys: Sequence[str]) -> set[str]:
        return set(keys) & set(self.rows.get(namespace, {}))

    async def listed(self, namespace: str, sources: Sequence[str] | None = None) -> list[Record]:
        rows = self.rows.get(namespace, {}).values()
        return [r for r in rows if sources is None or r.source in sources]

    async def commit(self, namespace: str, added: Sequence[Record], removed: Sequence[str]) -> None:
        rows = self.rows.setdefault(namespace, {})
        for key in removed:
            rows.pop(key, None)
        rows.update({record.key: record for record in added})


def target(texts: list[str], embeddings: FakeEmbeddings | None = None) -> FakeVectorStore:
    return FakeVectorStore("store_0", NodeServices(), [FakeLoader(texts, [])], embeddings or FakeEmbeddings())


def test_a_chunk_key_depends_on_text_and_metadata_only() -> None:
    a = chunk_key(Document("same", {"source": "x", "page": 1}))
    assert a == chunk_key(Document("same", {"page": 1, "source": "x"}))
    assert a != chunk_key(Document("same", {"source": "y", "page": 1}))
    assert a != chunk_key(Document("other", {"source": "x", "page": 1}))


async def test_duplicates_within_one_upsert_are_added_once() -> None:
    node = target(["a"])
    documents = [Document("twice", {"source": "s"}), Document("twice", {"source": "s"})]
    result = await upsert(node, CONTEXT, Records(), documents=documents)
    assert (len(result.added), result.skipped) == (1, 1)


async def test_a_cancelled_upsert_takes_back_what_it_added() -> None:
    embeddings = FakeEmbeddings(delay=0.05)
    node = target([f"text {i}" for i in range(500)], embeddings)
    records = Records()
    task = asyncio.ensure_future(upsert(node, CONTEXT, records))
    await until(lambda: embeddings.calls >= 3, within=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store_for(node.services, "flow", "store_0").entries == {} and records.rows == {}


async def test_an_unknown_cleanup_mode_is_refused() -> None:
    from streamwise.errors import BadRequest

    with pytest.raises(BadRequest, match="cleanup"):
        await upsert(target([]), CONTEXT, Records(), cleanup="sometimes")  # type: ignore[arg-type]


def test_added_docs_spill_past_a_megabyte_and_read_back_whole() -> None:
    first, second, empty = AddedDocs(), AddedDocs(), AddedDocs()
    count = 3 * SPILL_BYTES // 1000
    big = [Document("x" * 1000 + str(i), {"source": f"s{i}", "line": i}) for i in range(count)]
    first.extend(big[:10])
    second.extend(big[10:])
    first.absorb(empty)
    first.absorb(second)
    assert len(first) == len(big)
    assert first.documents() == [document.to_json() for document in big]
    assert all(len(piece) <= SPILL_BYTES for piece in first.chunks())
    first.close()
