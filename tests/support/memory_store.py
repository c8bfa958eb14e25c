"""An in-memory MessageStore, so engine tests run without a database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from streamwise.engine.ports import ChatTurn, Exchange


class InMemoryMessageStore:
    """Keeps exchanges by answer id, in the order they began, like the real repository."""

    def __init__(self, save_delay: float = 0.0, fail: bool = False, fail_begin: bool = False) -> None:
        self.by_id: dict[str, Exchange] = {}
        self.save_delay = save_delay
        self.fail = fail
        self.fail_begin = fail_begin
        self.partial_saves: list[list[tuple[str, str]]] = []

    @property
    def exchanges(self) -> list[Exchange]:
        """Exchanges whose run has ended (the final write landed)."""
        return [exchange for exchange in self.by_id.values() if exchange.status != "running"]

    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        turns: list[ChatTurn] = []
        for exchange in self.exchanges:
            if exchange.chatflow_id == chatflow_id and exchange.session_id == session_id:
                turns.append(ChatTurn("user", exchange.question))
                if exchange.answer:
                    turns.append(ChatTurn("assistant", exchange.answer))
        return turns[-limit:] if limit else turns

    async def begin_exchange(self, exchange: Exchange) -> None:
        if self.fail_begin:
            raise RuntimeError("database unavailable")
        self.by_id[exchange.api_message_id] = exchange

    async def save_partials(self, answers: Sequence[tuple[str, str]]) -> None:
        self.partial_saves.append(list(answers))
        for message_id, text in answers:
            found = self.by_id.get(message_id)
            if found is not None and found.status == "running":
                self.by_id[message_id] = dataclasses.replace(found, answer=text)

    async def save_exchange(self, exchange: Exchange) -> None:
        if self.save_delay:
            await asyncio.sleep(self.save_delay)
        if self.fail:
            raise RuntimeError("disk full")
        self.by_id[exchange.api_message_id] = exchange
