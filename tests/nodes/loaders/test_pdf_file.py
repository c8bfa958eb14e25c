"""pdfFile: a page (or a file) per document with Flowise's metadata; locked or broken PDFs refused."""

from __future__ import annotations

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import pdf_file
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import recursive_character
from tests.nodes.loaders.helpers import assert_clean_message, data_url, load, uploaded

PAGE_ONE = (
    "Page one: Alpha\nThe alpha page introduces the Streamwise sample document.\n"
    "It has two lines of body text."
)
PAGE_TWO = "Page two: Bravo\nBravo covers uploading files and splitting them into chunks."
PAGE_FOUR = "Page four: Delta\nDelta is the last page; page three is left blank on purpose."


def test_each_page_with_text_is_a_document_numbered_from_one(services: NodeServices) -> None:
    documents = load(
        pdf_file.build("pdfFile_0", {"pdfFile": data_url("sample.pdf", "application/pdf")}, services)
    )

    # Page 3 is blank: skipped, as Flowise skips it, and the numbers stay the pages' own.
    assert [document.page_content for document in documents] == [PAGE_ONE, PAGE_TWO, PAGE_FOUR]
    assert [document.metadata["loc"] for document in documents] == [
        {"pageNumber": 1},
        {"pageNumber": 2},
        {"pageNumber": 4},
    ]
    assert [document.metadata["page"] for document in documents] == [1, 2, 4]
    first = documents[0].metadata
    assert first["source"] == "sample.pdf"
    assert first["pdf"]["totalPages"] == 4
    assert first["pdf"]["info"]["Title"] == "Streamwise sample PDF"
    assert first["pdf"]["info"]["PDFFormatVersion"] == "1.3"


def test_per_file_usage_joins_the_pages(services: NodeServices) -> None:
    (document,) = load(pdf_file.build("p", {"pdfFile": uploaded("sample.pdf"), "usage": "perFile"}, services))

    assert document.page_content == f"{PAGE_ONE}\n\n{PAGE_TWO}\n\n{PAGE_FOUR}"
    assert "loc" not in document.metadata and "page" not in document.metadata
    assert document.metadata["pdf"]["totalPages"] == 4


def test_chunks_keep_the_page_number_and_gain_line_numbers(services: NodeServices) -> None:
    splitter = recursive_character.build("split_0", {"chunkSize": 40, "chunkOverlap": 0}, services)

    chunks = load(
        pdf_file.build("p", {"pdfFile": uploaded("sample.pdf"), "textSplitter": splitter}, services)
    )

    pages = [(chunk.metadata["page"], chunk.metadata["loc"]) for chunk in chunks]
    assert pages[0] == (1, {"pageNumber": 1, "lines": {"from": 1, "to": 1}})
    assert {page for page, _ in pages} == {1, 2, 4}
    assert all(loc["pageNumber"] == page for page, loc in pages)
    assert all(len(chunk.page_content) <= 40 for chunk in chunks)


def test_an_aes_encrypted_pdf_without_a_user_password_opens(services: NodeServices) -> None:
    documents = load(pdf_file.build("p", {"pdfFile": uploaded("encrypted_no_password.pdf")}, services))

    assert [document.page_content for document in documents] == [PAGE_ONE, PAGE_TWO, PAGE_FOUR]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("encrypted.pdf", None, "is protected by a password; upload it unlocked"),
        ("empty.pdf", None, "is empty"),
        ("corrupt.pdf", None, "is not a readable PDF (damaged, or not a PDF)"),
        ("truncated.pdf", "sample.pdf", "is not a readable PDF (damaged, or not a PDF)"),
        ("sample.docx", None, "is a ZIP archive (such as a DOCX file), not a PDF"),
        ("setup.exe", b"MZ\x90\x00" + bytes(200), "is a Windows program, not a PDF"),
        ("notes.txt", b"just some text", "is not a readable PDF (damaged, or not a PDF)"),
    ],
)
def test_pdfs_that_cannot_be_read_are_refused_naming_the_file(
    services: NodeServices, name: str, content: bytes | str | None, problem: str
) -> None:
    if content == "sample.pdf":  # the first half of a real PDF
        raw = data_url("sample.pdf")
        content = __import__("base64").b64decode(raw.split(",")[1])[:1500]
    assert not isinstance(content, str)
    loader = pdf_file.build("pdfFile_0", {"pdfFile": data_url(name, content=content)}, services)

    with pytest.raises(NodeConfigError) as caught:
        load(loader)

    assert str(caught.value) == f"Node pdfFile_0: file {name!r} {problem}"
    assert_clean_message(str(caught.value))


def test_a_bad_usage_is_refused_when_the_node_is_built(services: NodeServices) -> None:
    with pytest.raises(
        NodeConfigError, match=r"^Node pdfFile_0: usage must be perPage or perFile, got 'both'$"
    ):
        pdf_file.build("pdfFile_0", {"usage": "both"}, services)


def test_the_spec() -> None:
    assert pdf_file.SPEC.file_input == "pdfFile" and pdf_file.SPEC.file_types == (".pdf",)
    assert "legacyBuild" in pdf_file.SPEC.ignored
