"""The clients people use, unchanged, against a scale-out deployment: the `flowise` Python SDK, the
`flowise-sdk` npm package and curl, each on either of two API nodes, the answers run by a worker.
Every frame they get carries an `id:` line; they must parse it as they parse a single server's."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flowise import Flowise, PredictionData

from tests.clients.test_npm_sdk import ROOT, run_sdk
from tests.support.cluster import Cluster, cluster
from tests.support.flows import fake_flow
from tests.support.redis import REDIS_URL
from tests.support.sse import parse_frames

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Node:
    base_url: str


TOKENS = ["Once", " upon", " a", " time", " 🐉", "\nend", ' "q" ', "\\"]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("clients")
    with cluster(directory, postgres_url, REDIS_URL, api_nodes=2, workers=1) as shared:
        yield shared


@pytest.fixture(scope="module")
def chatflow_id(two_nodes: Cluster) -> str:
    return two_nodes.create_flow(fake_flow(memory="bufferMemory", tokens=TOKENS))


@pytest.mark.parametrize("node", [0, 1])
def test_the_python_sdk_streams_and_answers_from_either_node(
    two_nodes: Cluster, chatflow_id: str, node: int
) -> None:
    client = Flowise(base_url=two_nodes.api_urls[node])
    chunks = list(
        client.create_prediction(PredictionData(chatflowId=chatflow_id, question="Tell me", streaming=True))
    )
    events = [json.loads(chunk) for chunk in chunks]
    names = [event["event"] for event in events]
    assert names[0] == "start" and names[-2:] == ["metadata", "end"], names
    assert [event["data"] for event in events if event["event"] == "token"] == TOKENS
    [answer] = list(client.create_prediction(PredictionData(chatflowId=chatflow_id, question="Again")))
    assert answer["text"] == "".join(TOKENS) and answer["memoryType"] == "Buffer Memory"
    assert answer["chatMessageId"] and answer["question"] == "Again"


@pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "flowise-sdk").is_dir(),
    reason="needs Node and `npm ci` (make test runs it)",
)
@pytest.mark.parametrize("node", [0, 1])
def test_the_npm_sdk_streams_and_answers_from_either_node(
    two_nodes: Cluster, chatflow_id: str, node: int
) -> None:
    where = Node(two_nodes.api_urls[node])
    events = run_sdk(where, chatflow_id, "Tell me", streaming=True)
    assert events[0]["event"] == "start" and events[-1] == {"event": "end", "data": "[DONE]"}
    assert [event["data"] for event in events if event["event"] == "token"] == TOKENS
    [response] = run_sdk(where, chatflow_id, "Hi", streaming=False)
    assert response["text"] == "".join(TOKENS)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_gets_numbered_flowise_frames_and_the_run_id(two_nodes: Cluster, chatflow_id: str) -> None:
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-N",
            "-D",
            "-",
            "--max-time",
            "30",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"question": "q", "streaming": True}),
            f"{two_nodes.api_urls[1]}/api/v1/prediction/{chatflow_id}",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert b"x-run-id:" in head.lower() and b"text/event-stream" in head.lower()
    frames = parse_frames(body)
    assert [frame.event for frame in frames][-1] == "end"
    assert "".join(frame.data for frame in frames if frame.event == "token") == "".join(TOKENS)
    run_id = head.lower().split(b"x-run-id:", 1)[1].split(b"\r\n", 1)[0].strip().decode()
    ids = [line for line in body.split(b"\n") if line.startswith(b"id:")]
    assert ids == [f"id:{run_id}:{n}".encode() for n in range(1, len(ids) + 1)]
    assert len(ids) == len(frames)
