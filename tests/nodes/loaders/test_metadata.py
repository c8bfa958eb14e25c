"""The inputs every loader shares: textSplitter, metadata, omitMetadataKeys."""

from __future__ import annotations

from typing import Any

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import csv_file, docx_file, json_file, pdf_file, plain_text, text_file
from streamwise.nodes.loaders.base import omit_paths
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import recursive_character
from tests.nodes.loaders.helpers import load, uploaded

LOADERS: list[tuple[Any, str, str]] = [
    (text_file, "txtFile", "sample.txt"),
    (pdf_file, "pdfFile", "sample.pdf"),
    (csv_file, "csvFile", "sample.csv"),
    (json_file, "jsonFile", "sample.json"),
    (docx_file, "docxFile", "sample.docx"),
]


@pytest.mark.parametrize(("module", "key", "name"), LOADERS)
def test_metadata_is_merged_into_every_document_over_the_loaders_keys(
    services: NodeServices, module: Any, key: str, name: str
) -> None:
    node_inputs = {key: uploaded(name), "metadata": '{"team": "docs", "source": "handbook"}'}

    documents = load(module.build("loader_0", node_inputs, services))

    assert documents
    assert all(d.metadata["team"] == "docs" and d.metadata["source"] == "handbook" for d in documents)


@pytest.mark.parametrize(("module", "key", "name"), LOADERS)
def test_a_splitter_attached_to_any_loader_gives_chunks_with_its_metadata(
    services: NodeServices, module: Any, key: str, name: str
) -> None:
    splitter = recursive_character.build("split_0", {"chunkSize": 30, "chunkOverlap": 5}, services)
    node_inputs = {key: uploaded(name), "textSplitter": splitter, "metadata": {"team": "docs"}}

    chunks = load(module.build("loader_0", node_inputs, services))
    whole = load(module.build("loader_0", {key: uploaded(name)}, services))

    assert len(chunks) > len(whole)
    assert all(len(chunk.page_content) <= 30 for chunk in chunks if " " in chunk.page_content)
    assert all("lines" in chunk.metadata["loc"] and chunk.metadata["team"] == "docs" for chunk in chunks)
    assert {chunk.metadata["source"] for chunk in chunks} == {name}


def test_omitted_keys_go_nested_ones_too_and_star_keeps_only_the_given_metadata(
    services: NodeServices,
) -> None:
    base = {"pdfFile": uploaded("sample.pdf"), "metadata": {"team": "docs"}}

    kept = load(pdf_file.build("p", {**base, "omitMetadataKeys": "pdf.info, loc ,page"}, services))[0]
    only = load(pdf_file.build("p", {**base, "omitMetadataKeys": "*"}, services))[0]
    nothing = load(
        pdf_file.build("p", {"pdfFile": uploaded("sample.pdf"), "omitMetadataKeys": "*"}, services)
    )[0]

    assert kept.metadata == {"source": "sample.pdf", "pdf": {"totalPages": 4}, "team": "docs"}
    assert only.metadata == {"team": "docs"}
    assert nothing.metadata == {}


def test_omit_paths_copies_what_it_changes() -> None:
    original = {"a": {"b": 1, "c": 2}, "d": 3, "x.y": 4}

    assert omit_paths(original, ["a.b", "x.y", "nope.deeper", "d.e"]) == {"a": {"c": 2}, "d": 3}
    assert original == {"a": {"b": 1, "c": 2}, "d": 3, "x.y": 4}


@pytest.mark.parametrize("metadata", ["not json", "[1, 2]", '"text"', 42])
def test_metadata_that_is_not_a_json_object_is_refused_at_build(
    services: NodeServices, metadata: object
) -> None:
    with pytest.raises(NodeConfigError, match=r"^Node plainText_0: input 'metadata' must be a JSON object$"):
        plain_text.build("plainText_0", {"text": "x", "metadata": metadata}, services)


def test_a_text_splitter_input_must_be_a_splitter(services: NodeServices) -> None:
    with pytest.raises(NodeConfigError, match="input 'textSplitter' must be a TextSplitter node"):
        text_file.build("textFile_0", {"textSplitter": object()}, services)


def test_every_loader_builds_with_no_files_and_loads_nothing(services: NodeServices) -> None:
    # A chatflow is saved before any file is uploaded, and built for every prediction.
    for module, _key, _name in LOADERS:
        assert load(module.build("loader_0", {}, services)) == []
