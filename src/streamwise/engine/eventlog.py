"""One append-only event log per run, readable by any number of subscribers, with bounded memory.

The run writes with `emit` (a plain list append, no await). A reader subscribes (a scoped `with`, so
it can never leak) and takes everything that has arrived since its cursor as one batch, so a burst of
tokens becomes one write on the wire. Cursors are absolute event numbers.

Memory stays bounded whatever the readers do:
- of the events every subscriber has read, the newest `retain_bytes` are kept, so that a client
  whose connection dropped can resume from where it was (`subscribe(cursor)`); older ones are
  dropped. Until the first subscriber comes everything is kept, so a reader that attaches just after
  the run started misses nothing; a log nobody will read is told so with `discard_unread`;
- a subscriber that falls more than `max_unread_bytes` behind (a client that stopped reading) is cut
  off: it is unsubscribed, its `on_cut` callback runs, and its batches end with `SlowReader`. The run
  itself goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager

from streamwise.engine.events import End, Event, Token
from streamwise.engine.sink import Entry as Entry

# The log holds events, except that a token is kept as its bare text (`Entry`); `as_event` gives the
# event back, `wire.frames` encodes either form.

DEFAULT_MAX_UNREAD_BYTES = 4 * 1024 * 1024
DEFAULT_RETAIN_BYTES = 1024 * 1024
_EVENT_OVERHEAD = 64  # bytes an event costs beyond its text, roughly (object, list slot, frame)
_OTHER_EVENT_BYTES = 1024
_TRIM_EVERY = 256  # drop read events in steps, so trimming stays amortised O(1) per event


def event_size(entry: Entry) -> int:
    """What an entry holds in memory, roughly; the unit of `max_unread_bytes`."""
    if isinstance(entry, str):
        return len(entry) + _EVENT_OVERHEAD
    data = entry.data
    if type(data) is str:
        return len(data) + _EVENT_OVERHEAD
    return _OTHER_EVENT_BYTES


def as_event(entry: Entry) -> Event:
    return Token(entry) if isinstance(entry, str) else entry


class SlowReader(Exception):
    """This subscriber fell too far behind and was cut off."""


class Subscription:
    """One reader's place in a log. Use through `EventLog.subscribe`."""

    def __init__(self, log: EventLog, cursor: int) -> None:
        self.log = log
        self.cursor = cursor
        self.consumed_bytes = 0
        self.cut = False
        self.on_cut: Callable[[], object] | None = None

    @property
    def unread_bytes(self) -> int:
        return self.log.emitted_bytes - self.consumed_bytes

    async def batches(self, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        """Yield lists of new entries until `End` has been yielded; `SlowReader` if cut off.

        With `idle` set, an empty list is yielded after that many seconds of silence (heartbeats).
        """
        log = self.log
        while True:
            if not await log.wait_beyond(self.cursor, idle) and not self.cut:
                yield []
                continue
            if self.cut:
                raise SlowReader(f"reader fell more than {log.max_unread_bytes} bytes behind")
            batch = log.since(self.cursor)
            if batch:
                self.cursor += len(batch)
                self.consumed_bytes += sum(map(event_size, batch))
                log.consumed()
                yield batch
            if log.closed and self.cursor >= len(log):
                return


class EventLog:
    """Implements the engine's `EventSink`, and lets transports read what was emitted."""

    def __init__(
        self, max_unread_bytes: int = DEFAULT_MAX_UNREAD_BYTES, retain_bytes: int = DEFAULT_RETAIN_BYTES
    ) -> None:
        self.max_unread_bytes = max_unread_bytes
        self.retain_bytes = retain_bytes
        self._held_bytes = 0  # what self._events hold, by `event_size`
        self._events: list[Entry] = []
        self._base = 0  # absolute number of self._events[0]
        self._waiters: list[asyncio.Future[bool]] = []
        self._subscriptions: list[Subscription] = []
        self._keep_all = True  # until the first subscriber (or `discard_unread`)
        self._slowest = 0  # consumed bytes of the slowest subscriber
        self.emitted_bytes = 0
        self.closed = False

    def __len__(self) -> int:
        return self._base + len(self._events)

    @property
    def events(self) -> list[Event]:
        """The events still held (all of them, unless readers have consumed some)."""
        return [as_event(entry) for entry in self._events]

    @property
    def held_bytes(self) -> int:
        """What the events held take in memory, roughly (`event_size`)."""
        return self._held_bytes

    @property
    def held(self) -> int:
        """How many events are held in memory now."""
        return len(self._events)

    def emit(self, event: Event) -> None:
        if self.closed:
            raise RuntimeError(f"event after end: {event!r}")
        size = len(event.data) + _EVENT_OVERHEAD if type(event) is Token else event_size(event)
        if self._subscriptions or self._keep_all or self.retain_bytes:
            self._events.append(event)
            self._held_bytes += size
            if not self._subscriptions and self._held_bytes > self.retain_bytes and not self._keep_all:
                self.consumed()  # nobody reads now: keep only what a resuming reader may ask for
        else:
            self._base += 1  # nobody is reading, and nobody will: count it, keep nothing
        self.emitted_bytes += size
        if isinstance(event, End):
            self.closed = True
        if self._subscriptions and self.emitted_bytes - self._slowest > self.max_unread_bytes:
            self._cut_slow_readers()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def emit_tokens(self, chunks: Sequence[str]) -> None:
        """`emit(Token(chunk))` for each chunk, in order: the hot path, done once per batch."""
        if self.closed:
            raise RuntimeError(f"tokens after end: {chunks!r:.100}")
        size = sum(map(len, chunks)) + _EVENT_OVERHEAD * len(chunks)
        if self._subscriptions or self._keep_all or self.retain_bytes:
            self._events.extend(chunks)
            self._held_bytes += size
            if not self._subscriptions and self._held_bytes > self.retain_bytes and not self._keep_all:
                self.consumed()
        else:
            self._base += len(chunks)
        self.emitted_bytes += size
        if self._subscriptions and self.emitted_bytes - self._slowest > self.max_unread_bytes:
            self._cut_slow_readers()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def since(self, cursor: int) -> list[Entry]:
        if cursor < self._base:
            raise LookupError(f"events before {self._base} are no longer held (asked from {cursor})")
        return self._events[cursor - self._base :]

    async def wait_beyond(self, cursor: int, timeout: float | None) -> bool:
        """Wait until the log holds more than `cursor` events or is closed; False on timeout."""
        if len(self) > cursor or self.closed:
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

    @contextmanager
    def subscribe(self, cursor: int = 0) -> Iterator[Subscription]:
        """A reader from `cursor` on, for the duration of the `with` block."""
        if cursor < self._base:
            raise LookupError(f"events before {self._base} are no longer held (asked from {cursor})")
        subscription = Subscription(self, cursor)
        # What came before the cursor counts as read.
        subscription.consumed_bytes = self.emitted_bytes - sum(map(event_size, self.since(cursor)))
        self._subscriptions.append(subscription)
        self._keep_all = False
        self._slowest = min(s.consumed_bytes for s in self._subscriptions)
        try:
            yield subscription
        finally:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self.consumed()

    async def batches(self, cursor: int = 0, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        """Subscribe and yield batches until `End` (see `Subscription.batches`)."""
        with self.subscribe(cursor) as subscription:
            async for batch in subscription.batches(idle):
                yield batch

    def discard_unread(self) -> None:
        """Nobody will subscribe, nor resume: keep no event beyond what current subscribers need."""
        self._keep_all = False
        self.retain_bytes = 0
        self.consumed()

    def consumed(self) -> None:
        """A subscriber moved on (or left): drop what no subscriber needs any more."""
        if self._subscriptions:
            self._slowest = min(s.consumed_bytes for s in self._subscriptions)
            needed = min(s.cursor for s in self._subscriptions)
        elif self._keep_all:
            return
        else:
            needed = len(self)
        if self._held_bytes <= self.retain_bytes:
            return
        # Down to three quarters of what may be kept, in one cut, so that trimming stays amortised
        # O(1) per event; never past what a subscriber has still to read.
        excess = self._held_bytes - self.retain_bytes * 3 // 4
        readable = needed - self._base
        drop = freed = 0
        events = self._events
        while drop < readable and freed < excess:
            freed += event_size(events[drop])
            drop += 1
        if drop >= _TRIM_EVERY or (drop > 0 and (drop == len(events) or self.closed or freed >= excess)):
            del events[:drop]
            self._base += drop
            self._held_bytes -= freed

    def _cut_slow_readers(self) -> None:
        for subscription in [s for s in self._subscriptions if s.unread_bytes > self.max_unread_bytes]:
            self._subscriptions.remove(subscription)
            subscription.cut = True
            if subscription.on_cut is not None:
                subscription.on_cut()
        self.consumed()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
