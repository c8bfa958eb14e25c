"""What every Flowise document loader node shares: its text splitter, extra metadata and omitted keys.

Flowise's loaders all end the same way: the documents go through the connected `textSplitter`, then
the node's `metadata` (a JSON object) is merged into every chunk's metadata, over the loader's own
keys, and the keys named in `omitMetadataKeys` are removed (`a.b` removes a nested key; `*` keeps only
the keys the `metadata` input names). `FileLoader` is a loader node over file inputs: each file is
parsed lazily, one document at a time, so a big file is never held as a list of documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamwise.engine.retrieval import Document, TextSplitter
from streamwise.errors import NodeConfigError, StreamwiseError
from streamwise.nodes import inputs
from streamwise.nodes.loaders.files import FileInput, file_error

# Every loader node has these inputs (Flowise's names).
COMMON_INPUTS = ("textSplitter", "metadata", "omitMetadataKeys")


@dataclass(frozen=True)
class LoaderOptions:
    splitter: TextSplitter | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # merged into every document
    named: frozenset[str] = frozenset()  # the keys the node's `metadata` input names
    omit: tuple[str, ...] = ()
    omit_all: bool = False

    def apply(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        if self.omit_all:
            kept = {key: metadata[key] for key in self.named if key in metadata}
            return {**kept, **self.metadata}
        return omit_paths({**metadata, **self.metadata}, self.omit)

    def finish(self, documents: Iterable[Document]) -> Iterator[Document]:
        """The documents split by the node's splitter (if any), with the node's metadata."""
        chunks = self.splitter.split(documents) if self.splitter is not None else documents
        for chunk in chunks:
            yield Document(chunk.page_content, self.apply(chunk.metadata))


def parse_metadata(node_id: str, value: Any) -> dict[str, Any]:
    """The `metadata` input: a JSON object, as an object or as its text."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise NodeConfigError(f"Node {node_id}: input 'metadata' must be a JSON object", node_id)
    return dict(value)


def omit_paths(metadata: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """`metadata` without the keys named by `paths` (lodash's `omit`: "a.b" is key b inside a).
    Nested objects on a path are copied, never changed in place."""
    result = dict(metadata)
    for path in paths:
        if path in result:
            del result[path]
            continue
        target = result
        parts = path.split(".")
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, Mapping):
                break
            target[part] = child = dict(child)
            target = child
        else:
            target.pop(parts[-1], None)
    return result


def loader_options(node_id: str, node_inputs: Mapping[str, Any], *, pointers: bool = False) -> LoaderOptions:
    """The common inputs. With `pointers` (jsonFile), metadata values starting with "/" are JSON
    pointers the loader resolves per document, not values to merge."""
    splitter = inputs.instance(node_inputs, "textSplitter", node_id, TextSplitter, required=False)
    metadata = parse_metadata(node_id, node_inputs.get("metadata"))
    named = frozenset(metadata)
    if pointers:
        metadata = {
            key: value
            for key, value in metadata.items()
            if not (isinstance(value, str) and value.startswith("/"))
        }
    raw = inputs.text(node_inputs, "omitMetadataKeys") or ""
    omit_all = raw.strip() == "*"
    omit = () if omit_all else tuple(key.strip() for key in raw.split(",") if key.strip())
    return LoaderOptions(splitter, metadata, named, omit, omit_all)


def guarded(file: FileInput, what: str, documents: Iterator[Document]) -> Iterator[Document]:
    """`documents` parsed from `file`, with a parser's unexpected failure (a damaged file makes
    parsers raise anything) turned into an error naming the file; the exception goes to `detail`."""
    try:
        yield from documents
    except (StreamwiseError, MemoryError):
        raise
    except Exception as exc:
        raise file_error(file.node_id, file.name, f"is not a readable {what}", repr(exc)[:500]) from None


Parser = Callable[[FileInput], Iterator[Document]]


class FileLoader:
    """A loader node over file inputs: each file parsed by `parse`, split, and given the metadata."""

    def __init__(
        self, node_id: str, files: Sequence[FileInput], options: LoaderOptions, parse: Parser, what: str
    ) -> None:
        self.node_id = node_id
        self.files = tuple(files)
        self.options = options
        self.parse = parse
        self.what = what

    def load(self) -> Iterator[Document]:
        for file in self.files:
            yield from self.options.finish(guarded(file, self.what, self.parse(file)))
