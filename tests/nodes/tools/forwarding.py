"""A socket layer for the network guard's tests: it records the address it is asked to dial and
connects to the local test server instead, a stand-in for the public internet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore2


class Forwarding(httpcore2.AsyncNetworkBackend):
    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[str] = []
        self._real = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        self.seen.append(host)
        return await self._real.connect_tcp("127.0.0.1", self.port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)
