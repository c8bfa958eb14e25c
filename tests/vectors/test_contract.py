"""The `VectorStore` contract, run against every backend (memory, embedded SQLite, Faiss, Chroma).

Vectors are small and deterministic: unit vectors in the plane at known angles, so the order of a
search is known exactly.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from streamwise.engine.retrieval import Document, Scored
from streamwise.errors import BadRequest
from streamwise.vectors.scope import Scope
from tests.vectors.conftest import SCOPE, Opened


def at(degrees: float, dimension: int = 3) -> list[float]:
    """The unit vector at `degrees` in the plane of the first two axes."""
    radians = math.radians(degrees)
    return [math.cos(radians), math.sin(radians), *([0.0] * (dimension - 2))]


def doc(name: str, **metadata: object) -> Document:
    return Document(name, {"name": name, **metadata})


ANGLES = {"a": 0.0, "b": 20.0, "c": 45.0, "d": 90.0, "e": 180.0}


async def fill(opened: Opened) -> None:
    store = opened.store()
    groups = {"a": "x", "b": "y", "c": "x", "d": "y", "e": "x"}
    await store.add(
        list(ANGLES),
        [doc(name, group=groups[name], even=i % 2 == 0, rank=i) for i, name in enumerate(ANGLES)],
        [at(angle) for angle in ANGLES.values()],
    )


def names(found: list[Scored]) -> list[str]:
    return [item.document.page_content for item in found]


async def test_add_then_count_and_find(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    assert await store.count() == 5
    found = await store.search(at(0), 5)
    assert names(found) == ["a", "b", "c", "d", "e"]
    assert found[0].document.metadata == {"name": "a", "group": "x", "even": True, "rank": 0}
    assert found[0].score == pytest.approx(1.0, abs=1e-4)
    assert found[0].vector is not None and list(found[0].vector) == pytest.approx(at(0), abs=1e-5)


async def test_search_is_ordered_best_first_and_returns_at_most_k(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    found = await store.search(at(50), 3)

    assert names(found) == ["c", "b", "d"]  # 5°, 30°, 40° away
    assert [item.score for item in found] == pytest.approx(
        [math.cos(math.radians(5)), math.cos(math.radians(30)), math.cos(math.radians(40))], abs=1e-4
    )
    assert names(await store.search(at(50), 1)) == ["c"]
    assert len(await store.search(at(50), 50)) == 5
    assert await store.search(at(50), 0) == []


async def test_an_empty_store_finds_nothing(opened: Opened) -> None:
    store = opened.store()

    assert await store.count() == 0
    assert await store.search(at(0), 4) == []
    await store.delete(["nothing"])


async def test_adding_an_existing_id_replaces_it(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    await store.add(["a"], [doc("a2", group="z")], [at(180)])

    assert await store.count() == 5
    assert names(await store.search(at(0), 1)) == ["b"]
    best = await store.search(at(180), 2)
    assert sorted(names(best)) == ["a2", "e"]
    assert {item.document.page_content: item.document.metadata for item in best}["a2"] == {
        "name": "a2",
        "group": "z",
    }


async def test_repeated_ids_in_one_batch_keep_the_last(opened: Opened) -> None:
    store = opened.store()

    await store.add(["a", "a"], [doc("first"), doc("second")], [at(0), at(90)])

    assert await store.count() == 1
    assert names(await store.search(at(90), 5)) == ["second"]


async def test_delete_removes_the_ids_and_ignores_missing_ones(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    await store.delete(["b", "d", "not-there"])

    assert await store.count() == 3
    assert names(await store.search(at(0), 5)) == ["a", "c", "e"]
    await store.delete([])
    assert await store.count() == 3


async def test_search_with_a_metadata_filter(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    assert names(await store.search(at(0), 5, {"group": "y"})) == ["b", "d"]
    assert names(await store.search(at(0), 1, {"group": "x"})) == ["a"]
    assert names(await store.search(at(0), 5, {"group": "x", "even": True})) == ["a", "c", "e"]
    assert names(await store.search(at(0), 5, {"rank": 3})) == ["d"]
    assert await store.search(at(0), 5, {"group": "none"}) == []
    assert await store.search(at(0), 5, {"missing": "x"}) == []


async def test_vectors_of_another_dimension_are_refused(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    with pytest.raises(BadRequest) as refused:
        await store.add(["f"], [doc("f")], [at(0, dimension=4)])
    assert str(refused.value) == ("Node test_0 (Test): this store holds 3-dimensional vectors; these have 4")
    with pytest.raises(BadRequest, match="holds 3-dimensional vectors; the query has 4"):
        await store.search(at(0, dimension=4), 3)
    assert await store.count() == 5


async def test_another_embeddings_model_is_refused_until_the_store_is_empty(opened: Opened) -> None:
    await fill(opened)
    other = opened.store(Scope("Node test_1 (Test)", "other:model"))

    with pytest.raises(BadRequest, match="filled by the embeddings 'test:embeddings'"):
        await other.search(at(0), 3)
    with pytest.raises(BadRequest, match=r"^Node test_1 \(Test\): "):
        await other.add(["f"], [doc("f")], [at(0)])

    await opened.store().delete(list(ANGLES))
    await other.add(["f"], [doc("f")], [at(0)])
    assert names(await other.search(at(0), 3)) == ["f"]


async def test_a_failing_add_leaves_the_store_as_it_was(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()
    before = names(await store.search(at(10), 5))

    with pytest.raises(BadRequest, match="different dimensions"):
        await store.add(
            ["a", "new1", "new2"], [doc("a2"), doc("new1"), doc("new2")], [at(0), at(0, dimension=4), at(5)]
        )
    with pytest.raises(BadRequest, match="zero vector"):
        await store.add(["a", "new1"], [doc("a2"), doc("new1")], [at(0), [0.0, 0.0, 0.0]])
    with pytest.raises(BadRequest, match="do not pair up"):
        await store.add(["new1", "new2"], [doc("new1")], [at(0), at(1)])

    assert await store.count() == 5
    assert names(await store.search(at(10), 5)) == before


async def test_entries_survive_closing_and_reopening(opened: Opened) -> None:
    if not opened.persistent:
        pytest.skip("the in-memory store keeps nothing across a restart")
    await fill(opened)
    await opened.store().delete(["e"])

    store = await opened.reopen()

    assert await store.count() == 4
    found = await store.search(at(50), 4)
    assert names(found) == ["c", "b", "d", "a"]
    assert found[0].document.metadata == {"name": "c", "group": "x", "even": True, "rank": 2}
    with pytest.raises(BadRequest, match="holds 3-dimensional vectors"):
        await store.add(["f"], [doc("f")], [at(0, dimension=5)])


async def test_searches_run_while_adding(opened: Opened) -> None:
    await fill(opened)
    store = opened.store()

    async def adding() -> None:
        for batch in range(5):
            ids = [f"n{batch}-{i}" for i in range(10)]
            await store.add(
                ids, [doc(entry_id) for entry_id in ids], [at(100 + batch * 10 + i) for i in range(10)]
            )

    async def searching(turn: int) -> list[str]:
        return names(await store.search(at(turn * 3), 3))

    async with asyncio.timeout(60):
        results = await asyncio.gather(adding(), *(searching(turn) for turn in range(20)))

    for found in results[1:]:
        assert isinstance(found, list) and len(found) == 3
    assert await store.count() == 55
    assert names(await store.search(at(0), 2)) == ["a", "b"]


async def test_nested_and_odd_metadata_reads_back(opened: Opened) -> None:
    store = opened.store()
    metadata = {"source": "a.txt", "loc": {"lines": {"from": 1, "to": 3}}, "tags": ["x", "y"], "none": None}

    await store.add(["a"], [Document("text", metadata)], [at(0)])

    (found,) = await store.search(at(0), 1)
    assert found.document == Document("text", metadata)
    assert names(await store.search(at(0), 1, {"source": "a.txt"})) == ["text"]


async def test_scope_is_used_for_every_message(opened: Opened) -> None:
    store = opened.store(Scope("Node named_7 (Named)", None))

    with pytest.raises(BadRequest, match=r"^Node named_7 \(Named\): "):
        await store.add(["a"], [doc("a")], [[math.nan, 1.0, 0.0]])
    assert SCOPE.who != store.scope.who
