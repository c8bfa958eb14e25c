"""kill -9 during 20 streams, then restart: every question is stored, with the answer saved so far
(a prefix of what its client received), marked "interrupted". A real server process, real sockets."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.support.flows import chain_flow, openai_model
from tests.support.openai_stub import serve_in_subprocess
from tests.support.process import started
from tests.support.server import free_port

STREAMS = 20


def received_text(raw: bytes) -> str:
    """The tokens of every complete frame (the connection died mid-stream, maybe mid-frame)."""
    text = []
    for block in raw.split(b"\n\n")[:-1]:
        if block.startswith(b"message:\ndata:"):
            frame = json.loads(block.split(b"\n")[1][len(b"data:") :])
            if frame["event"] == "token":
                text.append(frame["data"])
    return "".join(text)


def test_kill_9_mid_stream_then_restart_keeps_every_question_and_its_partial_answer(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    received: dict[str, bytearray] = {f"crash-{n}": bytearray() for n in range(STREAMS)}
    flowing = threading.Barrier(STREAMS + 1, timeout=60)

    def client(chat_id: str) -> None:
        arrived = False
        try:
            with (
                httpx.Client(timeout=60) as http,
                http.stream(
                    "POST",
                    f"{base}/api/v1/prediction/{chatflow_id}",
                    json={"question": f"question of {chat_id}", "streaming": True, "chatId": chat_id},
                ) as response,
            ):
                for chunk in response.iter_bytes():
                    received[chat_id] += chunk
                    if not arrived and received[chat_id].count(b'"event":"token"') >= 5:
                        arrived = True
                        flowing.wait()
        except httpx.HTTPError:
            pass  # the server died under us: expected
        finally:
            if not arrived:
                flowing.abort()

    with serve_in_subprocess(tokens=100_000, delay=0.002) as stub:
        with started(tmp_path, port) as server:
            chatflow_id = httpx.post(
                f"{base}/api/v1/chatflows",
                json={"name": "crash", "flowData": chain_flow(openai_model(stub.base_url))},
            ).json()["id"]
            threads = [threading.Thread(target=client, args=(chat,)) for chat in received]
            for thread in threads:
                thread.start()
            flowing.wait()  # every stream has tokens flowing
            time.sleep(2.5)  # past two checkpoints of the growing answers
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)
            for thread in threads:
                thread.join(30)
        assert server.returncode == -signal.SIGKILL

        with started(tmp_path, port):
            stored = {
                chat: httpx.get(f"{base}/api/v1/chatmessage/{chatflow_id}", params={"chatId": chat}).json()
                for chat in received
            }

    for chat, raw in received.items():
        rows = stored[chat]
        assert [(row["role"], row["status"]) for row in rows] == [
            ("userMessage", "complete"),
            ("apiMessage", "interrupted"),
        ], (chat, rows)
        assert rows[0]["content"] == f"question of {chat}"
        client_saw = received_text(bytes(raw))
        assert rows[1]["content"], chat  # at least one checkpoint landed
        assert client_saw.startswith(rows[1]["content"]), (chat, rows[1]["content"][-40:], client_saw[-40:])
