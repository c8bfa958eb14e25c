"""JSON from outside the server, parsed with limits: every layer that reads JSON text goes through here.

- orjson does the parsing (fast, and strict: it refuses lone surrogates and invalid UTF-8);
- a document nested deeper than `MAX_DEPTH` is refused, so no code that later walks it recursively
  (encoders, validators) can hit Python's recursion limit;
- a refused lone surrogate is reported with the path of the field that holds it;
- documents larger than `OFFLOAD_BYTES` are parsed in a worker thread (`loads_off_loop`), so a big
  chatflow never holds up the event loop while other streams run.

Every failure is a `BadRequest` whose message starts with what was being read ("Request body",
"Field 'overrideConfig'", "flowData").
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import orjson

from streamwise.errors import BadRequest

MAX_DEPTH = 64
OFFLOAD_BYTES = 64 * 1024


def loads(data: bytes | str, what: str = "Request body") -> Any:
    """Parse one JSON document; `BadRequest` naming `what` (and the field, for surrogates)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(_explain(data, what, str(exc))) from None
    if too_deep(value):
        raise BadRequest(f"{what} is nested deeper than {MAX_DEPTH} levels")
    return value


async def loads_off_loop(data: bytes | str, what: str = "Request body") -> Any:
    """`loads`, in a worker thread when the document is large."""
    if len(data) > OFFLOAD_BYTES:
        return await asyncio.to_thread(loads, data, what)
    return loads(data, what)


def dumps(value: Any) -> str:
    """Compact JSON text as JavaScript's JSON.stringify writes it (non-ASCII kept as UTF-8)."""
    return orjson.dumps(value).decode()


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `value` nests objects/arrays more than `limit` levels. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            children = item.values()
        elif kind is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                push((child, depth + 1))
    return False


def _explain(data: bytes | str, what: str, reason: str) -> str:
    if "surrogate" in reason:
        path = _surrogate_path(data)
        if path is not None:
            where = f"{what}: field '{path}'" if path else what
            return f"{where} holds an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
    if "depth limit" in reason or "recursion" in reason:
        return f"{what} is nested deeper than {MAX_DEPTH} levels"
    if (isinstance(data, bytes) and not data.strip()) or (isinstance(data, str) and not data.strip()):
        return f"{what} is empty: expected JSON"
    return f"{what} is not valid JSON: {reason}"


def _surrogate_path(data: bytes | str) -> str | None:
    """Where the first lone surrogate sits ("history[2].content"), using the lenient stdlib parser;
    None when it cannot tell (the stdlib parser refuses the text too)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    queue: deque[tuple[Any, str]] = deque([(value, "")])
    while queue:
        item, path = queue.popleft()
        if isinstance(item, str):
            if _has_surrogate(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if _has_surrogate(key):
                    return child_path.encode("utf-8", "backslashreplace").decode()
                queue.append((child, child_path))
        elif isinstance(item, list):
            queue.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
