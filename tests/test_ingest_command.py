"""`streamwise ingest`: files and folders into a chatflow's persistent store, then a server answers
from them; a second run adds nothing; an in-memory store is refused with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from streamwise.app import create_app
from streamwise.settings import Settings
from tests.conftest import FAKE_MODULES
from tests.support.flows import edge, fake_model, node, rag_flow, ref

REPO = Path(__file__).resolve().parents[1]


def embedded_flow() -> str:
    """Text files → recursive splitter → embedded store (scripted embeddings) → retrieval chain."""
    flow = json.loads(rag_flow(fake_model(tokens=["ok"]), store="embeddedVectorStore", top_k=1))
    flow["nodes"] = [n for n in flow["nodes"] if n["id"] != "fakeTextLoader_0"]
    flow["edges"] = [e for e in flow["edges"] if e["source"] != "fakeTextLoader_0"]
    splitter = node(
        "splitter_0", "recursiveCharacterTextSplitter", "Text Splitters", {"chunkSize": 60, "chunkOverlap": 0}
    )
    loader = node("textFile_0", "textFile", "Document Loaders", {"textSplitter": ref("splitter_0")})
    flow["nodes"] += [splitter, loader]
    flow["edges"] += [
        edge("splitter_0", "textFile_0", "textSplitter"),
        edge("textFile_0", "vectorStore_0", "document"),
    ]
    store = next(n for n in flow["nodes"] if n["id"] == "vectorStore_0")
    store["data"]["inputs"]["document"] = [ref("textFile_0")]
    return json.dumps(flow)


def run_ingest(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STREAMWISE_DATA_DIR": str(data_dir),
        "STREAMWISE_NODE_MODULES": ",".join(FAKE_MODULES),
        "PYTHONPATH": str(REPO),
    }
    env.pop("STREAMWISE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "streamwise", "ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


async def test_ingest_fills_the_store_a_server_answers_from_and_adds_nothing_the_second_time(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES)
    docs = tmp_path / "corpus"
    (docs / "sub").mkdir(parents=True)
    (docs / "bananas.txt").write_text("Bananas are yellow and grow in bunches on tall plants.\n")
    (docs / "sub" / "rome.md").write_text("Rome is the capital of Italy and has the Colosseum.\n")
    (docs / ".hidden.txt").write_text("never read")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            created = await client.post(
                "/api/v1/chatflows", json={"name": "docs", "flowData": embedded_flow()}
            )
            chatflow_id = created.json()["id"]

    first = run_ingest(tmp_path, chatflow_id, str(docs))
    assert first.returncode == 0, first.stderr
    assert "2 file(s) to read" in first.stdout and "2 added, 0 already there" in first.stdout
    assert "chunk" in first.stderr  # tqdm's bar
    again = run_ingest(tmp_path, chatflow_id, str(docs / "bananas.txt"))
    assert again.returncode == 0 and "0 added, 1 already there" in again.stdout

    app = create_app(settings)  # a server started afterwards finds the passages
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            answer = await client.post(
                f"/api/v1/prediction/{chatflow_id}", json={"question": "Which capital has the Colosseum?"}
            )
    sources = answer.json()["sourceDocuments"]
    assert sources[0]["metadata"]["source"] == "rome.md"


def test_ingest_refuses_an_in_memory_store_and_an_unknown_chatflow(tmp_path: Path) -> None:
    import asyncio

    settings = Settings(data_dir=tmp_path, seed=False, preload_local_model=False, node_modules=FAKE_MODULES)
    (tmp_path / "a.fake").write_text("line\n")

    async def create() -> str:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=30
            ) as client:
                flow = rag_flow(fake_model(), texts=[])
                created = await client.post("/api/v1/chatflows", json={"name": "mem", "flowData": flow})
                return str(created.json()["id"])

    chatflow_id = asyncio.run(create())
    refused = run_ingest(tmp_path, chatflow_id, str(tmp_path / "a.fake"))
    assert refused.returncode == 2 and "server's memory" in refused.stderr
    unknown = run_ingest(tmp_path, "no-such-flow", str(tmp_path / "a.fake"))
    assert unknown.returncode == 2 and "no chatflow" in unknown.stderr
