"""A run's events as a Flowise-framed SSE response, raced against the client leaving.

Everything that reached the run's log since the last write goes out as one body message, so a
burst of tokens costs one socket write. A silent stream gets a heartbeat comment. When the client
disconnects, the run is cancelled (the model stops) and finishes storing on its own.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from streamwise.engine.run import Run
from streamwise.wire.frames import HEARTBEAT, encode_many

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


class RunEventStream(Response):
    """An ASGI response streaming one run from `cursor` onwards."""

    def __init__(self, run: Run, heartbeat_seconds: float, cursor: int = 0) -> None:
        super().__init__(status_code=200)
        self.run = run
        self.heartbeat_seconds = heartbeat_seconds
        self.cursor = cursor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            async for batch in self.run.log.batches(self.cursor, idle=self.heartbeat_seconds):
                if watcher.done():
                    return
                body = encode_many(batch) if batch else HEARTBEAT
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self.run.cancel("disconnect")  # the socket broke under us: same as leaving
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.run.cancel("disconnect")
                return
