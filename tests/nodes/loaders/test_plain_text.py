"""plainText: the node's text as one document, with no metadata of its own (as in Flowise)."""

from __future__ import annotations

from streamwise.nodes.loaders import plain_text
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import character
from tests.nodes.loaders.helpers import load


def test_the_text_is_one_document_with_only_the_given_metadata(services: NodeServices) -> None:
    bare = load(plain_text.build("plainText_0", {"text": "Hello there."}, services))
    tagged = load(
        plain_text.build("plainText_0", {"text": "Hi", "metadata": '{"topic": "greeting"}'}, services)
    )

    assert [(d.page_content, dict(d.metadata)) for d in bare] == [("Hello there.", {})]
    assert [dict(d.metadata) for d in tagged] == [{"topic": "greeting"}]


def test_an_empty_text_loads_nothing(services: NodeServices) -> None:
    assert load(plain_text.build("plainText_0", {"text": ""}, services)) == []
    assert load(plain_text.build("plainText_0", {}, services)) == []


def test_a_connected_splitter_splits_the_text(services: NodeServices) -> None:
    splitter = character.build("split_0", {"chunkSize": 10, "chunkOverlap": 0, "separator": " "}, services)
    loader = plain_text.build(
        "plainText_0", {"text": "one two three four five", "textSplitter": [splitter]}, services
    )

    chunks = load(loader)

    assert [chunk.page_content for chunk in chunks] == ["one two", "three four", "five"]
    assert all(chunk.metadata == {"loc": {"lines": {"from": 1, "to": 1}}} for chunk in chunks)
