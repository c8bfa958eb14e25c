"""Where each backend keeps a node's entries: namespace names, Faiss folders, Chroma collections."""

from __future__ import annotations

import re
from pathlib import Path

from streamwise.engine.retrieval import RetrievalContext

# Chroma's rule for collection names: 3 to 512 characters of [a-zA-Z0-9._-], starting and ending
# with a letter or digit.
_COLLECTION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]")
# A relative folder name under the Faiss directory: plain path segments, no `..`, no `~`.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,254}")


def flow_namespace(context: RetrievalContext, node_id: str) -> str:
    """The namespace of a node that keeps its own entries (memory, embedded): chatflow and node."""
    return f"{context.chatflow_id}/{node_id}"


def valid_collection(name: str) -> bool:
    return _COLLECTION.fullmatch(name) is not None and ".." not in name


def confined_folder(given: str, root: Path) -> Path | None:
    """The folder `given` names inside `root` (relative to it, or absolute inside it), or None.

    Symbolic links are resolved first, so a link out of `root` is refused like any other escape; the
    caller gives one refusal for every reason, so that no answer tells what exists on the disk.
    """
    if not given or "\0" in given or len(given) > 1024 or given.startswith("~"):
        return None
    requested = Path(given)
    if not requested.is_absolute():
        if not all(_SEGMENT.fullmatch(part) for part in requested.parts):
            return None
        requested = root / requested
    try:
        base = root.resolve()
        resolved = requested.resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        return None
    if resolved == base or not resolved.is_relative_to(base):
        return None
    return resolved
