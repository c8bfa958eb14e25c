"""No request may freeze the server: while the largest accepted chatflow is saved and the largest
accepted history is sent to a model, `/api/v1/ping` keeps answering.

The server and the model stub run in processes of their own, so that the test's own work (building
ten megabytes of JSON) cannot stall them through this interpreter's lock. The bound here is
generous, for shared CI machines; `bench/` reports the exact figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.flows import chain_flow, fake_flow, node, openai_model
from tests.support.openai_stub import serve_in_subprocess
from tests.support.process import PingProbe, started
from tests.support.server import free_port

MAX_BODY = 10 * 1024 * 1024
PING_BOUND = 0.25  # seconds; the requirement is 50 ms, measured exactly by the benchmark


def largest_chatflow() -> bytes:
    """1,000 nodes (the default limit) filling the 10 MiB body limit."""
    flow = json.loads(fake_flow(tokens=["ok"]))
    filler = "x" * 10_200
    flow["nodes"].extend(node(f"memory_{i}", "bufferMemory", "Memory", {"note": filler}) for i in range(998))
    body = json.dumps({"name": "largest", "flowData": json.dumps(flow)}).encode()
    assert MAX_BODY * 0.9 < len(body) <= MAX_BODY, len(body)
    return body


def largest_history() -> bytes:
    """1,000 turns (the default limit) filling the 10 MiB body limit."""
    turn = "y" * 10_300
    history = [{"role": "userMessage" if i % 2 == 0 else "apiMessage", "content": turn} for i in range(1000)]
    body = json.dumps({"question": "q", "history": history}).encode()
    assert MAX_BODY * 0.9 < len(body) <= MAX_BODY, len(body)
    return body


def test_ping_keeps_answering_while_the_largest_chatflow_is_saved_and_the_largest_history_sent(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    chatflow_body, history_body = largest_chatflow(), largest_history()
    with serve_in_subprocess(tokens=5) as stub, started(tmp_path, port), httpx.Client(timeout=60) as client:
        chat = client.post(
            f"{base}/api/v1/chatflows",
            json={"name": "history", "flowData": chain_flow(openai_model(stub.base_url))},
        ).json()["id"]
        client.get(f"{base}/api/v1/ping")
        with PingProbe(base) as saving:
            for _ in range(3):
                saved = client.post(
                    f"{base}/api/v1/chatflows",
                    content=chatflow_body,
                    headers={"content-type": "application/json"},
                )
                assert saved.status_code == 200, saved.text[:300]
        with PingProbe(base) as sending:
            for _ in range(3):
                answered = client.post(
                    f"{base}/api/v1/prediction/{chat}",
                    content=history_body,
                    headers={"content-type": "application/json"},
                )
                assert answered.status_code == 200 and answered.json()["text"] == "t0 t1 t2 t3 t4 "
        sent = client.get(f"{stub.url}/_stub/requests").json()
    assert len(sent[-1]["body"]["messages"]) == 1002  # system, the whole history, the question
    assert len(saving.latencies or []) > 3 and len(sending.latencies or []) > 3
    assert saving.worst < PING_BOUND, sorted(saving.latencies or [])[-5:]
    assert sending.worst < PING_BOUND, sorted(sending.latencies or [])[-5:]
