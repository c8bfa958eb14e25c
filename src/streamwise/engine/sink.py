"""The seam between the engine and every transport: a run emits events into a sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streamwise.engine.events import Event


class EventSink(Protocol):
    """Receives a run's events in order. `emit` must not block: it is on the token hot path."""

    def emit(self, event: Event) -> None: ...

    def emit_tokens(self, chunks: Sequence[str]) -> None:
        """A `Token` event for each chunk, in order (the hot path, taken a network read at a time)."""
        ...
