"""Flowise "textFile": each text file (txt, md, code, html, ...) as one document.

As LangChain's TextLoader in Flowise: the whole file is the document's text, untouched; its metadata is
`source`, the file name. The file must be text: UTF-8, or UTF-16 with a byte order mark. A PDF, a
program or other binary data is refused, saying what it looks like.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from streamwise.engine.retrieval import Document
from streamwise.nodes.loaders.base import COMMON_INPUTS, FileLoader, loader_options
from streamwise.nodes.loaders.files import FileInput, decode_text, file_error, file_inputs, max_file_bytes
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

FILE_INPUT = "txtFile"
# Flowise's list for this node.
TEXT_TYPES = (
    ".txt", ".html", ".aspx", ".asp", ".cpp", ".c", ".cs", ".css", ".go", ".h", ".java", ".js", ".less",
    ".ts", ".php", ".proto", ".python", ".py", ".rst", ".ruby", ".rb", ".rs", ".scala", ".sc", ".scss",
    ".sol", ".sql", ".swift", ".markdown", ".md", ".tex", ".ltx", ".vb", ".xml",
)  # fmt: skip


def text_documents(file: FileInput) -> Iterator[Document]:
    data = file.read()
    if not data:
        raise file_error(file.node_id, file.name, "is empty")
    text = decode_text(file.node_id, file.name, data)
    del data  # the bytes go before the text is split: a big file is held once, not twice
    yield Document(text, {"source": file.name})


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FileLoader:
    files = file_inputs(node_id, FILE_INPUT, node_inputs.get(FILE_INPUT), max_file_bytes(services))
    return FileLoader(node_id, files, loader_options(node_id, node_inputs), text_documents, "text file")


SPEC = NodeSpec(
    name="textFile",
    label="Text File",
    category="Document Loaders",
    build=build,
    honoured=(FILE_INPUT, *COMMON_INPUTS),
    file_input=FILE_INPUT,
    file_types=TEXT_TYPES,
)
