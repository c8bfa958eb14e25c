"""folderFiles: the files of a folder inside the server's documents directory, and nothing else."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import folder_files
from streamwise.nodes.services import NodeServices
from tests.nodes.loaders.helpers import FIXTURES, assert_clean_message, load

REFUSAL = (
    "Node folderFiles_0: folderPath must name a folder inside the server's documents directory "
    "(the 'documents' folder of its data directory)"
)


@pytest.fixture
def documents(services: NodeServices) -> Path:
    """<data dir>/documents/manuals with a few fixtures, a sub-folder, and files to skip."""
    assert services.data_dir is not None
    manuals = services.data_dir / "documents" / "manuals"
    (manuals / "more").mkdir(parents=True)
    for name in ("sample.txt", "sample.pdf", "sample.csv"):
        shutil.copy(FIXTURES / name, manuals / name)
    shutil.copy(FIXTURES / "sample.md", manuals / "more" / "guide.md")
    (manuals / "program.exe").write_bytes(b"MZ\x00\x00")
    (manuals / "empty.txt").write_bytes(b"")
    return manuals


def sources(services: NodeServices, **node_inputs: object) -> list[str]:
    loader = folder_files.build("folderFiles_0", {"folderPath": "manuals", **node_inputs}, services)
    return [str(document.metadata["source"]) for document in load(loader)]


def test_supported_files_load_in_name_order_with_their_paths_as_source(
    services: NodeServices, documents: Path
) -> None:
    assert sources(services) == [
        "manuals/sample.csv",
        "manuals/sample.csv",
        "manuals/sample.csv",
        "manuals/sample.csv",
        "manuals/sample.pdf",
        "manuals/sample.pdf",
        "manuals/sample.pdf",
        "manuals/sample.txt",
    ]


def test_recursive_goes_into_sub_folders_where_they_come(services: NodeServices, documents: Path) -> None:
    found = sources(services, recursive=True, pdfUsage="perFile")

    assert found == [
        "manuals/more/guide.md",
        *["manuals/sample.csv"] * 4,
        "manuals/sample.pdf",
        "manuals/sample.txt",
    ]


def test_a_full_path_inside_the_documents_directory_is_accepted(
    services: NodeServices, documents: Path
) -> None:
    loader = folder_files.build("folderFiles_0", {"folderPath": str(documents / "more")}, services)

    assert [document.metadata["source"] for document in load(loader)] == ["manuals/more/guide.md"]


def test_metadata_and_splitters_apply_as_for_other_loaders(services: NodeServices, documents: Path) -> None:
    loader = folder_files.build(
        "folderFiles_0", {"folderPath": "manuals/more", "metadata": '{"team": "docs"}'}, services
    )

    (document,) = load(loader)

    assert document.metadata == {"source": "manuals/more/guide.md", "team": "docs"}


def test_a_symlinked_file_leading_outside_is_skipped(
    services: NodeServices, documents: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not index me")
    os.symlink(secret, documents / "more" / "link.txt")

    assert sources(services, folderPath="manuals/more") == ["manuals/more/guide.md"]


@pytest.mark.parametrize(
    "given",
    [
        "",
        "/etc",
        "/",
        "~",
        "~/",
        "..",
        "../..",
        "manuals/../..",
        "nope",
        "manuals/sample.txt",
        "a\0b",
        "x" * 2000,
    ],
)
def test_anything_but_a_folder_inside_the_documents_directory_gets_one_refusal(
    services: NodeServices, documents: Path, given: str
) -> None:
    with pytest.raises(NodeConfigError) as caught:
        folder_files.build("folderFiles_0", {"folderPath": given}, services)

    assert str(caught.value) == REFUSAL
    assert_clean_message(str(caught.value))


def test_a_symlinked_folder_leading_outside_is_refused(
    services: NodeServices, documents: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, documents / "escape")
    os.symlink("/etc", documents / "etc")

    for given in ("manuals/escape", "manuals/etc", str(documents / "etc")):
        with pytest.raises(NodeConfigError) as caught:
            folder_files.build("folderFiles_0", {"folderPath": given}, services)
        assert str(caught.value) == REFUSAL


def test_a_folder_that_leaves_after_the_build_is_refused_at_load(
    services: NodeServices, documents: Path
) -> None:
    loader = folder_files.build("folderFiles_0", {"folderPath": "manuals/more"}, services)
    shutil.rmtree(documents / "more")

    with pytest.raises(NodeConfigError) as caught:
        load(loader)
    assert str(caught.value) == REFUSAL


def test_without_a_data_directory_nothing_is_read(documents: Path) -> None:
    with pytest.raises(NodeConfigError) as caught:
        folder_files.build("folderFiles_0", {"folderPath": "manuals"}, NodeServices(env={}))
    assert str(caught.value) == REFUSAL


def test_a_bad_file_in_the_folder_is_named(services: NodeServices, documents: Path) -> None:
    (documents / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")

    with pytest.raises(NodeConfigError) as caught:
        sources(services)
    assert (
        str(caught.value)
        == "Node folderFiles_0: file 'manuals/broken.pdf' is not a readable PDF (damaged, or not a PDF)"
    )


def test_folder_path_cannot_be_overridden_by_a_request() -> None:
    assert "folderPath" in folder_files.SPEC.not_overridable
