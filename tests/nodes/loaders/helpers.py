"""The shipped document fixtures, and Flowise-style file input values made from them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from streamwise.engine.retrieval import Document, DocumentLoader, UploadedFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "documents"


def data_url(name: str, media_type: str = "application/octet-stream", content: bytes | None = None) -> str:
    """Flowise's file value: `data:<mime>;base64,<data>,filename:<name>`."""
    raw = (FIXTURES / name).read_bytes() if content is None else content
    return f"data:{media_type};base64,{base64.b64encode(raw).decode()},filename:{name}"


def data_urls(*values: str) -> str:
    """Several files, as Flowise stores them: a JSON array of data URLs, as a string."""
    return json.dumps(list(values))


def uploaded(name: str, path: Path | None = None) -> list[UploadedFile]:
    """What the server injects for an upload it saved (`name` as the client sent it)."""
    return [UploadedFile(name, path or FIXTURES / name)]


def load(loader: object) -> list[Document]:
    assert isinstance(loader, DocumentLoader)
    return list(loader.load())


def assert_clean_message(message: str) -> None:
    """A message for the client: no traceback, no exception class names, no server paths."""
    for leak in ("Traceback", "Error(", 'File "', str(FIXTURES), "/tmp/", "site-packages"):
        assert leak not in message, message
