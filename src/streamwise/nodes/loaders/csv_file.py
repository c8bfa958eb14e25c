"""Flowise "csvFile": one document per row, read as the file is parsed (stdlib csv).

As Flowise's CSV loader: the first row names the columns; each row's text is its `column: value`
lines (values trimmed; a column with no name is `_0`), or, with `columnName`, that column's value
alone. The delimiter is guessed from the first rows among `,` tab `|` and `;`, as papaparse
guesses it. Metadata: `source` (the file name) and `line`, the row's number (1 = the first row after
the header) as LangChain JS writes it, plus `row`, the same number. Blank lines are skipped; a missing
value reads as empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from streamwise.engine.retrieval import Document
from streamwise.nodes import inputs
from streamwise.nodes.loaders.base import COMMON_INPUTS, FileLoader, loader_options
from streamwise.nodes.loaders.files import FileInput, file_error, file_inputs, max_file_bytes, text_encoding
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

FILE_INPUT = "csvFile"
SAMPLE_BYTES = 64 * 1024  # what the delimiter is guessed from
DELIMITERS = ",\t|;"  # papaparse's order, which breaks ties
PREVIEW_ROWS = 10
_ENCODINGS = {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}  # these drop the BOM


def _delimiter(sample: str) -> str:
    """papaparse's guess: of the delimiters that give rows of more than one field, the one whose
    first rows have the most even field counts (then the most fields); "," when none does."""
    lines = sample.splitlines()[:-1] or sample.splitlines()  # the sample's last line may be cut
    best, best_score = ",", (float("inf"), 0.0)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(lines[:PREVIEW_ROWS], delimiter=delimiter) if row]
        if not counts:
            continue
        mean = sum(counts) / len(counts)
        spread = sum(abs(count - mean) for count in counts)
        if mean > 1.99 and (spread, -mean) < best_score:
            best, best_score = delimiter, (spread, -mean)
    return best


def _row_text(header: list[str], row: list[str], column: int | None) -> str:
    if column is not None:
        return row[column] if column < len(row) else ""
    return "\n".join(
        f"{name.strip() or '_0'}: {row[index].strip() if index < len(row) else ''}"
        for index, name in enumerate(header)
    )


def csv_documents(file: FileInput, column_name: str | None) -> Iterator[Document]:
    with file.open() as raw:
        head = raw.read(SAMPLE_BYTES)
        if not head.strip():
            raise file_error(file.node_id, file.name, "is empty")
        encoding, _ = text_encoding(file.node_id, file.name, head[:64], "a CSV file")
        if encoding == "utf-8" and b"\x00" in head:
            raise file_error(file.node_id, file.name, "is binary data, not a CSV file")
        raw.seek(0)
        stream = io.TextIOWrapper(raw, encoding=_ENCODINGS[encoding], newline="")
        try:
            delimiter = _delimiter(head.decode(encoding, errors="ignore"))
            rows = (row for row in csv.reader(stream, delimiter=delimiter) if row)
            header = next(rows, None)
            if header is None:
                raise file_error(file.node_id, file.name, "is empty")
            column: int | None = None
            if column_name is not None:
                if column_name not in header:
                    raise file_error(file.node_id, file.name, f"has no column {column_name[:100]!r}")
                column = header.index(column_name)
            for number, row in enumerate(rows, start=1):
                text = _row_text(header, row, column)
                yield Document(text, {"source": file.name, "line": number, "row": number})
        except UnicodeDecodeError as exc:
            raise file_error(file.node_id, file.name, "is not a CSV file in UTF-8", repr(exc)[:300]) from None
        except csv.Error as exc:
            raise file_error(file.node_id, file.name, f"is not a readable CSV file ({exc})") from None
        finally:
            stream.detach()  # the stream is closed by `file.open`, once


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FileLoader:
    files = file_inputs(node_id, FILE_INPUT, node_inputs.get(FILE_INPUT), max_file_bytes(services))
    column = (inputs.text(node_inputs, "columnName") or "").strip() or None
    return FileLoader(
        node_id,
        files,
        loader_options(node_id, node_inputs),
        lambda file: csv_documents(file, column),
        "CSV file",
    )


SPEC = NodeSpec(
    name="csvFile",
    label="Csv File",
    category="Document Loaders",
    build=build,
    honoured=(FILE_INPUT, "columnName", *COMMON_INPUTS),
    file_input=FILE_INPUT,
    file_types=(".csv",),
)
