"""Flowise "folderFiles" (Folder with Files): every supported file in a folder of the server's.

`folderPath` names a folder inside the server's documents directory (`<data dir>/documents`): a name
relative to it ("manuals", "manuals/2024"), or a full path that lies inside it once symlinks are
resolved. Anything else (a path outside, a symlink leading out, "~", "/etc", a folder that does not
exist) gets one and the same refusal, which tells nothing about the server's disk. The input cannot
be overridden by a request.

Files are read in name order, going into sub-folders where they come when `recursive` is on. Each
file is loaded as the matching single-file node loads it (PDF, CSV, JSON, DOCX, and the text types of
`textFile`), with `source` its path inside the documents directory ("manuals/guide.pdf"). Files of
other types, empty files, and files whose real location is outside the documents directory (a
symlink) are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from streamwise.engine.retrieval import Document
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.loaders.base import COMMON_INPUTS, LoaderOptions, guarded, loader_options
from streamwise.nodes.loaders.csv_file import csv_documents
from streamwise.nodes.loaders.docx_file import docx_documents
from streamwise.nodes.loaders.files import FileInput, max_file_bytes
from streamwise.nodes.loaders.json_file import json_documents
from streamwise.nodes.loaders.pdf_file import pdf_documents, usage
from streamwise.nodes.loaders.text_file import TEXT_TYPES, text_documents
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

logger = logging.getLogger("streamwise.loaders")

DOCUMENTS_DIR = "documents"  # inside the server's data directory
MAX_PATH_CHARS = 1024


def documents_root(services: NodeServices) -> Path | None:
    return Path(services.data_dir) / DOCUMENTS_DIR if services.data_dir is not None else None


def confined(node_id: str, given: str, services: NodeServices) -> tuple[Path, Path]:
    """The folder `given` names, resolved, and the resolved documents root; the same refusal for any
    folder that is not inside the root, whatever the reason."""
    refusal = NodeConfigError(
        f"Node {node_id}: folderPath must name a folder inside the server's documents directory "
        f"(the {DOCUMENTS_DIR!r} folder of its data directory)",
        node_id,
        detail=f"folderPath {given[:MAX_PATH_CHARS]!r}; data dir {services.data_dir}",
    )
    root = documents_root(services)
    if root is None or not given or "\0" in given or len(given) > MAX_PATH_CHARS:
        raise refusal
    try:
        resolved_root = root.resolve()
        requested = Path(given)  # "~" is a folder named "~" here: nothing is expanded
        folder = (requested if requested.is_absolute() else resolved_root / requested).resolve()
        if not folder.is_relative_to(resolved_root) or not folder.is_dir():
            raise refusal
    except (OSError, RuntimeError):  # a symlink loop, a name too long, no permission
        raise refusal from None
    return folder, resolved_root


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    """Files in name order; a sub-folder's files where the sub-folder comes (symlinked folders are
    not entered; symlinked files are checked by the caller)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        logger.warning("folderFiles: cannot list %s: %r", folder, exc)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(Path(entry.path), recursive)
        elif entry.is_file():
            yield Path(entry.path)


class FolderLoader:
    def __init__(
        self,
        node_id: str,
        given: str,
        services: NodeServices,
        recursive: bool,
        per_file_pdf: bool,
        options: LoaderOptions,
    ) -> None:
        self.node_id = node_id
        self.given = given
        self.services = services
        self.recursive = recursive
        self.options = options
        self.parsers: dict[str, tuple[Callable[[FileInput], Iterator[Document]], str]] = {
            ".pdf": (lambda file: pdf_documents(file, per_file_pdf), "PDF"),
            ".csv": (lambda file: csv_documents(file, None), "CSV file"),
            ".json": (lambda file: json_documents(file, [], {}, False), "JSON file"),
            ".docx": (docx_documents, "DOCX file"),
            **{suffix: (text_documents, "text file") for suffix in TEXT_TYPES},
        }

    def load(self) -> Iterator[Document]:
        folder, root = confined(self.node_id, self.given, self.services)  # again: the disk may have changed
        limit = max_file_bytes(self.services)
        for path in _walk(folder, self.recursive):
            parser = self.parsers.get(path.suffix.lower())
            if parser is None:
                continue
            try:
                real = path.resolve()
                if not real.is_relative_to(root):
                    logger.warning("folderFiles: skipping %s, which leads outside %s", path, root)
                    continue
                if real.stat().st_size == 0:
                    continue
            except (OSError, RuntimeError):
                continue
            file = FileInput(self.node_id, path.relative_to(root).as_posix(), limit, path=real)
            parse, what = parser
            yield from self.options.finish(guarded(file, what, parse(file)))


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FolderLoader:
    given = (inputs.text(node_inputs, "folderPath") or "").strip()
    confined(node_id, given, services)
    return FolderLoader(
        node_id,
        given,
        services,
        inputs.flag(node_inputs, "recursive", False),
        usage(node_id, node_inputs, "pdfUsage"),
        loader_options(node_id, node_inputs),
    )


SPEC = NodeSpec(
    name="folderFiles",
    label="Folder with Files",
    category="Document Loaders",
    build=build,
    honoured=("folderPath", "recursive", "pdfUsage", *COMMON_INPUTS),
    ignored=("pointerName",),  # JSONL files are not read
    protected=frozenset({"folderPath"}),
)
