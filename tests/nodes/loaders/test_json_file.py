"""jsonFile: strings as documents, chosen by pointers, with metadata from JSON pointers."""

from __future__ import annotations

import json

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import json_file
from streamwise.nodes.loaders.json_file import js_values, strings
from streamwise.nodes.services import NodeServices
from tests.nodes.loaders.helpers import assert_clean_message, data_url, load, uploaded


def test_without_pointers_every_string_is_a_document(services: NodeServices) -> None:
    documents = load(json_file.build("jsonFile_0", {"jsonFile": uploaded("sample.json")}, services))

    texts = [document.page_content for document in documents]
    assert texts[:6] == [
        "Uploading files",
        "Upload a PDF, a Word document or a CSV file to the upsert endpoint.",
        "https://example.com/docs/upload",
        "upload",
        "files",
        "Ada",
    ]
    assert len(texts) == 18  # numbers (the ids) are never documents
    assert [document.metadata["line"] for document in documents] == list(range(1, 19))
    assert documents[0].metadata == {"source": "sample.json", "line": 1}


def test_pointers_choose_the_strings_and_metadata_pointers_resolve_per_item(services: NodeServices) -> None:
    node_inputs = {
        "jsonFile": data_url("sample.json", "application/json"),
        "pointersName": "title, body",
        "metadata": json.dumps({"url": "/url", "team": "/author/team", "missing": "/nope", "kind": "doc"}),
    }

    documents = load(json_file.build("jsonFile_0", node_inputs, services))

    assert [document.page_content for document in documents] == [
        "Uploading files",
        "Upload a PDF, a Word document or a CSV file to the upsert endpoint.",
        "Splitting text",
        "Text splitters cut documents into chunks of about a thousand characters.",
        "Asking questions",
        "A retrieval chain finds the chunks closest to the question and answers from them.",
    ]
    assert documents[2].metadata == {
        "source": "sample.json",
        "line": 3,
        "url": "https://example.com/docs/split",
        "team": "engine",
        "kind": "doc",
    }


def test_omitting_all_keys_keeps_the_ones_the_metadata_input_names(services: NodeServices) -> None:
    node_inputs = {
        "jsonFile": uploaded("sample.json"),
        "pointersName": "title",
        "metadata": {"url": "/url", "kind": "doc"},
        "omitMetadataKeys": "*",
    }

    documents = load(json_file.build("j", node_inputs, services))

    assert dict(documents[0].metadata) == {
        "url": "https://example.com/docs/upload",
        "kind": "doc",
    }


def test_separate_by_object_makes_one_key_value_document_per_object(services: NodeServices) -> None:
    documents = load(
        json_file.build("j", {"jsonFile": uploaded("sample.json"), "separateByObject": True}, services)
    )

    assert len(documents) == 3
    assert documents[0].page_content == (
        "id: 1\ntitle: Uploading files\n"
        "body: Upload a PDF, a Word document or a CSV file to the upsert endpoint.\n"
        "url: https://example.com/docs/upload\n"
        'tags: ["upload","files"]\n'
        "author.name: Ada\nauthor.team: docs"
    )


def test_a_single_string_document_has_no_line(services: NodeServices) -> None:
    content = json.dumps({"answer": "forty-two", "n": 42, "ok": True, "empty": ""}).encode()

    documents = load(json_file.build("j", {"jsonFile": data_url("one.json", content=content)}, services))

    assert [(d.page_content, dict(d.metadata)) for d in documents] == [("forty-two", {"source": "one.json"})]


def test_strings_follow_flowise_pointer_rules() -> None:
    item = {"a": {"b": "under a", "c": ["x", {"d": "deep"}]}, "e": "not targeted", "f": {"a": "nested a"}}

    # "f" is not targeted, but its own "a" is: Flowise takes it too.
    assert strings(item, ["/a"], False) == ["under a", "x", "deep", "nested a"]
    assert strings(item, [], True) == ["under a", "x", "deep", "not targeted", "nested a"]
    assert strings([{"a": "first", "b": "skipped"}, {"a": "second"}], ["/a"], False) == ["first", "second"]
    assert strings(item, ["/zzz"], False) == []


def test_object_values_come_in_javascript_order() -> None:
    assert js_values({"b": 1, "2": 2, "a": 3, "1": 4}) == [4, 2, 1, 3]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.json", b"  \n", "is empty"),
        ("broken.json", b'{"a": ', "is not valid JSON (Expecting value: line 1 column 7 (char 6))"),
        ("sample.pdf", None, "is a PDF document, not a JSON file"),
    ],
)
def test_files_that_are_not_json_are_refused_naming_the_file(
    services: NodeServices, name: str, content: bytes | None, problem: str
) -> None:
    loader = json_file.build("jsonFile_0", {"jsonFile": data_url(name, content=content)}, services)

    with pytest.raises(NodeConfigError) as caught:
        load(loader)

    assert str(caught.value) == f"Node jsonFile_0: file {name!r} {problem}"
    assert_clean_message(str(caught.value))
