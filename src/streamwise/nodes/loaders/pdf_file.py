"""Flowise "pdfFile": a PDF's text, one document per page (`usage` perPage, the default) or per file.

Text comes from pypdf. Metadata keeps the keys LangChain's PDFLoader gives in Flowise, so
sourceDocuments look the same: `source` (the file name), `pdf` (`totalPages` and the document's
`info`: title, author, ...) and, per page, `loc.pageNumber` (1-based), plus `page`, the same number.
Pages with no text are skipped, as Flowise skips them; one document per file joins the pages' texts
with a blank line. Pages are read one at a time.

A PDF that needs a password, an empty file or a damaged one is refused naming the file. A PDF
encrypted with AES but no user password opens (pypdf decrypts it with `cryptography`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any

from pypdf import PdfReader
from pypdf.errors import (
    DependencyError,
    EmptyFileError,
    FileNotDecryptedError,
    PdfReadError,
    WrongPasswordError,
)

from streamwise.engine.retrieval import Document
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.loaders.base import COMMON_INPUTS, FileLoader, loader_options
from streamwise.nodes.loaders.files import FileInput, binary_kind, file_error, file_inputs, max_file_bytes
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

FILE_INPUT = "pdfFile"
USAGES = ("perPage", "perFile")
_INFO_KEYS = 20  # at most this many `info` entries, each at most _INFO_CHARS long
_INFO_CHARS = 500


def _open(file: FileInput, stream: IO[bytes]) -> PdfReader:
    head = stream.read(1024)
    if not head:
        raise file_error(file.node_id, file.name, "is empty")
    kind = binary_kind(head)
    if kind is not None and not head.startswith(b"%PDF-"):
        raise file_error(file.node_id, file.name, f"is {kind}, not a PDF")
    stream.seek(0)
    try:
        reader = PdfReader(stream)
        if reader.is_encrypted and not reader.decrypt(""):
            raise file_error(file.node_id, file.name, "is protected by a password; upload it unlocked")
    except (FileNotDecryptedError, WrongPasswordError):
        raise file_error(file.node_id, file.name, "is protected by a password; upload it unlocked") from None
    except DependencyError as exc:
        raise file_error(
            file.node_id, file.name, "is encrypted in a way this server cannot decrypt", repr(exc)
        ) from None
    except EmptyFileError:
        raise file_error(file.node_id, file.name, "is empty") from None
    except PdfReadError as exc:
        raise file_error(
            file.node_id, file.name, "is not a readable PDF (damaged, or not a PDF)", repr(exc)
        ) from None
    return reader


def _info(reader: PdfReader) -> dict[str, Any]:
    """The PDF's document information as pdf.js gives it to Flowise: `PDFFormatVersion`, then its
    string entries (Title, Author, ...) without the leading slash."""
    info: dict[str, Any] = {"PDFFormatVersion": reader.pdf_header.removeprefix("%PDF-")}
    try:
        entries: Mapping[str, Any] = reader.metadata or {}
        for key, value in list(entries.items())[:_INFO_KEYS]:
            if isinstance(value, str):
                info[str(key).lstrip("/")] = str(value)[:_INFO_CHARS]
    except PdfReadError:  # a damaged info dictionary is no reason to refuse the text
        pass
    return info


def pdf_documents(file: FileInput, per_file: bool) -> Iterator[Document]:
    with file.open() as stream:
        reader = _open(file, stream)
        pdf = {"info": _info(reader), "totalPages": len(reader.pages)}
        texts: list[str] = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text().strip()
            if not text:
                continue
            if per_file:
                texts.append(text)
            else:
                metadata = {"source": file.name, "pdf": pdf, "loc": {"pageNumber": number}, "page": number}
                yield Document(text, metadata)
        if per_file and texts:
            yield Document("\n\n".join(texts), {"source": file.name, "pdf": pdf})


def usage(node_id: str, node_inputs: Mapping[str, Any], key: str) -> bool:
    """Whether `key` (Flowise's `usage`, or the folder loader's `pdfUsage`) asks for one document per file."""
    chosen = (inputs.text(node_inputs, key) or "perPage").strip()
    if chosen not in USAGES:
        raise NodeConfigError(
            f"Node {node_id}: {key} must be perPage or perFile, got {chosen[:20]!r}", node_id
        )
    return chosen == "perFile"


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FileLoader:
    files = file_inputs(node_id, FILE_INPUT, node_inputs.get(FILE_INPUT), max_file_bytes(services))
    per_file = usage(node_id, node_inputs, "usage")
    return FileLoader(
        node_id,
        files,
        loader_options(node_id, node_inputs),
        lambda file: pdf_documents(file, per_file),
        "PDF",
    )


SPEC = NodeSpec(
    name="pdfFile",
    label="Pdf File",
    category="Document Loaders",
    build=build,
    honoured=(FILE_INPUT, "usage", *COMMON_INPUTS),
    ignored=("legacyBuild",),  # which pdf.js build Flowise uses; text here comes from pypdf
    file_input=FILE_INPUT,
    file_types=(".pdf",),
)
