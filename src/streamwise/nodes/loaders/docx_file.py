"""Flowise "docxFile": a Word (DOCX) file's text as one document (python-docx).

As the raw text LangChain's DocxLoader (mammoth) gives Flowise: every paragraph, in document order,
followed by a blank line; a table's cells are read row by row, each cell's paragraphs likewise.
Metadata: `source`, the file name. A file with no paragraphs at all gives no document.

A file that is not a DOCX (not a ZIP, or a ZIP without a Word document) is refused naming it, and so
is one whose parts would unpack to more than `EXPANSION` times the file size limit.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from streamwise.engine.retrieval import Document
from streamwise.nodes.loaders.base import COMMON_INPUTS, FileLoader, loader_options
from streamwise.nodes.loaders.files import FileInput, binary_kind, file_error, file_inputs, max_file_bytes
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

FILE_INPUT = "docxFile"
EXPANSION = 4  # a DOCX may unpack to at most this many times the per-file limit


def _check_archive(file: FileInput, stream: IO[bytes]) -> None:
    head = stream.read(8)
    if not head:
        raise file_error(file.node_id, file.name, "is empty")
    if not head.startswith(b"PK\x03\x04"):
        kind = binary_kind(head)
        problem = f"is {kind}, not a DOCX file" if kind else "is not a DOCX file"
        raise file_error(file.node_id, file.name, problem)
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise file_error(file.node_id, file.name, "is not a readable DOCX file", repr(exc)) from None
    if unpacked > EXPANSION * file.limit:
        raise file_error(file.node_id, file.name, "unpacks to more than this server reads from one document")
    stream.seek(0)


def _cell_paragraphs(cell: _Cell) -> Iterator[str]:
    for block in cell.iter_inner_content():
        if isinstance(block, Paragraph):
            yield block.text
        else:
            yield from _table_paragraphs(block)


def _table_paragraphs(table: Table) -> Iterator[str]:
    for row in table.rows:
        seen: set[int] = set()
        for cell in row.cells:  # a merged cell appears once per grid column it spans: read it once
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            yield from _cell_paragraphs(cell)


def paragraphs(document: Any) -> Iterator[str]:
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            yield block.text
        else:
            yield from _table_paragraphs(block)


def docx_documents(file: FileInput) -> Iterator[Document]:
    with file.open() as stream:
        _check_archive(file, stream)
        try:
            document = docx.Document(stream)
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise file_error(
                file.node_id, file.name, "is not a readable DOCX file", repr(exc)[:500]
            ) from None
        text = "".join(f"{paragraph}\n\n" for paragraph in paragraphs(document))
    if text:
        yield Document(text, {"source": file.name})


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FileLoader:
    files = file_inputs(node_id, FILE_INPUT, node_inputs.get(FILE_INPUT), max_file_bytes(services))
    return FileLoader(node_id, files, loader_options(node_id, node_inputs), docx_documents, "DOCX file")


SPEC = NodeSpec(
    name="docxFile",
    label="Docx File",
    category="Document Loaders",
    build=build,
    honoured=(FILE_INPUT, *COMMON_INPUTS),
    file_input=FILE_INPUT,
    file_types=(".docx",),
)
