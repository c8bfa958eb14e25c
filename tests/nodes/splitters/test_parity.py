"""Chunks equal LangChain JS's (what Flowise makes) for the same corpus and settings.

The expected chunks were made once with @langchain/textsplitters 1.0.1, Flowise's pin, by
tests/fixtures/documents/splitter_parity/generate.mjs (see it for how to make them again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamwise.engine.retrieval import Document, TextSplitter
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import character, markdown, recursive_character, token

PARITY = Path(__file__).resolve().parents[2] / "fixtures" / "documents" / "splitter_parity"
EXPECTED: dict[str, Any] = json.loads((PARITY / "expected.json").read_text())
NODES: dict[str, Any] = {
    "recursiveCharacterTextSplitter": recursive_character,
    "characterTextSplitter": character,
    "markdownTextSplitter": markdown,
    "tokenTextSplitter": token,
}
CASES = EXPECTED["cases"]


def test_the_fixture_is_what_its_generator_says() -> None:
    assert EXPECTED["versions"]["@langchain/textsplitters"] == "1.0.1"
    assert EXPECTED["documents"][0]["pageContent"] == (PARITY / "corpus.md").read_text()
    assert {case["node"] for case in CASES} == set(NODES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['node']}-{json.dumps(c['options'])}" for c in CASES])
def test_chunks_and_their_metadata_equal_langchain_js(case: dict[str, Any]) -> None:
    node_inputs = dict(case["options"])
    if "separators" in node_inputs:  # Flowise's input is the JSON text
        node_inputs["separators"] = json.dumps(node_inputs["separators"])
    splitter = NODES[case["node"]].build("split_0", node_inputs, NodeServices(env={}))
    documents = [Document(doc["pageContent"], doc["metadata"]) for doc in EXPECTED["documents"]]

    assert isinstance(splitter, TextSplitter)
    chunks = [chunk.to_json() for chunk in splitter.split(documents)]

    assert chunks == case["chunks"]
