"""Flowise "jsonFile": the strings of a JSON file as documents, chosen by `pointersName`.

Flowise's own JSON loader, rewritten (stdlib json, `jsonpointer`). The file is an object or an array
of items; for each item:
- without `pointersName`, every string in it (at any depth) is a document;
- with `pointersName` ("title, body"), each name becomes a pointer ("/title") and only the strings
  under those keys are documents (found at the first level that has one of them);
- with `separateByObject`, each object item is one document of `key: value` lines (nested keys
  dotted, arrays as JSON).
Numbers, booleans and empty strings are never documents, as in Flowise.

Metadata: `source` (the file name), `line` (the document's number in the file, when it gave more
than one), and the `metadata` input's JSON pointers resolved in each item: `{"url": "/url"}` puts
the item's url in every document made from it. The other `metadata` entries are merged as for every
loader; with `omitMetadataKeys` `*` the pointers' keys are kept too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonpointer

from streamwise.engine.retrieval import Document
from streamwise.nodes import inputs
from streamwise.nodes.loaders.base import COMMON_INPUTS, FileLoader, loader_options, parse_metadata
from streamwise.nodes.loaders.files import FileInput, decode_text, file_error, file_inputs, max_file_bytes
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

FILE_INPUT = "jsonFile"
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MISSING = object()


def js_values(value: dict[str, Any] | list[Any]) -> list[Any]:
    """JavaScript's `Object.values`: for an object, integer-like keys first in numeric order, then
    the other keys in the order they were written."""
    if isinstance(value, list):
        return list(value)
    indexes = sorted((int(key), key) for key in value if _ARRAY_INDEX.fullmatch(key) and int(key) < 2**32 - 1)
    numeric = {key for _, key in indexes}
    return [value[key] for _, key in indexes] + [item for key, item in value.items() if key not in numeric]


def js_string(value: Any) -> str:
    """`${value}` in JavaScript, for the scalars a JSON file holds."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _truthy(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != 0


def _same(a: Any, b: Any) -> bool:
    """JavaScript's `includes` equality: objects by identity, scalars by value (and type)."""
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    return type(a) is type(b) and a == b


def _resolve(item: Any, pointer: str) -> Any:
    try:
        return jsonpointer.resolve_pointer(item, pointer, _MISSING)
    except jsonpointer.JsonPointerException:
        return _MISSING


def strings(value: Any, pointers: list[str], take_all: bool, key_found: bool = False) -> list[str]:
    """Flowise's extractArrayStringsFromObject: the strings under the pointers, or all of them."""
    if not _truthy(value):
        return []
    if isinstance(value, str):
        return [value] if take_all else []
    if not isinstance(value, dict | list):
        return []
    if take_all:
        return [text for element in js_values(value) for text in strings(element, pointers, True)]
    targeted = [found for found in (_resolve(value, pointer) for pointer in pointers) if _truthy(found)]
    others = [entry for entry in js_values(value) if not any(_same(entry, found) for found in targeted)]
    if targeted:
        return [text for entry in targeted for text in strings(entry, pointers, True, True)] + [
            text for entry in others for text in strings(entry, pointers, False, True)
        ]
    if not key_found:
        return [text for entry in others for text in strings(entry, pointers, False)]
    return []


def key_values(value: dict[str, Any], prefix: str = "") -> str:
    """Flowise's formatObjectAsKeyValue: `key: value` lines, nested keys dotted, arrays as JSON."""
    lines = []
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(item, list):
            lines.append(f"{name}: {json.dumps(item, ensure_ascii=False, separators=(',', ':'))}")
        elif isinstance(item, dict):
            lines.append(key_values(item, name))
        else:
            lines.append(f"{name}: {js_string(item)}")
    return "\n".join(lines)


def json_documents(
    file: FileInput, pointers: list[str], mapping: Mapping[str, str], by_object: bool
) -> Iterator[Document]:
    data = file.read()
    if not data.strip():
        raise file_error(file.node_id, file.name, "is empty")
    try:
        parsed = json.loads(decode_text(file.node_id, file.name, data, "a JSON file"))
    except ValueError as exc:
        raise file_error(file.node_id, file.name, f"is not valid JSON ({exc})") from None
    del data
    items = parsed if isinstance(parsed, list) else [parsed]
    found: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        resolved = ((key, _resolve(item, pointer)) for key, pointer in mapping.items())
        extra = {key: value for key, value in resolved if value is not _MISSING}  # JS drops undefined
        if by_object:
            if isinstance(item, dict):
                found.append((key_values(item), extra))
        else:
            found.extend((text, extra) for text in strings(item, pointers, not pointers))
    for number, (text, extra) in enumerate(found, start=1):
        own: dict[str, Any] = (
            {"source": file.name} if len(found) == 1 else {"source": file.name, "line": number}
        )
        yield Document(text, {**own, **extra})


def pointer_names(node_inputs: Mapping[str, Any]) -> list[str]:
    """`pointersName` as Flowise reads it: runs of anything but letters, digits and commas separate
    names, and each name is a top-level pointer."""
    raw = inputs.text(node_inputs, "pointersName") or ""
    if not raw:
        return []
    return ["/" + name.strip() for name in re.sub(r"[^a-zA-Z0-9,]+", ",", raw).split(",")]


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> FileLoader:
    files = file_inputs(node_id, FILE_INPUT, node_inputs.get(FILE_INPUT), max_file_bytes(services))
    options = loader_options(node_id, node_inputs, pointers=True)
    mapping = {
        key: value
        for key, value in parse_metadata(node_id, node_inputs.get("metadata")).items()
        if isinstance(value, str) and value.startswith("/")
    }
    pointers = pointer_names(node_inputs)
    by_object = inputs.flag(node_inputs, "separateByObject", False)
    return FileLoader(
        node_id, files, options, lambda file: json_documents(file, pointers, mapping, by_object), "JSON file"
    )


SPEC = NodeSpec(
    name="jsonFile",
    label="Json File",
    category="Document Loaders",
    build=build,
    honoured=(FILE_INPUT, "pointersName", "separateByObject", *COMMON_INPUTS),
    file_input=FILE_INPUT,
    file_types=(".json",),
)
