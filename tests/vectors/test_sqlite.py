"""The embedded SQLite store beyond the contract: one file for many namespaces, transactions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamwise.engine.retrieval import Document
from streamwise.vectors import checks
from streamwise.vectors.scope import Scope
from streamwise.vectors.sqlite import FILE_NAME, SqliteVectorDatabase

SCOPE = Scope("Node embedded_0 (Embedded Vector Store)", "test:embeddings")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteVectorDatabase]:
    opened = SqliteVectorDatabase(tmp_path / "vectors" / FILE_NAME)
    yield opened
    await opened.close()


async def test_nothing_is_created_until_the_first_call(tmp_path: Path) -> None:
    database = SqliteVectorDatabase(tmp_path / "vectors" / FILE_NAME)
    database.namespace("flow/node")
    await database.close()

    assert not (tmp_path / "vectors").exists()


async def test_namespaces_of_any_dimension_share_one_file(
    database: SqliteVectorDatabase, tmp_path: Path
) -> None:
    small, large, other = database.namespace("f1/n"), database.namespace("f2/n"), database.namespace("f1/m")
    await small.add(SCOPE, ["a"], [Document("small")], [[1.0, 0.0]])
    await large.add(SCOPE, ["a"], [Document("large")], [[0.0, 0.0, 1.0, 0.0]])
    await other.add(SCOPE, ["a", "b"], [Document("o1"), Document("o2")], [[1.0, 0.0], [0.0, 1.0]])

    assert [await ns.count(SCOPE) for ns in (small, large, other)] == [1, 1, 2]
    assert [item.document.page_content for item in await small.search(SCOPE, [1.0, 0.0], 10)] == ["small"]
    assert [item.document.page_content for item in await large.search(SCOPE, [0.0, 0.0, 1.0, 0.0], 10)] == [
        "large"
    ]
    await small.delete(SCOPE, ["a"])
    assert await other.count(SCOPE) == 2
    assert [
        path.name for path in (tmp_path / "vectors").iterdir() if not path.name.endswith(("-wal", "-shm"))
    ] == [FILE_NAME]


async def test_an_add_failing_inside_its_transaction_is_rolled_back(database: SqliteVectorDatabase) -> None:
    namespace = database.namespace("flow/node")
    await namespace.add(SCOPE, ["a", "b"], [Document("a"), Document("b")], [[1.0, 0.0], [0.0, 1.0]])
    batch = checks.batch(SCOPE, ["a", "c"], [Document("a2"), Document("c")], [[0.0, 1.0], [1.0, 1.0]])

    # One metadata text short: the insert of entries fails half-way, after the old "a" was deleted.
    with pytest.raises(ValueError, match="zip"):
        await database.write(lambda conn: namespace._add(conn, SCOPE, batch, [json.dumps({})]))

    assert await namespace.count(SCOPE) == 2
    best = await namespace.search(SCOPE, [1.0, 0.0], 1)
    assert best[0].document.page_content == "a"


async def test_filters_take_any_key(database: SqliteVectorDatabase) -> None:
    namespace = database.namespace("flow/node")
    odd = {"a.b": 1, 'say "hi"': "yes", "$x": True, "ünï": "ok"}
    await namespace.add(
        SCOPE,
        ["a", "b"],
        [Document("a", {**odd, "n": 2.0}), Document("b", {"n": 2})],
        [[1.0, 0.0], [0.0, 1.0]],
    )

    for key, value in odd.items():
        assert [
            item.document.page_content for item in await namespace.search(SCOPE, [1.0, 0.0], 5, {key: value})
        ] == ["a"]
    assert len(await namespace.search(SCOPE, [1.0, 0.0], 5, {"n": 2})) == 2  # 2 equals 2.0
    assert await namespace.search(SCOPE, [1.0, 0.0], 5, {"$x": 1}) == []  # true is not 1


async def test_k_beyond_sqlite_vecs_limit_is_capped(database: SqliteVectorDatabase) -> None:
    namespace = database.namespace("flow/node")
    await namespace.add(SCOPE, ["a", "b"], [Document("a"), Document("b")], [[1.0, 0.0], [0.0, 1.0]])

    assert len(await namespace.search(SCOPE, [1.0, 0.0], 100_000)) == 2


async def test_a_closed_database_refuses_calls(database: SqliteVectorDatabase) -> None:
    namespace = database.namespace("flow/node")
    await namespace.count(SCOPE)
    await database.close()

    with pytest.raises(RuntimeError, match="closed"):
        await namespace.count(SCOPE)
