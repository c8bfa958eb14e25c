"""Loader and splitter nodes in a Flowise graph: references resolved, uploads injected by suffix."""

from __future__ import annotations

import json

from streamwise.engine.build import build_nodes
from streamwise.engine.graph import parse_flow_data
from streamwise.engine.indexing import files_by_loader
from streamwise.engine.retrieval import DocumentLoader, UploadedFile
from streamwise.nodes.loaders import (
    csv_file,
    docx_file,
    folder_files,
    json_file,
    pdf_file,
    plain_text,
    text_file,
)
from streamwise.nodes.registry import NodeRegistry
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters import character, markdown, recursive_character, token
from tests.nodes.loaders.helpers import FIXTURES, data_url
from tests.support.flows import edge, node, ref

LOADERS = (plain_text, text_file, pdf_file, csv_file, json_file, docx_file, folder_files)
# A graph needs an answering node: this stand-in takes the loaders, as a vector store would.
COLLECTOR = NodeSpec(
    name="collectDocuments",
    label="Collect documents (tests only)",
    category="Chains",
    build=lambda node_id, node_inputs, services: node_inputs.get("document"),
    honoured=("document",),
    answers=True,
)
SPECS = [module.SPEC for module in (*LOADERS, recursive_character, character, markdown, token)] + [COLLECTOR]


def flow() -> str:
    nodes = [
        node("recursiveCharacterTextSplitter_0", "recursiveCharacterTextSplitter", "Text Splitters",
             {"chunkSize": "80", "chunkOverlap": "10", "separators": ""}),
        node("textFile_0", "textFile", "Document Loaders",
             {"txtFile": data_url("sample.md"), "textSplitter": ref("recursiveCharacterTextSplitter_0"),
              "metadata": "", "omitMetadataKeys": ""}),
        node("pdfFile_0", "pdfFile", "Document Loaders",
             {"pdfFile": "", "usage": "perPage", "legacyBuild": "", "textSplitter": "",
              "metadata": '{"kind": "pdf"}'}),
        node("collect_0", "collectDocuments", "Chains", {"document": [ref("textFile_0"), ref("pdfFile_0")]}),
    ]  # fmt: skip
    edges = [
        edge("recursiveCharacterTextSplitter_0", "textFile_0", "textSplitter"),
        edge("textFile_0", "collect_0", "document"),
        edge("pdfFile_0", "collect_0", "document"),
    ]
    return json.dumps({"nodes": nodes, "edges": edges})


def test_a_flow_builds_its_loaders_and_uploads_go_to_the_loader_of_their_type(services: NodeServices) -> None:
    registry = NodeRegistry(SPECS, services)
    graph = parse_flow_data(flow(), registry)
    upload = UploadedFile("report.pdf", FIXTURES / "sample.pdf", "application/pdf")

    instances = build_nodes(graph, registry, None, files_by_loader(graph, registry, [upload]))

    text_loader, pdf_loader = instances["textFile_0"], instances["pdfFile_0"]
    assert isinstance(text_loader, DocumentLoader) and isinstance(pdf_loader, DocumentLoader)
    chunks = list(text_loader.load())
    assert len(chunks) > 1 and all(len(chunk.page_content) <= 80 for chunk in chunks)
    assert chunks[0].page_content.endswith("## Install")
    assert chunks[0].metadata == {"source": "sample.md", "loc": {"lines": {"from": 1, "to": 5}}}
    pages = list(pdf_loader.load())
    assert [(page.metadata["source"], page.metadata["page"], page.metadata["kind"]) for page in pages] == [
        ("report.pdf", 1, "pdf"),
        ("report.pdf", 2, "pdf"),
        ("report.pdf", 4, "pdf"),
    ]


def test_a_saved_flow_with_no_files_builds_and_loads_nothing(services: NodeServices) -> None:
    registry = NodeRegistry(SPECS, services)
    graph = parse_flow_data(flow(), registry)

    instances = build_nodes(graph, registry)

    pdf_loader = instances["pdfFile_0"]
    assert isinstance(pdf_loader, DocumentLoader) and list(pdf_loader.load()) == []
