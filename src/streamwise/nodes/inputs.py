"""Reading Flowise node inputs, which arrive as strings, numbers, booleans or empty strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from streamwise.errors import NodeConfigError

T = TypeVar("T")


def _present(value: Any) -> bool:
    return value is not None and value != ""


def text(inputs: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = inputs.get(key)
    if not _present(value):
        return default
    if not isinstance(value, str | int | float):
        raise NodeConfigError(f"input {key!r} must be text, got {type(value).__name__}")
    return str(value)


def number(inputs: Mapping[str, Any], key: str, node_id: str, default: float | None = None) -> float | None:
    value: Any = inputs.get(key)
    if not _present(value):
        return default
    if isinstance(value, bool):
        raise NodeConfigError(f"Node {node_id}: input {key!r} must be a number", node_id)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise NodeConfigError(
            f"Node {node_id}: input {key!r} must be a number, got {value!r}", node_id
        ) from None


def integer(inputs: Mapping[str, Any], key: str, node_id: str, default: int | None = None) -> int | None:
    value = number(inputs, key, node_id)
    if value is None:
        return default
    if value != int(value):
        raise NodeConfigError(f"Node {node_id}: input {key!r} must be a whole number, got {value!r}", node_id)
    return int(value)


def flag(inputs: Mapping[str, Any], key: str, default: bool) -> bool:
    value: Any = inputs.get(key)
    if not _present(value):
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "on"}


def instance(inputs: Mapping[str, Any], key: str, node_id: str, kind: type[T], *, required: bool) -> T | None:
    """A reference input (already resolved to a node instance), checked against a protocol."""
    value = inputs.get(key)
    if isinstance(value, list):  # Flowise allows list anchors; a single connection arrives as [x]
        value = value[0] if len(value) == 1 else (value or None)
    if not _present(value):
        if required:
            raise NodeConfigError(f"Node {node_id}: input {key!r} must be connected", node_id)
        return None
    if not isinstance(value, kind):
        raise NodeConfigError(
            f"Node {node_id}: input {key!r} must be a {kind.__name__} node, got {type(value).__name__}",
            node_id,
        )
    return value
