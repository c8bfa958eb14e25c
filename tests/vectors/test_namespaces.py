"""Where nodes keep their entries: namespaces, confined Faiss folders, Chroma collection names."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwise.engine.retrieval import RetrievalContext
from streamwise.vectors.namespaces import confined_folder, flow_namespace, valid_collection


def test_flow_namespace_is_chatflow_and_node() -> None:
    assert flow_namespace(RetrievalContext("flow-1"), "memoryVectorStore_0") == "flow-1/memoryVectorStore_0"


@pytest.mark.parametrize("name", ["abc", "my-docs_2024.v1", "A" * 512, "a1b"])
def test_valid_collection_names(name: str) -> None:
    assert valid_collection(name)


@pytest.mark.parametrize("name", ["", "ab", "-abc", "abc-", "a b c", "a..b", "A" * 513, "ab/c", "ümlaut"])
def test_invalid_collection_names(name: str) -> None:
    assert not valid_collection(name)


def test_confined_folder_keeps_names_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "faiss"

    assert confined_folder("docs", root) == (root / "docs").resolve()
    assert confined_folder("team/docs", root) == (root / "team" / "docs").resolve()
    assert confined_folder(str(root / "abs"), root) == (root / "abs").resolve()
    assert not root.exists()  # looking creates nothing


@pytest.mark.parametrize(
    "given", ["", ".", "..", "../x", "a/../../x", "/etc", "~", "~/x", "a\0b", "x" * 1025, "C:\\x", "-x"]
)
def test_confined_folder_refuses_the_rest(given: str, tmp_path: Path) -> None:
    assert confined_folder(given, tmp_path / "faiss") is None


def test_confined_folder_follows_links_before_judging(tmp_path: Path) -> None:
    root = tmp_path / "faiss"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "real").mkdir()
    (root / "in").symlink_to(root / "real")

    assert confined_folder("out", root) is None
    assert confined_folder("out/deeper", root) is None
    assert confined_folder("in", root) == (root / "real").resolve()
