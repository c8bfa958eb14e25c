"""One append-only event log per run, readable by any number of subscribers.

The run writes with `emit` (a plain list append, no await); readers wait for new entries and take
everything that has arrived since their cursor as one batch, so a burst of tokens becomes one write
on the wire. A reader may start from any cursor, which is what resuming a stream will need.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streamwise.engine.events import End, Event


class EventLog:
    """Implements the engine's `EventSink`, and lets transports read what was emitted."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._waiters: list[asyncio.Future[bool]] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self._events)

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    def emit(self, event: Event) -> None:
        if self.closed:
            raise RuntimeError(f"event after end: {event!r}")
        self._events.append(event)
        if isinstance(event, End):
            self.closed = True
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    async def wait_beyond(self, cursor: int, timeout: float | None) -> bool:
        """Wait until the log holds more than `cursor` events or is closed; False on timeout."""
        if len(self._events) > cursor or self.closed:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        # A plain timer rather than asyncio.wait_for: this runs once per write on every stream.
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def batches(self, cursor: int = 0, idle: float | None = None) -> AsyncIterator[list[Event]]:
        """Yield lists of new events until `End` has been yielded.

        With `idle` set, an empty list is yielded after that many seconds of silence (heartbeats).
        """
        while True:
            if not await self.wait_beyond(cursor, idle):
                yield []
                continue
            batch = self._events[cursor:]
            cursor += len(batch)
            if batch:
                yield batch
            if self.closed and cursor >= len(self._events):
                return


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
