"""The Faiss folder beyond the contract: its files, damaged folders, interrupted saves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamwise.engine.retrieval import Document
from streamwise.errors import BadRequest
from streamwise.vectors import faiss_folder
from streamwise.vectors.faiss_folder import DOCSTORE_FILE, INDEX_FILE, FaissFolderBackend
from streamwise.vectors.scope import Scope

SCOPE = Scope("Node faiss_0 (Faiss)", "test:embeddings")
VECTORS = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.6, 0.8], "d": [-1.0, 0.0]}
REFUSAL = (
    "Node faiss_0 (Faiss): the folder in basePath holds no readable Faiss index "
    "(damaged, or not written by Streamwise)"
)


async def add(store: FaissFolderBackend, *names: str) -> None:
    await store.add(SCOPE, list(names), [Document(name) for name in names], [VECTORS[name] for name in names])


async def found(store: FaissFolderBackend) -> list[str]:
    return sorted(item.document.page_content for item in await store.search(SCOPE, [1.0, 0.0], 10))


async def test_nothing_is_written_until_the_first_add(tmp_path: Path) -> None:
    folder = tmp_path / "faiss" / "docs"
    store = FaissFolderBackend(folder)

    assert await store.search(SCOPE, [1.0, 0.0], 4) == []
    assert await store.count(SCOPE) == 0
    await store.delete(SCOPE, ["a"])
    assert not folder.exists()

    await add(store, "a", "b")
    assert sorted(path.name for path in folder.iterdir()) == [DOCSTORE_FILE, INDEX_FILE]  # no temporaries


@pytest.mark.parametrize(
    "damage",
    [
        {INDEX_FILE: b"not an index"},
        {DOCSTORE_FILE: b"{not json"},
        {DOCSTORE_FILE: b'[[["id", {"pageContent": "x", "metadata": {}}]], {"0": "id"}]'},  # LangChain's
        {INDEX_FILE: None},
        {DOCSTORE_FILE: None},
    ],
)
async def test_a_damaged_folder_is_refused_in_one_sentence(
    tmp_path: Path, damage: dict[str, bytes | None]
) -> None:
    folder = tmp_path / "docs"
    await add(FaissFolderBackend(folder), "a", "b")
    for name, content in damage.items():
        if content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_bytes(content)

    store = FaissFolderBackend(folder)
    with pytest.raises(BadRequest) as refused:
        await store.search(SCOPE, [1.0, 0.0], 4)
    with pytest.raises(BadRequest):
        await add(store, "c")

    assert str(refused.value) == REFUSAL
    assert refused.value.detail is not None and str(folder) in refused.value.detail


async def test_an_add_interrupted_between_the_two_files_is_undone(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    store = FaissFolderBackend(folder)
    await add(store, "a", "b")
    before = (folder / DOCSTORE_FILE).read_bytes()
    await add(store, "c")
    (folder / DOCSTORE_FILE).write_bytes(before)  # the index was renamed, the docstore was not

    reopened = FaissFolderBackend(folder)
    assert await found(reopened) == ["a", "b"]
    await add(reopened, "d")
    assert await found(FaissFolderBackend(folder)) == ["a", "b", "d"]


async def test_a_delete_interrupted_between_the_two_files_is_completed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    store = FaissFolderBackend(folder)
    await add(store, "a", "b", "c")
    before = (folder / DOCSTORE_FILE).read_bytes()
    await store.delete(SCOPE, ["b"])
    (folder / DOCSTORE_FILE).write_bytes(before)

    reopened = FaissFolderBackend(folder)
    assert await found(reopened) == ["a", "c"]
    assert await reopened.count(SCOPE) == 2


async def test_a_failed_save_leaves_the_folder_and_the_store_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    store = FaissFolderBackend(folder)
    await add(store, "a", "b")
    replace = faiss_folder._replace

    def failing(path: Path, data: bytes | memoryview) -> None:
        if path.name == DOCSTORE_FILE:
            raise OSError("disk full")
        replace(path, data)

    monkeypatch.setattr(faiss_folder, "_replace", failing)
    with pytest.raises(OSError, match="disk full"):
        await add(store, "c")
    monkeypatch.undo()

    assert await found(store) == ["a", "b"]
    assert await found(FaissFolderBackend(folder)) == ["a", "b"]
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


async def test_a_replaced_entry_keeps_one_label(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    store = FaissFolderBackend(folder)
    await add(store, "a", "b")
    await store.add(SCOPE, ["a"], [Document("a2", {"v": 2})], [[-1.0, 0.0]])

    reopened = FaissFolderBackend(folder)
    best = await reopened.search(SCOPE, [-1.0, 0.0], 1)
    assert best[0].document == Document("a2", {"v": 2})
    assert await reopened.count(SCOPE) == 2


async def test_a_copied_folder_works_where_it_lands(tmp_path: Path) -> None:
    await add(FaissFolderBackend(tmp_path / "docs"), "a", "c")
    shutil.copytree(tmp_path / "docs", tmp_path / "copy")

    assert await found(FaissFolderBackend(tmp_path / "copy")) == ["a", "c"]
