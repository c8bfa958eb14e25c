"""The Streamlit app's answer reader: a Stop clicked before the server has answered waits for the
server's answer (when its run exists) before it asks for the abort, so the abort is never lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streamwise.chat_ui.answers import Answer
from tests.support.server import free_port

FRAME = 'message:\ndata:{{"event":"{event}","data":{data}}}\n\n'


class SlowServer:
    """Answers a prediction only after `delay` seconds, then streams until it is aborted."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.log: list[tuple[str, float]] = []
        self.aborted = asyncio.Event()

    def app(self) -> Starlette:
        async def predict(request: Request) -> Response:
            self.log.append(("prediction received", time.monotonic()))
            await asyncio.sleep(self.delay)  # the run does not exist yet
            self.log.append(("run started", time.monotonic()))

            async def frames() -> AsyncIterator[str]:
                yield FRAME.format(event="start", data='""')
                for i in range(200):
                    if self.aborted.is_set():
                        yield FRAME.format(event="abort", data='"[DONE]"')
                        break
                    yield FRAME.format(event="token", data=f'"t{i} "')
                    await asyncio.sleep(0.02)
                yield FRAME.format(event="end", data='"[DONE]"')

            return StreamingResponse(frames(), media_type="text/event-stream")

        async def abort(request: Request) -> Response:
            started = any(name == "run started" for name, _ in self.log)
            self.log.append(("abort", time.monotonic()))
            if started:
                self.aborted.set()
            return JSONResponse({"aborted": 1 if started else 0})

        return Starlette(
            routes=[
                Route("/api/v1/prediction/{chatflow_id}", predict, methods=["POST"]),
                Route("/api/v1/chatmessage/abort/{chatflow_id}/{chat_id}", abort, methods=["PUT"]),
            ]
        )


@pytest.fixture
def slow() -> Iterator[tuple[SlowServer, str]]:
    server = SlowServer(delay=0.8)
    port = free_port()
    config = uvicorn.Config(server.app(), host="127.0.0.1", port=port, log_level="warning", ws="none")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "the slow server did not start"
        time.sleep(0.01)
    yield server, f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


def test_a_stop_before_the_server_answers_aborts_the_run_once_it_exists(slow: tuple[SlowServer, str]) -> None:
    server, base_url = slow
    answer = Answer(base_url, "flow", "chat", "q", timeout=10.0).start()
    time.sleep(0.1)  # the prediction is on its way; the server has not answered
    answer.stop()
    assert answer.wait(10)
    names = [name for name, _ in server.log]
    assert names.index("abort") > names.index("run started"), names
    assert answer.snapshot().status == "aborted"
