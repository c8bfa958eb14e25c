"""An in-memory MessageStore, so engine tests run without a database."""

from __future__ import annotations

import asyncio

from streamwise.engine.ports import ChatTurn, Exchange


class InMemoryMessageStore:
    def __init__(self, save_delay: float = 0.0, fail: bool = False) -> None:
        self.exchanges: list[Exchange] = []
        self.save_delay = save_delay
        self.fail = fail

    async def history(self, chatflow_id: str, session_id: str) -> list[ChatTurn]:
        turns: list[ChatTurn] = []
        for exchange in self.exchanges:
            if exchange.chatflow_id == chatflow_id and exchange.session_id == session_id:
                turns.append(ChatTurn("user", exchange.question))
                if exchange.answer:
                    turns.append(ChatTurn("assistant", exchange.answer))
        return turns

    async def save_exchange(self, exchange: Exchange) -> None:
        if self.save_delay:
            await asyncio.sleep(self.save_delay)
        if self.fail:
            raise RuntimeError("disk full")
        self.exchanges.append(exchange)
