"""A run's events as a Flowise-framed SSE response, raced against the client leaving.

Everything that reached the run's log since the last write goes out as one body message, so a
burst of tokens costs one socket write. A silent stream gets a heartbeat comment. When the client
disconnects, the run is cancelled (the model stops) and finishes storing on its own.

A client that stops reading (its socket full, the write blocked) while the run goes on would make
the server hold everything the run emits: once it is `stream_buffer_bytes` behind, the log cuts it
off, this response ends without completing (the server closes the connection), and the run is left
to finish and be stored.

Every frame carries its `id:` (`<run id>:<n>`), and the response an `X-Run-Id` header: a client that
lost its connection resumes with `Last-Event-ID` from the event after the last one it saw. A reader
that `detach`es leaves the run going when it hangs up (so it can be resumed); otherwise hanging up
stops the run, as in Flowise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from streamwise.engine.eventlog import SlowReader
from streamwise.engine.run import Run
from streamwise.wire.frames import HEARTBEAT, encode_numbered

logger = logging.getLogger("streamwise.api")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


class RunEventStream(Response):
    """An ASGI response streaming one run from `cursor` onwards."""

    def __init__(self, run: Run, heartbeat_seconds: float, cursor: int = 0, *, detach: bool = False) -> None:
        super().__init__(status_code=200)
        self.run = run
        self.heartbeat_seconds = heartbeat_seconds
        self.cursor = cursor
        self.detach = detach

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*SSE_HEADERS, (b"x-run-id", self.run.id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        me = asyncio.current_task()
        with self.run.log.subscribe(self.cursor) as subscription:
            # The cut may come while this task waits in `send` for a client that reads nothing.
            subscription.on_cut = me.cancel if me is not None else None
            try:
                async for batch in subscription.batches(idle=self.heartbeat_seconds):
                    if watcher.done():
                        return
                    if batch:
                        first = subscription.cursor - len(batch) + 1  # the run's event numbers
                        body = encode_numbered(batch, self.run.id, first)
                    else:
                        body = HEARTBEAT
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                if not subscription.cut or me is None:
                    raise
                me.uncancel()
                self._cut_off(subscription.unread_bytes)
            except SlowReader:
                self._cut_off(subscription.unread_bytes)
            except OSError:
                if not self.detach:
                    self.run.cancel("disconnect")  # the socket broke under us: same as leaving
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    def _cut_off(self, unread: int) -> None:
        logger.warning(
            "run %s: the client stopped reading (%d bytes unread); closing its connection, the run "
            "goes on and will be stored",
            self.run.id,
            unread,
        )

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.detach:
                    self.run.cancel("disconnect")
                return
