"""docxFile: a Word file's paragraphs (and table cells) as one document; other files refused."""

from __future__ import annotations

import io
import zipfile

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import docx_file
from streamwise.nodes.services import NodeServices
from tests.nodes.loaders.helpers import assert_clean_message, data_url, load, uploaded


def test_paragraphs_and_table_cells_in_document_order(services: NodeServices) -> None:
    (document,) = load(docx_file.build("docxFile_0", {"docxFile": uploaded("sample.docx")}, services))

    assert document.page_content == (
        "Streamwise sample document\n\n"
        "The first paragraph explains what the sample is for.\n\n"
        "The second paragraph has bold and italic runs.\n\n"
        "Setting\n\nDefault\n\nchunkSize\n\n1000\n\n"
        "The last paragraph comes after a table.\n\n"
    )
    assert document.metadata == {"source": "sample.docx"}


def test_data_urls_load_like_uploads(services: NodeServices) -> None:
    from_url = load(docx_file.build("d", {"docxFile": data_url("sample.docx")}, services))

    assert from_url == load(docx_file.build("d", {"docxFile": uploaded("sample.docx")}, services))


def _zip(**entries: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.docx", b"", "is empty"),
        ("sample.pdf", None, "is a PDF document, not a DOCX file"),
        ("notes.docx", b"plain text, renamed", "is not a DOCX file"),
        ("cut.docx", b"PK\x03\x04" + bytes(100), "is not a readable DOCX file"),
        ("other.docx", _zip(hello=b"not a word document"), "is not a readable DOCX file"),
    ],
)
def test_files_that_are_not_docx_are_refused_naming_the_file(
    services: NodeServices, name: str, content: bytes | None, problem: str
) -> None:
    loader = docx_file.build("docxFile_0", {"docxFile": data_url(name, content=content)}, services)

    with pytest.raises(NodeConfigError) as caught:
        load(loader)

    assert str(caught.value) == f"Node docxFile_0: file {name!r} {problem}"
    assert_clean_message(str(caught.value))


def test_an_archive_that_unpacks_too_big_is_refused(
    services: NodeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docx_file, "EXPANSION", 0)

    with pytest.raises(NodeConfigError, match="unpacks to more than this server reads from one document"):
        load(docx_file.build("d", {"docxFile": uploaded("sample.docx")}, services))
