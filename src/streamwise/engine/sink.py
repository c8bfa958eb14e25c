"""The seam between the engine and every transport: a run emits events into a sink."""

from __future__ import annotations

from typing import Protocol

from streamwise.engine.events import Event


class EventSink(Protocol):
    """Receives a run's events in order. `emit` must not block: it is on the token hot path."""

    def emit(self, event: Event) -> None: ...
