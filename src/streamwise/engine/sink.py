"""The seam between the engine and every transport: a run emits events into a sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from streamwise.engine.events import Event

# What a log holds: an event, or a token as its bare text (one `Token` object per token was 6% of a
# 2000-token stream's CPU).
Entry = Event | str


class EventSink(Protocol):
    """Receives a run's events in order. `emit` must not block: it is on the token hot path."""

    def emit(self, event: Event) -> None: ...

    def emit_tokens(self, chunks: Sequence[str]) -> None:
        """A `Token` event for each chunk, in order (the hot path, taken a network read at a time)."""
        ...


class ReaderFailed(Exception):
    """A reader can no longer follow its run (its store was lost, the events expired, no worker
    took the run in time); the message says which, in words a client may see."""


class EventReader(Protocol):
    """One reader's place in a run's events: the read side of the event-log port.

    Implemented by this process's `EventLog` subscriptions and by the API node's Redis reader.
    `cursor` is the number of the last event handed out (events are numbered from 1).
    """

    @property
    def cursor(self) -> int: ...

    # Called when the reader is cut off for falling too far behind (it may be blocked in a write).
    on_cut: Callable[[], object] | None

    def batches(self, idle: float | None = None) -> AsyncIterator[list[Entry]]:
        """Lists of entries after the cursor until the one holding `End`; [] after `idle` seconds of
        silence. Raises `SlowReader` when cut off, `ReaderFailed` when the run cannot be read."""
        ...
