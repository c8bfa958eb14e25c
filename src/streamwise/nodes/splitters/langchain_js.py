"""LangChain's Python text splitters, made to cut where LangChain JS (the splitters Flowise runs) cuts.

The splitter nodes build on `langchain-text-splitters`. Its Python port and LangChain JS 1.0 differ in
a few places, and the classes here override just those, so a chatflow's chunks (and so its answers
and sourceDocuments) are the ones Flowise would make:
- a piece still too long after the last separator of a custom list is split into characters in JS;
  Python keeps it whole. A text containing none of the separators is kept whole by both;
- JS splits with a look-ahead, so overlapping separators ("\\n\\n\\n" for "\\n\\n") give JS's pieces;
- when merging, JS counts `chunkOverlap` without the separators between pieces (Python with them), so
  a `characterTextSplitter` keeps JS's overlaps;
- lengths are JS string lengths (UTF-16 code units: an emoji counts 2) and chunks are trimmed of what
  JS's `trim()` calls white space.

`with_lines` then gives every chunk `loc.lines` `{from, to}` as LangChain JS's `createDocuments`
computes it (the document's own `loc`, such as a PDF's `pageNumber`, is kept), and `ChunkSplitter` is
the node instance: a `TextSplitter` (engine/retrieval.py) that yields each document's chunks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from langchain_text_splitters import CharacterTextSplitter, RecursiveCharacterTextSplitter
from langchain_text_splitters import TextSplitter as LangChainSplitter

from streamwise.engine.retrieval import Document
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs

DEFAULT_CHUNK_SIZE = 1000
DEFAULT_CHUNK_OVERLAP = 200

# What JavaScript's String.prototype.trim removes: WhiteSpace (Unicode Zs, tab, VT, FF, BOM) and line
# terminators. Python's str.strip also removes \x1c-\x1f and \x85 and keeps the BOM.
JS_WHITESPACE = (
    "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_length(text: str) -> int:
    """`text.length` in JavaScript: UTF-16 code units. ASCII is the common case and costs nothing."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def _join_docs(self: LangChainSplitter, docs: list[str], separator: str) -> str | None:
    text = js_trim(separator.join(docs))
    return text or None


def _iter_merge(self: LangChainSplitter, splits: Iterable[str], separator: str) -> Iterator[str]:
    """LangChain JS's `mergeSplits`: pieces joined into chunks of at most `chunk_size` (a piece longer
    than that makes a chunk of its own), neighbours sharing up to `chunk_overlap` of pieces. `total`
    counts the pieces only, not the separators between them, as JS does. Lazy: pieces are taken and
    chunks given one at a time."""
    size, overlap, length = self._chunk_size, self._chunk_overlap, self._length_function
    separator_length = length(separator)
    current: deque[str] = deque()
    total = 0
    for piece in splits:
        piece_length = length(piece)
        if total + piece_length + len(current) * separator_length > size and current:
            chunk = _join_docs(self, list(current), separator)
            if chunk is not None:
                yield chunk
            while total > overlap or (
                total + piece_length + len(current) * separator_length > size and total > 0
            ):
                total -= length(current.popleft())
        current.append(piece)
        total += piece_length
    chunk = _join_docs(self, list(current), separator)
    if chunk is not None:
        yield chunk


def _merge_splits(self: LangChainSplitter, splits: Iterable[str], separator: str) -> list[str]:
    return list(_iter_merge(self, splits, separator))


def js_pieces(text: str, separator: str, *, keep: bool) -> Iterator[str]:
    """JS's `text.split(separator)` (or, with `keep`, `text.split(/(?=separator)/)`, where a piece
    starts at every occurrence, overlapping ones too, but never at 0), empty pieces left out; lazy.
    The empty separator gives characters (code points here, UTF-16 units in JS)."""
    if not separator:
        yield from text
        return
    start = 0
    if keep:
        found = text.find(separator, 1)
        while found >= 0:
            yield text[start:found]
            start = found
            found = text.find(separator, found + 1)
    else:
        found = text.find(separator)
        while found >= 0:
            if found > start:
                yield text[start:found]
            start = found + len(separator)
            found = text.find(separator, start)
    if start < len(text):
        yield text[start:]


class JsRecursiveSplitter(RecursiveCharacterTextSplitter):
    """RecursiveCharacterTextSplitter with LangChain JS's recursion, splitting and merging."""

    def __init__(self, separators: list[str], chunk_size: int, chunk_overlap: int) -> None:
        super().__init__(
            separators=separators,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=js_length,
        )
        self._js_separators = separators

    def split_text(self, text: str) -> list[str]:
        return list(self.iter_split(text))

    def iter_split(self, text: str) -> Iterator[str]:
        return self._iter_split(text, self._js_separators)

    def _split_text(self, text: str, separators: list[str]) -> list[str]:
        return list(self._iter_split(text, separators))

    def _iter_split(self, text: str, separators: list[str]) -> Iterator[str]:
        # JS: the first separator the text contains; `rest` is None when there was none (or "" was
        # reached), [] after the last one, and a too-long piece is split further unless it is None.
        separator = separators[-1] if separators else ""
        rest: list[str] | None = None
        for index, candidate in enumerate(separators):
            if candidate == "":
                separator = candidate
                break
            if candidate in text:
                separator = candidate
                rest = separators[index + 1 :]
                break
        pieces = js_pieces(text, separator, keep=True)
        too_long: list[str] = []

        def fitting() -> Iterator[str]:
            """The next run of pieces shorter than chunk_size; the one that ends it goes to too_long."""
            for piece in pieces:
                if self._length_function(piece) >= self._chunk_size:
                    too_long.append(piece)
                    return
                yield piece

        while True:
            yield from _iter_merge(self, fitting(), "")
            if not too_long:
                return
            piece = too_long.pop()
            if rest is None:
                yield piece
            else:
                yield from self._iter_split(piece, rest)

    _merge_splits = _merge_splits
    _join_docs = _join_docs


class JsCharacterSplitter(CharacterTextSplitter):
    """CharacterTextSplitter with LangChain JS's merging (and a lazy split on its separator)."""

    def __init__(self, separator: str, chunk_size: int, chunk_overlap: int) -> None:
        super().__init__(
            separator=separator,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=js_length,
        )

    def split_text(self, text: str) -> list[str]:
        return list(self.iter_split(text))

    def iter_split(self, text: str) -> Iterator[str]:
        return _iter_merge(self, js_pieces(text, self._separator, keep=False), self._separator)

    _merge_splits = _merge_splits
    _join_docs = _join_docs


def with_lines(document: Document, chunks: Iterable[str]) -> Iterator[Document]:
    """The chunks of `document` with its metadata and `loc.lines`, as LangChain JS's `createDocuments`.

    Each chunk is looked for after the previous one's start; the line counter moves by the newlines
    between them (back, when chunks overlap). A chunk not found (a token splitter's chunk that cut a
    character in two) gets the numbers JS would give it, odd as they are."""
    text = document.page_content
    base = document.metadata
    own_loc = base.get("loc")
    line = 1
    previous: str | None = None
    previous_index = -1
    for chunk in chunks:
        index = text.find(chunk, previous_index + 1)
        if previous is None:
            # JS's text.slice(0, -1) for a chunk not found: str.count's end -1 means the same.
            line += text.count("\n", 0, index)
        else:
            previous_end = previous_index + len(previous)
            if previous_end < index:
                line += text.count("\n", previous_end, index)
            elif previous_end > index:
                line -= text.count("\n", index, previous_end)
        newlines = chunk.count("\n")
        loc: dict[str, Any] = dict(own_loc) if isinstance(own_loc, Mapping) else {}
        loc["lines"] = {"from": line, "to": line + newlines}
        yield Document(chunk, {**base, "loc": loc})
        line += newlines
        previous = chunk
        previous_index = index


class ChunkSplitter:
    """A splitter node instance: each document is split in turn and its chunks yielded with `loc`,
    as they are made (a big document's chunks are never all held at once).

    `make` gives the LangChain splitter; it is called once, at the first split (a token splitter loads
    its vocabulary then, never when the chatflow is built)."""

    def __init__(self, node_id: str, make: Callable[[], LangChainSplitter]) -> None:
        self.node_id = node_id
        self._make = make
        self._splitter: LangChainSplitter | None = None

    @property
    def splitter(self) -> LangChainSplitter:
        if self._splitter is None:
            self._splitter = self._make()
        return self._splitter

    def chunks(self, text: str) -> Iterable[str]:
        splitter = self.splitter
        if isinstance(splitter, JsRecursiveSplitter | JsCharacterSplitter):
            return splitter.iter_split(text)
        return splitter.split_text(text)

    def split_text(self, text: str) -> list[str]:
        return list(self.chunks(text))

    def split(self, documents: Iterable[Document]) -> Iterator[Document]:
        for document in documents:
            yield from with_lines(document, self.chunks(document.page_content))


def chunk_settings(node_id: str, node_inputs: Mapping[str, Any]) -> tuple[int, int]:
    """`chunkSize` and `chunkOverlap` (Flowise's defaults 1000 and 200 when empty), checked as LangChain
    JS checks them."""
    size = inputs.integer(node_inputs, "chunkSize", node_id, DEFAULT_CHUNK_SIZE)
    overlap = inputs.integer(node_inputs, "chunkOverlap", node_id, DEFAULT_CHUNK_OVERLAP)
    assert size is not None and overlap is not None
    if size < 1:
        raise NodeConfigError(f"Node {node_id}: chunkSize must be at least 1, got {size}", node_id)
    if overlap < 0:
        raise NodeConfigError(f"Node {node_id}: chunkOverlap must not be negative, got {overlap}", node_id)
    if overlap >= size:
        raise NodeConfigError(
            f"Node {node_id}: chunkOverlap ({overlap}) must be smaller than chunkSize ({size})", node_id
        )
    return size, overlap
