"""A loader node's file input: Flowise data URLs from the flow or request, or uploads the server saved.

A file input's value may be
- a Flowise data URL, `data:<mime>;base64,<data>,filename:<name>` (what Flowise's UI stores);
- a JSON array of such data URLs, as a string (Flowise's several files);
- one `UploadedFile`, or a list of them: only the server puts these in (multipart uploads it saved,
  files named to `streamwise ingest`), so a path never comes from a request.
Any other string is refused: a loader never reads a path a chatflow or request names, and Flowise's
`FILE-STORAGE::` references point into a storage Streamwise does not have.

Nothing is decoded or read when the node is built (a chatflow is built just to validate it when it is
saved); `FileInput.read` and `open` do that when the loader loads, and refuse a file over the size
limit before reading it.
"""

from __future__ import annotations

import binascii
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from streamwise.engine.retrieval import UploadedFile
from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices

MAX_FILE_BYTES = 50 * 1024 * 1024  # per file; the server may set `max_document_bytes` on its services
_FILENAME_MARK = ",filename:"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def max_file_bytes(services: NodeServices) -> int:
    """The per-file limit: the services' `max_document_bytes` when the server sets one, else 50 MiB."""
    limit = getattr(services, "max_document_bytes", None)
    return limit if isinstance(limit, int) and limit > 0 else MAX_FILE_BYTES


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    return f"{size / 1024:g} KiB" if size >= 1024 else f"{size} bytes"


def file_error(node_id: str, name: str, problem: str, detail: str | None = None) -> NodeConfigError:
    """The error for a file the user can fix: it names the node and the file, never a path."""
    return NodeConfigError(f"Node {node_id}: file {name[:200]!r} {problem}", node_id, detail=detail)


@dataclass(frozen=True)
class FileInput:
    """One file to load, not read yet: either an upload on disk (`path`) or a data URL's payload
    (`data`, from `start`, base64 or percent-encoded)."""

    node_id: str
    name: str
    limit: int
    path: Path | None = None
    data: str | None = None
    start: int = 0
    end: int = 0
    base64: bool = True
    media_type: str | None = None

    def read(self) -> bytes:
        """The whole file, after checking its size (before reading or decoding it)."""
        if self.path is not None:
            self._check_size(self._disk_size())
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise file_error(self.node_id, self.name, "could not be read", repr(exc)) from None
        return self._decode()

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """A binary stream over the file (on disk it is read as the parser goes)."""
        if self.path is None:
            with io.BytesIO(self._decode()) as memory:
                yield memory
            return
        self._check_size(self._disk_size())
        try:
            disk = self.path.open("rb")
        except OSError as exc:
            raise file_error(self.node_id, self.name, "could not be read", repr(exc)) from None
        with disk:
            yield disk

    def _disk_size(self) -> int:
        assert self.path is not None
        try:
            return self.path.stat().st_size
        except OSError as exc:
            raise file_error(self.node_id, self.name, "could not be read", repr(exc)) from None

    def _check_size(self, size: int) -> None:
        if size > self.limit:
            raise file_error(
                self.node_id, self.name, f"is larger than the {_size(self.limit)} limit for a document"
            )

    def _decode(self) -> bytes:
        assert self.data is not None
        payload_chars = self.end - self.start
        # Checked on the encoded length: nothing is decoded for a file that is too large.
        self._check_size(payload_chars * 3 // 4 if self.base64 else payload_chars // 3)
        payload = self.data[self.start : self.end]
        if not self.base64:
            data = unquote_to_bytes(payload)
        else:
            # Lenient, as Node's Buffer.from(data, "base64") in Flowise: characters outside base64 are
            # skipped. a2b_base64 reads an ASCII str without copying it to bytes first.
            try:
                data = binascii.a2b_base64(payload) if payload.isascii() else b""
            except (binascii.Error, ValueError):
                data = b""
            if not data and payload.strip():
                raise file_error(self.node_id, self.name, "is not valid base64 data")
        self._check_size(len(data))
        return data


def _safe_name(raw: str, fallback: str) -> str:
    """A file name for metadata and messages: its last path part, no control characters, bounded."""
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = _UNSAFE_NAME.sub("", name).strip()[:255]
    return name or fallback


def _not_a_file(node_id: str, key: str) -> NodeConfigError:
    return NodeConfigError(
        f"Node {node_id}: input {key!r} must be an uploaded file or Flowise data URLs "
        "(data:<type>;base64,<data>,filename:<name>); a path or other text is not read",
        node_id,
    )


def _from_data_url(node_id: str, key: str, value: str, limit: int) -> FileInput:
    mark = value.rfind(_FILENAME_MARK)
    end = mark if mark >= 0 else len(value)
    name = _safe_name(value[mark + len(_FILENAME_MARK) :], "upload") if mark >= 0 else "upload"
    comma = value.find(",", 0, end)
    header = value[5:comma] if comma >= 0 else ""
    if comma < 0 or len(header) > 300:
        raise _not_a_file(node_id, key)
    parts = [part.strip() for part in header.split(";")]
    media_type = parts[0].lower() or None
    is_base64 = any(part.lower() == "base64" for part in parts[1:])
    return FileInput(
        node_id, name, limit, data=value, start=comma + 1, end=end, base64=is_base64, media_type=media_type
    )


def _strings(node_id: str, key: str, value: str) -> list[str]:
    """A Flowise file value: one data URL, or a JSON array of them; empty entries are skipped."""
    if value.startswith("FILE-STORAGE::"):
        raise NodeConfigError(
            f"Node {node_id}: input {key!r} refers to a file in Flowise's storage, which Streamwise does "
            "not have: upload the file with the request, or give it as a data URL",
            node_id,
        )
    if value.startswith("[") and value.endswith("]"):
        try:
            items = json.loads(value)
        except ValueError:
            raise _not_a_file(node_id, key) from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise _not_a_file(node_id, key)
        return [item for item in items if item]
    return [value]


def file_inputs(node_id: str, key: str, value: Any, limit: int) -> tuple[FileInput, ...]:
    """The files a loader's input `key` holds; none when it is empty (files may come at upsert time)."""
    if value is None or value == "":
        return ()
    items: Sequence[Any] = value if isinstance(value, list | tuple) else [value]
    found: list[FileInput] = []
    for item in items:
        if isinstance(item, UploadedFile):
            name = _safe_name(item.name, item.path.name)
            found.append(FileInput(node_id, name, limit, path=Path(item.path), media_type=item.media_type))
            continue
        if not isinstance(item, str):
            raise _not_a_file(node_id, key)
        for text in _strings(node_id, key, item):
            if not text.startswith("data:"):
                raise _not_a_file(node_id, key)
            found.append(_from_data_url(node_id, key, text, limit))
    return tuple(found)


# What a file's first bytes say it is, for refusing binary files given to a text-based loader.
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (such as a DOCX file)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def binary_kind(head: bytes) -> str | None:
    """What kind of binary file starts with `head`, or None when it may be text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def text_encoding(node_id: str, name: str, head: bytes, expected: str) -> tuple[str, int]:
    """The encoding of a text file from its first bytes (a BOM, else UTF-8) and the BOM's length;
    a file that is binary is refused, saying what it looks like and what kind of file was expected."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    kind = binary_kind(head)
    if kind is not None:
        raise file_error(node_id, name, f"is {kind}, not {expected}")
    if b"\x00" in head:
        raise file_error(node_id, name, f"is binary data, not {expected}")
    return "utf-8", 0


def decode_text(node_id: str, name: str, data: bytes, expected: str = "a text file") -> str:
    """A whole text file as str: UTF-8 (or UTF-16 with a BOM); binary or other encodings refused."""
    encoding, skip = text_encoding(node_id, name, data[:64], expected)
    if encoding == "utf-8" and data.find(b"\x00") >= 0:
        raise file_error(node_id, name, f"is binary data, not {expected}")
    try:
        return data[skip:].decode(encoding) if skip else data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise file_error(
            node_id, name, f"is not {expected} in UTF-8 (or UTF-16 with a byte order mark)", repr(exc)[:300]
        ) from None
