"""A redis-server of a test's own, on a free loopback port: for tests that kill, stop or restart
Redis (never the machine's shared one)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.support.server import free_port


class OwnRedis:
    """A redis-server of this test's own on a free loopback port (never the shared one)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *options: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ),
            *("--dir", str(self.directory), *options),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def kill(self) -> None:
        """SIGKILL, by the pid of the server this test started."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGCONT)  # in case a test left it stopped
            os.kill(self.process.pid, signal.SIGKILL)
            async with asyncio.timeout(10):
                await self.process.wait()
        self.process = None

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)
