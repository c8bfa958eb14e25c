"""A run's events as a Flowise-framed SSE response, raced against the client leaving.

The response reads from a reader (an `EventReader`: this process's log of an in-process run, or the
API node's one Redis reader for a run on a worker), writes what it reads with an encoder, and calls a
cancel callback when the client leaves (unless it `detach`ed): the seams between one SSE response and
wherever the run happens to be.

Everything that reached the reader since the last write goes out as one body message, so a burst of
tokens costs one socket write. A silent stream gets a heartbeat comment. When the client
disconnects, the run is cancelled (the model stops) and finishes storing on its own.

A client that stops reading (its socket full, the write blocked) while the run goes on would make
the server hold everything the run emits: once it is `stream_buffer_bytes` behind, the reader cuts it
off, this response ends without completing (the server closes the connection), and the run is left
to finish and be stored.

A reader that fails (Redis lost, the run's events expired, no worker took the run in time) ends the
stream with `error` then `end`, so a client never hangs on a run it can no longer see.

Every frame carries its `id:` (`<run id>:<n>`), and the response an `X-Run-Id` header: a client that
lost its connection resumes with `Last-Event-ID` from the event after the last one it saw. A reader
that `detach`es leaves the run going when it hangs up (so it can be resumed); otherwise hanging up
stops the run, as in Flowise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from streamwise.engine.eventlog import SlowReader
from streamwise.engine.events import End, Error
from streamwise.engine.run import CancelReason, Run
from streamwise.engine.sink import Entry, EventReader, ReaderFailed
from streamwise.wire.frames import HEARTBEAT, encode_numbered

logger = logging.getLogger("streamwise.api")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


Encoder = Callable[[Sequence[Entry], str, int], bytes]
OpenReader = Callable[[], AbstractContextManager[EventReader]]


class EventStream(Response):
    """An ASGI response streaming one run's events from the reader `open_reader` gives."""

    def __init__(
        self,
        run_id: str,
        open_reader: OpenReader,
        cancel: Callable[[CancelReason], object],
        heartbeat_seconds: float,
        *,
        detach: bool = False,
        encoder: Encoder = encode_numbered,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.on_close = on_close  # called once the response is over, however it ended
        self.run_id = run_id
        self.open_reader = open_reader
        self.cancel = cancel
        self.heartbeat_seconds = heartbeat_seconds
        self.detach = detach
        self.encoder = encoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        headers = [*SSE_HEADERS, (b"x-run-id", self.run_id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        me = asyncio.current_task()
        with self.open_reader() as reader:
            cut = False

            def cut_off() -> None:  # the cut may come while this task waits in `send`
                nonlocal cut
                cut = True
                if me is not None:
                    me.cancel()

            reader.on_cut = cut_off
            try:
                async for batch in reader.batches(idle=self.heartbeat_seconds):
                    if watcher.done():
                        return
                    if batch:
                        first = reader.cursor - len(batch) + 1  # the run's event numbers
                        body = self.encoder(batch, self.run_id, first)
                    else:
                        body = HEARTBEAT
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                if not cut or me is None:
                    raise
                me.uncancel()
                self._cut_off()
            except SlowReader:
                self._cut_off()
            except ReaderFailed as exc:
                await self._fail(send, reader.cursor, str(exc))
            except OSError:
                if not self.detach:
                    self.cancel("disconnect")  # the socket broke under us: same as leaving
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _fail(self, send: Send, cursor: int, message: str) -> None:
        """The run can no longer be read: tell the client, and end its stream properly."""
        logger.warning("run %s: stream ended early: %s", self.run_id, message)
        body = self.encoder([Error(message), End()], self.run_id, cursor + 1)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _cut_off(self) -> None:
        logger.warning(
            "run %s: the client stopped reading; closing its connection, the run goes on and will be stored",
            self.run_id,
        )

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.detach:
                    self.cancel("disconnect")
                return


def run_event_stream(
    run: Run, heartbeat_seconds: float, cursor: int = 0, *, detach: bool = False
) -> EventStream:
    """The stream of an in-process run, read from its own log from `cursor` on."""
    log = run.log
    if log is None:
        raise ValueError(f"{run!r} has no local event log")
    return EventStream(run.id, lambda: log.subscribe(cursor), run.cancel, heartbeat_seconds, detach=detach)
