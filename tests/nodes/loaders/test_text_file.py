"""textFile: a text file as one document; binary files refused naming the file."""

from __future__ import annotations

import pytest

from streamwise.engine.retrieval import DocumentLoader
from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import text_file
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import recursive_character
from tests.nodes.loaders.helpers import FIXTURES, assert_clean_message, data_url, data_urls, load, uploaded


def test_a_text_file_is_one_document_with_its_name_as_source(services: NodeServices) -> None:
    loader = text_file.build("textFile_0", {"txtFile": data_url("sample.txt", "text/plain")}, services)

    (document,) = load(loader)

    assert isinstance(loader, DocumentLoader)
    assert document.page_content == (FIXTURES / "sample.txt").read_text()
    assert "Straße and 日本語" in document.page_content
    assert document.metadata == {"source": "sample.txt"}


def test_markdown_and_several_files_load_in_order(services: NodeServices) -> None:
    value = data_urls(data_url("sample.md"), data_url("sample.txt"))

    documents = load(text_file.build("textFile_0", {"txtFile": value}, services))

    assert [document.metadata["source"] for document in documents] == ["sample.md", "sample.txt"]
    assert documents[0].page_content.startswith("# Streamwise sample")


def test_uploads_load_like_data_urls(services: NodeServices) -> None:
    from_upload = load(text_file.build("t", {"txtFile": uploaded("sample.txt")}, services))
    from_url = load(text_file.build("t", {"txtFile": data_url("sample.txt")}, services))

    assert from_upload == from_url


def test_a_connected_splitter_gives_chunks_with_line_numbers(services: NodeServices) -> None:
    splitter = recursive_character.build("split_0", {"chunkSize": 60, "chunkOverlap": 0}, services)
    loader = text_file.build("t", {"txtFile": uploaded("sample.txt"), "textSplitter": splitter}, services)

    chunks = load(loader)

    assert [chunk.page_content for chunk in chunks] == [
        "Streamwise sample text file.",
        "This is the second paragraph. It spans\ntwo lines.",
        "The third paragraph mentions Straße and 日本語 so that",
        "decoding is tested.",
    ]
    assert [chunk.metadata["loc"]["lines"] for chunk in chunks] == [
        {"from": 1, "to": 1},
        {"from": 3, "to": 4},
        {"from": 6, "to": 6},
        {"from": 6, "to": 6},
    ]
    assert all(chunk.metadata["source"] == "sample.txt" for chunk in chunks)


def test_byte_order_marks_are_understood(services: NodeServices) -> None:
    utf8 = data_url("a.txt", content="\ufeffhello".encode())
    utf16 = data_url("b.txt", content="hello wörld".encode("utf-16"))

    documents = load(text_file.build("t", {"txtFile": data_urls(utf8, utf16)}, services))

    assert [document.page_content for document in documents] == ["hello", "hello wörld"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("sample.pdf", None, "is a PDF document, not a text file"),
        ("sample.docx", None, "is a ZIP archive (such as a DOCX file), not a text file"),
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "is a Windows program, not a text file"),
        ("data.bin", b"abc\x00\x01\x02def", "is binary data, not a text file"),
        (
            "latin1.txt",
            "café".encode("latin-1"),
            "is not a text file in UTF-8 (or UTF-16 with a byte order mark)",
        ),
        ("empty.pdf", None, "is empty"),
    ],
)
def test_files_that_are_not_text_are_refused_naming_the_file(
    services: NodeServices, name: str, content: bytes | None, problem: str
) -> None:
    loader = text_file.build("textFile_0", {"txtFile": data_url(name, content=content)}, services)

    with pytest.raises(NodeConfigError) as caught:
        load(loader)

    assert str(caught.value) == f"Node textFile_0: file {name!r} {problem}"
    assert caught.value.node_id == "textFile_0"
    assert_clean_message(str(caught.value))


def test_the_spec_routes_text_types_to_the_file_input() -> None:
    assert text_file.SPEC.file_input == "txtFile"
    assert {".txt", ".md", ".py", ".html"} <= set(text_file.SPEC.file_types)
    assert ".pdf" not in text_file.SPEC.file_types
