"""End to end on the real embedded models: the "Ask your documents" chatflow that a first start
creates, fed by `streamwise ingest` and by a multipart upsert while the server runs, answers with the
right passage among its sources (local embeddings are deterministic even when SmolLM2's words are
not), and still does after the server is restarted on the same data directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwise.seed import DOCS_NAME
from tests.support.flows import enable_overrides
from tests.support.process import REPO, started
from tests.support.server import free_port
from tests.support.sse import check_invariant, parse_frames

# Four answers of SmolLM2 over prompts of three passages each: about 20 s on a quiet machine, and
# several times that on two busy cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CORPUS = REPO / "tests" / "fixtures" / "corpus"
ASK_LENS = "Who built a lens of glass prisms for lighthouses in 1823, and how far could it be seen?"
ASK_BEES = "How long does a worker bee live in summer?"
ASK_CASTLING = "When is castling allowed in chess?"


def documents_flow(base: str) -> str:
    listed = httpx.get(f"{base}/api/v1/chatflows", timeout=10).json()
    [flow] = [flow for flow in listed if flow["name"] == DOCS_NAME]
    chatflow_id: str = flow["id"]
    return chatflow_id


def ingest(data_dir: Path, chatflow_id: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMWISE_DATA_DIR": str(data_dir)}
    env.pop("STREAMWISE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "streamwise", "ingest", chatflow_id, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def ask(base: str, chatflow_id: str, question: str, chat_id: str) -> tuple[str, list[dict[str, Any]]]:
    body = {"question": question, "chatId": chat_id, "streaming": True, "overrideConfig": {"maxTokens": 24}}
    response = httpx.post(f"{base}/api/v1/prediction/{chatflow_id}", json=body, timeout=180)
    assert response.status_code == 200, response.text
    frames = parse_frames(response.content)
    text = check_invariant(frames)
    events = [frame.event for frame in frames]
    assert events[0] == "start" and events[-3:] == ["sourceDocuments", "metadata", "end"], events
    assert "token" in events and text.strip()  # a real answer; its words are never asserted
    sources: list[dict[str, Any]] = frames[-3].data
    return text, sources


def found(sources: list[dict[str, Any]], source: str, phrase: str) -> bool:
    return any(
        document["metadata"].get("source") == source and phrase in document["pageContent"]
        for document in sources
    )


def test_ingested_documents_are_found_answered_from_and_kept_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    text_files = sorted(p for p in CORPUS.iterdir() if p.name != "chess.txt")
    with started(tmp_path, port, env={"STREAMWISE_NODE_MODULES": ""}):
        chatflow_id = documents_flow(base)
        enable_overrides(base, chatflow_id, "chatLocalModel", "maxTokens")
        # The command line, on the server's own data directory while the server runs.
        done = ingest(tmp_path, chatflow_id, *text_files)
        assert done.returncode == 0, done.stderr
        assert f"{len(text_files)} file(s) to read" in done.stdout
        added = re.search(r": (\d+) added, 0 already there", done.stdout)
        assert added and int(added[1]) > len(text_files), done.stdout  # lighthouses.txt is two chunks
        # And a file sent over HTTP, as curl -F files=@chess.txt does.
        with (CORPUS / "chess.txt").open("rb") as handle:
            upserted = httpx.post(
                f"{base}/api/v1/vector/upsert/{chatflow_id}",
                files={"files": ("chess.txt", handle, "text/plain")},
                timeout=120,
            )
        assert upserted.status_code == 200, upserted.text
        assert upserted.json()["numAdded"] == 1
        assert upserted.json()["addedDocs"][0]["metadata"]["source"] == "chess.txt"

        answer, sources = ask(base, chatflow_id, ASK_LENS, "lens")
        assert found(sources, "lighthouses.txt", "Fresnel"), sources
        _, sources = ask(base, chatflow_id, ASK_CASTLING, "castling")
        assert found(sources, "chess.txt", "castling"), sources
        history = httpx.get(
            f"{base}/api/v1/chatmessage/{chatflow_id}", params={"chatId": "lens"}, timeout=10
        ).json()
        assert history[1]["content"] == answer
        assert found(history[1]["sourceDocuments"], "lighthouses.txt", "Fresnel")

    again = ingest(tmp_path, chatflow_id, *text_files)  # nothing new: every chunk is already there
    assert again.returncode == 0 and f": 0 added, {added[1]} already there" in again.stdout, again.stdout

    with started(tmp_path, port, env={"STREAMWISE_NODE_MODULES": ""}):
        assert documents_flow(base) == chatflow_id  # a second start seeds nothing new
        _, sources = ask(base, chatflow_id, ASK_BEES, "bees")
        assert found(sources, "bees.md", "six weeks"), sources
        _, sources = ask(base, chatflow_id, ASK_LENS, "lens-again")
        assert found(sources, "lighthouses.txt", "Fresnel"), sources
